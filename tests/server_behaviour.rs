//! The server over real sockets: routes, caller authentication, bad input, the bounded queue,
//! panic isolation, slow clients and graceful shutdown.

#[path = "support/fake_codex.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod fake_codex;
#[path = "support/harness.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod harness;
#[path = "support/secrets.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod secrets;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use codex_sub_proxy::exchange::Exchange;
use codex_sub_proxy::routes::Proxy;
use codex_sub_proxy::server::Handler;
use fake_codex::{FakeCodex, Script};
use harness::{
    PROXY_KEY, TestProxy, config, get, get_with_auth, post_json, post_raw, raw_request, read_chunk,
    read_head, wait_until,
};
use serde_json::json;

fn proxy_with(fake: &FakeCodex, overrides: &[(&str, &str)]) -> TestProxy {
    TestProxy::start(config(&fake.base_url(), overrides))
}

#[test]
fn healthz_is_public_and_everything_else_needs_a_key() {
    let fake = FakeCodex::start();
    let proxy = proxy_with(&fake, &[("PROXY_API_KEY", "old-key,new-key")]);
    let health = get_with_auth(&format!("{}/healthz", proxy.base), None);
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), json!({"ok": true}));

    for path in [
        "/v1/models",
        "/v1/models/gpt-5.5",
        "/v1/responses",
        "/v1/files",
        "/nope",
        "/v1/../healthz",
    ] {
        let answer = get_with_auth(&format!("{}{path}", proxy.base), None);
        answer.expect_error(401);
        assert_eq!(
            answer.headers.get("www-authenticate").map(String::as_str),
            Some("Bearer"),
            "{path}"
        );
        get_with_auth(&format!("{}{path}", proxy.base), Some("Bearer wrong")).expect_error(401);
        get_with_auth(&format!("{}{path}", proxy.base), Some("Basic old-key")).expect_error(401);
    }
    for key in ["old-key", "new-key"] {
        let answer = get_with_auth(
            &format!("{}/v1/models", proxy.base),
            Some(&format!("Bearer {key}")),
        );
        assert_eq!(answer.status, 200, "{key}");
    }
}

