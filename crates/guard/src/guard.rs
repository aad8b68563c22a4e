//! [`Guard`]: one protected resource of an external server: its [`GuardConfig`], the issuer's JWKS as the
//! [`crate::KeySource`], the one [`BearerCheck`] (verified-token cache included), the required scope, the
//! 401/403/503 answers and the RFC 9728 document.
//!
//! The cache ([`crate::cache`]) maps the SHA-256 of a token (never the token) to its verified claims until the
//! token's `exp`; a hit also needs the key that verified it to still be in the JWKS the guard holds, so a key
//! the issuer removed stops every cached token it signed at the next JWKS refresh. Only successes are cached.

pub use crate::check::{bearer_token, BearerCheck, VerifiedToken};
use crate::config::GuardConfig;
use crate::error::ConfigError;
use crate::introspection::Introspector;
use crate::jwks::JwksClient;
use crate::metadata;
use crate::refusal::Refusal;
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Response};
use portcullis_authz::access_token::{Leeway, TokenError};
use std::sync::Arc;

/// The guard: configuration, the JWKS client, the bearer check and the metadata document. Cheap to clone.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

struct Inner {
    config: GuardConfig,
    jwks: JwksClient,
    check: BearerCheck,
    introspector: Option<Introspector>,
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

impl Guard {
    /// A guard for `config`. Fetches nothing yet: the JWKS is fetched on the first token (call
    /// `guard.jwks().refresh().await` at start-up to fail fast instead).
    pub fn new(config: GuardConfig) -> Result<Self, ConfigError> {
        let jwks = JwksClient::new(&config)?;
        let check = BearerCheck::new(
            config.issuer.clone(),
            Leeway::uniform(config.leeway),
            Arc::new(jwks.clone()),
            config.cache_capacity,
        );
        let (metadata_url, metadata_path) = metadata::urls(&config.resource_url);
        let metadata_doc = metadata::document(&config);
        let introspector = config
            .introspection
            .clone()
            .map(|i| Introspector::new(i, config.http_timeout))
            .transpose()?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                jwks,
                check,
                introspector,
                metadata_url,
                metadata_path,
                metadata_doc,
            }),
        })
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

    /// Authenticates a request from its headers: the verified token, or why not (the scope of
    /// [`GuardConfig::require_scope`] checked after the token).
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<VerifiedToken>, Refusal> {
        let c = &self.inner.config;
        let now = c.clock.now();
        let verified = self.inner.check.check(headers, &c.resource, now).await?;
        if let Some(introspector) = &self.inner.introspector {
            let token = bearer_token(headers)?;
            match introspector.active(token, verified.claims.exp, now).await {
                Ok(true) => {}
                Ok(false) => return Err(Refusal::InvalidToken(TokenError::Revoked)),
                Err(e) => return Err(Refusal::IntrospectionUnavailable(e)),
            }
        }
        if !verified.scope.includes(&c.required_scope) {
            return Err(Refusal::InsufficientScope(c.required_scope.clone()));
        }
        Ok(verified)
    }

    /// Number of cached introspection answers (0 without introspection).
    pub fn cached_introspections(&self) -> usize {
        self.inner
            .introspector
            .as_ref()
            .map_or(0, Introspector::cached_answers)
    }

    /// Number of cached verified tokens.
    pub fn cached_tokens(&self) -> usize {
        self.inner.check.cached_tokens()
    }
}
