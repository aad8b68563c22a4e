//! [`IdpClient`]: the server's HTTP client for upstream identity providers. It fetches and caches what providers
//! publish, and calls their token, userinfo and (GitHub) emails endpoints; everything it receives is parsed and
//! checked by [`portcullis_authz::federation`], which does no I/O.
//!
//! - Discovery (OpenID Connect Discovery 1.0 §4): `<issuer>/.well-known/openid-configuration` (on a 404,
//!   RFC 8414 §3.1's `/.well-known/oauth-authorization-server<issuer path>`), cached per
//!   provider for [`IdpSettings::metadata_ttl`] (1 h), served stale for up to [`IdpSettings::stale_limit`]
//!   (24 h) while the provider is down, concurrent misses coalesced into one fetch. A plain OAuth 2.0 provider's
//!   metadata is its configured endpoints (no fetch).
//! - Key sets (RFC 7517 §5): cached per `jwks_uri` for 1 h; an ID token with an unknown `kid` makes one refetch
//!   (OpenID Connect Core §10.1.1: the provider may have rotated), at most once per
//!   [`IdpSettings::min_refetch_interval`] (30 s), so forged `kid`s cannot make Portcullis hammer the provider.
//! - Token endpoint (RFC 6749 §3.2, in `token`): the authorization code exchange (§4.1.3, RFC 7636 §4.5),
//!   refresh (§6), RFC 8693 §2.1 token exchange, and RFC 7009 revocation, each with the configured client
//!   authentication (`client_secret_basic`, `client_secret_post`, or `private_key_jwt` signed by the
//!   [`AssertionSigner`] given at construction).
//! - Userinfo (OpenID Connect Core §5.3) and GitHub's `/user/emails`: JSON only (a signed or encrypted
//!   userinfo, `application/jwt`, is refused).
//!
//! Every call: https (http only on loopback), no redirects, 5 s to connect, 10 s in all, 256 KiB at most (see
//! `transport`). Errors are [`IdpError`]: no token or secret is ever in one, nor in a log line.

pub mod error;
pub mod settings;

mod cache;
mod token;
mod transport;

#[cfg(test)]
mod tests;

pub use error::IdpError;
pub use settings::IdpSettings;

use cache::{Cache, Policy};
use portcullis_authz::federation::tokens::ClientAssertionClaims;
use portcullis_authz::federation::{
    discovery_url, verify_id_token, verify_refreshed_id_token, ExternalIdentity, FederationError,
    IdTokenClaims, JwkSet, PendingLogin, Preset, ProviderConfig, ProviderKind, ProviderMetadata,
};
use portcullis_authz::secret::Secret;
use reqwest::{header, Method};
use std::fmt;
use std::sync::Arc;
use transport::{Call, Transport};
use url::Url;

/// Signs a `private_key_jwt` client assertion (RFC 7523 §2.2). `portcullis serve` passes one over the
/// authorization server's key ring: `|claims| tokens::sign_client_assertion(&authz.keys().ring(), claims)`
/// (the provider verifies it against Portcullis's published JWKS).
pub type AssertionSigner = dyn Fn(&ClientAssertionClaims) -> String + Send + Sync;

/// `Accept` for JSON endpoints.
const JSON: &str = "application/json";
/// `Accept` for GitHub's REST API (docs.github.com, "Getting started with the REST API").
const GITHUB_JSON: &str = "application/vnd.github+json";

/// The identity-provider client: one per server, cheap to clone (the HTTP clients and caches are shared).
#[derive(Clone)]
pub struct IdpClient {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    metadata: Arc<Cache<ProviderMetadata>>,
    jwks: Arc<Cache<JwkSet>>,
    signer: Option<Arc<AssertionSigner>>,
}

impl fmt::Debug for IdpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdpClient")
            .field("settings", self.settings())
            .field("assertion_signer", &self.inner.signer.is_some())
            .finish_non_exhaustive()
    }
}

impl IdpClient {
    /// A client with these limits; `signer` is needed only by providers using `private_key_jwt`. Fails only
    /// when the TLS backend cannot be initialised.
    pub fn new(
        settings: IdpSettings,
        signer: Option<Arc<AssertionSigner>>,
    ) -> Result<Self, reqwest::Error> {
        let policy = |ttl| Policy {
            ttl,
            stale_limit: settings.stale_limit,
            min_refetch: settings.min_refetch_interval,
        };
        let metadata = Cache::new(
            policy(settings.metadata_ttl),
            settings.ticker.clone(),
            "discovery document",
        );
        let jwks = Cache::new(
            policy(settings.jwks_ttl),
            settings.ticker.clone(),
            "key set",
        );
        Ok(Self {
            inner: Arc::new(Inner {
                transport: Transport::new(settings)?,
                metadata: Arc::new(metadata),
                jwks: Arc::new(jwks),
                signer,
            }),
        })
    }

    /// The limits in force.
    pub fn settings(&self) -> &IdpSettings {
        self.inner.transport.settings()
    }

