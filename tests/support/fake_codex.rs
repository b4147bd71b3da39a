//! A fake ChatGPT/Codex Responses backend for integration tests and benchmarks: a real HTTP server on
//! `127.0.0.1:0` that is as strict as the real backend (`shared/upstream-contract.md` §4, §5, §6, §8)
//! and answers `POST /backend-api/codex/responses` with scripted SSE streams.
//!
//! Include it from a test crate (or a `harness = false` bench) with
//! `#[path = "support/fake_codex.rs"] #[expect(dead_code, reason = "…")] mod fake_codex;`: a crate that
//! uses only part of the fake needs the `expect`; one that uses all of it (the self-test) must leave it out.
//!
//! Only `POST {BASE_PATH}/responses` and `GET {BASE_PATH}/models` exist; any other method or path is a
//! 404, so a proxy that joins its URLs wrongly fails loudly. Each request is handled on its own thread;
//! every SSE frame is flushed as soon as it is written, and a client that goes away mid-stream is noticed
//! by the failed write, which ends the stream at once and is counted in [`FakeCodex::aborted_streams`].
//!
//! Shutdown: dropping [`FakeCodex`] disconnects a stop channel (which cuts short every scripted pause),
//! unblocks the accept loop, and joins it; the accept loop joins every request thread before it returns.
//! A request whose client stalls while sending its body would hold that join, so tests must not do that.
//!
//! Secrets: the prompt texts of every `POST /responses` body it receives (`instructions`, and the
//! `text`, `content`, `output` and `arguments` strings of the input items) and every completion text
//! it streams are registered in `secrets.rs` (the including crate declares `mod secrets`), as is the
//! access token it is told to accept.

#[path = "fake_codex_events.rs"]
mod events;

use std::collections::{HashSet, VecDeque};
use std::error::Error;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use serde_json::{Value, json};

use events::{DEFAULT_DELTAS, Reply, Step};

use crate::secrets::{self, SecretKind};

/// The path of the Codex API on the fake, as on `chatgpt.com`.
pub const BASE_PATH: &str = "/backend-api/codex";
/// The bearer token the fake accepts until [`FakeCodex::set_access_token`] changes it.
pub const DEFAULT_ACCESS_TOKEN: &str = "test-access-token";
/// The text of the default script.
pub const DEFAULT_TEXT: &str = "Hello from the fake Codex backend.";

/// A running fake backend; it stops when dropped.
pub struct FakeCodex {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Arc<tiny_http::Server>,
    stop: Option<Sender<()>>,
    accept_thread: Option<JoinHandle<()>>,
}

/// One request the fake received, recorded before it was judged.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path without the query string, e.g. `/backend-api/codex/responses`.
    pub path: String,
    /// The query string without `?`, if there was one.
    pub query: Option<String>,
    /// Every header in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON, or `Null` when it is not JSON.
    pub body: Value,
    /// The body as received.
    pub raw_body: Vec<u8>,
}

impl RecordedRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// What the fake does with one valid `POST /responses`.
#[derive(Debug, Clone, PartialEq)]
pub enum Script {
    /// An assistant message streamed in `deltas` `response.output_text.delta` events, then completed.
    Text { text: String, deltas: usize },
    /// A reasoning item (summary streamed, `encrypted_content` when requested), then a message.
    ReasoningThenText { summary: String, text: String },
    /// A function call with streamed arguments, then completed.
    FunctionCall {
        call_id: String,
        name: String,
        arguments: String,
    },
    /// A `web_search_call` (added, in_progress, searching, completed, done), then a message whose text
    /// carries one `url_citation` annotation.
    WebSearch { query: String, text: String },
    /// `response.created`, `response.in_progress`, then `response.failed` with `error {code, message}`.
    Failed { code: String, message: String },
    /// A message cut short (item status `incomplete`), then `response.incomplete` with `reason`.
    Incomplete { reason: String, text: String },
    /// A message up to its `response.output_item.done`, then the stream ends with no terminal event.
    EofWithoutCompletion { text: String },
    /// Like `Text`, with a pause of `delay_ms` before each delta (for client-disconnect tests).
    Slow {
        text: String,
        deltas: usize,
        delay_ms: u64,
    },
    /// A non-streaming HTTP error with this status, content type, body and extra headers.
    HttpError {
        status: u16,
        content_type: String,
        body: String,
        headers: Vec<(String, String)>,
    },
    /// Exactly this status, these headers (no others but the chunked framing) and this body.
    Raw {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
}

impl Script {
    /// A completed message of `text` in [`DEFAULT_DELTAS`] deltas.
    pub fn text(text: &str) -> Script {
        Script::Text {
            text: text.to_owned(),
            deltas: DEFAULT_DELTAS,
        }
    }

