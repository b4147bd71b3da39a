//! `--login`: the device-code flow (contract §1.6), and what both login flows share: the
//! authorization-code exchange, saving the credentials file, and the `.env` lines on stdout.
//!
//! Messages for the person go to stderr; stdout carries only the `.env` values, so
//! `codex-sub-proxy --login > creds` keeps working. Nothing here is logged.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::config::Config;
use crate::credentials_file::CredentialsFile;
use crate::oauth::{CLIENT_ID, transport_kind};
use crate::token_cache::TokenSet;

/// How long a device code, or a browser login, may take (the CLI's 15 minutes).
pub const LOGIN_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// Tokens from a completed login.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    /// The tokens, ready to store.
    pub tokens: TokenSet,
    /// The account's e-mail, from the id token.
    pub email: Option<String>,
    /// The plan type, from the id token.
    pub plan_type: Option<String>,
}

/// Runs the device-code flow against `config.auth_base_url`.
pub fn device_login(config: &Config, agent: &ureq::Agent) -> Result<LoggedIn, String> {
    let issuer = &config.auth_base_url;
    let started = Instant::now();
    let (status, body) = post_json(
        agent,
        &format!("{issuer}/api/accounts/deviceauth/usercode"),
        &json!({"client_id": CLIENT_ID}),
    )?;
    if status == 404 {
        return Err(
            "device code login is not enabled for this issuer; try `--login --browser`".into(),
        );
    }
    if !(200..300).contains(&status) {
        return Err(format!(
            "the issuer refused to start a device login (HTTP {status})"
        ));
    }
    let device_auth_id =
        text(&body, "device_auth_id").ok_or("the device code answer has no device_auth_id")?;
    let user_code = text(&body, "user_code")
        .or_else(|| text(&body, "usercode"))
        .ok_or("the device code answer has no user_code")?;
    let mut interval = interval(&body);
    eprintln!(
        "To link your ChatGPT account, open {issuer}/codex/device in a browser and enter the code:\n\n    {user_code}\n\n(the code expires in 15 minutes; waiting…)"
    );
    let grant = loop {
        if started.elapsed() > LOGIN_DEADLINE {
            return Err("the device code expired before it was used; run `--login` again".into());
        }
        std::thread::sleep(interval);
        let (status, body) = post_json(
            agent,
            &format!("{issuer}/api/accounts/deviceauth/token"),
            &json!({"device_auth_id": device_auth_id, "user_code": user_code}),
        )?;
        if (200..300).contains(&status) {
            break body;
        }
        match error_code(&body).as_deref() {
            Some("slow_down") => interval += Duration::from_secs(5),
            Some("authorization_pending") => {}
            Some("expired_token") => {
                return Err(
                    "the device code expired before it was used; run `--login` again".into(),
                );
            }
            Some("access_denied") => return Err("the login was denied in the browser".into()),
            _ if status == 403 || status == 404 => {}
            _ => {
                return Err(format!(
                    "waiting for the device login failed (HTTP {status})"
                ));
            }
        }
    };
    let code = text(&grant, "authorization_code")
        .ok_or("the device login answer has no authorization_code")?;
    let verifier =
        text(&grant, "code_verifier").ok_or("the device login answer has no code_verifier")?;
    exchange_code(
        agent,
        issuer,
        &code,
        &format!("{issuer}/deviceauth/callback"),
        &verifier,
    )
}

