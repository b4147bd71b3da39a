//! Hostile clients over raw sockets: request smuggling shapes, oversized heads, pathological
//! JSON, wrong types, header injection, path tricks, key guessing, slow connections (idle ones:
//! `tests/idle_connections.rs`).
//! Every case checks that nothing answers 500 and that the proxy serves the next normal request.

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

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use fake_codex::FakeCodex;
use harness::{PROXY_KEY, TestProxy, config, get, get_with_auth, post_json, post_raw};
use serde_json::{Value, json};

fn proxy_with(fake: &FakeCodex, overrides: &[(&str, &str)]) -> TestProxy {
    TestProxy::start(config(&fake.base_url(), overrides))
}

/// What a raw exchange ended with.
#[derive(Debug)]
enum Outcome {
    /// A response: status and body (up to what arrived before the connection ended).
    Answered(u16, String),
    /// The connection was closed or reset without a response.
    Closed,
    /// Nothing within the bound.
    Hung,
}

/// Writes `request` on a new connection (a failed write means the proxy closed it) and reads
/// until the connection ends or `bound` passes.
fn exchange_raw(addr: &str, request: &[u8], bound: Duration) -> Outcome {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(bound)).expect("timeout");
    let _ = stream.write_all(request);
    read_outcome(&mut stream)
}

/// Reads one response head and what follows of it, until EOF, reset or timeout.
fn read_outcome(stream: &mut TcpStream) -> Outcome {
    let mut data = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let timed_out = loop {
        match stream.read(&mut buf) {
            Ok(0) => break false,
            Ok(n) => {
                data.extend_from_slice(&buf[..n]);
                if complete_response(&data) {
                    break false;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break true;
            }
            Err(_) => break false,
        }
    };
    let text = String::from_utf8_lossy(&data).to_string();
    match text
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|s| s.parse().ok())
    {
        Some(status) => {
            let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            Outcome::Answered(status, body.to_string())
        }
        None if timed_out => Outcome::Hung,
        None => Outcome::Closed,
    }
}

/// Whether `data` holds a whole response with a `content-length` body.
fn complete_response(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data).to_ascii_lowercase();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|length| body.len() >= length)
}

/// Refused: a 4xx (not 500), or the connection closed; never a hang.
fn assert_refused(case: &str, outcome: &Outcome) {
    eprintln!("{case}: {outcome:?}");
    match outcome {
        Outcome::Answered(status, body) => assert!(
            (400..500).contains(status),
            "{case}: expected a 4xx or a closed connection, got {status} {body}"
        ),
        Outcome::Closed => {}
        Outcome::Hung => panic!("{case}: no answer within the bound"),
    }
}

/// The proxy still serves: `/healthz` and a normal `/v1/responses` request, promptly.
fn serves_next(proxy: &TestProxy) {
    let started = Instant::now();
    assert_eq!(get(&format!("{}/healthz", proxy.base)).status, 200);
    let answer = post_json(
        &format!("{}/v1/responses", proxy.base),
        &json!({"model": "gpt-5.5", "input": "still there?"}),
    );
    assert_eq!(answer.status, 200, "next normal request: {}", answer.body);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "served in {:?}",
        started.elapsed()
    );
}

fn head(method: &str, path: &str, extra: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {PROXY_KEY}\r\n{extra}\r\n"
    )
}

/// The framing conflicts: Content-Length against Transfer-Encoding, two Content-Lengths. Each
/// body is followed by a smuggled `GET /v1/models` that one of the framings would expose.
fn conflicting_framings() -> Vec<(&'static str, String)> {
    let body = json!({"model": "gpt-5.5", "input": "hi"}).to_string();
    let chunked = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    let smuggled =
        format!("GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {PROXY_KEY}\r\n\r\n");
    let post = |extra: &str, payload: &str| {
        format!(
            "{}{payload}{smuggled}",
            head("POST", "/v1/responses", extra)
        )
    };
    vec![
        (
            "CL then TE",
            post(
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                &chunked,
            ),
        ),
        (
            "TE then CL",
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                &chunked,
            ),
        ),
        (
            "two different Content-Lengths",
            post(
                &format!("Content-Length: 5\r\nContent-Length: {}\r\n", body.len()),
                &body,
            ),
        ),
        (
            "TE: gzip, chunked with CL",
            post(
                "Transfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n",
                &chunked,
            ),
        ),
        (
            "TE: identity",
            post("Transfer-Encoding: identity\r\n", &body),
        ),
    ]
}

