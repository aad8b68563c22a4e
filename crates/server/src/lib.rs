//! The Portcullis HTTP server: the OAuth 2.1 authorization server and the OAuth-protected MCP endpoint, on one
//! origin.
//!
//! # Layout
//! - [`settings`]: the layered settings of `serve` (TOML file → `PORTCULLIS_*` environment → flags).
//! - [`assembly`]: settings → listener, configuration → `Authz` → [`AppState`] → serving until shutdown.
//! - [`config`]: the typed server configuration (issuer, paths, lifetimes, limits).
//! - [`connections`]: the accept loop under the router: the connection cap and the header read timeout.
//! - [`routes`]: every route path, built once from the issuer; the metadata documents use the same values.
//! - [`state`]: [`AppState`], shared by every handler.
//! - [`error`]: the one place errors become HTTP responses (status, RFC JSON body, headers).
//! - [`form`]: `application/x-www-form-urlencoded` bodies with repeated parameters refused.
//! - [`cors`]: CORS for the routes scripts on other origins fetch.
//! - [`metadata`]: RFC 8414 / OIDC discovery, RFC 9728 protected resource metadata, the JWKS.
//! - [`register`]: `POST /register` (RFC 7591).
//! - [`outbound`]: the server's network clients: [`outbound::cimd`] fetches Client ID Metadata Documents (URL
//!   `client_id`s) with an SSRF guard, limits and a cache.
//! - [`authorize`], [`pages`], [`cookies`], [`logout`]: `GET /authorize`, the login and consent pages and their POSTs,
//!   signing out.
//! - [`login_throttle`]: failed sign-ins per (account, address) and per address, reserved before each check;
//!   [`password_checks`]: the bounded pool of threads that run argon2id (503 beyond it).
//! - [`token`], [`client_auth`]: `POST /token` and client authentication.
//! - [`revoke`]: `POST /revoke` (RFC 7009).
//! - [`introspect`]: `POST /introspect` (RFC 7662), for resource servers.
//! - [`guard`], [`revocations`]: the guard layer of the MCP endpoint and each gateway route (the one
//!   `portcullis_guard::BearerCheck`, answered with each resource's challenge) and the revocation set it honours;
//!   [`revocation_push`]: other instances' revocations pushed to that set (PostgreSQL `LISTEN`/`NOTIFY`).
//! - [`local_keys`]: the local key ring as the guard's `KeySource` (reload on an unknown `kid`, rate-limited).
//! - [`mcp`]: the built-in MCP server (Streamable HTTP, JSON-RPC 2.0).
//! - [`gateway`]: gateway mode: the MCP endpoint forwards to an upstream MCP server after the bearer check.
//! - [`health`]: `/livez`, `/readyz`.
//! - [`background`]: periodic jobs (revocation sync, key reload, purge of expired rows).
//! - [`federation`]: sign-in through upstream identity providers: the [`federation::Runtime`] (providers,
//!   metadata, HTTP client, vault) and the `/idp/{name}/start` and `/idp/{name}/callback` routes.
//! - [`vault_key`]: loading the upstream token vault's keys (key file, `PORTCULLIS_VAULT_KEY`, or generated
//!   beside the SQLite database) and re-encrypting the sealed rows under a new key.
//!
//! [`app`] builds the router (tests drive it in-process); [`serve`] runs it on a bound listener until shutdown.

pub mod assembly;
pub mod authorize;
pub mod background;
pub mod client_auth;
pub mod config;
pub mod connections;
pub mod cookies;
pub mod cors;
pub mod error;
pub mod federation;
pub mod form;
pub mod gateway;
pub mod guard;
mod guesses;
pub mod health;
pub mod introspect;
pub mod limits;
pub mod local_keys;
pub mod login_throttle;
pub mod logout;
pub mod mcp;
pub mod metadata;
pub mod outbound;
pub mod pages;
pub mod password_checks;
pub mod register;
pub mod respond;
pub mod revocation_push;
pub mod revocations;
pub mod revoke;
pub mod routes;
pub mod settings;
pub mod state;
pub mod token;
pub mod vault_key;

pub use config::ServerConfig;
pub use state::AppState;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower_http::set_header::SetResponseHeaderLayer;

/// Largest header section accepted, names and values (RFC 6585 §5: 431 beyond it).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Longest request URI accepted (RFC 9110 §15.5.15: 414 beyond it).
pub const MAX_URI_LEN: usize = 8192;
/// Largest request body accepted anywhere.
pub const MAX_BODY: usize = 64 * 1024;

