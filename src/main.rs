//! The `codex-sub-proxy` binary: parses arguments, loads the configuration, serves until
//! SIGTERM or SIGINT, then drains in-flight requests.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use codex_sub_proxy::config::{Config, help_text};
use codex_sub_proxy::{build_proxy, serve, signals};

/// musl's allocator serialises every call on one lock; see `allocator`'s notes.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: codex_sub_proxy::allocator::CachingAllocator =
    codex_sub_proxy::allocator::CachingAllocator::new();

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] => run(),
        ["--login"] => login(false),
        ["--healthcheck"] => healthcheck(),
        ["--login", "--browser"] | ["--browser", "--login"] => login(true),
        ["--help" | "-h"] => {
            print_out(&help_text());
            ExitCode::SUCCESS
        }
        ["--version" | "-V"] => {
            print_out(&format!("codex-sub-proxy {}\n", env!("CARGO_PKG_VERSION")));
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("codex-sub-proxy: unknown arguments {other:?}; see --help");
            ExitCode::from(2)
        }
    }
}

fn print_out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().write_all(text.as_bytes());
}

/// `--login [--browser]`: links a ChatGPT account, writes CREDENTIALS_FILE, prints `.env` lines.
fn login(browser: bool) -> ExitCode {
    let (config, _) = match Config::from_env() {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("codex-sub-proxy: {error}");
            return ExitCode::from(2);
        }
    };
    let agent = codex_sub_proxy::upstream::build_agent(&config);
    let outcome = if browser {
        codex_sub_proxy::login_browser::browser_login(&config, &agent)
    } else {
        codex_sub_proxy::login::device_login(&config, &agent)
    };
    let result = outcome.and_then(|logged_in| {
        codex_sub_proxy::login::finish(&config, &logged_in, &mut std::io::stdout())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("codex-sub-proxy --login: {message}");
            ExitCode::from(1)
        }
    }
}

/// `--healthcheck`: `GET /healthz` on this configuration's `PORT` with a 2 s timeout; exit 0 on
/// 200 `{"ok":true}`, else 1. For container `HEALTHCHECK`s, which have no shell or curl.
fn healthcheck() -> ExitCode {
    let config = match Config::from_env() {
        Ok((config, _)) => config,
        Err(error) => {
            eprintln!("codex-sub-proxy --healthcheck: {error}");
            return ExitCode::from(1);
        }
    };
    // A wildcard listen address is reached on loopback; a specific one only on itself.
    let host = match config.host.as_str() {
        "0.0.0.0" => "127.0.0.1".to_owned(),
        "::" | "[::]" => "[::1]".to_owned(),
        ip6 if ip6.contains(':') && !ip6.starts_with('[') => format!("[{ip6}]"),
        host => host.to_owned(),
    };
    let url = format!("http://{host}:{}/healthz", config.port);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .http_status_as_error(false)
        .max_redirects(0)
        // HTTP(S)_PROXY in the container's environment must not route this probe elsewhere.
        .proxy(None)
        .build()
        .into();
    let healthy = match agent.get(&url).call() {
        Ok(mut response) => {
            response.status() == 200
                && response
                    .body_mut()
                    .read_json::<serde_json::Value>()
                    .is_ok_and(|body| body["ok"] == true)
        }
        Err(error) => {
            eprintln!("codex-sub-proxy --healthcheck: {url}: {error}");
            false
        }
    };
    if healthy {
        ExitCode::SUCCESS
    } else {
        eprintln!("codex-sub-proxy --healthcheck: {url} is not healthy");
        ExitCode::from(1)
    }
}

/// Why the credentials file could not be written, when it could not: rotated tokens would
/// then live in memory only.
fn credentials_file_problem(path: &std::path::Path) -> Option<String> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    // Writes replace the file by renaming a temporary file in its directory, so the
    // directory's write permission is what matters.
    let readonly = std::fs::metadata(&directory).is_ok_and(|m| m.permissions().readonly());
    if readonly {
        Some(format!(
            "the credentials file {} is not writable: rotated tokens would be lost at restart",
            path.display()
        ))
    } else {
        None
    }
}

fn run() -> ExitCode {
    let (config, skipped) = match Config::from_env() {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("codex-sub-proxy: {error}");
            return ExitCode::from(2);
        }
    };
    if codex_sub_proxy::logging::init(config.log_level, config.log_format).is_err() {
        eprintln!("codex-sub-proxy: could not start logging");
    }
    log::info!("configuration: {}", Config::describe_env().join(" "));
    for line in skipped {
        log::warn!(".env line {line} is not KEY=value; ignored");
    }
    if let Err(error) = config.check_caller_auth() {
        log::error!("{error}");
        return ExitCode::from(2);
    }
    if config.proxy_api_keys.is_empty() {
        log::warn!(
            "no PROXY_API_KEY set: every caller that can reach {}:{} can use this subscription",
            config.host,
            config.port
        );
    }
    if !config.is_loopback_bind() && config.metrics_public {
        log::warn!(
            "METRICS_PUBLIC=1 on a non-loopback address: anyone who can reach the port can read the metrics"
        );
    }
    if let Some(problem) = credentials_file_problem(&config.credentials_file) {
        log::warn!("{problem}");
    }
    signals::install();
    let grace = config.shutdown_grace;
    let proxy = match build_proxy(config) {
        Ok(proxy) => Arc::new(proxy),
        Err(error) => {
            log::error!("cannot use the credentials file: {error}");
            return ExitCode::from(1);
        }
    };
    let server = match serve(proxy.clone()) {
        Ok(server) => server,
        Err(error) => {
            log::error!(
                "cannot listen on {}:{}: {error}",
                proxy.config.host,
                proxy.config.port
            );
            return ExitCode::from(1);
        }
    };
    if !proxy.tokens.readiness().usable {
        log::warn!(
            "no usable upstream credentials (set OPENAI_REFRESH_TOKEN, point CREDENTIALS_FILE at an auth.json, or run --login): model requests will fail with 503"
        );
    }
    log::info!(
        "codex-sub-proxy {} listening on {} with {} workers, queue {}; upstream {}",
        env!("CARGO_PKG_VERSION"),
        server.local_addr(),
        proxy.config.workers,
        proxy.config.queue_depth,
        proxy.config.responses_url()
    );
    while !signals::received() {
        std::thread::sleep(Duration::from_millis(50));
    }
    log::info!(
        "shutdown requested; finishing in-flight requests (up to {}s)",
        grace.as_secs()
    );
    if server.stop(grace) {
        log::info!("all requests finished; exiting");
    }
    ExitCode::SUCCESS
}
