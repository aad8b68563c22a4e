//! The per-address limit on guesses at the endpoints where a client authenticates (`/token`, `/introspect`):
//! while an address is over it, requests are refused with 429 and `Retry-After` before any work; a failure the
//! endpoint counts as a guess (a wrong code, refresh token or client secret) is recorded against the address
//! (security notes, "Brute force"; RFC 7662 §4: an introspection endpoint is a place to guess secrets too).

use crate::error::{too_many_token_failures, OAuthError};
use crate::state::AppState;
use axum::extract::ConnectInfo;
use axum::http::Extensions;
use axum::response::{IntoResponse, Response};
use std::future::Future;
use std::net::SocketAddr;

/// The caller's address as the limit keys it ("unknown" when the connection info is missing, as in-process
/// tests drive the router).
pub(crate) fn caller_ip(extensions: &Extensions) -> String {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

/// Runs `answer` for the caller in `extensions` under the limit: refused while the address is blocked; an
/// error for which `is_guess` holds is counted. `endpoint` names it in the log lines.
pub(crate) async fn limited(
    s: &AppState,
    extensions: &Extensions,
    endpoint: &'static str,
    is_guess: fn(&OAuthError) -> bool,
    answer: impl Future<Output = Result<Response, OAuthError>>,
) -> Response {
    let ip = caller_ip(extensions);
    let now = s.authz.core().now();
    if let Some(wait) = s.token_failures_per_ip.blocked(&ip, now) {
        tracing::info!(%ip, endpoint, "token request limit reached");
        return too_many_token_failures(wait);
    }
    let response = answer.await;
    if let Err(e) = &response {
        if is_guess(e) {
            let store = s.authz.core().store();
            if let Err(err) = s
                .token_failures_per_ip
                .record(store.as_ref(), &ip, now)
                .await
            {
                tracing::warn!(error = %err, endpoint, "could not count a failed request");
            }
        }
    }
    response.unwrap_or_else(IntoResponse::into_response)
}
