//! nginx as a plain reverse proxy in front of the fast fake: the reference a relay that only
//! relays sets. Rendered from `nginx.conf` (buffering off, keep-alive upstream) into a
//! scratch prefix that also holds its pid file, error log and temp directories, started as a
//! child process on 127.0.0.1 (`nginx -p <prefix> -c <conf> -e <log> -g 'daemon off;'`) and
//! stopped on drop (`nginx -s stop`, then a kill if it lingers).
//!
//! Also reads the CPU time of the master and its worker processes from `/proc`.

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::http1;
use crate::proxy_process::{Usage, cpu_time_of_pid, free_port, usage_of_pid};

/// The configuration, with `{{WORKERS}}`, `{{PREFIX}}`, `{{UPSTREAM}}` and `{{LISTEN}}`.
const CONFIG_TEMPLATE: &str = include_str!("nginx.conf");

/// `worker_processes`: 2, one per core of this 2-core machine, as `auto` would pick. The proxy
/// spreads its threads over every core, so nginx may too; and one worker is a single event
/// loop that queues 64 clients behind each other (measured here: 6,800 against 9,200
/// requests/s at 64 clients, the same at 16), which would flatter the proxy.
pub const WORKER_PROCESSES: usize = 2;

/// What to run when nginx is missing (Markdown).
pub const INSTALL_HINT: &str = "`apt-get install -y nginx-light` (or `nginx`)";

/// Where nginx is looked for after `PATH` (Debian installs it in `/usr/sbin`, which a
/// non-root `PATH` often lacks).
const SEARCH_DIRS: [&str; 3] = ["/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"];

/// How long nginx may take to relay its first request.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// How long `nginx -s stop` may take before the processes are killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A running nginx master process and its workers.
pub struct NginxProcess {
    binary: PathBuf,
    child: Child,
    addr: SocketAddr,
    prefix: PathBuf,
    conf: PathBuf,
    workers: Vec<u32>,
    /// What `nginx -v` printed.
    pub version: String,
}

impl NginxProcess {
    /// The nginx binary on `PATH` or in one of [`SEARCH_DIRS`].
    pub fn find() -> Option<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(SEARCH_DIRS.iter().map(PathBuf::from))
            .map(|dir| dir.join("nginx"))
            .find(|candidate| candidate.is_file())
    }

    /// Starts `binary` relaying to `upstream` and waits until a request through it comes back.
    pub fn start(binary: &Path, upstream: SocketAddr, scratch_root: &Path) -> io::Result<Self> {
        let port = free_port()?;
        let prefix = scratch_root.join(format!("nginx-{port}"));
        std::fs::create_dir_all(&prefix)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let conf = prefix.join("nginx.conf");
        let rendered = CONFIG_TEMPLATE
            .replace("{{WORKERS}}", &WORKER_PROCESSES.to_string())
            .replace("{{PREFIX}}", &prefix.display().to_string())
            .replace("{{UPSTREAM}}", &upstream.to_string())
            .replace("{{LISTEN}}", &addr.to_string());
        std::fs::write(&conf, rendered)?;
        let version = Command::new(binary)
            .arg("-v")
            .output()
            .map(|out| {
                let text = String::from_utf8_lossy(&out.stderr);
                let text = text.trim();
                text.strip_prefix("nginx version: ")
                    .unwrap_or(text)
                    .to_owned()
            })
            .unwrap_or_default();
        let child = Command::new(binary)
            .args(nginx_args(&prefix, &conf))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut nginx = NginxProcess {
            binary: binary.to_path_buf(),
            child,
            addr,
            prefix,
            conf,
            workers: Vec::new(),
            version,
        };
        nginx.wait_ready()?;
        Ok(nginx)
    }

    /// The address nginx listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// User plus system CPU time of the master and its workers so far.
    pub fn cpu_time(&self) -> io::Result<Duration> {
        let mut total = cpu_time_of_pid(self.child.id())?;
        for worker in &self.workers {
            total += cpu_time_of_pid(*worker)?;
        }
        Ok(total)
    }

    /// CPU time split and context switches of the master and its workers so far.
    pub fn usage(&self) -> io::Result<Usage> {
        let mut total = usage_of_pid(self.child.id())?;
        for worker in &self.workers {
            total = total.plus(usage_of_pid(*worker)?);
        }
        Ok(total)
    }

    /// Waits until a request relayed through nginx is answered (by the fake: a `GET` gets a
    /// 404 there) and every worker process is up.
    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log =
                    std::fs::read_to_string(self.prefix.join("error.log")).unwrap_or_default();
                return Err(io::Error::other(format!(
                    "nginx exited during start-up ({status}): {log}"
                )));
            }
            if relayed_status(self.addr).is_ok_and(|status| status == 404) {
                self.workers = children_of(self.child.id())?;
                if self.workers.len() >= WORKER_PROCESSES {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "nginx did not relay a request in time",
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for NginxProcess {
    fn drop(&mut self) {
        let _ = Command::new(&self.binary)
            .args(nginx_args(&self.prefix, &self.conf))
            .args(["-s", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                let _ = std::fs::remove_dir_all(&self.prefix);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // It lingered: kill the master, then the workers it started (by their ids).
        let _ = self.child.kill();
        let _ = self.child.wait();
        for worker in &self.workers {
            let _ = Command::new("kill")
                .args(["-KILL", &worker.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.prefix);
    }
}

/// `-p <prefix> -c <conf> -e <error log>`: everything nginx writes stays in the prefix.
fn nginx_args(prefix: &Path, conf: &Path) -> Vec<String> {
    vec![
        "-p".into(),
        prefix.display().to_string(),
        "-c".into(),
        conf.display().to_string(),
        "-e".into(),
        prefix.join("error.log").display().to_string(),
    ]
}

/// The status of a `GET` sent through nginx to the fake.
fn relayed_status(addr: SocketAddr) -> io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(
        format!("GET /ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut reader = BufReader::new(stream);
    let head = http1::read_head(&mut reader)?.ok_or(io::ErrorKind::UnexpectedEof)?;
    Ok(head.status())
}

/// The ids of the processes whose parent is `parent` (nginx's workers), from `/proc/*/stat`.
fn children_of(parent: u32) -> io::Result<Vec<u32>> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may end between listing and reading: skip it.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the parenthesised command name: state, then the parent's id.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|ppid| ppid.parse::<u32>().ok());
        if ppid == Some(parent) {
            children.push(pid);
        }
    }
    Ok(children)
}