/// Every status line the connection carries until it closes or `bound` passes, and whether it
/// was closed by the proxy.
fn all_responses(addr: &str, request: &[u8], bound: Duration) -> (Vec<u16>, bool) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(bound)).expect("timeout");
    let _ = stream.write_all(request);
    let mut data = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false;
            }
            Err(_) => break true,
        }
    };
    let text = String::from_utf8_lossy(&data);
    let statuses = text
        .match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| text.get(at + 9..at + 12)?.parse().ok())
        .collect();
    (statuses, closed)
}

#[test]
fn conflicting_framing_never_500s_or_hangs() {
    let fake = FakeCodex::start();
    let proxy = proxy_with(&fake, &[("CLIENT_TIMEOUT_SECS", "2")]);
    for (case, request) in conflicting_framings() {
        let started = Instant::now();
        let (statuses, closed) =
            all_responses(&proxy.addr(), request.as_bytes(), Duration::from_secs(4));
        eprintln!(
            "{case}: statuses {statuses:?}, closed by proxy: {closed}, after {:?}",
            started.elapsed()
        );
        assert!(!statuses.contains(&500), "{case}: {statuses:?}");
        serves_next(&proxy);
    }
}

#[test]
fn conflicting_framing_is_refused() {
    let fake = FakeCodex::start();
    let proxy = proxy_with(&fake, &[("CLIENT_TIMEOUT_SECS", "2")]);
    for (case, request) in conflicting_framings() {
        let outcome = exchange_raw(&proxy.addr(), request.as_bytes(), Duration::from_secs(8));
        assert_refused(case, &outcome);
        let (statuses, _) =
            all_responses(&proxy.addr(), request.as_bytes(), Duration::from_secs(4));
        assert!(
            statuses.len() <= 1,
            "{case}: smuggled request answered: {statuses:?}"
        );
        serves_next(&proxy);
    }
}

#[test]
fn heads_split_anywhere_or_pipelined_are_read_exactly() {
    let fake = FakeCodex::start();
    let proxy = proxy_with(&fake, &[]);
    let request = head("GET", "/v1/models", "X-Note: a\r\n");
    // One byte per write: CR and LF arrive apart, lines span many reads.
    let mut stream = TcpStream::connect(proxy.addr()).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    for byte in request.as_bytes() {
        stream.write_all(&[*byte]).expect("write");
        std::thread::sleep(Duration::from_micros(200));
    }
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    match read_outcome(&mut stream) {
        Outcome::Answered(status, _) => assert_eq!(status, 200),
        other => panic!("byte-by-byte head: {other:?}"),
    }
    // Three requests in one write: each is read from where the previous one ended.
    let three = format!("{request}{}{request}", head("GET", "/healthz", ""));
    let (statuses, _) = all_responses(&proxy.addr(), three.as_bytes(), Duration::from_secs(2));
    assert_eq!(statuses, [200, 200, 200]);
}

#[test]
fn a_lone_lf_or_cr_in_a_head_closes_the_connection_unanswered() {
    let fake = FakeCodex::start();
    let proxy = proxy_with(&fake, &[]);
    // A front proxy that ends lines at a lone LF or CR would see a second header here (and
    // frame the body by it); this server must not serve what it reads differently.
    for (case, extra) in [
        ("lone LF", "X-Note: a\nContent-Length: 5\r\n"),
        ("lone CR", "X-Note: a\rContent-Length: 5\r\n"),
        ("LF-only line ends", "X-Note: a\n\n"),
    ] {
        let request = head("GET", "/v1/models", extra);
        let outcome = exchange_raw(&proxy.addr(), request.as_bytes(), Duration::from_secs(5));
        assert!(matches!(outcome, Outcome::Closed), "{case}: {outcome:?}");
    }
    serves_next(&proxy);
}

