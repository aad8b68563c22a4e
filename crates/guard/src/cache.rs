//! A bounded cache of verified access tokens, in front of the signature check of [`crate::BearerCheck`].
//!
//! Verifying an ES256 JWT (RFC 9068 §4, RFC 7515 §5.2) costs ~80 µs; an agent sends the same token with every
//! call until it expires. The cache maps the SHA-256 of the token to the value derived from its verified
//! claims, so a repeated token costs one hash and one read-locked lookup.
//!
//! Rules that keep it safe:
//! - keyed by the token's SHA-256, never the token itself (a dump of memory shows no bearer token), and a hit
//!   needs the exact same token bytes;
//! - an entry is valid only while `now < exp` of the claims it holds (RFC 7519 §4.1.4); an expired entry is a
//!   miss and is dropped;
//! - revocation is *not* cached: the guard checks the revocation set on every hit as on every miss;
//! - only successful verifications are cached (no negative entries), so a token that failed because of a
//!   not-yet-known key verifies as soon as the key ring is reloaded;
//! - key rotation cannot leave a token valid longer than it should be: the key ring only drops a public key
//!   once every token it signed has expired (`publish_until`, see `portcullis_authz::keys`), and an entry never
//!   outlives its token's `exp`; so a cached token was, at every moment it is served, still verifiable.
//!
//! Concurrency: 16 shards, each a `RwLock<HashMap>`; hits take a read lock on one shard, so concurrent
//! requests do not serialize on one lock. Bounded: each shard holds at most `capacity / 16` entries; when a
//! shard is full, expired entries are swept and, if it is still full, an arbitrary entry is evicted.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::RwLock;

/// Default number of cached tokens.
pub const DEFAULT_CAPACITY: usize = 10_000;

const SHARDS: usize = 16;

/// The cache key: SHA-256 of the token.
pub type Key = [u8; 32];

/// One shard of the cache.
type Shard<V> = RwLock<HashMap<Key, Entry<V>>>;

#[derive(Debug)]
struct Entry<V> {
    exp: i64,
    value: V,
}

/// A bounded, sharded map from token hash to a verified value, honouring `exp`.
#[derive(Debug)]
pub struct TokenCache<V> {
    shards: Box<[Shard<V>]>,
    per_shard: usize,
}

impl<V: Clone> Default for TokenCache<V> {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl<V: Clone> TokenCache<V> {
    /// A cache holding at most about `capacity` tokens (at least one per shard).
    pub fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        Self {
            shards: (0..SHARDS)
                .map(|_| RwLock::new(HashMap::with_capacity(per_shard.min(1024))))
                .collect(),
            per_shard,
        }
    }

    /// The cache key of `token`.
    pub fn key(token: &str) -> Key {
        Sha256::digest(token.as_bytes()).into()
    }

    fn shard(&self, key: &Key) -> &Shard<V> {
        &self.shards[usize::from(key[0]) % SHARDS]
    }

    /// The cached value for `key` if its token has not expired at `now`.
    pub fn get(&self, key: &Key, now: i64) -> Option<V> {
        let shard = self.shard(key);
        {
            let map = shard.read().unwrap_or_else(|e| e.into_inner());
            match map.get(key) {
                None => return None,
                Some(e) if now < e.exp => return Some(e.value.clone()),
                Some(_) => {}
            }
        }
        // Expired: drop it (re-checked under the write lock; another request may have replaced it).
        let mut map = shard.write().unwrap_or_else(|e| e.into_inner());
        if map.get(key).is_some_and(|e| now >= e.exp) {
            map.remove(key);
        }
        None
    }

    /// Caches `value`, valid until `exp` (seconds since the epoch). Already-expired values are not stored.
    pub fn insert(&self, key: Key, exp: i64, value: V, now: i64) {
        if now >= exp {
            return;
        }
        let mut map = self.shard(&key).write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.per_shard && !map.contains_key(&key) {
            map.retain(|_, e| now < e.exp);
            if map.len() >= self.per_shard {
                if let Some(victim) = map.keys().next().copied() {
                    map.remove(&victim);
                }
            }
        }
        map.insert(key, Entry { exp, value });
    }

    /// Drops the entry for `key` (its key is no longer published).
    pub fn remove(&self, key: &Key) {
        self.shard(key)
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Number of cached entries (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_until_exp_then_miss() {
        let c = TokenCache::new(100);
        let k = TokenCache::<u32>::key("token-a");
        assert_eq!(c.get(&k, 10), None);
        c.insert(k, 20, 7u32, 10);
        assert_eq!(c.get(&k, 10), Some(7));
        assert_eq!(c.get(&k, 19), Some(7));
        assert_eq!(c.get(&k, 20), None, "exp is exclusive (RFC 7519 §4.1.4)");
        assert!(c.is_empty(), "an expired entry is dropped on lookup");
    }

    #[test]
    fn keyed_by_exact_token() {
        let c = TokenCache::new(100);
        c.insert(TokenCache::<u32>::key("token-a"), 20, 1u32, 10);
        assert_eq!(c.get(&TokenCache::<u32>::key("token-b"), 10), None);
        assert_eq!(c.get(&TokenCache::<u32>::key("token-a "), 10), None);
    }

    #[test]
    fn expired_values_are_not_stored() {
        let c = TokenCache::new(100);
        c.insert(TokenCache::<u32>::key("t"), 10, 1u32, 10);
        assert!(c.is_empty());
    }

    #[test]
    fn bounded() {
        let c = TokenCache::new(64);
        for i in 0..10_000u32 {
            c.insert(TokenCache::<u32>::key(&format!("t{i}")), 100, i, 1);
        }
        assert!(c.len() <= 64, "len {}", c.len());
        // The newest entry is always kept.
        assert_eq!(c.get(&TokenCache::<u32>::key("t9999"), 1), Some(9999));
    }

    #[test]
    fn full_shard_sweeps_expired_first() {
        let c = TokenCache::new(SHARDS); // one entry per shard
        let old = TokenCache::<u32>::key("old");
        c.insert(old, 5, 1u32, 1);
        // Find another token landing in the same shard.
        let other = (0..)
            .map(|i| TokenCache::<u32>::key(&format!("n{i}")))
            .find(|k| k[0] as usize % SHARDS == old[0] as usize % SHARDS)
            .expect("some token hashes into the same shard");
        c.insert(other, 100, 2, 6);
        assert_eq!(c.get(&other, 6), Some(2));
        assert_eq!(c.get(&old, 1), None, "evicted: the shard holds one entry");
    }

    #[test]
    fn remove_drops_one_entry() {
        let c = TokenCache::new(100);
        let (a, b) = (TokenCache::<u32>::key("a"), TokenCache::<u32>::key("b"));
        c.insert(a, 20, 1u32, 10);
        c.insert(b, 20, 2u32, 10);
        c.remove(&a);
        assert_eq!(c.get(&a, 10), None);
        assert_eq!(c.get(&b, 10), Some(2));
        assert_eq!(c.len(), 1);
    }
}
