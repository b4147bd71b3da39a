//! Slow peers (issue 7): a client that stops reading a long stream, a client that reads one very
//! slowly, and a token endpoint that accepts connections and never answers (or answers 5xx after
//! a pause). Each case checks that what the peer held (a worker, the upstream connection, the
//! token layer) is let go within a bound, that other callers are served meanwhile, and prints the
//! figures it measured.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

#[path = "support/fake_codex.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod fake_codex;
#[path = "support/harness.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod harness;
#[path = "support/secrets.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod secrets;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use fake_codex::{DEFAULT_TEXT, FakeCodex, Script};
use harness::{
    Answer, TestProxy, access_token_expiring_at, config, get, post_json, raw_request, read_head,
    unix_now, wait_until,
};
use serde_json::json;

/// Deltas in the long answer.
const LONG_DELTAS: usize = 2048;
/// Bytes of text in each delta: 2048 × 4 KiB = 8 MiB of text, several times what the kernel
/// buffers between the fake, the proxy and a client that does not read.
const DELTA_BYTES: usize = 4096;

/// An answer of [`LONG_DELTAS`] deltas of [`DELTA_BYTES`] bytes each, every delta distinct.
fn long_answer() -> Script {
    let words = LONG_DELTAS * DELTA_BYTES / 8;
    let text: String = (0..words).map(|i| format!("{i:07} ")).collect();
    Script::Text {
        text,
        deltas: LONG_DELTAS,
    }
}

fn streaming_request() -> Vec<u8> {
    json!({"model": "gpt-5.5", "input": "a long answer, please", "stream": true})
        .to_string()
        .into_bytes()
}

/// A counter from the proxy's `/metrics` text.
fn metric(proxy: &TestProxy, name: &str) -> u64 {
    let text = get(&format!("{}/metrics", proxy.base)).body;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

/// Runs `call` on its own thread, so the test can bound how long it waits for the answer.
fn in_background<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> Receiver<T> {
    let (send, answer) = mpsc::channel();
    thread::spawn(move || {
        // The test may have given up waiting; then nobody wants the answer.
        let _ = send.send(call());
    });
    answer
}

/// A non-streaming request on a new connection, answered on a background thread.
fn ask_in_background(proxy: &TestProxy) -> Receiver<Answer> {
    let url = format!("{}/v1/responses", proxy.base);
    in_background(move || post_json(&url, &json!({"model": "gpt-5.5", "input": "hi"})))
}

#[test]
fn a_client_that_stops_reading_a_stream_frees_the_worker_and_the_upstream() {
    let fake = FakeCodex::start();
    fake.push_script(long_answer());
    let proxy = TestProxy::start(config(
        &fake.base_url(),
        &[("WORKERS", "1"), ("CLIENT_TIMEOUT_SECS", "2")],
    ));
    let disconnects_before = metric(&proxy, "codex_proxy_client_disconnects_total");
    let metrics = proxy.proxy.metrics.clone();

    // Sends the request and never reads a byte of the answer.
    let stalled = raw_request(&proxy.addr(), "POST", "/v1/responses", &streaming_request());
    assert!(
        wait_until(Duration::from_secs(10), || {
            metrics.open_streams.load(Ordering::SeqCst) == 1
        }),
        "the long stream started"
    );
    let started = Instant::now();

    // With one worker, this is served only once the stalled stream has let it go.
    let answer = ask_in_background(&proxy)
        .recv_timeout(Duration::from_secs(15))
        .expect("the single worker was freed within 15 s");
    let released = started.elapsed();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["status"], "completed", "{}", answer.body);
    assert!(answer.body.contains(DEFAULT_TEXT), "{}", answer.body);

    assert_eq!(metrics.open_streams.load(Ordering::SeqCst), 0);
    assert_eq!(
        metric(&proxy, "codex_proxy_client_disconnects_total"),
        disconnects_before + 1,
        "the proxy counted the client as gone"
    );
    assert!(
        fake.wait_for_aborted_streams(1, Duration::from_secs(10)),
        "the upstream connection was closed while the fake was still streaming"
    );
    let relayed = metrics.bytes_relayed.load(Ordering::SeqCst);
    eprintln!(
        "a client that stopped reading: worker free again {} ms after the stream started \
         (CLIENT_TIMEOUT_SECS=2); {} KiB of {} KiB of text written to it; upstream closed",
        released.as_millis(),
        relayed / 1024,
        LONG_DELTAS * DELTA_BYTES / 1024,
    );
    assert!(
        relayed < (LONG_DELTAS * DELTA_BYTES) as u64,
        "the client was not sent the whole answer"
    );
    drop(stalled);
}

