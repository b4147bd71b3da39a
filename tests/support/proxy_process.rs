//! Runs the real `codex-sub-proxy` binary as a child process on 127.0.0.1 (port chosen by the
//! OS and read from its start-up log line), capturing everything it logs.
//!
//! It logs at `trace` unless the caller sets `LOG_LEVEL`. The keys and tokens it is given (and
//! those in its credentials file) are registered in `secrets.rs`, the other variables' values
//! are declared public (the proxy logs its configuration at start), and dropping a
//! [`ProxyProcess`] fails the test when a registered secret reached its output.

#![expect(clippy::expect_used, reason = "test support fails loudly")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::harness::ScratchDir;
use crate::secrets::{self, SecretKind};

/// A running proxy process; killed (SIGKILL) on drop if still running.
pub struct ProxyProcess {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    logs: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
    credentials_file: Option<std::path::PathBuf>,
    /// The working directory, when the process owns it; a field drops after `Drop::drop` has
    /// reaped the child, so the directory outlives the process.
    workdir: Option<ScratchDir>,
}

impl ProxyProcess {
    /// Like [`ProxyProcess::start`] in `workdir`, which the process keeps until it is dropped
    /// and has been reaped; for a helper that returns the process but not the directory.
    pub fn start_in(vars: &[(&str, &str)], workdir: ScratchDir) -> Result<ProxyProcess, String> {
        let mut process = Self::start(vars, &workdir)?;
        process.workdir = Some(workdir);
        Ok(process)
    }

    /// Starts the binary with exactly these variables (plus `PATH`), in `workdir`, and waits
    /// (bounded) for it to listen. Returns `Err` with its output if it exits or never listens.
    pub fn start(vars: &[(&str, &str)], workdir: &std::path::Path) -> Result<ProxyProcess, String> {
        let credentials_file = register_secrets(vars, workdir);
        let mut command = Command::new(env!("CARGO_BIN_EXE_codex-sub-proxy"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .current_dir(workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !vars.iter().any(|(key, _)| *key == "LOG_LEVEL") {
            command.env("LOG_LEVEL", "trace");
        }
        for (key, value) in vars {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start the proxy binary");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let mut readers = Vec::new();
        for stream in [
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let logs = logs.clone();
            let addr_tx = addr_tx.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                        let _ = addr_tx.send(addr);
                    }
                    logs.lock().expect("logs").push(line);
                }
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(addr) = addr_rx.recv_timeout(Duration::from_millis(20)) {
                return Ok(ProxyProcess {
                    child,
                    addr,
                    logs,
                    readers,
                    credentials_file,
                    workdir: None,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(50));
                let output = logs.lock().expect("logs").join("\n");
                return Err(format!("proxy exited with {status}:\n{output}"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err("proxy did not start listening within 20 s".into());
            }
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything logged so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("logs").clone()
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        self.kill();
        // The reaped process holds no pipe end any more, so the readers reach EOF at once.
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        if std::thread::panicking() {
            return;
        }
        if let Some(file) = &self.credentials_file {
            secrets::register_credentials_file(file);
        }
        let logs = self.logs();
        secrets::record_scan("processes", u64::try_from(logs.len()).unwrap_or(u64::MAX));
        let findings = secrets::check_lines(secrets::registry(), logs.iter().map(String::as_str));
        secrets::assert_no_findings(
            &format!("the output of proxy process {}", self.pid()),
            &findings,
        );
    }
}

/// Registers the keys and tokens among `vars` and in their credentials file, declares the
/// other values public, and returns the credentials file's path.
fn register_secrets(
    vars: &[(&str, &str)],
    workdir: &std::path::Path,
) -> Option<std::path::PathBuf> {
    let mut credentials_file = Some(workdir.join("credentials.json"));
    for (key, value) in vars {
        match *key {
            "PROXY_API_KEY" => value
                .split(',')
                .for_each(|key| secrets::register(SecretKind::ProxyKey, key.trim())),
            "OPENAI_ACCESS_TOKEN" => secrets::register(SecretKind::AccessToken, value),
            "OPENAI_REFRESH_TOKEN" => secrets::register(SecretKind::RefreshToken, value),
            "CREDENTIALS_FILE" => {
                credentials_file = (!value.is_empty()).then(|| workdir.join(value));
                secrets::registry().declare_public(value);
            }
            _ => secrets::registry().declare_public(value),
        }
    }
    if let Some(file) = &credentials_file {
        secrets::register_credentials_file(file);
    }
    credentials_file
}

/// Resident memory, open descriptors and threads of a process, from `/proc/<pid>`.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// `VmRSS`, KiB.
    pub rss_kib: u64,
    /// Entries of `/proc/<pid>/fd`.
    pub fds: usize,
    /// `Threads`.
    pub threads: usize,
}

/// The process's usage now.
pub fn usage(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse().ok())
            .expect("status field")
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("proc fd")
        .count();
    Usage {
        rss_kib: field("VmRSS:"),
        fds,
        threads: usize::try_from(field("Threads:")).expect("thread count"),
    }
}

/// Polls the process's usage until `done` holds or `bound` passes; returns the last reading
/// and how long it took.
pub fn wait_for_usage(
    pid: u32,
    bound: Duration,
    done: impl Fn(Usage) -> bool,
) -> (Usage, Duration) {
    let started = Instant::now();
    loop {
        let now = usage(pid);
        if done(now) || started.elapsed() > bound {
            return (now, started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
