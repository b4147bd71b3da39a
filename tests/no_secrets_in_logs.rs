//! Runs the real binary at the most verbose log level through successful, failing and
//! refreshing traffic, then checks that no key, token, prompt or completion reached its output,
//! nor the word `SECRET` that all of them carry. (Every other test is scanned too, for the
//! secrets `tests/support/secrets.rs` registers; this one also covers the wrong key a caller
//! sends and the prompt in a body the proxy cannot parse, which no fake sees.)

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
#[path = "support/proxy_process.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod proxy_process;
#[path = "support/secrets.rs"]
mod secrets;

use fake_codex::{FakeCodex, Script};
use fake_oauth::FakeOAuth;
use harness::{Answer, client, scratch_dir, stream_events};
use proxy_process::ProxyProcess;
use serde_json::{Value, json};

const PROXY_KEY: &str = "sk-proxy-SECRET-key-7b1e";
const ACCESS: &str = "access-SECRET-initial-91c2";
const REFRESH: &str = "refresh-SECRET-initial-55aa";
const ROTATED_ACCESS: &str = "access-SECRET-rotated-0d3f";
const PROMPT: &str = "PROMPT-SECRET-the-launch-codes";
const COMPLETION: &str = "COMPLETION-SECRET-forty-two";

fn post(base: &str, key: &str, body: &Value) -> Answer {
    let response = client()
        .post(format!("{base}/v1/responses"))
        .header("Authorization", format!("Bearer {key}"))
        .send_json(body)
        .expect("POST");
    let status = response.status().as_u16();
    let body = response.into_body().read_to_string().expect("body");
    Answer {
        status,
        headers: Default::default(),
        body,
    }
}

#[test]
fn nothing_secret_reaches_the_logs_at_trace_level() {
    let fake = FakeCodex::start();
    let oauth = FakeOAuth::start(REFRESH);
    oauth.set_next_access_token(ROTATED_ACCESS);
    fake.set_access_token(ACCESS);
    fake.set_default_script(Script::text(COMPLETION));
    let dir = scratch_dir();
    let codex = fake.base_url();
    let auth = oauth.base_url();
    let file = dir.join("credentials.json").display().to_string();
    let proxy = ProxyProcess::start(
        &[
            (
                "PROXY_API_KEY",
                &format!("{PROXY_KEY},{}", harness::PROXY_KEY),
            ),
            ("OPENAI_ACCESS_TOKEN", ACCESS),
            ("OPENAI_REFRESH_TOKEN", REFRESH),
            ("CODEX_BASE_URL", &codex),
            ("AUTH_BASE_URL", &auth),
            ("CREDENTIALS_FILE", &file),
            ("LOG_LEVEL", "trace"),
        ],
        &dir,
    )
    .expect("proxy starts");
    let base = proxy.base();
    let ask = json!({"model": "gpt-5.5", "input": PROMPT});

    // Success, streaming and not.
    assert_eq!(post(&base, PROXY_KEY, &ask).status, 200);
    let mut streaming = ask.clone();
    streaming["stream"] = json!(true);
    let (status, _, events) = stream_events(&proxy.addr, "/v1/responses", &streaming);
    assert_eq!(status, 200);
    assert!(!events.is_empty());
    // A wrong key that looks like a secret.
    assert_eq!(post(&base, "sk-WRONG-SECRET-guess", &ask).status, 401);
    // Bad input echoing prompt text.
    let broken = format!("{{\"model\":\"gpt-5.5\",\"input\":\"{PROMPT}");
    let answer = client()
        .post(format!("{base}/v1/responses"))
        .header("Authorization", format!("Bearer {PROXY_KEY}"))
        .send(broken)
        .expect("POST");
    assert_eq!(answer.status().as_u16(), 400);
    // An upstream 400 whose detail quotes the prompt.
    fake.push_script(Script::bad_request(&format!("cannot handle {PROMPT}")));
    assert_eq!(post(&base, PROXY_KEY, &ask).status, 400);
    // A 401 upstream: the proxy refreshes (sending the refresh token) and retries.
    fake.set_access_token(ROTATED_ACCESS);
    assert_eq!(post(&base, PROXY_KEY, &ask).status, 200);
    assert_eq!(oauth.calls(), 1);
    // A stream that fails mid-way.
    fake.push_script(Script::EofWithoutCompletion {
        text: COMPLETION.into(),
    });
    let _ = stream_events(&proxy.addr, "/v1/responses", &streaming);

    std::thread::sleep(std::time::Duration::from_millis(200));
    let logs = proxy.logs().join("\n");
    assert!(
        logs.lines().count() >= 6,
        "the proxy logged its requests:\n{logs}"
    );
    for secret in [
        PROXY_KEY,
        harness::PROXY_KEY,
        "sk-WRONG-SECRET-guess",
        ACCESS,
        REFRESH,
        ROTATED_ACCESS,
        "refresh-token-1",
        PROMPT,
        COMPLETION,
    ] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs:\n{logs}"
        );
    }
    assert!(!logs.contains("SECRET"), "something secret leaked:\n{logs}");
}
