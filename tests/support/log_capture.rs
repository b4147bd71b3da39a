//! The log backend of in-process test proxies: installed once per test binary at `trace`, it
//! formats every record with the proxy's own [`LineFormatter`] (so the lines are the ones the
//! real binary would write) and keeps them in memory for the secret scan of `secrets.rs`.
//!
//! Memory stays bounded: a scan checks each line against the secrets it has not met yet, then
//! forgets checked lines beyond the newest [`RETAINED_BYTES`]. Those are kept because a prompt
//! is registered when the fake backend receives it, which can be just after the proxy logged
//! a line; the next scan checks the kept lines against such late secrets. A backlog past
//! [`BACKLOG_BYTES`] (no proxy dropped for a long time) is scanned as it is logged, and what it
//! finds is reported by the next scan.

#![expect(clippy::panic, reason = "test support fails loudly")]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once, OnceLock, PoisonError};

use codex_sub_proxy::logging::{LineFormatter, LogFormat, timestamp};
use log::{LevelFilter, Log, Metadata, Record};

use crate::secrets::{self, Finding, SecretRegistry};

/// Checked lines kept for secrets registered after them.
pub const RETAINED_BYTES: usize = 1 << 20;
/// Unchecked lines that trigger a scan as they arrive.
pub const BACKLOG_BYTES: usize = 8 << 20;

struct CapturedLine {
    text: String,
    /// How many registered secrets this line has been checked against.
    checked: usize,
}

#[derive(Default)]
struct CaptureState {
    lines: VecDeque<CapturedLine>,
    bytes: usize,
    unchecked_bytes: usize,
    findings: Vec<Finding>,
    lines_seen: u64,
}

/// Captured log lines and what scanning them found so far.
#[derive(Default)]
pub struct LogCapture {
    state: Mutex<CaptureState>,
}

impl LogCapture {
    fn state(&self) -> MutexGuard<'_, CaptureState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `line` for the next scan (scanning at once when the backlog is too large).
    pub fn push(&self, line: String, registry: &SecretRegistry) {
        let mut state = self.state();
        state.bytes += line.len();
        state.unchecked_bytes += line.len();
        state.lines_seen += 1;
        state.lines.push_back(CapturedLine {
            text: line,
            checked: 0,
        });
        if state.unchecked_bytes > BACKLOG_BYTES {
            check(&mut state, registry);
        }
    }

    /// Checks every kept line against the secrets it has not met, forgets old checked lines,
    /// and returns (and clears) everything found since the last scan.
    pub fn scan(&self, registry: &SecretRegistry) -> Vec<Finding> {
        let mut state = self.state();
        check(&mut state, registry);
        std::mem::take(&mut state.findings)
    }

    /// Lines captured since the start, and lines held now.
    pub fn counts(&self) -> (u64, usize) {
        let state = self.state();
        (state.lines_seen, state.lines.len())
    }
}

fn check(state: &mut CaptureState, registry: &SecretRegistry) {
    let known = registry.len();
    let CaptureState {
        lines, findings, ..
    } = state;
    for line in lines.iter_mut().filter(|line| line.checked < known) {
        if let Some(finding) = registry.find(&line.text, line.checked, false) {
            findings.push(finding);
        }
        line.checked = known;
    }
    state.unchecked_bytes = 0;
    while state.bytes > RETAINED_BYTES {
        let Some(line) = state.lines.pop_front() else {
            break;
        };
        state.bytes -= line.text.len();
    }
}

/// A `log` backend that formats records like the proxy's and keeps them in a [`LogCapture`].
pub struct CapturingLogger {
    formatter: LineFormatter,
    capture: LogCapture,
    registry: &'static SecretRegistry,
}

impl CapturingLogger {
    /// A logger at `trace`, plain lines, checking against `registry`.
    pub fn new(registry: &'static SecretRegistry) -> CapturingLogger {
        CapturingLogger {
            formatter: LineFormatter {
                level: LevelFilter::Trace,
                format: LogFormat::Plain,
            },
            capture: LogCapture::default(),
            registry,
        }
    }

    /// What it captured.
    pub fn capture(&self) -> &LogCapture {
        &self.capture
    }

    /// Scans what it captured against its registry (see [`LogCapture::scan`]).
    pub fn scan(&self) -> Vec<Finding> {
        self.capture.scan(self.registry)
    }
}

impl Log for CapturingLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.formatter.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = self.formatter.line(record, &timestamp());
            self.capture.push(line, self.registry);
        }
    }

    fn flush(&self) {}
}

static LOGGER: OnceLock<&'static CapturingLogger> = OnceLock::new();

/// Installs the capturing logger as this process's logger, once; later calls do nothing.
pub fn install() -> &'static CapturingLogger {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // `log` needs a logger that lives as long as the process.
        let logger: &'static CapturingLogger =
            Box::leak(Box::new(CapturingLogger::new(secrets::registry())));
        if log::set_logger(logger).is_ok() {
            log::set_max_level(LevelFilter::Trace);
            let _ = LOGGER.set(logger);
        }
    });
    LOGGER
        .get()
        .copied()
        .unwrap_or_else(|| panic!("another logger was installed before the capturing one"))
}

/// Scans every line the in-process proxies logged so far against every registered secret,
/// and fails the test on a finding (from whichever test's traffic it came).
pub fn assert_logs_clean() {
    let logger = install();
    let findings = logger.scan();
    static REPORTED: AtomicU64 = AtomicU64::new(0);
    let (seen, _) = logger.capture().counts();
    secrets::record_scan(
        "in-process",
        seen - REPORTED.swap(seen, Ordering::Relaxed).min(seen),
    );
    secrets::assert_no_findings("the in-process proxies' logs", &findings);
}
