//! Federation: signing users in through upstream identity providers (OpenID Connect, or plain OAuth 2.0 with a
//! userinfo endpoint), with no I/O of its own. The server fetches (discovery, JWKS, token endpoint, userinfo)
//! and stores; everything it fetches is parsed and checked here.
//!
//! # Layout
//! - [`provider`], [`preset`]: the configured providers and what each preset fills in.
//! - [`metadata`]: the discovery document (OpenID Connect Discovery 1.0) → [`ProviderMetadata`].
//! - [`request`]: [`PendingLogin`] (`state`, `nonce`, PKCE) and the authorization URL (RFC 6749 §4.1.1,
//!   RFC 7636, OpenID Connect Core §3.1.2.1).
//! - [`callback`]: the authorization response, `state` and RFC 9207 `iss` checks.
//! - [`jwk`], [`id_token`]: the provider's JWK Set and ID token validation (OpenID Connect Core §3.1.3.7).
//! - [`tokens`]: token endpoint forms, client authentication, [`UpstreamTokens`] (RFC 6749 §5, RFC 8693).
//! - [`identity`]: [`ExternalIdentity`] from ID token claims or userinfo; [`policy`]: who may sign in, and the
//!   scopes their groups entitle them to.
//! - [`error`]: the one error enum, [`FederationError`].
//!
//! # A sign-in, step by step (the server's part in brackets)
//! 1. [`PendingLogin::new`], [`authorization_url`] (seal and store the login under its state's hash, set the
//!    cookie, redirect).
//! 2. [`Callback::parse`] (take the pending login by the cookie's state), [`check_callback`] → the code.
//! 3. [`authorization_code_form`] + [`client_authentication`] (POST to the token endpoint),
//!    [`UpstreamTokens::from_response`].
//! 4. OpenID Connect: [`verify_id_token`] (on [`FederationError::UnknownKey`], refetch the JWKS once and retry),
//!    then [`ExternalIdentity::from_id_token`]; OAuth 2.0: (GET userinfo) [`ExternalIdentity::from_userinfo`].
//! 5. [`check_policy`] → the entitled scopes (find or create the user, seal the tokens in the vault).

pub mod callback;
pub mod error;
pub mod id_token;
pub mod identity;
pub mod jwk;
pub mod metadata;
pub mod policy;
pub mod preset;
pub mod provider;
pub mod request;
mod serde_secret;
pub mod tokens;

#[cfg(test)]
mod recorded_tests;
#[cfg(test)]
pub(crate) mod testing;

pub use callback::{check_callback, Callback};
pub use error::FederationError;
pub use id_token::{verify_id_token, verify_refreshed_id_token, IdTokenClaims};
pub use identity::ExternalIdentity;
pub use jwk::JwkSet;
pub use metadata::{discovery_url, ProviderMetadata};
pub use policy::{check_policy, gated_scopes};
pub use preset::Preset;
pub use provider::{
    ClientAuthMethod, ProviderConfig, ProviderKind, ProviderName, ProviderSettings,
};
pub use request::{authorization_url, PendingLogin};
pub use tokens::{
    authorization_code_form, client_authentication, on_behalf_of_form, refresh_form,
    token_exchange_form, ClientAuthentication, UpstreamTokens,
};