    /// HTTP 429 `usage_limit_reached` (contract §6.1) resetting in `resets_in_seconds`, with the
    /// rate-limit headers of an exhausted primary window.
    pub fn usage_limit(resets_in_seconds: u64) -> Script {
        let resets_at = events::now_unix() + resets_in_seconds;
        let body = json!({"error": {
            "type": "usage_limit_reached",
            "message": "The usage limit has been reached",
            "plan_type": "plus",
            "resets_at": resets_at,
            "resets_in_seconds": resets_in_seconds,
            "eligible_promo": null,
        }});
        let mut headers = events::rate_limit_headers(100.0, resets_in_seconds);
        headers.push(("x-codex-plan-type".to_owned(), "plus".to_owned()));
        headers.push(("x-codex-active-limit".to_owned(), "codex".to_owned()));
        Script::HttpError {
            status: 429,
            content_type: "application/json".to_owned(),
            body: body.to_string(),
            headers,
        }
    }

    /// HTTP 403 with Cloudflare's "Just a moment..." challenge page.
    pub fn cloudflare_403() -> Script {
        let body = "<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment...</title>\
                    <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\"></head>\
                    <body><div class=\"main-wrapper\" role=\"main\"><div class=\"main-content\">\
                    <noscript>Enable JavaScript and cookies to continue</noscript></div></div>\
                    </body></html>";
        Script::HttpError {
            status: 403,
            content_type: "text/html; charset=UTF-8".to_owned(),
            body: body.to_owned(),
            headers: vec![
                ("cf-mitigated".to_owned(), "challenge".to_owned()),
                (
                    "cf-ray".to_owned(),
                    format!("{}-LHR", events::random_hex(8)),
                ),
                ("server".to_owned(), "cloudflare".to_owned()),
            ],
        }
    }

    /// HTTP 400 `{"detail": detail}`.
    pub fn bad_request(detail: &str) -> Script {
        Script::HttpError {
            status: 400,
            content_type: "application/json".to_owned(),
            body: json!({"detail": detail}).to_string(),
            headers: Vec::new(),
        }
    }

    /// HTTP 500 with an OpenAI-style error body.
    pub fn server_error() -> Script {
        let body = json!({"error": {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": null,
            "code": null,
        }});
        Script::HttpError {
            status: 500,
            content_type: "application/json".to_owned(),
            body: body.to_string(),
            headers: Vec::new(),
        }
    }
}

/// One SSE frame as a client sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SseFrame {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`, parsed as JSON (`Null` if they are not JSON).
    pub data: Value,
}

/// Splits SSE text into frames (blank-line separated); frames without `data` and comments are skipped.
pub fn parse_sse(text: &str) -> Vec<SseFrame> {
    let mut frames = Vec::new();
    let mut event = None;
    let mut data: Vec<&str> = Vec::new();
    for line in text.lines().chain(std::iter::once("")) {
        if line.is_empty() {
            if !data.is_empty() {
                let data_text = data.join("\n");
                frames.push(SseFrame {
                    event: event.take(),
                    data: serde_json::from_str(&data_text).unwrap_or(Value::Null),
                });
            }
            event = None;
            data.clear();
        } else if let Some(value) = field_value(line, "event") {
            event = Some(value.to_owned());
        } else if let Some(value) = field_value(line, "data") {
            data.push(value);
        }
    }
    frames
}

/// The `data` JSON of every frame in `text`.
pub fn sse_data(text: &str) -> Vec<Value> {
    parse_sse(text)
        .into_iter()
        .map(|frame| frame.data)
        .collect()
}

fn field_value<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let value = line.strip_prefix(name)?.strip_prefix(':')?;
    Some(value.strip_prefix(' ').unwrap_or(value))
}

