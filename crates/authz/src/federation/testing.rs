//! Fixtures for the federation tests.

#![allow(clippy::unwrap_used)]

use super::metadata::ProviderMetadata;
use super::provider::{ProviderConfig, ProviderSettings};
use super::request::PendingLogin;
use crate::testing::SeqRandom;

/// A plain OpenID Connect provider `corp` at `https://idp.example`.
pub(crate) fn oidc_settings() -> ProviderSettings {
    ProviderSettings {
        name: "corp".into(),
        display_name: Some("Corp SSO".into()),
        issuer: Some("https://idp.example".into()),
        client_id: "portcullis".into(),
        client_secret: Some("s3cret".into()),
        ..ProviderSettings::default()
    }
}

/// [`oidc_settings`] as a config.
pub(crate) fn oidc_config() -> ProviderConfig {
    oidc_settings().into_config().unwrap()
}

/// The discovery document of [`oidc_config`]'s provider.
pub(crate) fn discovery_json() -> serde_json::Value {
    serde_json::json!({
        "issuer": "https://idp.example",
        "authorization_endpoint": "https://idp.example/auth",
        "token_endpoint": "https://idp.example/token",
        "userinfo_endpoint": "https://idp.example/me",
        "jwks_uri": "https://idp.example/jwks",
        "response_types_supported": ["code", "id_token"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA", "PS256", "ES384"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "grant_types_supported": ["authorization_code", "refresh_token"]
    })
}

/// [`discovery_json`] parsed.
pub(crate) fn oidc_metadata() -> ProviderMetadata {
    ProviderMetadata::from_discovery(&oidc_config(), discovery_json().to_string().as_bytes()).unwrap()
}

/// A pending login at `corp`.
pub(crate) fn pending() -> PendingLogin {
    PendingLogin::new(oidc_config().name, &SeqRandom::default(), 1_000)
}
