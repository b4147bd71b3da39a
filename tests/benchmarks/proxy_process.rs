//! The proxy under test: the real release binary started as a child process, on 127.0.0.1,
//! pointed at the fast fake, with a clean environment and a scratch working directory (so
//! no `.env` or credentials file of the checkout is read or written). Killed on drop, so a
//! failing benchmark never leaves it behind.
//!
//! Also reads the child's `/proc/<pid>/status` (VmRSS, VmHWM, Threads) and `/proc/<pid>/stat`
//! (CPU time) for the memory and CPU figures, and times how long it took from being spawned
//! to its first successful `/healthz`.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cpu_clock::process_cpu_time;
use crate::fast_fake::access_token;
use crate::http1;

/// The caller key the proxy accepts.
pub const PROXY_KEY: &str = "bench-key";

/// How long the proxy may take to answer `/healthz` after it was started.
const START_DEADLINE: Duration = Duration::from_secs(15);

/// Pause between `/healthz` attempts during start-up: short, because the time to the first
/// success is a reported figure (a refused loopback connection costs microseconds).
const START_POLL: Duration = Duration::from_millis(1);

/// The Linux clock tick userspace sees in `/proc/<pid>/stat` (fixed at 100 Hz on every
/// architecture Rust targets; std has no `sysconf`).
const USER_HZ: u64 = 100;

/// The binary given by `PROXY_BINARY` (the static musl build the container ships, say).
pub fn given_binary() -> Option<PathBuf> {
    std::env::var_os("PROXY_BINARY")
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
}

/// The binary under test: [`given_binary`], else the release build Cargo made for this
/// benchmark.
pub fn binary() -> PathBuf {
    given_binary().unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_codex-sub-proxy")))
}

/// A running proxy child process.
pub struct ProxyProcess {
    child: Child,
    addr: SocketAddr,
    scratch: PathBuf,
    /// The `WORKERS` it was started with.
    pub workers: usize,
    /// From just before the spawn to the first `/healthz` that answered 200.
    pub started_in: Duration,
}

/// One reading of the child's `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    /// Resident set size now, bytes.
    pub rss: u64,
    /// Peak resident set size so far, bytes.
    pub hwm: u64,
    /// Threads now.
    pub threads: u64,
}

impl ProxyProcess {
    /// Starts the binary with `workers` worker threads against `upstream_base` and waits for
    /// `/healthz` to answer 200.
    pub fn start(upstream_base: &str, workers: usize, scratch_root: &Path) -> io::Result<Self> {
        ProxyProcess::start_wrapped(upstream_base, workers, scratch_root, &[], START_DEADLINE)
    }

    /// Like [`ProxyProcess::start`], but runs `wrapper… <binary>` (valgrind, say) and waits
    /// up to `deadline` for `/healthz`.
    pub fn start_wrapped(
        upstream_base: &str,
        workers: usize,
        scratch_root: &Path,
        wrapper: &[String],
        deadline: Duration,
    ) -> io::Result<Self> {
        let port = free_port()?;
        let scratch = scratch_root.join(format!("proxy-{port}"));
        std::fs::create_dir_all(&scratch)?;
        let spawned = Instant::now();
        let binary = binary();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        let child = command
            .current_dir(&scratch)
            .env_clear()
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("PROXY_API_KEY", PROXY_KEY)
            .env("OPENAI_ACCESS_TOKEN", access_token())
            .env("CODEX_BASE_URL", upstream_base)
            .env("CREDENTIALS_FILE", scratch.join("credentials.json"))
            .env("AUTH_BASE_URL", "http://127.0.0.1:9")
            .env("WORKERS", workers.to_string())
            .env("QUEUE_DEPTH", "512")
            .env("LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut proxy = ProxyProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            scratch,
            workers,
            started_in: Duration::ZERO,
        };
        proxy.wait_healthy(spawned + deadline)?;
        proxy.started_in = spawned.elapsed();
        Ok(proxy)
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Reads VmRSS, VmHWM and Threads.
    pub fn sample(&self) -> io::Result<ProcSample> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| io::Error::other(format!("no {name} in /proc status")))
        };
        Ok(ProcSample {
            rss: field("VmRSS:")? * 1024,
            hwm: field("VmHWM:")? * 1024,
            threads: field("Threads:")?,
        })
    }

    /// The ids of its threads now (`/proc/<pid>/task`): threads in a later reading and not in
    /// an earlier one were started between the two (tiny_http starts a connection thread when
    /// no idle one is left, and an idle one ends after 5 s).
    pub fn thread_ids(&self) -> io::Result<BTreeSet<u32>> {
        let mut ids = BTreeSet::new();
        for entry in std::fs::read_dir(format!("/proc/{}/task", self.child.id()))? {
            if let Some(id) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) {
                ids.insert(id);
            }
        }
        Ok(ids)
    }

    /// User plus system CPU time of the whole process so far.
    pub fn cpu_time(&self) -> io::Result<Duration> {
        cpu_time_of_pid(self.child.id())
    }

    /// CPU time split and context switches of the whole process so far.
    pub fn usage(&self) -> io::Result<Usage> {
        usage_of_pid(self.child.id())
    }

    /// Polls `GET /healthz` until it answers 200, the child exits, or the deadline passes.
    fn wait_healthy(&mut self, deadline: Instant) -> io::Result<()> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "the proxy exited during start-up ({status})"
                )));
            }
            if health_status(self.addr).is_ok_and(|status| status == 200) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the proxy did not answer /healthz in time",
                ));
            }
            std::thread::sleep(START_POLL);
        }
    }
}

