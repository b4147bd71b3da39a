//! Parsing a request body as a JSON object, with errors that name the problem; and JSON text
//! for answers and frames.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::ProxyError;

/// The value at `keys`, object member by object member (`value["a"]["b"]` without the
/// `Null` for a missing step). `Value::pointer` does the same for a `/a/b` path, but it
/// unescapes every step into two new strings first: four allocations for a two-step path,
/// taken on every streamed chat event.
pub fn member<'a>(value: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(value, |value, key| value.get(key))
}

/// Parses `body` as a JSON object.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ProxyError> {
    if body.is_empty() {
        return Err(ProxyError::invalid_body(
            "The request body is empty; send a JSON object.",
        ));
    }
    let text = std::str::from_utf8(body).map_err(|error| {
        ProxyError::invalid_body(format!(
            "The request body is not valid UTF-8 (invalid byte at offset {}).",
            error.valid_up_to()
        ))
    })?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(ProxyError::invalid_body(format!(
            "The request body must be a JSON object, not {}.",
            kind(&other)
        ))),
        Err(error) => Err(ProxyError::invalid_body(format!(
            "The request body is not valid JSON: {} at line {} column {}.",
            category(&error),
            error.line(),
            error.column()
        ))),
    }
}

/// `value` as compact JSON text. Same text as `value.to_string()`, but serde_json's `Display`
/// writes through a `fmt::Write` adapter token by token, which made it the largest single cost
/// of an aggregated answer (about 47k instructions for a 1.5 KB Response object, against about
/// 12k here).
pub fn to_text<T: Serialize + ?Sized>(value: &T) -> String {
    // Serialising a `Value`, or one of the proxy's answer structs, cannot fail: their map
    // keys are strings.
    serde_json::to_string(value).unwrap_or_default()
}

/// [`to_text`] as bytes, for a body: written into a buffer of a size most answers fit, where
/// `to_string` starts at 128 bytes and doubles four times for a 1 KiB answer.
pub fn to_bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    const ANSWER_BYTES: usize = 2048;
    let mut bytes = Vec::with_capacity(ANSWER_BYTES);
    match serde_json::to_writer(&mut bytes, value) {
        Ok(()) => bytes,
        // As for `to_text`: cannot happen.
        Err(_) => Vec::new(),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The kind of JSON error, without echoing the input (which may hold prompt text).
fn category(error: &serde_json::Error) -> &'static str {
    use serde_json::error::Category;
    match error.classify() {
        Category::Io => "read error",
        Category::Syntax => "syntax error",
        Category::Data => "data error",
        Category::Eof => "unexpected end of input",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_finds_what_pointer_finds() {
        let value = serde_json::json!({
            "item": {"type": "message", "id": "msg_1", "list": [1]},
            "a~b": {"c/d": 1},
            "n": null,
        });
        for (keys, pointer) in [
            (&["item", "type"][..], "/item/type"),
            (&["item", "id"], "/item/id"),
            (&["item", "missing"], "/item/missing"),
            (&["item", "type", "deeper"], "/item/type/deeper"),
            (&["item", "list", "x"], "/item/list/x"),
            (&["n", "x"], "/n/x"),
            (&["a~b", "c/d"], "/a~0b/c~1d"),
            (&[], ""),
        ] {
            assert_eq!(member(&value, keys), value.pointer(pointer), "{pointer}");
        }
    }

    #[test]
    fn names_each_problem() {
        let message = |body: &[u8]| parse_object(body).expect_err("invalid").message();
        assert!(message(b"").contains("empty"));
        assert!(message(b"\xff\xfe").contains("UTF-8"));
        assert!(message(b"{\"a\":").contains("not valid JSON"));
        assert!(message(b"[1,2]").contains("an array"));
        assert!(message(b"\"secret prompt\"").contains("a string"));
        assert!(!message(b"{\"secret prompt").contains("secret"));
        assert!(parse_object(b"{\"a\":1}").is_ok());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(parse_object(deep.as_bytes()).is_err());
    }

    #[test]
    fn bytes_are_the_text_of_the_same_value() {
        let long = "x".repeat(5000);
        for value in [
            serde_json::json!({"a": [1, "é", null], "b": {"c": "\"q\""}}),
            serde_json::json!({ "long": long }),
        ] {
            assert_eq!(to_bytes(&value), to_text(&value).into_bytes());
            assert_eq!(to_text(&value), value.to_string());
        }
    }
}
