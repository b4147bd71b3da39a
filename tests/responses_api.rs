//! `/v1/responses` end to end over real sockets: the proxy between a client and the strict fake
//! Codex backend (and the fake token endpoint).

#[path = "support/fake_codex.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod fake_codex;
#[path = "support/fake_oauth.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod fake_oauth;
#[path = "support/harness.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod harness;
#[path = "support/secrets.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod secrets;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use fake_codex::{DEFAULT_ACCESS_TOKEN, FakeCodex, Script};
use fake_oauth::FakeOAuth;
use harness::{TestProxy, config, post_json, raw_request, read_chunk, read_head, stream_events};
use serde_json::{Value, json};

fn start(fake: &FakeCodex, overrides: &[(&str, &str)]) -> TestProxy {
    TestProxy::start(config(&fake.base_url(), overrides))
}

/// Starts a streamed `/v1/responses` request and reads its 200 head; the chunks follow.
fn open_stream(proxy: &TestProxy) -> BufReader<TcpStream> {
    let body = json!({"model": "gpt-5.5", "input": "hi", "stream": true});
    let stream = raw_request(
        &proxy.addr(),
        "POST",
        "/v1/responses",
        body.to_string().as_bytes(),
    );
    let mut reader = BufReader::new(stream);
    let (status, _) = read_head(&mut reader);
    assert_eq!(status, 200);
    reader
}

fn url(proxy: &TestProxy) -> String {
    format!("{}/v1/responses", proxy.base)
}

