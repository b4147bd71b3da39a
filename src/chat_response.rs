//! The final Responses object → one `chat.completion`. Pure.
//!
//! The rules shared with the stream translator live here too, so a streamed answer and an
//! aggregated one say the same thing: message items are joined with a blank line, reasoning
//! summaries (`reasoning_content`) likewise, `finish_reason` comes from the response status and
//! the presence of calls, and usage is renamed to chat's fields.
//!
//! The Response object and its items are read as text ([`crate::response_view`]) and the
//! answer is serialised from structs that borrow from it: no tree is built on the way.

use std::borrow::Cow;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use crate::chat_request::CallStyle;
use crate::checked_json::CheckedJson;
use crate::response_view::{Item, Part, ResponseView, member};

/// What every chat answer of one request carries: id, creation time, model.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionMeta {
    /// `chatcmpl-…`, the same on every chunk of a stream.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// The model as the caller named it.
    pub model: String,
}

impl CompletionMeta {
    /// A fresh id and the current time, for `model`.
    pub fn new(model: &str) -> Self {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let hex = crate::ids::hex(&crate::ids::random_bytes::<12>());
        CompletionMeta {
            id: format!("chatcmpl-{hex}"),
            created,
            model: model.to_string(),
        }
    }
}

/// What separates two message items' texts, and two reasoning summaries.
pub const SEPARATOR: &str = "\n\n";

/// A `chat.completion`, written straight to JSON text: its texts are borrowed from the
/// Response object or joined once, never built as a tree.
#[derive(Debug, Serialize)]
pub struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<ChatUsage>,
}

/// The single choice of a [`Completion`].
#[derive(Debug, Serialize)]
struct Choice<'a> {
    index: u32,
    message: Message<'a>,
    finish_reason: &'static str,
    /// Always `null`: the backend gives no log probabilities.
    logprobs: Option<()>,
}

/// The assistant message of a [`Completion`].
#[derive(Debug, Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Option<String>,
    refusal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<ToolCall<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_call: Option<Function<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    annotations: Vec<Citation<'a>>,
}

/// A chat tool call.
#[derive(Debug, Serialize)]
pub struct ToolCall<'a> {
    id: Cow<'a, str>,
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function<'a>,
}

/// A function call's name and arguments (JSON text), as chat shows them.
#[derive(Debug, Serialize)]
pub struct Function<'a> {
    name: Cow<'a, str>,
    arguments: Cow<'a, str>,
}

/// A `url_citation` annotation.
#[derive(Debug, Serialize)]
struct Citation<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    url_citation: UrlCitation<'a>,
}

/// Where a citation sits in the joined content, and what it cites (as sent; `""` when
/// missing).
#[derive(Debug, Serialize)]
struct UrlCitation<'a> {
    start_index: u64,
    end_index: u64,
    #[serde(serialize_with = "as_sent_or_empty")]
    url: Option<&'a RawValue>,
    #[serde(serialize_with = "as_sent_or_empty")]
    title: Option<&'a RawValue>,
}

/// A value as the backend sent it, or `""` when it sent none.
fn as_sent_or_empty<S: Serializer>(
    value: &Option<&RawValue>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(raw) => raw.serialize(serializer),
        None => serializer.serialize_str(""),
    }
}

/// Chat's usage object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptTokensDetails,
    completion_tokens_details: CompletionTokensDetails,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct PromptTokensDetails {
    cached_tokens: u64,
}

/// `usage.completion_tokens_details`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct CompletionTokensDetails {
    reasoning_tokens: u64,
}

/// The final Response object of a non-streaming answer, and the items the stream finished.
#[derive(Debug, Clone, PartialEq)]
pub struct FinalResponse {
    /// The Response object's JSON text, as the backend sent it.
    pub response: String,
    /// The finished items' JSON texts, in output order: the answer's items when the Response
    /// object's own `output` is missing, `null` or empty (as the Codex backend sends it).
    pub items: Vec<String>,
}

impl FinalResponse {
    /// The output items: the Response object's `output` when it has some, else the items the
    /// stream finished. An `output` that is neither an array nor `null` has no items.
    fn output_items<'a>(&'a self, view: &ResponseView<'a>) -> Vec<CheckedJson<'a>> {
        if !self.response.trim_start().starts_with('{') {
            // Not an object: nothing to fill, and no output of its own.
            return Vec::new();
        }
        // The items are `RawValue`s' texts (see `ResponsesTranscript::into_response`).
        let streamed = || {
            self.items
                .iter()
                .map(|item| CheckedJson::known(item))
                .collect()
        };
        match view.output {
            None => streamed(),
            Some(output) if output.is_null() => streamed(),
            Some(output) => match output.elements() {
                Some(sent) => {
                    let sent: Vec<CheckedJson<'a>> = sent.collect();
                    if sent.is_empty() { streamed() } else { sent }
                }
                None => Vec::new(),
            },
        }
    }
}

