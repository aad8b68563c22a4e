//! `GET <issuer path>/idp/{name}/callback`: the provider sends the browser back here (RFC 6749 §4.1.2).
//!
//! 1. The response's `state` must equal the browser's state cookie (else "This sign-in did not start in this
//!    browser"); the pending sign-in stored under its hash is then *taken* (single use: a replayed callback finds
//!    nothing), must be this provider's, and is opened by the vault.
//! 2. `check_callback`: `state` again (constant time) and RFC 9207 `iss` (mix-up defence); an error response
//!    (`access_denied`, …) becomes a page with a way back.
//! 3. The code is exchanged (RFC 6749 §4.1.3 with the PKCE verifier); OpenID Connect: the ID token is validated
//!    (OpenID Connect Core §3.1.3.7; an unknown `kid` refetches the JWKS once); OAuth 2.0: userinfo (GitHub:
//!    `/user/emails`) says who the user is.
//! 4. Policy (`allowed_domains`, `allowed_groups`) → 403 page saying why; then the local user
//!    ([`FederatedUsers`]), the upstream tokens sealed in the vault, a new session (the id rotates as at a
//!    password sign-in) and 303 back to `/authorize` with the original request.
//!
//! A provider that is down or slow is a 503 page (the [`IdpClient`](crate::outbound::idp::IdpClient) times
//! out); no failure page sets a session cookie; no token, code or secret is logged.

use super::pages::Failure;
use super::start::{provider, state_cookie};
use super::Runtime;
use crate::authorize::resume_signed_in;
use crate::cookies;
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use portcullis_authz::federated_users::FederatedUsers;
use portcullis_authz::federation::{
    check_callback, check_policy, Callback, ExternalIdentity, PendingLogin, ProviderConfig,
    ProviderKind, ProviderMetadata, UpstreamTokens,
};
use portcullis_authz::secret::TokenHash;
use portcullis_authz::store::{DisplayIdentity, UpstreamTokenRecord, UserRecord};
use portcullis_authz::vault::{upstream_state_aad, upstream_token_aad, Zeroizing};
use portcullis_authz::{csrf, AuthzError};
use std::sync::Arc;

/// `GET /idp/{name}/callback`.
pub async fn callback(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some((rt, cfg)) = provider(&s, &name) else {
        return Failure::unknown_provider(&name).render(&s, &name, &[]);
    };
    let query = query.unwrap_or_default();
    let shown = cfg.display_name.as_str();
    let callback = match Callback::parse(&query) {
        Ok(c) => c,
        Err(e) => return Failure::from_federation(&e, shown).render(&s, &name, &[]),
    };
    // A response this browser did not ask for changes nothing here (its own pending sign-in stays usable).
    let Some(state) = browser_state(&s, &headers, &query) else {
        return Failure::not_this_browser().render(&s, &name, &[]);
    };
    let pending = match take_pending(&s, rt, cfg, &state).await {
        Ok(p) => p,
        Err(f) => return clear_state_cookie(&s, f.render(&s, &name, &[])),
    };
    let back = format!("{}?{}", s.routes.authorize, pending.authorize_query);
    let resp = match finish(&s, rt, cfg, &headers, &callback, &pending).await {
        Ok(resp) => resp,
        Err(f) => {
            let mut links = vec![("Try signing in again", back)];
            if f.code == "access_denied" {
                if let Some(deny) = deny_location(&s, &pending.authorize_query).await {
                    links.push(("Return to the application", deny));
                }
            }
            f.render(&s, &name, &links)
        }
    };
    clear_state_cookie(&s, resp)
}

/// The `state` of the response if it is this browser's (equal to its state cookie, RFC 6749 §10.12).
fn browser_state(s: &AppState, headers: &HeaderMap, query: &str) -> Option<String> {
    let cookie = cookies::get(headers, &state_cookie(s))?;
    let sent = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())?;
    (!cookie.is_empty() && csrf::equal(&cookie, &sent)).then_some(cookie)
}

