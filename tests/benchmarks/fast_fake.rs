//! A fast fake Codex backend for the relay benchmark.
//!
//! Own minimal server on std only: a `TcpListener` on 127.0.0.1, one thread per connection,
//! HTTP/1.1 keep-alive, hand-written chunked responses with one `write` (and so one TCP
//! segment, `TCP_NODELAY`) per event. It answers `POST /backend-api/codex/responses` with the
//! event sequence of one assistant message in the real backend's shapes (`sequence_number` on
//! every event, `response.completed` with `output: []` and usage, see
//! `tests/support/fake_codex_events.rs`):
//!
//! `response.created`, `response.in_progress`, `response.output_item.added`,
//! `response.content_part.added`, N × `response.output_text.delta`, `response.output_text.done`,
//! `response.content_part.done`, `response.output_item.done`, `response.completed`.
//!
//! The scenario travels in the request body. The proxy forwards unknown fields on
//! `/v1/responses`, so there it is a field: `"bench": {"deltas": 200, "delta_bytes": 32,
//! "delay_us": 2000}`. `/v1/chat/completions` drops unknown fields, so a chat request carries
//! the same object in its user message, `bench:{…}`, which reaches the fake as the text of the
//! first input message; the fake reads that when there is no `bench` field. Each delta is
//! preceded by the delay and its text starts with the send time, `t=<µs since the Unix
//! epoch>;`, taken just before the write, padded with `x` to `delta_bytes`. The load generator
//! subtracts that stamp from its receive time to get the per-event delay.
//!
//! The bearer is compared with one string comparison, nothing more: speed is the point.

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::http1::{self, BodyReader, LAST_CHUNK, push_chunk};

/// The path the proxy posts to (`CODEX_BASE_URL` + `/responses`).
pub const RESPONSES_PATH: &str = "/backend-api/codex/responses";

/// The bearer the proxy is configured to send (`OPENAI_ACCESS_TOKEN`): shaped and sized like
/// the ChatGPT access token the proxy holds in use, a signed JWT of about 1.7 KB (contract §3).
/// The proxy copies, sends and searches for its token on every request, so a short stand-in
/// would make each request look cheaper than it is.
pub fn access_token() -> &'static str {
    static TOKEN: LazyLock<String> = LazyLock::new(jwt_like_token);
    &TOKEN
}

/// A JWT with the claims a ChatGPT access token carries (values made up), expiring in 30 days
/// so that the proxy never tries to refresh it, and a 2048-bit RS256 signature's length.
fn jwt_like_token() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let header =
        json!({"alg": "RS256", "kid": "b1dd3f8f-9926-4e91-b2f1-3b3c5e1f0a4d", "typ": "JWT"});
    let scopes = [
        "openid",
        "profile",
        "email",
        "offline_access",
        "api.connectors.read",
        "api.connectors.invoke",
        "model.request",
        "model.read",
        "organization.read",
        "organization.write",
    ];
    let claims = json!({
        "aud": ["https://api.openai.com/v1"],
        "client_id": "app_EMoamEEZ73f0CkXaXp7hrann",
        "exp": now + 30 * 86_400,
        "https://api.openai.com/auth": {
            "chatgpt_account_id": "3f2a9c1e-7b4d-4e8a-9f06-2c5d8e7a1b90",
            "chatgpt_account_user_id": "user-Xq3VbN8kLm2PzR7tYw4HsJd6__3f2a9c1e-7b4d-4e8a-9f06-2c5d8e7a1b90",
            "chatgpt_compute_residency": "no_constraint",
            "chatgpt_plan_type": "pro",
            "chatgpt_user_id": "user-Xq3VbN8kLm2PzR7tYw4HsJd6",
            "user_id": "user-Xq3VbN8kLm2PzR7tYw4HsJd6"
        },
        "https://api.openai.com/profile": {"email": "someone@example.com", "email_verified": true},
        "iat": now,
        "iss": "https://auth.openai.com",
        "jti": "8d6c2f0e-5a3b-4c7d-9e1f-0a2b3c4d5e6f",
        "nbf": now,
        "pwd_auth_time": now * 1000,
        "scp": scopes,
        "session_id": "authsess_q8Wm3Zt6Yk1Rv9Xn2Lp5Hc7Jd4Fb0Ns",
        "sub": "google-oauth2|104839271650394827163"
    });
    let encode = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let signature: Vec<u8> = (0..256u32)
        .map(|i| (i.wrapping_mul(151) ^ 0x5a) as u8)
        .collect();
    format!(
        "{}.{}.{}",
        encode(header.to_string().as_bytes()),
        encode(claims.to_string().as_bytes()),
        encode(&signature)
    )
}

