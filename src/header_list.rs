//! Headers an answer passes on (the backend's `x-codex-*`, `Retry-After`, ...), kept as one
//! text with the boundaries of each name and value.
//!
//! A list of `(String, String)` pairs cost two allocations per header: 28 for the 14 `x-codex-*`
//! headers of every proxied answer, made by the worker and freed once the answer was written.
//! Here a whole list is two allocations, however many headers it holds.

use std::ops::Range;

/// Header names and values in the order they were pushed; a name may repeat.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HeaderList {
    /// Every name and value, back to back.
    text: String,
    /// Where each header's name ends and its value ends in `text`; its name starts where the
    /// previous value ended.
    ends: Vec<(usize, usize)>,
}

impl HeaderList {
    /// No headers (allocates nothing).
    pub const EMPTY: HeaderList = HeaderList::new();

    /// An empty list.
    pub const fn new() -> Self {
        HeaderList {
            text: String::new(),
            ends: Vec::new(),
        }
    }

    /// An empty list with room for `headers` headers of `bytes` bytes in all (names and values)
    /// before it grows.
    pub fn with_capacity(headers: usize, bytes: usize) -> Self {
        HeaderList {
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(headers),
        }
    }

    /// A list of `pairs`, in their order.
    pub fn of<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut list = HeaderList::new();
        list.extend_from(pairs);
        list
    }

    /// Adds `pairs` at the end, in their order.
    pub fn extend_from<'a>(&mut self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) {
        for (name, value) in pairs {
            self.push(name, value);
        }
    }

    /// Adds a header at the end.
    pub fn push(&mut self, name: &str, value: &str) {
        self.text.push_str(name);
        let name_end = self.text.len();
        self.text.push_str(value);
        self.ends.push((name_end, self.text.len()));
    }

    /// Adds every header of `other` at the end.
    pub fn extend(&mut self, other: &HeaderList) {
        self.extend_from(other.iter());
    }

    /// The headers, as `(name, value)` in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let starts = std::iter::once(0).chain(self.ends.iter().map(|&(_, value_end)| value_end));
        starts
            .zip(&self.ends)
            .map(|(start, &(name_end, value_end))| {
                (self.slice(start..name_end), self.slice(name_end..value_end))
            })
    }

    /// How many headers the list holds.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the list holds no header.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn slice(&self, range: Range<usize>) -> &str {
        // The boundaries are ends of pushed `&str`s, so always in range and on char boundaries.
        self.text.get(range).unwrap_or_default()
    }
}

impl std::fmt::Debug for HeaderList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_come_back_in_order_with_repeats_and_empty_values() {
        let mut list = HeaderList::of([("x-codex-plan-type", "pro"), ("Retry-After", "1")]);
        list.push("x-empty", "");
        list.push("Retry-After", "2");
        list.push("x-é", "ü ✓");
        let pairs: Vec<(&str, &str)> = list.iter().collect();
        assert_eq!(
            pairs,
            [
                ("x-codex-plan-type", "pro"),
                ("Retry-After", "1"),
                ("x-empty", ""),
                ("Retry-After", "2"),
                ("x-é", "ü ✓"),
            ]
        );
        assert_eq!(list.len(), 5);
        assert!(!list.is_empty());
    }

    #[test]
    fn extend_appends_and_empty_lists_have_no_headers() {
        assert!(HeaderList::EMPTY.is_empty());
        assert_eq!(HeaderList::EMPTY.iter().count(), 0);
        let mut first = HeaderList::of([("a", "1")]);
        first.extend(&HeaderList::of([("b", "2"), ("c", "3")]));
        first.extend(&HeaderList::EMPTY);
        assert_eq!(first, HeaderList::of([("a", "1"), ("b", "2"), ("c", "3")]));
        assert_eq!(
            format!("{first:?}"),
            r#"[("a", "1"), ("b", "2"), ("c", "3")]"#
        );
    }
}
