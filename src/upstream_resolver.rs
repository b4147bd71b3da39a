//! The upstream agent's resolver: the backend's addresses are looked up once and kept for a
//! short while, not looked up for every call.
//!
//! ureq resolves a call's host before it looks in its connection pool (ureq 3.5.2,
//! `run::connect`), so with the stock `DefaultResolver` every upstream call made a
//! `getaddrinfo`, even the calls that went out on a kept-alive connection. For an address
//! such as `chatgpt.com` that is a DNS query per request (in the distroless image, musl asks
//! the configured server every time), a delay the proxy added to every answer, and one that
//! no timeout bounded: ureq gives the lookup a deadline only when a resolve timeout is set.
//!
//! Here a lookup's addresses are kept for [`TTL`] per scheme and authority, and a lookup runs
//! under the connect timeout (`build_agent` sets it as ureq's resolve timeout). A failed lookup
//! is not kept: the next call tries again. A connection already open keeps being used whatever
//! the lookup says, as before; the addresses only matter when a new connection is made.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::Error;
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// How long a lookup's addresses are used before the next new connection looks again.
pub const TTL: Duration = Duration::from_secs(30);

/// Hosts kept at once; the agent talks to one backend, so this is a bound, not a tuning.
const MAX_HOSTS: usize = 8;

/// A lookup kept: where, when, and the answer.
struct Entry {
    scheme: String,
    authority: String,
    resolved_at: Instant,
    addrs: ResolvedSocketAddrs,
}

/// Wraps a resolver (ureq's `DefaultResolver` in the proxy) with a short-lived cache.
pub struct CachingResolver<R> {
    inner: R,
    ttl: Duration,
    entries: Mutex<Vec<Entry>>,
}

impl<R: Resolver> CachingResolver<R> {
    /// Keeps `inner`'s answers for [`TTL`].
    pub fn new(inner: R) -> CachingResolver<R> {
        CachingResolver::with_ttl(inner, TTL)
    }

    /// Keeps `inner`'s answers for `ttl`.
    pub fn with_ttl(inner: R, ttl: Duration) -> CachingResolver<R> {
        CachingResolver {
            inner,
            ttl,
            entries: Mutex::new(Vec::new()),
        }
    }

    /// [`Resolver::resolve`] as of `now`.
    fn resolve_at(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
        now: Instant,
    ) -> Result<ResolvedSocketAddrs, Error> {
        let scheme = uri.scheme_str().unwrap_or_default();
        let authority = uri.authority().map_or("", |a| a.as_str());
        if let Some(addrs) = self.fresh(scheme, authority, now) {
            return Ok(addrs);
        }
        // Looked up outside the lock: a slow lookup holds up no call that has its answer.
        let addrs = self.inner.resolve(uri, config, timeout)?;
        self.keep(scheme, authority, now, &addrs);
        Ok(addrs)
    }

    /// The kept addresses for `scheme` and `authority`, if looked up less than the TTL ago.
    fn fresh(&self, scheme: &str, authority: &str, now: Instant) -> Option<ResolvedSocketAddrs> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .find(|e| e.scheme == scheme && e.authority == authority)
            .filter(|e| now.saturating_duration_since(e.resolved_at) < self.ttl)
            .map(|e| e.addrs.clone())
    }

    /// Replaces the entry for `scheme` and `authority` (the oldest one goes when full).
    fn keep(&self, scheme: &str, authority: &str, now: Instant, addrs: &ResolvedSocketAddrs) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|e| !(e.scheme == scheme && e.authority == authority));
        if entries.len() >= MAX_HOSTS
            && let Some(oldest) = (0..entries.len()).min_by_key(|&i| entries[i].resolved_at)
        {
            entries.swap_remove(oldest);
        }
        entries.push(Entry {
            scheme: scheme.to_owned(),
            authority: authority.to_owned(),
            resolved_at: now,
            addrs: addrs.clone(),
        });
    }
}

impl<R: Resolver> Resolver for CachingResolver<R> {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, Error> {
        self.resolve_at(uri, config, timeout, Instant::now())
    }
}