/// Checks a `POST /responses` body as the backend does (contract §4.2–4.6, §8), in the backend's order.
/// `Err` holds the `detail` of the 400 it would answer.
pub fn validate_responses_body(body: &Value) -> Result<(), String> {
    let Some(fields) = body.as_object() else {
        return Err("We could not parse the JSON body of your request.".to_owned());
    };
    if fields.get("store") != Some(&Value::Bool(false)) {
        return Err("Store must be set to false".to_owned());
    }
    if fields.get("stream") != Some(&Value::Bool(true)) {
        return Err("Stream must be set to true".to_owned());
    }
    if !fields.get("instructions").is_some_and(Value::is_string) {
        return Err("Instructions are required".to_owned());
    }
    for name in [
        "max_output_tokens",
        "max_tokens",
        "temperature",
        "top_p",
        "previous_response_id",
    ] {
        if fields.contains_key(name) {
            return Err(format!("Unsupported parameter: {name}"));
        }
    }
    let Some(input) = fields.get("input").and_then(Value::as_array) else {
        return Err("Invalid type for 'input': expected an array.".to_owned());
    };
    if let Some(id) = input.iter().find_map(|item| item.get("id")) {
        let id = id.as_str().map_or_else(|| id.to_string(), str::to_owned);
        return Err(format!(
            "Item with id '{id}' not found. Items are not persisted when store is set to false. \
             Try again with `store` set to true, or remove this item from your input."
        ));
    }
    if input.iter().any(|item| item_type(item) == "item_reference") {
        return Err("Item references are not supported when store is set to false.".to_owned());
    }
    let call_ids = |kind: &str| -> Vec<String> {
        input
            .iter()
            .filter(|item| item_type(item) == kind)
            .map(|item| item.get("call_id").map_or_else(String::new, call_id_text))
            .collect()
    };
    let (calls, outputs) = (call_ids("function_call"), call_ids("function_call_output"));
    let (call_set, output_set): (HashSet<&String>, HashSet<&String>) =
        (calls.iter().collect(), outputs.iter().collect());
    if let Some(orphan) = outputs.iter().find(|id| !call_set.contains(id)) {
        return Err(format!(
            "No tool call found for function call output with call_id {orphan}."
        ));
    }
    if let Some(unanswered) = calls.iter().find(|id| !output_set.contains(id)) {
        return Err(format!(
            "No tool output found for function call {unanswered}."
        ));
    }
    Ok(())
}

fn item_type(item: &Value) -> &str {
    item.get("type").and_then(Value::as_str).unwrap_or("")
}

fn call_id_text(id: &Value) -> String {
    id.as_str().map_or_else(|| id.to_string(), str::to_owned)
}

/// Whether `originator` is one the backend lets through (contract §4.3).
pub fn is_first_party_originator(originator: &str) -> bool {
    matches!(originator, "codex_cli_rs" | "codex-tui" | "codex_vscode")
        || originator.starts_with("Codex ")
}

