//! A short-lived cache of registered clients for client authentication at the token and revocation endpoints,
//! the hottest reads of the authorization server (every refresh authenticates its client first).
//!
//! Why a cached record is safe to use for [`CLIENT_CACHE_TTL`] seconds:
//! - a registration is never modified after it is stored (there is no update or secret rotation), so a cached
//!   record is the stored record;
//! - the only change is deletion (`portcullis clients remove`, or the reaping of dead registrations,
//!   [`crate::client_reaping`]),
//!   perhaps by another process. A deleted client may then still authenticate on an instance that cached it,
//!   until the entry expires, but it can obtain nothing: the deletion removes its codes and grants in the same
//!   transaction, so every grant it presents is `invalid_grant`;
//! - only found clients are cached: a client registered a moment ago is read from storage, never answered
//!   "unknown" from a stale miss;
//! - the authorization endpoint (`Registrations::client`) does not use it: a deleted client can never start a flow.
//!
//! Clients identified by a URL (Client ID Metadata Documents) are not cached here: their documents have their
//! own cache, which follows the document's `Cache-Control`.

use crate::registration::RegisteredClient;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Seconds a cached client is used before it is read again.
pub const CLIENT_CACHE_TTL: i64 = 10;

/// Clients kept at most; when full, expired entries are dropped, then an arbitrary one.
const CAPACITY: usize = 4096;

/// The cache: client id → (client, time it was read).
#[derive(Debug, Default)]
pub(crate) struct ClientCache {
    map: RwLock<HashMap<String, (Arc<RegisteredClient>, i64)>>,
}

impl ClientCache {
    /// The client cached for `client_id` if it was read less than [`CLIENT_CACHE_TTL`] seconds before `now`.
    pub(crate) fn get(&self, client_id: &str, now: i64) -> Option<Arc<RegisteredClient>> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        match map.get(client_id) {
            Some((c, read_at)) if fresh(*read_at, now) => Some(c.clone()),
            _ => None,
        }
    }

    /// Caches `client`, read at `now`.
    pub(crate) fn insert(&self, client: Arc<RegisteredClient>, now: i64) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CAPACITY && !map.contains_key(&client.client_id) {
            map.retain(|_, (_, read_at)| fresh(*read_at, now));
            if map.len() >= CAPACITY {
                if let Some(victim) = map.keys().next().cloned() {
                    map.remove(&victim);
                }
            }
        }
        map.insert(client.client_id.clone(), (client, now));
    }

    /// Forgets `client_id` (after this process deleted it).
    pub(crate) fn remove(&self, client_id: &str) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(client_id);
    }
}

fn fresh(read_at: i64, now: i64) -> bool {
    // A clock that went backwards counts as stale too.
    (read_at..read_at + CLIENT_CACHE_TTL).contains(&now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{authz_with_clock, register_public};

    #[tokio::test]
    async fn token_endpoint_reads_a_client_once_per_ttl_and_never_caches_misses() {
        let (a, clock) = authz_with_clock().await;
        let id = register_public(&a).await;
        let creds = crate::client_auth::ClientCredentials::Public {
            client_id: id.clone(),
        };
        let first = a.registrations().authenticate_client(&creds).await.unwrap();
        let second = a.registrations().authenticate_client(&creds).await.unwrap();
        assert!(Arc::ptr_eq(&first, &second), "served from the cache");
        clock.advance(CLIENT_CACHE_TTL);
        let third = a.registrations().authenticate_client(&creds).await.unwrap();
        assert!(!Arc::ptr_eq(&first, &third), "read again after the TTL");

        let unknown = crate::client_auth::ClientCredentials::Public {
            client_id: "not-yet".into(),
        };
        assert!(a
            .registrations()
            .authenticate_client(&unknown)
            .await
            .is_err());
        assert!(a
            .registrations()
            .cache()
            .get("not-yet", a.core().now())
            .is_none());
    }

    #[test]
    fn bounded_and_expiring() {
        let c = ClientCache::default();
        let client = |id: &str| {
            let mut meta: crate::store::ClientRecord = crate::store::ClientRecord {
                client_id: id.into(),
                secret_hash: None,
                metadata_json: r#"{"redirect_uris":["http://localhost/cb"],"token_endpoint_auth_method":"none"}"#.into(),
                created_at: 0,
                origin: crate::store::ClientOrigin::Registered,
                introspection: None,
            };
            meta.client_id = id.into();
            Arc::new(RegisteredClient::from_record(&meta).unwrap())
        };
        for i in 0..CAPACITY + 10 {
            c.insert(client(&format!("c{i}")), 100);
        }
        assert!(c.map.read().unwrap().len() <= CAPACITY);
        assert!(
            c.get(&format!("c{}", CAPACITY + 9), 100).is_some(),
            "the newest is kept"
        );
        assert!(c
            .get(&format!("c{}", CAPACITY + 9), 100 + CLIENT_CACHE_TTL)
            .is_none());
        assert!(
            c.get(&format!("c{}", CAPACITY + 9), 99).is_none(),
            "clock went back"
        );
        c.remove(&format!("c{}", CAPACITY + 9));
        assert!(c.get(&format!("c{}", CAPACITY + 9), 100).is_none());
    }
}
