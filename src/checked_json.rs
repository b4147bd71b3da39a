//! Reading JSON text that serde_json has already checked, without checking it again. Pure.
//!
//! The Response object of a non-streaming answer and its output items are checked once, as
//! `RawValue`s, when the event that carries them is read. The chat translator then reads a few
//! fields of the Response object, of each item, of each part and of each annotation, and the
//! `/v1/responses` relay looks for the Response object's `output`. Reading those with serde
//! again checked every byte of every skipped value once more: about 30,000 instructions of a
//! 250,000-instruction chat request went to checking text that was already known to be good.
//!
//! A [`CheckedJson`] is the text of one JSON value that was checked on the way in. Its readers
//! only find where values start and end: strings are jumped with `memchr`, nesting is counted,
//! nothing is built. They see what a `serde_json::Value` reader of the same text sees (a key
//! given twice keeps its last value; a field of the wrong type counts as absent), which a test
//! and the fuzz harness compare. On text that is not one JSON value they still return, without
//! panicking or looping, but what they return then means nothing: the only constructors take a
//! `RawValue`, or text that the caller knows was spliced from `RawValue`s.

use std::borrow::Cow;

use serde_json::value::RawValue;

/// The text of one JSON value that serde_json has checked (grammar and depth), without the
/// whitespace around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckedJson<'a>(&'a str);

impl<'a> CheckedJson<'a> {
    /// `null`.
    pub const NULL: CheckedJson<'static> = CheckedJson("null");

    /// A value serde_json has checked.
    pub fn of(raw: &'a RawValue) -> Self {
        CheckedJson(raw.get().trim_matches(is_whitespace))
    }

    /// Text the caller knows is one checked JSON value: a `RawValue`'s, or one spliced from
    /// `RawValue`s' texts (see `response_text::with_output`).
    pub fn known(text: &'a str) -> Self {
        CheckedJson(text.trim_matches(is_whitespace))
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
        let mut found = [None; N];
        for member in self.members()? {
            let (name, value) = member?;
            if let Some(slot) = names.iter().position(|wanted| *wanted == name) {
                found[slot] = Some(value);
            }
        }
        Some(found)
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
        Some(Members(Cursor::open(self.0, b'{')?))
    }

    /// The array's elements, in order; `None` when the value is not an array.
    pub fn elements(self) -> Option<Elements<'a>> {
        Some(Elements(Cursor::open(self.0, b'[')?))
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
pub struct Members<'a>(Cursor<'a>);

impl<'a> Iterator for Members<'a> {
    type Item = Option<(Cow<'a, str>, CheckedJson<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        let cursor = &mut self.0;
        match cursor.next_entry()? {
            Entry::End => return None,
            Entry::Broken => return Some(None),
            Entry::Next => {}
        }
        let member = cursor.key().and_then(|key| {
            cursor.expect(b':')?;
            Some((key, cursor.value()?))
        });
        Some(member.or_else(|| cursor.broken()))
    }
}

/// The elements of an array: see [`CheckedJson::elements`]. Ends early where the text is not
/// what it should be.
#[derive(Debug)]
pub struct Elements<'a>(Cursor<'a>);

impl<'a> Iterator for Elements<'a> {
    type Item = CheckedJson<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let cursor = &mut self.0;
        match cursor.next_entry()? {
            Entry::Next => cursor.value().or_else(|| cursor.broken()),
            Entry::End | Entry::Broken => None,
        }
    }
}

/// A position in an object's or an array's text.
#[derive(Debug)]
struct Cursor<'a> {
    text: &'a str,
    at: usize,
    /// The closing byte: `}` or `]`.
    close: u8,
    /// Whether an entry has been read, so the next one follows a comma.
    started: bool,
    /// Whether the closing byte was reached or the text found broken.
    done: bool,
}

/// What follows in an object or an array.
enum Entry {
    /// Another entry, at the cursor.
    Next,
    /// The closing byte.
    End,
    /// Text that is not what it should be.
    Broken,
}

impl<'a> Cursor<'a> {
    /// A cursor after `open` (`{` or `[`), when `text` starts with it.
    fn open(text: &'a str, open: u8) -> Option<Self> {
        (text.as_bytes().first() == Some(&open)).then_some(Cursor {
            text,
            at: 1,
            close: if open == b'{' { b'}' } else { b']' },
            started: false,
            done: false,
        })
    }

    /// Moves to the next entry; `None` once the end or a break has been reported.
    fn next_entry(&mut self) -> Option<Entry> {
        if self.done {
            return None;
        }
        self.skip_whitespace();
        let Some(&byte) = self.text.as_bytes().get(self.at) else {
            self.done = true;
            return Some(Entry::Broken);
        };
        if byte == self.close {
            self.done = true;
            return Some(Entry::End);
        }
        if self.started {
            if byte != b',' {
                self.done = true;
                return Some(Entry::Broken);
            }
            self.at += 1;
            self.skip_whitespace();
        }
        self.started = true;
        Some(Entry::Next)
    }

    /// The key at the cursor, unescaped.
    fn key(&mut self) -> Option<Cow<'a, str>> {
        let bytes = self.text.as_bytes();
        if bytes.get(self.at) != Some(&b'"') {
            return None;
        }
        let (end, escaped) = string_end(bytes, self.at)?;
        let quoted = self.text.get(self.at..end)?;
        self.at = end;
        if escaped {
            serde_json::from_str::<String>(quoted).ok().map(Cow::Owned)
        } else {
            quoted.get(1..quoted.len() - 1).map(Cow::Borrowed)
        }
    }

    /// Steps over `byte` and the whitespace around it.
    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_whitespace();
        if self.text.as_bytes().get(self.at) != Some(&byte) {
            return None;
        }
        self.at += 1;
        self.skip_whitespace();
        Some(())
    }

    /// The value at the cursor.
    fn value(&mut self) -> Option<CheckedJson<'a>> {
        let end = value_end(self.text.as_bytes(), self.at)?;
        let value = self.text.get(self.at..end)?;
        self.at = end;
        Some(CheckedJson(value))
    }

    /// Stops the iteration for good.
    fn broken<T>(&mut self) -> Option<T> {
        self.done = true;
        None
    }

    fn skip_whitespace(&mut self) {
        let bytes = self.text.as_bytes();
        while bytes
            .get(self.at)
            .is_some_and(|b| is_whitespace(char::from(*b)))
        {
            self.at += 1;
        }
    }
}

/// JSON's four whitespace characters.
fn is_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
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
