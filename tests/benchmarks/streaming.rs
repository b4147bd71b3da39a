//! Section 1, `streaming`: the delay per event while streaming, and what each relay adds.
//!
//! 200 deltas of 32 bytes, 2 ms apart, at 1 stream (20 streams one after another) and at 16
//! streams at once (twice). Each delta carries the time the fake wrote it; the client
//! subtracts that from the time it read it. A path's percentile minus direct's is the delay
//! that relay adds. The paths take turns round by round, so a burst of load from elsewhere on
//! the machine lands on all of them alike rather than on one. Targets: the proxy's added p99, on `/v1/responses`
//! and on chat, at most nginx's added p99 + 0.5 ms; chat's added p99 at most 1.5 × that of
//! `/v1/responses` (the plain relay).

use std::time::Duration;

use crate::fast_fake::Scenario;
use crate::load::{Connections, StreamStats, run_streams};
use crate::proxy_process::ProxyProcess;
use crate::report::verdict;
use crate::stats::{Summary, Table};
use crate::via::Via;
use crate::{Bench, BenchResult};

/// 200 deltas of 32 bytes, 2 ms apart.
const SCENARIO: Scenario = Scenario {
    deltas: 200,
    delta_bytes: 32,
    delay: Duration::from_millis(2),
};

/// (concurrent streams, rounds): 4000 and 6400 deltas per path (a p99 over 4000 is the
/// 40th largest, so one stall of a few ms on a shared machine does not decide it).
const RUNS: [(usize, usize); 2] = [(1, 20), (16, 2)];

/// The proxy's added p99 may exceed nginx's by this much, µs.
const OVER_NGINX_TARGET_US: i64 = 500;

/// Chat's added p99 over `/v1/responses`' added p99.
const CHAT_RATIO_TARGET: f64 = 1.5;

