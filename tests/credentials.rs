//! Credentials over real sockets and real files: single-flight refresh, persistence across
//! restarts, seeding rules, remembered permanent failures, readiness; and the scratch
//! directories that hold those files are removed when the tests are done with them.

#![expect(clippy::expect_used, reason = "test helpers fail loudly")]

#[path = "support/fake_codex.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod fake_codex;
#[path = "support/fake_oauth.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod fake_oauth;
#[path = "support/harness.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod harness;
#[path = "support/secrets.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod secrets;

use std::path::Path;
use std::sync::Arc;

use codex_sub_proxy::jwt::unsigned_token;
use fake_codex::FakeCodex;
use fake_oauth::{FakeOAuth, OAuthMode};
use harness::{TestProxy, access_token_expiring_at, config, get, post_json, scratch_dir, unix_now};
use serde_json::{Value, json};

/// An access token (JWT) that expires in `secs`.
fn access_token_expiring_in(secs: u64) -> String {
    access_token_expiring_at(unix_now() + secs)
}

fn proxy(
    fake: &FakeCodex,
    oauth: &FakeOAuth,
    file: &Path,
    access: &str,
    refresh: &str,
) -> TestProxy {
    let file = file.display().to_string();
    let auth = oauth.base_url();
    TestProxy::start(config(
        &fake.base_url(),
        &[
            ("CREDENTIALS_FILE", file.as_str()),
            ("AUTH_BASE_URL", auth.as_str()),
            ("OPENAI_ACCESS_TOKEN", access),
            ("OPENAI_REFRESH_TOKEN", refresh),
            ("WORKERS", "32"),
            ("QUEUE_DEPTH", "64"),
        ],
    ))
}

fn stored(file: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(file).expect("credentials file")).expect("JSON")
}

fn ask(proxy: &TestProxy) -> harness::Answer {
    post_json(
        &format!("{}/v1/responses", proxy.base),
        &json!({"model": "gpt-5.5", "input": "hi"}),
    )
}

