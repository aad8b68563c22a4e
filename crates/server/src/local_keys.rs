//! [`LocalKeys`]: the [`KeySource`] of `portcullis serve`, its own key ring (RFC 9068 §4 step 5 with the
//! issuer's keys at hand). A `kid` the ring lacks may be a key another instance (or `portcullis keys rotate`)
//! just created: the ring is reloaded from storage, at most once every [`RELOAD_INTERVAL`] seconds per
//! instance of this type, and concurrent misses wait for one reload instead of each starting one.
//!
//! The ring keeps a public key published until every token it signed has expired (`publish_until`, see
//! `portcullis_authz::keys`), so a cached verification never needs its `kid` re-checked.

use async_trait::async_trait;
use portcullis_authz::keys::Keys;
use portcullis_authz::{Authz, Clock};
use portcullis_guard::error::JwksError;
use portcullis_guard::{KeySource, VerifyingKey};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Mutex;

/// Least seconds between two reloads caused by unknown `kid`s.
pub const RELOAD_INTERVAL: i64 = 10;

/// The local key ring as a key source.
pub struct LocalKeys {
    /// The key service whose ring is looked up (and reloaded).
    keys: Arc<Keys>,
    /// The clock reloads are rate-limited by.
    clock: Arc<dyn Clock>,
    /// When the last reload caused by an unknown `kid` started; held while one runs.
    last_reload: Mutex<Option<i64>>,
    /// Reloads started so far (tests, metrics).
    reloads: AtomicU64,
}

impl std::fmt::Debug for LocalKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKeys")
            .field("reloads", &self.reloads())
            .finish_non_exhaustive()
    }
}

impl LocalKeys {
    /// The key ring of `authz` (its [`Keys`] service and clock).
    pub fn new(authz: &Authz) -> Self {
        Self {
            keys: authz.keys().clone(),
            clock: authz.core().clock().clone(),
            last_reload: Mutex::new(None),
            reloads: AtomicU64::new(0),
        }
    }

    /// Reloads started because of unknown `kid`s.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    fn lookup(&self, kid: &str) -> Option<VerifyingKey> {
        self.keys.ring().verifying_key(kid).copied()
    }
}

#[async_trait]
impl KeySource for LocalKeys {
    /// Never `Err`: the ring always holds the signing key; a failed reload is logged and the ring kept.
    async fn key(&self, kid: &str) -> Result<Option<VerifyingKey>, JwksError> {
        if let Some(k) = self.lookup(kid) {
            return Ok(Some(k));
        }
        // One reload at a time; a miss that waited here sees the reload it waited for.
        let mut last = self.last_reload.lock().await;
        if let Some(k) = self.lookup(kid) {
            return Ok(Some(k));
        }
        let now = self.clock.now();
        if last.is_none_or(|t| now - t >= RELOAD_INTERVAL) {
            *last = Some(now);
            self.reloads.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = self.keys.reload().await {
                tracing::warn!(error = %e, "key reload failed");
            }
        }
        Ok(self.lookup(kid))
    }

    async fn is_current(&self, _kid: &str) -> bool {
        true
    }

    fn keys_outlive_tokens(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use portcullis_authz::clock::FixedClock;
    use portcullis_authz::random::OsRandom;

    async fn two_instances() -> (tempfile::TempDir, Arc<FixedClock>, Arc<Authz>, Arc<Authz>) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("k.db").display());
        let store = portcullis_store::open(&url, &Default::default())
            .await
            .unwrap();
        let clock = Arc::new(FixedClock::new(1_000));
        let issuer = "http://127.0.0.1:1";
        let config = crate::config::ServerConfig::new(crate::config::parse_issuer(issuer).unwrap())
            .authz_config(issuer, "http://127.0.0.1:1/mcp");
        let a = Authz::new(
            store.clone(),
            clock.clone(),
            Arc::new(OsRandom),
            config.clone(),
        )
        .await
        .unwrap();
        let b = Authz::new(store, clock.clone(), Arc::new(OsRandom), config)
            .await
            .unwrap();
        (dir, clock, Arc::new(a), Arc::new(b))
    }

    #[tokio::test]
    async fn known_kid_unknown_kid_reload_and_rate_limit() {
        let (_dir, clock, a, b) = two_instances().await;
        let keys = LocalKeys::new(&a);
        let kid = a.keys().ring().active_kid().to_owned();
        assert!(keys.key(&kid).await.unwrap().is_some());
        assert!(keys.is_current(&kid).await && keys.keys_outlive_tokens());
        assert_eq!(keys.reloads(), 0, "a known kid reloads nothing");
        // Another instance rotates: the first miss reloads from storage and finds the new key.
        let new = b.keys().rotate().await.unwrap();
        assert!(keys.key(&new).await.unwrap().is_some());
        assert_eq!(keys.reloads(), 1);
        // Unknown kids within the interval: no reload.
        for _ in 0..3 {
            assert_eq!(keys.key("forged").await.unwrap(), None);
        }
        assert_eq!(keys.reloads(), 1);
        let newer = b.keys().rotate().await.unwrap();
        clock.advance(RELOAD_INTERVAL - 1);
        assert_eq!(keys.key(&newer).await.unwrap(), None, "rate-limited");
        clock.advance(1);
        assert!(keys.key(&newer).await.unwrap().is_some());
        assert_eq!(keys.reloads(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_misses_share_one_reload() {
        let (_dir, _clock, a, b) = two_instances().await;
        let keys = Arc::new(LocalKeys::new(&a));
        let new = b.keys().rotate().await.unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (keys, new) = (keys.clone(), new.clone());
                tokio::spawn(async move { keys.key(&new).await.unwrap().is_some() })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap());
        }
        assert_eq!(keys.reloads(), 1);
    }

    #[tokio::test]
    async fn separate_instances_keep_separate_rate_limits() {
        let (_dir, _clock, a, b) = two_instances().await;
        let (one, two) = (LocalKeys::new(&a), LocalKeys::new(&a));
        assert_eq!(one.key("forged").await.unwrap(), None);
        let new = b.keys().rotate().await.unwrap();
        // `one` is rate-limited; `two` is not (no process-global state).
        assert_eq!(one.key(&new).await.unwrap(), None);
        assert_eq!(one.reloads(), 1);
        assert!(two.key(&new).await.unwrap().is_some());
        assert_eq!(two.reloads(), 1);
    }
}
