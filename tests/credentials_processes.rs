//! Credentials across real processes: SIGKILL at many points during rotation never leaves a torn
//! file, and two proxies sharing one file never spend a refresh token twice.

#![expect(clippy::expect_used, reason = "test helpers fail loudly")]

#[path = "support/fake_codex.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod fake_codex;
#[path = "support/fake_oauth.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod fake_oauth;
#[path = "support/harness.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod harness;
#[path = "support/proxy_process.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod proxy_process;
#[path = "support/secrets.rs"]
mod secrets;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use codex_sub_proxy::jwt::unsigned_token;
use fake_codex::FakeCodex;
use fake_oauth::FakeOAuth;
use harness::{PROXY_KEY, scratch_dir};
use proxy_process::ProxyProcess;
use serde_json::{Value, json};

/// Every unsigned JWT starts with this header.
fn jwt_prefix() -> String {
    let token = unsigned_token(&json!({}));
    format!("{}.", token.split('.').next().unwrap_or_default())
}

fn start(fake: &FakeCodex, oauth: &FakeOAuth, file: &Path, seed_access: &str) -> ProxyProcess {
    let codex = fake.base_url();
    let auth = oauth.base_url();
    let file = file.display().to_string();
    ProxyProcess::start_in(
        &[
            ("PROXY_API_KEY", PROXY_KEY),
            ("CODEX_BASE_URL", &codex),
            ("AUTH_BASE_URL", &auth),
            ("CREDENTIALS_FILE", &file),
            ("OPENAI_ACCESS_TOKEN", seed_access),
            ("OPENAI_REFRESH_TOKEN", "seed-refresh"),
            ("WORKERS", "8"),
            ("LOG_LEVEL", "info"),
        ],
        scratch_dir(),
    )
    .expect("proxy starts")
}

fn ask(base: &str) -> u16 {
    harness::post_json(
        &format!("{base}/v1/responses"),
        &json!({"model": "gpt-5.5", "input": "hi"}),
    )
    .status
}

fn expired_access() -> String {
    unsigned_token(&json!({"exp": 1}))
}

#[test]
fn sigkill_during_rotation_never_leaves_a_torn_file() {
    let fake = FakeCodex::start();
    fake.accept_access_token_prefix(&jwt_prefix());
    let oauth = FakeOAuth::start("seed-refresh");
    // Tokens live 200 s, inside the 300 s refresh margin: every request rotates.
    oauth.issue_jwts(200);
    let dir = scratch_dir();
    let file = dir.join("credentials.json");
    let mut random = [0u8; 64];
    getrandom::fill(&mut random).expect("random");
    let kills = 200;
    let mut spent_before_persist = 0;
    let mut rounds_with_rotation = 0;
    for round in 0..kills {
        let rotations_before = oauth.calls();
        let mut proxy = start(&fake, &oauth, &file, &expired_access());
        let base = proxy.base();
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let load: Vec<_> = (0..2)
            .map(|_| {
                let (base, stop, served) = (base.clone(), stop.clone(), served.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let agent = harness::client();
                        let answer = agent
                            .post(format!("{base}/v1/responses"))
                            .header("Authorization", format!("Bearer {PROXY_KEY}"))
                            .send_json(json!({"model": "gpt-5.5", "input": "hi"}));
                        match answer {
                            Ok(r) if r.status() == 200 => {
                                served.fetch_add(1, Ordering::SeqCst);
                            }
                            _ => std::thread::sleep(Duration::from_millis(1)),
                        }
                    }
                })
            })
            .collect();
        // Kill at a different point of the rotation cycle each round.
        let delay = 5 + u64::from(random[round % random.len()]) % 60;
        std::thread::sleep(Duration::from_millis(delay));
        proxy.kill();
        stop.store(true, Ordering::SeqCst);
        for thread in load {
            let _ = thread.join();
        }
        let text =
            std::fs::read_to_string(&file).expect("the credentials file exists after every kill");
        let stored: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("round {round}: torn credentials file: {text:?}"));
        let refresh = stored["tokens"]["refresh_token"]
            .as_str()
            .expect("a refresh token");
        assert!(stored["tokens"]["access_token"].is_string());
        if refresh != oauth.current_refresh_token() {
            // Killed after the token endpoint rotated and before the rename: the new token died
            // with the process. Count it, and log in again (write the live token).
            spent_before_persist += 1;
            let mut repaired = stored.clone();
            repaired["tokens"]["refresh_token"] = json!(oauth.current_refresh_token());
            std::fs::write(&file, repaired.to_string()).expect("repair");
        }
        if oauth.calls() > rotations_before {
            rounds_with_rotation += 1;
        }
    }
    eprintln!(
        "kill points tried: {kills}; torn or empty files: 0; rounds killed while rotating: {rounds_with_rotation}; kills between rotation and persist: {spent_before_persist}; rotations: {}",
        oauth.calls()
    );
    assert!(
        rounds_with_rotation * 2 >= kills,
        "most kills landed while rotations were happening"
    );
}

#[test]
fn two_processes_sharing_one_file_never_reuse_a_refresh_token() {
    let fake = FakeCodex::start();
    fake.accept_access_token_prefix(&jwt_prefix());
    let oauth = FakeOAuth::start("seed-refresh");
    oauth.issue_jwts(200);
    let dir = scratch_dir();
    let file = dir.join("credentials.json");
    let first = start(&fake, &oauth, &file, &expired_access());
    let second = start(&fake, &oauth, &file, &expired_access());
    let callers: Vec<_> = [first.base(), second.base()]
        .into_iter()
        .flat_map(|base| (0..6).map(move |_| base.clone()))
        .map(|base| std::thread::spawn(move || (0..25).filter(|_| ask(&base) == 200).count()))
        .collect();
    let succeeded: usize = callers.into_iter().map(|c| c.join().expect("caller")).sum();
    eprintln!(
        "two processes: {succeeded} of 300 requests served, {} rotations, {} reuse errors",
        oauth.calls(),
        oauth.reuse_errors()
    );
    assert_eq!(succeeded, 300);
    assert_eq!(oauth.reuse_errors(), 0);
    assert!(oauth.calls() >= 2, "both processes rotated");
}

#[test]
fn a_second_process_adopts_the_first_ones_rotation_instead_of_refreshing() {
    let fake = FakeCodex::start();
    fake.accept_access_token_prefix(&jwt_prefix());
    let oauth = FakeOAuth::start("seed-refresh");
    oauth.issue_jwts(3600);
    let dir = scratch_dir();
    let file = dir.join("credentials.json");
    let first = start(&fake, &oauth, &file, &expired_access());
    let second = start(&fake, &oauth, &file, &expired_access());
    assert_eq!(ask(&first.base()), 200);
    assert_eq!(oauth.calls(), 1);
    // The second still holds the expired seed token in memory; under the lock it finds the
    // first one's fresh token in the file and uses it.
    assert_eq!(ask(&second.base()), 200);
    assert_eq!(oauth.calls(), 1, "no second refresh");
    assert_eq!(oauth.reuse_errors(), 0);
}
