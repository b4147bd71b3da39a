//! The credentials file, in the Codex CLI's `auth.json` layout (contract §2), and its sidecars.
//!
//! - `CREDENTIALS_FILE` itself: `OPENAI_API_KEY`, `tokens.{id_token, access_token,
//!   refresh_token, account_id}`, `last_refresh`. Fields the proxy does not know are kept, so a
//!   file shared with the Codex CLI stays valid for it.
//! - `<file>.lock`: an empty file whose advisory lock (`File::lock`) serialises refreshes across
//!   processes. The credentials file itself cannot carry the lock: every write replaces it with a
//!   new inode.
//! - `<file>.proxy-state.json`: what the proxy must remember without storing a secret twice:
//!   the SHA-256 of the refresh token the file was seeded from, and of a refresh token the token
//!   endpoint refused for good.
//!
//! Every write is atomic and private: a temporary file beside the target, mode 0600, `sync_all`,
//! `rename`, then a sync of the directory. A crash at any point leaves the old or the new file.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::token_cache::TokenSet;

/// A credentials file and its sidecars.
#[derive(Debug, Clone)]
pub struct CredentialsFile {
    path: PathBuf,
}

/// What the proxy remembers beside the credentials (hashes only, never tokens).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyState {
    /// SHA-256 (hex) of the `OPENAI_REFRESH_TOKEN` the file was last seeded from.
    pub seeded_from: Option<String>,
    /// SHA-256 (hex) of a refresh token refused for good, and the refusal code.
    pub dead_refresh_token: Option<(String, String)>,
}

/// An exclusive advisory lock on `<file>.lock`, released on drop.
pub struct CredentialsLock {
    file: File,
}

impl Drop for CredentialsLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

impl CredentialsFile {
    /// A handle on `path` (nothing is read or created yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CredentialsFile { path: path.into() }
    }

    /// The credentials file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sidecar(&self, suffix: &str) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        self.path.with_file_name(name)
    }

    /// Takes the cross-process lock, waiting for another holder. Creates the directory and the
    /// lock file (0600) when missing.
    pub fn lock(&self) -> io::Result<CredentialsLock> {
        ensure_parent(&self.path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(self.sidecar(".lock"))?;
        file.lock()?;
        Ok(CredentialsLock { file })
    }

    /// Reads the raw JSON; `Ok(None)` when the file does not exist.
    pub fn read_raw(&self) -> io::Result<Option<Map<String, Value>>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error),
        };
        match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => Ok(Some(map)),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is not a JSON object in auth.json layout",
                    self.path.display()
                ),
            )),
        }
    }

    /// Reads the tokens; `Ok(None)` when the file does not exist or holds no tokens.
    pub fn read(&self) -> io::Result<Option<TokenSet>> {
        Ok(self.read_raw()?.and_then(|raw| tokens_from_json(&raw)))
    }

    /// Writes `tokens` with `last_refresh = now`, keeping fields of an existing file that the
    /// proxy does not manage.
    pub fn write(&self, tokens: &TokenSet, now_unix: u64) -> io::Result<()> {
        let existing = self.read_raw().ok().flatten().unwrap_or_default();
        let document = tokens_to_json(existing, tokens, now_unix);
        let mut text = serde_json::to_string_pretty(&Value::Object(document))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        text.push('\n');
        write_atomically(&self.path, text.as_bytes())
    }

    /// Reads the proxy's state sidecar (empty when missing or unreadable).
    pub fn read_state(&self) -> ProxyState {
        let Ok(text) = std::fs::read_to_string(self.sidecar(".proxy-state.json")) else {
            return ProxyState::default();
        };
        let Ok(json) = serde_json::from_str::<Value>(&text) else {
            return ProxyState::default();
        };
        let text_at = |pointer: &str| {
            json.pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        ProxyState {
            seeded_from: text_at("/seeded_from_sha256"),
            dead_refresh_token: text_at("/refresh_failure/refresh_token_sha256")
                .zip(text_at("/refresh_failure/code")),
        }
    }

    /// Writes the proxy's state sidecar atomically.
    pub fn write_state(&self, state: &ProxyState) -> io::Result<()> {
        let failure = state
            .dead_refresh_token
            .as_ref()
            .map(|(hash, code)| json!({"refresh_token_sha256": hash, "code": code}));
        let document = json!({
            "about": "codex-sub-proxy bookkeeping: SHA-256 hashes of refresh tokens, never the tokens",
            "seeded_from_sha256": state.seeded_from,
            "refresh_failure": failure,
        });
        let mut text = serde_json::to_string_pretty(&document)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        text.push('\n');
        write_atomically(&self.sidecar(".proxy-state.json"), text.as_bytes())
    }
}

