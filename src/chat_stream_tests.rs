//! Unit tests for [`ChatStreamTranslator`](super::ChatStreamTranslator), driven by event
//! sequences shaped like the Codex backend's (see `tests/support/fake_codex_events.rs`).

use serde_json::{Value, json};

use super::*;
use crate::sse::SseReader;

fn meta() -> CompletionMeta {
    CompletionMeta {
        id: "chatcmpl-test".into(),
        created: 1_700_000_000,
        model: "gpt-5.5".into(),
    }
}

/// Feeds `events` and returns every frame's data (`[DONE]` as a string), checking the framing.
fn run(translator: &mut ChatStreamTranslator, events: &[Value]) -> Vec<Value> {
    let mut bytes = Vec::new();
    for event in events {
        bytes.extend(translator.on_value(event).unwrap_or_default());
    }
    bytes.extend(translator.closing_frames());
    parse(&bytes)
}

fn parse(bytes: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(bytes).expect("utf-8");
    assert!(!text.contains("event:"), "chat frames have no event line");
    let mut reader = SseReader::new(bytes, 1 << 20);
    let mut out = Vec::new();
    while let Some(event) = reader.next_event().expect("frames parse") {
        assert!(event.event.is_none());
        out.push(serde_json::from_str(&event.data).unwrap_or(Value::String(event.data)));
    }
    out
}

fn translator(include_usage: bool) -> ChatStreamTranslator {
    ChatStreamTranslator::new(meta(), include_usage, CallStyle::Tools)
}

/// What an OpenAI SDK accumulates from the chunks.
#[derive(Debug, Default)]
struct Accumulated {
    content: String,
    reasoning: String,
    calls: Vec<(String, String, String)>,
    finish_reason: Option<String>,
    usage: Option<Value>,
    error: Option<Value>,
    done: bool,
}

fn accumulate(frames: &[Value]) -> Accumulated {
    let mut acc = Accumulated::default();
    for frame in frames {
        if frame == "[DONE]" {
            acc.done = true;
            continue;
        }
        if let Some(error) = frame.get("error") {
            acc.error = Some(error.clone());
            continue;
        }
        assert_eq!(frame["id"], "chatcmpl-test");
        assert_eq!(frame["created"], 1_700_000_000);
        assert_eq!(frame["object"], "chat.completion.chunk");
        assert_eq!(frame["model"], "gpt-5.5");
        if let Some(usage) = frame.get("usage") {
            assert_eq!(frame["choices"], json!([]));
            acc.usage = Some(usage.clone());
        }
        for choice in frame["choices"].as_array().expect("choices") {
            assert_eq!(choice["index"], 0);
            let delta = &choice["delta"];
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
                assert!(acc.finish_reason.is_none(), "one finish_reason");
                acc.finish_reason = Some(reason.to_string());
            }
        }
    }
    acc
}

fn created() -> Value {
    json!({"type": "response.created", "sequence_number": 0,
           "response": {"id": "resp_1", "status": "in_progress", "output": []}})
}

fn message(index: u64, deltas: &[&str]) -> Vec<Value> {
    let text: String = deltas.concat();
    let ids = |mut event: Value| {
        event["item_id"] = json!(format!("msg_{index}"));
        event["output_index"] = json!(index);
        event["content_index"] = json!(0);
        event
    };
    let mut events = vec![
        json!({"type": "response.output_item.added", "output_index": index,
        "item": {"id": format!("msg_{index}"), "type": "message", "status": "in_progress",
                 "role": "assistant", "content": []}}),
    ];
    events.push(ids(json!({"type": "response.content_part.added",
                           "part": {"type": "output_text", "text": ""}})));
    for delta in deltas {
        events.push(ids(
            json!({"type": "response.output_text.delta", "delta": delta, "logprobs": []}),
        ));
    }
    events.push(ids(
        json!({"type": "response.output_text.done", "text": text}),
    ));
    events.push(
        json!({"type": "response.output_item.done", "output_index": index,
        "item": {"id": format!("msg_{index}"), "type": "message", "status": "completed",
                 "role": "assistant",
                 "content": [{"type": "output_text", "text": text, "annotations": []}]}}),
    );
    events
}

