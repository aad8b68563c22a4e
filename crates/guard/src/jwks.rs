//! The issuer's public keys: a JSON Web Key Set (RFC 7517 §5) fetched over HTTP, cached, and refetched
//!
//! - when a token names a `kid` the cached set lacks (the issuer rotated its key), at most once per
//!   `unknown_kid_interval` seconds, so forged `kid`s cannot turn the guard into a request amplifier;
//! - when the set is older than `max_age` (checked on use), so a key the issuer removed stops verifying.
//!
//! A failed refresh keeps the keys already held (and is logged); failed attempts count for the rate limit too.
//! Only one fetch runs at a time; concurrent requests wait for it instead of fetching again. The `jwks_uri` is
//! discovered from the issuer's RFC 8414 metadata (whose `issuer` must be the configured one, §3.3) unless
//! configured. Requests have a timeout, follow no redirects, and read at most 256 KiB.

use crate::config::{GuardConfig, JwksSource};
use crate::error::{ConfigError, JwksError};
use crate::urls::parse_url;
use p256::ecdsa::VerifyingKey;
use portcullis_authz::clock::Clock;
use portcullis_proto::b64;
use portcullis_proto::metadata::AuthorizationServerMetadata;
use portcullis_proto::well_known;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use url::Url;

/// Largest metadata or JWKS document read.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// The usable keys of a JWK Set: P-256 public keys (`kty` `EC`, `crv` `P-256`) with a `kid`, whose `alg` (when
/// present) is `ES256` and `use` (when present) is `sig`. Other keys are skipped.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, VerifyingKey>,
}

