//! Chat tool definitions and `tool_choice` → their Responses forms. Pure.
//!
//! Chat nests a function under `function`; Responses wants it flat
//! (`{"type":"function","name",…}`, contract §4.5). `web_search_options` becomes a
//! `web_search` tool unless the caller listed one. The deprecated `functions` and
//! `function_call` map onto the same shapes.

use serde_json::{Map, Value, json};

use crate::error::ProxyError;
use crate::param_path::ParamPath;

/// `tools` (or the deprecated `functions`) plus `web_search_options`, as Responses tools.
pub fn tools(fields: &mut Map<String, Value>) -> Result<Option<Value>, ProxyError> {
    let functions = fields.remove("functions");
    let mut tools = match (fields.remove("tools"), functions) {
        (Some(_), Some(_)) => {
            return Err(ProxyError::invalid_param(
                "functions",
                "Send either `tools` or the deprecated `functions`, not both.",
            ));
        }
        (None, None) => Vec::new(),
        (Some(Value::Array(tools)), None) => tools
            .into_iter()
            .enumerate()
            .map(|(i, tool)| chat_tool(tool, &ParamPath::Field("tools").index(i)))
            .collect::<Result<_, _>>()?,
        (None, Some(Value::Array(functions))) => functions
            .into_iter()
            .enumerate()
            .map(|(i, function)| function_tool(function, &ParamPath::Field("functions").index(i)))
            .collect::<Result<_, _>>()?,
        (Some(_), None) => {
            return Err(ProxyError::invalid_param(
                "tools",
                "`tools` must be an array.",
            ));
        }
        (None, Some(_)) => {
            return Err(ProxyError::invalid_param(
                "functions",
                "`functions` must be an array.",
            ));
        }
    };
    if let Some(options) = fields.remove("web_search_options") {
        let explicit = tools.iter().any(|tool| {
            tool.get("type")
                .and_then(Value::as_str)
                .is_some_and(|kind| kind.starts_with("web_search"))
        });
        if !explicit {
            tools.push(web_search_tool(options)?);
        }
    }
    Ok((!tools.is_empty()).then_some(Value::Array(tools)))
}

/// One chat tool as a Responses tool, taken apart rather than copied (a tool's schema can be
/// large, and an agent sends dozens of tools).
fn chat_tool(mut tool: Value, param: &ParamPath<'_>) -> Result<Value, ProxyError> {
    let kind = tool.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "function" => {}
        _ if kind.starts_with("web_search") => return Ok(tool),
        "custom" => {
            return Err(param.invalid(
                "Custom (free-form) tools are not supported on /v1/chat/completions; use /v1/responses.",
            ));
        }
        _ => {
            return Err(param.member("type").invalid(format!(
                "Tools of type `{kind}` are not supported; use `function` tools or `web_search_options`."
            )));
        }
    }
    match tool
        .as_object_mut()
        .and_then(|fields| fields.remove("function"))
    {
        Some(function) => function_tool(function, &param.member("function")),
        // Already the flat Responses shape.
        None => function_tool(tool, param),
    }
}

/// A chat function definition as a flat Responses function tool. `strict` defaults to false,
/// as on Chat Completions (Responses would default it to true and refuse loose schemas).
fn function_tool(function: Value, param: &ParamPath<'_>) -> Result<Value, ProxyError> {
    let Value::Object(mut function) = function else {
        return Err(param.invalid("a function definition must be an object."));
    };
    let name = match function.remove("name") {
        Some(name @ Value::String(_)) => name,
        _ => return Err(param.member("name").invalid("a function needs a `name`.")),
    };
    let mut tool = Map::new();
    tool.insert("type".into(), json!("function"));
    tool.insert("name".into(), name);
    if let Some(description @ Value::String(_)) = function.remove("description") {
        tool.insert("description".into(), description);
    }
    let parameters = match function.remove("parameters") {
        None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
        Some(parameters) => parameters,
    };
    tool.insert("parameters".into(), parameters);
    let strict = function.get("strict").and_then(Value::as_bool);
    tool.insert("strict".into(), json!(strict.unwrap_or(false)));
    Ok(Value::Object(tool))
}

/// `web_search_options` → `{"type":"web_search", search_context_size?, user_location?}`.
fn web_search_tool(options: Value) -> Result<Value, ProxyError> {
    let Value::Object(options) = options else {
        return Err(ProxyError::invalid_param(
            "web_search_options",
            "`web_search_options` must be an object.",
        ));
    };
    let mut tool = Map::new();
    tool.insert("type".into(), json!("web_search"));
    if let Some(size @ Value::String(_)) = options.get("search_context_size") {
        tool.insert("search_context_size".into(), size.clone());
    }
    if let Some(Value::Object(location)) = options.get("user_location") {
        let mut flat = Map::new();
        flat.insert("type".into(), json!("approximate"));
        if let Some(Value::Object(approximate)) = location.get("approximate") {
            flat.extend(approximate.clone());
        }
        tool.insert("user_location".into(), Value::Object(flat));
    }
    Ok(Value::Object(tool))
}

/// `tool_choice` (or the deprecated `function_call`) in Responses terms.
pub fn tool_choice(fields: &mut Map<String, Value>) -> Result<Option<Value>, ProxyError> {
    let legacy = fields.remove("function_call");
    let (choice, param) = match (fields.remove("tool_choice"), legacy) {
        (Some(choice), _) => (choice, "tool_choice"),
        (None, Some(legacy)) => (legacy, "function_call"),
        (None, None) => return Ok(None),
    };
    let invalid = || {
        ProxyError::invalid_param(
            param,
            "expected \"none\", \"auto\", \"required\", {\"type\":\"function\",\"function\":{\"name\":…}} \
             or {\"type\":\"allowed_tools\",…}.",
        )
    };
    let named = |name: Option<&Value>| match name {
        Some(Value::String(name)) => Ok(json!({"type": "function", "name": name})),
        _ => Err(invalid()),
    };
    let choice = match &choice {
        Value::String(mode) if matches!(mode.as_str(), "none" | "auto" | "required") => choice,
        Value::Object(object) => match object.get("type").and_then(Value::as_str) {
            Some("function") => match object.get("function") {
                Some(function) => named(function.get("name"))?,
                None => named(object.get("name"))?,
            },
            // The legacy `function_call: {"name": …}`.
            None if param == "function_call" => named(object.get("name"))?,
            Some("allowed_tools") => allowed_tools(object).ok_or_else(invalid)?,
            _ => return Err(invalid()),
        },
        _ => return Err(invalid()),
    };
    Ok(Some(choice))
}

/// `{"type":"allowed_tools","allowed_tools":{"mode","tools":[{"type":"function","function":{"name"}}]}}`
/// → `{"type":"allowed_tools","mode","tools":[{"type":"function","name"}]}`.
fn allowed_tools(choice: &Map<String, Value>) -> Option<Value> {
    let allowed = choice.get("allowed_tools")?;
    let mode = allowed.get("mode")?.as_str()?;
    let tools = allowed
        .get("tools")?
        .as_array()?
        .iter()
        .map(
            |tool| match tool.get("function").and_then(|f| f.get("name")) {
                Some(name) => json!({"type": "function", "name": name}),
                None => tool.clone(),
            },
        )
        .collect::<Vec<_>>();
    Some(json!({"type": "allowed_tools", "mode": mode, "tools": tools}))
}
