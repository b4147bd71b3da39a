//! The four ways a benchmark request can go, and everything that differs between them: the
//! path, the key, the body, how a delta, the end of a stream and a complete answer look.
//!
//! - [`Via::Direct`]: straight to the fast fake (its SSE as is), the baseline.
//! - [`Via::Nginx`]: the same request through nginx as a plain reverse proxy (`nginx.rs`),
//!   the reference for what a relay that does nothing but relay costs.
//!
//! The fake sees the same request on every path: the two raw paths send the body the proxy
//! sends upstream for the `/v1/responses` request (made by the proxy's own `normalise`) and
//! the Codex headers it adds ([`CODEX_HEADERS`]). The fake parses the body and echoes parts of
//! it in three events, so a smaller request on the raw paths made the fake (which shares the
//! machine's two cores) cheaper there, and that difference counted against the proxy's ratios.
//! - [`Via::Proxy`]: the proxy's `/v1/responses`, the same events relayed.
//! - [`Via::Chat`]: the proxy's `/v1/chat/completions`, the events translated into chat chunks.

use std::net::SocketAddr;
use std::sync::Arc;

use codex_sub_proxy::config::{Config, ConfigError};
use codex_sub_proxy::responses_request::{NormaliseOptions, normalise};
use serde_json::{Value, json};

use crate::fast_fake::{RESPONSES_PATH, Scenario, access_token};
use crate::proxy_process::PROXY_KEY;

/// Which way a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Straight to the fake backend.
    Direct,
    /// Through nginx, a plain reverse proxy in front of the fake.
    Nginx,
    /// Through the proxy's `/v1/responses`.
    Proxy,
    /// Through the proxy's `/v1/chat/completions`.
    Chat,
}

impl Via {
    /// `direct`, `nginx`, `proxy` or `chat`, for tables.
    pub fn label(self) -> &'static str {
        match self {
            Via::Direct => "direct",
            Via::Nginx => "nginx",
            Via::Proxy => "proxy",
            Via::Chat => "chat",
        }
    }

    /// Whether the answer is the fake's SSE stream as is (whatever `stream` asked for): the
    /// fake always streams, and nginx relays without looking.
    pub fn is_raw(self) -> bool {
        matches!(self, Via::Direct | Via::Nginx)
    }

    /// The request path.
    pub fn path(self) -> &'static str {
        match self {
            Via::Direct | Via::Nginx => RESPONSES_PATH,
            Via::Proxy => "/v1/responses",
            Via::Chat => "/v1/chat/completions",
        }
    }

    /// Header lines to send besides `Host`, `Authorization`, `Content-Type` and
    /// `Content-Length`.
    pub fn extra_headers(self) -> &'static str {
        if self.is_raw() { CODEX_HEADERS } else { "" }
    }

    /// The bearer to send.
    pub fn bearer(self) -> &'static str {
        match self {
            Via::Direct | Via::Nginx => access_token(),
            Via::Proxy | Via::Chat => PROXY_KEY,
        }
    }

    /// What precedes the send stamp in a delta frame: the Responses event's `delta`, or the
    /// chat chunk's `choices[0].delta.content`.
    pub fn stamp_mark(self) -> &'static [u8] {
        match self {
            Via::Direct | Via::Nginx | Via::Proxy => b"\"delta\":\"t=",
            Via::Chat => b"\"content\":\"t=",
        }
    }

    /// Reads one stream frame that is not a delta.
    pub fn note_frame(self, frame: &[u8], end: &mut StreamEnd) {
        match self {
            Via::Direct | Via::Nginx | Via::Proxy => {
                end.completed |= find(frame, b"event: response.completed").is_some();
            }
            // A chat stream is complete when a chunk finished with `stop` and `[DONE]` followed.
            Via::Chat => {
                if find(frame, b"\"finish_reason\":\"stop\"").is_some() {
                    end.finished = true;
                } else if find(frame, b"data: [DONE]").is_some() {
                    end.completed = end.finished;
                }
            }
        }
    }

    /// Whether an answer read to its end is a complete one: a stream (`streamed`, or any
    /// raw answer) that ended as it should, or one aggregated JSON object.
    pub fn is_complete_answer(self, answer: &[u8], streamed: bool) -> bool {
        // The chat stream's last chunks (finish, usage, `[DONE]`) are short.
        let tail = &answer[answer.len().saturating_sub(4 << 10)..];
        match self {
            Via::Direct | Via::Nginx => ends_with_completed(answer),
            Via::Proxy if streamed => ends_with_completed(answer),
            Via::Proxy => {
                find(answer, b"\"status\":\"completed\"").is_some()
                    && find(answer, b"\"output_text\"").is_some()
            }
            Via::Chat if streamed => {
                find(tail, b"\"finish_reason\":\"stop\"").is_some()
                    && find(tail, b"data: [DONE]").is_some()
            }
            Via::Chat => {
                find(answer, b"\"object\":\"chat.completion\"").is_some()
                    && find(answer, b"\"finish_reason\":\"stop\"").is_some()
                    && find(answer, b"\"content\":\"t=").is_some()
            }
        }
    }
}

