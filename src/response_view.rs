//! A Response object and its output items as the chat translators read them: the fields they
//! look at, borrowed from the JSON text the backend sent, never built as trees. Pure.
//!
//! A `chat.completion` (and a chat stream's last chunks) is made from a few fields of the
//! final Response object and of each output item. Parsing those objects into
//! `serde_json::Value` trees built a map and a string for every key, then dropped them all.
//! Here each object is read once, its other values skipped as text, and a string is copied
//! only when it holds an escape.
//!
//! Every reader here sees what a `Value` reader of the same text sees: a field of the wrong
//! type counts as absent, a key given twice keeps its last value, and a value that is not an
//! object has no fields. The texts read here were checked as JSON (and for depth) on the way
//! in, so they are read as [`CheckedJson`], without checking them again.

use std::borrow::Cow;

use crate::checked_json::CheckedJson;

/// The fields of a Response object that chat answers read.
#[derive(Debug, Default)]
pub struct ResponseView<'a> {
    /// `status`, when it is a string.
    pub status: Option<Cow<'a, str>>,
    /// `incomplete_details`, as sent.
    incomplete_details: Option<CheckedJson<'a>>,
    /// `usage`, as sent.
    pub usage: Option<CheckedJson<'a>>,
    /// `output`, as sent.
    pub output: Option<CheckedJson<'a>>,
    /// `error` (of `response.failed`), as sent.
    error: Option<CheckedJson<'a>>,
}

impl<'a> ResponseView<'a> {
    /// Reads a Response object; every field is absent when it is not an object.
    pub fn parse(response: CheckedJson<'a>) -> Self {
        let names = ["status", "incomplete_details", "usage", "output", "error"];
        let Some([status, incomplete_details, usage, output, error]) = response.fields(&names)
        else {
            return ResponseView::default();
        };
        ResponseView {
            status: as_str(status),
            incomplete_details,
            usage,
            output,
            error,
        }
    }

    /// `incomplete_details.reason`, when it is a string.
    pub fn incomplete_reason(&self) -> Option<Cow<'a, str>> {
        member_str(self.incomplete_details, "reason")
    }

    /// `error.<key>`, when it is a string.
    pub fn error_field(&self, key: &str) -> Option<Cow<'a, str>> {
        member_str(self.error, key)
    }

    /// The elements of `output`, when it is an array.
    pub fn output_items(&self) -> Option<impl Iterator<Item = CheckedJson<'a>>> {
        self.output.and_then(CheckedJson::elements)
    }
}

/// An output item: a message, a reasoning item, a function call or another kind.
#[derive(Debug, Default)]
pub struct Item<'a> {
    /// `type`, when it is a string.
    pub kind: Option<Cow<'a, str>>,
    /// `id`, when it is a string.
    pub id: Option<Cow<'a, str>>,
    /// `call_id` (function calls), when it is a string.
    pub call_id: Option<Cow<'a, str>>,
    /// `name` (function calls), when it is a string.
    pub name: Option<Cow<'a, str>>,
    /// `arguments` (function calls), when it is a string.
    pub arguments: Option<Cow<'a, str>>,
    /// `content` (messages), as sent.
    content: Option<CheckedJson<'a>>,
    /// `summary` (reasoning items), as sent.
    summary: Option<CheckedJson<'a>>,
}

impl<'a> Item<'a> {
    /// Reads an item; every field is absent when it is not an object.
    pub fn parse(item: CheckedJson<'a>) -> Self {
        let names = [
            "type",
            "id",
            "call_id",
            "name",
            "arguments",
            "content",
            "summary",
        ];
        let Some([kind, id, call_id, name, arguments, content, summary]) = item.fields(&names)
        else {
            return Item::default();
        };
        Item {
            kind: as_str(kind),
            id: as_str(id),
            call_id: as_str(call_id),
            name: as_str(name),
            arguments: as_str(arguments),
            content,
            summary,
        }
    }

    /// Whether `type` is `kind`.
    pub fn is(&self, kind: &str) -> bool {
        self.kind.as_deref() == Some(kind)
    }

