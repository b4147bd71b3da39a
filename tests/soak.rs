//! Soak: the real binary (`WORKERS=8`, `QUEUE_DEPTH=16`, no upstream retries) against the fake
//! Codex backend, under mixed traffic at the worker limit for `SOAK_SECONDS` (default 60):
//! streaming and non-streaming `/v1/responses` and `/v1/chat/completions`, about 10% of clients
//! leaving mid-stream and about 10% upstream faults (500, EOF before completion,
//! `response.failed`, 429). Afterwards the process's open descriptors and threads are back at
//! the warm-up baseline and its resident memory near it, and every request that should have
//! succeeded did.
//!
//! The fake pops scripts first-in first-out for all connections, so a fault pushed by one
//! client may be served to another: each answer is checked against every outcome a script
//! could cause, and the faults seen of each kind must not outnumber the faults pushed.

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

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_codex::{DEFAULT_TEXT, FakeCodex, Script, sse_data};
use harness::{PROXY_KEY, scratch_dir};
use proxy_process::{ProxyProcess, Usage, usage, wait_for_usage};
use serde_json::{Value, json};

const WORKERS: usize = 8;
/// Mixed traffic before the baseline is taken, so pools, caches and allocator arenas exist.
const WARM_UP: Duration = Duration::from_secs(3);
/// How long the process may take to shed idle connection threads (tiny_http's pool threads
/// exit after 5 s idle) and upstream connections.
const SETTLE_LIMIT: Duration = Duration::from_secs(20);
const FD_TOLERANCE: usize = 4;
const RSS_TOLERANCE_KIB: u64 = 8 * 1024;
const SLOW_TEXT: &str = "slow stream for a client that leaves";
const FAILED_CODE: &str = "soak_injected_failure";

/// The upstream faults the soak injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    Http500,
    EofBeforeCompletion,
    ResponseFailed,
    RateLimited,
}

const FAULTS: [Fault; 4] = [
    Fault::Http500,
    Fault::EofBeforeCompletion,
    Fault::ResponseFailed,
    Fault::RateLimited,
];

impl Fault {
    fn script(self) -> Script {
        match self {
            Fault::Http500 => Script::server_error(),
            Fault::EofBeforeCompletion => Script::EofWithoutCompletion {
                text: "cut off".into(),
            },
            Fault::ResponseFailed => Script::Failed {
                code: FAILED_CODE.into(),
                message: "injected by the soak test".into(),
            },
            Fault::RateLimited => Script::usage_limit(60),
        }
    }

    /// The error code the caller sees for this fault (in the body or in-band).
    fn code(self) -> &'static str {
        match self {
            Fault::Http500 => "upstream_status",
            Fault::EofBeforeCompletion => "upstream_stream_broken",
            Fault::ResponseFailed => FAILED_CODE,
            Fault::RateLimited => "usage_limit_reached",
        }
    }

    /// The HTTP status of a refusal before any byte was streamed.
    fn status(self) -> u16 {
        match self {
            Fault::RateLimited => 429,
            _ => 502,
        }
    }

    fn from_code(code: &str) -> Option<Fault> {
        FAULTS.into_iter().find(|fault| fault.code() == code)
    }
}

/// One request's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Shape {
    chat: bool,
    stream: bool,
}

impl Shape {
    fn path(self) -> &'static str {
        if self.chat {
            "/v1/chat/completions"
        } else {
            "/v1/responses"
        }
    }

    fn body(self) -> Value {
        if self.chat {
            json!({"model": "gpt-5.5", "stream": self.stream,
                   "messages": [{"role": "user", "content": "soak"}]})
        } else {
            json!({"model": "gpt-5.5", "stream": self.stream, "input": "soak"})
        }
    }

    fn name(self) -> &'static str {
        match (self.chat, self.stream) {
            (false, false) => "responses",
            (false, true) => "responses stream",
            (true, false) => "chat",
            (true, true) => "chat stream",
        }
    }
}

