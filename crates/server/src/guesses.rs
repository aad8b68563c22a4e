//! The per-address limit on guesses at the endpoints where a client authenticates (`/token`, `/introspect`,
//! `/revoke`): each request takes a place under the limit before any work, so parallel requests cannot overshoot
//! it; while an address is over it, requests are refused with 429 and `Retry-After`; a failure the endpoint
//! counts as a guess (a wrong code, refresh token or client secret) keeps its place, any other outcome gives it
//! back (security notes, "Brute force"; RFC 7662 §4 and RFC 7009 §5: introspection and revocation endpoints are
//! places to guess client secrets too).
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

/// Runs `answer` for the caller in `extensions` under the limit. A place is reserved before the work (so
/// parallel guesses from one address never get more than the limit between them, on any number of instances);
/// refused with 429 while the address is over the limit; the place is kept when the answer is an error for which
/// `is_guess` holds, and given back otherwise. `endpoint` names it in the log lines.
pub(crate) async fn limited(
    s: &AppState,
    extensions: &Extensions,
    endpoint: &'static str,
    is_guess: fn(&OAuthError) -> bool,
    answer: impl Future<Output = Result<Response, OAuthError>>,
) -> Response {
    let ip = caller_ip(extensions);
    let now = s.authz.core().now();
    let store = s.authz.core().store();
    let reservation = match s
        .token_failures_per_ip
        .reserve(store.as_ref(), &ip, now)
        .await
    {
        Ok(Admission::Admitted(r)) => r,
        Ok(Admission::Refused(wait)) => {
            tracing::info!(%ip, endpoint, "token request limit reached");
            return too_many_token_failures(wait);
        }
        // Without the count the limit cannot hold: refuse rather than answer unlimited.
        Err(e) => return OAuthError::from(AuthzError::from(e)).into_response(),
    };
    let response = answer.await;
    let counts = matches!(&response, Err(e) if is_guess(e));
    if !counts {
        if let Err(err) = s
            .token_failures_per_ip
            .release(store.as_ref(), reservation)
            .await
        {
            tracing::warn!(error = %err, endpoint, "could not release a request's place under the limit");
        }
    }
    response.unwrap_or_else(IntoResponse::into_response)
}
