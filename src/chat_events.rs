//! [`ChatEvent`]: the fields of one upstream event that the chat stream translator reads,
//! taken from the event's text without building a tree of the whole event. Pure.
//!
//! A text delta is most of a stream's events, and the translator reads four of its fields.
//! Reading them as borrowed text, and the others not at all, costs a fraction of a
//! `serde_json::Value` tree of the event. `item` and the terminal `response` stay text too;
//! [`crate::response_view`] reads the few fields of theirs that a chat answer needs.
//!
//! What each field means is exactly what a `Value` reader of the same text would see: a field
//! of the wrong type counts as absent, a key given twice keeps its last value, and text that no
//! `Value` reader takes (not an object, invalid, nested too deep) is no event at all. One
//! difference, on purpose: a value the translator skips is checked for JSON grammar only, so a
//! lone surrogate in a `\u` escape or a number past `f64`'s range inside a field it never reads
//! does not make the event unreadable, as it would make a tree (the `/v1/responses` relay's
//! reader has always done the same).

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::checked_json::CheckedJson;
use crate::response_text::{as_str, as_u64, raw_fields, within_depth};
use crate::response_view::Item;

/// One upstream event, as the chat translator reads it.
#[derive(Debug)]
pub struct ChatEvent<'a> {
    /// `type`; empty when it is missing or not a string.
    pub kind: Cow<'a, str>,
    /// `delta`; empty when it is missing or not a string.
    pub delta: Cow<'a, str>,
    /// `output_index`, when it is a number that fits `u64`.
    pub output_index: Option<u64>,
    /// `summary_index`, likewise.
    pub summary_index: Option<u64>,
    /// `item_id`, when it is a string.
    pub item_id: Option<Cow<'a, str>>,
    /// `item`, as sent (`null` counts as absent).
    pub item: Option<&'a RawValue>,
    /// `response`, as sent.
    pub response: Option<&'a RawValue>,
    /// `code` (of an `error` event), when it is a string.
    pub code: Option<Cow<'a, str>>,
    /// `message` (of an `error` event), when it is a string.
    pub message: Option<Cow<'a, str>>,
}

/// The fields [`ChatEvent`] reads, in the order of its members.
const FIELDS: [&str; 9] = [
    "type",
    "delta",
    "output_index",
    "summary_index",
    "item_id",
    "item",
    "response",
    "code",
    "message",
];

impl<'a> ChatEvent<'a> {
    /// Reads an event's `data`; `None` when it is not a JSON object a `Value` reader takes.
    pub fn parse(data: &'a str) -> Option<Self> {
        if !within_depth(data) {
            return None;
        }
        let [
            kind,
            delta,
            output_index,
            summary_index,
            item_id,
            item,
            response,
            code,
            message,
        ] = raw_fields(data, &FIELDS)?;
        Some(ChatEvent {
            kind: as_str(kind).unwrap_or_default(),
            delta: as_str(delta).unwrap_or_default(),
            output_index: as_u64(output_index),
            summary_index: as_u64(summary_index),
            item_id: as_str(item_id),
            item: item.filter(|item| item.get() != "null"),
            response,
            code: as_str(code),
            message: as_str(message),
        })
    }

