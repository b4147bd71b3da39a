//! The access-token cache: mutex-guarded, with single-flight refresh.
//!
//! One thread refreshes; the others wait on a `Condvar` and reuse its result. The token is
//! refreshed proactively shortly before its `exp`, and once reactively when the upstream
//! answers 401 with the token we sent. A permanent refresh failure is remembered against that
//! refresh token so the token endpoint is not hammered.
//!
//! Persistence of rotated tokens (the credentials file) plugs in through [`TokenStore`].

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::ProxyError;
use crate::oauth::{RefreshFailure, RefreshedTokens};
use crate::scrub::SecretScrubber;

/// Refresh this long before `exp` (the newer CLI's rule, contract §1.4).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// What one upstream request needs.
#[derive(Clone)]
pub struct Credentials {
    /// The bearer token.
    pub access_token: String,
    /// The `ChatGPT-Account-ID` header value.
    pub account_id: Option<String>,
    /// Finds the bearer token in what the caller is sent (`scrub`); one per token, shared by
    /// the requests that carry it.
    pub scrubber: Option<Arc<SecretScrubber>>,
}

/// The tokens held at one moment.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TokenSet {
    /// Access token (JWT).
    pub access_token: Option<String>,
    /// Refresh token.
    pub refresh_token: Option<String>,
    /// Id token (JWT), when known.
    pub id_token: Option<String>,
    /// Access-token expiry in Unix seconds, when known.
    pub expires_at: Option<u64>,
    /// ChatGPT account id.
    pub account_id: Option<String>,
}

/// Debug-formats an optional secret as `Some(<redacted>)` or `None`, never the secret.
pub struct Redacted<'a>(pub Option<&'a str>);

impl std::fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Some(<redacted>)"
        } else {
            "None"
        })
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_token", &Redacted(Some(&self.access_token)))
            .field("account_id", &self.account_id)
            .finish()
    }
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &Redacted(self.access_token.as_deref()))
            .field("refresh_token", &Redacted(self.refresh_token.as_deref()))
            .field("id_token", &Redacted(self.id_token.as_deref()))
            .field("expires_at", &self.expires_at)
            .field("account_id", &self.account_id)
            .finish()
    }
}

impl TokenSet {
    /// Applies a refresh result: fields that came back replace the old ones.
    pub fn apply(&mut self, refreshed: RefreshedTokens) {
        if let Some(access) = refreshed.access_token {
            self.expires_at = crate::jwt::expires_at(&access);
            self.access_token = Some(access);
        }
        if let Some(refresh) = refreshed.refresh_token {
            self.refresh_token = Some(refresh);
        }
        if let Some(id_token) = refreshed.id_token {
            if let Some(account) = crate::jwt::account_id(&id_token) {
                self.account_id = Some(account);
            }
            self.id_token = Some(id_token);
        }
    }
}

/// Performs a refresh: the OAuth call, plus (in later layers) locking and persisting.
pub trait TokenRefresher: Send + Sync {
    /// Exchanges `current` for a fresh token set. Must persist rotated tokens before returning.
    fn refresh(&self, current: &TokenSet) -> Result<TokenSet, RefreshFailure>;

    /// The tokens as stored now (a file another process may have changed), without refreshing.
    fn reload(&self) -> Option<TokenSet> {
        None
    }
}

/// What a readiness check may show: no secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Usable upstream credentials are held.
    pub usable: bool,
    /// Access-token expiry (Unix seconds), when known.
    pub expires_at: Option<u64>,
    /// The last four characters of the account id.
    pub account_hint: Option<String>,
    /// The plan type from the token claims.
    pub plan_type: Option<String>,
    /// The last refresh's error, or `None` after a success (or before any refresh).
    pub last_refresh_error: Option<String>,
    /// Refreshes attempted since start.
    pub refreshes: u64,
    /// Refreshes that succeeded (including adopting another process's rotation).
    pub refresh_ok: u64,
    /// Refreshes that failed for a reason that may pass.
    pub refresh_transient: u64,
    /// Refreshes refused for good.
    pub refresh_permanent: u64,
}

