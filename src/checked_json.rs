//! Reading JSON text that serde_json has already checked, without checking it again. Pure.
//!
//! The Response object of a non-streaming answer and its output items are checked once, as
//! `RawValue`s, when the event that carries them is read. The chat translator then reads a few
//! fields of the Response object, of each item, of each part and of each annotation, and the
//! `/v1/responses` relay looks for the Response object's `output`. Reading those with serde
//! again checked every byte of every skipped value once more: reading them here instead took
//! a non-streaming chat request from 247,567 to 235,151 instructions.
//!
//! A [`CheckedJson`] is the text of one JSON value that was checked on the way in. Its readers
//! only find where values start and end: strings are jumped eight bytes at a time (long ones
//! with `memchr`), nesting is counted, nothing is built. They see what a `serde_json::Value` reader of the same text sees (a key
//! given twice keeps its last value; a field of the wrong type counts as absent), which a test
//! and the fuzz harness compare. On text that is not one JSON value they still return, without
//! panicking or looping, but what they return then means nothing: the only constructors take a
//! `RawValue`, or text that the caller knows was spliced from `RawValue`s.

use std::borrow::Cow;
use std::ops::Range;

use serde_json::value::RawValue;

/// JSON's four whitespace characters.
const JSON_WHITESPACE: [char; 4] = [' ', '\t', '\n', '\r'];

/// The text of one JSON value that serde_json has checked (grammar and depth), without the
/// whitespace around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckedJson<'a>(&'a str);

impl<'a> CheckedJson<'a> {
    /// `null`.
    pub const NULL: CheckedJson<'static> = CheckedJson("null");

    /// A value serde_json has checked.
    pub fn of(raw: &'a RawValue) -> Self {
        CheckedJson(raw.get().trim_matches(JSON_WHITESPACE))
    }

    /// Text the caller knows is one checked JSON value: a `RawValue`'s, or one spliced from
    /// `RawValue`s' texts (see `response_text::with_output`).
    pub fn known(text: &'a str) -> Self {
        CheckedJson(text.trim_matches(JSON_WHITESPACE))
    }

    /// The value's text.
    pub fn get(self) -> &'a str {
        self.0
    }

    /// The value as a `RawValue`, to be written out as sent. This checks the value's text
    /// again, so it is kept for small values; `None` only if the text was not checked JSON.
    pub fn to_raw(self) -> Option<&'a RawValue> {
        serde_json::from_str(self.0).ok()
    }

    /// Whether the value is `null`.
    pub fn is_null(self) -> bool {
        self.0 == "null"
    }

    /// The values of the object's keys that `names` lists, in that order; the other values
    /// are skipped. A key given twice keeps its last value. `None` when the value is not an
    /// object.
    pub fn fields<const N: usize>(self, names: &[&str; N]) -> Option<[Option<Self>; N]> {
        let mut walk = Walk::open(self.0, b'{')?;
        let mut found = [None; N];
        loop {
            let member = match walk.member() {
                Step::Entry(member) => member,
                Step::End => return Some(found),
                Step::Broken => return None,
            };
            let slot = if member.escaped {
                let name = self.key(&member)?;
                names.iter().position(|wanted| *wanted == name)
            } else {
                let key = self
                    .0
                    .as_bytes()
                    .get(member.key.start + 1..member.key.end - 1)?;
                names.iter().position(|wanted| wanted.as_bytes() == key)
            };
            if let Some(slot) = slot {
                found[slot] = Some(CheckedJson(self.0.get(member.value)?));
            }
        }
    }

    /// `self.<key>`, when the value is an object that has it.
    pub fn member(self, key: &str) -> Option<Self> {
        let [value] = self.fields(&[key])?;
        value
    }

    /// The object's keys (unescaped) and values, in order; `None` when the value is not an
    /// object. An item is `None` where the text is not what it should be (or a key holds a
    /// lone surrogate, which a `Value` reader refuses as well).
    pub fn members(self) -> Option<Members<'a>> {
        Some(Members {
            object: self,
            walk: Walk::open(self.0, b'{')?,
        })
    }

    /// The array's elements, in order; `None` when the value is not an array.
    pub fn elements(self) -> Option<Elements<'a>> {
        Some(Elements {
            array: self,
            walk: Walk::open(self.0, b'[')?,
        })
    }

    /// A member's key, unescaped; `None` for a lone surrogate, which serde refuses too.
    fn key(self, member: &RawMember) -> Option<Cow<'a, str>> {
        let quoted = self.0.get(member.key.clone())?;
        if member.escaped {
            serde_json::from_str::<String>(quoted).ok().map(Cow::Owned)
        } else {
            quoted.get(1..quoted.len() - 1).map(Cow::Borrowed)
        }
    }

    /// The string, when the value is one: borrowed when it holds no escape.
    pub fn as_str(self) -> Option<Cow<'a, str>> {
        let inner = self.0.strip_prefix('"')?.strip_suffix('"')?;
        if memchr::memchr(b'\\', inner.as_bytes()).is_none() {
            return Some(Cow::Borrowed(inner));
        }
        serde_json::from_str::<String>(self.0).ok().map(Cow::Owned)
    }

    /// The number, when it is one that fits `u64` (as `Value::as_u64` reads it).
    pub fn as_u64(self) -> Option<u64> {
        if !self.0.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        serde_json::from_str(self.0).ok()
    }
}

