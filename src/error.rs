//! The one error type callers see, and its OpenAI-shaped rendering.
//!
//! Every failure a handler can meet becomes a [`ProxyError`]. Turning it into a response
//! ([`ProxyError::status`], [`ProxyError::headers`], [`ProxyError::body`]) has no side effects;
//! the error is logged once, at the edge, by the server. Messages never carry secrets (tokens,
//! keys) or prompt and completion text: upstream bodies are only passed through as the
//! upstream's own `detail`/`message` for the caller's own request, never logged.

use serde_json::{Map, Value, json};

/// Everything that can go wrong while serving a request.
#[derive(Debug, Clone, PartialEq)]
pub enum ProxyError {
    /// The caller's request is malformed or asks for something unsupported.
    BadRequest {
        /// What is wrong, in words.
        message: String,
        /// The offending parameter, when there is one.
        param: Option<String>,
        /// A machine-readable code.
        code: Option<String>,
    },
    /// No key, or a key that matches none of the configured ones.
    Unauthorized,
    /// Unknown path or unknown model.
    NotFound {
        /// What was not found.
        message: String,
        /// A machine-readable code.
        code: Option<String>,
    },
    /// The path exists but not with this method.
    MethodNotAllowed {
        /// The methods the path accepts, for the `Allow` header.
        allowed: &'static str,
    },
    /// The client did not send its body in time.
    RequestTimeout,
    /// The body is larger than `MAX_BODY_BYTES`.
    PayloadTooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// An endpoint that the proxy deliberately does not implement.
    NotImplemented {
        /// Why, and what to do instead.
        message: String,
    },
    /// Every worker is busy and the queue is full.
    Overloaded,
    /// The proxy is stopping and takes no new requests.
    ShuttingDown,
    /// A handler panicked or met an invariant violation.
    Internal,
    /// The upstream refused the request as invalid (kept as the same 4xx).
    UpstreamRejected {
        /// Upstream HTTP status (4xx).
        status: u16,
        /// The upstream's `detail` or `error.message`.
        detail: String,
    },
    /// The upstream still answered 401 after the token layer refreshed and retried.
    UpstreamUnauthorized,
    /// The upstream answered an HTML page on 403: a Cloudflare bot challenge.
    CloudflareChallenge,
    /// The subscription's usage limit is reached (upstream 429 `usage_limit_reached`).
    UsageLimitReached {
        /// The upstream's message.
        message: String,
        /// Seconds until the limit resets, for `Retry-After`.
        resets_in_seconds: Option<u64>,
        /// Unix time of the reset.
        resets_at: Option<i64>,
        /// The subscription plan reported by the upstream.
        plan_type: Option<String>,
    },
    /// Any other upstream 429.
    UpstreamRateLimited {
        /// The upstream's message, when it sent one.
        message: String,
        /// Seconds to wait, when known.
        retry_after: Option<u64>,
    },
    /// The upstream answered an unexpected status (5xx after retries, or other).
    UpstreamStatus {
        /// The upstream status.
        status: u16,
    },
    /// The upstream could not be reached (connect, DNS, TLS) after retries.
    UpstreamUnreachable {
        /// A description of the transport failure, free of secrets.
        cause: String,
    },
    /// The upstream did not answer, or went quiet mid-stream, within the configured time.
    UpstreamTimeout {
        /// Which wait ran out.
        cause: String,
    },
    /// The upstream stream broke: EOF before `response.completed`, a reset, an oversized event.
    UpstreamStreamBroken {
        /// What happened.
        cause: String,
    },
    /// The upstream reported `response.failed`.
    ResponseFailed {
        /// The upstream's error code.
        code: String,
        /// The upstream's error message.
        message: String,
    },
    /// No usable upstream credentials (none configured, or a permanent refresh failure).
    CredentialsUnavailable {
        /// What the operator should do.
        message: String,
    },
    /// Refreshing the access token failed for a reason that may pass.
    TokenRefreshFailed {
        /// What happened, free of secrets.
        cause: String,
    },
}

