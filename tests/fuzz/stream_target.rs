//! Fuzz targets `responses-relay`, `chat-relay` and `aggregate`: `ResponsesTranscript::relay`,
//! `ChatStreamTranslator`, and `ResponsesTranscript::record` followed by
//! `chat_response::completion`, driven the way `stream_pump::relay` and `stream_pump::aggregate`
//! drive them, on mutated upstream event sequences. Every frame must be SSE that a conformant
//! client reads as we do, with JSON data; the end of a stream must be told exactly once; the
//! in-band error must be numbered after every event the client saw.

use std::io;
use std::rc::Rc;

use codex_sub_proxy::chat_request::CallStyle;
use codex_sub_proxy::chat_response::{CompletionMeta, completion};
use codex_sub_proxy::chat_stream::ChatStreamTranslator;
use codex_sub_proxy::error::ProxyError;
use codex_sub_proxy::responses_relay::{ResponsesTranscript, eof_before_completion};
use codex_sub_proxy::sse::{SseError, SseEvent, SseReader};
use codex_sub_proxy::stream_pump::{StreamTranslator, stream_error};
use serde_json::{Value, json};

use super::corpus;
use super::engine::Rng;
use super::mutate::{Dictionary, mutate_bytes, mutate_json, shrink_bytes, shrink_json};
use super::request_target::{JSON_TOKENS, check_error_object};
use super::sse_target::read_all;

/// How the upstream stream ends when no terminal event came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Eof,
    TooLarge,
    Timeout,
    Reset,
}

pub const ENDS: &[(End, &str)] = &[
    (End::Eof, "eof"),
    (End::TooLarge, "too_large"),
    (End::Timeout, "timeout"),
    (End::Reset, "reset"),
];

/// Upstream events and the chat options that shape their translation.
#[derive(Debug, Clone)]
pub struct StreamCase {
    pub events: Vec<SseEvent>,
    pub include_usage: bool,
    pub legacy: bool,
    pub end: End,
}

impl StreamCase {
    fn style(&self) -> CallStyle {
        if self.legacy {
            CallStyle::LegacyFunctions
        } else {
            CallStyle::Tools
        }
    }

    /// The error `stream_pump::relay` writes when the stream stops without a terminal event.
    fn end_error(&self) -> ProxyError {
        match self.end {
            End::Eof => eof_before_completion(),
            End::TooLarge => stream_error(&SseError::EventTooLarge { limit: 16 << 20 }),
            End::Timeout => stream_error(&SseError::Io(io::ErrorKind::TimedOut.into())),
            End::Reset => stream_error(&SseError::Io(io::ErrorKind::ConnectionReset.into())),
        }
    }
}

fn meta() -> CompletionMeta {
    CompletionMeta {
        id: "chatcmpl-fuzz".into(),
        created: 1_767_225_600,
        model: "gpt-5.5-high".into(),
    }
}

/// One write of the relay loop.
struct Written {
    frame: Vec<u8>,
    /// `is_finished()` right after the frame was produced.
    finished: bool,
    /// The in-band error for a stream that stopped without a terminal event.
    injected: bool,
}

/// `stream_pump::relay` without sockets: frames until the translator is finished, the in-band
/// error when the stream stops first, then the closing frames. Returns the writes, the closing
/// frames and how many events were consumed.
fn pump(
    translator: &mut impl StreamTranslator,
    case: &StreamCase,
) -> (Vec<Written>, Vec<u8>, usize) {
    let mut written = Vec::new();
    let mut consumed = 0;
    let mut stopped = false;
    for event in &case.events {
        consumed += 1;
        match translator.on_event(event) {
            Some(frame) => {
                let finished = translator.is_finished();
                written.push(Written {
                    frame,
                    finished,
                    injected: false,
                });
                if finished {
                    stopped = true;
                    break;
                }
            }
            None if translator.is_finished() => {
                stopped = true;
                break;
            }
            None => {}
        }
    }
    if !stopped {
        written.push(Written {
            frame: translator.error_frame(&case.end_error()),
            finished: true,
            injected: true,
        });
    }
    let closing = translator.closing_frames();
    (written, closing, consumed)
}