/// SHA-256 of a token, hex: lets the proxy recognise a token without storing it again.
pub fn fingerprint(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The tokens of an `auth.json` document.
pub fn tokens_from_json(raw: &Map<String, Value>) -> Option<TokenSet> {
    let tokens = raw.get("tokens")?.as_object()?;
    let text = |key: &str| {
        tokens
            .get(key)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let access_token = text("access_token");
    let refresh_token = text("refresh_token");
    if access_token.is_none() && refresh_token.is_none() {
        return None;
    }
    let id_token = text("id_token");
    let account_id = text("account_id")
        .or_else(|| id_token.as_deref().and_then(crate::jwt::account_id))
        .or_else(|| access_token.as_deref().and_then(crate::jwt::account_id));
    let last_refresh = raw
        .get("last_refresh")
        .and_then(Value::as_str)
        .and_then(crate::rfc3339::parse);
    let expires_at = access_token
        .as_deref()
        .and_then(crate::jwt::expires_at)
        // Without `exp`, the CLI's rule: refresh when `last_refresh` is older than 8 days.
        .or_else(|| last_refresh.map(|at| at + 8 * 86_400));
    Some(TokenSet {
        access_token,
        refresh_token,
        id_token,
        expires_at,
        account_id,
    })
}

/// `existing` with the managed fields replaced by `tokens`.
pub fn tokens_to_json(
    mut document: Map<String, Value>,
    tokens: &TokenSet,
    now_unix: u64,
) -> Map<String, Value> {
    let mut token_object = document
        .get("tokens")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut set = |key: &str, value: &Option<String>| match value {
        Some(value) => {
            token_object.insert(key.into(), json!(value));
        }
        None => {
            token_object.remove(key);
        }
    };
    set("id_token", &tokens.id_token);
    set("access_token", &tokens.access_token);
    set("refresh_token", &tokens.refresh_token);
    token_object.insert("account_id".into(), json!(tokens.account_id));
    document.insert("tokens".into(), Value::Object(token_object));
    document.entry("OPENAI_API_KEY").or_insert(Value::Null);
    document.insert(
        "last_refresh".into(),
        json!(crate::rfc3339::format(now_unix, 0)),
    );
    document
}

fn ensure_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => std::fs::create_dir_all(parent),
        _ => Ok(()),
    }
}

