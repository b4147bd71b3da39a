//! [`ChatStreamTranslator`]: upstream Responses events in, `chat.completion.chunk` frames out.
//! Pure: a state machine over `serde_json::Value`, tested without sockets.
//!
//! Chat frames have no `event:` line, only `data: {json}`. The first chunk says
//! `{"role":"assistant","content":""}` (`null` when the answer opens with reasoning or a call); text, reasoning summaries and tool-call arguments follow
//! as deltas; a final chunk with an empty delta carries `finish_reason`; a usage chunk
//! (`choices: []`) follows when the caller asked for it; `data: [DONE]` closes the stream. A
//! failure ends it with a `{"error": …}` chunk, never with a `finish_reason`.
//!
//! Deltas stream as they come, but `response.output_item.done` is the truth (contract §9.4):
//! whatever part of a finished item's text or arguments the deltas did not carry is sent then,
//! so what an SDK accumulates equals the finished item.

use serde_json::{Value, json};

use crate::chat_request::CallStyle;
use crate::chat_response::{
    CompletionMeta, SEPARATOR, chat_usage, finish_reason, message_text, reasoning_text,
};
use crate::error::ProxyError;
use crate::json_body::{member, to_text};
use crate::sse::{SseEvent, encode_frame};
use crate::stream_pump::StreamTranslator;

/// What was sent for one output item (a message or a reasoning item).
#[derive(Debug)]
struct ItemText {
    key: String,
    /// The part of the item sent so far, without the separator that preceded it.
    sent: String,
    /// The summary part last streamed (reasoning only).
    part: Option<u64>,
}

/// A function call announced to the client.
#[derive(Debug)]
struct AnnouncedCall {
    key: String,
    /// The call's position in `tool_calls`.
    index: usize,
    arguments: String,
}

/// The event types [`ChatStreamTranslator::on_value`] reads (also to open the stream); any
/// other named event is dropped unparsed.
const TRANSLATED: [&str; 10] = [
    "response.output_text.delta",
    "response.refusal.delta",
    "response.reasoning_summary_text.delta",
    "response.output_item.added",
    "response.function_call_arguments.delta",
    "response.output_item.done",
    "response.completed",
    "response.incomplete",
    "response.failed",
    "error",
];

/// Translates one upstream stream into chat chunks.
#[derive(Debug)]
pub struct ChatStreamTranslator {
    meta: CompletionMeta,
    include_usage: bool,
    style: CallStyle,
    started: bool,
    texts: Vec<ItemText>,
    reasonings: Vec<ItemText>,
    calls: Vec<AnnouncedCall>,
    finished: bool,
    skipped_frames: usize,
    template: ChunkTemplate,
}

/// The text every chunk of one stream starts with: id, object, created, model, and the
/// opening of its single choice up to the delta.
#[derive(Debug)]
struct ChunkTemplate {
    head: String,
}

impl ChunkTemplate {
    fn new(meta: &CompletionMeta) -> Self {
        let head = format!(
            "{{\"id\":{},\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":{},\
             \"choices\":[{{\"index\":0,\"delta\":",
            to_text(&Value::String(meta.id.clone())),
            meta.created,
            to_text(&Value::String(meta.model.clone())),
        );
        ChunkTemplate { head }
    }
}

impl ChatStreamTranslator {
    /// A translator whose chunks carry `meta`.
    pub fn new(meta: CompletionMeta, include_usage: bool, style: CallStyle) -> Self {
        ChatStreamTranslator {
            template: ChunkTemplate::new(&meta),
            meta,
            include_usage,
            style,
            started: false,
            texts: Vec::new(),
            reasonings: Vec::new(),
            calls: Vec::new(),
            finished: false,
            skipped_frames: 0,
        }
    }

