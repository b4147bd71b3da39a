//! The official Codex CLI (`@openai/codex`, pinned in `tests/agents/package-lock.json`) as a real
//! agent against `/v1/responses`: each test scripts the fake Codex backend, starts the proxy, writes
//! a throwaway `CODEX_HOME` whose `config.toml` makes the proxy the CLI's model provider, runs
//! `codex exec` once, and checks both what the CLI printed and what reached the backend.
//!
//! These tests fail, rather than skip, when Node or the CLI is missing: `npm ci --prefix
//! tests/agents`. Set `NODE` to use another Node.
//!
//! The CLI gets a cleared environment (`PATH`, a temporary `HOME` and `CODEX_HOME`, the caller key
//! in `CODEX_PROXY_KEY`), so no proxy variable or real login of the machine leaks in. Its config
//! turns off the update check, analytics and plugins; with plugins on, this version resolves
//! `github.com`, `api.github.com` and `chatgpt.com` at start (seen with strace), and with them off
//! it opens no socket but the one to the proxy.

#[path = "support/fake_codex.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod fake_codex;
#[path = "support/harness.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod harness;
#[path = "support/secrets.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod secrets;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fake_codex::{DEFAULT_ACCESS_TOKEN, FakeCodex, RecordedRequest, Script};
use harness::{PROXY_KEY, TestProxy, config, scratch_dir};
use serde_json::Value;

/// Where `package.json`, `package-lock.json` and `node_modules` of the agents live.
const AGENTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/agents");
const INSTALL: &str = "npm ci --prefix tests/agents";
/// The CLI's entry point, as `npx codex` runs it.
const CODEX_JS: &str = "node_modules/@openai/codex/bin/codex.js";
/// How long one `codex exec` may take before it is killed.
const RUN_LIMIT: Duration = Duration::from_secs(60);
/// The shell tool of `@openai/codex` 0.169.0: a function tool taking `{"cmd": "..."}`.
const SHELL_TOOL: &str = "exec_command";
/// The environment variable the provider config names for the caller key.
const KEY_VARIABLE: &str = "CODEX_PROXY_KEY";

