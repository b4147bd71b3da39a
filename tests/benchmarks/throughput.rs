//! Section 2, `throughput`: non-streaming requests per second.
//!
//! 16 and 64 closed-loop clients, in rounds that take every path in turn for 2 s each (5 rounds
//! for the verdicts, 3 for the tables read only; the order of the paths reversed every other
//! round, so that no path always follows the same one), a short answer (20 deltas, no pauses).
//! With 3 rounds in the same order, one run's median proxy / nginx at 64 clients ranged from
//! 0.76 to 0.95 (seventeen runs); with 5, alternating, and 10 % fewer instructions per request,
//! 0.82 to 0.96 (nine runs, either path, glibc and musl builds). The
//! proxy paths ask for `"stream": false`, so the proxy aggregates the upstream stream into
//! one JSON object (a Response or a `chat.completion`); direct and nginx read the fake's SSE
//! stream to its end (a relay has nothing to aggregate). Reported as ratios to direct and to
//! nginx (the median of the rounds' ratios, with their range); target: proxy (either path) at
//! least 0.8 × nginx. The CPU time of the relay (nginx
//! or the proxy) and of this process (fake plus load generator) shows who the bottleneck is.
//!
//! The verdicts are taken with one worker per client (`WORKERS=64`, the proxy most sections
//! share), as a caller whose requests each hold a worker for seconds upstream would run it.
//! Tables 2c and 2d then repeat 64 clients against a proxy with the default `WORKERS` (16),
//! for reading only: there requests wait in the queue for a busy worker rather than wake an
//! idle one. On 2 cores that took the proxy from 2.9 to 3.0 context switches per request to
//! 2.2, and its throughput at 64 clients from 0.76 to 0.95 of nginx's (sixteen runs, either
//! path) to 0.90 to 1.05 (ten runs); with one worker per client nearly all the proxy's
//! futex calls were the queue's waits and wake-ups (`perf record -e syscalls:sys_enter_futex`).
//! Tables 2e and 2f, also for reading, repeat 16 clients with an agent's turn of 34 messages
//! and 10 tools as every body (the raw paths send what the proxy sends upstream for it):
//! real clients send whole conversations, which the proxy parses and rewrites and a plain
//! relay only copies.

use std::time::Duration;

use crate::load::{ThroughputStats, run_throughput};
use crate::proxy_process::{ProxyProcess, Usage, own_cpu_time};
use crate::report::verdict;
use crate::stats::{Summary, Table, median_range, ms};
use crate::via::{Body, Request, Via, agent_responses_body, proxy_defaults};
use crate::{Bench, BenchResult, SHORT_SCENARIO};

/// Concurrency levels; rounds over all paths (for the verdicts, and for the tables read only);
/// measured duration and unmeasured warm-up of each path in each round.
const CONCURRENCY: [usize; 2] = [16, 64];
const VERDICT_ROUNDS: usize = 5;
const ROUNDS: usize = 3;
const DURATION: Duration = Duration::from_secs(2);
const WARM_UP: Duration = Duration::from_millis(300);

/// Throughput through either proxy path over nginx's.
const OVER_NGINX_TARGET: f64 = 0.8;

/// Which proxy one measurement runs against, and what it reports.
struct Setup<'a> {
    /// Client counts.
    concurrency: &'a [usize],
    /// The numbers of its two tables (figures, ratios).
    numbers: (&'a str, &'a str),
    /// What the figures table's title adds: the proxy's workers.
    title: String,
    /// Whether its ratios are the section's verdicts.
    verdicts: bool,
    /// CSV scenario prefix.
    scenario: &'a str,
    /// The requests' body.
    body: Body,
}

