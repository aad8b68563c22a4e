//! Federation at run time: signing users in through upstream identity providers (issue 13;
//! docs/federation.md).
//!
//! # Layout
//! - [`runtime`]: [`Runtime`], built at start when `[[identity_providers]]` exist: each provider's checked
//!   configuration and discovered metadata, the [`IdpClient`](crate::outbound::idp::IdpClient), the vault
//!   sealing upstream states and tokens, `link_by_verified_email`.
//! - [`start`]: `GET <issuer path>/idp/{name}/start?<authorize query>` (checks the authorization request, seals
//!   the pending login, binds it to the browser with a cookie, redirects to the provider).
//! - [`callback`]: `GET <issuer path>/idp/{name}/callback` (the provider's answer → a Portcullis session → back to
//!   `/authorize` with the original request).
//! - [`pages`]: the error pages of both.
//! - [`scopes`]: `scope_from_groups` at the authorization endpoint (gated scopes need an entitlement).
//! - [`upstream_tokens`]: the users' tokens at the providers (vault, refresh with one lease, caches), for the
//!   gateway and the refresh grant's deprovisioning check.

pub mod callback;
pub mod pages;
pub mod runtime;
pub mod scopes;
pub mod start;
pub mod upstream_tokens;

#[cfg(test)]
mod tests;

pub use runtime::{Provider, Runtime, RuntimeError};
