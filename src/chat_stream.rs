//! [`ChatStreamTranslator`]: upstream Responses events in, `chat.completion.chunk` frames out.
//! Pure: a state machine over the events' fields ([`ChatEvent`]), tested without sockets.
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

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Value, json};

use crate::chat_events::ChatEvent;
use crate::chat_request::CallStyle;
use crate::chat_response::{
    CompletionMeta, SEPARATOR, chat_usage, finish_reason, message_text, reasoning_text,
};
use crate::checked_json::CheckedJson;
use crate::error::ProxyError;
use crate::json_body::to_text;
use crate::response_view::{Item, ResponseView};
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

/// The event types [`ChatStreamTranslator`] reads (also to open the stream); any other named
/// event is dropped unparsed.
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

/// The delta of the chunk that opens the stream.
#[derive(Serialize)]
struct RoleDelta {
    role: &'static str,
    content: Option<&'static str>,
}

/// A delta of one text field: `content`, `reasoning_content` or `refusal`.
struct TextDelta<'a> {
    field: &'static str,
    text: &'a str,
}

impl Serialize for TextDelta<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.field, self.text)?;
        map.end()
    }
}

/// `{"tool_calls": [one call]}`.
#[derive(Serialize)]
struct ToolCallsDelta<'a> {
    tool_calls: [ToolCallDelta<'a>; 1],
}

/// A tool call's first chunk (with id, type and name) or a later one (arguments only).
#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

/// A function's name (first chunk only) and a piece of its arguments.
#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

/// The deprecated `functions` API's delta: `{"function_call": …}`.
#[derive(Serialize)]
struct FunctionCallDelta<'a> {
    function_call: FunctionDelta<'a>,
}

