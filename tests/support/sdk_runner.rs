//! Runs a scenario of an official OpenAI SDK script (Python or Node) against a proxy, and fails
//! (never skips) when the SDK is not installed, naming the install command.

use std::path::Path;
use std::process::Command;

use crate::harness::PROXY_KEY;

/// Where the Node scripts and their `node_modules` live.
pub const NODE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/node");
const PYTHON_INSTALL: &str = "pip install -r tests/sdk/requirements.txt";
const NODE_INSTALL: &str = "npm ci --prefix tests/sdk/node";

/// Which official SDK runs the scenario.
#[derive(Clone, Copy)]
pub enum Sdk {
    Python,
    Node,
}

impl Sdk {
    /// The interpreter: `$PYTHON` / `$NODE`, else `python3` / `node`.
    fn program(self) -> String {
        let (variable, default) = match self {
            Sdk::Python => ("PYTHON", "python3"),
            Sdk::Node => ("NODE", "node"),
        };
        std::env::var(variable).unwrap_or_else(|_| default.to_owned())
    }

    fn install(self) -> &'static str {
        match self {
            Sdk::Python => PYTHON_INSTALL,
            Sdk::Node => NODE_INSTALL,
        }
    }

    /// `Err` says why the SDK cannot run here and how to fix it.
    pub fn available(self) -> Result<(), String> {
        let program = self.program();
        let install = self.install();
        let probe: &[&str] = match self {
            Sdk::Python => &["-c", "import openai; print(openai.__version__)"],
            Sdk::Node => &["--version"],
        };
        let output = Command::new(&program)
            .args(probe)
            .output()
            .map_err(|error| {
                format!("cannot start `{program}` ({error}); install it, then run `{install}`")
            })?;
        if !output.status.success() {
            return Err(format!(
                "`{program} {}` failed; run `{install}`\n{}",
                probe.join(" "),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        if let Sdk::Node = self {
            let package = Path::new(NODE_DIR).join("node_modules/openai/package.json");
            if !package.is_file() {
                return Err(format!(
                    "the `openai` npm package is not installed ({} is missing); run `{install}`",
                    package.display()
                ));
            }
        }
        Ok(())
    }

    /// Runs `scenario` of `script` against the proxy at `base` (`http://127.0.0.1:PORT`) with
    /// `OPENAI_BASE_URL`, `OPENAI_API_KEY` and `env` set; `Err` holds why it could not run, or
    /// everything it printed when it failed.
    pub fn run(
        self,
        base: &str,
        script: &str,
        scenario: &str,
        env: &[(&str, &str)],
    ) -> Result<(), String> {
        self.available()?;
        let mut command = Command::new(self.program());
        command
            .arg(script)
            .arg(scenario)
            .env("OPENAI_BASE_URL", format!("{base}/v1"))
            .env("OPENAI_API_KEY", PROXY_KEY)
            .env("PYTHONUNBUFFERED", "1")
            .envs(env.iter().copied());
        // The SDKs read these too; none may add headers or route 127.0.0.1 through an HTTP proxy.
        for name in [
            "OPENAI_ORG_ID",
            "OPENAI_PROJECT_ID",
            "OPENAI_LOG",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "NODE_OPTIONS",
        ] {
            command.env_remove(name);
        }
        let output = command
            .output()
            .map_err(|error| format!("cannot run {script}: {error}"))?;
        if output.status.success() {
            return Ok(());
        }
        Err(format!(
            "scenario {scenario} of {script} failed ({})\n--- stdout ---\n{}--- stderr ---\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }

    /// Runs the scenario and fails the test with its transcript unless it passed.
    #[expect(clippy::panic, reason = "a test helper fails the calling test")]
    pub fn assert_scenario(self, base: &str, script: &str, scenario: &str, env: &[(&str, &str)]) {
        if let Err(problem) = self.run(base, script, scenario, env) {
            panic!("{problem}");
        }
    }
}
