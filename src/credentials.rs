//! Credentials that survive rotation: seeding the credentials file from the environment, and
//! the refresher that rotates tokens under the file's lock and persists them before use.
//!
//! Rules (design "Credentials"):
//! - The environment seeds the file when it does not exist, or when `OPENAI_REFRESH_TOKEN`
//!   differs from the token the file was last seeded from (the user logged in again). Otherwise
//!   the file wins: it holds the rotated token.
//! - Before refreshing, take the file's lock and re-read it. When another process (a replica on
//!   the same volume, or the Codex CLI) already rotated, adopt its tokens instead of spending
//!   ours; refresh with the refresh token on disk, never a stale one from memory.
//! - The rotated tokens are written (atomically) before the refresh returns, so no caller uses a
//!   token that a crash could lose.
//! - A permanent refusal is recorded (as a hash) beside the file, so it survives restarts.

use std::time::Duration;

use crate::credentials_file::{CredentialsFile, ProxyState, fingerprint};
use crate::oauth::{OAuthRefresher, RefreshFailure};
use crate::token_cache::{REFRESH_MARGIN, TokenRefresher, TokenSet, now};

/// Transient refresh failures are retried this many times, with backoff from 200 ms.
const TRANSIENT_RETRIES: u32 = 2;

/// How the starting tokens were chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The file did not exist; the environment seeded it.
    SeededNew,
    /// `OPENAI_REFRESH_TOKEN` changed since the file was seeded; the environment replaced it.
    Reseeded,
    /// The file's tokens are used.
    File,
    /// Neither the file nor the environment holds tokens.
    Empty,
}

/// The tokens to start with, how they were chosen, and a remembered permanent failure for them.
/// (No `Debug`: it holds a refresh token.)
#[derive(Clone)]
pub struct Loaded {
    /// The starting tokens.
    pub tokens: TokenSet,
    /// Where they came from.
    pub origin: Origin,
    /// `(refresh token, message)` when the token endpoint already refused this refresh token.
    pub dead: Option<(String, String)>,
}

/// Chooses the starting tokens and seeds the file when the environment says so.
/// A file that exists but cannot be parsed is an error: it is never overwritten.
pub fn load_or_seed(file: &CredentialsFile, environment: &TokenSet) -> std::io::Result<Loaded> {
    let _lock = file.lock()?;
    let existing = file.read_raw()?;
    let on_disk = existing
        .as_ref()
        .and_then(crate::credentials_file::tokens_from_json);
    let mut state = file.read_state();
    let env_refresh = environment.refresh_token.as_deref();
    let has_env_tokens = environment.refresh_token.is_some() || environment.access_token.is_some();

    let (tokens, origin) = match (on_disk, env_refresh) {
        (None, _) if has_env_tokens => {
            file.write(environment, now())?;
            (environment.clone(), Origin::SeededNew)
        }
        (None, _) => (TokenSet::default(), Origin::Empty),
        (Some(disk), Some(env)) => {
            let env_print = fingerprint(env);
            if state.seeded_from.as_deref() == Some(env_print.as_str())
                || disk.refresh_token.as_deref() == Some(env)
            {
                (disk, Origin::File)
            } else {
                file.write(environment, now())?;
                state.dead_refresh_token = None;
                (environment.clone(), Origin::Reseeded)
            }
        }
        (Some(disk), None) => (disk, Origin::File),
    };
    if let Some(env) = env_refresh {
        let print = fingerprint(env);
        if state.seeded_from.as_deref() != Some(print.as_str()) {
            state.seeded_from = Some(print);
            file.write_state(&state)?;
        }
    }
    let dead = match (&tokens.refresh_token, &state.dead_refresh_token) {
        (Some(refresh), Some((hash, code))) if fingerprint(refresh) == *hash => {
            let failure = RefreshFailure::Permanent { code: code.clone() };
            Some((refresh.clone(), dead_message(&failure)))
        }
        _ => None,
    };
    Ok(Loaded {
        tokens,
        origin,
        dead,
    })
}

/// The caller-facing message for a dead refresh token.
pub fn dead_message(failure: &RefreshFailure) -> String {
    format!(
        "Upstream credentials are no longer valid: {}.",
        failure.describe()
    )
}

/// Refreshes under the credentials file's lock and persists before returning.
pub struct FileRefresher {
    file: CredentialsFile,
    oauth: OAuthRefresher,
}

impl FileRefresher {
    /// A refresher over `file`, calling the token endpoint through `oauth`.
    pub fn new(file: CredentialsFile, oauth: OAuthRefresher) -> Self {
        FileRefresher { file, oauth }
    }