/// Prefix of a message text that carries the scenario (`bench:{"deltas":…}`).
pub const SCENARIO_PREFIX: &str = "bench:";

/// Events in every response besides the deltas: created, in_progress, output_item.added,
/// content_part.added, output_text.done, content_part.done, output_item.done, completed.
pub const FRAMING_EVENTS: usize = 8;

/// A keep-alive connection idle for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Request bodies larger than this are refused.
const MAX_BODY_BYTES: u64 = 1 << 20;

/// Bounds on what a scenario may ask for.
const MAX_DELTAS: usize = 100_000;
const MAX_DELTA_BYTES: usize = 64 << 10;
const MAX_DELAY: Duration = Duration::from_secs(1);

/// What one response streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    /// Number of `response.output_text.delta` events.
    pub deltas: usize,
    /// Length of each delta's text (at least the timestamp).
    pub delta_bytes: usize,
    /// Pause before each delta.
    pub delay: Duration,
}

impl Scenario {
    /// The `bench` object for a request body.
    pub fn to_json(self) -> Value {
        json!({
            "deltas": self.deltas,
            "delta_bytes": self.delta_bytes,
            "delay_us": u64::try_from(self.delay.as_micros()).unwrap_or(u64::MAX),
        })
    }

    /// The scenario as a message text, for requests that cannot carry a `bench` field.
    pub fn to_message(self) -> String {
        format!("{SCENARIO_PREFIX}{}", self.to_json())
    }

    /// The scenario a request body names (its `bench` field, else a `bench:` message),
    /// bounded; a short default when it names none.
    fn from_request(body: &Value) -> Scenario {
        let from_message = match body.get("bench") {
            Some(_) => None,
            None => scenario_in_message(body),
        };
        let bench = body.get("bench").or(from_message.as_ref());
        let field = |name: &str| bench.and_then(|b| b.get(name)).and_then(Value::as_u64);
        let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Scenario {
            deltas: field("deltas").map_or(3, to_usize).min(MAX_DELTAS),
            delta_bytes: field("delta_bytes")
                .map_or(32, to_usize)
                .min(MAX_DELTA_BYTES),
            delay: field("delay_us")
                .map_or(Duration::ZERO, Duration::from_micros)
                .min(MAX_DELAY),
        }
    }
}

/// The object after `bench:` in the text of the first input message (the first `input` item
/// with `content`), as `/v1/chat/completions` translates a user message.
fn scenario_in_message(body: &Value) -> Option<Value> {
    let text = body
        .get("input")?
        .as_array()?
        .iter()
        .find(|item| item.get("content").is_some())?
        .pointer("/content/0/text")?
        .as_str()?;
    serde_json::from_str(text.strip_prefix(SCENARIO_PREFIX)?).ok()
}

/// A running fake backend. Dropping it stops accepting and ends streams in progress at the
/// next event.
pub struct FastFake {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    responses: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
    accept: Option<JoinHandle<()>>,
}

