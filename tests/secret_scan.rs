//! The secret scan of the test support can fail: a registered secret in a captured log line,
//! in a dropped proxy's logs, or in an error body a harness helper receives is reported, by
//! kind and without the secret. Checks that need a registry or a capture of their own use
//! local ones, so no leak staged here reaches the scans of other tests.

#![expect(clippy::expect_used, reason = "test helpers fail loudly")]

#[path = "support/fake_codex.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod fake_codex;
#[path = "support/harness.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod harness;
#[path = "support/secrets.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod secrets;

use std::panic::{AssertUnwindSafe, catch_unwind};

use fake_codex::{FakeCodex, Script};
use harness::log_capture::{self, CapturingLogger, RETAINED_BYTES};
use harness::{TestProxy, config, post_json};
use log::{Level, Log, Record};
use secrets::{SecretKind, SecretRegistry};
use serde_json::json;

/// A registry of this test's own, alive as long as the loggers that use it.
fn local_registry() -> &'static SecretRegistry {
    Box::leak(Box::new(SecretRegistry::new()))
}

fn log_through(logger: &CapturingLogger, message: &str) {
    logger.log(
        &Record::builder()
            .args(format_args!("{message}"))
            .level(Level::Debug)
            .target("codex_sub_proxy::stream_pump")
            .build(),
    );
}

/// The message a panic carried.
fn panic_message(outcome: std::thread::Result<()>) -> String {
    let payload = outcome.expect_err("the check failed the test");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

#[test]
fn a_logged_secret_is_reported_by_kind_with_the_secret_masked() {
    let registry = local_registry();
    let logger = CapturingLogger::new(registry);
    log_through(&logger, "nothing to see");
    assert_eq!(logger.scan(), []);
    assert!(registry.register(SecretKind::RefreshToken, "refresh-LEAK-0001"));
    log_through(&logger, "refreshing with refresh-LEAK-0001 now");
    let findings = logger.scan();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].kind, SecretKind::RefreshToken);
    assert!(
        findings[0]
            .masked
            .ends_with("refreshing with <refresh token> now"),
        "the line is shown in the proxy's format with the secret masked: {}",
        findings[0].masked
    );
    assert!(
        findings[0]
            .masked
            .contains(" DEBUG codex_sub_proxy::stream_pump: ")
    );
    // Reported once: the next scan starts clean.
    assert_eq!(logger.scan(), []);
}

#[test]
fn a_secret_registered_after_its_line_was_scanned_is_still_found() {
    let registry = local_registry();
    let logger = CapturingLogger::new(registry);
    log_through(&logger, "request body: PROMPT-late-registered-9");
    assert_eq!(logger.scan(), []);
    registry.register(SecretKind::Prompt, "PROMPT-late-registered-9");
    let findings = logger.scan();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].kind, SecretKind::Prompt);
}

#[test]
fn checked_lines_beyond_the_retained_window_are_forgotten() {
    let registry = local_registry();
    let logger = CapturingLogger::new(registry);
    let filler = "x".repeat(1000);
    for _ in 0..(RETAINED_BYTES / 1000 + 100) {
        log_through(&logger, &filler);
    }
    assert_eq!(logger.scan(), []);
    let (seen, held) = logger.capture().counts();
    assert!(seen > u64::try_from(held).expect("count") && held <= RETAINED_BYTES / 1000 + 1);
}

#[test]
fn many_secrets_are_searched_through_the_prefix_index() {
    let registry = local_registry();
    for n in 0..100 {
        registry.register(SecretKind::Completion, &format!("completion number {n:03}"));
    }
    let line = "relayed completion number 042 to the client";
    let finding = registry.find(line, 0, false).expect("found");
    assert_eq!(finding.kind, SecretKind::Completion);
    assert_eq!(finding.masked, "relayed <completion text> to the client");
    assert_eq!(
        registry.find(line, 43, false),
        None,
        "secrets before `from` are skipped"
    );
    assert_eq!(
        registry
            .find("completion number 0991", 0, false)
            .map(|f| f.length),
        Some(21)
    );
}

