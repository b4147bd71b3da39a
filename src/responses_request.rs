//! Normalises a `/v1/responses` request body into what the Codex backend accepts (contract
//! §4.2–§4.6, §9.1). Pure: JSON in, JSON out.
//!
//! [`normalise_text`] reads a caller's body and keeps its `input` array and its `tools` array
//! as text ([`crate::raw_input`]): an agent's conversation and tool definitions are most of a
//! request, and the proxy only looks at a few keys of each item and at none inside the tools.
//! [`normalise`] takes a tree (the chat translation's).

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::error::ProxyError;
use crate::json_body::parse_object;
use crate::param_policy::{Disposition, Endpoint, disposition};
use crate::raw_input::{
    BodyRead, InputRead, ItemRead, may_hold_a_lone_surrogate, normalise_items, read_body,
};
use crate::response_text::within_depth;

/// A request ready for the upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamRequest {
    /// The body to POST to the backend's responses endpoint; without `input` when
    /// `raw_input` holds it.
    pub body: Value,
    /// The normalised `input` as JSON text, when it was kept as the caller's text
    /// ([`normalise_text`]).
    pub raw_input: Option<String>,
    /// `tools` as the caller sent it, when it was kept as text ([`normalise_text`]); `body`
    /// then has no `tools`.
    pub raw_tools: Option<String>,
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

impl UpstreamRequest {
    /// The body as JSON text, `input` and `tools` spliced in when they were kept as text.
    pub fn body_bytes(&self) -> Vec<u8> {
        let kept = [("input", &self.raw_input), ("tools", &self.raw_tools)];
        let kept_bytes: usize = kept
            .iter()
            .flat_map(|(_, text)| text.as_deref())
            .map(str::len)
            .sum();
        // Sized for a typical body up front: growing from empty copied it five times.
        let mut out = Vec::with_capacity(4096 + kept_bytes);
        // Serialising a `Value` into memory cannot fail: its map keys are strings.
        let _ = serde_json::to_writer(&mut out, &self.body);
        for (key, text) in kept {
            let Some(text) = text else {
                continue;
            };
            if out.last() != Some(&b'}') {
                break;
            }
            // `out` is an object's compact text, `{}` or `{…}`: the member goes before the brace.
            out.pop();
            if out.len() > 1 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(text.as_bytes());
            out.push(b'}');
        }
        out
    }
}

/// Turns a caller's `/v1/responses` body (bytes as received) into the upstream body, keeping an
/// `input` array as the caller's text. Anything the fast reading cannot take (invalid JSON, not
/// an object, nested too deep, a lone surrogate in an escape, an item that is not an object)
/// goes through [`normalise`] on a tree, which gives the same answer and the same errors; an
/// `input` that is not an array is read as a tree. See [`crate::raw_input`] for the one
/// difference (numbers past `f64`'s range).
pub fn normalise_text(
    body: &[u8],
    options: &NormaliseOptions<'_>,
) -> Result<UpstreamRequest, ProxyError> {
    let read = std::str::from_utf8(body)
        .ok()
        .filter(|text| within_depth(text) && !may_hold_a_lone_surrogate(text))
        .and_then(read_body);
    let Some(BodyRead {
        mut fields,
        input,
        tools,
    }) = read
    else {
        return normalise(parse_object(body)?, options);
    };
    match input {
        Some(InputRead::Items(items)) => normalise_parts(fields, options, Some(&items), tools),
        Some(InputRead::Tree(value)) => {
            fields.insert("input".into(), value);
            normalise_parts(fields, options, None, tools)
        }
        None => normalise_parts(fields, options, None, tools),
    }
}

/// Turns a caller's `/v1/responses` body, as a tree, into the upstream body.
pub fn normalise(
    body: Map<String, Value>,
    options: &NormaliseOptions<'_>,
) -> Result<UpstreamRequest, ProxyError> {
    normalise_parts(body, options, None, None)
}