impl ProxyError {
    /// A 400 naming a parameter.
    pub fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        ProxyError::BadRequest {
            message: message.into(),
            param: Some(param.to_string()),
            code: Some("invalid_value".to_string()),
        }
    }

    /// A 400 about the request as a whole.
    pub fn invalid_body(message: impl Into<String>) -> Self {
        ProxyError::BadRequest {
            message: message.into(),
            param: None,
            code: Some("invalid_request_body".to_string()),
        }
    }

    /// The HTTP status the caller gets.
    pub fn status(&self) -> u16 {
        match self {
            ProxyError::BadRequest { .. } => 400,
            ProxyError::Unauthorized => 401,
            ProxyError::NotFound { .. } => 404,
            ProxyError::MethodNotAllowed { .. } => 405,
            ProxyError::RequestTimeout => 408,
            ProxyError::PayloadTooLarge { .. } => 413,
            ProxyError::NotImplemented { .. } => 501,
            ProxyError::Overloaded | ProxyError::ShuttingDown => 503,
            ProxyError::Internal => 500,
            ProxyError::UpstreamRejected { status, .. } => *status,
            ProxyError::UpstreamUnauthorized | ProxyError::CloudflareChallenge => 502,
            ProxyError::UsageLimitReached { .. } | ProxyError::UpstreamRateLimited { .. } => 429,
            ProxyError::UpstreamStatus { status } if *status == 503 => 503,
            ProxyError::UpstreamStatus { .. } => 502,
            ProxyError::UpstreamUnreachable { .. } => 502,
            ProxyError::UpstreamTimeout { .. } => 504,
            ProxyError::UpstreamStreamBroken { .. } => 502,
            ProxyError::ResponseFailed { code, .. } => response_failed_status(code),
            ProxyError::CredentialsUnavailable { .. } => 503,
            ProxyError::TokenRefreshFailed { .. } => 502,
        }
    }

    /// The OpenAI error `type`.
    pub fn error_type(&self) -> &'static str {
        match self {
            ProxyError::BadRequest { .. }
            | ProxyError::NotFound { .. }
            | ProxyError::MethodNotAllowed { .. }
            | ProxyError::RequestTimeout
            | ProxyError::PayloadTooLarge { .. }
            | ProxyError::UpstreamRejected { .. } => "invalid_request_error",
            ProxyError::Unauthorized => "authentication_error",
            ProxyError::NotImplemented { .. } => "not_implemented",
            ProxyError::Overloaded | ProxyError::ShuttingDown => "server_overloaded",
            ProxyError::Internal => "server_error",
            ProxyError::UsageLimitReached { .. } => "usage_limit_reached",
            ProxyError::UpstreamRateLimited { .. } => "rate_limit_error",
            ProxyError::ResponseFailed { code, .. } => match response_failed_status(code) {
                400 => "invalid_request_error",
                429 => "rate_limit_error",
                _ => "upstream_error",
            },
            ProxyError::UpstreamUnauthorized
            | ProxyError::CloudflareChallenge
            | ProxyError::UpstreamStatus { .. }
            | ProxyError::UpstreamUnreachable { .. }
            | ProxyError::UpstreamTimeout { .. }
            | ProxyError::UpstreamStreamBroken { .. }
            | ProxyError::CredentialsUnavailable { .. }
            | ProxyError::TokenRefreshFailed { .. } => "upstream_error",
        }
    }

    /// The OpenAI error `code`.
    pub fn code(&self) -> Option<String> {
        let fixed = match self {
            ProxyError::BadRequest { code, .. } | ProxyError::NotFound { code, .. } => {
                return code.clone();
            }
            ProxyError::ResponseFailed { code, .. } => return Some(code.clone()),
            ProxyError::Unauthorized => "invalid_api_key",
            ProxyError::MethodNotAllowed { .. } => "method_not_allowed",
            ProxyError::RequestTimeout => "request_timeout",
            ProxyError::PayloadTooLarge { .. } => "request_too_large",
            ProxyError::NotImplemented { .. } => "not_implemented",
            ProxyError::Overloaded => "overloaded",
            ProxyError::ShuttingDown => "shutting_down",
            ProxyError::Internal => "internal_error",
            ProxyError::UpstreamRejected { .. } => "upstream_rejected",
            ProxyError::UpstreamUnauthorized => "upstream_unauthorized",
            ProxyError::CloudflareChallenge => "upstream_cloudflare_challenge",
            ProxyError::UsageLimitReached { .. } => "usage_limit_reached",
            ProxyError::UpstreamRateLimited { .. } => "rate_limit_exceeded",
            ProxyError::UpstreamStatus { .. } => "upstream_status",
            ProxyError::UpstreamUnreachable { .. } => "upstream_unreachable",
            ProxyError::UpstreamTimeout { .. } => "upstream_timeout",
            ProxyError::UpstreamStreamBroken { .. } => "upstream_stream_broken",
            ProxyError::CredentialsUnavailable { .. } => "credentials_unavailable",
            ProxyError::TokenRefreshFailed { .. } => "token_refresh_failed",
        };
        Some(fixed.to_string())
    }

    /// The human-readable message.
    pub fn message(&self) -> String {
        match self {
            ProxyError::BadRequest { message, .. }
            | ProxyError::NotFound { message, .. }
            | ProxyError::NotImplemented { message }
            | ProxyError::CredentialsUnavailable { message } => message.clone(),
            ProxyError::Unauthorized => "Missing or invalid proxy API key. Send it as \
                `Authorization: Bearer <key>`."
                .to_string(),
            ProxyError::MethodNotAllowed { allowed } => {
                format!("Method not allowed on this path; allowed: {allowed}.")
            }
            ProxyError::RequestTimeout => "The request body did not arrive in time.".to_string(),
            ProxyError::PayloadTooLarge { limit } => {
                format!("Request body is larger than the limit of {limit} bytes (MAX_BODY_BYTES).")
            }
            ProxyError::Overloaded => {
                "The proxy is at capacity (all workers busy, queue full). Retry shortly."
                    .to_string()
            }
            ProxyError::ShuttingDown => {
                "The proxy is shutting down and takes no new requests. Retry shortly.".to_string()
            }
            ProxyError::Internal => "Internal error in the proxy.".to_string(),
            ProxyError::UpstreamRejected { detail, .. } => {
                format!("Upstream rejected the request: {detail}")
            }
            ProxyError::UpstreamUnauthorized => "Upstream refused the access token even after a \
                refresh; the credentials may need `codex-sub-proxy --login`."
                .to_string(),
            ProxyError::CloudflareChallenge => "Upstream Cloudflare challenge: the backend \
                answered 403 with a bot-check page. This egress address is being challenged; \
                retrying immediately will not help."
                .to_string(),
            ProxyError::UsageLimitReached { message, .. } => message.clone(),
            ProxyError::UpstreamRateLimited { message, .. } => message.clone(),
            ProxyError::UpstreamStatus { status } => {
                format!("Upstream answered HTTP {status}.")
            }
            ProxyError::UpstreamUnreachable { cause } => {
                format!("Upstream could not be reached: {cause}.")
            }
            ProxyError::UpstreamTimeout { cause } => format!("Upstream timeout: {cause}."),
            ProxyError::UpstreamStreamBroken { cause } => {
                format!("Upstream stream broke: {cause}.")
            }
            ProxyError::ResponseFailed { message, .. } => message.clone(),
            ProxyError::TokenRefreshFailed { cause } => {
                format!("Token refresh failed: {cause}.")
            }
        }
    }

    /// The OpenAI `param`.
    pub fn param(&self) -> Option<String> {
        match self {
            ProxyError::BadRequest { param, .. } => param.clone(),
            _ => None,
        }
    }

    /// Extra response headers (`WWW-Authenticate`, `Allow`, `Retry-After`).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            ProxyError::Unauthorized => vec![("WWW-Authenticate", "Bearer".to_string())],
            ProxyError::MethodNotAllowed { allowed } => vec![("Allow", allowed.to_string())],
            ProxyError::Overloaded | ProxyError::ShuttingDown => {
                vec![("Retry-After", "1".to_string())]
            }
            ProxyError::UsageLimitReached {
                resets_in_seconds: Some(secs),
                ..
            }
            | ProxyError::UpstreamRateLimited {
                retry_after: Some(secs),
                ..
            } => vec![("Retry-After", secs.to_string())],
            _ => Vec::new(),
        }
    }

    /// The `error` object alone, as used in bodies and in-band stream errors.
    pub fn error_object(&self) -> Value {
        let mut error = Map::new();
        error.insert("message".into(), Value::String(self.message()));
        error.insert("type".into(), Value::String(self.error_type().to_string()));
        error.insert(
            "param".into(),
            self.param().map_or(Value::Null, Value::String),
        );
        error.insert(
            "code".into(),
            self.code().map_or(Value::Null, Value::String),
        );
        if let ProxyError::UsageLimitReached {
            resets_in_seconds,
            resets_at,
            plan_type,
            ..
        } = self
        {
            error.insert("resets_in_seconds".into(), json!(resets_in_seconds));
            error.insert("resets_at".into(), json!(resets_at));
            error.insert("plan_type".into(), json!(plan_type));
        }
        Value::Object(error)
    }

    /// The JSON body `{"error": {...}}`.
    pub fn body(&self) -> Value {
        json!({ "error": self.error_object() })
    }

    /// Whether this is the caller's fault (4xx) rather than the proxy's or upstream's.
    pub fn is_client_error(&self) -> bool {
        (400..500).contains(&self.status())
    }
}

