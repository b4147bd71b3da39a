//! codex-sub-proxy: a small, auditable OpenAI-compatible HTTP proxy for ChatGPT/Codex
//! subscription-backed models. Synchronous on purpose: a fixed thread pool on tiny_http,
//! blocking ureq calls upstream, SSE parsed line by line, one flush per event.
//!
//! # Layout
//!
//! Pure code (no sockets, unit-tested with fixtures):
//! - [`config`]: the environment variables, their defaults, `--help` text.
//! - [`env_file`]: the `.env` reader.
//! - [`error`]: the one error enum and its OpenAI-shaped rendering.
//! - [`caller_auth`]: constant-time bearer check; the public-path allowlist.
//! - [`json_body`]: request body → JSON object, with errors that name the problem.
//! - [`param_policy`]: the table deciding, per field, forward / rewrite / drop / reject.
//! - [`responses_request`]: `/v1/responses` body → Codex backend body.
//! - [`sse`]: SSE line parser, bounded reader, frame encoder.
//! - [`responses_relay`]: the Responses event transcript: relay frames, final object.
//! - [`upstream_error`]: upstream non-2xx answers → caller errors.
//! - [`jwt`]: JWT claims (`exp`, account id, plan).
//! - [`oauth`]: the token endpoint's refresh grant and its failure classes.
//! - [`token_cache`]: single-flight, mutex-guarded access-token cache.
//!
//! I/O at the edges:
//! - [`server`]: listener with socket timeouts, dispatcher, bounded queue, worker pool,
//!   panic isolation, graceful stop.
//! - [`intake`]: reading request bodies off the pool, bounded in size and time.
//! - [`exchange`]: one request and its answer: JSON, error, or a hand-framed chunked stream.
//! - [`routes`]: paths, methods, caller authentication, models and files endpoints.
//! - [`responses_handler`]: `/v1/responses`, streaming relay and non-streaming aggregation.
//! - [`upstream`]: the ureq agent, Codex headers, retries, 401 refresh-and-retry.
//! - [`signals`]: SIGTERM/SIGINT as a flag (the crate's only `unsafe`).

pub mod caller_auth;
pub mod config;
pub mod env_file;
pub mod error;
pub mod exchange;
pub mod intake;
pub mod json_body;
pub mod jwt;
pub mod oauth;
pub mod param_policy;
pub mod responses_handler;
pub mod responses_relay;
pub mod responses_request;
pub mod routes;
pub mod server;
pub mod signals;
pub mod sse;
pub mod token_cache;
pub mod upstream;
pub mod upstream_error;

use std::sync::Arc;

use config::Config;
use oauth::OAuthRefresher;
use routes::Proxy;
use server::{RunningServer, ServerLimits};
use token_cache::{TokenCache, TokenSet};
use upstream::UpstreamClient;

/// Wires the proxy from a configuration: token cache, upstream client, router.
pub fn build_proxy(config: Config) -> Proxy {
    let agent = upstream::build_agent(&config);
    let access_token = config.access_token.clone();
    let expires_at = access_token
        .as_deref()
        .and_then(jwt::expires_at)
        .or(config.expires_at);
    let account_id = config
        .account_id
        .clone()
        .or_else(|| access_token.as_deref().and_then(jwt::account_id));
    let tokens = TokenSet {
        access_token,
        refresh_token: config.refresh_token.clone(),
        id_token: None,
        expires_at,
        account_id,
    };
    let refresher = OAuthRefresher {
        agent: agent.clone(),
        token_url: format!("{}/oauth/token", config.auth_base_url),
        user_agent: upstream::user_agent(&config),
        originator: config.originator.clone(),
    };
    let tokens = Arc::new(TokenCache::new(tokens, Box::new(refresher)));
    let upstream = UpstreamClient::new(&config, agent, tokens.clone());
    Proxy {
        config,
        upstream,
        tokens,
    }
}

/// Starts serving `proxy` on its configured host and port.
pub fn serve(proxy: Arc<Proxy>) -> std::io::Result<RunningServer> {
    let limits = ServerLimits::from_config(&proxy.config);
    let host = proxy.config.host.clone();
    let port = proxy.config.port;
    server::start(&host, port, limits, proxy)
}