/// The `chat.completion` for a completed or incomplete Response object.
pub fn completion<'a>(
    answer: &'a FinalResponse,
    meta: &'a CompletionMeta,
    style: CallStyle,
) -> Completion<'a> {
    // The response is a `RawValue`'s text, or one spliced from them (`into_response`).
    let response = ResponseView::parse(CheckedJson::known(&answer.response));
    let mut text = String::new();
    let mut refusal = String::new();
    let mut annotations = Vec::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for item in answer.output_items(&response) {
        let item = Item::parse(item);
        match item.kind.as_deref() {
            Some("message") => {
                let parts = item.parts();
                let item_text = joined_text(&parts);
                if !item_text.is_empty() {
                    if !text.is_empty() {
                        text.push_str(SEPARATOR);
                    }
                    citations(&parts, text.chars().count(), &mut annotations);
                    text.push_str(&item_text);
                }
                for part in parts.iter().filter(|part| part.is("refusal")) {
                    refusal.push_str(part.refusal.as_deref().unwrap_or(""));
                }
            }
            Some("reasoning") => {
                let summary = reasoning_text(&item);
                if !summary.is_empty() {
                    if !reasoning.is_empty() {
                        reasoning.push_str(SEPARATOR);
                    }
                    reasoning.push_str(&summary);
                }
            }
            Some("function_call") => calls.push(item),
            _ => {}
        }
    }

    let has_calls = !calls.is_empty();
    let (tool_calls, function_call) = match style {
        CallStyle::Tools if has_calls => (Some(calls.into_iter().map(tool_call).collect()), None),
        CallStyle::Tools => (None, None),
        CallStyle::LegacyFunctions => (
            None,
            calls.into_iter().next().map(|c| tool_call(c).function),
        ),
    };
    let message = Message {
        role: "assistant",
        content: (!text.is_empty() || !has_calls).then_some(text),
        refusal: (!refusal.is_empty()).then_some(refusal),
        tool_calls,
        function_call,
        reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
        annotations,
    };
    let reason = response.incomplete_reason();
    Completion {
        id: &meta.id,
        object: "chat.completion",
        created: meta.created,
        model: &meta.model,
        choices: [Choice {
            index: 0,
            message,
            finish_reason: finish_reason(
                response.status.as_deref(),
                reason.as_deref(),
                has_calls,
                style,
            ),
            logprobs: None,
        }],
        usage: response.usage.and_then(chat_usage),
    }
}

/// The text of a message item's `output_text` parts.
pub fn message_text(item: &Item<'_>) -> String {
    joined_text(&item.parts())
}

/// The `text` of the `output_text` parts, joined without a separator.
fn joined_text(parts: &[Part<'_>]) -> String {
    parts
        .iter()
        .filter(|part| part.is("output_text"))
        .filter_map(|part| part.text.as_deref())
        .collect()
}

/// A reasoning item's summary parts, joined with a blank line.
pub fn reasoning_text(item: &Item<'_>) -> String {
    let summaries: Vec<Cow<'_, str>> = item
        .summary_texts()
        .into_iter()
        .filter(|text| !text.is_empty())
        .collect();
    summaries.join(SEPARATOR)
}

/// A `function_call` item as a chat tool call.
pub fn tool_call(item: Item<'_>) -> ToolCall<'_> {
    ToolCall {
        id: item.call_id.unwrap_or_default(),
        kind: "function",
        function: Function {
            name: item.name.unwrap_or_default(),
            arguments: item.arguments.unwrap_or_default(),
        },
    }
}

/// Appends the `url_citation` annotations of a message's parts to `out`, with indexes moved
/// by `offset` characters (the text of earlier items in the joined content).
fn citations<'a>(parts: &[Part<'a>], offset: usize, out: &mut Vec<Citation<'a>>) {
    let mut offset = offset;
    for part in parts.iter().filter(|part| part.is("output_text")) {
        for annotation in part.annotations() {
            if annotation.kind.as_deref() != Some("url_citation") {
                continue;
            }
            let index = |at: Option<u64>| at.map_or(0, |i| i.saturating_add(offset as u64));
            out.push(Citation {
                kind: "url_citation",
                url_citation: UrlCitation {
                    start_index: index(annotation.start_index),
                    end_index: index(annotation.end_index),
                    url: annotation.url.and_then(CheckedJson::to_raw),
                    title: annotation.title.and_then(CheckedJson::to_raw),
                },
            });
        }
        offset += part.text.as_deref().map_or(0, |t| t.chars().count());
    }
}

