//! Logging to stderr: a `log` backend writing one line per record, plain (default) or JSON
//! lines (`LOG_FORMAT=json`), and the access log line, one per request.
//!
//! What may be logged is decided by the callers: metadata only, never a token, a key, a prompt
//! or a completion. The integration suite checks it: every test proxy logs at `trace`, the
//! in-process ones through [`LineFormatter`] into `tests/support/log_capture.rs`, and a test
//! fails when a secret registered in `tests/support/secrets.rs` reaches a line.

use std::io::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};
use serde_json::{Map, Value, json};

use crate::json_body::to_text;

/// The target of access log lines.
pub const ACCESS_TARGET: &str = "access";

/// Dependencies whose own logging is capped at `warn` (their debug output can carry headers).
const QUIET_TARGETS: &[&str] = &["ureq", "ureq_proto", "rustls", "tiny_http"];

/// How lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `TIME LEVEL target: message`, and `key=value` pairs for access lines.
    Plain,
    /// One JSON object per line.
    Json,
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// What the logger writes and how each record looks: the configured level (dependencies capped
/// at `warn`) and the line format. Pure, so that anything capturing records (the integration
/// tests do, to scan them for secrets) writes exactly the lines the stderr logger writes.
#[derive(Debug, Clone, Copy)]
pub struct LineFormatter {
    /// The most verbose level written.
    pub level: LevelFilter,
    /// Plain or JSON lines.
    pub format: LogFormat,
}

impl LineFormatter {
    /// Whether a record with `metadata` is written.
    pub fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        let quiet = QUIET_TARGETS
            .iter()
            .any(|target| metadata.target().starts_with(target));
        let limit = if quiet {
            self.level.min(LevelFilter::Warn)
        } else {
            self.level
        };
        metadata.level() <= limit
    }

    /// The line `record` becomes when logged at `time` (no trailing newline).
    pub fn line(&self, record: &Record<'_>, time: &str) -> String {
        let message = record.args().to_string();
        match self.format {
            // Access lines arrive already formatted for the chosen format.
            _ if record.target() == ACCESS_TARGET => message,
            LogFormat::Plain => format!(
                "{time} {:<5} {}: {message}",
                record.level(),
                record.target()
            ),
            LogFormat::Json => to_text(&json!({
                "time": time,
                "level": record.level().as_str(),
                "target": record.target(),
                "message": message,
            })),
        }
    }
}

struct StderrLogger {
    formatter: LineFormatter,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.formatter.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = self.formatter.line(record, &timestamp());
        // One write per line: `writeln!` on unbuffered stderr writes the line and its newline
        // separately (two system calls per access log line), and lines from several threads
        // could interleave between them.
        line.push('\n');
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// Installs the logger (once per process).
pub fn init(level: LevelFilter, format: LogFormat) -> Result<(), log::SetLoggerError> {
    let _ = FORMAT.set(format);
    // Installed once for the life of the process, as `log` requires a `'static` logger.
    let formatter = LineFormatter { level, format };
    log::set_logger(Box::leak(Box::new(StderrLogger { formatter })))?;
    log::set_max_level(level);
    Ok(())
}

/// Now, RFC 3339 with microseconds (the time every line starts with).
pub fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    crate::rfc3339::format(now.as_secs(), now.subsec_micros())
}

/// One access log field value.
#[derive(Debug, Clone)]
pub enum Field {
    /// Text (quoted in plain lines when it has spaces).
    Text(String),
    /// A whole number.
    Number(u64),
    /// A flag.
    Flag(bool),
    /// Absent.
    None,
}

/// Whether access lines are written at all (`LOG_LEVEL` info or finer), so that a caller can
/// skip gathering the fields.
pub fn access_enabled() -> bool {
    log::log_enabled!(target: ACCESS_TARGET, Level::Info)
}

/// Writes the access line for one request, at info level, in the configured format.
pub fn access(fields: &[(&str, Field)]) {
    if !access_enabled() {
        return;
    }
    let line = format_access(
        *FORMAT.get().unwrap_or(&LogFormat::Plain),
        &timestamp(),
        fields,
    );
    log::info!(target: ACCESS_TARGET, "{line}");
}

