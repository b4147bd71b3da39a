//! TLS against a real TLS server whose certificate the proxy must refuse (issue 7): the Codex
//! backend and the token endpoint on a loopback rustls server with a self-signed test
//! certificate. Each case checks what the caller gets, that the server saw a ClientHello, sent
//! its certificate and had the handshake ended by the proxy (over TLS 1.2 with an `unknown_ca`
//! alert), so the refusal is the certificate's and not a connection failure; a trusting client
//! completes the same handshake; and the proxy stays usable.

#[path = "support/fake_codex.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod fake_codex;
#[path = "support/harness.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod harness;
#[path = "support/secrets.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod secrets;
#[path = "support/tls_upstream.rs"]
mod tls_upstream;

use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_codex::FakeCodex;
use harness::{
    Answer, PROXY_KEY, TestProxy, access_token_expiring_at, config, get, post_json, scratch_dir,
    unix_now, wait_until,
};
use rustls::AlertDescription;
use serde_json::{Value, json};
use tls_upstream::{Handshake, TlsUpstream, Versions};

/// Short upstream timeouts and no upstream retries, so every failure shows at once.
const FAST: &[(&str, &str)] = &[
    ("UPSTREAM_MAX_RETRIES", "0"),
    ("UPSTREAM_CONNECT_TIMEOUT_SECS", "2"),
    ("UPSTREAM_HEADERS_TIMEOUT_SECS", "2"),
    ("UPSTREAM_IDLE_TIMEOUT_SECS", "2"),
    ("CLIENT_TIMEOUT_SECS", "5"),
];

/// Secrets the test proxies hold; none may reach a caller.
const SECRETS: &[&str] = &[
    PROXY_KEY,
    "test-access-token",
    "test-refresh-token",
    "seed-refresh",
];

/// The prompt every request sends (a completion or prompt must not be echoed in errors).
const PROMPT: &str = "a prompt that must stay private";

/// Longest a refused handshake may take to reach the caller as an error.
const PROMPTLY: Duration = Duration::from_secs(3);

/// The four model calls: both endpoints, streaming and not.
fn model_calls() -> Vec<(&'static str, &'static str, Value)> {
    let chat = |stream: bool| {
        json!({"model": "gpt-5.5", "stream": stream,
            "messages": [{"role": "user", "content": PROMPT}]})
    };
    vec![
        (
            "responses",
            "/v1/responses",
            json!({"model": "gpt-5.5", "input": PROMPT}),
        ),
        (
            "responses, streaming",
            "/v1/responses",
            json!({"model": "gpt-5.5", "input": PROMPT, "stream": true}),
        ),
        ("chat", "/v1/chat/completions", chat(false)),
        ("chat, streaming", "/v1/chat/completions", chat(true)),
    ]
}

/// Asserts an OpenAI-shaped error with this status and code and no secret; returns its message.
fn expect_error_without_secrets(case: &str, answer: &Answer, status: u16, code: &str) -> String {
    let error = answer.expect_error(status);
    assert_eq!(error["code"], code, "{case}: {}", answer.body);
    for secret in SECRETS.iter().chain([&PROMPT]) {
        assert!(
            !answer.body.contains(secret),
            "{case}: a secret reached the caller: {}",
            answer.body
        );
    }
    error["message"].as_str().unwrap_or_default().to_string()
}

/// Asserts the message names the problem: a TLS certificate from an unknown issuer.
fn names_the_tls_problem(case: &str, message: &str) {
    assert!(
        message.contains("TLS certificate from an unknown issuer"),
        "{case}: the cause should name the untrusted certificate: {message}"
    );
}

/// Asserts every handshake got a ClientHello, sent the certificate, and was ended by the client.
fn all_refused_by_the_client(handshakes: &[Handshake]) {
    for handshake in handshakes {
        assert!(
            handshake.client_aborted_after_the_certificate(),
            "a ClientHello, the server's certificate, then the client ended it: {handshake:?}"
        );
    }
}

