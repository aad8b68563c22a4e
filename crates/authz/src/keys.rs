//! The signing key ring: the active ES256 key, the published public keys (JWKS, RFC 7517), key ids as RFC 7638
//! thumbprints, first-start generation and rotation.
//!
//! Rotation keeps old public keys published until every token they signed has expired (`publish_until`), so
//! rotating never breaks a token in flight.
//!
//! [`Keys`] is the key service over the shared [`Core`]: it holds the loaded ring and reloads or rotates it.

use crate::jwt::Es256Key;
use crate::random::Random;
use crate::shared::Core;
use crate::store::{KeyStore, SigningKeyRecord, StoreError};
use p256::ecdsa::{SigningKey, VerifyingKey};
use portcullis_proto::b64;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

/// Loaded keys: the one to sign with and every one to verify with.
pub struct KeyRing {
    active_kid: String,
    active: Es256Key,
    verifying: HashMap<String, VerifyingKey>,
    jwks_json: String,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("active_kid", &self.active_kid)
            .finish_non_exhaustive()
    }
}

/// Why the key ring could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored key could not be read.
    #[error("stored signing key {0} is unreadable")]
    Corrupt(String),
    /// No key is active (should not happen after [`load_or_create`]).
    #[error("no active signing key")]
    NoActiveKey,
}

/// The RFC 7638 thumbprint of a P-256 public key: SHA-256 over `{"crv","kty","x","y"}` in that order.
pub fn thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    b64::encode(Sha256::digest(canonical.as_bytes()))
}

fn public_coordinates(key: &VerifyingKey) -> (String, String) {
    let point = key.to_encoded_point(false);
    let x = point.x().map(b64::encode).unwrap_or_default();
    let y = point.y().map(b64::encode).unwrap_or_default();
    (x, y)
}

/// Generates a new ES256 key record from the injected randomness.
pub fn generate(rng: &dyn Random, now: i64) -> SigningKeyRecord {
    let key = loop {
        let mut bytes = [0u8; 32];
        rng.fill(&mut bytes);
        // A uniformly random 32-byte string is a valid scalar except with probability ~2^-32.
        if let Ok(k) = SigningKey::from_slice(&bytes) {
            break k;
        }
    };
    let (x, y) = public_coordinates(key.verifying_key());
    let kid = thumbprint(&x, &y);
    let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "use": "sig", "alg": "ES256"});
    SigningKeyRecord {
        kid,
        alg: "ES256".into(),
        private_key: key.to_bytes().to_vec(),
        public_jwk: jwk.to_string(),
        created_at: now,
        active: true,
        publish_until: None,
    }
}

impl KeyRing {
    /// Builds the ring from stored keys.
    pub fn from_records(records: &[SigningKeyRecord]) -> Result<Self, KeyError> {
        let mut active = None;
        let mut verifying = HashMap::new();
        let mut jwks = Vec::new();
        for r in records {
            let sk = Es256Key::from_scalar(&r.private_key)
                .ok_or_else(|| KeyError::Corrupt(r.kid.clone()))?;
            let vk = *sk.verifying_key();
            let jwk: serde_json::Value = serde_json::from_str(&r.public_jwk)
                .map_err(|_| KeyError::Corrupt(r.kid.clone()))?;
            jwks.push(jwk);
            verifying.insert(r.kid.clone(), vk);
            if r.active {
                active = Some((r.kid.clone(), sk));
            }
        }
        let (active_kid, active) = active.ok_or(KeyError::NoActiveKey)?;
        let jwks_json = serde_json::json!({ "keys": jwks }).to_string();
        Ok(Self {
            active_kid,
            active,
            verifying,
            jwks_json,
        })
    }

    /// The key id new tokens are signed with.
    pub fn active_kid(&self) -> &str {
        &self.active_kid
    }

    /// The active signing key.
    pub fn signing_key(&self) -> &Es256Key {
        &self.active
    }

