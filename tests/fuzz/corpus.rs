//! Seed corpora for the fuzz targets: realistic request bodies for both endpoints, upstream
//! event streams recorded from the fake Codex backend (every script, ids and times made
//! deterministic) plus a few hand-written shapes the fake does not produce, and raw SSE text.

#![expect(clippy::expect_used, reason = "seed helpers fail loudly")]

use std::collections::HashMap;
use std::io::BufReader;
use std::sync::OnceLock;

use codex_sub_proxy::sse::{SseEvent, SseReader};
use serde_json::{Value, json};

use super::fake_codex::{DEFAULT_ACCESS_TOKEN, FakeCodex, Script};

/// `/v1/responses` bodies.
pub fn responses_bodies() -> Vec<Value> {
    vec![
        json!({"model": "gpt-5.5", "input": "hi"}),
        json!({"model": "gpt-5.5", "input": [{"role": "user", "content": "hi"}], "stream": true,
               "instructions": "Be brief.", "store": true}),
        json!({"model": "gpt-5.5", "stream": false, "input": [
            {"type": "message", "id": "msg_1", "role": "user",
             "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Look it up."}],
             "encrypted_content": "gAAAAB-opaque"},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
             "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"type": "message", "id": "msg_2", "role": "assistant", "content": "It is sunny."},
            {"role": "user", "content": "And Rome?"}
        ]}),
        json!({"model": "gpt-5.5", "input": "Weather?", "stream": true,
               "tools": [{"type": "function", "name": "get_weather", "strict": false,
                          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
                         {"type": "web_search"}],
               "tool_choice": "required", "parallel_tool_calls": false,
               "reasoning": {"effort": "high", "summary": "auto"},
               "include": ["reasoning.encrypted_content"],
               "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}},
                        "verbosity": "low"},
               "prompt_cache_key": "conversation-42", "service_tier": "priority"}),
        json!({"model": "gpt-5.5", "input": "x", "temperature": 0.2, "top_p": 1, "max_output_tokens": 10,
               "metadata": {"a": "b"}, "user": "u1", "truncation": "auto", "stream_options": null,
               "future_field": {"nested": [1, 2, 3]}}),
        json!({"model": "gpt-5.5", "input": [{"role": "user", "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
            {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}
        ]}]}),
        json!({"model": "gpt-5.5", "input": [{"type": "item_reference", "id": "msg_1"}]}),
        json!({"model": "gpt-5.5", "input": "x", "previous_response_id": "resp_1", "background": null}),
        json!({"model": "gpt-5.5", "input": "x", "instructions": null, "tools": null, "include": null,
               "tool_choice": null, "stream": null}),
    ]
}

/// `/v1/chat/completions` bodies.
pub fn chat_bodies() -> Vec<Value> {
    let weather = json!([{"type": "function", "function": {"name": "get_weather",
        "description": "Weather for a city", "strict": true,
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    vec![
        json!({"model": "gpt-5.5", "messages": [{"role": "system", "content": "Be terse."},
               {"role": "user", "content": "hi"}], "stream": true, "stream_options": {"include_usage": true}}),
        json!({"model": "gpt-5.5", "tools": weather, "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
               "parallel_tool_calls": true, "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rainy"}]},
            {"role": "user", "content": "Thanks"}]}),
        json!({"model": "gpt-5.5", "functions": [{"name": "lookup", "parameters": {"type": "object"}}],
               "function_call": {"name": "lookup"}, "messages": [
            {"role": "user", "content": "look up rust"},
            {"role": "assistant", "content": null, "function_call": {"name": "lookup", "arguments": "{\"q\":\"rust\"}"}},
            {"role": "function", "name": "lookup", "content": "a language"}]}),
        json!({"model": "gpt-5.5-high", "reasoning_effort": "low", "verbosity": "low",
               "reasoning": {"effort": "medium", "summary": "detailed", "extra": 1},
               "response_format": {"type": "json_schema", "json_schema": {"name": "animal", "strict": true,
                   "schema": {"type": "object", "properties": {"animal": {"type": "string"}}}}},
               "messages": [{"role": "user", "content": "An animal?"}]}),
        json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Describe"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
            {"type": "image_url", "image_url": "https://example.com/a.png"},
            {"type": "file", "file": {"filename": "notes.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
            {"type": "input_text", "text": "both dialects"}]}]}),
        json!({"model": "gpt-5.5", "web_search_options": {"search_context_size": "low",
               "user_location": {"type": "approximate", "approximate": {"country": "FR", "city": "Paris"}}},
               "messages": [{"role": "user", "content": "news?"}]}),
        json!({"model": "gpt-5.5", "n": 1, "logprobs": false, "top_logprobs": 0, "modalities": ["text"],
               "temperature": 0.2, "top_p": 0.9, "max_tokens": 5, "stop": ["\n"], "seed": 1,
               "store": true, "metadata": {}, "user": "u", "brand_new": {"x": 1}, "messages": [
            {"role": "developer", "content": "Dev rules"},
            {"role": "system", "content": [{"type": "text", "text": "System"}]},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "", "refusal": "I cannot."},
            {"role": "system", "content": "late system"},
            {"role": "user", "content": "ok"}]}),
        json!({"model": "gpt-5.5", "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": null}}]},
            {"role": "tool", "content": "done"},
            {"role": "assistant", "tool_calls": [{"id": "", "type": "function", "function": {"name": "g"}}]},
            {"role": "user", "content": "next"}]}),
        json!({"model": "gpt-5.5", "tools": weather, "messages": [{"role": "user", "content": "hi"}],
               "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto",
                   "tools": [{"type": "function", "function": {"name": "get_weather"}}]}},
               "response_format": {"type": "json_object"}, "prompt_cache_key": "k", "service_tier": "auto"}),
        json!({"model": "gpt-5.5", "messages": [{"role": "tool", "tool_call_id": "call_missing", "content": "x"}]}),
        json!({"model": "gpt-5.5", "logprobs": true, "messages": [{"role": "user", "content": "hi"}]}),
    ]
}