impl FakeCodex {
    /// Starts the fake on `127.0.0.1:0`.
    #[expect(
        clippy::panic,
        reason = "a test fixture that cannot bind has no better way to fail"
    )]
    pub fn start() -> FakeCodex {
        match FakeCodex::try_start() {
            Ok(fake) => fake,
            Err(error) => panic!("fake Codex backend could not start: {error}"),
        }
    }

    /// Starts the fake on `127.0.0.1:0`, or says why it could not.
    pub fn try_start() -> Result<FakeCodex, Box<dyn Error + Send + Sync>> {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0")?);
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or("fake Codex backend is not listening on an IP address")?;
        let (stop, stopped) = crossbeam_channel::bounded(0);
        let shared = Arc::new(Shared {
            access_token: Mutex::new(DEFAULT_ACCESS_TOKEN.to_owned()),
            accepted_prefix: Mutex::new(None),
            queue: Mutex::new(VecDeque::new()),
            default_script: Mutex::new(Script::text(DEFAULT_TEXT)),
            requests: Mutex::new(Vec::new()),
            aborted_streams: Mutex::new(0),
            aborted_changed: Condvar::new(),
            stopped,
        });
        let accept_thread = thread::Builder::new()
            .name("fake-codex-accept".to_owned())
            .spawn({
                let (server, shared) = (Arc::clone(&server), Arc::clone(&shared));
                move || accept_loop(&server, &shared)
            })?;
        Ok(FakeCodex {
            addr,
            shared,
            server,
            stop: Some(stop),
            accept_thread: Some(accept_thread),
        })
    }

    /// The base URL a proxy would use, e.g. `http://127.0.0.1:PORT/backend-api/codex`; the fake serves
    /// `/responses` and `/models` under it.
    pub fn base_url(&self) -> String {
        format!("http://{}{BASE_PATH}", self.addr)
    }

    /// The bearer token the fake accepts from now on; any other gets 401.
    pub fn set_access_token(&self, token: &str) {
        secrets::register(SecretKind::AccessToken, token);
        *lock(&self.shared.access_token) = token.to_owned();
    }

    /// Also accepts every bearer token that starts with `prefix`, as the real backend accepts
    /// every unexpired token its issuer minted (for tests where several processes rotate).
    pub fn accept_access_token_prefix(&self, prefix: &str) {
        *lock(&self.shared.accepted_prefix) = Some(prefix.to_owned());
    }

    /// Queues `script` for the next valid `POST /responses` (first in, first out).
    pub fn push_script(&self, script: Script) {
        lock(&self.shared.queue).push_back(script);
    }

    /// The script used whenever the queue is empty (initially `Script::text(DEFAULT_TEXT)`).
    pub fn set_default_script(&self, script: Script) {
        *lock(&self.shared.default_script) = script;
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The `POST …/responses` requests received so far, in order of arrival.
    pub fn responses_requests(&self) -> Vec<RecordedRequest> {
        let path = format!("{BASE_PATH}/responses");
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == path)
            .collect()
    }

    /// How many streams the fake could not finish because a write or flush to the client failed.
    pub fn aborted_streams(&self) -> usize {
        *lock(&self.shared.aborted_streams)
    }

    /// Waits until [`FakeCodex::aborted_streams`] reaches `n` or `timeout` passes; true if it did.
    pub fn wait_for_aborted_streams(&self, n: usize, timeout: Duration) -> bool {
        let count = lock(&self.shared.aborted_streams);
        let (count, _) = self
            .shared
            .aborted_changed
            .wait_timeout_while(count, timeout, |count| *count < n)
            .unwrap_or_else(PoisonError::into_inner);
        *count >= n
    }
}

impl Drop for FakeCodex {
    fn drop(&mut self) {
        // Disconnecting the stop channel first means the accept loop knows the unblock is a stop.
        drop(self.stop.take());
        self.server.unblock();
        if let Some(accept_thread) = self.accept_thread.take() {
            // A panic there was already reported on stderr; a destructor must not panic again.
            let _ = accept_thread.join();
        }
    }
}

struct Shared {
    access_token: Mutex<String>,
    accepted_prefix: Mutex<Option<String>>,
    queue: Mutex<VecDeque<Script>>,
    default_script: Mutex<Script>,
    requests: Mutex<Vec<RecordedRequest>>,
    aborted_streams: Mutex<usize>,
    aborted_changed: Condvar,
    /// Never carries a message; it disconnects when the `FakeCodex` is dropped.
    stopped: Receiver<()>,
}

impl Shared {
    fn next_script(&self) -> Script {
        let queued = lock(&self.queue).pop_front();
        queued.unwrap_or_else(|| lock(&self.default_script).clone())
    }

    fn count_aborted_stream(&self) {
        *lock(&self.aborted_streams) += 1;
        self.aborted_changed.notify_all();
    }

    /// Sleeps for `pause`; false if the fake is shutting down.
    fn pause(&self, pause: Duration) -> bool {
        matches!(
            self.stopped.recv_timeout(pause),
            Err(RecvTimeoutError::Timeout)
        )
    }

