//! `--login` end to end: the real binary against the fake issuer, for the device-code flow
//! (pending, slow_down, expiry, denial, disabled, success) and the browser PKCE flow (state
//! check, missing entitlement, success). What `--login` writes on stderr (its log and the
//! prompts for the person) is scanned for the tokens the login obtained; stdout carries them on
//! purpose (the `.env` values the person asked for).

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

#[path = "support/fake_oauth.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod fake_oauth;
#[path = "support/harness.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod harness;
#[path = "support/secrets.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod secrets;

use std::io::{BufRead, BufReader, Read};
use std::ops::Deref;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fake_oauth::FakeOAuth;
use fake_oauth::login::{LOGIN_ACCOUNT, LOGIN_REFRESH, USER_CODE};
use harness::ScratchDir;
use serde_json::{Value, json};

struct Login {
    child: Child,
    stderr: Receiver<String>,
    /// Every stderr line, also those `wait_for_line` consumed, for the secret scan.
    all_stderr: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    file: SavedCredentials,
}

/// Where `--login` saves the credentials (whether or not it did), with the scratch directory
/// that holds the file and is its working directory; derefs to the file's path.
struct SavedCredentials {
    path: PathBuf,
    /// Removed when this is dropped, which is after the process has exited.
    _scratch: ScratchDir,
}

impl Deref for SavedCredentials {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

fn start_login(oauth: &FakeOAuth, browser: bool) -> Login {
    let dir = harness::scratch_dir();
    let file = dir.join("data/credentials.json");
    let mut command = Command::new(env!("CARGO_BIN_EXE_codex-sub-proxy"));
    command
        .arg("--login")
        .env_clear()
        .env("AUTH_BASE_URL", oauth.base_url())
        .env("CREDENTIALS_FILE", &file)
        .env("LOGIN_CALLBACK_PORT", "0")
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if browser {
        command.arg("--browser");
    }
    let mut child = command.spawn().expect("start --login");
    let (sender, stderr) = std::sync::mpsc::channel();
    let pipe = child.stderr.take().expect("stderr");
    let all_stderr = Arc::new(Mutex::new(Vec::new()));
    let reader = std::thread::spawn({
        let all_stderr = all_stderr.clone();
        move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                all_stderr.lock().expect("stderr lines").push(line.clone());
                let _ = sender.send(line);
            }
        }
    });
    Login {
        child,
        stderr,
        all_stderr,
        reader: Some(reader),
        file: SavedCredentials {
            path: file,
            _scratch: dir,
        },
    }
}

impl Login {
    /// Waits (bounded) for the process to end; returns (exit code, stdout, all stderr, the
    /// credentials file, whose directory lasts as long as that value).
    fn finish(mut self) -> (Option<i32>, String, String, SavedCredentials) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let code = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status.code();
            }
            assert!(Instant::now() < deadline, "--login did not finish in 30 s");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        if let Some(mut pipe) = self.child.stdout.take() {
            pipe.read_to_string(&mut stdout).expect("stdout");
        }
        // The process has exited, so its stderr is at EOF and the reader ends.
        if let Some(reader) = self.reader.take() {
            reader.join().expect("stderr reader");
        }
        let all_stderr = self.all_stderr.lock().expect("stderr lines").clone();
        secrets::record_scan("login", u64::try_from(all_stderr.len()).unwrap_or(u64::MAX));
        let findings =
            secrets::check_lines(secrets::registry(), all_stderr.iter().map(String::as_str));
        secrets::assert_no_findings("--login's stderr", &findings);
        let stderr: Vec<String> = self.stderr.try_iter().collect();
        (code, stdout, stderr.join("\n"), self.file)
    }

    /// Reads stderr until a line containing `needle` (bounded); returns that line.
    fn wait_for_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(100))
                && line.contains(needle)
            {
                return line;
            }
        }
        panic!("--login never printed {needle:?}");
    }
}

fn assert_saved(file: &Path) {
    let text = std::fs::read_to_string(file).expect("credentials file");
    let stored: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(stored["tokens"]["refresh_token"], LOGIN_REFRESH);
    assert_eq!(stored["tokens"]["account_id"], LOGIN_ACCOUNT);
    assert!(
        stored["tokens"]["id_token"].is_string() && stored["tokens"]["access_token"].is_string()
    );
    assert_eq!(stored["OPENAI_API_KEY"], Value::Null);
    assert_eq!(
        std::fs::metadata(file).expect("meta").permissions().mode() & 0o777,
        0o600
    );
}

