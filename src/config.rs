//! Configuration from the environment (and a `.env` file), with one table that is both the
//! parser's source of defaults and the `--help` text.

use std::net::IpAddr;
use std::time::Duration;

/// One configurable variable: its name, default and meaning.
pub struct Variable {
    /// Environment variable name.
    pub name: &'static str,
    /// Default value, as text ("" when unset by default).
    pub default: &'static str,
    /// One line of help.
    pub help: &'static str,
}

/// Every variable the proxy reads, in `--help` order.
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "HOST",
        default: "0.0.0.0",
        help: "Address to listen on.",
    },
    Variable {
        name: "PORT",
        default: "3000",
        help: "Port to listen on.",
    },
    Variable {
        name: "PROXY_API_KEY",
        default: "",
        help: "Caller keys, comma-separated (several allow rotation). Required unless HOST is loopback or PROXY_ALLOW_NO_AUTH=1.",
    },
    Variable {
        name: "PROXY_ALLOW_NO_AUTH",
        default: "0",
        help: "Set to 1 to run without caller keys on a non-loopback HOST (not recommended).",
    },
    Variable {
        name: "OPENAI_ACCESS_TOKEN",
        default: "",
        help: "ChatGPT OAuth access token (JWT).",
    },
    Variable {
        name: "OPENAI_REFRESH_TOKEN",
        default: "",
        help: "ChatGPT OAuth refresh token.",
    },
    Variable {
        name: "OPENAI_EXPIRES_AT",
        default: "",
        help: "Access token expiry, Unix seconds or milliseconds (used when the JWT has no exp).",
    },
    Variable {
        name: "OPENAI_CHATGPT_ACCOUNT_ID",
        default: "",
        help: "ChatGPT account (workspace) id sent as ChatGPT-Account-ID; read from the token when unset.",
    },
    Variable {
        name: "CREDENTIALS_FILE",
        default: "credentials.json",
        help: "Credentials file in the Codex CLI's auth.json layout; rotated tokens are persisted here (may point at ~/.codex/auth.json).",
    },
    Variable {
        name: "CODEX_BASE_URL",
        default: "https://chatgpt.com/backend-api/codex",
        help: "Codex backend base URL.",
    },
    Variable {
        name: "CODEX_RESPONSES_PATH",
        default: "/responses",
        help: "Responses path under CODEX_BASE_URL.",
    },
    Variable {
        name: "CODEX_MODELS",
        default: "gpt-5.5,gpt-5.5-pro,gpt-5.4,gpt-5.4-mini",
        help: "Model ids listed by /v1/models, comma-separated.",
    },
    Variable {
        name: "AUTH_BASE_URL",
        default: "https://auth.openai.com",
        help: "OAuth issuer; the token endpoint is AUTH_BASE_URL/oauth/token.",
    },
    Variable {
        name: "DEFAULT_INSTRUCTIONS",
        default: "You are a helpful assistant.",
        help: "Instructions sent upstream when a /v1/responses caller sends none (the backend requires them).",
    },
    Variable {
        name: "CHAT_SYSTEM_AS",
        default: "instructions",
        help: "Where /v1/chat/completions system and developer messages go: instructions (the leading ones become the upstream instructions) or developer (DEFAULT_INSTRUCTIONS is sent and they stay developer messages).",
    },
    Variable {
        name: "CODEX_ORIGINATOR",
        default: "codex_cli_rs",
        help: "originator header sent upstream.",
    },
    Variable {
        name: "CODEX_CLIENT_VERSION",
        default: "0.99.0",
        help: "Codex CLI version announced in the version and User-Agent headers.",
    },
    Variable {
        name: "WORKERS",
        default: "16",
        help: "Worker threads: the number of requests served at once.",
    },
    Variable {
        name: "QUEUE_DEPTH",
        default: "64",
        help: "Requests that may wait for a worker; beyond it the proxy answers 503 with Retry-After.",
    },
    Variable {
        name: "MAX_BODY_BYTES",
        default: "33554432",
        help: "Largest request body accepted (inline base64 files and images); 413 beyond it.",
    },
    Variable {
        name: "CLIENT_TIMEOUT_SECS",
        default: "60",
        help: "Client socket read/write timeout: bounds slow headers and bodies (408), idle keep-alive connections, and stalled stream readers.",
    },
    Variable {
        name: "UPSTREAM_CONNECT_TIMEOUT_SECS",
        default: "10",
        help: "Upstream DNS lookup (its answer is kept 30 s) and connect (and TLS) timeout.",
    },
    Variable {
        name: "UPSTREAM_HEADERS_TIMEOUT_SECS",
        default: "120",
        help: "Time to send the request upstream, and to wait for the upstream's response headers.",
    },
    Variable {
        name: "UPSTREAM_IDLE_TIMEOUT_SECS",
        default: "300",
        help: "An upstream stream silent for this long is ended as an error.",
    },
    Variable {
        name: "UPSTREAM_MAX_RETRIES",
        default: "2",
        help: "Retries of upstream 5xx and transport failures before the first byte (backoff from 200 ms).",
    },
    Variable {
        name: "SHUTDOWN_GRACE_SECS",
        default: "25",
        help: "On SIGTERM/SIGINT, how long in-flight requests may run before the process exits.",
    },
    Variable {
        name: "LOGIN_CALLBACK_PORT",
        default: "1455",
        help: "Local port of the `--login --browser` callback (1457 is tried when it is taken).",
    },
    Variable {
        name: "METRICS_PUBLIC",
        default: "0",
        help: "Set to 1 to serve GET /metrics without a caller key (for a scraper on a private network).",
    },
    Variable {
        name: "LOG_FORMAT",
        default: "plain",
        help: "plain (one readable line per record) or json (one JSON object per line, for log shippers).",
    },
    Variable {
        name: "LOG_LEVEL",
        default: "info",
        help: "error, warn, info, debug or trace.",
    },
];

