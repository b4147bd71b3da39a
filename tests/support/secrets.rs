//! The secrets of a test run, and the check that none of them reaches a log line or an error
//! body (issue 7). Support code registers what it hands out or receives: the harness and
//! `proxy_process.rs` the caller keys and tokens they configure, the fake OAuth issuer every
//! token it issues, the fake Codex backends every prompt text they are sent and every completion
//! text they stream. `harness::log_capture` and `proxy_process.rs` then scan the proxy's log
//! lines, and the harness HTTP helpers the error bodies, against everything registered.
//!
//! What is registered (the rule that keeps the check strict without false hits):
//! - Texts shorter than [`MIN_CHARS`] characters are not: tests use short words such as
//!   `"hi"` or `"rotated"` that the proxy's own log vocabulary contains.
//! - A prompt or completion that is a single word of ASCII letters (`"assistant"`,
//!   `"completed"`) is not either, for the same reason; a credential always is.
//! - A prompt or completion longer than [`MAX_CHARS`] is registered by its first
//!   [`MAX_CHARS`] characters, so a log line quoting the start of it is caught too.
//! - A prompt equal to a configuration value the proxy logs at start by design (a default, or
//!   a non-secret variable a test sets, see [`SecretRegistry::declare_public`]) is not.
//!
//! One registry serves a whole test binary: tests run in parallel threads, and checking the
//! union of their secrets against every line is still correct, only stricter.

#![expect(clippy::panic, reason = "a leak fails the test loudly")]

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

use serde_json::Value;

/// Texts shorter than this (in characters) are not registered.
pub const MIN_CHARS: usize = 8;
/// Prompts and completions are registered by at most this many leading characters.
pub const MAX_CHARS: usize = 64;
/// Below this many unchecked secrets, a text is searched for each one directly; above it,
/// through the prefix index.
const DIRECT_SEARCH_LIMIT: usize = 8;

/// What a registered secret is (named in failures instead of the secret itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretKind {
    /// A caller key (`PROXY_API_KEY`).
    ProxyKey,
    /// An upstream OAuth access token.
    AccessToken,
    /// An OAuth refresh token.
    RefreshToken,
    /// An OAuth id token.
    IdToken,
    /// Text a caller sent the model.
    Prompt,
    /// Text the model answered.
    Completion,
}

impl SecretKind {
    /// Keys and tokens, which no error body may carry either (prompts may: an upstream 400
    /// keeps its `detail`, which can quote the request).
    pub fn is_credential(self) -> bool {
        !matches!(self, SecretKind::Prompt | SecretKind::Completion)
    }

    /// A name for failure messages.
    pub fn label(self) -> &'static str {
        match self {
            SecretKind::ProxyKey => "proxy key",
            SecretKind::AccessToken => "access token",
            SecretKind::RefreshToken => "refresh token",
            SecretKind::IdToken => "id token",
            SecretKind::Prompt => "prompt text",
            SecretKind::Completion => "completion text",
        }
    }
}

/// A registered secret found in a text.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// What leaked.
    pub kind: SecretKind,
    /// The secret's length in bytes (the secret itself is never shown).
    pub length: usize,
    /// Where it was found (a log line or an error body), with every registered secret in it
    /// replaced by `<kind>` and cut to a readable length.
    pub masked: String,
}

struct Registered {
    text: String,
    kind: SecretKind,
}

#[derive(Default)]
struct RegistryState {
    /// In order of registration: a scan remembers how many it has checked a line against.
    secrets: Vec<Registered>,
    seen: HashSet<String>,
    /// Secret indexes by their first 8 bytes, to search a text for all of them in one pass.
    by_prefix: HashMap<[u8; 8], Vec<usize>>,
    public: HashSet<String>,
}

/// The set of secrets; [`registry`] is the one of this test binary.
#[derive(Default)]
pub struct SecretRegistry {
    state: Mutex<RegistryState>,
}

impl SecretRegistry {
    /// An empty registry that knows the configuration defaults the proxy logs at start.
    pub fn new() -> SecretRegistry {
        let registry = SecretRegistry::default();
        for variable in codex_sub_proxy::config::VARIABLES {
            registry.declare_public(variable.default);
        }
        registry
    }