/// Upstream event streams: every fake script, then hand-written shapes.
pub fn event_streams() -> Vec<Vec<SseEvent>> {
    let mut streams: Vec<Vec<SseEvent>> = recorded_streams()
        .iter()
        .map(|values| values.iter().map(named_event).collect())
        .collect();
    streams.extend(
        hand_written_streams()
            .into_iter()
            .map(|values| values.iter().map(named_event).collect()),
    );
    let mut odd = vec![
        SseEvent {
            event: None,
            data: ":not json".into(),
        },
        SseEvent {
            event: Some("response.output_text.delta".into()),
            data: "{\"type\":\"response.output_text.delta\",\"sequence_number\":3,\"delta\":\"x\",\"output_index\":0}"
                .into(),
        },
        SseEvent {
            event: Some("response.in_progress".into()),
            data: "{\"type\":\"response.in_progress\"}".into(),
        },
    ];
    odd.extend(streams[0].iter().skip(2).cloned());
    streams.push(odd);
    streams
}

/// Raw SSE text: the recorded streams as the fake frames them, and framing edge cases.
pub fn sse_texts() -> Vec<Vec<u8>> {
    let mut texts: Vec<Vec<u8>> = event_streams()
        .iter()
        .take(4)
        .map(|events| {
            let mut text = Vec::new();
            for event in events {
                if let Some(name) = &event.event {
                    text.extend_from_slice(format!("event: {name}\n").as_bytes());
                }
                text.extend_from_slice(format!("data: {}\n\n", event.data).as_bytes());
            }
            text
        })
        .collect();
    for text in [
        &b": keep-alive\n\nevent: response.created\r\ndata: {\"type\":\"response.created\"}\r\n\r\n"[..],
        b"id: 7\nretry: 100\ndata: a\ndata:b\ndata\n\n",
        b"event: response.in_progress\n\nevent: response.completed\ndata: {}\n",
        b"data: \xff\xfe\n\ndata: ok\n\n: \xff comment\ndata: x\n\n",
        b"data: {\"x\":1}",
        b"\n\n\n\r\n\revent:\ndata:\n\n",
    ] {
        texts.push(text.to_vec());
    }
    texts
}

fn named_event(value: &Value) -> SseEvent {
    SseEvent {
        event: value
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_string),
        data: value.to_string(),
    }
}

/// Streams the fake answers for each script, read over a real socket once per process.
fn recorded_streams() -> &'static [Vec<Value>] {
    static STREAMS: OnceLock<Vec<Vec<Value>>> = OnceLock::new();
    STREAMS.get_or_init(record_streams)
}

fn record_streams() -> Vec<Vec<Value>> {
    let fake = FakeCodex::start();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let scripts = [
        Script::Text {
            text: "Hello from the fake Codex backend.".into(),
            deltas: 4,
        },
        Script::ReasoningThenText {
            summary: "Thinking about the question.".into(),
            text: "The answer is 42.".into(),
        },
        Script::FunctionCall {
            call_id: "call_1".into(),
            name: "get_weather".into(),
            arguments: "{\"city\":\"Paris\"}".into(),
        },
        Script::WebSearch {
            query: "rust news".into(),
            text: "Rust 2.0 is out.".into(),
        },
        Script::Failed {
            code: "context_length_exceeded".into(),
            message: "Too long.".into(),
        },
        Script::Incomplete {
            reason: "max_output_tokens".into(),
            text: "Cut sh".into(),
        },
        Script::EofWithoutCompletion {
            text: "Never finished".into(),
        },
    ];
    let body = json!({"model": "gpt-5.5", "store": false, "stream": true, "instructions": "Be brief.",
                      "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
                      "include": ["reasoning.encrypted_content"], "reasoning": {"effort": "low", "summary": "auto"}});
    let mut streams = Vec::new();
    let mut ids = HashMap::new();
    for script in scripts {
        fake.push_script(script);
        let response = agent
            .post(format!("{}/responses", fake.base_url()))
            .header("authorization", format!("Bearer {DEFAULT_ACCESS_TOKEN}"))
            .header("originator", "codex_cli_rs")
            .header("content-type", "application/json")
            .send(body.to_string().as_bytes())
            .expect("the fake answers");
        let text = response
            .into_body()
            .read_to_string()
            .expect("the fake's stream");
        let mut reader = SseReader::new(BufReader::new(text.as_bytes()), 1 << 20);
        let mut values = Vec::new();
        while let Ok(Some(event)) = reader.next_event() {
            let mut value: Value = serde_json::from_str(&event.data).expect("the fake sends JSON");
            canonicalise(&mut value, &mut ids);
            values.push(value);
        }
        assert!(!values.is_empty(), "the fake sent no events");
        streams.push(values);
    }
    streams
}

