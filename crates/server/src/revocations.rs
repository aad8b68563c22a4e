//! The revocation set the MCP endpoint honours: revoked access tokens (`jti`) and revoked grants (`sid`), read
//! incrementally from the database's revocation log. Every instance syncs every `revocation_sync_ms`
//! (default 1 s) and immediately after its own revocations, so a revoked token stops working everywhere within
//! that bound. Entries are dropped once the tokens they name have expired.

use portcullis_authz::store::{GrantStore, RevokedKind, StoreError};
use std::collections::HashMap;
use std::sync::RwLock;
use tokio::sync::{Mutex, Notify};

#[derive(Debug, Default)]
struct Inner {
    jtis: HashMap<String, i64>,
    grants: HashMap<String, i64>,
    last_seq: i64,
}

/// Revoked `jti`s and grant ids, with expiry.
#[derive(Debug, Default)]
pub struct Revocations {
    inner: RwLock<Inner>,
    sync_lock: Mutex<()>,
    wake: Notify,
}

impl Revocations {
    /// Whether a token with this `jti` and grant id is revoked.
    pub fn is_revoked(&self, jti: &str, grant: Option<&str>) -> bool {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.jtis.contains_key(jti) || grant.is_some_and(|g| inner.grants.contains_key(g))
    }

    /// Reads new revocations from storage and forgets expired ones.
    pub async fn sync(&self, store: &dyn GrantStore, now: i64) -> Result<(), StoreError> {
        let _one_at_a_time = self.sync_lock.lock().await;
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
        inner.jtis.retain(|_, exp| *exp > now);
        inner.grants.retain(|_, exp| *exp > now);
        Ok(())
    }

    /// Asks the background job to sync now.
    pub fn sync_soon(&self) {
        self.wake.notify_one();
    }

    /// Waits until `sync_soon` is called or `period` passes.
    pub async fn wait(&self, period: std::time::Duration) {
        let _ = tokio::time::timeout(period, self.wake.notified()).await;
    }
}