/// The access line's text.
pub fn format_access(format: LogFormat, time: &str, fields: &[(&str, Field)]) -> String {
    match format {
        LogFormat::Plain => {
            let mut line = format!("{time} INFO  access:");
            for (name, value) in fields {
                let text = match value {
                    Field::Text(text) if text.contains(' ') || text.is_empty() => {
                        format!("{text:?}")
                    }
                    Field::Text(text) => text.clone(),
                    Field::Number(number) => number.to_string(),
                    Field::Flag(flag) => flag.to_string(),
                    Field::None => "-".to_string(),
                };
                line.push_str(&format!(" {name}={text}"));
            }
            line
        }
        LogFormat::Json => {
            let mut object = Map::new();
            object.insert("time".into(), json!(time));
            object.insert("level".into(), json!("INFO"));
            object.insert("target".into(), json!(ACCESS_TARGET));
            for (name, value) in fields {
                let value = match value {
                    Field::Text(text) => json!(text),
                    Field::Number(number) => json!(number),
                    Field::Flag(flag) => json!(flag),
                    Field::None => Value::Null,
                };
                object.insert((*name).to_string(), value);
            }
            to_text(&Value::Object(object))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Vec<(&'static str, Field)> {
        vec![
            ("id", Field::Text("req_1".into())),
            ("status", Field::Number(200)),
            ("stream", Field::Flag(true)),
            ("upstream_status", Field::None),
            ("dropped", Field::Text("temperature, top_p".into())),
        ]
    }

    #[test]
    fn plain_access_lines_are_key_value_pairs() {
        let line = format_access(LogFormat::Plain, "2026-01-01T00:00:00.000000Z", &fields());
        assert_eq!(
            line,
            "2026-01-01T00:00:00.000000Z INFO  access: id=req_1 status=200 stream=true upstream_status=- dropped=\"temperature, top_p\""
        );
    }

    #[test]
    fn records_become_the_lines_the_stderr_logger_writes() {
        let plain = LineFormatter {
            level: LevelFilter::Trace,
            format: LogFormat::Plain,
        };
        let line = plain.line(
            &Record::builder()
                .args(format_args!("upstream answered {}; retrying", 502))
                .level(Level::Warn)
                .target("codex_sub_proxy::upstream")
                .build(),
            "T",
        );
        assert_eq!(
            line,
            "T WARN  codex_sub_proxy::upstream: upstream answered 502; retrying"
        );
        let json = LineFormatter {
            format: LogFormat::Json,
            ..plain
        };
        let line = json.line(
            &Record::builder()
                .args(format_args!("stopped"))
                .level(Level::Info)
                .target("x")
                .build(),
            "T",
        );
        let value: Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(value["message"], "stopped");
        assert_eq!(value["level"], "INFO");
        let access = plain.line(
            &Record::builder()
                .args(format_args!("already formatted"))
                .target(ACCESS_TARGET)
                .build(),
            "T",
        );
        assert_eq!(access, "already formatted");
    }

    #[test]
    fn dependencies_are_capped_at_warn() {
        let formatter = LineFormatter {
            level: LevelFilter::Trace,
            format: LogFormat::Plain,
        };
        let metadata = |level, target| Metadata::builder().level(level).target(target).build();
        assert!(formatter.enabled(&metadata(Level::Trace, "codex_sub_proxy::server")));
        assert!(!formatter.enabled(&metadata(Level::Debug, "ureq::unversioned")));
        assert!(formatter.enabled(&metadata(Level::Warn, "rustls::conn")));
        let quiet = LineFormatter {
            level: LevelFilter::Info,
            ..formatter
        };
        assert!(!quiet.enabled(&metadata(Level::Debug, "codex_sub_proxy::server")));
    }

    #[test]
    fn json_access_lines_parse() {
        let line = format_access(LogFormat::Json, "t", &fields());
        let value: Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(value["status"], 200);
        assert_eq!(value["stream"], true);
        assert_eq!(value["upstream_status"], Value::Null);
        assert_eq!(value["level"], "INFO");
    }
}