#[test]
fn models_routes_use_openai_shapes() {
    let fake = FakeCodex::start();
    let proxy = proxy_with(&fake, &[("CODEX_MODELS", "gpt-5.5, gpt-5.4-mini")]);
    let list = get(&format!("{}/v1/models", proxy.base)).json();
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| m["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["gpt-5.5", "gpt-5.4-mini"]);
    for model in list["data"].as_array().expect("data") {
        assert_eq!(model["object"], "model");
        assert!(model["created"].is_i64() && model["owned_by"].is_string());
    }
    let one = get(&format!("{}/v1/models/gpt-5.4-mini", proxy.base));
    assert_eq!(one.json()["id"], "gpt-5.4-mini");
    let missing = get(&format!("{}/v1/models/gpt-0", proxy.base)).expect_error(404);
    assert_eq!(missing["code"], "model_not_found");
}

#[test]
fn files_unknown_paths_and_wrong_methods() {
    let fake = FakeCodex::start();
    let proxy = proxy_with(&fake, &[]);
    for path in ["/v1/files", "/v1/files/file-abc/content"] {
        let error = get(&format!("{}{path}", proxy.base)).expect_error(501);
        assert!(
            error["message"]
                .as_str()
                .expect("message")
                .contains("input_file")
        );
        post_raw(&format!("{}{path}", proxy.base), b"{}").expect_error(501);
    }
    get(&format!("{}/v1/nothing", proxy.base)).expect_error(404);
    let wrong = get(&format!("{}/v1/responses", proxy.base));
    wrong.expect_error(405);
    assert_eq!(wrong.headers.get("allow").map(String::as_str), Some("POST"));
    post_raw(&format!("{}/v1/models", proxy.base), b"{}").expect_error(405);
}

#[test]
fn bad_bodies_get_400_naming_the_problem() {
    let fake = FakeCodex::start();
    let proxy = proxy_with(&fake, &[]);
    let url = format!("{}/v1/responses", proxy.base);
    let cases: [(&[u8], &str); 5] = [
        (b"", "empty"),
        (b"{\"model\":", "not valid JSON"),
        (b"\xff\xfe{}", "UTF-8"),
        (b"[1,2,3]", "JSON object"),
        (b"{\"model\":\"gpt-5.5\",\"input\":7}", "input"),
    ];
    for (body, needle) in cases {
        let error = post_raw(&url, body).expect_error(400);
        let message = error["message"].as_str().expect("message");
        assert!(
            message.contains(needle),
            "{message:?} should mention {needle:?}"
        );
    }
    assert!(
        fake.responses_requests().is_empty(),
        "nothing invalid reached the upstream"
    );
}

#[test]
fn bodies_over_the_limit_get_413() {
    let fake = FakeCodex::start();
    let proxy = proxy_with(&fake, &[("MAX_BODY_BYTES", "65536")]);
    let url = format!("{}/v1/responses", proxy.base);
    let big = json!({"model": "gpt-5.5", "input": "x".repeat(70_000)});
    let error = post_json(&url, &big).expect_error(413);
    assert_eq!(error["code"], "request_too_large");
    // A declared length far beyond any memory is refused without reading or allocating it.
    let mut stream = TcpStream::connect(proxy.addr()).expect("connect");
    stream
        .write_all(b"POST /v1/responses HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000000\r\n\r\n{\"a\":")
        .expect("write");
    let mut reader = BufReader::new(stream);
    let (status, _) = read_head(&mut reader);
    assert_eq!(status, 413);
    drop(reader);
    assert_eq!(
        get(&format!("{}/healthz", proxy.base)).status,
        200,
        "the proxy is still up"
    );
    // Just under the limit is fine.
    let fits = json!({"model": "gpt-5.5", "input": "x".repeat(60_000)});
    assert_eq!(post_json(&url, &fits).status, 200);
}

/// Connects and sends the head of a `POST /v1/responses` with the caller key, the `extra`
/// header lines and `Content-Length: length`; the reader reads the answers.
#[expect(clippy::expect_used, reason = "a test helper fails loudly")]
fn send_post_head(
    proxy: &TestProxy,
    extra: &str,
    length: usize,
) -> (TcpStream, BufReader<TcpStream>) {
    let mut stream = TcpStream::connect(proxy.addr()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "POST /v1/responses HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {PROXY_KEY}\r\n\
         Content-Type: application/json\r\n{extra}Content-Length: {length}\r\n\r\n"
    )
    .expect("write head");
    let reader = BufReader::new(stream.try_clone().expect("clone"));
    (stream, reader)
}

/// Reads one answer, which must be a 200 with a JSON body of a given length.
#[expect(clippy::expect_used, reason = "a test helper fails loudly")]
fn read_json_answer(reader: &mut BufReader<TcpStream>) -> serde_json::Value {
    let (status, headers) = read_head(reader);
    assert_eq!(status, 200);
    let length: usize = headers["content-length"].parse().expect("length");
    let mut answer = vec![0; length];
    reader.read_exact(&mut answer).expect("body");
    serde_json::from_slice(&answer).expect("json")
}

#[test]
fn a_body_over_the_limit_closes_its_connection() {
    let fake = FakeCodex::start();
    let proxy = proxy_with(&fake, &[("MAX_BODY_BYTES", "65536")]);
    let body = json!({"model": "gpt-5.5", "input": "x".repeat(70_000)}).to_string();
    let (mut stream, mut reader) = send_post_head(&proxy, "", body.len());
    stream.write_all(body.as_bytes()).expect("write body");
    let (status, headers) = read_head(&mut reader);
    assert_eq!(status, 413);
    assert_eq!(headers["connection"], "close");
    let length: usize = headers["content-length"].parse().expect("length");
    reader.read_exact(&mut vec![0; length]).expect("body");
    // Whatever the client sends next is not read as a request: the connection ends.
    let _ = write!(stream, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "answered after the 413: {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert_eq!(fake.responses_requests().len(), 0);
}

#[test]
fn the_next_request_on_a_connection_is_read_while_a_large_bodied_one_is_served() {
    let fake = FakeCodex::start();
    let proxy = proxy_with(&fake, &[]);
    // The first answer takes about 4 s upstream (20 deltas 200 ms apart); the second comes
    // at once.
    let slow = "the slow answer, in twenty small pieces.";
    fake.push_script(Script::Slow {
        text: slow.into(),
        deltas: 20,
        delay_ms: 200,
    });
    fake.push_script(Script::text("the quick answer"));
    // Over tiny_http's 1 KiB read-ahead, so the body is read from the connection itself.
    let first = json!({"model": "gpt-5.5", "input": "x".repeat(4_000)}).to_string();
    let second = json!({"model": "gpt-5.5", "input": "second"}).to_string();
    let (mut stream, mut reader) = send_post_head(&proxy, "", first.len());
    stream.write_all(first.as_bytes()).expect("write body");
    // The backend's scripts go in the order its requests arrive.
    assert!(wait_until(Duration::from_secs(5), || fake
        .responses_requests()
        .len()
        == 1));
    write!(
        stream,
        "POST /v1/responses HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {PROXY_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{second}",
        second.len()
    )
    .expect("write the pipelined request");
    // The second request is read, and sent upstream, while the first is still being answered.
    assert!(
        wait_until(Duration::from_secs(2), || fake.responses_requests().len()
            == 2),
        "the pipelined request waited for the first answer"
    );
    // The answers still come in the order asked.
    for expected in [slow, "the quick answer"] {
        let answer = read_json_answer(&mut reader);
        assert_eq!(answer["status"], "completed");
        assert_eq!(
            answer["output"][0]["content"][0]["text"], expected,
            "{answer}"
        );
    }
}

#[test]
fn a_client_that_expects_100_continue_gets_it_then_its_answer() {
    let fake = FakeCodex::start();
    let proxy = proxy_with(&fake, &[]);
    let body = json!({"model": "gpt-5.5", "input": "x".repeat(4_000)}).to_string();
    let (mut stream, mut reader) = send_post_head(&proxy, "Expect: 100-continue\r\n", body.len());
    // The body is sent only after the interim answer, as curl does.
    let (status, _) = read_head(&mut reader);
    assert_eq!(status, 100);
    stream.write_all(body.as_bytes()).expect("write body");
    let answer = read_json_answer(&mut reader);
    assert_eq!(answer["status"], "completed");
}

#[test]
fn stalled_bodies_do_not_hold_workers_and_time_out() {
    let fake = FakeCodex::start();
    let proxy = proxy_with(&fake, &[("WORKERS", "2"), ("CLIENT_TIMEOUT_SECS", "2")]);
    // Twenty clients send headers and part of a 100 KB body, then stall.
    let stalled: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut stream = TcpStream::connect(proxy.addr()).expect("connect");
            stream
                .write_all(b"POST /v1/responses HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-proxy-key\r\nContent-Length: 100000\r\n\r\n{\"model\":")
                .expect("write");
            stream
        })
        .collect();
    let started = Instant::now();
    let health = get(&format!("{}/healthz", proxy.base));
    assert_eq!(health.status, 200);
    let answered = post_json(
        &format!("{}/v1/responses", proxy.base),
        &json!({"model": "gpt-5.5", "input": "hi"}),
    );
    assert_eq!(
        answered.status, 200,
        "a normal request is served while 20 bodies stall"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "served before the stalled bodies time out"
    );
    for stream in stalled {
        let mut reader = BufReader::new(stream);
        let (status, _) = read_head(&mut reader);
        assert_eq!(status, 408);
    }
}

