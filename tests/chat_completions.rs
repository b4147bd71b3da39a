//! `/v1/chat/completions` end to end over real sockets: the proxy between a client and the strict
//! fake Codex backend, which checks every request as the real one does (store, stream,
//! instructions, ids, and that every function_call_output has its function_call).

#[path = "support/fake_codex.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod fake_codex;
#[path = "support/harness.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod harness;
#[path = "support/secrets.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod secrets;

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::time::Duration;

use fake_codex::{FakeCodex, RecordedRequest, Script};
use harness::{TestProxy, config, post_json, raw_request, read_chunk, read_head};
use serde_json::{Value, json};

const PATH: &str = "/v1/chat/completions";

fn start(fake: &FakeCodex, overrides: &[(&str, &str)]) -> TestProxy {
    TestProxy::start(config(&fake.base_url(), overrides))
}

fn url(proxy: &TestProxy) -> String {
    format!("{}{PATH}", proxy.base)
}

#[expect(clippy::expect_used, reason = "test helpers fail loudly")]
fn last_request(fake: &FakeCodex) -> RecordedRequest {
    fake.responses_requests()
        .pop()
        .expect("the fake received a request")
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}])
}

/// A streamed chat answer: status, headers, and every frame's data (`[DONE]` as a string).
struct Streamed {
    status: u16,
    headers: HashMap<String, String>,
    frames: Vec<Value>,
}

/// What an OpenAI SDK accumulates from the chunks.
#[derive(Debug, Default)]
struct Accumulated {
    role: Option<String>,
    content: String,
    reasoning: String,
    calls: Vec<(String, String, String)>,
    finish_reason: Option<String>,
    usage: Option<Value>,
    error: Option<Value>,
    done: bool,
}

#[expect(clippy::expect_used, reason = "test helpers fail loudly")]
fn stream(proxy: &TestProxy, body: &Value) -> Streamed {
    let socket = raw_request(&proxy.addr(), "POST", PATH, body.to_string().as_bytes());
    let mut reader = BufReader::new(socket);
    let (status, headers) = read_head(&mut reader);
    let mut bytes = Vec::new();
    if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
        while let Some(chunk) = read_chunk(&mut reader) {
            bytes.extend(chunk);
        }
    } else {
        let length: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        bytes.resize(length, 0);
        reader.read_exact(&mut bytes).expect("body");
    }
    let text = String::from_utf8(bytes).expect("utf-8");
    if status != 200 {
        let frames = vec![serde_json::from_str(&text).expect("JSON error body")];
        return Streamed {
            status,
            headers,
            frames,
        };
    }
    assert!(
        text.lines().all(|line| !line.starts_with("event:")),
        "chat frames have no event line: {text}"
    );
    let frames = text
        .split("\n\n")
        .filter_map(|frame| frame.strip_prefix("data: "))
        .map(|data| match data {
            "[DONE]" => json!("[DONE]"),
            data => serde_json::from_str(data).expect("chunk JSON"),
        })
        .collect();
    Streamed {
        status,
        headers,
        frames,
    }
}

