//! The official OpenAI SDKs, Python and Node, against `/v1/chat/completions`: each test scripts the
//! fake Codex backend, starts the proxy, runs one scenario of `tests/sdk/chat_sdk.py` or
//! `tests/sdk/node/chat_sdk.mjs` (which check what the SDK makes of the proxy's answers, streams
//! read through the SDK's own accumulation helpers), then checks what reached the fake.
//!
//! These tests fail, rather than skip, when an SDK is missing: `pip install -r
//! tests/sdk/requirements.txt` for Python, `npm ci --prefix tests/sdk/node` for Node. Set `PYTHON`
//! or `NODE` to use another interpreter.

#[path = "support/fake_codex.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod fake_codex;
#[path = "support/harness.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod harness;
#[path = "support/sdk_runner.rs"]
mod sdk_runner;
#[path = "support/secrets.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod secrets;

use fake_codex::{FakeCodex, Script};
use harness::{TestProxy, config};
use sdk_runner::{NODE_DIR, Sdk};
use serde_json::{Value, json};

const PYTHON_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/chat_sdk.py");

/// A 1x1 PNG as a data URL; the fake does not look inside.
const IMAGE_URL: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";

/// The chat scenario script of `sdk`.
fn chat_script(sdk: Sdk) -> String {
    match sdk {
        Sdk::Python => PYTHON_SCRIPT.to_owned(),
        Sdk::Node => format!("{NODE_DIR}/chat_sdk.mjs"),
    }
}

/// Runs `scenario` of the chat script of `sdk` against `proxy`, failing the test unless it passed.
fn assert_scenario(sdk: Sdk, proxy: &TestProxy, scenario: &str, env: &[(&str, &str)]) {
    sdk.assert_scenario(&proxy.base, &chat_script(sdk), scenario, env);
}

fn start_proxy(fake: &FakeCodex) -> TestProxy {
    TestProxy::start(config(&fake.base_url(), &[]))
}

/// The `POST /responses` bodies the fake received, checking there were `count`.
fn upstream_bodies(fake: &FakeCodex, count: usize) -> Vec<Value> {
    let requests = fake.responses_requests();
    assert_eq!(requests.len(), count, "upstream requests: {requests:#?}");
    requests.into_iter().map(|request| request.body).collect()
}

fn text_scenario(sdk: Sdk) {
    let text = "Hello from the proxy, non-streaming.";
    let fake = FakeCodex::start();
    fake.push_script(Script::text(text));
    let proxy = start_proxy(&fake);
    assert_scenario(sdk, &proxy, "text", &[("EXPECTED_TEXT", text)]);
    let bodies = upstream_bodies(&fake, 1);
    assert_eq!(bodies[0]["instructions"], "Be brief.");
}

fn text_stream_scenario(sdk: Sdk) {
    let text = "Streaming through the SDK, chunk by chunk.";
    let fake = FakeCodex::start();
    fake.push_script(Script::Text {
        text: text.into(),
        deltas: 6,
    });
    let proxy = start_proxy(&fake);
    assert_scenario(sdk, &proxy, "text_stream", &[("EXPECTED_TEXT", text)]);
    let bodies = upstream_bodies(&fake, 1);
    assert!(bodies[0].get("stream_options").is_none(), "{}", bodies[0]);
}

fn stream_helper_scenario(sdk: Sdk) {
    let text = "The stream helper sees every word of this.";
    let fake = FakeCodex::start();
    fake.push_script(Script::Text {
        text: text.into(),
        deltas: 4,
    });
    let proxy = start_proxy(&fake);
    assert_scenario(sdk, &proxy, "stream_helper", &[("EXPECTED_TEXT", text)]);
    upstream_bodies(&fake, 1);
}

/// Runs a two-turn tool loop scenario (a call, then the answer) and checks that the second
/// upstream request carried the call and the SDK's tool result under the scripted `call_id`.
fn tool_loop(sdk: Sdk, scenario: &str, strict_tool: bool) {
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
        sdk,
        &proxy,
        scenario,
        &[
            ("EXPECTED_TEXT", text),
            ("EXPECTED_CALL_ID", call_id),
            ("EXPECTED_ARGUMENTS", arguments),
        ],
    );

    let bodies = upstream_bodies(&fake, 2);
    for body in &bodies {
        let tools = body["tools"].as_array().cloned().unwrap_or_default();
        assert_eq!(tools.len(), 1, "one tool forwarded: {}", body["tools"]);
        assert_eq!(tools[0]["type"], "function");
        assert_eq!(tools[0]["name"], "get_weather");
        assert_eq!(tools[0]["strict"], strict_tool, "{}", tools[0]);
        assert_eq!(
            tools[0]["parameters"]["properties"]["city"]["type"],
            "string"
        );
    }
    let input = bodies[1]["input"].as_array().cloned().unwrap_or_default();
    let kinds: Vec<&str> = input
        .iter()
        .map(|item| item["type"].as_str().unwrap_or("message"))
        .collect();
    assert_eq!(
        kinds,
        ["message", "function_call", "function_call_output"],
        "{input:#?}"
    );
    assert_eq!(input[0]["role"], "user");
    assert_eq!(
        input[1],
        json!({"type": "function_call", "call_id": call_id, "name": "get_weather",
               "arguments": arguments}),
        "the SDK's assistant message became the call"
    );
    assert_eq!(
        input[2],
        json!({"type": "function_call_output", "call_id": call_id, "output": "sunny"}),
        "the tool message became its output"
    );
}