#[test]
fn oversized_heads_are_refused() {
    let fake = FakeCodex::start();
    let proxy = proxy_with(&fake, &[("CLIENT_TIMEOUT_SECS", "2")]);
    let long_line = format!("X-Big: {}\r\n", "a".repeat(20 * 1024));
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let long_target = format!("/v1/models?{}", "q".repeat(64 * 1024));
    for (case, request) in [
        ("20 KiB header line", head("GET", "/v1/models", &long_line)),
        ("200 headers", head("GET", "/v1/models", &many)),
        ("64 KiB request target", head("GET", &long_target, "")),
    ] {
        let outcome = exchange_raw(&proxy.addr(), request.as_bytes(), Duration::from_secs(8));
        assert_refused(case, &outcome);
        serves_next(&proxy);
    }
}

#[test]
fn pathological_json_is_a_quick_400() {
    let fake = FakeCodex::start();
    let proxy = proxy_with(&fake, &[]);
    let url = format!("{}/v1/responses", proxy.base);
    let deep = "[".repeat(100_000);
    let deep_in_input = format!(r#"{{"model":"gpt-5.5","input":{deep}"#);
    let ints = vec!["0"; 1_000_000].join(",");
    let huge_array = format!("[{ints}]");
    let huge_input = format!(r#"{{"model":"gpt-5.5","input":[{ints}]}}"#);
    for (case, body) in [
        ("100k nested [", deep.as_str()),
        ("100k nested [ inside input", deep_in_input.as_str()),
        ("1M ints as the body", huge_array.as_str()),
        ("1M ints as input", huge_input.as_str()),
    ] {
        let started = Instant::now();
        let answer = post_raw(&url, body.as_bytes());
        let elapsed = started.elapsed();
        eprintln!(
            "{case}: {} in {elapsed:?}: {}",
            answer.status,
            answer.body.chars().take(200).collect::<String>()
        );
        answer.expect_error(400);
        assert!(elapsed < Duration::from_secs(5), "{case} took {elapsed:?}");
        serves_next(&proxy);
    }
    assert!(
        fake.responses_requests()
            .iter()
            .all(|r| r.body["input"] != json!(0) && r.raw_body.len() < 1_000_000),
        "no pathological body reached the upstream"
    );
}

#[test]
fn wrong_types_are_400_naming_the_param() {
    let fake = FakeCodex::start();
    let proxy = proxy_with(&fake, &[]);
    let responses = |extra: Value| {
        let mut body = json!({"model": "gpt-5.5", "input": "hi"});
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        ("/v1/responses", body)
    };
    let chat = |extra: Value| {
        let mut body = json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        ("/v1/chat/completions", body)
    };
    let cases = [
        ("model", responses(json!({"model": 3}))),
        ("input", responses(json!({"input": {}}))),
        ("stream", responses(json!({"stream": "yes"}))),
        ("tools", responses(json!({"tools": "x"}))),
        ("instructions", responses(json!({"instructions": []}))),
        ("include", responses(json!({"include": "x"}))),
        ("model", chat(json!({"model": 3}))),
        ("messages", chat(json!({"messages": {}}))),
        ("messages", chat(json!({"messages": [{"role": 7}]}))),
        (
            "messages",
            chat(json!({"messages": [{"role": "user", "content": 5}]})),
        ),
        ("messages", chat(json!({"messages": ["hi"]}))),
        ("stream", chat(json!({"stream": "yes"}))),
        ("tools", chat(json!({"tools": "x"}))),
        ("tools", chat(json!({"tools": [{"type": "function"}]}))),
        (
            "tools",
            chat(json!({"tools": [{"type": "function", "function": "x"}]})),
        ),
        (
            "tools",
            chat(json!({"tools": [{"type": "function", "function": {"name": 7}}]})),
        ),
        ("tool_choice", chat(json!({"tool_choice": 5}))),
        ("response_format", chat(json!({"response_format": "x"}))),
        (
            "response_format",
            chat(json!({"response_format": {"type": "json_schema"}})),
        ),
        (
            "response_format",
            chat(json!({"response_format": {"type": 5}})),
        ),
        ("reasoning_effort", chat(json!({"reasoning_effort": 5}))),
        (
            "stream_options",
            chat(json!({"stream": true, "stream_options": 5})),
        ),
        ("functions", chat(json!({"functions": "x"}))),
    ];
    let mut wrong = Vec::new();
    for (param, (path, body)) in cases {
        let answer = post_json(&format!("{}{path}", proxy.base), &body);
        let error = answer.json()["error"].clone();
        eprintln!(
            "{path} {body}: {} param={} code={}",
            answer.status, error["param"], error["code"]
        );
        assert_ne!(answer.status, 500, "{path} {body}: {}", answer.body);
        let named = error["param"]
            .as_str()
            .is_some_and(|p| p.starts_with(param));
        if answer.status != 400 || !named {
            wrong.push(format!(
                "{path} {body} -> {} {}",
                answer.status, answer.body
            ));
        }
    }
    serves_next(&proxy);
    assert!(
        wrong.is_empty(),
        "not a 400 naming the param:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn wrong_types_in_fields_the_responses_handler_reads_are_400() {
    let fake = FakeCodex::start();
    let proxy = proxy_with(&fake, &[]);
    for (param, value) in [
        ("reasoning", json!(5)),
        ("tool_choice", json!(5)),
        ("prompt_cache_key", json!(5)),
    ] {
        let mut body = json!({"model": "gpt-5.5", "input": "hi"});
        body[param] = value;
        let answer = post_json(&format!("{}/v1/responses", proxy.base), &body);
        let error = answer.expect_error(400);
        assert_eq!(error["param"], param, "{}", answer.body);
    }
    serves_next(&proxy);
}

#[test]
fn header_injection_through_prompt_cache_key_is_impossible() {
    let fake = FakeCodex::start();
    let proxy = proxy_with(&fake, &[]);
    let keys = [
        "conv-1\r\nX-Injected: 1",
        "conv-2\nX-Injected: 1",
        "conv-3\rX-Injected: 1",
        "conv-4\u{0}X-Injected: 1",
        "conv-5\u{7f}",
        "conv-\u{e9}",
    ];
    for key in keys {
        for path in ["/v1/responses", "/v1/chat/completions"] {
            let body = if path == "/v1/responses" {
                json!({"model": "gpt-5.5", "input": "hi", "prompt_cache_key": key})
            } else {
                json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": "hi"}],
                       "prompt_cache_key": key})
            };
            let answer = post_json(&format!("{}{path}", proxy.base), &body);
            assert_eq!(answer.status, 200, "{key:?} {path}: {}", answer.body);
            let request = fake.responses_requests().pop().expect("reached upstream");
            assert!(
                request.header("x-injected").is_none(),
                "{key:?} {path}: injected header reached upstream: {:?}",
                request.headers
            );
            let session = request.header("session_id").expect("session_id header");
            eprintln!("{key:?} {path}: session_id={session:?}");
            assert_ne!(session, key, "{key:?} is not header-safe");
            assert!(
                session.len() == 36 && session.chars().all(|c| c.is_ascii_hexdigit() || c == '-'),
                "{key:?} {path}: a fresh UUID instead: {session:?}"
            );
        }
    }
    // Header-safe keys are the session id (HTAB is legal inside a field value).
    for key in ["conv-ok_1", "conv-6\tlooks-fine"] {
        post_json(
            &format!("{}/v1/responses", proxy.base),
            &json!({"model": "gpt-5.5", "input": "hi", "prompt_cache_key": key}),
        );
        let request = fake.responses_requests().pop().expect("reached upstream");
        assert_eq!(request.header("session_id"), Some(key));
    }
    serves_next(&proxy);
}

#[test]
fn path_tricks_never_bypass_the_key() {
    let fake = FakeCodex::start();
    let proxy = proxy_with(&fake, &[]);
    let paths = [
        "/v1/../healthz",
        "/v1/models/../../healthz",
        "/healthz/../v1/models",
        "/healthz/..%2Fv1/models",
        "/v1%2Fmodels",
        "//v1/models",
        "/V1/MODELS",
        "/v1/models?x=1",
        "/v1/models#frag",
        "/v1/models/",
        "/v1/models/gpt-5.5/",
        "/v1//models",
        "/./v1/models",
        "/%761/models",
        "/v1/models%00",
        "/metrics",
        "/readyz",
        "/v1/usage",
        "http://x/v1/models",
        "*",
    ];
    for path in paths {
        for method in ["GET", "POST"] {
            let request = format!(
                "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
            );
            let outcome = exchange_raw(&proxy.addr(), request.as_bytes(), Duration::from_secs(5));
            eprintln!("{method} {path} without a key: {outcome:?}");
            match &outcome {
                Outcome::Answered(status, body) => assert!(
                    matches!(status, 400 | 401 | 404 | 405),
                    "{method} {path} without a key: {status} {body}"
                ),
                Outcome::Closed => {}
                Outcome::Hung => panic!("{method} {path}: no answer"),
            }
        }
    }
    // With the key, case and encoding tricks find nothing either.
    for path in ["/V1/MODELS", "/v1%2Fmodels", "//v1/models"] {
        let answer = get(&format!("{}{path}", proxy.base));
        assert_eq!(answer.status, 404, "{path} with the key: {}", answer.body);
    }
    // /healthz with a query stays public (and is the only thing that is).
    let answer = get_with_auth(&format!("{}/healthz?x=1", proxy.base), None);
    assert_eq!(answer.status, 200, "{}", answer.body);
    serves_next(&proxy);
}

/// Median of `samples` in microseconds.
fn median_micros(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e6
}

#[test]
fn wrong_keys_are_all_401_and_timings_are_printed() {
    let fake = FakeCodex::start();
    let proxy = proxy_with(&fake, &[]);
    let agent = harness::client();
    let url = format!("{}/v1/models", proxy.base);
    let same_length: String = "x".repeat(PROXY_KEY.len());
    let same_prefix = format!("{}X", &PROXY_KEY[..PROXY_KEY.len() - 1]);
    let cases = [
        ("wrong short key", "k".to_string(), 401),
        ("right length, wrong bytes", same_length, 401),
        ("right length, last byte wrong", same_prefix, 401),
        ("wrong length (256)", "y".repeat(256), 401),
        ("the right key", PROXY_KEY.to_string(), 200),
    ];
    for (case, key, expected) in cases {
        let mut samples = Vec::with_capacity(200);
        for _ in 0..200 {
            let started = Instant::now();
            let response = agent
                .get(&url)
                .header("Authorization", format!("Bearer {key}"))
                .call()
                .expect("GET");
            let status = response.status().as_u16();
            let _ = response.into_body().read_to_string();
            samples.push(started.elapsed());
            assert_eq!(status, expected, "{case}");
        }
        eprintln!(
            "key timing: {case:32} median {:8.1} µs over 200",
            median_micros(samples)
        );
    }
    serves_next(&proxy);
}

#[test]
fn a_client_that_sends_headers_too_slowly_is_disconnected() {
    let fake = FakeCodex::start();
    let proxy = proxy_with(&fake, &[("CLIENT_TIMEOUT_SECS", "1")]);
    let mut slow = TcpStream::connect(proxy.addr()).expect("connect");
    slow.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let request = head("GET", "/v1/models", "");
    let started = Instant::now();
    let mut closed_after = None;
    let mut health_times = Vec::new();
    for (index, byte) in request.bytes().enumerate() {
        if slow.write_all(&[byte]).is_err() {
            closed_after = Some((index, started.elapsed(), None));
            break;
        }
        // The pause is the behaviour under test (a gap longer than CLIENT_TIMEOUT_SECS), not
        // synchronisation; /healthz is measured while it lasts.
        let gap_started = Instant::now();
        while gap_started.elapsed() < Duration::from_millis(1500) {
            let h = Instant::now();
            assert_eq!(get(&format!("{}/healthz", proxy.base)).status, 200);
            health_times.push(h.elapsed());
            let mut buf = [0u8; 256];
            match slow.read(&mut buf) {
                Ok(0) => {
                    closed_after = Some((index + 1, started.elapsed(), None));
                    break;
                }
                Ok(n) => {
                    let text = String::from_utf8_lossy(&buf[..n]).to_string();
                    closed_after = Some((index + 1, started.elapsed(), Some(text)));
                    break;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => {
                    closed_after = Some((index + 1, started.elapsed(), None));
                    break;
                }
            }
        }
        if closed_after.is_some() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the slow client is still connected after {:?}",
            started.elapsed()
        );
    }
    let (bytes, elapsed, answer) = closed_after.expect("the proxy closed the slow connection");
    eprintln!(
        "slow headers: connection ended after {bytes} byte(s), {elapsed:?}, answer {answer:?}"
    );
    if let Some(answer) = &answer {
        assert!(!answer.starts_with("HTTP/1.1 5"), "{answer}");
    }
    let worst = health_times.iter().max().copied().unwrap_or_default();
    eprintln!(
        "healthz during the slow client: {} calls, worst {worst:?}",
        health_times.len()
    );
    assert!(worst < Duration::from_millis(500), "healthz took {worst:?}");
    serves_next(&proxy);
}
