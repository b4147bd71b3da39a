//! Quota visibility: the latest `x-codex-*` rate-limit snapshot (contract §6.2), parsed from
//! upstream response headers, kept, and shown on `GET /v1/usage` and in `/metrics`.

use serde_json::{Value, json};

/// One rate-limit window (primary: usually 5 hours; secondary: usually weekly).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    /// Share of the window used, 0–100.
    pub used_percent: Option<f64>,
    /// Window length in minutes.
    pub window_minutes: Option<u64>,
    /// When the window resets, Unix seconds.
    pub reset_at: Option<u64>,
}

impl Window {
    fn is_empty(&self) -> bool {
        self.used_percent.is_none() && self.window_minutes.is_none() && self.reset_at.is_none()
    }
}

/// The latest snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuotaSnapshot {
    /// The primary window.
    pub primary: Window,
    /// The secondary window.
    pub secondary: Window,
    /// `x-codex-plan-type`, when sent.
    pub plan_type: Option<String>,
    /// `x-codex-active-limit`, when sent.
    pub active_limit: Option<String>,
    /// When the snapshot was taken, Unix seconds.
    pub observed_at: u64,
}

/// Parses the `x-codex-*` headers (names lowercased); `None` when they carry no window data.
/// `reset-after-seconds` (older backends) is turned into a reset time using `now`.
pub fn parse(headers: &[(String, String)], now: u64) -> Option<QuotaSnapshot> {
    let find = |name: &[&str]| {
        headers
            .iter()
            .find(|(key, _)| is_name(key, name))
            .map(|(_, value)| value.trim())
    };
    // Names matched in parts: building each with `format!` was eight allocations per request.
    let window = |prefix: &str| Window {
        used_percent: find(&["x-codex-", prefix, "-used-percent"])
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite()),
        window_minutes: find(&["x-codex-", prefix, "-window-minutes"]).and_then(|v| v.parse().ok()),
        reset_at: find(&["x-codex-", prefix, "-reset-at"])
            .and_then(|v| v.parse().ok())
            .or_else(|| {
                find(&["x-codex-", prefix, "-reset-after-seconds"])
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(|after| now + after)
            }),
    };
    let snapshot = QuotaSnapshot {
        primary: window("primary"),
        secondary: window("secondary"),
        plan_type: find(&["x-codex-plan-type"]).map(str::to_string),
        active_limit: find(&["x-codex-active-limit"]).map(str::to_string),
        observed_at: now,
    };
    (!snapshot.primary.is_empty() || !snapshot.secondary.is_empty()).then_some(snapshot)
}

/// Whether `key` is the concatenation of `parts`, ASCII case ignored.
fn is_name(key: &str, parts: &[&str]) -> bool {
    // Most names differ in length: no byte is compared for them.
    if key.len() != parts.iter().map(|part| part.len()).sum::<usize>() {
        return false;
    }
    let mut rest = key;
    for part in parts {
        match rest.get(..part.len()) {
            Some(head) if head.eq_ignore_ascii_case(part) => rest = &rest[part.len()..],
            _ => return false,
        }
    }
    rest.is_empty()
}

/// The `GET /v1/usage` body.
pub fn usage_body(snapshot: Option<&QuotaSnapshot>, now: u64) -> Value {
    let window = |w: &Window| {
        if w.is_empty() {
            return Value::Null;
        }
        json!({
            "used_percent": w.used_percent,
            "window_minutes": w.window_minutes,
            "resets_at": w.reset_at,
            "resets_at_utc": w.reset_at.map(|at| crate::rfc3339::format(at, 0)),
            "resets_in_seconds": w.reset_at.map(|at| at.saturating_sub(now)),
        })
    };
    match snapshot {
        None => json!({
            "object": "codex.usage",
            "observed": false,
            "message": "No rate-limit headers seen yet; they arrive with the first upstream answer.",
        }),
        Some(snapshot) => json!({
            "object": "codex.usage",
            "observed": true,
            "observed_at": snapshot.observed_at,
            "age_seconds": now.saturating_sub(snapshot.observed_at),
            "plan_type": snapshot.plan_type,
            "active_limit": snapshot.active_limit,
            "primary": window(&snapshot.primary),
            "secondary": window(&snapshot.secondary),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_both_windows() {
        let snapshot = parse(
            &headers(&[
                ("x-codex-primary-used-percent", "83.5"),
                ("x-codex-primary-window-minutes", "300"),
                ("x-codex-primary-reset-at", "1800000000"),
                ("x-codex-secondary-used-percent", "12"),
                ("x-codex-secondary-window-minutes", "10080"),
                ("x-codex-secondary-reset-after-seconds", "60"),
                ("x-codex-plan-type", "plus"),
            ]),
            1_700_000_000,
        )
        .expect("snapshot");
        assert_eq!(snapshot.primary.used_percent, Some(83.5));
        assert_eq!(snapshot.primary.window_minutes, Some(300));
        assert_eq!(snapshot.primary.reset_at, Some(1_800_000_000));
        assert_eq!(snapshot.secondary.reset_at, Some(1_700_000_060));
        assert_eq!(snapshot.plan_type.as_deref(), Some("plus"));
        let body = usage_body(Some(&snapshot), 1_700_000_010);
        assert_eq!(body["primary"]["used_percent"], 83.5);
        assert_eq!(body["secondary"]["resets_in_seconds"], 50);
        assert_eq!(body["age_seconds"], 10);
    }

    #[test]
    fn names_match_whole_and_in_any_case() {
        let parts = ["x-codex-", "primary", "-used-percent"];
        assert!(is_name("x-codex-primary-used-percent", &parts));
        assert!(is_name("X-Codex-Primary-Used-Percent", &parts));
        assert!(!is_name("x-codex-primary-used-percent-2", &parts));
        assert!(!is_name("x-codex-primary-used", &parts));
        assert!(!is_name("x-codex-secondary-used-percent", &parts));
        assert!(!is_name("x-codex-pr\u{e9}mary-used-percent", &parts));
    }

    #[test]
    fn no_window_headers_means_no_snapshot() {
        assert!(parse(&headers(&[("x-codex-plan-type", "plus")]), 0).is_none());
        assert!(parse(&headers(&[("x-codex-primary-used-percent", "NaN")]), 0).is_none());
        assert_eq!(usage_body(None, 0)["observed"], false);
    }
}