    fn now(&self) -> i64 {
        self.settings().clock.now()
    }

    /// The provider's metadata: discovered (OpenID Connect Discovery 1.0 §4, checked by
    /// [`ProviderMetadata::from_discovery`]) and cached, or its configured endpoints for the OAuth 2.0 kind.
    pub async fn metadata(&self, cfg: &ProviderConfig) -> Result<Arc<ProviderMetadata>, IdpError> {
        if cfg.kind == ProviderKind::OAuth2 {
            return Ok(Arc::new(ProviderMetadata::from_config(cfg)?));
        }
        let Some(issuer) = cfg.issuer.as_deref() else {
            return Err(FederationError::Config {
                key: format!("identity_providers[{}].issuer", cfg.name.as_str()),
                reason: "is required for OpenID Connect".into(),
            }
            .into());
        };
        let url = discovery_url(issuer);
        let fallback = oauth_metadata_url(issuer);
        // Keyed by provider too: two providers may share an issuer with different client settings.
        let key = format!("{} {url}", cfg.name.as_str());
        let transport = self.inner.transport.clone();
        let config = cfg.clone();
        let result = self
            .inner
            .metadata
            .get(&key, false, move || async move {
                let first = transport.get_document(&parse_url(&url)?, JSON).await;
                let body = match (first, fallback) {
                    (Err(IdpError::BadResponse { status: 404, .. }), Some(fallback)) => {
                        transport.get_document(&parse_url(&fallback)?, JSON).await?
                    }
                    (other, _) => other?,
                };
                Ok(ProviderMetadata::from_discovery(&config, &body)?)
            })
            .await;
        log_failure(cfg.name.as_str(), "discovery", &result);
        result
    }

    /// The provider's key set (cached; `refresh` asks for a refetch, honoured at most once per
    /// [`IdpSettings::min_refetch_interval`], else the cached set is returned).
    pub async fn jwks(
        &self,
        md: &ProviderMetadata,
        refresh: bool,
    ) -> Result<Arc<JwkSet>, IdpError> {
        let Some(uri) = md.jwks_uri.clone() else {
            return Err(FederationError::Metadata {
                field: "jwks_uri".into(),
                reason: "missing".into(),
            }
            .into());
        };
        let transport = self.inner.transport.clone();
        let key = uri.clone();
        let result = self
            .inner
            .jwks
            .get(&key, refresh, move || async move {
                let body = transport.get_document(&parse_url(&uri)?, JSON).await?;
                Ok(JwkSet::parse(&body)?)
            })
            .await;
        log_failure(md.issuer.as_deref().unwrap_or_default(), "jwks", &result);
        result
    }

    /// Validates a sign-in's ID token (OpenID Connect Core §3.1.3.7, by [`verify_id_token`]); an unknown `kid`
    /// refetches the key set once (rate-limited, see [`IdpClient::jwks`]) and tries again.
    pub async fn validate_id_token(
        &self,
        id_token: &str,
        cfg: &ProviderConfig,
        md: &ProviderMetadata,
        pending: &PendingLogin,
    ) -> Result<IdTokenClaims, IdpError> {
        let now = self.now();
        self.with_jwks(md, |jwks| {
            verify_id_token(id_token, cfg, md, jwks, pending, now)
        })
        .await
    }

    /// Validates an ID token that came with a refresh (OpenID Connect Core §12.2: no `nonce`, same `sub`).
    pub async fn validate_refreshed_id_token(
        &self,
        id_token: &str,
        cfg: &ProviderConfig,
        md: &ProviderMetadata,
        original_sub: &str,
    ) -> Result<IdTokenClaims, IdpError> {
        let now = self.now();
        self.with_jwks(md, |jwks| {
            verify_refreshed_id_token(id_token, cfg, md, jwks, original_sub, now)
        })
        .await
    }

    async fn with_jwks<T>(
        &self,
        md: &ProviderMetadata,
        check: impl Fn(&JwkSet) -> Result<T, FederationError>,
    ) -> Result<T, IdpError> {
        let jwks = self.jwks(md, false).await?;
        match check(&jwks) {
            Err(FederationError::UnknownKey) => {
                let fresh = self.jwks(md, true).await?;
                if Arc::ptr_eq(&fresh, &jwks) {
                    return Err(FederationError::UnknownKey.into());
                }
                Ok(check(&fresh)?)
            }
            other => Ok(other?),
        }
    }