/// Runs section 1 against `proxy`.
pub fn run(bench: &mut Bench, proxy: &ProxyProcess) -> BenchResult<()> {
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
        "1b. Delay added per delta (path minus direct), against nginx's and, for chat, against /v1/responses'",
        &[
            "streams",
            "path",
            "added p50 µs",
            "added p99 µs",
            "p99 minus nginx's µs",
            "target",
            "met",
            "p99 / proxy's",
            "target",
            "met",
        ],
    );
    for (concurrency, rounds) in RUNS {
        let scenario = format!("stream-c{concurrency}");
        let mut summaries: Vec<(Via, Summary)> = Vec::with_capacity(4);
        let targets = bench.paths(proxy);
        let mut runs: Vec<StreamStats> = targets.iter().map(|_| StreamStats::default()).collect();
        for _ in 0..rounds {
            for (target, run) in targets.iter().zip(&mut runs) {
                run.merge(run_streams(
                    *target,
                    SCENARIO,
                    concurrency,
                    1,
                    Connections::Reused,
                )?);
            }
        }
        for (target, mut run) in targets.into_iter().zip(runs) {
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
            let csv = &mut bench.report.csv;
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
                bench.report.text(&format!(
                    "note: {scenario} {path}: first failure: {error}\n"
                ));
            }
            summaries.push((target.via, summary));
        }
        let find = |via: Via| summaries.iter().find(|(v, _)| *v == via).map(|(_, s)| *s);
        let Some(direct) = find(Via::Direct) else {
            continue;
        };
        let added_by = |via: Via| find(via).map(|s| (s.p50 - direct.p50, s.p99 - direct.p99));
        let nginx_added = added_by(Via::Nginx);
        let proxy_added = added_by(Via::Proxy);
        for via in [Via::Nginx, Via::Proxy, Via::Chat] {
            let Some((added_p50, added_p99)) = added_by(via) else {
                continue;
            };
            let path = via.label();
            let streams = if concurrency == 1 {
                "stream"
            } else {
                "streams"
            };
            let (over_cell, over_target, over_met) = match (via, nginx_added) {
                (Via::Nginx, _) => ("-".into(), "-".into(), "-".into()),
                (_, None) => (
                    "n/a".into(),
                    format!("<= nginx's + {OVER_NGINX_TARGET_US}"),
                    verdict(None),
                ),
                (_, Some((_, nginx_p99))) => {
                    let over = added_p99 - nginx_p99;
                    (
                        over.to_string(),
                        format!("<= {OVER_NGINX_TARGET_US}"),
                        verdict(Some(over <= OVER_NGINX_TARGET_US)),
                    )
                }
            };
            if via != Via::Nginx {
                let nginx_p99 = nginx_added.map(|(_, p99)| p99);
                bench.report.target(
                    "1 streaming",
                    &format!("added p99 per delta, {path}, {concurrency} {streams}"),
                    &nginx_p99.map_or_else(
                        || format!("<= nginx's added p99 + {OVER_NGINX_TARGET_US} µs (no nginx)"),
                        |p99| {
                            format!(
                                "<= nginx's added p99 ({p99} µs) + {OVER_NGINX_TARGET_US} µs = {} µs",
                                p99 + OVER_NGINX_TARGET_US
                            )
                        },
                    ),
                    &format!("{added_p99} µs"),
                    nginx_p99.map(|p99| added_p99 <= p99 + OVER_NGINX_TARGET_US),
                );
            }
            // Meaningless when the relay added nothing measurable (noise can make it negative).
            let chat_ratio = match (via, proxy_added) {
                (Via::Chat, Some((_, proxy_p99))) if proxy_p99 > 0 => {
                    Some(Some(added_p99 as f64 / proxy_p99 as f64))
                }
                (Via::Chat, _) => Some(None),
                _ => None,
            };
            let (ratio_cell, ratio_target, ratio_met) = match chat_ratio {
                None => ("-".into(), "-".into(), "-".into()),
                Some(None) => (
                    "n/a".into(),
                    format!("<= {CHAT_RATIO_TARGET:.1}"),
                    verdict(None),
                ),
                Some(Some(ratio)) => (
                    ratio_text(ratio),
                    format!("<= {CHAT_RATIO_TARGET:.1}"),
                    verdict(Some(ratio <= CHAT_RATIO_TARGET)),
                ),
            };
            if let Some(ratio) = chat_ratio {
                bench.report.target(
                    "1 streaming",
                    &format!("chat added p99 / /v1/responses' added p99, {concurrency} {streams}"),
                    &format!("<= {CHAT_RATIO_TARGET:.1}"),
                    &ratio.map_or_else(|| "n/a".into(), ratio_text),
                    ratio.map(|r| r <= CHAT_RATIO_TARGET),
                );
                if let Some(ratio) = ratio {
                    let value = format!("{ratio:.3}");
                    let csv = &mut bench.report.csv;
                    csv.add(
                        "streaming",
                        &scenario,
                        "chat",
                        "added_p99_over_proxy",
                        value,
                        "",
                    );
                }
            }
            added.row(vec![
                concurrency.to_string(),
                path.into(),
                added_p50.to_string(),
                added_p99.to_string(),
                over_cell,
                over_target,
                over_met,
                ratio_cell,
                ratio_target,
                ratio_met,
            ]);
            let csv = &mut bench.report.csv;
            csv.add("streaming", &scenario, path, "added_p50", added_p50, "us");
            csv.add("streaming", &scenario, path, "added_p99", added_p99, "us");
        }
    }
    bench.report.table(&delays);
    bench.report.table(&added);
    Ok(())
}

/// A ratio of added delays as the report shows it. Chat's p99 can fall under the direct
/// path's in a noisy run, which makes its added delay, and the ratio, zero or less: that is
/// "no delay measured", not a negative cost.
fn ratio_text(ratio: f64) -> String {
    if ratio <= 0.0 {
        "<= 0 (chat's p99 at or under direct's)".into()
    } else {
        format!("{ratio:.2}")
    }
}