impl ProxyProcess {
    /// Asks the proxy to shut down (SIGTERM, so a wrapper such as valgrind writes its
    /// output) and waits up to `limit` for it to exit; kills it after that. Returns whether
    /// it exited by itself. A wrapper that runs the proxy as its own child (strace, which
    /// blocks SIGTERM while it traces) gets the signal passed to that child.
    pub fn terminate(mut self, limit: Duration) -> io::Result<bool> {
        let pid = self.child.id();
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .args(children.split_whitespace())
            .status()?;
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(false)
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// User plus system CPU time of this benchmark process (fake backend plus load generator).
pub fn own_cpu_time() -> io::Result<Duration> {
    cpu_time_of_pid(std::process::id())
}

/// User plus system CPU time of process `pid` so far (all its threads, live and ended), to
/// the nanosecond (`cpu_clock`); in `/proc` clock ticks if its CPU clock cannot be read.
pub fn cpu_time_of_pid(pid: u32) -> io::Result<Duration> {
    process_cpu_time(pid).or_else(|_| {
        let (user, system) = cpu_split_of(&format!("/proc/{pid}/stat"))?;
        Ok(user + system)
    })
}

/// What a relay process spent so far: CPU time in user space and in the kernel, and how
/// often its threads were switched out (voluntary, waiting for something, plus involuntary).
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// User-space CPU time.
    pub user: Duration,
    /// Kernel CPU time on its behalf.
    pub system: Duration,
    /// Context switches of its live threads.
    pub switches: u64,
}

impl Usage {
    /// The sum of two processes' usage (nginx's master and workers).
    pub fn plus(self, other: Usage) -> Usage {
        Usage {
            user: self.user + other.user,
            system: self.system + other.system,
            switches: self.switches + other.switches,
        }
    }

    /// What was spent between `before` and `self`.
    pub fn since(self, before: Usage) -> Usage {
        Usage {
            user: self.user.saturating_sub(before.user),
            system: self.system.saturating_sub(before.system),
            switches: self.switches.saturating_sub(before.switches),
        }
    }
}

/// Usage of process `pid` so far: CPU from `/proc/<pid>/stat` (threads live and ended, in
/// 10 ms ticks: fine over the throughput section's seconds of load, too coarse for parts of
/// a few tens of milliseconds, which use [`cpu_time_of_pid`]),
/// context switches summed over `/proc/<pid>/task/*/status` (live threads).
pub fn usage_of_pid(pid: u32) -> io::Result<Usage> {
    let (user, system) = cpu_split_of(&format!("/proc/{pid}/stat"))?;
    let mut switches = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        // A thread that ended since the listing has no status left to read.
        let Ok(status) = std::fs::read_to_string(task?.path().join("status")) else {
            continue;
        };
        for line in status.lines() {
            if let Some(count) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                switches += count.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    Ok(Usage {
        user,
        system,
        switches,
    })
}

fn cpu_split_of(stat_path: &str) -> io::Result<(Duration, Duration)> {
    let stat = std::fs::read_to_string(stat_path)?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other("unreadable /proc stat"))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|t| t.parse::<u64>().ok())
            .ok_or_else(|| io::Error::other("unreadable /proc stat"))
    };
    let time = |ticks: u64| Duration::from_millis(ticks * 1000 / USER_HZ);
    Ok((time(ticks(11)?), time(ticks(12)?)))
}

/// A port that was free a moment ago (the proxy binds it next).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn health_status(addr: SocketAddr) -> io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(
        format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut reader = io::BufReader::new(stream);
    let head = http1::read_head(&mut reader)?.ok_or(io::ErrorKind::UnexpectedEof)?;
    Ok(head.status())
}