/// The empty delta of the finish chunk.
#[derive(Serialize)]
struct EmptyDelta {}

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
    fn opening_content(
        &self,
        event: &ChatEvent<'_>,
        item: &Item<'_>,
    ) -> Option<Option<&'static str>> {
        let item_type = item.kind.as_deref();
        match event.kind.as_ref() {
            "response.output_text.delta" => Some(Some("")),
            "response.output_item.done" if item_type == Some("message") => Some(Some("")),
            "response.refusal.delta"
            | "response.reasoning_summary_text.delta"
            | "response.output_item.done" => Some(None),
            "response.output_item.added" if item_type == Some("function_call") => Some(None),
            "response.completed" | "response.incomplete" if self.calls.is_empty() => Some(Some("")),
            "response.completed" | "response.incomplete" => Some(None),
            _ => None,
        }
    }

    /// Appends the frames for one upstream event to `out` (nothing when it means nothing to
    /// a chat client).
    fn translate(&mut self, event: &ChatEvent<'_>, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        // Read once: the opening chunk, the item key and the handling below all look at it.
        let item = event.item();
        if !self.started
            && let Some(content) = self.opening_content(event, &item)
        {
            self.started = true;
            let role = RoleDelta {
                role: "assistant",
                content,
            };
            self.chunk(out, &role, None);
        }
        match event.kind.as_ref() {
            "response.output_text.delta" => {
                let key = event.item_key(&item);
                let delta = append(&mut self.texts, &key, None, &event.delta);
                self.push_delta(out, "content", &delta);
            }
            "response.refusal.delta" if !event.delta.is_empty() => {
                self.push_delta(out, "refusal", &event.delta);
            }
            "response.reasoning_summary_text.delta" => {
                let key = event.item_key(&item);
                let part = event.summary_index;
                let delta = append(&mut self.reasonings, &key, part, &event.delta);
                self.push_delta(out, "reasoning_content", &delta);
            }
            "response.output_item.added" if item.is("function_call") => {
                self.announce(out, &event.item_key(&item), &item, "");
            }
            "response.function_call_arguments.delta" => {
                self.arguments_delta(out, &event.item_key(&item), &event.delta);
            }
            "response.output_item.done" if event.item.is_some() => {
                self.item_done(out, &event.item_key(&item), &item);
            }
            kind @ ("response.completed" | "response.incomplete") => {
                let response = response_of(event);
                let status = match kind {
                    "response.incomplete" => Some("incomplete"),
                    _ => response.status.as_deref(),
                };
                self.finish(out, &response, status);
            }
            "response.failed" => {
                let response = response_of(event);
                let failure = ProxyError::ResponseFailed {
                    code: response
                        .error_field("code")
                        .unwrap_or(Cow::Borrowed("response_failed"))
                        .into_owned(),
                    message: response
                        .error_field("message")
                        .unwrap_or(Cow::Borrowed("The upstream response failed."))
                        .into_owned(),
                };
                out.extend(self.error_frame(&failure));
            }
            "error" => {
                let failure = ProxyError::ResponseFailed {
                    code: event
                        .code
                        .as_deref()
                        .unwrap_or("upstream_error")
                        .to_string(),
                    message: event
                        .message
                        .as_deref()
                        .unwrap_or("The upstream reported an error.")
                        .to_string(),
                };
                out.extend(self.error_frame(&failure));
            }
            _ => {}
        }
    }

    /// Frames for one upstream event given as a tree; `None` when it means nothing to a chat
    /// client.
    #[cfg(test)]
    pub fn on_value(&mut self, event: &Value) -> Option<Vec<u8>> {
        let text = to_text(event);
        let event = ChatEvent::parse(&text)?;
        let mut out = Vec::new();
        self.translate(&event, &mut out);
        (!out.is_empty()).then_some(out)
    }

    /// How many upstream frames were skipped as unparseable.
    pub fn skipped_frames(&self) -> usize {
        self.skipped_frames
    }

    /// Appends one `chat.completion.chunk` frame with a single choice. Written around the
    /// delta from text made once per stream (`ChunkTemplate`), not built as a tree. Compact
    /// JSON has no line break, so the frame is one `data:` line.
    fn chunk<T: Serialize>(&self, out: &mut Vec<u8>, delta: &T, finish_reason: Option<&str>) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(self.template.head.as_bytes());
        // Serialising these shapes cannot fail: their keys are strings, written to memory.
        let _ = serde_json::to_writer(&mut *out, delta);
        out.extend_from_slice(b",\"logprobs\":null,\"finish_reason\":");
        match finish_reason {
            Some(reason) => {
                let _ = serde_json::to_writer(&mut *out, reason);
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b"}]}\n\n");
    }

    fn push_delta(&self, out: &mut Vec<u8>, field: &'static str, text: &str) {
        if !text.is_empty() {
            self.chunk(out, &TextDelta { field, text }, None);
        }
    }

    /// The first chunk of a function call: index, id, name and (usually empty) arguments.
    fn announce(&mut self, out: &mut Vec<u8>, key: &str, item: &Item<'_>, arguments: &str) {
        if self.calls.iter().any(|call| call.key == key) {
            return;
        }
        let index = self.calls.len();
        self.calls.push(AnnouncedCall {
            key: key.to_string(),
            index,
            arguments: arguments.to_string(),
        });
        let function = FunctionDelta {
            name: Some(item.name.as_deref().unwrap_or("")),
            arguments,
        };
        self.call_chunk(
            out,
            index,
            Some(item.call_id.as_deref().unwrap_or("")),
            function,
        );
    }

    fn arguments_delta(&mut self, out: &mut Vec<u8>, key: &str, delta: &str) {
        let Some(call) = self.calls.iter_mut().find(|call| call.key == key) else {
            // Not announced (no `output_item.added`): the finished item will carry it all.
            return;
        };
        if delta.is_empty() {
            return;
        }
        call.arguments.push_str(delta);
        let index = call.index;
        self.arguments_chunk(out, index, delta);
    }

    fn arguments_chunk(&self, out: &mut Vec<u8>, index: usize, arguments: &str) {
        let function = FunctionDelta {
            name: None,
            arguments,
        };
        self.call_chunk(out, index, None, function);
    }

    /// A chunk of call `index`: its first (with `call_id`, the type and the name) or a later
    /// one (arguments only), in the caller's style.
    fn call_chunk(
        &self,
        out: &mut Vec<u8>,
        index: usize,
        call_id: Option<&str>,
        function: FunctionDelta<'_>,
    ) {
        match self.style {
            CallStyle::Tools => {
                let call = ToolCallDelta {
                    index,
                    id: call_id,
                    kind: call_id.map(|_| "function"),
                    function,
                };
                self.chunk(out, &ToolCallsDelta { tool_calls: [call] }, None);
            }
            CallStyle::LegacyFunctions if index == 0 => {
                let delta = FunctionCallDelta {
                    function_call: function,
                };
                self.chunk(out, &delta, None);
            }
            // The legacy API has room for one call (parallel calls are switched off upstream).
            CallStyle::LegacyFunctions => {}
        }
    }

    /// Sends what the deltas of a finished item did not.
    fn item_done(&mut self, out: &mut Vec<u8>, key: &str, item: &Item<'_>) {
        match item.kind.as_deref() {
            Some("message") => {
                let rest = complete(&mut self.texts, key, &message_text(item));
                self.push_delta(out, "content", &rest);
            }
            Some("reasoning") => {
                let rest = complete(&mut self.reasonings, key, &reasoning_text(item));
                self.push_delta(out, "reasoning_content", &rest);
            }
            Some("function_call") => {
                let arguments = item.arguments.as_deref().unwrap_or("");
                match self.calls.iter_mut().find(|call| call.key == key) {
                    None => self.announce(out, key, item, arguments),
                    Some(call) => match arguments.strip_prefix(call.arguments.as_str()) {
                        Some("") => {}
                        Some(rest) => {
                            call.arguments.push_str(rest);
                            let index = call.index;
                            self.arguments_chunk(out, index, rest);
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
    }

    /// The finish chunk (and usage chunk) for `response.completed` or `response.incomplete`.
    fn finish(&mut self, out: &mut Vec<u8>, response: &ResponseView<'_>, status: Option<&str>) {
        // A backend that fills `output` on the terminal event (the public API does) may not
        // have streamed every item; sending the rest is a no-op when it did.
        for (position, item) in response.output_items().into_iter().flatten().enumerate() {
            self.item_done(out, &position.to_string(), &Item::parse(item));
        }
        let reason = finish_reason(
            status,
            response.incomplete_reason().as_deref(),
            !self.calls.is_empty(),
            self.style,
        );
        self.chunk(out, &EmptyDelta {}, Some(reason));
        if self.include_usage {
            let usage = match response.usage.and_then(chat_usage) {
                // Serialising a struct of numbers cannot fail.
                Some(usage) => serde_json::to_value(usage).unwrap_or_default(),
                None => json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}),
            };
            let chunk = json!({
                "id": self.meta.id,
                "object": "chat.completion.chunk",
                "created": self.meta.created,
                "model": self.meta.model,
                "choices": [],
                "usage": usage,
            });
            out.extend(encode_frame(None, &to_text(&chunk)));
        }
        self.finished = true;
    }
}

impl StreamTranslator for ChatStreamTranslator {
    fn on_event(&mut self, event: &SseEvent) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.append_frames(event, &mut out);
        (!out.is_empty()).then_some(out)
    }

    /// Unparseable frames are skipped, as the Codex CLI skips them. Events whose SSE name
    /// says they mean nothing to a chat client (`response.created` and the other large
    /// echoes, the `*.done` texts) are not even parsed.
    fn append_frames(&mut self, event: &SseEvent, out: &mut Vec<u8>) {
        if event
            .event
            .as_deref()
            .is_some_and(|name| !TRANSLATED.contains(&name))
        {
            return;
        }
        match ChatEvent::parse(&event.data) {
            Some(parsed) => self.translate(&parsed, out),
            None => self.skipped_frames += 1,
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

/// The event's `response`, read as a Response object (no fields when it is missing or not an
/// object).
fn response_of<'a>(event: &ChatEvent<'a>) -> ResponseView<'a> {
    ResponseView::parse(event.response.map_or(CheckedJson::NULL, CheckedJson::of))
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
