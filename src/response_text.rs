//! The terminal Response object as JSON text: the fields of an event the transcript reads,
//! borrowed from the event's text, and the finished items spliced into `response.output`
//! without building a `serde_json::Value` tree. Pure.
//!
//! Building, re-serialising and dropping trees for `response.completed` and the finished
//! items was the largest share of an aggregated request's CPU. Here the values the proxy
//! does not look into stay the exact text the backend sent (`RawValue`): the items are
//! written into the byte range of the empty `output` (or added before the closing brace),
//! and the filled response into the byte range of the event's `response`, so everything
//! else, key order and spacing included, passes as sent.

use std::borrow::Cow;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::checked_json::CheckedJson;

/// The fields of a non-delta event that the transcript reads, borrowed from its text.
#[derive(Deserialize)]
pub struct EventFields<'a> {
    /// The JSON `type`, as sent (a string, if the event is well formed).
    #[serde(rename = "type", borrow)]
    pub kind: Option<&'a RawValue>,
    /// `sequence_number`, as sent.
    #[serde(borrow)]
    pub sequence_number: Option<&'a RawValue>,
    /// `output_index` of `response.output_item.done`, as sent.
    #[serde(borrow)]
    pub output_index: Option<&'a RawValue>,
    /// `item` of `response.output_item.done`, as sent.
    #[serde(borrow)]
    pub item: Option<&'a RawValue>,
    /// `response` of the terminal events, as sent.
    #[serde(borrow)]
    pub response: Option<&'a RawValue>,
}

impl<'a> EventFields<'a> {
    /// Reads the fields of `data`, which must be a JSON object (serde reads a struct from an
    /// array too). `None` for anything else, and for an object this shape cannot take (a
    /// field given twice, say): the caller then goes the slow way.
    pub fn parse(data: &'a str) -> Option<Self> {
        if !data.trim_start().starts_with('{') || !within_depth(data) {
            return None;
        }
        serde_json::from_str(data).ok()
    }

    /// The `type`, when it is a string.
    pub fn kind(&self) -> Option<Cow<'a, str>> {
        as_str(self.kind)
    }
}

/// serde_json's recursion limit: a `Value` tree nests fewer than this many objects and arrays.
/// Skipping values as `RawValue` has no such limit, so without this check text that no `Value`
/// reader (nor the fuzz harness's client) can parse would be relayed and answered.
pub const MAX_DEPTH: usize = 128;

