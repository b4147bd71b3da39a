//! Operating the proxy: `/metrics` after known traffic (numbers and text format), `/v1/usage`
//! from the upstream's rate-limit headers, and the access log in both formats.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

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

use std::collections::HashMap;
use std::io::BufReader;
use std::time::{Duration, Instant};

use fake_codex::{FakeCodex, Script};
use fake_oauth::FakeOAuth;
use harness::{
    PROXY_KEY, TestProxy, config, get, get_with_auth, post_json, raw_request, read_chunk,
    read_head, scratch_dir, stream_events,
};
use proxy_process::ProxyProcess;
use serde_json::{Value, json};

/// Parses the exposition text strictly: every line is a HELP, a TYPE, or a sample of a metric
/// announced by a TYPE line before it. Returns samples keyed by `name{labels}`.
fn parse_exposition(text: &str) -> HashMap<String, f64> {
    let mut typed: HashMap<String, String> = HashMap::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            assert!(
                rest.split_once(' ')
                    .is_some_and(|(_, help)| !help.is_empty()),
                "bad HELP: {line}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "bad TYPE: {line}"
            );
            typed.insert(name.to_string(), kind.to_string());
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line: {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').expect("sample value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        let name = series.split('{').next().expect("name");
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|b| typed.get(*b).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(typed.contains_key(base), "sample before its TYPE: {line}");
        if let Some(labels) = series.strip_prefix(name)
            && !labels.is_empty()
        {
            assert!(
                labels.starts_with('{') && labels.ends_with('}'),
                "bad labels: {line}"
            );
            for pair in labels[1..labels.len() - 1].split("\",") {
                let (key, value) = pair.split_once("=\"").expect("label key=\"value\"");
                assert!(
                    key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "bad label name: {line}"
                );
                assert!(!value.contains('\n'));
            }
        }
        samples.insert(series.to_string(), value);
    }
    samples
}

/// Histogram buckets are cumulative and end in `+Inf` equal to `_count`.
fn check_histogram(samples: &HashMap<String, f64>, name: &str, route: &str) {
    let mut buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|(series, value)| {
            let prefix = format!("{name}_bucket{{route=\"{route}\",le=\"");
            let bound = series.strip_prefix(&prefix)?.strip_suffix("\"}")?;
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().ok()?
            };
            Some((bound, *value))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(buckets.len() > 2, "{name} has buckets for {route}");
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "{name} buckets are cumulative: {buckets:?}"
    );
    let last = buckets.last().expect("buckets");
    assert!(last.0.is_infinite(), "+Inf present");
    assert_eq!(
        Some(&last.1),
        samples.get(&format!("{name}_count{{route=\"{route}\"}}"))
    );
}

fn scrape(base: &str) -> (String, HashMap<String, f64>) {
    let answer = get(&format!("{base}/metrics"));
    assert_eq!(answer.status, 200);
    assert!(answer.headers["content-type"].starts_with("text/plain; version=0.0.4"));
    let samples = parse_exposition(&answer.body);
    (answer.body, samples)
}