/// The effective configuration. Its `Debug` output redacts the keys and tokens.
#[derive(Clone)]
pub struct Config {
    /// Listen address.
    pub host: String,
    /// Listen port (0 picks a free one; used by tests).
    pub port: u16,
    /// Accepted caller keys; empty means no caller authentication.
    pub proxy_api_keys: Vec<String>,
    /// The user's explicit opt-out from caller keys on a public bind.
    pub allow_no_auth: bool,
    /// Initial access token.
    pub access_token: Option<String>,
    /// Initial refresh token.
    pub refresh_token: Option<String>,
    /// Access-token expiry in Unix seconds, when given.
    pub expires_at: Option<u64>,
    /// ChatGPT account id override.
    pub account_id: Option<String>,
    /// The credentials file.
    pub credentials_file: std::path::PathBuf,
    /// Codex backend base URL, without trailing slash.
    pub codex_base_url: String,
    /// Responses path, with leading slash.
    pub codex_responses_path: String,
    /// Model ids to list.
    pub models: Vec<String>,
    /// OAuth issuer base URL, without trailing slash.
    pub auth_base_url: String,
    /// Instructions used when a caller sends none.
    pub default_instructions: String,
    /// Where chat system and developer messages go.
    pub chat_system_as: ChatSystemAs,
    /// The `originator` header.
    pub originator: String,
    /// The Codex CLI version announced upstream.
    pub client_version: String,
    /// Worker thread count.
    pub workers: usize,
    /// Bounded queue depth.
    pub queue_depth: usize,
    /// Body size limit in bytes.
    pub max_body_bytes: usize,
    /// Client socket read/write deadline.
    pub client_timeout: Duration,
    /// Upstream connect timeout.
    pub upstream_connect_timeout: Duration,
    /// Upstream response-headers timeout.
    pub upstream_headers_timeout: Duration,
    /// Upstream stream idle timeout.
    pub upstream_idle_timeout: Duration,
    /// Upstream retries before the first byte.
    pub upstream_max_retries: u32,
    /// Grace period for in-flight requests at shutdown.
    pub shutdown_grace: Duration,
    /// Log level.
    pub log_level: log::LevelFilter,
    /// `--login --browser` callback port.
    pub login_callback_port: u16,
    /// `/metrics` answers without a caller key.
    pub metrics_public: bool,
    /// Log line format.
    pub log_format: crate::logging::LogFormat,
}