fn output_text(response: &Value) -> String {
    response["output"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["type"] == "message")
        .flat_map(|item| item["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|part| part["text"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn non_streaming_aggregates_the_completed_response() {
    let fake = FakeCodex::start();
    fake.push_script(Script::ReasoningThenText {
        summary: "Thinking it over.".into(),
        text: "Forty-two.".into(),
    });
    let proxy = start(&fake, &[]);
    let answer = post_json(
        &url(&proxy),
        &json!({"model": "gpt-5.5", "input": "What is six times seven?", "reasoning": {"effort": "low", "summary": "auto"}}),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let response = answer.json();
    assert_eq!(response["object"], "response");
    assert_eq!(response["status"], "completed");
    let kinds: Vec<&str> = response["output"]
        .as_array()
        .expect("output")
        .iter()
        .map(|i| i["type"].as_str().expect("type"))
        .collect();
    assert_eq!(kinds, ["reasoning", "message"], "items in output order");
    assert_eq!(output_text(&response), "Forty-two.");
    assert!(
        response["usage"]["total_tokens"]
            .as_u64()
            .is_some_and(|t| t > 0)
    );
    assert!(
        answer.headers.contains_key("x-codex-primary-used-percent"),
        "rate-limit headers pass through"
    );
}

#[test]
fn the_upstream_request_is_normalised_and_carries_codex_headers() {
    let fake = FakeCodex::start();
    let proxy = start(
        &fake,
        &[
            ("OPENAI_CHATGPT_ACCOUNT_ID", "acc-1234"),
            ("DEFAULT_INSTRUCTIONS", "Default prompt."),
        ],
    );
    let answer = post_json(
        &url(&proxy),
        &json!({
            "model": "gpt-5.5",
            "input": [
                {"type": "message", "id": "msg_old", "role": "user", "content": [{"type": "input_text", "text": "hello"}]},
                {"type": "message", "id": "msg_prev", "role": "assistant", "content": "earlier answer"},
                {"role": "user", "content": "again"}
            ],
            "temperature": 0.3, "top_p": 0.9, "max_output_tokens": 100, "store": true,
            "reasoning": {"effort": "high"},
            "tools": [{"type": "future_tool", "setting": 1}],
            "brand_new_option": {"kept": true}
        }),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let dropped = answer
        .headers
        .get("x-proxy-dropped-params")
        .expect("dropped header");
    for name in ["temperature", "top_p", "max_output_tokens"] {
        assert!(dropped.contains(name), "{dropped}");
    }
    let sent = fake
        .responses_requests()
        .pop()
        .expect("one upstream request");
    assert_eq!(sent.body["store"], false);
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body["instructions"], "Default prompt.");
    assert_eq!(sent.body["include"], json!(["reasoning.encrypted_content"]));
    assert_eq!(
        sent.body["tools"],
        json!([{"type": "future_tool", "setting": 1}])
    );
    assert_eq!(sent.body["brand_new_option"], json!({"kept": true}));
    assert!(
        sent.body["input"]
            .as_array()
            .expect("input")
            .iter()
            .all(|i| i.get("id").is_none())
    );
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer test-access-token")
    );
    assert_eq!(sent.header("chatgpt-account-id"), Some("acc-1234"));
    assert_eq!(sent.header("originator"), Some("codex_cli_rs"));
    assert_eq!(sent.header("accept"), Some("text/event-stream"));
    assert!(
        sent.header("user-agent")
            .is_some_and(|ua| ua.starts_with("codex_cli_rs/"))
    );
    assert!(sent.header("session_id").is_some_and(|id| id.len() == 36));
    assert!(sent.header("version").is_some());
}

#[test]
fn streaming_relays_every_event_and_fills_the_completed_output() {
    let fake = FakeCodex::start();
    fake.push_script(Script::Text {
        text: "Streaming works end to end.".into(),
        deltas: 5,
    });
    let proxy = start(&fake, &[]);
    let (status, headers, events) = stream_events(
        &proxy.addr(),
        "/v1/responses",
        &json!({"model": "gpt-5.5", "input": "hi", "stream": true}),
    );
    assert_eq!(status, 200);
    assert!(headers["content-type"].starts_with("text/event-stream"));
    assert!(headers.contains_key("x-codex-primary-used-percent"));
    let deltas: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().expect("delta"))
        .collect();
    assert_eq!(deltas, "Streaming works end to end.");
    let sequence: Vec<u64> = events
        .iter()
        .map(|e| e["sequence_number"].as_u64().expect("sequence_number"))
        .collect();
    assert!(sequence.windows(2).all(|w| w[0] < w[1]), "{sequence:?}");
    let last = events.last().expect("events");
    assert_eq!(last["type"], "response.completed");
    assert_eq!(
        output_text(&last["response"]),
        "Streaming works end to end."
    );
}

#[test]
fn stream_without_completion_ends_with_an_error_event() {
    let fake = FakeCodex::start();
    fake.push_script(Script::EofWithoutCompletion { text: "cut".into() });
    let proxy = start(&fake, &[]);
    let (status, _, events) = stream_events(
        &proxy.addr(),
        "/v1/responses",
        &json!({"model": "gpt-5.5", "input": "hi", "stream": true}),
    );
    assert_eq!(status, 200);
    let last = events.last().expect("events");
    assert_eq!(last["type"], "error");
    assert_eq!(last["code"], "upstream_stream_broken");
    let previous = events[events.len() - 2]["sequence_number"]
        .as_u64()
        .expect("seq");
    assert_eq!(last["sequence_number"].as_u64(), Some(previous + 1));

    fake.push_script(Script::EofWithoutCompletion { text: "cut".into() });
    let error =
        post_json(&url(&proxy), &json!({"model": "gpt-5.5", "input": "hi"})).expect_error(502);
    assert!(
        error["message"]
            .as_str()
            .expect("message")
            .contains("response.completed")
    );
}

#[test]
fn failed_and_incomplete_responses() {
    let fake = FakeCodex::start();
    let proxy = start(&fake, &[]);
    fake.push_script(Script::Failed {
        code: "context_length_exceeded".into(),
        message: "Your input exceeds the context window.".into(),
    });
    let error =
        post_json(&url(&proxy), &json!({"model": "gpt-5.5", "input": "hi"})).expect_error(400);
    assert_eq!(error["code"], "context_length_exceeded");

    fake.push_script(Script::Failed {
        code: "rate_limit_exceeded".into(),
        message: "Please try again in 11.054s.".into(),
    });
    post_json(&url(&proxy), &json!({"model": "gpt-5.5", "input": "hi"})).expect_error(429);

    fake.push_script(Script::Incomplete {
        reason: "max_output_tokens".into(),
        text: "partial".into(),
    });
    let answer = post_json(&url(&proxy), &json!({"model": "gpt-5.5", "input": "hi"}));
    assert_eq!(answer.status, 200);
    let response = answer.json();
    assert_eq!(response["status"], "incomplete");
    assert_eq!(
        response["incomplete_details"]["reason"],
        "max_output_tokens"
    );
    assert!(
        output_text(&response).starts_with("partial") || output_text(&response).contains("partial")
    );

    fake.push_script(Script::Failed {
        code: "server_is_overloaded".into(),
        message: "busy".into(),
    });
    let (_, _, events) = stream_events(
        &proxy.addr(),
        "/v1/responses",
        &json!({"model": "gpt-5.5", "input": "hi", "stream": true}),
    );
    assert_eq!(
        events.last().expect("events")["type"],
        "response.failed",
        "failures stay in-band when streaming"
    );
}

#[test]
fn upstream_http_errors_keep_their_meaning() {
    let fake = FakeCodex::start();
    let proxy = start(&fake, &[("UPSTREAM_MAX_RETRIES", "0")]);
    let body = json!({"model": "gpt-5.5", "input": "hi"});

    fake.push_script(Script::bad_request("Unsupported model: gpt-0"));
    let error = post_json(&url(&proxy), &body).expect_error(400);
    assert!(
        error["message"]
            .as_str()
            .expect("message")
            .contains("Unsupported model: gpt-0")
    );

    fake.push_script(Script::cloudflare_403());
    let error = post_json(&url(&proxy), &body).expect_error(502);
    assert_eq!(error["code"], "upstream_cloudflare_challenge");
    assert!(
        error["message"]
            .as_str()
            .expect("message")
            .contains("Cloudflare")
    );

    fake.push_script(Script::usage_limit(1234));
    let answer = post_json(&url(&proxy), &body);
    let error = answer.expect_error(429);
    assert_eq!(error["type"], "usage_limit_reached");
    assert_eq!(
        answer.headers.get("retry-after").map(String::as_str),
        Some("1234")
    );
    assert!(error["resets_at"].as_i64().is_some());
    assert_eq!(error["plan_type"], "plus");
    assert!(
        answer.headers.contains_key("x-codex-primary-used-percent"),
        "quota headers on errors too"
    );

    fake.push_script(Script::server_error());
    post_json(&url(&proxy), &body).expect_error(502);
}

#[test]
fn an_upstream_error_quoting_the_access_token_reaches_the_caller_without_it() {
    let fake = FakeCodex::start();
    let proxy = start(&fake, &[]);
    fake.push_script(Script::bad_request(&format!(
        "malformed header: Bearer {DEFAULT_ACCESS_TOKEN}"
    )));
    // The harness fails the test if the token were in the error body.
    let answer = post_json(&url(&proxy), &json!({"model": "gpt-5.5", "input": "hi"}));
    let error = answer.expect_error(400);
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.ends_with("malformed header: Bearer <redacted>"),
        "{message}"
    );
}

