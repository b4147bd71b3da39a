//! Upstream faults over real sockets: an unreachable, silent, lying or broken backend. Each case
//! checks what the caller gets (status and OpenAI-shaped error code, or for streams the in-band
//! `error` event) and that the same proxy serves the next normal request afterwards. Unusual
//! but valid chunk framings of a good stream come first: they must decode to the same answer.

#![expect(clippy::expect_used, reason = "test helpers fail loudly")]

#[path = "support/fake_codex.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod fake_codex;
#[path = "support/fake_oauth.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod fake_oauth;
#[path = "support/harness.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod harness;
#[path = "support/raw_upstream.rs"]
mod raw_upstream;
#[path = "support/secrets.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod secrets;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use fake_codex::{FakeCodex, Script, sse_data};
use fake_oauth::FakeOAuth;
use harness::{Answer, TestProxy, config, get, post_json};
use raw_upstream::{
    Fault, RawUpstream, SSE_HEAD_CHUNKED, chunk, closing_events, completed_stream, frame,
    opening_events, sse_head_with_length,
};
use serde_json::{Value, json};

/// Short upstream timeouts and no retries, so every fault shows at once and stays bounded.
const FAST: &[(&str, &str)] = &[
    ("UPSTREAM_MAX_RETRIES", "0"),
    ("UPSTREAM_CONNECT_TIMEOUT_SECS", "1"),
    ("UPSTREAM_HEADERS_TIMEOUT_SECS", "1"),
    ("UPSTREAM_IDLE_TIMEOUT_SECS", "1"),
    ("CLIENT_TIMEOUT_SECS", "5"),
];

fn proxy_at(base: &str) -> TestProxy {
    TestProxy::start(config(base, FAST))
}

fn ask(proxy: &TestProxy) -> Answer {
    post_json(
        &format!("{}/v1/responses", proxy.base),
        &json!({"model": "gpt-5.5", "input": "hi"}),
    )
}

/// A streaming request: the answer and the data of its SSE frames.
fn ask_stream(proxy: &TestProxy) -> (Answer, Vec<Value>) {
    let answer = post_json(
        &format!("{}/v1/responses", proxy.base),
        &json!({"model": "gpt-5.5", "input": "hi", "stream": true}),
    );
    let events = sse_data(&answer.body);
    (answer, events)
}

/// Asserts the answer is an OpenAI-shaped error with this status and code; returns its message.
fn expect_code(answer: &Answer, status: u16, code: &str) -> String {
    let error = answer.expect_error(status);
    assert_eq!(error["code"], code, "body: {}", answer.body);
    error["message"].as_str().unwrap_or_default().to_string()
}

/// Asserts a 200 stream that ends with an in-band `error` event of this code, numbered after
/// the previous event; returns its message.
fn expect_in_band_error(answer: &Answer, events: &[Value], code: &str) -> String {
    assert_eq!(answer.status, 200, "body: {}", answer.body);
    let last = events.last().unwrap_or(&Value::Null);
    assert_eq!(last["type"], "error", "events: {events:?}");
    assert_eq!(last["code"], code, "events: {events:?}");
    if events.len() >= 2 {
        let before = events[events.len() - 2]["sequence_number"].as_u64();
        assert_eq!(
            last["sequence_number"].as_u64(),
            before.map(|s| s + 1),
            "the error event is numbered after the last relayed one"
        );
    }
    last["message"].as_str().unwrap_or_default().to_string()
}

/// The next normal request through the same proxy succeeds (the fault's default is normal).
fn serves_next(proxy: &TestProxy, text: &str) {
    let answer = ask(proxy);
    assert_eq!(
        answer.status, 200,
        "next request after a fault: {}",
        answer.body
    );
    assert_eq!(
        answer.json()["output"][0]["content"][0]["text"],
        text,
        "{}",
        answer.body
    );
}