    /// The verifying key for `kid`, if published.
    pub fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifying.get(kid)
    }

    /// The JWK Set document (RFC 7517 §5), public parts only.
    pub fn jwks_json(&self) -> &str {
        &self.jwks_json
    }
}

/// Loads the keys, generating the first one on an empty database.
pub async fn load_or_create(
    store: &dyn KeyStore,
    rng: &dyn Random,
    now: i64,
) -> Result<KeyRing, KeyError> {
    let mut records = store.signing_keys(now).await?;
    if !records.iter().any(|r| r.active) {
        // Another instance may win this race; either way exactly one active key exists afterwards.
        store.insert_first_key(&generate(rng, now)).await?;
        records = store.signing_keys(now).await?;
    }
    KeyRing::from_records(&records)
}

/// Rotates: a new active key; the old one stays published for `grace` seconds (at least the access token
/// lifetime). Returns the new key id.
pub async fn rotate(
    store: &dyn KeyStore,
    rng: &dyn Random,
    now: i64,
    grace: i64,
) -> Result<String, KeyError> {
    let key = generate(rng, now);
    store.rotate_key(&key, now + grace).await?;
    Ok(key.kid)
}

/// The key service: the loaded ring (swapped whole on reload, so readers never wait on storage), its reload
/// and rotation. Built by [`crate::Authz::new`]; reached with [`crate::Authz::keys`].
pub struct Keys {
    core: Arc<Core>,
    ring: RwLock<Arc<KeyRing>>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("ring", &self.ring())
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Loads the ring (on first start, creating the first key).
    pub async fn load(core: Arc<Core>) -> Result<Self, KeyError> {
        let ring = load_or_create(core.store.as_ref(), core.rng(), core.now()).await?;
        Ok(Self {
            core,
            ring: RwLock::new(Arc::new(ring)),
        })
    }

    /// The current key ring.
    pub fn ring(&self) -> Arc<KeyRing> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc; the value is still whole.
        self.ring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads the keys from storage (after a rotation by the CLI or another instance).
    pub async fn reload(&self) -> Result<(), KeyError> {
        let core = &self.core;
        let ring = load_or_create(core.store.as_ref(), core.rng(), core.now()).await?;
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ring);
        Ok(())
    }

    /// Rotates the signing key; the old key stays published for the access token lifetime plus a minute.
    pub async fn rotate(&self) -> Result<String, KeyError> {
        let core = &self.core;
        let kid = rotate(
            core.store.as_ref(),
            core.rng(),
            core.now(),
            core.config.access_token_ttl + 60,
        )
        .await?;
        self.reload().await?;
        Ok(kid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{MemStore, SeqRandom};

    #[tokio::test]
    async fn first_start_creates_one_key_and_rotation_keeps_the_old_one_published() {
        let store = MemStore::default();
        let rng = SeqRandom::default();
        let ring = load_or_create(&store, &rng, 100).await.unwrap();
        let first = ring.active_kid().to_owned();
        let again = load_or_create(&store, &rng, 101).await.unwrap();
        assert_eq!(again.active_kid(), first, "a second start reuses the key");
        let new = rotate(&store, &rng, 200, 3600).await.unwrap();
        let ring = load_or_create(&store, &rng, 300).await.unwrap();
        assert_eq!(ring.active_kid(), new);
        assert!(
            ring.verifying_key(&first).is_some(),
            "old key still published"
        );
        let jwks: serde_json::Value = serde_json::from_str(ring.jwks_json()).unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        assert!(!ring.jwks_json().contains("\"d\""), "no private parts");
        let later = KeyRing::from_records(&store.signing_keys(200 + 3601).await.unwrap()).unwrap();
        assert!(
            later.verifying_key(&first).is_none(),
            "old key dropped after its tokens expired"
        );
    }

    #[test]
    fn thumbprint_rfc7638_shape() {
        // RFC 7638 §3.1 uses an RSA key; check the EC member order is the lexicographic one and stable.
        assert_eq!(thumbprint("a", "b"), thumbprint("a", "b"));
        assert_ne!(thumbprint("a", "b"), thumbprint("b", "a"));
    }
}