fn assert_env_lines(stdout: &str) {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert_eq!(lines[0], format!("OPENAI_REFRESH_TOKEN={LOGIN_REFRESH}"));
    assert!(lines[1].starts_with("OPENAI_ACCESS_TOKEN=ey"));
    assert!(
        lines[2]
            .strip_prefix("OPENAI_EXPIRES_AT=")
            .is_some_and(|v| v.parse::<u64>().is_ok())
    );
    assert_eq!(
        lines[3],
        format!("OPENAI_CHATGPT_ACCOUNT_ID={LOGIN_ACCOUNT}")
    );
}

#[test]
fn device_login_waits_through_pending_and_slow_down_then_saves() {
    let oauth = FakeOAuth::start("unused");
    oauth.login().polls.extend([
        (403, json!({"error": "authorization_pending"})),
        (404, json!({})),
        (400, json!({"error": "slow_down"})),
    ]);
    let login = start_login(&oauth, false);
    let started = Instant::now();
    let (code, stdout, stderr, file) = login.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(USER_CODE) && stderr.contains("/codex/device"),
        "{stderr}"
    );
    assert!(
        stderr.contains("person@example.com") && stderr.contains("pro"),
        "{stderr}"
    );
    assert!(!stderr.contains(LOGIN_REFRESH), "no token on stderr");
    assert_eq!(oauth.login().poll_count, 4);
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "slow_down added 5 s to the interval"
    );
    assert_env_lines(&stdout);
    assert_saved(&file);
}

#[test]
fn device_login_reports_expiry_denial_and_a_disabled_issuer() {
    for (status, body, needle) in [
        (400, json!({"error": "expired_token"}), "expired"),
        (400, json!({"error": "access_denied"}), "denied"),
        (500, json!({"error": "server_error"}), "HTTP 500"),
    ] {
        let oauth = FakeOAuth::start("unused");
        oauth.login().polls.push_back((status, body));
        let (code, stdout, stderr, file) = start_login(&oauth, false).finish();
        assert_eq!(code, Some(1));
        assert!(stderr.contains(needle), "{stderr}");
        assert!(stdout.is_empty());
        assert!(!file.exists(), "nothing written on failure");
    }
    let oauth = FakeOAuth::start("unused");
    oauth.login().device_disabled = true;
    let (code, _, stderr, _) = start_login(&oauth, false).finish();
    assert_eq!(code, Some(1));
    assert!(stderr.contains("not enabled"), "{stderr}");
}

fn authorize_url(login: &Login) -> String {
    let line = login.wait_for_line("/oauth/authorize?");
    line.trim().to_string()
}

fn no_redirects() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

#[test]
fn browser_login_checks_state_then_exchanges_with_pkce() {
    let oauth = FakeOAuth::start("unused");
    let login = start_login(&oauth, true);
    let url = authorize_url(&login);
    let agent = no_redirects();
    // The "browser" asks the issuer, which redirects back to the local callback.
    let redirect = agent.get(&url).call().expect("authorize");
    assert_eq!(redirect.status().as_u16(), 302);
    let callback = redirect
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("Location")
        .to_string();
    assert!(callback.starts_with("http://localhost:"));
    // A callback with someone else's state is refused and the login keeps waiting.
    let forged = callback.replace("state=", "state=forged");
    let refused = agent.get(&forged).call().expect("forged callback");
    assert_eq!(refused.status().as_u16(), 400);
    let done = agent.get(&callback).call().expect("callback");
    assert_eq!(done.status().as_u16(), 200);
    let (code, stdout, stderr, file) = login.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(oauth.login().exchanges, 1);
    assert_env_lines(&stdout);
    assert_saved(&file);
}

#[test]
fn browser_login_explains_a_missing_codex_entitlement() {
    let oauth = FakeOAuth::start("unused");
    oauth.login().deny = Some(("access_denied".into(), "missing_codex_entitlement".into()));
    let login = start_login(&oauth, true);
    let url = authorize_url(&login);
    let agent = no_redirects();
    let redirect = agent.get(&url).call().expect("authorize");
    let callback = redirect
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("Location")
        .to_string();
    let page = agent.get(&callback).call().expect("callback");
    assert_eq!(page.status().as_u16(), 400);
    let (code, stdout, stderr, file) = login.finish();
    assert_eq!(code, Some(1));
    assert!(stderr.contains("Codex is not enabled"), "{stderr}");
    assert!(stdout.is_empty() && !file.exists());
}