/// The chat `finish_reason`: an incomplete response says why it stopped (`length` for
/// `max_output_tokens` and anything unknown, `content_filter`); otherwise calls mean
/// `tool_calls` (`function_call` in the legacy style) and anything else `stop`.
pub fn finish_reason(
    status: Option<&str>,
    incomplete_reason: Option<&str>,
    has_calls: bool,
    style: CallStyle,
) -> &'static str {
    match (status, incomplete_reason) {
        (_, Some("content_filter")) => "content_filter",
        (Some("incomplete"), _) | (_, Some(_)) => "length",
        _ if has_calls => match style {
            CallStyle::Tools => "tool_calls",
            CallStyle::LegacyFunctions => "function_call",
        },
        _ => "stop",
    }
}

/// Responses usage (as sent) → chat usage; `None` when it is not an object.
pub fn chat_usage(usage: CheckedJson<'_>) -> Option<ChatUsage> {
    let names = [
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "input_tokens_details",
        "output_tokens_details",
    ];
    let [input, output, total, input_details, output_details] = usage.fields(&names)?;
    let as_u64 = |value: Option<CheckedJson<'_>>| value.and_then(CheckedJson::as_u64);
    let detail = |details, key| as_u64(member(details, key)).unwrap_or(0);
    let prompt = as_u64(input).unwrap_or(0);
    let completion = as_u64(output).unwrap_or(0);
    Some(ChatUsage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: as_u64(total).unwrap_or_else(|| prompt.saturating_add(completion)),
        prompt_tokens_details: PromptTokensDetails {
            cached_tokens: detail(input_details, "cached_tokens"),
        },
        completion_tokens_details: CompletionTokensDetails {
            reasoning_tokens: detail(output_details, "reasoning_tokens"),
        },
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn meta() -> CompletionMeta {
        CompletionMeta {
            id: "chatcmpl-test".into(),
            created: 1_700_000_000,
            model: "gpt-5.5-high".into(),
        }
    }

    /// The answer as a client reads it.
    fn answer(response: &Value, style: CallStyle) -> Value {
        let meta = meta();
        let response = FinalResponse {
            response: response.to_string(),
            items: Vec::new(),
        };
        serde_json::to_value(completion(&response, &meta, style)).expect("serialises")
    }

    fn message(text: &str, annotations: Value) -> Value {
        json!({"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": text, "annotations": annotations}]})
    }

    fn usage() -> Value {
        json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4},
               "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 3},
               "total_tokens": 17})
    }

    #[test]
    fn text_reasoning_and_usage() {
        let response = json!({"id": "resp_1", "status": "completed", "usage": usage(), "output": [
            {"type": "reasoning", "id": "rs_1", "summary": [
                {"type": "summary_text", "text": "First."}, {"type": "summary_text", "text": "Second."}],
             "encrypted_content": "gAAAA"},
            message("Forty-two.", json!([])),
        ]});
        let completion = answer(&response, CallStyle::Tools);
        assert_eq!(completion["object"], "chat.completion");
        assert_eq!(completion["id"], "chatcmpl-test");
        assert_eq!(completion["model"], "gpt-5.5-high");
        let choice = &completion["choices"][0];
        assert_eq!(choice["index"], 0);
        assert_eq!(choice["finish_reason"], "stop");
        assert!(choice["logprobs"].is_null());
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(choice["message"]["content"], "Forty-two.");
        assert_eq!(choice["message"]["reasoning_content"], "First.\n\nSecond.");
        assert!(choice["message"].get("tool_calls").is_none());
        assert_eq!(
            completion["usage"],
            json!({"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17,
                   "prompt_tokens_details": {"cached_tokens": 4},
                   "completion_tokens_details": {"reasoning_tokens": 3}})
        );
    }

    #[test]
    fn parallel_calls_without_text_have_null_content() {
        let call = |id: &str, name: &str, args: &str| {
            json!({"type": "function_call", "id": format!("fc_{id}"), "call_id": id,
                   "name": name, "arguments": args, "status": "completed"})
        };
        let response = json!({"status": "completed", "output": [
            call("call_a", "get_weather", "{\"city\":\"Paris\"}"),
            call("call_b", "get_time", "{}"),
        ]});
        let completion = answer(&response, CallStyle::Tools);
        let choice = &completion["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert!(choice["message"]["content"].is_null());
        assert_eq!(
            choice["message"]["tool_calls"],
            json!([
                {"id": "call_a", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
            ])
        );
        assert!(completion.get("usage").is_none(), "no usage invented");

        let legacy = answer(&response, CallStyle::LegacyFunctions);
        let choice = &legacy["choices"][0];
        assert_eq!(choice["finish_reason"], "function_call");
        assert_eq!(choice["message"]["function_call"]["name"], "get_weather");
        assert!(choice["message"].get("tool_calls").is_none());
    }

    #[test]
    fn messages_join_and_citations_shift_with_them() {
        let citation = json!([{"type": "url_citation", "url": "https://example.com", "title": "Ex",
                               "start_index": 0, "end_index": 4}]);
        let response = json!({"status": "completed", "output": [
            message("Intro", json!([])),
            {"type": "web_search_call", "id": "ws_1", "status": "completed",
             "action": {"type": "search", "query": "q"}},
            message("Body", citation),
        ]});
        let completion = answer(&response, CallStyle::Tools);
        let message = &completion["choices"][0]["message"];
        assert_eq!(message["content"], "Intro\n\nBody");
        assert_eq!(
            message["annotations"],
            json!([{"type": "url_citation", "url_citation": {
                "start_index": 7, "end_index": 11, "url": "https://example.com", "title": "Ex"}}])
        );
    }

    #[test]
    fn incomplete_maps_to_length_or_content_filter() {
        for (reason, expected) in [
            ("max_output_tokens", "length"),
            ("content_filter", "content_filter"),
            ("something_new", "length"),
        ] {
            let response = json!({"status": "incomplete", "incomplete_details": {"reason": reason},
                                  "output": [message("partial", json!([]))]});
            let completion = answer(&response, CallStyle::Tools);
            assert_eq!(completion["choices"][0]["finish_reason"], expected);
            assert_eq!(completion["choices"][0]["message"]["content"], "partial");
        }
    }

    #[test]
    fn empty_output_is_an_empty_string_and_refusals_are_kept() {
        let response = json!({"status": "completed", "output": [
            {"type": "message", "role": "assistant",
             "content": [{"type": "refusal", "refusal": "I can't help with that."}]}]});
        let completion = answer(&response, CallStyle::Tools);
        let message = &completion["choices"][0]["message"];
        assert_eq!(message["content"], "");
        assert_eq!(message["refusal"], "I can't help with that.");
    }

    /// The answer's content for a response text and the items the stream finished.
    fn content_of(response: &str, items: &[Value]) -> Value {
        let answer = FinalResponse {
            response: response.to_string(),
            items: items.iter().map(Value::to_string).collect(),
        };
        let meta = meta();
        let answer = serde_json::to_value(completion(&answer, &meta, CallStyle::Tools));
        answer.expect("serialises")["choices"][0]["message"]["content"].clone()
    }

    #[test]
    fn streamed_items_count_when_the_response_has_no_output_of_its_own() {
        let streamed = [message("Streamed.", json!([]))];
        for response in [
            r#"{"status":"completed"}"#,
            r#"{"status":"completed","output":null}"#,
            r#"{"status":"completed","output":[]}"#,
        ] {
            assert_eq!(content_of(response, &streamed), "Streamed.", "{response}");
        }
        let own = json!({"status": "completed", "output": [message("Own.", json!([]))]});
        assert_eq!(content_of(&own.to_string(), &streamed), "Own.");
        for response in [
            r#"{"output":{"a":1}}"#,
            r#"{"output":"text"}"#,
            "null",
            "[1]",
        ] {
            assert_eq!(content_of(response, &streamed), "", "{response}: no items");
        }
    }

    #[test]
    fn escapes_odd_types_and_repeated_keys_read_as_a_value_reader_reads_them() {
        let response = json!({"status": "completed", "output": [
            {"type": "message", "content": [
                {"type": "output_text", "text": "line\nbreak \"q\" é \u{1F600}"},
                {"type": "output_text", "text": 5},
                "not a part",
                {"type": "output_text", "text": "!", "annotations": [
                    {"type": "url_citation", "start_index": 0, "end_index": 1,
                     "title": {"odd": true}},
                ]},
            ]},
            7,
            {"type": "reasoning", "summary": {"text": "not an array"}},
        ]});
        let answer = answer(&response, CallStyle::Tools);
        let message = &answer["choices"][0]["message"];
        assert_eq!(message["content"], "line\nbreak \"q\" é \u{1F600}!");
        assert!(message.get("reasoning_content").is_none());
        let citation = &message["annotations"][0]["url_citation"];
        assert_eq!(citation["url"], "", "a missing url becomes an empty string");
        assert_eq!(citation["title"], json!({"odd": true}), "passed as sent");
        let before = "line\nbreak \"q\" é \u{1F600}".chars().count();
        assert_eq!(
            citation["start_index"], before,
            "offset by the characters before it"
        );

        let repeated = r#"{"status":"incomplete","status":"completed","output":[
            {"type":"function_call","type":"message","content":[{"type":"output_text","text":"last"}]}]}"#;
        let answer = FinalResponse {
            response: repeated.to_string(),
            items: Vec::new(),
        };
        let meta = meta();
        let answer =
            serde_json::to_value(completion(&answer, &meta, CallStyle::Tools)).expect("json");
        assert_eq!(answer["choices"][0]["message"]["content"], "last");
        assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    }
}