impl Streamed {
    #[expect(clippy::expect_used, reason = "test helpers fail loudly")]
    fn accumulate(&self) -> Accumulated {
        assert_eq!(self.status, 200, "{:?}", self.frames);
        let mut acc = Accumulated::default();
        let first = &self.frames[0];
        for (position, frame) in self.frames.iter().enumerate() {
            if frame == "[DONE]" {
                assert_eq!(position, self.frames.len() - 1, "[DONE] is last");
                acc.done = true;
                continue;
            }
            if let Some(error) = frame.get("error") {
                acc.error = Some(error.clone());
                continue;
            }
            assert_eq!(frame["object"], "chat.completion.chunk");
            assert_eq!(frame["id"], first["id"], "one id for the stream");
            assert_eq!(frame["created"], first["created"]);
            assert!(frame["model"].is_string());
            if let Some(usage) = frame.get("usage") {
                assert_eq!(frame["choices"], json!([]));
                acc.usage = Some(usage.clone());
            }
            for choice in frame["choices"].as_array().expect("choices") {
                assert_eq!(choice["index"], 0);
                let delta = &choice["delta"];
                if let Some(role) = delta["role"].as_str() {
                    acc.role = Some(role.to_string());
                }
                acc.content += delta["content"].as_str().unwrap_or("");
                acc.reasoning += delta["reasoning_content"].as_str().unwrap_or("");
                for call in delta["tool_calls"].as_array().into_iter().flatten() {
                    let index = call["index"].as_u64().expect("index") as usize;
                    if acc.calls.len() <= index {
                        acc.calls.resize(index + 1, Default::default());
                    }
                    let slot = &mut acc.calls[index];
                    slot.0 += call["id"].as_str().unwrap_or("");
                    slot.1 += call["function"]["name"].as_str().unwrap_or("");
                    slot.2 += call["function"]["arguments"].as_str().unwrap_or("");
                }
                if let Some(reason) = choice["finish_reason"].as_str() {
                    acc.finish_reason = Some(reason.to_string());
                }
            }
        }
        acc
    }
}

/// An SSE body for `Script::Raw`, one frame per event.
fn raw_stream(events: &[Value]) -> Script {
    let body = events
        .iter()
        .map(|event| {
            format!(
                "event: {}\ndata: {event}\n\n",
                event["type"].as_str().unwrap_or("")
            )
        })
        .collect();
    Script::Raw {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        body,
    }
}

/// Two parallel function calls, streamed the way the backend streams them.
fn parallel_calls() -> Script {
    let call = |index: u64, call_id: &str, name: &str, args: &str, status: &str| {
        json!({"id": format!("fc_{index}"), "type": "function_call", "status": status,
               "call_id": call_id, "name": name, "arguments": args})
    };
    let mut events = vec![json!({"type": "response.created", "response": {"id": "resp_p"}})];
    for (index, call_id, name, args) in [
        (0, "call_paris", "get_weather", "{\"city\":\"Paris\"}"),
        (1, "call_rome", "get_weather", "{\"city\":\"Rome\"}"),
    ] {
        events.push(
            json!({"type": "response.output_item.added", "output_index": index,
                           "item": call(index, call_id, name, "", "in_progress")}),
        );
        for piece in [&args[..5], &args[5..]] {
            events.push(json!({"type": "response.function_call_arguments.delta",
                               "output_index": index, "item_id": format!("fc_{index}"), "delta": piece}));
        }
        events.push(
            json!({"type": "response.output_item.done", "output_index": index,
                           "item": call(index, call_id, name, args, "completed")}),
        );
    }
    events.push(
        json!({"type": "response.completed", "response": {"id": "resp_p",
        "status": "completed", "output": [],
        "usage": {"input_tokens": 20, "output_tokens": 10, "total_tokens": 30,
                  "input_tokens_details": null, "output_tokens_details": null}}}),
    );
    raw_stream(&events)
}