fn reasoning(index: u64, parts: &[&[&str]]) -> Vec<Value> {
    let mut events = vec![
        json!({"type": "response.output_item.added", "output_index": index,
        "item": {"id": "rs_1", "type": "reasoning", "summary": []}}),
    ];
    let mut summary = Vec::new();
    for (part, deltas) in parts.iter().enumerate() {
        events.push(
            json!({"type": "response.reasoning_summary_part.added", "item_id": "rs_1",
                           "output_index": index, "summary_index": part,
                           "part": {"type": "summary_text", "text": ""}}),
        );
        for delta in deltas.iter() {
            events.push(
                json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1",
                               "output_index": index, "summary_index": part, "delta": delta}),
            );
        }
        summary.push(json!({"type": "summary_text", "text": deltas.concat()}));
    }
    events.push(
        json!({"type": "response.output_item.done", "output_index": index,
        "item": {"id": "rs_1", "type": "reasoning", "summary": summary,
                 "encrypted_content": "gAAAAB"}}),
    );
    events
}

fn call_item(call_id: &str, name: &str, arguments: &str) -> Value {
    json!({"id": format!("fc_{call_id}"), "type": "function_call", "status": "completed",
           "call_id": call_id, "name": name, "arguments": arguments})
}

fn call_added(index: u64, call_id: &str, name: &str) -> Value {
    let mut item = call_item(call_id, name, "");
    item["status"] = json!("in_progress");
    json!({"type": "response.output_item.added", "output_index": index, "item": item})
}

fn call_delta(index: u64, call_id: &str, delta: &str) -> Value {
    json!({"type": "response.function_call_arguments.delta", "output_index": index,
           "item_id": format!("fc_{call_id}"), "delta": delta})
}

fn call_done(index: u64, call_id: &str, name: &str, arguments: &str) -> Value {
    json!({"type": "response.output_item.done", "output_index": index,
           "item": call_item(call_id, name, arguments)})
}

fn completed() -> Value {
    json!({"type": "response.completed", "response": {"id": "resp_1", "status": "completed",
        "output": [], "usage": {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 2},
        "output_tokens": 9, "output_tokens_details": {"reasoning_tokens": 4}, "total_tokens": 21}}})
}