    /// The event's `item`; one with no fields when there is none.
    pub fn item(&self) -> Item<'a> {
        self.item
            .map(|item| Item::parse(CheckedJson::of(item)))
            .unwrap_or_default()
    }

    /// The key that ties the event to its output item: `output_index` (every event of an item
    /// carries it), else the item id; `item` is this event's [`ChatEvent::item`], read once by
    /// the caller.
    pub fn item_key(&self, item: &Item<'_>) -> String {
        if let Some(index) = self.output_index {
            return index.to_string();
        }
        match (&self.item_id, &item.id) {
            (Some(id), _) | (None, Some(id)) => id.to_string(),
            (None, None) => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// What a `Value` reader sees of the same text.
    fn as_tree(data: &str) -> Option<Value> {
        match serde_json::from_str::<Value>(data) {
            Ok(object @ Value::Object(_)) => Some(object),
            _ => None,
        }
    }

    fn assert_same_as_tree(data: &str) {
        let event = ChatEvent::parse(data);
        let Some(tree) = as_tree(data) else {
            assert!(event.is_none(), "a Value reader refuses {data:?}");
            return;
        };
        let event = event.unwrap_or_else(|| panic!("{data:?} is an object"));
        let text = |key: &str| tree.get(key).and_then(Value::as_str);
        assert_eq!(event.kind, text("type").unwrap_or(""), "{data}");
        assert_eq!(event.delta, text("delta").unwrap_or(""), "{data}");
        assert_eq!(event.item_id.as_deref(), text("item_id"), "{data}");
        assert_eq!(event.code.as_deref(), text("code"), "{data}");
        assert_eq!(event.message.as_deref(), text("message"), "{data}");
        let number = |key: &str| tree.get(key).and_then(Value::as_u64);
        assert_eq!(event.output_index, number("output_index"), "{data}");
        assert_eq!(event.summary_index, number("summary_index"), "{data}");
        let as_sent = |raw: Option<&RawValue>| {
            raw.map(|raw| serde_json::from_str::<Value>(raw.get()).expect("json"))
        };
        let item = tree.get("item").filter(|item| !item.is_null());
        assert_eq!(as_sent(event.item).as_ref(), item, "{data}");
        assert_eq!(
            as_sent(event.response).as_ref(),
            tree.get("response"),
            "{data}"
        );
    }

    #[test]
    fn reads_what_a_value_reader_reads() {
        let deep = format!(
            "{{\"type\":\"x\",\"item\":{}{}}}",
            "[".repeat(130),
            "]".repeat(130)
        );
        for data in [
            r#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi","sequence_number":3}"#,
            r#"{"type":"response.output_text.delta","delta":"a \"quoted\" \u00e9\n","output_index":2}"#,
            r#"{"type":"response.reasoning_summary_text.delta","summary_index":1,"delta":"x","item_id":"rs_1"}"#,
            r#"{"type":7,"delta":null,"output_index":-1,"summary_index":1.0,"item_id":{"a":1}}"#,
            r#"{"type":"a","type":"b","delta":"one","delta":"two"}"#,
            r#"{"type":"response.output_item.done","output_index":1,"item":{"type":"message","id":"m","content":[{"type":"output_text","text":"t"}]}}"#,
            r#"{"type":"response.output_item.added","item":null}"#,
            r#"{"type":"response.completed","response":{"id":"r","instructions":"long","tools":[{"type":"function"}],"status":"completed","usage":{"input_tokens":1},"output":[]}}"#,
            r#"{"type":"response.failed","response":{"status":"failed","error":{"code":"server_error","message":"m"}}}"#,
            r#"{"type":"response.completed","response":[1,2]}"#,
            r#"{"type":"error","code":"rate_limit_exceeded","message":"slow down"}"#,
            r#"{"type":"response.output_text.delta","output_index":18446744073709551616}"#,
            r#"{"\u0074ype":"escaped.key"}"#,
            r#" {"type":"leading.space"} "#,
            r#"{}"#,
            r#"[{"type":"x"}]"#,
            r#""text""#,
            r#"{"type":"x""#,
            r#"{"type":"x"} trailing"#,
            &deep,
        ] {
            assert_same_as_tree(data);
        }
    }

    #[test]
    fn a_value_never_read_is_checked_for_grammar_only() {
        let data =
            r#"{"type":"response.output_text.delta","delta":"Hi","logprobs":["\ud800"],"n":1e400}"#;
        assert!(as_tree(data).is_none(), "a tree refuses the lone surrogate");
        let event = ChatEvent::parse(data).expect("read");
        assert_eq!(event.delta, "Hi");
        let bad_delta = r#"{"type":"response.output_text.delta","delta":"\ud800"}"#;
        let event = ChatEvent::parse(bad_delta).expect("read");
        assert_eq!(
            event.delta, "",
            "a field that is read is read as a tree reads it"
        );
    }

    #[test]
    fn item_key_prefers_the_output_index() {
        let key = |event: Value| {
            let text = event.to_string();
            let event = ChatEvent::parse(&text).expect("event");
            event.item_key(&event.item())
        };
        assert_eq!(key(json!({"output_index": 3, "item_id": "m"})), "3");
        assert_eq!(key(json!({"item_id": "m", "item": {"id": "other"}})), "m");
        assert_eq!(key(json!({"item": {"id": "fc_1"}})), "fc_1");
        assert_eq!(key(json!({"output_index": "3"})), "");
    }

    #[test]
    fn plain_text_is_borrowed_and_escaped_text_is_copied() {
        let plain = r#"{"type":"response.output_text.delta","delta":"plain"}"#;
        let event = ChatEvent::parse(plain).expect("event");
        assert!(matches!(event.delta, Cow::Borrowed(_)));
        let escaped = r#"{"type":"response.output_text.delta","delta":"line\nbreak"}"#;
        let event = ChatEvent::parse(escaped).expect("event");
        assert_eq!(event.delta, "line\nbreak");
    }
}