#[test]
fn answers_and_failures_quoting_the_access_token_reach_the_caller_without_it() {
    let fake = FakeCodex::start();
    let proxy = start(&fake, &[]);
    let quoted = format!("echo: Bearer {DEFAULT_ACCESS_TOKEN}");
    let ask = json!({"model": "gpt-5.5", "input": "hi"});
    let mut ask_stream = ask.clone();
    ask_stream["stream"] = json!(true);
    let clean = |case: &str, text: &str| {
        assert!(
            !text.contains(DEFAULT_ACCESS_TOKEN),
            "{case}: the token reached the caller"
        );
        assert!(text.contains("Bearer <redacted>"), "{case}: {text}");
    };
    let answer_text = || Script::Text {
        text: quoted.clone(),
        deltas: 1,
    };
    fake.push_script(answer_text());
    let answer = post_json(&url(&proxy), &ask);
    assert_eq!(answer.status, 200, "{}", answer.body);
    clean("aggregated answer", &answer.body);
    fake.push_script(answer_text());
    let (status, _, events) = stream_events(&proxy.addr(), "/v1/responses", &ask_stream);
    assert_eq!(status, 200);
    clean("streamed answer", &Value::Array(events).to_string());
    let failure = || Script::Failed {
        code: "server_error".into(),
        message: quoted.clone(),
    };
    fake.push_script(failure());
    let answer = post_json(&url(&proxy), &ask);
    assert!(answer.status >= 400, "{}", answer.body);
    clean("aggregated failure", &answer.body);
    fake.push_script(failure());
    let (_, _, events) = stream_events(&proxy.addr(), "/v1/responses", &ask_stream);
    clean("streamed failure", &Value::Array(events).to_string());
    fake.push_script(failure());
    let chat = json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": "hi"}]});
    let answer = post_json(&format!("{}/v1/chat/completions", proxy.base), &chat);
    clean("chat failure", &answer.body);
}