    fn refresh_locked(&self, current: &TokenSet) -> Result<TokenSet, RefreshFailure> {
        let on_disk = self
            .file
            .read()
            .map_err(|error| RefreshFailure::Transient {
                cause: format!("the credentials file could not be read ({})", error.kind()),
            })?;
        let mut base = current.clone();
        if let Some(disk) = on_disk
            && (disk.refresh_token != current.refresh_token
                || disk.access_token != current.access_token)
        {
            // Someone else rotated (another replica, the Codex CLI) or the user replaced the
            // file: their tokens are the live ones.
            if !is_stale(&disk) {
                log::info!("adopting credentials rotated by another process");
                return Ok(disk);
            }
            base = disk;
        }
        let Some(refresh_token) = base.refresh_token.clone() else {
            return Err(RefreshFailure::Permanent {
                code: "no_refresh_token".into(),
            });
        };
        let state = self.file.read_state();
        if let Some((hash, code)) = &state.dead_refresh_token
            && *hash == fingerprint(&refresh_token)
        {
            return Err(RefreshFailure::Permanent { code: code.clone() });
        }
        let mut attempt = 0;
        let refreshed = loop {
            match self.oauth.refresh(&base) {
                Err(RefreshFailure::Transient { cause }) if attempt < TRANSIENT_RETRIES => {
                    log::warn!("token refresh failed ({cause}); retrying");
                    std::thread::sleep(Duration::from_millis(200 << attempt));
                    attempt += 1;
                }
                other => break other,
            }
        };
        match refreshed {
            Ok(next) => {
                // Persist before use: the old refresh token is spent now.
                if let Err(error) = self.file.write(&next, now()) {
                    log::error!(
                        "rotated tokens could not be written to {} ({}); they are held in memory only",
                        self.file.path().display(),
                        error.kind()
                    );
                }
                Ok(next)
            }
            Err(failure @ RefreshFailure::Permanent { .. }) => {
                if let RefreshFailure::Permanent { code } = &failure {
                    let state = ProxyState {
                        dead_refresh_token: Some((fingerprint(&refresh_token), code.clone())),
                        ..state
                    };
                    if let Err(error) = self.file.write_state(&state) {
                        log::warn!("could not record the refresh failure ({})", error.kind());
                    }
                }
                Err(failure)
            }
            Err(failure) => Err(failure),
        }
    }
}

impl TokenRefresher for FileRefresher {
    fn refresh(&self, current: &TokenSet) -> Result<TokenSet, RefreshFailure> {
        let _lock = self
            .file
            .lock()
            .map_err(|error| RefreshFailure::Transient {
                cause: format!(
                    "the credentials file could not be locked ({})",
                    error.kind()
                ),
            })?;
        self.refresh_locked(current)
    }

    fn reload(&self) -> Option<TokenSet> {
        self.file.read().ok().flatten()
    }
}

/// Within the refresh margin of expiry (or no access token at all).
fn is_stale(tokens: &TokenSet) -> bool {
    match (&tokens.access_token, tokens.expires_at) {
        (None, _) => true,
        (Some(_), Some(exp)) => exp <= now() + REFRESH_MARGIN.as_secs(),
        (Some(_), None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials_file::Scratch;

    /// A credentials file not yet written, in a directory removed when the guard is dropped.
    fn scratch_file() -> (Scratch, CredentialsFile) {
        let dir = Scratch::new("csp-seed");
        let file = CredentialsFile::new(dir.join("credentials.json"));
        (dir, file)
    }

    fn env(refresh: &str) -> TokenSet {
        TokenSet {
            access_token: Some(format!("access-for-{refresh}")),
            refresh_token: Some(refresh.into()),
            ..Default::default()
        }
    }

    #[test]
    fn seeds_a_missing_file_then_the_file_wins() {
        let (_dir, file) = scratch_file();
        let loaded = load_or_seed(&file, &env("r1")).expect("load");
        assert_eq!(loaded.origin, Origin::SeededNew);
        // The proxy rotates r1 into r2 and persists it.
        let mut rotated = env("r2");
        rotated.access_token = Some("a2".into());
        file.write(&rotated, now()).expect("write");
        // A restart with the same environment keeps the rotated token.
        let loaded = load_or_seed(&file, &env("r1")).expect("load");
        assert_eq!(loaded.origin, Origin::File);
        assert_eq!(loaded.tokens.refresh_token.as_deref(), Some("r2"));
        // A new login in the environment replaces it.
        let loaded = load_or_seed(&file, &env("r9")).expect("load");
        assert_eq!(loaded.origin, Origin::Reseeded);
        assert_eq!(
            file.read()
                .expect("read")
                .expect("tokens")
                .refresh_token
                .as_deref(),
            Some("r9")
        );
        // And no secret is stored twice.
        let state = std::fs::read_to_string(
            file.path()
                .with_file_name("credentials.json.proxy-state.json"),
        )
        .expect("state");
        assert!(!state.contains("r9") || state.contains(&fingerprint("r9")));
        assert!(!state.contains("\"r9\""));
    }

    #[test]
    fn without_environment_tokens_the_file_is_used_and_nothing_is_empty() {
        let (_dir, file) = scratch_file();
        let loaded = load_or_seed(&file, &TokenSet::default()).expect("load");
        assert_eq!(loaded.origin, Origin::Empty);
        assert!(
            file.read().expect("read").is_none(),
            "no empty file is written"
        );
        file.write(&env("r5"), now()).expect("write");
        let loaded = load_or_seed(&file, &TokenSet::default()).expect("load");
        assert_eq!(loaded.origin, Origin::File);
    }

    #[test]
    fn a_corrupt_file_is_an_error_and_is_left_alone() {
        let (_dir, file) = scratch_file();
        std::fs::create_dir_all(file.path().parent().expect("parent")).expect("dir");
        std::fs::write(file.path(), "{not json").expect("write");
        assert!(load_or_seed(&file, &env("r1")).is_err());
        assert_eq!(
            std::fs::read_to_string(file.path()).expect("read"),
            "{not json"
        );
    }

    #[test]
    fn a_remembered_failure_comes_back_after_restart() {
        let (_dir, file) = scratch_file();
        load_or_seed(&file, &env("r1")).expect("load");
        let state = ProxyState {
            seeded_from: Some(fingerprint("r1")),
            dead_refresh_token: Some((fingerprint("r1"), "refresh_token_reused".into())),
        };
        file.write_state(&state).expect("state");
        let loaded = load_or_seed(&file, &env("r1")).expect("load");
        let (token, message) = loaded.dead.expect("dead");
        assert_eq!(token, "r1");
        assert!(message.contains("--login"));
    }
}