/// For a proxy whose upstream stays broken: it still answers what needs no upstream, at once.
fn still_serves_local_routes(proxy: &TestProxy) {
    let started = Instant::now();
    assert_eq!(get(&format!("{}/healthz", proxy.base)).status, 200);
    assert_eq!(get(&format!("{}/v1/models", proxy.base)).status, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

#[test]
fn connection_refused_is_502_unreachable() {
    let addr = closed_port();
    let proxy = proxy_at(&format!("http://{addr}/backend-api/codex"));
    let started = Instant::now();
    let message = expect_code(&ask(&proxy), 502, "upstream_unreachable");
    assert!(message.contains("refused"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let (answer, _) = ask_stream(&proxy);
    expect_code(&answer, 502, "upstream_unreachable");
    still_serves_local_routes(&proxy);
    // The backend comes back on the same port: the same proxy serves again.
    let Ok(listener) = TcpListener::bind(addr) else {
        eprintln!("port {addr} was taken meanwhile; skipping the recovery check");
        return;
    };
    drop(listener);
    let upstream = RawUpstream::start_at(addr, Fault::Normal("back again".into()));
    serves_next(&proxy, "back again");
    drop(upstream);
}

#[test]
fn dns_failure_is_502_unreachable_and_bounded() {
    // `.invalid` never resolves (RFC 6761); a resolver that asks the network is bounded by
    // ureq's and our own deadline below.
    let proxy = proxy_at("http://nonexistent.invalid/backend-api/codex");
    let started = Instant::now();
    let answer = ask(&proxy);
    let elapsed = started.elapsed();
    eprintln!("DNS failure answered in {elapsed:?}");
    expect_code(&answer, 502, "upstream_unreachable");
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
    still_serves_local_routes(&proxy);
}

#[test]
fn tls_to_a_plain_tcp_server_is_502_naming_the_cause() {
    let upstream = RawUpstream::start(Fault::Greet(
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec(),
    ));
    let proxy = proxy_at(&upstream.https_base_url());
    let started = Instant::now();
    let answer = ask(&proxy);
    eprintln!(
        "TLS failure answered in {:?}: {}",
        started.elapsed(),
        answer.body
    );
    expect_code(&answer, 502, "upstream_unreachable");
    assert!(started.elapsed() < Duration::from_secs(3));
    let (answer, _) = ask_stream(&proxy);
    expect_code(&answer, 502, "upstream_unreachable");
    still_serves_local_routes(&proxy);
}

#[test]
fn dns_and_tls_failures_name_their_cause() {
    let proxy = proxy_at("http://nonexistent.invalid/backend-api/codex");
    let message = expect_code(&ask(&proxy), 502, "upstream_unreachable");
    let lower = message.to_ascii_lowercase();
    assert!(
        lower.contains("host") || lower.contains("dns") || lower.contains("resolve"),
        "the cause should name the name lookup: {message}"
    );
    let upstream = RawUpstream::start(Fault::Greet(
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec(),
    ));
    let proxy = proxy_at(&upstream.https_base_url());
    let message = expect_code(&ask(&proxy), 502, "upstream_unreachable");
    let lower = message.to_ascii_lowercase();
    assert!(
        lower.contains("tls") || lower.contains("protocol"),
        "the cause should name TLS or the protocol: {message}"
    );
}

#[test]
fn connect_timeout_against_a_full_backlog_is_bounded() {
    // A listener that never accepts: once its accept queue is full, Linux drops further SYNs,
    // so a connect neither succeeds nor is refused. Fill it until a short connect times out.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut held = Vec::new();
    let mut full = false;
    for _ in 0..5000 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(stream) => held.push(stream),
            Err(_) => {
                full = true;
                break;
            }
        }
    }
    eprintln!("backlog full after {} connections: {full}", held.len());
    if !full {
        // Not reproducible on this kernel (e.g. a huge backlog); nothing to assert.
        eprintln!("could not fill the accept queue; connect-timeout case skipped");
        return;
    }
    let proxy = proxy_at(&format!("http://{addr}/backend-api/codex"));
    let started = Instant::now();
    let answer = ask(&proxy);
    let elapsed = started.elapsed();
    eprintln!("connect timeout answered in {elapsed:?}: {}", answer.body);
    assert!(
        matches!(answer.status, 502 | 504),
        "connect timeout: {} {}",
        answer.status,
        answer.body
    );
    let code = answer.json()["error"]["code"].clone();
    assert!(
        code == "upstream_timeout" || code == "upstream_unreachable",
        "{}",
        answer.body
    );
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "bounded by UPSTREAM_CONNECT_TIMEOUT_SECS=1: {elapsed:?}"
    );
    still_serves_local_routes(&proxy);
    drop(held);
}

#[test]
fn no_response_headers_is_504_within_the_headers_timeout() {
    let upstream = RawUpstream::start(Fault::Normal("after silence".into()));
    let proxy = proxy_at(&upstream.base_url());
    upstream.push(Fault::Silent);
    let started = Instant::now();
    let answer = ask(&proxy);
    let elapsed = started.elapsed();
    expect_code(&answer, 504, "upstream_timeout");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "UPSTREAM_HEADERS_TIMEOUT_SECS=1, took {elapsed:?}"
    );
    serves_next(&proxy, "after silence");

    upstream.push(Fault::Silent);
    let (answer, _) = ask_stream(&proxy);
    expect_code(&answer, 504, "upstream_timeout");
    serves_next(&proxy, "after silence");
}

