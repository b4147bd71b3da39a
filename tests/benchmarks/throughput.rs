//! Section 2, `throughput`: non-streaming requests per second.
//!
//! 16 and 64 closed-loop clients for 5 s each, a short answer (20 deltas, no pauses). The
//! proxy paths ask for `"stream": false`, so the proxy aggregates the upstream stream into
//! one JSON object (a Response or a `chat.completion`); direct and nginx read the fake's SSE
//! stream to its end (a relay has nothing to aggregate). Reported as ratios to direct and to
//! nginx; target: proxy (either path) at least 0.8 × nginx. The CPU time of the relay (nginx
//! or the proxy) and of this process (fake plus load generator) shows who the bottleneck is.

use std::time::Duration;

use crate::load::run_throughput;
use crate::proxy_process::{ProxyProcess, own_cpu_time};
use crate::report::verdict;
use crate::stats::{Summary, Table, ms};
use crate::via::{Request, Via};
use crate::{Bench, BenchResult, SHORT_SCENARIO};

/// Concurrency levels, measured duration and unmeasured warm-up per run.
const CONCURRENCY: [usize; 2] = [16, 64];
const DURATION: Duration = Duration::from_secs(5);
const WARM_UP: Duration = Duration::from_millis(500);

/// Throughput through either proxy path over nginx's.
const OVER_NGINX_TARGET: f64 = 0.8;

/// Runs section 2 against `proxy`.
pub fn run(bench: &mut Bench, proxy: &ProxyProcess) -> BenchResult<()> {
    let mut table = Table::new(
        "2. Non-streaming throughput (closed loop, 5 s per row; direct and nginx read the fake's SSE to the end, proxy and chat return the aggregated JSON)",
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
        ],
    );
    let mut ratios = Table::new(
        "2b. Throughput relative to direct and to nginx",
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
        .map(|target| Request::new(target, SHORT_SCENARIO, false))
        .collect();
    for concurrency in CONCURRENCY {
        let scenario = format!("aggregate-c{concurrency}");
        let mut rates: Vec<(Via, f64)> = Vec::with_capacity(4);
        for request in &requests {
            let via = request.target.via;
            run_throughput(request, concurrency, WARM_UP)?;
            let relay_before = bench.relay_cpu(via, proxy)?;
            let own_before = own_cpu_time()?;
            let mut run = run_throughput(request, concurrency, DURATION)?;
            let relay_cpu = bench
                .relay_cpu(via, proxy)?
                .zip(relay_before)
                .map(|(after, before)| after.saturating_sub(before));
            let own_cpu = own_cpu_time()?.saturating_sub(own_before);
            let seconds = run.elapsed.as_secs_f64().max(1e-9);
            let rate = run.ok as f64 / seconds;
            let relay_share = relay_cpu.map(|cpu| cpu.as_secs_f64() / seconds * 100.0);
            let own_share = own_cpu.as_secs_f64() / seconds * 100.0;
            let relay_per_request =
                relay_cpu.map(|cpu| cpu.as_micros() as f64 / run.ok.max(1) as f64);
            let latency = Summary::of(&mut run.latencies_us);
            let path = via.label();
            let or_dash =
                |value: Option<f64>| value.map_or_else(|| "-".into(), |v| format!("{v:.0}"));
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
                or_dash(relay_share),
                format!("{own_share:.0}"),
                or_dash(relay_per_request),
            ]);
            let csv = &mut bench.report.csv;
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
            if let Some(per_request) = relay_per_request {
                let value = format!("{per_request:.1}");
                csv.add(
                    "throughput",
                    &scenario,
                    path,
                    "relay_cpu_per_request",
                    value,
                    "us",
                );
            }
            csv.add(
                "throughput",
                &scenario,
                path,
                "bench_cpu",
                format!("{own_share:.1}"),
                "%",
            );
            if let Some(error) = run.first_error {
                bench.report.text(&format!(
                    "note: {scenario} {path}: first failure: {error}\n"
                ));
            }
            rates.push((via, rate));
        }
        let rate = |via: Via| rates.iter().find(|(v, _)| *v == via).map(|(_, r)| *r);
        let ratio = |top: Via, bottom: Via| {
            rate(top)
                .zip(rate(bottom))
                .map(|(top, bottom)| top / bottom.max(1e-9))
        };
        let cell = |value: Option<f64>, decimals: usize| {
            value.map_or_else(|| "n/a".into(), |v| format!("{v:.decimals$}"))
        };
        let proxy_over_nginx = ratio(Via::Proxy, Via::Nginx);
        let chat_over_nginx = ratio(Via::Chat, Via::Nginx);
        let met = |ratio: Option<f64>| ratio.map(|r| r >= OVER_NGINX_TARGET);
        ratios.row(vec![
            concurrency.to_string(),
            cell(rate(Via::Direct), 0),
            cell(rate(Via::Nginx), 0),
            cell(rate(Via::Proxy), 0),
            cell(rate(Via::Chat), 0),
            cell(ratio(Via::Nginx, Via::Direct), 2),
            cell(ratio(Via::Proxy, Via::Direct), 2),
            cell(ratio(Via::Chat, Via::Direct), 2),
            cell(proxy_over_nginx, 2),
            cell(chat_over_nginx, 2),
            format!(">= {OVER_NGINX_TARGET:.1}"),
            verdict(met(proxy_over_nginx)),
            verdict(met(chat_over_nginx)),
        ]);
        for (metric, top, bottom) in [
            ("nginx_over_direct", Via::Nginx, Via::Direct),
            ("proxy_over_direct", Via::Proxy, Via::Direct),
            ("chat_over_direct", Via::Chat, Via::Direct),
            ("proxy_over_nginx", Via::Proxy, Via::Nginx),
            ("chat_over_nginx", Via::Chat, Via::Nginx),
        ] {
            if let Some(value) = ratio(top, bottom) {
                let value = format!("{value:.3}");
                bench
                    .report
                    .csv
                    .add("throughput", &scenario, "ratio", metric, value, "");
            }
        }
        for (path, value) in [("proxy", proxy_over_nginx), ("chat", chat_over_nginx)] {
            bench.report.target(
                "2 throughput",
                &format!("non-streaming req/s, {path} / nginx, {concurrency} clients"),
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