impl FastFake {
    /// Binds 127.0.0.1 on a free port and starts accepting.
    pub fn start() -> io::Result<FastFake> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let responses = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicU64::new(0));
        let accept = {
            let stopping = stopping.clone();
            let responses = responses.clone();
            let connections = connections.clone();
            std::thread::Builder::new()
                .name("fake-accept".into())
                .spawn(move || accept_loop(&listener, &stopping, &responses, &connections))?
        };
        Ok(FastFake {
            addr,
            stopping,
            responses,
            connections,
            accept: Some(accept),
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `CODEX_BASE_URL` to give the proxy.
    pub fn base_url(&self) -> String {
        format!("http://{}/backend-api/codex", self.addr)
    }

    /// Response streams completed so far.
    pub fn responses_served(&self) -> u64 {
        self.responses.load(Ordering::Relaxed)
    }

    /// Connections accepted so far (nginx and the proxy keep theirs alive).
    pub fn connections_accepted(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for FastFake {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn accept_loop(
    listener: &TcpListener,
    stopping: &Arc<AtomicBool>,
    responses: &Arc<AtomicU64>,
    connections: &AtomicU64,
) {
    for stream in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        connections.fetch_add(1, Ordering::Relaxed);
        let stopping = stopping.clone();
        let responses = responses.clone();
        // Connection errors (a proxy that went away) just end the connection.
        let _ = std::thread::Builder::new()
            .name("fake-conn".into())
            .stack_size(256 << 10)
            .spawn(move || {
                let _ = serve_connection(stream, &stopping, &responses);
            });
    }
}

fn serve_connection(
    stream: TcpStream,
    stopping: &AtomicBool,
    responses: &AtomicU64,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut body = Vec::with_capacity(4096);
    loop {
        let Some(head) = http1::read_head(&mut reader)? else {
            return Ok(());
        };
        if head
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        {
            writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        body.clear();
        let mut request_body = BodyReader::new(&mut reader, head.framing(true));
        (&mut request_body)
            .take(MAX_BODY_BYTES)
            .read_to_end(&mut body)?;
        if !request_body.is_done() {
            writer.write_all(&plain(413, "body too large"))?;
            return Ok(());
        }
        let mut parts = head.start_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let bearer = head
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "));
        if method != "POST" || path.split('?').next() != Some(RESPONSES_PATH) {
            writer.write_all(&plain(404, "not found"))?;
        } else if bearer != Some(access_token()) {
            writer.write_all(&plain(401, "bad bearer"))?;
        } else {
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            stream_response(&mut writer, &request, body.len(), stopping)?;
            responses.fetch_add(1, Ordering::Relaxed);
        }
        if !head.keeps_alive() {
            return Ok(());
        }
    }
}

fn plain(status: u16, text: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{text}",
        text.len()
    )
    .into_bytes()
}

/// Writes the whole SSE response for one request (`request_bytes` long), one write per event.
fn stream_response(
    out: &mut TcpStream,
    request: &Value,
    request_bytes: usize,
    stopping: &AtomicBool,
) -> io::Result<()> {
    let scenario = Scenario::from_request(request);
    let mut events = EventWriter {
        out,
        sequence: 0,
        buffer: Vec::with_capacity(4096),
        frame: Vec::with_capacity(4096),
    };
    // The headers the real backend sends with a stream (contract §5.2 and §6.2), which the
    // proxy reads and passes on: fewer would make each answer look cheaper than it is.
    events.buffer.extend_from_slice(
        b"HTTP/1.1 200 OK\r\n\
          content-type: text/event-stream; charset=utf-8\r\n\
          cache-control: no-cache\r\n\
          transfer-encoding: chunked\r\n\
          server: cloudflare\r\n\
          openai-model: gpt-5.5\r\n\
          x-reasoning-included: false\r\n\
          x-models-etag: W/\"5f2c8a1d9e7b4c3a\"\r\n\
          x-codex-plan-type: pro\r\n\
          x-codex-active-limit: codex\r\n\
          x-codex-primary-used-percent: 12.5\r\n\
          x-codex-primary-window-minutes: 300\r\n\
          x-codex-primary-reset-at: 1796000000\r\n\
          x-codex-primary-reset-after-seconds: 9000\r\n\
          x-codex-secondary-used-percent: 40.0\r\n\
          x-codex-secondary-window-minutes: 10080\r\n\
          x-codex-secondary-reset-at: 1796400000\r\n\
          x-codex-secondary-reset-after-seconds: 409000\r\n\
          x-codex-primary-over-secondary-limit-percent: 0\r\n\
          x-codex-credits-has-credits: False\r\n\
          x-codex-credits-unlimited: False\r\n\
          x-codex-credits-balance: 0\r\n",
    );
    let (request_id, ray) = (random_hex(16), random_hex(8));
    events.buffer.extend_from_slice(
        format!(
            "x-request-id: {request_id}\r\nx-oai-request-id: {request_id}\r\n\
             cf-ray: {ray}-SJC\r\n\r\n"
        )
        .as_bytes(),
    );

    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("gpt-5.5");
    let mut response = response_object(request, model);
    let msg_id = format!("msg_{}", random_hex(24));
    events.send("response.created", json!({"response": response}))?;
    events.send("response.in_progress", json!({"response": response}))?;
    events.send(
        "response.output_item.added",
        json!({
            "output_index": 0,
            "item": {"id": msg_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []},
        }),
    )?;
    events.send(
        "response.content_part.added",
        json!({
            "item_id": msg_id, "output_index": 0, "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []},
        }),
    )?;

    let mut text = String::with_capacity(scenario.deltas * scenario.delta_bytes);
    let mut delta = String::with_capacity(scenario.delta_bytes + 32);
    for _ in 0..scenario.deltas {
        if !scenario.delay.is_zero() {
            std::thread::sleep(scenario.delay);
        }
        if stopping.load(Ordering::Relaxed) {
            return Err(io::ErrorKind::Interrupted.into());
        }
        delta.clear();
        delta.push_str("t=");
        delta.push_str(&now_micros().to_string());
        delta.push(';');
        while delta.len() < scenario.delta_bytes {
            delta.push('x');
        }
        // Hand-formatted: the text is `[t=0-9;x]` only, so nothing needs escaping.
        let data = format!(
            "{{\"type\":\"response.output_text.delta\",\"sequence_number\":{},\"item_id\":\"{msg_id}\",\
             \"output_index\":0,\"content_index\":0,\"delta\":\"{delta}\",\"logprobs\":[]}}",
            events.sequence
        );
        events.send_raw("response.output_text.delta", &data)?;
        text.push_str(&delta);
    }

    let part = json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
    let ids = |extra: Value| {
        let mut event = json!({"item_id": msg_id, "output_index": 0, "content_index": 0});
        merge(&mut event, extra);
        event
    };
    events.send(
        "response.output_text.done",
        ids(json!({"text": text, "logprobs": []})),
    )?;
    events.send("response.content_part.done", ids(json!({"part": part})))?;
    events.send(
        "response.output_item.done",
        json!({
            "output_index": 0,
            "item": {"id": msg_id, "type": "message", "status": "completed", "role": "assistant", "content": [part]},
        }),
    )?;
    let input_tokens = request_bytes / 4 + 1;
    let output_tokens = text.len() / 4 + 1;
    merge(
        &mut response,
        json!({
            "status": "completed",
            "completed_at": now_micros() / 1_000_000,
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            },
        }),
    );
    // The terminal event and the end of the body leave in one write.
    events.queue("response.completed", json!({"response": response}));
    events.buffer.extend_from_slice(LAST_CHUNK);
    events.flush()
}

/// Frames events as chunks and writes each with a single `write_all`.
struct EventWriter<'a> {
    out: &'a mut TcpStream,
    sequence: u64,
    /// Bytes waiting to be written (the response head rides with the first event).
    buffer: Vec<u8>,
    frame: Vec<u8>,
}

impl EventWriter<'_> {
    /// Sends `{"type": kind, "sequence_number": n, ...fields}`.
    fn send(&mut self, kind: &str, fields: Value) -> io::Result<()> {
        self.queue(kind, fields);
        self.flush()
    }

    /// Frames `{"type": kind, "sequence_number": n, ...fields}` without writing it yet.
    fn queue(&mut self, kind: &str, fields: Value) {
        let mut event = json!({"type": kind, "sequence_number": self.sequence});
        merge(&mut event, fields);
        self.queue_raw(kind, &event.to_string());
    }

    /// Sends a pre-rendered `data` payload (which must carry the current sequence number).
    fn send_raw(&mut self, kind: &str, data: &str) -> io::Result<()> {
        self.queue_raw(kind, data);
        self.flush()
    }

    fn queue_raw(&mut self, kind: &str, data: &str) {
        self.sequence += 1;
        self.frame.clear();
        self.frame.extend_from_slice(b"event: ");
        self.frame.extend_from_slice(kind.as_bytes());
        self.frame.extend_from_slice(b"\ndata: ");
        self.frame.extend_from_slice(data.as_bytes());
        self.frame.extend_from_slice(b"\n\n");
        push_chunk(&mut self.buffer, &self.frame);
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buffer)?;
        self.buffer.clear();
        Ok(())
    }
}

