//! Section 1, `streaming`: the delay per event while streaming, and what each relay adds.
//!
//! 200 deltas of 32 bytes, 2 ms apart, at 1 stream and at 16 streams at once, in
//! passes ([`RUNS`]). Each delta carries the time the fake wrote it; the client subtracts
//! that from the time it read it. Within a pass the paths take turns, so a burst of load
//! from elsewhere on the machine lands on all of them alike rather than on one; a path's
//! percentile minus direct's in the same pass is the delay that relay added in that pass,
//! and the verdicts take the median over the passes (with their range), as section 2 does
//! with its rounds. Targets: the proxy's added p99, on `/v1/responses` and on chat, at most
//! nginx's added p99 + 0.5 ms; chat's added p99 at most 1.5 × that of `/v1/responses` (the
//! plain relay).

use std::time::Duration;

use crate::fast_fake::Scenario;
use crate::load::{Connections, StreamStats, run_streams};
use crate::proxy_process::ProxyProcess;
use crate::report::verdict;
use crate::stats::{Summary, Table, median_range};
use crate::via::{Via, turn_order};
use crate::{Bench, BenchResult};

/// 200 deltas of 32 bytes, 2 ms apart.
const SCENARIO: Scenario = Scenario {
    deltas: 200,
    delta_bytes: 32,
    delay: Duration::from_millis(2),
};

/// (concurrent streams, turns per pass, passes). In each turn every path streams once, one
/// path after another, so a pass's paths are measured over the same stretch of time; every
/// other turn goes in reverse order (an even number of turns), because at 16 streams whichever
/// of the proxy's two paths ran second, right after the other in the same process, showed the
/// larger added p99 (chat second: 1.32 and 1.96 × the proxy's; chat first: 0.82 and 0.41). A pass
/// is 1,200 and 6,400 deltas per path (a p99 over 1,200 is the 12th largest, so one stall does
/// not decide it). At 16 streams one pass's added p99 moved from -98 to 222 µs on 2 cores (16
/// deltas arrive at once, and the scheduler decides which waits): its median needs more
/// passes than at 1 stream, where they ranged 64 to 108 µs.
const RUNS: [(usize, usize, usize); 2] = [(1, 6, 5), (16, 2, 9)];

/// The proxy's added p99 may exceed nginx's by this much, µs.
const OVER_NGINX_TARGET_US: i64 = 500;

/// Chat's added p99 over `/v1/responses`' added p99.
const CHAT_RATIO_TARGET: f64 = 1.5;

/// The delay a relay added in each pass: its percentile minus direct's in the same pass.
#[derive(Debug, Default)]
struct Added {
    p50: Vec<i64>,
    p99: Vec<i64>,
}

impl Added {
    /// The median of the passes' added p50.
    fn p50(&self) -> i64 {
        median_range(&self.p50).map_or(0, |(median, _, _)| median)
    }

    /// The median, lowest and highest of the passes' added p99.
    fn p99(&self) -> (i64, i64, i64) {
        median_range(&self.p99).unwrap_or_default()
    }
}

/// Runs section 1 against `proxy`.
pub fn run(bench: &mut Bench, proxy: &ProxyProcess) -> BenchResult<()> {
    let passes_text = RUNS
        .iter()
        .map(|(streams, _, passes)| format!("{passes} at {streams}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut delays = Table::new(
        &format!(
            "1. Streaming delay per delta (200 deltas 2 ms apart; µs from the fake's write to the client's read; passes: {passes_text}; figures over all)"
        ),
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
    let mut added_table = Table::new(
        &format!(
            "1b. Delay added per delta (path minus direct in the same pass; medians of the passes ({passes_text}), p99 with its range), against nginx's and, for chat, against /v1/responses'"
        ),
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
    for (concurrency, turns, passes) in RUNS {
        let scenario = format!("stream-c{concurrency}");
        let targets = bench.paths(proxy);
        let mut runs: Vec<StreamStats> = targets.iter().map(|_| StreamStats::default()).collect();
        let mut added: Vec<(Via, Added)> = targets
            .iter()
            .map(|target| (target.via, Added::default()))
            .collect();
        for _ in 0..passes {
            let mut delays_us: Vec<Vec<i64>> = targets.iter().map(|_| Vec::new()).collect();
            for turn in 0..turns {
                for index in turn_order(targets.len(), turn) {
                    let stats = run_streams(
                        targets[index],
                        SCENARIO,
                        concurrency,
                        1,
                        Connections::Reused,
                    )?;
                    delays_us[index].extend_from_slice(&stats.delays_us);
                    runs[index].merge(stats);
                }
            }
            let pass: Vec<(Via, Summary)> = targets
                .iter()
                .zip(&mut delays_us)
                .map(|(target, delays_us)| (target.via, Summary::of(delays_us)))
                .collect();
            let Some(direct) = pass.iter().find(|(via, _)| *via == Via::Direct) else {
                continue;
            };
            let direct = direct.1;
            for (via, summary) in &pass {
                if let Some((_, added)) = added.iter_mut().find(|(v, _)| v == via) {
                    added.p50.push(summary.p50 - direct.p50);
                    added.p99.push(summary.p99 - direct.p99);
                }
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
        }
        let added_by = |via: Via| {
            added
                .iter()
                .find(|(v, added)| *v == via && !added.p99.is_empty())
                .map(|(_, added)| added)
        };
        let nginx_p99 = added_by(Via::Nginx).map(|added| added.p99().0);
        let proxy_p99 = added_by(Via::Proxy).map(|added| added.p99().0);
        let streams = if concurrency == 1 {
            "stream"
        } else {
            "streams"
        };
        for via in [Via::Nginx, Via::Proxy, Via::Chat] {
            let Some(path_added) = added_by(via) else {
                continue;
            };
            let path = via.label();
            let (added_p99, low, high) = path_added.p99();
            let (over_cell, over_target, over_met) = match (via, nginx_p99) {
                (Via::Nginx, _) => ("-".into(), "-".into(), "-".into()),
                (_, None) => (
                    "n/a".into(),
                    format!("<= nginx's + {OVER_NGINX_TARGET_US}"),
                    verdict(None),
                ),
                (_, Some(nginx_p99)) => {
                    let over = added_p99 - nginx_p99;
                    (
                        over.to_string(),
                        format!("<= {OVER_NGINX_TARGET_US}"),
                        verdict(Some(over <= OVER_NGINX_TARGET_US)),
                    )
                }
            };
            if via != Via::Nginx {
                bench.report.target(
                    "1 streaming",
                    &format!(
                        "added p99 per delta, {path}, {concurrency} {streams} (median of {passes} passes)"
                    ),
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
            let chat_ratio = match (via, proxy_p99) {
                (Via::Chat, Some(proxy_p99)) if proxy_p99 > 0 => {
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
                    &format!(
                        "chat added p99 / /v1/responses' added p99, {concurrency} {streams} (medians of {passes} passes)"
                    ),
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
            let added_p50 = path_added.p50();
            added_table.row(vec![
                concurrency.to_string(),
                path.into(),
                added_p50.to_string(),
                format!("{added_p99} ({low} to {high})"),
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
            csv.add("streaming", &scenario, path, "added_p99_low", low, "us");
            csv.add("streaming", &scenario, path, "added_p99_high", high, "us");
        }
    }
    bench.report.table(&delays);
    bench.report.table(&added_table);
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
