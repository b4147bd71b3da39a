//! Starts the real proxy in-process on 127.0.0.1:0 against the fakes, and small HTTP helpers
//! for talking to it over real sockets.
//!
//! Every in-process proxy logs at `trace` into [`log_capture`]; its keys and tokens (those
//! configured and those in its credentials file) are registered in `secrets.rs`, and dropping
//! a [`TestProxy`] fails the test when any registered secret reached the logs. The helpers
//! fail it when an error body (status >= 400, or an in-band error event) carries a key or token.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "test support fails loudly"
)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use codex_sub_proxy::config::Config;
use codex_sub_proxy::routes::Proxy;
use codex_sub_proxy::server::{self, Handler, RunningServer, ServerLimits};
use serde_json::Value;

use crate::secrets::{self, SecretKind};

#[path = "log_capture.rs"]
pub mod log_capture;

/// The caller key every test proxy accepts.
pub const PROXY_KEY: &str = "test-proxy-key";

/// A configuration pointing at `codex_base` with test defaults, plus `overrides`.
///
/// Unless `overrides` names a `CREDENTIALS_FILE`, the credentials file is `credentials.json` in
/// a new [`ScratchDir`] that the returned [`TestConfig`] owns.
pub fn config(codex_base: &str, overrides: &[(&str, &str)]) -> TestConfig {
    // Installed before anything can log, so every line of the proxies this binary runs is kept.
    log_capture::install();
    let mut values: HashMap<String, String> = [
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("PROXY_API_KEY", PROXY_KEY),
        ("OPENAI_ACCESS_TOKEN", "test-access-token"),
        ("OPENAI_REFRESH_TOKEN", "test-refresh-token"),
        ("AUTH_BASE_URL", "http://127.0.0.1:9"),
        ("WORKERS", "4"),
        ("QUEUE_DEPTH", "8"),
        ("UPSTREAM_MAX_RETRIES", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    values.insert("CODEX_BASE_URL".into(), codex_base.to_string());
    // A test that names its own file owns its directory; only the default needs one here.
    let scratch = (!overrides.iter().any(|(key, _)| *key == "CREDENTIALS_FILE")).then(|| {
        let scratch = scratch_dir();
        values.insert(
            "CREDENTIALS_FILE".into(),
            scratch.join("credentials.json").display().to_string(),
        );
        scratch
    });
    for (key, value) in overrides {
        values.insert(key.to_string(), value.to_string());
    }
    let config =
        Config::from_lookup(|name| values.get(name).cloned()).expect("test config is valid");
    TestConfig { config, scratch }
}

/// A test [`Config`] together with the scratch directory holding its default credentials
/// file, which has to outlive every proxy built from the configuration.
pub struct TestConfig {
    config: Config,
    /// The directory of the default credentials file; `None` when the test named the file.
    scratch: Option<ScratchDir>,
}

impl TestConfig {
    /// The configuration, and the directory to keep alive for as long as it is in use.
    pub fn into_parts(self) -> (Config, Option<ScratchDir>) {
        (self.config, self.scratch)
    }
}

/// Now, in Unix seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An access token (an unsigned JWT with the account claims the proxy reads) that expires at
/// `exp` (Unix seconds).
pub fn access_token_expiring_at(exp: u64) -> String {
    codex_sub_proxy::jwt::unsigned_token(&serde_json::json!({
        "exp": exp,
        "https://api.openai.com/auth": {"chatgpt_account_id": "acct-0000-9f3c", "chatgpt_plan_type": "plus"},
    }))
}

/// Waits for `condition` to hold, polling, for at most `limit`.
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    condition()
}

/// A new empty directory under the system temp dir, removed with its contents when the
/// returned guard is dropped.
///
/// Bind the guard (`let dir = scratch_dir();`) and keep it for as long as anything uses the
/// directory: `scratch_dir().join("x")` drops it at the end of the statement, which removes
/// the directory before the path is used.
pub fn scratch_dir() -> ScratchDir {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).expect("random");
    let name: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let path = std::env::temp_dir().join(format!("codex-sub-proxy-test-{name}"));
    std::fs::create_dir_all(&path).expect("scratch dir");
    ScratchDir { path }
}

/// A directory of one test under the system temp dir (`codex-sub-proxy-test-<hex>`), removed
/// recursively when this guard is dropped; it derefs to its [`Path`].
///
/// Whatever uses the directory (a proxy, a child process) must be dropped first: hold the
/// guard in the same struct, or bind it before the user so that it is dropped after it.
#[derive(Debug)]
#[must_use = "the directory is removed when the guard is dropped"]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Deref for ScratchDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for ScratchDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Best effort: a failure to clean up must not fail (or mask the failure of) a test.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A proxy running in this process.
pub struct TestProxy {
    server: Option<RunningServer>,
    /// The wired proxy (token cache, config) for inspection.
    pub proxy: Arc<Proxy>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The directory of the default credentials file; a field drops after `Drop::drop` has
    /// stopped the server and scanned the file, so it outlives both.
    scratch: Option<ScratchDir>,
}

impl TestProxy {
    /// Starts the real router, keeping `config`'s scratch directory until it is dropped.
    pub fn start(config: TestConfig) -> TestProxy {
        let (config, scratch) = config.into_parts();
        log_capture::install();
        register_credentials(&config);
        let proxy = Arc::new(codex_sub_proxy::build_proxy(config).expect("credentials load"));
        let mut started = Self::start_with(proxy.clone(), proxy);
        started.scratch = scratch;
        started
    }