/// What the slow reader saw.
struct SlowRead {
    bytes: u64,
    elapsed: Duration,
    ended: String,
}

/// Reads `stream` `SLOW_READ_BYTES` at a time every `SLOW_READ_PAUSE` until the peer ends
/// it, `stop` is set, or `limit` passes; `read` counts the bytes as they come.
fn read_slowly(
    stream: TcpStream,
    read: &AtomicU64,
    stop: &AtomicBool,
    limit: Duration,
) -> SlowRead {
    const SLOW_READ_BYTES: usize = 256;
    const SLOW_READ_PAUSE: Duration = Duration::from_millis(100);
    let started = Instant::now();
    let mut reader = BufReader::with_capacity(SLOW_READ_BYTES, stream);
    let (status, _) = read_head(&mut reader);
    assert_eq!(status, 200);
    let mut buffer = [0u8; SLOW_READ_BYTES];
    let ended = loop {
        if stop.load(Ordering::SeqCst) {
            break "stopped by the test".to_owned();
        }
        if started.elapsed() >= limit {
            break format!("still open after {limit:?}");
        }
        match reader.read(&mut buffer) {
            Ok(0) => break "end of stream".to_owned(),
            Ok(n) => {
                read.fetch_add(n as u64, Ordering::SeqCst);
            }
            Err(error) => break format!("read failed ({:?})", error.kind()),
        }
        // The pace is the behaviour under test (a client reading slowly), not synchronisation.
        thread::sleep(SLOW_READ_PAUSE);
    };
    SlowRead {
        bytes: read.load(Ordering::SeqCst),
        elapsed: started.elapsed(),
        ended,
    }
}

#[test]
fn a_client_reading_a_stream_slowly_does_not_block_the_others() {
    let fake = FakeCodex::start();
    fake.push_script(long_answer());
    let proxy = TestProxy::start(config(
        &fake.base_url(),
        &[("WORKERS", "2"), ("CLIENT_TIMEOUT_SECS", "2")],
    ));
    let metrics = proxy.proxy.metrics.clone();
    let disconnects_before = metrics.client_disconnects.load(Ordering::SeqCst);

    let stream = raw_request(&proxy.addr(), "POST", "/v1/responses", &streaming_request());
    let read = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let slow_reader = {
        let (read, stop) = (read.clone(), stop.clone());
        thread::spawn(move || read_slowly(stream, &read, &stop, Duration::from_secs(30)))
    };
    assert!(
        wait_until(Duration::from_secs(10), || {
            read.load(Ordering::SeqCst) > 0 && metrics.open_streams.load(Ordering::SeqCst) == 1
        }),
        "the slow reader's stream started"
    );
    let stream_started = Instant::now();

    let started = Instant::now();
    let answer = ask_in_background(&proxy)
        .recv_timeout(Duration::from_secs(10))
        .expect("a second request is answered while the slow reader is connected");
    let second = started.elapsed();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains(DEFAULT_TEXT), "{}", answer.body);
    let started = Instant::now();
    let health_url = format!("{}/healthz", proxy.base);
    let health = in_background(move || get(&health_url))
        .recv_timeout(Duration::from_secs(10))
        .expect("/healthz answers while the slow reader is connected");
    let healthz = started.elapsed();
    assert_eq!(health.status, 200);
    assert_eq!(
        metrics.open_streams.load(Ordering::SeqCst),
        1,
        "both were answered while the slow stream was still being written"
    );
    let read_meanwhile = read.load(Ordering::SeqCst);

    // Reading 256 B every 100 ms frees the kernel buffers too slowly: the receive window
    // reopens in large steps only, so one of the proxy's writes soon makes no progress for
    // CLIENT_TIMEOUT_SECS, and the write timeout ends the stream and frees the worker.
    let ended = wait_until(Duration::from_secs(20), || {
        metrics.open_streams.load(Ordering::SeqCst) == 0
            && metrics.busy_workers.load(Ordering::SeqCst) == 0
    });
    let held_for = stream_started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let slow = slow_reader.join().expect("slow reader");
    eprintln!(
        "a client reading 256 B every 100 ms: second request {} ms, /healthz {} ms while it was \
         connected ({} B read by then); its stream ended by the proxy after {} ms \
         (CLIENT_TIMEOUT_SECS=2); the reader read {} B in {} ms ({})",
        second.as_millis(),
        healthz.as_millis(),
        read_meanwhile,
        held_for.as_millis(),
        slow.bytes,
        slow.elapsed.as_millis(),
        slow.ended,
    );
    assert!(ended, "the slow stream still held a worker after 20 s");
    assert_eq!(
        metrics.client_disconnects.load(Ordering::SeqCst),
        disconnects_before + 1,
        "the proxy gave up on the slow client"
    );
    assert!(
        fake.wait_for_aborted_streams(1, Duration::from_secs(10)),
        "the upstream connection was closed"
    );
}