impl<R> fmt::Debug for CachingResolver<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachingResolver")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Answers 10.0.0.<n> for its n-th lookup, or fails while `failing` is set.
    #[derive(Debug, Default)]
    struct Counting {
        lookups: AtomicUsize,
        failing: std::sync::atomic::AtomicBool,
    }

    impl Resolver for Counting {
        fn resolve(
            &self,
            _uri: &Uri,
            _config: &Config,
            _timeout: NextTimeout,
        ) -> Result<ResolvedSocketAddrs, Error> {
            let n = self.lookups.fetch_add(1, Ordering::SeqCst) + 1;
            if self.failing.load(Ordering::SeqCst) {
                return Err(Error::HostNotFound);
            }
            let mut addrs = self.empty();
            let last = u8::try_from(n).unwrap_or(u8::MAX);
            addrs.push(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)),
                443,
            ));
            Ok(addrs)
        }
    }

    fn first(addrs: &ResolvedSocketAddrs) -> SocketAddr {
        *addrs.iter().next().expect("one address")
    }

    fn lookup(
        resolver: &CachingResolver<Counting>,
        uri: &str,
        at: Instant,
    ) -> Result<SocketAddr, Error> {
        let uri: Uri = uri.parse().expect("uri");
        let config = Config::default();
        resolver
            .resolve_at(&uri, &config, NextTimeout::default(), at)
            .map(|addrs| first(&addrs))
    }

    fn lookups(resolver: &CachingResolver<Counting>) -> usize {
        resolver.inner.lookups.load(Ordering::SeqCst)
    }

    #[test]
    fn a_host_is_looked_up_once_within_the_ttl_and_again_after_it() {
        let resolver = CachingResolver::with_ttl(Counting::default(), Duration::from_secs(30));
        let t0 = Instant::now();
        let url = "https://chatgpt.com/backend-api/codex/responses";
        let a = lookup(&resolver, url, t0).unwrap();
        let b = lookup(&resolver, url, t0 + Duration::from_secs(29)).unwrap();
        assert_eq!((a, b, lookups(&resolver)), (a, a, 1));
        let c = lookup(&resolver, url, t0 + Duration::from_secs(30)).unwrap();
        assert_eq!(lookups(&resolver), 2);
        assert_ne!(c, a, "a stale answer was used");
    }

    #[test]
    fn hosts_ports_and_schemes_are_kept_apart() {
        let resolver = CachingResolver::new(Counting::default());
        let t0 = Instant::now();
        for url in [
            "https://chatgpt.com/a",
            "https://auth.openai.com/oauth/token",
            "https://chatgpt.com:8443/a",
            "http://chatgpt.com/a",
        ] {
            lookup(&resolver, url, t0).unwrap();
        }
        assert_eq!(lookups(&resolver), 4);
        lookup(&resolver, "https://chatgpt.com/other/path", t0).unwrap();
        assert_eq!(lookups(&resolver), 4, "the path is not part of the key");
    }

    #[test]
    fn a_failed_lookup_is_not_kept() {
        let resolver = CachingResolver::new(Counting::default());
        let t0 = Instant::now();
        resolver.inner.failing.store(true, Ordering::SeqCst);
        assert!(lookup(&resolver, "https://chatgpt.com/a", t0).is_err());
        resolver.inner.failing.store(false, Ordering::SeqCst);
        lookup(&resolver, "https://chatgpt.com/a", t0).unwrap();
        lookup(&resolver, "https://chatgpt.com/a", t0).unwrap();
        assert_eq!(lookups(&resolver), 2);
    }

    #[test]
    fn the_cache_holds_a_bounded_number_of_hosts() {
        let resolver = CachingResolver::new(Counting::default());
        let t0 = Instant::now();
        for i in 0..(MAX_HOSTS + 5) {
            let at = t0 + Duration::from_millis(u64::try_from(i).unwrap());
            lookup(&resolver, &format!("https://h{i}.example/"), at).unwrap();
        }
        let kept = resolver.entries.lock().unwrap().len();
        assert_eq!(kept, MAX_HOSTS);
        // The newest host is still kept; the first (oldest) is gone.
        let now = t0 + Duration::from_secs(1);
        let before = lookups(&resolver);
        lookup(
            &resolver,
            &format!("https://h{}.example/", MAX_HOSTS + 4),
            now,
        )
        .unwrap();
        assert_eq!(lookups(&resolver), before);
        lookup(&resolver, "https://h0.example/", now).unwrap();
        assert_eq!(lookups(&resolver), before + 1);
    }
}