    /// The userinfo response (OpenID Connect Core §5.3; for the OAuth 2.0 kind, the configured endpoint), as
    /// the JSON object's bytes for [`ExternalIdentity::from_userinfo`]. Sent with `Authorization: Bearer`
    /// (RFC 6750 §2.1); JSON only. A refused token is an [`IdpError::Upstream`] with the challenge's `error`
    /// (`invalid_token`, RFC 6750 §3.1). The caller checks that its `sub` is the ID token's (§5.3.2).
    pub async fn userinfo(
        &self,
        md: &ProviderMetadata,
        access_token: &Secret,
    ) -> Result<Vec<u8>, IdpError> {
        let Some(endpoint) = md.userinfo_endpoint.as_deref() else {
            return Err(
                FederationError::Userinfo("the provider has no userinfo endpoint".into()).into(),
            );
        };
        let github = md.emails_endpoint.is_some();
        let accept = if github { GITHUB_JSON } else { JSON };
        let body = self.bearer_get(endpoint, accept, access_token).await?;
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(serde_json::Value::Object(_)) => Ok(body),
            _ => Err(IdpError::BadResponse {
                status: 200,
                reason: "the userinfo response is not a JSON object".into(),
            }),
        }
    }

    /// GitHub's `GET /user/emails` (docs.github.com, "REST API endpoints for emails"), as the JSON array's
    /// bytes for [`ExternalIdentity::from_userinfo`] (which keeps the verified primary address only). The
    /// endpoint is the metadata's `emails_endpoint` (the GitHub preset), else [`IdpSettings::github_api`].
    pub async fn github_emails(
        &self,
        md: &ProviderMetadata,
        access_token: &Secret,
    ) -> Result<Vec<u8>, IdpError> {
        let endpoint = md.emails_endpoint.clone().unwrap_or_else(|| {
            format!(
                "{}/user/emails",
                self.settings().github_api.trim_end_matches('/')
            )
        });
        let body = self
            .bearer_get(&endpoint, GITHUB_JSON, access_token)
            .await?;
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(serde_json::Value::Array(_)) => Ok(body),
            _ => Err(IdpError::BadResponse {
                status: 200,
                reason: "the emails response is not a JSON array".into(),
            }),
        }
    }

    /// The identity of a plain OAuth 2.0 sign-in: userinfo (and, for the GitHub preset, `/user/emails`),
    /// through [`ExternalIdentity::from_userinfo`].
    pub async fn userinfo_identity(
        &self,
        cfg: &ProviderConfig,
        md: &ProviderMetadata,
        access_token: &Secret,
    ) -> Result<ExternalIdentity, IdpError> {
        let result = async {
            let info = self.userinfo(md, access_token).await?;
            let emails = if cfg.preset == Some(Preset::GitHub) {
                Some(self.github_emails(md, access_token).await?)
            } else {
                None
            };
            Ok(ExternalIdentity::from_userinfo(
                cfg,
                &info,
                emails.as_deref(),
            )?)
        }
        .await;
        log_failure(cfg.name.as_str(), "userinfo", &result);
        result
    }

    async fn bearer_get(
        &self,
        endpoint: &str,
        accept: &'static str,
        access_token: &Secret,
    ) -> Result<Vec<u8>, IdpError> {
        let url = parse_url(endpoint)?;
        let reply = self
            .inner
            .transport
            .send(Call {
                method: Method::GET,
                url: &url,
                accept,
                headers: vec![(
                    header::AUTHORIZATION,
                    format!("Bearer {}", access_token.expose()),
                )],
                form: None,
                error_statuses: &[],
                json_on_success: true,
            })
            .await?;
        Ok(reply.body)
    }
}

impl Transport {
    /// A published document (discovery, key set): `GET`, status 200, JSON.
    async fn get_document(&self, url: &Url, accept: &'static str) -> Result<Vec<u8>, IdpError> {
        let reply = self
            .send(Call {
                method: Method::GET,
                url,
                accept,
                headers: Vec::new(),
                form: None,
                error_statuses: &[],
                json_on_success: true,
            })
            .await?;
        Ok(reply.body)
    }
}

/// RFC 8414 §3.1: `/.well-known/oauth-authorization-server` inserted between the issuer's host and its path,
/// the fallback when `<issuer>/.well-known/openid-configuration` is 404 (`None` if the issuer does not parse).
fn oauth_metadata_url(issuer: &str) -> Option<String> {
    let url = Url::parse(issuer).ok()?;
    let path = url.path().trim_end_matches('/');
    let mut out = url.clone();
    out.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    Some(out.to_string())
}

/// An endpoint URL from metadata (already checked by `authz`; a failure here is a bad document).
fn parse_url(s: &str) -> Result<Url, IdpError> {
    Url::parse(s).map_err(|_| IdpError::BadResponse {
        status: 0,
        reason: "an endpoint URL does not parse".into(),
    })
}

/// One log line per failed call: a provider that is down or slow is a 503-class event (`warn`); a refusal is
/// `info` (it is the user's or the configuration's business). Neither names a token or secret.
fn log_failure<T>(provider: &str, op: &'static str, result: &Result<T, IdpError>) {
    let Err(e) = result else { return };
    if e.is_unavailable() {
        tracing::warn!(provider, op, code = e.code(), status = 503, error = %e, "identity provider unavailable");
    } else {
        tracing::info!(provider, op, code = e.code(), error = %e, "identity provider call failed");
    }
}
