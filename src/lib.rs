//! codex-sub-proxy: a small, auditable OpenAI-compatible HTTP proxy for ChatGPT/Codex
//! subscription-backed models. Synchronous on purpose: a fixed thread pool on tiny_http,
//! blocking ureq calls upstream, SSE parsed line by line, a flush before every upstream wait.
//!
//! # Layout
//!
//! Pure code (no sockets, unit-tested with fixtures):
//! - [`config`]: the environment variables, their defaults, `--help` text.
//! - [`env_file`]: the `.env` reader.
//! - [`error`]: the one error enum and its OpenAI-shaped rendering.
//! - [`caller_auth`]: constant-time bearer check; the public-path allowlist.
//! - [`json_body`]: request body → JSON object, with errors that name the problem; JSON text out.
//! - [`param_policy`]: the table deciding, per field, forward / rewrite / drop / reject.
//! - [`param_path`]: where a value sits in a request body, written out only for an error.
//! - [`responses_request`]: `/v1/responses` body → Codex backend body.
//! - [`raw_input`]: a `/v1/responses` `input` array kept as the caller's text, items changed only as
//!   needed, and its `tools` array as sent.
//! - [`chat_request`]: `/v1/chat/completions` body → Codex backend body (via the Responses
//!   normalisation); tools, tool_choice, response_format, reasoning, effort aliases.
//! - [`chat_messages`]: chat `messages` → Responses input items; tool-call pairing repair.
//! - [`chat_content`]: chat content parts (text, images, files) → Responses input parts.
//! - [`chat_tools`]: chat tools, `web_search_options`, `tool_choice` → Responses forms.
//! - [`sse`]: SSE line parser, bounded reader, frame encoder.
//! - [`header_list`]: headers an answer passes on, kept as one text (two allocations a list).
//! - [`http_head`]: response heads (status, date, headers, framing) written as one buffer.
//! - [`read_buffer`]: the buffered reader under the upstream event stream, reused per thread.
//! - [`responses_relay`]: the Responses event transcript: relay frames, final object.
//! - [`response_text`]: event fields read and items spliced as JSON text, without trees.
//! - [`checked_json`]: fields and elements of JSON text checked on the way in, read without
//!   checking it again.
//! - [`response_view`]: the Response object and output items as chat reads them, from text.
//! - [`chat_response`]: final Response object → `chat.completion`; finish_reason, usage.
//! - [`chat_events`]: the fields of an upstream event the chat stream reads, from its text.
//! - [`chat_stream`]: `ChatStreamTranslator`, upstream events → `chat.completion.chunk` frames.
//! - [`upstream_error`]: upstream non-2xx answers → caller errors.
//! - [`jwt`]: JWT claims (`exp`, account id, plan).
//! - [`oauth`]: the token endpoint's refresh grant and its failure classes.
//! - [`token_cache`]: single-flight, mutex-guarded access-token cache.
//! - [`rfc3339`]: `last_refresh` timestamps without a date crate.
//! - [`quota`]: the `x-codex-*` rate-limit snapshot and the `/v1/usage` view.
//! - [`metrics`]: counters, gauges and histograms in the Prometheus text format.
//! - [`url_encoding`]: percent-encoding for OAuth queries and forms.
//! - [`ids`]: request, session and completion ids without a system call each.
//! - [`scrub`]: the access token searched for and replaced in everything a caller is sent.
//!
//! I/O at the edges:
//! - [`server`]: listener with socket timeouts, intake on connection threads, bounded queue,
//!   worker pool, panic isolation, graceful stop.
//! - [`intake`]: reading request bodies off the pool, bounded in size and time.
//! - [`job_queue`]: the bounded job queue; idle workers are woken most recently idle first.
//! - [`exchange`]: one request and its answer: JSON, error, or a hand-framed chunked stream.
//! - [`routes`]: paths, methods, caller authentication, models and files endpoints.
//! - [`stream_pump`]: the loop both endpoints share: open upstream, pump events through a
//!   `StreamTranslator`, flushed before every read that may wait, or aggregate; drain,
//!   in-band stream errors.
//! - [`responses_handler`]: `/v1/responses`, streaming relay and non-streaming aggregation.
//! - [`chat_handler`]: `/v1/chat/completions`, streamed chunks or one `chat.completion`.
//! - [`upstream`]: the ureq agent, Codex headers, retries, 401 refresh-and-retry.
//! - [`pool_probe`]: a link of the agent's connector chain: a pooled connection is probed when
//!   taken, not also when returned.
//! - [`upstream_writes`]: the chain's last link: a request's head and body leave in one write,
//!   and the socket's write timeout is set once.
//! - [`upstream_resolver`]: the agent's resolver: the backend's addresses kept for 30 s, so a
//!   call on a pooled connection makes no DNS lookup.
//! - [`signals`]: SIGTERM/SIGINT as a flag (`unsafe`: a call to `signal(2)`).
//! - [`allocator`]: the static build's global allocator, `malloc` with freed small blocks kept
//!   in a few bounded shared caches, since musl's allocator serialises every call (`unsafe`, as
//!   every allocator is).
//! - [`logging`]: the stderr log backend (plain or JSON lines), its pure `LineFormatter`,
//!   and the access log line.
//! - [`credentials_file`]: the `auth.json`-layout file, its lock and state sidecars, atomic
//!   private writes.
//! - [`credentials`]: seeding from the environment; the refresher that rotates under the
//!   file's lock, adopts other processes' rotations, and persists before use.
//! - [`login`]: `--login`, the device-code flow; the code exchange and saving shared by both flows.
//! - [`login_browser`]: `--login --browser`, PKCE with a localhost callback.

