//! Section 3, `memory`: the proxy's resident memory idle and with 64 and 256 streams open.
//!
//! VmRSS, VmHWM (peak RSS) and thread count from `/proc/<pid>/status`: idle on the shared
//! 64-worker proxy, then on a proxy with `WORKERS=300` (so 256 streams each have a worker)
//! idle, with 64 and then 256 slow streams open (50 deltas 200 ms apart, about 10 s each),
//! after they ended, and once tiny_http has retired its idle connection threads. Targets:
//! idle < 10 MiB, 256 streams < 64 MiB.

use std::time::{Duration, Instant};

use crate::fast_fake::Scenario;
use crate::load::HeldStreams;
use crate::proxy_process::{ProcSample, ProxyProcess};
use crate::report::verdict;
use crate::stats::{Table, mib};
use crate::via::Via;
use crate::{Bench, BenchResult, WIDE_WORKERS, WORKERS};

/// 50 deltas 200 ms apart, about 10 s per stream.
const HELD_SCENARIO: Scenario = Scenario {
    deltas: 50,
    delta_bytes: 32,
    delay: Duration::from_millis(200),
};

/// Streams opened first, then added to reach the second figure.
const FIRST_STREAMS: usize = 64;
const ALL_STREAMS: usize = 256;

/// How long the streams of one step may take to deliver their first event.
const OPEN_LIMIT: Duration = Duration::from_secs(30);

/// How long to wait after the streams for the proxy's thread count to fall back (tiny_http
/// retires idle connection threads after 5 s).
const SETTLE_LIMIT: Duration = Duration::from_secs(8);

/// Targets, bytes.
const IDLE_RSS_TARGET: u64 = 10 << 20;
const STREAMS_RSS_TARGET: u64 = 64 << 20;

/// Runs section 3; `idle_main` is the shared proxy's sample before any load. Returns the
/// 300-worker proxy for section 6.
pub fn run(bench: &mut Bench, idle_main: ProcSample) -> BenchResult<ProxyProcess> {
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
    let mut point = |bench: &mut Bench,
                     name: &str,
                     workers: usize,
                     open: usize,
                     sample: ProcSample,
                     target: Option<u64>| {
        let met = target.map(|target| sample.rss < target);
        table.row(vec![
            name.into(),
            workers.to_string(),
            open.to_string(),
            mib(sample.rss),
            mib(sample.hwm),
            sample.threads.to_string(),
            target.map_or_else(|| "-".into(), |t| format!("< {} MiB", t >> 20)),
            target.map_or_else(|| "-".into(), |_| verdict(met)),
        ]);
        if let Some(target) = target {
            bench.report.target(
                "3 memory",
                &format!("VmRSS {name}, {open} streams open, WORKERS={workers}"),
                &format!("< {} MiB", target >> 20),
                &format!("{} MiB", mib(sample.rss)),
                met,
            );
        }
        let scenario = format!("{name}-w{workers}");
        let csv = &mut bench.report.csv;
        csv.add("memory", &scenario, "proxy", "open_streams", open, "");
        csv.add("memory", &scenario, "proxy", "vm_rss", sample.rss, "bytes");
        csv.add("memory", &scenario, "proxy", "vm_hwm", sample.hwm, "bytes");
        csv.add("memory", &scenario, "proxy", "threads", sample.threads, "");
    };
    point(bench, "idle", WORKERS, 0, idle_main, Some(IDLE_RSS_TARGET));

    let proxy = bench.start_proxy(WIDE_WORKERS)?;
    let workers = proxy.workers;
    let idle = proxy.sample()?;
    point(bench, "idle", workers, 0, idle, Some(IDLE_RSS_TARGET));

    let target = Bench::through(&proxy, Via::Proxy);
    let began = Instant::now();
    let first = HeldStreams::open(target, HELD_SCENARIO, FIRST_STREAMS)?;
    let open_first = first.wait_first_events(OPEN_LIMIT);
    point(
        bench,
        "streaming",
        workers,
        open_first,
        proxy.sample()?,
        None,
    );
    let rest = HeldStreams::open(target, HELD_SCENARIO, ALL_STREAMS - FIRST_STREAMS)?;
    let open_all = open_first + rest.wait_first_events(OPEN_LIMIT);
    let opened_in = began.elapsed();
    let during = proxy.sample()?;
    point(
        bench,
        "streaming",
        workers,
        open_all,
        during,
        Some(STREAMS_RSS_TARGET),
    );
    let (mut completed, mut failed, mut first_error) = first.finish();
    let (more_completed, more_failed, more_error) = rest.finish();
    completed += more_completed;
    failed += more_failed;
    first_error = first_error.or(more_error);
    let ended_in = began.elapsed();
    point(bench, "after", workers, 0, proxy.sample()?, None);
    let settling = Instant::now();
    let settled = loop {
        let sample = proxy.sample()?;
        if sample.threads <= idle.threads + 4 || settling.elapsed() >= SETTLE_LIMIT {
            break sample;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let settled_in = settling.elapsed();
    point(bench, "settled", workers, 0, settled, None);
    bench.report.table(&table);
    bench.report.text(&format!(
        "{open_all} of {ALL_STREAMS} streams delivered their first event within {:.2} s \
         ({FIRST_STREAMS} first, then the rest); {completed} completed, {failed} failed after \
         {:.1} s{}; \"settled\" sampled {:.1} s after the streams ended\n",
        opened_in.as_secs_f64(),
        ended_in.as_secs_f64(),
        first_error.map_or_else(String::new, |e| format!(" (first failure: {e})")),
        settled_in.as_secs_f64(),
    ));
    let csv = &mut bench.report.csv;
    let opened_ms = opened_in.as_millis();
    csv.add(
        "memory",
        "streaming",
        "proxy",
        "first_events_within",
        opened_ms,
        "ms",
    );
    csv.add("memory", "streaming", "proxy", "completed", completed, "");
    csv.add("memory", "streaming", "proxy", "failed", failed, "");
    Ok(proxy)
}
