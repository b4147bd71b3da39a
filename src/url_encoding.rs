//! Percent-encoding for OAuth: query strings and `application/x-www-form-urlencoded` bodies.

/// Encodes everything but the RFC 3986 unreserved characters.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `key=value&…` with both sides encoded.
pub fn encode_pairs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{}={}", encode(key), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes `%XX` and `+` (as a space); invalid escapes are kept as they are.
pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(value) => {
                        out.push(value);
                        index += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `a=1&b=2` into decoded pairs.
pub fn parse_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('=') {
            Some((key, value)) => (decode(key), decode(value)),
            None => (decode(part), String::new()),
        })
        .collect()
}

/// The first value of `key` in `pairs`.
pub fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let original =
            "openid profile email offline_access http://localhost:1455/auth/callback?x=1&y=ü";
        assert_eq!(decode(&encode(original)), original);
        assert_eq!(encode("a b&c"), "a%20b%26c");
        assert_eq!(decode("a+b%2"), "a b%2");
        let pairs = parse_pairs("code=abc%2F1&state=s%3D&empty");
        assert_eq!(get(&pairs, "code"), Some("abc/1"));
        assert_eq!(get(&pairs, "state"), Some("s="));
        assert_eq!(get(&pairs, "empty"), Some(""));
        assert_eq!(encode_pairs(&[("k", "v w")]), "k=v%20w");
    }
}