/// Frames as a spec-conformant client reads them (CR, LF and CRLF end lines), which must be
/// what our own reader sees too; every frame must be complete.
fn client_frames(bytes: &[u8]) -> Result<Vec<(Option<String>, String)>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "frames are not UTF-8".to_string())?;
    let mut frames = Vec::new();
    let (mut event, mut data, mut has_data) = (None, String::new(), false);
    let mut rest = text;
    while let Some(end) = rest.find(['\r', '\n']) {
        let line = &rest[..end];
        rest = &rest[end
            + if rest[end..].starts_with("\r\n") {
                2
            } else {
                1
            }..];
        if line.is_empty() {
            if has_data {
                frames.push((event.take(), std::mem::take(&mut data)));
            }
            (event, has_data) = (None, false);
            data.clear();
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line
            .split_once(':')
            .map_or((line, ""), |(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)));
        match field {
            "event" => event = Some(value.to_string()),
            "data" => {
                if has_data {
                    data.push('\n');
                }
                data.push_str(value);
                has_data = true;
            }
            _ => {}
        }
    }
    if !rest.is_empty() || has_data || event.is_some() {
        return Err(format!("an unterminated frame: {rest:?}"));
    }
    let (ours, error) = read_all(SseReader::new(bytes, bytes.len() + 16));
    let ours: Vec<(Option<String>, String)> = ours.into_iter().map(|e| (e.event, e.data)).collect();
    if error.is_some() || ours != frames {
        return Err(format!(
            "a client reads {frames:?}, our reader {ours:?} ({error:?})"
        ));
    }
    Ok(frames)
}

/// The fields a client keys on, read the way the relay reads them.
#[derive(serde::Deserialize)]
struct Head {
    #[serde(rename = "type")]
    kind: Option<Value>,
    sequence_number: Option<Value>,
}

/// `type` and `sequence_number` of a frame's data. The relay can emit JSON deeper than
/// serde_json's limit of 128 for a `Value` (deltas pass unparsed; items gathered from
/// `output_item.done` go two levels deeper into the terminal event), so a `Value` is tried
/// first (it allows duplicate keys) and `Head` (whose other fields are skipped at any depth)
/// second.
fn head(data: &str) -> (Option<String>, Option<u64>) {
    let (kind, sequence) = match serde_json::from_str::<Value>(data) {
        Ok(value) => (
            value.get("type").cloned(),
            value.get("sequence_number").cloned(),
        ),
        Err(_) => match serde_json::from_str::<Head>(data) {
            Ok(head) => (head.kind, head.sequence_number),
            Err(_) => (None, None),
        },
    };
    (
        kind.and_then(|k| k.as_str().map(str::to_string)),
        sequence.and_then(|n| n.as_u64()),
    )
}