#[test]
fn a_stale_token_under_32_concurrent_callers_causes_exactly_one_refresh() {
    let fake = FakeCodex::start();
    let oauth = FakeOAuth::start("seed-refresh");
    fake.set_access_token("rotated-access");
    oauth.set_next_access_token("rotated-access");
    let dir = scratch_dir();
    let file = dir.join("credentials.json");
    let proxy = Arc::new(proxy(
        &fake,
        &oauth,
        &file,
        &access_token_expiring_in(60),
        "seed-refresh",
    ));

    let callers: Vec<_> = (0..32)
        .map(|_| {
            let proxy = proxy.clone();
            std::thread::spawn(move || (0..32).filter(|_| ask(&proxy).status == 200).count())
        })
        .collect();
    let succeeded: usize = callers.into_iter().map(|c| c.join().expect("caller")).sum();
    assert_eq!(succeeded, 1024);
    eprintln!(
        "refreshes for 1024 requests from 32 concurrent callers with a stale token: {}",
        oauth.calls()
    );
    assert_eq!(oauth.calls(), 1);
    let saved = stored(&file);
    assert_eq!(saved["tokens"]["refresh_token"], "refresh-token-1");
    assert_eq!(saved["tokens"]["access_token"], "rotated-access");
    assert_eq!(saved["OPENAI_API_KEY"], Value::Null);
    assert!(
        saved["last_refresh"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
}

#[test]
fn a_restart_keeps_the_rotated_token_and_a_new_login_reseeds() {
    let fake = FakeCodex::start();
    let oauth = FakeOAuth::start("seed-refresh");
    fake.set_access_token("rotated-access");
    oauth.set_next_access_token("rotated-access");
    let dir = scratch_dir();
    let file = dir.join("credentials.json");
    let stale = access_token_expiring_in(60);
    {
        let first = proxy(&fake, &oauth, &file, &stale, "seed-refresh");
        assert_eq!(ask(&first).status, 200);
    }
    assert_eq!(oauth.calls(), 1);
    // Same environment after a restart: the file wins and the spent seed token is not reused.
    let second = proxy(&fake, &oauth, &file, &stale, "seed-refresh");
    assert_eq!(ask(&second).status, 200);
    assert_eq!(oauth.calls(), 1, "the stored token is still fresh");
    fake.set_access_token("third-access");
    oauth.set_next_access_token("third-access");
    assert_eq!(
        ask(&second).status,
        200,
        "401 → refresh with the stored refresh token → retry"
    );
    assert_eq!(oauth.calls(), 2);
    assert_eq!(oauth.reuse_errors(), 0);
    assert_eq!(stored(&file)["tokens"]["refresh_token"], "refresh-token-2");
    drop(second);

    // The user logged in again and put a new refresh token in the environment.
    let oauth_new = FakeOAuth::start("brand-new-login");
    oauth_new.set_next_access_token("third-access");
    let third = proxy(&fake, &oauth_new, &file, &stale, "brand-new-login");
    assert_eq!(
        stored(&file)["tokens"]["refresh_token"],
        "brand-new-login",
        "re-seeded"
    );
    assert_eq!(ask(&third).status, 200);
    assert_eq!(oauth_new.calls(), 1);
    let state = std::fs::read_to_string(file.with_file_name("credentials.json.proxy-state.json"))
        .expect("state");
    assert!(
        !state.contains("brand-new-login"),
        "the state file holds hashes only"
    );
}

#[test]
fn a_permanent_failure_is_remembered_across_restarts_until_the_credentials_change() {
    let fake = FakeCodex::start();
    let oauth = FakeOAuth::start("seed-refresh");
    oauth.set_mode(OAuthMode::Fail {
        status: 400,
        body: json!({"error": {"message": "Your refresh token has already been used to generate a new access token.", "type": "invalid_request_error", "param": null, "code": "refresh_token_reused"}}).to_string(),
    });
    let dir = scratch_dir();
    let file = dir.join("credentials.json");
    let expired = access_token_expiring_in(0);
    {
        let proxy = proxy(&fake, &oauth, &file, &expired, "seed-refresh");
        for _ in 0..3 {
            let error = ask(&proxy).expect_error(503);
            assert_eq!(error["code"], "credentials_unavailable");
            let message = error["message"].as_str().expect("message");
            assert!(
                message.contains("codex-sub-proxy --login")
                    && message.contains("refresh_token_reused")
            );
            assert!(
                !message.contains("seed-refresh"),
                "no secret in the message"
            );
        }
        assert_eq!(oauth.calls(), 1, "the token endpoint is not hammered");
        let ready = get(&format!("{}/readyz", proxy.base));
        assert_eq!(ready.status, 503);
        assert_eq!(ready.json()["ready"], false);
    }
    // A restart remembers the failure without calling the token endpoint.
    let proxy = proxy(&fake, &oauth, &file, &expired, "seed-refresh");
    ask(&proxy).expect_error(503);
    assert_eq!(oauth.calls(), 1);
    // New credentials land in the file (a `--login`, another replica): they are picked up.
    let mut document = stored(&file);
    document["tokens"]["access_token"] = json!("test-access-token");
    document["tokens"]["refresh_token"] = json!("after-login");
    std::fs::write(&file, document.to_string()).expect("write");
    assert_eq!(ask(&proxy).status, 200);
    assert_eq!(oauth.calls(), 1);
}

#[test]
fn transient_token_endpoint_failures_are_retried_then_reported() {
    let fake = FakeCodex::start();
    let oauth = FakeOAuth::start("seed-refresh");
    oauth.set_mode(OAuthMode::Fail {
        status: 503,
        body: "{}".into(),
    });
    let dir = scratch_dir();
    let file = dir.join("credentials.json");
    let proxy = proxy(
        &fake,
        &oauth,
        &file,
        &access_token_expiring_in(0),
        "seed-refresh",
    );
    let error = ask(&proxy).expect_error(502);
    assert_eq!(error["code"], "token_refresh_failed");
    assert_eq!(oauth.calls(), 3, "one call and two retries with backoff");
    assert_eq!(
        stored(&file)["tokens"]["refresh_token"],
        "seed-refresh",
        "the file is untouched"
    );
    // The endpoint recovers: the next request refreshes normally.
    oauth.set_mode(OAuthMode::Rotate);
    oauth.set_next_access_token("test-access-token");
    assert_eq!(ask(&proxy).status, 200);
}

#[test]
fn readyz_reports_credentials_without_secrets() {
    let fake = FakeCodex::start();
    let oauth = FakeOAuth::start("seed-refresh");
    let dir = scratch_dir();
    let file = dir.join("credentials.json");
    let access = access_token_expiring_in(3600);
    let proxy = proxy(&fake, &oauth, &file, &access, "seed-refresh");
    let unauthenticated = harness::get_with_auth(&format!("{}/readyz", proxy.base), None);
    assert_eq!(unauthenticated.status, 401);
    let ready = get(&format!("{}/readyz", proxy.base));
    assert_eq!(ready.status, 200);
    let body = ready.json();
    assert_eq!(body["ready"], true);
    assert_eq!(body["credentials"]["account"], "…9f3c");
    assert_eq!(body["credentials"]["plan_type"], "plus");
    assert!(
        body["credentials"]["access_token_expires_at"]
            .as_u64()
            .is_some_and(|e| e > unix_now())
    );
    assert!(!ready.body.contains(&access) && !ready.body.contains("seed-refresh"));
}

#[test]
fn an_existing_codex_cli_auth_json_is_used_and_kept_valid() {
    let fake = FakeCodex::start();
    let oauth = FakeOAuth::start("cli-refresh");
    oauth.set_next_access_token("test-access-token");
    let dir = scratch_dir();
    let file = dir.join("auth.json");
    let cli_file = json!({
        "auth_mode": "chatgpt",
        "OPENAI_API_KEY": null,
        "tokens": {"id_token": unsigned_token(&json!({"email": "a@example.com"})), "access_token": access_token_expiring_in(0), "refresh_token": "cli-refresh", "account_id": "acct-1"},
        "last_refresh": "2026-01-01T00:00:00Z"
    });
    std::fs::write(&file, cli_file.to_string()).expect("write");
    let file_text = file.display().to_string();
    let auth = oauth.base_url();
    let proxy = TestProxy::start(config(
        &fake.base_url(),
        &[
            ("CREDENTIALS_FILE", file_text.as_str()),
            ("AUTH_BASE_URL", auth.as_str()),
            ("OPENAI_ACCESS_TOKEN", ""),
            ("OPENAI_REFRESH_TOKEN", ""),
        ],
    ));
    assert_eq!(ask(&proxy).status, 200);
    let saved = stored(&file);
    assert_eq!(
        saved["auth_mode"], "chatgpt",
        "fields the proxy does not manage are kept"
    );
    assert_eq!(saved["tokens"]["refresh_token"], "refresh-token-1");
    assert_eq!(saved["tokens"]["account_id"], "acct-1");
    assert!(saved["tokens"]["id_token"].is_string());
    let sent = fake.responses_requests().pop().expect("request");
    assert_eq!(sent.header("chatgpt-account-id"), Some("acct-1"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_scratch_directory_is_removed_with_its_files_when_dropped() {
    let dir = scratch_dir();
    let path = dir.to_path_buf();
    std::fs::create_dir(dir.join("nested")).expect("mkdir");
    std::fs::write(dir.join("nested/credentials.json"), "{}").expect("write");
    assert!(path.join("nested/credentials.json").is_file());
    drop(dir);
    assert!(!path.exists(), "{} was left behind", path.display());
}

#[test]
fn a_test_proxy_keeps_its_default_credentials_directory_until_dropped() {
    let fake = FakeCodex::start();
    let proxy = TestProxy::start(config(&fake.base_url(), &[]));
    let file = proxy.proxy.config.credentials_file.clone();
    assert_eq!(ask(&proxy).status, 200);
    assert!(file.is_file(), "the proxy seeded {}", file.display());
    let dir = file.parent().expect("the file's directory").to_path_buf();
    drop(proxy);
    assert!(!dir.exists(), "{} was left behind", dir.display());
}
