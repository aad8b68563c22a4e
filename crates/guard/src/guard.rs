//! [`Guard`]: authenticates one request (RFC 6750 §2.1 bearer token from the `Authorization` header, verified
//! by [`crate::verify`], scope checked), with a cache of verified tokens.
//!
//! The cache maps the SHA-256 of a token (never the token) to its verified claims until the token's `exp`;
//! a hit also needs the key that verified it to still be in the JWKS the guard holds, so a key the issuer
//! removed stops every cached token it signed at the next JWKS refresh. Only successes are cached. It is
//! bounded: when full, expired entries are swept, and if it is still full it is emptied.

use crate::config::GuardConfig;
use crate::error::ConfigError;
use crate::jwks::JwksClient;
use crate::layer::GuardLayer;
use crate::metadata;
use crate::refusal::Refusal;
use crate::verify::{self, Expected, VerifyError};
use axum::body::Body;
use bytes::Bytes;
use http::{header, HeaderMap, Response};
use portcullis_authz::access_token::AccessClaims;
use portcullis_proto::Scope;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The caller, as the verified token says: inserted into the request's extensions before the inner service
/// runs (axum: `Extension<VerifiedToken>`; rmcp: `parts.extensions.get::<VerifiedToken>()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The token's claims (`sub` is the user, `client_id` the client).
    pub claims: AccessClaims,
    /// The granted scope, parsed.
    pub scope: Scope,
}

#[derive(Debug, Clone)]
struct CacheEntry {
    exp: i64,
    kid: String,
    token: VerifiedToken,
}

type Cache = RwLock<HashMap<[u8; 32], CacheEntry>>;

/// The guard: configuration, the JWKS client, the cache and the metadata document. Cheap to clone.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

struct Inner {
    config: GuardConfig,
    jwks: JwksClient,
    cache: Cache,
    metadata_url: String,
    metadata_path: String,
    metadata_doc: Bytes,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// The bearer token of `headers`: exactly one `Authorization` header with the `Bearer` scheme (any case) and a
/// non-empty credential (RFC 6750 §2.1).
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, Refusal> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(if headers.contains_key(header::AUTHORIZATION) {
            Refusal::SeveralAuthorizationHeaders
        } else {
            Refusal::MissingToken
        });
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .and_then(|(scheme, t)| scheme.eq_ignore_ascii_case("bearer").then(|| t.trim()))
        .filter(|t| !t.is_empty())
        .ok_or(Refusal::MissingToken)
}

impl Guard {
    /// A guard for `config`. Fetches nothing yet: the JWKS is fetched on the first token (call
    /// `guard.jwks().refresh().await` at start-up to fail fast instead).
    pub fn new(config: GuardConfig) -> Result<Self, ConfigError> {
        let jwks = JwksClient::new(&config)?;
        let (metadata_url, metadata_path) = metadata::urls(&config.resource_url);
        let metadata_doc = metadata::document(&config);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                jwks,
                cache: RwLock::new(HashMap::new()),
                metadata_url,
                metadata_path,
                metadata_doc,
            }),
        })
    }

    /// The tower layer: wrap any `Service<http::Request<B>>` (an axum `Router`, rmcp's
    /// `StreamableHttpService`, …) with it.
    pub fn layer(&self) -> GuardLayer {
        GuardLayer::new(self.clone())
    }

    /// A router answering `GET` at [`Guard::metadata_path`] with the RFC 9728 document; merge it next to
    /// the protected routes, outside the layer.
    pub fn metadata_router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        metadata::router(
            self.inner.metadata_path.clone(),
            self.inner.metadata_doc.clone(),
        )
    }

    /// The RFC 9728 §3.1 metadata URL (the challenge's `resource_metadata`).
    pub fn metadata_url(&self) -> &str {
        &self.inner.metadata_url
    }

    /// Its path: `/.well-known/oauth-protected-resource<resource path>`.
    pub fn metadata_path(&self) -> &str {
        &self.inner.metadata_path
    }

    /// The metadata document's bytes.
    pub fn metadata_document(&self) -> Bytes {
        self.inner.metadata_doc.clone()
    }

    /// The configuration.
    pub fn config(&self) -> &GuardConfig {
        &self.inner.config
    }

    /// The JWKS client.
    pub fn jwks(&self) -> &JwksClient {
        &self.inner.jwks
    }

    /// The response for `refusal`.
    pub fn refusal_response(&self, refusal: &Refusal) -> Response<Body> {
        refusal.to_response(&self.inner.metadata_url, &self.inner.config.required_scope)
    }

    /// Authenticates a request from its headers: the verified token, or why not.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<VerifiedToken, Refusal> {
        let token = bearer_token(headers)?;
        let c = &self.inner.config;
        let now = c.clock.now();
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let verified = match self.cached(&key, now).await {
            Some(t) => t,
            None => {
                let expected = Expected {
                    issuer: &c.issuer,
                    resource: &c.resource,
                    leeway: c.leeway,
                };
                let v = verify::verify(&self.inner.jwks, token, &expected, now)
                    .await
                    .map_err(|e| match e {
                        VerifyError::Token(t) => Refusal::InvalidToken(t),
                        VerifyError::Keys(k) => Refusal::KeysUnavailable(k),
                    })?;
                let scope =
                    Scope::parse(v.claims.scope.as_deref().unwrap_or("")).unwrap_or_default();
                let t = VerifiedToken {
                    claims: v.claims,
                    scope,
                };
                self.remember(key, v.kid, &t, now);
                t
            }
        };
        if !verified.scope.includes(&c.required_scope) {
            return Err(Refusal::InsufficientScope(c.required_scope.clone()));
        }
        Ok(verified)
    }

    /// A cached verification, if its token has not expired and its key is still published (asked through
    /// the JWKS client, so a stale set is refreshed on hits too).
    async fn cached(&self, key: &[u8; 32], now: i64) -> Option<VerifiedToken> {
        let entry = {
            let map = self.inner.cache.read().unwrap_or_else(|e| e.into_inner());
            map.get(key).cloned()?
        };
        if now < entry.exp && matches!(self.inner.jwks.key(&entry.kid).await, Ok(Some(_))) {
            return Some(entry.token);
        }
        self.inner
            .cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        None
    }

    fn remember(&self, key: [u8; 32], kid: String, token: &VerifiedToken, now: i64) {
        let capacity = self.inner.config.cache_capacity;
        let exp = token.claims.exp;
        if capacity == 0 || now >= exp {
            return;
        }
        let mut map = self.inner.cache.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= capacity && !map.contains_key(&key) {
            map.retain(|_, e| now < e.exp);
            if map.len() >= capacity {
                map.clear();
            }
        }
        map.insert(
            key,
            CacheEntry {
                exp,
                kid,
                token: token.clone(),
            },
        );
    }

    /// Number of cached verified tokens.
    pub fn cached_tokens(&self) -> usize {
        self.inner
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}