/// What a client meant to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Normal,
    Fault(Fault),
    /// A streaming request the client abandons after the first delta.
    Leave,
}

/// What a client got.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Ok,
    Fault(Fault),
    Left,
    Unexpected(String),
}

/// Counts per request shape.
#[derive(Debug, Default, Clone)]
struct Tally {
    sent: u64,
    ok: u64,
    left: u64,
    faults: BTreeMap<Fault, u64>,
    unexpected: Vec<String>,
    latencies: Vec<Duration>,
}

impl Tally {
    /// `p50/p99/max` of the request latencies, in milliseconds.
    fn latency(&self) -> String {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let at = |q: f64| {
            sorted
                .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        format!("{:.0}/{:.0}/{:.0} ms", at(0.5), at(0.99), at(1.0))
    }
}

/// What one client thread did.
#[derive(Debug, Default)]
struct ClientReport {
    by_shape: BTreeMap<Shape, Tally>,
    pushed: BTreeMap<Fault, u64>,
    planned_leaves: u64,
}

/// xorshift64, one per client thread.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn show(label: &str, usage: Usage) {
    eprintln!(
        "soak: {label}: VmRSS {} KiB ({:.1} MiB), {} fds, {} threads",
        usage.rss_kib,
        usage.rss_kib as f64 / 1024.0,
        usage.fds,
        usage.threads
    );
}

/// Polls (bounded) until `done` holds for the process's usage; returns the last reading.
fn settle(pid: u32, done: impl Fn(Usage) -> bool) -> (Usage, Duration) {
    wait_for_usage(pid, SETTLE_LIMIT, done)
}

