//! What the fake Codex backend (`fake_codex.rs`) answers: the reply each `Script` gives, the SSE frames
//! of one response in the real backend's order and with every field it sends (so strict clients such as
//! the OpenAI SDKs can parse them), the models catalogue and the rate-limit headers. Pure: no sockets.
//!
//! Shapes follow `shared/upstream-contract.md` §5 and §8 and the public Responses streaming schemas.
//! Like the Codex backend (and unlike the public API), `response.completed` carries `output: []`: the
//! items only ever appear in `response.output_item.done`.
//!
//! Every completion text a stream carries (message text, reasoning summary, function-call arguments,
//! web search query, and each of their deltas) is registered in `secrets.rs` as it is built.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{Value, json};

use super::{RecordedRequest, Script};
use crate::secrets;

/// How many delta events a script that names no count splits its text into.
pub const DEFAULT_DELTAS: usize = 3;

/// One step of a scripted reply body.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// One SSE frame: `event: <data.type>` then `data: <json>`.
    Event(Value),
    /// Bytes written exactly as given (raw SSE text for odd cases).
    Raw(String),
    /// A pause before the next step; cut short when the fake shuts down.
    Pause(Duration),
}

/// What the fake sends back for one request; `fake_codex.rs` writes it to the socket.
pub enum Reply {
    /// A body with `Content-Length`.
    Sized {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// A chunked body, one flushed chunk per step.
    Stream {
        status: u16,
        headers: Vec<(String, String)>,
        steps: Vec<Step>,
    },
}

impl Reply {
    /// A JSON body with this status.
    pub fn json(status: u16, body: &Value) -> Reply {
        Reply::Sized {
            status,
            headers: vec![
                ("content-type".to_owned(), "application/json".to_owned()),
                ("x-request-id".to_owned(), random_hex(16)),
            ],
            body: body.to_string().into_bytes(),
        }
    }

    /// The backend's error shape, `{"detail": …}`.
    pub fn detail(status: u16, detail: &str) -> Reply {
        Reply::json(status, &json!({"detail": detail}))
    }

