//! Session pinning for gateway mode, stateless so that it holds across instances (MCP "Transports", Session
//! Management): the `Mcp-Session-Id` a client receives is the upstream's own id with a MAC appended,
//!
//! ```text
//! <upstream session id>.<base64url(HMAC-SHA256(K, resource, upstream id, sub, client_id))>
//! ```
//!
//! so any instance can check that a session id was handed out by this deployment, for this resource (gateway
//! route), to this subject and this client, with no table. The gateway strips the MAC before forwarding (the
//! upstream sees its own id) and appends one to every id the upstream returns. A missing, forged or tampered MAC,
//! or one made for another subject, client or resource, answers 404 before the upstream sees anything.
//!
//! The key `K` is derived from the signing keys in the database (HMAC-SHA256 of the private key with a label of
//! its own, so the MAC key says nothing about the signing key), so every instance on the database derives the same
//! keys and nothing new is stored. New ids are made with the active key; ids made with a retired key stay valid
//! while that key is still published (rotation grace), then the client gets 404 and initializes again, as the
//! transport specification says it must. An unknown MAC makes the instance re-read the keys (at most every 10 s),
//! so a rotation on another instance is picked up at once.
//!
//! Ids stay visible ASCII (0x21–0x7E, transport specification): the upstream's id must be, and the MAC is
//! base64url. The upstream decides whether a session still exists (a deleted or expired session gets the
//! upstream's 404).

use hmac::{Hmac, Mac};
use portcullis_authz::store::{KeyStore, StoreError};
use portcullis_guard::VerifiedToken;
use portcullis_proto::b64;
use sha2::Sha256;
use std::sync::{Arc, Mutex};

/// Keys are re-read at least this often, seconds (so new ids use a rotated key).
pub const RELOAD_SECS: i64 = 60;
/// An unknown MAC re-reads the keys at most this often, seconds.
pub const FORCED_RELOAD_SECS: i64 = 10;
/// Longest session id accepted from a client or an upstream, bytes.
pub const MAX_ID_LEN: usize = 512;

/// One MAC key, derived from one signing key.
#[derive(Clone)]
struct MacKey([u8; 32]);

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKey([redacted])")
    }
}

impl MacKey {
    /// Derives the session-id key from a signing key's private bytes (HMAC as a PRF, with its own label).
    fn derive(private_key: &[u8]) -> Self {
        let mut mac = new_mac(private_key);
        mac.update(b"portcullis gateway session id key v1");
        Self(mac.finalize().into_bytes().into())
    }

    /// The MAC of a session id, base64url.
    fn tag(&self, resource: &str, upstream_id: &str, p: &VerifiedToken) -> String {
        let mut mac = new_mac(&self.0);
        // Length-prefixed fields: no two different tuples share an input.
        for field in [
            "portcullis gateway session v1",
            resource,
            upstream_id,
            &p.claims.sub,
            &p.claims.client_id,
        ] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        b64::encode(mac.finalize().into_bytes())
    }
}

fn new_mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    #[allow(clippy::expect_used)]
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length")
}

/// Whether `id` may be a session id: 1..=[`MAX_ID_LEN`] visible ASCII characters.
pub fn is_visible_ascii(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Why a session id could not be made or checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The upstream's id is not visible ASCII (or too long).
    #[error("the upstream sent a session id that is not 1 to 512 visible ASCII characters")]
    BadUpstreamId,
    /// The keys could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database holds no signing key yet.
    #[error("no signing key to derive session keys from")]
    NoKey,
}

#[derive(Debug)]
struct Loaded {
    /// The active key's first.
    keys: Arc<Vec<MacKey>>,
    at: i64,
}

/// Makes and checks session ids; one per gateway route.
#[derive(Debug, Default)]
pub struct SessionIds {
    loaded: Mutex<Option<Loaded>>,
}

impl SessionIds {
    fn cached(&self) -> Option<(Arc<Vec<MacKey>>, i64)> {
        // A poisoned lock only means a panic elsewhere mid-update of a plain value; it is still usable.
        let guard = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(|l| (l.keys.clone(), l.at))
    }