/// Where `/v1/chat/completions` puts the caller's system and developer messages (contract
/// §4.6: the backend once accepted only the official prompts as `instructions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatSystemAs {
    /// The leading system/developer messages become `instructions`; later ones stay in place
    /// as developer messages.
    Instructions,
    /// `instructions` is `DEFAULT_INSTRUCTIONS`; every system/developer message becomes a
    /// developer message in place.
    Developer,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::token_cache::Redacted;
        let keys = format!("<{} key(s), redacted>", self.proxy_api_keys.len());
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("proxy_api_keys", &format_args!("{keys}"))
            .field("allow_no_auth", &self.allow_no_auth)
            .field("access_token", &Redacted(self.access_token.as_deref()))
            .field("refresh_token", &Redacted(self.refresh_token.as_deref()))
            .field("expires_at", &self.expires_at)
            .field("account_id", &self.account_id)
            .field("credentials_file", &self.credentials_file)
            .field("codex_base_url", &self.codex_base_url)
            .field("codex_responses_path", &self.codex_responses_path)
            .field("models", &self.models)
            .field("auth_base_url", &self.auth_base_url)
            .field("workers", &self.workers)
            .field("queue_depth", &self.queue_depth)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("client_timeout", &self.client_timeout)
            .field("upstream_idle_timeout", &self.upstream_idle_timeout)
            .field("log_level", &self.log_level)
            .finish_non_exhaustive()
    }
}

