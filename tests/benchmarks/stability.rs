//! Section 4, `stability`: resident memory over 10,000 sequential requests, and CPU seconds
//! per 1,000 requests.
//!
//! A fresh 64-worker proxy, warmed up, then 10,000 requests one at a time in blocks of
//! 1,000, round-robin over the four kinds the proxy serves (`/v1/responses` streamed and
//! aggregated, chat streamed and aggregated; 20 deltas each), each on its own keep-alive
//! connection. VmRSS after every block; target: no growth from 1,000 to 10,000 requests
//! (less than 1 MiB, which allows for the allocator's page-level noise).
//!
//! The same series runs on a 4-worker proxy as a control. Sequential requests reach the
//! workers one after another, and a worker's first requests touch its stack and its
//! allocator arena for good: growth that shows with 64 workers and not with 4 is that
//! warm-up; a leak grows per request, whatever the worker count.
//!
//! Then 1,000 more of each kind alone on the 64-worker proxy, and of the same stream through
//! nginx, for the CPU cost per kind (utime + stime from `/proc/<pid>/stat`, 10 ms ticks).

use std::time::{Duration, Instant};

use crate::load::Sequential;
use crate::proxy_process::{ProcSample, ProxyProcess, own_cpu_time};
use crate::stats::{Table, fit_line, mib};
use crate::via::{Request, Via};
use crate::{Bench, BenchResult, SHORT_SCENARIO, WORKERS};

/// Requests per block, and blocks.
const BLOCK: u64 = 1_000;
const BLOCKS: u64 = 10;

/// Bound on the 10,000 requests of one series.
const RUN_LIMIT: Duration = Duration::from_secs(90);

/// Workers of the control proxy.
const CONTROL_WORKERS: usize = 4;

/// Requests of each kind alone, and the bound on each such run.
const KIND_REQUESTS: u64 = 1_000;
const KIND_LIMIT: Duration = Duration::from_secs(20);

/// VmRSS after 10,000 requests may exceed VmRSS after 1,000 by less than this, bytes.
const GROWTH_TARGET: i64 = 1 << 20;

/// The four kinds of request the proxy serves: (path, streamed).
const KINDS: [(Via, bool); 4] = [
    (Via::Proxy, true),
    (Via::Proxy, false),
    (Via::Chat, true),
    (Via::Chat, false),
];

/// One block of a series.
struct Block {
    done: u64,
    sample: ProcSample,
    failed: u64,
    cpu: Duration,
}

/// What one series measured.
struct Series {
    start: ProcSample,
    blocks: Vec<Block>,
    first_error: Option<String>,
}

impl Series {
    /// VmRSS after the last block minus after the first, bytes.
    fn growth(&self) -> Option<i64> {
        let (first, last) = (self.blocks.first()?, self.blocks.last()?);
        (last.done > first.done).then(|| last.sample.rss as i64 - first.sample.rss as i64)
    }

    /// Least-squares slope of VmRSS over the blocks, KiB per 1,000 requests.
    fn slope(&self) -> f64 {
        let points: Vec<(f64, f64)> = self
            .blocks
            .iter()
            .map(|b| (b.done as f64 / 1000.0, b.sample.rss as f64 / 1024.0))
            .collect();
        fit_line(&points).map_or(0.0, |(_, slope)| slope)
    }

    fn done(&self) -> u64 {
        self.blocks.last().map_or(0, |b| b.done)
    }

    /// Proxy CPU seconds per 1,000 requests over the series.
    fn cpu_per_thousand(&self) -> f64 {
        let cpu: Duration = self.blocks.iter().map(|b| b.cpu).sum();
        cpu.as_secs_f64() / (self.done().max(1) as f64 / 1000.0)
    }
}