#[derive(Deserialize)]
struct JwkSetDoc {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct EcJwk {
    kty: String,
    crv: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl KeySet {
    /// Reads a JWK Set document.
    pub fn parse(json: &[u8]) -> Result<Self, String> {
        let doc: JwkSetDoc = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        let mut keys = HashMap::new();
        for value in doc.keys {
            let Ok(jwk) = serde_json::from_value::<EcJwk>(value) else {
                continue;
            };
            if jwk.kty != "EC"
                || jwk.crv.as_deref() != Some("P-256")
                || jwk.alg.as_deref().is_some_and(|a| a != "ES256")
                || jwk.use_.as_deref().is_some_and(|u| u != "sig")
            {
                continue;
            }
            let (Some(kid), Some(x), Some(y)) = (jwk.kid, jwk.x, jwk.y) else {
                continue;
            };
            let (Some(x), Some(y)) = (b64::decode(&x), b64::decode(&y)) else {
                continue;
            };
            if x.len() != 32 || y.len() != 32 {
                continue;
            }
            // SEC1 uncompressed point: 0x04 || x || y; refused unless it is on the curve.
            let mut sec1 = Vec::with_capacity(65);
            sec1.push(0x04);
            sec1.extend_from_slice(&x);
            sec1.extend_from_slice(&y);
            if let Ok(key) = VerifyingKey::from_sec1_bytes(&sec1) {
                keys.insert(kid, key);
            }
        }
        Ok(Self { keys })
    }

    /// The key named `kid`.
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    /// Whether `kid` is in the set.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is usable.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[derive(Debug, Default, Clone)]
struct Snapshot {
    keys: Arc<KeySet>,
    /// When the held keys were fetched.
    fetched_at: Option<i64>,
    /// When the last fetch was started (successful or not): the rate limit's reference.
    last_attempt: Option<i64>,
    /// The last failure, while no keys are held.
    last_error: Option<JwksError>,
    /// The discovered `jwks_uri`.
    jwks_uri: Option<Url>,
    /// Fetches started so far.
    fetches: u64,
}

/// Fetches and caches the issuer's JWKS. Cheap to clone (shared state).
#[derive(Clone)]
pub struct JwksClient {
    inner: Arc<Inner>,
}

struct Inner {
    source: JwksSource,
    issuer: String,
    issuer_url: Url,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    unknown_kid_interval: i64,
    max_age: i64,
    state: RwLock<Snapshot>,
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for JwksClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksClient")
            .field("issuer", &self.inner.issuer)
            .field("source", &self.inner.source)
            .finish_non_exhaustive()
    }
}

impl JwksClient {
    /// A client for `config`'s issuer. Fetches nothing yet (see [`JwksClient::refresh`]).
    pub fn new(config: &GuardConfig) -> Result<Self, ConfigError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.http_timeout)
            .connect_timeout(config.http_timeout)
            .user_agent(concat!("portcullis-guard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::Http(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                source: config.jwks.clone(),
                issuer: config.issuer.clone(),
                issuer_url: config.issuer_url.clone(),
                http,
                clock: config.clock.clone(),
                unknown_kid_interval: config.unknown_kid_interval,
                max_age: config.max_age,
                state: RwLock::new(Snapshot::default()),
                fetching: tokio::sync::Mutex::new(()),
            }),
        })
    }

    fn snapshot(&self) -> Snapshot {
        self.inner
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The keys held now (possibly none).
    pub fn keys(&self) -> Arc<KeySet> {
        self.snapshot().keys
    }

    /// How many fetches have been started (for tests and metrics).
    pub fn fetch_count(&self) -> u64 {
        self.snapshot().fetches
    }

    /// Fetches the set now, ignoring the rate limit (e.g. at start-up, to fail fast on a wrong issuer). On
    /// failure the keys already held are kept.
    pub async fn refresh(&self) -> Result<(), JwksError> {
        let _one = self.inner.fetching.lock().await;
        self.fetch().await
    }

    /// The key for `kid`: from the cache when it is fresh and holds `kid`; otherwise after a refetch when the
    /// rate limit allows one. `Ok(None)`: the issuer does not publish `kid` (as far as we may ask).
    /// `Err`: no keys are held at all and none could be fetched.
    pub async fn key(&self, kid: &str) -> Result<Option<VerifyingKey>, JwksError> {
        let now = self.inner.clock.now();
        let seen = self.snapshot();
        let fresh = seen
            .fetched_at
            .is_some_and(|t| now - t < self.inner.max_age);
        if fresh {
            if let Some(k) = seen.keys.get(kid) {
                return Ok(Some(*k));
            }
        }
        // Under the lock: a request arriving while a fetch is in flight waits for its result, and the rate
        // limit is decided by one request at a time.
        let one_fetch = self.inner.fetching.lock().await;
        let current = self.snapshot();
        let known = current.keys.contains(kid);
        let stale = current
            .fetched_at
            .is_none_or(|t| now - t >= self.inner.max_age);
        let allowed = current
            .last_attempt
            .is_none_or(|t| now - t >= self.inner.unknown_kid_interval);
        if (stale || !known) && allowed {
            if let Err(e) = self.fetch().await {
                tracing::warn!(error = %e, "JWKS fetch failed");
            }
        }
        drop(one_fetch);
        let now_held = self.snapshot();
        match now_held.keys.get(kid) {
            Some(k) => Ok(Some(*k)),
            None if now_held.fetched_at.is_none() => Err(now_held
                .last_error
                .unwrap_or_else(|| JwksError::NotYet("no fetch yet".into()))),
            None => Ok(None),
        }
    }

    /// One fetch (the caller holds `fetching`): discovery if needed, then the set.
    async fn fetch(&self) -> Result<(), JwksError> {
        let now = self.inner.clock.now();
        let jwks_uri = {
            let mut s = self.inner.state.write().unwrap_or_else(|e| e.into_inner());
            s.last_attempt = Some(now);
            s.fetches += 1;
            match &self.inner.source {
                JwksSource::Url(u) => Some(u.clone()),
                JwksSource::Discover => s.jwks_uri.clone(),
            }
        };
        let result = async {
            let uri = match jwks_uri {
                Some(u) => u,
                None => self.discover().await?,
            };
            let body = self.get(&uri).await?;
            let keys = KeySet::parse(&body).map_err(|reason| JwksError::Document {
                url: uri.to_string(),
                what: "JWK Set",
                reason,
            })?;
            if keys.is_empty() {
                return Err(JwksError::NoUsableKeys(uri.to_string()));
            }
            Ok((uri, keys))
        }
        .await;
        let mut s = self.inner.state.write().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok((uri, keys)) => {
                tracing::debug!(keys = keys.len(), %uri, "JWKS fetched");
                s.keys = Arc::new(keys);
                s.fetched_at = Some(now);
                s.last_error = None;
                if self.inner.source == JwksSource::Discover {
                    s.jwks_uri = Some(uri);
                }
                Ok(())
            }
            Err(e) => {
                // Discover again next time: the issuer may have moved its keys.
                s.jwks_uri = None;
                s.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// RFC 8414 §3: the issuer's metadata (path-inserted, then the OpenID Connect forms), its `issuer` checked
    /// (§3.3), its `jwks_uri` read.
    async fn discover(&self) -> Result<Url, JwksError> {
        let mut last = None;
        for url in well_known::authorization_server_metadata_urls(&self.inner.issuer_url) {
            let parsed = match Url::parse(&url) {
                Ok(u) => u,
                Err(_) => continue,
            };
            let body = match self.get(&parsed).await {
                Ok(b) => b,
                Err(e @ JwksError::Status { status: 404, .. }) => {
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let meta: AuthorizationServerMetadata =
                serde_json::from_slice(&body).map_err(|e| JwksError::Document {
                    url: url.clone(),
                    what: "authorization server metadata",
                    reason: e.to_string(),
                })?;
            if meta.issuer != self.inner.issuer {
                return Err(JwksError::IssuerMismatch {
                    url,
                    expected: self.inner.issuer.clone(),
                    found: meta.issuer,
                });
            }
            let jwks = meta
                .jwks_uri
                .ok_or_else(|| JwksError::NoJwksUri("absent".into()))?;
            return parse_url("jwks_uri", &jwks, true)
                .map_err(|e| JwksError::NoJwksUri(e.to_string()));
        }
        Err(last.unwrap_or_else(|| JwksError::NoJwksUri("no metadata URL".into())))
    }

    /// GET `url`: 200 required, at most [`MAX_DOCUMENT_BYTES`].
    async fn get(&self, url: &Url) -> Result<Vec<u8>, JwksError> {
        let http_err = |e: reqwest::Error| JwksError::Http {
            url: url.to_string(),
            reason: e.to_string(),
        };
        let mut resp = self
            .inner
            .http
            .get(url.clone())
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(http_err)?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(JwksError::Status {
                url: url.to_string(),
                status: resp.status().as_u16(),
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(http_err)? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(JwksError::TooLarge(url.to_string()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testing::Issuer;
    use portcullis_authz::clock::FixedClock;

    fn client(issuer: &Issuer, clock: &Arc<FixedClock>) -> JwksClient {
        let config = GuardConfig::new(&issuer.issuer, "http://127.0.0.1:1/mcp")
            .unwrap()
            .with_clock(clock.clone());
        JwksClient::new(&config).unwrap()
    }

    #[test]
    fn parse_skips_unusable_keys() {
        let (_, good) = crate::testing::key_and_jwk("k1");
        let doc = serde_json::json!({"keys": [
            good,
            {"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA"},
            {"kty": "EC", "crv": "P-256", "kid": "hs", "alg": "HS256", "x": good["x"], "y": good["y"]},
            {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc", "x": good["x"], "y": good["y"]},
            {"kty": "EC", "crv": "P-256", "x": good["x"], "y": good["y"]},
            {"kty": "EC", "crv": "P-256", "kid": "short", "x": "AAAA", "y": "AAAA"},
            {"kty": "EC", "crv": "P-256", "kid": "off-curve", "x": b64::encode([1u8; 32]), "y": b64::encode([1u8; 32])},
            "not an object"
        ]});
        let set = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.contains("k1"));
        assert!(KeySet::parse(b"{}").is_err());
        assert!(KeySet::parse(b"[]").is_err());
    }

    #[tokio::test]
    async fn discovers_the_jwks_uri_and_fetches_it() {
        let issuer = Issuer::start().await;
        let clock = Arc::new(FixedClock::new(1000));
        let c = client(&issuer, &clock);
        let k = c.key(&issuer.kid(0)).await.unwrap();
        assert!(k.is_some());
        assert_eq!(c.fetch_count(), 1);
        assert_eq!(issuer.hits("/.well-known/oauth-authorization-server"), 1);
        assert_eq!(issuer.hits("/jwks.json"), 1);
        // Cached: no second fetch.
        assert!(c.key(&issuer.kid(0)).await.unwrap().is_some());
        assert_eq!(issuer.hits("/jwks.json"), 1);
    }

    #[tokio::test]
    async fn rotation_unknown_kid_refetches_within_the_rate_limit() {
        let issuer = Issuer::start().await;
        let clock = Arc::new(FixedClock::new(1000));
        let c = client(&issuer, &clock);
        assert!(c.key(&issuer.kid(0)).await.unwrap().is_some());
        // The issuer rotates: a token with the new kid triggers one refetch.
        issuer.rotate();
        clock.advance(30);
        assert!(c.key(&issuer.kid(1)).await.unwrap().is_some());
        assert_eq!(issuer.hits("/jwks.json"), 2);
        assert_eq!(
            issuer.hits("/.well-known/oauth-authorization-server"),
            1,
            "the jwks_uri is remembered"
        );
        // A burst of forged kids within the interval: no fetch at all.
        clock.advance(1);
        for i in 0..20 {
            assert_eq!(c.key(&format!("forged-{i}")).await.unwrap(), None);
        }
        assert_eq!(issuer.hits("/jwks.json"), 2, "rate limit ignored");
        // After the interval, one more fetch, then limited again.
        clock.advance(DEFAULT_UNKNOWN_KID_INTERVAL);
        assert_eq!(c.key("forged-a").await.unwrap(), None);
        assert_eq!(c.key("forged-b").await.unwrap(), None);
        assert_eq!(issuer.hits("/jwks.json"), 3);
        // Known keys keep working without fetches.
        assert!(c.key(&issuer.kid(0)).await.unwrap().is_some());
        assert_eq!(issuer.hits("/jwks.json"), 3);
    }

    use crate::config::DEFAULT_UNKNOWN_KID_INTERVAL;

    #[tokio::test]
    async fn concurrent_unknown_kids_share_one_fetch() {
        let issuer = Issuer::start().await;
        let clock = Arc::new(FixedClock::new(1000));
        let c = client(&issuer, &clock);
        assert!(c.key(&issuer.kid(0)).await.unwrap().is_some());
        issuer.rotate();
        clock.advance(DEFAULT_UNKNOWN_KID_INTERVAL);
        let new = issuer.kid(1);
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (c, kid) = (c.clone(), new.clone());
                tokio::spawn(async move { c.key(&kid).await })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap().unwrap().is_some());
        }
        assert_eq!(issuer.hits("/jwks.json"), 2, "one refetch for all of them");
    }

    #[tokio::test]
    async fn stale_set_is_refetched_and_removed_keys_stop_verifying() {
        let issuer = Issuer::start().await;
        let clock = Arc::new(FixedClock::new(1000));
        let c = client(&issuer, &clock);
        let old = issuer.kid(0);
        assert!(c.key(&old).await.unwrap().is_some());
        issuer.rotate();
        issuer.drop_key(0);
        clock.advance(crate::config::DEFAULT_MAX_AGE - 1);
        assert!(
            c.key(&old).await.unwrap().is_some(),
            "fresh cache: still served"
        );
        clock.advance(1);
        assert_eq!(c.key(&old).await.unwrap(), None, "stale: refetched, gone");
        assert_eq!(issuer.hits("/jwks.json"), 2);
    }

    #[tokio::test]
    async fn failures_keep_old_keys_and_are_rate_limited_too() {
        let issuer = Issuer::start().await;
        let clock = Arc::new(FixedClock::new(1000));
        let c = client(&issuer, &clock);
        assert!(c.key(&issuer.kid(0)).await.unwrap().is_some());
        issuer.set_failing(true);
        clock.advance(crate::config::DEFAULT_MAX_AGE);
        assert!(
            c.key(&issuer.kid(0)).await.unwrap().is_some(),
            "a failed refresh keeps the old keys"
        );
        assert_eq!(c.fetch_count(), 2);
        clock.advance(1);
        assert!(c.key(&issuer.kid(0)).await.unwrap().is_some());
        assert_eq!(c.fetch_count(), 2, "retries are rate limited");
    }

    #[tokio::test]
    async fn no_keys_at_all_is_an_error_not_an_unknown_key() {
        let issuer = Issuer::start().await;
        issuer.set_failing(true);
        let clock = Arc::new(FixedClock::new(1000));
        let c = client(&issuer, &clock);
        let e = c.key("k").await.unwrap_err();
        assert!(matches!(e, JwksError::Status { status: 500, .. }), "{e:?}");
        assert!(c.key("k").await.is_err());
        assert_eq!(c.fetch_count(), 1);
        issuer.set_failing(false);
        clock.advance(DEFAULT_UNKNOWN_KID_INTERVAL);
        assert!(c.key(&issuer.kid(0)).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn issuer_mismatch_and_explicit_url() {
        let issuer = Issuer::start().await;
        let clock = Arc::new(FixedClock::new(1000));
        // The metadata names another issuer (RFC 8414 §3.3).
        let config = GuardConfig::new(&issuer.issuer, "http://127.0.0.1:1/mcp")
            .unwrap()
            .with_clock(clock.clone());
        issuer.set_metadata_issuer("https://evil.example");
        let c = JwksClient::new(&config).unwrap();
        let e = c.refresh().await.unwrap_err();
        assert!(matches!(e, JwksError::IssuerMismatch { .. }), "{e:?}");
        // An explicit jwks URL needs no metadata.
        let config = config
            .with_jwks_url(&format!("{}/jwks.json", issuer.issuer))
            .unwrap();
        let c = JwksClient::new(&config).unwrap();
        c.refresh().await.unwrap();
        assert_eq!(c.keys().len(), 1);
    }

    #[tokio::test]
    async fn oversized_and_slow_documents_fail() {
        let issuer = Issuer::start().await;
        let clock = Arc::new(FixedClock::new(1000));
        let config = GuardConfig::new(&issuer.issuer, "http://127.0.0.1:1/mcp")
            .unwrap()
            .with_clock(clock.clone())
            .with_http_timeout(std::time::Duration::from_millis(300))
            .unwrap();
        let c = JwksClient::new(&config).unwrap();
        issuer.set_huge(true);
        assert!(matches!(
            c.refresh().await.unwrap_err(),
            JwksError::TooLarge(_)
        ));
        issuer.set_huge(false);
        issuer.set_slow(true);
        let started = std::time::Instant::now();
        assert!(matches!(
            c.refresh().await.unwrap_err(),
            JwksError::Http { .. }
        ));
        assert!(started.elapsed() < std::time::Duration::from_secs(3));
    }
}
