//! `--login --browser`: the PKCE authorization-code flow with a localhost callback
//! (contract §1.5), for desktops.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::config::Config;
use crate::login::{LOGIN_DEADLINE, LoggedIn, exchange_code};
use crate::oauth::CLIENT_ID;
use crate::url_encoding::{encode_pairs, get, parse_pairs};

/// The port the CLI falls back to when its default is taken.
const FALLBACK_PORT: u16 = 1457;

/// A PKCE verifier and its S256 challenge. (No `Debug`: the verifier is a secret until used.)
#[derive(Clone)]
pub struct Pkce {
    /// 64 random bytes, base64url without padding.
    pub verifier: String,
    /// base64url(SHA-256(verifier)) without padding.
    pub challenge: String,
}

/// A fresh PKCE pair.
pub fn pkce() -> Result<Pkce, String> {
    let verifier = URL_SAFE_NO_PAD.encode(random_bytes::<64>()?);
    Ok(Pkce {
        challenge: challenge_for(&verifier),
        verifier,
    })
}

/// The S256 challenge of a verifier.
pub fn challenge_for(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

fn random_bytes<const N: usize>() -> Result<[u8; N], String> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|_| "the system has no randomness to offer".to_string())?;
    Ok(bytes)
}

/// The authorize URL the person opens.
pub fn authorize_url(
    issuer: &str,
    redirect_uri: &str,
    pkce: &Pkce,
    state: &str,
    originator: &str,
) -> String {
    let query = encode_pairs(&[
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", redirect_uri),
        (
            "scope",
            "openid profile email offline_access api.connectors.read api.connectors.invoke",
        ),
        ("code_challenge", &pkce.challenge),
        ("code_challenge_method", "S256"),
        ("id_token_add_organizations", "true"),
        ("codex_cli_simplified_flow", "true"),
        ("state", state),
        ("originator", originator),
    ]);
    format!("{issuer}/oauth/authorize?{query}")
}

/// Runs the browser flow: listens on `LOGIN_CALLBACK_PORT` (falling back like the CLI), prints
/// the URL to open, and waits for the callback.
pub fn browser_login(config: &Config, agent: &ureq::Agent) -> Result<LoggedIn, String> {
    let (server, port) = bind_callback(config.login_callback_port)?;
    let pkce = pkce()?;
    let state = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let redirect_uri = format!("http://localhost:{port}/auth/callback");
    let url = authorize_url(
        &config.auth_base_url,
        &redirect_uri,
        &pkce,
        &state,
        &config.originator,
    );
    eprintln!(
        "Open this URL in a browser on this machine to link your ChatGPT account:\n\n    {url}\n\n(waiting for the browser to come back to {redirect_uri}…)"
    );
    let started = Instant::now();
    while started.elapsed() < LOGIN_DEADLINE {
        let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let url = request.url().to_string();
        let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
        let pairs = parse_pairs(query);
        match path {
            "/auth/callback" => {}
            "/cancel" => {
                respond(request, 200, "Login cancelled.");
                return Err("the login was cancelled by another login attempt".into());
            }
            _ => {
                respond(request, 404, "Not found.");
                continue;
            }
        }
        if get(&pairs, "state") != Some(state.as_str()) {
            // Not ours (or forged): refuse it and keep waiting for the real callback.
            respond(request, 400, "State mismatch.");
            continue;
        }
        if let Some(error) = get(&pairs, "error") {
            let description = get(&pairs, "error_description").unwrap_or("");
            let message =
                if error == "access_denied" && description.contains("missing_codex_entitlement") {
                    "Codex is not enabled for this ChatGPT workspace; ask its admin to enable it"
                        .to_string()
                } else {
                    format!("the login was refused: {error} {description}")
                        .trim()
                        .to_string()
                };
            respond(request, 400, &format!("Login failed: {message}"));
            return Err(message);
        }
        let Some(code) = get(&pairs, "code") else {
            respond(request, 400, "Missing authorization code.");
            continue;
        };
        let outcome = exchange_code(
            agent,
            &config.auth_base_url,
            code,
            &redirect_uri,
            &pkce.verifier,
        );
        match &outcome {
            Ok(_) => respond(
                request,
                200,
                "Login complete. You can close this tab and return to the terminal.",
            ),
            Err(message) => respond(request, 500, &format!("Login failed: {message}")),
        }
        return outcome;
    }
    Err("no browser came back within 15 minutes; run `--login --browser` again".into())
}

/// Binds 127.0.0.1:`port`; when taken, asks an earlier login there to cancel, retries 10 times
/// 200 ms apart, then falls back to 1457 (the CLI's behaviour). Port 0 picks a free port.
fn bind_callback(port: u16) -> Result<(tiny_http::Server, u16), String> {
    let bind = |port: u16| {
        tiny_http::Server::http(("127.0.0.1", port))
            .ok()
            .and_then(|server| {
                let bound = server.server_addr().to_ip().map(|a| a.port())?;
                Some((server, bound))
            })
    };
    if let Some(bound) = bind(port) {
        return Ok(bound);
    }
    let _ = ureq::get(format!("http://127.0.0.1:{port}/cancel")).call();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(200));
        if let Some(bound) = bind(port) {
            return Ok(bound);
        }
    }
    bind(FALLBACK_PORT).ok_or_else(|| format!("ports {port} and {FALLBACK_PORT} are both in use"))
}

fn respond(request: tiny_http::Request, status: u16, message: &str) {
    let page = format!(
        "<!doctype html><meta charset=\"utf-8\"><title>codex-sub-proxy login</title><p>{}</p>",
        message.replace('&', "&amp;").replace('<', "&lt;")
    );
    let mut response = tiny_http::Response::from_string(page).with_status_code(status);
    if let Ok(header) = tiny_http::Header::from_bytes("Content-Type", "text/html; charset=utf-8") {
        response.add_header(header);
    }
    let _ = request.respond(response);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_rfc_7636_example() {
        // RFC 7636 appendix B.
        assert_eq!(
            challenge_for("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let pair = pkce().expect("pkce");
        assert_eq!(pair.verifier.len(), 86);
        assert_eq!(pair.challenge, challenge_for(&pair.verifier));
    }

    #[test]
    fn authorize_url_carries_the_cli_parameters() {
        let pair = Pkce {
            verifier: "v".into(),
            challenge: "c".into(),
        };
        let url = authorize_url(
            "https://auth.example",
            "http://localhost:1455/auth/callback",
            &pair,
            "st",
            "codex_cli_rs",
        );
        let query = parse_pairs(url.split_once('?').map(|(_, q)| q).unwrap_or(""));
        assert_eq!(get(&query, "client_id"), Some(CLIENT_ID));
        assert_eq!(
            get(&query, "redirect_uri"),
            Some("http://localhost:1455/auth/callback")
        );
        assert_eq!(get(&query, "code_challenge_method"), Some("S256"));
        assert_eq!(get(&query, "state"), Some("st"));
        assert!(get(&query, "scope").is_some_and(|s| s.contains("offline_access")));
        assert!(url.starts_with("https://auth.example/oauth/authorize?"));
    }
}
