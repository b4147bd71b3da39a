//! The upstream client: one ureq agent (rustls, connection reuse), the Codex headers
//! (contract §4.3), bounded retries before the first byte, and the 401 refresh-and-retry.

use std::sync::Arc;
use std::time::Duration;

use ureq::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use ureq::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{Connector, DefaultConnector};

use crate::config::Config;
use crate::error::ProxyError;
use crate::header_list::HeaderList;
use crate::metrics::Metrics;
use crate::oauth::transport_kind;
use crate::pool_probe::ProbeWhenTaken;
use crate::read_buffer::{self, ReadBuffer};
use crate::scrub::SecretScrubber;
use crate::sse::SseReader;
use crate::token_cache::{Credentials, TokenCache};
use crate::upstream_error::{UpstreamFailure, classify, is_retryable};
use crate::upstream_resolver::CachingResolver;
use crate::upstream_writes::CoalesceWrites;

/// Largest single SSE event accepted from upstream (a full response object with inline
/// images can be large, but not this large).
pub const MAX_EVENT_BYTES: usize = 16 << 20;

/// Upstream error bodies are read up to this size.
const MAX_ERROR_BODY: u64 = 64 << 10;

/// A live upstream event stream.
pub struct UpstreamStream {
    /// The upstream's HTTP status (2xx).
    pub status: u16,
    /// `x-codex-*` headers of the upstream response, to pass on to the caller.
    pub passthrough_headers: HeaderList,
    /// The events.
    pub events: SseReader<ReadBuffer<ureq::BodyReader<'static>>>,
    /// Finds the access token this call carried in what the caller is sent (`scrub`).
    pub scrubber: Option<Arc<SecretScrubber>>,
}

/// An upstream refusal: the caller's error, and the headers to pass on with it.
#[derive(Debug)]
pub struct Refusal {
    /// The error to answer with.
    pub error: ProxyError,
    /// The upstream's HTTP status, when it answered.
    pub status: Option<u16>,
    /// `x-codex-*` headers, when the upstream answered at all.
    pub passthrough_headers: HeaderList,
    /// Finds the access token the call carried in the answer (`scrub`), when one was sent.
    pub scrubber: Option<Arc<SecretScrubber>>,
}

impl From<ProxyError> for Refusal {
    fn from(error: ProxyError) -> Self {
        Refusal {
            error,
            status: None,
            passthrough_headers: HeaderList::new(),
            scrubber: None,
        }
    }
}

/// Talks to the Codex backend.
pub struct UpstreamClient {
    agent: ureq::Agent,
    /// `None` when the configured base and path do not make a URL (answered as unreachable).
    responses_url: Option<Uri>,
    /// The headers every call carries, built once (a header built per call from strings
    /// cost a name parse, a value copy and a map growth each).
    fixed_headers: HeaderMap,
    max_retries: u32,
    tokens: Arc<TokenCache>,
    metrics: Arc<Metrics>,
}

impl UpstreamClient {
    /// A client configured from `config`, taking credentials from `tokens`.
    pub fn new(
        config: &Config,
        agent: ureq::Agent,
        tokens: Arc<TokenCache>,
        metrics: Arc<Metrics>,
    ) -> Self {
        UpstreamClient {
            agent,
            responses_url: config.responses_url().parse().ok(),
            fixed_headers: fixed_headers(config),
            max_retries: config.upstream_max_retries,
            tokens,
            metrics,
        }
    }

