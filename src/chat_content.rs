//! Chat message content → Responses content parts. Pure.
//!
//! `text` parts become `input_text`; `image_url` parts (https or data URLs, with `detail`)
//! become `input_image`; `file` parts (`file_data`, `filename`, `file_id`) become `input_file`.
//! Audio input is refused: the backend does not take it.

use serde_json::{Map, Value, json};

use crate::error::ProxyError;
use crate::param_path::ParamPath;

/// The text of a string or text-part content; parts are joined with newlines.
pub fn text_of(content: Value, param: &ParamPath<'_>) -> Result<String, ProxyError> {
    match content {
        Value::Null => Ok(String::new()),
        Value::String(text) => Ok(text),
        Value::Array(parts) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (j, part) in parts.into_iter().enumerate() {
                let text = match part {
                    Value::String(text) => text,
                    Value::Object(fields) => part_text(&fields)
                        .ok_or_else(|| unsupported_part(&param.index(j), &fields))?,
                    _ => return Err(param.index(j).invalid("content parts must be objects.")),
                };
                texts.push(text);
            }
            Ok(texts.join("\n"))
        }
        _ => Err(param.invalid("`content` must be a string or an array of content parts.")),
    }
}

/// The text of a text or refusal part.
fn part_text(part: &Map<String, Value>) -> Option<String> {
    let key = match part.get("type").and_then(Value::as_str)? {
        "text" | "input_text" | "output_text" => "text",
        "refusal" => "refusal",
        _ => return None,
    };
    part.get(key).and_then(Value::as_str).map(str::to_string)
}

fn unsupported_part(param: &ParamPath<'_>, part: &Map<String, Value>) -> ProxyError {
    let kind = part.get("type").and_then(Value::as_str).unwrap_or("(none)");
    param.invalid(format!(
        "Content parts of type `{kind}` are not supported in this message."
    ))
}

/// A user message's content as Responses input parts.
pub fn user_parts(content: Value, param: &ParamPath<'_>) -> Result<Vec<Value>, ProxyError> {
    let parts = match content {
        Value::String(text) => return Ok(vec![json!({"type": "input_text", "text": text})]),
        Value::Array(parts) => parts,
        _ => {
            return Err(param.invalid("`content` must be a string or an array of content parts."));
        }
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.into_iter().enumerate() {
        let part_param = param.index(j);
        let Value::Object(mut part) = part else {
            return Err(part_param.invalid("content parts must be objects."));
        };
        let kind = part
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        out.push(match kind.as_str() {
            "text" => json!({"type": "input_text", "text": part_text(&part).unwrap_or_default()}),
            "image_url" => image_part(part.remove("image_url"), &part_param)?,
            "file" => file_part(part.remove("file"), &part_param)?,
            "input_audio" => {
                return Err(
                    part_param.invalid("Audio input is not supported by the subscription backend.")
                );
            }
            // Responses-style parts sent by clients that speak both dialects.
            "input_text" | "input_image" | "input_file" => Value::Object(part),
            _ => return Err(unsupported_part(&part_param, &part)),
        });
    }
    Ok(out)
}

/// `{"type":"image_url","image_url":{"url","detail"}}` → `input_image`.
fn image_part(image: Option<Value>, param: &ParamPath<'_>) -> Result<Value, ProxyError> {
    let (url, detail) = match image {
        Some(Value::String(url)) => (url, None),
        Some(Value::Object(mut image)) => match image.remove("url") {
            Some(Value::String(url)) => (url, image.remove("detail").filter(Value::is_string)),
            _ => (String::new(), None),
        },
        _ => (String::new(), None),
    };
    if url.is_empty() {
        return Err(param
            .member("image_url")
            .member("url")
            .invalid("an image part needs `image_url.url` (an https URL or a data URL)."));
    }
    Ok(json!({
        "type": "input_image",
        "image_url": url,
        "detail": detail.unwrap_or_else(|| json!("auto")),
    }))
}

/// `{"type":"file","file":{"file_data","filename","file_id"}}` → `input_file`.
fn file_part(file: Option<Value>, param: &ParamPath<'_>) -> Result<Value, ProxyError> {
    let Some(Value::Object(file)) = file else {
        return Err(param.member("file").invalid(
            "a file part needs a `file` object with `file_data` and `filename` (or `file_id`).",
        ));
    };
    let mut part = Map::new();
    part.insert("type".into(), json!("input_file"));
    for key in ["file_data", "filename", "file_id"] {
        if let Some(value @ Value::String(_)) = file.get(key) {
            part.insert(key.into(), value.clone());
        }
    }
    if part.len() == 1 {
        return Err(param.member("file").invalid(
            "a file part needs `file_data` (a base64 data URL) and `filename`, or a `file_id`.",
        ));
    }
    Ok(Value::Object(part))
}
