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

    /// The name to show for the user (OpenID Connect Core §5.1 `preferred_username`), when the token carries
    /// it. For display and logs: identify the user by `claims.sub`.
    pub fn preferred_username(&self) -> Option<&str> {
        self.claims.preferred_username.as_deref()
    }

    /// The user's email address (OpenID Connect Core §5.1 `email`), when the token carries it; Portcullis
    /// puts only addresses the identity provider verified there.
    pub fn email(&self) -> Option<&str> {
        self.claims.email.as_deref()
    }

    /// The identity provider the user signed in through (its configured name), absent for a password login.
    pub fn idp(&self) -> Option<&str> {
        self.claims.idp.as_deref()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GuardConfig;
    use crate::error::JwksError;
    use crate::jwks::JwksClient;
    use crate::keys::VerifyingKey;
    use crate::testing::Issuer;
    use async_trait::async_trait;
    use portcullis_authz::clock::FixedClock;
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    const RS: &str = "http://127.0.0.1:9/mcp";

    /// The JWKS, counting `is_current` calls, optionally claiming its keys outlive their tokens.
    struct Counting {
        jwks: JwksClient,
        outlive: bool,
        is_current_calls: AtomicUsize,
    }

    #[async_trait]
    impl KeySource for Counting {
        async fn key(&self, kid: &str) -> Result<Option<VerifyingKey>, JwksError> {
            self.jwks.key(kid).await
        }
        async fn is_current(&self, kid: &str) -> bool {
            self.is_current_calls.fetch_add(1, Ordering::Relaxed);
            KeySource::is_current(&self.jwks, kid).await
        }
        fn keys_outlive_tokens(&self) -> bool {
            self.outlive
        }
    }

    #[derive(Default)]
    struct Revoked(Mutex<HashSet<String>>);

    impl RevocationCheck for Revoked {
        fn is_revoked(&self, jti: &str, grant_id: Option<&str>) -> bool {
            let set = self.0.lock().unwrap();
            set.contains(jti) || grant_id.is_some_and(|g| set.contains(g))
        }
    }

    fn keys(issuer: &Issuer, outlive: bool) -> Arc<Counting> {
        let config = GuardConfig::new(&issuer.issuer, RS)
            .unwrap()
            .with_clock(Arc::new(FixedClock::new(1000)));
        Arc::new(Counting {
            jwks: JwksClient::new(&config).unwrap(),
            outlive,
            is_current_calls: AtomicUsize::new(0),
        })
    }

    fn headers(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        h
    }

    #[tokio::test]
    async fn revocation_is_checked_on_every_hit_including_the_old_sid_claim() {
        let issuer = Issuer::start().await;
        let revoked = Arc::new(Revoked::default());
        let check = BearerCheck::new(&issuer.issuer, Leeway::ISSUER, keys(&issuer, true), 100)
            .with_revocations(revoked.clone());
        // A token minted before the rename: the grant only under `sid`.
        let mut json = serde_json::to_value(issuer.claims(RS, "mcp:tools", 1000)).unwrap();
        json["sid"] = serde_json::json!("grant-1");
        let token = issuer.mint_raw(0, "at+jwt", json.to_string().as_bytes());
        let h = headers(&token);
        let t = check.check(&h, RS, 1000).await.unwrap();
        assert_eq!(t.claims.grant_id.as_deref(), Some("grant-1"));
        assert_eq!(check.cached_tokens(), 1);
        revoked.0.lock().unwrap().insert("grant-1".into());
        assert_eq!(
            check.check(&h, RS, 1000).await,
            Err(Refusal::InvalidToken(TokenError::Revoked))
        );
        // By jti too.
        let mut c = issuer.claims(RS, "mcp:tools", 1000);
        c.jti = "jti-2".into();
        let h = headers(&issuer.mint(0, &c));
        assert!(check.check(&h, RS, 1000).await.is_ok());
        revoked.0.lock().unwrap().insert("jti-2".into());
        assert_eq!(
            check.check(&h, RS, 1000).await,
            Err(Refusal::InvalidToken(TokenError::Revoked))
        );
    }

    #[tokio::test]
    async fn the_audience_is_checked_on_hits_and_keys_are_asked_only_when_needed() {
        let issuer = Issuer::start().await;
        for outlive in [true, false] {
            let keys = keys(&issuer, outlive);
            let check = BearerCheck::new(&issuer.issuer, Leeway::ISSUER, keys.clone(), 100);
            let h = headers(&issuer.mint(0, &issuer.claims(RS, "mcp:tools", 1000)));
            let first = check.check(&h, RS, 1000).await.unwrap();
            let hit = check.check(&h, RS, 1000).await.unwrap();
            assert!(Arc::ptr_eq(&first, &hit), "a hit hands out the cached Arc");
            assert_eq!(
                check.check(&h, "http://127.0.0.1:9/other", 1000).await,
                Err(Refusal::InvalidToken(TokenError::Audience))
            );
            let asked = keys.is_current_calls.load(Ordering::Relaxed);
            assert_eq!(asked, if outlive { 0 } else { 2 }, "outlive={outlive}");
        }
    }

    #[tokio::test]
    async fn no_cache_with_capacity_zero_and_expiry_honoured() {
        let issuer = Issuer::start().await;
        let check = BearerCheck::new(&issuer.issuer, Leeway::ISSUER, keys(&issuer, true), 0);
        let h = headers(&issuer.mint(0, &issuer.claims(RS, "mcp:tools", 1000)));
        assert!(check.check(&h, RS, 1000).await.is_ok());
        assert_eq!(check.cached_tokens(), 0);
        let check = BearerCheck::new(&issuer.issuer, Leeway::ISSUER, keys(&issuer, true), 100);
        assert!(check.check(&h, RS, 1000).await.is_ok());
        // exp = 1600; no leeway on exp for the issuer's own rule, cached or not.
        assert_eq!(
            check.check(&h, RS, 1600).await,
            Err(Refusal::InvalidToken(TokenError::Expired))
        );
        assert_eq!(
            check.check(&HeaderMap::new(), RS, 1000).await,
            Err(Refusal::MissingToken)
        );
    }
}
