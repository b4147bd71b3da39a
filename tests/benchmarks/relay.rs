//! Relay benchmark for codex-sub-proxy: `cargo bench --bench relay`.
//!
//! Starts a fast fake Codex backend in this process (`fast_fake.rs`) and the real release
//! binary as a child process pointed at it (`proxy_process.rs`), then drives both with a
//! hand-written HTTP/1.1 load generator (`load.rs`). Everything runs on 127.0.0.1. It prints
//! a Markdown table per section and writes every figure to `target/bench-relay.csv`; it never
//! asserts a timing, it only reports them next to the targets.
//!
//! Sections 1 and 2 measure three paths side by side: `direct` (the fake itself), `proxy`
//! (`/v1/responses`, events relayed) and `chat` (`/v1/chat/completions`, events translated
//! into chat chunks; the scenario rides in the user message, see `fast_fake.rs`).
//!
//! 1. Streaming delay: 1 and 16 concurrent streams of 200 deltas, 2 ms apart. Each delta
//!    carries the time the fake wrote it; the client subtracts that from the time it read it.
//!    Measured on each path with `"stream": true`; a path's percentiles minus direct's are
//!    the delay the proxy adds (targets: p99 < 1 ms on both, chat's added p99 ≤ 1.5 × that
//!    of `/v1/responses`).
//! 2. Non-streaming throughput: 16 and 64 closed-loop clients for 5 s each, `"stream": false`
//!    through the proxy (which aggregates the upstream stream into one JSON object, a Response
//!    or a `chat.completion`) against reading the fake's SSE stream to its end directly
//!    (target: proxy/direct and chat/direct ≥ 0.7). CPU time of the proxy and of this process
//!    (fake plus load generator) shows who the bottleneck is.
//! 3. Memory: the proxy's VmRSS and thread count idle, with 256 slow streams open at once
//!    (`WORKERS=300`) and after they ended (targets: idle < 10 MiB, 256 streams < 64 MiB).
//!
//! Arguments after `--` pick sections: `cargo bench --bench relay -- streaming memory` (the
//! names are `streaming`, `throughput` and `memory`; none means all). Without the `--bench`
//! flag that `cargo bench` passes (so under `cargo test --all-targets`) it measures nothing.

#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]

mod fast_fake;
mod http1;
mod load;
mod proxy_process;
mod stats;

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fast_fake::{FastFake, Scenario};
use load::{HeldStreams, Target, Via, request_body, run_streams, run_throughput};
use proxy_process::{ProcSample, ProxyProcess, own_cpu_time};
use stats::{Csv, Summary, Table, mib, ms};

type BenchResult<T> = Result<T, Box<dyn Error>>;

/// Section 1: 200 deltas of 32 bytes, 2 ms apart.
const STREAM_SCENARIO: Scenario = Scenario {
    deltas: 200,
    delta_bytes: 32,
    delay: Duration::from_millis(2),
};

/// Section 1: (concurrent streams, streams per connection). 2000 and 6400 deltas.
const STREAM_RUNS: [(usize, usize); 2] = [(1, 10), (16, 2)];

/// Section 1 targets: added p99 delay (on both proxy paths), µs, and chat's added p99 over
/// `/v1/responses`' added p99.
const ADDED_P99_TARGET_US: i64 = 1000;
const CHAT_ADDED_RATIO_TARGET: f64 = 1.5;

/// Section 2: a short answer with no pauses, so the run is bound by CPU, not by the script.
const THROUGHPUT_SCENARIO: Scenario = Scenario {
    deltas: 20,
    delta_bytes: 32,
    delay: Duration::ZERO,
};

/// Section 2: concurrency levels, measured duration and unmeasured warm-up per run.
const THROUGHPUT_CONCURRENCY: [usize; 2] = [16, 64];
const THROUGHPUT_DURATION: Duration = Duration::from_secs(5);
const THROUGHPUT_WARM_UP: Duration = Duration::from_millis(500);

/// Section 2 target: throughput through either proxy path over direct throughput.
const THROUGHPUT_RATIO_TARGET: f64 = 0.7;