    /// A 200 SSE stream with the backend's headers.
    pub fn sse(steps: Vec<Step>) -> Reply {
        let mut headers = vec![
            (
                "content-type".to_owned(),
                "text/event-stream; charset=utf-8".to_owned(),
            ),
            ("cache-control".to_owned(), "no-cache".to_owned()),
            ("x-request-id".to_owned(), random_hex(16)),
        ];
        headers.extend(rate_limit_headers(12.5, 3600));
        Reply::Stream {
            status: 200,
            headers,
            steps,
        }
    }
}

/// The reply `script` gives to a valid `POST /responses`.
pub fn script_reply(script: Script, request: &RecordedRequest) -> Reply {
    let start = || ResponseStream::start(&request.body, request.raw_body.len());
    let steps = match script {
        Script::Text { text, deltas } => {
            let mut stream = start();
            stream.message(&text, deltas, Duration::ZERO, &[], "completed");
            stream.completed()
        }
        Script::ReasoningThenText { summary, text } => {
            let mut stream = start();
            stream.reasoning(&summary);
            stream.message(&text, DEFAULT_DELTAS, Duration::ZERO, &[], "completed");
            stream.completed()
        }
        Script::FunctionCall {
            call_id,
            name,
            arguments,
        } => {
            let mut stream = start();
            stream.function_call(&call_id, &name, &arguments);
            stream.completed()
        }
        Script::WebSearch { query, text } => {
            let mut stream = start();
            stream.web_search(&query);
            let citation = json!({
                "type": "url_citation",
                "url": "https://example.com/fake-search-result",
                "title": format!("Fake result for {query}"),
                "start_index": 0,
                "end_index": text.chars().count(),
            });
            stream.message(
                &text,
                DEFAULT_DELTAS,
                Duration::ZERO,
                &[citation],
                "completed",
            );
            stream.completed()
        }
        Script::Failed { code, message } => start().failed(&code, &message),
        Script::Incomplete { reason, text } => {
            let mut stream = start();
            stream.message(&text, DEFAULT_DELTAS, Duration::ZERO, &[], "incomplete");
            stream.incomplete(&reason)
        }
        Script::EofWithoutCompletion { text } => {
            let mut stream = start();
            stream.message(&text, DEFAULT_DELTAS, Duration::ZERO, &[], "completed");
            stream.without_completion()
        }
        Script::Slow {
            text,
            deltas,
            delay_ms,
        } => {
            let mut stream = start();
            stream.message(
                &text,
                deltas,
                Duration::from_millis(delay_ms),
                &[],
                "completed",
            );
            stream.completed()
        }
        Script::HttpError {
            status,
            content_type,
            body,
            headers,
        } => {
            let mut all_headers = vec![
                ("content-type".to_owned(), content_type),
                ("x-request-id".to_owned(), random_hex(16)),
            ];
            all_headers.extend(headers);
            return Reply::Sized {
                status,
                headers: all_headers,
                body: body.into_bytes(),
            };
        }
        Script::Raw {
            status,
            headers,
            body,
        } => {
            return Reply::Stream {
                status,
                headers,
                steps: vec![Step::Raw(body)],
            };
        }
    };
    Reply::sse(steps)
}

/// `GET /models`: a small catalogue in the backend's `{"models": [ModelInfo…]}` shape (contract §7).
pub fn models_reply() -> Reply {
    let model = |slug: &str, display_name: &str, efforts: &[&str], priority: u32| {
        json!({
            "slug": slug,
            "display_name": display_name,
            "description": format!("{display_name} (fake)"),
            "default_reasoning_level": "medium",
            "supported_reasoning_levels": efforts
                .iter()
                .map(|effort| json!({"effort": effort, "description": format!("{effort} effort")}))
                .collect::<Vec<_>>(),
            "shell_type": "shell_command",
            "visibility": "list",
            "minimal_client_version": "0.1.0",
            "supported_in_api": true,
            "priority": priority,
            "upgrade": null,
            "base_instructions": format!("You are Codex, a coding agent based on {display_name}."),
            "supports_reasoning_summaries": true,
            "support_verbosity": true,
            "default_verbosity": "medium",
            "apply_patch_tool_type": "freeform",
            "truncation_policy": {"mode": "tokens", "limit": 10000},
            "supports_parallel_tool_calls": true,
            "context_window": 272_000,
            "input_modalities": ["text", "image"],
            "reasoning_summary_format": "none",
        })
    };
    let body = json!({"models": [
        model("gpt-5.5", "GPT-5.5", &["low", "medium", "high", "xhigh"], 1),
        model("gpt-5.4-mini", "GPT-5.4 mini", &["low", "medium", "high"], 2),
        model("gpt-5.2-codex", "GPT-5.2 Codex", &["low", "medium", "high", "xhigh"], 3),
    ]});
    let mut reply = Reply::json(200, &body);
    if let Reply::Sized { headers, .. } = &mut reply {
        headers.push(("etag".to_owned(), "\"fake-models-1\"".to_owned()));
    }
    reply
}

/// The `x-codex-*` rate-limit headers (contract §6.2) with the primary window `primary_used_percent`
/// full and resetting in `primary_reset_after_seconds`.
pub fn rate_limit_headers(
    primary_used_percent: f64,
    primary_reset_after_seconds: u64,
) -> Vec<(String, String)> {
    let now = now_unix();
    let secondary_reset_after_seconds = 5 * 24 * 3600;
    [
        (
            "x-codex-primary-used-percent",
            format!("{primary_used_percent:.1}"),
        ),
        ("x-codex-primary-window-minutes", "300".to_owned()),
        (
            "x-codex-primary-reset-at",
            (now + primary_reset_after_seconds).to_string(),
        ),
        (
            "x-codex-primary-reset-after-seconds",
            primary_reset_after_seconds.to_string(),
        ),
        ("x-codex-secondary-used-percent", "40.0".to_owned()),
        ("x-codex-secondary-window-minutes", "10080".to_owned()),
        (
            "x-codex-secondary-reset-at",
            (now + secondary_reset_after_seconds).to_string(),
        ),
        (
            "x-codex-secondary-reset-after-seconds",
            secondary_reset_after_seconds.to_string(),
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// The events of one response under construction: numbers every event, hands out output indexes and
/// counts tokens for the final usage.
pub struct ResponseStream {
    steps: Vec<Step>,
    sequence_number: u64,
    next_output_index: u64,
    response: Value,
    include_encrypted_reasoning: bool,
    input_tokens: u64,
    output_tokens: u64,
    reasoning_tokens: u64,
}

impl ResponseStream {
    /// Opens a response to `request` (its parsed body, `request_bytes` long) with `response.created` and
    /// `response.in_progress`.
    pub fn start(request: &Value, request_bytes: usize) -> ResponseStream {
        let include_encrypted_reasoning = request
            .get("include")
            .and_then(Value::as_array)
            .is_some_and(|include| include.iter().any(|v| v == "reasoning.encrypted_content"));
        let mut stream = ResponseStream {
            steps: Vec::new(),
            sequence_number: 0,
            next_output_index: 0,
            response: response_object(request),
            include_encrypted_reasoning,
            input_tokens: estimate_tokens_of_len(request_bytes),
            output_tokens: 0,
            reasoning_tokens: 0,
        };
        let response = stream.response.clone();
        stream.event(json!({"type": "response.created", "response": response}));
        stream.event(json!({"type": "response.in_progress", "response": response}));
        stream
    }

    /// A reasoning item whose summary (one part, unless empty) streams in [`DEFAULT_DELTAS`] deltas.
    /// `encrypted_content` is set only when the request asked for `reasoning.encrypted_content`.
    pub fn reasoning(&mut self, summary: &str) {
        let output_index = self.output_index();
        let item_id = new_id("rs");
        self.event(json!({
            "type": "response.output_item.added",
            "output_index": output_index,
            "item": {"id": item_id, "type": "reasoning", "status": "in_progress", "summary": []},
        }));
        secrets::register_completion(summary, &split_even(summary, DEFAULT_DELTAS));
        let mut parts = Vec::new();
        if !summary.is_empty() {
            let ids = json!({"item_id": item_id, "output_index": output_index, "summary_index": 0});
            self.event(with(
                &ids,
                json!({
                    "type": "response.reasoning_summary_part.added",
                    "part": {"type": "summary_text", "text": ""},
                }),
            ));
            for delta in split_even(summary, DEFAULT_DELTAS) {
                self.event(with(
                    &ids,
                    json!({"type": "response.reasoning_summary_text.delta", "delta": delta}),
                ));
            }
            self.event(with(
                &ids,
                json!({"type": "response.reasoning_summary_text.done", "text": summary}),
            ));
            let part = json!({"type": "summary_text", "text": summary});
            self.event(with(
                &ids,
                json!({"type": "response.reasoning_summary_part.done", "part": part}),
            ));
            parts.push(part);
        }
        let encrypted_content = if self.include_encrypted_reasoning {
            json!(encrypted_content())
        } else {
            Value::Null
        };
        self.event(json!({
            "type": "response.output_item.done",
            "output_index": output_index,
            "item": {
                "id": item_id,
                "type": "reasoning",
                "status": "completed",
                "summary": parts,
                "encrypted_content": encrypted_content,
            },
        }));
        self.reasoning_tokens += estimate_tokens(summary) + 16;
    }

    /// An assistant message with one `output_text` part streamed in `deltas` deltas (fewer when the text
    /// has fewer characters), each preceded by `pause` unless it is zero. The finished item has
    /// `item_status` (`completed`, or `incomplete` for a cut-off answer).
    pub fn message(
        &mut self,
        text: &str,
        deltas: usize,
        pause: Duration,
        annotations: &[Value],
        item_status: &str,
    ) {
        secrets::register_completion(text, &split_even(text, deltas));
        let output_index = self.output_index();
        let item_id = new_id("msg");
        self.event(json!({
            "type": "response.output_item.added",
            "output_index": output_index,
            "item": {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []},
        }));
        let ids = json!({"item_id": item_id, "output_index": output_index, "content_index": 0});
        self.event(with(
            &ids,
            json!({"type": "response.content_part.added", "part": output_text_part("", &[])}),
        ));
        for delta in split_even(text, deltas) {
            if !pause.is_zero() {
                self.steps.push(Step::Pause(pause));
            }
            self.event(with(
                &ids,
                json!({"type": "response.output_text.delta", "delta": delta, "logprobs": []}),
            ));
        }
        for (annotation_index, annotation) in annotations.iter().enumerate() {
            self.event(with(
                &ids,
                json!({
                    "type": "response.output_text.annotation.added",
                    "annotation_index": annotation_index,
                    "annotation": annotation,
                }),
            ));
        }
        self.event(with(
            &ids,
            json!({"type": "response.output_text.done", "text": text, "logprobs": []}),
        ));
        let part = output_text_part(text, annotations);
        self.event(with(
            &ids,
            json!({"type": "response.content_part.done", "part": part}),
        ));
        self.event(json!({
            "type": "response.output_item.done",
            "output_index": output_index,
            "item": {"id": item_id, "type": "message", "status": item_status, "role": "assistant", "content": [part]},
        }));
        self.output_tokens += estimate_tokens(text);
    }

    /// A function call whose arguments stream in [`DEFAULT_DELTAS`] deltas.
    pub fn function_call(&mut self, call_id: &str, name: &str, arguments: &str) {
        secrets::register_completion(arguments, &split_even(arguments, DEFAULT_DELTAS));
        let output_index = self.output_index();
        let item_id = new_id("fc");
        let item = |status: &str, arguments: &str| {
            json!({
                "id": item_id,
                "type": "function_call",
                "status": status,
                "call_id": call_id,
                "name": name,
                "arguments": arguments,
            })
        };
        self.event(json!({
            "type": "response.output_item.added",
            "output_index": output_index,
            "item": item("in_progress", ""),
        }));
        let ids = json!({"item_id": item_id, "output_index": output_index});
        for delta in split_even(arguments, DEFAULT_DELTAS) {
            self.event(with(
                &ids,
                json!({"type": "response.function_call_arguments.delta", "delta": delta}),
            ));
        }
        self.event(with(
            &ids,
            json!({
                "type": "response.function_call_arguments.done",
                "name": name,
                "arguments": arguments,
            }),
        ));
        self.event(json!({
            "type": "response.output_item.done",
            "output_index": output_index,
            "item": item("completed", arguments),
        }));
        self.output_tokens += estimate_tokens(arguments);
    }

    /// A hosted web search call: added, in_progress, searching, completed, done.
    pub fn web_search(&mut self, query: &str) {
        secrets::register_completion(query, &[]);
        let output_index = self.output_index();
        let item_id = new_id("ws");
        let item = |status: &str| {
            json!({
                "id": item_id,
                "type": "web_search_call",
                "status": status,
                "action": {"type": "search", "query": query},
            })
        };
        self.event(json!({
            "type": "response.output_item.added",
            "output_index": output_index,
            "item": item("in_progress"),
        }));
        let ids = json!({"item_id": item_id, "output_index": output_index});
        for phase in ["in_progress", "searching", "completed"] {
            self.event(with(
                &ids,
                json!({"type": format!("response.web_search_call.{phase}")}),
            ));
        }
        self.event(json!({
            "type": "response.output_item.done",
            "output_index": output_index,
            "item": item("completed"),
        }));
    }

    /// Ends with `response.completed`: status `completed`, `output: []` (as the Codex backend does) and
    /// usage.
    pub fn completed(mut self) -> Vec<Step> {
        let usage = self.usage();
        self.finish(
            "response.completed",
            json!({"status": "completed", "completed_at": now_unix(), "usage": usage}),
        )
    }

    /// Ends with `response.failed` carrying `error {code, message}`.
    pub fn failed(self, code: &str, message: &str) -> Vec<Step> {
        self.finish(
            "response.failed",
            json!({"status": "failed", "error": {"code": code, "message": message}}),
        )
    }

    /// Ends with `response.incomplete` carrying `incomplete_details {reason}` and usage.
    pub fn incomplete(mut self, reason: &str) -> Vec<Step> {
        let usage = self.usage();
        self.finish(
            "response.incomplete",
            json!({"status": "incomplete", "incomplete_details": {"reason": reason}, "usage": usage}),
        )
    }

    /// Ends with no terminal event at all: the stream just stops (a clean end of the HTTP body).
    pub fn without_completion(self) -> Vec<Step> {
        self.steps
    }

    fn finish(mut self, event_type: &str, changes: Value) -> Vec<Step> {
        let mut response = self.response.clone();
        merge(&mut response, &changes);
        self.event(json!({"type": event_type, "response": response}));
        self.steps
    }

    fn usage(&mut self) -> Value {
        let output_tokens = self.output_tokens + self.reasoning_tokens;
        json!({
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.input_tokens + output_tokens,
        })
    }

    fn output_index(&mut self) -> u64 {
        let index = self.next_output_index;
        self.next_output_index += 1;
        index
    }

    fn event(&mut self, mut event: Value) {
        if let Some(fields) = event.as_object_mut() {
            fields.insert("sequence_number".to_owned(), json!(self.sequence_number));
        }
        self.sequence_number += 1;
        self.steps.push(Step::Event(event));
    }
}

/// The Response object of `response.created`/`in_progress`, echoing what the request asked for and
/// filling the rest with the values the backend reports.
fn response_object(request: &Value) -> Value {
    let echo = |name: &str, default: Value| {
        request
            .get(name)
            .filter(|value| !value.is_null())
            .cloned()
            .unwrap_or(default)
    };
    let reasoning = match request.get("reasoning") {
        Some(asked @ Value::Object(_)) => {
            let mut reasoning = json!({"effort": null, "summary": null});
            merge(&mut reasoning, asked);
            reasoning
        }
        _ => Value::Null,
    };
    let mut text = json!({"format": {"type": "text"}, "verbosity": "medium"});
    if let Some(asked @ Value::Object(_)) = request.get("text") {
        merge(&mut text, asked);
    }
    json!({
        "id": new_id("resp"),
        "object": "response",
        "created_at": now_unix(),
        "status": "in_progress",
        "background": false,
        "error": null,
        "incomplete_details": null,
        "instructions": echo("instructions", Value::Null),
        "max_output_tokens": null,
        "max_tool_calls": null,
        "model": echo("model", json!("gpt-5.5")),
        "output": [],
        "parallel_tool_calls": echo("parallel_tool_calls", json!(true)),
        "previous_response_id": null,
        "prompt_cache_key": echo("prompt_cache_key", Value::Null),
        "reasoning": reasoning,
        "safety_identifier": null,
        "service_tier": echo("service_tier", json!("auto")),
        "store": false,
        "temperature": 1.0,
        "text": text,
        "tool_choice": echo("tool_choice", json!("auto")),
        "tools": echo("tools", json!([])),
        "top_logprobs": 0,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": null,
        "metadata": {},
    })
}

fn output_text_part(text: &str, annotations: &[Value]) -> Value {
    json!({"type": "output_text", "text": text, "annotations": annotations, "logprobs": []})
}

/// `base`'s fields followed by `event`'s (the ids every event of one item repeats).
fn with(base: &Value, event: Value) -> Value {
    let mut merged = base.clone();
    merge(&mut merged, &event);
    merged
}

/// Copies every top-level field of `changes` into `target` (both objects).
fn merge(target: &mut Value, changes: &Value) {
    if let (Some(target), Some(changes)) = (target.as_object_mut(), changes.as_object()) {
        for (key, value) in changes {
            target.insert(key.clone(), value.clone());
        }
    }
}

/// Splits `text` into `parts` pieces of nearly equal character counts, never splitting a character;
/// at most one piece per character, and always at least one piece.
pub fn split_even(text: &str, parts: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let parts = parts.clamp(1, chars.len().max(1));
    (0..parts)
        .map(|i| {
            chars[i * chars.len() / parts..(i + 1) * chars.len() / parts]
                .iter()
                .collect()
        })
        .collect()
}

/// A new id such as `resp_<48 hex>`, the shape the backend uses for `resp_`, `msg_`, `rs_`, `fc_`, `ws_`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_hex(24))
}

/// `count` random bytes as lowercase hex.
pub fn random_hex(count: usize) -> String {
    random_bytes(count)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn random_bytes(count: usize) -> Vec<u8> {
    static FALLBACK: AtomicU64 = AtomicU64::new(1);
    let mut bytes = vec![0u8; count];
    if getrandom::fill(&mut bytes).is_err() {
        // Test ids only need to be distinct, so a counter will do when the OS has no randomness.
        let n = FALLBACK.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        for (byte, n) in bytes.iter_mut().zip(n.iter().cycle()) {
            *byte = *n;
        }
    }
    bytes
}

/// An opaque Fernet-looking blob like the backend's `encrypted_content`.
fn encrypted_content() -> String {
    format!(
        "gAAAAAB{}",
        base64::engine::general_purpose::URL_SAFE.encode(random_bytes(96))
    )
}

fn estimate_tokens(text: &str) -> u64 {
    estimate_tokens_of_len(text.len())
}

fn estimate_tokens_of_len(bytes: usize) -> u64 {
    u64::try_from(bytes / 4).unwrap_or(u64::MAX) + 1
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