    /// The parts of `content` (a message's), in order; none when it is not an array.
    pub fn parts(&self) -> Vec<Part<'a>> {
        elements_in(self.content).map(Part::parse).collect()
    }

    /// The `text` of each `summary` part (a reasoning item's), in order, when it is a string.
    pub fn summary_texts(&self) -> Vec<Cow<'a, str>> {
        elements_in(self.summary)
            .filter_map(|part| member_str(Some(part), "text"))
            .collect()
    }
}

/// A part of a message's `content`.
#[derive(Debug, Default)]
pub struct Part<'a> {
    /// `type`, when it is a string.
    pub kind: Option<Cow<'a, str>>,
    /// `text` (`output_text`), when it is a string.
    pub text: Option<Cow<'a, str>>,
    /// `refusal` (`refusal`), when it is a string.
    pub refusal: Option<Cow<'a, str>>,
    /// `annotations` (`output_text`), as sent.
    annotations: Option<CheckedJson<'a>>,
}

impl<'a> Part<'a> {
    fn parse(part: CheckedJson<'a>) -> Self {
        let names = ["type", "text", "refusal", "annotations"];
        let Some([kind, text, refusal, annotations]) = part.fields(&names) else {
            return Part::default();
        };
        Part {
            kind: as_str(kind),
            text: as_str(text),
            refusal: as_str(refusal),
            annotations,
        }
    }

    /// Whether `type` is `kind`.
    pub fn is(&self, kind: &str) -> bool {
        self.kind.as_deref() == Some(kind)
    }

    /// The `annotations` of the part, in order; none when it is not an array.
    pub fn annotations(&self) -> Vec<Annotation<'a>> {
        elements_in(self.annotations)
            .map(Annotation::parse)
            .collect()
    }
}

/// An annotation of an `output_text` part.
#[derive(Debug, Default)]
pub struct Annotation<'a> {
    /// `type`, when it is a string.
    pub kind: Option<Cow<'a, str>>,
    /// `start_index`, when it is a number that fits `u64`.
    pub start_index: Option<u64>,
    /// `end_index`, likewise.
    pub end_index: Option<u64>,
    /// `url`, as sent (any JSON value).
    pub url: Option<CheckedJson<'a>>,
    /// `title`, as sent (any JSON value).
    pub title: Option<CheckedJson<'a>>,
}

impl<'a> Annotation<'a> {
    fn parse(annotation: CheckedJson<'a>) -> Self {
        let names = ["type", "start_index", "end_index", "url", "title"];
        let Some([kind, start_index, end_index, url, title]) = annotation.fields(&names) else {
            return Annotation::default();
        };
        Annotation {
            kind: as_str(kind),
            start_index: start_index.and_then(CheckedJson::as_u64),
            end_index: end_index.and_then(CheckedJson::as_u64),
            url,
            title,
        }
    }
}

/// `object.<key>`, as sent, when `object` is an object that has it.
pub fn member<'a>(object: Option<CheckedJson<'a>>, key: &str) -> Option<CheckedJson<'a>> {
    object?.member(key)
}

/// `object.<key>` when `object` is an object and the value a string.
fn member_str<'a>(object: Option<CheckedJson<'a>>, key: &str) -> Option<Cow<'a, str>> {
    as_str(member(object, key))
}

