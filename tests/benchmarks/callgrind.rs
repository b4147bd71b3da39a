//! Section 8, `callgrind` (run only when named: `cargo bench --bench relay -- callgrind`):
//! instructions per request, counted by valgrind's callgrind. Unlike the timings above, an
//! instruction count is repeatable for the same binary and load whatever else the machine is
//! doing, so it is the figure to compare before and after a change to the proxy.
//!
//! Each kind of request runs against a fresh proxy under `valgrind --tool=callgrind`: 200
//! sequential requests (20 deltas) for each of the four kinds and for an agent's turn (34
//! messages and 10 tools) on both endpoints, plus 20 streams of 1,000
//! deltas, then SIGTERM so callgrind writes its counts; a run with no requests at all is
//! subtracted as the baseline (start-up and shutdown). The output files stay in
//! `target/callgrind/`, and the busiest functions (inclusive) of the aggregated
//! `/v1/responses` run are printed. For function names the binary needs its symbols:
//! `CARGO_PROFILE_BENCH_STRIP=false CARGO_PROFILE_BENCH_DEBUG=line-tables-only cargo bench
//! --bench relay -- callgrind` (best with a separate `CARGO_TARGET_DIR`, so the stripped
//! binary the other sections measure is not rebuilt).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::fast_fake::Scenario;
use crate::load::Sequential;
use crate::proxy_process::ProxyProcess;
use crate::stats::Table;
use crate::via::{Body, Via};
use crate::{Bench, BenchResult, SHORT_SCENARIO};

/// Worker threads of the proxy under callgrind (it runs one thread at a time anyway).
const WORKERS: usize = 8;

/// Requests per short kind, and streams of [`LONG_SCENARIO`].
const REQUESTS: u64 = 200;
const LONG_STREAMS: u64 = 20;

/// A long stream: 1,000 deltas without pauses.
const LONG_SCENARIO: Scenario = Scenario {
    deltas: 1000,
    delta_bytes: 32,
    delay: Duration::ZERO,
};

/// Bounds: start-up under valgrind, each run's requests, and the shutdown.
const START_LIMIT: Duration = Duration::from_secs(60);
const RUN_LIMIT: Duration = Duration::from_secs(120);
const STOP_LIMIT: Duration = Duration::from_secs(60);

/// What a run sends: the path, whether it streams, the scenario, and whether the body is an
/// agent's long conversation with tools rather than one message.
pub type Kind = (Via, bool, Scenario, Body);

/// The runs, each against a fresh proxy: a baseline that only starts and stops, then each
/// kind of request (`syscalls.rs` counts the same runs).
pub const RUNS: [(&str, Option<Kind>, u64); 8] = [
    ("baseline", None, 0),
    (
        "proxy-aggregated",
        Some((Via::Proxy, false, SHORT_SCENARIO, Body::Short)),
        REQUESTS,
    ),
    (
        "proxy-stream",
        Some((Via::Proxy, true, SHORT_SCENARIO, Body::Short)),
        REQUESTS,
    ),
    (
        "chat-aggregated",
        Some((Via::Chat, false, SHORT_SCENARIO, Body::Short)),
        REQUESTS,
    ),
    (
        "chat-stream",
        Some((Via::Chat, true, SHORT_SCENARIO, Body::Short)),
        REQUESTS,
    ),
    (
        "proxy-agent-aggregated",
        Some((Via::Proxy, false, SHORT_SCENARIO, Body::Agent)),
        REQUESTS,
    ),
    (
        "chat-agent-aggregated",
        Some((Via::Chat, false, SHORT_SCENARIO, Body::Agent)),
        REQUESTS,
    ),
    (
        "proxy-stream-1000",
        Some((Via::Proxy, true, LONG_SCENARIO, Body::Short)),
        LONG_STREAMS,
    ),
];

/// Runs one of [`RUNS`] against a fresh proxy started under `wrapper`, then stops it with
/// SIGTERM so the wrapper writes its output; answers (ok, failed).
pub fn run_wrapped(
    bench: &Bench,
    wrapper: &[String],
    kind: Option<Kind>,
    requests: u64,
) -> BenchResult<(u64, u64)> {
    let proxy = ProxyProcess::start_wrapped(
        &bench.fake.base_url(),
        WORKERS,
        &bench.scratch,
        wrapper,
        START_LIMIT,
    )?;
    let answered = drive(&proxy, kind, requests);
    if !proxy.terminate(STOP_LIMIT)? {
        return Err("the proxy did not exit after SIGTERM".into());
    }
    Ok(answered)
}