    /// Starts with a custom handler (to inject panics), keeping `proxy` for inspection.
    pub fn start_with(proxy: Arc<Proxy>, handler: Arc<dyn Handler>) -> TestProxy {
        log_capture::install();
        register_credentials(&proxy.config);
        let limits = ServerLimits::from_config(&proxy.config);
        let metrics = proxy.metrics.clone();
        let server = server::start("127.0.0.1", 0, limits, handler, metrics).expect("proxy starts");
        let base = format!("http://{}", server.local_addr());
        TestProxy {
            server: Some(server),
            proxy,
            base,
            scratch: None,
        }
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    /// The running server (for queue inspection).
    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("running")
    }

    /// Stops the server with a grace period; returns whether all requests finished.
    pub fn stop(&mut self, grace: Duration) -> bool {
        self.server.take().is_none_or(|server| server.stop(grace))
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
        if !std::thread::panicking() {
            register_credentials(&self.proxy.config);
            log_capture::assert_logs_clean();
        }
    }
}

/// Registers the caller keys and tokens of `config`, and those in its credentials file now.
fn register_credentials(config: &Config) {
    for key in &config.proxy_api_keys {
        secrets::register(SecretKind::ProxyKey, key);
    }
    if let Some(token) = &config.access_token {
        secrets::register(SecretKind::AccessToken, token);
    }
    if let Some(token) = &config.refresh_token {
        secrets::register(SecretKind::RefreshToken, token);
    }
    secrets::register_credentials_file(&config.credentials_file);
}

/// An answer: status, headers (lowercased names) and body text.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    /// Asserts an OpenAI-shaped error with this status and returns the error object.
    pub fn expect_error(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "body: {}", self.body);
        let body = self.json();
        let error = body["error"].clone();
        for key in ["message", "type", "param", "code"] {
            assert!(
                error.get(key).is_some(),
                "error.{key} missing in {}",
                self.body
            );
        }
        error
    }
}

/// A ureq agent that reports every status as an answer.
pub fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn collect(response: ureq::http::Response<ureq::Body>) -> Answer {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = response.into_body().read_to_string().expect("body");
    if status >= 400 {
        secrets::assert_error_body_clean(&format!("a {status} answer"), &body);
    }
    Answer {
        status,
        headers,
        body,
    }
}

/// GET with the test key.
pub fn get(url: &str) -> Answer {
    collect(
        client()
            .get(url)
            .header("Authorization", format!("Bearer {PROXY_KEY}"))
            .call()
            .expect("GET"),
    )
}

/// GET with a chosen Authorization header (or none).
pub fn get_with_auth(url: &str, authorization: Option<&str>) -> Answer {
    let mut request = client().get(url);
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    collect(request.call().expect("GET"))
}

/// POST a raw body with the test key.
pub fn post_raw(url: &str, body: &[u8]) -> Answer {
    collect(
        client()
            .post(url)
            .header("Authorization", format!("Bearer {PROXY_KEY}"))
            .header("Content-Type", "application/json")
            .send(body)
            .expect("POST"),
    )
}

/// POST JSON with the test key.
pub fn post_json(url: &str, body: &Value) -> Answer {
    post_raw(url, body.to_string().as_bytes())
}

/// Sends a raw HTTP/1.1 request over a new connection and returns the stream, positioned
/// after the request was written.
pub fn raw_request(addr: &str, method: &str, path: &str, body: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {PROXY_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body).expect("write body");
    stream
}

/// Reads an HTTP response head from `reader`: status and lowercased headers.
pub fn read_head(reader: &mut impl BufRead) -> (u16, HashMap<String, String>) {
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    (status, headers)
}

/// Reads one chunk of a chunked body; `None` at the final chunk.
pub fn read_chunk(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut size = String::new();
    reader.read_line(&mut size).expect("chunk size");
    let size = usize::from_str_radix(size.trim(), 16).expect("hex size");
    if size == 0 {
        let mut end = String::new();
        reader.read_line(&mut end).expect("final CRLF");
        return None;
    }
    let mut data = vec![0; size + 2];
    reader.read_exact(&mut data).expect("chunk data");
    data.truncate(size);
    Some(data)
}

/// Streams a request and returns the event data objects (via the chunked reader); a chat
/// stream's closing `[DONE]` is the string `"[DONE]"`.
pub fn stream_events(
    addr: &str,
    path: &str,
    body: &Value,
) -> (u16, HashMap<String, String>, Vec<Value>) {
    let stream = raw_request(addr, "POST", path, body.to_string().as_bytes());
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader);
    let mut text = Vec::new();
    if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
        while let Some(chunk) = read_chunk(&mut reader) {
            text.extend(chunk);
        }
    } else {
        let length: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        text.resize(length, 0);
        reader.read_exact(&mut text).expect("body");
    }
    let text = String::from_utf8(text).expect("utf-8 stream");
    if status >= 400 {
        secrets::assert_error_body_clean(&format!("a {status} answer to {path}"), &text);
    }
    let events: Vec<Value> = text
        .split("\n\n")
        .filter_map(|frame| {
            let data: Vec<&str> = frame
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            (!data.is_empty()).then(|| match data.join("\n").as_str() {
                "[DONE]" => Value::from("[DONE]"),
                data => serde_json::from_str(data).expect("event JSON"),
            })
        })
        .collect();
    for event in events.iter().filter(|event| is_error_event(event)) {
        secrets::assert_error_body_clean(&format!("an error event of {path}"), &event.to_string());
    }
    (status, headers, events)
}

/// An in-band error: a Responses `error` or `response.failed` event, or a chat chunk
/// carrying `error`.
pub fn is_error_event(event: &Value) -> bool {
    matches!(
        event.get("type").and_then(Value::as_str),
        Some("error" | "response.failed")
    ) || event.get("error").is_some_and(|error| !error.is_null())
}
