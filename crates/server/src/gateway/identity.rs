//! The signed identity header of gateway mode ([`IDENTITY_HEADER`], `[gateway] identity_jwt`): a short-lived
//! ES256 JWT ([`portcullis_authz::identity`]) naming the caller's subject, client and scopes (and user name,
//! verified email and identity provider when the access token has them), with `aud` the upstream, verifiable
//! with the issuer's JWKS.
//!
//! Signing costs tens of microseconds, so assertions are cached per caller (subject, client, scope, display
//! identity) and upstream, and re-signed when less than [`REFRESH_BEFORE`] seconds of their lifetime remain or
//! the signing key rotated.

use axum::http::HeaderValue;
use portcullis_authz::identity::{self, IdentityClaims};
use portcullis_authz::{random, Authz};
use portcullis_guard::VerifiedToken;
use std::collections::HashMap;
use std::sync::Mutex;

/// The request header carrying the assertion. Like every `X-Portcullis-*` header, a client's own is never
/// forwarded.
pub const IDENTITY_HEADER: &str = "x-portcullis-identity";

/// A cached assertion is re-signed once fewer than this many seconds of its lifetime remain, so the upstream
/// always receives one valid for at least this long.
pub const REFRESH_BEFORE: i64 = identity::LIFETIME / 2;

/// Cached assertions at most; when full, expired ones are dropped, and if none are, the cache is emptied.
pub const MAX_CACHED: usize = 10_000;

/// Who the assertion is about and for. The display identity is part of it: one user may sign in through
/// several identity providers, and their tokens then name them differently.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    sub: String,
    client_id: String,
    scope: String,
    aud: String,
    preferred_username: Option<String>,
    email: Option<String>,
    idp: Option<String>,
}

#[derive(Debug)]
struct Cached {
    value: HeaderValue,
    kid: String,
    exp: i64,
}

/// The assertion cache.
#[derive(Debug, Default)]
pub struct IdentitySigner {
    cache: Mutex<HashMap<Key, Cached>>,
}

impl IdentitySigner {
    /// The header value for `p` calling `upstream`: cached, or freshly signed with the active key. `None` only
    /// if the token cannot be a header value (it is base64url and dots, so never in practice).
    pub fn header(
        &self,
        authz: &Authz,
        issuer: &str,
        upstream: &str,
        p: &VerifiedToken,
    ) -> Option<HeaderValue> {
        let now = authz.core().now();
        let ring = authz.keys().ring();
        let key = Key {
            sub: p.claims.sub.clone(),
            client_id: p.claims.client_id.clone(),
            scope: p.scope.to_string(),
            aud: upstream.to_owned(),
            preferred_username: p.claims.preferred_username.clone(),
            email: p.claims.email.clone(),
            idp: p.claims.idp.clone(),
        };
        // A poisoned lock only means a panic elsewhere mid-insert; the map is still usable.
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(&key) {
            if c.exp - now > REFRESH_BEFORE && c.kid == ring.active_kid() {
                return Some(c.value.clone());
            }
        }
        let claims = IdentityClaims {
            iss: issuer.to_owned(),
            aud: key.aud.clone(),
            sub: key.sub.clone(),
            client_id: key.client_id.clone(),
            scope: key.scope.clone(),
            iat: now,
            exp: now + identity::LIFETIME,
            jti: random::id(authz.core().rng()),
            preferred_username: key.preferred_username.clone(),
            email: key.email.clone(),
            idp: key.idp.clone(),
        };
        let value = HeaderValue::from_str(&identity::mint(&ring, &claims)).ok()?;
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, c| c.exp - now > REFRESH_BEFORE);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Cached {
                value: value.clone(),
                kid: ring.active_kid().to_owned(),
                exp: claims.exp,
            },
        );
        Some(value)
    }

    /// How many assertions are cached.
    pub fn len(&self) -> usize {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_authz::clock::FixedClock;
    use portcullis_authz::{AuthzConfig, OsRandom};
    use std::sync::Arc;

    fn principal(sub: &str, scope: &str) -> VerifiedToken {
        crate::guard::test_principal(sub, "c", scope)
    }

    #[tokio::test]
    async fn assertions_are_cached_until_near_expiry_and_resigned_after_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("db").display());
        let store = portcullis_store::open(&url, &Default::default())
            .await
            .expect("store");
        let clock = Arc::new(FixedClock::new(1_000));
        let issuer = "http://127.0.0.1:1";
        let config: AuthzConfig =
            crate::config::ServerConfig::new(crate::config::parse_issuer(issuer).expect("issuer"))
                .authz_config(issuer, "http://127.0.0.1:1/mcp");
        let authz = Authz::new(store, clock.clone(), Arc::new(OsRandom), config)
            .await
            .expect("authz");
        let signer = IdentitySigner::default();
        let up = "http://127.0.0.1:2/mcp";
        let alice = principal("alice", "mcp:tools");
        let first = signer.header(&authz, issuer, up, &alice).expect("header");
        let text = first.to_str().expect("ascii").to_owned();
        let claims =
            identity::verify(&authz.keys().ring(), &text, issuer, up, 1_000).expect("verifies");
        assert_eq!(
            (
                claims.sub.as_str(),
                claims.client_id.as_str(),
                claims.scope.as_str()
            ),
            ("alice", "c", "mcp:tools")
        );
        assert_eq!(claims.exp, 1_000 + identity::LIFETIME);
        assert_eq!(
            signer.header(&authz, issuer, up, &alice),
            Some(first.clone())
        );
        // Another scope, subject or upstream: another assertion.
        let more = principal("alice", "mcp:tools mcp:admin");
        assert_ne!(
            signer.header(&authz, issuer, up, &more),
            Some(first.clone())
        );
        let bob = principal("bob", "mcp:tools");
        assert_ne!(signer.header(&authz, issuer, up, &bob), Some(first.clone()));
        let other = "http://127.0.0.1:3/mcp";
        assert_ne!(
            signer.header(&authz, issuer, other, &alice),
            Some(first.clone())
        );
        // The same subject named otherwise (signed in through an identity provider): its own assertion, which
        // carries the identity claims.
        let mut carol = alice.clone();
        carol.claims.preferred_username = Some("carol".into());
        carol.claims.email = Some("carol@example.com".into());
        carol.claims.idp = Some("corp".into());
        let named = signer.header(&authz, issuer, up, &carol).expect("header");
        assert_ne!(named, first);
        let claims = identity::verify(
            &authz.keys().ring(),
            named.to_str().expect("ascii"),
            issuer,
            up,
            1_000,
        )
        .expect("verifies");
        assert_eq!(
            (claims.preferred_username, claims.email, claims.idp),
            (
                Some("carol".into()),
                Some("carol@example.com".into()),
                Some("corp".into())
            )
        );
        assert_eq!(signer.len(), 5);
        // Still reused while more than REFRESH_BEFORE seconds remain, re-signed after.
        clock.advance(identity::LIFETIME - REFRESH_BEFORE - 1);
        assert_eq!(
            signer.header(&authz, issuer, up, &alice),
            Some(first.clone())
        );
        clock.advance(1);
        let second = signer.header(&authz, issuer, up, &alice).expect("header");
        assert_ne!(second, first);
        // A rotated key: re-signed with the new kid at once.
        authz.keys().rotate().await.expect("rotate");
        let third = signer.header(&authz, issuer, up, &alice).expect("header");
        assert_ne!(third, second);
        let kid = portcullis_authz::access_token::kid_of(third.to_str().expect("ascii"));
        assert_eq!(kid.as_deref(), Some(authz.keys().ring().active_kid()));
    }
}