/// Builds the router for `state`.
pub fn app(state: Arc<AppState>) -> Router {
    let r = state.routes.clone();
    let mut router = Router::new()
        .route(
            &r.as_metadata,
            cors::route(get(metadata::authorization_server)),
        )
        .route(
            &r.oidc_metadata,
            cors::route(get(metadata::authorization_server)),
        )
        .route(&r.prm, cors::route(get(metadata::protected_resource)))
        .route(&r.prm_root, cors::route(get(metadata::protected_resource)))
        .route(&r.jwks, cors::route(get(metadata::jwks)))
        .route(
            &r.register,
            cors::route(post(register::register).layer(DefaultBodyLimit::max(register::MAX_BODY))),
        )
        .route(&r.authorize, get(authorize::authorize))
        .route(&r.login, post(authorize::login))
        .route(&r.consent, post(authorize::consent))
        .route(&r.logout, get(logout::page).post(logout::logout))
        .route(&r.idp_start_route, get(federation::start::start))
        .route(&r.idp_callback_route, get(federation::callback::callback))
        .route(&r.token, cors::route(post(token::token)))
        .route(&r.revoke, cors::route(post(revoke::revoke)))
        .route(&r.introspect, post(introspect::introspect))
        .route(
            &r.mcp,
            cors::route(match &state.config.upstream {
                Some(upstream) => gateway::method_router(upstream, &state),
                None => post(mcp::post)
                    .get(mcp::get)
                    .delete(mcp::delete)
                    .route_layer(guard::ResourceGuard::mcp(state.clone()).layer()),
            }),
        )
        .route(&r.stylesheet, get(pages::stylesheet))
        .route(routes::LIVEZ, get(health::livez))
        .route(routes::READYZ, get(health::readyz));
    if let Some(alt) = &r.oidc_metadata_appended {
        router = router.route(alt, cors::route(get(metadata::authorization_server)));
    }
    if let Some(alt) = &r.as_metadata_root {
        router = router.route(alt, cors::route(get(metadata::authorization_server)));
    }
    let router = gateway::mount::mount(router, &state);
    router
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(middleware::from_fn(limit_and_trace))
        .with_state(state)
}

/// A request body declared larger than this is answered without reading it to the end (see [`linger`]).
const LINGER_MAX_BYTES: u64 = 8 * 1024 * 1024;
/// Longest time spent reading and dropping the rest of an oversized body before the answer goes out.
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// A request whose `Content-Length` is over every route's limit: the handler answers it as usual (413 in its
/// own format, or an earlier 401), and the rest of the body is read and dropped before that answer is sent.
/// Closing a connection with unread data in its receive buffer makes the kernel send a reset, which a client
/// still busy sending (hyper's, for one) reports as a broken pipe instead of the 413; draining first is the
/// "lingering close" of nginx. Bounded: at most [`LINGER_MAX_BYTES`] declared and [`LINGER_TIME`]; a larger
/// body is answered at once and the connection closed under it.
async fn linger(req: Request<axum::body::Body>, next: Next, declared: u64) -> Response {
    use futures_util::StreamExt;
    if declared > LINGER_MAX_BYTES {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let pump = tokio::spawn(async move {
        let mut upstream = body.into_data_stream();
        let mut tx = Some(tx);
        let deadline = tokio::time::Instant::now() + LINGER_TIME;
        while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, upstream.next()).await {
            let failed = chunk.is_err();
            // Once the handler has stopped reading (it dropped the body), the rest is only drained.
            if let Some(t) = &tx {
                if t.send(chunk).await.is_err() {
                    tx = None;
                }
            }
            if failed {
                break;
            }
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let resp = next
        .run(Request::from_parts(
            parts,
            axum::body::Body::from_stream(body),
        ))
        .await;
    let _ = pump.await;
    resp
}

/// The one request middleware (one layer, not two, on the hot path): size limits, then the debug log line.
async fn limit_and_trace(req: Request<axum::body::Body>, next: Next) -> Response {
    let len = req.uri().path().len() + req.uri().query().map_or(0, str::len);
    if len > MAX_URI_LEN {
        return error::json_error(
            StatusCode::URI_TOO_LONG,
            "invalid_request",
            "request URI too long",
        );
    }
    // Oversized header sections: 431 (RFC 6585 §5; security notes "Robustness"). hyper bounds what it buffers;
    // this keeps what reaches a handler far smaller.
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return error::json_error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "invalid_request",
            "request headers too large",
        );
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > MAX_BODY as u64) {
        return linger(req, next, n).await;
    }
    // Logs method, path (never the query: it can carry codes and state) and status; nothing is copied unless
    // debug logging is on.
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let start = std::time::Instant::now();
    let resp = next.run(req).await;
    tracing::debug!(%method, %path, status = resp.status().as_u16(), micros = start.elapsed().as_micros() as u64, "request");
    resp
}

/// Serves `state` on `listener` until `shutdown` completes, then drains in-flight requests (within the
/// [`connections::ConnectionLimits`] of its configuration).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Know every live revocation before the first request is answered.
    if let Err(e) = state
        .revocations
        .sync(
            state.authz.core().store().as_ref(),
            state.authz.core().now(),
        )
        .await
    {
        tracing::warn!(error = %e, "initial revocation sync failed; retrying in the background");
    }
    let jobs = background::spawn(state.clone());
    let closing = state.clone();
    let limits = state.config.connections;
    connections::serve(listener, app(state), limits, async move {
        shutdown.await;
        closing.stream_closer.close_streams();
    })
    .await;
    jobs.abort();
    Ok(())
}
