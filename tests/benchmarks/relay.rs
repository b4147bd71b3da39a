//! Relay benchmark for codex-sub-proxy: `cargo bench --bench relay`.
//!
//! Starts a fast fake Codex backend in this process (`fast_fake.rs`), nginx as a plain
//! reverse proxy in front of it (`nginx.rs`, `nginx.conf`) and the real release binary as a
//! child process pointed at it (`proxy_process.rs`), then drives them with a hand-written
//! HTTP/1.1 load generator (`load.rs`). Everything runs on 127.0.0.1. Four ways are measured
//! side by side (`via.rs`): `direct` (the fake itself), `nginx` (the fake through nginx),
//! `proxy` (`/v1/responses`, events relayed) and `chat` (`/v1/chat/completions`, events
//! translated into chat chunks). Figures are reported next to their targets, never asserted.
//! Before each section it reads how idle the machine is (`machine.rs`) and, unless the
//! section only measures memory, waits up to 10 s for other work on the machine to calm down.
//!
//! 1. `streaming`: per-event delay at 1 and 16 streams, and what each relay adds over direct
//!    (`streaming.rs`).
//! 2. `throughput`: non-streaming requests per second at 16 and 64 clients, as ratios to
//!    direct and to nginx, with one worker per client, then at 64 clients with the default
//!    `WORKERS`, then at 16 with an agent's turn as every body (`throughput.rs`).
//! 3. `memory`: resident memory idle and with 64 and 256 streams open (`memory.rs`).
//! 4. `stability`: RSS over 10,000 sequential requests, and CPU seconds per 1,000 requests
//!    (`stability.rs`).
//! 5. `events` and 6. `concurrency`: cost per request and per event as a stream grows from
//!    10 to 10,000 deltas, and as 1 to 256 streams run at once (`growth.rs`), beside the
//!    floor of a relay with one thread per stream, std only (`floor.rs`).
//! 7. `startup`: binary size and time from spawn to the first `/healthz` (`startup.rs`).
//! 8. `callgrind`, only when named: instructions per request under valgrind, repeatable where
//!    timings are not, and the busiest functions (`callgrind.rs`).
//! 9. `syscalls`, only when named: system calls per request by name, counted by `strace -f
//!    -c` over the same runs (`syscalls.rs`).
//!
//! Arguments after `--` pick sections by name (`cargo bench --bench relay -- streaming
//! memory`; `growth` means `events concurrency`; none means 1 to 7) and `--save` writes the
//! report to `tests/benchmarks/results.md` and `results.csv` (a snapshot to commit) instead
//! of `target/bench-relay.md` and `.csv`; `--save=NAME` writes `results-NAME.md` and `.csv`,
//! for another build of the proxy, given by `PROXY_BINARY` (the binary Cargo builds for the
//! benchmark otherwise). If nginx is not installed its rows are skipped with a note. Without
//! the `--bench` flag that `cargo bench` passes (so under `cargo test --all-targets`) it
//! measures nothing.

#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]

mod callgrind;
mod cpu_clock;
mod fast_fake;
mod floor;
mod growth;
mod http1;
mod load;
mod machine;
mod memory;
mod nginx;
mod proxy_process;
mod report;
mod stability;
mod startup;
mod stats;
mod streaming;
mod syscalls;
mod throughput;
mod via;

use std::error::Error;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fast_fake::{FastFake, Scenario};
use load::{Connections, Sequential, run_streams};
use machine::{cpu_model, git_commit, load_average, read_trimmed, utc_now};
use nginx::NginxProcess;
use proxy_process::{ProxyProcess, Usage};
use report::Report;
use via::{Request, Target, Via};

/// What every section returns.
pub type BenchResult<T> = Result<T, Box<dyn Error>>;

/// Sections run only when named.
const OPT_IN: [&str; 2] = ["callgrind", "syscalls"];

/// Section names, in the order they run and are numbered (all run when none is named).
const SECTIONS: [&str; 7] = [
    "streaming",
    "throughput",
    "memory",
    "stability",
    "events",
    "concurrency",
    "startup",
];

