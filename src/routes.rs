//! Routing and caller authentication: which path and method go to which handler.
//!
//! Authentication fails closed: every route needs a key except those named in
//! `caller_auth::is_public_path`. Paths are matched exactly as sent (no decoding or
//! normalisation), so `/v1/../healthz` or `%2F` tricks can only miss, never bypass.

use std::sync::Arc;

use serde_json::{Value, json};
use tiny_http::Method;

use crate::caller_auth::{is_authorized, is_public_path};
use crate::config::Config;
use crate::error::ProxyError;
use crate::exchange::Exchange;
use crate::header_list::HeaderList;
use crate::server::Handler;
use crate::token_cache::TokenCache;
use crate::upstream::UpstreamClient;

/// Everything a request may need: configuration, upstream client, tokens.
pub struct Proxy {
    /// The effective configuration.
    pub config: Config,
    /// The upstream client.
    pub upstream: UpstreamClient,
    /// The token cache (shared with the upstream client).
    pub tokens: Arc<TokenCache>,
    /// Metrics (shared with the server and the upstream client).
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// The routes the proxy knows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Health,
    Ready,
    Metrics,
    Usage,
    Models,
    Model(String),
    Responses,
    ChatCompletions,
    Files,
    Unknown,
}

fn resolve(path: &str) -> Route {
    match path {
        "/healthz" => Route::Health,
        "/readyz" => Route::Ready,
        "/metrics" => Route::Metrics,
        "/v1/usage" => Route::Usage,
        "/v1/models" => Route::Models,
        "/v1/responses" => Route::Responses,
        "/v1/chat/completions" => Route::ChatCompletions,
        "/v1/files" => Route::Files,
        _ if path.starts_with("/v1/files/") => Route::Files,
        _ => match path.strip_prefix("/v1/models/") {
            Some(id) if !id.is_empty() && !id.contains('/') => Route::Model(id.to_string()),
            _ => Route::Unknown,
        },
    }
}

/// A low-cardinality name of the route, for logs and metrics.
pub fn route_name(path: &str) -> &'static str {
    match resolve(path) {
        Route::Health => "/healthz",
        Route::Ready => "/readyz",
        Route::Metrics => "/metrics",
        Route::Usage => "/v1/usage",
        Route::Models => "/v1/models",
        Route::Model(_) => "/v1/models/{id}",
        Route::Responses => "/v1/responses",
        Route::ChatCompletions => "/v1/chat/completions",
        Route::Files => "/v1/files",
        Route::Unknown => "unknown",
    }
}

impl Handler for Proxy {
    fn handle(&self, exchange: &mut Exchange) {
        if let Err(error) = self.route(exchange) {
            exchange.respond_error(&error, &HeaderList::EMPTY);
        }
    }
}

impl Proxy {
    fn route(&self, exchange: &mut Exchange) -> Result<(), ProxyError> {
        let path = exchange.path().to_string();
        let public = is_public_path(&path) || (path == "/metrics" && self.config.metrics_public);
        if !public
            && !is_authorized(
                &self.config.proxy_api_keys,
                exchange.header("Authorization"),
            )
        {
            return Err(ProxyError::Unauthorized);
        }
        let method = exchange.method().clone();
        let read = matches!(method, Method::Get | Method::Head);
        match resolve(&path) {
            Route::Health if read => {
                exchange.respond_json(200, &json!({"ok": true}), &HeaderList::EMPTY)
            }
            Route::Ready if read => {
                let (status, body) = self.readiness();
                exchange.respond_json(status, &body, &HeaderList::EMPTY);
            }
            Route::Metrics if read => {
                let text = self.metrics.render(&self.tokens.readiness());
                exchange.respond_text(200, text, "text/plain; version=0.0.4; charset=utf-8");
            }
            Route::Usage if read => {
                let body = crate::quota::usage_body(
                    self.metrics.quota().as_ref(),
                    crate::token_cache::now(),
                );
                exchange.respond_json(200, &body, &HeaderList::EMPTY);
            }
            Route::Models if read => {
                exchange.respond_json(200, &self.model_list(), &HeaderList::EMPTY)
            }
            Route::Model(id) if read => {
                let model = self.model(&id).ok_or_else(|| ProxyError::NotFound {
                    message: format!("The model `{id}` does not exist or is not listed by this proxy (CODEX_MODELS)."),
                    code: Some("model_not_found".into()),
                })?;
                exchange.respond_json(200, &model, &HeaderList::EMPTY);
            }
            Route::Responses if method == Method::Post => {
                crate::responses_handler::serve(self, exchange)?
            }
            Route::ChatCompletions if method == Method::Post => {
                crate::chat_handler::serve(self, exchange)?
            }
            Route::Files => {
                return Err(ProxyError::NotImplemented {
                    message: "The Files API is not available through the subscription backend. Send files \
                              inline instead: an `input_file` content part with `file_data` (a base64 data URL) \
                              and `filename` on /v1/responses, or a `file` part on /v1/chat/completions."
                        .into(),
                });
            }
            Route::Unknown => {
                return Err(ProxyError::NotFound {
                    message: format!("Unknown path: {}", printable(&path)),
                    code: Some("unknown_url".into()),
                });
            }
            Route::Health
            | Route::Ready
            | Route::Metrics
            | Route::Usage
            | Route::Models
            | Route::Model(_) => {
                return Err(ProxyError::MethodNotAllowed {
                    allowed: "GET, HEAD",
                });
            }
            Route::Responses | Route::ChatCompletions => {
                return Err(ProxyError::MethodNotAllowed { allowed: "POST" });
            }
        }
        Ok(())
    }

    /// `/readyz`: whether usable upstream credentials are held, without revealing them.
    fn readiness(&self) -> (u16, Value) {
        let readiness = self.tokens.readiness();
        let body = json!({
            "ready": readiness.usable,
            "credentials": {
                "usable": readiness.usable,
                "access_token_expires_at": readiness.expires_at,
                "account": readiness.account_hint,
                "plan_type": readiness.plan_type,
                "last_refresh_error": readiness.last_refresh_error,
                "refreshes": readiness.refreshes,
            }
        });
        (if readiness.usable { 200 } else { 503 }, body)
    }

    fn model_entry(id: &str) -> Value {
        json!({"id": id, "object": "model", "created": 0, "owned_by": "openai"})
    }

    fn model_list(&self) -> Value {
        let data: Vec<Value> = self
            .config
            .models
            .iter()
            .map(|m| Self::model_entry(m))
            .collect();
        json!({"object": "list", "data": data})
    }

    fn model(&self, id: &str) -> Option<Value> {
        self.config
            .models
            .iter()
            .find(|m| *m == id)
            .map(|m| Self::model_entry(m))
    }
}

/// A path shortened and stripped of control characters, safe to echo in an error.
fn printable(path: &str) -> String {
    path.chars().filter(|c| !c.is_control()).take(128).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_routes_exactly() {
        assert_eq!(resolve("/healthz"), Route::Health);
        assert_eq!(
            resolve("/v1/models/gpt-5.5"),
            Route::Model("gpt-5.5".into())
        );
        assert_eq!(resolve("/v1/models/"), Route::Unknown);
        assert_eq!(resolve("/v1/files/file-1/content"), Route::Files);
        assert_eq!(resolve("/v1/../healthz"), Route::Unknown);
        assert_eq!(resolve("/v1%2Fmodels"), Route::Unknown);
        assert_eq!(route_name("/v1/models/x"), "/v1/models/{id}");
    }
}
