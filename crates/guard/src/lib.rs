//! `portcullis-guard`: protect a Rust MCP server (or any axum/hyper service) with access tokens issued by a
//! Portcullis authorization server, in a few lines.
//!
//! The guard does what the MCP authorization specification asks of a protected resource:
//! - takes the bearer token only from the `Authorization` header (RFC 6750 §2.1; never the query string);
//! - verifies it strictly: ES256 only, `typ` `at+jwt`, `iss` = the issuer, `aud` = this resource, `exp`/`nbf`
//!   with a small leeway (RFC 9068 §4, RFC 8725 §3.1), reusing the verifier of `portcullis-authz`;
//! - answers 401 with `WWW-Authenticate: Bearer resource_metadata="…", scope="…"` (plus `error="invalid_token"`
//!   when a token was sent) and 403 `insufficient_scope` (RFC 6750 §3.1, RFC 9728 §5.1);
//! - serves the RFC 9728 protected resource metadata at `/.well-known/oauth-protected-resource<path>`;
//! - fetches the issuer's JWKS (from its RFC 8414 metadata, or an explicit URL), caches it, refetches on an
//!   unknown `kid` at most once per `unknown_kid_interval`, refreshes it when older than `max_age`;
//! - hands the verified claims to handlers as a [`VerifiedToken`] request extension.
//!
//! # Example
//!
//! ```no_run
//! use portcullis_guard::{Guard, GuardConfig};
//! use axum::{routing::post, Extension, Router};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = GuardConfig::new("https://auth.example.com", "https://mcp.example.com/mcp")?
//!     .require_scope("mcp:tools")?;
//! let guard = Guard::new(config)?;
//! let app = Router::new()
//!     .route(
//!         "/mcp",
//!         post(|Extension(t): Extension<portcullis_guard::VerifiedToken>| async move { t.claims.sub }),
//!     )
//!     .layer(guard.layer()) // 401/403 before the handler runs
//!     .merge(guard.metadata_router()); // GET /.well-known/oauth-protected-resource/mcp
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! With rmcp, wrap the `StreamableHttpService`: `Router::new().route_service("/mcp", service).layer(guard.layer())`
//! (see `examples/rmcp-protected`).
//!
//! # What a JWKS-only verifier cannot know
//!
//! The guard checks what the token and the issuer's public keys prove. It does not see revocations: a token
//! revoked at the issuer (`portcullis logout`, `clients remove`, refresh-token reuse) stays valid here until its
//! `exp`, so the access-token lifetime (`portcullis serve --access-token-ttl`, default 3600 s) bounds how long a
//! revoked token keeps working. Keep it short for resources where that matters. A key removed from the JWKS is
//! refused once the guard has refetched the set (at most `max_age` later; cached verifications of tokens signed
//! with it are dropped at that refetch).
//!
//! Where that is not enough, turn on introspection (RFC 7662): [`GuardConfig::with_introspection`] with an
//! [`IntrospectionConfig`] (the issuer's `introspection_endpoint` and a credential made with `portcullis clients
//! add NAME --introspection --resource <this resource>`). Each JWT-valid token is then also checked at the
//! issuer, answers cached for a few seconds (default 5), so a revocation is seen within that time; when the
//! issuer cannot answer the guard refuses with 503 rather than admit a token that may be revoked.
//!
//! # Layout
//! - [`check`]: [`BearerCheck`], the one bearer check (header, cache, signature, claims, revocation) shared by
//!   this crate's [`Guard`] and `portcullis serve`; [`VerifiedToken`]; the [`RevocationCheck`] trait.
//! - [`keys`]: the [`KeySource`] trait (the verifying key for a `kid`); the JWKS is one source, the key ring of
//!   `portcullis serve` the other.
//! - [`cache`]: [`TokenCache`], the sharded verified-token cache (SHA-256 keys, honours `exp`, bounded).
//! - [`config`]: [`GuardConfig`], the issuer, resource, required scopes and JWKS settings.
//! - [`jwks`]: [`JwksClient`], fetching, caching and refreshing the issuer's keys.
//! - [`verify`]: signature and key lookup on top of `portcullis_authz::jwt` and the one claim checker
//!   `portcullis_authz::access_token::check_claims`.
//! - [`introspection`]: [`IntrospectionConfig`], [`Introspector`]: optional RFC 7662 introspection for
//!   immediate revocation (bounded cache, bounded outbound calls, fails closed).
//! - [`guard`]: [`Guard`], one protected resource: a [`BearerCheck`] over the JWKS plus the required scope.
//! - [`refusal`]: [`Refusal`], the 401/403/503 answers and their challenges.
//! - [`layer`]: [`GuardLayer`] / [`GuardService`], the tower middleware.
//! - [`metadata`]: the RFC 9728 document and its route.
//! - [`error`]: [`ConfigError`] and [`JwksError`].

pub mod cache;
pub mod check;
pub mod config;
pub mod error;
pub mod guard;
pub mod introspection;
pub mod jwks;
pub mod keys;
pub mod layer;
pub mod metadata;
pub mod refusal;
mod urls;
pub mod verify;

#[cfg(test)]
mod testing;

pub use cache::TokenCache;
pub use check::{BearerCheck, RevocationCheck, VerifiedToken};
pub use config::{GuardConfig, JwksSource};
pub use error::{ConfigError, JwksError};
pub use guard::Guard;
pub use introspection::{IntrospectionConfig, IntrospectionError, Introspector};
pub use jwks::JwksClient;
pub use keys::{KeySource, VerifyingKey};
pub use layer::{Admit, GuardLayer, GuardService};
pub use portcullis_authz::access_token::{AccessClaims, Audience, Leeway, TokenError};
pub use portcullis_authz::clock::{Clock, FixedClock, SystemClock};
pub use portcullis_proto::Scope;
pub use refusal::Refusal;
