//! The revocation set the MCP endpoint honours: revoked access tokens (`jti`) and revoked grants (the `grant_id` claim), read
//! incrementally from the database's revocation log. Every instance syncs immediately after its own
//! revocations, as soon as another instance's revocation is pushed to it ([`crate::revocation_push`]:
//! PostgreSQL `LISTEN`/`NOTIFY`, within 100 ms p99 on the benchmark machine), and every `revocation_sync_ms`
//! (default 1 s) whatever the push does, so a revoked token stops working everywhere within that bound even
//! while the push channel is down. Entries are dropped once the tokens they name have expired.
//!
//! Concurrent syncs coalesce: a caller that needs "every revocation committed before now" waits for the sync in
//! progress and then skips its own if a sync that *started* after its request already finished (that sync's read
//! saw everything committed before it began). Under a burst of revocations one database read serves many.

use portcullis_authz::store::{GrantStore, RevokedKind, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use tokio::sync::{Mutex, Notify};

#[derive(Debug, Default)]
struct Inner {
    jtis: HashMap<String, i64>,
    grants: HashMap<String, i64>,
    last_seq: i64,
    /// When expired entries were last dropped.
    pruned_at: i64,
}

/// Revoked `jti`s and grant ids, with expiry.
#[derive(Debug, Default)]
pub struct Revocations {
    inner: RwLock<Inner>,
    sync_lock: Mutex<()>,
    /// Syncs started so far (incremented under `sync_lock`, before reading the store).
    started: AtomicU64,
    /// The number of the last sync that finished.
    finished: AtomicU64,
    wake: Notify,
}

impl portcullis_guard::RevocationCheck for Revocations {
    fn is_revoked(&self, jti: &str, grant_id: Option<&str>) -> bool {
        Revocations::is_revoked(self, jti, grant_id)
    }
}

impl Revocations {
    /// Whether a token with this `jti` and grant id is revoked.
    pub fn is_revoked(&self, jti: &str, grant: Option<&str>) -> bool {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.jtis.contains_key(jti) || grant.is_some_and(|g| inner.grants.contains_key(g))
    }

    /// Reads new revocations from storage and forgets expired ones.
    pub async fn sync(&self, store: &dyn GrantStore, now: i64) -> Result<(), StoreError> {
        // Any sync numbered above `seen` starts after this point, so after everything the caller committed.
        let seen = self.started.load(Ordering::Acquire);
        let _one_at_a_time = self.sync_lock.lock().await;
        if self.finished.load(Ordering::Acquire) > seen {
            return Ok(());
        }
        let number = self.started.fetch_add(1, Ordering::AcqRel) + 1;
        let after = self
            .inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .last_seq;
        let new = store.revocations_since(after, now).await?;
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        for r in new {
            inner.last_seq = inner.last_seq.max(r.seq);
            match r.kind {
                RevokedKind::AccessToken => inner.jtis.insert(r.value, r.expires_at),
                RevokedKind::Grant => inner.grants.insert(r.value, r.expires_at),
            };
        }
        // Dropping expired entries walks both maps: once a second is enough (an expired token is refused by
        // its `exp` anyway).
        if now > inner.pruned_at {
            inner.jtis.retain(|_, exp| *exp > now);
            inner.grants.retain(|_, exp| *exp > now);
            inner.pruned_at = now;
        }
        drop(inner);
        self.finished.store(number, Ordering::Release);
        Ok(())
    }

    /// Records a revoked grant without storage (unit tests of the guard).
    #[cfg(test)]
    pub(crate) fn insert_revoked_grant(&self, grant_id: &str, expires_at: i64) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.grants.insert(grant_id.to_owned(), expires_at);
    }

    /// Asks the background job to sync now. Calls while a sync is waiting or running coalesce: the wake-up
    /// holds at most one pending permit.
    pub fn sync_soon(&self) {
        self.wake.notify_one();
    }

    /// A pushed notice that the revocation feed has grown ([`crate::revocation_push`]): syncs soon, unless the
    /// notice names a sequence number this set has already read past (say, this instance's own revocation,
    /// read before `/revoke` answered). The number is only ever used to skip that read, so a wrong one costs
    /// one read or one poll interval, never a revocation.
    pub fn notice(&self, seq: Option<i64>) {
        let last = self
            .inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .last_seq;
        if seq.is_none_or(|seq| seq > last) {
            self.sync_soon();
        }
    }

    /// Waits until `sync_soon` is called or `period` passes.
    pub async fn wait(&self, period: std::time::Duration) {
        let _ = tokio::time::timeout(period, self.wake.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use portcullis_store::StoreOptions;
    use std::sync::Arc;

    /// Coalescing must never let a caller return before a sync that saw its own revocation: every task checks
    /// its token is refused the moment `sync` returns, with 64 tasks racing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_sees_its_own_revocation_when_sync_returns() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("r.db").display());
        let store = portcullis_store::open(&url, &StoreOptions::default())
            .await
            .unwrap();
        let revocations = Arc::new(Revocations::default());
        let mut tasks = Vec::new();
        for i in 0..64 {
            let (store, revocations) = (store.clone(), revocations.clone());
            tasks.push(tokio::spawn(async move {
                let jti = format!("jti-{i}");
                store
                    .revoke_access_token(&jti, 4_000_000_000)
                    .await
                    .unwrap();
                revocations.sync(store.as_ref(), 1_000).await.unwrap();
                assert!(revocations.is_revoked(&jti, None), "{jti}");
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let syncs = revocations.started.load(Ordering::Relaxed);
        assert!((1..=64).contains(&syncs), "{syncs}");
        assert!(!revocations.is_revoked("never", None));
    }
}