/// Sends one run's requests one after another; answers (ok, failed).
fn drive(proxy: &ProxyProcess, kind: Option<Kind>, requests: u64) -> (u64, u64) {
    match kind {
        None => (0, 0),
        Some((via, stream, scenario, body)) => {
            let target = Bench::through(proxy, via);
            let request = body.request(target, scenario, stream);
            let run = Sequential::new(vec![request]).run(requests, RUN_LIMIT);
            (run.ok, run.failed)
        }
    }
}

/// Lines of `callgrind_annotate --inclusive=yes` kept in the report.
const TOP_LINES: usize = 30;

/// Runs section 8.
pub fn run(bench: &mut Bench, out_dir: &Path) -> BenchResult<()> {
    let Some(valgrind) = find_tool("valgrind") else {
        bench.report.text(
            "### 8. Instructions per request (callgrind)\n\nskipped: valgrind is not installed \
             (`apt-get install -y valgrind`)\n",
        );
        return Ok(());
    };
    std::fs::create_dir_all(out_dir)?;
    let mut table = Table::new(
        "8. Instructions per request (callgrind; minus a baseline run that only starts and stops)",
        &[
            "run",
            "requests",
            "failed",
            "instructions",
            "per request",
            "output",
        ],
    );
    let mut baseline = 0u64;
    for (label, kind, requests) in RUNS {
        let out_file = out_dir.join(format!("callgrind.{label}.out"));
        let wrapper = vec![
            valgrind.display().to_string(),
            "--tool=callgrind".into(),
            "--quiet".into(),
            format!("--callgrind-out-file={}", out_file.display()),
        ];
        let (ok, failed) = run_wrapped(bench, &wrapper, kind, requests)
            .map_err(|error| format!("callgrind {label}: {error}"))?;
        let total = total_instructions(&out_file)?;
        if kind.is_none() {
            baseline = total;
        }
        let per_request = (ok > 0).then(|| total.saturating_sub(baseline) / ok);
        table.row(vec![
            label.into(),
            ok.to_string(),
            failed.to_string(),
            total.to_string(),
            per_request.map_or_else(|| "-".into(), |n| n.to_string()),
            out_file.display().to_string(),
        ]);
        let csv = &mut bench.report.csv;
        csv.add("callgrind", label, "proxy", "instructions", total, "Ir");
        if let Some(per_request) = per_request {
            csv.add(
                "callgrind",
                label,
                "proxy",
                "per_request",
                per_request,
                "Ir",
            );
        }
    }
    bench.report.table(&table);

    let annotated = out_dir.join("callgrind.proxy-aggregated.out");
    let annotate = find_tool("callgrind_annotate").map(|tool| {
        Command::new(tool)
            .args(["--inclusive=yes", "--threshold=100"])
            .arg(&annotated)
            .output()
    });
    match annotate {
        Some(Ok(out)) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            // Skip the preamble up to the column header of the function list, and the thread
            // start-up frames every worker's stack begins with.
            let lines: Vec<String> = text
                .lines()
                .skip_while(|line| !line.contains("file:function"))
                .filter(|line| !THREAD_FRAMES.iter().any(|frame| line.contains(frame)))
                .take(TOP_LINES + 2)
                .map(shorten)
                .collect();
            bench.report.text(&format!(
                "Busiest functions of `proxy-aggregated`, inclusive (all threads; `callgrind_annotate \
                 --inclusive=yes {}`):\n\n```\n{}\n```\n",
                annotated.display(),
                lines.join("\n")
            ));
        }
        _ => bench.report.text(&format!(
            "note: callgrind_annotate could not read {}\n",
            annotated.display()
        )),
    }
    Ok(())
}

/// Frames of thread start-up, left out of the listing.
const THREAD_FRAMES: [&str; 4] = [
    "start_thread",
    "std::sys::",
    "FnOnce::call_once{{vtable.shim}}",
    "__rust_begin_short_backtrace",
];

/// A listing line without the registry and toolchain path prefixes and the object suffix.
fn shorten(line: &str) -> String {
    let mut line = line.to_owned();
    for (marker, keep_from) in [
        ("/root/.cargo/registry/src/", "/"),
        ("/rustc/", "/library/"),
    ] {
        if let Some(start) = line.find(marker) {
            // Registry: drop `…/index.crates.io-<hash>/`; toolchain: drop `/rustc/<hash>`.
            let after = start + marker.len();
            if let Some(cut) = line[after..].find(keep_from).map(|i| after + i + 1) {
                line.replace_range(start..cut, "");
            }
        }
    }
    if let Some(object) = line.rfind(" [/") {
        line.truncate(object);
    }
    line
}

/// The `totals:` (or `summary:`) line of a callgrind output file: instructions executed.
fn total_instructions(path: &Path) -> BenchResult<u64> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter_map(|line| {
            line.strip_prefix("totals:")
                .or_else(|| line.strip_prefix("summary:"))
        })
        .find_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no totals in {}", path.display()).into())
}

/// A program on `PATH` or in `/usr/bin`.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