#[test]
fn text_streams_after_a_role_chunk_and_ends_with_stop() {
    let mut t = translator(false);
    let mut events = vec![created()];
    events.extend(message(0, &["Hel", "lo", "!"]));
    events.push(completed());
    let frames = run(&mut t, &events);
    assert_eq!(
        frames[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert!(frames[0]["choices"][0]["finish_reason"].is_null());
    let acc = accumulate(&frames);
    assert_eq!(acc.content, "Hello!");
    assert_eq!(acc.finish_reason.as_deref(), Some("stop"));
    assert!(acc.usage.is_none(), "usage only when asked for");
    assert!(acc.done);
    let finish = &frames[frames.len() - 2];
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert!(t.is_finished());
    assert!(t.on_value(&completed()).is_none(), "nothing after the end");
}

#[test]
fn parallel_tool_calls_accumulate_to_the_finished_arguments() {
    let mut t = translator(true);
    let events = vec![
        created(),
        call_added(0, "call_a", "get_weather"),
        call_added(1, "call_b", "get_time"),
        call_delta(0, "call_a", "{\"city\":"),
        call_delta(1, "call_b", "{\"tz\":\"UTC\"}"),
        call_delta(0, "call_a", "\"Paris\"}"),
        call_done(0, "call_a", "get_weather", "{\"city\":\"Paris\"}"),
        call_done(1, "call_b", "get_time", "{\"tz\":\"UTC\"}"),
        completed(),
    ];
    let frames = run(&mut t, &events);
    let first_call = frames
        .iter()
        .find(|f| f["choices"][0]["delta"].get("tool_calls").is_some())
        .expect("a tool call chunk");
    assert_eq!(
        first_call["choices"][0]["delta"]["tool_calls"][0],
        json!({"index": 0, "id": "call_a", "type": "function",
               "function": {"name": "get_weather", "arguments": ""}})
    );
    let acc = accumulate(&frames);
    assert_eq!(
        acc.calls,
        [
            (
                "call_a".into(),
                "get_weather".into(),
                "{\"city\":\"Paris\"}".into()
            ),
            (
                "call_b".into(),
                "get_time".into(),
                "{\"tz\":\"UTC\"}".into()
            ),
        ]
    );
    assert_eq!(acc.content, "");
    assert_eq!(acc.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(acc.usage.expect("usage")["total_tokens"], 21);
}

#[test]
fn reasoning_then_text_then_a_call_with_usage() {
    let mut t = translator(true);
    let mut events = vec![created()];
    events.extend(reasoning(0, &[&["Think", "ing."], &["Then ", "decide."]]));
    events.extend(message(1, &["Let me ", "check."]));
    events.push(call_added(2, "call_1", "lookup"));
    events.push(call_delta(2, "call_1", "{}"));
    events.push(call_done(2, "call_1", "lookup", "{}"));
    events.push(completed());
    let frames = run(&mut t, &events);
    let acc = accumulate(&frames);
    assert_eq!(acc.reasoning, "Thinking.\n\nThen decide.");
    assert_eq!(acc.content, "Let me check.");
    assert_eq!(acc.calls, [("call_1".into(), "lookup".into(), "{}".into())]);
    assert_eq!(acc.finish_reason.as_deref(), Some("tool_calls"));
    let usage = acc.usage.expect("usage chunk");
    assert_eq!(usage["prompt_tokens"], 12);
    assert_eq!(usage["completion_tokens"], 9);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 2);
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 4);
    let usage_position = frames.iter().position(|f| f.get("usage").is_some());
    assert_eq!(
        usage_position,
        Some(frames.len() - 2),
        "usage just before [DONE]"
    );
}

#[test]
fn finished_items_fill_in_what_the_deltas_did_not_carry() {
    let mut t = translator(false);
    let frames = run(
        &mut t,
        &[
            created(),
            // A call announced but whose arguments never streamed.
            call_added(0, "call_x", "f"),
            call_done(0, "call_x", "f", "{\"a\":1}"),
            // A call streamed in part.
            call_added(1, "call_y", "g"),
            call_delta(1, "call_y", "{\"b\""),
            call_done(1, "call_y", "g", "{\"b\":2}"),
            // A call never announced at all.
            call_done(2, "call_z", "h", "{}"),
            // A message with no deltas (the Codex CLI fixture's shape).
            json!({"type": "response.output_item.done", "item": {"type": "message", "id": "msg_9",
                   "role": "assistant", "content": [{"type": "output_text", "text": "fixture hello"}]}}),
            completed(),
        ],
    );
    let acc = accumulate(&frames);
    assert_eq!(
        acc.calls,
        [
            ("call_x".into(), "f".into(), "{\"a\":1}".into()),
            ("call_y".into(), "g".into(), "{\"b\":2}".into()),
            ("call_z".into(), "h".into(), "{}".into()),
        ]
    );
    assert_eq!(acc.content, "fixture hello");
}

#[test]
fn web_search_and_unknown_events_in_between_are_ignored() {
    let mut t = translator(false);
    let mut events = vec![
        created(),
        json!({"type": "response.in_progress", "response": {"id": "resp_1"}}),
        json!({"type": "codex.rate_limits", "rate_limits": {"primary": {"used_percent": 1.0}}}),
        json!({"type": "response.output_item.added", "output_index": 0,
               "item": {"id": "ws_1", "type": "web_search_call", "status": "in_progress"}}),
        json!({"type": "response.web_search_call.searching", "output_index": 0, "item_id": "ws_1"}),
        json!({"type": "response.brand_new_event", "whatever": [1, 2]}),
        json!({"type": "response.output_item.done", "output_index": 0,
               "item": {"id": "ws_1", "type": "web_search_call", "status": "completed",
                        "action": {"type": "search", "query": "rust"}}}),
    ];
    events.extend(message(1, &["Rust 1.95 ", "is out."]));
    events.push(
        json!({"type": "response.output_text.annotation.added", "output_index": 1,
                       "annotation": {"type": "url_citation", "url": "https://example.com"}}),
    );
    events.push(completed());
    let acc = accumulate(&run(&mut t, &events));
    assert_eq!(acc.content, "Rust 1.95 is out.");
    assert_eq!(acc.finish_reason.as_deref(), Some("stop"));
}

#[test]
fn two_messages_are_separated_as_in_the_aggregated_answer() {
    let mut t = translator(false);
    let mut events = vec![created()];
    events.extend(message(0, &["First."]));
    events.extend(message(1, &["Second."]));
    events.push(completed());
    assert_eq!(
        accumulate(&run(&mut t, &events)).content,
        "First.\n\nSecond."
    );
}

#[test]
fn incomplete_ends_with_length_or_content_filter() {
    for (reason, expected) in [
        ("max_output_tokens", "length"),
        ("content_filter", "content_filter"),
    ] {
        let mut t = translator(false);
        let mut events = vec![created()];
        events.extend(message(0, &["partial"]));
        events.push(
            json!({"type": "response.incomplete", "response": {"id": "resp_1",
            "status": "incomplete", "incomplete_details": {"reason": reason}, "output": []}}),
        );
        let acc = accumulate(&run(&mut t, &events));
        assert_eq!(acc.finish_reason.as_deref(), Some(expected));
        assert_eq!(acc.content, "partial");
    }
    let mut t = translator(false);
    let bare = json!({"type": "response.incomplete", "response": {"id": "resp_1"}});
    let acc = accumulate(&run(&mut t, &[created(), bare]));
    assert_eq!(
        acc.finish_reason.as_deref(),
        Some("length"),
        "an incomplete response is never a stop"
    );
}

#[test]
fn failure_sends_an_error_chunk_and_no_finish_reason() {
    let mut t = translator(true);
    let mut events = vec![created()];
    events.extend(message(0, &["half"]));
    events.push(
        json!({"type": "response.failed", "sequence_number": 9, "response": {
        "id": "resp_1", "status": "failed",
        "error": {"code": "rate_limit_exceeded", "message": "Please try again in 11.054s."}}}),
    );
    let frames = run(&mut t, &events);
    let acc = accumulate(&frames);
    assert!(acc.finish_reason.is_none());
    assert!(acc.usage.is_none());
    let error = acc.error.expect("error chunk");
    assert_eq!(error["code"], "rate_limit_exceeded");
    assert_eq!(error["type"], "rate_limit_error");
    assert!(
        error["message"]
            .as_str()
            .expect("message")
            .contains("11.054s")
    );
    assert!(error.get("param").is_some());
    assert!(t.is_finished());
    assert_eq!(frames.last(), Some(&json!("[DONE]")));

    let mut t = translator(false);
    let acc = accumulate(&run(
        &mut t,
        &[
            created(),
            json!({"type": "error", "code": "server_error", "message": "boom"}),
        ],
    ));
    assert_eq!(acc.error.expect("error")["code"], "server_error");
    assert!(acc.finish_reason.is_none());
}

#[test]
fn a_failure_the_proxy_detects_becomes_an_error_chunk() {
    let mut t = translator(false);
    let mut bytes = Vec::new();
    for event in [created()].iter().chain(message(0, &["cut"]).iter()) {
        bytes.extend(t.on_value(event).unwrap_or_default());
    }
    assert!(!t.is_finished());
    bytes.extend(t.error_frame(&crate::responses_relay::eof_before_completion()));
    bytes.extend(t.closing_frames());
    let acc = accumulate(&parse(&bytes));
    assert_eq!(acc.content, "cut");
    assert!(acc.finish_reason.is_none(), "an EOF is never a stop");
    assert_eq!(acc.error.expect("error")["code"], "upstream_stream_broken");
    assert!(t.is_finished());
}

#[test]
fn legacy_functions_stream_a_function_call() {
    let mut t = ChatStreamTranslator::new(meta(), false, CallStyle::LegacyFunctions);
    let frames = run(
        &mut t,
        &[
            created(),
            call_added(0, "call_1", "lookup"),
            call_delta(0, "call_1", "{\"q\":"),
            call_done(0, "call_1", "lookup", "{\"q\":1}"),
            completed(),
        ],
    );
    let mut name = String::new();
    let mut arguments = String::new();
    for frame in &frames {
        let call = &frame["choices"][0]["delta"]["function_call"];
        name += call["name"].as_str().unwrap_or("");
        arguments += call["arguments"].as_str().unwrap_or("");
        assert!(frame["choices"][0]["delta"].get("tool_calls").is_none());
    }
    assert_eq!((name.as_str(), arguments.as_str()), ("lookup", "{\"q\":1}"));
    assert_eq!(
        accumulate(&frames).finish_reason.as_deref(),
        Some("function_call")
    );
}

#[test]
fn unparseable_frames_are_skipped() {
    let mut t = translator(false);
    let garbage = SseEvent {
        event: Some("response.output_text.delta".into()),
        data: "{not json".into(),
    };
    assert!(t.on_event(&garbage).is_none());
    assert_eq!(t.skipped_frames(), 1);
    let created = SseEvent {
        event: Some("response.created".into()),
        data: created().to_string(),
    };
    assert!(
        t.on_event(&created).is_none(),
        "the role chunk waits for the first content"
    );
    let delta = SseEvent {
        event: Some("response.output_text.delta".into()),
        data: json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0,
                     "content_index": 0, "delta": "Hi", "sequence_number": 2})
        .to_string(),
    };
    assert!(
        t.on_event(&delta).is_some(),
        "parseable frames after garbage are translated"
    );
}

