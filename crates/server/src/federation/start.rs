//! `GET <issuer path>/idp/{name}/start?<authorization request>`: the sign-in page's "Continue with …" link.
//!
//! 1. The authorization request is checked as `GET /authorize` checks it (an unknown client or redirect URI is
//!    the same error page; other errors reach the client after sign-in, as with a password).
//! 2. A [`PendingLogin`] (`state`, `nonce`, PKCE verifier; OpenID Connect Core §3.1.2.1, RFC 7636) with the
//!    original query is sealed by the vault (AAD `upstream-state\0<state hash>`) and stored under the state's
//!    hash for [`PENDING_LOGIN_TTL`] (10 minutes), single use.
//! 3. The `state` is also set as a cookie (`__Host-portcullis-idp` over https), binding the sign-in to this
//!    browser (RFC 6749 §10.12, RFC 9700 §4.7.1): `SameSite=Lax` so the provider's top-level redirect back
//!    carries it, `HttpOnly`, 10 minutes.
//! 4. 303 to the provider's authorization endpoint.

use super::pages::Failure;
use super::Runtime;
use crate::authorize::see_other;
use crate::cookies;
use crate::error::page_error;
use crate::limits::Admission;
use crate::state::AppState;
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use portcullis_authz::authorize::AuthorizeError;
use portcullis_authz::federation::request::PENDING_LOGIN_TTL;
use portcullis_authz::federation::{authorization_url, PendingLogin, ProviderConfig};
use portcullis_authz::store::UpstreamStateRecord;
use portcullis_authz::vault::{upstream_state_aad, Zeroizing};
use portcullis_authz::AuthzError;
use std::net::SocketAddr;
use std::sync::Arc;

/// Base name of the cookie binding a pending upstream sign-in to the browser (value: the `state`).
pub const STATE_COOKIE: &str = "portcullis-idp";

/// The state cookie's name for this deployment (`__Host-portcullis-idp` over https).
pub fn state_cookie(s: &AppState) -> String {
    cookies::name(STATE_COOKIE, s.secure_cookies)
}

/// `GET /idp/{name}/start`.
pub async fn start(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let Some((rt, cfg)) = provider(&s, &name) else {
        return Failure::unknown_provider(&name).render(&s, &name, &[]);
    };
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
    drop(request);
    if let Err(resp) = count_start(&s, rt, &name, &ip).await {
        return *resp;
    }
    let query = query.unwrap_or_default();
    if let Err(AuthorizeError::Page(e)) =
        s.authz.authorizations().authorization_request(&query).await
    {
        return page_error(&e, &s.routes.stylesheet);
    }
    let shown = cfg.display_name.as_str();
    let metadata = match rt.metadata(cfg).await {
        Ok(m) => m,
        Err(e) => {
            let back = vec![(
                "Back to the sign-in page",
                format!("{}?{query}", s.routes.authorize),
            )];
            return Failure::from_idp(&e, shown).render(&s, &name, &back);
        }
    };
    let pending = match store_pending(&s, rt, cfg, query).await {
        Ok(p) => p,
        Err(e) => return page_error(&e, &s.routes.stylesheet),
    };
    let redirect_uri = s.routes.idp_callback_url(&name);
    let mut resp = see_other(&authorization_url(cfg, &metadata, &pending, &redirect_uri));
    resp.headers_mut().append(
        header::SET_COOKIE,
        cookies::set(
            &state_cookie(&s),
            pending.state.expose(),
            PENDING_LOGIN_TTL,
            s.secure_cookies,
        ),
    );
    tracing::info!(provider = %name, "upstream sign-in started");
    resp
}

/// Counts a start against the client address ([`Runtime::start_limiter`]), a place taken before the work so
/// parallel starts cannot overshoot the limit; a 429 page when over it.
async fn count_start(
    s: &AppState,
    rt: &Runtime,
    name: &str,
    ip: &str,
) -> Result<(), Box<Response>> {
    let now = s.authz.core().now();
    let wait = match rt
        .start_limiter()
        .reserve(s.authz.core().store().as_ref(), ip, now)
        .await
    {
        // Every start counts: the place is kept.
        Ok(Admission::Admitted(_kept)) => return Ok(()),
        Ok(Admission::Refused(wait)) => wait,
        Err(e) => {
            tracing::warn!(error = %e, "could not count the sign-in against its address's limit");
            return Err(Box::new(page_error(
                &AuthzError::from(e),
                &s.routes.stylesheet,
            )));
        }
    };
    let f = Failure::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_sign_ins",
        "Too many sign-ins",
        "Too many sign-ins were started from this address. Wait a few minutes and try again.",
    );
    let mut resp = f.render(s, name, &[]);
    if let Ok(v) = HeaderValue::from_str(&wait.max(1).to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    Err(Box::new(resp))
}

/// The runtime and the provider called `name`, if federation is on and it exists.
pub(crate) fn provider<'a>(
    s: &'a AppState,
    name: &str,
) -> Option<(&'a Runtime, &'a ProviderConfig)> {
    let rt = s.federation.as_deref()?;
    Some((rt, rt.provider(name)?))
}

/// A new pending sign-in at `cfg` resuming `query`, sealed and stored under its state's hash.
async fn store_pending(
    s: &AppState,
    rt: &Runtime,
    cfg: &ProviderConfig,
    query: String,
) -> Result<PendingLogin, AuthzError> {
    let core = s.authz.core();
    let now = core.now();
    let pending = PendingLogin::new(cfg.name.clone(), core.rng(), now).with_authorize_query(query);
    let state_hash = pending.state_hash();
    // Serializing strings and an integer cannot fail; the plaintext is zeroed when dropped.
    let plain = Zeroizing::new(serde_json::to_vec(&pending).unwrap_or_default());
    let (key_id, sealed) = rt
        .vault()
        .seal(&plain, &upstream_state_aad(&state_hash), core.rng())
        .map_err(|e| AuthzError::Internal(format!("sealing the pending sign-in: {e}")))?;
    core.store()
        .insert_upstream_state(&UpstreamStateRecord {
            state_hash,
            provider: cfg.name.as_str().to_owned(),
            key_id,
            sealed,
            expires_at: now + PENDING_LOGIN_TTL,
        })
        .await?;
    Ok(pending)
}