/// Temporary file beside the target (0600), `sync_all`, rename, directory sync.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    ensure_parent(path)?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    let mut random = [0u8; 6];
    getrandom::fill(&mut random)
        .map_err(|_| io::Error::other("no randomness for a temporary name"))?;
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let temporary = directory.join(format!(".{name}.{}.{suffix}.tmp", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, path)?;
        File::open(&directory)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// A unit test's directory under the system temp dir, removed with its contents when dropped.
#[cfg(test)]
pub(crate) use scratch::Scratch;

#[cfg(test)]
mod scratch {
    use std::path::{Path, PathBuf};

    /// `<temp dir>/<prefix>-<16 hex digits>`, removed with its contents when dropped.
    pub(crate) struct Scratch(PathBuf);

    impl Scratch {
        /// Creates the directory.
        pub(crate) fn new(prefix: &str) -> Scratch {
            let mut random = [0u8; 8];
            getrandom::fill(&mut random).expect("random");
            let name: String = random.iter().map(|b| format!("{b:02x}")).collect();
            let dir = std::env::temp_dir().join(format!("{prefix}-{name}"));
            std::fs::create_dir_all(&dir).expect("dir");
            Scratch(dir)
        }
    }

    impl std::ops::Deref for Scratch {
        type Target = Path;

        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch() -> Scratch {
        Scratch::new("csp-creds")
    }

    fn tokens(n: u32) -> TokenSet {
        TokenSet {
            access_token: Some(format!("access-{n}")),
            refresh_token: Some(format!("refresh-{n}")),
            id_token: None,
            expires_at: None,
            account_id: Some("acc".into()),
        }
    }

    #[test]
    fn writes_private_files_in_the_cli_layout_and_reads_them_back() {
        let dir = scratch();
        let file = CredentialsFile::new(dir.join("sub/auth.json"));
        file.write(&tokens(1), 1_700_000_000).expect("write");
        let mode = std::fs::metadata(file.path())
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let raw = file.read_raw().expect("read").expect("exists");
        assert_eq!(raw["OPENAI_API_KEY"], Value::Null);
        assert_eq!(raw["tokens"]["refresh_token"], "refresh-1");
        assert_eq!(raw["tokens"]["account_id"], "acc");
        assert_eq!(raw["last_refresh"], "2023-11-14T22:13:20.000000Z");
        let back = file.read().expect("read").expect("tokens");
        assert_eq!(back.refresh_token.as_deref(), Some("refresh-1"));
        assert_eq!(
            back.expires_at,
            Some(1_700_000_000 + 8 * 86_400),
            "8-day rule without exp"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.join("sub"))
            .expect("dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn keeps_fields_it_does_not_manage() {
        let dir = scratch();
        let path = dir.join("auth.json");
        std::fs::write(
            &path,
            r#"{"auth_mode":"chatgpt","OPENAI_API_KEY":null,"tokens":{"id_token":"a.b.c","access_token":"x","refresh_token":"y","account_id":"acc","extra":1},"agent_identity":{"k":"v"}}"#,
        )
        .expect("seed");
        let file = CredentialsFile::new(&path);
        let mut next = file.read().expect("read").expect("tokens");
        next.refresh_token = Some("z".into());
        file.write(&next, 1_700_000_000).expect("write");
        let raw = file.read_raw().expect("read").expect("exists");
        assert_eq!(raw["auth_mode"], "chatgpt");
        assert_eq!(raw["agent_identity"]["k"], "v");
        assert_eq!(raw["tokens"]["extra"], 1);
        assert_eq!(raw["tokens"]["id_token"], "a.b.c");
        assert_eq!(raw["tokens"]["refresh_token"], "z");
    }

    #[test]
    fn state_keeps_hashes_not_tokens() {
        let dir = scratch();
        let file = CredentialsFile::new(dir.join("auth.json"));
        assert_eq!(file.read_state(), ProxyState::default());
        let state = ProxyState {
            seeded_from: Some(fingerprint("refresh-secret")),
            dead_refresh_token: Some((fingerprint("dead-secret"), "refresh_token_reused".into())),
        };
        file.write_state(&state).expect("write");
        assert_eq!(file.read_state(), state);
        let text = std::fs::read_to_string(dir.join("auth.json.proxy-state.json")).expect("read");
        assert!(!text.contains("refresh-secret") && !text.contains("dead-secret"));
        assert_eq!(
            fingerprint("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn the_lock_is_exclusive_across_handles() {
        let dir = scratch();
        let file = CredentialsFile::new(dir.join("auth.json"));
        let held = file.lock().expect("lock");
        let other = OpenOptions::new()
            .write(true)
            .open(dir.join("auth.json.lock"))
            .expect("open");
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(held);
        assert!(other.try_lock().is_ok());
    }

    #[test]
    fn a_file_that_is_not_json_is_an_error_not_empty_credentials() {
        let dir = scratch();
        let path = dir.join("auth.json");
        std::fs::write(&path, "{torn").expect("write");
        assert!(CredentialsFile::new(&path).read().is_err());
    }
}
