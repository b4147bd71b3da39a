//! `scripts/smoke-test.sh` (the operator's smoke test, POSIX sh and curl) against the real binary
//! and the fake Codex backend on loopback, so `cargo test` keeps the script and the proxy in step.
//!
//! Needs `sh` and `curl` on `PATH`; fails, rather than skips, without them.

#![expect(clippy::expect_used, reason = "tests fail loudly")]

#[path = "support/fake_codex.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod fake_codex;
#[path = "support/harness.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod harness;
#[path = "support/proxy_process.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod proxy_process;
#[path = "support/secrets.rs"]
mod secrets;

use std::process::{Command, Output};

use fake_codex::{DEFAULT_ACCESS_TOKEN, FakeCodex};
use harness::{PROXY_KEY, scratch_dir};
use proxy_process::ProxyProcess;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/smoke-test.sh");

fn start_proxy(fake: &FakeCodex) -> ProxyProcess {
    let dir = scratch_dir();
    let credentials = dir.join("credentials.json").display().to_string();
    ProxyProcess::start_in(
        &[
            ("PROXY_API_KEY", PROXY_KEY),
            ("CODEX_BASE_URL", &fake.base_url()),
            ("AUTH_BASE_URL", "http://127.0.0.1:9"),
            ("OPENAI_ACCESS_TOKEN", DEFAULT_ACCESS_TOKEN),
            ("CREDENTIALS_FILE", &credentials),
        ],
        dir,
    )
    .expect("proxy starts")
}

/// Runs the script with `BASE_URL` and `PROXY_API_KEY`; no inherited HTTP proxy settings.
fn smoke(base: &str, key: &str) -> Output {
    Command::new("sh")
        .arg(SCRIPT)
        .env("BASE_URL", base)
        .env("PROXY_API_KEY", key)
        .env("SMOKE_MAX_TIME", "20")
        .env_remove("MODEL")
        .env("NO_PROXY", "*")
        .output()
        .expect("run sh scripts/smoke-test.sh")
}

fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn smoke_script_passes_against_the_binary_and_fake_backend() {
    let fake = FakeCodex::start();
    let proxy = start_proxy(&fake);
    let output = smoke(&proxy.base(), PROXY_KEY);
    let text = printed(&output);
    assert!(
        output.status.success(),
        "smoke test failed:\n{text}\nproxy log:\n{}",
        proxy.logs().join("\n")
    );
    assert!(text.contains(" passed, 0 failed"), "{text}");
    // Four model calls (responses and chat, streamed and not) reached the backend.
    assert_eq!(fake.responses_requests().len(), 4, "{text}");
    // The key went to curl in a file, so it must not have been printed anywhere.
    assert!(!text.contains(PROXY_KEY), "{text}");
}

#[test]
fn smoke_script_fails_when_the_proxy_refuses_its_key() {
    let fake = FakeCodex::start();
    let proxy = start_proxy(&fake);
    let output = smoke(&proxy.base(), "a-key-the-proxy-does-not-know");
    let text = printed(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("FAIL GET /v1/models lists"), "{text}");
    assert_eq!(fake.responses_requests().len(), 0, "{text}");
}

#[test]
fn smoke_script_fails_when_nothing_listens() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", unused.local_addr().expect("addr"));
    drop(unused);
    let output = smoke(&base, PROXY_KEY);
    let text = printed(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("0 passed, "), "{text}");
}
