//! SIGTERM to the real binary (what `docker stop` sends): it stops accepting, lets an in-flight
//! stream run to its end, and exits 0; and a bad configuration stops the start naming the variable.

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

use std::io::BufReader;
use std::process::Command;
use std::time::{Duration, Instant};

use fake_codex::{FakeCodex, Script};
use harness::{PROXY_KEY, raw_request, read_chunk, read_head, scratch_dir};
use proxy_process::ProxyProcess;
use serde_json::json;

#[test]
fn sigterm_lets_the_stream_finish_then_exits_zero() {
    let fake = FakeCodex::start();
    fake.set_default_script(Script::Slow {
        text: "one two three four five six".into(),
        deltas: 6,
        delay_ms: 150,
    });
    let dir = scratch_dir();
    let codex = fake.base_url();
    let file = dir.join("credentials.json").display().to_string();
    let mut proxy = ProxyProcess::start(
        &[
            ("PROXY_API_KEY", PROXY_KEY),
            ("OPENAI_ACCESS_TOKEN", "test-access-token"),
            ("CODEX_BASE_URL", &codex),
            ("CREDENTIALS_FILE", &file),
            ("SHUTDOWN_GRACE_SECS", "20"),
        ],
        &dir,
    )
    .expect("proxy starts");
    let body = json!({"model": "gpt-5.5", "input": "hi", "stream": true});
    let stream = raw_request(
        &proxy.addr,
        "POST",
        "/v1/responses",
        body.to_string().as_bytes(),
    );
    let mut reader = BufReader::new(stream);
    assert_eq!(read_head(&mut reader).0, 200);
    assert!(read_chunk(&mut reader).is_some(), "the stream has started");

    let sent = Command::new("kill")
        .args(["-TERM", &proxy.pid().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    // New connections are refused soon after the signal...
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&proxy.addr).is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // ...while the in-flight stream runs to its end.
    let mut text = Vec::new();
    while let Some(chunk) = read_chunk(&mut reader) {
        text.extend(chunk);
    }
    let text = String::from_utf8(text).expect("utf-8");
    assert!(
        text.contains("event: response.completed"),
        "the stream was not cut short:\n{text}"
    );
    assert_eq!(proxy.wait_exit(Duration::from_secs(20)), Some(0));
    let logs = proxy.logs().join("\n");
    assert!(logs.contains("shutdown requested"), "{logs}");
}

#[test]
fn a_bad_value_stops_the_start_and_names_the_variable() {
    let dir = scratch_dir();
    let failure = ProxyProcess::start(&[("WORKERS", "lots")], &dir)
        .err()
        .expect("refused to start");
    assert!(failure.contains("invalid WORKERS"), "{failure}");
    let failure = ProxyProcess::start(&[("HOST", "0.0.0.0")], &dir)
        .err()
        .expect("refused to start");
    assert!(
        failure.contains("PROXY_API_KEY") && failure.contains("PROXY_ALLOW_NO_AUTH"),
        "{failure}"
    );
}
