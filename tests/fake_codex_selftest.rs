//! Self-test of the fake Codex backend (`tests/support/fake_codex.rs`): drives it over real sockets with
//! ureq, so the proxy's integration tests can trust what it rejects and what it streams.

#[path = "support/fake_codex.rs"]
mod fake_codex;
#[path = "support/secrets.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod secrets;

use std::error::Error;
use std::io::{BufRead, BufReader};
use std::thread;
use std::time::Duration;

use fake_codex::{
    BASE_PATH, DEFAULT_ACCESS_TOKEN, DEFAULT_TEXT, FakeCodex, Script, SseFrame,
    is_first_party_originator, parse_sse, sse_data, validate_responses_body,
};
use serde_json::{Value, json};

type TestResult = Result<(), Box<dyn Error>>;

/// What a client saw of one reply.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.body)
    }

    fn detail(&self) -> Result<String, Box<dyn Error>> {
        let body = self.json()?;
        Ok(body["detail"]
            .as_str()
            .ok_or("no detail in the body")?
            .to_owned())
    }

    fn events(&self) -> Vec<Value> {
        sse_data(&self.body)
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// The headers the Codex CLI sends, with this token and originator.
fn codex_headers(token: &str, originator: &str) -> Vec<(String, String)> {
    vec![
        ("Authorization".to_owned(), format!("Bearer {token}")),
        ("originator".to_owned(), originator.to_owned()),
        (
            "User-Agent".to_owned(),
            "codex_cli_rs/0.99.0 (Linux 6.1; x86_64) xterm".to_owned(),
        ),
        (
            "ChatGPT-Account-ID".to_owned(),
            "00000000-0000-4000-8000-000000000000".to_owned(),
        ),
        ("Accept".to_owned(), "text/event-stream".to_owned()),
        ("Content-Type".to_owned(), "application/json".to_owned()),
    ]
}

/// A body the backend accepts, shaped like the Codex CLI's.
fn valid_body() -> Value {
    json!({
        "model": "gpt-5.5",
        "instructions": "You are Codex.",
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
        "tools": [],
        "tool_choice": "auto",
        "parallel_tool_calls": false,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": false,
        "stream": true,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "11111111-1111-4111-8111-111111111111",
    })
}

fn with_field(name: &str, value: Value) -> Value {
    let mut body = valid_body();
    body[name] = value;
    body
}

fn without_field(name: &str) -> Value {
    let mut body = valid_body();
    if let Some(fields) = body.as_object_mut() {
        fields.remove(name);
    }
    body
}

fn with_input(input: Value) -> Value {
    with_field("input", input)
}

fn send(
    fake: &FakeCodex,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<&str>,
) -> Result<Answer, Box<dyn Error>> {
    let url = format!("{}{path}", fake.base_url());
    let agent = agent();
    let response = match (method, body) {
        ("GET", _) => {
            let mut request = agent.get(&url);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            request.call()?
        }
        (_, body) => {
            let mut request = agent.post(&url);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            request.send(body.unwrap_or(""))?
        }
    };
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = response.into_body().read_to_string()?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// `POST {base}/responses` with the Codex CLI's headers.
fn post(fake: &FakeCodex, body: &Value) -> Result<Answer, Box<dyn Error>> {
    let headers = codex_headers(DEFAULT_ACCESS_TOKEN, "codex_cli_rs");
    send(
        fake,
        "POST",
        "/responses",
        &headers,
        Some(&body.to_string()),
    )
}

fn event_types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event["type"].as_str().unwrap_or(""))
        .collect()
}

fn events_of<'a>(events: &'a [Value], event_type: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|event| event["type"] == event_type)
        .collect()
}

fn concatenated(events: &[Value], event_type: &str) -> String {
    events_of(events, event_type)
        .iter()
        .map(|event| event["delta"].as_str().unwrap_or(""))
        .collect()
}

fn has_prefix(value: &Value, prefix: &str) -> bool {
    value.as_str().is_some_and(|text| text.starts_with(prefix))
}

