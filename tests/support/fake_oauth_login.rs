//! The login side of the fake OAuth issuer: device-code endpoints (contract §1.6), the browser
//! authorize redirect and the authorization-code exchange with PKCE checks (§1.5). The tokens a
//! login returns are registered in `secrets.rs`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use codex_sub_proxy::jwt::unsigned_token;
use codex_sub_proxy::login_browser::challenge_for;
use codex_sub_proxy::url_encoding::{encode_pairs, get, parse_pairs};
use serde_json::{Value, json};

use crate::secrets::{self, SecretKind};

/// The code verifier the issuer hands out in the device flow.
pub const DEVICE_VERIFIER: &str = "server-side-verifier-0123456789";
/// The user code shown to the person.
pub const USER_CODE: &str = "ABCD-EFGH";
/// The refresh token a completed login returns.
pub const LOGIN_REFRESH: &str = "login-refresh-1";
/// The account id in the login's tokens.
pub const LOGIN_ACCOUNT: &str = "acct-login-7777";

/// What the fake does in the login flows.
#[derive(Debug, Default)]
pub struct LoginState {
    /// Device login disabled: the user-code endpoint answers 404.
    pub device_disabled: bool,
    /// Answers to device polls, in order; when empty the poll succeeds.
    pub polls: VecDeque<(u16, Value)>,
    /// Polls received.
    pub poll_count: usize,
    /// When set, the authorize endpoint redirects with this `(error, error_description)`.
    pub deny: Option<(String, String)>,
    /// Issued codes: code → (redirect_uri, expected verifier or challenge).
    codes: HashMap<String, (String, Check)>,
    /// Code exchanges answered with tokens.
    pub exchanges: usize,
}

#[derive(Debug, Clone)]
enum Check {
    Verifier(String),
    Challenge(String),
}

/// Answers a login-flow request: `(status, body, Location)`, or `None` when it is not one.
pub fn answer(
    state: &Mutex<LoginState>,
    issuer: &str,
    method: &str,
    url: &str,
    body: &str,
) -> Option<(u16, String, Option<String>)> {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    let json_body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let reply = |status: u16, value: Value| Some((status, value.to_string(), None));
    match (method, path) {
        ("POST", "/api/accounts/deviceauth/usercode") => {
            if state.device_disabled {
                return reply(404, json!({"error": "not_found"}));
            }
            if json_body["client_id"] != "app_EMoamEEZ73f0CkXaXp7hrann" {
                return reply(400, json!({"error": "invalid_client"}));
            }
            reply(
                200,
                json!({"device_auth_id": "dev-auth-1", "user_code": USER_CODE, "interval": "0"}),
            )
        }
        ("POST", "/api/accounts/deviceauth/token") => {
            state.poll_count += 1;
            if json_body["device_auth_id"] != "dev-auth-1" || json_body["user_code"] != USER_CODE {
                return reply(400, json!({"error": "invalid_request"}));
            }
            if let Some((status, value)) = state.polls.pop_front() {
                return reply(status, value);
            }
            state.codes.insert(
                "device-code-1".into(),
                (
                    format!("{issuer}/deviceauth/callback"),
                    Check::Verifier(DEVICE_VERIFIER.into()),
                ),
            );
            reply(
                200,
                json!({"authorization_code": "device-code-1", "code_challenge": challenge_for(DEVICE_VERIFIER), "code_verifier": DEVICE_VERIFIER}),
            )
        }
        ("GET", "/oauth/authorize") => {
            let pairs = parse_pairs(query);
            let redirect = get(&pairs, "redirect_uri").unwrap_or_default().to_string();
            let state_param = get(&pairs, "state").unwrap_or_default().to_string();
            if get(&pairs, "code_challenge_method") != Some("S256")
                || get(&pairs, "response_type") != Some("code")
            {
                return reply(400, json!({"error": "invalid_request"}));
            }
            let location = match &state.deny {
                Some((error, description)) => format!(
                    "{redirect}?{}",
                    encode_pairs(&[
                        ("error", error),
                        ("error_description", description),
                        ("state", &state_param)
                    ])
                ),
                None => {
                    let challenge = get(&pairs, "code_challenge")
                        .unwrap_or_default()
                        .to_string();
                    state.codes.insert(
                        "browser-code-1".into(),
                        (redirect.clone(), Check::Challenge(challenge)),
                    );
                    format!(
                        "{redirect}?{}",
                        encode_pairs(&[("code", "browser-code-1"), ("state", &state_param)])
                    )
                }
            };
            Some((302, String::new(), Some(location)))
        }
        ("POST", "/oauth/token") if json_body.is_null() => {
            let form = parse_pairs(body);
            let field = |name: &str| get(&form, name).unwrap_or_default().to_string();
            if field("grant_type") != "authorization_code"
                || field("client_id") != "app_EMoamEEZ73f0CkXaXp7hrann"
            {
                return reply(400, json!({"error": "unsupported_grant_type"}));
            }
            let Some((redirect, check)) = state.codes.remove(&field("code")) else {
                return reply(
                    400,
                    json!({"error": "invalid_grant", "error_description": "unknown or used code"}),
                );
            };
            let verifier = field("code_verifier");
            let verified = match check {
                Check::Verifier(expected) => verifier == expected,
                Check::Challenge(challenge) => challenge_for(&verifier) == challenge,
            };
            if redirect != field("redirect_uri") || !verified {
                return reply(
                    400,
                    json!({"error": "invalid_grant", "error_description": "PKCE or redirect_uri mismatch"}),
                );
            }
            state.exchanges += 1;
            let auth = json!({"chatgpt_account_id": LOGIN_ACCOUNT, "chatgpt_plan_type": "pro"});
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let id_token = unsigned_token(
                &json!({"email": "person@example.com", "https://api.openai.com/auth": auth}),
            );
            let access_token =
                unsigned_token(&json!({"exp": now + 3600, "https://api.openai.com/auth": auth}));
            secrets::register(SecretKind::IdToken, &id_token);
            secrets::register(SecretKind::AccessToken, &access_token);
            secrets::register(SecretKind::RefreshToken, LOGIN_REFRESH);
            reply(
                200,
                json!({
                    "id_token": id_token,
                    "access_token": access_token,
                    "refresh_token": LOGIN_REFRESH,
                }),
            )
        }
        _ => None,
    }
}