struct State {
    tokens: TokenSet,
    refreshing: bool,
    /// The refresh token a permanent failure was seen for, and the message.
    dead_refresh_token: Option<(String, String)>,
    /// Outcome of the last refresh, for readiness reports.
    last_refresh_error: Option<String>,
    refresh_count: u64,
    /// Outcomes: ok, transient, permanent.
    outcomes: [u64; 3],
    /// The scrubber of the access token last handed out, for the next request that carries it.
    scrubber: Option<Arc<SecretScrubber>>,
}

/// The shared token cache.
pub struct TokenCache {
    state: Mutex<State>,
    refreshed: Condvar,
    refresher: Box<dyn TokenRefresher>,
}

impl TokenCache {
    /// A cache holding `tokens`, refreshing through `refresher`.
    pub fn new(tokens: TokenSet, refresher: Box<dyn TokenRefresher>) -> Self {
        Self::with_dead_refresh_token(tokens, refresher, None)
    }

    /// Like [`TokenCache::new`], remembering that `dead` (refresh token, message) was refused
    /// for good before (a failure recorded across restarts).
    pub fn with_dead_refresh_token(
        tokens: TokenSet,
        refresher: Box<dyn TokenRefresher>,
        dead: Option<(String, String)>,
    ) -> Self {
        TokenCache {
            state: Mutex::new(State {
                tokens,
                refreshing: false,
                dead_refresh_token: dead,
                last_refresh_error: None,
                refresh_count: 0,
                outcomes: [0; 3],
                scrubber: None,
            }),
            refreshed: Condvar::new(),
            refresher,
        }
    }

    /// Credentials for a request, refreshing first when the token is about to expire.
    pub fn current(&self) -> Result<Credentials, ProxyError> {
        let mut state = self.lock();
        if needs_proactive_refresh(&state.tokens, now()) && state.tokens.refresh_token.is_some() {
            let snapshot = state.tokens.access_token.clone();
            return self.refresh_if_unchanged(state, snapshot.as_deref(), true);
        }
        credentials(&mut state)
    }

    /// After an upstream 401 with `rejected`: refresh once, unless another thread already did.
    pub fn refresh_after_unauthorized(&self, rejected: &str) -> Result<Credentials, ProxyError> {
        let state = self.lock();
        self.refresh_if_unchanged(state, Some(rejected), false)
    }

    /// Number of refreshes performed (successful or not), for tests and metrics.
    pub fn refresh_count(&self) -> u64 {
        self.lock().refresh_count
    }