/// What the loopback token endpoint does with each connection.
#[derive(Clone, Copy)]
enum TokenEndpointMode {
    /// Accepts and holds the connection, never reading or answering.
    Silent,
    /// Reads the request, waits this long, then answers 503 and closes.
    SlowServerError(Duration),
}

/// A loopback token endpoint that counts the connections it accepts; it stops when dropped.
struct TokenEndpoint {
    addr: SocketAddr,
    accepted: Arc<(Mutex<Vec<Instant>>, Condvar)>,
    stopping: Arc<AtomicBool>,
    accept_thread: Option<JoinHandle<()>>,
}

impl TokenEndpoint {
    fn start(mode: TokenEndpointMode) -> TokenEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the token endpoint");
        let addr = listener.local_addr().expect("token endpoint address");
        let accepted = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        let accept_thread = {
            let (accepted, stopping) = (accepted.clone(), stopping.clone());
            thread::spawn(move || {
                // Held until the endpoint stops, so a silent peer never closes them.
                let mut held = Vec::new();
                let mut answering = Vec::new();
                for connection in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(connection) = connection else { continue };
                    let (times, changed) = &*accepted;
                    times
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(Instant::now());
                    changed.notify_all();
                    match mode {
                        TokenEndpointMode::Silent => held.push(connection),
                        TokenEndpointMode::SlowServerError(pause) => {
                            answering.push(thread::spawn(move || answer_503(connection, pause)));
                        }
                    }
                }
                for answer in answering {
                    let _ = answer.join();
                }
                drop(held);
            })
        };
        TokenEndpoint {
            addr,
            accepted,
            stopping,
            accept_thread: Some(accept_thread),
        }
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// When each connection so far was accepted.
    fn accepts(&self) -> Vec<Instant> {
        self.accepted
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until `n` connections were accepted or `limit` passes; returns the accept times.
    fn wait_for_accepts(&self, n: usize, limit: Duration) -> Vec<Instant> {
        let (times, changed) = &*self.accepted;
        let times = times.lock().unwrap_or_else(PoisonError::into_inner);
        let (times, _) = changed
            .wait_timeout_while(times, limit, |times| times.len() < n)
            .unwrap_or_else(PoisonError::into_inner);
        times.clone()
    }
}

impl Drop for TokenEndpoint {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the blocking accept, which then sees the stop.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.accept_thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request (head and `Content-Length` body), waits `pause`, answers 503 and closes.
fn answer_503(connection: TcpStream, pause: Duration) {
    let _ = connection.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(connection);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    // The pause is the behaviour under test (a slow token endpoint), not synchronisation.
    thread::sleep(pause);
    let body = r#"{"error":{"message":"temporarily unavailable","code":"server_error"}}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = reader.get_mut().write_all(answer.as_bytes());
}

/// Token endpoint calls per refresh: one try and two retries with backoff
/// (`TRANSIENT_RETRIES` in src/credentials.rs).
const ATTEMPTS_PER_REFRESH: usize = 3;

/// A proxy whose access token has expired, so every request must refresh at `endpoint` first.
fn proxy_with_expired_token(
    fake: &FakeCodex,
    endpoint: &TokenEndpoint,
    timeout: &str,
) -> TestProxy {
    let expired = access_token_expiring_at(unix_now() - 60);
    let auth = endpoint.base_url();
    TestProxy::start(config(
        &fake.base_url(),
        &[
            ("AUTH_BASE_URL", auth.as_str()),
            ("OPENAI_ACCESS_TOKEN", expired.as_str()),
            ("OPENAI_REFRESH_TOKEN", "slow-peers-refresh-token"),
            ("UPSTREAM_MAX_RETRIES", "0"),
            ("UPSTREAM_CONNECT_TIMEOUT_SECS", "1"),
            ("UPSTREAM_HEADERS_TIMEOUT_SECS", timeout),
        ],
    ))
}

fn ask(proxy: &TestProxy) -> Answer {
    post_json(
        &format!("{}/v1/responses", proxy.base),
        &json!({"model": "gpt-5.5", "input": "hi"}),
    )
}

/// Asserts a 502 `token_refresh_failed` and returns its message.
fn expect_refresh_failed(answer: &Answer) -> String {
    let error = answer.expect_error(502);
    assert_eq!(error["code"], "token_refresh_failed", "{}", answer.body);
    error["message"].as_str().unwrap_or_default().to_owned()
}

/// Asserts the attempts were spaced by a backoff, not made in a tight loop.
fn spaced_by_backoff(accepts: &[Instant]) {
    for pair in accepts.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        assert!(
            gap >= Duration::from_millis(150),
            "backoff, not a tight loop: {gap:?}"
        );
    }
}

