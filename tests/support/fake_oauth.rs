//! A fake OAuth token endpoint (`POST /oauth/token`, JSON refresh grant) that is as strict as
//! the real one about refresh-token rotation: every refresh token works once; a reused one gets
//! `400 refresh_token_reused` (contract §1.2–§1.3). Every token it is given or issues is
//! registered in `secrets.rs`.

#![expect(clippy::expect_used, reason = "test support fails loudly")]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

use crate::secrets::{self, SecretKind};

#[path = "fake_oauth_login.rs"]
pub mod login;

/// How the fake answers refresh requests.
#[derive(Debug, Clone, PartialEq)]
pub enum OAuthMode {
    /// Rotate: a new access and refresh token per call.
    Rotate,
    /// Always answer this status and body.
    Fail { status: u16, body: String },
}

struct State {
    /// The refresh token that works now.
    current_refresh: String,
    used: HashSet<String>,
    mode: OAuthMode,
    issued: usize,
    /// The access token the next successful refresh returns (when set).
    next_access: Option<String>,
    /// When set, access tokens are unsigned JWTs expiring this many seconds after issue.
    jwt_lifetime: Option<u64>,
}

/// A running fake token endpoint.
pub struct FakeOAuth {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    login: Arc<Mutex<login::LoginState>>,
    calls: Arc<AtomicUsize>,
    reuse_errors: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeOAuth {
    /// Starts on 127.0.0.1:0; `refresh_token` is the one valid refresh token.
    pub fn start(refresh_token: &str) -> FakeOAuth {
        secrets::register(SecretKind::RefreshToken, refresh_token);
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind fake oauth");
        let addr = server.server_addr().to_ip().expect("ip address");
        let state = Arc::new(Mutex::new(State {
            current_refresh: refresh_token.to_string(),
            used: HashSet::new(),
            mode: OAuthMode::Rotate,
            issued: 0,
            next_access: None,
            jwt_lifetime: None,
        }));
        let calls = Arc::new(AtomicUsize::new(0));
        let reuse_errors = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let login = Arc::new(Mutex::new(login::LoginState::default()));
        let issuer = format!("http://{addr}");
        let thread = {
            let (state, calls, reuse_errors, stop, login) = (
                state.clone(),
                calls.clone(),
                reuse_errors.clone(),
                stop.clone(),
                login.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Ok(Some(mut request)) = server.recv_timeout(Duration::from_millis(50))
                    else {
                        continue;
                    };
                    let mut body = String::new();
                    let _ = request.as_reader().read_to_string(&mut body);
                    let url = request.url().to_string();
                    let method = request.method().to_string();
                    let (status, reply, location) =
                        match login::answer(&login, &issuer, &method, &url, &body) {
                            Some(answer) => answer,
                            None => {
                                calls.fetch_add(1, Ordering::SeqCst);
                                let (status, reply) = answer(&state, &reuse_errors, &url, &body);
                                (status, reply, None)
                            }
                        };
                    let mut response = tiny_http::Response::from_string(reply)
                        .with_status_code(status)
                        .with_header(
                            tiny_http::Header::from_bytes("Content-Type", "application/json")
                                .expect("header"),
                        );
                    if let Some(location) = location {
                        response.add_header(
                            tiny_http::Header::from_bytes("Location", location).expect("header"),
                        );
                    }
                    let _ = request.respond(response);
                }
            })
        };
        FakeOAuth {
            addr,
            login,
            state,
            calls,
            reuse_errors,
            stop,
            thread: Some(thread),
        }
    }

    /// The issuer base URL (`AUTH_BASE_URL`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The login flows' state, to script device polls and the authorize answer.
    pub fn login(&self) -> std::sync::MutexGuard<'_, login::LoginState> {
        self.login.lock().expect("login state")
    }

    /// Refresh-grant calls to the token endpoint so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Refreshes refused because the refresh token had been used before.
    pub fn reuse_errors(&self) -> usize {
        self.reuse_errors.load(Ordering::SeqCst)
    }

    /// Changes how the endpoint answers.
    pub fn set_mode(&self, mode: OAuthMode) {
        self.state.lock().expect("state").mode = mode;
    }

    /// Issue access tokens as unsigned JWTs with `exp = now + lifetime_secs` (a short lifetime
    /// keeps every token inside the proxy's refresh margin, so each request refreshes).
    pub fn issue_jwts(&self, lifetime_secs: u64) {
        self.state.lock().expect("state").jwt_lifetime = Some(lifetime_secs);
    }

    /// The refresh token that is valid now.
    pub fn current_refresh_token(&self) -> String {
        self.state.lock().expect("state").current_refresh.clone()
    }

    /// The access token the next successful refresh returns.
    pub fn set_next_access_token(&self, token: &str) {
        secrets::register(SecretKind::AccessToken, token);
        self.state.lock().expect("state").next_access = Some(token.to_string());
    }
}

impl Drop for FakeOAuth {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn answer(
    state: &Mutex<State>,
    reuse_errors: &AtomicUsize,
    url: &str,
    body: &str,
) -> (u16, String) {
    if url != "/oauth/token" {
        return (404, json!({"error": "not_found"}).to_string());
    }
    let Ok(request) = serde_json::from_str::<Value>(body) else {
        return (
            400,
            json!({"error": "invalid_request", "error_description": "body must be JSON"})
                .to_string(),
        );
    };
    let mut state = state.lock().expect("state");
    if let OAuthMode::Fail { status, body } = &state.mode {
        return (*status, body.clone());
    }
    if request["grant_type"] != "refresh_token"
        || request["client_id"] != "app_EMoamEEZ73f0CkXaXp7hrann"
    {
        return (400, json!({"error": "invalid_grant"}).to_string());
    }
    let presented = request["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if state.used.contains(&presented) {
        reuse_errors.fetch_add(1, Ordering::SeqCst);
        return (400, json!({"error": {
            "message": "Your refresh token has already been used to generate a new access token. Please try signing in again.",
            "type": "invalid_request_error", "param": null, "code": "refresh_token_reused"}}).to_string());
    }
    if presented != state.current_refresh {
        return (401, json!({"error": {"code": "refresh_token_invalidated", "message": "unknown refresh token"}}).to_string());
    }
    state.used.insert(presented);
    state.issued += 1;
    let issued = state.issued;
    let access = match (state.next_access.take(), state.jwt_lifetime) {
        (Some(access), _) => access,
        (None, Some(lifetime)) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            codex_sub_proxy::jwt::unsigned_token(&json!({"exp": now + lifetime, "n": issued}))
        }
        (None, None) => format!("access-token-{issued}"),
    };
    let refresh = format!("refresh-token-{}", state.issued);
    // Registered before they are sent: no log line can hold them earlier.
    secrets::register(SecretKind::AccessToken, &access);
    secrets::register(SecretKind::RefreshToken, &refresh);
    state.current_refresh = refresh.clone();
    (
        200,
        json!({"access_token": access, "refresh_token": refresh, "id_token": null}).to_string(),
    )
}