/// A variable with a value that cannot be used.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The variable's name.
    pub variable: &'static str,
    /// What is wrong (never the value itself, which may be secret).
    pub problem: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid {}: {}", self.variable, self.problem)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Builds the configuration from a lookup function (the environment, then `.env`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &'static str| -> String {
            let default = VARIABLES
                .iter()
                .find(|v| v.name == name)
                .map_or("", |v| v.default);
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_string())
        };
        let optional = |name: &'static str| Some(get(name)).filter(|v| !v.is_empty());
        let number = |name: &'static str, min: u64, max: u64| -> Result<u64, ConfigError> {
            let text = get(name);
            let value: u64 = text.parse().map_err(|_| ConfigError {
                variable: name,
                problem: format!("expected a whole number, got {text:?}"),
            })?;
            if !(min..=max).contains(&value) {
                return Err(ConfigError {
                    variable: name,
                    problem: format!("must be between {min} and {max}, got {value}"),
                });
            }
            Ok(value)
        };
        let list = |name: &'static str| -> Vec<String> {
            get(name)
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        let url = |name: &'static str| -> Result<String, ConfigError> {
            let value = get(name);
            if !(value.starts_with("http://") || value.starts_with("https://")) {
                return Err(ConfigError {
                    variable: name,
                    problem: "must start with http:// or https://".to_string(),
                });
            }
            Ok(value.trim_end_matches('/').to_string())
        };
        let flag = |name: &'static str| -> Result<bool, ConfigError> {
            match get(name).to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" | "" => Ok(false),
                other => Err(ConfigError {
                    variable: name,
                    problem: format!("expected 1/0, true/false, yes/no or on/off, got {other:?}"),
                }),
            }
        };
        let secs = |name: &'static str, min: u64, max: u64| -> Result<Duration, ConfigError> {
            number(name, min, max).map(Duration::from_secs)
        };

        let host = get("HOST");
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(ConfigError {
                variable: "HOST",
                problem: "must be an address or host name".to_string(),
            });
        }
        let responses_path = get("CODEX_RESPONSES_PATH");
        if !responses_path.starts_with('/') {
            return Err(ConfigError {
                variable: "CODEX_RESPONSES_PATH",
                problem: "must start with /".to_string(),
            });
        }
        let models = list("CODEX_MODELS");
        if models.is_empty() {
            return Err(ConfigError {
                variable: "CODEX_MODELS",
                problem: "must name at least one model".to_string(),
            });
        }
        let expires_at = match optional("OPENAI_EXPIRES_AT") {
            None => None,
            Some(text) => Some(parse_expiry(&text).ok_or(ConfigError {
                variable: "OPENAI_EXPIRES_AT",
                problem: "expected Unix seconds or milliseconds".to_string(),
            })?),
        };
        let chat_system_as = match get("CHAT_SYSTEM_AS").to_ascii_lowercase().as_str() {
            "instructions" => ChatSystemAs::Instructions,
            "developer" => ChatSystemAs::Developer,
            other => {
                return Err(ConfigError {
                    variable: "CHAT_SYSTEM_AS",
                    problem: format!("expected instructions or developer, got {other:?}"),
                });
            }
        };
        let log_level = get("LOG_LEVEL").parse().map_err(|_| ConfigError {
            variable: "LOG_LEVEL",
            problem: "expected error, warn, info, debug, trace or off".to_string(),
        })?;
        for (name, value) in [
            ("OPENAI_ACCESS_TOKEN", optional("OPENAI_ACCESS_TOKEN")),
            ("OPENAI_REFRESH_TOKEN", optional("OPENAI_REFRESH_TOKEN")),
            (
                "OPENAI_CHATGPT_ACCOUNT_ID",
                optional("OPENAI_CHATGPT_ACCOUNT_ID"),
            ),
            ("CODEX_ORIGINATOR", optional("CODEX_ORIGINATOR")),
            ("CODEX_CLIENT_VERSION", optional("CODEX_CLIENT_VERSION")),
        ] {
            if value.is_some_and(|v| !is_header_safe(&v)) {
                return Err(ConfigError {
                    variable: name,
                    problem: "contains characters not allowed in an HTTP header".to_string(),
                });
            }
        }
        let proxy_api_keys = list("PROXY_API_KEY");
        if proxy_api_keys.iter().any(|k| !is_header_safe(k)) {
            return Err(ConfigError {
                variable: "PROXY_API_KEY",
                problem: "contains characters not allowed in an HTTP header".to_string(),
            });
        }

        Ok(Config {
            port: number("PORT", 0, 65535)? as u16,
            proxy_api_keys,
            allow_no_auth: flag("PROXY_ALLOW_NO_AUTH")?,
            access_token: optional("OPENAI_ACCESS_TOKEN"),
            refresh_token: optional("OPENAI_REFRESH_TOKEN"),
            expires_at,
            account_id: optional("OPENAI_CHATGPT_ACCOUNT_ID"),
            credentials_file: expand_home(&get("CREDENTIALS_FILE")),
            codex_base_url: url("CODEX_BASE_URL")?,
            codex_responses_path: responses_path,
            models,
            auth_base_url: url("AUTH_BASE_URL")?,
            default_instructions: get("DEFAULT_INSTRUCTIONS"),
            chat_system_as,
            originator: get("CODEX_ORIGINATOR"),
            client_version: get("CODEX_CLIENT_VERSION"),
            workers: number("WORKERS", 1, 4096)? as usize,
            queue_depth: number("QUEUE_DEPTH", 0, 1_000_000)? as usize,
            max_body_bytes: number("MAX_BODY_BYTES", 1024, 1 << 30)? as usize,
            client_timeout: secs("CLIENT_TIMEOUT_SECS", 1, 3600)?,
            upstream_connect_timeout: secs("UPSTREAM_CONNECT_TIMEOUT_SECS", 1, 600)?,
            upstream_headers_timeout: secs("UPSTREAM_HEADERS_TIMEOUT_SECS", 1, 3600)?,
            upstream_idle_timeout: secs("UPSTREAM_IDLE_TIMEOUT_SECS", 1, 86_400)?,
            upstream_max_retries: number("UPSTREAM_MAX_RETRIES", 0, 10)? as u32,
            shutdown_grace: secs("SHUTDOWN_GRACE_SECS", 0, 3600)?,
            log_level,
            login_callback_port: number("LOGIN_CALLBACK_PORT", 0, 65535)? as u16,
            metrics_public: flag("METRICS_PUBLIC")?,
            log_format: match get("LOG_FORMAT").to_ascii_lowercase().as_str() {
                "plain" => crate::logging::LogFormat::Plain,
                "json" => crate::logging::LogFormat::Json,
                _ => {
                    return Err(ConfigError {
                        variable: "LOG_FORMAT",
                        problem: "expected plain or json".to_string(),
                    });
                }
            },
            host,
        })
    }

    /// Reads the process environment, falling back to `.env` in the working directory.
    /// Returns the line numbers of `.env` lines that could not be parsed.
    pub fn from_env() -> Result<(Config, Vec<usize>), ConfigError> {
        let (file, skipped) = match std::fs::read_to_string(".env") {
            Ok(text) => crate::env_file::parse(&text),
            Err(_) => Default::default(),
        };
        let config = Config::from_lookup(|name| {
            std::env::var(name).ok().or_else(|| file.get(name).cloned())
        })?;
        Ok((config, skipped))
    }

    /// The effective configuration from the environment and `.env`, secrets redacted, as
    /// `NAME=value` lines for the start-up log.
    pub fn describe_env() -> Vec<String> {
        let file = match std::fs::read_to_string(".env") {
            Ok(text) => crate::env_file::parse(&text).0,
            Err(_) => Default::default(),
        };
        describe(|name| std::env::var(name).ok().or_else(|| file.get(name).cloned()))
    }

    /// Whether the listen address only accepts local connections.
    pub fn is_loopback_bind(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// Refuses a public bind without caller keys unless the user opted out explicitly.
    pub fn check_caller_auth(&self) -> Result<(), ConfigError> {
        if self.proxy_api_keys.is_empty() && !self.is_loopback_bind() && !self.allow_no_auth {
            return Err(ConfigError {
                variable: "PROXY_API_KEY",
                problem: format!(
                    "no caller key is set and HOST={} is not loopback; set PROXY_API_KEY, bind \
                     HOST=127.0.0.1, or set PROXY_ALLOW_NO_AUTH=1 to run open on purpose",
                    self.host
                ),
            });
        }
        Ok(())
    }

    /// The full upstream responses URL.
    pub fn responses_url(&self) -> String {
        format!("{}{}", self.codex_base_url, self.codex_responses_path)
    }
}