/// Takes the pending sign-in of `state` (single use) and opens it.
async fn take_pending(
    s: &AppState,
    rt: &Runtime,
    cfg: &ProviderConfig,
    state: &str,
) -> Result<PendingLogin, Failure> {
    let core = s.authz.core();
    let now = core.now();
    let hash = TokenHash::of(state);
    let record = match core.store().take_upstream_state(&hash, now).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err(Failure::used_or_expired()),
        Err(e) => return Err(internal(&AuthzError::from(e))),
    };
    if record.provider != cfg.name.as_str() {
        return Err(wrong_provider());
    }
    let plain = rt
        .vault()
        .open(&record.key_id, &record.sealed, &upstream_state_aad(&hash))
        .map_err(|_| Failure::used_or_expired())?;
    let pending: PendingLogin =
        serde_json::from_slice(&plain).map_err(|_| Failure::used_or_expired())?;
    if pending.provider != cfg.name {
        return Err(wrong_provider());
    }
    if pending.is_expired(now) {
        return Err(Failure::used_or_expired());
    }
    Ok(pending)
}

/// Steps 2–4 of the module documentation, once the pending sign-in is ours.
async fn finish(
    s: &AppState,
    rt: &Runtime,
    cfg: &ProviderConfig,
    headers: &HeaderMap,
    callback: &Callback,
    pending: &PendingLogin,
) -> Result<Response, Failure> {
    let shown = cfg.display_name.as_str();
    let idp_failure = |e| Failure::from_idp(&e, shown);
    let metadata = rt.metadata(cfg).await.map_err(idp_failure)?;
    let code = check_callback(callback, pending, &metadata)
        .map_err(|e| Failure::from_federation(&e, shown))?;
    let redirect_uri = s.routes.idp_callback_url(cfg.name.as_str());
    let tokens = rt
        .idp()
        .exchange_code(cfg, &metadata, code, pending, &redirect_uri)
        .await
        .map_err(idp_failure)?;
    let identity = identity_of(rt, cfg, &metadata, &tokens, pending).await?;
    check_policy(cfg, &identity).map_err(|e| Failure::from_federation(&e, shown))?;
    let signed_in = FederatedUsers::new(s.authz.core().clone())
        .sign_in(&identity, rt.link_by_verified_email())
        .await
        .map_err(|e| internal(&e))?;
    let user = signed_in.user;
    keep_tokens(s, rt, &user, cfg, tokens)
        .await
        .map_err(|e| internal(&e))?;
    tracing::info!(provider = %cfg.name.as_str(), user = %user.username, via = ?signed_in.via, "upstream sign-in");
    let display = display_identity(&identity, &user);
    resume_signed_in(s, headers, &user, display, &pending.authorize_query)
        .await
        .map_err(|e| internal(&e))
}

/// Who signed in. OpenID Connect: the validated ID token, completed by userinfo (OpenID Connect Core §5.3, its
/// `sub` must be the token's) when the token lacks the email, the user name or, where the policy needs them,
/// the groups; a failed userinfo call then only leaves them out. OAuth 2.0: userinfo (GitHub: `/user/emails`).
async fn identity_of(
    rt: &Runtime,
    cfg: &ProviderConfig,
    metadata: &ProviderMetadata,
    tokens: &UpstreamTokens,
    pending: &PendingLogin,
) -> Result<ExternalIdentity, Failure> {
    let shown = cfg.display_name.as_str();
    let idp_failure = |e| Failure::from_idp(&e, shown);
    if cfg.kind == ProviderKind::OAuth2 {
        return rt
            .idp()
            .userinfo_identity(cfg, metadata, &tokens.access_token)
            .await
            .map_err(idp_failure);
    }
    let Some(id_token) = tokens.id_token.as_deref() else {
        return Err(Failure::new(
            StatusCode::BAD_GATEWAY,
            "no_id_token",
            &format!("{shown} sent no ID token"),
            "The identity provider's token response has no ID token.",
        ));
    };
    let claims = rt
        .idp()
        .validate_id_token(id_token, cfg, metadata, pending)
        .await
        .map_err(idp_failure)?;
    let wants_groups = !cfg.allowed_groups.is_empty() || !cfg.scope_from_groups.is_empty();
    let incomplete = claims.email.is_none()
        || claims.preferred_username.is_none()
        || (wants_groups && claims.groups.is_none());
    let userinfo = match metadata.userinfo_endpoint {
        Some(_) if incomplete => rt.idp().userinfo(metadata, &tokens.access_token).await.ok(),
        _ => None,
    };
    ExternalIdentity::from_id_token(cfg, &claims, userinfo.as_deref())
        .map_err(|e| Failure::from_federation(&e, shown))
}

