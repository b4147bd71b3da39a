//! The official OpenAI Python SDK against `/v1/responses`: each test scripts the fake Codex
//! backend, starts the proxy, and runs one scenario of `tests/sdk/responses_sdk.py`, which checks
//! what the SDK makes of the proxy's answers (strictly validated against the SDK's models).
//!
//! These tests fail, rather than skip, when `python3` or the `openai` package is missing:
//! `pip install -r tests/sdk/requirements.txt`. Set `PYTHON` to use another interpreter.

#[path = "support/fake_codex.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod fake_codex;
#[path = "support/harness.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod harness;
#[path = "support/sdk_runner.rs"]
#[expect(
    dead_code,
    reason = "shared test support; this crate runs only the Python SDK"
)]
mod sdk_runner;
#[path = "support/secrets.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod secrets;

use fake_codex::{FakeCodex, Script};
use harness::{TestProxy, config};
use sdk_runner::Sdk;
use serde_json::Value;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/responses_sdk.py");

fn start_proxy(fake: &FakeCodex) -> TestProxy {
    TestProxy::start(config(&fake.base_url(), &[]))
}

/// Runs `scenario` of the Python script against `proxy`, failing the test unless it passed.
fn assert_scenario(proxy: &TestProxy, scenario: &str, env: &[(&str, &str)]) {
    Sdk::Python.assert_scenario(&proxy.base, SCRIPT, scenario, env);
}

#[test]
fn non_streaming_response_parses() {
    let text = "Hello from the proxy, non-streaming.";
    let fake = FakeCodex::start();
    fake.push_script(Script::text(text));
    let proxy = start_proxy(&fake);
    assert_scenario(&proxy, "non_streaming", &[("EXPECTED_TEXT", text)]);
}

#[test]
fn raw_stream_events_parse() {
    let text = "Streaming through the SDK, event by event.";
    let fake = FakeCodex::start();
    fake.push_script(Script::Text {
        text: text.into(),
        deltas: 6,
    });
    let proxy = start_proxy(&fake);
    assert_scenario(&proxy, "raw_streaming", &[("EXPECTED_TEXT", text)]);
}

#[test]
fn stream_helper_final_response_has_the_whole_text() {
    let text = "The stream helper sees every word of this.";
    let fake = FakeCodex::start();
    fake.push_script(Script::Text {
        text: text.into(),
        deltas: 4,
    });
    let proxy = start_proxy(&fake);
    assert_scenario(&proxy, "stream_helper", &[("EXPECTED_TEXT", text)]);
}

#[test]
fn function_call_round_trip_with_sdk_output_items() {
    let text = "It is sunny in Paris.";
    let call_id = "call_sdk_weather_1";
    let arguments = r#"{"city":"Paris"}"#;
    let fake = FakeCodex::start();
    fake.push_script(Script::FunctionCall {
        call_id: call_id.into(),
        name: "get_weather".into(),
        arguments: arguments.into(),
    });
    fake.push_script(Script::text(text));
    let proxy = start_proxy(&fake);
    assert_scenario(
        &proxy,
        "function_call_round_trip",
        &[
            ("EXPECTED_TEXT", text),
            ("EXPECTED_CALL_ID", call_id),
            ("EXPECTED_ARGUMENTS", arguments),
        ],
    );

    let requests = fake.responses_requests();
    assert_eq!(requests.len(), 2, "two upstream requests");
    let input = requests[1].body["input"].as_array().expect("input array");
    assert!(
        input.iter().all(|item| item.get("id").is_none()),
        "ids stripped: {input:?}"
    );
    let kinds: Vec<&str> = input
        .iter()
        .map(|item| item["type"].as_str().unwrap_or("message"))
        .collect();
    assert_eq!(
        kinds,
        ["message", "function_call", "function_call_output"],
        "{input:?}"
    );
    assert_eq!(input[1]["call_id"], call_id);
    assert_eq!(input[2]["call_id"], call_id);
    assert!(
        requests[1].body["tools"]
            .as_array()
            .is_some_and(|tools| tools.iter().any(|t| t["name"] == "get_weather")),
        "tools forwarded: {}",
        requests[1].body["tools"]
    );
    assert_eq!(requests[1].body["input"][2]["output"], Value::from("sunny"));
}

#[test]
fn upstream_errors_map_to_sdk_exceptions() {
    let detail = "The 'gpt-9' model is not supported when using Codex with a ChatGPT account.";
    let fake = FakeCodex::start();
    fake.push_script(Script::usage_limit(1800));
    fake.push_script(Script::bad_request(detail));
    let proxy = start_proxy(&fake);
    assert_scenario(
        &proxy,
        "error_mapping",
        &[
            ("EXPECTED_DETAIL", detail),
            ("EXPECTED_RETRY_AFTER", "1800"),
        ],
    );
    assert_eq!(
        fake.responses_requests().len(),
        2,
        "one upstream request per SDK call: neither the SDK nor the proxy retried"
    );
}