/// The Response object of `response.created`, in the backend's shape.
fn response_object(request: &Value, model: &str) -> Value {
    let echo = |name: &str, default: Value| {
        request
            .get(name)
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or(default)
    };
    json!({
        "id": format!("resp_{}", random_hex(24)),
        "object": "response",
        "created_at": now_micros() / 1_000_000,
        "status": "in_progress",
        "background": false,
        "error": null,
        "incomplete_details": null,
        "instructions": echo("instructions", Value::Null),
        "max_output_tokens": null,
        "max_tool_calls": null,
        "model": model,
        "output": [],
        "parallel_tool_calls": echo("parallel_tool_calls", json!(true)),
        "previous_response_id": null,
        "prompt_cache_key": echo("prompt_cache_key", Value::Null),
        "reasoning": echo("reasoning", Value::Null),
        "safety_identifier": null,
        "service_tier": "auto",
        "store": false,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": echo("tool_choice", json!("auto")),
        "tools": echo("tools", json!([])),
        "top_logprobs": 0,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": null,
        "metadata": {},
    })
}

/// Copies every top-level field of `changes` into `target` (both objects).
fn merge(target: &mut Value, changes: Value) {
    if let (Some(target), Value::Object(changes)) = (target.as_object_mut(), changes) {
        target.extend(changes);
    }
}

/// Microseconds since the Unix epoch (the clock both sides of a delay measurement read).
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn random_hex(count: usize) -> String {
    let mut bytes = vec![0u8; count];
    if getrandom::fill(&mut bytes).is_err() {
        // Ids only need to look right here.
        bytes.fill(0x5a);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
