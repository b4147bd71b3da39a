//! The OAuth token endpoint: the refresh-token grant (contract §1.2) and the classification of
//! its failures into permanent and transient (§1.3).

use serde_json::{Value, json};

/// The Codex CLI's OAuth client id.
pub const CLIENT_ID: &str = "app_EMoamEEZ73f0CkXaXp7hrann";

/// Tokens returned by a successful refresh; every field is optional (contract §1.2).
#[derive(Clone, Default, PartialEq)]
pub struct RefreshedTokens {
    /// New id token, when sent.
    pub id_token: Option<String>,
    /// New access token, when sent.
    pub access_token: Option<String>,
    /// The rotated refresh token, when sent.
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for RefreshedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::token_cache::Redacted;
        f.debug_struct("RefreshedTokens")
            .field("id_token", &Redacted(self.id_token.as_deref()))
            .field("access_token", &Redacted(self.access_token.as_deref()))
            .field("refresh_token", &Redacted(self.refresh_token.as_deref()))
            .finish()
    }
}

/// Why a refresh failed.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshFailure {
    /// The refresh token is dead (expired, reused, revoked, or a 401): log in again.
    Permanent {
        /// The token endpoint's error code (lowercased), or `unauthorized`.
        code: String,
    },
    /// Network trouble or a server fault: may pass.
    Transient {
        /// What happened, free of secrets.
        cause: String,
    },
}

impl RefreshFailure {
    /// A message for callers and logs, free of secrets.
    pub fn describe(&self) -> String {
        match self {
            RefreshFailure::Permanent { code } => {
                let reason = match code.as_str() {
                    "refresh_token_expired" => "the refresh token has expired",
                    "refresh_token_reused" => "the refresh token was already used",
                    "refresh_token_invalidated" => "the refresh token was revoked",
                    _ => "the refresh token was refused",
                };
                format!(
                    "{reason} ({code}); run `codex-sub-proxy --login` and update the credentials"
                )
            }
            RefreshFailure::Transient { cause } => cause.clone(),
        }
    }
}

/// Codes that mean the refresh token can never work again (contract §1.3).
const PERMANENT_CODES: &[&str] = &[
    "refresh_token_expired",
    "refresh_token_reused",
    "refresh_token_invalidated",
];

/// The JSON body of a refresh request ([newer] CLI form: no scope).
pub fn refresh_body(refresh_token: &str) -> Value {
    json!({
        "client_id": CLIENT_ID,
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
    })
}

/// Reads a success body.
pub fn parse_success(body: &str) -> Option<RefreshedTokens> {
    let json: Value = serde_json::from_str(body).ok()?;
    let field = |name: &str| json.get(name).and_then(Value::as_str).map(str::to_string);
    let tokens = RefreshedTokens {
        id_token: field("id_token"),
        access_token: field("access_token"),
        refresh_token: field("refresh_token"),
    };
    Some(tokens)
}

/// The error code of a failure body: `error.code`, `error` (string) or top-level `code`,
/// lowercased.
pub fn error_code(body: &str) -> Option<String> {
    let json: Value = serde_json::from_str(body).ok()?;
    let code = match json.get("error") {
        Some(Value::Object(error)) => error.get("code").and_then(Value::as_str),
        Some(Value::String(code)) => Some(code.as_str()),
        _ => None,
    }
    .or_else(|| json.get("code").and_then(Value::as_str))?;
    Some(code.to_ascii_lowercase())
}

/// Classifies a non-2xx answer from the token endpoint.
pub fn classify_failure(status: u16, body: &str) -> RefreshFailure {
    let code = error_code(body);
    if let Some(code) = code.as_deref()
        && PERMANENT_CODES.contains(&code)
    {
        return RefreshFailure::Permanent {
            code: code.to_string(),
        };
    }
    if status == 401 {
        return RefreshFailure::Permanent {
            code: code.unwrap_or_else(|| "unauthorized".into()),
        };
    }
    RefreshFailure::Transient {
        cause: format!("token endpoint answered HTTP {status}"),
    }
}