#[test]
fn a_token_endpoint_that_never_answers_fails_the_request_in_bounded_attempts() {
    let endpoint = TokenEndpoint::start(TokenEndpointMode::Silent);
    let fake = FakeCodex::start();
    let proxy = proxy_with_expired_token(&fake, &endpoint, "1");
    let file = proxy.proxy.config.credentials_file.clone();
    let seeded = std::fs::read(&file).expect("the seeded credentials file");

    let started = Instant::now();
    let url = format!("{}/v1/responses", proxy.base);
    let pending =
        in_background(move || post_json(&url, &json!({"model": "gpt-5.5", "input": "hi"})));
    assert!(
        !endpoint
            .wait_for_accepts(1, Duration::from_secs(5))
            .is_empty(),
        "the refresh reached the token endpoint"
    );
    let health = get(&format!("{}/healthz", proxy.base));
    assert_eq!(health.status, 200, "/healthz answers during the refresh");
    let answer = pending
        .recv_timeout(Duration::from_secs(15))
        .expect("the request ends within 15 s");
    let elapsed = started.elapsed();
    let message = expect_refresh_failed(&answer);
    assert!(message.contains("timed out"), "{message}");
    let first = endpoint.accepts();
    eprintln!(
        "silent token endpoint: {} token_refresh_failed in {} ms after {} connection(s): {}",
        answer.status,
        elapsed.as_millis(),
        first.len(),
        message
    );
    assert_eq!(first.len(), ATTEMPTS_PER_REFRESH, "accepts: {first:?}");
    spaced_by_backoff(&first);

    // Nothing refreshes in the background: the next request makes the same few attempts.
    let started = Instant::now();
    expect_refresh_failed(&ask(&proxy));
    let elapsed = started.elapsed();
    let second = endpoint.accepts();
    eprintln!(
        "second request: failed in {} ms; {} connection(s) in all",
        elapsed.as_millis(),
        second.len()
    );
    assert_eq!(
        second.len(),
        2 * ATTEMPTS_PER_REFRESH,
        "accepts: {second:?}"
    );
    spaced_by_backoff(&second[ATTEMPTS_PER_REFRESH..]);

    assert!(
        fake.responses_requests().is_empty(),
        "an expired token is not sent upstream"
    );
    assert_eq!(
        std::fs::read(&file).expect("credentials file"),
        seeded,
        "the credentials file is untouched"
    );
    assert_eq!(get(&format!("{}/healthz", proxy.base)).status, 200);
    assert_eq!(endpoint.accepts().len(), 2 * ATTEMPTS_PER_REFRESH);
}

#[test]
fn a_token_endpoint_answering_5xx_slowly_fails_the_request_in_bounded_attempts() {
    let endpoint = TokenEndpoint::start(TokenEndpointMode::SlowServerError(Duration::from_millis(
        300,
    )));
    let fake = FakeCodex::start();
    let proxy = proxy_with_expired_token(&fake, &endpoint, "2");
    let file = proxy.proxy.config.credentials_file.clone();
    let seeded = std::fs::read(&file).expect("the seeded credentials file");

    let started = Instant::now();
    let answer = ask(&proxy);
    let elapsed = started.elapsed();
    let message = expect_refresh_failed(&answer);
    assert!(message.contains("HTTP 503"), "{message}");
    let accepts = endpoint.accepts();
    eprintln!(
        "token endpoint answering 503 after 300 ms: {} in {} ms after {} connection(s): {}",
        answer.status,
        elapsed.as_millis(),
        accepts.len(),
        message
    );
    assert_eq!(accepts.len(), ATTEMPTS_PER_REFRESH, "accepts: {accepts:?}");
    spaced_by_backoff(&accepts);
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert!(fake.responses_requests().is_empty());
    assert_eq!(std::fs::read(&file).expect("credentials file"), seeded);
    assert_eq!(get(&format!("{}/healthz", proxy.base)).status, 200);
}
