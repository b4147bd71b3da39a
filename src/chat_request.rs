//! Translates a `/v1/chat/completions` body into the Codex backend's Responses body. Pure: JSON
//! in, an [`UpstreamRequest`] out.
//!
//! Every top-level field first meets the parameter policy (`param_policy::chat_disposition`):
//! dropped fields are collected for the `x-proxy-dropped-params` header, rejected ones end the
//! request with a 400. The kept fields are translated into a Responses body, which then goes
//! through [`crate::responses_request::normalise`] so that chat requests get exactly the invariants of
//! `/v1/responses` (store, stream, instructions, include, tools, tool_choice).

use serde_json::{Map, Value, json};

use crate::chat_messages::translate_messages;
use crate::chat_tools::{tool_choice, tools};
use crate::config::ChatSystemAs;
use crate::error::ProxyError;
use crate::param_policy::{Disposition, chat_disposition};
use crate::responses_request::{NormaliseOptions, UpstreamRequest, normalise};

/// What the chat translation needs from the configuration.
#[derive(Debug, Clone)]
pub struct ChatOptions<'a> {
    /// Instructions sent when the caller's messages give none (or in developer mode).
    pub default_instructions: &'a str,
    /// Where system and developer messages go.
    pub system_as: ChatSystemAs,
}

/// How the answer shows the model's function calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStyle {
    /// `message.tool_calls` and finish_reason `tool_calls`.
    Tools,
    /// The deprecated `functions` API: `message.function_call` and finish_reason
    /// `function_call`, one call at most.
    LegacyFunctions,
}

/// A translated chat request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The Responses request for the backend (`dropped` lists the chat fields dropped).
    pub upstream: UpstreamRequest,
    /// The model as the caller named it (an effort alias included), echoed in the answer.
    pub requested_model: String,
    /// `stream_options.include_usage`: a usage chunk ends the stream.
    pub include_usage: bool,
    /// How function calls are shown.
    pub call_style: CallStyle,
}

/// Reasoning efforts a model alias may end with (`gpt-5.5-high`).
const EFFORT_SUFFIXES: &[&str] = &["none", "minimal", "low", "medium", "high", "xhigh"];

/// Translates a caller's chat body.
pub fn translate(
    body: Map<String, Value>,
    options: &ChatOptions<'_>,
) -> Result<ChatRequest, ProxyError> {
    let mut fields = Map::new();
    let mut dropped = Vec::new();
    for (field, value) in body {
        match chat_disposition(&field, &value) {
            None => {}
            Some(Disposition::Drop) => dropped.push(field),
            Some(Disposition::Reject(why)) => {
                return Err(ProxyError::BadRequest {
                    message: format!("Unsupported parameter: `{field}` {why}."),
                    param: Some(field),
                    code: Some("unsupported_parameter".into()),
                });
            }
            Some(Disposition::Forward | Disposition::Rewrite) => {
                fields.insert(field, value);
            }
        }
    }

    let requested_model = match fields.remove("model") {
        Some(Value::String(model)) if !model.trim().is_empty() => model,
        Some(_) => {
            return Err(ProxyError::invalid_param(
                "model",
                "`model` must be a non-empty string.",
            ));
        }
        None => return Err(missing("model")),
    };
    let (model, alias_effort) = split_effort_alias(&requested_model);
    let stream = match fields.remove("stream") {
        None => false,
        Some(Value::Bool(stream)) => stream,
        Some(_) => {
            return Err(ProxyError::invalid_param(
                "stream",
                "`stream` must be a boolean.",
            ));
        }
    };
    let include_usage = match fields.remove("stream_options") {
        None => false,
        Some(Value::Object(options)) => options.get("include_usage") == Some(&Value::Bool(true)),
        Some(_) => {
            return Err(ProxyError::invalid_param(
                "stream_options",
                "`stream_options` must be an object.",
            ));
        }
    };
    let messages = fields
        .remove("messages")
        .ok_or_else(|| missing("messages"))?;
    let conversation = translate_messages(messages, options.system_as)?;

    let mut upstream = Map::new();
    upstream.insert("model".into(), json!(model));
    upstream.insert("stream".into(), json!(stream));
    upstream.insert("input".into(), Value::Array(conversation.input));
    let instructions = match options.system_as {
        ChatSystemAs::Instructions if !conversation.instructions.is_empty() => {
            conversation.instructions.join("\n\n")
        }
        _ => options.default_instructions.to_string(),
    };
    upstream.insert("instructions".into(), json!(instructions));

    let call_style = if fields.contains_key("functions") {
        CallStyle::LegacyFunctions
    } else {
        CallStyle::Tools
    };
    if let Some(tools) = tools(&mut fields)? {
        upstream.insert("tools".into(), tools);
    }
    if let Some(choice) = tool_choice(&mut fields)? {
        upstream.insert("tool_choice".into(), choice);
    }
    if call_style == CallStyle::LegacyFunctions {
        upstream.insert("parallel_tool_calls".into(), json!(false));
    } else if let Some(parallel) = fields.remove("parallel_tool_calls") {
        upstream.insert("parallel_tool_calls".into(), parallel);
    }
    if let Some(reasoning) = reasoning(&mut fields, alias_effort, &mut dropped)? {
        upstream.insert("reasoning".into(), reasoning);
    }
    if let Some(text) = text(&mut fields)? {
        upstream.insert("text".into(), text);
    }
    for forwarded in ["prompt_cache_key", "service_tier"] {
        if let Some(value) = fields.remove(forwarded) {
            upstream.insert(forwarded.into(), value);
        }
    }

    let normalise_options = NormaliseOptions {
        default_instructions: options.default_instructions,
    };
    let mut request = normalise(upstream, &normalise_options)?;
    request.dropped = dropped;
    Ok(ChatRequest {
        upstream: request,
        requested_model,
        include_usage,
        call_style,
    })
}

