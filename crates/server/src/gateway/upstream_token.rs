//! `upstream_token_from`: the caller's own token at an identity provider on the forwarded request (issue 13
//! §3; docs/federation.md "The gateway and upstream tokens"). Never the caller's Portcullis token: that one is
//! not forwarded at all (MCP authorization, "Token Passthrough").
//!
//! The token comes from [`UpstreamTokenSource`] (the vault; refreshed first when it expires within a minute),
//! or with `upstream_token_mode = "exchange"` from an RFC 8693 token exchange at the provider for
//! `upstream_audience`. It goes in `Authorization: Bearer <token>` (RFC 6750 §2.1), or in
//! `upstream_token_header` without a scheme.
//!
//! When the user has no usable token there (never signed in through that provider, expired without a refresh
//! token, or the provider refused the refresh: `invalid_grant`), the answer is the resource's 401 challenge with
//! `error="invalid_token"` and a description naming the provider, and the Portcullis grant of the token is
//! revoked: the client's refresh then fails too, so it runs the authorization again, and `/authorize` does not
//! reuse the sign-in session for this resource while the user has no usable token at the provider
//! ([`session_has_upstream_token`]): the user signs in through the provider again, which stores new tokens.

use super::config::UpstreamTokenConfig;
use super::upstream::{rpc_error, Gateway};
use crate::federation::upstream_tokens::{UpstreamTokenError, UpstreamTokenSource};
use crate::guard;
use crate::state::AppState;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use portcullis_authz::secret::Secret;
use portcullis_guard::VerifiedToken;
use serde_json::Value;
use std::sync::Arc;

/// The header carrying the caller's upstream token for `g`, or the response refusing the request.
pub(crate) async fn credential(
    s: &AppState,
    g: &Gateway,
    p: &VerifiedToken,
    cfg: &UpstreamTokenConfig,
    id: &Value,
) -> Result<(HeaderName, HeaderValue), Response> {
    let Some(source) = s.upstream_tokens.as_ref() else {
        // The settings refuse upstream_token_from without a configured provider; kept for completeness.
        tracing::error!(
            provider = %cfg.provider,
            "upstream_token_from names a provider, but federation is not running"
        );
        return Err(unavailable(id.clone()));
    };
    let user = p.claims.sub.as_str();
    let token: Result<Secret, UpstreamTokenError> = match &cfg.exchange_audience {
        None => (source.access_token(user, &cfg.provider).await).map(|t| t.access_token.clone()),
        Some(audience) => {
            (source.exchanged_token(user, &cfg.provider, audience).await).map(|t| Secret::clone(&t))
        }
    };
    let token = match token {
        Ok(t) => t,
        Err(e) => return Err(refusal(s, g, p, source, cfg, &e, id).await),
    };
    let (name, text) = match &cfg.header {
        None => (header::AUTHORIZATION, format!("Bearer {}", token.expose())),
        Some(name) => (name.clone(), token.expose().to_owned()),
    };
    match HeaderValue::from_str(&text) {
        Ok(mut v) => {
            v.set_sensitive(true);
            Ok((name, v))
        }
        Err(_) => {
            tracing::warn!(provider = %cfg.provider, "the upstream token is not a valid header value");
            Err(rpc_error(
                StatusCode::BAD_GATEWAY,
                id.clone(),
                -32000,
                "the identity provider's token cannot be sent upstream",
            ))
        }
    }
}

/// The answer when no upstream token could be had: a 401 challenge sending the user through sign-in again
/// (revoking the Portcullis grant, see the module documentation), or 502/503.
async fn refusal(
    s: &AppState,
    g: &Gateway,
    p: &VerifiedToken,
    source: &Arc<UpstreamTokenSource>,
    cfg: &UpstreamTokenConfig,
    e: &UpstreamTokenError,
    id: &Value,
) -> Response {
    if e.needs_sign_in() {
        tracing::info!(provider = %cfg.provider, code = e.code(), "no usable upstream token: asking the client to authorize again");
        revoke_grant(s, p).await;
        let display = source.display_name(&cfg.provider);
        let description =
            format!("no valid {display} token for this user; sign in again through {display}");
        return guard::unauthorized_for(s, g.resource(s), Some(&description));
    }
    tracing::warn!(provider = %cfg.provider, code = e.code(), error = %e, "cannot obtain the user's upstream token");
    match e {
        UpstreamTokenError::Unavailable { .. } | UpstreamTokenError::Store(_) => {
            unavailable(id.clone())
        }
        _ => rpc_error(
            StatusCode::BAD_GATEWAY,
            id.clone(),
            -32000,
            "the identity provider refused to issue a token for the upstream MCP server",
        ),
    }
}

/// Revokes the grant of `p` (its refresh tokens and access tokens), so the client's refresh fails and it
/// authorizes again; tells this instance's guard at once.
async fn revoke_grant(s: &AppState, p: &VerifiedToken) {
    let Some(grant_id) = p.claims.grant_id.as_deref() else {
        return;
    };
    let core = s.authz.core();
    let now = core.now();
    // As long as an access token of the grant can live (the revocation entry's life, see authz::revocation).
    let until = now + core.config().access_token_ttl + 60;
    match core.store().revoke_grant(grant_id, now, until).await {
        Ok(_) => s.revocations.sync_soon(),
        Err(err) => tracing::warn!(error = %err, "cannot revoke a grant without upstream token"),
    }
}

fn unavailable(id: Value) -> Response {
    let mut r = rpc_error(
        StatusCode::SERVICE_UNAVAILABLE,
        id,
        -32000,
        "the identity provider is unavailable; retry later",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

/// The provider whose token the gateway serving `resource` sends upstream, if any.
pub fn required_provider<'a>(s: &'a AppState, resource: &str) -> Option<&'a str> {
    let main = s
        .config
        .upstream
        .as_ref()
        .filter(|_| resource == s.authz.core().config().default_resource());
    let route = || {
        (s.config.gateway_routes.iter())
            .find(|r| s.routes.url(&r.path) == resource)
            .map(|r| &r.gateway)
    };
    main.or_else(route)?
        .upstream_token
        .as_ref()
        .map(|t| t.provider.as_str())
}

/// Whether `/authorize` may reuse the session of `user_id` for `resource`: always, unless that resource's
/// gateway sends the user's token at a provider and the user has none there that is valid or refreshable
/// (then the user must sign in through the provider again). No work without identity providers.
pub async fn session_has_upstream_token(s: &AppState, user_id: &str, resource: &str) -> bool {
    let Some(source) = s.upstream_tokens.as_ref() else {
        return true;
    };
    let Some(provider) = required_provider(s, resource) else {
        return true;
    };
    match source.usable(user_id, provider).await {
        Ok(usable) => usable,
        Err(e) => {
            tracing::warn!(code = e.code(), "cannot check the user's upstream tokens");
            true
        }
    }
}