/// The routes that need no upstream answer at once; no worker is left busy. (The worker that
/// answered the failed call counts itself idle just after its answer left, so the gauge is
/// read until it shows only the `/metrics` request itself, within the same two seconds.)
fn still_serves_local_routes(proxy: &TestProxy) {
    let started = Instant::now();
    assert_eq!(get(&format!("{}/healthz", proxy.base)).status, 200);
    assert_eq!(get(&format!("{}/v1/models", proxy.base)).status, 200);
    let mut metrics = String::new();
    let idle = wait_until(Duration::from_secs(2), || {
        metrics = get(&format!("{}/metrics", proxy.base)).body;
        metrics.contains("codex_proxy_busy_workers 1\n")
    });
    assert!(
        idle,
        "only the /metrics request itself is being served: {metrics}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn an_untrusted_backend_certificate_is_502_unreachable_naming_tls() {
    let tls = TlsUpstream::start();
    let proxy = TestProxy::start(config(&tls.url("/backend-api/codex"), FAST));
    let calls = model_calls();
    for (case, path, body) in &calls {
        let started = Instant::now();
        let answer = post_json(&format!("{}{path}", proxy.base), body);
        let elapsed = started.elapsed();
        eprintln!(
            "{case}: {} in {elapsed:?}: {}",
            answer.status,
            answer.body.trim()
        );
        let message = expect_error_without_secrets(case, &answer, 502, "upstream_unreachable");
        names_the_tls_problem(case, &message);
        assert!(elapsed < PROMPTLY, "{case}: took {elapsed:?}");
    }
    let handshakes = tls.wait_for_handshakes(calls.len(), Duration::from_secs(5));
    assert_eq!(
        handshakes.len(),
        calls.len(),
        "one handshake per call (no retries): {handshakes:?}"
    );
    all_refused_by_the_client(&handshakes);
    still_serves_local_routes(&proxy);
}

#[test]
fn over_tls_1_2_the_server_reads_the_proxys_unknown_ca_alert() {
    let tls = TlsUpstream::start_with(Versions::Tls12Only);
    let proxy = TestProxy::start(config(&tls.url("/backend-api/codex"), FAST));
    for (case, path, body) in &model_calls()[..2] {
        let answer = post_json(&format!("{}{path}", proxy.base), body);
        let message = expect_error_without_secrets(case, &answer, 502, "upstream_unreachable");
        names_the_tls_problem(case, &message);
    }
    let handshakes = tls.wait_for_handshakes(2, Duration::from_secs(5));
    assert_eq!(handshakes.len(), 2, "{handshakes:?}");
    for handshake in &handshakes {
        assert!(handshake.client_hello, "{handshake:?}");
        assert_eq!(
            handshake.client_alert(),
            Some(AlertDescription::UnknownCA),
            "the proxy refused the certificate as signed by an unknown CA: {handshake:?}"
        );
    }
    still_serves_local_routes(&proxy);
}

#[test]
fn the_test_server_completes_a_handshake_with_a_client_that_trusts_its_certificate() {
    // The control: the same server and certificate are fine for a client that trusts them, so
    // the proxy's abort above is its refusal of the certificate and nothing else.
    let tls = TlsUpstream::start();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(tls_upstream::certificate()).expect("root");
    let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut client = rustls::ClientConnection::new(Arc::new(client_config), name).expect("client");
    let mut socket = TcpStream::connect(tls.addr()).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    while client.is_handshaking() {
        client
            .complete_io(&mut socket)
            .expect("handshake with a trusting client");
    }
    drop(socket);
    let handshakes = tls.wait_for_handshakes(1, Duration::from_secs(5));
    assert_eq!(handshakes.len(), 1, "{handshakes:?}");
    assert!(handshakes[0].client_hello, "{handshakes:?}");
    assert_eq!(handshakes[0].error, None, "completed: {handshakes:?}");
}

#[test]
fn upstream_retries_of_a_refused_certificate_keep_their_backoff() {
    let tls = TlsUpstream::start();
    let proxy = TestProxy::start(config(
        &tls.url("/backend-api/codex"),
        &[("UPSTREAM_MAX_RETRIES", "2"), ("CLIENT_TIMEOUT_SECS", "5")],
    ));
    let started = Instant::now();
    let answer = post_json(
        &format!("{}/v1/responses", proxy.base),
        &json!({"model": "gpt-5.5", "input": PROMPT}),
    );
    let elapsed = started.elapsed();
    let message = expect_error_without_secrets("retried", &answer, 502, "upstream_unreachable");
    names_the_tls_problem("retried", &message);
    let handshakes = tls.wait_for_handshakes(3, Duration::from_secs(5));
    eprintln!(
        "with UPSTREAM_MAX_RETRIES=2: {} handshakes, answered in {elapsed:?}",
        handshakes.len()
    );
    assert_eq!(
        handshakes.len(),
        3,
        "one try and two retries: {handshakes:?}"
    );
    all_refused_by_the_client(&handshakes);
    for pair in handshakes.windows(2) {
        let gap = pair[1].accepted.duration_since(pair[0].accepted);
        assert!(
            gap >= Duration::from_millis(150),
            "retries wait for their backoff, not a tight loop: {gap:?}"
        );
    }
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    still_serves_local_routes(&proxy);
}

fn token_proxy(fake: &FakeCodex, tls: &TlsUpstream, file: &Path, access: &str) -> TestProxy {
    let file = file.display().to_string();
    let auth = tls.url("");
    TestProxy::start(config(
        &fake.base_url(),
        &[
            ("CREDENTIALS_FILE", file.as_str()),
            ("AUTH_BASE_URL", auth.as_str()),
            ("OPENAI_ACCESS_TOKEN", access),
            ("OPENAI_REFRESH_TOKEN", "seed-refresh"),
            ("UPSTREAM_CONNECT_TIMEOUT_SECS", "2"),
            ("UPSTREAM_HEADERS_TIMEOUT_SECS", "2"),
        ],
    ))
}

fn ask(proxy: &TestProxy) -> Answer {
    post_json(
        &format!("{}/v1/responses", proxy.base),
        &json!({"model": "gpt-5.5", "input": PROMPT}),
    )
}

#[test]
fn an_untrusted_token_endpoint_certificate_fails_the_refresh_and_leaves_the_file() {
    let tls = TlsUpstream::start();
    let fake = FakeCodex::start();
    let dir = scratch_dir();
    let file = dir.join("credentials.json");
    let expired = access_token_expiring_at(unix_now() - 60);
    let proxy = token_proxy(&fake, &tls, &file, &expired);
    let seeded = std::fs::read(&file).expect("the seeded credentials file");

    let started = Instant::now();
    let answer = ask(&proxy);
    let elapsed = started.elapsed();
    eprintln!(
        "refresh: {} in {elapsed:?}: {}",
        answer.status,
        answer.body.trim()
    );
    let message = expect_error_without_secrets("refresh", &answer, 502, "token_refresh_failed");
    assert!(
        !answer.body.contains(&expired),
        "no access token in the body"
    );
    names_the_tls_problem("refresh", &message);
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");

    // One try and two retries with backoff (src/credentials.rs).
    let attempts = 3;
    let first = tls.wait_for_handshakes(attempts, Duration::from_secs(5));
    eprintln!("token endpoint handshakes for one request: {}", first.len());
    assert_eq!(first.len(), attempts, "{first:?}");
    all_refused_by_the_client(&first);
    for pair in first.windows(2) {
        let gap = pair[1].accepted.duration_since(pair[0].accepted);
        assert!(
            gap >= Duration::from_millis(150),
            "backoff, not a tight loop: {gap:?}"
        );
    }
    // Nothing refreshes in the background: the next request makes the same few attempts,
    // and only it does.
    ask(&proxy).expect_error(502);
    let second = tls.wait_for_handshakes(2 * attempts, Duration::from_secs(5));
    assert_eq!(second.len(), 2 * attempts, "{second:?}");
    all_refused_by_the_client(&second);
    assert_eq!(
        fake.responses_requests().len(),
        0,
        "an expired token is not sent upstream"
    );

    assert_eq!(
        std::fs::read(&file).expect("credentials file"),
        seeded,
        "the credentials file is untouched"
    );
    let ready = get(&format!("{}/readyz", proxy.base));
    eprintln!("readyz: {} {}", ready.status, ready.body.trim());
    // A transient failure leaves the credentials refreshable, so readiness stays a question of
    // the token layer's policy; what matters here is that it names the TLS problem.
    let last_error = ready.json()["credentials"]["last_refresh_error"].clone();
    names_the_tls_problem("readyz", last_error.as_str().unwrap_or_default());
    for secret in SECRETS {
        assert!(!ready.body.contains(secret), "{}", ready.body);
    }
    assert_eq!(get(&format!("{}/healthz", proxy.base)).status, 200);
}

#[test]
fn a_proactive_refresh_refused_by_certificate_keeps_serving_with_the_valid_token() {
    let tls = TlsUpstream::start();
    let fake = FakeCodex::start();
    // Inside the 5-minute refresh window, still valid: the refresh is proactive.
    let access = access_token_expiring_at(unix_now() + 120);
    fake.set_access_token(&access);
    let dir = scratch_dir();
    let file = dir.join("credentials.json");
    let proxy = token_proxy(&fake, &tls, &file, &access);
    let seeded = std::fs::read(&file).expect("the seeded credentials file");

    let started = Instant::now();
    let answer = ask(&proxy);
    eprintln!(
        "proactive refresh refused: {} in {:?}",
        answer.status,
        started.elapsed()
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let handshakes = tls.wait_for_handshakes(1, Duration::from_secs(5));
    assert!(!handshakes.is_empty(), "a refresh was attempted");
    all_refused_by_the_client(&handshakes);
    assert_eq!(
        std::fs::read(&file).expect("credentials file"),
        seeded,
        "the credentials file is untouched"
    );
    assert_eq!(get(&format!("{}/healthz", proxy.base)).status, 200);
}