/// Runs section 2 against `proxy` (the verdicts), then against a proxy with the default
/// number of workers, then against `proxy` again with an agent's turn as every body.
pub fn run(bench: &mut Bench, proxy: &ProxyProcess) -> BenchResult<()> {
    measure(
        bench,
        proxy,
        &Setup {
            concurrency: &CONCURRENCY,
            numbers: ("2", "2b"),
            title: format!("WORKERS={}, one per client at 64", proxy.workers),
            verdicts: true,
            scenario: "aggregate",
            body: Body::Short,
        },
    )?;
    let workers = proxy_defaults()?.workers;
    let shipped = bench.start_proxy(workers)?;
    measure(
        bench,
        &shipped,
        &Setup {
            concurrency: &CONCURRENCY[CONCURRENCY.len() - 1..],
            numbers: ("2c", "2d"),
            title: format!(
                "the same at the default WORKERS={workers}, beyond which requests wait in the queue; for reading only"
            ),
            verdicts: false,
            scenario: "aggregate-default-workers",
            body: Body::Short,
        },
    )?;
    drop(shipped);
    let agent_bytes = agent_responses_body(SHORT_SCENARIO, false).len();
    measure(
        bench,
        proxy,
        &Setup {
            concurrency: &CONCURRENCY[..1],
            numbers: ("2e", "2f"),
            title: format!(
                "WORKERS={}, each body an agent's turn of 34 messages and 10 tools ({:.1} KB on /v1/responses) instead of one message; for reading only",
                proxy.workers,
                agent_bytes as f64 / 1000.0
            ),
            verdicts: false,
            scenario: "aggregate-agent",
            body: Body::Agent,
        },
    )
}