    fn state(&self) -> MutexGuard<'_, RegistryState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `text` as a secret of `kind`, unless the rule in this file's docs leaves it
    /// out. True when it is newly registered.
    pub fn register(&self, kind: SecretKind, text: &str) -> bool {
        let text = if kind.is_credential() {
            text
        } else {
            let end = text
                .char_indices()
                .nth(MAX_CHARS)
                .map_or(text.len(), |(at, _)| at);
            &text[..end]
        };
        if text.chars().count() < MIN_CHARS
            || (!kind.is_credential() && text.bytes().all(|b| b.is_ascii_alphabetic()))
        {
            return false;
        }
        let mut state = self.state();
        if (!kind.is_credential() && state.public.contains(text)) || state.seen.contains(text) {
            return false;
        }
        let index = state.secrets.len();
        state.seen.insert(text.to_owned());
        state.by_prefix.entry(prefix(text)).or_default().push(index);
        state.secrets.push(Registered {
            text: text.to_owned(),
            kind,
        });
        true
    }

    /// Declares `text` a value the proxy logs by design (its configuration), so a prompt equal
    /// to it is not registered. Credentials are never public.
    pub fn declare_public(&self, text: &str) {
        if !text.is_empty() {
            self.state().public.insert(text.to_owned());
        }
    }

    /// How many secrets are registered.
    pub fn len(&self) -> usize {
        self.state().secrets.len()
    }

    /// How many secrets of each kind are registered.
    pub fn counts(&self) -> Vec<(SecretKind, usize)> {
        let state = self.state();
        let mut counts: Vec<(SecretKind, usize)> = Vec::new();
        for secret in &state.secrets {
            match counts.iter_mut().find(|(kind, _)| *kind == secret.kind) {
                Some((_, count)) => *count += 1,
                None => counts.push((secret.kind, 1)),
            }
        }
        counts
    }

    /// The first secret registered at index `from` or later (of a credential kind only, when
    /// `credentials_only`) that occurs in `text`, as a [`Finding`].
    pub fn find(&self, text: &str, from: usize, credentials_only: bool) -> Option<Finding> {
        let state = self.state();
        let wanted = |index: &usize| {
            *index >= from && (!credentials_only || state.secrets[*index].kind.is_credential())
        };
        let hit = if state.secrets.len().saturating_sub(from) <= DIRECT_SEARCH_LIMIT {
            (from..state.secrets.len())
                .filter(wanted)
                .find(|&index| text.contains(state.secrets[index].text.as_str()))
        } else {
            let bytes = text.as_bytes();
            bytes.windows(8).enumerate().find_map(|(at, window)| {
                let key: [u8; 8] = window.try_into().ok()?;
                state.by_prefix.get(&key)?.iter().copied().find(|index| {
                    wanted(index) && bytes[at..].starts_with(state.secrets[*index].text.as_bytes())
                })
            })
        }?;
        let secret = &state.secrets[hit];
        Some(Finding {
            kind: secret.kind,
            length: secret.text.len(),
            masked: mask(&state, text),
        })
    }
}

fn prefix(text: &str) -> [u8; 8] {
    let mut key = [0u8; 8];
    key.copy_from_slice(&text.as_bytes()[..8]);
    key
}

/// `text` with every registered secret in it replaced by `<kind>`, at most 300 characters.
fn mask(state: &RegistryState, text: &str) -> String {
    let mut masked = text.to_owned();
    for secret in &state.secrets {
        if masked.contains(secret.text.as_str()) {
            masked = masked.replace(secret.text.as_str(), &format!("<{}>", secret.kind.label()));
        }
    }
    match masked.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &masked[..at]),
        None => masked,
    }
}

/// The registry of this test binary.
pub fn registry() -> &'static SecretRegistry {
    static REGISTRY: LazyLock<SecretRegistry> = LazyLock::new(SecretRegistry::new);
    &REGISTRY
}

/// Registers `text` as a secret of `kind` in this binary's registry (see the rule above).
pub fn register(kind: SecretKind, text: &str) {
    registry().register(kind, text);
}