/// `stream` chunked `size` bytes at a time, each size line written by `size_line` (given the
/// chunk's length), then the last chunk line `last` and the blank line that ends the body.
fn chunked(stream: &[u8], size: usize, size_line: impl Fn(usize) -> String, last: &str) -> Vec<u8> {
    let mut out = SSE_HEAD_CHUNKED.as_bytes().to_vec();
    for piece in stream.chunks(size) {
        out.extend(size_line(piece.len()).into_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend(format!("{last}\r\n\r\n").into_bytes());
    out
}

#[test]
fn valid_chunk_framings_decode_to_the_same_answer() {
    // Chunk extensions (`;name=value`, RFC 9112 7.1.1), upper-case hex with leading zeros,
    // chunks that split lines and events anywhere, and one chunk for the whole stream.
    let text = "framed alike";
    let stream = completed_stream(text).into_bytes();
    let framings: Vec<(&str, Vec<u8>)> = vec![
        (
            "one chunk",
            chunked(&stream, stream.len(), |n| format!("{n:x}\r\n"), "0"),
        ),
        (
            "7-byte chunks",
            chunked(&stream, 7, |n| format!("{n:x}\r\n"), "0"),
        ),
        (
            "extensions",
            chunked(&stream, 50, |n| format!("{n:x};ext=\"a;b\"\r\n"), "0;last"),
        ),
        (
            "bare extension",
            chunked(&stream, 33, |n| format!("{n:x};x\r\n"), "0;x"),
        ),
        (
            "padded upper hex",
            chunked(&stream, 200, |n| format!("{n:04X}\r\n"), "000"),
        ),
    ];
    let upstream = RawUpstream::start(Fault::Normal("after framings".into()));
    let proxy = proxy_at(&upstream.base_url());
    for (case, bytes) in framings {
        upstream.push(Fault::SendThenClose(bytes.clone()));
        let answer = ask(&proxy);
        assert_eq!(answer.status, 200, "{case}: {}", answer.body);
        assert_eq!(
            answer.json()["output"][0]["content"][0]["text"],
            text,
            "{case}: {}",
            answer.body
        );

        upstream.push(Fault::SendThenClose(bytes));
        let (answer, events) = ask_stream(&proxy);
        assert_eq!(answer.status, 200, "{case}: {}", answer.body);
        let last = events.last().unwrap_or(&Value::Null);
        assert_eq!(last["type"], "response.completed", "{case}: {events:?}");
        let deltas: Vec<&str> = events
            .iter()
            .filter(|event| event["type"] == "response.output_text.delta")
            .filter_map(|event| event["delta"].as_str())
            .collect();
        assert_eq!(deltas, ["par"], "{case}: {events:?}");
    }
    serves_next(&proxy, "after framings");
}

/// A pooled connection that the backend closed while it sat idle is found closed when a call
/// takes it (`pool_probe` skips only the probe on return): the next call opens a new connection
/// and is served at once, without a retry.
#[test]
fn a_pooled_connection_the_backend_closed_is_not_used() {
    let upstream = RawUpstream::start(Fault::Normal("second, on a new connection".into()));
    // Keep-alive framing (no `connection: close`), so the proxy pools the connection; the
    // upstream closes it right after the answer.
    let stream = completed_stream("first, then the backend closes");
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n",
        stream.len()
    );
    upstream.push(Fault::SendThenClose((head + &stream).into_bytes()));
    let proxy = proxy_at(&upstream.base_url());
    assert_eq!(ask(&proxy).status, 200);
    assert!(
        harness::wait_until(Duration::from_secs(5), || upstream.closed() >= 1),
        "the upstream closed its first connection"
    );
    serves_next(&proxy, "second, on a new connection");
    assert_eq!(upstream.connections(), 2);
    let metrics = get(&format!("{}/metrics", proxy.base)).body;
    assert!(
        metrics.contains("codex_proxy_upstream_retries_total 0\n"),
        "no call went out on the closed connection: {metrics}"
    );
}

#[test]
fn connection_closed_before_any_answer_is_502() {
    let upstream = RawUpstream::start(Fault::Normal("after close".into()));
    let proxy = proxy_at(&upstream.base_url());
    upstream.push(Fault::CloseAtOnce);
    expect_code(&ask(&proxy), 502, "upstream_unreachable");
    serves_next(&proxy, "after close");
    upstream.push(Fault::SendThenClose(
        b"HTTP/1.1 200 OK\r\ncontent-ty".to_vec(),
    ));
    expect_code(&ask(&proxy), 502, "upstream_unreachable");
    serves_next(&proxy, "after close");
}

/// The broken-stream faults: each is a 502 `upstream_stream_broken` for a non-streaming caller
/// and a 200 ending in an in-band error event for a streaming one.
fn broken_streams() -> Vec<(&'static str, Vec<u8>)> {
    let mut mid_stream = SSE_HEAD_CHUNKED.as_bytes().to_vec();
    mid_stream.extend(chunk(opening_events().as_bytes()));
    let mut mid_chunk = SSE_HEAD_CHUNKED.as_bytes().to_vec();
    mid_chunk.extend(chunk(opening_events().as_bytes()));
    mid_chunk.extend(b"200\r\nevent: response.output_text.delta\ndata: {\"ty");
    let mut sized_short = sse_head_with_length(10_000).into_bytes();
    sized_short.extend(opening_events().as_bytes());
    let html = "<!DOCTYPE html><html><body>Welcome to nginx!</body></html>";
    let html_200 = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{html}",
        html.len()
    );
    vec![
        ("headers then close", SSE_HEAD_CHUNKED.as_bytes().to_vec()),
        ("events then close", mid_stream),
        ("close inside a chunk", mid_chunk),
        ("content-length not reached", sized_short),
        ("200 with an HTML page", html_200.into_bytes()),
    ]
}

