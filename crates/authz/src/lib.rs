//! Authorization-server logic for Portcullis, with no I/O of its own: the clock, randomness and storage are
//! injected, so every rule here is testable with a fixed clock and an in-memory store.
//!
//! # Layout
//! - [`config`]: lifetimes, issuer, resource and the scope catalogue the logic works with.
//! - [`database_url`]: `redact_url`, database URLs without their passwords, for messages and logs.
//! - [`clock`], [`random`]: the injected time and randomness.
//! - [`shared`]: [`shared::Core`], the dependencies the services share (storage, clock, randomness, configuration).
//! - [`secret`]: secret newtypes (redacted `Debug`) and token hashing for storage at rest.
//! - [`store`]: the storage traits (one per aggregate) and their record types; `portcullis-store` implements them.
//! - [`error`]: the one error enum of this layer; each variant knows its RFC error code.
//! - [`federation`]: sign-in through upstream identity providers (OpenID Connect, OAuth 2.0): configuration,
//!   discovery, the upstream authorization request and callback, ID token validation, identity and policy.
//! - [`federated_users`]: [`federated_users::FederatedUsers`], the local user of a sign-in through a provider
//!   (known identity, optional link by verified email, or a new user).
//! - [`registration`]: dynamic client registration policy (RFC 7591).
//! - [`display_text`]: which characters text shown to people may hold (no controls, bidirectional or invisible
//!   formatting characters; Unicode TR36).
//! - [`client_id_metadata`]: Client ID Metadata Documents (URL `client_id`s); the fetching is injected.
//! - [`client_auth`]: token-endpoint client authentication (RFC 6749 §2.3, OAuth 2.1 §2.4): credentials, check.
//! - [`client_cache`]: the short-lived cache of registered clients that client authentication reads.
//! - [`client_reaping`]: which stored clients are deleted as dead registrations (pure; the stores run it in SQL).
//! - [`registrations`]: [`registrations::Registrations`], the registration service (register, client lookup,
//!   CIMD resolution, client authentication, removal, the client cache) on top of the modules above.
//! - [`authorize`]: authorization request types and rules (RFC 6749 §4.1.1, OAuth 2.1 §4.1.1);
//!   [`authorizations`]: [`authorizations::Authorizations`], the service (request checks, consent, codes).
//! - [`jwt`], [`keys`], [`access_token`]: ES256 JWS, the signing key ring and [`keys::Keys`], the key service
//!   (load, reload, rotate), and RFC 9068 access tokens.
//! - [`token`]: [`token::Tokens`], the token service: the grants (`authorization_code`, `refresh_token`) and
//!   token issuing.
//! - [`revocation`]: [`revocation::Revoker`], token revocation (RFC 7009).
//! - [`introspection`]: [`introspection::Introspector`], token introspection (RFC 7662) and who may see what.
//! - [`identity`]: short-lived signed identity assertions a gateway sends its upstream.
//! - [`password`], [`users`], [`csrf`]: passwords, account rules, CSRF tokens; [`session`]:
//!   [`session::Sessions`], the login session and account service.
//! - [`vault`]: AES-256-GCM sealing of upstream tokens and pending upstream sign-ins (the token vault), key ids
//!   and the key text format.
//! - [`service`]: [`Authz`], the bundle that builds the services once and hands them out.

pub mod access_token;
pub mod authorizations;
pub mod authorize;
pub mod client_auth;
pub mod client_cache;
pub mod client_id_metadata;
pub mod client_reaping;
pub mod clock;
pub mod config;
pub mod csrf;
pub mod database_url;
pub mod display_text;
pub mod error;
pub mod federated_users;
pub mod federation;
pub mod identity;
pub mod introspection;
pub mod jwt;
pub mod keys;
pub mod password;
pub mod random;
pub mod registration;
pub mod registrations;
pub mod revocation;
pub mod secret;
pub mod service;
pub mod session;
pub mod shared;
pub mod store;
pub mod token;
pub mod users;
pub mod vault;

#[cfg(test)]
pub(crate) mod testing;

pub use clock::{Clock, SystemClock};
pub use config::AuthzConfig;
pub use error::AuthzError;
pub use random::{OsRandom, Random, ThreadRandom};
pub use service::Authz;
pub use store::{Storage, StoreError};