/// The members of an object: see [`CheckedJson::members`].
#[derive(Debug)]
pub struct Members<'a> {
    object: CheckedJson<'a>,
    walk: Walk<'a>,
}

impl<'a> Iterator for Members<'a> {
    type Item = Option<(Cow<'a, str>, CheckedJson<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.walk.member() {
            Step::Entry(member) => Some(self.object.key(&member).and_then(|key| {
                let value = self.object.0.get(member.value)?;
                Some((key, CheckedJson(value)))
            })),
            Step::End => None,
            Step::Broken => Some(None),
        }
    }
}

/// The elements of an array: see [`CheckedJson::elements`]. Ends early where the text is not
/// what it should be.
#[derive(Debug)]
pub struct Elements<'a> {
    array: CheckedJson<'a>,
    walk: Walk<'a>,
}

impl<'a> Iterator for Elements<'a> {
    type Item = CheckedJson<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.walk.element() {
            Step::Entry(value) => self.array.0.get(value).map(CheckedJson),
            Step::End | Step::Broken => None,
        }
    }
}

/// A member of an object, as byte ranges of its text.
#[derive(Debug)]
struct RawMember {
    /// The key, quotes included.
    key: Range<usize>,
    /// Whether the key holds an escape.
    escaped: bool,
    /// The value.
    value: Range<usize>,
}

/// What a step through an object or an array found.
enum Step<T> {
    /// The next entry.
    Entry(T),
    /// The closing byte; every later step finds it too.
    End,
    /// Text that is not what it should be; every later step finds the end.
    Broken,
}

/// Where a walk through an object or an array is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Just after the opening byte.
    First,
    /// After an entry: a comma or the closing byte follows.
    Rest,
    /// The end or a break was found.
    Done,
}

/// A walk through the entries of an object's or an array's text.
#[derive(Debug)]
struct Walk<'a> {
    bytes: &'a [u8],
    at: usize,
    /// The closing byte: `}` or `]`.
    close: u8,
    place: Place,
}

impl<'a> Walk<'a> {
    /// A walk after `open` (`{` or `[`), when `text` starts with it.
    fn open(text: &'a str, open: u8) -> Option<Self> {
        (text.as_bytes().first() == Some(&open)).then_some(Walk {
            bytes: text.as_bytes(),
            at: 1,
            close: if open == b'{' { b'}' } else { b']' },
            place: Place::First,
        })
    }

    /// The next member of an object.
    fn member(&mut self) -> Step<RawMember> {
        self.step(Self::read_member)
    }

    /// The next element of an array.
    fn element(&mut self) -> Step<Range<usize>> {
        self.step(Self::read_value)
    }

    /// Steps over the comma before the next entry and reads it with `read`.
    fn step<T>(&mut self, read: fn(&mut Self) -> Option<T>) -> Step<T> {
        if self.place == Place::Done {
            return Step::End;
        }
        self.at = skip_whitespace(self.bytes, self.at);
        match (self.bytes.get(self.at), self.place) {
            (Some(&byte), _) if byte == self.close => {
                self.place = Place::Done;
                return Step::End;
            }
            (Some(b','), Place::Rest) => self.at = skip_whitespace(self.bytes, self.at + 1),
            (Some(_), Place::First) => {}
            _ => {
                self.place = Place::Done;
                return Step::Broken;
            }
        }
        self.place = Place::Rest;
        match read(self) {
            Some(entry) => Step::Entry(entry),
            None => {
                self.place = Place::Done;
                Step::Broken
            }
        }
    }

