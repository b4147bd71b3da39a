//! Section 7, `startup`: the release binary's size, and the time from spawning the process
//! to its first successful `/healthz` (median of 10 starts, polled every millisecond; target
//! < 50 ms). Each start is a fresh process with `WORKERS=64` in its own scratch directory.

use std::time::Duration;

use crate::nginx::NginxProcess;
use crate::proxy_process::ProxyProcess;
use crate::report::verdict;
use crate::stats::{Summary, Table, mib};
use crate::{Bench, BenchResult, WORKERS};

/// Starts measured.
const STARTS: usize = 10;

/// Target for spawn to first `/healthz`.
const START_TARGET: Duration = Duration::from_millis(50);

/// Runs section 7.
pub fn run(bench: &mut Bench) -> BenchResult<()> {
    let binary = crate::proxy_process::binary();
    let size = std::fs::metadata(&binary)?.len();
    let built = if crate::proxy_process::given_binary().is_some() {
        "the build given by PROXY_BINARY"
    } else {
        "release profile: LTO, one codegen unit, stripped"
    };
    let mut sizes = Table::new(
        &format!("7. Binary size ({built})"),
        &["binary", "bytes", "MiB"],
    );
    sizes.row(vec!["codex-sub-proxy".into(), size.to_string(), mib(size)]);
    // nginx for scale only: it links its libraries (and OpenSSL) dynamically.
    if let Some((nginx, meta)) = NginxProcess::find()
        .and_then(|nginx| std::fs::metadata(&nginx).ok().map(|meta| (nginx, meta)))
    {
        sizes.row(vec![
            format!("{} (dynamically linked)", nginx.display()),
            meta.len().to_string(),
            mib(meta.len()),
        ]);
    }
    bench.report.table(&sizes);
    bench
        .report
        .csv
        .add("startup", "binary", "proxy", "size", size, "bytes");

    let mut starts_us: Vec<i64> = Vec::with_capacity(STARTS);
    for _ in 0..STARTS {
        let proxy = ProxyProcess::start(&bench.fake.base_url(), WORKERS, &bench.scratch)?;
        starts_us.push(i64::try_from(proxy.started_in.as_micros()).unwrap_or(i64::MAX));
    }
    for (index, micros) in starts_us.iter().enumerate() {
        let scenario = format!("start-{}", index + 1);
        let csv = &mut bench.report.csv;
        csv.add(
            "startup",
            &scenario,
            "proxy",
            "to_first_healthz",
            micros,
            "us",
        );
    }
    let summary = Summary::of(&mut starts_us);
    let min = starts_us.first().copied().unwrap_or(0);
    let median = median(&starts_us);
    let met = Some(median < i64::try_from(START_TARGET.as_micros()).unwrap_or(i64::MAX));
    let mut table = Table::new(
        "7b. Start-up: spawn to first successful /healthz (10 starts, WORKERS=64)",
        &["starts", "min ms", "median ms", "max ms", "target", "met"],
    );
    table.row(vec![
        summary.count.to_string(),
        crate::stats::ms(min),
        crate::stats::ms(median),
        crate::stats::ms(summary.max),
        format!("< {} ms", START_TARGET.as_millis()),
        verdict(met),
    ]);
    bench.report.table(&table);
    bench.report.target(
        "7 startup",
        "spawn to first /healthz, median of 10",
        &format!("< {} ms", START_TARGET.as_millis()),
        &format!("{} ms", crate::stats::ms(median)),
        met,
    );
    let csv = &mut bench.report.csv;
    csv.add(
        "startup",
        "median",
        "proxy",
        "to_first_healthz",
        median,
        "us",
    );
    Ok(())
}

/// The median of sorted samples (the mean of the middle two for an even count).
fn median(sorted: &[i64]) -> i64 {
    match sorted.len() {
        0 => 0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}
