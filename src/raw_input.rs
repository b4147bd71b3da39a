//! A `/v1/responses` body read in one pass, its `input` items, and its `tools` array, kept
//! as the text the caller sent. Pure.
//!
//! An agent's request is mostly its conversation: tool outputs, file contents, earlier
//! answers. Parsing all of it into a tree, writing it out again and dropping the tree was about
//! 70 % of the instructions of such a request (`-- callgrind`, `proxy-agent-aggregated`). Here
//! each input item is read once, its members kept as their text, and written back from them.
//! The proxy changes an item only when it is an `item_reference` (refused), has an `id`
//! (removed), has a `role` but no `type` (typed `message`), or is a `message` whose `content`
//! is a string (made one text part); such an item goes through the tree code as before
//! ([`crate::responses_request::normalise_item`]).
//!
//! The result must be what the tree path gives, so:
//! - when a key that decides (`type`, `id`, `role`, `content`) is given twice, the item takes
//!   the tree way, which keeps the last as a `Value` reader does (no reader upstream can take
//!   the other one); other repeated keys are written once, the last, as a tree writes them;
//! - keeping a value as text checks its grammar only, while a tree also refuses a lone
//!   surrogate in a `\u` escape: a body that may hold one ([`may_hold_a_lone_surrogate`], a
//!   cheap and cautious look) is read as a tree instead;
//! - a tree also refuses a number past `f64`'s range (`1e400`), which an item or `tools` keeps
//!   as sent: such a number inside an input item or a tool goes upstream as the caller wrote
//!   it, for the backend to judge, where the tree path answered 400. Finding one cheaply
//!   would need a walk through every byte, which cost more than the whole reading saves.
//!
//! `tools` is forwarded unchanged on `/v1/responses` (only its type is checked), so an array
//! is kept whole as its text, and anything else (`null`, a wrong type) is read as a tree, for
//! the same default or the same error as before. A key repeated inside a tool goes upstream
//! twice, as sent, where a tree wrote the last one only: most JSON readers (Python's, Go's,
//! serde_json's `Value`) take the last, so the backend reads the same tool; one that refuses
//! repeated keys would refuse the request, and the caller gets that 400.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::ProxyError;
use crate::response_text::{Key, as_str};
use crate::responses_request::normalise_item;

/// A body's members as trees, but `input`, and `tools` when it is an array.
#[derive(Debug)]
pub struct BodyRead<'a> {
    /// Every member but `input` (and `tools` when `tools` holds it).
    pub fields: Map<String, Value>,
    /// `input`, when the body has one.
    pub input: Option<InputRead<'a>>,
    /// `tools` as sent, when it is an array: the proxy forwards it unchanged, and an agent's
    /// tool definitions (JSON schemas of nested objects) were, read as a tree, most of what was
    /// left of reading its request once `input` was kept as text.
    pub tools: Option<&'a RawValue>,
}

/// A body's `input`.
#[derive(Debug)]
pub enum InputRead<'a> {
    /// An array of objects, each kept as its members' text.
    Items(Vec<ItemRead<'a>>),
    /// Anything else (a string, `null`, a wrong type), as a tree.
    Tree(Value),
}

/// An input item: its members in order, each value as sent. A key given twice keeps its last
/// value (in the place of its first).
#[derive(Debug)]
pub struct ItemRead<'a> {
    members: Vec<(Cow<'a, str>, &'a RawValue)>,
    /// A key that decides was given twice.
    repeated: bool,
}

/// The keys whose values decide whether an item is changed.
const DECIDING: [&str; 4] = ["type", "id", "role", "content"];

/// Members an item may have and still be read this way: finding a repeated key is a walk
/// through the members, so a hostile item of thousands of keys is left to the tree path.
const MAX_MEMBERS: usize = 64;

impl<'a> ItemRead<'a> {
    fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.members
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| *value)
    }

    /// Whether the item goes upstream unchanged (see the module notes).
    fn passes_as_sent(&self) -> bool {
        if self.repeated || self.get("id").is_some() {
            return false;
        }
        let Some(kind) = self.get("type") else {
            return self.get("role").is_none();
        };
        match as_str(Some(kind)).as_deref() {
            Some("item_reference") => false,
            Some("message") => !self
                .get("content")
                .is_some_and(|content| content.get().starts_with('"')),
            _ => true,
        }
    }

    /// The item as JSON text, appended to `out`.
    fn write(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (position, (key, value)) in self.members.iter().enumerate() {
            if position > 0 {
                out.push(b',');
            }
            // Writing a string into memory cannot fail.
            let _ = serde_json::to_writer(&mut *out, key.as_ref());
            out.push(b':');
            out.extend_from_slice(value.get().as_bytes());
        }
        out.push(b'}');
    }

    /// The item as a tree, for the tree code. A value was read as JSON already, and the body
    /// holds no lone surrogate, so only a number past `f64`'s range can fail here: that is
    /// refused as the tree path would refuse the body.
    fn tree(&self, index: usize) -> Result<Value, ProxyError> {
        let mut item = Map::new();
        for (key, value) in &self.members {
            let value = serde_json::from_str(value.get()).map_err(|_| {
                ProxyError::invalid_body(format!(
                    "The request body is not valid JSON: input[{index}] holds a number out of \
                     range."
                ))
            })?;
            item.insert(key.to_string(), value);
        }
        Ok(Value::Object(item))
    }
}

