//! Authorization-server logic for Portcullis, with no I/O of its own: the clock, randomness and storage are
//! injected, so every rule here is testable with a fixed clock and an in-memory store.
//!
//! # Layout
//! - [`config`]: lifetimes, issuer, resource and the scope catalogue the logic works with.
//! - [`clock`], [`random`]: the injected time and randomness.
//! - [`secret`]: secret newtypes (redacted `Debug`) and token hashing for storage at rest.
//! - [`store`]: the storage traits (one per aggregate) and their record types; `portcullis-store` implements them.
//! - [`error`]: the one error enum of this layer; each variant knows its RFC error code.
//! - [`registration`]: dynamic client registration policy (RFC 7591).
//! - [`client_id_metadata`]: Client ID Metadata Documents (URL `client_id`s); the fetching is injected.
//! - [`registrations`]: [`registrations::Registrations`], the registration service (register, client lookup,
//!   CIMD resolution, the client cache) on top of the two policy modules above; [`Authz`] delegates to it.
//! - [`client_auth`]: token-endpoint client authentication (RFC 6749 §2.3, OAuth 2.1 §2.4).
//! - [`client_cache`]: the short-lived cache of registered clients that client authentication reads.
//! - [`authorize`]: authorization request parsing and checks (RFC 6749 §4.1.1, OAuth 2.1 §4.1.1), code issuing.
//! - [`token`]: the grants (`authorization_code`, `refresh_token`) and token issuing.
//! - [`revocation`]: token revocation (RFC 7009).
//! - [`jwt`], [`keys`], [`access_token`]: ES256 JWS, the signing key ring, and RFC 9068 access tokens.
//! - [`identity`]: short-lived signed identity assertions a gateway sends its upstream.
//! - [`password`], [`users`], [`session`], [`csrf`]: end-user accounts, login sessions and CSRF tokens.
//! - [`service`]: [`Authz`], the handle that ties the above together for the HTTP layer.

pub mod access_token;
pub mod authorize;
pub mod client_auth;
pub mod client_cache;
pub mod client_id_metadata;
pub mod clock;
pub mod config;
pub mod csrf;
pub mod error;
pub mod identity;
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
pub mod store;
pub mod token;
pub mod users;

#[cfg(test)]
pub(crate) mod testing;

pub use clock::{Clock, SystemClock};
pub use config::AuthzConfig;
pub use error::AuthzError;
pub use random::{OsRandom, Random, ThreadRandom};
pub use service::Authz;
pub use store::{Storage, StoreError};