    /// What a readiness check may show (secret-free).
    pub fn readiness(&self) -> Readiness {
        let state = self.lock();
        let tokens = &state.tokens;
        let expired = is_expired(tokens, now());
        let usable = tokens.access_token.is_some()
            && !(expired && (is_dead(&state) || tokens.refresh_token.is_none()));
        let plan_type = tokens
            .id_token
            .as_deref()
            .and_then(crate::jwt::plan_type)
            .or_else(|| {
                tokens
                    .access_token
                    .as_deref()
                    .and_then(crate::jwt::plan_type)
            });
        let account_hint = tokens.account_id.as_deref().map(|id| {
            let tail: Vec<char> = id.chars().rev().take(4).collect();
            format!("…{}", tail.into_iter().rev().collect::<String>())
        });
        Readiness {
            usable,
            expires_at: tokens.expires_at,
            account_hint,
            plan_type,
            last_refresh_error: state.last_refresh_error.clone(),
            refreshes: state.refresh_count,
            refresh_ok: state.outcomes[0],
            refresh_transient: state.outcomes[1],
            refresh_permanent: state.outcomes[2],
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked while holding it; the state is
        // plain data that is never left half-written, so keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Single-flight refresh: waits for a refresh in progress; refreshes only when the access
    /// token is still `seen` (otherwise someone already replaced it).
    fn refresh_if_unchanged(
        &self,
        mut state: MutexGuard<'_, State>,
        seen: Option<&str>,
        proactive: bool,
    ) -> Result<Credentials, ProxyError> {
        while state.refreshing {
            state = self
                .refreshed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        if state.tokens.access_token.as_deref() != seen {
            return credentials(&mut state);
        }
        if proactive && !needs_proactive_refresh(&state.tokens, now()) {
            return credentials(&mut state);
        }
        let Some(refresh_token) = state.tokens.refresh_token.clone() else {
            return if proactive {
                credentials(&mut state)
            } else {
                Err(ProxyError::UpstreamUnauthorized)
            };
        };
        if let Some((dead, message)) = &state.dead_refresh_token
            && *dead == refresh_token
        {
            // The token endpoint is not asked again until the credentials change: pick up a
            // file that another process (or a new `--login`) rewrote.
            let message = message.clone();
            match self.refresher.reload() {
                Some(stored)
                    if stored.refresh_token.is_some()
                        && stored.refresh_token != Some(refresh_token) =>
                {
                    log::info!("credentials changed on disk; using them");
                    state.tokens = stored;
                    state.dead_refresh_token = None;
                    return credentials(&mut state);
                }
                _ if proactive && !is_expired(&state.tokens, now()) => {
                    return credentials(&mut state);
                }
                _ => return Err(ProxyError::CredentialsUnavailable { message }),
            }
        }
        state.refreshing = true;
        let snapshot = state.tokens.clone();
        drop(state);

        let outcome = self.refresher.refresh(&snapshot);

        let mut state = self.lock();
        state.refreshing = false;
        state.refresh_count += 1;
        let result = match outcome {
            Ok(tokens) => {
                state.outcomes[0] += 1;
                state.tokens = tokens;
                state.last_refresh_error = None;
                credentials(&mut state)
            }
            Err(failure @ RefreshFailure::Permanent { .. }) => {
                state.outcomes[2] += 1;
                let message = crate::credentials::dead_message(&failure);
                state.dead_refresh_token = Some((refresh_token, message.clone()));
                state.last_refresh_error = Some(failure.describe());
                Err(ProxyError::CredentialsUnavailable { message })
            }
            Err(RefreshFailure::Transient { cause }) => {
                state.outcomes[1] += 1;
                state.last_refresh_error = Some(cause.clone());
                if proactive && !is_expired(&state.tokens, now()) {
                    // The CLI keeps using the old token when a proactive refresh fails.
                    credentials(&mut state)
                } else {
                    Err(ProxyError::TokenRefreshFailed { cause })
                }
            }
        };
        drop(state);
        self.refreshed.notify_all();
        result
    }
}

/// The credentials for a request, with the scrubber of their token: kept from the last call
/// while the token is the same.
fn credentials(state: &mut State) -> Result<Credentials, ProxyError> {
    match &state.tokens.access_token {
        Some(access_token) => {
            let kept = state
                .scrubber
                .as_ref()
                .is_some_and(|scrubber| scrubber.is_for(access_token));
            if !kept {
                state.scrubber = SecretScrubber::new(access_token).map(Arc::new);
            }
            Ok(Credentials {
                access_token: access_token.clone(),
                account_id: state.tokens.account_id.clone(),
                scrubber: state.scrubber.clone(),
            })
        }
        None => Err(ProxyError::CredentialsUnavailable {
            message: "No upstream credentials are configured: set OPENAI_ACCESS_TOKEN and \
                      OPENAI_REFRESH_TOKEN, or run `codex-sub-proxy --login`."
                .into(),
        }),
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// No access token, or one within [`REFRESH_MARGIN`] of its expiry.
fn needs_proactive_refresh(tokens: &TokenSet, now: u64) -> bool {
    match (&tokens.access_token, tokens.expires_at) {
        (None, _) => true,
        (Some(_), Some(exp)) => exp <= now + REFRESH_MARGIN.as_secs(),
        (Some(_), None) => false,
    }
}

fn is_dead(state: &State) -> bool {
    match (&state.dead_refresh_token, &state.tokens.refresh_token) {
        (Some((dead, _)), Some(current)) => dead == current,
        _ => false,
    }
}

fn is_expired(tokens: &TokenSet, now: u64) -> bool {
    tokens.expires_at.is_some_and(|exp| exp <= now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct CountingRefresher {
        calls: Arc<AtomicUsize>,
        outcome: Result<(), RefreshFailure>,
    }

    impl TokenRefresher for CountingRefresher {
        fn refresh(&self, current: &TokenSet) -> Result<TokenSet, RefreshFailure> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            std::thread::sleep(Duration::from_millis(50));
            self.outcome.clone()?;
            let mut next = current.clone();
            next.access_token = Some(format!("access-{n}"));
            next.refresh_token = Some(format!("refresh-{n}"));
            next.expires_at = Some(now() + 3600);
            Ok(next)
        }
    }

    fn cache(
        expires_at: u64,
        outcome: Result<(), RefreshFailure>,
    ) -> (Arc<TokenCache>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let tokens = TokenSet {
            access_token: Some("access-0".into()),
            refresh_token: Some("refresh-0".into()),
            expires_at: Some(expires_at),
            ..Default::default()
        };
        let refresher = CountingRefresher {
            calls: calls.clone(),
            outcome,
        };
        (
            Arc::new(TokenCache::new(tokens, Box::new(refresher))),
            calls,
        )
    }

    #[test]
    fn debug_output_redacts_tokens() {
        let tokens = TokenSet {
            access_token: Some("access-secret".into()),
            refresh_token: Some("refresh-secret".into()),
            id_token: None,
            expires_at: Some(1),
            account_id: Some("acc".into()),
        };
        let text = format!("{tokens:?}");
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("Some(<redacted>)") && text.contains("acc"));
        let credentials = Credentials {
            access_token: "access-secret".into(),
            account_id: None,
            scrubber: SecretScrubber::new("access-secret").map(Arc::new),
        };
        assert!(!format!("{credentials:?}").contains("secret"));
    }

    #[test]
    fn fresh_token_is_used_without_refresh() {
        let (cache, calls) = cache(now() + 3600, Ok(()));
        assert_eq!(cache.current().expect("creds").access_token, "access-0");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn many_threads_with_a_stale_token_cause_one_refresh() {
        let (cache, calls) = cache(now() + 10, Ok(()));
        let threads: Vec<_> = (0..32)
            .map(|_| {
                let cache = cache.clone();
                std::thread::spawn(move || cache.current().expect("creds").access_token)
            })
            .collect();
        for thread in threads {
            assert_eq!(thread.join().expect("thread"), "access-1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn requests_with_the_same_token_share_its_scrubber_and_a_new_token_gets_its_own() {
        let (cache, _) = cache(now() + 3600, Ok(()));
        let first = cache.current().expect("creds");
        let second = cache.current().expect("creds");
        let (Some(first), Some(second)) = (first.scrubber, second.scrubber) else {
            panic!("a token has a scrubber");
        };
        assert!(Arc::ptr_eq(&first, &second), "built once for the token");
        assert!(first.is_for("access-0"));
        let refreshed = cache
            .refresh_after_unauthorized("access-0")
            .expect("refreshed");
        let scrubber = refreshed.scrubber.expect("a scrubber");
        assert!(
            scrubber.is_for("access-1"),
            "the new token's, not the old one's"
        );
        assert_eq!(
            scrubber.scrub(b"a access-1 b").as_ref(),
            b"a <redacted> b".as_slice()
        );
    }

    #[test]
    fn unauthorized_refreshes_once_per_rejected_token() {
        let (cache, calls) = cache(now() + 3600, Ok(()));
        let first = cache
            .refresh_after_unauthorized("access-0")
            .expect("refreshed");
        assert_eq!(first.access_token, "access-1");
        let again = cache
            .refresh_after_unauthorized("access-0")
            .expect("reused");
        assert_eq!(again.access_token, "access-1");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn permanent_failure_is_remembered() {
        let failure = RefreshFailure::Permanent {
            code: "refresh_token_reused".into(),
        };
        let (cache, calls) = cache(now() + 3600, Err(failure));
        let error = cache
            .refresh_after_unauthorized("access-0")
            .expect_err("dead");
        assert!(error.message().contains("--login"));
        assert_eq!(error.status(), 503);
        let again = cache
            .refresh_after_unauthorized("access-0")
            .expect_err("still dead");
        assert_eq!(again, error);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(cache.readiness().last_refresh_error.is_some());
    }

    #[test]
    fn transient_proactive_failure_keeps_the_unexpired_token() {
        let failure = RefreshFailure::Transient {
            cause: "token endpoint answered HTTP 500".into(),
        };
        let (cache, _) = cache(now() + 60, Err(failure));
        assert_eq!(cache.current().expect("old token").access_token, "access-0");
        assert!(cache.readiness().last_refresh_error.is_some());
        assert!(cache.readiness().usable);
    }
}