/// Reads `text` as a JSON object in one pass; `None` when it is not one (or an `input` item is
/// not an object): the caller then reads it as a tree, which says what is wrong. Nesting is
/// not bounded here: check it first (`within_depth`).
pub fn read_body(text: &str) -> Option<BodyRead<'_>> {
    let mut reader = serde_json::Deserializer::from_str(text);
    let read = reader.deserialize_map(BodyVisitor).ok()?;
    reader.end().ok()?;
    Some(read)
}

/// The normalised `input` array as JSON text, from its items.
pub fn normalise_items(items: &[ItemRead<'_>]) -> Result<String, ProxyError> {
    let size = items
        .iter()
        .flat_map(|item| &item.members)
        .map(|(key, value)| key.len() + value.get().len() + 4)
        .sum::<usize>();
    let mut out = Vec::with_capacity(size + 2 * items.len() + 2);
    out.push(b'[');
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        if item.passes_as_sent() {
            item.write(&mut out);
        } else {
            let _ = serde_json::to_writer(&mut out, &normalise_item(index, item.tree(index)?)?);
        }
    }
    out.push(b']');
    // Made of JSON texts and serde_json's output: UTF-8.
    String::from_utf8(out).map_err(|_| ProxyError::Internal)
}

/// Whether `text` may hold a `\u` escape of a surrogate that is not part of a pair, which
/// skipping a value as text accepts and a tree refuses. Cautious: a `\u` after an escaped
/// backslash counts too, and only costs the tree path.
pub fn may_hold_a_lone_surrogate(text: &str) -> bool {
    let bytes = text.as_bytes();
    let hex = |at: usize| {
        bytes
            .get(at..at + 4)
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u16::from_str_radix(digits, 16).ok())
    };
    let mut after_pair = 0;
    for at in memchr::memmem::find_iter(bytes, b"\\u") {
        if at < after_pair {
            continue;
        }
        match hex(at + 2) {
            Some(0xD800..=0xDBFF) => {
                let low = bytes.get(at + 6..at + 8) == Some(b"\\u".as_slice())
                    && matches!(hex(at + 8), Some(0xDC00..=0xDFFF));
                if !low {
                    return true;
                }
                after_pair = at + 12;
            }
            Some(0xDC00..=0xDFFF) | None => return true,
            Some(_) => {}
        }
    }
    false
}

struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = BodyRead<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BodyRead<'de>, A::Error> {
        let mut read = BodyRead {
            fields: Map::new(),
            input: None,
            tools: None,
        };
        while let Some(key) = map.next_key::<String>()? {
            if key == "input" {
                read.input = Some(map.next_value_seed(InputSeed)?);
            } else if key == "tools" {
                // A key given twice keeps its last value, as in a tree.
                let tools: &'de RawValue = map.next_value()?;
                if tools.get().starts_with('[') {
                    read.fields.remove("tools");
                    read.tools = Some(tools);
                } else {
                    read.tools = None;
                    let tree = serde_json::from_str(tools.get()).map_err(A::Error::custom)?;
                    read.fields.insert(key, tree);
                }
            } else {
                read.fields.insert(key, map.next_value()?);
            }
        }
        Ok(read)
    }
}

struct InputSeed;

impl<'de> DeserializeSeed<'de> for InputSeed {
    type Value = InputRead<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(InputVisitor)
    }
}

struct InputVisitor;

impl<'de> Visitor<'de> for InputVisitor {
    type Value = InputRead<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<InputRead<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(ItemSeed)? {
            items.push(item);
        }
        Ok(InputRead::Items(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<InputRead<'de>, A::Error> {
        Value::deserialize(MapAccessDeserializer::new(map)).map(InputRead::Tree)
    }
    fn visit_str<E>(self, text: &str) -> Result<InputRead<'de>, E> {
        Ok(InputRead::Tree(Value::String(text.to_string())))
    }
    fn visit_bool<E>(self, value: bool) -> Result<InputRead<'de>, E> {
        Ok(InputRead::Tree(Value::Bool(value)))
    }
    fn visit_i64<E>(self, value: i64) -> Result<InputRead<'de>, E> {
        Ok(InputRead::Tree(Value::from(value)))
    }
    fn visit_u64<E>(self, value: u64) -> Result<InputRead<'de>, E> {
        Ok(InputRead::Tree(Value::from(value)))
    }
    fn visit_f64<E>(self, value: f64) -> Result<InputRead<'de>, E> {
        Ok(InputRead::Tree(Value::from(value)))
    }
    fn visit_unit<E>(self) -> Result<InputRead<'de>, E> {
        Ok(InputRead::Tree(Value::Null))
    }
}

struct ItemSeed;

impl<'de> DeserializeSeed<'de> for ItemSeed {
    type Value = ItemRead<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(ItemVisitor)
    }
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = ItemRead<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ItemRead<'de>, A::Error> {
        let mut item = ItemRead {
            members: Vec::new(),
            repeated: false,
        };
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let value: &'de RawValue = map.next_value()?;
            match item.members.iter().position(|(name, _)| *name == key) {
                Some(position) => {
                    item.repeated |= DECIDING.contains(&key.as_ref());
                    if let Some(member) = item.members.get_mut(position) {
                        member.1 = value;
                    }
                }
                None if item.members.len() < MAX_MEMBERS => item.members.push((key, value)),
                None => return Err(A::Error::custom("too many members to read as text")),
            }
        }
        Ok(item)
    }
}