    /// POSTs `body` to the responses endpoint and returns the event stream once the upstream
    /// answered 2xx. Retries 5xx and transport failures with backoff; on 401 asks the token
    /// cache for a fresh token once and retries.
    #[expect(
        clippy::result_large_err,
        reason = "the Ok variant (a live stream with its reader) is larger still; boxing the \
                  refusal would not shrink the Result"
    )]
    pub fn open_stream(
        &self,
        payload: Vec<u8>,
        session_id: &str,
    ) -> Result<UpstreamStream, Refusal> {
        let mut credentials = self.tokens.current()?;
        let mut refreshed = false;
        let mut attempt: u32 = 0;
        loop {
            let request = self.request(&payload, &credentials, session_id)?;
            let retry = match self.agent.run(request) {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let passthrough_headers = passthrough(response.headers());
                    self.metrics.observe_upstream(Some(status));
                    if let Some(snapshot) =
                        crate::quota::parse(&passthrough_headers, crate::token_cache::now())
                    {
                        self.metrics.set_quota(snapshot);
                    }
                    if (200..300).contains(&status) {
                        let reader = response.into_body().into_reader();
                        return Ok(UpstreamStream {
                            status,
                            passthrough_headers,
                            events: SseReader::new(
                                ReadBuffer::with_capacity(read_buffer::CAPACITY, reader),
                                MAX_EVENT_BYTES,
                            ),
                            scrubber: credentials.scrubber.clone(),
                        });
                    }
                    if status == 401 && !refreshed {
                        refreshed = true;
                        credentials = self
                            .tokens
                            .refresh_after_unauthorized(&credentials.access_token)?;
                        continue;
                    }
                    let failure_error = read_failure(response);
                    if is_retryable(status) && attempt < self.max_retries {
                        log::warn!("upstream answered {status}; retrying");
                        true
                    } else {
                        // Its detail is passed on, so the caller's answer is scrubbed.
                        return Err(Refusal {
                            error: failure_error,
                            status: Some(status),
                            passthrough_headers,
                            scrubber: credentials.scrubber.clone(),
                        });
                    }
                }
                Err(error) => {
                    self.metrics.observe_upstream(None);
                    let kind = transport_kind(&error);
                    if attempt < self.max_retries && !matches!(error, ureq::Error::BadUri(_)) {
                        log::warn!("upstream transport failure ({kind}); retrying");
                        true
                    } else {
                        return Err(transport_error(&error).into());
                    }
                }
            };
            if retry {
                self.metrics
                    .upstream_retries
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(backoff(attempt));
                attempt += 1;
            }
        }
    }

    /// One call's request: the fixed headers, then the token, the account and the session.
    fn request<'a>(
        &self,
        payload: &'a [u8],
        credentials: &Credentials,
        session_id: &str,
    ) -> Result<Request<&'a [u8]>, ProxyError> {
        let mut headers = HeaderMap::with_capacity(self.fixed_headers.len() + 3);
        for (name, value) in &self.fixed_headers {
            // Clones share the bytes: no allocation.
            headers.insert(name.clone(), value.clone());
        }
        let mut authorization =
            HeaderValue::try_from(format!("Bearer {}", credentials.access_token))
                .map_err(|_| unsendable("access token"))?;
        authorization.set_sensitive(true);
        headers.insert(AUTHORIZATION, authorization);
        if let Some(account) = &credentials.account_id {
            let account = HeaderValue::from_str(account).map_err(|_| unsendable("account id"))?;
            headers.insert(HeaderName::from_static("chatgpt-account-id"), account);
        }
        // Header-safe by construction (`stream_pump::session_id`).
        let session = HeaderValue::from_str(session_id).map_err(|_| ProxyError::Internal)?;
        headers.insert(HeaderName::from_static("session_id"), session);
        let uri = self
            .responses_url
            .clone()
            .ok_or_else(|| ProxyError::UpstreamUnreachable {
                cause: "CODEX_BASE_URL and CODEX_RESPONSES_PATH do not make a valid URL".into(),
            })?;
        let mut request = Request::new(payload);
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        Ok(request)
    }
}

/// The caller's error when a stored credential cannot go into an HTTP header (a line break in
/// a hand-edited credentials file, say). Names what, never the value.
fn unsendable(what: &str) -> ProxyError {
    ProxyError::CredentialsUnavailable {
        message: format!(
            "The stored {what} contains characters an HTTP header cannot carry; run `--login` \
             again or fix CREDENTIALS_FILE."
        ),
    }
}

/// The headers every upstream call carries (contract §4.3), but the token, account and session.
fn fixed_headers(config: &Config) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(12);
    let mut put = |name: HeaderName, value: &str| {
        // The configured values were checked to be header-safe when read (`config`).
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    put(CONTENT_TYPE, "application/json");
    put(ACCEPT, "text/event-stream");
    put(HeaderName::from_static("originator"), &config.originator);
    put(USER_AGENT, &user_agent(config));
    put(HeaderName::from_static("version"), &config.client_version);
    put(
        HeaderName::from_static("openai-beta"),
        "responses=experimental",
    );
    headers
}