#[test]
fn server_errors_are_retried_before_the_first_byte() {
    let fake = FakeCodex::start();
    let proxy = start(&fake, &[("UPSTREAM_MAX_RETRIES", "2")]);
    fake.push_script(Script::server_error());
    fake.push_script(Script::server_error());
    fake.push_script(Script::text("third time lucky"));
    let answer = post_json(&url(&proxy), &json!({"model": "gpt-5.5", "input": "hi"}));
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(output_text(&answer.json()), "third time lucky");
    assert_eq!(fake.responses_requests().len(), 3);
}

#[test]
fn unreachable_upstream_is_a_502_that_names_the_cause() {
    let proxy = TestProxy::start(config(
        "http://127.0.0.1:9/backend-api/codex",
        &[("UPSTREAM_MAX_RETRIES", "0")],
    ));
    let error =
        post_json(&url(&proxy), &json!({"model": "gpt-5.5", "input": "hi"})).expect_error(502);
    assert_eq!(error["code"], "upstream_unreachable");
    assert!(
        error["message"]
            .as_str()
            .expect("message")
            .contains("connection")
    );
}

#[test]
fn a_401_refreshes_the_token_once_and_retries() {
    let fake = FakeCodex::start();
    let oauth = FakeOAuth::start("test-refresh-token");
    fake.set_access_token("rotated-access");
    oauth.set_next_access_token("rotated-access");
    let proxy = start(&fake, &[("AUTH_BASE_URL", &oauth.base_url())]);
    let answer = post_json(&url(&proxy), &json!({"model": "gpt-5.5", "input": "hi"}));
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(oauth.calls(), 1);
    let auths: Vec<String> = fake
        .responses_requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_string))
        .collect();
    assert_eq!(auths, ["Bearer test-access-token", "Bearer rotated-access"]);
    // The new token is reused without another refresh.
    assert_eq!(
        post_json(&url(&proxy), &json!({"model": "gpt-5.5", "input": "hi"})).status,
        200
    );
    assert_eq!(oauth.calls(), 1);

    // A token the upstream refuses even after refresh is a 502 that says so.
    fake.set_access_token("something-else");
    let error =
        post_json(&url(&proxy), &json!({"model": "gpt-5.5", "input": "hi"})).expect_error(502);
    assert_eq!(error["code"], "upstream_unauthorized");
}

#[test]
fn a_client_that_disconnects_ends_the_upstream_call() {
    let fake = FakeCodex::start();
    fake.push_script(Script::Slow {
        text: "a long answer that nobody reads".into(),
        deltas: 100,
        delay_ms: 30,
    });
    let proxy = start(&fake, &[]);
    let mut reader = open_stream(&proxy);
    assert!(read_chunk(&mut reader).is_some(), "first event arrived");
    drop(reader);
    assert!(
        fake.wait_for_aborted_streams(1, Duration::from_secs(10)),
        "upstream connection closed after the client left"
    );
    // The worker is free again.
    assert_eq!(
        post_json(&url(&proxy), &json!({"model": "gpt-5.5", "input": "hi"})).status,
        200
    );
}

#[test]
fn each_event_reaches_the_client_while_the_upstream_pauses() {
    let fake = FakeCodex::start();
    fake.push_script(Script::Slow {
        text: "one two three".into(),
        deltas: 3,
        delay_ms: 400,
    });
    let proxy = start(&fake, &[]);
    let mut reader = open_stream(&proxy);
    let mut first_delta = None;
    while let Some(chunk) = read_chunk(&mut reader) {
        let is_delta = String::from_utf8_lossy(&chunk).contains("response.output_text.delta");
        if is_delta && first_delta.is_none() {
            first_delta = Some(Instant::now());
        }
    }
    let first_delta = first_delta.expect("a delta arrived");
    // Two pauses of 400 ms follow the first delta upstream: a proxy that held its frames
    // until more came (or until the end) would deliver it with the rest.
    let rest = first_delta.elapsed();
    assert!(
        rest >= Duration::from_millis(500),
        "the first delta arrived only {rest:?} before the end"
    );
}