/// Whether `text` is one JSON value, however deeply nested (skipping a value has no depth
/// limit in serde_json, building one does).
fn is_json(text: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

const TERMINAL_TYPES: &[&str] = &[
    "response.completed",
    "response.incomplete",
    "response.failed",
    "error",
];

pub fn check_responses_relay(case: &StreamCase) -> Result<(), String> {
    let mut transcript = ResponsesTranscript::new();
    let (written, closing, _) = pump(&mut transcript, case);
    if !closing.is_empty() {
        return Err("responses-closing: the Responses stream has no closing frames".into());
    }
    let mut highest: Option<u64> = None;
    for write in &written {
        let frames =
            client_frames(&write.frame).map_err(|why| format!("responses-frame-sse: {why}"))?;
        let [(name, data)] = &frames[..] else {
            return Err(format!("responses-frame-count: one write held {frames:?}"));
        };
        if !is_json(data) {
            return Err(format!("responses-frame-json: {name:?} data {data:?}"));
        }
        if !data.trim_start().starts_with('{') {
            return Err(format!("responses-frame-object: {name:?} data {data}"));
        }
        let (kind, sequence) = head(data);
        let kind = kind.as_deref();
        if write.injected {
            if kind != Some("error") || name.as_deref() != Some("error") {
                return Err(format!("responses-error-frame: {data}"));
            }
            match (sequence, highest) {
                // Nothing is after u64::MAX: repeating it is the best a relay can do.
                (Some(number), Some(seen)) if number <= seen && number < u64::MAX => {
                    return Err(format!(
                        "responses-error-sequence: the in-band error is numbered {number} after {seen} was relayed"
                    ));
                }
                (None, _) => return Err(format!("responses-error-frame: no sequence in {data}")),
                _ => {}
            }
            continue;
        }
        // Clients key on the data's type. The relay may pass a frame on by its SSE name
        // without reading it, so a frame whose name and type disagree (which the backend never
        // sends) is only held to: the frame that ends the stream is a terminal event.
        let terminal = kind.is_some_and(|k| TERMINAL_TYPES.contains(&k));
        let consistent = name.as_deref() == kind;
        if (write.finished && !terminal) || (consistent && terminal && !write.finished) {
            return Err(format!(
                "responses-terminal: frame {name:?} of type {kind:?} relayed with finished={}",
                write.finished
            ));
        }
        if let Some(number) = sequence {
            highest = Some(highest.map_or(number, |seen| seen.max(number)));
        }
    }
    Ok(())
}

pub fn check_chat_relay(case: &StreamCase) -> Result<(), String> {
    let meta = meta();
    let mut translator = ChatStreamTranslator::new(meta.clone(), case.include_usage, case.style());
    let (written, closing, consumed) = pump(&mut translator, case);
    for event in &case.events[consumed..] {
        if let Some(frame) = translator.on_event(event) {
            return Err(format!(
                "chat-after-finish: the finished translator still emits {:?}",
                String::from_utf8_lossy(&frame)
            ));
        }
    }
    let mut bytes: Vec<u8> = written.iter().flat_map(|w| w.frame.clone()).collect();
    bytes.extend(closing);
    let frames = client_frames(&bytes).map_err(|why| format!("chat-frame-sse: {why}"))?;
    let Some(((_, last), chunks)) = frames.split_last() else {
        return Err("chat-done-last: no frames at all".into());
    };
    if last != "[DONE]" {
        return Err(format!("chat-done-last: the stream ends with {last:?}"));
    }
    let mut role_seen = false;
    let mut terminal: Option<&str> = None;
    let mut usage_seen = false;
    let mut calls = 0u64;
    for (name, data) in chunks {
        let fail = |property: &str, why: &str| Err(format!("{property}: {why} in {data}"));
        if name.is_some() {
            return fail("chat-event-name", "a chat frame with an event name");
        }
        let Ok(chunk @ Value::Object(_)) = serde_json::from_str::<Value>(data) else {
            return fail("chat-frame-json", "not a JSON object (or a second [DONE])");
        };
        if let Some(error) = chunk.get("error") {
            if terminal.is_some() {
                return fail("chat-after-terminal", "an error after the end");
            }
            check_error_object(error).map_err(|why| format!("chat-error-shape: {why}"))?;
            terminal = Some("error");
            continue;
        }
        if chunk["object"] != "chat.completion.chunk"
            || chunk["id"] != meta.id.as_str()
            || chunk["model"] != meta.model.as_str()
            || chunk["created"] != meta.created
        {
            return fail("chat-chunk-shape", "not a chunk of this completion");
        }
        let Some(choices) = chunk["choices"].as_array() else {
            return fail("chat-chunk-shape", "no choices");
        };
        if choices.is_empty() {
            if !(case.include_usage && terminal == Some("finish") && !usage_seen) {
                return fail("chat-usage-chunk", "an unexpected usage chunk");
            }
            let usage = &chunk["usage"];
            if ["prompt_tokens", "completion_tokens", "total_tokens"]
                .iter()
                .any(|k| !usage[k].is_u64())
            {
                return fail("chat-usage-shape", "usage without token counts");
            }
            usage_seen = true;
            continue;
        }
        if terminal.is_some() {
            return fail("chat-after-terminal", "a chunk after the end");
        }
        let choice = &choices[0];
        let delta = &choice["delta"];
        if choices.len() != 1 || choice["index"] != 0 || !delta.is_object() {
            return fail("chat-chunk-shape", "not one choice with a delta");
        }
        match (role_seen, delta.get("role")) {
            (false, Some(role)) if role == "assistant" => role_seen = true,
            (false, _) => return fail("chat-first-chunk-role", "the first chunk has no role"),
            (true, Some(_)) => return fail("chat-role-twice", "a second role"),
            (true, None) => {}
        }
        let forbidden = if case.legacy {
            "tool_calls"
        } else {
            "function_call"
        };
        if delta.get(forbidden).is_some() {
            return fail("chat-call-style", "the other call style");
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let Some(index) = call["index"].as_u64() else {
                return fail("chat-tool-call", "a call without index");
            };
            if index == calls {
                if !call["id"].is_string() || !call["function"]["name"].is_string() {
                    return fail("chat-tool-call", "a new call without id and name");
                }
                calls += 1;
            } else if index > calls {
                return fail("chat-tool-call", "a call index skipped");
            }
        }
        match &choice["finish_reason"] {
            Value::Null => {}
            Value::String(reason)
                if [
                    "stop",
                    "length",
                    "tool_calls",
                    "content_filter",
                    "function_call",
                ]
                .contains(&reason.as_str()) =>
            {
                terminal = Some("finish");
            }
            _ => return fail("chat-finish-reason", "an unknown finish_reason"),
        }
    }
    match terminal {
        None => Err("chat-no-terminal: neither finish_reason nor error".into()),
        Some("finish") if case.include_usage && !usage_seen => {
            Err("chat-usage-missing: include_usage without a usage chunk".into())
        }
        Some(_) => Ok(()),
    }
}

/// `stream_pump::aggregate`, then the non-streaming answers of both endpoints.
pub fn check_aggregates(case: &StreamCase) -> Result<(), String> {
    let mut transcript = ResponsesTranscript::new();
    for event in &case.events {
        transcript.record(event);
        if transcript.is_finished() {
            break;
        }
    }
    let finished = transcript.is_finished();
    match transcript.into_response() {
        Ok(response) => {
            if !finished {
                return Err("aggregate-unfinished: an answer without a terminal event".into());
            }
            let meta = meta();
            let answer = serde_json::to_value(completion(&response, &meta, case.style()))
                .map_err(|error| format!("chat-completion-serialise: {error}"))?;
            let message = &answer["choices"][0]["message"];
            if answer["object"] != "chat.completion"
                || message["role"] != "assistant"
                || !answer["choices"][0]["finish_reason"].is_string()
            {
                return Err(format!("chat-completion-shape: {answer}"));
            }
            if let Some(usage) = answer.get("usage")
                && !usage["total_tokens"].is_u64()
            {
                return Err(format!("chat-completion-usage: {usage}"));
            }
            Ok(())
        }
        Err(error) if error.status() >= 400 => check_error_object(&error.body()["error"])
            .map_err(|why| format!("aggregate-error-shape: {why}")),
        Err(error) => Err(format!("aggregate-error-status: {error:?}")),
    }
}

pub fn mutate_stream(
    rng: &mut Rng,
    case: &StreamCase,
    corpus: &[StreamCase],
    donors: &[Value],
    dictionary: &Dictionary,
) -> StreamCase {
    let mut out = case.clone();
    let len = out.events.len();
    match rng.below(14) {
        0 if len > 0 => {
            out.events.remove(rng.below(len));
        }
        1 if len > 0 => {
            let copy = out.events[rng.below(len)].clone();
            out.events.insert(rng.below(len + 1), copy);
        }
        2 if len > 1 => out.events.swap(rng.below(len), rng.below(len)),
        3 if len > 0 => out.events.truncate(rng.below(len)),
        4 => {
            if let Some(other) = rng.pick(corpus).filter(|c| !c.events.is_empty()) {
                let from = rng.below(other.events.len());
                let to = rng.range(from + 1, (from + 3).min(other.events.len()));
                let at = rng.below(len + 1);
                out.events
                    .splice(at..at, other.events[from..to].iter().cloned());
            }
        }
        5 if len > 0 => {
            let at = rng.below(len);
            let bytes = out.events[at].data.clone().into_bytes();
            let mutated = mutate_bytes(rng, &bytes, &[], JSON_TOKENS);
            out.events[at].data = String::from_utf8_lossy(&mutated).into_owned();
        }
        6 if len > 0 => {
            let at = rng.below(len);
            out.events[at].event = match rng.below(3) {
                0 => None,
                _ => dictionary
                    .strings
                    .get(rng.below(dictionary.strings.len()))
                    .filter(|name| !name.contains('\n'))
                    .cloned(),
            };
        }
        7 => match rng.below(3) {
            0 => out.include_usage = !out.include_usage,
            1 => out.legacy = !out.legacy,
            _ => out.end = rng.pick(ENDS).map_or(End::Eof, |(end, _)| *end),
        },
        _ if len > 0 => {
            let at = rng.below(len);
            if let Ok(mut value) = serde_json::from_str::<Value>(&out.events[at].data) {
                let donors: Vec<&Value> = donors.iter().collect();
                mutate_json(rng, &mut value, &donors, dictionary);
                let event = &mut out.events[at];
                event.data = value.to_string();
                // The backend names every frame after its type; keep that most of the time.
                if !rng.one_in(4)
                    && let Some(kind) = value.get("type").and_then(Value::as_str)
                    && !kind.contains('\n')
                {
                    event.event = Some(kind.to_string());
                }
            }
        }
        _ => {}
    }
    out
}

pub fn shrink_stream(case: &StreamCase) -> Box<dyn Iterator<Item = StreamCase>> {
    let base = Rc::new(case.clone());
    let removals = {
        let base = base.clone();
        (0..base.events.len()).rev().map(move |i| {
            let mut smaller = (*base).clone();
            smaller.events.remove(i);
            smaller
        })
    };
    let mut simpler = Vec::new();
    if case.include_usage || case.legacy || case.end != End::Eof {
        simpler.push(StreamCase {
            include_usage: false,
            legacy: false,
            end: End::Eof,
            ..case.clone()
        });
    }
    let datas = (0..base.events.len()).flat_map(move |i| {
        let data = base.events[i].data.clone();
        let smaller: Box<dyn Iterator<Item = String>> = match serde_json::from_str::<Value>(&data) {
            Ok(value) => Box::new(shrink_json(&value).map(|v| v.to_string())),
            Err(_) => {
                Box::new(shrink_bytes(data.as_bytes()).filter_map(|b| String::from_utf8(b).ok()))
            }
        };
        let base = base.clone();
        smaller.map(move |data| {
            let mut changed = (*base).clone();
            changed.events[i].data = data;
            changed
        })
    });
    Box::new(removals.chain(simpler).chain(datas))
}

pub fn render_stream(case: &StreamCase) -> String {
    let events: Vec<Value> = case
        .events
        .iter()
        .map(|e| json!({"event": e.event, "data": e.data}))
        .collect();
    let end = ENDS
        .iter()
        .find(|(end, _)| *end == case.end)
        .map_or("eof", |(_, name)| name);
    json!({"target": "stream", "include_usage": case.include_usage,
           "style": if case.legacy { "legacy" } else { "tools" }, "end": end, "events": events})
    .to_string()
}

pub fn stream_corpus() -> Vec<StreamCase> {
    corpus::event_streams()
        .into_iter()
        .enumerate()
        .map(|(i, events)| StreamCase {
            events,
            include_usage: i % 2 == 0,
            legacy: i % 5 == 2,
            end: ENDS[i % ENDS.len()].0,
        })
        .collect()
}

pub fn json_of_events(corpus: &[StreamCase]) -> Vec<Value> {
    corpus
        .iter()
        .flat_map(|case| &case.events)
        .filter_map(|event| serde_json::from_str(&event.data).ok())
        .collect()
}
