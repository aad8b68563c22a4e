//! [`BearerCheck`]: the one bearer check of every protected resource (RFC 6750 §2.1; RFC 9068 §4; RFC 8707):
//! the token only from the `Authorization` header, a verified-token cache in front of the signature check
//! ([`crate::cache`]), the claims checked by `portcullis_authz::access_token::check_claims`, the key from a
//! [`KeySource`], and an optional [`RevocationCheck`] asked on every request, cache hit or not.
//!
//! It decides; it builds no response. [`crate::Guard`] turns a [`Refusal`] into its 401/403/503, and
//! `portcullis serve` into the challenge of the resource asked for.

use crate::cache::TokenCache;
use crate::keys::KeySource;
use crate::refusal::Refusal;
use crate::verify::{self, VerifyError};
use http::{header, HeaderMap};
use portcullis_authz::access_token::{AccessClaims, Expected, Leeway, TokenError};
use portcullis_proto::Scope;
use std::sync::Arc;

/// The caller, as the verified token says: inserted into the request's extensions before the inner service
/// runs (axum: `Extension<VerifiedToken>`; rmcp: `parts.extensions.get::<VerifiedToken>()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The token's claims (`sub` is the user, `client_id` the client).
    pub claims: AccessClaims,
    /// The granted scope, parsed.
    pub scope: Scope,
}

impl VerifiedToken {
    /// The verified `claims`, with their scope parsed (an unparsable scope grants nothing).
    pub fn new(claims: AccessClaims) -> Self {
        let scope = Scope::parse(claims.scope.as_deref().unwrap_or("")).unwrap_or_default();
        Self { claims, scope }
    }
}

/// Revoked tokens and grants, asked on every request (the revocation state changes; it is never cached).
pub trait RevocationCheck: Send + Sync + 'static {
    /// Whether the token with this `jti` (RFC 7519 §4.1.7), or its grant, is revoked.
    fn is_revoked(&self, jti: &str, grant_id: Option<&str>) -> bool;
}

/// A cached verification: the token and the `kid` that verified it.
#[derive(Debug, Clone)]
struct Cached {
    token: Arc<VerifiedToken>,
    kid: Arc<str>,
}

/// The bearer check: issuer, leeway, key source, optional revocation check, verified-token cache. One check
/// serves any number of resources of the same issuer (the audience is checked on every request).
pub struct BearerCheck {
    issuer: String,
    leeway: Leeway,
    keys: Arc<dyn KeySource>,
    revocations: Option<Arc<dyn RevocationCheck>>,
    cache: Option<TokenCache<Cached>>,
}

impl std::fmt::Debug for BearerCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerCheck")
            .field("issuer", &self.issuer)
            .field("leeway", &self.leeway)
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

impl BearerCheck {
    /// A check of tokens from `issuer` with keys from `keys`, caching up to `cache_capacity` verified tokens
    /// (0: no cache).
    pub fn new(
        issuer: impl Into<String>,
        leeway: Leeway,
        keys: Arc<dyn KeySource>,
        cache_capacity: usize,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            leeway,
            keys,
            revocations: None,
            cache: (cache_capacity > 0).then(|| TokenCache::new(cache_capacity)),
        }
    }

    /// Also refuse tokens `revocations` says are revoked.
    pub fn with_revocations(mut self, revocations: Arc<dyn RevocationCheck>) -> Self {
        self.revocations = Some(revocations);
        self
    }

    /// The key source.
    pub fn keys(&self) -> &Arc<dyn KeySource> {
        &self.keys
    }

    /// Number of cached verified tokens (expired ones included until swept).
    pub fn cached_tokens(&self) -> usize {
        self.cache.as_ref().map_or(0, TokenCache::len)
    }

    /// Authenticates a request for `resource` at time `now`: the verified token of its `Authorization`
    /// header, or why not. A token whose audience is another resource is refused (RFC 8707 §2, RFC 9068 §4),
    /// cached or not; revocation is checked on every call.
    pub async fn check(
        &self,
        headers: &HeaderMap,
        resource: &str,
        now: i64,
    ) -> Result<Arc<VerifiedToken>, Refusal> {
        let token = bearer_token(headers)?;
        let key = TokenCache::<Cached>::key(token);
        let verified = match self.cached(&key, now).await {
            // The cache may be shared by several resources: the audience is checked on every hit.
            Some(t) if !t.claims.aud.contains(resource) => {
                return Err(Refusal::InvalidToken(TokenError::Audience));
            }
            Some(t) => t,
            None => self.verify(key, token, resource, now).await?,
        };
        if let Some(r) = &self.revocations {
            let c = &verified.claims;
            if r.is_revoked(&c.jti, c.grant_id.as_deref()) {
                return Err(Refusal::InvalidToken(TokenError::Revoked));
            }
        }
        Ok(verified)
    }

    /// A cached verification whose token has not expired and whose key is still current.
    async fn cached(&self, key: &[u8; 32], now: i64) -> Option<Arc<VerifiedToken>> {
        let cache = self.cache.as_ref()?;
        let hit = cache.get(key, now)?;
        // No await (so no boxed future) on the hit path of a source whose keys outlive their tokens.
        if self.keys.keys_outlive_tokens() || self.keys.is_current(&hit.kid).await {
            return Some(hit.token);
        }
        cache.remove(key);
        None
    }

    /// Full verification of a token not in the cache (RFC 9068 §4); successes are cached until `exp`.
    async fn verify(
        &self,
        key: [u8; 32],
        token: &str,
        resource: &str,
        now: i64,
    ) -> Result<Arc<VerifiedToken>, Refusal> {
        let expected = Expected {
            issuer: &self.issuer,
            resource,
            leeway: self.leeway,
        };
        let v = verify::verify(self.keys.as_ref(), token, &expected, now)
            .await
            .map_err(|e| match e {
                VerifyError::Token(t) => Refusal::InvalidToken(t),
                VerifyError::Keys(k) => Refusal::KeysUnavailable(k),
            })?;
        let exp = v.claims.exp;
        let t = Arc::new(VerifiedToken::new(v.claims));
        if let Some(cache) = &self.cache {
            let cached = Cached {
                token: t.clone(),
                kid: v.kid.into(),
            };
            cache.insert(key, exp, cached, now);
        }
        Ok(t)
    }
}