/// Variables whose values are secrets: shown as set or unset, never as values.
const SECRET_VARIABLES: &[&str] = &[
    "PROXY_API_KEY",
    "OPENAI_ACCESS_TOKEN",
    "OPENAI_REFRESH_TOKEN",
];

/// The effective configuration as `NAME=value` lines for the start-up log, secrets redacted.
pub fn describe(lookup: impl Fn(&str) -> Option<String>) -> Vec<String> {
    VARIABLES
        .iter()
        .map(|variable| {
            let value = lookup(variable.name).filter(|v| !v.trim().is_empty());
            let shown = match value {
                Some(value) if SECRET_VARIABLES.contains(&variable.name) => {
                    let count = value.split(',').filter(|k| !k.trim().is_empty()).count();
                    if variable.name == "PROXY_API_KEY" {
                        format!("<{count} key(s), redacted>")
                    } else {
                        "<set, redacted>".to_string()
                    }
                }
                Some(value) => value,
                None if variable.default.is_empty() => "<unset>".to_string(),
                None => format!("{} (default)", variable.default),
            };
            format!("{}={shown}", variable.name)
        })
        .collect()
}

/// Text for `--help`: every variable with its default.
pub fn help_text() -> String {
    let mut text = [
        "codex-sub-proxy: an OpenAI-compatible proxy for ChatGPT/Codex subscription models.",
        "",
        "Usage:",
        "  codex-sub-proxy                    serve",
        "  codex-sub-proxy --login            link an account (device code), write CREDENTIALS_FILE,",
        "                                     and print the .env values on stdout",
        "  codex-sub-proxy --login --browser  the same through a browser and a localhost callback",
        "  codex-sub-proxy --healthcheck      GET /healthz on PORT (exit 0 or 1; the container's HEALTHCHECK)",
        "  codex-sub-proxy --help | --version",
        "",
        "Configuration comes from the environment; a .env file in the working directory is read",
        "when present, and the real environment wins over it.",
        "",
        "Variables:",
        "",
    ]
    .join("\n");
    for variable in VARIABLES {
        let default = if variable.default.is_empty() {
            "(unset)".to_string()
        } else {
            variable.default.to_string()
        };
        text.push_str(&format!(
            "  {:<30} default {}\n      {}\n",
            variable.name, default, variable.help
        ));
    }
    text
}

/// Expands a leading `~/` with `$HOME`.
fn expand_home(path: &str) -> std::path::PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => std::path::Path::new(&home).join(rest),
        _ => std::path::PathBuf::from(path),
    }
}

/// Accepts Unix seconds or milliseconds (values above 10^11 are taken as milliseconds).
pub fn parse_expiry(text: &str) -> Option<u64> {
    let value: u64 = text.trim().parse().ok()?;
    Some(if value > 100_000_000_000 {
        value / 1000
    } else {
        value
    })
}