/// Performs the refresh-token grant against `token_url`.
pub fn refresh(
    agent: &ureq::Agent,
    token_url: &str,
    refresh_token: &str,
    user_agent: &str,
    originator: &str,
) -> Result<RefreshedTokens, RefreshFailure> {
    let response = agent
        .post(token_url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .header("User-Agent", user_agent)
        .header("originator", originator)
        .send(refresh_body(refresh_token).to_string());
    let response = match response {
        Ok(response) => response,
        Err(ureq::Error::Timeout(_)) => {
            return Err(RefreshFailure::Transient {
                cause: "token endpoint timed out".into(),
            });
        }
        Err(error) => {
            return Err(RefreshFailure::Transient {
                cause: format!("token endpoint unreachable ({})", transport_kind(&error)),
            });
        }
    };
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .with_config()
        .limit(1 << 20)
        .lossy_utf8(true)
        .read_to_string()
        .unwrap_or_default();
    if !(200..300).contains(&status) {
        return Err(classify_failure(status, &body));
    }
    match parse_success(&body) {
        Some(tokens) if tokens.access_token.is_some() => Ok(tokens),
        _ => Err(RefreshFailure::Transient {
            cause: "token endpoint answered 2xx without an access token".into(),
        }),
    }
}

/// Refreshes through the OAuth token endpoint, keeping rotated tokens in memory only.
/// (Persisting them is the credentials file's job, layered on top.)
pub struct OAuthRefresher {
    /// The HTTP agent.
    pub agent: ureq::Agent,
    /// `{AUTH_BASE_URL}/oauth/token`.
    pub token_url: String,
    /// The Codex-style User-Agent.
    pub user_agent: String,
    /// The originator header.
    pub originator: String,
}

impl crate::token_cache::TokenRefresher for OAuthRefresher {
    fn refresh(
        &self,
        current: &crate::token_cache::TokenSet,
    ) -> Result<crate::token_cache::TokenSet, RefreshFailure> {
        let Some(refresh_token) = current.refresh_token.as_deref() else {
            return Err(RefreshFailure::Permanent {
                code: "no_refresh_token".into(),
            });
        };
        let refreshed = refresh(
            &self.agent,
            &self.token_url,
            refresh_token,
            &self.user_agent,
            &self.originator,
        )?;
        let mut next = current.clone();
        next.apply(refreshed);
        Ok(next)
    }
}

/// A short, secret-free name for a ureq transport error.
pub fn transport_kind(error: &ureq::Error) -> &'static str {
    match error {
        ureq::Error::Timeout(_) => "timeout",
        ureq::Error::HostNotFound => "host not found",
        ureq::Error::ConnectionFailed => "connection failed",
        ureq::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused",
            std::io::ErrorKind::ConnectionReset => "connection reset",
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "timeout",
            std::io::ErrorKind::UnexpectedEof => "connection closed early",
            // rustls reports a failed handshake (a peer that does not speak TLS, a bad
            // certificate) as InvalidData through ureq's transport, its own error inside.
            std::io::ErrorKind::InvalidData => io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .map_or("TLS failure", tls_kind),
            // The resolver's error has no stable kind; std's message names the lookup.
            _ if io.to_string().contains("lookup address") => "DNS lookup failed",
            _ => "i/o error",
        },
        ureq::Error::Rustls(tls) => tls_kind(tls),
        ureq::Error::Tls(_) => "TLS failure",
        ureq::Error::Protocol(_) => "HTTP protocol error",
        ureq::Error::BadUri(_) => "bad URL",
        _ => "transport error",
    }
}

/// A short name for a failed TLS handshake that says what an operator has to fix: most often
/// a certificate the built-in roots do not trust (a TLS-intercepting proxy, a wrong base URL).
fn tls_kind(error: &rustls::Error) -> &'static str {
    use rustls::CertificateError as Certificate;
    match error {
        rustls::Error::InvalidCertificate(Certificate::UnknownIssuer) => {
            "TLS certificate from an unknown issuer"
        }
        rustls::Error::InvalidCertificate(
            Certificate::Expired
            | Certificate::ExpiredContext { .. }
            | Certificate::NotValidYet
            | Certificate::NotValidYetContext { .. },
        ) => "TLS certificate outside its validity period",
        rustls::Error::InvalidCertificate(
            Certificate::NotValidForName | Certificate::NotValidForNameContext { .. },
        ) => "TLS certificate for another host name",
        rustls::Error::InvalidCertificate(Certificate::Revoked) => "TLS certificate revoked",
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            "TLS certificate refused"
        }
        rustls::Error::AlertReceived(_) => "TLS handshake refused by the server",
        _ => "TLS failure",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_failures_name_the_certificate_problem() {
        let wrapped = |error: rustls::Error| {
            ureq::Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, error))
        };
        let unknown = wrapped(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        assert_eq!(
            transport_kind(&unknown),
            "TLS certificate from an unknown issuer"
        );
        let expired = wrapped(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Expired,
        ));
        assert_eq!(
            transport_kind(&expired),
            "TLS certificate outside its validity period"
        );
        let name = ureq::Error::Rustls(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName,
        ));
        assert_eq!(
            transport_kind(&name),
            "TLS certificate for another host name"
        );
        let plain_tcp = wrapped(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert_eq!(transport_kind(&plain_tcp), "TLS failure");
        let bare = ureq::Error::Io(std::io::ErrorKind::InvalidData.into());
        assert_eq!(transport_kind(&bare), "TLS failure");
    }

    #[test]
    fn reads_codes_from_every_place_the_cli_reads_them() {
        assert_eq!(
            error_code(r#"{"error":{"message":"m","code":"REFRESH_TOKEN_REUSED"}}"#).as_deref(),
            Some("refresh_token_reused")
        );
        assert_eq!(
            error_code(r#"{"error":"refresh_token_expired"}"#).as_deref(),
            Some("refresh_token_expired")
        );
        assert_eq!(error_code(r#"{"code":"x"}"#).as_deref(), Some("x"));
        assert_eq!(error_code("not json"), None);
    }

    #[test]
    fn permanent_failures_whatever_the_status() {
        let reused = r#"{"error":{"message":"Your refresh token has already been used to generate a new access token. Please try signing in again.","type":"invalid_request_error","param":null,"code":"refresh_token_reused"}}"#;
        assert!(matches!(
            classify_failure(400, reused),
            RefreshFailure::Permanent { .. }
        ));
        assert!(matches!(
            classify_failure(401, "{}"),
            RefreshFailure::Permanent { .. }
        ));
        assert!(matches!(
            classify_failure(500, "{}"),
            RefreshFailure::Transient { .. }
        ));
        assert!(matches!(
            classify_failure(400, r#"{"error":"other"}"#),
            RefreshFailure::Transient { .. }
        ));
    }

    #[test]
    fn refresh_body_is_json_without_scope() {
        let body = refresh_body("rt");
        assert_eq!(body["grant_type"], "refresh_token");
        assert_eq!(body["client_id"], CLIENT_ID);
        assert!(body.get("scope").is_none());
    }

    #[test]
    fn descriptions_never_contain_tokens() {
        let text = RefreshFailure::Permanent {
            code: "refresh_token_reused".into(),
        }
        .describe();
        assert!(text.contains("--login"));
    }
}
