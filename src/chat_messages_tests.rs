//! Unit tests for [`translate_messages`](super::translate_messages): histories, pairing repair, content parts.

use super::*;

fn translate(messages: Value) -> Result<Conversation, ProxyError> {
    translate_messages(messages, ChatSystemAs::Instructions)
}

fn call(id: &str, name: &str) -> Value {
    json!({"id": id, "type": "function", "function": {"name": name, "arguments": "{}"}})
}

fn kinds_and_ids(input: &[Value]) -> Vec<(String, String)> {
    input
        .iter()
        .map(|item| {
            (
                item["type"].as_str().unwrap_or("").to_string(),
                item["call_id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn leading_system_messages_are_instructions_later_ones_developer_messages() {
    let conversation = translate(json!([
        {"role": "system", "content": "One."},
        {"role": "developer", "content": [{"type": "text", "text": "Two."}]},
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "Mid-way."},
    ]))
    .expect("valid");
    assert_eq!(conversation.instructions, ["One.", "Two."]);
    let empty =
        translate(json!([{"role": "system", "content": ""}, {"role": "user", "content": "x"}]))
            .expect("valid");
    assert!(
        empty.instructions.is_empty(),
        "empty system prompts are skipped"
    );
    assert_eq!(conversation.input.len(), 2);
    assert_eq!(
        conversation.input[1],
        json!({"type": "message", "role": "developer",
               "content": [{"type": "input_text", "text": "Mid-way."}]})
    );
}

#[test]
fn assistant_text_and_calls_then_tool_results() {
    let conversation = translate(json!([
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            call("call_p", "get_weather"),
            {"id": "call_r", "type": "function",
             "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]},
        {"role": "tool", "tool_call_id": "call_p", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_r",
         "content": [{"type": "text", "text": "rain"}]},
    ]))
    .expect("valid");
    let input = &conversation.input;
    assert_eq!(
        input[1],
        json!({"type": "message", "role": "assistant",
               "content": [{"type": "output_text", "text": "Checking."}]})
    );
    assert_eq!(
        input[2],
        json!({"type": "function_call", "call_id": "call_p", "name": "get_weather", "arguments": "{}"})
    );
    assert_eq!(input[3]["arguments"], "{\"city\":\"Rome\"}");
    assert_eq!(
        input[4],
        json!({"type": "function_call_output", "call_id": "call_p", "output": "sunny"})
    );
    assert_eq!(input[5]["output"], "rain");
}

#[test]
fn an_unanswered_call_gets_an_aborted_output_after_it() {
    let conversation = translate(json!([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": null,
         "tool_calls": [call("call_a", "f"), call("call_b", "g")]},
        {"role": "tool", "tool_call_id": "call_b", "content": "done"},
        {"role": "user", "content": "never mind"},
    ]))
    .expect("repaired");
    assert_eq!(
        kinds_and_ids(&conversation.input),
        [
            ("message".into(), "".into()),
            ("function_call".into(), "call_a".into()),
            ("function_call_output".into(), "call_a".into()),
            ("function_call".into(), "call_b".into()),
            ("function_call_output".into(), "call_b".into()),
            ("message".into(), "".into()),
        ]
    );
    assert_eq!(conversation.input[2]["output"], UNANSWERED_CALL_OUTPUT);
}

#[test]
fn a_result_without_an_id_answers_the_earliest_waiting_call() {
    let conversation = translate(json!([
        {"role": "assistant", "tool_calls": [
            {"type": "function", "function": {"name": "f", "arguments": "{}"}},
            call("call_2", "g")]},
        {"role": "tool", "tool_call_id": "call_2", "content": "two"},
        {"role": "tool", "content": "one"},
    ]))
    .expect("repaired");
    let input = &conversation.input;
    assert_eq!(input[0]["call_id"], "call_0_0", "an id-less call gets one");
    assert_eq!(input[3]["call_id"], "call_0_0");
    assert_eq!(input[3]["output"], "one");
    assert_eq!(input[2]["call_id"], "call_2");
}

#[test]
fn a_result_for_an_unknown_call_is_refused_naming_the_id() {
    let error = translate(json!([
        {"role": "user", "content": "hi"},
        {"role": "tool", "tool_call_id": "call_missing", "content": "42"},
    ]))
    .expect_err("orphan");
    assert_eq!(error.status(), 400);
    assert_eq!(error.param().as_deref(), Some("messages[1].tool_call_id"));
    assert_eq!(error.code().as_deref(), Some("tool_call_not_found"));
    assert!(error.message().contains("call_missing"));
    let error = translate(json!([{"role": "tool", "content": "42"}])).expect_err("no call");
    assert_eq!(error.param().as_deref(), Some("messages[0].tool_call_id"));
}

#[test]
fn legacy_function_messages_pair_by_name() {
    let conversation = translate(json!([
        {"role": "user", "content": "look it up"},
        {"role": "assistant", "content": null,
         "function_call": {"name": "lookup", "arguments": "{\"q\":1}"}},
        {"role": "function", "name": "lookup", "content": "found"},
    ]))
    .expect("valid");
    let input = &conversation.input;
    assert_eq!(input[1]["type"], "function_call");
    assert_eq!(input[1]["call_id"], "call_1_fn");
    assert_eq!(
        input[2],
        json!({"type": "function_call_output", "call_id": "call_1_fn", "output": "found"})
    );
    let error = translate(json!([{"role": "function", "name": "lookup", "content": "x"}]))
        .expect_err("no call");
    assert_eq!(error.param().as_deref(), Some("messages[0].name"));
}

#[test]
fn images_files_and_refusals() {
    let conversation = translate(json!([
        {"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"}},
            {"type": "file", "file": {"file_id": "file-123"}},
        ]},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
    ]))
    .expect("valid");
    let parts = &conversation.input[0]["content"];
    assert_eq!(
        parts[0],
        json!({"type": "input_text", "text": "What is this?"})
    );
    assert_eq!(
        parts[1],
        json!({"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "high"})
    );
    assert_eq!(parts[2]["detail"], "auto");
    assert_eq!(
        parts[3],
        json!({"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"})
    );
    assert_eq!(
        parts[4],
        json!({"type": "input_file", "file_id": "file-123"})
    );
    assert_eq!(conversation.input[1]["content"][0]["text"], "No.");

    let error = translate(json!([{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}]}]))
    .expect_err("audio");
    assert_eq!(error.param().as_deref(), Some("messages[0].content[0]"));
    let error = translate(json!([{"role": "robot", "content": "beep"}])).expect_err("role");
    assert_eq!(error.param().as_deref(), Some("messages[0].role"));
}