/// The error for a non-2xx answer, reading a bounded amount of its body.
fn read_failure(response: http_response::Response) -> ProxyError {
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type");
    let cf_mitigated = header("cf-mitigated");
    let retry_after = header("retry-after").and_then(|v| v.trim().parse().ok());
    let body = response
        .into_body()
        .with_config()
        .limit(MAX_ERROR_BODY)
        .lossy_utf8(true)
        .read_to_string()
        .unwrap_or_default();
    classify(&UpstreamFailure {
        status,
        content_type: content_type.as_deref(),
        cf_mitigated: cf_mitigated.as_deref(),
        retry_after,
        body: &body,
    })
}

/// The caller's error for a transport failure that retries did not cure.
pub fn transport_error(error: &ureq::Error) -> ProxyError {
    let kind = transport_kind(error);
    if kind == "timeout" {
        ProxyError::UpstreamTimeout {
            cause: "no answer from the Codex backend in time".into(),
        }
    } else {
        ProxyError::UpstreamUnreachable {
            cause: kind.to_string(),
        }
    }
}

mod http_response {
    //! The response type ureq returns.
    pub type Response = ureq::http::Response<ureq::Body>;
}

/// Room for the backend's `x-codex-*` headers (14 of about 460 bytes, contract §6.2), so that
/// the list is allocated once.
const PASSTHROUGH_HEADERS: usize = 16;
const PASSTHROUGH_BYTES: usize = 640;

/// `x-codex-*` response headers, passed on to callers (quota visibility).
fn passthrough(headers: &ureq::http::HeaderMap) -> HeaderList {
    let mut list = HeaderList::with_capacity(PASSTHROUGH_HEADERS, PASSTHROUGH_BYTES);
    list.extend_from(
        headers
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("x-codex-"))
            .filter_map(|(name, value)| {
                let value = value.to_str().ok()?;
                crate::config::is_header_safe(value).then_some((name.as_str(), value))
            }),
    );
    list
}

/// `200ms × 2^attempt × jitter(0.9–1.1)` (contract §6.3).
fn backoff(attempt: u32) -> Duration {
    let base = 200u64.saturating_mul(1 << attempt.min(6));
    let mut byte = [0u8; 1];
    let jitter = if getrandom::fill(&mut byte).is_ok() {
        0.9 + f64::from(byte[0]) / 255.0 * 0.2
    } else {
        1.0
    };
    Duration::from_millis((base as f64 * jitter) as u64)
}

/// `{originator}/{version} ({os}; {arch}) codex-sub-proxy/{ours}`, the Codex CLI's shape.
pub fn user_agent(config: &Config) -> String {
    format!(
        "{}/{} ({}; {}) codex-sub-proxy/{}",
        config.originator,
        config.client_version,
        std::env::consts::OS,
        std::env::consts::ARCH,
        env!("CARGO_PKG_VERSION")
    )
}

/// The shared HTTP agent: rustls with built-in roots, pooled connections (probed when taken,
/// `pool_probe`; a request's head and body in one write, `upstream_writes`), the backend's
/// addresses looked up once per `upstream_resolver::TTL` under the connect timeout, the
/// configured timeouts (sending the request and waiting for the answer's head share the
/// headers timeout; the per-read timeout is the stream idle timeout), and non-2xx as plain
/// answers.
pub fn build_agent(config: &Config) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_resolve(Some(config.upstream_connect_timeout))
        .timeout_connect(Some(config.upstream_connect_timeout))
        .timeout_send_request(Some(config.upstream_headers_timeout))
        .timeout_recv_response(Some(config.upstream_headers_timeout))
        .timeout_per_read(Some(config.upstream_idle_timeout))
        .timeout_send_body(Some(config.upstream_headers_timeout))
        .max_idle_connections(config.workers.max(4) * 2)
        .max_idle_connections_per_host(config.workers.max(4))
        .max_redirects(0)
        // ureq's default 128 KiB buffers per connection cost ~340 KiB per open stream; SSE
        // lines are read through a BufReader anyway, and 32 KiB holds any response head.
        .input_buffer_size(32 * 1024)
        .output_buffer_size(16 * 1024)
        .user_agent(user_agent(config))
        .build();
    ureq::Agent::with_parts(
        config,
        DefaultConnector::default()
            .chain(ProbeWhenTaken)
            .chain(CoalesceWrites),
        CachingResolver::new(DefaultResolver::default()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter() {
        for attempt in 0..4 {
            let delay = backoff(attempt).as_millis() as u64;
            let base = 200 * (1 << attempt);
            assert!(
                delay >= base * 9 / 10 && delay <= base * 11 / 10,
                "{delay} vs {base}"
            );
        }
    }
}
