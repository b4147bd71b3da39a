//! Logging to stderr: a `log` backend writing one line per record, plain (default) or JSON
//! lines (`LOG_FORMAT=json`), and the access log line, one per request.
//!
//! What may be logged is decided by the callers: metadata only, never a token, a key, a prompt
//! or a completion (`tests/no_secrets_in_logs.rs` runs traffic at `trace` and checks).

use std::io::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};
use serde_json::{Map, Value, json};

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

struct StderrLogger {
    level: LevelFilter,
    format: LogFormat,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
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

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        let line = match self.format {
            // Access lines arrive already formatted for the chosen format.
            _ if record.target() == ACCESS_TARGET => message,
            LogFormat::Plain => format!(
                "{} {:<5} {}: {message}",
                timestamp(),
                record.level(),
                record.target()
            ),
            LogFormat::Json => json!({
                "time": timestamp(),
                "level": record.level().as_str(),
                "target": record.target(),
                "message": message,
            })
            .to_string(),
        };
        // One write per line: `writeln!` on unbuffered stderr writes the line and its newline
        // separately (two system calls per access log line), and lines from several threads
        // could interleave between them.
        let mut line = line;
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
    log::set_logger(Box::leak(Box::new(StderrLogger { level, format })))?;
    log::set_max_level(level);
    Ok(())
}

/// Now, RFC 3339 with microseconds.
fn timestamp() -> String {
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

/// Writes the access line for one request, at info level, in the configured format.
pub fn access(fields: &[(&str, Field)]) {
    if !log::log_enabled!(target: ACCESS_TARGET, Level::Info) {
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
            Value::Object(object).to_string()
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
    fn json_access_lines_parse() {
        let line = format_access(LogFormat::Json, "t", &fields());
        let value: Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(value["status"], 200);
        assert_eq!(value["stream"], true);
        assert_eq!(value["upstream_status"], Value::Null);
        assert_eq!(value["level"], "INFO");
    }
}