/// Runs section 4 against proxies of its own.
pub fn run(bench: &mut Bench) -> BenchResult<()> {
    let proxy = bench.start_proxy(WORKERS)?;
    let requests = kinds(&proxy);
    let main = series(&proxy, &requests)?;
    let control = {
        let control = bench.start_proxy(CONTROL_WORKERS)?;
        series(&control, &kinds(&control))?
    };
    let mut table = Table::new(
        &format!(
            "4. Stability: proxy memory over 10,000 sequential requests (round-robin: /v1/responses and chat, each streamed and aggregated; 20 deltas), WORKERS={WORKERS} and a WORKERS={CONTROL_WORKERS} control"
        ),
        &[
            "requests",
            "VmRSS MiB",
            "VmHWM MiB",
            "threads",
            "failed",
            "proxy CPU s",
            "control VmRSS MiB",
            "control failed",
        ],
    );
    table.row(vec![
        "0 (warmed up)".into(),
        mib(main.start.rss),
        mib(main.start.hwm),
        main.start.threads.to_string(),
        "-".into(),
        "-".into(),
        mib(control.start.rss),
        "-".into(),
    ]);
    for (index, block) in main.blocks.iter().enumerate() {
        let other = control.blocks.get(index);
        table.row(vec![
            block.done.to_string(),
            mib(block.sample.rss),
            mib(block.sample.hwm),
            block.sample.threads.to_string(),
            block.failed.to_string(),
            format!("{:.2}", block.cpu.as_secs_f64()),
            other.map_or_else(|| "-".into(), |b| mib(b.sample.rss)),
            other.map_or_else(|| "-".into(), |b| b.failed.to_string()),
        ]);
        for (path, block) in [("proxy", Some(block)), ("control", other)] {
            let Some(block) = block else { continue };
            let scenario = format!("after-{}", block.done);
            let csv = &mut bench.report.csv;
            csv.add(
                "stability",
                &scenario,
                path,
                "vm_rss",
                block.sample.rss,
                "bytes",
            );
            csv.add(
                "stability",
                &scenario,
                path,
                "vm_hwm",
                block.sample.hwm,
                "bytes",
            );
            csv.add(
                "stability",
                &scenario,
                path,
                "threads",
                block.sample.threads,
                "",
            );
            csv.add("stability", &scenario, path, "failed", block.failed, "");
            csv.add(
                "stability",
                &scenario,
                path,
                "block_cpu",
                block.cpu.as_millis(),
                "ms",
            );
        }
    }
    bench.report.table(&table);
    for (label, run) in [("proxy", &main), ("control", &control)] {
        if let Some(error) = &run.first_error {
            bench.report.text(&format!(
                "note: stability {label}: first failure: {error}\n"
            ));
        }
    }
    let kib = |growth: Option<i64>| {
        growth.map_or_else(
            || "n/a".into(),
            |g| format!("{:+.0} KiB", g as f64 / 1024.0),
        )
    };
    let first_done = main.blocks.first().map_or(0, |b| b.done);
    bench.report.text(&format!(
        "VmRSS from {first_done} to {} requests: {} with WORKERS={WORKERS} (least-squares slope \
         {:+.1} KiB per 1,000 requests), {} with WORKERS={CONTROL_WORKERS} (slope {:+.1}); proxy \
         CPU {:.3} s per 1,000 requests of this mix\n",
        main.done(),
        kib(main.growth()),
        main.slope(),
        kib(control.growth()),
        control.slope(),
        main.cpu_per_thousand(),
    ));
    bench.report.target(
        "4 stability",
        &format!(
            "VmRSS after {} requests minus after {first_done}, WORKERS={WORKERS}",
            main.done()
        ),
        &format!("< {} MiB (no growth)", GROWTH_TARGET >> 20),
        &kib(main.growth()),
        main.growth().map(|g| g < GROWTH_TARGET),
    );
    bench.report.target(
        "4 stability",
        &format!("the same, WORKERS={CONTROL_WORKERS} control (a leak would show here too)",),
        &format!("< {} MiB (no growth)", GROWTH_TARGET >> 20),
        &kib(control.growth()),
        control.growth().map(|g| g < GROWTH_TARGET),
    );
    for (path, run) in [("proxy", &main), ("control", &control)] {
        let csv = &mut bench.report.csv;
        if let Some(growth) = run.growth() {
            csv.add("stability", "mixed", path, "rss_growth", growth, "bytes");
        }
        let slope = format!("{:.1}", run.slope());
        csv.add(
            "stability",
            "mixed",
            path,
            "rss_slope",
            slope,
            "KiB/1000req",
        );
        let cpu = format!("{:.4}", run.cpu_per_thousand());
        csv.add("stability", "mixed", path, "cpu_per_1000", cpu, "s");
    }
    cpu_per_kind(bench, &proxy, &requests)
}

