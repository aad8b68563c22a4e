//! A small keyed cache for what identity providers publish (discovery documents, key sets):
//! - a value is used for `ttl` after it was fetched;
//! - concurrent misses for one key are coalesced: one fetch in flight (its own task, so a caller going away
//!   does not stall it), every waiter gets its result;
//! - when a refetch fails, the old value is served for up to `stale_limit` past its `ttl` (with a warning),
//!   and the failed fetch is not retried for `min_refetch` (so a down provider costs one timeout per interval,
//!   not one per sign-in);
//! - a forced refetch (an unknown `kid`, OpenID Connect Core §10.1.1) happens at most once per `min_refetch`
//!   per key; within that interval the current value is returned as is.
//!
//! Keys are the URLs fetched; they come from the administrator's configuration, so the map stays small.

use super::error::IdpError;
use super::settings::Ticker;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

type SharedFetch<T> = Shared<BoxFuture<'static, Result<Arc<T>, IdpError>>>;

/// Lifetimes of a [`Cache`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    pub(crate) ttl: Duration,
    pub(crate) stale_limit: Duration,
    pub(crate) min_refetch: Duration,
}

/// The cache (shared behind an [`Arc`]: the fetch in flight holds it).
pub(crate) struct Cache<T> {
    slots: Mutex<HashMap<String, Slot<T>>>,
    policy: Policy,
    ticker: Arc<dyn Ticker>,
    what: &'static str,
}

struct Slot<T> {
    value: Option<(Arc<T>, Instant)>,
    in_flight: Option<SharedFetch<T>>,
    last_attempt: Option<Instant>,
    /// When the last refetch forced by the caller (an unknown `kid`) started: forced refetches are spaced by
    /// `min_refetch` among themselves, so a key rotated just after an ordinary fetch is still picked up at once.
    last_forced: Option<Instant>,
    last_failure: Option<Instant>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self {
            value: None,
            in_flight: None,
            last_attempt: None,
            last_forced: None,
            last_failure: None,
        }
    }
}

enum Decision<T> {
    Use(Arc<T>),
    Join(SharedFetch<T>),
    Fetch,
}