/// Who the session's tokens say signed in: the provider's user name (else the local one), its email only if the
/// provider verified it, the provider's name.
fn display_identity(identity: &ExternalIdentity, user: &UserRecord) -> DisplayIdentity {
    DisplayIdentity {
        preferred_username: identity
            .username
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| user.username.clone()),
        email: identity.email.clone().filter(|_| identity.email_verified),
        idp: Some(identity.provider.as_str().to_owned()),
    }
}

/// Seals the user's tokens at the provider (AAD `upstream-token\0<user id>\0<provider>`) and stores them,
/// keeping the stored refresh token when the provider issued none this time (Google issues one only at the
/// first consent).
async fn keep_tokens(
    s: &AppState,
    rt: &Runtime,
    user: &UserRecord,
    cfg: &ProviderConfig,
    tokens: UpstreamTokens,
) -> Result<(), AuthzError> {
    let core = s.authz.core();
    let store = core.store();
    let provider = cfg.name.as_str();
    let aad = upstream_token_aad(&user.id, provider);
    let old = match store.upstream_tokens(&user.id, provider).await? {
        Some(old) if tokens.refresh_token.is_none() => rt
            .vault()
            .open(&old.key_id, &old.sealed, &aad)
            .ok()
            .and_then(|plain| serde_json::from_slice::<UpstreamTokens>(&plain).ok()),
        _ => None,
    };
    let tokens = match old {
        Some(old) => tokens.refreshed_from(&old),
        None => tokens,
    };
    let plain = Zeroizing::new(serde_json::to_vec(&tokens).unwrap_or_default());
    let (key_id, sealed) = rt
        .vault()
        .seal(&plain, &aad, core.rng())
        .map_err(|e| AuthzError::Internal(format!("sealing the upstream tokens: {e}")))?;
    let now = core.now();
    store
        .put_upstream_tokens(&UpstreamTokenRecord {
            user_id: user.id.clone(),
            provider: provider.to_owned(),
            key_id,
            sealed,
            expires_at: tokens.expires_at,
            refreshing_until: 0,
            updated_at: now,
        })
        .await?;
    // The gateway's cache of this instance must not keep serving the tokens of the previous sign-in.
    if let Some(source) = &s.upstream_tokens {
        source.forget(&user.id, provider);
    }
    Ok(())
}

/// Where "Return to the application" goes after a refusal at the provider: the client's redirect URI with
/// `error=access_denied` (RFC 6749 §4.1.2.1), when the original request names a valid client.
async fn deny_location(s: &AppState, authorize_query: &str) -> Option<String> {
    let authorizations = s.authz.authorizations();
    let req = authorizations
        .authorization_request(authorize_query)
        .await
        .ok()?;
    Some(authorizations.deny(&req))
}

/// The pending sign-in belongs to another provider: a response for one provider arrived at another's callback.
fn wrong_provider() -> Failure {
    Failure::new(
        StatusCode::BAD_REQUEST,
        "provider_mismatch",
        "This sign-in did not start at this identity provider",
        "The response arrived for another identity provider than the one the sign-in started at. Start again \
         from the application.",
    )
}

fn internal(e: &AuthzError) -> Failure {
    let status = if matches!(e, AuthzError::TemporarilyUnavailable) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    tracing::error!(error = %e, "upstream sign-in: storage failed");
    Failure::new(
        status,
        "server_error",
        "Sign-in failed",
        "Portcullis could not finish the sign-in. Try again.",
    )
}

/// `resp` with the state cookie removed.
fn clear_state_cookie(s: &AppState, mut resp: Response) -> Response {
    resp.headers_mut().append(
        header::SET_COOKIE,
        cookies::set(&state_cookie(s), "", 0, s.secure_cookies),
    );
    resp
}
