//! JWT claims, decoded without verifying the signature (contract §3): the proxy only needs
//! `exp` and the ChatGPT account id, and the backend verifies the token itself.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// Namespace of the ChatGPT claims.
const AUTH_NAMESPACE: &str = "https://api.openai.com/auth";

/// Decodes the payload of a JWT into JSON; `None` when it is not a JWT.
pub fn claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The `exp` claim, in Unix seconds.
pub fn expires_at(token: &str) -> Option<u64> {
    claims(token)?.get("exp")?.as_u64()
}

/// The `chatgpt_account_id` claim of the auth namespace.
pub fn account_id(token: &str) -> Option<String> {
    claims(token)?
        .get(AUTH_NAMESPACE)?
        .get("chatgpt_account_id")?
        .as_str()
        .map(str::to_string)
}

/// The `chatgpt_plan_type` claim of the auth namespace.
pub fn plan_type(token: &str) -> Option<String> {
    claims(token)?
        .get(AUTH_NAMESPACE)?
        .get("chatgpt_plan_type")?
        .as_str()
        .map(str::to_string)
}

/// Builds an unsigned JWT with the given claims (for tests and fakes).
pub fn unsigned_token(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_exp_account_and_plan() {
        let token = unsigned_token(&json!({
            "exp": 1_900_000_000u64,
            AUTH_NAMESPACE: {"chatgpt_account_id": "acc-123", "chatgpt_plan_type": "plus"}
        }));
        assert_eq!(expires_at(&token), Some(1_900_000_000));
        assert_eq!(account_id(&token).as_deref(), Some("acc-123"));
        assert_eq!(plan_type(&token).as_deref(), Some("plus"));
    }

    #[test]
    fn opaque_tokens_have_no_claims() {
        assert_eq!(expires_at("not-a-jwt"), None);
        assert_eq!(account_id("a.b.c"), None);
    }
}
