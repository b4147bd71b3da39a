//! The `codex-sub-proxy` binary: parses arguments, loads the configuration, serves until
//! SIGTERM or SIGINT, then drains in-flight requests.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use codex_sub_proxy::config::{Config, help_text};
use codex_sub_proxy::{build_proxy, serve, signals};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] => run(),
        ["--login"] => login(false),
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

fn run() -> ExitCode {
    let (config, skipped) = match Config::from_env() {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("codex-sub-proxy: {error}");
            return ExitCode::from(2);
        }
    };
    if simple_logger::SimpleLogger::new()
        .with_level(config.log_level)
        .with_module_level("ureq", log::LevelFilter::Warn)
        .with_module_level("ureq_proto", log::LevelFilter::Warn)
        .with_module_level("rustls", log::LevelFilter::Warn)
        .with_module_level("tiny_http", log::LevelFilter::Warn)
        .init()
        .is_err()
    {
        eprintln!("codex-sub-proxy: could not start logging");
    }
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
    if config.access_token.is_none() && config.refresh_token.is_none() {
        log::warn!(
            "no upstream credentials (OPENAI_ACCESS_TOKEN / OPENAI_REFRESH_TOKEN): model requests will fail with 503"
        );
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