/// How far a stream got towards its end.
#[derive(Debug, Default)]
pub struct StreamEnd {
    /// Chat only: a chunk carried `"finish_reason":"stop"`.
    finished: bool,
    /// The stream ended as it should (`response.completed`, or `stop` then `[DONE]`).
    pub completed: bool,
}

/// Where requests go.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Server address.
    pub addr: SocketAddr,
    /// Which way.
    pub via: Via,
}

impl Target {
    /// `direct`, `nginx`, `proxy` or `chat`, for tables.
    pub fn label(&self) -> &'static str {
        self.via.label()
    }
}

/// One kind of request: where it goes and what it sends.
#[derive(Debug, Clone)]
pub struct Request {
    /// Where it goes.
    pub target: Target,
    /// The body, shared by every thread that sends it.
    pub body: Arc<Vec<u8>>,
    /// Whether the answer is a stream (always so for raw ways).
    pub stream: bool,
}

impl Request {
    /// A request for `scenario` through `target`; `stream` only matters through the proxy.
    pub fn new(target: Target, scenario: Scenario, stream: bool) -> Request {
        let stream = stream || target.via.is_raw();
        Request {
            target,
            body: Arc::new(request_body(target.via, scenario, stream)),
            stream,
        }
    }

    /// A request with the given body (which must ask for `stream` as it says).
    pub fn with_body(target: Target, body: Vec<u8>, stream: bool) -> Request {
        Request {
            target,
            body: Arc::new(body),
            stream,
        }
    }
}

/// Indices of `paths` paths in the order turn `turn` runs them: as given on even turns,
/// reversed on odd ones, so that no path always runs right after the same other path (the
/// proxy serves two of them, and one's aftermath would otherwise always land on the other).
pub fn turn_order(paths: usize, turn: usize) -> Vec<usize> {
    if turn.is_multiple_of(2) {
        (0..paths).collect()
    } else {
        (0..paths).rev().collect()
    }
}

/// A request body for `via` asking the fake for `scenario`: a Responses body with a `bench`
/// field, or for chat a single user message `bench:{…}` (chat drops unknown fields). The raw
/// paths send what the proxy makes of the `/v1/responses` body (see the module notes).
pub fn request_body(via: Via, scenario: Scenario, stream: bool) -> Vec<u8> {
    let responses = json!({
        "model": "gpt-5.5",
        "input": "Benchmark: stream some text.",
        "stream": stream,
        "bench": scenario.to_json(),
    });
    match via {
        Via::Direct | Via::Nginx => upstream_body(responses),
        Via::Proxy => responses,
        Via::Chat => json!({
            "model": "gpt-5.5",
            "messages": [{"role": "user", "content": scenario.to_message()}],
            "stream": stream,
        }),
    }
    .to_string()
    .into_bytes()
}