#[test]
fn strict_checks_reject_like_the_backend() -> TestResult {
    let fake = FakeCodex::start();
    fake.push_script(Script::text("queued"));
    let paired = json!([
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "ok"},
    ]);
    let mut both_wrong = without_field("store");
    both_wrong["stream"] = json!(false);
    let cases = [
        (without_field("store"), "Store must be set to false"),
        (
            with_field("store", json!(true)),
            "Store must be set to false",
        ),
        (both_wrong, "Store must be set to false"),
        (without_field("stream"), "Stream must be set to true"),
        (
            with_field("stream", json!(false)),
            "Stream must be set to true",
        ),
        (without_field("instructions"), "Instructions are required"),
        (
            with_field("instructions", json!(5)),
            "Instructions are required",
        ),
        (
            with_field("max_output_tokens", json!(10)),
            "Unsupported parameter: max_output_tokens",
        ),
        (
            with_field("max_tokens", json!(10)),
            "Unsupported parameter: max_tokens",
        ),
        (
            with_field("temperature", json!(0.2)),
            "Unsupported parameter: temperature",
        ),
        (
            with_field("top_p", json!(0.9)),
            "Unsupported parameter: top_p",
        ),
        (
            with_field("previous_response_id", json!("resp_1")),
            "Unsupported parameter: previous_response_id",
        ),
        (
            with_input(json!("hello")),
            "Invalid type for 'input': expected an array.",
        ),
        (
            with_input(json!([{"type": "reasoning", "id": "rs_123", "summary": []}])),
            "Item with id 'rs_123' not found. Items are not persisted when store is set to false. \
             Try again with `store` set to true, or remove this item from your input.",
        ),
        (
            with_input(json!([{"type": "item_reference"}])),
            "Item references are not supported when store is set to false.",
        ),
        (
            with_input(
                json!([{"type": "function_call_output", "call_id": "call_9", "output": "x"}]),
            ),
            "No tool call found for function call output with call_id call_9.",
        ),
        (
            with_input(
                json!([{"type": "function_call", "call_id": "call_7", "name": "f", "arguments": "{}"}]),
            ),
            "No tool output found for function call call_7.",
        ),
    ];
    for (body, expected) in &cases {
        assert_eq!(validate_responses_body(body), Err((*expected).to_owned()));
        let answer = post(&fake, body)?;
        assert_eq!(answer.status, 400, "{expected}");
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert_eq!(answer.detail()?, *expected);
    }
    for body in ["not json", "[1, 2]"] {
        let headers = codex_headers(DEFAULT_ACCESS_TOKEN, "codex_cli_rs");
        let answer = send(&fake, "POST", "/responses", &headers, Some(body))?;
        assert_eq!(answer.status, 400);
        assert_eq!(
            answer.detail()?,
            "We could not parse the JSON body of your request."
        );
    }

    // No rejected request used up the queued script.
    assert_eq!(validate_responses_body(&with_input(paired.clone())), Ok(()));
    let answer = post(&fake, &with_input(paired))?;
    assert_eq!(answer.status, 200);
    assert_eq!(
        concatenated(&answer.events(), "response.output_text.delta"),
        "queued"
    );
    Ok(())
}

#[test]
fn wrong_or_missing_token_gets_401_and_the_token_can_change() -> TestResult {
    let fake = FakeCodex::start();
    let body = valid_body().to_string();
    let expected = "Could not parse your authentication token. Please try signing in again.";

    let answer = send(
        &fake,
        "POST",
        "/responses",
        &codex_headers("wrong", "codex_cli_rs"),
        Some(&body),
    )?;
    assert_eq!((answer.status, answer.detail()?.as_str()), (401, expected));
    let mut no_auth = codex_headers(DEFAULT_ACCESS_TOKEN, "codex_cli_rs");
    no_auth.retain(|(name, _)| name != "Authorization");
    assert_eq!(
        send(&fake, "POST", "/responses", &no_auth, Some(&body))?.status,
        401
    );
    let mut not_bearer = codex_headers(DEFAULT_ACCESS_TOKEN, "codex_cli_rs");
    not_bearer[0].1 = DEFAULT_ACCESS_TOKEN.to_owned();
    assert_eq!(
        send(&fake, "POST", "/responses", &not_bearer, Some(&body))?.status,
        401
    );

    fake.set_access_token("rotated-token");
    let old = codex_headers(DEFAULT_ACCESS_TOKEN, "codex_cli_rs");
    assert_eq!(
        send(&fake, "POST", "/responses", &old, Some(&body))?.status,
        401
    );
    let new = codex_headers("rotated-token", "codex_cli_rs");
    assert_eq!(
        send(&fake, "POST", "/responses", &new, Some(&body))?.status,
        200
    );

    fake.accept_access_token_prefix("minted-");
    let minted = codex_headers("minted-42", "codex_cli_rs");
    assert_eq!(
        send(&fake, "POST", "/responses", &minted, Some(&body))?.status,
        200
    );
    let other = codex_headers("other-42", "codex_cli_rs");
    assert_eq!(
        send(&fake, "POST", "/responses", &other, Some(&body))?.status,
        401
    );
    Ok(())
}

