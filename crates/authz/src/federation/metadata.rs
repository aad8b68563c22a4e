//! [`ProviderMetadata`]: the provider's endpoints and capabilities, parsed from its OpenID Connect discovery
//! document (OpenID Connect Discovery 1.0 §3, §4) and checked against the configuration, or built from the
//! configured endpoints for a plain OAuth 2.0 provider.

use super::error::FederationError;
use super::preset::{Preset, ENTRA_TENANT_TEMPLATE};
use super::provider::{check_url, ClientAuthMethod, ProviderConfig, ProviderKind};
use serde::{Deserialize, Serialize};

/// RFC 8693 §2.1 `grant_type`.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// Largest discovery document accepted.
pub const MAX_METADATA_BYTES: usize = 256 * 1024;

/// The discovery URL for an issuer: the issuer without a trailing `/`, then
/// `/.well-known/openid-configuration` (OpenID Connect Discovery §4.1).
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// What Portcullis needs to know about a provider's endpoints and capabilities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderMetadata {
    /// The issuer identifier as the provider writes it; for Entra's multi-tenant endpoints it contains
    /// `{tenantid}` (see [`ProviderMetadata::issuer_matches`]). `None` for an OAuth 2.0 provider configured
    /// without an issuer.
    pub issuer: Option<String>,
    /// The authorization endpoint (RFC 6749 §3.1).
    pub authorization_endpoint: String,
    /// The token endpoint (RFC 6749 §3.2).
    pub token_endpoint: String,
    /// The userinfo endpoint (OpenID Connect Core §5.3), if any.
    pub userinfo_endpoint: Option<String>,
    /// The JWK Set URL (required for OpenID Connect).
    pub jwks_uri: Option<String>,
    /// GitHub's `/user/emails`.
    pub emails_endpoint: Option<String>,
    /// `code_challenge_methods_supported` (RFC 8414 §2), when published.
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// RFC 9207 §3: the provider sends `iss` in authorization responses, so its absence is an error.
    pub authorization_response_iss_parameter_supported: bool,
    /// The `alg`s the provider signs ID tokens with (OpenID Connect Discovery §3; default `RS256`).
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// `token_endpoint_auth_methods_supported`, when published (default `client_secret_basic`).
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// `grant_types_supported`, when published (RFC 8414 §2; tells whether RFC 8693 token exchange is offered).
    pub grant_types_supported: Option<Vec<String>>,
    /// `revocation_endpoint` (RFC 8414 §2, RFC 7009), when published: where upstream tokens can be revoked.
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
}

/// The members of a discovery document that Portcullis reads; the rest are ignored.
#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: Option<String>,
    userinfo_endpoint: Option<String>,
    jwks_uri: Option<String>,
    response_types_supported: Vec<String>,
    code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
    id_token_signing_alg_values_supported: Option<Vec<String>>,
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    grant_types_supported: Option<Vec<String>>,
    revocation_endpoint: Option<String>,
}

impl ProviderMetadata {
    /// Parses and checks a discovery document (OpenID Connect Discovery §4.3): the `issuer` equals the
    /// configured one exactly (or is Entra's `{tenantid}` template for a multi-tenant Entra issuer), the `code`
    /// response type is offered, S256 PKCE is offered when the methods are listed, the configured client
    /// authentication is offered when the methods are listed, and every endpoint is https (http only on a
    /// loopback host).
    pub fn from_discovery(config: &ProviderConfig, body: &[u8]) -> Result<Self, FederationError> {
        if body.len() > MAX_METADATA_BYTES {
            return Err(FederationError::metadata("document", "larger than 256 KiB"));
        }
        let doc: Discovery = serde_json::from_slice(body).map_err(|e| {
            FederationError::metadata("document", format!("not valid metadata JSON: {e}"))
        })?;
        let configured = config.issuer.as_deref().unwrap_or_default();
        if doc.issuer != configured && !entra_template_matches(config, &doc.issuer, configured) {
            return Err(FederationError::metadata(
                "issuer",
                format!(
                    "{:?} differs from the configured issuer {configured:?}",
                    doc.issuer
                ),
            ));
        }
        if !doc.response_types_supported.iter().any(|t| t == "code") {
            return Err(FederationError::metadata(
                "response_types_supported",
                "the authorization code flow (\"code\") is not offered",
            ));
        }
        let Some(token_endpoint) = doc.token_endpoint else {
            return Err(FederationError::metadata("token_endpoint", "missing"));
        };
        let Some(jwks_uri) = doc.jwks_uri else {
            return Err(FederationError::metadata("jwks_uri", "missing"));
        };
        let meta = Self {
            issuer: Some(doc.issuer),
            authorization_endpoint: doc.authorization_endpoint,
            token_endpoint,
            userinfo_endpoint: doc.userinfo_endpoint,
            jwks_uri: Some(jwks_uri),
            emails_endpoint: None,
            code_challenge_methods_supported: doc.code_challenge_methods_supported,
            authorization_response_iss_parameter_supported: doc
                .authorization_response_iss_parameter_supported,
            id_token_signing_alg_values_supported: doc
                .id_token_signing_alg_values_supported
                .unwrap_or_else(|| vec!["RS256".into()]),
            token_endpoint_auth_methods_supported: doc.token_endpoint_auth_methods_supported,
            grant_types_supported: doc.grant_types_supported,
            revocation_endpoint: doc.revocation_endpoint,
        };
        meta.check(config)?;
        Ok(meta)
    }