/// Sends mixed traffic from `WORKERS` threads until `deadline`.
fn traffic(fake: &Arc<FakeCodex>, addr: &str, deadline: Instant, seed: u64) -> ClientReport {
    let threads: Vec<_> = (0..WORKERS as u64)
        .map(|index| {
            let fake = fake.clone();
            let addr = addr.to_string();
            std::thread::spawn(move || {
                client(
                    &fake,
                    &addr,
                    deadline,
                    seed ^ (index + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                )
            })
        })
        .collect();
    let mut total = ClientReport::default();
    for thread in threads {
        let report = thread.join().expect("client thread");
        for (shape, tally) in report.by_shape {
            let sum = total.by_shape.entry(shape).or_default();
            sum.sent += tally.sent;
            sum.ok += tally.ok;
            sum.left += tally.left;
            for (fault, n) in tally.faults {
                *sum.faults.entry(fault).or_default() += n;
            }
            sum.unexpected.extend(tally.unexpected);
            sum.latencies.extend(tally.latencies);
        }
        for (fault, n) in report.pushed {
            *total.pushed.entry(fault).or_default() += n;
        }
        total.planned_leaves += report.planned_leaves;
    }
    total
}

fn client(fake: &FakeCodex, addr: &str, deadline: Instant, seed: u64) -> ClientReport {
    let mut rng = Rng(seed | 1);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut report = ClientReport::default();
    while Instant::now() < deadline {
        let plan = match rng.below(10) {
            0 => Plan::Leave,
            1 => Plan::Fault(FAULTS[rng.below(4) as usize]),
            _ => Plan::Normal,
        };
        let shape = Shape {
            chat: rng.below(2) == 0,
            stream: plan == Plan::Leave || rng.below(2) == 0,
        };
        match plan {
            Plan::Normal => {}
            Plan::Fault(fault) => {
                *report.pushed.entry(fault).or_default() += 1;
                fake.push_script(fault.script());
            }
            Plan::Leave => {
                report.planned_leaves += 1;
                fake.push_script(Script::Slow {
                    text: SLOW_TEXT.into(),
                    deltas: 20,
                    delay_ms: 20,
                });
            }
        }
        let sent_at = Instant::now();
        let outcome = if plan == Plan::Leave {
            leave_mid_stream(addr, shape)
        } else {
            request(&agent, addr, shape)
        };
        let tally = report.by_shape.entry(shape).or_default();
        tally.sent += 1;
        tally.latencies.push(sent_at.elapsed());
        match outcome {
            Outcome::Ok => tally.ok += 1,
            Outcome::Left => tally.left += 1,
            Outcome::Fault(fault) => *tally.faults.entry(fault).or_default() += 1,
            Outcome::Unexpected(what) => tally.unexpected.push(what),
        }
    }
    report
}

/// One complete request through a keep-alive agent, classified.
fn request(agent: &ureq::Agent, addr: &str, shape: Shape) -> Outcome {
    let sent = agent
        .post(format!("http://{addr}{}", shape.path()))
        .header("Authorization", format!("Bearer {PROXY_KEY}"))
        .header("Content-Type", "application/json")
        .send(shape.body().to_string().as_bytes());
    let response = match sent {
        Ok(response) => response,
        Err(error) => return Outcome::Unexpected(format!("{}: transport {error}", shape.name())),
    };
    let status = response.status().as_u16();
    let body = match response.into_body().read_to_string() {
        Ok(body) => body,
        Err(error) => return Outcome::Unexpected(format!("{}: body {error}", shape.name())),
    };
    classify(shape, status, &body)
}

/// Checks an answer against every outcome some script could have caused.
fn classify(shape: Shape, status: u16, body: &str) -> Outcome {
    let unexpected = || {
        let head: String = body.chars().take(300).collect();
        Outcome::Unexpected(format!("{}: HTTP {status}: {head}", shape.name()))
    };
    if status != 200 {
        let json: Value = serde_json::from_str(body).unwrap_or_default();
        let code = json["error"]["code"].as_str().unwrap_or("");
        return match Fault::from_code(code) {
            Some(fault) if fault.status() == status && !shape.stream => Outcome::Fault(fault),
            // Refusals before the first byte come as HTTP errors on streams too.
            Some(fault @ (Fault::Http500 | Fault::RateLimited)) if fault.status() == status => {
                Outcome::Fault(fault)
            }
            _ => unexpected(),
        };
    }
    let texts = [DEFAULT_TEXT, SLOW_TEXT];
    match (shape.chat, shape.stream) {
        (false, false) => {
            let response: Value = serde_json::from_str(body).unwrap_or_default();
            let text = response["output"][0]["content"][0]["text"].as_str();
            if response["status"] == "completed" && text.is_some_and(|t| texts.contains(&t)) {
                Outcome::Ok
            } else {
                unexpected()
            }
        }
        (true, false) => {
            let answer: Value = serde_json::from_str(body).unwrap_or_default();
            let choice = &answer["choices"][0];
            let text = choice["message"]["content"].as_str();
            if choice["finish_reason"] == "stop" && text.is_some_and(|t| texts.contains(&t)) {
                Outcome::Ok
            } else {
                unexpected()
            }
        }
        (false, true) => {
            let events = sse_data(body);
            let last = events.last().cloned().unwrap_or_default();
            match last["type"].as_str() {
                Some("response.completed") => Outcome::Ok,
                Some("response.failed") => fault_or(&last["response"]["error"]["code"], unexpected),
                Some("error") => fault_or(&last["code"], unexpected),
                _ => unexpected(),
            }
        }
        (true, true) => {
            let frames: Vec<&str> = body
                .split("\n\n")
                .filter_map(|frame| frame.strip_prefix("data: "))
                .collect();
            if frames.last() != Some(&"[DONE]") {
                return unexpected();
            }
            let chunks: Vec<Value> = frames
                .iter()
                .filter_map(|data| serde_json::from_str(data).ok())
                .collect();
            if let Some(error) = chunks.iter().find_map(|c| c.get("error")) {
                return fault_or(&error["code"], unexpected);
            }
            let text: String = chunks
                .iter()
                .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
                .collect();
            let finished = chunks
                .iter()
                .any(|c| c["choices"][0]["finish_reason"] == "stop");
            if finished && texts.contains(&text.as_str()) {
                Outcome::Ok
            } else {
                unexpected()
            }
        }
    }
}

/// An in-band error that one of the injected faults explains.
fn fault_or(code: &Value, unexpected: impl Fn() -> Outcome) -> Outcome {
    match code.as_str().and_then(Fault::from_code) {
        Some(fault @ (Fault::EofBeforeCompletion | Fault::ResponseFailed)) => Outcome::Fault(fault),
        _ => unexpected(),
    }
}

/// A streaming request on its own connection, dropped after the first delta (or classified
/// when the answer ends, by an error or a failure, before one).
fn leave_mid_stream(addr: &str, shape: Shape) -> Outcome {
    match try_leave(addr, shape) {
        Ok(outcome) => outcome,
        Err(error) => Outcome::Unexpected(format!("{} (leaving): {error}", shape.name())),
    }
}

fn try_leave(addr: &str, shape: Shape) -> std::io::Result<Outcome> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = shape.body().to_string();
    write!(
        stream,
        "POST {} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {PROXY_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        shape.path(),
        body.len()
    )?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut chunked = false;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end().to_ascii_lowercase();
        if line.is_empty() {
            break;
        }
        chunked |= line == "transfer-encoding: chunked";
        if let Some(value) = line.strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut seen = Vec::new();
    if !chunked {
        seen.resize(length, 0);
        reader.read_exact(&mut seen)?;
        return Ok(classify(shape, status, &String::from_utf8_lossy(&seen)));
    }
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            // The whole answer came before any delta: it is a complete answer.
            return Ok(classify(shape, status, &String::from_utf8_lossy(&seen)));
        }
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk)?;
        chunk.truncate(size);
        seen.extend_from_slice(&chunk);
        let text = String::from_utf8_lossy(&chunk);
        if text.contains("output_text.delta") || text.contains("chat.completion.chunk") {
            // Gone without a word, as a client that crashed or was cancelled.
            let _ = stream.shutdown(Shutdown::Both);
            return Ok(Outcome::Left);
        }
    }
}