/// `gpt-5.5-high` → (`gpt-5.5`, `Some("high")`); other names are kept whole.
pub fn split_effort_alias(model: &str) -> (String, Option<String>) {
    match model.rsplit_once('-') {
        Some((base, suffix)) if !base.is_empty() && EFFORT_SUFFIXES.contains(&suffix) => {
            (base.to_string(), Some(suffix.to_string()))
        }
        _ => (model.to_string(), None),
    }
}

fn missing(param: &str) -> ProxyError {
    ProxyError::BadRequest {
        message: format!("Missing required parameter: `{param}`."),
        param: Some(param.into()),
        code: Some("missing_required_parameter".into()),
    }
}

/// `reasoning_effort`, a `reasoning` object and an alias effort → `reasoning`, with summaries
/// requested so they can be shown as `reasoning_content`. The explicit field wins over the
/// object, the object over the alias.
fn reasoning(
    fields: &mut Map<String, Value>,
    alias_effort: Option<String>,
    dropped: &mut Vec<String>,
) -> Result<Option<Value>, ProxyError> {
    let mut reasoning = Map::new();
    match fields.remove("reasoning") {
        None => {}
        Some(Value::Object(object)) => {
            for (key, value) in object {
                match key.as_str() {
                    _ if value.is_null() => {}
                    "effort" | "summary" => {
                        reasoning.insert(key, value);
                    }
                    _ => dropped.push(format!("reasoning.{key}")),
                }
            }
        }
        Some(_) => {
            return Err(ProxyError::invalid_param(
                "reasoning",
                "`reasoning` must be an object.",
            ));
        }
    }
    match fields.remove("reasoning_effort") {
        None => {}
        Some(effort @ Value::String(_)) => {
            reasoning.insert("effort".into(), effort);
        }
        Some(_) => {
            return Err(ProxyError::invalid_param(
                "reasoning_effort",
                "`reasoning_effort` must be a string: none, minimal, low, medium, high or xhigh.",
            ));
        }
    }
    if let Some(effort) = alias_effort {
        reasoning.entry("effort").or_insert(json!(effort));
    }
    if reasoning.is_empty() {
        return Ok(None);
    }
    reasoning.entry("summary").or_insert(json!("auto"));
    Ok(Some(Value::Object(reasoning)))
}

/// `response_format` and `verbosity` → `text {format, verbosity}`.
fn text(fields: &mut Map<String, Value>) -> Result<Option<Value>, ProxyError> {
    let mut text = Map::new();
    if let Some(format) = fields.remove("response_format") {
        text.insert("format".into(), response_format(format)?);
    }
    match fields.remove("verbosity") {
        None => {}
        Some(verbosity @ Value::String(_)) => {
            text.insert("verbosity".into(), verbosity);
        }
        Some(_) => {
            return Err(ProxyError::invalid_param(
                "verbosity",
                "`verbosity` must be low, medium or high.",
            ));
        }
    }
    Ok((!text.is_empty()).then_some(Value::Object(text)))
}

/// `{"type":"json_schema","json_schema":{name, schema, strict, description}}` → the flat
/// `{"type":"json_schema", name, schema, strict, description}`; `text` and `json_object` keep
/// their shape.
fn response_format(format: Value) -> Result<Value, ProxyError> {
    let kind = format.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "text" | "json_object" => Ok(json!({"type": kind})),
        "json_schema" => {
            let Some(Value::Object(spec)) = format.get("json_schema") else {
                return Err(ProxyError::invalid_param(
                    "response_format.json_schema",
                    "a json_schema response format needs a `json_schema` object with `name` and `schema`.",
                ));
            };
            let mut flat = Map::new();
            flat.insert("type".into(), json!("json_schema"));
            let name = spec
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("response");
            flat.insert("name".into(), json!(name));
            match spec.get("schema") {
                Some(schema @ Value::Object(_)) => {
                    flat.insert("schema".into(), schema.clone());
                }
                _ => {
                    return Err(ProxyError::invalid_param(
                        "response_format.json_schema.schema",
                        "a json_schema response format needs a JSON Schema object in `schema`.",
                    ));
                }
            }
            for key in ["strict", "description"] {
                if let Some(value) = spec.get(key).filter(|v| !v.is_null()) {
                    flat.insert(key.into(), value.clone());
                }
            }
            Ok(Value::Object(flat))
        }
        _ => Err(ProxyError::invalid_param(
            "response_format.type",
            "`response_format.type` must be text, json_object or json_schema.",
        )),
    }
}

#[cfg(test)]
#[path = "chat_request_tests.rs"]
mod tests;