    /// The member at the cursor: a key, a colon, a value.
    fn read_member(&mut self) -> Option<RawMember> {
        let start = self.at;
        if self.bytes.get(start) != Some(&b'"') {
            return None;
        }
        let (key_end, escaped) = string_end(self.bytes, start)?;
        self.at = skip_whitespace(self.bytes, key_end);
        if self.bytes.get(self.at) != Some(&b':') {
            return None;
        }
        self.at = skip_whitespace(self.bytes, self.at + 1);
        let value = self.read_value()?;
        Some(RawMember {
            key: start..key_end,
            escaped,
            value,
        })
    }

    /// The value at the cursor.
    fn read_value(&mut self) -> Option<Range<usize>> {
        let start = self.at;
        self.at = value_end(self.bytes, start)?;
        Some(start..self.at)
    }
}

/// The first byte at or after `at` that is not whitespace.
fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while bytes
        .get(at)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        at += 1;
    }
    at
}

/// Where the value starting at `start` ends (exclusive).
fn value_end(bytes: &[u8], start: usize) -> Option<usize> {
    match *bytes.get(start)? {
        b'"' => string_end(bytes, start).map(|(end, _)| end),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut at = start;
            loop {
                match *bytes.get(at)? {
                    b'"' => {
                        (at, _) = string_end(bytes, at)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(at + 1);
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
        }
        _ => {
            // A number, `true`, `false` or `null`: letters, digits, `.`, `+` and `-`.
            let length = bytes
                .get(start..)?
                .iter()
                .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-')))
                .unwrap_or(bytes.len() - start);
            (length > 0).then_some(start + length)
        }
    }
}

/// Where the string whose opening quote is at `start` ends (after its closing quote), and
/// whether it holds an escape.
fn string_end(bytes: &[u8], start: usize) -> Option<(usize, bool)> {
    let mut at = start.checked_add(1)?;
    let mut escaped = false;
    loop {
        let found = quote_or_backslash(bytes, at)?;
        if bytes[found] == b'"' {
            return Some((found + 1, escaped));
        }
        escaped = true;
        at = found + 2;
    }
}

/// The first `"` or `\\` at or after `from`. Eight bytes are looked at a time: keys and most
/// values are short, and setting `memchr` up costs more than they do. Long texts are jumped
/// with `memchr`.
fn quote_or_backslash(bytes: &[u8], from: usize) -> Option<usize> {
    const WORDS: usize = 4;
    let rest = bytes.get(from..)?;
    let mut words = rest.chunks_exact(8);
    for (index, word) in words.by_ref().take(WORDS).enumerate() {
        let word = u64::from_le_bytes(word.try_into().ok()?);
        let found = has_byte(word, b'"') | has_byte(word, b'\\');
        if found != 0 {
            return Some(from + index * 8 + found.trailing_zeros() as usize / 8);
        }
    }
    let stepped = (rest.len() / 8).min(WORDS) * 8;
    let tail = &rest[stepped..];
    if stepped < WORDS * 8 {
        // Fewer than eight bytes were left after the words.
        let at = tail.iter().position(|&b| b == b'"' || b == b'\\')?;
        return Some(from + stepped + at);
    }
    memchr::memchr2(b'"', b'\\', tail).map(|at| from + stepped + at)
}

/// The high bit of each byte of `word` that equals `byte`, and possibly of bytes above the
/// first such byte (a borrow can run on), never below it: the lowest bit set is exact.
fn has_byte(word: u64, byte: u8) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let diff = word ^ (ONES * u64::from(byte));
    diff.wrapping_sub(ONES) & !diff & HIGHS
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// What a `Value` reader sees of `text`'s members, for comparison.
    fn value_members(text: &str) -> Option<Vec<(String, Value)>> {
        let value: Value = serde_json::from_str(text).ok()?;
        Some(
            value
                .as_object()?
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }

    fn checked(text: &str) -> CheckedJson<'_> {
        let raw: &RawValue = serde_json::from_str(text).expect("JSON");
        CheckedJson::of(raw)
    }

    #[test]
    fn members_are_what_a_value_reader_sees() {
        let texts = [
            r#"{}"#,
            r#" { "a" : 1 , "b":[1,{"c":"}"}],"d":"x\"]}","e":null,"f":true,"g":-1.5e3 } "#,
            r#"{"k\"ey":{"nested":[[[]]],"s":"\\"},"\u0041":"é\u00e9","a":1,"a":2}"#,
            r#"{"x":"\\\\\"","y":{}}"#,
            r#"{"a key longer than sixteen bytes\"q":"a value with \"quotes\" past byte 16 \\","b":1}"#,
        ];
        for text in texts {
            let mut seen: Vec<(String, Value)> = Vec::new();
            for member in checked(text).members().expect("an object") {
                let (name, value) = member.expect("well formed");
                let value: Value = serde_json::from_str(value.get()).expect("a value");
                seen.retain(|(k, _)| *k != name);
                seen.push((name.into_owned(), value));
            }
            let mut expected = value_members(text).expect("an object");
            seen.sort_by(|a, b| a.0.cmp(&b.0));
            expected.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(seen, expected, "{text}");
        }
    }

    #[test]
    fn fields_keep_the_last_of_a_repeated_key_and_skip_the_rest() {
        let text = r#"{"status":"a","usage":{"n":[1,2]},"status":"b","output":[]}"#;
        let [status, usage, missing] = checked(text)
            .fields(&["status", "usage", "missing"])
            .expect("an object");
        assert_eq!(status.and_then(CheckedJson::as_str).as_deref(), Some("b"));
        assert_eq!(usage.map(CheckedJson::get), Some(r#"{"n":[1,2]}"#));
        assert_eq!(missing, None);
        for other in ["[1]", "\"s\"", "null", "7"] {
            assert!(checked(other).fields(&["a"]).is_none(), "{other}");
        }
    }

    #[test]
    fn elements_are_the_array_s_values() {
        let items: Vec<&str> = checked(r#"[ 1 , "a,]" , {"b":[2]} ,[], null ]"#)
            .elements()
            .expect("an array")
            .map(CheckedJson::get)
            .collect();
        assert_eq!(items, ["1", r#""a,]""#, r#"{"b":[2]}"#, "[]", "null"]);
        assert_eq!(checked("[ ]").elements().expect("an array").count(), 0);
        assert!(checked("{}").elements().is_none());
    }

    #[test]
    fn scalars_read_as_a_value_reader_reads_them() {
        assert_eq!(checked(r#""plain""#).as_str(), Some(Cow::Borrowed("plain")));
        assert_eq!(checked(r#""a\nb""#).as_str().as_deref(), Some("a\nb"));
        assert_eq!(checked(r#""\ud800""#).as_str(), None, "a lone surrogate");
        assert_eq!(checked("7").as_str(), None);
        assert_eq!(checked("42").as_u64(), Some(42));
        for odd in ["-1", "2.5", "\"3\"", "1e2", "18446744073709551616"] {
            assert_eq!(checked(odd).as_u64(), None, "{odd}");
        }
        assert!(checked(" null ").is_null());
    }

    #[test]
    fn the_first_quote_or_backslash_is_found_at_every_offset_and_length() {
        for length in 0..80 {
            for at in 0..=length {
                for (stop, filler) in [(b'"', b'a'), (b'\\', b'"' + 1), (b'"', 0x80), (b'\\', 0xff)]
                {
                    let mut bytes = vec![filler; length];
                    if at < length {
                        bytes[at] = stop;
                        // A later match must not hide the first one.
                        if at + 1 < length {
                            bytes[at + 1] = b'"';
                        }
                    }
                    for from in [0, at.min(3)] {
                        let expected = bytes[from..]
                            .iter()
                            .position(|&b| b == b'"' || b == b'\\')
                            .map(|i| from + i);
                        assert_eq!(quote_or_backslash(&bytes, from), expected, "{length} {at}");
                    }
                }
            }
        }
        assert_eq!(quote_or_backslash(b"ab", 3), None);
    }

    #[test]
    fn a_key_with_a_lone_surrogate_breaks_the_object_as_it_does_for_serde() {
        let text = r#"{"\ud800":1}"#;
        assert!(serde_json::from_str::<Value>(text).is_err());
        assert_eq!(checked(text).fields(&["a"]), None);
    }

    #[test]
    fn text_that_is_not_json_ends_the_reading_without_panicking() {
        let odd = [
            "{",
            "{\"a",
            "{\"a\"",
            "{\"a\":",
            "{\"a\":1",
            "{\"a\":1,",
            "{\"a\":\"\\",
            "[1,",
            "[\"",
            "[{]",
            "{]",
            "{\"a\":]}",
            "[1 2]",
            "{\"a\" 1}",
            "{1:2}",
            "[,]",
            "[é]",
            "{\"é\":\"\\é\"}",
        ];
        for text in odd {
            let json = CheckedJson::known(text);
            let _ = json.fields(&["a", "b"]);
            let _ = json.elements().map(Iterator::count);
            let _ = json.members().map(Iterator::count);
            let _ = (json.as_str(), json.as_u64());
        }
    }
}