fn soak_seconds() -> u64 {
    std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(60)
}

#[test]
fn soak_mixed_traffic_at_the_worker_limit() {
    let started = Instant::now();
    let fake = Arc::new(FakeCodex::start());
    let dir = scratch_dir();
    let file = dir.join("credentials.json").display().to_string();
    let codex = fake.base_url();
    let workers = WORKERS.to_string();
    let proxy = ProxyProcess::start(
        &[
            ("PROXY_API_KEY", PROXY_KEY),
            ("OPENAI_ACCESS_TOKEN", "test-access-token"),
            ("CODEX_BASE_URL", &codex),
            ("CREDENTIALS_FILE", &file),
            ("WORKERS", &workers),
            ("QUEUE_DEPTH", "16"),
            ("UPSTREAM_MAX_RETRIES", "0"),
            ("CLIENT_TIMEOUT_SECS", "15"),
        ],
        &dir,
    )
    .expect("proxy starts");
    let pid = proxy.pid();
    let fresh = usage(pid);
    show("fresh process", fresh);

    let warm = traffic(&fake, &proxy.addr, Instant::now() + WARM_UP, 1);
    let warm_requests: u64 = warm.by_shape.values().map(|t| t.sent).sum();
    let (baseline, waited) = settle(pid, |now| now.threads <= fresh.threads);
    show(
        &format!(
            "baseline after a {} s warm-up ({warm_requests} requests) and {:.1} s settling",
            WARM_UP.as_secs(),
            waited.as_secs_f64()
        ),
        baseline,
    );

    let seconds = soak_seconds();
    let soak_started = Instant::now();
    let report = traffic(
        &fake,
        &proxy.addr,
        soak_started + Duration::from_secs(seconds),
        0x50A4_2026,
    );
    let soak_time = soak_started.elapsed();
    let peak = usage(pid);
    show("right after the traffic", peak);
    let (after, waited) = settle(pid, |now| {
        now.threads <= baseline.threads && now.fds <= baseline.fds + FD_TOLERANCE
    });
    show(
        &format!("after {:.1} s settling", waited.as_secs_f64()),
        after,
    );

    let mut requests = 0;
    let mut unexpected = Vec::new();
    let mut seen: BTreeMap<Fault, u64> = BTreeMap::new();
    eprintln!("soak: {seconds} s of traffic from {WORKERS} clients ({soak_time:.1?}):");
    for (shape, tally) in &report.by_shape {
        eprintln!(
            "soak:   {:<17} {:>6} sent, {:>6} ok, {:>4} left mid-stream, faults {:?}, {} unexpected, \
             latency p50/p99/max {}",
            shape.name(),
            tally.sent,
            tally.ok,
            tally.left,
            tally.faults,
            tally.unexpected.len(),
            tally.latency()
        );
        requests += tally.sent;
        unexpected.extend(tally.unexpected.iter().cloned());
        for (fault, n) in &tally.faults {
            *seen.entry(*fault).or_default() += n;
        }
    }
    let errors: u64 = seen.values().sum();
    eprintln!(
        "soak: {requests} requests ({:.0}/s), {errors} errors from injected faults {seen:?} \
         (pushed {:?}), {} planned to leave mid-stream, {} upstream streams cut, {} unexpected",
        requests as f64 / soak_time.as_secs_f64(),
        report.pushed,
        report.planned_leaves,
        fake.aborted_streams(),
        unexpected.len()
    );

    let logs = proxy.logs();
    let panics = logs.iter().filter(|l| l.contains("panicked")).count();
    let access = logs.iter().filter(|l| l.contains("access")).count();
    eprintln!(
        "soak: proxy logged {access} access lines, {panics} panics; whole test {:.1?}",
        started.elapsed()
    );

    assert!(
        unexpected.is_empty(),
        "{} answers no script explains, e.g.:\n{}",
        unexpected.len(),
        unexpected
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    for (fault, n) in &seen {
        let pushed = report.pushed.get(fault).copied().unwrap_or(0);
        assert!(
            *n <= pushed,
            "{n} {fault:?} outcomes but only {pushed} pushed"
        );
    }
    assert!(
        requests > 0 && errors > 0,
        "the soak sent traffic and faults"
    );
    // A client that leaves makes the proxy drop its upstream stream (the fake sees the cut).
    assert!(
        report.planned_leaves < 10 || fake.aborted_streams() > 0,
        "{} clients left mid-stream but no upstream stream was cut",
        report.planned_leaves
    );
    assert_eq!(panics, 0, "handler panics in the proxy log");
    assert!(
        after.threads <= baseline.threads,
        "threads: {} after, {} at baseline",
        after.threads,
        baseline.threads
    );
    assert!(
        after.fds <= baseline.fds + FD_TOLERANCE,
        "fds: {} after, {} at baseline",
        after.fds,
        baseline.fds
    );
    let rss_limit =
        (baseline.rss_kib + baseline.rss_kib / 4).max(baseline.rss_kib + RSS_TOLERANCE_KIB);
    assert!(
        after.rss_kib <= rss_limit,
        "VmRSS: {} KiB after, {} KiB at baseline (limit {rss_limit} KiB)",
        after.rss_kib,
        baseline.rss_kib
    );
    // Still serving.
    let last = request(
        &ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into(),
        &proxy.addr,
        Shape {
            chat: true,
            stream: false,
        },
    );
    assert_eq!(last, Outcome::Ok);
}
