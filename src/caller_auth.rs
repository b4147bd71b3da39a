//! Caller authentication: fails closed, compares keys in constant time.
//!
//! Every route needs a key except the short allowlist in [`is_public_path`].

/// Paths that answer without a key.
pub fn is_public_path(path: &str) -> bool {
    path == "/healthz"
}

/// Checks an `Authorization` header value against the configured keys.
///
/// With no keys configured every caller is accepted (the start-up check refuses that on a
/// public bind unless the user opted out). Each configured key is compared in full, so the
/// time taken does not reveal which key, or how much of one, matched.
pub fn is_authorized(keys: &[String], authorization: Option<&str>) -> bool {
    if keys.is_empty() {
        return true;
    }
    let Some(presented) = authorization.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    let presented = presented.trim().as_bytes();
    let mut matched = false;
    for key in keys {
        matched |= constant_time_eq(key.as_bytes(), presented);
    }
    matched
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(expected: &[u8], presented: &[u8]) -> bool {
    let mut difference = expected.len() ^ presented.len();
    for (index, byte) in expected.iter().enumerate() {
        let other = presented.get(index).copied().unwrap_or(0);
        difference |= usize::from(byte ^ other);
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn accepts_any_configured_key_and_nothing_else() {
        let keys = keys(&["old-key", "new-key"]);
        assert!(is_authorized(&keys, Some("Bearer old-key")));
        assert!(is_authorized(&keys, Some("Bearer new-key")));
        assert!(!is_authorized(&keys, Some("Bearer new-ke")));
        assert!(!is_authorized(&keys, Some("Bearer new-keyy")));
        assert!(!is_authorized(&keys, Some("Bearer ")));
        assert!(!is_authorized(&keys, Some("Basic new-key")));
        assert!(!is_authorized(&keys, Some("new-key")));
        assert!(!is_authorized(&keys, None));
    }

    #[test]
    fn no_keys_means_open() {
        assert!(is_authorized(&[], None));
    }

    #[test]
    fn only_healthz_is_public() {
        assert!(is_public_path("/healthz"));
        assert!(!is_public_path("/v1/models"));
        assert!(!is_public_path("/healthz/"));
    }
}
