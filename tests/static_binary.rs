//! The static release binary in an empty root: a directory holding nothing but the binary,
//! entered with `unshare --mount --root` (no `/etc`, no `/lib`, no `/proc`, no `/dev`, no shell).
//! It must print its version, serve real requests against the fake Codex backend on loopback
//! (the network namespace is shared), answer `--healthcheck`, persist its credentials file, and
//! stop cleanly on SIGTERM. This is the local stand-in for the distroless container.
//!
//! Ignored by default: it needs root and a static build. `audit/check-static-binary.sh` builds
//! the binary and runs it with `STATIC_BINARY=<path> cargo test --test static_binary -- --ignored`.

#![expect(clippy::expect_used, clippy::panic, reason = "tests fail loudly")]

#[path = "support/fake_codex.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod fake_codex;
#[path = "support/harness.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod harness;
#[path = "support/secrets.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod secrets;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_codex::{DEFAULT_ACCESS_TOKEN, FakeCodex};
use harness::{PROXY_KEY, ScratchDir, scratch_dir};

const SMOKE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/smoke-test.sh");
/// Where the binary sits inside the empty root.
const INSIDE: &str = "/codex-sub-proxy";

/// `unshare --mount --root <root> /codex-sub-proxy <args>` with exactly `vars` as environment.
fn in_empty_root(root: &Path, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new("unshare");
    command
        .arg("--mount")
        .arg(format!("--root={}", root.display()))
        .arg(INSIDE)
        .args(args)
        .env_clear()
        .envs(vars.iter().copied())
        .stdin(Stdio::null());
    command
}

/// A fresh directory holding only a copy of the binary, removed when the guard is dropped.
fn empty_root(binary: &Path) -> ScratchDir {
    let root = scratch_dir();
    let inside = root.join(INSIDE.trim_start_matches('/'));
    std::fs::copy(binary, &inside).expect("copy the static binary into the root");
    std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let entries: Vec<_> = std::fs::read_dir(&root).expect("list root").collect();
    assert_eq!(entries.len(), 1, "the root holds only the binary");
    root
}

fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The proxy serving inside the root; SIGKILLed on drop if still running.
struct RootedProxy {
    child: Child,
    addr: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl RootedProxy {
    fn start(root: &Path, vars: &[(&str, &str)]) -> RootedProxy {
        let mut child = in_empty_root(root, &[], vars)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the proxy in the empty root");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = addr_tx.send(addr);
                }
                sink.lock().expect("logs").push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(addr) = addr_rx.recv_timeout(Duration::from_millis(20)) {
                return RootedProxy { child, addr, logs };
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = logs.lock().expect("logs").join("\n");
                panic!("the proxy exited with {status} in the empty root:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "the proxy did not listen within 20 s"
            );
        }
    }

    fn port(&self) -> String {
        self.addr.rsplit(':').next().unwrap_or_default().to_owned()
    }

    fn log(&self) -> String {
        self.logs.lock().expect("logs").join("\n")
    }

    /// SIGTERM, then wait (bounded) for the exit code.
    fn terminate(&mut self) -> Option<i32> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for RootedProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs root and a static build: run by audit/check-static-binary.sh"]
fn static_binary_serves_from_an_empty_root() {
    let binary = PathBuf::from(
        std::env::var("STATIC_BINARY").expect("STATIC_BINARY names the static binary to test"),
    );
    let root = empty_root(&binary);

    let version = in_empty_root(&root, &["--version"], &[])
        .output()
        .expect("run unshare");
    let text = printed(&version);
    assert!(
        version.status.success(),
        "--version in the empty root: {text}"
    );
    assert!(text.starts_with("codex-sub-proxy "), "{text}");
    eprintln!("empty root: --version printed {}", text.trim());

    let fake = FakeCodex::start();
    let codex = fake.base_url();
    let mut proxy = RootedProxy::start(
        &root,
        &[
            ("HOST", "127.0.0.1"),
            ("PORT", "0"),
            ("PROXY_API_KEY", PROXY_KEY),
            ("CODEX_BASE_URL", &codex),
            ("AUTH_BASE_URL", "http://127.0.0.1:9"),
            ("OPENAI_ACCESS_TOKEN", DEFAULT_ACCESS_TOKEN),
            ("CREDENTIALS_FILE", "/credentials.json"),
        ],
    );
    eprintln!("empty root: serving on {}", proxy.addr);

    let port = proxy.port();
    let health = in_empty_root(&root, &["--healthcheck"], &[("PORT", &port)])
        .output()
        .expect("run unshare");
    assert!(
        health.status.success(),
        "--healthcheck in the empty root: {}",
        printed(&health)
    );
    eprintln!("empty root: --healthcheck against port {port} exited 0");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_port = closed.local_addr().expect("addr").port().to_string();
    drop(closed);
    let unhealthy = in_empty_root(&root, &["--healthcheck"], &[("PORT", &closed_port)])
        .output()
        .expect("run unshare");
    assert_eq!(
        unhealthy.status.code(),
        Some(1),
        "--healthcheck against a closed port: {}",
        printed(&unhealthy)
    );

    // Name resolution is built in as well (glibc 2.34+ has the `files` and `dns` modules inside
    // libc; musl has its own resolver): with only /etc/hosts added, `localhost` resolves.
    std::fs::create_dir(root.join("etc")).expect("mkdir etc");
    std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").expect("write hosts");
    let by_name = in_empty_root(
        &root,
        &["--healthcheck"],
        &[("HOST", "localhost"), ("PORT", &port)],
    )
    .output()
    .expect("run unshare");
    assert!(
        by_name.status.success(),
        "--healthcheck via localhost and /etc/hosts: {}",
        printed(&by_name)
    );
    eprintln!("empty root + /etc/hosts: --healthcheck via HOST=localhost exited 0");

    let smoke = Command::new("sh")
        .arg(SMOKE)
        .env("BASE_URL", format!("http://{}", proxy.addr))
        .env("PROXY_API_KEY", PROXY_KEY)
        .env("SMOKE_MAX_TIME", "20")
        .env("NO_PROXY", "*")
        .env_remove("MODEL")
        .output()
        .expect("run the smoke test");
    let text = printed(&smoke);
    eprintln!("empty root: smoke test against the rooted proxy:\n{text}");
    assert!(
        smoke.status.success(),
        "smoke test against the proxy in the empty root failed:\n{text}\nproxy log:\n{}",
        proxy.log()
    );
    assert_eq!(fake.responses_requests().len(), 4);

    let credentials = root.join("credentials.json");
    let mode = std::fs::metadata(&credentials)
        .expect("the proxy wrote /credentials.json inside the root")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "credentials file mode {mode:o}");

    assert_eq!(
        proxy.terminate(),
        Some(0),
        "exit after SIGTERM\n{}",
        proxy.log()
    );
    let log = proxy.log();
    assert!(!log.contains(PROXY_KEY), "{log}");
    assert!(!log.contains(DEFAULT_ACCESS_TOKEN), "{log}");
    eprintln!("empty root: SIGTERM → exit 0; the log holds no key or token");
}