/// True when the value can go into an HTTP header unchanged (no CR, LF or other controls).
pub fn is_header_safe(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_match_the_seed_project() {
        let config = config(&[]).expect("defaults are valid");
        assert_eq!(config.host, "0.0.0.0");
        assert_eq!(config.port, 3000);
        assert_eq!(
            config.codex_base_url,
            "https://chatgpt.com/backend-api/codex"
        );
        assert_eq!(
            config.responses_url(),
            "https://chatgpt.com/backend-api/codex/responses"
        );
        assert_eq!(
            config.models,
            ["gpt-5.5", "gpt-5.5-pro", "gpt-5.4", "gpt-5.4-mini"]
        );
        assert_eq!(config.upstream_idle_timeout, Duration::from_secs(300));
    }

    #[test]
    fn a_bad_value_names_the_variable_but_not_the_value_of_secrets() {
        let error = config(&[("PORT", "eighty")]).expect_err("bad port");
        assert_eq!(error.variable, "PORT");
        assert!(error.to_string().contains("PORT"));
        let error = config(&[("WORKERS", "0")]).expect_err("zero workers");
        assert_eq!(error.variable, "WORKERS");
        let error = config(&[("OPENAI_ACCESS_TOKEN", "secret\r\nX: y")]).expect_err("CRLF");
        assert_eq!(error.variable, "OPENAI_ACCESS_TOKEN");
        assert!(!error.to_string().contains("secret"));
    }

    #[test]
    fn chat_system_placement_defaults_to_instructions() {
        assert_eq!(
            config(&[]).expect("defaults").chat_system_as,
            ChatSystemAs::Instructions
        );
        assert_eq!(
            config(&[("CHAT_SYSTEM_AS", "Developer")])
                .expect("valid")
                .chat_system_as,
            ChatSystemAs::Developer
        );
        let error = config(&[("CHAT_SYSTEM_AS", "user")]).expect_err("unknown placement");
        assert_eq!(error.variable, "CHAT_SYSTEM_AS");
    }

    #[test]
    fn debug_output_redacts_keys_and_tokens() {
        let config = config(&[
            ("PROXY_API_KEY", "key-secret-1,key-secret-2"),
            ("OPENAI_ACCESS_TOKEN", "access-secret"),
            ("OPENAI_REFRESH_TOKEN", "refresh-secret"),
        ])
        .expect("valid");
        let text = format!("{config:?}");
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("<2 key(s), redacted>"));
    }

    #[test]
    fn expiry_accepts_seconds_and_milliseconds() {
        assert_eq!(parse_expiry("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_expiry("1700000000123"), Some(1_700_000_000));
        assert_eq!(parse_expiry("soon"), None);
    }

    #[test]
    fn public_bind_without_keys_needs_an_explicit_opt_out() {
        assert!(config(&[]).expect("valid").check_caller_auth().is_err());
        assert!(
            config(&[("HOST", "127.0.0.1")])
                .expect("valid")
                .check_caller_auth()
                .is_ok()
        );
        assert!(
            config(&[("HOST", "::1")])
                .expect("valid")
                .check_caller_auth()
                .is_ok()
        );
        assert!(
            config(&[("PROXY_ALLOW_NO_AUTH", "1")])
                .expect("valid")
                .check_caller_auth()
                .is_ok()
        );
        assert!(
            config(&[("PROXY_API_KEY", "a, b")])
                .expect("valid")
                .check_caller_auth()
                .is_ok()
        );
        assert_eq!(
            config(&[("PROXY_API_KEY", "a, b")])
                .expect("valid")
                .proxy_api_keys,
            ["a", "b"]
        );
    }

    #[test]
    fn the_start_up_description_redacts_secrets() {
        let values: HashMap<&str, &str> = [
            ("PROXY_API_KEY", "key-one,key-two"),
            ("OPENAI_REFRESH_TOKEN", "rt-secret"),
            ("PORT", "8080"),
        ]
        .into_iter()
        .collect();
        let lines = describe(|name| values.get(name).map(|v| v.to_string()));
        let text = lines.join("\n");
        assert!(text.contains("PROXY_API_KEY=<2 key(s), redacted>"));
        assert!(text.contains("OPENAI_REFRESH_TOKEN=<set, redacted>"));
        assert!(text.contains("OPENAI_ACCESS_TOKEN=<unset>"));
        assert!(text.contains("PORT=8080"));
        assert!(text.contains("HOST=0.0.0.0 (default)"));
        assert!(!text.contains("key-one") && !text.contains("rt-secret"));
        assert_eq!(lines.len(), VARIABLES.len());
    }

    #[test]
    fn help_lists_every_variable_with_its_default() {
        let help = help_text();
        for variable in VARIABLES {
            assert!(help.contains(variable.name));
            assert!(help.contains(variable.default));
        }
    }
}