    /// The metadata of a plain OAuth 2.0 provider: its configured endpoints. Such providers publish no
    /// capabilities, so PKCE S256 is sent and assumed honoured, and `iss` is checked only when it comes.
    pub fn from_config(config: &ProviderConfig) -> Result<Self, FederationError> {
        let missing = |key: &str| {
            FederationError::config(
                config.name.as_str(),
                key,
                "is required with kind = \"oauth2\"",
            )
        };
        if config.kind != ProviderKind::OAuth2 {
            return Err(FederationError::config(
                config.name.as_str(),
                "kind",
                "OpenID Connect providers are configured from their discovery document",
            ));
        }
        Ok(Self {
            issuer: config.issuer.clone(),
            authorization_endpoint: config
                .authorization_endpoint
                .clone()
                .ok_or_else(|| missing("authorization_endpoint"))?,
            token_endpoint: config
                .token_endpoint
                .clone()
                .ok_or_else(|| missing("token_endpoint"))?,
            userinfo_endpoint: config.userinfo_endpoint.clone(),
            jwks_uri: None,
            emails_endpoint: config.emails_endpoint.clone(),
            code_challenge_methods_supported: None,
            authorization_response_iss_parameter_supported: false,
            id_token_signing_alg_values_supported: Vec::new(),
            token_endpoint_auth_methods_supported: None,
            grant_types_supported: None,
            revocation_endpoint: None,
        })
    }

    fn check(&self, config: &ProviderConfig) -> Result<(), FederationError> {
        if let Some(methods) = &self.code_challenge_methods_supported {
            if !methods.iter().any(|m| m == "S256") {
                return Err(FederationError::metadata(
                    "code_challenge_methods_supported",
                    "PKCE with S256 is not offered",
                ));
            }
        }
        let method = config.token_endpoint_auth_method;
        let offered = match &self.token_endpoint_auth_methods_supported {
            Some(methods) => methods.iter().any(|m| m == method.as_str()),
            None => method == ClientAuthMethod::ClientSecretBasic,
        };
        if !offered {
            return Err(FederationError::metadata(
                "token_endpoint_auth_methods_supported",
                format!(
                    "{} is not offered; set token_endpoint_auth_method to one that is",
                    method.as_str()
                ),
            ));
        }
        let endpoints = [
            ("authorization_endpoint", Some(&self.authorization_endpoint)),
            ("token_endpoint", Some(&self.token_endpoint)),
            ("userinfo_endpoint", self.userinfo_endpoint.as_ref()),
            ("jwks_uri", self.jwks_uri.as_ref()),
            ("revocation_endpoint", self.revocation_endpoint.as_ref()),
        ];
        for (field, value) in endpoints {
            if let Some(value) = value {
                check_url(value, false).map_err(|r| FederationError::metadata(field, r))?;
            }
        }
        Ok(())
    }

    /// Whether `found` is this provider's issuer (RFC 9207 §2.4, OpenID Connect Core §3.1.3.7 step 2). For an
    /// issuer with Entra's `{tenantid}`, `tid` (the ID token's claim) is substituted; without a `tid` (an
    /// authorization response's `iss`), any single tenant path segment matches and the ID token pins it later.
    pub fn issuer_matches(&self, found: &str, tid: Option<&str>) -> bool {
        let Some(issuer) = &self.issuer else {
            return false;
        };
        let Some((prefix, suffix)) = issuer.split_once(ENTRA_TENANT_TEMPLATE) else {
            return issuer == found;
        };
        match tid {
            Some(tid) => is_tenant_id(tid) && found == format!("{prefix}{tid}{suffix}"),
            None => found
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(suffix))
                .is_some_and(is_tenant_id),
        }
    }

    /// Whether the provider signs ID tokens with `alg` (an empty list, from a configured provider, allows all).
    pub fn signs_with(&self, alg: &str) -> bool {
        self.id_token_signing_alg_values_supported.is_empty()
            || self
                .id_token_signing_alg_values_supported
                .iter()
                .any(|a| a == alg)
    }

    /// Whether the provider offers RFC 8693 token exchange (when it lists its grant types at all).
    pub fn offers_token_exchange(&self) -> Option<bool> {
        self.grant_types_supported
            .as_ref()
            .map(|g| g.iter().any(|t| t == TOKEN_EXCHANGE_GRANT))
    }
}

/// An Entra tenant id as it appears in issuers: a GUID (or, leniently, any `[A-Za-z0-9-]` segment).
fn is_tenant_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Entra's multi-tenant endpoints (`common`, `organizations`, `consumers` or a tenant id) publish an issuer
/// with `{tenantid}`: accepted for the Microsoft preset when it equals the configured issuer with the tenant
/// segment replaced by `{tenantid}`.
fn entra_template_matches(config: &ProviderConfig, discovered: &str, configured: &str) -> bool {
    if config.preset != Some(Preset::Microsoft) || !discovered.contains(ENTRA_TENANT_TEMPLATE) {
        return false;
    }
    let (d, c): (Vec<&str>, Vec<&str>) = (
        discovered.split('/').collect(),
        configured.split('/').collect(),
    );
    d.len() == c.len()
        && d.iter()
            .zip(&c)
            .all(|(d, c)| d == c || (*d == ENTRA_TENANT_TEMPLATE && is_tenant_id(c)))
        && d.iter().filter(|s| **s == ENTRA_TENANT_TEMPLATE).count() == 1
}

#[cfg(test)]
mod tests;
