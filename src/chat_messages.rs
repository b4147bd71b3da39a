//! Chat `messages` → Responses `input` items (and the instructions taken from leading system
//! messages). Pure.
//!
//! The backend refuses an input in which a `function_call_output` has no `function_call` with
//! the same `call_id`, or the reverse (contract §8). Chat clients send such histories (an agent
//! that was interrupted, a client that strips ids), so the pairing is repaired here when the
//! request alone says how:
//! - a tool message without `tool_call_id` (and a legacy `function` message, which never has
//!   one) answers the earliest unanswered call before it (of the same name, for `function`);
//! - an assistant call without an id gets a synthetic one, so id-less results can pair with it;
//! - a call that nothing answers gets the output `"aborted"`, as the Codex CLI does for its own
//!   interrupted calls.
//!
//! A tool result whose `tool_call_id` matches no call in the request cannot be repaired: that
//! is a 400 naming the id.

use serde_json::{Map, Value, json};

use crate::chat_content::{text_of, user_parts};
use crate::config::ChatSystemAs;
use crate::error::ProxyError;
use crate::param_path::ParamPath;

/// The output given to a call that no tool message answers.
pub const UNANSWERED_CALL_OUTPUT: &str = "aborted";

/// A conversation in the backend's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    /// The leading system/developer texts, when they become `instructions`; empty otherwise.
    pub instructions: Vec<String>,
    /// The input items.
    pub input: Vec<Value>,
}

/// An assistant tool call seen in the history.
struct Call {
    id: String,
    name: String,
    position: usize,
    answered: bool,
}

/// A tool result whose call is resolved after every call is known.
struct ToolResult {
    message: usize,
    position: usize,
    call_id: Option<String>,
    /// For legacy `function` messages: the function's name.
    function_name: Option<String>,
}

/// Translates the `messages` array.
pub fn translate_messages(
    messages: Value,
    system_as: ChatSystemAs,
) -> Result<Conversation, ProxyError> {
    let Value::Array(messages) = messages else {
        return Err(ProxyError::invalid_param(
            "messages",
            "`messages` must be an array of message objects.",
        ));
    };
    if messages.is_empty() {
        return Err(ProxyError::invalid_param(
            "messages",
            "`messages` must contain at least one message.",
        ));
    }
    let mut instructions = Vec::new();
    let mut input = Vec::new();
    let mut calls = Vec::new();
    let mut results = Vec::new();
    let mut leading = true;
    let messages_param = ParamPath::Field("messages");
    for (index, message) in messages.into_iter().enumerate() {
        let param = messages_param.index(index);
        let Value::Object(mut message) = message else {
            return Err(param.invalid("each message must be an object."));
        };
        let role = match message.get("role") {
            Some(Value::String(role)) => role.clone(),
            _ => {
                return Err(param
                    .member("role")
                    .invalid("each message needs a `role` string."));
            }
        };
        let content = message.remove("content").unwrap_or(Value::Null);
        let content_param = param.member("content");
        if role != "system" && role != "developer" {
            leading = false;
        }
        match role.as_str() {
            "system" | "developer" => {
                let text = text_of(content, &content_param)?;
                if text.is_empty() {
                    continue;
                }
                if leading && system_as == ChatSystemAs::Instructions {
                    instructions.push(text);
                } else {
                    input.push(message_item("developer", "input_text", text));
                }
            }
            "user" => {
                let parts = user_parts(content, &content_param)?;
                input.push(json!({"type": "message", "role": "user", "content": parts}));
            }
            "assistant" => {
                let mut text = text_of(content, &content_param)?;
                if text.is_empty()
                    && let Some(Value::String(refusal)) = message.get("refusal")
                {
                    text = refusal.clone();
                }
                if !text.is_empty() {
                    input.push(message_item("assistant", "output_text", text));
                }
                assistant_calls(&message, index, &param, &mut input, &mut calls)?;
            }
            "tool" => {
                let call_id = match message.get("tool_call_id") {
                    Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
                    None | Some(Value::Null) | Some(Value::String(_)) => None,
                    Some(_) => {
                        return Err(param
                            .member("tool_call_id")
                            .invalid("`tool_call_id` must be a string."));
                    }
                };
                results.push(ToolResult {
                    message: index,
                    position: input.len(),
                    call_id,
                    function_name: None,
                });
                input.push(output_item(text_of(content, &content_param)?));
            }
            "function" => {
                let Some(Value::String(name)) = message.get("name") else {
                    return Err(param.member("name").invalid(
                        "a `function` message needs the `name` of the function it answers.",
                    ));
                };
                results.push(ToolResult {
                    message: index,
                    position: input.len(),
                    call_id: None,
                    function_name: Some(name.clone()),
                });
                input.push(output_item(text_of(content, &content_param)?));
            }
            _ => {
                return Err(param.member("role").invalid(format!(
                    "Unknown role `{role}`; expected system, developer, user, assistant, tool or function."
                )));
            }
        }
    }
    pair_results(&mut input, &mut calls, &results)?;
    answer_unanswered(&mut input, &calls);
    Ok(Conversation {
        instructions,
        input,
    })
}

