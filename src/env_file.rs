//! A minimal `.env` reader: `KEY=value` lines, `#` comments, optional `export `, quotes.
//!
//! The real environment always wins over the file; this module only parses.

use std::collections::HashMap;

/// Parses the text of a `.env` file into a map. Malformed lines are skipped; the
/// returned list names their line numbers so the caller can warn without echoing values.
pub fn parse(text: &str) -> (HashMap<String, String>, Vec<usize>) {
    let mut values = HashMap::new();
    let mut skipped = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            skipped.push(index + 1);
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            skipped.push(index + 1);
            continue;
        }
        values.insert(key.to_string(), unquote(value.trim()));
    }
    (values, skipped)
}

/// Removes one pair of matching quotes; an unquoted value loses a trailing ` # comment`.
fn unquote(value: &str) -> String {
    for quote in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return value[1..value.len() - 1].to_string();
        }
    }
    match value.find(" #") {
        Some(at) => value[..at].trim_end().to_string(),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comments_quotes_and_export() {
        let (values, skipped) = parse(
            "# comment\nPORT=8080\nexport HOST=127.0.0.1\nKEY=\"a b\"\nX='y=z'\nY=v # note\nnonsense\n",
        );
        assert_eq!(values["PORT"], "8080");
        assert_eq!(values["HOST"], "127.0.0.1");
        assert_eq!(values["KEY"], "a b");
        assert_eq!(values["X"], "y=z");
        assert_eq!(values["Y"], "v");
        assert_eq!(skipped, vec![7]);
    }
}