/// [`normalise`], with the `input` array kept as text when `raw_items` holds it (and `body`
/// then has no `input`), and `tools` when `raw_tools` holds it (an array, which is forwarded
/// unchanged; `body` then has no `tools`). The checks run in the same order either way, so a
/// body with two faults is refused for the same one.
fn normalise_parts(
    body: Map<String, Value>,
    options: &NormaliseOptions<'_>,
    raw_items: Option<&[ItemRead<'_>]>,
    raw_tools: Option<&RawValue>,
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

    let raw_input = match raw_items {
        Some(items) => Some(normalise_items(items)?),
        None => {
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
            None
        }
    };

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
    if raw_tools.is_none() && upstream.get("tools").is_none_or(Value::is_null) {
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
        raw_input,
        raw_tools: raw_tools.map(|tools| tools.get().to_owned()),
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
        out.push(normalise_item(index, item)?);
    }
    Ok(Value::Array(out))
}

/// Input item `index`: refused when it is an `item_reference`, without its `id`, typed
/// `message` when it has only a `role`, and a message's string `content` as one text part.
pub fn normalise_item(index: usize, item: Value) -> Result<Value, ProxyError> {
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
    Ok(Value::Object(item))
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

    /// `normalise_text` on `body` against the tree (`parse_object`, then `normalise`): the same
    /// upstream JSON and fields, or the same error.
    /// Whether a tree refuses `body` for a number past `f64`'s range.
    fn number_out_of_range(body: &[u8]) -> bool {
        serde_json::from_slice::<Value>(body)
            .is_err_and(|error| error.to_string().contains("number out of range"))
    }

    fn assert_text_reading_agrees(body: &[u8]) {
        let tree = parse_object(body).and_then(|fields| normalise(fields, &OPTIONS));
        let text = normalise_text(body, &OPTIONS);
        let shown = String::from_utf8_lossy(body);
        match (tree, text) {
            (Ok(tree), Ok(text)) => {
                let json = |request: &UpstreamRequest| {
                    serde_json::from_slice::<Value>(&request.body_bytes()).expect("json")
                };
                assert_eq!(json(&tree), json(&text), "{shown}");
                assert_eq!(
                    (tree.stream, tree.model, tree.dropped),
                    (text.stream, text.model, text.dropped),
                    "{shown}"
                );
            }
            // The one difference on purpose (see `raw_input`): such a number is passed on, or
            // refused in other words when its item is changed.
            (Err(_), text) if number_out_of_range(body) => match text {
                Ok(request) => assert!(
                    request.raw_input.is_some() || request.raw_tools.is_some(),
                    "{shown}"
                ),
                Err(error) => assert_eq!(error.status(), 400, "{shown}"),
            },
            (Err(tree), Err(text)) => assert_eq!(tree.body(), text.body(), "{shown}"),
            (tree, text) => panic!("{shown}: tree {tree:?}, text {text:?}"),
        }
    }

    #[test]
    fn reading_the_input_as_text_answers_as_the_tree_does() {
        let deep = format!(
            r#"{{"model":"m","input":[{{"type":"message","content":{}{}}}]}}"#,
            "[".repeat(130),
            "]".repeat(130)
        );
        let bodies: Vec<&[u8]> = vec![
            br#"{"model":"m","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]}]}"#,
            br#"{"model":"m","input":[{"role":"user","content":"no type"},{"type":"message","role":"assistant","content":"a string"}]}"#,
            br#"{"model":"m","input":[{"type":"reasoning","id":"rs_1","summary":[]},{"type":"function_call","id":"fc_1","call_id":"c","name":"f","arguments":"{}"}]}"#,
            br#"{"model":"m","input":[{"type":"item_reference","id":"msg_1"}]}"#,
            br#"{"model":"m","input":[{"type":"message","type":"item_reference"}]}"#,
            br#"{"model":"m","input":[{"type":"item_reference","type":"message","content":"x"}]}"#,
            br#"{"model":"m","input":[{"type":"message","role":"user","content":[],"id":null}]}"#,
            br#"{"model":"m","input":[{"type":7,"role":"user"},{"x":1},{"type":"message","content":null}]}"#,
            br#"{"model":"m","input":[1,{"type":"message"}]}"#,
            br#"{"model":"m","input":["text"]}"#,
            br#"{"model":"m","input":[]}"#,
            br#"{"model":"m","input":"a string input"}"#,
            br#"{"model":"m","input":null}"#,
            br#"{"model":"m","input":5}"#,
            br#"{"model":"m"}"#,
            br#"{"input":[{"type":"message","content":"x"}]}"#,
            br#"{"model":"m","input":[{"type":"message"}],"logit_bias":{"1":2},"temperature":0.2}"#,
            br#"{"model":"m","input":[{"type":"message"}],"instructions":5}"#,
            br#"{"model":"m","input":[{"type":"item_reference"}],"instructions":5}"#,
            br#"{"model":"m","input":[{"type":"message"}],"input":[{"type":"message","id":"x"}]}"#,
            br#"{"model":"m","input":[{"type":"message","content":[{"text":"\ud800"}]}]}"#,
            br#"{"model":"m","input":[{"type":"message","content":[{"text":"\ud83d\ude00 \u00e9"}]}]}"#,
            br#"{"model":"m","input":[{"type":"message","n":1e400}]}"#,
            br#"{"model":"m","input":[{"role":"user","content":"x","n":-1e400}]}"#,
            br#"{"model":"m","input":[{"type":"message","n":-0.0,"m":1.5e3,"big":123456789012345678901234567890}]}"#,
            br#"{"model":"m","input":"x","tools":[{"type":"function","name":"f","parameters":{"type":"object","properties":{"a":{"type":"string"}}}},{"type":"web_search"}]}"#,
            br#"{"model":"m","tools": [ {"type":"function","description":"\u00e9\n"} ] ,"input":"x"}"#,
            br#"{"model":"m","input":"x","tools":null}"#,
            br#"{"model":"m","input":"x","tools":{}}"#,
            br#"{"model":"m","input":"x","tools":[],"tools":null}"#,
            br#"{"model":"m","input":"x","tools":5,"tools":[{"type":"web_search"}]}"#,
            br#"{"model":"m","input":"x","tools":[{"type":"web_search"}],"tools":"no"}"#,
            br#"{"model":"m","input":[{"type":"message"}],"tools":[{"n":1e400}]}"#,
            br#"{"model":"m","input":5,"tools":[]}"#,
            br#"{"model":"m","input":"x","tools":[],"temperature":1,"tool_choice":5}"#,
            br#"{"tools":[{"type":"web_search"}],"input":"x"}"#,
            br#"{"model":"m","input":[{"type":"message"}] trailing"#,
            br#"{"model":"m","input":[{"type":"message"}]"#,
            br#"[{"model":"m"}]"#,
            b"",
            b"\xff\xfe",
            deep.as_bytes(),
        ];
        for body in bodies {
            assert_text_reading_agrees(body);
        }
    }

    #[test]
    fn an_array_of_tools_goes_upstream_as_sent() {
        let tools = r#"[ {"type":"function", "name":"f", "description":"\u00e9", "parameters":{"type":"object"}}, {"type":"web_search"} ]"#;
        let body = format!(r#"{{"model":"m","input":"hi","tools":{tools}}}"#);
        let request = normalise_text(body.as_bytes(), &OPTIONS).expect("valid");
        assert_eq!(request.raw_tools.as_deref(), Some(tools));
        assert!(
            request.body.get("tools").is_none(),
            "not in the tree as well"
        );
        let sent = String::from_utf8(request.body_bytes()).expect("utf-8");
        assert!(
            sent.contains(&format!(r#""tools":{tools}"#)),
            "as sent, spacing and escapes and all: {sent}"
        );
        let sent: Value = serde_json::from_str(&sent).expect("json");
        assert_eq!(sent["tools"][1], json!({"type": "web_search"}));
        assert_eq!(sent["input"][0]["content"][0]["text"], "hi");
        assert_eq!(sent["tool_choice"], "auto");
    }

    #[test]
    fn tools_that_are_not_an_array_are_read_as_a_tree() {
        let request =
            normalise_text(br#"{"model":"m","input":"hi","tools":null}"#, &OPTIONS).expect("valid");
        assert!(request.raw_tools.is_none());
        assert_eq!(request.body["tools"], json!([]), "the default, as before");
        let error = normalise_text(br#"{"model":"m","input":"hi","tools":{"a":1}}"#, &OPTIONS)
            .expect_err("not an array");
        assert_eq!(error.param().as_deref(), Some("tools"));
    }

    #[test]
    fn items_that_need_no_change_keep_their_values_as_sent() {
        let kept = r#"{ "type" : "function_call_output" , "call_id":"c", "output":"\u00e9\n" }"#;
        let body = format!(
            r#"{{"model":"m","input":[{kept},{{"role":"user","content":"hi","id":"msg_1"}}]}}"#
        );
        let request = normalise_text(body.as_bytes(), &OPTIONS).expect("valid");
        assert!(request.raw_input.is_some(), "the input was kept as text");
        assert!(request.body.get("input").is_none());
        let sent = String::from_utf8(request.body_bytes()).expect("utf-8");
        let written = r#"{"type":"function_call_output","call_id":"c","output":"\u00e9\n"}"#;
        assert!(
            sent.contains(written),
            "values as sent, escapes and all: {sent}"
        );
        let sent: Value = serde_json::from_str(&sent).expect("json");
        assert_eq!(
            sent["input"][1],
            json!({"type": "message", "role": "user",
                   "content": [{"type": "input_text", "text": "hi"}]}),
            "an item that needs a change is changed as before"
        );
        assert_eq!(sent["store"], false);
    }
}
