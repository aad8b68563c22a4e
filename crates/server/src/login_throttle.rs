//! The sign-in throttle (OWASP Authentication Cheat Sheet, "Login Throttling"; security notes "Login and consent
//! pages"): failed sign-ins are limited per (account, client address) — so guessing one account from one
//! address stops after [`PER_ACCOUNT_AND_ADDRESS`] failures, while its owner signing in from another address
//! is never refused for it — and per client address ([`PER_ADDRESS`], password spraying over many accounts).
//!
//! Each attempt is reserved before its password is checked: one atomic upsert in the database counts it and
//! returns the count ([`SharedRateLimiter::take`]), so parallel attempts cannot all pass a check made before
//! any of them was recorded, on one instance or across instances sharing the database. A good password clears
//! the (account, address) counter and gives back the address's event; an attempt whose password was not
//! checked (the checking pool was busy) gives back both.

use crate::limits::SharedRateLimiter;
use portcullis_authz::store::{RateLimitStore, StoreError};
use std::net::IpAddr;

/// Failed sign-ins per (account, client address) per window.
pub const PER_ACCOUNT_AND_ADDRESS: u32 = 10;
/// Failed sign-ins per client address per window, over all accounts.
pub const PER_ADDRESS: u32 = 50;
/// The window, seconds.
pub const WINDOW_SECS: i64 = 15 * 60;

/// The throttle's keys of one sign-in attempt.
#[derive(Debug, Clone)]
pub struct LoginKeys {
    pair: String,
    address: String,
}

impl LoginKeys {
    /// The keys of `username` signing in from `ip` (stored only as SHA-256 hashes).
    pub fn new(username: &str, ip: IpAddr) -> Self {
        Self {
            // The address first: it has no spaces, so no user name can make two pairs collide.
            pair: format!("login-pair:{ip} {username}"),
            address: format!("login-ip:{ip}"),
        }
    }
}

/// The two limits, counted in the database.
#[derive(Debug, Clone, Copy)]
pub struct LoginThrottle {
    per_pair: SharedRateLimiter,
    per_address: SharedRateLimiter,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            per_pair: SharedRateLimiter::new(PER_ACCOUNT_AND_ADDRESS, WINDOW_SECS),
            per_address: SharedRateLimiter::new(PER_ADDRESS, WINDOW_SECS),
        }
    }
}

impl LoginThrottle {
    /// Reserves an attempt at `now`: `None` if it may check the password, else the seconds to wait. A refused
    /// attempt holds no reservation of the limit it did not reach.
    pub async fn reserve(
        &self,
        store: &dyn RateLimitStore,
        keys: &LoginKeys,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        if let Some(wait) = self.per_pair.take(store, &keys.pair, now).await? {
            return Ok(Some(wait));
        }
        match self.per_address.take(store, &keys.address, now).await {
            Ok(None) => Ok(None),
            other => {
                self.per_pair.refund(store, &keys.pair, now).await?;
                other
            }
        }
    }

    /// Settles an attempt reserved at `now` once its password was checked (`Some(matched)`) or not (`None`):
    /// [`LoginThrottle::succeeded`], nothing (the failure stays counted) or [`LoginThrottle::release`].
    pub async fn settle(
        &self,
        store: &dyn RateLimitStore,
        keys: &LoginKeys,
        now: i64,
        matched: Option<bool>,
    ) -> Result<(), StoreError> {
        match matched {
            Some(true) => self.succeeded(store, keys, now).await,
            Some(false) => Ok(()),
            None => self.release(store, keys, now).await,
        }
    }

    /// After a good password (reserved at `now`): the pair's failures are forgotten, the address's event given
    /// back.
    pub async fn succeeded(
        &self,
        store: &dyn RateLimitStore,
        keys: &LoginKeys,
        now: i64,
    ) -> Result<(), StoreError> {
        self.per_pair.clear(store, &keys.pair).await?;
        self.per_address.refund(store, &keys.address, now).await
    }

    /// The password of an attempt reserved at `now` was not checked: both events are given back.
    pub async fn release(
        &self,
        store: &dyn RateLimitStore,
        keys: &LoginKeys,
        now: i64,
    ) -> Result<(), StoreError> {
        self.per_pair.refund(store, &keys.pair, now).await?;
        self.per_address.refund(store, &keys.address, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_authz::store::Storage;
    use std::sync::Arc;

    const NOW: i64 = 1_000 * WINDOW_SECS;

    async fn store() -> (tempfile::TempDir, Arc<dyn Storage>) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = portcullis_store::open(&url, &portcullis_store::StoreOptions::default())
            .await
            .unwrap();
        (dir, store)
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[tokio::test]
    async fn parallel_attempts_reserve_at_most_the_limit() {
        let (_dir, store) = store().await;
        let keys = LoginKeys::new("alice", ip(1));
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (store, keys) = (store.clone(), keys.clone());
                tokio::spawn(async move {
                    LoginThrottle::default()
                        .reserve(store.as_ref(), &keys, NOW)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut admitted = 0;
        for t in tasks {
            if t.await.unwrap().is_none() {
                admitted += 1;
            }
        }
        assert_eq!(admitted, PER_ACCOUNT_AND_ADDRESS);
        let throttle = LoginThrottle::default();
        // The same account from another address, and another account from the first, still may try.
        let owner = LoginKeys::new("alice", ip(2));
        assert_eq!(
            throttle.reserve(store.as_ref(), &owner, NOW).await,
            Ok(None)
        );
        let bob = LoginKeys::new("bob", ip(1));
        assert_eq!(throttle.reserve(store.as_ref(), &bob, NOW).await, Ok(None));
        // Blocked until the window ends.
        assert_eq!(
            throttle.reserve(store.as_ref(), &keys, NOW + 60).await,
            Ok(Some(WINDOW_SECS - 60))
        );
        assert_eq!(
            throttle
                .reserve(store.as_ref(), &keys, NOW + WINDOW_SECS)
                .await,
            Ok(None)
        );
    }

    #[tokio::test]
    async fn success_clears_the_pair_and_release_gives_both_back() {
        let (_dir, store) = store().await;
        let store = store.as_ref();
        let throttle = LoginThrottle::default();
        let keys = LoginKeys::new("alice", ip(1));
        for _ in 0..PER_ACCOUNT_AND_ADDRESS - 1 {
            assert_eq!(throttle.reserve(store, &keys, NOW).await, Ok(None));
        }
        assert_eq!(throttle.reserve(store, &keys, NOW).await, Ok(None));
        throttle.release(store, &keys, NOW).await.unwrap();
        assert_eq!(
            throttle.reserve(store, &keys, NOW).await,
            Ok(None),
            "released"
        );
        throttle.succeeded(store, &keys, NOW).await.unwrap();
        for _ in 0..PER_ACCOUNT_AND_ADDRESS {
            assert_eq!(
                throttle.reserve(store, &keys, NOW).await,
                Ok(None),
                "cleared"
            );
        }
        // Spraying from one address: PER_ADDRESS failures over many accounts, then 429 for any account.
        let mut refused = 0;
        for i in 0..PER_ADDRESS {
            let k = LoginKeys::new(&format!("user{i}"), ip(1));
            if throttle.reserve(store, &k, NOW).await.unwrap().is_some() {
                refused += 1;
            }
        }
        // The address held 19 events (10 + 10 reserved, one given back by the success): 31 more pass.
        assert_eq!(refused, 19, "the address is at its limit");
        let other = LoginKeys::new("someone", ip(1));
        assert!(throttle
            .reserve(store, &other, NOW)
            .await
            .unwrap()
            .is_some());
    }
}