    /// The `content` of the role chunk that opens the stream, once an event shows what the
    /// answer starts with: `""` before text (as OpenAI sends), `null` before reasoning or a
    /// tool call, so SDKs that accumulate deltas end with `content: null` for a call-only
    /// answer, as the non-streamed answer has. `None`: not known yet (or a failure).
    fn opening_content(&self, kind: &str, event: &Value) -> Option<Value> {
        let item_type = member(event, &["item", "type"]).and_then(Value::as_str);
        match kind {
            "response.output_text.delta" => Some(json!("")),
            "response.output_item.done" if item_type == Some("message") => Some(json!("")),
            "response.refusal.delta"
            | "response.reasoning_summary_text.delta"
            | "response.output_item.done" => Some(Value::Null),
            "response.output_item.added" if item_type == Some("function_call") => Some(Value::Null),
            "response.completed" | "response.incomplete" if self.calls.is_empty() => {
                Some(json!(""))
            }
            "response.completed" | "response.incomplete" => Some(Value::Null),
            _ => None,
        }
    }

    /// Frames for one upstream event object; `None` when it means nothing to a chat client.
    pub fn on_value(&mut self, event: &Value) -> Option<Vec<u8>> {
        if self.finished {
            return None;
        }
        let mut frames = Vec::new();
        let text = |key: &str| event.get(key).and_then(Value::as_str).unwrap_or("");
        if !self.started
            && let Some(content) = self.opening_content(text("type"), event)
        {
            self.started = true;
            frames.extend(self.chunk(json!({"role": "assistant", "content": content}), None));
        }
        match text("type") {
            "response.output_text.delta" => {
                let delta = append(&mut self.texts, &item_key(event), None, text("delta"));
                self.push_delta(&mut frames, "content", delta);
            }
            "response.refusal.delta" if !text("delta").is_empty() => {
                frames.extend(self.chunk(json!({"refusal": text("delta")}), None));
            }
            "response.reasoning_summary_text.delta" => {
                let part = event.get("summary_index").and_then(Value::as_u64);
                let delta = append(&mut self.reasonings, &item_key(event), part, text("delta"));
                self.push_delta(&mut frames, "reasoning_content", delta);
            }
            "response.output_item.added" => {
                if let Some(item) = event.get("item")
                    && item.get("type").and_then(Value::as_str) == Some("function_call")
                {
                    frames.extend(self.announce(&item_key(event), item, ""));
                }
            }
            "response.function_call_arguments.delta" => {
                frames.extend(self.arguments_delta(&item_key(event), text("delta")));
            }
            "response.output_item.done" => {
                if let Some(item) = event.get("item") {
                    frames.extend(self.item_done(&item_key(event), item));
                }
            }
            kind @ ("response.completed" | "response.incomplete") => {
                let response = event.get("response").unwrap_or(&Value::Null);
                let status = match kind {
                    "response.incomplete" => Some("incomplete"),
                    _ => response.get("status").and_then(Value::as_str),
                };
                frames.extend(self.finish(response, status));
            }
            "response.failed" => {
                let error = member(event, &["response", "error"]);
                let field = |key: &str| error.and_then(|e| e.get(key)).and_then(Value::as_str);
                let failure = ProxyError::ResponseFailed {
                    code: field("code").unwrap_or("response_failed").to_string(),
                    message: field("message")
                        .unwrap_or("The upstream response failed.")
                        .to_string(),
                };
                frames.extend(self.error_frame(&failure));
            }
            "error" => {
                let failure = ProxyError::ResponseFailed {
                    code: event
                        .get("code")
                        .and_then(Value::as_str)
                        .unwrap_or("upstream_error")
                        .to_string(),
                    message: event
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("The upstream reported an error.")
                        .to_string(),
                };
                frames.extend(self.error_frame(&failure));
            }
            _ => {}
        }
        (!frames.is_empty()).then_some(frames)
    }

    /// How many upstream frames were skipped as unparseable.
    pub fn skipped_frames(&self) -> usize {
        self.skipped_frames
    }

    /// One `chat.completion.chunk` frame with a single choice. Written around the delta
    /// from text made once per stream (`ChunkTemplate`), not built as a tree per chunk.
    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Vec<u8> {
        let mut json = String::with_capacity(self.template.head.len() + 96);
        json.push_str(&self.template.head);
        json.push_str(&to_text(&delta));
        json.push_str(",\"logprobs\":null,\"finish_reason\":");
        match finish_reason {
            Some(reason) => json.push_str(&to_text(&Value::String(reason.to_string()))),
            None => json.push_str("null"),
        }
        json.push_str("}]}");
        encode_frame(None, &json)
    }