/// Section 3: 50 deltas 200 ms apart, about 10 s per stream.
const HELD_SCENARIO: Scenario = Scenario {
    deltas: 50,
    delta_bytes: 32,
    delay: Duration::from_millis(200),
};
const HELD_STREAMS: usize = 256;
const HELD_WORKERS: usize = 300;
const HELD_OPEN_LIMIT: Duration = Duration::from_secs(30);
/// How long to wait after the streams for the proxy's thread count to fall back (tiny_http
/// retires idle connection threads after 5 s).
const SETTLE_LIMIT: Duration = Duration::from_secs(8);

/// Section 3 targets, bytes.
const IDLE_RSS_TARGET: u64 = 10 << 20;
const HELD_RSS_TARGET: u64 = 64 << 20;

/// Sections 1 and 2 run against a proxy with this many workers.
const WORKERS: usize = 64;

fn main() -> BenchResult<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` (or `--all-targets`) does not,
    // and a test run should not spend a minute measuring. Anything else names a section.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|arg| arg == "--bench") {
        println!("relay benchmark: nothing measured outside `cargo bench --bench relay`");
        return Ok(());
    }
    let chosen: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let wants = |section: &str| chosen.is_empty() || chosen.contains(&section);

    let began = Instant::now();
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let csv_path = tmp
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("bench-relay.csv");
    let scratch = tmp.join(format!("bench-relay-{}", std::process::id()));
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!("# codex-sub-proxy relay benchmark\n");
    println!("proxy binary: {}", env!("CARGO_BIN_EXE_codex-sub-proxy"));
    println!("cores: {cores}; everything on 127.0.0.1");
    println!("load average at start: {}\n", load_average());

    let fake = FastFake::start()?;
    let mut csv = Csv::default();
    let idle_small = {
        let proxy = ProxyProcess::start(&fake.base_url(), WORKERS, &scratch)?;
        warm_up(&proxy)?;
        let idle = proxy.sample()?;
        if wants("streaming") {
            streaming_delay(&fake, &proxy, &mut csv)?;
        }
        if wants("throughput") {
            throughput(&fake, &proxy, &mut csv)?;
        }
        idle
    };
    if wants("memory") {
        memory(&fake, idle_small, &scratch, &mut csv)?;
    }

    csv.write(&csv_path)?;
    let _ = std::fs::remove_dir_all(&scratch);
    println!("load average at end: {}", load_average());
    println!(
        "fake backend served {} responses; CSV written to {}; total {:.1} s",
        fake.responses_served(),
        csv_path.display(),
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

fn direct(fake: &FastFake) -> Target {
    Target {
        addr: fake.addr(),
        via: Via::Direct,
    }
}

/// The proxy's `/v1/responses` (`Via::Proxy`) or `/v1/chat/completions` (`Via::Chat`).
fn through(proxy: &ProxyProcess, via: Via) -> Target {
    Target {
        addr: proxy.addr(),
        via,
    }
}

/// Direct, proxy `/v1/responses`, proxy `/v1/chat/completions`: the rows of sections 1 and 2.
fn paths(fake: &FastFake, proxy: &ProxyProcess) -> [Target; 3] {
    [
        direct(fake),
        through(proxy, Via::Proxy),
        through(proxy, Via::Chat),
    ]
}

/// One streaming and one aggregated request on each proxy path, so the first measured
/// request finds the proxy's upstream connection pool and allocator warm; fails the run if
/// any fails.
fn warm_up(proxy: &ProxyProcess) -> BenchResult<()> {
    for via in [Via::Proxy, Via::Chat] {
        let target = through(proxy, via);
        let stream = run_streams(target, THROUGHPUT_SCENARIO, 1, 1)?;
        if stream.complete != 1 {
            let error = stream.first_error;
            return Err(format!("warm-up {} stream failed: {error:?}", via.label()).into());
        }
        let body = Arc::new(request_body(via, THROUGHPUT_SCENARIO, false));
        let aggregated = run_throughput(target, &body, 1, Duration::ZERO)?;
        if aggregated.ok != 1 {
            let error = aggregated.first_error;
            return Err(format!("warm-up {} request failed: {error:?}", via.label()).into());
        }
    }
    Ok(())
}

fn streaming_delay(fake: &FastFake, proxy: &ProxyProcess, csv: &mut Csv) -> BenchResult<()> {
    let mut delays = Table::new(
        "1. Streaming delay per delta (200 deltas 2 ms apart; µs from the fake's write to the client's read)",
        &[
            "streams",
            "path",
            "streams ok",
            "failed",
            "deltas",
            "p50 µs",
            "p90 µs",
            "p99 µs",
            "max µs",
        ],
    );
    let mut added = Table::new(
        "1b. Delay added by the proxy (path minus direct; chat p99 also relative to proxy's)",
        &[
            "streams",
            "path",
            "added p50 µs",
            "added p99 µs",
            "target p99",
            "met",
            "p99 / proxy p99",
            "target",
            "met",
        ],
    );
    for (concurrency, rounds) in STREAM_RUNS {
        let scenario = format!("stream-c{concurrency}");
        let mut summaries = Vec::with_capacity(3);
        for target in paths(fake, proxy) {
            let mut run = run_streams(target, STREAM_SCENARIO, concurrency, rounds)?;
            let summary = Summary::of(&mut run.delays_us);
            let path = target.label();
            delays.row(vec![
                concurrency.to_string(),
                path.into(),
                run.complete.to_string(),
                run.failed.to_string(),
                summary.count.to_string(),
                summary.p50.to_string(),
                summary.p90.to_string(),
                summary.p99.to_string(),
                summary.max.to_string(),
            ]);
            csv.add("streaming", &scenario, path, "streams_ok", run.complete, "");
            csv.add(
                "streaming",
                &scenario,
                path,
                "streams_failed",
                run.failed,
                "",
            );
            csv.add("streaming", &scenario, path, "deltas", summary.count, "");
            for (metric, value) in [
                ("delay_p50", summary.p50),
                ("delay_p90", summary.p90),
                ("delay_p99", summary.p99),
                ("delay_max", summary.max),
            ] {
                csv.add("streaming", &scenario, path, metric, value, "us");
            }
            if let Some(error) = run.first_error {
                println!("note: {scenario} {path}: first failure: {error}");
            }
            summaries.push(summary);
        }
        let direct_summary = summaries[0];
        let added_by = |summary: Summary| {
            (
                summary.p50 - direct_summary.p50,
                summary.p99 - direct_summary.p99,
            )
        };
        let (proxy_p50, proxy_p99) = added_by(summaries[1]);
        let (chat_p50, chat_p99) = added_by(summaries[2]);
        // Meaningless when the relay added nothing measurable (noise can make it negative).
        let chat_ratio = (proxy_p99 > 0).then(|| chat_p99 as f64 / proxy_p99 as f64);
        for (path, added_p50, added_p99, ratio) in [
            ("proxy", proxy_p50, proxy_p99, None),
            ("chat", chat_p50, chat_p99, Some(chat_ratio)),
        ] {
            let (ratio_cell, ratio_target, ratio_met) = match ratio {
                None => ("-".into(), "-".into(), "-".into()),
                Some(None) => (
                    "n/a".into(),
                    format!("<= {CHAT_ADDED_RATIO_TARGET:.1}"),
                    "-".into(),
                ),
                Some(Some(ratio)) => (
                    format!("{ratio:.2}"),
                    format!("<= {CHAT_ADDED_RATIO_TARGET:.1}"),
                    verdict(ratio <= CHAT_ADDED_RATIO_TARGET),
                ),
            };
            added.row(vec![
                concurrency.to_string(),
                path.into(),
                added_p50.to_string(),
                added_p99.to_string(),
                format!("< {ADDED_P99_TARGET_US}"),
                verdict(added_p99 < ADDED_P99_TARGET_US),
                ratio_cell,
                ratio_target,
                ratio_met,
            ]);
        }
        for (path, added_p50, added_p99) in [
            ("added", proxy_p50, proxy_p99),
            ("added-chat", chat_p50, chat_p99),
        ] {
            csv.add("streaming", &scenario, path, "delay_p50", added_p50, "us");
            csv.add("streaming", &scenario, path, "delay_p99", added_p99, "us");
        }
        if let Some(ratio) = chat_ratio {
            csv.add(
                "streaming",
                &scenario,
                "ratio",
                "chat_over_proxy_added_p99",
                format!("{ratio:.3}"),
                "",
            );
        }
    }
    println!("{}", delays.render());
    println!("{}", added.render());
    Ok(())
}

fn throughput(fake: &FastFake, proxy: &ProxyProcess, csv: &mut Csv) -> BenchResult<()> {
    let mut table = Table::new(
        "2. Non-streaming throughput (closed loop, 5 s per row; direct reads the fake's SSE to the end, proxy and chat return the aggregated JSON)",
        &[
            "clients",
            "path",
            "ok",
            "failed",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "proxy CPU %",
            "bench CPU %",
            "proxy CPU µs/req",
        ],
    );
    let mut ratios = Table::new(
        "2b. Proxy throughput relative to direct",
        &[
            "clients",
            "direct req/s",
            "proxy req/s",
            "proxy ratio",
            "chat req/s",
            "chat ratio",
            "target",
            "proxy met",
            "chat met",
        ],
    );
    let targets = paths(fake, proxy);
    // Direct asks for the stream it gets anyway; the proxy paths aggregate.
    let bodies = targets.map(|target| {
        let stream = !target.via.is_proxied();
        Arc::new(request_body(target.via, THROUGHPUT_SCENARIO, stream))
    });
    for concurrency in THROUGHPUT_CONCURRENCY {
        let scenario = format!("aggregate-c{concurrency}");
        let mut rates = Vec::with_capacity(3);
        for (target, body) in targets.iter().zip(&bodies) {
            let target = *target;
            run_throughput(target, body, concurrency, THROUGHPUT_WARM_UP)?;
            let (proxy_cpu, own_cpu) = (proxy.cpu_time()?, own_cpu_time()?);
            let mut run = run_throughput(target, body, concurrency, THROUGHPUT_DURATION)?;
            let proxy_cpu = proxy.cpu_time()?.saturating_sub(proxy_cpu);
            let own_cpu = own_cpu_time()?.saturating_sub(own_cpu);
            let seconds = run.elapsed.as_secs_f64().max(1e-9);
            let rate = run.ok as f64 / seconds;
            let proxy_share = proxy_cpu.as_secs_f64() / seconds * 100.0;
            let own_share = own_cpu.as_secs_f64() / seconds * 100.0;
            let proxy_per_request = proxy_cpu.as_micros() as f64 / (run.ok.max(1)) as f64;
            let latency = Summary::of(&mut run.latencies_us);
            let path = target.label();
            table.row(vec![
                concurrency.to_string(),
                path.into(),
                run.ok.to_string(),
                run.failed.to_string(),
                format!("{rate:.0}"),
                ms(latency.p50),
                ms(latency.p90),
                ms(latency.p99),
                ms(latency.max),
                format!("{proxy_share:.0}"),
                format!("{own_share:.0}"),
                if target.via.is_proxied() {
                    format!("{proxy_per_request:.0}")
                } else {
                    "-".into()
                },
            ]);
            csv.add("throughput", &scenario, path, "ok", run.ok, "");
            csv.add("throughput", &scenario, path, "failed", run.failed, "");
            csv.add(
                "throughput",
                &scenario,
                path,
                "rate",
                format!("{rate:.1}"),
                "req/s",
            );
            for (metric, value) in [
                ("latency_p50", latency.p50),
                ("latency_p90", latency.p90),
                ("latency_p99", latency.p99),
                ("latency_max", latency.max),
            ] {
                csv.add("throughput", &scenario, path, metric, value, "us");
            }
            let cpu = |value: f64| format!("{value:.1}");
            csv.add(
                "throughput",
                &scenario,
                path,
                "proxy_cpu",
                cpu(proxy_share),
                "%",
            );
            csv.add(
                "throughput",
                &scenario,
                path,
                "bench_cpu",
                cpu(own_share),
                "%",
            );
            if let Some(error) = run.first_error {
                println!("note: {scenario} {path}: first failure: {error}");
            }
            rates.push(rate);
        }
        let direct_rate = rates[0].max(1e-9);
        let (proxy_ratio, chat_ratio) = (rates[1] / direct_rate, rates[2] / direct_rate);
        ratios.row(vec![
            concurrency.to_string(),
            format!("{:.0}", rates[0]),
            format!("{:.0}", rates[1]),
            format!("{proxy_ratio:.2}"),
            format!("{:.0}", rates[2]),
            format!("{chat_ratio:.2}"),
            format!(">= {THROUGHPUT_RATIO_TARGET:.2}"),
            verdict(proxy_ratio >= THROUGHPUT_RATIO_TARGET),
            verdict(chat_ratio >= THROUGHPUT_RATIO_TARGET),
        ]);
        for (metric, ratio) in [
            ("proxy_over_direct", proxy_ratio),
            ("chat_over_direct", chat_ratio),
        ] {
            csv.add(
                "throughput",
                &scenario,
                "ratio",
                metric,
                format!("{ratio:.3}"),
                "",
            );
        }
    }
    println!("{}", table.render());
    println!("{}", ratios.render());
    Ok(())
}

fn memory(
    fake: &FastFake,
    idle_small: ProcSample,
    scratch: &Path,
    csv: &mut Csv,
) -> BenchResult<()> {
    let mut table = Table::new(
        "3. Proxy memory and threads (VmRSS, VmHWM = peak RSS, from /proc/<pid>/status)",
        &[
            "point",
            "WORKERS",
            "open streams",
            "VmRSS MiB",
            "VmHWM MiB",
            "threads",
            "target",
            "met",
        ],
    );
    let mut point = |name: &str, workers: usize, open: usize, sample: ProcSample, target: u64| {
        table.row(vec![
            name.into(),
            workers.to_string(),
            open.to_string(),
            mib(sample.rss),
            mib(sample.hwm),
            sample.threads.to_string(),
            if target == 0 {
                "-".into()
            } else {
                format!("< {} MiB", target >> 20)
            },
            if target == 0 {
                "-".into()
            } else {
                verdict(sample.rss < target)
            },
        ]);
        let scenario = format!("{name}-w{workers}");
        csv.add("memory", &scenario, "proxy", "open_streams", open, "");
        csv.add("memory", &scenario, "proxy", "vm_rss", sample.rss, "bytes");
        csv.add("memory", &scenario, "proxy", "vm_hwm", sample.hwm, "bytes");
        csv.add("memory", &scenario, "proxy", "threads", sample.threads, "");
    };
    point("idle", WORKERS, 0, idle_small, IDLE_RSS_TARGET);

    let proxy = ProxyProcess::start(&fake.base_url(), HELD_WORKERS, scratch)?;
    warm_up(&proxy)?;
    let idle = proxy.sample()?;
    let idle_threads = idle.threads;
    point("idle", proxy.workers, 0, idle, IDLE_RSS_TARGET);

    let began = Instant::now();
    let held = HeldStreams::open(through(&proxy, Via::Proxy), HELD_SCENARIO, HELD_STREAMS)?;
    let open = held.wait_first_events(HELD_OPEN_LIMIT);
    let opened_in = began.elapsed();
    let during = proxy.sample()?;
    point("streaming", proxy.workers, open, during, HELD_RSS_TARGET);
    let (completed, failed, first_error) = held.finish();
    let ended_in = began.elapsed();
    point("after", proxy.workers, 0, proxy.sample()?, 0);
    let settling = Instant::now();
    let settled = loop {
        let sample = proxy.sample()?;
        if sample.threads <= idle_threads + 4 || settling.elapsed() >= SETTLE_LIMIT {
            break sample;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let settled_in = settling.elapsed();
    point("settled", proxy.workers, 0, settled, 0);
    println!("{}", table.render());
    println!(
        "{open} of {HELD_STREAMS} streams delivered their first event within {:.2} s; \
         {completed} completed, {failed} failed after {:.1} s{}; \
         \"settled\" sampled {:.1} s after the streams ended\n",
        opened_in.as_secs_f64(),
        ended_in.as_secs_f64(),
        first_error.map_or_else(String::new, |e| format!(" (first failure: {e})")),
        settled_in.as_secs_f64(),
    );
    csv.add(
        "memory",
        "streaming",
        "proxy",
        "first_events_within",
        opened_in.as_millis(),
        "ms",
    );
    csv.add("memory", "streaming", "proxy", "completed", completed, "");
    csv.add("memory", "streaming", "proxy", "failed", failed, "");
    Ok(())
}

/// The 1, 5 and 15 minute load averages: other work on the machine shows up in every figure.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".into(),
        |text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        },
    )
}

fn verdict(met: bool) -> String {
    if met { "yes" } else { "NO" }.to_owned()
}