/// One measurement: every path at each client count of `setup`, in rounds.
fn measure(bench: &mut Bench, proxy: &ProxyProcess, setup: &Setup) -> BenchResult<()> {
    let (number, ratios_number) = setup.numbers;
    let rounds_per_level = if setup.verdicts {
        VERDICT_ROUNDS
    } else {
        ROUNDS
    };
    let mut table = Table::new(
        &format!(
            "{number}. Non-streaming throughput (closed loop, {rounds_per_level} interleaved rounds of {} s per path, every other round in reverse order; direct and nginx read the fake's SSE to the end, proxy and chat return the aggregated JSON; {})",
            DURATION.as_secs(),
            setup.title
        ),
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
            "relay CPU %",
            "bench CPU %",
            "relay CPU µs/req",
            "of it kernel µs/req",
            "relay switches/req",
        ],
    );
    let mut ratios = Table::new(
        &format!("{ratios_number}. Throughput relative to direct and to nginx ({number})"),
        &[
            "clients",
            "direct req/s",
            "nginx req/s",
            "proxy req/s",
            "chat req/s",
            "nginx / direct",
            "proxy / direct",
            "chat / direct",
            "proxy / nginx",
            "chat / nginx",
            "target",
            "proxy met",
            "chat met",
        ],
    );
    let requests: Vec<Request> = bench
        .paths(proxy)
        .into_iter()
        .map(|target| setup.body.request(target, SHORT_SCENARIO, false))
        .collect();
    for &concurrency in setup.concurrency {
        let scenario = format!("{}-c{concurrency}", setup.scenario);
        let mut totals: Vec<PathTotals> = requests
            .iter()
            .map(|request| PathTotals::new(request.target.via))
            .collect();
        // Rounds interleave the paths, so a machine whose speed drifts (a shared VM) slows
        // every path alike within a round; ratios are taken per round and their median
        // reported, with the range.
        let mut rounds: Vec<Vec<(Via, f64)>> = Vec::with_capacity(rounds_per_level);
        for round in 0..rounds_per_level {
            let mut rates = Vec::with_capacity(requests.len());
            let mut turns: Vec<_> = requests.iter().zip(totals.iter_mut()).collect();
            if round % 2 == 1 {
                turns.reverse();
            }
            for (request, total) in turns {
                let via = request.target.via;
                run_throughput(request, concurrency, WARM_UP)?;
                let relay_before = bench.relay_usage(via, proxy)?;
                let own_before = own_cpu_time()?;
                let run = run_throughput(request, concurrency, DURATION)?;
                let relay_cpu = bench
                    .relay_usage(via, proxy)?
                    .zip(relay_before)
                    .map(|(after, before)| after.since(before));
                let own_cpu = own_cpu_time()?.saturating_sub(own_before);
                rates.push((via, run.ok as f64 / run.elapsed.as_secs_f64().max(1e-9)));
                total.add(run, relay_cpu, own_cpu);
            }
            rounds.push(rates);
        }
        for total in &mut totals {
            let seconds = total.elapsed.as_secs_f64().max(1e-9);
            let rate = total.ok as f64 / seconds;
            let relay_share = total
                .relay_cpu
                .map(|usage| (usage.user + usage.system).as_secs_f64() / seconds * 100.0);
            let own_share = total.own_cpu.as_secs_f64() / seconds * 100.0;
            let per_request = |amount: f64| amount / total.ok.max(1) as f64;
            let relay_per_request = total
                .relay_cpu
                .map(|usage| per_request((usage.user + usage.system).as_micros() as f64));
            let kernel_per_request = total
                .relay_cpu
                .map(|usage| per_request(usage.system.as_micros() as f64));
            let switches_per_request = total
                .relay_cpu
                .map(|usage| per_request(usage.switches as f64));
            let latency = Summary::of(&mut total.latencies_us);
            let path = total.via.label();
            let or_dash =
                |value: Option<f64>| value.map_or_else(|| "-".into(), |v| format!("{v:.0}"));
            table.row(vec![
                concurrency.to_string(),
                path.into(),
                total.ok.to_string(),
                total.failed.to_string(),
                format!("{rate:.0}"),
                ms(latency.p50),
                ms(latency.p90),
                ms(latency.p99),
                ms(latency.max),
                or_dash(relay_share),
                format!("{own_share:.0}"),
                or_dash(relay_per_request),
                or_dash(kernel_per_request),
                switches_per_request.map_or_else(|| "-".into(), |v| format!("{v:.1}")),
            ]);
            let csv = &mut bench.report.csv;
            csv.add("throughput", &scenario, path, "ok", total.ok, "");
            csv.add("throughput", &scenario, path, "failed", total.failed, "");
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
            if let Some(share) = relay_share {
                csv.add(
                    "throughput",
                    &scenario,
                    path,
                    "relay_cpu",
                    format!("{share:.1}"),
                    "%",
                );
            }
            for (metric, value, unit) in [
                ("relay_cpu_per_request", relay_per_request, "us"),
                ("relay_kernel_cpu_per_request", kernel_per_request, "us"),
                ("relay_switches_per_request", switches_per_request, ""),
            ] {
                if let Some(value) = value {
                    let value = format!("{value:.1}");
                    csv.add("throughput", &scenario, path, metric, value, unit);
                }
            }
            csv.add(
                "throughput",
                &scenario,
                path,
                "bench_cpu",
                format!("{own_share:.1}"),
                "%",
            );
            if let Some(error) = &total.first_error {
                bench.report.text(&format!(
                    "note: {scenario} {path}: first failure: {error}\n"
                ));
            }
        }
        let rate = |via: Via| {
            totals
                .iter()
                .find(|total| total.via == via)
                .map(|total| total.ok as f64 / total.elapsed.as_secs_f64().max(1e-9))
        };
        let ratio = |top: Via, bottom: Via| median_ratio(&rounds, top, bottom);
        let cell = |value: Option<f64>, decimals: usize| {
            value.map_or_else(|| "n/a".into(), |v| format!("{v:.decimals$}"))
        };
        let ranged = |top: Via, bottom: Via| match ratio(top, bottom) {
            Some((median, low, high)) => format!("{median:.2} ({low:.2}–{high:.2})"),
            None => "n/a".into(),
        };
        let median = |top: Via, bottom: Via| ratio(top, bottom).map(|(median, _, _)| median);
        let proxy_over_nginx = median(Via::Proxy, Via::Nginx);
        let chat_over_nginx = median(Via::Chat, Via::Nginx);
        let met = |ratio: Option<f64>| ratio.map(|r| r >= OVER_NGINX_TARGET);
        // A measurement for reading only shows no target and no verdict.
        let judged = |cell: String| if setup.verdicts { cell } else { "-".into() };
        ratios.row(vec![
            concurrency.to_string(),
            cell(rate(Via::Direct), 0),
            cell(rate(Via::Nginx), 0),
            cell(rate(Via::Proxy), 0),
            cell(rate(Via::Chat), 0),
            ranged(Via::Nginx, Via::Direct),
            ranged(Via::Proxy, Via::Direct),
            ranged(Via::Chat, Via::Direct),
            ranged(Via::Proxy, Via::Nginx),
            ranged(Via::Chat, Via::Nginx),
            judged(format!(">= {OVER_NGINX_TARGET:.1}")),
            judged(verdict(met(proxy_over_nginx))),
            judged(verdict(met(chat_over_nginx))),
        ]);
        for (metric, top, bottom) in [
            ("nginx_over_direct", Via::Nginx, Via::Direct),
            ("proxy_over_direct", Via::Proxy, Via::Direct),
            ("chat_over_direct", Via::Chat, Via::Direct),
            ("proxy_over_nginx", Via::Proxy, Via::Nginx),
            ("chat_over_nginx", Via::Chat, Via::Nginx),
        ] {
            if let Some(value) = median(top, bottom) {
                let value = format!("{value:.3}");
                bench
                    .report
                    .csv
                    .add("throughput", &scenario, "ratio", metric, value, "");
            }
        }
        let verdicts = [("proxy", proxy_over_nginx), ("chat", chat_over_nginx)];
        for (path, value) in verdicts.into_iter().filter(|_| setup.verdicts) {
            bench.report.target(
                "2 throughput",
                &format!(
                    "non-streaming req/s, {path} / nginx, {concurrency} clients (median of {rounds_per_level} rounds)"
                ),
                &format!(">= {OVER_NGINX_TARGET:.1}"),
                &cell(value, 2),
                met(value),
            );
        }
    }
    bench.report.table(&table);
    bench.report.table(&ratios);
    Ok(())
}