/// The function calls of one assistant message (`tool_calls`, or a legacy `function_call`).
fn assistant_calls(
    message: &Map<String, Value>,
    index: usize,
    param: &ParamPath<'_>,
    input: &mut Vec<Value>,
    calls: &mut Vec<Call>,
) -> Result<(), ProxyError> {
    let mut push = |id: String, name: String, arguments: String, input: &mut Vec<Value>| {
        calls.push(Call {
            id: id.clone(),
            name: name.clone(),
            position: input.len(),
            answered: false,
        });
        input.push(
            json!({"type": "function_call", "call_id": id, "name": name, "arguments": arguments}),
        );
    };
    match message.get("tool_calls") {
        None | Some(Value::Null) => {}
        Some(Value::Array(tool_calls)) => {
            let tool_calls_param = param.member("tool_calls");
            for (j, call) in tool_calls.iter().enumerate() {
                let call_param = tool_calls_param.index(j);
                let kind = call
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("function");
                if kind != "function" {
                    return Err(call_param.member("type").invalid(format!(
                        "Tool calls of type `{kind}` are not supported on /v1/chat/completions; only `function`."
                    )));
                }
                let function = call.get("function");
                let (name, arguments) = function_parts(function, &call_param.member("function"))?;
                let id = match call.get("id") {
                    Some(Value::String(id)) if !id.is_empty() => id.clone(),
                    _ => format!("call_{index}_{j}"),
                };
                push(id, name, arguments, input);
            }
        }
        Some(_) => {
            return Err(param
                .member("tool_calls")
                .invalid("`tool_calls` must be an array."));
        }
    }
    match message.get("function_call") {
        None | Some(Value::Null) => {}
        function => {
            let (name, arguments) = function_parts(function, &param.member("function_call"))?;
            push(format!("call_{index}_fn"), name, arguments, input);
        }
    }
    Ok(())
}

/// `name` and `arguments` (a JSON string; other JSON is serialised) of a call's function.
fn function_parts(
    function: Option<&Value>,
    param: &ParamPath<'_>,
) -> Result<(String, String), ProxyError> {
    let Some(Value::String(name)) = function.and_then(|f| f.get("name")) else {
        return Err(param
            .member("name")
            .invalid("a tool call needs a function `name`."));
    };
    let arguments = match function.and_then(|f| f.get("arguments")) {
        None | Some(Value::Null) => "{}".to_string(),
        Some(Value::String(arguments)) => arguments.clone(),
        Some(other) => other.to_string(),
    };
    Ok((name.clone(), arguments))
}

/// Gives every tool result its call's id, or refuses the request naming the result.
fn pair_results(
    input: &mut [Value],
    calls: &mut [Call],
    results: &[ToolResult],
) -> Result<(), ProxyError> {
    // Results that name their call are paired first, so an id-less one cannot take their call.
    let named = results.iter().filter(|r| r.call_id.is_some());
    let unnamed = results.iter().filter(|r| r.call_id.is_none());
    for result in named.chain(unnamed) {
        let call = match (&result.call_id, &result.function_name) {
            (Some(id), _) => calls.iter_mut().find(|call| call.id == *id),
            (None, name) => calls.iter_mut().find(|call| {
                !call.answered
                    && call.position < result.position
                    && name.as_ref().is_none_or(|name| *name == call.name)
            }),
        };
        let Some(call) = call else {
            return Err(orphan_result(result));
        };
        call.answered = true;
        if let Some(item) = input
            .get_mut(result.position)
            .and_then(Value::as_object_mut)
        {
            item.insert("call_id".into(), Value::String(call.id.clone()));
        }
    }
    Ok(())
}

fn orphan_result(result: &ToolResult) -> ProxyError {
    let index = result.message;
    let (message, param) = match (&result.call_id, &result.function_name) {
        (Some(id), _) => (
            format!(
                "messages[{index}] is a tool result for tool_call_id `{id}`, but no assistant message \
                 in this request has a tool call with that id. The backend needs every tool result \
                 together with the call it answers: send the assistant message with its `tool_calls` \
                 as well, or remove this tool message."
            ),
            format!("messages[{index}].tool_call_id"),
        ),
        (None, Some(name)) => (
            format!(
                "messages[{index}] is the result of function `{name}`, but no earlier assistant \
                 message calls `{name}` without an answer. Send the assistant message with its \
                 `function_call` as well, or remove this message."
            ),
            format!("messages[{index}].name"),
        ),
        (None, None) => (
            format!(
                "messages[{index}] is a tool result without a `tool_call_id`, and no earlier \
                 assistant tool call is waiting for an answer. Set `tool_call_id` to the id of \
                 the call it answers."
            ),
            format!("messages[{index}].tool_call_id"),
        ),
    };
    ProxyError::BadRequest {
        message,
        param: Some(param),
        code: Some("tool_call_not_found".into()),
    }
}

/// Inserts an `"aborted"` output right after every call that nothing answered.
fn answer_unanswered(input: &mut Vec<Value>, calls: &[Call]) {
    for call in calls.iter().rev().filter(|call| !call.answered) {
        let mut output = output_item(UNANSWERED_CALL_OUTPUT.to_string());
        if let Some(item) = output.as_object_mut() {
            item.insert("call_id".into(), Value::String(call.id.clone()));
        }
        input.insert(call.position + 1, output);
    }
}

fn output_item(output: String) -> Value {
    json!({"type": "function_call_output", "call_id": Value::Null, "output": output})
}

fn message_item(role: &str, part: &str, text: String) -> Value {
    json!({"type": "message", "role": role, "content": [{"type": part, "text": text}]})
}

#[cfg(test)]
#[path = "chat_messages_tests.rs"]
mod tests;