#[test]
fn a_call_only_stream_opens_with_null_content() {
    let mut t = translator(false);
    let added = json!({"type": "response.output_item.added", "output_index": 0, "sequence_number": 2,
        "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": "", "status": "in_progress"}});
    let frames = t.on_value(&added).expect("frames");
    let text = String::from_utf8(frames).expect("utf-8");
    let first = text.split("\n\n").next().expect("a frame");
    let chunk: Value = serde_json::from_str(first.trim_start_matches("data: ")).expect("chunk");
    assert_eq!(
        chunk["choices"][0]["delta"],
        json!({"role": "assistant", "content": null})
    );
}

#[test]
fn events_chat_clients_never_see_are_not_parsed() {
    let mut t = translator(false);
    let echo = SseEvent {
        event: Some("response.output_text.done".into()),
        data: "{not even json".into(),
    };
    assert!(t.on_event(&echo).is_none());
    assert_eq!(t.skipped_frames(), 0, "dropped by name, never parsed");
    let delta = SseEvent {
        event: Some("response.output_text.delta".into()),
        data: json!({"type": "response.output_text.delta", "item_id": "m", "output_index": 0,
                     "content_index": 0, "delta": "hé \"quoted\""})
        .to_string(),
    };
    let frames = t.on_event(&delta).expect("frames");
    let text = String::from_utf8(frames).expect("utf-8");
    let chunks: Vec<Value> = text
        .split("\n\n")
        .filter_map(|frame| frame.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).expect("chunk json"))
        .collect();
    let last = chunks.last().expect("a chunk");
    assert_eq!(last["object"], "chat.completion.chunk");
    assert_eq!(last["choices"][0]["delta"]["content"], "hé \"quoted\"");
    assert_eq!(last["choices"][0]["finish_reason"], Value::Null);
    assert!(
        last["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("chatcmpl-"))
    );
}