/// Status for an upstream `response.failed` code (contract §5.4).
fn response_failed_status(code: &str) -> u16 {
    match code {
        "context_length_exceeded" | "invalid_prompt" => 400,
        "insufficient_quota" | "rate_limit_exceeded" | "usage_limit_reached" => 429,
        "usage_not_included" | "cyber_policy" => 403,
        "server_is_overloaded" | "slow_down" => 503,
        _ => 502,
    }
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message(), self.status())
    }
}

impl std::error::Error for ProxyError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_openai_shaped() {
        let all = [
            ProxyError::invalid_param("n", "n must be 1"),
            ProxyError::Unauthorized,
            ProxyError::Overloaded,
            ProxyError::ShuttingDown,
            ProxyError::CloudflareChallenge,
            ProxyError::UpstreamTimeout {
                cause: "idle".into(),
            },
        ];
        for error in all {
            let body = error.body();
            let object = body["error"].as_object().expect("error object");
            for key in ["message", "type", "param", "code"] {
                assert!(object.contains_key(key), "{key} missing in {body}");
            }
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
    }

    #[test]
    fn usage_limit_carries_reset_details_and_retry_after() {
        let error = ProxyError::UsageLimitReached {
            message: "The usage limit has been reached".into(),
            resets_in_seconds: Some(120),
            resets_at: Some(1_800_000_000),
            plan_type: Some("plus".into()),
        };
        assert_eq!(error.status(), 429);
        assert_eq!(error.headers(), vec![("Retry-After", "120".to_string())]);
        assert_eq!(error.body()["error"]["plan_type"], "plus");
        assert_eq!(error.body()["error"]["resets_at"], 1_800_000_000);
    }

    #[test]
    fn response_failed_codes_map_to_fitting_statuses() {
        let status = |code: &str| {
            ProxyError::ResponseFailed {
                code: code.into(),
                message: "m".into(),
            }
            .status()
        };
        assert_eq!(status("context_length_exceeded"), 400);
        assert_eq!(status("rate_limit_exceeded"), 429);
        assert_eq!(status("insufficient_quota"), 429);
        assert_eq!(status("server_is_overloaded"), 503);
        assert_eq!(status("something_new"), 502);
    }

    #[test]
    fn unauthorized_asks_for_bearer() {
        assert_eq!(
            ProxyError::Unauthorized.headers(),
            vec![("WWW-Authenticate", "Bearer".to_string())]
        );
    }
}