/// Registers the prompt texts of a request body: `instructions`, and under `input` every string
/// held by a `text`, `content`, `output` or `arguments` field (not ids, names, URLs or file data).
pub fn register_prompts(body: &Value) {
    fn walk(value: &Value) {
        match value {
            Value::Array(items) => items.iter().for_each(walk),
            Value::Object(fields) => {
                for (name, value) in fields {
                    match value {
                        Value::String(text)
                            if matches!(
                                name.as_str(),
                                "text" | "content" | "output" | "arguments"
                            ) =>
                        {
                            register(SecretKind::Prompt, text);
                        }
                        _ => walk(value),
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(instructions) = body.get("instructions").and_then(Value::as_str) {
        register(SecretKind::Prompt, instructions);
    }
    match body.get("input") {
        Some(Value::String(text)) => register(SecretKind::Prompt, text),
        Some(input) => walk(input),
        None => {}
    }
}

/// Registers a streamed completion `text` and the pieces (`deltas`) it is streamed in.
pub fn register_completion(text: &str, deltas: &[String]) {
    register(SecretKind::Completion, text);
    for delta in deltas {
        register(SecretKind::Completion, delta);
    }
}

/// Registers every token in the credentials file at `path` (when it exists and holds any).
pub fn register_credentials_file(path: &std::path::Path) {
    let file = codex_sub_proxy::credentials_file::CredentialsFile::new(path);
    let Ok(Some(tokens)) = file.read() else {
        return;
    };
    for (kind, token) in [
        (SecretKind::AccessToken, &tokens.access_token),
        (SecretKind::RefreshToken, &tokens.refresh_token),
        (SecretKind::IdToken, &tokens.id_token),
    ] {
        if let Some(token) = token {
            register(kind, token);
        }
    }
}

/// The findings of checking each of `lines` against every registered secret.
pub fn check_lines<'a>(
    registry: &SecretRegistry,
    lines: impl IntoIterator<Item = &'a str>,
) -> Vec<Finding> {
    lines
        .into_iter()
        .filter_map(|line| registry.find(line, 0, false))
        .collect()
}

/// Notes that a scan checked `lines` more lines from `source`: the totals so far go to stderr
/// and to `$CARGO_TARGET_TMPDIR/secret-scan-<test crate>-<source>.txt` (for a run's summary).
pub fn record_scan(source: &str, lines: u64) {
    static TOTALS: LazyLock<Mutex<HashMap<String, u64>>> = LazyLock::new(Default::default);
    let lines = {
        let mut totals = TOTALS.lock().unwrap_or_else(PoisonError::into_inner);
        let total = totals.entry(source.to_owned()).or_default();
        *total += lines;
        *total
    };
    let registry = registry();
    let kinds: Vec<String> = registry
        .counts()
        .iter()
        .map(|(kind, count)| format!("{count} {}", kind.label()))
        .collect();
    let crate_name = env!("CARGO_CRATE_NAME");
    let figures = format!(
        "secret scan {crate_name} {source}: {lines} log line(s) checked against {} secret(s) ({})",
        registry.len(),
        kinds.join(", ")
    );
    eprintln!("{figures}");
    let file = format!(
        "{}/secret-scan-{crate_name}-{source}.txt",
        env!("CARGO_TARGET_TMPDIR")
    );
    let _ = std::fs::write(file, format!("{figures}\n"));
}

/// Fails the test when `findings` (from the logs of `source`) is not empty, naming the kind
/// of each secret and showing the line with the secrets masked.
pub fn assert_no_findings(source: &str, findings: &[Finding]) {
    if findings.is_empty() {
        return;
    }
    let report: Vec<String> = findings
        .iter()
        .map(|finding| {
            format!(
                "- {} ({} bytes) in: {}",
                finding.kind.label(),
                finding.length,
                finding.masked
            )
        })
        .collect();
    panic!(
        "{} registered secret(s) leaked into {source}:\n{}",
        findings.len(),
        report.join("\n")
    );
}

/// Fails the test when an error body (status >= 400, or an in-band error event) carries a
/// registered key or token.
pub fn assert_error_body_clean(what: &str, body: &str) {
    if let Some(finding) = registry().find(body, 0, true) {
        assert_no_findings(&format!("the error body of {what}"), &[finding]);
    }
}
