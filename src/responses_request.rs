//! Normalises a `/v1/responses` request body into what the Codex backend accepts (contract
//! §4.2–§4.6, §9.1). Pure: JSON in, JSON out.

use serde_json::{Map, Value, json};

use crate::error::ProxyError;
use crate::param_policy::{Disposition, Endpoint, disposition};

/// A request ready for the upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamRequest {
    /// The body to POST to the backend's responses endpoint.
    pub body: Value,
    /// Whether the caller asked for a stream.
    pub stream: bool,
    /// The model id, for logs.
    pub model: String,
    /// Parameters removed on the way, for the response header.
    pub dropped: Vec<String>,
}

/// Options that the normalisation needs from the configuration.
#[derive(Debug, Clone)]
pub struct NormaliseOptions<'a> {
    /// Instructions to send when the caller sends none.
    pub default_instructions: &'a str,
}

/// The include entry that keeps reasoning usable across turns with `store:false`.
const ENCRYPTED_REASONING: &str = "reasoning.encrypted_content";

/// Turns a caller's `/v1/responses` body into the upstream body.
pub fn normalise(
    body: Map<String, Value>,
    options: &NormaliseOptions<'_>,
) -> Result<UpstreamRequest, ProxyError> {
    let model = match body.get("model") {
        Some(Value::String(model)) if !model.trim().is_empty() => model.clone(),
        Some(_) => {
            return Err(ProxyError::invalid_param(
                "model",
                "`model` must be a non-empty string.",
            ));
        }
        None => {
            return Err(ProxyError::BadRequest {
                message: "Missing required parameter: `model`.".into(),
                param: Some("model".into()),
                code: Some("missing_required_parameter".into()),
            });
        }
    };
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(stream)) => *stream,
        Some(_) => {
            return Err(ProxyError::invalid_param(
                "stream",
                "`stream` must be a boolean.",
            ));
        }
    };

    // Edited in place: the caller's map loses what is not forwarded and keeps its nodes.
    let mut upstream = body;
    let mut dropped = Vec::new();
    let mut rejected = None;
    upstream.retain(
        |field, value| match disposition(Endpoint::Responses, field) {
            Disposition::Forward | Disposition::Rewrite => true,
            Disposition::Drop => {
                dropped.push(field.clone());
                false
            }
            Disposition::Reject(why) => {
                if !value.is_null() && rejected.is_none() {
                    rejected = Some((field.clone(), why));
                }
                false
            }
        },
    );
    if let Some((field, why)) = rejected {
        return Err(ProxyError::BadRequest {
            message: format!("Unsupported parameter: `{field}` {why}."),
            param: Some(field),
            code: Some("unsupported_parameter".into()),
        });
    }

    match upstream.get_mut("input") {
        None | Some(Value::Null) => {
            return Err(ProxyError::BadRequest {
                message: "Missing required parameter: `input`.".into(),
                param: Some("input".into()),
                code: Some("missing_required_parameter".into()),
            });
        }
        Some(input) => *input = normalise_input(std::mem::take(input))?,
    }

    match upstream.get("instructions") {
        None | Some(Value::Null) => {
            upstream.insert("instructions".into(), json!(options.default_instructions));
        }
        Some(Value::String(_)) => {}
        Some(_) => {
            return Err(ProxyError::invalid_param(
                "instructions",
                "`instructions` must be a string.",
            ));
        }
    }
    check_types(&upstream)?;
    if upstream.get("tools").is_none_or(Value::is_null) {
        upstream.insert("tools".into(), json!([]));
    }
    if upstream.get("tool_choice").is_none_or(Value::is_null) {
        upstream.insert("tool_choice".into(), json!("auto"));
    }
    let wants_reasoning = upstream.get("reasoning").is_some_and(|r| !r.is_null());
    if upstream.get("include").is_none_or(Value::is_null) {
        set(&mut upstream, "include", Value::Array(Vec::new()));
    }
    let Some(Value::Array(include)) = upstream.get_mut("include") else {
        return Err(ProxyError::invalid_param(
            "include",
            "`include` must be an array.",
        ));
    };
    if wants_reasoning && !include.iter().any(|i| i == ENCRYPTED_REASONING) {
        include.push(json!(ENCRYPTED_REASONING));
    }
    set(&mut upstream, "store", Value::Bool(false));
    set(&mut upstream, "stream", Value::Bool(true));

    Ok(UpstreamRequest {
        body: Value::Object(upstream),
        stream,
        model,
        dropped,
    })
}