    fn push_delta(&self, frames: &mut Vec<u8>, field: &str, delta: String) {
        if !delta.is_empty() {
            frames.extend(self.chunk(json!({ field: delta }), None));
        }
    }

    /// The first chunk of a function call: index, id, name and (usually empty) arguments.
    fn announce(&mut self, key: &str, item: &Value, arguments: &str) -> Vec<u8> {
        if self.calls.iter().any(|call| call.key == key) {
            return Vec::new();
        }
        let index = self.calls.len();
        self.calls.push(AnnouncedCall {
            key: key.to_string(),
            index,
            arguments: arguments.to_string(),
        });
        let field = |name: &str| item.get(name).and_then(Value::as_str).unwrap_or("");
        match self.style {
            CallStyle::Tools => self.chunk(
                json!({"tool_calls": [{
                    "index": index,
                    "id": field("call_id"),
                    "type": "function",
                    "function": {"name": field("name"), "arguments": arguments},
                }]}),
                None,
            ),
            CallStyle::LegacyFunctions if index == 0 => self.chunk(
                json!({"function_call": {"name": field("name"), "arguments": arguments}}),
                None,
            ),
            // The legacy API has room for one call (parallel calls are switched off upstream).
            CallStyle::LegacyFunctions => Vec::new(),
        }
    }

    fn arguments_delta(&mut self, key: &str, delta: &str) -> Vec<u8> {
        let Some(call) = self.calls.iter_mut().find(|call| call.key == key) else {
            // Not announced (no `output_item.added`): the finished item will carry it all.
            return Vec::new();
        };
        if delta.is_empty() {
            return Vec::new();
        }
        call.arguments.push_str(delta);
        let index = call.index;
        self.arguments_chunk(index, delta)
    }

    fn arguments_chunk(&self, index: usize, arguments: &str) -> Vec<u8> {
        match self.style {
            CallStyle::Tools => self.chunk(
                json!({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]}),
                None,
            ),
            CallStyle::LegacyFunctions if index == 0 => {
                self.chunk(json!({"function_call": {"arguments": arguments}}), None)
            }
            CallStyle::LegacyFunctions => Vec::new(),
        }
    }

    /// Sends what the deltas of a finished item did not.
    fn item_done(&mut self, key: &str, item: &Value) -> Vec<u8> {
        let mut frames = Vec::new();
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                let rest = complete(&mut self.texts, key, &message_text(item));
                self.push_delta(&mut frames, "content", rest);
            }
            Some("reasoning") => {
                let rest = complete(&mut self.reasonings, key, &reasoning_text(item));
                self.push_delta(&mut frames, "reasoning_content", rest);
            }
            Some("function_call") => {
                let arguments = item.get("arguments").and_then(Value::as_str).unwrap_or("");
                match self.calls.iter_mut().find(|call| call.key == key) {
                    None => frames.extend(self.announce(key, item, arguments)),
                    Some(call) => match arguments.strip_prefix(call.arguments.as_str()) {
                        Some("") => {}
                        Some(rest) => {
                            let rest = rest.to_string();
                            call.arguments.push_str(&rest);
                            let index = call.index;
                            frames.extend(self.arguments_chunk(index, &rest));
                        }
                        None => log::warn!(
                            "function call arguments streamed differ from the finished call's; \
                             the client keeps the streamed ones"
                        ),
                    },
                }
            }
            _ => {}
        }
        frames
    }

    /// The finish chunk (and usage chunk) for `response.completed` or `response.incomplete`.
    fn finish(&mut self, response: &Value, status: Option<&str>) -> Vec<u8> {
        let mut frames = Vec::new();
        // A backend that fills `output` on the terminal event (the public API does) may not
        // have streamed every item; sending the rest is a no-op when it did.
        for (position, item) in response
            .get("output")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            frames.extend(self.item_done(&position.to_string(), item));
        }
        let reason = finish_reason(
            status,
            member(response, &["incomplete_details", "reason"]).and_then(Value::as_str),
            !self.calls.is_empty(),
            self.style,
        );
        frames.extend(self.chunk(json!({}), Some(reason)));
        if self.include_usage {
            let usage = response.get("usage").and_then(chat_usage);
            let usage = usage.unwrap_or_else(
                || json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}),
            );
            let chunk = json!({
                "id": self.meta.id,
                "object": "chat.completion.chunk",
                "created": self.meta.created,
                "model": self.meta.model,
                "choices": [],
                "usage": usage,
            });
            frames.extend(encode_frame(None, &to_text(&chunk)));
        }
        self.finished = true;
        frames
    }
}

