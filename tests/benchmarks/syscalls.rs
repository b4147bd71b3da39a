//! Section 9, `syscalls` (run only when named: `cargo bench --bench relay -- syscalls`):
//! system calls per request, counted by `strace -f -c`. Like callgrind's instruction counts,
//! these are repeatable for the same binary and load (apart from `futex`, whose count depends
//! on which thread waits first), so they show what a change does to the proxy's work in the
//! kernel where CPU timings cannot.
//!
//! The runs are callgrind's (`callgrind::RUNS`): each kind of request against a fresh proxy
//! under `strace -f -c`, then SIGTERM so strace writes its summary; the counts of a run that
//! only starts and stops are subtracted. The summaries stay in `target/syscalls/`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::callgrind::{RUNS, find_tool, run_wrapped};
use crate::stats::Table;
use crate::{Bench, BenchResult};

/// Calls per request below this in every run are left out of the table (still in the CSV).
const SHOWN_FROM: f64 = 0.05;

/// Runs section 9.
pub fn run(bench: &mut Bench, out_dir: &Path) -> BenchResult<()> {
    let Some(strace) = find_tool("strace") else {
        bench.report.text(
            "### 9. System calls per request (strace)\n\nskipped: strace is not installed \
             (`apt-get install -y strace`)\n",
        );
        return Ok(());
    };
    std::fs::create_dir_all(out_dir)?;
    let mut baseline = BTreeMap::new();
    // Per run: its label, answered requests, and calls per request by system call.
    let mut measured: Vec<(&str, u64, BTreeMap<String, f64>)> = Vec::new();
    for (label, kind, requests) in RUNS {
        let out_file = out_dir.join(format!("strace.{label}.txt"));
        let wrapper = vec![
            strace.display().to_string(),
            "-f".into(),
            "-c".into(),
            "-o".into(),
            out_file.display().to_string(),
        ];
        let (ok, failed) = run_wrapped(bench, &wrapper, kind, requests)
            .map_err(|error| format!("syscalls {label}: {error}"))?;
        if failed > 0 {
            return Err(format!("syscalls {label}: {failed} of {requests} requests failed").into());
        }
        let counts = read_summary(&std::fs::read_to_string(&out_file)?);
        if kind.is_none() {
            baseline = counts;
            continue;
        }
        let per_request = per_request(&counts, &baseline, ok);
        for (name, value) in &per_request {
            let csv = &mut bench.report.csv;
            csv.add(
                "syscalls",
                label,
                "proxy",
                name,
                format!("{value:.2}"),
                "calls",
            );
        }
        measured.push((label, ok, per_request));
    }

    let mut names: Vec<&String> = measured
        .iter()
        .flat_map(|(_, _, calls)| calls.iter())
        .filter(|(_, value)| **value >= SHOWN_FROM)
        .map(|(name, _)| name)
        .collect();
    names.sort();
    names.dedup();
    let mut columns = vec!["system call".to_owned()];
    columns.extend(
        measured
            .iter()
            .map(|(label, ok, _)| format!("{label} ({ok})")),
    );
    let column_refs: Vec<&str> = columns.iter().map(String::as_str).collect();
    let mut table = Table::new(
        "9. System calls per request (strace -f -c; minus a run that only starts and stops)",
        &column_refs,
    );
    let mut total = vec!["**all**".to_owned()];
    total.extend(
        measured
            .iter()
            .map(|(_, _, calls)| format!("{:.2}", calls.values().sum::<f64>())),
    );
    for name in names {
        let mut row = vec![name.clone()];
        row.extend(measured.iter().map(|(_, _, calls)| {
            calls
                .get(name)
                .map_or_else(|| "-".into(), |value| format!("{value:.2}"))
        }));
        table.row(row);
    }
    table.row(total);
    bench.report.table(&table);
    Ok(())
}

/// Calls by system call name, from the table `strace -c` writes: `% time`, `seconds`,
/// `usecs/call`, `calls`, an optional `errors`, then the name; the `total` row is left out.
pub fn read_summary(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (name, numbers) = fields.split_last()?;
            if *name == "total" || !(4..=5).contains(&numbers.len()) {
                return None;
            }
            if numbers.iter().any(|n| n.parse::<f64>().is_err()) {
                return None;
            }
            Some(((*name).to_owned(), numbers[3].parse().ok()?))
        })
        .collect()
}

/// Each call's count above the baseline's, per answered request.
fn per_request(
    counts: &BTreeMap<String, u64>,
    baseline: &BTreeMap<String, u64>,
    requests: u64,
) -> BTreeMap<String, f64> {
    counts
        .iter()
        .map(|(name, &calls)| {
            let above = calls.saturating_sub(baseline.get(name).copied().unwrap_or(0));
            (name.clone(), above as f64 / requests.max(1) as f64)
        })
        .filter(|(_, value)| *value > 0.0)
        .collect()
}