/// Sets `field` to `value`, reusing the key when the field is there already.
fn set(map: &mut Map<String, Value>, field: &str, value: Value) {
    match map.get_mut(field) {
        Some(slot) => *slot = value,
        None => {
            map.insert(field.to_owned(), value);
        }
    }
}

/// A field, the test its value must pass, and the expected type in words.
type TypeRule = (&'static str, fn(&Value) -> bool, &'static str);

/// Fields the proxy reads or relies on must have the type the Responses API gives them;
/// a wrong one is the caller's mistake, named here rather than by an opaque upstream 400.
fn check_types(body: &Map<String, Value>) -> Result<(), ProxyError> {
    let rules: [TypeRule; 6] = [
        ("tools", Value::is_array, "an array"),
        ("reasoning", Value::is_object, "an object"),
        ("text", Value::is_object, "an object"),
        (
            "tool_choice",
            |v| v.is_string() || v.is_object(),
            "a string or an object",
        ),
        ("prompt_cache_key", Value::is_string, "a string"),
        ("parallel_tool_calls", Value::is_boolean, "a boolean"),
    ];
    for (field, accepts, expected) in rules {
        if let Some(value) = body.get(field)
            && !value.is_null()
            && !accepts(value)
        {
            return Err(ProxyError::invalid_param(
                field,
                format!("`{field}` must be {expected}."),
            ));
        }
    }
    Ok(())
}