/// Replaces the fake's random ids, times and opaque blobs with stable ones, so a seed always
/// yields the same inputs.
fn canonicalise(value: &mut Value, ids: &mut HashMap<String, String>) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                match (key.as_str(), &*field) {
                    ("id" | "item_id", Value::String(id)) => {
                        let next = ids.len();
                        let stable = ids.entry(id.clone()).or_insert_with(|| {
                            let prefix = id.split('_').next().unwrap_or("id");
                            format!("{prefix}_{next:04}")
                        });
                        *field = json!(stable);
                    }
                    ("created_at" | "completed_at", Value::Number(_)) => {
                        *field = json!(1_767_225_600);
                    }
                    ("encrypted_content", Value::String(_)) => *field = json!("gAAAAB-opaque"),
                    _ => canonicalise(field, ids),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| canonicalise(item, ids)),
        _ => {}
    }
}

/// Shapes the fake does not send: the public API's filled `output`, several messages with
/// citations, parallel calls announced late, refusals, an `error` event, unknown events.
fn hand_written_streams() -> Vec<Vec<Value>> {
    let message = |id: &str, text: &str, start: u64| {
        json!({"type": "message", "id": id, "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": text, "annotations": [
                   {"type": "url_citation", "url": "https://example.com", "title": "Example",
                    "start_index": start, "end_index": start + 4}]}]})
    };
    let call = |index: u64, id: &str| {
        json!({"type": "function_call", "id": format!("fc_{index}"), "status": "completed",
               "call_id": id, "name": "get_weather", "arguments": "{\"city\":\"Rome\"}"})
    };
    let usage = json!({"input_tokens": 12, "input_tokens_details": {"cached_tokens": 2},
                       "output_tokens": 9, "output_tokens_details": {"reasoning_tokens": 3},
                       "total_tokens": 21});
    vec![
        vec![
            json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_h1", "status": "in_progress", "output": []}}),
            json!({"type": "codex.rate_limits", "sequence_number": 1, "primary": {"used_percent": 12.5}}),
            json!({"type": "response.output_text.delta", "sequence_number": 2, "output_index": 0, "item_id": "msg_h1", "content_index": 0, "delta": "First"}),
            json!({"type": "response.output_text.delta", "sequence_number": 3, "output_index": 1, "item_id": "msg_h2", "content_index": 0, "delta": "Sec"}),
            json!({"type": "response.completed", "sequence_number": 4, "response": {
                "id": "resp_h1", "status": "completed", "usage": usage,
                "output": [message("msg_h1", "First part", 0), message("msg_h2", "Second part", 2)]}}),
        ],
        vec![
            json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_h2", "output": []}}),
            json!({"type": "response.function_call_arguments.delta", "sequence_number": 1, "output_index": 0, "item_id": "fc_0", "delta": "{\"ci"}),
            json!({"type": "response.output_item.done", "sequence_number": 2, "output_index": 0, "item": call(0, "call_a")}),
            json!({"type": "response.output_item.added", "sequence_number": 3, "output_index": 1, "item": call(1, "call_b")}),
            json!({"type": "response.function_call_arguments.delta", "sequence_number": 4, "output_index": 1, "item_id": "fc_1", "delta": "{\"city\":"}),
            json!({"type": "response.output_item.done", "sequence_number": 5, "output_index": 1, "item": call(1, "call_b")}),
            json!({"type": "response.completed", "sequence_number": 6, "response": {"id": "resp_h2", "status": "completed", "output": [], "usage": usage}}),
        ],
        vec![
            json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_h3", "output": []}}),
            json!({"type": "response.refusal.delta", "sequence_number": 1, "output_index": 0, "item_id": "msg_h3", "delta": "I can't"}),
            json!({"type": "response.reasoning_summary_text.delta", "sequence_number": 2, "output_index": 1, "item_id": "rs_h3", "summary_index": 1, "delta": "Hm"}),
            json!({"type": "response.incomplete", "sequence_number": 3, "response": {"id": "resp_h3", "status": "incomplete",
                   "incomplete_details": {"reason": "content_filter"}, "output": [], "usage": usage}}),
        ],
        vec![
            json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_h4", "output": []}}),
            json!({"type": "response.output_text.delta", "sequence_number": 1, "output_index": 0, "item_id": "msg_h4", "delta": "Par"}),
            json!({"type": "error", "sequence_number": 2, "code": "server_error", "message": "The server had an error.", "param": null}),
        ],
    ]
}