#[test]
fn the_registration_rule_leaves_out_short_words_and_public_configuration() {
    let registry = local_registry();
    assert!(!registry.register(SecretKind::ProxyKey, "old-key"), "short");
    assert!(
        !registry.register(SecretKind::Prompt, "assistant"),
        "one word"
    );
    assert!(
        registry.register(SecretKind::AccessToken, "abcdefghij"),
        "credentials always"
    );
    assert!(
        !registry.register(SecretKind::Prompt, "You are a helpful assistant."),
        "the default instructions are logged at start"
    );
    registry.declare_public("Official Codex prompt.");
    assert!(!registry.register(SecretKind::Prompt, "Official Codex prompt."));
    assert!(registry.register(SecretKind::Prompt, "Say hello"));
    let long = format!("{}TAIL", "long prompt ".repeat(10));
    assert!(registry.register(SecretKind::Prompt, &long));
    let start = &long[..secrets::MAX_CHARS];
    assert_eq!(
        registry
            .find(&format!("logged: {start}"), 0, false)
            .map(|f| f.kind),
        Some(SecretKind::Prompt),
        "a line quoting the start of a long prompt is caught"
    );
}

#[test]
fn error_bodies_may_quote_prompts_but_not_credentials() {
    let registry = local_registry();
    registry.register(SecretKind::Prompt, "PROMPT-quoted-by-upstream");
    registry.register(SecretKind::ProxyKey, "sk-proxy-LEAK-77");
    let quoted = r#"{"error":{"message":"cannot handle PROMPT-quoted-by-upstream"}}"#;
    assert_eq!(registry.find(quoted, 0, true), None);
    let leaked = r#"{"error":{"message":"bad key sk-proxy-LEAK-77"}}"#;
    let finding = registry.find(leaked, 0, true).expect("found");
    assert_eq!(finding.kind, SecretKind::ProxyKey);
    assert!(!finding.masked.contains("LEAK"));
}

/// Runs in one test, so no other scan of this binary's global capture runs at the same time.
#[test]
fn the_global_capture_a_dropped_proxy_and_the_helpers_report_leaks() {
    let fake = FakeCodex::start();
    let mut proxy = Some(TestProxy::start(config(&fake.base_url(), &[])));

    // A record logged anywhere in the process reaches the capture.
    secrets::register(SecretKind::Completion, "COMPLETION-global-leak-1");
    log::warn!("answer was COMPLETION-global-leak-1");
    let findings = log_capture::install().scan();
    assert_eq!(
        findings.iter().map(|f| f.kind).collect::<Vec<_>>(),
        [SecretKind::Completion]
    );

    // Dropping a proxy scans, and fails the test with the kind, never the secret.
    secrets::register(SecretKind::IdToken, "id-token-global-leak-2");
    log::info!("id token id-token-global-leak-2");
    let message = panic_message(catch_unwind(AssertUnwindSafe(|| drop(proxy.take()))));
    assert!(message.contains("id token (22 bytes)"), "{message}");
    assert!(!message.contains("global-leak-2"), "{message}");

    // An upstream 400 keeps its detail; one that quotes a token fails the helper. (The proxy
    // removes the access token it sent from such a detail; the refresh token it never sends,
    // so only a fake can quote it.)
    let proxy = TestProxy::start(config(&fake.base_url(), &[]));
    fake.push_script(Script::bad_request("cannot handle test-refresh-token here"));
    let url = format!("{}/v1/responses", proxy.base);
    let body = json!({"model": "gpt-5.5", "input": "ask"});
    let message = panic_message(catch_unwind(|| {
        post_json(&url, &body);
    }));
    assert!(
        message.contains("refresh token") && message.contains("error body"),
        "{message}"
    );
    assert!(!message.contains("test-refresh-token"), "{message}");
    // The same detail quoting a prompt is the contract, and passes.
    fake.push_script(Script::bad_request("cannot handle PROMPT-by-design-3"));
    let body = json!({"model": "gpt-5.5", "input": "PROMPT-by-design-3"});
    assert_eq!(post_json(&url, &body).status, 400);
}
