//! Regression records: the JSON form in which a failing input is printed, saved under
//! `tests/fuzz/regressions/` and replayed (see the README there).

use std::path::{Path, PathBuf};

use codex_sub_proxy::sse::SseEvent;
use serde_json::{Value, json};

use super::engine::{self, Report};
use super::request_target::RequestCase;
use super::sse_target::SseCase;
use super::stream_target::{ENDS, End, StreamCase};

pub fn put_bytes(record: &mut Value, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => record["text"] = json!(text),
        Err(_) => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            record["hex"] = json!(hex);
        }
    }
}

fn get_bytes(record: &Value) -> Option<Vec<u8>> {
    if let Some(text) = record["text"].as_str() {
        return Some(text.as_bytes().to_vec());
    }
    let hex = record["hex"].as_str()?;
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A parsed regression record.
pub enum Case {
    Sse(SseCase),
    Request(RequestCase),
    Stream(StreamCase),
}

pub fn parse_record(record: &Value) -> Option<Case> {
    match record["target"].as_str()? {
        "sse" => Some(Case::Sse(SseCase {
            bytes: get_bytes(record)?,
            limit: record["limit"].as_u64()? as usize,
            chunks: record["chunks"]
                .as_array()?
                .iter()
                .map(|c| c.as_u64().map(|c| c as usize))
                .collect::<Option<_>>()?,
            capacity: record["capacity"].as_u64()? as usize,
        })),
        "request" => Some(Case::Request(RequestCase {
            chat: record["endpoint"] == "chat",
            developer: record["system_as"] == "developer",
            body: get_bytes(record)?,
        })),
        "stream" => Some(Case::Stream(StreamCase {
            events: record["events"]
                .as_array()?
                .iter()
                .map(|e| {
                    Some(SseEvent {
                        event: e["event"].as_str().map(str::to_string),
                        data: e["data"].as_str()?.to_string(),
                    })
                })
                .collect::<Option<_>>()?,
            include_usage: record["include_usage"].as_bool()?,
            legacy: record["style"] == "legacy",
            end: ENDS
                .iter()
                .find(|(_, name)| record["end"] == *name)
                .map_or(End::Eof, |(end, _)| *end),
        })),
        _ => None,
    }
}

fn regressions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/regressions")
}

/// Every regression record on disk, with its file name.
pub fn regression_records() -> Vec<(String, Value)> {
    let Ok(entries) = std::fs::read_dir(regressions_dir()) else {
        return Vec::new();
    };
    let mut records: Vec<(String, Value)> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            let name = path.file_name()?.to_string_lossy().into_owned();
            Some((name, serde_json::from_str(&text).ok()?))
        })
        .collect();
    records.sort_by(|a, b| a.0.cmp(&b.0));
    records
}

/// `FUZZ_SAVE=1`: writes each failure of a run as a regression record.
pub fn save_findings(report: &Report) {
    if std::env::var("FUZZ_SAVE").as_deref() != Ok("1") {
        return;
    }
    for found in &report.found {
        let hash = engine::fnv1a(found.reproducer.as_bytes());
        let path = regressions_dir().join(format!("{}-{hash:016x}.json", report.name));
        let mut record: Value = serde_json::from_str(&found.reproducer).unwrap_or(Value::Null);
        record["finding"] = json!(found.failure.detail);
        let written = std::fs::create_dir_all(regressions_dir())
            .and_then(|()| std::fs::write(&path, format!("{record:#}\n")));
        match written {
            Ok(()) => eprintln!("fuzz[{}]: saved {}", report.name, path.display()),
            Err(error) => eprintln!("fuzz[{}]: could not save: {error}", report.name),
        }
    }
}