#[test]
fn full_queue_answers_503_with_retry_after_at_once() {
    let fake = FakeCodex::start();
    fake.set_default_script(Script::Slow {
        text: "slow answer".into(),
        deltas: 40,
        delay_ms: 50,
    });
    let proxy = proxy_with(&fake, &[("WORKERS", "1"), ("QUEUE_DEPTH", "1")]);
    let body = json!({"model": "gpt-5.5", "input": "hi", "stream": true});
    // One request occupies the only worker...
    let busy = raw_request(
        &proxy.addr(),
        "POST",
        "/v1/responses",
        body.to_string().as_bytes(),
    );
    assert!(wait_until(Duration::from_secs(10), || fake
        .responses_requests()
        .len()
        == 1));
    // ...one waits in the queue...
    let queued = raw_request(
        &proxy.addr(),
        "POST",
        "/v1/responses",
        body.to_string().as_bytes(),
    );
    assert!(wait_until(Duration::from_secs(10), || proxy
        .server()
        .queued()
        == 1));
    // ...and the next is refused at once.
    let started = Instant::now();
    let refused = post_json(&format!("{}/v1/responses", proxy.base), &body);
    let error = refused.expect_error(503);
    assert_eq!(error["code"], "overloaded");
    assert_eq!(
        refused.headers.get("retry-after").map(String::as_str),
        Some("1")
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "refused without waiting for the slow stream"
    );
    drop(busy);
    // The queued request is served once the worker frees up.
    let mut reader = BufReader::new(queued);
    let (status, _) = read_head(&mut reader);
    assert_eq!(status, 200);
}