#[test]
fn an_idle_upstream_stream_is_ended_as_an_error() {
    let fake = FakeCodex::start();
    fake.push_script(Script::Slow {
        text: "one two".into(),
        deltas: 2,
        delay_ms: 3000,
    });
    let proxy = start(&fake, &[("UPSTREAM_IDLE_TIMEOUT_SECS", "1")]);
    let error =
        post_json(&url(&proxy), &json!({"model": "gpt-5.5", "input": "hi"})).expect_error(504);
    assert_eq!(error["code"], "upstream_timeout");
}

#[test]
fn item_references_and_storage_features_are_refused_clearly() {
    let fake = FakeCodex::start();
    let proxy = start(&fake, &[]);
    let error = post_json(
        &url(&proxy),
        &json!({"model": "gpt-5.5", "input": [{"type": "item_reference", "id": "msg_1"}]}),
    )
    .expect_error(400);
    assert_eq!(error["param"], "input[0]");
    let error = post_json(
        &url(&proxy),
        &json!({"model": "gpt-5.5", "input": "x", "previous_response_id": "resp_1"}),
    )
    .expect_error(400);
    assert_eq!(error["param"], "previous_response_id");
    assert!(fake.responses_requests().is_empty());
}

#[test]
fn function_call_round_trip_with_items_sent_back() {
    let fake = FakeCodex::start();
    fake.push_script(Script::FunctionCall {
        call_id: "call_42".into(),
        name: "get_weather".into(),
        arguments: "{\"city\":\"Paris\"}".into(),
    });
    let proxy = start(&fake, &[]);
    let tools = json!([{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let first = post_json(
        &url(&proxy),
        &json!({"model": "gpt-5.5", "input": "Weather in Paris?", "tools": tools}),
    )
    .json();
    let call = first["output"]
        .as_array()
        .expect("output")
        .iter()
        .find(|i| i["type"] == "function_call")
        .expect("call")
        .clone();
    assert_eq!(call["call_id"], "call_42");
    assert!(
        call.get("id").is_some(),
        "the fake gives items ids, as the backend does"
    );
    fake.push_script(Script::text("It is sunny."));
    let mut input = vec![json!({"role": "user", "content": "Weather in Paris?"})];
    input.extend(first["output"].as_array().expect("output").iter().cloned());
    input.push(json!({"type": "function_call_output", "call_id": "call_42", "output": "sunny"}));
    let second = post_json(
        &url(&proxy),
        &json!({"model": "gpt-5.5", "input": input, "tools": tools}),
    );
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(output_text(&second.json()), "It is sunny.");
}

#[test]
fn web_search_items_pass_through() {
    let fake = FakeCodex::start();
    fake.push_script(Script::WebSearch {
        query: "rust 1.95 release".into(),
        text: "It was released.".into(),
    });
    let proxy = start(&fake, &[]);
    let response = post_json(
        &url(&proxy),
        &json!({"model": "gpt-5.5", "input": "news?", "tools": [{"type": "web_search"}]}),
    )
    .json();
    let kinds: Vec<&str> = response["output"]
        .as_array()
        .expect("output")
        .iter()
        .map(|i| i["type"].as_str().expect("type"))
        .collect();
    assert_eq!(kinds, ["web_search_call", "message"]);
    let sent = fake.responses_requests().pop().expect("request");
    assert_eq!(sent.body["tools"], json!([{"type": "web_search"}]));
}

#[test]
fn http_1_0_clients_get_an_unchunked_stream() {
    let fake = FakeCodex::start();
    let proxy = start(&fake, &[]);
    let body = json!({"model": "gpt-5.5", "input": "hi", "stream": true}).to_string();
    let mut stream = std::net::TcpStream::connect(proxy.addr()).expect("connect");
    write!(
        stream,
        "POST /v1/responses HTTP/1.0\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n{body}",
        harness::PROXY_KEY,
        body.len()
    )
    .expect("write");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stream, &mut text).expect("read to close");
    assert!(text.starts_with("HTTP/1.1 200"));
    assert!(
        !text
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
    );
    assert!(text.contains("event: response.completed"));
}