impl StreamTranslator for ChatStreamTranslator {
    /// Unparseable frames are skipped, as the Codex CLI skips them. Events whose SSE name
    /// says they mean nothing to a chat client (`response.created` and the other large
    /// echoes, the `*.done` texts) are not even parsed.
    fn on_event(&mut self, event: &SseEvent) -> Option<Vec<u8>> {
        if event
            .event
            .as_deref()
            .is_some_and(|name| !TRANSLATED.contains(&name))
        {
            return None;
        }
        match serde_json::from_str(&event.data) {
            Ok(value @ Value::Object(_)) => self.on_value(&value),
            _ => {
                self.skipped_frames += 1;
                None
            }
        }
    }

    fn is_finished(&self) -> bool {
        self.finished
    }

    /// The chunk `{"error": {message, type, param, code}}`; the stream ends with it.
    fn error_frame(&mut self, error: &ProxyError) -> Vec<u8> {
        self.finished = true;
        encode_frame(None, &to_text(&json!({"error": error.error_object()})))
    }

    /// `data: [DONE]`, after the last chunk (also after an error chunk).
    fn closing_frames(&mut self) -> Vec<u8> {
        encode_frame(None, "[DONE]")
    }
}

/// The key that ties an event to its output item: `output_index` (every event of an item
/// carries it), else the item id.
fn item_key(event: &Value) -> String {
    if let Some(index) = event.get("output_index").and_then(Value::as_u64) {
        return index.to_string();
    }
    event
        .get("item_id")
        .or_else(|| member(event, &["item", "id"]))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Records `delta` for item `key` (summary part `part`) and returns what to send: the delta,
/// preceded by a separator when it starts a new item or part after earlier text.
fn append(items: &mut Vec<ItemText>, key: &str, part: Option<u64>, delta: &str) -> String {
    if delta.is_empty() {
        return String::new();
    }
    let said_before = items.iter().any(|item| !item.sent.is_empty());
    let position = match items.iter().position(|item| item.key == key) {
        Some(position) => position,
        None => {
            items.push(ItemText {
                key: key.to_string(),
                sent: String::new(),
                part,
            });
            items.len() - 1
        }
    };
    let Some(item) = items.get_mut(position) else {
        return String::new();
    };
    let mut out = String::new();
    if item.sent.is_empty() {
        if said_before {
            out.push_str(SEPARATOR);
        }
    } else if item.part != part {
        out.push_str(SEPARATOR);
        item.sent.push_str(SEPARATOR);
    }
    item.part = part;
    item.sent.push_str(delta);
    out.push_str(delta);
    out
}

/// What of a finished item's `full` text is still unsent (with the separator a new item
/// needs); records it as sent.
fn complete(items: &mut Vec<ItemText>, key: &str, full: &str) -> String {
    let (sent, part) = items
        .iter()
        .find(|item| item.key == key)
        .map_or((String::new(), None), |item| (item.sent.clone(), item.part));
    match full.strip_prefix(sent.as_str()) {
        Some(rest) => append(items, key, part, rest),
        None => {
            log::warn!(
                "streamed text differs from the finished item's; the client keeps the streamed"
            );
            String::new()
        }
    }
}

#[cfg(test)]
#[path = "chat_stream_tests.rs"]
mod tests;