/// Sections whose figures are times or CPU, which other work on the machine distorts: before
/// each the run waits up to [`QUIET_WAIT`] for the machine to be quiet (memory is exempt).
const QUIET_SECTIONS: [&str; 6] = [
    "streaming",
    "throughput",
    "stability",
    "events",
    "concurrency",
    "startup",
];
const QUIET_WAIT: Duration = Duration::from_secs(10);

/// The proxies of sections 1, 2 (its verdicts), 4, 5 and 7 have this many workers.
pub const WORKERS: usize = 64;

/// The proxy of sections 3 and 6 has this many, so that 256 streams each have one.
pub const WIDE_WORKERS: usize = 300;

/// A short answer with no pauses (20 deltas of 32 bytes): requests bound by CPU, not by the
/// script. Used for throughput, stability and warm-up.
pub const SHORT_SCENARIO: Scenario = Scenario {
    deltas: 20,
    delta_bytes: 32,
    delay: Duration::ZERO,
};

/// The fake, nginx when it runs, and the report the sections add to.
pub struct Bench {
    /// The fast fake backend.
    pub fake: FastFake,
    /// nginx in front of the fake; `None` when not installed (its rows are skipped).
    pub nginx: Option<NginxProcess>,
    /// Scratch directory for proxies and nginx.
    pub scratch: PathBuf,
    /// Tables, notes, targets and CSV rows.
    pub report: Report,
}

impl Bench {
    /// The fake itself.
    pub fn direct(&self) -> Target {
        Target {
            addr: self.fake.addr(),
            via: Via::Direct,
        }
    }

    /// The fake through nginx, when it runs.
    pub fn nginx_target(&self) -> Option<Target> {
        self.nginx.as_ref().map(|nginx| Target {
            addr: nginx.addr(),
            via: Via::Nginx,
        })
    }

    /// The proxy's `/v1/responses` (`Via::Proxy`) or `/v1/chat/completions` (`Via::Chat`).
    pub fn through(proxy: &ProxyProcess, via: Via) -> Target {
        Target {
            addr: proxy.addr(),
            via,
        }
    }

    /// Direct, nginx (when it runs), proxy, chat: the rows of most tables.
    pub fn paths(&self, proxy: &ProxyProcess) -> Vec<Target> {
        let mut paths = vec![self.direct()];
        paths.extend(self.nginx_target());
        paths.push(Bench::through(proxy, Via::Proxy));
        paths.push(Bench::through(proxy, Via::Chat));
        paths
    }

    /// CPU time so far of the relay a request through `via` passes: nginx (master plus
    /// workers) or the proxy; `None` for direct.
    pub fn relay_cpu(&self, via: Via, proxy: &ProxyProcess) -> io::Result<Option<Duration>> {
        match (via, &self.nginx) {
            (Via::Direct, _) | (Via::Nginx, None) => Ok(None),
            (Via::Nginx, Some(nginx)) => nginx.cpu_time().map(Some),
            (Via::Proxy | Via::Chat, _) => proxy.cpu_time().map(Some),
        }
    }

    /// Like [`Bench::relay_cpu`], with user and system time apart and context switches.
    pub fn relay_usage(&self, via: Via, proxy: &ProxyProcess) -> io::Result<Option<Usage>> {
        match (via, &self.nginx) {
            (Via::Direct, _) | (Via::Nginx, None) => Ok(None),
            (Via::Nginx, Some(nginx)) => nginx.usage().map(Some),
            (Via::Proxy | Via::Chat, _) => proxy.usage().map(Some),
        }
    }

    /// Starts a proxy with `workers` workers and warms it up.
    pub fn start_proxy(&self, workers: usize) -> BenchResult<ProxyProcess> {
        let proxy = ProxyProcess::start(&self.fake.base_url(), workers, &self.scratch)?;
        self.warm_up(&proxy)?;
        Ok(proxy)
    }