/// The four kinds of request, through `proxy`.
fn kinds(proxy: &ProxyProcess) -> Vec<Request> {
    KINDS
        .iter()
        .map(|(via, stream)| Request::new(Bench::through(proxy, *via), SHORT_SCENARIO, *stream))
        .collect()
}

/// 10,000 sequential requests in blocks of 1,000, VmRSS and CPU after each block.
fn series(proxy: &ProxyProcess, requests: &[Request]) -> BenchResult<Series> {
    let mut series = Series {
        start: proxy.sample()?,
        blocks: Vec::with_capacity(BLOCKS as usize),
        first_error: None,
    };
    let mut sequence = Sequential::new(requests.to_vec());
    let began = Instant::now();
    let mut done = 0;
    for _ in 0..BLOCKS {
        let left = RUN_LIMIT.saturating_sub(began.elapsed());
        if left.is_zero() {
            break;
        }
        let cpu_before = proxy.cpu_time()?;
        let run = sequence.run(BLOCK, left);
        let cpu = proxy.cpu_time()?.saturating_sub(cpu_before);
        done += run.ok + run.failed;
        series.blocks.push(Block {
            done,
            sample: proxy.sample()?,
            failed: run.failed,
            cpu,
        });
        series.first_error = series.first_error.or(run.first_error);
    }
    Ok(series)
}

/// Table 4b: 1,000 requests of each kind alone, and of the stream through nginx.
fn cpu_per_kind(bench: &mut Bench, proxy: &ProxyProcess, requests: &[Request]) -> BenchResult<()> {
    let mut table = Table::new(
        "4b. CPU per 1,000 sequential requests (20 deltas; utime + stime of the relay from /proc/<pid>/stat)",
        &[
            "path",
            "answer",
            "ok",
            "failed",
            "wall s",
            "relay CPU s / 1,000",
            "relay CPU µs / request",
            "bench CPU s / 1,000",
        ],
    );
    let mut kinds: Vec<Request> = bench
        .nginx_target()
        .map(|target| Request::new(target, SHORT_SCENARIO, true))
        .into_iter()
        .collect();
    kinds.extend(requests.iter().cloned());
    for request in kinds {
        let via = request.target.via;
        let answer = if request.stream {
            "stream"
        } else {
            "aggregated"
        };
        let mut sequence = Sequential::new(vec![request]);
        let relay_before = bench.relay_cpu(via, proxy)?;
        let own_before = own_cpu_time()?;
        let run = sequence.run(KIND_REQUESTS, KIND_LIMIT);
        let relay = bench
            .relay_cpu(via, proxy)?
            .zip(relay_before)
            .map(|(after, before)| after.saturating_sub(before));
        let own = own_cpu_time()?.saturating_sub(own_before);
        let thousands = run.ok.max(1) as f64 / 1000.0;
        let relay_per_thousand = relay.map(|cpu| cpu.as_secs_f64() / thousands);
        let own_per_thousand = own.as_secs_f64() / thousands;
        let path = via.label();
        table.row(vec![
            path.into(),
            answer.into(),
            run.ok.to_string(),
            run.failed.to_string(),
            format!("{:.2}", run.elapsed.as_secs_f64()),
            relay_per_thousand.map_or_else(|| "-".into(), |s| format!("{s:.3}")),
            relay_per_thousand.map_or_else(|| "-".into(), |s| format!("{:.0}", s * 1000.0)),
            format!("{own_per_thousand:.3}"),
        ]);
        let scenario = format!("sequential-{answer}");
        let csv = &mut bench.report.csv;
        if let Some(seconds) = relay_per_thousand {
            let value = format!("{seconds:.4}");
            csv.add("cpu", &scenario, path, "relay_cpu_per_1000", value, "s");
        }
        let value = format!("{own_per_thousand:.4}");
        csv.add("cpu", &scenario, path, "bench_cpu_per_1000", value, "s");
        csv.add("cpu", &scenario, path, "failed", run.failed, "");
        if let Some(error) = run.first_error {
            bench.report.text(&format!(
                "note: cpu {path} {answer}: first failure: {error}\n"
            ));
        }
    }
    bench.report.table(&table);
    Ok(())
}