#[test]
fn only_first_party_originators_get_through() -> TestResult {
    let fake = FakeCodex::start();
    let body = valid_body().to_string();
    for originator in ["codex_cli_rs", "codex-tui", "codex_vscode", "Codex Desktop"] {
        assert!(is_first_party_originator(originator));
        let headers = codex_headers(DEFAULT_ACCESS_TOKEN, originator);
        assert_eq!(
            send(&fake, "POST", "/responses", &headers, Some(&body))?.status,
            200,
            "{originator}"
        );
    }
    for originator in ["opencode", "Codex", "codex_cli_rs2"] {
        assert!(!is_first_party_originator(originator));
        let headers = codex_headers(DEFAULT_ACCESS_TOKEN, originator);
        assert_eq!(
            send(&fake, "POST", "/responses", &headers, Some(&body))?.status,
            403,
            "{originator}"
        );
    }
    let mut no_originator = codex_headers(DEFAULT_ACCESS_TOKEN, "codex_cli_rs");
    no_originator.retain(|(name, _)| name != "originator");
    assert_eq!(
        send(&fake, "POST", "/responses", &no_originator, Some(&body))?.status,
        403
    );

    // The token is checked before the originator.
    let headers = codex_headers("wrong", "opencode");
    assert_eq!(
        send(&fake, "POST", "/responses", &headers, Some(&body))?.status,
        401
    );
    Ok(())
}