impl<T: Send + Sync + 'static> Cache<T> {
    /// An empty cache; `what` names the values in log lines ("discovery document", "key set").
    pub(crate) fn new(policy: Policy, ticker: Arc<dyn Ticker>, what: &'static str) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            policy,
            ticker,
            what,
        }
    }

    /// The value for `key`: cached, joined with the fetch in flight, or fetched with `fetch` (see the module
    /// documentation; `force` asks for a refetch, honoured at most once per `min_refetch`).
    pub(crate) async fn get<F, Fut>(
        self: &Arc<Self>,
        key: &str,
        force: bool,
        fetch: F,
    ) -> Result<Arc<T>, IdpError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, IdpError>> + Send + 'static,
    {
        let shared = {
            let mut slots = self.lock();
            let now = self.ticker.now();
            let slot = slots.entry(key.to_owned()).or_default();
            match self.decide(slot, now, force) {
                Decision::Use(value) => return Ok(value),
                Decision::Join(shared) => shared,
                Decision::Fetch => {
                    let shared = self.spawn_fetch(key, fetch());
                    slot.in_flight = Some(shared.clone());
                    slot.last_attempt = Some(now);
                    if force {
                        slot.last_forced = Some(now);
                    }
                    shared
                }
            }
        };
        shared.await
    }

    /// Runs the fetch as its own task, so it completes (and records its outcome) even when every caller
    /// waiting for it goes away (a browser closing mid sign-in); callers share its result.
    fn spawn_fetch<Fut>(self: &Arc<Self>, key: &str, fut: Fut) -> SharedFetch<T>
    where
        Fut: Future<Output = Result<T, IdpError>> + Send + 'static,
    {
        let cache = Arc::clone(self);
        let owned_key = key.to_owned();
        let task = tokio::spawn(async move {
            let result = fut.await;
            cache.finish(&owned_key, result)
        });
        let cache = Arc::clone(self);
        let owned_key = key.to_owned();
        async move {
            match task.await {
                Ok(result) => result,
                Err(_) => {
                    // The fetch panicked: forget it so the next call starts afresh.
                    cache.lock().entry(owned_key).or_default().in_flight = None;
                    Err(IdpError::BadResponse {
                        status: 0,
                        reason: "the fetch failed unexpectedly".into(),
                    })
                }
            }
        }
        .boxed()
        .shared()
    }

    fn decide(&self, slot: &Slot<T>, now: Instant, force: bool) -> Decision<T> {
        if let Some(shared) = &slot.in_flight {
            return Decision::Join(shared.clone());
        }
        let within = |t: Option<Instant>, d: Duration| {
            t.is_some_and(|t| now.saturating_duration_since(t) < d)
        };
        let Some((value, fetched_at)) = &slot.value else {
            return Decision::Fetch;
        };
        let age = now.saturating_duration_since(*fetched_at);
        let recently_forced = within(slot.last_forced, self.policy.min_refetch);
        if age < self.policy.ttl {
            if !force || recently_forced {
                return Decision::Use(Arc::clone(value));
            }
            return Decision::Fetch;
        }
        let servable = age < self.policy.ttl + self.policy.stale_limit;
        if servable && within(slot.last_failure, self.policy.min_refetch) {
            return Decision::Use(Arc::clone(value));
        }
        Decision::Fetch
    }

    /// Records the outcome of a fetch and answers every waiter.
    fn finish(&self, key: &str, result: Result<T, IdpError>) -> Result<Arc<T>, IdpError> {
        let mut slots = self.lock();
        let now = self.ticker.now();
        let slot = slots.entry(key.to_owned()).or_default();
        slot.in_flight = None;
        match result {
            Ok(value) => {
                let value = Arc::new(value);
                slot.value = Some((Arc::clone(&value), now));
                slot.last_failure = None;
                Ok(value)
            }
            Err(e) => {
                slot.last_failure = Some(now);
                let limit = self.policy.ttl + self.policy.stale_limit;
                match &slot.value {
                    Some((value, at)) if now.saturating_duration_since(*at) < limit => {
                        tracing::warn!(
                            url = %key,
                            error = %e,
                            code = e.code(),
                            age_secs = now.saturating_duration_since(*at).as_secs(),
                            "cannot refresh the identity provider's {}; using the cached copy",
                            self.what
                        );
                        Ok(Arc::clone(value))
                    }
                    _ => Err(e),
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Slot<T>>> {
        // A poisoned lock only means a panic elsewhere mid-update of a plain map; the map is still usable.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::outbound::idp::settings::ManualTicker;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn cache(ticker: &Arc<ManualTicker>) -> Arc<Cache<u32>> {
        let policy = Policy {
            ttl: Duration::from_secs(3600),
            stale_limit: Duration::from_secs(24 * 3600),
            min_refetch: Duration::from_secs(30),
        };
        Arc::new(Cache::new(policy, ticker.clone(), "test value"))
    }

    async fn get(
        c: &Arc<Cache<u32>>,
        hits: &Arc<AtomicUsize>,
        force: bool,
        ok: bool,
    ) -> Result<u32, IdpError> {
        let hits = hits.clone();
        c.get("k", force, move || async move {
            let n = hits.fetch_add(1, Ordering::SeqCst) as u32 + 1;
            if ok {
                Ok(n)
            } else {
                Err(IdpError::Unreachable { host: "idp".into() })
            }
        })
        .await
        .map(|v| *v)
    }

    #[tokio::test]
    async fn ttl_stale_and_forced_refetch() {
        let t = Arc::new(ManualTicker::default());
        let c = cache(&t);
        let hits = Arc::new(AtomicUsize::new(0));
        assert_eq!(get(&c, &hits, false, true).await, Ok(1));
        assert_eq!(get(&c, &hits, false, true).await, Ok(1), "cached");
        assert_eq!(
            get(&c, &hits, true, true).await,
            Ok(2),
            "a forced refetch right after an ordinary fetch (a key rotated just then)"
        );
        assert_eq!(get(&c, &hits, true, true).await, Ok(2), "once per 30 s");
        t.advance(Duration::from_secs(31));
        assert_eq!(get(&c, &hits, true, true).await, Ok(3), "forced after 30 s");
        assert_eq!(get(&c, &hits, true, true).await, Ok(3), "once per 30 s");
        t.advance(Duration::from_secs(3601));
        assert_eq!(
            get(&c, &hits, false, false).await,
            Ok(3),
            "stale while down"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 4);
        assert_eq!(
            get(&c, &hits, false, false).await,
            Ok(3),
            "no retry right after a failure"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 4);
        t.advance(Duration::from_secs(31));
        assert_eq!(get(&c, &hits, false, true).await, Ok(5), "recovered");
        t.advance(Duration::from_secs(3600 + 24 * 3600));
        assert!(get(&c, &hits, false, false).await.is_err(), "too stale");
    }
}