#[test]
fn streams_that_break_are_502_or_an_in_band_error() {
    let upstream = RawUpstream::start(Fault::Normal("after a break".into()));
    let proxy = proxy_at(&upstream.base_url());
    for (case, bytes) in broken_streams() {
        upstream.push(Fault::SendThenClose(bytes.clone()));
        let started = Instant::now();
        let message = expect_code(&ask(&proxy), 502, "upstream_stream_broken");
        eprintln!("{case}: 502 in {:?}: {message}", started.elapsed());
        serves_next(&proxy, "after a break");

        upstream.push(Fault::SendThenClose(bytes));
        let (answer, events) = ask_stream(&proxy);
        expect_in_band_error(&answer, &events, "upstream_stream_broken");
        serves_next(&proxy, "after a break");
    }
}

#[test]
fn an_idle_stream_ends_with_an_in_band_timeout() {
    let upstream = RawUpstream::start(Fault::Normal("after idling".into()));
    let proxy = proxy_at(&upstream.base_url());
    let mut bytes = SSE_HEAD_CHUNKED.as_bytes().to_vec();
    bytes.extend(chunk(opening_events().as_bytes()));

    upstream.push(Fault::SendThenHang(bytes.clone()));
    let started = Instant::now();
    let (answer, events) = ask_stream(&proxy);
    let elapsed = started.elapsed();
    let message = expect_in_band_error(&answer, &events, "upstream_timeout");
    assert!(message.contains("idle"), "{message}");
    assert_eq!(events[0]["type"], "response.created", "{events:?}");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "UPSTREAM_IDLE_TIMEOUT_SECS=1, took {elapsed:?}"
    );
    serves_next(&proxy, "after idling");

    // Silent right after the head: no event ever came.
    upstream.push(Fault::SendThenHang(SSE_HEAD_CHUNKED.as_bytes().to_vec()));
    let (answer, events) = ask_stream(&proxy);
    expect_in_band_error(&answer, &events, "upstream_timeout");
    upstream.push(Fault::SendThenHang(SSE_HEAD_CHUNKED.as_bytes().to_vec()));
    expect_code(&ask(&proxy), 504, "upstream_timeout");
    serves_next(&proxy, "after idling");
}

