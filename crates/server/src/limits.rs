//! Rate limits in fixed windows (OWASP Authentication Cheat Sheet: throttle per account and per IP, answer with
//! `Retry-After`), counted in the database so they hold across instances: [`SharedRateLimiter`] (sign-in
//! attempts, [`crate::login_throttle`]) and [`CountedLimiter`] (registrations, guesses, sign-in starts).

use portcullis_authz::secret::TokenHash;
use portcullis_authz::store::{RateLimitStore, StoreError};
use std::collections::HashMap;
use std::sync::Mutex;

/// Fixed-window limits counted in the database ([`RateLimitStore`]), so they hold across every instance that
/// shares it: a browser whose attempts land on different instances behind a load balancer meets one limit.
/// Windows are aligned to multiples of the window length; keys are stored only as SHA-256 hashes (they hold
/// user names and client addresses).
#[derive(Debug, Clone, Copy)]
pub struct SharedRateLimiter {
    limit: u32,
    window_secs: i64,
}

impl SharedRateLimiter {
    /// At most `limit` events per key per `window_secs` (at least one second).
    pub fn new(limit: u32, window_secs: i64) -> Self {
        Self {
            limit,
            window_secs: window_secs.max(1),
        }
    }

    fn window_start(&self, now: i64) -> i64 {
        now - now.rem_euclid(self.window_secs)
    }

    fn stored_key(key: &str) -> String {
        TokenHash::of(key).as_str().to_owned()
    }

    /// Forgets `key` (after a successful login).
    pub async fn clear(&self, store: &dyn RateLimitStore, key: &str) -> Result<(), StoreError> {
        store.clear_hits(&Self::stored_key(key)).await
    }

    /// Reserves one event for `key` at `now` before the work it limits: counted first, in one atomic upsert,
    /// so of any number of concurrent callers at most `limit` per window get `None`; the others get the
    /// seconds until the window ends (their event is counted too, and stays counted).
    pub async fn take(
        &self,
        store: &dyn RateLimitStore,
        key: &str,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let start = self.window_start(now);
        let until = start + self.window_secs;
        let n = store.hit(&Self::stored_key(key), start, until).await?;
        Ok((n > self.limit).then(|| (until - now).max(1)))
    }

    /// Gives back an event [`SharedRateLimiter::take`] reserved at `now` (the same `now`, so the same window)
    /// when the work was not done.
    pub async fn refund(
        &self,
        store: &dyn RateLimitStore,
        key: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        store
            .release_hit(&Self::stored_key(key), self.window_start(now))
            .await
    }
}

/// A limit counted in the database (so it holds across instances) whose refusals cost no round trip: each
/// instance remembers, in memory, the keys the database refused.
///
/// [`CountedLimiter::reserve`] takes a place in one conditional upsert ([`RateLimitStore::reserve_hit`]), so
/// parallel callers on any number of instances never get more than the limit between them. Registrations
/// reserve before the work and [`CountedLimiter::release`] the place when the registration fails (a request
/// cancelled mid-way keeps its place: the count errs on the side of refusing); guesses at `/token`,
/// `/introspect` and `/revoke` reserve only once they failed, and a failure without a place is answered 429
/// ([`crate::guesses`]).
#[derive(Debug)]
pub struct CountedLimiter {
    /// Keeps this limiter's counters apart from every other limiter's in the shared table (the same client
    /// address is a key of several limits, and windows of different lengths can start at the same second).
    namespace: &'static str,
    shared: SharedRateLimiter,
    limit: u32,
    blocked_until: Mutex<HashMap<String, i64>>,
}

impl CountedLimiter {
    /// At most `limit` events per key per `window_secs`; `limit == 0` disables the limit. `namespace` must be
    /// unique per limiter.
    pub fn new(namespace: &'static str, limit: u32, window_secs: i64) -> Self {
        Self {
            namespace,
            shared: SharedRateLimiter::new(limit, window_secs),
            limit,
            blocked_until: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the limit is on.
    pub fn enabled(&self) -> bool {
        self.limit > 0
    }

    /// If `key` is known to be over its limit at `now`, the seconds until it may try again. No I/O.
    pub fn blocked(&self, key: &str, now: i64) -> Option<i64> {
        if !self.enabled() {
            return None;
        }
        let map = self.blocked_until.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .filter(|until| **until > now)
            .map(|until| until - now)
    }

    /// Takes a place for one event of `key` at `now` before the work, or the seconds to wait when the window is
    /// full (known in memory, or refused by the database, which this instance then remembers).
    pub async fn reserve(
        &self,
        store: &dyn RateLimitStore,
        key: &str,
        now: i64,
    ) -> Result<Admission, StoreError> {
        if !self.enabled() {
            return Ok(Admission::Admitted(Reservation(None)));
        }
        if let Some(wait) = self.blocked(key, now) {
            return Ok(Admission::Refused(wait));
        }
        let window_start = self.shared.window_start(now);
        let until = window_start + self.shared.window_secs;
        let stored = self.stored_key(key);
        match store
            .reserve_hit(&stored, window_start, until, self.limit)
            .await?
        {
            Some(count) => {
                // The place just taken was the last one: later requests are refused without a round trip.
                if count >= self.limit {
                    self.remember_blocked(key, until, now);
                }
                Ok(Admission::Admitted(Reservation(Some(Place {
                    key: key.to_owned(),
                    stored,
                    window_start,
                }))))
            }
            None => {
                self.remember_blocked(key, until, now);
                Ok(Admission::Refused((until - now).max(1)))
            }
        }
    }

    /// Gives back a place whose outcome does not count. This instance forgets its refusal of the key (the
    /// window has room again); another instance that refused it meanwhile keeps refusing until the window ends.
    pub async fn release(
        &self,
        store: &dyn RateLimitStore,
        reservation: Reservation,
    ) -> Result<(), StoreError> {
        let Some(place) = reservation.0 else {
            return Ok(());
        };
        store.release_hit(&place.stored, place.window_start).await?;
        self.blocked_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&place.key);
        Ok(())
    }

    /// The database key of `key` in this limiter's namespace.
    fn stored_key(&self, key: &str) -> String {
        SharedRateLimiter::stored_key(&format!("{}:{key}", self.namespace))
    }

    /// Remembers that `key` is refused until `until`.
    fn remember_blocked(&self, key: &str, until: i64, now: i64) {
        let mut map = self.blocked_until.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, t| *t > now);
        }
        map.insert(key.to_owned(), until);
    }
}

