//! A thousand idle connections (issue 7): with 1,000 connections that send nothing and 50 that
//! stall inside their request head, `/healthz` and a normal request still answer promptly, and
//! once the clients hang up the proxy's threads go away again.
//!
//! The proxy is the real binary in a child process, so its `/proc/<pid>/status` (threads,
//! resident memory) counts the proxy alone. tiny_http serves each connection on its own thread,
//! so the thread count follows the open connections; the figures are printed, and only the
//! service times and the return to the idle thread count are asserted.

#![expect(clippy::expect_used, reason = "test helpers fail loudly")]

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

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use fake_codex::FakeCodex;
use harness::{PROXY_KEY, get, post_json, scratch_dir};
use proxy_process::{ProxyProcess, usage, wait_for_usage};
use serde_json::json;

/// Connections that never send a byte.
const IDLE: usize = 1_000;
/// Connections that send part of a request head, then stall.
const PARTIAL: usize = 50;
/// Descriptors each side needs beyond the connections (listeners, pipes, the fakes, files).
const FD_MARGIN: u64 = 200;
/// Longest `/healthz` and one normal request may take together with every connection open.
const PROMPTLY: Duration = Duration::from_secs(3);
/// Longest the proxy may take to start a thread for every connection, or to end them after.
const SETTLE: Duration = Duration::from_secs(30);

/// The soft limit on open files of this process (the proxy, its child, inherits it).
fn open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("proc limits");
    limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .unwrap_or(u64::MAX)
}

/// `/healthz`, then one normal request; returns (healthz time, total time).
fn serve_both(base: &str) -> (Duration, Duration) {
    let started = Instant::now();
    assert_eq!(get(&format!("{base}/healthz")).status, 200);
    let health = started.elapsed();
    let answer = post_json(
        &format!("{base}/v1/responses"),
        &json!({"model": "gpt-5.5", "input": "hi"}),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    (health, started.elapsed())
}

#[test]
fn a_thousand_idle_connections_do_not_block_service() {
    let needed = (IDLE + PARTIAL) as u64 + FD_MARGIN;
    let limit = open_files_limit();
    assert!(
        limit >= needed,
        "this test opens {} connections and needs at least {needed} open files per process; \
         the limit is {limit}: raise it (`ulimit -n {needed}`) and run again",
        IDLE + PARTIAL
    );
    let fake = FakeCodex::start();
    let dir = scratch_dir();
    let file = dir.join("credentials.json").display().to_string();
    let codex = fake.base_url();
    let proxy = ProxyProcess::start(
        &[
            ("PROXY_API_KEY", PROXY_KEY),
            ("OPENAI_ACCESS_TOKEN", "test-access-token"),
            ("OPENAI_REFRESH_TOKEN", "test-refresh-token"),
            ("CODEX_BASE_URL", &codex),
            ("AUTH_BASE_URL", "http://127.0.0.1:9"),
            ("CREDENTIALS_FILE", &file),
            // Longer than the test, so the proxy's own timeout does not close the connections.
            ("CLIENT_TIMEOUT_SECS", "60"),
        ],
        &dir,
    )
    .expect("proxy starts");
    let base = proxy.base();
    let pid = proxy.pid();

    serve_both(&base);
    let (before_health, before_total) = serve_both(&base);
    let before = usage(pid);
    eprintln!(
        "before: {} threads, {} KiB RSS; healthz {before_health:?}, healthz + request {before_total:?}",
        before.threads, before.rss_kib
    );

    let opening = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut connect = || {
        let started = Instant::now();
        let stream = TcpStream::connect(&proxy.addr).expect("connect");
        slowest = slowest.max(started.elapsed());
        stream
    };
    let idle: Vec<TcpStream> = (0..IDLE).map(|_| connect()).collect();
    let mut partial: Vec<TcpStream> = (0..PARTIAL).map(|_| connect()).collect();
    for stream in &mut partial {
        stream
            .write_all(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n")
            .expect("partial head");
    }
    let opened = opening.elapsed();
    // tiny_http gives every accepted connection a thread of its own (its few spare threads
    // take the first ones): wait until there are at least as many threads as connections.
    let (with, accepted_in) = wait_for_usage(pid, SETTLE, |now| now.threads >= IDLE + PARTIAL);
    eprintln!(
        "opened {} connections in {opened:?} (slowest connect {slowest:?}); {} threads, \
         {} KiB RSS after {accepted_in:?}",
        IDLE + PARTIAL,
        with.threads,
        with.rss_kib
    );
    assert!(
        with.threads >= IDLE + PARTIAL,
        "every connection was accepted within {SETTLE:?}: {with:?}"
    );

    let (health, total) = serve_both(&base);
    let during = usage(pid);
    eprintln!(
        "with {} idle connections: healthz {health:?}, healthz + request {total:?}; \
         {} threads, {} KiB RSS ({} KiB more than before)",
        IDLE + PARTIAL,
        during.threads,
        during.rss_kib,
        during.rss_kib.saturating_sub(before.rss_kib)
    );
    assert!(total < PROMPTLY, "took {total:?}");

    drop(idle);
    drop(partial);
    // A connection thread ends when its client hangs up and then, idle, after tiny_http's
    // 5-second keep-alive for spare threads.
    let (after, settled_in) = wait_for_usage(pid, SETTLE, |now| now.threads <= before.threads + 8);
    let (after_health, after_total) = serve_both(&base);
    eprintln!(
        "after the clients hung up: {} threads after {settled_in:?}, {} KiB RSS; healthz \
         {after_health:?}, healthz + request {after_total:?}",
        after.threads, after.rss_kib
    );
    assert!(
        after.threads <= before.threads + 8,
        "the connection threads end within {SETTLE:?}: {} before, {} after",
        before.threads,
        after.threads
    );
    assert!(after_total < PROMPTLY, "took {after_total:?}");
}