struct PanicOn(Arc<Proxy>);

impl Handler for PanicOn {
    fn handle(&self, exchange: &mut Exchange) {
        if exchange.path() == "/v1/panic" {
            #[expect(clippy::panic, reason = "the test injects a panic on purpose")]
            {
                panic!("injected panic for the test");
            }
        }
        self.0.handle(exchange);
    }
}

#[test]
fn a_panicking_handler_answers_500_and_its_worker_lives_on() {
    let fake = FakeCodex::start();
    // The scratch directory of the credentials file is bound first, so it outlives the server.
    let (settings, _scratch) = config(&fake.base_url(), &[("WORKERS", "1")]).into_parts();
    let proxy = Arc::new(codex_sub_proxy::build_proxy(settings).expect("proxy"));
    let server = TestProxy::start_with(proxy.clone(), Arc::new(PanicOn(proxy)));
    for _ in 0..3 {
        let error = get(&format!("{}/v1/panic", server.base)).expect_error(500);
        assert_eq!(error["code"], "internal_error");
        assert!(
            !error["message"]
                .as_str()
                .expect("message")
                .contains("injected")
        );
        // The only worker survived and serves the next request.
        assert_eq!(get(&format!("{}/v1/models", server.base)).status, 200);
    }
}

#[test]
fn shutdown_lets_streams_finish_and_stops_accepting() {
    let fake = FakeCodex::start();
    fake.set_default_script(Script::Slow {
        text: "finish me please".into(),
        deltas: 10,
        delay_ms: 50,
    });
    let mut proxy = proxy_with(&fake, &[]);
    let body = json!({"model": "gpt-5.5", "input": "hi", "stream": true});
    let stream = raw_request(
        &proxy.addr(),
        "POST",
        "/v1/responses",
        body.to_string().as_bytes(),
    );
    assert!(wait_until(Duration::from_secs(10), || fake
        .responses_requests()
        .len()
        == 1));
    let addr = proxy.addr();
    let reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let (status, _) = read_head(&mut reader);
        let mut text = Vec::new();
        while let Some(chunk) = read_chunk(&mut reader) {
            text.extend(chunk);
        }
        (status, String::from_utf8(text).expect("utf-8"))
    });
    let finished_in_time = proxy.stop(Duration::from_secs(20));
    assert!(finished_in_time);
    assert!(TcpStream::connect(&addr).is_err(), "no longer accepting");
    let (status, text) = reader.join().expect("reader");
    assert_eq!(status, 200);
    assert!(
        text.contains("response.completed"),
        "the stream ran to its end"
    );
}

#[test]
fn a_request_on_an_open_connection_during_shutdown_is_refused_and_the_connection_closed() {
    let fake = FakeCodex::start();
    let mut proxy = proxy_with(&fake, &[]);
    let mut stream = TcpStream::connect(proxy.addr()).expect("connect");
    let request =
        format!("GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {PROXY_KEY}\r\n\r\n");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    stream.write_all(request.as_bytes()).expect("write");
    let (status, headers) = read_head(&mut reader);
    assert_eq!(status, 200);
    let length: usize = headers["content-length"].parse().expect("length");
    reader.read_exact(&mut vec![0; length]).expect("body");

    assert!(proxy.stop(Duration::from_secs(5)));
    // The connection outlived the listener; its next request is answered, not queued.
    stream.write_all(request.as_bytes()).expect("write");
    let (status, headers) = read_head(&mut reader);
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(headers["connection"].to_ascii_lowercase(), "close");
    let mut body = String::new();
    reader
        .read_to_string(&mut body)
        .expect("body to the end: the connection closes");
    let error: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(error["error"]["code"], "shutting_down");
    assert_eq!(error["error"]["type"], "server_overloaded");
}

#[test]
fn keep_alive_connections_serve_several_requests() {
    let fake = FakeCodex::start();
    let proxy = proxy_with(&fake, &[]);
    let mut stream = TcpStream::connect(proxy.addr()).expect("connect");
    for _ in 0..3 {
        write!(
            stream,
            "GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {PROXY_KEY}\r\n\r\n"
        )
        .expect("write");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let (status, headers) = read_head(&mut reader);
        assert_eq!(status, 200);
        let length: usize = headers["content-length"].parse().expect("length");
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("body");
        assert!(headers.contains_key("x-request-id"));
    }
}