/// The answer of [`CountedLimiter::reserve`].
#[derive(Debug)]
#[must_use]
pub enum Admission {
    /// A place is taken: do the work, then keep the place or [`CountedLimiter::release`] it.
    Admitted(Reservation),
    /// The window is full: the seconds until it ends (`Retry-After`).
    Refused(i64),
}

/// A place taken under a [`CountedLimiter`]; dropping it keeps the place (the event counts).
#[derive(Debug)]
pub struct Reservation(Option<Place>);

/// Where a reservation was counted (`None` in [`Reservation`] when the limit is off).
#[derive(Debug)]
struct Place {
    key: String,
    stored: String,
    window_start: i64,
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn limiters_sharing_a_key_count_apart() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("l.db").display());
        let store = portcullis_store::open(&url, &portcullis_store::StoreOptions::default())
            .await
            .unwrap();
        // Windows of 300 s and 3600 s both start at a whole hour: the counters must still be separate.
        let now: i64 = 500_000 * 3600; // a whole hour
        let a = CountedLimiter::new("a", 2, 300);
        let b = CountedLimiter::new("b", 2, 3600);
        let store = store.as_ref();
        let _ = a.reserve(store, "127.0.0.1", now).await.unwrap();
        let _ = b.reserve(store, "127.0.0.1", now).await.unwrap();
        let _ = a.reserve(store, "127.0.0.1", now).await.unwrap();
        assert!(matches!(
            a.reserve(store, "127.0.0.1", now).await.unwrap(),
            Admission::Refused(300)
        ));
        assert_eq!(a.blocked("127.0.0.1", now), Some(300));
        assert_eq!(
            b.blocked("127.0.0.1", now),
            None,
            "b counted only its own event"
        );
        assert!(
            matches!(
                b.reserve(store, "127.0.0.1", now).await.unwrap(),
                Admission::Admitted(_)
            ),
            "b has room for its second event"
        );
        assert_eq!(
            CountedLimiter::new("c", 0, 60).blocked("x", now),
            None,
            "0 disables"
        );
    }

    use super::*;

    fn admitted(a: Admission) -> Reservation {
        match a {
            Admission::Admitted(r) => r,
            Admission::Refused(wait) => panic!("refused for {wait} s"),
        }
    }

    #[tokio::test]
    async fn reservations_hold_the_limit_and_releases_free_a_place() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("r.db").display());
        let store = portcullis_store::open(&url, &portcullis_store::StoreOptions::default())
            .await
            .unwrap();
        let store = store.as_ref();
        let now: i64 = 500_000 * 3600;
        let l = CountedLimiter::new("r", 2, 300);
        let first = admitted(l.reserve(store, "ip", now).await.unwrap());
        let _second = admitted(l.reserve(store, "ip", now).await.unwrap());
        assert!(matches!(
            l.reserve(store, "ip", now + 10).await.unwrap(),
            Admission::Refused(290)
        ));
        assert_eq!(l.blocked("ip", now + 10), Some(290), "remembered");
        l.release(store, first).await.unwrap();
        assert_eq!(
            l.blocked("ip", now + 10),
            None,
            "a released place is free again"
        );
        let _third = admitted(l.reserve(store, "ip", now + 10).await.unwrap());
        assert!(matches!(
            l.reserve(store, "ip", now + 10).await.unwrap(),
            Admission::Refused(_)
        ));
        assert!(
            matches!(
                l.reserve(store, "other", now).await.unwrap(),
                Admission::Admitted(_)
            ),
            "keys count apart"
        );
        let off = CountedLimiter::new("off", 0, 300);
        for _ in 0..5 {
            let r = admitted(off.reserve(store, "ip", now).await.unwrap());
            off.release(store, r).await.unwrap();
        }
    }
}