/// Whether `text` nests objects and arrays less than [`MAX_DEPTH`] deep, as a `Value` reader
/// accepts (brackets inside strings do not count). Text with few brackets is passed without
/// a walk; the walk jumps through each string to its closing quote (`memchr`), since strings
/// are most of a request's or an event's bytes and a step per byte cost about 7 instructions
/// each.
pub fn within_depth(text: &str) -> bool {
    let bytes = text.as_bytes();
    if memchr::memchr2_iter(b'{', b'[', bytes).count() < MAX_DEPTH {
        return true;
    }
    let (mut depth, mut at) = (0usize, 0usize);
    while let Some(&byte) = bytes.get(at) {
        at += 1;
        match byte {
            b'"' => match string_end(bytes, at) {
                Some(end) => at = end,
                // Unterminated: not JSON, which its reader refuses anyway.
                None => return true,
            },
            b'{' | b'[' => {
                depth += 1;
                if depth >= MAX_DEPTH {
                    return false;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

/// The position just past the quote that closes the string whose contents start at `from`.
fn string_end(bytes: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let offset = memchr::memchr2(b'"', b'\\', bytes.get(from..)?)?;
        let at = from + offset;
        if bytes.get(at) == Some(&b'"') {
            return Some(at + 1);
        }
        // A backslash and the character it escapes.
        from = at + 2;
    }
}

/// A JSON string borrowed from the text when it has no escapes, else copied.
#[derive(Debug)]
pub struct Key<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(text.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The values of `object`'s top-level keys that `names` lists, in that order, as the text the
/// backend sent; the other values are skipped, never built. A key given twice keeps its last
/// value, as a `Value` reader does. `None` when `object` is not one JSON object.
pub fn raw_fields<'a, const N: usize>(
    object: &'a str,
    names: &[&str; N],
) -> Option<[Option<&'a RawValue>; N]> {
    struct RawFieldsVisitor<'n, const N: usize>(&'n [&'n str; N]);
    impl<'de, const N: usize> Visitor<'de> for RawFieldsVisitor<'_, N> {
        type Value = [Option<&'de RawValue>; N];
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = [None; N];
            while let Some(name) = map.next_key::<Key<'de>>()? {
                match self.0.iter().position(|wanted| *wanted == name.0) {
                    Some(slot) => found[slot] = Some(map.next_value()?),
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(found)
        }
    }
    let mut reader = serde_json::Deserializer::from_str(object);
    let found = reader.deserialize_map(RawFieldsVisitor(names)).ok()?;
    reader.end().ok()?;
    Some(found)
}

/// A number that fits `u64`, as `Value::as_u64` reads it.
pub fn as_u64(raw: Option<&RawValue>) -> Option<u64> {
    raw.and_then(|raw| serde_json::from_str(raw.get()).ok())
}

/// A string, as `Value::as_str` reads it: borrowed from the text when it has no escapes.
pub fn as_str(raw: Option<&RawValue>) -> Option<Cow<'_, str>> {
    raw.and_then(|raw| serde_json::from_str::<Key<'_>>(raw.get()).ok())
        .map(|key| key.0)
}

/// Whether a raw value is a JSON object.
pub fn is_object(raw: &RawValue) -> bool {
    raw.get().starts_with('{')
}

/// `response` with `output` set to `items` (JSON texts, in order), when `response` is an
/// object whose `output` is missing, `null` or empty and there are items; `None` otherwise:
/// the response stands as sent (also when it gives `output` twice, which is ambiguous).
/// Everything but `output` keeps the text the backend sent, byte for byte.
pub fn with_output(response: &RawValue, items: &[String]) -> Option<String> {
    with_output_in_text(response.get(), items)
}

/// [`with_output`] for a response kept as text that is known to be one JSON value (a
/// `RawValue`'s text, or one this module spliced), so that it is not validated a second time:
/// that was a scan of the whole response, about 4 % of a non-streaming request.
pub fn with_output_in_text(object: &str, items: &[String]) -> Option<String> {
    if !object.starts_with('{') || items.is_empty() {
        return None;
    }
    let slot = find_slot(object, "output")?;
    if let Slot::At(span) = &slot {
        let output = CheckedJson::known(&object[span.clone()]);
        let empty = output.is_null()
            || output
                .elements()
                .is_some_and(|mut items| items.next().is_none());
        if !empty {
            return None;
        }
    }
    let array = ["[", &items.join(","), "]"].concat();
    Some(put(object, "output", &slot, &array))
}

/// The event `data` with its `response` (a value borrowed from `data`, as `EventFields`
/// reads it) replaced by `filled` (JSON text); `None` when `response` is not part of `data`.
pub fn with_response(data: &str, response: &RawValue, filled: &str) -> Option<String> {
    let span = span_in(data, response.get())?;
    Some(put(data, "response", &Slot::At(span), filled))
}

/// Where a key's value is in an object's text.
enum Slot {
    /// The value's bytes.
    At(Range<usize>),
    /// The key is absent; `empty` when the object has no keys at all.
    Missing { empty: bool },
}

/// Where `key`'s value sits in `object`, a JSON object's text; `None` when it is not one, or
/// gives `key` twice. Only the top level is looked at: the values are skipped as text.
fn find_slot(object: &str, key: &str) -> Option<Slot> {
    let (mut found, mut keys) = (None, 0usize);
    for member in CheckedJson::known(object).members()? {
        let (name, value) = member?;
        keys += 1;
        if name == key {
            if found.is_some() {
                return None;
            }
            found = Some(value);
        }
    }
    match found {
        Some(value) => span_in(object, value.get()).map(Slot::At),
        None => Some(Slot::Missing { empty: keys == 0 }),
    }
}

/// The byte range `inner` (a slice borrowed from `outer`) covers in `outer`.
fn span_in(outer: &str, inner: &str) -> Option<Range<usize>> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    let span = start..start.checked_add(inner.len())?;
    let same = outer
        .get(span.clone())
        .is_some_and(|text| std::ptr::eq(text.as_ptr(), inner.as_ptr()));
    same.then_some(span)
}

/// `object` with `value` at `slot`: the old value's bytes replaced, or `"key":value` added
/// before the closing brace.
fn put(object: &str, key: &str, slot: &Slot, value: &str) -> String {
    let mut text = String::with_capacity(object.len() + key.len() + value.len() + 4);
    match slot {
        Slot::At(span) => {
            text.push_str(&object[..span.start]);
            text.push_str(value);
            text.push_str(&object[span.end..]);
        }
        Slot::Missing { empty } => {
            // A parsed object's text ends with its closing brace, whitespace aside.
            let body = object.trim_end();
            let close = body.len().saturating_sub(1);
            text.push_str(&body[..close]);
            if !empty {
                text.push(',');
            }
            text.push('"');
            text.push_str(key);
            text.push_str("\":");
            text.push_str(value);
            text.push('}');
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn raw(value: &Value) -> Box<RawValue> {
        RawValue::from_string(value.to_string()).expect("raw")
    }

    #[test]
    fn raw_fields_reads_only_the_fields_asked_for() {
        let text = r#"{"instructions":"long","status":"completed","tools":[{"a":[1,2]}],
            "usage":{"input_tokens":3},"n\u0061me":"escaped key","output":[]}"#;
        let [status, usage, name, missing] =
            raw_fields(text, &["status", "usage", "name", "missing"]).unwrap();
        assert_eq!(status.map(RawValue::get), Some("\"completed\""));
        assert_eq!(usage.map(RawValue::get), Some(r#"{"input_tokens":3}"#));
        assert_eq!(as_str(name).as_deref(), Some("escaped key"));
        assert!(missing.is_none());
    }

    #[test]
    fn raw_fields_keeps_the_last_of_a_repeated_key_and_refuses_non_objects() {
        let [status] = raw_fields(r#"{"status":"a","status":"b"}"#, &["status"]).unwrap();
        assert_eq!(
            as_str(status).as_deref(),
            Some("b"),
            "as a Value reader keeps it"
        );
        for text in ["[1]", "\"text\"", "{\"status\":", "{} {}", "{\"a\":tru}"] {
            assert!(raw_fields(text, &["status"]).is_none(), "{text}");
        }
    }

    #[test]
    fn reads_the_fields_without_a_tree() {
        let data = r#"{"type":"response.output_item.done","sequence_number":7,"output_index":2,
                       "item":{"id":"m","content":[{"text":"a \"b\""}]},"extra":[1,2]}"#;
        let fields = EventFields::parse(data).expect("fields");
        assert_eq!(fields.kind().as_deref(), Some("response.output_item.done"));
        assert_eq!(as_u64(fields.sequence_number), Some(7));
        assert_eq!(as_u64(fields.output_index), Some(2));
        let item = fields.item.expect("item");
        assert!(is_object(item));
        assert_eq!(item.get(), r#"{"id":"m","content":[{"text":"a \"b\""}]}"#);
    }

    #[test]
    fn escaped_types_are_read_and_non_objects_refused() {
        let fields = EventFields::parse(r#"{"type":"response.\u0063ompleted"}"#).expect("fields");
        assert_eq!(fields.kind().as_deref(), Some("response.completed"));
        let numbered = EventFields::parse(r#"{"type":5}"#).expect("fields");
        assert_eq!(numbered.kind(), None);
        assert!(EventFields::parse(r#"["response.completed"]"#).is_none());
        assert!(
            EventFields::parse(r#"{"type":"a","type":"b"}"#).is_none(),
            "duplicates"
        );
        assert!(EventFields::parse(r#"{"type":"#).is_none());
        assert_eq!(as_u64(Some(&raw(&json!(-1)))), None);
        assert_eq!(as_u64(Some(&raw(&json!(7.5)))), None);
    }

    /// The walk `within_depth` did before it jumped through strings, byte by byte.
    fn within_depth_byte_by_byte(text: &str) -> bool {
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        for byte in text.as_bytes() {
            match (in_string, escaped, byte) {
                (true, true, _) => escaped = false,
                (true, false, b'\\') => escaped = true,
                (true, false, b'"') => in_string = false,
                (true, false, _) => {}
                (false, _, b'"') => in_string = true,
                (false, _, b'{' | b'[') => {
                    depth += 1;
                    if depth >= MAX_DEPTH {
                        return false;
                    }
                }
                (false, _, b'}' | b']') => depth = depth.saturating_sub(1),
                (false, _, _) => {}
            }
        }
        true
    }

    #[test]
    fn jumping_through_strings_finds_what_the_byte_walk_finds() {
        // Brackets more often than the rest, so that most texts take the walk.
        let alphabet = ['{', '[', '{', '[', '}', ']', '"', '\\', 'a', ' '];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut tried = 0;
        for length in [130, 200, 300, 600] {
            for _ in 0..400 {
                let text: String = (0..length)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let pick = (state >> 33) as usize % alphabet.len();
                        alphabet[pick]
                    })
                    .collect();
                let agree = within_depth_byte_by_byte(&text) == within_depth(&text);
                // An unterminated string ends the jump early ("not JSON"); the byte walk may
                // still count brackets after it. Both are right about text a reader refuses.
                if !agree {
                    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
                }
                tried += 1;
            }
        }
        assert_eq!(tried, 1600);
        let deep_in_a_string = format!("[\"{}\"]", "[".repeat(200));
        assert!(within_depth(&deep_in_a_string));
        let escaped_quote = format!("[\"a\\\"{}\"]", "[".repeat(200));
        assert!(
            within_depth(&escaped_quote),
            "an escaped quote does not end the string"
        );
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(!within_depth(&deep));
    }

    #[test]
    fn nesting_past_the_tree_limit_is_refused_and_brackets_in_strings_do_not_count() {
        let deep = |levels: usize| {
            format!(
                r#"{{"type":"x","a":{}1{}}}"#,
                "[".repeat(levels),
                "]".repeat(levels)
            )
        };
        // Exactly what a tree reader accepts, around the limit.
        for levels in MAX_DEPTH - 8..MAX_DEPTH + 8 {
            let text = deep(levels);
            let tree = serde_json::from_str::<Value>(&text).is_ok();
            assert_eq!(within_depth(&text), tree, "{levels} levels");
            assert_eq!(EventFields::parse(&text).is_some(), tree, "{levels} levels");
        }
        let quoted = format!(
            r#"{{"type":"x","text":"{}\"{}"}}"#,
            "[".repeat(300),
            "{".repeat(300)
        );
        assert!(within_depth(&quoted));
        assert!(EventFields::parse(&quoted).is_some());
    }

    #[test]
    fn items_fill_an_empty_output_and_nothing_else_changes() {
        let response = json!({"id": "r", "output": [], "usage": {"total_tokens": 3}, "z": 1.0});
        let items = [
            json!({"id": "a"}).to_string(),
            json!({"id": "b"}).to_string(),
        ];
        let filled = with_output(&raw(&response), &items).expect("filled");
        let filled: Value = serde_json::from_str(&filled).expect("json");
        let mut expected = response.clone();
        expected["output"] = json!([{"id": "a"}, {"id": "b"}]);
        assert_eq!(filled, expected);
        for output in [json!(null), json!([])] {
            let response = json!({"id": "r", "output": output});
            assert!(with_output(&raw(&response), &items).is_some());
        }
        let missing = json!({"id": "r"});
        assert!(with_output(&raw(&missing), &items).is_some());
    }

    #[test]
    fn a_filled_output_or_no_items_leaves_the_response_alone() {
        let items = [json!({"id": "a"}).to_string()];
        let filled = json!({"output": [{"id": "kept"}]});
        assert_eq!(with_output(&raw(&filled), &items), None);
        assert_eq!(with_output(&raw(&json!({"output": []})), &[]), None);
        assert_eq!(with_output(&raw(&json!("text")), &items), None);
    }

    #[test]
    fn the_items_are_written_into_the_text_as_sent() {
        let items = [r#"{"id":"a"}"#.to_string(), r#"{"id":"b"}"#.to_string()];
        let filled = |text: &str| {
            let response: &RawValue = serde_json::from_str(text).expect("raw");
            with_output(response, &items)
        };
        // Key order, spacing and number spelling stay as sent.
        assert_eq!(
            filled(r#"{"z":1.0, "output" : [ ], "id":"r"}"#).as_deref(),
            Some(r#"{"z":1.0, "output" : [{"id":"a"},{"id":"b"}], "id":"r"}"#)
        );
        assert_eq!(
            filled(r#"{"output":null,"id":"r"}"#).as_deref(),
            Some(r#"{"output":[{"id":"a"},{"id":"b"}],"id":"r"}"#)
        );
        assert_eq!(
            filled(r#"{"\u006futput":[],"id":"r"}"#).as_deref(),
            Some(r#"{"\u006futput":[{"id":"a"},{"id":"b"}],"id":"r"}"#),
            "an escaped key is the same key"
        );
        // Missing: added before the closing brace.
        assert_eq!(
            filled(r#"{"id":"r" }"#).as_deref(),
            Some(r#"{"id":"r" ,"output":[{"id":"a"},{"id":"b"}]}"#)
        );
        assert_eq!(
            filled("{ }").as_deref(),
            Some(r#"{ "output":[{"id":"a"},{"id":"b"}]}"#)
        );
        // Every answer is JSON.
        for text in [r#"{"output" : [ ]}"#, "{}", r#"{"a":{"output":1}}"#] {
            let answer = filled(text).expect("filled");
            let value: Value = serde_json::from_str(&answer).expect("json");
            assert_eq!(value["output"][1]["id"], "b", "{text}");
        }
        assert_eq!(
            filled(r#"{"output":[],"output":[]}"#),
            None,
            "a key given twice is ambiguous: left as sent"
        );
    }

    #[test]
    fn the_event_gets_the_new_response_in_place() {
        let data =
            r#"{"type":"response.completed", "response" : {"output":[]},"sequence_number":4}"#;
        let fields = EventFields::parse(data).expect("fields");
        let sent = fields.response.expect("response");
        let rewritten = with_response(data, sent, r#"{"output":[{"id":"a"}]}"#).expect("rewritten");
        assert_eq!(
            rewritten,
            r#"{"type":"response.completed", "response" : {"output":[{"id":"a"}]},"sequence_number":4}"#
        );
        // A value that is not part of the event's text is not spliced anywhere.
        let elsewhere: &RawValue = serde_json::from_str(r#"{"output":[]}"#).expect("raw");
        assert_eq!(with_response(data, elsewhere, "{}"), None);
    }
}
