//! The Portcullis client: everything a program needs to use an OAuth-protected remote MCP server.
//!
//! # Layout
//! - [`error`]: the one error type; every message says what happened and what to do.
//! - [`secret`]: secret newtypes (tokens, client secret, code) whose `Debug` is redacted.
//! - [`url_check`]: which URLs the client will talk to or open (`https:`, or `http:` on loopback).
//! - [`discovery`]: RFC 9728 protected resource metadata, then RFC 8414 / OIDC authorization server metadata, with the
//!   MCP 2025-03-26 fallbacks.
//! - [`registration`]: pre-registered credentials, Client ID Metadata Documents, or RFC 7591 dynamic registration.
//! - [`authorize`]: the authorization request (RFC 6749 §4.1, PKCE RFC 7636, RFC 8707 `resource`) and the checks of
//!   its response (`state`, RFC 9207 `iss`).
//! - [`browser`]: opening the authorization URL safely.
//! - [`callback`]: the loopback redirect listener (RFC 8252 §7.3).
//! - [`token`]: the token endpoint (code exchange, refresh) and revocation (RFC 7009), with the registered client
//!   authentication.
//! - [`cache`]: the on-disk token and registration cache, written atomically, mode 0600, locked around refresh.
//! - [`auth`]: the [`Authenticator`] that ties the above together: a valid token on demand, login, refresh, step-up,
//!   logout.
//! - [`transport`]: the Streamable HTTP transport (JSON or SSE responses, sessions), without authorization; [`mcp`]:
//!   a small MCP client on top of it with the 401 / 403 retry rules.
//! - [`modern`]: MCP 2026-07-28 wire values without I/O: the `_meta` envelope, the `Mcp-Method`/`Mcp-Name`/
//!   `Mcp-Param-*` headers and their encoding, modern error codes, era detection, `input_required` results.
//! - [`calls`]: the MCP operations of the client: 2026-07-28 first with `initialize` as the fallback, tools
//!   (invalid `x-mcp-header` tools left out), calls with their custom headers, multi round-trip requests.
//! - [`input`]: who answers a server's input requests (given answers, a terminal prompt), or the error naming them.
//! - [`probe`]: the unauthenticated requests `login` makes to find the server's challenge.
//! - [`protocol`]: the MCP wire values (`Accept`, the `initialize` parameters) the probe and the client share.
//! - [`bridge`]: stdio ↔ Streamable HTTP, for stdio-only MCP clients.
//! - [`identity`]: who an access token names (`preferred_username`, `email`, `idp`), decoded for display only.

pub mod auth;
pub mod authorize;
pub mod bridge;
pub mod browser;
pub mod cache;
pub mod callback;
pub mod calls;
pub mod discovery;
pub mod error;
pub mod identity;
pub mod input;
pub mod mcp;
pub mod modern;
pub mod probe;
pub mod protocol;
pub mod registration;
pub mod secret;
pub mod token;
pub mod transport;
pub mod url_check;

#[cfg(test)]
pub(crate) mod mock;

pub use auth::{Authenticator, LoginOptions};
pub use error::{Error, Result};

/// The `User-Agent` the client sends.
pub const USER_AGENT: &str = concat!("portcullis/", env!("CARGO_PKG_VERSION"));

/// Builds the HTTP client every module uses: no redirects are followed (a metadata or token response that
/// redirects is treated as a failure, not followed to another host), with sensible timeouts.
pub fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(15))
        .build()
        .map_err(|e| Error::Http {
            url: String::new(),
            reason: e.to_string(),
        })
}
