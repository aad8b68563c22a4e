//! Wire types and parsers shared by every Portcullis role (authorization server, resource server, client).
//!
//! # Layout
//! - [`error`]: OAuth error codes and the RFC 6749 §5.2 / RFC 7591 §3.2.2 error body.
//! - [`pkce`]: `code_verifier` / `code_challenge` (RFC 7636), S256 only.
//! - [`scope`]: scope strings (RFC 6749 §3.3).
//! - [`redirect_uri`]: redirect URI parsing, registration rules and exact matching (RFC 8252, RFC 9700 §4.1).
//! - [`redirect_scheme`]: `PrivateUseSchemes`, the private-use schemes allowed besides reverse-domain ones.
//! - [`metadata`]: authorization server metadata (RFC 8414) and protected resource metadata (RFC 9728).
//! - [`registration`]: dynamic client registration request and response (RFC 7591).
//! - [`secret`]: `AuthorizationCode`, `RefreshToken`, `ClientSecret`, `AccessToken`: secrets with redacted `Debug`.
//! - [`token`]: token endpoint responses (RFC 6749 §5.1).
//! - [`introspection`]: the token introspection response (RFC 7662 §2.2).
//! - [`token_request`]: `TokenRequest`, the token endpoint's form parsed into one variant per grant.
//! - [`www_authenticate`]: `WWW-Authenticate: Bearer` challenges (RFC 6750 §3, RFC 9728 §5.1), built and parsed.
//! - [`well_known`]: where the well-known documents live for a given issuer or resource (RFC 8414 §3, RFC 9728 §3.1).
//! - [`b64`]: base64url without padding, the encoding every one of these specs uses.
//!
//! This crate does no I/O.

pub mod b64;
pub mod error;
pub mod introspection;
pub mod metadata;
pub mod pkce;
pub mod redirect_scheme;
pub mod redirect_uri;
pub mod registration;
pub mod scope;
pub mod secret;
pub mod token;
pub mod token_request;
pub mod well_known;
pub mod www_authenticate;

pub use error::{ErrorCode, ErrorResponse};
pub use pkce::{CodeChallenge, CodeVerifier};
pub use redirect_scheme::PrivateUseSchemes;
pub use redirect_uri::RedirectUri;
pub use scope::Scope;
pub use secret::{AccessToken, AuthorizationCode, ClientSecret, RefreshToken};
pub use token_request::{
    AuthorizationCodeRequest, RefreshTokenRequest, ResourceIndicator, TokenRequest,
    TokenRequestError,
};