    /// One streaming and one aggregated request on each proxy path and one stream through
    /// nginx, so the first measured request finds connection pools and allocators warm;
    /// fails the run if any fails.
    pub fn warm_up(&self, proxy: &ProxyProcess) -> BenchResult<()> {
        let mut targets: Vec<Target> = self.nginx_target().into_iter().collect();
        targets.push(Bench::through(proxy, Via::Proxy));
        targets.push(Bench::through(proxy, Via::Chat));
        for target in targets {
            let stream = run_streams(target, SHORT_SCENARIO, 1, 1, Connections::Reused)?;
            if stream.complete != 1 {
                let error = stream.first_error;
                let label = target.label();
                return Err(format!("warm-up {label} stream failed: {error:?}").into());
            }
            if target.via.is_raw() {
                continue;
            }
            let request = Request::new(target, SHORT_SCENARIO, false);
            let aggregated = Sequential::new(vec![request]).run(1, Duration::ZERO);
            if aggregated.ok != 1 {
                let error = aggregated.first_error;
                let label = target.label();
                return Err(format!("warm-up {label} request failed: {error:?}").into());
            }
        }
        Ok(())
    }
}

fn main() -> BenchResult<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` (or `--all-targets`) does not,
    // and a test run should not spend minutes measuring. Anything else names a section.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|arg| arg == "--bench") {
        println!("relay benchmark: nothing measured outside `cargo bench --bench relay`");
        return Ok(());
    }
    // `--save` writes `results.md`; `--save=NAME` writes `results-NAME.md` (a snapshot of
    // another build, given by PROXY_BINARY, beside the release build's).
    let mut save = None;
    for arg in &args {
        match arg.strip_prefix("--save") {
            Some("") => save = Some(String::from("results")),
            Some(named) => {
                let name = named.strip_prefix('=').unwrap_or_default();
                let usable = !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
                if !usable {
                    return Err(format!(
                        "{arg:?}: the snapshot's name is letters, digits and '-' (--save=musl)"
                    )
                    .into());
                }
                save = Some(format!("results-{name}"));
            }
            None => {}
        }
    }
    let mut chosen: Vec<&str> = Vec::new();
    for arg in args.iter().filter(|arg| !arg.starts_with("--")) {
        match arg.as_str() {
            "growth" => chosen.extend(["events", "concurrency"]),
            name if SECTIONS.contains(&name) || OPT_IN.contains(&name) => chosen.push(name),
            name => {
                return Err(format!(
                    "unknown section {name:?}; the sections are {} (growth = events concurrency), \
                     and {} when named",
                    SECTIONS.join(", "),
                    OPT_IN.join(", ")
                )
                .into());
            }
        }
    }
    let wants = |section: &str| {
        chosen.contains(&section) || (chosen.is_empty() && !OPT_IN.contains(&section))
    };

    let began = Instant::now();
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let target_dir = tmp
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf);
    let (markdown_path, csv_path) = if let Some(name) = &save {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/benchmarks");
        (
            dir.join(format!("{name}.md")),
            dir.join(format!("{name}.csv")),
        )
    } else {
        (
            target_dir.join("bench-relay.md"),
            target_dir.join("bench-relay.csv"),
        )
    };
    let scratch = tmp.join(format!("bench-relay-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;

    let fake = FastFake::start()?;
    let (nginx, nginx_line) = match NginxProcess::find() {
        None => (
            None,
            format!(
                "nginx: **not installed, nginx rows skipped**; install it with {}",
                nginx::INSTALL_HINT
            ),
        ),
        Some(binary) => match NginxProcess::start(&binary, fake.addr(), &scratch) {
            Ok(nginx) => {
                let line = format!(
                    "nginx: {} ({}), worker_processes {}, config `tests/benchmarks/nginx.conf`",
                    nginx.version,
                    binary.display(),
                    nginx::WORKER_PROCESSES
                );
                (Some(nginx), line)
            }
            Err(error) => (
                None,
                format!(
                    "nginx: **failed to start ({error}), nginx rows skipped**; binary {}",
                    binary.display()
                ),
            ),
        },
    };
    let mut bench = Bench {
        fake,
        nginx,
        scratch: scratch.clone(),
        report: Report::default(),
    };
    header(&mut bench.report, &nginx_line, &chosen);

    // The proxy most sections share, started (and its idle memory read) before any load.
    let needs_main = ["streaming", "throughput", "memory", "events"];
    let main_proxy = if needs_main.iter().any(|section| wants(section)) {
        let proxy = bench.start_proxy(WORKERS)?;
        let idle = proxy.sample()?;
        Some((proxy, idle))
    } else {
        None
    };
    let mut wide_proxy = None;
    for section in SECTIONS
        .iter()
        .chain(&OPT_IN)
        .filter(|section| wants(section))
    {
        quiet_before(&mut bench.report, section);
        match (*section, &main_proxy) {
            ("streaming", Some((proxy, _))) => streaming::run(&mut bench, proxy)?,
            ("throughput", Some((proxy, _))) => throughput::run(&mut bench, proxy)?,
            ("memory", Some((_, idle))) => {
                wide_proxy = Some(memory::run(&mut bench, *idle)?);
            }
            ("stability", _) => stability::run(&mut bench)?,
            ("events", Some((proxy, _))) => growth::events(&mut bench, proxy)?,
            ("concurrency", _) => {
                let proxy = match wide_proxy.take() {
                    Some(proxy) => proxy,
                    None => bench.start_proxy(WIDE_WORKERS)?,
                };
                growth::concurrency(&mut bench, &proxy)?;
            }
            ("startup", _) => startup::run(&mut bench)?,
            ("callgrind", _) => callgrind::run(&mut bench, &target_dir.join("callgrind"))?,
            ("syscalls", _) => syscalls::run(&mut bench, &target_dir.join("syscalls"))?,
            _ => {}
        }
    }
    drop(wide_proxy);
    drop(main_proxy);

    let served = bench.fake.responses_served();
    let connections = bench.fake.connections_accepted();
    bench.report.finish();
    bench.report.text(&format!(
        "load average at end: {}; the fake served {served} responses over {connections} \
         connections; total {:.1} s\n",
        load_average(),
        began.elapsed().as_secs_f64()
    ));
    bench.report.write(&markdown_path, &csv_path)?;
    drop(bench);
    let _ = std::fs::remove_dir_all(&scratch);
    println!(
        "report written to {} and {}",
        markdown_path.display(),
        csv_path.display()
    );
    Ok(())
}

/// Before a section: how idle the machine is, read over half a second while our own
/// processes are quiet; timing sections first wait (bounded) for others to calm down.
fn quiet_before(report: &mut Report, section: &str) {
    let (idle, waited) = if QUIET_SECTIONS.contains(&section) {
        machine::wait_for_quiet(QUIET_WAIT)
    } else {
        (machine::idle_share(), Duration::ZERO)
    };
    let idle = idle.map_or_else(|| "unknown".into(), |i| format!("{:.0} %", i * 100.0));
    let waited = if waited > Duration::from_secs(1) {
        format!(
            " after waiting {:.0} s for ≥ {:.0} % (other work on the machine)",
            waited.as_secs_f64(),
            machine::QUIET_IDLE * 100.0
        )
    } else {
        String::new()
    };
    report.text(&format!(
        "_{section}: the machine was {idle} idle before this section{waited}._\n"
    ));
    report.csv.add(
        "machine",
        section,
        "-",
        "idle_before",
        idle.trim_end_matches(" %"),
        "%",
    );
}

/// The report's title and the conditions of the run.
fn header(report: &mut Report, nginx_line: &str, chosen: &[&str]) {
    report.text("# codex-sub-proxy relay benchmark\n");
    report.text(&format!(
        "Produced by `cargo bench --bench relay` (`-- --save` writes `tests/benchmarks/results.md` \
         and `results.csv`); the sources are in `tests/benchmarks/`. Sections: {}.\n",
        if chosen.is_empty() {
            "all".to_owned()
        } else {
            chosen.join(", ")
        }
    ));
    let binary = proxy_process::binary();
    let built = if proxy_process::given_binary().is_some() {
        "given by PROXY_BINARY"
    } else {
        "release profile"
    };
    let lines = [
        format!("- date: {} UTC", utc_now()),
        format!("- commit: {}", git_commit()),
        format!("- proxy binary: `{}` ({built})", binary.display()),
        format!("- {nginx_line}"),
        format!(
            "- machine: {} cores, {}, Linux {}; everything on 127.0.0.1",
            std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model(),
            read_trimmed("/proc/sys/kernel/osrelease"),
        ),
        format!("- load average at start: {}", load_average()),
        String::new(),
    ];
    for line in lines {
        report.text(&line);
    }
}