/// The conversation of a coding agent's turn, for `scenario`: a system prompt, the `bench:`
/// user message, then eight rounds of a tool call, its result (a 600-byte file), a reply and a
/// user message (34 messages in all), and ten function tools with JSON schemas. A short
/// request hides what the proxy's work costs per message and per tool; real clients send whole
/// conversations.
struct AgentTurn {
    system: String,
    bench_message: String,
    file_text: String,
}

impl AgentTurn {
    fn new(scenario: Scenario) -> AgentTurn {
        AgentTurn {
            system: "You are a careful coding agent. ".repeat(40),
            bench_message: scenario.to_message(),
            file_text: "fn main() {\n    println!(\"hello\");\n}\n".repeat(20),
        }
    }

    /// The call id, arguments, reply and next user message of round `round`.
    fn round(round: usize) -> (String, String, String, String) {
        (
            format!("call_{round:02}"),
            format!("{{\"path\":\"src/f{round}.rs\"}}"),
            "The file prints a greeting. ".repeat(6),
            format!("Now look at the next file, number {round}."),
        )
    }

    fn schema() -> Value {
        json!({"type": "object", "required": ["path"], "properties": {
            "path": {"type": "string", "description": "A path in the repository."},
            "start": {"type": "integer", "minimum": 1},
            "end": {"type": "integer", "minimum": 1},
            "mode": {"type": "string", "enum": ["read", "write", "append"]},
        }})
    }

    const DESCRIPTION: &str =
        "Reads or changes the working tree. Reads or changes the working tree.";
}

/// An agent's turn ([`AgentTurn`]) as a `/v1/chat/completions` body.
pub fn agent_chat_body(scenario: Scenario, stream: bool) -> Vec<u8> {
    let turn = AgentTurn::new(scenario);
    let mut messages = vec![
        json!({"role": "system", "content": turn.system}),
        json!({"role": "user", "content": turn.bench_message}),
    ];
    for round in 0..8 {
        let (id, arguments, reply, next) = AgentTurn::round(round);
        messages.push(
            json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": id, "type": "function",
                "function": {"name": "read_file", "arguments": arguments},
            }]}),
        );
        messages.push(json!({"role": "tool", "tool_call_id": id, "content": turn.file_text}));
        messages.push(json!({"role": "assistant", "content": reply}));
        messages.push(json!({"role": "user", "content": [{"type": "text", "text": next}]}));
    }
    let tools: Vec<Value> = (0..10)
        .map(|i| {
            json!({"type": "function", "function": {
                "name": format!("tool_{i}"),
                "description": AgentTurn::DESCRIPTION,
                "parameters": AgentTurn::schema(),
            }})
        })
        .collect();
    json!({"model": "gpt-5.5", "messages": messages, "tools": tools, "stream": stream})
        .to_string()
        .into_bytes()
}

/// The same turn ([`AgentTurn`]) as a `/v1/responses` body, in the Codex CLI's shapes.
pub fn agent_responses_body(scenario: Scenario, stream: bool) -> Vec<u8> {
    agent_responses_value(scenario, stream)
        .to_string()
        .into_bytes()
}

/// [`agent_responses_body`] before it is encoded.
fn agent_responses_value(scenario: Scenario, stream: bool) -> Value {
    let turn = AgentTurn::new(scenario);
    let mut input = vec![json!({"type": "message", "role": "user", "content": turn.bench_message})];
    for round in 0..8 {
        let (id, arguments, reply, next) = AgentTurn::round(round);
        input.push(
            json!({"type": "function_call", "call_id": id, "name": "read_file",
                          "arguments": arguments}),
        );
        input.push(json!({"type": "function_call_output", "call_id": id,
                          "output": turn.file_text}));
        input.push(json!({"type": "message", "role": "assistant",
                          "content": [{"type": "output_text", "text": reply}]}));
        input.push(json!({"type": "message", "role": "user",
                          "content": [{"type": "input_text", "text": next}]}));
    }
    let tools: Vec<Value> = (0..10)
        .map(|i| {
            json!({"type": "function", "name": format!("tool_{i}"),
                   "description": AgentTurn::DESCRIPTION, "parameters": AgentTurn::schema(),
                   "strict": false})
        })
        .collect();
    json!({"model": "gpt-5.5", "instructions": turn.system, "input": input, "tools": tools,
           "stream": stream})
}