    /// The keys: cached unless older than [`RELOAD_SECS`], or `force`d and older than [`FORCED_RELOAD_SECS`].
    /// A failed read keeps the cached keys.
    async fn keys(
        &self,
        store: &dyn KeyStore,
        now: i64,
        force: bool,
    ) -> Result<Arc<Vec<MacKey>>, SessionError> {
        let cached = self.cached();
        if let Some((keys, at)) = &cached {
            let age = now - at;
            if age < FORCED_RELOAD_SECS || (!force && age < RELOAD_SECS) {
                return Ok(keys.clone());
            }
        }
        let mut records = match store.signing_keys(now).await {
            Ok(r) => r,
            Err(e) => {
                return match cached {
                    Some((keys, _)) => {
                        tracing::warn!(error = %e, "cannot re-read the keys for session ids; using the cached ones");
                        Ok(keys)
                    }
                    None => Err(e.into()),
                };
            }
        };
        records.sort_by_key(|r| !r.active);
        let keys: Vec<MacKey> = records
            .iter()
            .map(|r| MacKey::derive(&r.private_key))
            .collect();
        if keys.is_empty() {
            return Err(SessionError::NoKey);
        }
        let keys = Arc::new(keys);
        *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) = Some(Loaded {
            keys: keys.clone(),
            at: now,
        });
        Ok(keys)
    }

    /// The id the client gets for the upstream's session `upstream_id`, opened by `p` at `resource`.
    pub async fn seal(
        &self,
        store: &dyn KeyStore,
        now: i64,
        resource: &str,
        upstream_id: &str,
        p: &VerifiedToken,
    ) -> Result<String, SessionError> {
        if !is_visible_ascii(upstream_id) {
            return Err(SessionError::BadUpstreamId);
        }
        let keys = self.keys(store, now, false).await?;
        let key = keys.first().ok_or(SessionError::NoKey)?;
        Ok(format!(
            "{upstream_id}.{}",
            key.tag(resource, upstream_id, p)
        ))
    }

    /// The upstream's session id inside `id`, if `id` was sealed for `p` at `resource`; `Ok(None)` otherwise.
    pub async fn open(
        &self,
        store: &dyn KeyStore,
        now: i64,
        resource: &str,
        id: &str,
        p: &VerifiedToken,
    ) -> Result<Option<String>, SessionError> {
        let Some((upstream_id, tag)) = id.rsplit_once('.') else {
            return Ok(None);
        };
        if !is_visible_ascii(id) || upstream_id.is_empty() {
            return Ok(None);
        }
        let check = |keys: &[MacKey]| {
            keys.iter()
                .any(|k| portcullis_authz::csrf::equal(&k.tag(resource, upstream_id, p), tag))
        };
        let keys = self.keys(store, now, false).await?;
        if check(&keys) {
            return Ok(Some(upstream_id.to_owned()));
        }
        // Maybe a key rotated on another instance: re-read (rate-limited) and try once more.
        let again = self.keys(store, now, true).await?;
        if !Arc::ptr_eq(&keys, &again) && check(&again) {
            return Ok(Some(upstream_id.to_owned()));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use portcullis_authz::store::SigningKeyRecord;

    fn principal(sub: &str, client: &str) -> VerifiedToken {
        crate::guard::test_principal(sub, client, "mcp:tools")
    }

    /// A key store holding `keys` (private key bytes, active flag).
    #[derive(Default)]
    struct Keys(Mutex<Vec<(Vec<u8>, bool)>>, std::sync::atomic::AtomicUsize);

    impl Keys {
        fn set(&self, keys: &[(&[u8], bool)]) {
            *self.0.lock().unwrap() = keys.iter().map(|(k, a)| (k.to_vec(), *a)).collect();
        }
        fn reads(&self) -> usize {
            self.1.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl KeyStore for Keys {
        async fn signing_keys(&self, _now: i64) -> Result<Vec<SigningKeyRecord>, StoreError> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(self
                .0
                .lock()
                .unwrap()
                .iter()
                .enumerate()
                .map(|(i, (k, active))| SigningKeyRecord {
                    kid: format!("k{i}"),
                    alg: "ES256".into(),
                    private_key: k.clone(),
                    public_jwk: String::new(),
                    created_at: 0,
                    active: *active,
                    publish_until: None,
                })
                .collect())
        }
        async fn insert_first_key(&self, _key: &SigningKeyRecord) -> Result<bool, StoreError> {
            Ok(false)
        }
        async fn rotate_key(&self, _key: &SigningKeyRecord, _until: i64) -> Result<(), StoreError> {
            Ok(())
        }
    }

    const R: &str = "http://127.0.0.1:1/mcp";

    #[tokio::test]
    async fn ids_are_bound_to_resource_subject_and_client() {
        let store = Keys::default();
        store.set(&[(b"key-one", true)]);
        let (a, b) = (SessionIds::default(), SessionIds::default());
        let alice = principal("alice", "c1");
        let id = a.seal(&store, 0, R, "sess-1", &alice).await.unwrap();
        assert!(id.starts_with("sess-1.") && is_visible_ascii(&id), "{id}");
        // Another instance (another SessionIds on the same keys) accepts it.
        assert_eq!(
            b.open(&store, 0, R, &id, &alice).await.unwrap().as_deref(),
            Some("sess-1")
        );
        for (who, resource) in [
            (principal("bob", "c1"), R),
            (principal("alice", "c2"), R),
            (alice.clone(), "http://127.0.0.1:1/other/mcp"),
        ] {
            assert_eq!(b.open(&store, 0, resource, &id, &who).await.unwrap(), None);
        }
        let tampered = id.replacen("sess-1", "sess-2", 1);
        for bad in ["sess-1", "sess-1.", ".x", "", &tampered, &format!("{id}x")] {
            assert_eq!(
                b.open(&store, 0, R, bad, &alice).await.unwrap(),
                None,
                "{bad}"
            );
        }
        // Upstream ids with dots survive the round trip; ids that are not visible ASCII are refused.
        let dotted = a.seal(&store, 0, R, "a.b.c", &alice).await.unwrap();
        assert_eq!(
            a.open(&store, 0, R, &dotted, &alice)
                .await
                .unwrap()
                .as_deref(),
            Some("a.b.c")
        );
        assert!(matches!(
            a.seal(&store, 0, R, "has space", &alice).await,
            Err(SessionError::BadUpstreamId)
        ));
    }

    #[tokio::test]
    async fn rotation_keeps_published_keys_and_is_picked_up() {
        let store = Keys::default();
        store.set(&[(b"key-one", true)]);
        let (a, b) = (SessionIds::default(), SessionIds::default());
        let alice = principal("alice", "c1");
        let old = a.seal(&store, 0, R, "s1", &alice).await.unwrap();
        assert!(b.open(&store, 0, R, &old, &alice).await.unwrap().is_some());
        // Rotated elsewhere: key-two active, key-one still published.
        store.set(&[(b"key-one", false), (b"key-two", true)]);
        // `a` still has key-one cached for a minute; after that it seals with key-two.
        let new = a.seal(&store, RELOAD_SECS, R, "s2", &alice).await.unwrap();
        let reads = store.reads();
        // `b` sees an unknown MAC and re-reads at once (its cache is older than the forced-reload bound).
        assert!(b
            .open(&store, FORCED_RELOAD_SECS, R, &new, &alice)
            .await
            .unwrap()
            .is_some());
        assert_eq!(store.reads(), reads + 1);
        assert!(b
            .open(&store, FORCED_RELOAD_SECS, R, &old, &alice)
            .await
            .unwrap()
            .is_some());
        // Once key-one is no longer published, its ids are refused.
        store.set(&[(b"key-two", true)]);
        assert!(b
            .open(&store, 1000, R, &old, &alice)
            .await
            .unwrap()
            .is_none());
        assert!(b
            .open(&store, 1000, R, &new, &alice)
            .await
            .unwrap()
            .is_some());
        // Forged ids re-read the keys at most every FORCED_RELOAD_SECS.
        let reads = store.reads();
        for _ in 0..5 {
            assert!(b
                .open(&store, 1001, R, "s1.forged", &alice)
                .await
                .unwrap()
                .is_none());
        }
        assert_eq!(store.reads(), reads);
    }
}