#[test]
fn an_event_over_16_mib_is_502_stream_broken() {
    let upstream = RawUpstream::start(Fault::Normal("after the flood".into()));
    let proxy = proxy_at(&upstream.base_url());
    upstream.push(Fault::HugeEvent { bytes: 17 << 20 });
    let started = Instant::now();
    let message = expect_code(&ask(&proxy), 502, "upstream_stream_broken");
    eprintln!("17 MiB event refused in {:?}", started.elapsed());
    assert!(message.contains("exceeded"), "{message}");
    serves_next(&proxy, "after the flood");

    upstream.push(Fault::HugeEvent { bytes: 17 << 20 });
    let (answer, events) = ask_stream(&proxy);
    expect_in_band_error(&answer, &events, "upstream_stream_broken");
    serves_next(&proxy, "after the flood");
}

#[test]
fn odd_events_are_skipped_and_the_stream_completes() {
    let upstream = RawUpstream::start(Fault::Normal("after odd events".into()));
    let proxy = proxy_at(&upstream.base_url());
    let mut body = opening_events().into_bytes();
    body.extend(b"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"\xff\xfe\xc3\x28\"}\n\n");
    body.extend(b"event: response.output_text.delta\ndata: {not json at all\n\n");
    body.extend(b"event: response.mystery\ndata: [1,2,3]\n\n");
    body.extend(b": a comment line\nretry: 10\nid: 7\n\n");
    body.extend(frame(&json!({"type": "codex.rate_limits", "sequence_number": 2})).as_bytes());
    body.extend(
        b"event: response.something_new\ndata: {\"type\":\"response.something_new\",\"x\":1}\n\n",
    );
    body.extend(b"data: \"just a string\"\n\n");
    body.extend(closing_events("survived the noise").as_bytes());
    // No content-type at all, sized body.
    let mut bytes = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend(&body);

    upstream.push(Fault::SendThenClose(bytes.clone()));
    let answer = ask(&proxy);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.json()["output"][0]["content"][0]["text"],
        "survived the noise"
    );

    upstream.push(Fault::SendThenClose(bytes));
    let (answer, events) = ask_stream(&proxy);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        events.last().unwrap_or(&Value::Null)["type"],
        "response.completed",
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| e["type"] == "error"),
        "no error event: {events:?}"
    );
    assert!(
        !answer.body.contains('\u{fffd}'),
        "invalid UTF-8 is not relayed mangled"
    );
    serves_next(&proxy, "after odd events");
}

#[test]
fn a_200_html_page_from_the_fake_is_not_a_success() {
    let fake = FakeCodex::start();
    let proxy = proxy_at(&fake.base_url());
    let html = Script::Raw {
        status: 200,
        headers: vec![("content-type".into(), "text/html".into())],
        body: "<html><head><title>Just a moment...</title></head></html>".into(),
    };
    fake.push_script(html.clone());
    expect_code(&ask(&proxy), 502, "upstream_stream_broken");
    fake.push_script(Script::text("fine again"));
    serves_next(&proxy, "fine again");
    fake.push_script(html);
    let (answer, events) = ask_stream(&proxy);
    expect_in_band_error(&answer, &events, "upstream_stream_broken");
    fake.push_script(Script::text("fine again"));
    serves_next(&proxy, "fine again");
}

fn http_error(status: u16, content_type: &str, body: &str, headers: &[(&str, &str)]) -> Script {
    Script::HttpError {
        status,
        content_type: content_type.into(),
        body: body.into(),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
    }
}

/// (case, scripts, status, code, needle in the message, `Retry-After`).
type ErrorCase = (
    &'static str,
    Vec<Script>,
    u16,
    &'static str,
    &'static str,
    Option<&'static str>,
);

