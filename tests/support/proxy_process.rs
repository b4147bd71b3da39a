//! Runs the real `codex-sub-proxy` binary as a child process on 127.0.0.1 (port chosen by the
//! OS and read from its start-up log line), capturing everything it logs.

#![expect(clippy::expect_used, reason = "test support fails loudly")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running proxy process; killed (SIGKILL) on drop if still running.
pub struct ProxyProcess {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl ProxyProcess {
    /// Starts the binary with exactly these variables (plus `PATH`), in `workdir`, and waits
    /// (bounded) for it to listen. Returns `Err` with its output if it exits or never listens.
    pub fn start(vars: &[(&str, &str)], workdir: &std::path::Path) -> Result<ProxyProcess, String> {
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
        for (key, value) in vars {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start the proxy binary");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
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
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                        let _ = addr_tx.send(addr);
                    }
                    logs.lock().expect("logs").push(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(addr) = addr_rx.recv_timeout(Duration::from_millis(20)) {
                return Ok(ProxyProcess { child, addr, logs });
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
    }
}