#[test]
fn metrics_count_known_traffic_and_parse_as_the_text_format() {
    let fake = FakeCodex::start();
    let oauth = FakeOAuth::start("test-refresh-token");
    let auth = oauth.base_url();
    let proxy = TestProxy::start(config(
        &fake.base_url(),
        &[("AUTH_BASE_URL", auth.as_str())],
    ));
    let url = format!("{}/v1/responses", proxy.base);
    let ask = json!({"model": "gpt-5.5", "input": "hi"});
    assert_eq!(post_json(&url, &ask).status, 200);
    assert_eq!(post_json(&url, &ask).status, 200);
    let mut streaming = ask.clone();
    streaming["stream"] = json!(true);
    assert_eq!(
        stream_events(&proxy.addr(), "/v1/responses", &streaming).0,
        200
    );
    let chat = json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(
        post_json(&format!("{}/v1/chat/completions", proxy.base), &chat).status,
        200
    );
    assert_eq!(
        post_json(&url, &json!({"model": "other-model", "input": 3})).status,
        400
    );
    assert_eq!(get_with_auth(&url, None).status, 401);
    fake.push_script(Script::server_error());
    fake.push_script(Script::server_error());
    assert_eq!(post_json(&url, &ask).status, 502, "two 500s with one retry");
    // A 401 makes the token layer refresh once.
    fake.set_access_token("rotated");
    oauth.set_next_access_token("rotated");
    assert_eq!(post_json(&url, &ask).status, 200);
    // A client that leaves mid-stream.
    fake.push_script(Script::Slow {
        text: "nobody reads this".into(),
        deltas: 50,
        delay_ms: 20,
    });
    let stream = raw_request(
        &proxy.addr(),
        "POST",
        "/v1/responses",
        streaming.to_string().as_bytes(),
    );
    let mut reader = BufReader::new(stream);
    assert_eq!(read_head(&mut reader).0, 200);
    assert!(read_chunk(&mut reader).is_some());
    drop(reader);
    let deadline = Instant::now() + Duration::from_secs(10);
    let samples = loop {
        let (_, samples) = scrape(&proxy.base);
        if samples.get("codex_proxy_client_disconnects_total") == Some(&1.0)
            || Instant::now() > deadline
        {
            break samples;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (text, _) = scrape(&proxy.base);
    eprintln!("sample scrape:\n{text}");
    let value = |series: &str| {
        samples
            .get(series)
            .copied()
            .unwrap_or_else(|| panic!("{series} missing:\n{text}"))
    };
    assert_eq!(
        value(
            "codex_proxy_requests_total{route=\"/v1/responses\",status=\"2xx\",stream=\"false\",model=\"gpt-5.5\"}"
        ),
        3.0
    );
    assert_eq!(
        value(
            "codex_proxy_requests_total{route=\"/v1/responses\",status=\"2xx\",stream=\"true\",model=\"gpt-5.5\"}"
        ),
        2.0
    );
    assert_eq!(
        value(
            "codex_proxy_requests_total{route=\"/v1/chat/completions\",status=\"2xx\",stream=\"false\",model=\"gpt-5.5\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            "codex_proxy_requests_total{route=\"/v1/responses\",status=\"4xx\",stream=\"false\",model=\"-\"}"
        ),
        2.0
    );
    assert_eq!(
        value(
            "codex_proxy_requests_total{route=\"/v1/responses\",status=\"5xx\",stream=\"false\",model=\"gpt-5.5\"}"
        ),
        1.0
    );
    assert_eq!(
        value("codex_proxy_upstream_responses_total{status=\"500\"}"),
        2.0
    );
    assert_eq!(
        value("codex_proxy_upstream_responses_total{status=\"401\"}"),
        1.0
    );
    assert_eq!(
        value("codex_proxy_upstream_responses_total{status=\"200\"}"),
        6.0
    );
    assert_eq!(value("codex_proxy_upstream_retries_total"), 1.0);
    assert_eq!(
        value("codex_proxy_token_refreshes_total{outcome=\"ok\"}"),
        1.0
    );
    assert_eq!(
        value("codex_proxy_token_refreshes_total{outcome=\"permanent_failure\"}"),
        0.0
    );
    assert_eq!(value("codex_proxy_client_disconnects_total"), 1.0);
    assert_eq!(value("codex_proxy_open_streams"), 0.0);
    assert_eq!(value("codex_proxy_queue_depth"), 0.0);
    assert_eq!(value("codex_proxy_busy_workers"), 1.0, "the scrape itself");
    assert_eq!(value("codex_proxy_credentials_usable"), 1.0);
    assert!(value("codex_proxy_bytes_relayed_total") > 1000.0);
    check_histogram(
        &samples,
        "codex_proxy_request_duration_seconds",
        "/v1/responses",
    );
    check_histogram(
        &samples,
        "codex_proxy_time_to_first_byte_seconds",
        "/v1/responses",
    );
    assert!(
        !text.contains("other-model"),
        "unlisted models do not become labels"
    );
    assert_eq!(
        value("codex_proxy_rate_limit_used_percent{window=\"primary\"}"),
        12.5
    );
    assert_eq!(
        value("codex_proxy_rate_limit_window_minutes{window=\"secondary\"}"),
        10080.0
    );
}

#[test]
fn metrics_need_the_key_unless_made_public() {
    let fake = FakeCodex::start();
    let closed = TestProxy::start(config(&fake.base_url(), &[]));
    assert_eq!(
        get_with_auth(&format!("{}/metrics", closed.base), None).status,
        401
    );
    let open = TestProxy::start(config(&fake.base_url(), &[("METRICS_PUBLIC", "1")]));
    assert_eq!(
        get_with_auth(&format!("{}/metrics", open.base), None).status,
        200
    );
    assert_eq!(
        get_with_auth(&format!("{}/v1/usage", open.base), None).status,
        401,
        "only /metrics opens up"
    );
}

#[test]
fn usage_shows_the_latest_rate_limit_snapshot() {
    let fake = FakeCodex::start();
    let proxy = TestProxy::start(config(&fake.base_url(), &[]));
    let before = get(&format!("{}/v1/usage", proxy.base)).json();
    assert_eq!(before["observed"], false);
    fake.push_script(Script::usage_limit(1800));
    assert_eq!(
        post_json(
            &format!("{}/v1/responses", proxy.base),
            &json!({"model": "gpt-5.5", "input": "hi"})
        )
        .status,
        429
    );
    let usage = get(&format!("{}/v1/usage", proxy.base)).json();
    assert_eq!(usage["observed"], true);
    assert_eq!(usage["primary"]["used_percent"], 100.0);
    assert_eq!(usage["primary"]["window_minutes"], 300);
    let resets_in = usage["primary"]["resets_in_seconds"]
        .as_u64()
        .expect("resets_in_seconds");
    assert!((1700..=1800).contains(&resets_in), "{usage}");
    assert!(
        usage["primary"]["resets_at_utc"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(usage["plan_type"], "plus");
}

fn access_lines(logs: &[String]) -> Vec<&String> {
    logs.iter().filter(|line| line.contains("access")).collect()
}

fn wait_for_lines(proxy: &ProxyProcess, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = proxy.logs();
        if access_lines(&logs).len() >= count || Instant::now() > deadline {
            return logs;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start_process(fake: &FakeCodex, format: &str) -> ProxyProcess {
    let codex = fake.base_url();
    let dir = scratch_dir();
    let file = dir.join("credentials.json").display().to_string();
    ProxyProcess::start_in(
        &[
            ("PROXY_API_KEY", PROXY_KEY),
            ("OPENAI_ACCESS_TOKEN", "test-access-token"),
            ("CODEX_BASE_URL", &codex),
            ("CREDENTIALS_FILE", &file),
            ("LOG_FORMAT", format),
        ],
        dir,
    )
    .expect("proxy starts")
}

#[test]
fn json_access_lines_carry_every_field() {
    let fake = FakeCodex::start();
    let proxy = start_process(&fake, "json");
    let answer = post_json(
        &format!("{}/v1/responses", proxy.base()),
        &json!({"model": "gpt-5.5", "input": "hi", "temperature": 0.5}),
    );
    assert_eq!(answer.status, 200);
    let request_id = answer
        .headers
        .get("x-request-id")
        .expect("x-request-id")
        .clone();
    let logs = wait_for_lines(&proxy, 1);
    let line = access_lines(&logs)
        .into_iter()
        .next()
        .expect("an access line");
    eprintln!("sample JSON access line: {line}");
    let record: Value = serde_json::from_str(line).expect("a JSON line");
    assert_eq!(record["id"], request_id.as_str());
    assert_eq!(record["method"], "POST");
    assert_eq!(record["route"], "/v1/responses");
    assert_eq!(record["model"], "gpt-5.5");
    assert_eq!(record["stream"], false);
    assert_eq!(record["status"], 200);
    assert_eq!(record["upstream_status"], 200);
    assert!(record["duration_ms"].is_u64() && record["ttfb_ms"].is_u64());
    assert!(record["bytes"].as_u64().is_some_and(|b| b > 100));
    assert_eq!(record["dropped"], "temperature");
    assert!(record["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    // Every other line is JSON too, and the start-up configuration is redacted.
    for line in &logs {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(value["time"].is_string() && value["level"].is_string());
    }
    let configuration = logs
        .iter()
        .find(|l| l.contains("configuration:"))
        .expect("configuration line");
    assert!(configuration.contains("PROXY_API_KEY=<1 key(s), redacted>"));
    assert!(!configuration.contains(PROXY_KEY) && !configuration.contains("test-access-token"));
}

#[test]
fn plain_access_lines_and_start_up_warnings() {
    let fake = FakeCodex::start();
    let codex = fake.base_url();
    let dir = scratch_dir();
    let locked = dir.join("locked");
    std::fs::create_dir_all(&locked).expect("dir");
    let file = locked.join("credentials.json").display().to_string();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    let proxy = ProxyProcess::start(
        &[
            ("CODEX_BASE_URL", &codex),
            ("CREDENTIALS_FILE", &file),
            ("OPENAI_ACCESS_TOKEN", "test-access-token"),
        ],
        &dir,
    )
    .expect("proxy starts");
    let answer = get_with_auth(&format!("{}/v1/models", proxy.base()), None);
    assert_eq!(answer.status, 200, "no key configured on loopback");
    let logs = wait_for_lines(&proxy, 1);
    let line = access_lines(&logs)
        .into_iter()
        .next()
        .expect("an access line");
    eprintln!("sample plain access line: {line}");
    assert!(line.contains(" INFO  access: id=req_"));
    assert!(line.contains(
        " method=GET route=/v1/models model=- stream=false status=200 upstream_status=- "
    ));
    assert!(line.contains(" duration_ms=") && line.contains(" bytes="));
    let text = logs.join("\n");
    assert!(text.contains("no PROXY_API_KEY set"), "{text}");
    assert!(text.contains("is not writable"), "{text}");
}