/// What one `codex exec` did.
struct Run {
    status: String,
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Everything the CLI printed, for failure messages.
    fn transcript(&self) -> String {
        format!(
            "codex exec: {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// `$NODE`, else `node`.
fn node() -> String {
    std::env::var("NODE").unwrap_or_else(|_| "node".to_owned())
}

/// The CLI's entry point, or why it cannot run here and how to fix it.
fn codex_cli() -> Result<PathBuf, String> {
    let manifest = Path::new(AGENTS_DIR).join("node_modules/@openai/codex/package.json");
    if !manifest.is_file() {
        return Err(format!(
            "the Codex CLI is not installed ({} is missing); run `{INSTALL}`",
            manifest.display()
        ));
    }
    let program = node();
    let version = Command::new(&program)
        .arg(Path::new(AGENTS_DIR).join(CODEX_JS))
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|error| {
            format!("cannot start `{program}` ({error}); install Node, then run `{INSTALL}`")
        })?;
    if !version.status.success() {
        return Err(format!(
            "`codex --version` failed ({}); run `{INSTALL}`\n{}{}",
            version.status,
            String::from_utf8_lossy(&version.stdout),
            String::from_utf8_lossy(&version.stderr)
        ));
    }
    Ok(Path::new(AGENTS_DIR).join(CODEX_JS))
}

/// A `config.toml` that makes the proxy at `base` (`http://127.0.0.1:PORT`) the model provider.
fn codex_config(base: &str) -> String {
    format!(
        r#"model = "gpt-5.5"
model_provider = "proxy"
approval_policy = "never"
check_for_update_on_startup = false

[analytics]
enabled = false

[features]
plugins = false

[model_providers.proxy]
name = "codex-sub-proxy"
base_url = "{base}/v1"
env_key = "{KEY_VARIABLE}"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
"#
    )
}

/// Runs `codex exec` with `prompt` and `extra_args` against the proxy, in a new temporary home,
/// killing it (and everything it started) after [`RUN_LIMIT`].
#[expect(clippy::panic, reason = "a test helper fails the calling test")]
fn codex_exec(proxy: &TestProxy, extra_args: &[&str], prompt: &str) -> Run {
    let entry = codex_cli().unwrap_or_else(|problem| panic!("{problem}"));
    let root = scratch_dir();
    let (home, codex_home, workdir) = (root.join("home"), root.join("codex"), root.join("work"));
    for dir in [&home, &codex_home, &workdir] {
        std::fs::create_dir_all(dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
    }
    let config_path = codex_home.join("config.toml");
    std::fs::write(&config_path, codex_config(&proxy.base))
        .unwrap_or_else(|error| panic!("{}: {error}", config_path.display()));

    let mut command = Command::new(node());
    command
        .arg(entry)
        .args(["exec", "--skip-git-repo-check", "--strict-config"])
        .args(["--color", "never"])
        .args(extra_args)
        .arg(prompt)
        .current_dir(&workdir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("CODEX_HOME", &codex_home)
        .env(KEY_VARIABLE, PROXY_KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills the CLI and the commands it runs together.
        .process_group(0);
    let child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {}: {error}", node()));
    let group = child.id();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        // The receiver is gone only when the test already failed.
        let _ = done.send(child.wait_with_output());
    });
    let output: Output = match finished.recv_timeout(RUN_LIMIT) {
        Ok(output) => output.unwrap_or_else(|error| panic!("waiting for codex exec: {error}")),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .status();
            let printed = match finished.recv_timeout(Duration::from_secs(5)) {
                Ok(Ok(output)) => format!(
                    "--- stdout ---\n{}--- stderr ---\n{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
                _ => "(no output could be collected)".to_owned(),
            };
            panic!("codex exec did not finish within {RUN_LIMIT:?} and was killed\n{printed}");
        }
    };
    Run {
        status: output.status.to_string(),
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn start_proxy(fake: &FakeCodex) -> TestProxy {
    TestProxy::start(config(&fake.base_url(), &[]))
}

/// The `input` items of an upstream request.
fn input_items(request: &RecordedRequest) -> &[Value] {
    request.body["input"].as_array().map_or(&[], Vec::as_slice)
}

/// The names of the tools of an upstream request (`type` for tools without a name).
fn tool_names(request: &RecordedRequest) -> Vec<String> {
    request.body["tools"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|tool| {
            tool["name"]
                .as_str()
                .or_else(|| tool["type"].as_str())
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

/// Asserts what every request from the CLI must look like upstream.
fn assert_backend_shape(request: &RecordedRequest) {
    let body = &request.body;
    assert_eq!(body["store"], Value::Bool(false), "store: {body}");
    assert_eq!(body["stream"], Value::Bool(true), "stream: {body}");
    assert_eq!(body["model"], "gpt-5.5");
    // This CLI version sends its system prompt as developer messages and no `instructions`,
    // which the backend requires: the proxy supplies its default.
    assert!(
        body["instructions"]
            .as_str()
            .is_some_and(|text| !text.is_empty()),
        "instructions: {}",
        body["instructions"]
    );
    let input = input_items(request);
    assert!(!input.is_empty(), "input: {}", body["input"]);
    // The CLI sends an id on every item (`msg_…`, `fc_…`, `fco_…`); the backend refuses them.
    assert!(
        input.iter().all(|item| item.get("id").is_none()),
        "ids stripped: {}",
        body["input"]
    );
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {DEFAULT_ACCESS_TOKEN}").as_str()),
        "the proxy's upstream token, not the caller key"
    );
}

#[test]
fn text_turn_reaches_stdout() {
    let text = "The proxy carried this answer to the Codex CLI.";
    let prompt = "Say something about the proxy.";
    let fake = FakeCodex::start();
    fake.push_script(Script::text(text));
    let proxy = start_proxy(&fake);

    let run = codex_exec(&proxy, &[], prompt);
    assert!(run.success, "{}", run.transcript());
    assert_eq!(run.stdout.trim(), text, "{}", run.transcript());

    let requests = fake.responses_requests();
    assert_eq!(
        requests.len(),
        1,
        "one upstream request\n{}",
        run.transcript()
    );
    let request = &requests[0];
    assert_backend_shape(request);
    assert!(
        input_items(request).iter().any(|item| {
            item["role"] == "user" && item["content"][0]["text"].as_str() == Some(prompt)
        }),
        "the prompt is a user message: {}",
        request.body["input"]
    );
    // The CLI's whole tool list is forwarded, including the non-function tool types.
    let names = tool_names(request);
    for name in [SHELL_TOOL, "apply_patch", "web_search"] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} in tools: {names:?}"
        );
    }
    let kinds: Vec<&str> = request.body["tools"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter_map(|tool| tool["type"].as_str())
        .collect();
    assert!(kinds.contains(&"custom"), "custom tool kept: {kinds:?}");
}

#[test]
fn shell_tool_loop_round_trips_through_the_proxy() {
    let call_id = "call_1";
    let marker = "proxied-tool-output";
    let fake = FakeCodex::start();
    fake.push_script(Script::FunctionCall {
        call_id: call_id.into(),
        name: SHELL_TOOL.into(),
        arguments: serde_json::json!({ "cmd": format!("echo {marker}") }).to_string(),
    });
    fake.push_script(Script::text("done"));
    let proxy = start_proxy(&fake);

    // `exec` never asks for approval; no sandbox, because bubblewrap needs user namespaces that
    // CI containers may not grant, and the command is the test's own.
    let run = codex_exec(
        &proxy,
        &["--sandbox", "danger-full-access"],
        "Run the shell command `echo proxied-tool-output`.",
    );
    let requests = fake.responses_requests();
    let names = requests.first().map(tool_names).unwrap_or_default();
    assert!(
        names.iter().any(|n| n == SHELL_TOOL),
        "the CLI no longer offers {SHELL_TOOL}; its tools: {names:?}"
    );
    assert!(run.success, "{}", run.transcript());
    assert_eq!(run.stdout.trim(), "done", "{}", run.transcript());
    assert_eq!(
        requests.len(),
        2,
        "call, then its output\n{}",
        run.transcript()
    );
    for request in &requests {
        assert_backend_shape(request);
    }

    let input = input_items(&requests[1]);
    let position = |kind: &str| {
        input
            .iter()
            .position(|item| item["type"] == kind && item["call_id"] == call_id)
    };
    let (Some(call), Some(output)) = (position("function_call"), position("function_call_output"))
    else {
        panic!("call and output of {call_id} sent back: {input:?}");
    };
    assert!(call < output, "call before its output: {input:?}");
    assert_eq!(input[call]["name"], SHELL_TOOL);
    let output_text = match &input[output]["output"] {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    assert!(
        output_text.contains(marker),
        "the command's output went back upstream: {output_text}"
    );
}