#[test]
fn every_upstream_error_status_maps_as_documented() {
    let fake = FakeCodex::start();
    let oauth = FakeOAuth::start("test-refresh-token");
    oauth.set_next_access_token("rotated-access");
    // Whatever the token endpoint issues is accepted; only the scripted 401s refuse.
    fake.accept_access_token_prefix("");
    let proxy = TestProxy::start(config(
        &fake.base_url(),
        &[
            ("UPSTREAM_MAX_RETRIES", "0"),
            ("AUTH_BASE_URL", &oauth.base_url()),
        ],
    ));
    let json_type = "application/json";
    let usage = json!({"error": {"type": "usage_limit_reached", "message": "The usage limit has been reached",
        "plan_type": "pro", "resets_at": 1_900_000_000, "resets_in_seconds": 77}})
    .to_string();
    let other_429 =
        json!({"error": {"type": "rate_limit_exceeded", "message": "Slow down please"}})
            .to_string();
    // (case, scripts, status, code, needle in message, Retry-After)
    let cases: Vec<ErrorCase> = vec![
        (
            "400 detail",
            vec![http_error(
                400,
                json_type,
                r#"{"detail":"Unsupported model: gpt-x"}"#,
                &[],
            )],
            400,
            "upstream_rejected",
            "Unsupported model: gpt-x",
            None,
        ),
        (
            "401 after one refresh",
            vec![
                http_error(401, json_type, r#"{"detail":"expired"}"#, &[]),
                http_error(401, json_type, r#"{"detail":"still expired"}"#, &[]),
            ],
            502,
            "upstream_unauthorized",
            "refresh",
            None,
        ),
        (
            "403 HTML",
            vec![http_error(
                403,
                "text/html",
                "<html><body>Access denied</body></html>",
                &[],
            )],
            502,
            "upstream_cloudflare_challenge",
            "Cloudflare",
            None,
        ),
        (
            "403 JSON",
            vec![http_error(
                403,
                json_type,
                r#"{"detail":"Unsupported client"}"#,
                &[],
            )],
            403,
            "upstream_rejected",
            "Unsupported client",
            None,
        ),
        (
            "404",
            vec![http_error(404, json_type, r#"{"detail":"Not Found"}"#, &[])],
            404,
            "upstream_rejected",
            "Not Found",
            None,
        ),
        (
            "429 usage_limit_reached",
            vec![http_error(429, json_type, &usage, &[])],
            429,
            "usage_limit_reached",
            "usage limit",
            Some("77"),
        ),
        (
            "429 other",
            vec![http_error(
                429,
                json_type,
                &other_429,
                &[("retry-after", "7")],
            )],
            429,
            "rate_limit_exceeded",
            "Slow down please",
            Some("7"),
        ),
        (
            "500",
            vec![http_error(
                500,
                json_type,
                r#"{"error":{"message":"boom"}}"#,
                &[],
            )],
            502,
            "upstream_status",
            "500",
            None,
        ),
        (
            "502",
            vec![http_error(
                502,
                "text/html",
                "<html>Bad gateway</html>",
                &[],
            )],
            502,
            "upstream_status",
            "502",
            None,
        ),
        (
            "503",
            vec![http_error(503, "text/plain", "upstream connect error", &[])],
            503,
            "upstream_status",
            "503",
            None,
        ),
        (
            "504",
            vec![http_error(504, "text/plain", "", &[])],
            502,
            "upstream_status",
            "504",
            None,
        ),
    ];
    for (case, scripts, status, code, needle, retry_after) in cases {
        for stream in [false, true] {
            for script in &scripts {
                fake.push_script(script.clone());
            }
            let answer = if stream {
                ask_stream(&proxy).0
            } else {
                ask(&proxy)
            };
            eprintln!(
                "{case} (stream {stream}): {} {}",
                answer.status, answer.body
            );
            let message = expect_code(&answer, status, code);
            assert!(message.contains(needle), "{case}: {message}");
            assert_eq!(
                answer.headers.get("retry-after").map(String::as_str),
                retry_after,
                "{case}"
            );
            fake.push_script(Script::text("recovered"));
            serves_next(&proxy, "recovered");
        }
    }
    assert_eq!(
        oauth.calls(),
        2,
        "one refresh per 401 case, never a second in a row"
    );
}