/// Exchanges an authorization code for tokens (form-encoded, contract §1.5).
pub fn exchange_code(
    agent: &ureq::Agent,
    issuer: &str,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<LoggedIn, String> {
    let response = agent
        .post(format!("{issuer}/oauth/token"))
        .header("Accept", "application/json")
        .send_form([
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", CLIENT_ID),
            ("code_verifier", verifier),
        ])
        .map_err(|error| {
            format!(
                "the token endpoint could not be reached ({})",
                transport_kind(&error)
            )
        })?;
    let status = response.status().as_u16();
    let body: Value = response
        .into_body()
        .with_config()
        .limit(1 << 20)
        .read_json()
        .unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        let code = error_code(&body).unwrap_or_else(|| format!("HTTP {status}"));
        let description = body
            .get("error_description")
            .or_else(|| body.pointer("/error/message"))
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(format!("the code exchange failed: {code} {description}")
            .trim()
            .to_string());
    }
    let (Some(id_token), Some(access_token), Some(refresh_token)) = (
        text(&body, "id_token"),
        text(&body, "access_token"),
        text(&body, "refresh_token"),
    ) else {
        return Err(
            "the token endpoint's answer lacks id_token, access_token or refresh_token".into(),
        );
    };
    let claims = crate::jwt::claims(&id_token).unwrap_or(Value::Null);
    let email = claims
        .get("email")
        .or_else(|| claims.pointer("/https:~1~1api.openai.com~1profile/email"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let account_id =
        crate::jwt::account_id(&id_token).or_else(|| crate::jwt::account_id(&access_token));
    let plan_type =
        crate::jwt::plan_type(&id_token).or_else(|| crate::jwt::plan_type(&access_token));
    Ok(LoggedIn {
        tokens: TokenSet {
            expires_at: crate::jwt::expires_at(&access_token),
            access_token: Some(access_token),
            refresh_token: Some(refresh_token),
            id_token: Some(id_token),
            account_id,
        },
        email,
        plan_type,
    })
}

/// Writes the credentials file (atomically, 0600), says which account was linked on stderr,
/// and prints the `.env` lines on stdout.
pub fn finish(config: &Config, logged_in: &LoggedIn, stdout: &mut dyn Write) -> Result<(), String> {
    let file = CredentialsFile::new(config.credentials_file.clone());
    let _lock = file
        .lock()
        .map_err(|e| format!("cannot lock {}: {e}", file.path().display()))?;
    file.write(&logged_in.tokens, crate::token_cache::now())
        .map_err(|e| format!("cannot write {}: {e}", file.path().display()))?;
    eprintln!(
        "Logged in as {} (plan: {}). Credentials saved to {}.",
        logged_in.email.as_deref().unwrap_or("an unknown e-mail"),
        logged_in.plan_type.as_deref().unwrap_or("unknown"),
        file.path().display()
    );
    let tokens = &logged_in.tokens;
    let lines = [
        ("OPENAI_REFRESH_TOKEN", tokens.refresh_token.clone()),
        ("OPENAI_ACCESS_TOKEN", tokens.access_token.clone()),
        (
            "OPENAI_EXPIRES_AT",
            tokens.expires_at.map(|e| e.to_string()),
        ),
        ("OPENAI_CHATGPT_ACCOUNT_ID", tokens.account_id.clone()),
    ];
    let mut text = String::new();
    for (name, value) in lines {
        text.push_str(&format!("{name}={}\n", value.unwrap_or_default()));
    }
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot print the credentials: {e}"))
}

fn post_json(agent: &ureq::Agent, url: &str, body: &Value) -> Result<(u16, Value), String> {
    let response = agent
        .post(url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .send(body.to_string())
        .map_err(|error| {
            format!(
                "the login server could not be reached ({})",
                transport_kind(&error)
            )
        })?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .with_config()
        .limit(1 << 20)
        .read_json()
        .unwrap_or(Value::Null);
    Ok((status, body))
}

fn text(body: &Value, key: &str) -> Option<String> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// `error` as a string, or `error.code`.
fn error_code(body: &Value) -> Option<String> {
    match body.get("error") {
        Some(Value::String(code)) => Some(code.to_ascii_lowercase()),
        Some(Value::Object(error)) => error
            .get("code")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase),
        _ => None,
    }
}

/// The poll interval: a string (or number) of seconds; at least 100 ms.
fn interval(body: &Value) -> Duration {
    let seconds = match body.get("interval") {
        Some(Value::String(text)) => text.trim().parse::<f64>().ok(),
        Some(Value::Number(number)) => number.as_f64(),
        _ => None,
    }
    .unwrap_or(5.0);
    Duration::from_millis((seconds.clamp(0.1, 60.0) * 1000.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_a_string_of_seconds() {
        assert_eq!(interval(&json!({"interval": "5"})), Duration::from_secs(5));
        assert_eq!(interval(&json!({"interval": 2})), Duration::from_secs(2));
        assert_eq!(
            interval(&json!({"interval": "0"})),
            Duration::from_millis(100)
        );
        assert_eq!(interval(&json!({})), Duration::from_secs(5));
    }

    #[test]
    fn error_codes_from_string_or_object() {
        assert_eq!(
            error_code(&json!({"error": "slow_down"})).as_deref(),
            Some("slow_down")
        );
        assert_eq!(
            error_code(&json!({"error": {"code": "Expired_Token"}})).as_deref(),
            Some("expired_token")
        );
        assert_eq!(error_code(&json!({})), None);
    }
}