fn structured_output_scenario(sdk: Sdk) {
    let answer = r#"{"name":"cat","legs":4}"#;
    let fake = FakeCodex::start();
    fake.push_script(Script::text(answer));
    let proxy = start_proxy(&fake);
    assert_scenario(
        sdk,
        &proxy,
        "structured_output",
        &[("EXPECTED_TEXT", answer)],
    );
    let bodies = upstream_bodies(&fake, 1);
    let format = &bodies[0]["text"]["format"];
    assert_eq!(format["type"], "json_schema", "{format}");
    assert_eq!(format["name"], "Animal", "{format}");
    assert_eq!(format["strict"], true, "{format}");
    let schema = &format["schema"];
    assert_eq!(schema["type"], "object", "{schema}");
    assert_eq!(schema["properties"]["name"]["type"], "string", "{schema}");
    assert_eq!(schema["properties"]["legs"]["type"], "integer", "{schema}");
    assert_eq!(schema["additionalProperties"], false, "{schema}");
}

fn image_scenario(sdk: Sdk) {
    let text = "A single pixel.";
    let fake = FakeCodex::start();
    fake.push_script(Script::text(text));
    let proxy = start_proxy(&fake);
    assert_scenario(
        sdk,
        &proxy,
        "image",
        &[("EXPECTED_TEXT", text), ("IMAGE_URL", IMAGE_URL)],
    );
    let bodies = upstream_bodies(&fake, 1);
    assert_eq!(
        bodies[0]["input"][0]["content"],
        json!([
            {"type": "input_text", "text": "What is in this picture?"},
            {"type": "input_image", "image_url": IMAGE_URL, "detail": "low"},
        ]),
        "{}",
        bodies[0]["input"]
    );
}

fn rate_limit_scenario(sdk: Sdk) {
    let fake = FakeCodex::start();
    fake.push_script(Script::usage_limit(1800));
    fake.push_script(Script::usage_limit(1800));
    let proxy = start_proxy(&fake);
    assert_scenario(
        sdk,
        &proxy,
        "rate_limit",
        &[("EXPECTED_RETRY_AFTER", "1800")],
    );
    // One upstream request per SDK call: neither the SDK (max_retries 0) nor the proxy retried.
    upstream_bodies(&fake, 2);
}

#[test]
fn python_text() {
    text_scenario(Sdk::Python);
}

#[test]
fn node_text() {
    text_scenario(Sdk::Node);
}

#[test]
fn python_text_stream() {
    text_stream_scenario(Sdk::Python);
}

#[test]
fn node_text_stream() {
    text_stream_scenario(Sdk::Node);
}

#[test]
fn python_stream_helper() {
    stream_helper_scenario(Sdk::Python);
}

#[test]
fn node_stream_helper() {
    stream_helper_scenario(Sdk::Node);
}

#[test]
fn python_tool_loop() {
    tool_loop(Sdk::Python, "tool_loop", false);
}

#[test]
fn node_tool_loop() {
    tool_loop(Sdk::Node, "tool_loop", false);
}

#[test]
fn python_tool_loop_stream() {
    tool_loop(Sdk::Python, "tool_loop_stream", true);
}

#[test]
fn node_tool_loop_stream() {
    tool_loop(Sdk::Node, "tool_loop_stream", true);
}

#[test]
fn node_run_tools() {
    tool_loop(Sdk::Node, "run_tools", true);
}

#[test]
fn python_structured_output() {
    structured_output_scenario(Sdk::Python);
}

#[test]
fn node_structured_output() {
    structured_output_scenario(Sdk::Node);
}

#[test]
fn python_image() {
    image_scenario(Sdk::Python);
}

#[test]
fn node_image() {
    image_scenario(Sdk::Node);
}

#[test]
fn python_rate_limit() {
    rate_limit_scenario(Sdk::Python);
}

#[test]
fn node_rate_limit() {
    rate_limit_scenario(Sdk::Node);
}
