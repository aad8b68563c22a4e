//! The upstream authorization request (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2.1): [`PendingLogin`], the
//! per-sign-in secrets (`state`, `nonce`, PKCE verifier, RFC 7636 §4.1), and [`authorization_url`].
//!
//! The pending login is sealed in the vault and stored under the hash of its `state`; the same `state` is
//! bound to the browser by a cookie, so a callback is accepted only in the browser that started it
//! (RFC 6749 §10.12, RFC 9700 §4.7).

use super::error::FederationError;
use super::metadata::ProviderMetadata;
use super::preset::Preset;
use super::provider::{ProviderConfig, ProviderKind, ProviderName};
use super::serde_secret;
use crate::random::{self, Random};
use crate::secret::{Secret, TokenHash};
use portcullis_proto::{b64, CodeVerifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// How long a sign-in may take at the provider before its callback is refused.
pub const PENDING_LOGIN_TTL: i64 = 600;

/// One sign-in in flight at a provider. Its secrets are 256-bit random values; `Debug` shows none of them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogin {
    /// The provider signing the user in.
    pub provider: ProviderName,
    /// `state` (RFC 6749 §4.1.1): ties the callback to this sign-in and this browser.
    #[serde(with = "serde_secret")]
    pub state: Secret,
    /// `nonce` (OpenID Connect Core §3.1.2.1): ties the ID token to this sign-in.
    #[serde(with = "serde_secret")]
    pub nonce: Secret,
    /// The PKCE `code_verifier` (RFC 7636 §4.1).
    #[serde(with = "serde_secret")]
    pub verifier: Secret,
    /// When the sign-in started (seconds since the epoch).
    pub created_at: i64,
    /// The original `/authorize` query to return to once the user is signed in.
    #[serde(default)]
    pub authorize_query: String,
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("provider", &self.provider)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl PendingLogin {
    /// A new sign-in at `provider`: fresh `state`, `nonce` and verifier from `rng`.
    pub fn new(provider: ProviderName, rng: &dyn Random, now: i64) -> Self {
        Self {
            provider,
            state: random::token(rng),
            nonce: random::token(rng),
            verifier: random::token(rng),
            created_at: now,
            authorize_query: String::new(),
        }
    }

    /// The same, remembering the `/authorize` query to resume.
    pub fn with_authorize_query(mut self, query: impl Into<String>) -> Self {
        self.authorize_query = query.into();
        self
    }

    /// The hash the store keeps the sealed login under (the `state` itself is never stored).
    pub fn state_hash(&self) -> TokenHash {
        self.state.hash()
    }

    /// Whether the sign-in has been going on for longer than [`PENDING_LOGIN_TTL`].
    pub fn is_expired(&self, now: i64) -> bool {
        now >= self.created_at.saturating_add(PENDING_LOGIN_TTL)
    }

    /// The PKCE verifier as the token request sends it.
    pub fn code_verifier(&self) -> Result<CodeVerifier, FederationError> {
        // Always 43 base64url characters when made by `new`; a hand-made value is checked.
        CodeVerifier::parse(self.verifier.expose())
            .map_err(|e| FederationError::TokenResponse(format!("code verifier: {e}")))
    }

    /// The S256 `code_challenge` (RFC 7636 §4.2): `BASE64URL(SHA256(ASCII(code_verifier)))`.
    pub fn code_challenge(&self) -> String {
        b64::encode(Sha256::digest(self.verifier.expose().as_bytes()))
    }
}

/// The URL that sends the browser to the provider (RFC 6749 §4.1.1; OpenID Connect Core §3.1.2.1):
/// `response_type=code`, `client_id`, `redirect_uri`, `scope`, `state`, `nonce` (OpenID Connect only),
/// `code_challenge` with `S256` (RFC 7636 §4.3), and the preset's extras (Google: `hd` when exactly one domain
/// is allowed, `*` when several are, `access_type=offline` for a refresh token). A query already in the endpoint is kept
/// (RFC 6749 §3.1). `resource` is never sent (Entra refuses it together with scopes).
pub fn authorization_url(
    config: &ProviderConfig,
    metadata: &ProviderMetadata,
    pending: &PendingLogin,
    redirect_uri: &str,
) -> String {
    let challenge = pending.code_challenge();
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("response_type", "code")
        .append_pair("client_id", &config.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", &config.scopes.join(" "))
        .append_pair("state", pending.state.expose());
    if config.kind == ProviderKind::Oidc {
        query.append_pair("nonce", pending.nonce.expose());
    }
    query
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    if config.preset == Some(Preset::Google) {
        // One domain: preselect it; several: any Workspace account (`hd=*`); the ID token's `hd` is what counts.
        match config.allowed_domains.as_slice() {
            [] => {}
            [domain] => {
                query.append_pair("hd", domain);
            }
            _ => {
                query.append_pair("hd", "*");
            }
        }
        query.append_pair("access_type", "offline");
    }
    let endpoint = &metadata.authorization_endpoint;
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{sep}{}", query.finish())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::federation::testing::{oidc_config, oidc_metadata};
    use crate::testing::SeqRandom;

    #[test]
    fn pending_login_is_random_redacted_and_serialisable() {
        let rng = SeqRandom::default();
        let a = PendingLogin::new(ProviderName::parse("corp").unwrap(), &rng, 100);
        let b = PendingLogin::new(ProviderName::parse("corp").unwrap(), &rng, 100);
        assert_ne!(a.state, b.state);
        assert_ne!(a.state, a.nonce);
        assert_eq!(a.state.expose().len(), 43);
        let debug = format!("{a:?}");
        assert!(!debug.contains(a.state.expose()) && !debug.contains(a.nonce.expose()));
        assert!(!debug.contains(a.verifier.expose()));
        let a = a.with_authorize_query("client_id=x&state=y");
        let json = serde_json::to_string(&a).unwrap();
        let back: PendingLogin = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
        assert_eq!(back.state_hash(), a.state.hash());
        assert!(!a.is_expired(100 + PENDING_LOGIN_TTL - 1));
        assert!(a.is_expired(100 + PENDING_LOGIN_TTL));
    }

    #[test]
    fn authorization_url_carries_every_parameter() {
        let rng = SeqRandom::default();
        let config = oidc_config();
        let meta = oidc_metadata();
        let p = PendingLogin::new(config.name.clone(), &rng, 0);
        let url = authorization_url(&config, &meta, &p, "https://as.example/idp/corp/callback");
        let parsed = url::Url::parse(&url).unwrap();
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "portcullis");
        assert_eq!(q["redirect_uri"], "https://as.example/idp/corp/callback");
        assert_eq!(q["scope"], "openid email profile");
        assert_eq!(q["state"], p.state.expose());
        assert_eq!(q["nonce"], p.nonce.expose());
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"], p.code_challenge());
        let typed = portcullis_proto::CodeChallenge::s256(&p.code_verifier().unwrap());
        assert_eq!(typed.as_str(), p.code_challenge());
        assert!(!q.contains_key("resource") && !q.contains_key("hd"));
    }

    #[test]
    fn preset_extras_and_existing_query() {
        let rng = SeqRandom::default();
        let mut config = oidc_config();
        config.preset = Some(Preset::Google);
        config.allowed_domains = vec!["example.com".into()];
        let mut meta = oidc_metadata();
        meta.authorization_endpoint = "https://idp.example/auth?tenant=a".into();
        let p = PendingLogin::new(config.name.clone(), &rng, 0);
        let url = authorization_url(&config, &meta, &p, "https://as.example/cb");
        assert!(url.starts_with("https://idp.example/auth?tenant=a&response_type=code&"));
        assert!(url.contains("&hd=example.com&"));
        config.allowed_domains.push("example.org".into());
        let url = authorization_url(&config, &meta, &p, "https://as.example/cb");
        assert!(url.contains("&hd=*&") || url.contains("&hd=%2A&"), "{url}");
        config.kind = ProviderKind::OAuth2;
        let url = authorization_url(&config, &meta, &p, "https://as.example/cb");
        assert!(!url.contains("nonce="));
    }
}