/// The shape of a request's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// One short message ([`request_body`]), what most sections send.
    Short,
    /// An agent's turn of 34 messages and 10 tools ([`agent_chat_body`],
    /// [`agent_responses_body`]).
    Agent,
}

impl Body {
    /// A request of this shape for `scenario` through `target`. An agent's turn goes to chat
    /// as a chat body, to the proxy as a Responses body, and on the raw paths as what the proxy
    /// sends upstream for that Responses body.
    pub fn request(self, target: Target, scenario: Scenario, stream: bool) -> Request {
        if self == Body::Short {
            return Request::new(target, scenario, stream);
        }
        let stream = stream || target.via.is_raw();
        let body = match target.via {
            Via::Chat => agent_chat_body(scenario, stream),
            Via::Proxy => agent_responses_body(scenario, stream),
            Via::Direct | Via::Nginx => upstream_body(agent_responses_value(scenario, stream))
                .to_string()
                .into_bytes(),
        };
        Request::with_body(target, body, stream)
    }
}

/// The proxy's configuration with nothing set, read by its own parser: its defaults.
pub fn proxy_defaults() -> Result<Config, ConfigError> {
    Config::from_lookup(|_| None)
}

/// The body the proxy sends upstream for `body`, with its default configuration.
#[expect(
    clippy::panic,
    reason = "the body is a constant the proxy accepts; a refusal is a broken benchmark"
)]
fn upstream_body(body: Value) -> Value {
    let Value::Object(body) = body else {
        panic!("a benchmark body is an object");
    };
    let defaults = proxy_defaults()
        .unwrap_or_else(|error| panic!("the proxy's defaults are refused: {error}"));
    let options = NormaliseOptions {
        default_instructions: &defaults.default_instructions,
    };
    normalise(body, &options)
        .unwrap_or_else(|error| panic!("the benchmark body is refused: {error:?}"))
        .body
}

/// The headers the proxy adds to an upstream call, with values of the same lengths, sent by
/// the raw paths so that the fake reads as many header lines on every path. (`Authorization`
/// and `Content-Type`, which every path sends, are left out.)
pub const CODEX_HEADERS: &str = "Accept: text/event-stream\r\n\
     originator: codex_cli_rs\r\n\
     user-agent: codex_cli_rs/0.99.0 (linux; x86_64) codex-sub-proxy/0.1.0\r\n\
     version: 0.99.0\r\n\
     openai-beta: responses=experimental\r\n\
     chatgpt-account-id: 00000000-0000-4000-8000-000000000000\r\n\
     session_id: 00000000-0000-4000-8000-000000000000\r\n";

/// The first position of `needle` in `haystack`.
///
/// With `memchr::memmem`, as every check of an answer is: the load generator shares the
/// machine's two cores with the relay it measures, so a check that costs more on one way's
/// answer than on another's (a byte-by-byte scan through an aggregated JSON object against a
/// look at a stream's last event) would take that way's CPU and bias the ratios.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// Whether the last event of an SSE answer is `response.completed` (the proxy fills that
/// event's `output`, so it can be far longer than any fixed tail).
fn ends_with_completed(answer: &[u8]) -> bool {
    rfind(answer, b"\nevent: ")
        .is_some_and(|at| answer[at + 1..].starts_with(b"event: response.completed\n"))
}

/// The last position of `needle` in `haystack`.
fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::rfind(haystack, needle)
}