pub mod allocator;
pub mod caller_auth;
pub mod chat_content;
pub mod chat_events;
pub mod chat_handler;
pub mod chat_messages;
pub mod chat_request;
pub mod chat_response;
pub mod chat_stream;
pub mod chat_tools;
pub mod checked_json;
pub mod config;
pub mod credentials;
pub mod credentials_file;
pub mod env_file;
pub mod error;
pub mod exchange;
pub mod header_list;
pub mod http_head;
pub mod ids;
pub mod intake;
pub mod job_queue;
pub mod json_body;
pub mod jwt;
pub mod logging;
pub mod login;
pub mod login_browser;
pub mod metrics;
pub mod oauth;
pub mod param_path;
pub mod param_policy;
pub mod pool_probe;
pub mod quota;
pub mod raw_input;
pub mod read_buffer;
pub mod response_text;
pub mod response_view;
pub mod responses_handler;
pub mod responses_relay;
pub mod responses_request;
pub mod rfc3339;
pub mod routes;
pub mod scrub;
pub mod server;
pub mod signals;
pub mod sse;
pub mod stream_pump;
pub mod token_cache;
pub mod upstream;
pub mod upstream_error;
pub mod upstream_resolver;
pub mod upstream_writes;
pub mod url_encoding;

use std::sync::Arc;

use config::Config;
use credentials::{FileRefresher, Origin};
use credentials_file::CredentialsFile;
use oauth::OAuthRefresher;
use routes::Proxy;
use server::{RunningServer, ServerLimits};
use token_cache::{TokenCache, TokenSet};
use upstream::UpstreamClient;

/// Wires the proxy from a configuration: credentials (seeding the file from the environment
/// when it says so), token cache, upstream client, router.
pub fn build_proxy(config: Config) -> std::io::Result<Proxy> {
    let agent = upstream::build_agent(&config);
    let file = CredentialsFile::new(config.credentials_file.clone());
    let loaded = credentials::load_or_seed(&file, &environment_tokens(&config))?;
    match loaded.origin {
        Origin::SeededNew => log::info!("seeded {} from the environment", file.path().display()),
        Origin::Reseeded => log::info!(
            "OPENAI_REFRESH_TOKEN differs from the token {} was seeded from: re-seeded it",
            file.path().display()
        ),
        Origin::File => log::info!("using credentials from {}", file.path().display()),
        Origin::Empty => {}
    }
    let refresher = FileRefresher::new(
        file,
        OAuthRefresher {
            agent: agent.clone(),
            token_url: format!("{}/oauth/token", config.auth_base_url),
            user_agent: upstream::user_agent(&config),
            originator: config.originator.clone(),
        },
    );
    let mut tokens = loaded.tokens;
    if let Some(account) = &config.account_id {
        tokens.account_id = Some(account.clone());
    }
    let tokens = Arc::new(TokenCache::with_dead_refresh_token(
        tokens,
        Box::new(refresher),
        loaded.dead,
    ));
    let metrics = Arc::new(metrics::Metrics::new(&config.models));
    let upstream = UpstreamClient::new(&config, agent, tokens.clone(), metrics.clone());
    Ok(Proxy {
        config,
        upstream,
        tokens,
        metrics,
    })
}

/// The tokens the environment offers (`OPENAI_*`), with expiry and account id filled in.
fn environment_tokens(config: &Config) -> TokenSet {
    let access_token = config.access_token.clone();
    TokenSet {
        expires_at: access_token
            .as_deref()
            .and_then(jwt::expires_at)
            .or(config.expires_at),
        account_id: config
            .account_id
            .clone()
            .or_else(|| access_token.as_deref().and_then(jwt::account_id)),
        access_token,
        refresh_token: config.refresh_token.clone(),
        id_token: None,
    }
}

/// Starts serving `proxy` on its configured host and port.
pub fn serve(proxy: Arc<Proxy>) -> std::io::Result<RunningServer> {
    let limits = ServerLimits::from_config(&proxy.config);
    let host = proxy.config.host.clone();
    let port = proxy.config.port;
    let metrics = proxy.metrics.clone();
    server::start(&host, port, limits, proxy, metrics)
}