#[test]
fn non_streaming_text_is_one_chat_completion() {
    let fake = FakeCodex::start();
    fake.push_script(Script::text("Hello there."));
    let proxy = start(&fake, &[]);
    let answer = post_json(
        &url(&proxy),
        &json!({"model": "gpt-5.5", "messages": [
            {"role": "system", "content": "Be brief."}, user("Say hello")]}),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.headers.contains_key("x-codex-primary-used-percent"));
    let completion = answer.json();
    assert_eq!(completion["object"], "chat.completion");
    assert!(
        completion["id"]
            .as_str()
            .expect("id")
            .starts_with("chatcmpl-")
    );
    assert!(
        completion["created"]
            .as_u64()
            .is_some_and(|t| t > 1_600_000_000)
    );
    assert_eq!(completion["model"], "gpt-5.5");
    let choice = &completion["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["finish_reason"], "stop");
    assert!(choice["logprobs"].is_null());
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "Hello there.");
    let usage = &completion["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["prompt_tokens"].as_u64().expect("prompt")
                + usage["completion_tokens"].as_u64().expect("completion")
        )
    );
    assert!(usage["prompt_tokens_details"]["cached_tokens"].is_u64());
    assert!(usage["completion_tokens_details"]["reasoning_tokens"].is_u64());

    let sent = last_request(&fake);
    assert_eq!(sent.body["instructions"], "Be brief.");
    assert_eq!(sent.body["store"], false);
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body["tool_choice"], "auto");
    assert_eq!(
        sent.body["input"],
        json!([{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Say hello"}]}])
    );
    assert!(sent.body.get("messages").is_none());
}

#[test]
fn streaming_text_sends_role_content_finish_and_done() {
    let fake = FakeCodex::start();
    fake.push_script(Script::Text {
        text: "Streaming works end to end.".into(),
        deltas: 5,
    });
    let proxy = start(&fake, &[]);
    let streamed = stream(
        &proxy,
        &json!({"model": "gpt-5.5", "messages": [user("hi")], "stream": true}),
    );
    assert!(streamed.headers["content-type"].starts_with("text/event-stream"));
    assert_eq!(
        streamed.frames[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let content_chunks = streamed
        .frames
        .iter()
        .filter(|f| {
            f["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
        })
        .count();
    assert_eq!(content_chunks, 5, "one chunk per upstream delta");
    let acc = streamed.accumulate();
    assert_eq!(acc.role.as_deref(), Some("assistant"));
    assert_eq!(acc.content, "Streaming works end to end.");
    assert_eq!(acc.finish_reason.as_deref(), Some("stop"));
    assert!(acc.usage.is_none());
    assert!(acc.done);
    assert_eq!(last_request(&fake).body["stream"], true);
}

#[test]
fn include_usage_adds_a_usage_chunk_before_done() {
    let fake = FakeCodex::start();
    let proxy = start(&fake, &[]);
    let streamed = stream(
        &proxy,
        &json!({"model": "gpt-5.5", "messages": [user("hi")], "stream": true,
                "stream_options": {"include_usage": true}}),
    );
    let acc = streamed.accumulate();
    let usage = acc.usage.expect("usage chunk");
    assert!(usage["prompt_tokens"].as_u64().is_some_and(|t| t > 0));
    assert!(usage["completion_tokens"].as_u64().is_some_and(|t| t > 0));
    let usage_frame = &streamed.frames[streamed.frames.len() - 2];
    assert_eq!(usage_frame["choices"], json!([]));
    assert!(last_request(&fake).body.get("stream_options").is_none());
}

#[test]
fn a_tool_call_is_returned_without_content() {
    let fake = FakeCodex::start();
    let proxy = start(&fake, &[]);
    let call = || Script::FunctionCall {
        call_id: "call_42".into(),
        name: "get_weather".into(),
        arguments: "{\"city\":\"Paris\"}".into(),
    };
    let body = json!({"model": "gpt-5.5", "messages": [user("Weather in Paris?")],
                      "tools": weather_tool(), "tool_choice": "required", "parallel_tool_calls": false});
    fake.push_script(call());
    let completion = post_json(&url(&proxy), &body).json();
    let choice = &completion["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    assert_eq!(
        choice["message"]["tool_calls"],
        json!([{"id": "call_42", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}])
    );
    let sent = last_request(&fake);
    assert_eq!(
        sent.body["tools"],
        json!([{"type": "function", "name": "get_weather", "description": "Current weather",
                "strict": false, "parameters": weather_tool()[0]["function"]["parameters"]}])
    );
    assert_eq!(sent.body["tool_choice"], "required");
    assert_eq!(sent.body["parallel_tool_calls"], false);

    fake.push_script(call());
    let mut streaming = body.clone();
    streaming["stream"] = json!(true);
    let acc = stream(&proxy, &streaming).accumulate();
    assert_eq!(
        acc.calls,
        [(
            "call_42".into(),
            "get_weather".into(),
            "{\"city\":\"Paris\"}".into()
        )]
    );
    assert_eq!(acc.finish_reason.as_deref(), Some("tool_calls"));
}

#[test]
fn parallel_tool_calls_streamed_and_aggregated() {
    let fake = FakeCodex::start();
    let proxy = start(&fake, &[]);
    let body =
        json!({"model": "gpt-5.5", "messages": [user("Paris and Rome?")], "tools": weather_tool()});
    fake.push_script(parallel_calls());
    let completion = post_json(&url(&proxy), &body).json();
    let calls = completion["choices"][0]["message"]["tool_calls"]
        .as_array()
        .expect("tool_calls")
        .clone();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1]["id"], "call_rome");
    assert_eq!(calls[1]["function"]["arguments"], "{\"city\":\"Rome\"}");
    assert_eq!(
        completion["usage"]["prompt_tokens_details"]["cached_tokens"],
        0
    );

    fake.push_script(parallel_calls());
    let mut streaming = body.clone();
    streaming["stream"] = json!(true);
    let acc = stream(&proxy, &streaming).accumulate();
    assert_eq!(
        acc.calls,
        [
            (
                "call_paris".into(),
                "get_weather".into(),
                "{\"city\":\"Paris\"}".into()
            ),
            (
                "call_rome".into(),
                "get_weather".into(),
                "{\"city\":\"Rome\"}".into()
            ),
        ]
    );
}

#[test]
fn a_two_turn_tool_loop_sends_the_call_and_its_result_back() {
    let fake = FakeCodex::start();
    let proxy = start(&fake, &[]);
    fake.push_script(Script::FunctionCall {
        call_id: "call_7".into(),
        name: "get_weather".into(),
        arguments: "{\"city\":\"Paris\"}".into(),
    });
    let mut messages = vec![user("Weather in Paris?")];
    let first = post_json(
        &url(&proxy),
        &json!({"model": "gpt-5.5", "messages": messages, "tools": weather_tool()}),
    )
    .json();
    messages.push(first["choices"][0]["message"].clone());
    messages.push(json!({"role": "tool", "tool_call_id": "call_7", "content": "sunny, 24 C"}));
    fake.push_script(Script::text("It is sunny in Paris."));
    let second = post_json(
        &url(&proxy),
        &json!({"model": "gpt-5.5", "messages": messages, "tools": weather_tool()}),
    );
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(
        second.json()["choices"][0]["message"]["content"],
        "It is sunny in Paris."
    );
    let input = last_request(&fake).body["input"].clone();
    assert_eq!(
        input[1],
        json!({"type": "function_call", "call_id": "call_7", "name": "get_weather",
               "arguments": "{\"city\":\"Paris\"}"})
    );
    assert_eq!(
        input[2],
        json!({"type": "function_call_output", "call_id": "call_7", "output": "sunny, 24 C"})
    );
}

#[test]
fn broken_tool_histories_are_repaired_or_refused_by_id() {
    let fake = FakeCodex::start();
    let proxy = start(&fake, &[]);
    let error = post_json(
        &url(&proxy),
        &json!({"model": "gpt-5.5", "messages": [
            user("hi"), {"role": "tool", "tool_call_id": "call_gone", "content": "42"}]}),
    )
    .expect_error(400);
    assert_eq!(error["param"], "messages[1].tool_call_id");
    assert_eq!(error["code"], "tool_call_not_found");
    assert!(
        error["message"]
            .as_str()
            .expect("message")
            .contains("call_gone")
    );
    assert!(
        fake.responses_requests().is_empty(),
        "refused before the upstream"
    );

    // An unanswered call is answered "aborted", which the strict fake accepts.
    let answer = post_json(
        &url(&proxy),
        &json!({"model": "gpt-5.5", "messages": [
            user("go"),
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            user("actually, never mind")]}),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let input = last_request(&fake).body["input"].clone();
    assert_eq!(input[2]["type"], "function_call_output");
    assert_eq!(input[2]["call_id"], "call_a");
    assert_eq!(input[2]["output"], "aborted");
}

#[test]
fn reasoning_summaries_become_reasoning_content() {
    let fake = FakeCodex::start();
    let proxy = start(&fake, &[]);
    let script = || Script::ReasoningThenText {
        summary: "Six sevens are forty-two.".into(),
        text: "42".into(),
    };
    fake.push_script(script());
    let body = json!({"model": "gpt-5.5", "messages": [user("6*7?")], "reasoning_effort": "low"});
    let completion = post_json(&url(&proxy), &body).json();
    let message = &completion["choices"][0]["message"];
    assert_eq!(message["reasoning_content"], "Six sevens are forty-two.");
    assert_eq!(message["content"], "42");
    assert!(
        completion["usage"]["completion_tokens_details"]["reasoning_tokens"].as_u64() > Some(0)
    );
    let sent = last_request(&fake);
    assert_eq!(
        sent.body["reasoning"],
        json!({"effort": "low", "summary": "auto"})
    );
    assert_eq!(sent.body["include"], json!(["reasoning.encrypted_content"]));

    fake.push_script(script());
    let mut streaming = body.clone();
    streaming["stream"] = json!(true);
    let acc = stream(&proxy, &streaming).accumulate();
    assert_eq!(acc.reasoning, "Six sevens are forty-two.");
    assert_eq!(acc.content, "42");
}

#[test]
fn an_effort_alias_picks_the_model_and_the_effort() {
    let fake = FakeCodex::start();
    let proxy = start(&fake, &[]);
    let completion = post_json(
        &url(&proxy),
        &json!({"model": "gpt-5.5-xhigh", "messages": [user("hi")]}),
    )
    .json();
    assert_eq!(
        completion["model"], "gpt-5.5-xhigh",
        "the caller's name is echoed"
    );
    let sent = last_request(&fake);
    assert_eq!(sent.body["model"], "gpt-5.5");
    assert_eq!(sent.body["reasoning"]["effort"], "xhigh");
}

#[test]
fn response_format_and_images_reach_the_upstream_translated() {
    let fake = FakeCodex::start();
    let proxy = start(&fake, &[]);
    let schema = json!({"type": "object", "properties": {"animal": {"type": "string"}},
                        "required": ["animal"], "additionalProperties": false});
    let answer = post_json(
        &url(&proxy),
        &json!({"model": "gpt-5.5", "verbosity": "low",
                "response_format": {"type": "json_schema",
                    "json_schema": {"name": "animal", "schema": schema, "strict": true}},
                "messages": [{"role": "user", "content": [
                    {"type": "text", "text": "What animal?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
                    {"type": "file", "file": {"filename": "notes.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}}]}]}),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let sent = last_request(&fake);
    assert_eq!(
        sent.body["text"],
        json!({"format": {"type": "json_schema", "name": "animal", "schema": schema, "strict": true},
               "verbosity": "low"})
    );
    let parts = &sent.body["input"][0]["content"];
    assert_eq!(
        parts[1],
        json!({"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"})
    );
    assert_eq!(
        parts[2],
        json!({"type": "input_file", "filename": "notes.pdf", "file_data": "data:application/pdf;base64,JVBERi0="})
    );
}

#[test]
fn dropped_parameters_are_named_and_shape_changes_refused() {
    let fake = FakeCodex::start();
    let proxy = start(&fake, &[]);
    let answer = post_json(
        &url(&proxy),
        &json!({"model": "gpt-5.5", "messages": [user("hi")], "temperature": 0.2, "top_p": 0.9,
                "max_tokens": 50, "max_completion_tokens": 50, "stop": ["\n"], "seed": 7,
                "presence_penalty": 0.5, "user": "u-1", "some_future_knob": true, "n": 1}),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let dropped = answer
        .headers
        .get("x-proxy-dropped-params")
        .expect("dropped header");
    for name in [
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "presence_penalty",
        "user",
        "some_future_knob",
    ] {
        assert!(
            dropped.split(", ").any(|d| d == name),
            "{name} in {dropped}"
        );
    }
    assert!(!dropped.contains("\"n\"") && !dropped.split(", ").any(|d| d == "n"));
    let sent = last_request(&fake);
    for name in ["temperature", "max_tokens", "stop", "some_future_knob", "n"] {
        assert!(sent.body.get(name).is_none(), "{name} not forwarded");
    }

    let requests_before = fake.responses_requests().len();
    for (field, value) in [
        ("n", json!(2)),
        ("logprobs", json!(true)),
        ("modalities", json!(["text", "audio"])),
    ] {
        let mut body = json!({"model": "gpt-5.5", "messages": [user("hi")]});
        body[field] = value;
        let error = post_json(&url(&proxy), &body).expect_error(400);
        assert_eq!(error["param"], field);
        assert_eq!(error["code"], "unsupported_parameter");
    }
    assert_eq!(fake.responses_requests().len(), requests_before);
}

#[test]
fn web_search_options_add_the_tool_and_citations_come_back() {
    let fake = FakeCodex::start();
    fake.push_script(Script::WebSearch {
        query: "rust release".into(),
        text: "Rust 1.95 is out.".into(),
    });
    let proxy = start(&fake, &[]);
    let completion = post_json(
        &url(&proxy),
        &json!({"model": "gpt-5.5", "messages": [user("news?")], "web_search_options": {}}),
    )
    .json();
    let message = &completion["choices"][0]["message"];
    assert_eq!(message["content"], "Rust 1.95 is out.");
    assert_eq!(message["annotations"][0]["type"], "url_citation");
    assert_eq!(
        message["annotations"][0]["url_citation"]["url"],
        "https://example.com/fake-search-result"
    );
    assert_eq!(
        last_request(&fake).body["tools"],
        json!([{"type": "web_search"}])
    );
}

#[test]
fn failures_mid_stream_are_error_chunks_never_stop() {
    let fake = FakeCodex::start();
    let proxy = start(&fake, &[]);
    let body = json!({"model": "gpt-5.5", "messages": [user("hi")], "stream": true});

    fake.push_script(Script::Failed {
        code: "server_is_overloaded".into(),
        message: "busy".into(),
    });
    let acc = stream(&proxy, &body).accumulate();
    let error = acc.error.expect("error chunk");
    assert_eq!(error["code"], "server_is_overloaded");
    assert_eq!(error["message"], "busy");
    assert!(acc.finish_reason.is_none());

    fake.push_script(Script::EofWithoutCompletion {
        text: "cut short".into(),
    });
    let acc = stream(&proxy, &body).accumulate();
    assert_eq!(acc.content, "cut short");
    assert_eq!(
        acc.error.expect("error chunk")["code"],
        "upstream_stream_broken"
    );
    assert!(acc.finish_reason.is_none(), "an EOF is never a stop");

    fake.push_script(Script::EofWithoutCompletion { text: "cut".into() });
    let error = post_json(
        &url(&proxy),
        &json!({"model": "gpt-5.5", "messages": [user("hi")]}),
    )
    .expect_error(502);
    assert!(
        error["message"]
            .as_str()
            .expect("message")
            .contains("response.completed")
    );
}

#[test]
fn an_idle_upstream_ends_the_chat_stream_with_an_error_chunk() {
    let fake = FakeCodex::start();
    fake.push_script(Script::Slow {
        text: "one two".into(),
        deltas: 2,
        delay_ms: 3000,
    });
    let proxy = start(&fake, &[("UPSTREAM_IDLE_TIMEOUT_SECS", "1")]);
    let acc = stream(
        &proxy,
        &json!({"model": "gpt-5.5", "messages": [user("hi")], "stream": true}),
    )
    .accumulate();
    assert_eq!(acc.error.expect("error chunk")["code"], "upstream_timeout");
    assert!(acc.finish_reason.is_none());
}

#[test]
fn upstream_refusals_and_failed_responses_keep_their_status() {
    let fake = FakeCodex::start();
    let proxy = start(&fake, &[("UPSTREAM_MAX_RETRIES", "0")]);
    let body = json!({"model": "gpt-5.5", "messages": [user("hi")]});

    fake.push_script(Script::usage_limit(600));
    let answer = post_json(&url(&proxy), &body);
    let error = answer.expect_error(429);
    assert_eq!(error["type"], "usage_limit_reached");
    assert_eq!(
        answer.headers.get("retry-after").map(String::as_str),
        Some("600")
    );

    fake.push_script(Script::usage_limit(600));
    let mut streaming = body.clone();
    streaming["stream"] = json!(true);
    let streamed = stream(&proxy, &streaming);
    assert_eq!(streamed.status, 429, "refused before the stream starts");
    assert_eq!(streamed.frames[0]["error"]["code"], "usage_limit_reached");

    fake.push_script(Script::Failed {
        code: "context_length_exceeded".into(),
        message: "Your input exceeds the context window.".into(),
    });
    let error = post_json(&url(&proxy), &body).expect_error(400);
    assert_eq!(error["code"], "context_length_exceeded");

    fake.push_script(Script::Incomplete {
        reason: "max_output_tokens".into(),
        text: "partial".into(),
    });
    let completion = post_json(&url(&proxy), &body).json();
    assert_eq!(completion["choices"][0]["finish_reason"], "length");
    assert_eq!(completion["choices"][0]["message"]["content"], "partial");
}

#[test]
fn developer_mode_keeps_default_instructions_and_the_system_prompt_in_input() {
    let fake = FakeCodex::start();
    let proxy = start(
        &fake,
        &[
            ("CHAT_SYSTEM_AS", "developer"),
            ("DEFAULT_INSTRUCTIONS", "Official Codex prompt."),
        ],
    );
    let answer = post_json(
        &url(&proxy),
        &json!({"model": "gpt-5.5", "messages": [
            {"role": "system", "content": "You are a pirate."}, user("hi")]}),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let sent = last_request(&fake);
    assert_eq!(sent.body["instructions"], "Official Codex prompt.");
    assert_eq!(
        sent.body["input"][0],
        json!({"type": "message", "role": "developer",
               "content": [{"type": "input_text", "text": "You are a pirate."}]})
    );
}

#[test]
fn legacy_functions_answer_with_a_function_call() {
    let fake = FakeCodex::start();
    fake.push_script(Script::FunctionCall {
        call_id: "call_9".into(),
        name: "lookup".into(),
        arguments: "{\"q\":\"rust\"}".into(),
    });
    let proxy = start(&fake, &[]);
    let completion = post_json(
        &url(&proxy),
        &json!({"model": "gpt-5.5", "messages": [user("look up rust")],
                "functions": [{"name": "lookup", "parameters": {"type": "object",
                               "properties": {"q": {"type": "string"}}}}]}),
    )
    .json();
    let choice = &completion["choices"][0];
    assert_eq!(choice["finish_reason"], "function_call");
    assert_eq!(
        choice["message"]["function_call"],
        json!({"name": "lookup", "arguments": "{\"q\":\"rust\"}"})
    );
    let sent = last_request(&fake);
    assert_eq!(sent.body["tools"][0]["name"], "lookup");
    assert_eq!(sent.body["parallel_tool_calls"], false);
}

#[test]
fn a_client_that_leaves_a_chat_stream_ends_the_upstream_call() {
    let fake = FakeCodex::start();
    fake.push_script(Script::Slow {
        text: "a long answer that nobody reads".into(),
        deltas: 100,
        delay_ms: 30,
    });
    let proxy = start(&fake, &[]);
    let body = json!({"model": "gpt-5.5", "messages": [user("hi")], "stream": true});
    let socket = raw_request(&proxy.addr(), "POST", PATH, body.to_string().as_bytes());
    let mut reader = BufReader::new(socket);
    let (status, _) = read_head(&mut reader);
    assert_eq!(status, 200);
    assert!(read_chunk(&mut reader).is_some(), "first chunk arrived");
    drop(reader);
    assert!(
        fake.wait_for_aborted_streams(1, Duration::from_secs(10)),
        "upstream connection closed after the client left"
    );
}
