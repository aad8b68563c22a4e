//! The per-address limit on guesses at the endpoints where a client authenticates (`/token`, `/introspect`,
//! `/revoke`): while an address is known to be over it, requests are refused with 429 and `Retry-After` before
//! any work; a failure the endpoint counts as a guess (a wrong code, refresh token or client secret) must take a
//! place under the limit before it is answered, so parallel guesses cannot overshoot it (security notes, "Brute
//! force"; RFC 7662 §4 and RFC 7009 §5: introspection and revocation endpoints are places to guess client
//! secrets too).

use crate::error::{too_many_token_failures, OAuthError};
use crate::limits::Admission;
use crate::state::AppState;
use axum::extract::ConnectInfo;
use axum::http::Extensions;
use axum::response::{IntoResponse, Response};
use portcullis_authz::AuthzError;
use std::future::Future;
use std::net::SocketAddr;

/// The caller's address as the limit keys it ("unknown" when the connection info is missing, as in-process
/// tests drive the router).
pub(crate) fn caller_ip(extensions: &Extensions) -> String {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

/// Runs `answer` for the caller in `extensions` under the limit: refused with 429 while the address is known to
/// be over it (no I/O); a failure for which `is_guess` holds is answered only if it takes a place under the
/// limit (one conditional upsert, so parallel guesses on any number of instances get at most the limit's number
/// of answers between them); a guess beyond it gets 429 instead of its answer, so it tells the caller nothing.
/// Successful requests write nothing and never wait on each other (many legitimate clients share one address
/// behind a NAT). `endpoint` names it in the log lines.
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
    if matches!(&response, Err(e) if is_guess(e)) {
        let store = s.authz.core().store();
        match s
            .token_failures_per_ip
            .reserve(store.as_ref(), &ip, now)
            .await
        {
            // Counted: the failure is answered, and the place is kept.
            Ok(Admission::Admitted(_counted)) => {}
            Ok(Admission::Refused(wait)) => {
                tracing::info!(%ip, endpoint, "token request limit reached");
                return too_many_token_failures(wait);
            }
            // Without the count the limit cannot hold: refuse rather than answer a guess uncounted.
            Err(e) => return OAuthError::from(AuthzError::from(e)).into_response(),
        }
    }
    response.unwrap_or_else(IntoResponse::into_response)
}