#[test]
fn text_stream_is_numbered_complete_and_echoes_the_request() -> TestResult {
    let fake = FakeCodex::start();
    let text = "The quick brown fox jumps over the lazy dog.";
    fake.push_script(Script::Text {
        text: text.to_owned(),
        deltas: 5,
    });
    let answer = post(&fake, &valid_body())?;

    assert_eq!(answer.status, 200);
    assert!(
        answer
            .header("content-type")
            .is_some_and(|v| v.starts_with("text/event-stream"))
    );
    assert_eq!(answer.header("transfer-encoding"), Some("chunked"));
    assert_eq!(answer.header("x-codex-primary-used-percent"), Some("12.5"));
    assert_eq!(answer.header("x-codex-primary-window-minutes"), Some("300"));
    assert_eq!(
        answer.header("x-codex-secondary-window-minutes"),
        Some("10080")
    );
    for name in [
        "x-codex-primary-reset-at",
        "x-codex-secondary-reset-at",
        "x-codex-secondary-used-percent",
    ] {
        assert!(
            answer
                .header(name)
                .is_some_and(|v| v.parse::<f64>().is_ok()),
            "{name}"
        );
    }
    assert!(answer.header("x-request-id").is_some());

    let frames: Vec<SseFrame> = parse_sse(&answer.body);
    for frame in &frames {
        assert_eq!(frame.event.as_deref(), frame.data["type"].as_str());
    }
    let events = answer.events();
    let numbers: Vec<u64> = events
        .iter()
        .filter_map(|e| e["sequence_number"].as_u64())
        .collect();
    assert_eq!(numbers, (0..events.len() as u64).collect::<Vec<_>>());
    let mut expected_types = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    expected_types.extend(["response.output_text.delta"; 5]);
    expected_types.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(event_types(&events), expected_types);
    assert_eq!(concatenated(&events, "response.output_text.delta"), text);

    let added = &events[2]["item"];
    assert!(has_prefix(&added["id"], "msg_"));
    assert_eq!(
        (&added["status"], &added["role"], &added["content"]),
        (&json!("in_progress"), &json!("assistant"), &json!([]))
    );
    for event in &events[3..8] {
        assert_eq!(event["item_id"], added["id"]);
        assert_eq!(
            (&event["output_index"], &event["content_index"]),
            (&json!(0), &json!(0))
        );
    }
    for delta in events_of(&events, "response.output_text.delta") {
        assert_eq!(delta["logprobs"], json!([]));
    }
    assert_eq!(
        events[3]["part"],
        json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []})
    );
    assert_eq!(
        (&events[9]["text"], &events[9]["logprobs"]),
        (&json!(text), &json!([]))
    );
    let part = json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
    assert_eq!(events[10]["part"], part);
    let done = &events[11]["item"];
    assert_eq!(
        (&done["id"], &done["status"], &done["content"]),
        (&added["id"], &json!("completed"), &json!([part]))
    );

    let created = &events[0]["response"];
    assert!(has_prefix(&created["id"], "resp_"));
    assert_eq!(created["object"], "response");
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["model"], "gpt-5.5");
    assert_eq!(created["instructions"], "You are Codex.");
    assert_eq!(created["tools"], json!([]));
    assert_eq!(created["tool_choice"], "auto");
    assert_eq!(created["parallel_tool_calls"], false);
    assert_eq!(
        created["reasoning"],
        json!({"effort": "medium", "summary": "auto"})
    );
    assert_eq!(created["store"], false);
    assert_eq!(created["usage"], Value::Null);
    assert_eq!(
        (&created["error"], &created["incomplete_details"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(
        (&created["metadata"], &created["truncation"]),
        (&json!({}), &json!("disabled"))
    );
    assert!(created["created_at"].is_u64());
    assert_eq!(events[1]["response"]["id"], created["id"]);

    let completed = &events[12]["response"];
    assert_eq!(completed["id"], created["id"]);
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["output"], json!([]));
    let usage = &completed["usage"];
    let (input, output) = (
        usage["input_tokens"].as_u64(),
        usage["output_tokens"].as_u64(),
    );
    assert!(input.is_some_and(|n| n > 0) && output.is_some_and(|n| n > 0));
    assert_eq!(
        usage["total_tokens"].as_u64(),
        input.zip(output).map(|(i, o)| i + o)
    );
    assert_eq!(usage["input_tokens_details"], json!({"cached_tokens": 0}));
    assert_eq!(
        usage["output_tokens_details"],
        json!({"reasoning_tokens": 0})
    );
    Ok(())
}

#[test]
fn reasoning_streams_its_summary_before_the_message() -> TestResult {
    let fake = FakeCodex::start();
    let summary = "**Greeting**\n\nThe user says hi; answer briefly.";
    let script = Script::ReasoningThenText {
        summary: summary.to_owned(),
        text: "Hi there!".to_owned(),
    };
    fake.push_script(script.clone());
    let events = post(&fake, &valid_body())?.events();

    let types = event_types(&events);
    assert_eq!(
        types[..4],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added"
        ]
    );
    let after_deltas =
        &types[4 + events_of(&events, "response.reasoning_summary_text.delta").len()..];
    assert_eq!(
        after_deltas[..4],
        [
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
        ]
    );
    assert_eq!(types.last(), Some(&"response.completed"));
    assert_eq!(
        concatenated(&events, "response.reasoning_summary_text.delta"),
        summary
    );

    let reasoning = &events_of(&events, "response.output_item.done")[0]["item"];
    assert!(has_prefix(&reasoning["id"], "rs_"));
    assert_eq!(reasoning["type"], "reasoning");
    assert_eq!(
        reasoning["summary"],
        json!([{"type": "summary_text", "text": summary}])
    );
    assert!(has_prefix(&reasoning["encrypted_content"], "gAAAA"));
    for event in events
        .iter()
        .filter(|e| has_prefix(&e["type"], "response.reasoning_summary"))
    {
        assert_eq!(
            (
                &event["item_id"],
                &event["output_index"],
                &event["summary_index"]
            ),
            (&reasoning["id"], &json!(0), &json!(0))
        );
    }
    let message = &events_of(&events, "response.output_item.done")[1];
    assert_eq!(message["output_index"], 1);
    assert_eq!(
        concatenated(&events, "response.output_text.delta"),
        "Hi there!"
    );
    let usage = &events.last().ok_or("no events")?["response"]["usage"];
    assert!(
        usage["output_tokens_details"]["reasoning_tokens"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );

    // Without `include: ["reasoning.encrypted_content"]` the backend sends no encrypted content.
    fake.push_script(script);
    let events = post(&fake, &with_field("include", json!([])))?.events();
    assert_eq!(
        events_of(&events, "response.output_item.done")[0]["item"]["encrypted_content"],
        Value::Null
    );
    Ok(())
}

#[test]
fn function_call_streams_its_arguments() -> TestResult {
    let fake = FakeCodex::start();
    let arguments = r#"{"city":"Paris","unit":"celsius"}"#;
    fake.push_script(Script::FunctionCall {
        call_id: "call_abc".to_owned(),
        name: "get_weather".to_owned(),
        arguments: arguments.to_owned(),
    });
    let events = post(&fake, &valid_body())?.events();

    let added = &events_of(&events, "response.output_item.added")[0]["item"];
    assert_eq!(
        added,
        &json!({"id": added["id"], "type": "function_call", "status": "in_progress", "call_id": "call_abc", "name": "get_weather", "arguments": ""})
    );
    assert!(has_prefix(&added["id"], "fc_"));
    assert_eq!(
        concatenated(&events, "response.function_call_arguments.delta"),
        arguments
    );
    let done = events_of(&events, "response.function_call_arguments.done")[0];
    assert_eq!(
        (&done["item_id"], &done["name"], &done["arguments"]),
        (&added["id"], &json!("get_weather"), &json!(arguments))
    );
    let item = &events_of(&events, "response.output_item.done")[0]["item"];
    assert_eq!(
        item,
        &json!({"id": added["id"], "type": "function_call", "status": "completed", "call_id": "call_abc", "name": "get_weather", "arguments": arguments})
    );
    assert_eq!(event_types(&events).last(), Some(&"response.completed"));
    Ok(())
}

#[test]
fn web_search_is_followed_by_a_cited_message() -> TestResult {
    let fake = FakeCodex::start();
    fake.push_script(Script::WebSearch {
        query: "rust 2024 edition".to_owned(),
        text: "It shipped.".to_owned(),
    });
    let events = post(&fake, &valid_body())?.events();

    let types = event_types(&events);
    assert_eq!(
        types[2..7],
        [
            "response.output_item.added",
            "response.web_search_call.in_progress",
            "response.web_search_call.searching",
            "response.web_search_call.completed",
            "response.output_item.done",
        ]
    );
    let search = &events[6]["item"];
    assert!(has_prefix(&search["id"], "ws_"));
    assert_eq!(
        (&search["type"], &search["status"]),
        (&json!("web_search_call"), &json!("completed"))
    );
    assert_eq!(
        search["action"],
        json!({"type": "search", "query": "rust 2024 edition"})
    );
    for event in &events[3..6] {
        assert_eq!(
            (&event["item_id"], &event["output_index"]),
            (&search["id"], &json!(0))
        );
    }
    let annotation = &events_of(&events, "response.output_text.annotation.added")[0]["annotation"];
    assert_eq!(annotation["type"], "url_citation");
    assert_eq!(
        (&annotation["start_index"], &annotation["end_index"]),
        (&json!(0), &json!(11))
    );
    let message = &events_of(&events, "response.output_item.done")[1];
    assert_eq!(message["output_index"], 1);
    assert_eq!(
        message["item"]["content"][0]["annotations"],
        json!([annotation])
    );
    Ok(())
}

#[test]
fn failed_incomplete_and_cut_streams_end_as_scripted() -> TestResult {
    let fake = FakeCodex::start();
    fake.push_script(Script::Failed {
        code: "rate_limit_exceeded".to_owned(),
        message: "Rate limit reached. Please try again in 11.054s.".to_owned(),
    });
    fake.push_script(Script::Incomplete {
        reason: "max_output_tokens".to_owned(),
        text: "Partial answ".to_owned(),
    });
    fake.push_script(Script::EofWithoutCompletion {
        text: "Never finished".to_owned(),
    });

    let failed = post(&fake, &valid_body())?;
    assert_eq!(failed.status, 200);
    let events = failed.events();
    assert_eq!(
        event_types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.failed"
        ]
    );
    let response = &events[2]["response"];
    assert_eq!(response["status"], "failed");
    assert_eq!(
        response["error"],
        json!({"code": "rate_limit_exceeded", "message": "Rate limit reached. Please try again in 11.054s."})
    );

    let events = post(&fake, &valid_body())?.events();
    let last = events.last().ok_or("no events")?;
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(last["response"]["status"], "incomplete");
    assert_eq!(
        last["response"]["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert!(last["response"]["usage"]["total_tokens"].is_u64());
    assert_eq!(
        events_of(&events, "response.output_item.done")[0]["item"]["status"],
        "incomplete"
    );
    assert_eq!(
        concatenated(&events, "response.output_text.delta"),
        "Partial answ"
    );

    let events = post(&fake, &valid_body())?.events();
    assert_eq!(
        event_types(&events).last(),
        Some(&"response.output_item.done")
    );
    assert_eq!(
        events_of(&events, "response.output_item.done")[0]["item"]["content"][0]["text"],
        "Never finished"
    );
    Ok(())
}

#[test]
fn http_error_scripts_answer_like_the_backend() -> TestResult {
    let fake = FakeCodex::start();
    fake.push_script(Script::usage_limit(3600));
    fake.push_script(Script::cloudflare_403());
    fake.push_script(Script::bad_request("Unsupported model"));
    fake.push_script(Script::server_error());

    let answer = post(&fake, &valid_body())?;
    assert_eq!(answer.status, 429);
    let error = &answer.json()?["error"];
    assert_eq!(
        (
            &error["type"],
            &error["plan_type"],
            &error["resets_in_seconds"]
        ),
        (&json!("usage_limit_reached"), &json!("plus"), &json!(3600))
    );
    assert_eq!(error["message"], "The usage limit has been reached");
    let resets_at = error["resets_at"].as_u64().ok_or("no resets_at")?;
    let reset_header: u64 = answer
        .header("x-codex-primary-reset-at")
        .ok_or("no reset header")?
        .parse()?;
    assert!(resets_at.abs_diff(reset_header) <= 2);
    assert_eq!(answer.header("x-codex-primary-used-percent"), Some("100.0"));
    assert_eq!(
        answer.header("x-codex-primary-reset-after-seconds"),
        Some("3600")
    );

    let answer = post(&fake, &valid_body())?;
    assert_eq!(answer.status, 403);
    assert!(
        answer
            .header("content-type")
            .is_some_and(|v| v.starts_with("text/html"))
    );
    assert_eq!(answer.header("cf-mitigated"), Some("challenge"));
    assert!(answer.body.contains("<title>Just a moment...</title>"));

    let answer = post(&fake, &valid_body())?;
    assert_eq!(
        (answer.status, answer.detail()?.as_str()),
        (400, "Unsupported model")
    );

    let answer = post(&fake, &valid_body())?;
    assert_eq!(answer.status, 500);
    assert_eq!(answer.json()?["error"]["type"], "server_error");
    Ok(())
}

#[test]
fn raw_script_is_sent_verbatim() -> TestResult {
    let fake = FakeCodex::start();
    let body = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp1\"}}\n\n\
                : keep-alive\n\ndata: {\"type\":\"response.output_item.done\"}\n\n";
    fake.push_script(Script::Raw {
        status: 200,
        headers: vec![("x-custom".to_owned(), "1".to_owned())],
        body: body.to_owned(),
    });
    let answer = post(&fake, &valid_body())?;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, body);
    assert_eq!(answer.header("x-custom"), Some("1"));
    // Like the backend on a bad day, no content type unless the script gives one.
    assert_eq!(answer.header("content-type"), None);
    assert_eq!(
        event_types(&answer.events()),
        ["response.created", "response.output_item.done"]
    );
    Ok(())
}

#[test]
fn scripts_are_used_first_in_first_out_then_the_default() -> TestResult {
    let fake = FakeCodex::start();
    let text_of = |fake: &FakeCodex| -> Result<String, Box<dyn Error>> {
        Ok(concatenated(
            &post(fake, &valid_body())?.events(),
            "response.output_text.delta",
        ))
    };
    assert_eq!(text_of(&fake)?, DEFAULT_TEXT);
    fake.push_script(Script::text("first"));
    fake.push_script(Script::text("second"));
    fake.set_default_script(Script::text("default"));
    assert_eq!(text_of(&fake)?, "first");
    assert_eq!(text_of(&fake)?, "second");
    assert_eq!(text_of(&fake)?, "default");
    assert_eq!(text_of(&fake)?, "default");
    Ok(())
}

#[test]
fn a_client_that_leaves_mid_stream_is_counted() -> TestResult {
    let fake = FakeCodex::start();
    post(&fake, &valid_body())?;
    assert_eq!(
        fake.aborted_streams(),
        0,
        "a finished stream is not an aborted one"
    );

    // Finishing this stream would take 30 s, so the abort must be noticed while it is still going.
    fake.push_script(Script::Slow {
        text: "x".repeat(1500),
        deltas: 1500,
        delay_ms: 20,
    });
    let mut request = agent().post(format!("{}/responses", fake.base_url()));
    for (name, value) in codex_headers(DEFAULT_ACCESS_TOKEN, "codex_cli_rs") {
        request = request.header(name, value);
    }
    let response = request.send(valid_body().to_string())?;
    let mut lines = BufReader::new(response.into_body().into_reader()).lines();
    let first_delta = lines.find(|line| {
        line.as_ref()
            .is_ok_and(|l| l.contains("response.output_text.delta"))
    });
    assert!(first_delta.is_some());
    drop(lines);

    assert!(fake.wait_for_aborted_streams(1, Duration::from_secs(15)));
    assert_eq!(fake.aborted_streams(), 1);
    Ok(())
}

#[test]
fn models_are_listed_behind_the_same_checks() -> TestResult {
    let fake = FakeCodex::start();
    let headers = codex_headers(DEFAULT_ACCESS_TOKEN, "codex_cli_rs");
    let answer = send(
        &fake,
        "GET",
        "/models?client_version=0.99.0",
        &headers,
        None,
    )?;
    assert_eq!(answer.status, 200);
    let models = answer.json()?;
    let slugs: Vec<&str> = models["models"]
        .as_array()
        .ok_or("no models")?
        .iter()
        .filter_map(|m| m["slug"].as_str())
        .collect();
    assert!(slugs.contains(&"gpt-5.5"));
    let request = fake.requests().pop().ok_or("not recorded")?;
    assert_eq!(
        (request.path.as_str(), request.query.as_deref()),
        ("/backend-api/codex/models", Some("client_version=0.99.0"))
    );

    let answer = send(
        &fake,
        "GET",
        "/models",
        &codex_headers("wrong", "codex_cli_rs"),
        None,
    )?;
    assert_eq!(answer.status, 401);
    Ok(())
}

#[test]
fn other_routes_are_not_found() -> TestResult {
    let fake = FakeCodex::start();
    let headers = codex_headers(DEFAULT_ACCESS_TOKEN, "codex_cli_rs");
    let body = valid_body().to_string();
    assert_eq!(
        send(&fake, "GET", "/responses", &headers, None)?.status,
        404
    );
    assert_eq!(
        send(&fake, "POST", "/responses/compact", &headers, Some(&body))?.status,
        404
    );
    assert_eq!(
        send(&fake, "POST", "/models", &headers, Some(&body))?.status,
        404
    );
    let mut wrong_base = fake.base_url();
    wrong_base.truncate(wrong_base.len() - BASE_PATH.len());
    let answer = agent()
        .post(format!("{wrong_base}/v1/responses"))
        .send(body)?;
    assert_eq!(answer.status().as_u16(), 404);
    Ok(())
}

#[test]
fn requests_are_recorded_before_they_are_judged() -> TestResult {
    let fake = FakeCodex::start();
    let body = valid_body();
    post(&fake, &body)?;
    send(
        &fake,
        "POST",
        "/responses",
        &codex_headers("wrong", "codex_cli_rs"),
        Some("not json"),
    )?;
    send(
        &fake,
        "GET",
        "/models",
        &codex_headers(DEFAULT_ACCESS_TOKEN, "codex_cli_rs"),
        None,
    )?;

    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    let first = &requests[0];
    assert_eq!(
        (
            first.method.as_str(),
            first.path.as_str(),
            first.query.as_deref()
        ),
        ("POST", "/backend-api/codex/responses", None)
    );
    assert_eq!(first.body, body);
    assert_eq!(first.raw_body, body.to_string().into_bytes());
    assert!(
        first
            .headers
            .iter()
            .all(|(name, _)| *name == name.to_ascii_lowercase())
    );
    assert!(
        first
            .headers
            .iter()
            .any(|(name, _)| name == "chatgpt-account-id")
    );
    assert_eq!(
        first.header("ChatGPT-Account-ID"),
        Some("00000000-0000-4000-8000-000000000000")
    );
    assert_eq!(
        first.header("authorization"),
        Some("Bearer test-access-token")
    );
    assert_eq!(first.header("x-missing"), None);
    assert_eq!(
        (&requests[1].body, requests[1].raw_body.as_slice()),
        (&Value::Null, b"not json".as_slice())
    );
    assert_eq!(fake.responses_requests(), requests[..2].to_vec());
    Ok(())
}

#[test]
fn many_concurrent_streams_are_served() -> TestResult {
    let fake = FakeCodex::start();
    fake.set_default_script(Script::Slow {
        text: "concurrent".to_owned(),
        deltas: 5,
        delay_ms: 20,
    });
    let texts: Vec<String> = thread::scope(|scope| {
        let workers: Vec<_> = (0..16)
            .map(|_| {
                scope.spawn(|| {
                    post(&fake, &valid_body())
                        .map(|answer| concatenated(&answer.events(), "response.output_text.delta"))
                        .unwrap_or_else(|error| error.to_string())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().unwrap_or_default())
            .collect()
    });
    assert_eq!(texts, vec!["concurrent"; 16]);
    assert_eq!(fake.responses_requests().len(), 16);
    Ok(())
}

#[test]
fn dropping_the_fake_ends_a_stream_in_progress() -> TestResult {
    let fake = FakeCodex::start();
    fake.push_script(Script::Slow {
        text: "slow".to_owned(),
        deltas: 4,
        delay_ms: 600_000,
    });
    let mut request = agent().post(format!("{}/responses", fake.base_url()));
    for (name, value) in codex_headers(DEFAULT_ACCESS_TOKEN, "codex_cli_rs") {
        request = request.header(name, value);
    }
    let response = request.send(valid_body().to_string())?;
    let (started_sender, started) = crossbeam_channel::bounded(1);
    let client = thread::spawn(move || {
        let mut body = String::new();
        for line in BufReader::new(response.into_body().into_reader()).lines() {
            let line = line?;
            if line.contains("response.content_part.added") {
                let _ = started_sender.send(());
            }
            body.push_str(&line);
            body.push('\n');
        }
        Ok::<String, std::io::Error>(body)
    });
    assert!(
        started.recv_timeout(Duration::from_secs(10)).is_ok(),
        "the stream never started"
    );

    // The stream now waits ten minutes before its first delta; dropping the fake must cut that short.
    let (dropped_sender, dropped) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        drop(fake);
        let _ = dropped_sender.send(());
    });
    assert!(
        dropped.recv_timeout(Duration::from_secs(10)).is_ok(),
        "drop did not return"
    );
    // An error here would mean the body was cut off instead of ended (or the client timed out).
    let body = client.join().map_err(|_| "client thread panicked")??;
    let types: Vec<Value> = sse_data(&body)
        .iter()
        .map(|event| event["type"].clone())
        .collect();
    assert_eq!(
        types.last(),
        Some(&json!("response.content_part.added")),
        "the body ends where the pause began"
    );
    Ok(())
}

#[test]
fn sse_parser_reads_frames_like_a_client() {
    let text = "event: a\r\ndata: {\"n\":1}\r\n\r\n: comment\n\ndata: {\"n\":\ndata: 2}\n\nevent: b\ndata:3\n\ndata: not json";
    let frames = parse_sse(text);
    assert_eq!(
        frames,
        vec![
            SseFrame {
                event: Some("a".to_owned()),
                data: json!({"n": 1})
            },
            SseFrame {
                event: None,
                data: json!({"n": 2})
            },
            SseFrame {
                event: Some("b".to_owned()),
                data: json!(3)
            },
            SseFrame {
                event: None,
                data: Value::Null
            },
        ]
    );
    assert_eq!(
        sse_data(text),
        vec![json!({"n": 1}), json!({"n": 2}), json!(3), Value::Null]
    );
}
