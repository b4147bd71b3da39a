//! The machine a run ran on, for the report's header and for judging its figures: date,
//! commit, CPU, kernel, load average, and how idle the machine was before a section (the
//! benchmark shares its cores with whatever else runs, and every timing shows it).

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Window over which the idle share is read.
const IDLE_WINDOW: Duration = Duration::from_millis(500);

/// A machine at least this idle (over one window) counts as quiet.
pub const QUIET_IDLE: f64 = 0.8;

/// The 1, 5 and 15 minute load averages: other work on the machine shows up in every figure.
pub fn load_average() -> String {
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

pub fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map_or_else(|_| "unknown".into(), |text| text.trim().to_owned())
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The checkout's commit, with `+changes` when the work tree differs from it.
pub fn git_commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        None => "unknown".into(),
        Some(commit) => match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(changes) if changes.is_empty() => commit,
            _ => format!("{commit}+changes"),
        },
    }
}

/// Now as `YYYY-MM-DD HH:MM` (UTC), from the days-to-civil algorithm (no date crate here).
pub fn utc_now() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let (hour, minute) = (seconds % 86_400 / 3600, seconds % 3600 / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}")
}

/// Busy and total jiffies of all CPUs so far, from the first line of `/proc/stat`.
fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is counted in user).
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// The share of the whole machine's CPU time that was idle over [`IDLE_WINDOW`].
pub fn idle_share() -> Option<f64> {
    let (busy_before, total_before) = cpu_jiffies()?;
    std::thread::sleep(IDLE_WINDOW);
    let (busy_after, total_after) = cpu_jiffies()?;
    let total = total_after.saturating_sub(total_before);
    let busy = busy_after.saturating_sub(busy_before);
    (total > 0).then(|| 1.0 - busy as f64 / total as f64)
}

/// Waits until the machine was at least [`QUIET_IDLE`] idle over one window, or `limit` has
/// passed. Returns the last idle share read and how long it waited.
pub fn wait_for_quiet(limit: Duration) -> (Option<f64>, Duration) {
    let began = Instant::now();
    loop {
        let idle = idle_share();
        if idle.is_none_or(|idle| idle >= QUIET_IDLE) || began.elapsed() >= limit {
            return (idle, began.elapsed());
        }
    }
}
