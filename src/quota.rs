//! Quota visibility: the latest `x-codex-*` rate-limit snapshot (contract §6.2), parsed from
//! upstream response headers, kept, and shown on `GET /v1/usage` and in `/metrics`.

use serde_json::{Value, json};

use crate::header_list::HeaderList;

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

/// The `x-codex-*` headers read, after that prefix: per window (primary, then secondary)
/// used percent, window minutes, reset time and the older reset delay, then the plan type and
/// the active limit.
const FIELDS: [&str; 10] = [
    "primary-used-percent",
    "primary-window-minutes",
    "primary-reset-at",
    "primary-reset-after-seconds",
    "secondary-used-percent",
    "secondary-window-minutes",
    "secondary-reset-at",
    "secondary-reset-after-seconds",
    "plan-type",
    "active-limit",
];

const PREFIX: &str = "x-codex-";

/// Parses the `x-codex-*` headers (names lowercased); `None` when they carry no window data.
/// `reset-after-seconds` (older backends) is turned into a reset time using `now`. Of a name
/// given twice, the first counts. One pass over the headers: looking each name up on its own
/// was ten passes.
pub fn parse(headers: &HeaderList, now: u64) -> Option<QuotaSnapshot> {
    let mut found: [Option<&str>; FIELDS.len()] = [None; FIELDS.len()];
    for (key, value) in headers.iter() {
        if let Some(index) = field_index(key) {
            found[index].get_or_insert_with(|| value.trim());
        }
    }
    let window = |first: usize| Window {
        used_percent: found[first]
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite()),
        window_minutes: found[first + 1].and_then(|v| v.parse().ok()),
        reset_at: found[first + 2].and_then(|v| v.parse().ok()).or_else(|| {
            found[first + 3]
                .and_then(|v| v.parse::<u64>().ok())
                .map(|after| now + after)
        }),
    };
    let snapshot = QuotaSnapshot {
        primary: window(0),
        secondary: window(4),
        plan_type: found[8].map(str::to_string),
        active_limit: found[9].map(str::to_string),
        observed_at: now,
    };
    (!snapshot.primary.is_empty() || !snapshot.secondary.is_empty()).then_some(snapshot)
}

/// Which of [`FIELDS`] a header name is, ASCII case ignored.
fn field_index(key: &str) -> Option<usize> {
    let key = key.as_bytes();
    let rest = key
        .get(..PREFIX.len())
        .filter(|head| head.eq_ignore_ascii_case(PREFIX.as_bytes()))
        .map(|_| &key[PREFIX.len()..])?;
    FIELDS
        .iter()
        .position(|field| field.len() == rest.len() && field.as_bytes().eq_ignore_ascii_case(rest))
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

    fn headers(pairs: &[(&str, &str)]) -> HeaderList {
        HeaderList::of(pairs.iter().copied())
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
        assert_eq!(field_index("x-codex-primary-used-percent"), Some(0));
        assert_eq!(field_index("X-Codex-Primary-Used-Percent"), Some(0));
        assert_eq!(field_index("x-codex-active-limit"), Some(9));
        assert_eq!(field_index("x-codex-primary-used-percent-2"), None);
        assert_eq!(field_index("x-codex-primary-used"), None);
        assert_eq!(field_index("x-codex-"), None);
        assert_eq!(field_index("x-codex"), None);
        assert_eq!(field_index("x-codex-pr\u{e9}mary-used-percent"), None);
        assert_eq!(field_index("x-c\u{e9}dex-primary-used-percent"), None);
    }

    #[test]
    fn the_first_of_a_repeated_name_counts() {
        let snapshot = parse(
            &headers(&[
                ("x-codex-primary-used-percent", "not a number"),
                ("X-Codex-Primary-Used-Percent", "50"),
                ("x-codex-primary-window-minutes", " 300 "),
                ("x-codex-primary-window-minutes", "60"),
            ]),
            0,
        )
        .expect("snapshot");
        assert_eq!(snapshot.primary.used_percent, None);
        assert_eq!(snapshot.primary.window_minutes, Some(300));
    }

    #[test]
    fn no_window_headers_means_no_snapshot() {
        assert!(parse(&headers(&[("x-codex-plan-type", "plus")]), 0).is_none());
        assert!(parse(&headers(&[("x-codex-primary-used-percent", "NaN")]), 0).is_none());
        assert_eq!(usage_body(None, 0)["observed"], false);
    }
}