/// A value that is a string.
fn as_str(value: Option<CheckedJson<'_>>) -> Option<Cow<'_, str>> {
    value?.as_str()
}

/// The elements of an array, as sent (none when `value` is not an array).
fn elements_in(value: Option<CheckedJson<'_>>) -> impl Iterator<Item = CheckedJson<'_>> {
    value.and_then(CheckedJson::elements).into_iter().flatten()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn raw(value: &Value) -> String {
        value.to_string()
    }

    #[test]
    fn a_response_reads_as_a_value_reader_reads_it() {
        let text = r#"{"id":"r","status":"incomplete","status":"completed","instructions":"x",
            "incomplete_details":{"reason":"max_output_tokens"},"usage":{"input_tokens":3},
            "output":[{"type":"message"},7],"error":{"code":"c","message":"m"}}"#;
        let view = ResponseView::parse(CheckedJson::known(text));
        assert_eq!(
            view.status.as_deref(),
            Some("completed"),
            "the last key wins"
        );
        assert_eq!(
            view.incomplete_reason().as_deref(),
            Some("max_output_tokens")
        );
        assert_eq!(
            view.usage.map(CheckedJson::get),
            Some(r#"{"input_tokens":3}"#)
        );
        let items: Vec<CheckedJson<'_>> = view.output_items().expect("an array").collect();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].get(), "7");
        assert_eq!(view.error_field("code").as_deref(), Some("c"));
        assert_eq!(view.error_field("missing"), None);

        for odd in [r#"[1]"#, r#""text""#, "null", r#"{"status":7,"output":{}}"#] {
            let view = ResponseView::parse(CheckedJson::known(odd));
            assert_eq!(view.status, None, "{odd}");
            assert!(view.output_items().is_none(), "{odd}");
            assert_eq!(view.incomplete_reason(), None, "{odd}");
        }
        let view = ResponseView::parse(CheckedJson::known(
            r#"{"incomplete_details":"why","error":[1]}"#,
        ));
        assert_eq!(view.incomplete_reason(), None);
        assert_eq!(view.error_field("code"), None);
    }

    #[test]
    fn an_item_reads_its_fields_parts_and_annotations() {
        let item = json!({"type": "message", "id": "msg_1", "content": [
            {"type": "output_text", "text": "a \"quoted\" é", "annotations": [
                {"type": "url_citation", "url": "https://e.x", "title": null,
                 "start_index": 1, "end_index": 2.5},
                "not an object",
            ]},
            {"type": "refusal", "refusal": "no"},
            42,
        ]});
        let text = raw(&item);
        let item = Item::parse(CheckedJson::known(&text));
        assert!(item.is("message"));
        assert_eq!(item.id.as_deref(), Some("msg_1"));
        let parts = item.parts();
        assert_eq!(parts.len(), 3);
        assert!(parts[0].is("output_text"));
        assert_eq!(parts[0].text.as_deref(), Some("a \"quoted\" é"));
        assert!(parts[1].is("refusal"));
        assert_eq!(parts[1].refusal.as_deref(), Some("no"));
        assert!(
            parts[2].kind.is_none(),
            "a part that is not an object has no fields"
        );
        let annotations = parts[0].annotations();
        assert_eq!(annotations.len(), 2);
        let first = &annotations[0];
        assert_eq!(first.kind.as_deref(), Some("url_citation"));
        assert_eq!((first.start_index, first.end_index), (Some(1), None));
        assert_eq!(first.url.map(CheckedJson::get), Some("\"https://e.x\""));
        assert_eq!(first.title.map(CheckedJson::get), Some("null"));
        assert!(annotations[1].kind.is_none());
    }

    #[test]
    fn calls_and_reasoning_read_their_fields() {
        let call = raw(
            &json!({"type": "function_call", "call_id": "call_1", "name": "f",
                               "arguments": "{\"q\":1}", "id": 5}),
        );
        let call = Item::parse(CheckedJson::known(&call));
        assert!(call.is("function_call"));
        assert_eq!(call.call_id.as_deref(), Some("call_1"));
        assert_eq!(call.arguments.as_deref(), Some("{\"q\":1}"));
        assert_eq!(call.id, None, "a number is not an id");
        let reasoning = raw(&json!({"type": "reasoning", "summary": [
            {"text": "one"}, {"text": 2}, "three", {"text": ""}]}));
        let texts = Item::parse(CheckedJson::known(&reasoning)).summary_texts();
        assert_eq!(texts, ["one", ""]);
        for odd in ["[1]", "7", r#"{"content":{"type":"x"},"summary":"s"}"#] {
            let item = Item::parse(CheckedJson::known(odd));
            assert!(item.kind.is_none() && item.parts().is_empty(), "{odd}");
            assert!(item.summary_texts().is_empty(), "{odd}");
        }
    }
}