    fn is_stopping(&self) -> bool {
        matches!(self.stopped.try_recv(), Err(TryRecvError::Disconnected))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding a lock must not hide the fake's state from the others.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn accept_loop(server: &tiny_http::Server, shared: &Arc<Shared>) {
    let mut handlers: Vec<JoinHandle<()>> = Vec::new();
    loop {
        match server.recv() {
            Ok(request) => {
                let shared = Arc::clone(shared);
                let spawned = thread::Builder::new()
                    .name("fake-codex-request".to_owned())
                    .spawn(move || handle(request, &shared));
                // If no thread can be spawned the request is dropped, and tiny_http answers it 500.
                if let Ok(handler) = spawned {
                    handlers.push(handler);
                }
                let (finished, running) = handlers.into_iter().partition(|h| h.is_finished());
                join_all(finished);
                handlers = running;
            }
            Err(_) if shared.is_stopping() => break,
            Err(_) => {}
        }
    }
    join_all(handlers);
}

fn join_all(handlers: Vec<JoinHandle<()>>) {
    for handler in handlers {
        // A handler that panicked has already reported it on stderr.
        let _ = handler.join();
    }
}

fn handle(mut request: tiny_http::Request, shared: &Shared) {
    let recorded = record(&mut request);
    if recorded.method == "POST" {
        secrets::register_prompts(&recorded.body);
    }
    lock(&shared.requests).push(recorded.clone());
    let reply = route(&recorded, shared);
    let mut writer = request.into_writer();
    match reply {
        Reply::Sized {
            status,
            headers,
            body,
        } => {
            // Only streams count as aborted; a client that leaves before a short reply has no stream.
            let _ = write_sized(&mut *writer, status, &headers, &body);
        }
        Reply::Stream {
            status,
            headers,
            steps,
        } => {
            if write_stream(&mut *writer, status, &headers, &steps, shared).is_err() {
                shared.count_aborted_stream();
            }
        }
    }
}

fn record(request: &mut tiny_http::Request) -> RecordedRequest {
    let mut raw_body = Vec::new();
    // A body cut short is recorded as far as it came; the checks then judge what arrived.
    let _ = request.as_reader().read_to_end(&mut raw_body);
    let (path, query) = match request.url().split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
        None => (request.url().to_owned(), None),
    };
    RecordedRequest {
        method: request.method().to_string(),
        path,
        query,
        headers: request
            .headers()
            .iter()
            .map(|h| {
                (
                    h.field.to_string().to_ascii_lowercase(),
                    h.value.to_string(),
                )
            })
            .collect(),
        body: serde_json::from_slice(&raw_body).unwrap_or(Value::Null),
        raw_body,
    }
}

fn route(request: &RecordedRequest, shared: &Shared) -> Reply {
    let is_responses = request.method == "POST" && request.path == format!("{BASE_PATH}/responses");
    let is_models = request.method == "GET" && request.path == format!("{BASE_PATH}/models");
    if !is_responses && !is_models {
        return Reply::detail(404, "Not Found");
    }
    let token = request
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "));
    let prefix_ok = match (token, lock(&shared.accepted_prefix).as_deref()) {
        (Some(token), Some(prefix)) => token.starts_with(prefix),
        _ => false,
    };
    if !prefix_ok && token != Some(lock(&shared.access_token).as_str()) {
        return Reply::detail(
            401,
            "Could not parse your authentication token. Please try signing in again.",
        );
    }
    if !request
        .header("originator")
        .is_some_and(is_first_party_originator)
    {
        return Reply::detail(403, "Unsupported client");
    }
    if is_models {
        return events::models_reply();
    }
    if let Err(detail) = validate_responses_body(&request.body) {
        return Reply::detail(400, &detail);
    }
    events::script_reply(shared.next_script(), request)
}

fn write_head(
    writer: &mut dyn Write,
    status: u16,
    headers: &[(String, String)],
    framing: &str,
) -> io::Result<()> {
    let reason = tiny_http::StatusCode(status).default_reason_phrase();
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(framing);
    head.push_str("\r\n\r\n");
    writer.write_all(head.as_bytes())
}

fn write_sized(
    writer: &mut dyn Write,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> io::Result<()> {
    write_head(
        writer,
        status,
        headers,
        &format!("content-length: {}", body.len()),
    )?;
    writer.write_all(body)?;
    writer.flush()
}

/// Writes a chunked body one flushed chunk per step. An error means the client went away. A shutdown
/// of the fake skips the remaining steps but still ends the body cleanly, so no client is left hanging.
fn write_stream(
    writer: &mut dyn Write,
    status: u16,
    headers: &[(String, String)],
    steps: &[Step],
    shared: &Shared,
) -> io::Result<()> {
    write_head(writer, status, headers, "transfer-encoding: chunked")?;
    writer.flush()?;
    for step in steps {
        let chunk = match step {
            Step::Event(data) => {
                let event_type = data
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("message");
                format!("event: {event_type}\ndata: {data}\n\n")
            }
            Step::Raw(text) => text.clone(),
            Step::Pause(pause) => {
                if shared.pause(*pause) {
                    continue;
                }
                break;
            }
        };
        if chunk.is_empty() {
            continue;
        }
        writer.write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes())?;
        writer.flush()?;
    }
    writer.write_all(b"0\r\n\r\n")?;
    writer.flush()
}
