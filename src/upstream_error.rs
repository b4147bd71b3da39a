//! Classifies a non-2xx upstream answer into the error the caller sees (contract §6.1,
//! design "Errors"). Pure: status, a few headers and the body text in, a [`ProxyError`] out.

use serde_json::Value;

use crate::error::ProxyError;

/// The parts of an upstream error response that decide its meaning.
#[derive(Debug, Default, Clone)]
pub struct UpstreamFailure<'a> {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`, when sent.
    pub content_type: Option<&'a str>,
    /// `cf-mitigated`, when sent.
    pub cf_mitigated: Option<&'a str>,
    /// `Retry-After` in seconds, when sent and numeric.
    pub retry_after: Option<u64>,
    /// The body, as text (possibly truncated by the caller).
    pub body: &'a str,
}

/// Whether the failure is worth retrying before anything reached the caller.
pub fn is_retryable(status: u16) -> bool {
    status >= 500
}

/// The caller-facing error for an upstream failure. A 401 here means the token layer's
/// refresh-and-retry already happened.
pub fn classify(failure: &UpstreamFailure<'_>) -> ProxyError {
    let json: Option<Value> = serde_json::from_str(failure.body).ok();
    match failure.status {
        401 => ProxyError::UpstreamUnauthorized,
        403 if looks_like_challenge(failure) => ProxyError::CloudflareChallenge,
        429 => classify_429(json.as_ref(), failure.retry_after),
        status @ 400..=499 => ProxyError::UpstreamRejected {
            status,
            detail: detail(json.as_ref())
                .unwrap_or_else(|| format!("HTTP {status} without a readable error body")),
        },
        status => ProxyError::UpstreamStatus { status },
    }
}

fn looks_like_challenge(failure: &UpstreamFailure<'_>) -> bool {
    let html = failure
        .content_type
        .is_some_and(|t| t.to_ascii_lowercase().contains("text/html"))
        || failure.body.trim_start().starts_with('<');
    failure
        .cf_mitigated
        .is_some_and(|v| v.eq_ignore_ascii_case("challenge"))
        || html
}

fn classify_429(json: Option<&Value>, retry_after: Option<u64>) -> ProxyError {
    let error = json.and_then(|j| j.get("error"));
    let kind = error.and_then(|e| e.get("type")).and_then(Value::as_str);
    let message = detail(json).unwrap_or_else(|| "Upstream rate limit reached.".into());
    if kind == Some("usage_limit_reached") {
        let resets_in = error
            .and_then(|e| e.get("resets_in_seconds"))
            .and_then(Value::as_u64)
            .or(retry_after);
        return ProxyError::UsageLimitReached {
            message,
            resets_in_seconds: resets_in,
            resets_at: error
                .and_then(|e| e.get("resets_at"))
                .and_then(Value::as_i64),
            plan_type: error
                .and_then(|e| e.get("plan_type"))
                .and_then(Value::as_str)
                .map(str::to_string),
        };
    }
    if kind == Some("usage_not_included") {
        return ProxyError::UpstreamRejected {
            status: 403,
            detail: format!("{message} (the subscription plan does not include Codex)"),
        };
    }
    ProxyError::UpstreamRateLimited {
        message,
        retry_after,
    }
}

/// The upstream's own words: `detail`, `error.message`, `error` (string) or `message`.
fn detail(json: Option<&Value>) -> Option<String> {
    let json = json?;
    let text = json
        .get("detail")
        .and_then(|d| {
            d.as_str()
                .map(str::to_string)
                .or_else(|| Some(d.to_string()))
        })
        .or_else(|| {
            json.get("error").and_then(|e| {
                e.get("message")
                    .and_then(Value::as_str)
                    .or_else(|| e.as_str())
                    .map(str::to_string)
            })
        })
        .or_else(|| {
            json.get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
        })?;
    Some(text.chars().take(2000).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: u16, body: &str) -> UpstreamFailure<'_> {
        UpstreamFailure {
            status,
            content_type: Some("application/json"),
            body,
            ..Default::default()
        }
    }

    #[test]
    fn a_detail_quoting_the_access_token_loses_it() {
        // The detail is kept here; the exchange scrubs the token from the answer it writes.
        let error = classify(&failure(
            400,
            r#"{"detail":"bad token eyJ.abc.def in header"}"#,
        ));
        assert_eq!(error.status(), 400);
        let scrubber = crate::scrub::SecretScrubber::new("eyJ.abc.def").expect("scrubber");
        let shown = scrubber.scrub(error.message().as_bytes()).into_owned();
        let shown = String::from_utf8(shown).expect("utf-8");
        assert!(shown.contains("bad token <redacted> in header"), "{shown}");
        assert!(
            crate::scrub::SecretScrubber::new("").is_none(),
            "nothing to look for"
        );
    }

    #[test]
    fn bad_request_keeps_status_and_detail() {
        let error = classify(&failure(400, r#"{"detail":"Instructions are required"}"#));
        assert_eq!(error.status(), 400);
        assert!(error.message().contains("Instructions are required"));
    }

    #[test]
    fn html_403_is_a_cloudflare_challenge() {
        let error = classify(&UpstreamFailure {
            status: 403,
            content_type: Some("text/html; charset=UTF-8"),
            body: "<!DOCTYPE html><title>Just a moment...</title>",
            ..Default::default()
        });
        assert_eq!(error, ProxyError::CloudflareChallenge);
        assert_eq!(error.status(), 502);
        let json_403 = classify(&failure(403, r#"{"detail":"forbidden originator"}"#));
        assert_eq!(json_403.status(), 403);
    }

    #[test]
    fn usage_limit_is_429_with_reset_details() {
        let body = r#"{"error":{"type":"usage_limit_reached","message":"The usage limit has been reached","plan_type":"plus","resets_at":1800000000,"resets_in_seconds":3600,"eligible_promo":null}}"#;
        let error = classify(&failure(429, body));
        assert_eq!(error.status(), 429);
        assert_eq!(error.headers(), vec![("Retry-After", "3600".to_string())]);
        assert_eq!(error.body()["error"]["plan_type"], "plus");
        assert_eq!(error.body()["error"]["resets_at"], 1_800_000_000i64);
    }

    #[test]
    fn other_statuses() {
        assert_eq!(classify(&failure(401, "{}")).status(), 502);
        assert_eq!(classify(&failure(429, "{}")).status(), 429);
        assert_eq!(classify(&failure(500, "oops")).status(), 502);
        assert_eq!(classify(&failure(503, "")).status(), 503);
        assert!(is_retryable(502) && !is_retryable(429) && !is_retryable(400));
    }
}