/// One path's figures summed over the rounds.
struct PathTotals {
    via: Via,
    ok: u64,
    failed: u64,
    latencies_us: Vec<i64>,
    elapsed: Duration,
    relay_cpu: Option<Usage>,
    own_cpu: Duration,
    first_error: Option<String>,
}

impl PathTotals {
    fn new(via: Via) -> Self {
        PathTotals {
            via,
            ok: 0,
            failed: 0,
            latencies_us: Vec::new(),
            elapsed: Duration::ZERO,
            relay_cpu: None,
            own_cpu: Duration::ZERO,
            first_error: None,
        }
    }

    fn add(&mut self, run: ThroughputStats, relay_cpu: Option<Usage>, own_cpu: Duration) {
        self.ok += run.ok;
        self.failed += run.failed;
        self.latencies_us.extend(run.latencies_us);
        self.elapsed += run.elapsed;
        self.relay_cpu = match (self.relay_cpu, relay_cpu) {
            (Some(sum), Some(more)) => Some(sum.plus(more)),
            (None, more) => more,
            (sum, None) => sum,
        };
        self.own_cpu += own_cpu;
        if self.first_error.is_none() {
            self.first_error = run.first_error;
        }
    }
}

/// The median, lowest and highest of the rounds' `top / bottom` rate ratios.
fn median_ratio(rounds: &[Vec<(Via, f64)>], top: Via, bottom: Via) -> Option<(f64, f64, f64)> {
    let rate = |round: &[(Via, f64)], via: Via| {
        round.iter().find(|(v, _)| *v == via).map(|(_, rate)| *rate)
    };
    let ratios: Vec<f64> = rounds
        .iter()
        .filter_map(|round| Some(rate(round, top)? / rate(round, bottom)?.max(1e-9)))
        .collect();
    median_range(&ratios)
}