/// A string becomes one user message; items lose their `id`s; `item_reference` is refused.
fn normalise_input(input: Value) -> Result<Value, ProxyError> {
    let items = match input {
        Value::String(text) => {
            return Ok(json!([{
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            }]));
        }
        Value::Array(items) => items,
        _ => {
            return Err(ProxyError::invalid_param(
                "input",
                "`input` must be a string or an array of input items.",
            ));
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let Value::Object(mut item) = item else {
            return Err(ProxyError::invalid_param(
                &format!("input[{index}]"),
                "each input item must be an object.",
            ));
        };
        if item.get("type").and_then(Value::as_str) == Some("item_reference") {
            return Err(ProxyError::BadRequest {
                message: format!(
                    "input[{index}] is an item_reference. The subscription backend does not store \
                     items (store=false), so references cannot be resolved: send the referenced \
                     item itself (for example the function_call or message object) instead."
                ),
                param: Some(format!("input[{index}]")),
                code: Some("unsupported_item_reference".into()),
            });
        }
        // Server-assigned ids (msg_…, rs_…, fc_…) refer to stored items; with store=false the
        // backend answers "Item with id … not found", so ids never go upstream.
        item.remove("id");
        if !item.contains_key("type") && item.contains_key("role") {
            item.insert("type".into(), json!("message"));
        }
        if item.get("type").and_then(Value::as_str) == Some("message")
            && let Some(Value::String(text)) = item.get("content")
        {
            let part = if item.get("role").and_then(Value::as_str) == Some("assistant") {
                "output_text"
            } else {
                "input_text"
            };
            let content = json!([{"type": part, "text": text}]);
            item.insert("content".into(), content);
        }
        out.push(Value::Object(item));
    }
    Ok(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: NormaliseOptions<'static> = NormaliseOptions {
        default_instructions: "Be brief.",
    };

    fn run(body: Value) -> Result<UpstreamRequest, ProxyError> {
        let Value::Object(body) = body else {
            panic!("test body must be an object")
        };
        normalise(body, &OPTIONS)
    }

    #[test]
    fn forces_store_stream_instructions_and_wraps_string_input() {
        let request = run(json!({"model": "gpt-5.5", "input": "hi"})).expect("valid");
        assert!(!request.stream);
        let body = &request.body;
        assert_eq!(body["store"], false);
        assert_eq!(body["stream"], true);
        assert_eq!(body["instructions"], "Be brief.");
        assert_eq!(body["tool_choice"], "auto");
        assert_eq!(body["tools"], json!([]));
        assert_eq!(body["include"], json!([]));
        assert_eq!(
            body["input"],
            json!([{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]}])
        );
    }

    #[test]
    fn keeps_caller_instructions_and_tool_choice() {
        let request = run(json!({
            "model": "m", "input": [], "instructions": "Mine", "tool_choice": "required",
            "stream": true, "store": true
        }))
        .expect("valid");
        assert!(request.stream);
        assert_eq!(request.body["instructions"], "Mine");
        assert_eq!(request.body["tool_choice"], "required");
        assert_eq!(request.body["store"], false);
    }

    #[test]
    fn strips_item_ids_and_refuses_item_references() {
        let request = run(json!({"model": "m", "input": [
            {"type": "message", "id": "msg_1", "role": "assistant", "content": "prior"},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": "{}"},
            {"role": "user", "content": [{"type": "input_text", "text": "x"}]}
        ]}))
        .expect("valid");
        let input = request.body["input"].as_array().expect("array");
        assert!(input.iter().all(|item| item.get("id").is_none()));
        assert_eq!(input[0]["content"][0]["type"], "output_text");
        assert_eq!(input[1]["call_id"], "call_1");
        assert_eq!(input[2]["type"], "message");

        let error =
            run(json!({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}))
                .expect_err("references cannot be resolved");
        assert_eq!(error.status(), 400);
        assert_eq!(error.param().as_deref(), Some("input[0]"));
        assert!(error.message().contains("send the referenced item"));
    }

    #[test]
    fn drops_sampling_knobs_and_names_them() {
        let request = run(json!({
            "model": "m", "input": "x", "temperature": 0.2, "max_output_tokens": 10, "top_p": 1
        }))
        .expect("valid");
        let mut dropped = request.dropped.clone();
        dropped.sort();
        assert_eq!(dropped, ["max_output_tokens", "temperature", "top_p"]);
        for field in ["temperature", "max_output_tokens", "top_p"] {
            assert!(request.body.get(field).is_none());
        }
    }

    #[test]
    fn forwards_unknown_fields_and_tools_unchanged() {
        let tools = json!([{"type": "web_search"}, {"type": "brand_new_tool", "knob": 3}]);
        let request =
            run(json!({"model": "m", "input": "x", "tools": tools, "future_field": {"a": 1}}))
                .expect("valid");
        assert_eq!(request.body["tools"], tools);
        assert_eq!(request.body["future_field"], json!({"a": 1}));
    }

    #[test]
    fn reasoning_requests_encrypted_content() {
        let request = run(json!({"model": "m", "input": "x", "reasoning": {"effort": "high"}}))
            .expect("valid");
        assert_eq!(
            request.body["include"],
            json!(["reasoning.encrypted_content"])
        );
        let request = run(json!({
            "model": "m", "input": "x", "reasoning": {"effort": "low"},
            "include": ["reasoning.encrypted_content"]
        }))
        .expect("valid");
        assert_eq!(
            request.body["include"],
            json!(["reasoning.encrypted_content"])
        );
    }

    #[test]
    fn rejects_what_cannot_work_without_storage_and_wrong_types() {
        let error = run(json!({"model": "m", "input": "x", "previous_response_id": "resp_1"}))
            .expect_err("needs storage");
        assert_eq!(error.param().as_deref(), Some("previous_response_id"));
        for (body, param) in [
            (json!({"input": "x"}), "model"),
            (json!({"model": 3, "input": "x"}), "model"),
            (json!({"model": "m"}), "input"),
            (json!({"model": "m", "input": 5}), "input"),
            (json!({"model": "m", "input": [1]}), "input[0]"),
            (
                json!({"model": "m", "input": "x", "stream": "yes"}),
                "stream",
            ),
            (
                json!({"model": "m", "input": "x", "instructions": []}),
                "instructions",
            ),
            (json!({"model": "m", "input": "x", "tools": {}}), "tools"),
            (
                json!({"model": "m", "input": "x", "reasoning": 5}),
                "reasoning",
            ),
            (
                json!({"model": "m", "input": "x", "tool_choice": 5}),
                "tool_choice",
            ),
            (
                json!({"model": "m", "input": "x", "prompt_cache_key": 5}),
                "prompt_cache_key",
            ),
            (
                json!({"model": "m", "input": "x", "parallel_tool_calls": "yes"}),
                "parallel_tool_calls",
            ),
            (json!({"model": "m", "input": "x", "text": []}), "text"),
        ] {
            let error = run(body).expect_err("invalid");
            assert_eq!(error.status(), 400);
            assert_eq!(error.param().as_deref(), Some(param));
        }
    }
}
