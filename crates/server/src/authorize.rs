//! The browser side of the authorization endpoint: `GET /authorize` (RFC 6749 §4.1.1), the login form
//! (`POST /login`) and the consent form (`POST /consent`), ending in a 303 to the client's redirect URI with
//! `code`, `state` and `iss` (RFC 6749 §4.1.2, RFC 9207 §2).
//!
//! Rules kept here (security notes, "/authorize" and "Login and consent pages"): unknown client or unmatched
//! redirect URI → error page, never a redirect; other errors are redirected only once the user is signed in;
//! a first authorization of a client always shows the consent page; POSTs check `Origin` and a CSRF token
//! (double-submit for login, session-and-request-bound HMAC for consent); the session id rotates at login.

use crate::cookies;
use crate::error::page_error;
use crate::federation;
use crate::form::Form;
use crate::gateway::upstream_token;
use crate::login_throttle::LoginKeys;
use crate::pages::{self, ConsentPage, LoginPage, ProviderLink};
use crate::password_checks::{self, Busy};
use crate::state::AppState;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use portcullis_authz::authorize::{AuthorizationRequest, AuthorizeError};
use portcullis_authz::store::{DisplayIdentity, SessionRecord, UserRecord};
use portcullis_authz::{csrf, random, AuthzError};
use std::net::SocketAddr;
use std::sync::Arc;

/// A 303 to `location`, with the headers a code-carrying redirect needs.
pub(crate) fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            let h = r.headers_mut();
            h.insert(header::LOCATION, v);
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            r
        }
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// CSP `form-action` for pages of this request: ourselves and the redirect target's origin.
fn form_action(redirect_uri: Option<&str>) -> String {
    let target = redirect_uri
        .and_then(|r| url::Url::parse(r).ok())
        .map(|u| match u.scheme() {
            "http" | "https" => u.origin().ascii_serialization(),
            scheme => format!("{scheme}:"),
        });
    match target {
        Some(t) => format!("'self' {t}"),
        None => "'self'".into(),
    }
}

pub(crate) async fn current_session(
    s: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(String, SessionRecord)>, AuthzError> {
    let Some(cookie) = cookies::get(headers, &cookies::name(cookies::SESSION, s.secure_cookies))
    else {
        return Ok(None);
    };
    Ok(s.authz
        .sessions()
        .session(&cookie)
        .await?
        .map(|r| (cookie, r)))
}

fn origin_ok(s: &AppState, headers: &HeaderMap) -> bool {
    match headers.get(header::ORIGIN) {
        None => true,
        Some(o) => o.as_bytes() == s.routes.origin.as_bytes(),
    }
}

struct LoginView<'a> {
    status: StatusCode,
    request: &'a str,
    client_name: &'a str,
    redirect_uri: Option<&'a str>,
    error: Option<&'a str>,
    username: &'a str,
}

/// Renders the login page, setting a fresh login CSRF cookie when the browser has none.
fn render_login(s: &AppState, headers: &HeaderMap, v: LoginView<'_>) -> Response {
    let cookie_name = cookies::name(cookies::LOGIN_CSRF, s.secure_cookies);
    let existing = cookies::get(headers, &cookie_name).filter(|c| c.len() == 43);
    let token = existing
        .clone()
        .unwrap_or_else(|| random::token(s.authz.core().rng()).expose().to_owned());
    let fa = form_action(v.redirect_uri);
    let sign_in = &s.config.sign_in;
    let providers = (sign_in.providers.iter())
        .map(|p| ProviderLink {
            name: &p.name,
            display_name: &p.display_name,
            preset: p.preset,
            href: match v.request {
                "" => s.routes.idp_start(&p.name),
                query => format!("{}?{query}", s.routes.idp_start(&p.name)),
            },
        })
        .collect();
    let mut resp = pages::login_page(
        v.status,
        &LoginPage {
            action: &s.routes.login,
            request: v.request,
            csrf: &token,
            client_name: v.client_name,
            error: v.error,
            username: v.username,
            stylesheet: &s.routes.stylesheet,
            form_action: &fa,
            providers,
            password_login: sign_in.password_login,
        },
    );
    if existing.is_none() {
        resp.headers_mut().append(
            header::SET_COOKIE,
            cookies::set(&cookie_name, &token, 3600, s.secure_cookies),
        );
    }
    resp
}

fn render_consent(
    s: &AppState,
    session: &SessionRecord,
    query: &str,
    req: &AuthorizationRequest,
) -> Response {
    let cfg = s.authz.core().config();
    let scopes = req
        .scope
        .iter()
        .map(|name| (name.to_owned(), cfg.describe_scope(name)))
        .collect();
    let host = req
        .client
        .redirect_uri_matching(&req.redirect_uri)
        .map(|r| r.display_host())
        .unwrap_or_default();
    let token = csrf::consent_token(&session.csrf_key, query);
    let logout_token = csrf::logout_token(&session.csrf_key);
    let fa = form_action(Some(&req.redirect_uri));
    pages::consent_page(&ConsentPage {
        action: &s.routes.consent,
        request: query,
        csrf: &token,
        resource: &req.resource,
        logout: &s.routes.logout,
        logout_csrf: &logout_token,
        username: &session.username,
        client_name: req.client.name(),
        client_id: &req.client.client_id,
        redirect_host: &host,
        scopes,
        ignored: req.ignored_scope.iter().map(str::to_owned).collect(),
        stylesheet: &s.routes.stylesheet,
        form_action: &fa,
    })
}

/// Decides what the browser sees for an authorization request, given its session.
async fn proceed(
    s: &AppState,
    headers: &HeaderMap,
    query: &str,
    session: Option<SessionRecord>,
) -> Response {
    let css = &s.routes.stylesheet;
    let authorizations = s.authz.authorizations();
    match (authorizations.authorization_request(query).await, session) {
        (Err(AuthorizeError::Page(e)), _) => page_error(&e, css),
        (Err(e @ AuthorizeError::Redirect { .. }), Some(session)) => {
            redirect_or_page(s, &session.user_id, e).await
        }
        (Err(AuthorizeError::Redirect { redirect_uri, .. }), None) => render_login(
            s,
            headers,
            LoginView {
                status: StatusCode::OK,
                request: query,
                client_name: "the application",
                redirect_uri: Some(&redirect_uri),
                error: None,
                username: "",
            },
        ),
        (Ok(req), None) => render_login(
            s,
            headers,
            LoginView {
                status: StatusCode::OK,
                request: query,
                client_name: req.client.name(),
                redirect_uri: Some(&req.redirect_uri),
                error: None,
                username: "",
            },
        ),
        (Ok(req), Some(session)) => {
            // The resource's gateway sends the user's token at an identity provider, or the session came from
            // one, and the user has no usable token there (a password user, deprovisioned, revoked): sign in
            // through the provider rather than reuse the session.
            let missing = upstream_token::missing_upstream_token(
                s,
                &session.user_id,
                session.identity.idp.as_deref(),
                &req.resource,
            )
            .await;
            if let Some(display) = missing {
                let error = format!(
                    "This application needs your {display} account: continue with {display}."
                );
                return render_login(
                    s,
                    headers,
                    LoginView {
                        status: StatusCode::OK,
                        request: query,
                        client_name: req.client.name(),
                        redirect_uri: Some(&req.redirect_uri),
                        error: Some(&error),
                        username: "",
                    },
                );
            }
            proceed_signed_in(s, query, session, req).await
        }
    }
}

/// An error of an authorization request for a signed-in user: sent to the client's redirect URI only if the user
/// has approved that client before, else shown as a page (RFC 9700 §4.11.2: no open redirector;
/// [`portcullis_authz::authorizations::Authorizations::may_redirect_error`]).
async fn redirect_or_page(s: &AppState, user_id: &str, e: AuthorizeError) -> Response {
    let css = &s.routes.stylesheet;
    let (client_id, error) = match &e {
        AuthorizeError::Page(error) => return page_error(error, css),
        AuthorizeError::Redirect {
            client_id, error, ..
        } => (client_id, error),
    };
    match s
        .authz
        .authorizations()
        .may_redirect_error(user_id, client_id)
        .await
    {
        Ok(true) => see_other(&e.location(&s.routes.issuer).unwrap_or_default()),
        Ok(false) => page_error(error, css),
        Err(store) => page_error(&store, css),
    }
}

/// [`proceed`] with a session that may be used: scope entitlements, then consent or a code.
async fn proceed_signed_in(
    s: &AppState,
    query: &str,
    session: SessionRecord,
    req: AuthorizationRequest,
) -> Response {
    let css = &s.routes.stylesheet;
    let authorizations = s.authz.authorizations();
    let req = match federation::scopes::entitled(s, &session, req).await {
        Ok(r) => r,
        Err(e) => return page_error(&e, css),
    };
    match authorizations.needs_consent(&session.user_id, &req).await {
        Ok(true) => render_consent(s, &session, query, &req),
        Ok(false) => match authorizations
            .issue_code(&session.user_id, &session.identity, &req)
            .await
        {
            Ok(loc) => see_other(&loc),
            Err(e) => page_error(&e, css),
        },
        Err(e) => page_error(&e, css),
    }
}

/// `GET /authorize`.
pub async fn authorize(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    match current_session(&s, &headers).await {
        Ok(session) => proceed(&s, &headers, &query, session.map(|(_, r)| r)).await,
        Err(e) => page_error(&e, &s.routes.stylesheet),
    }
}

pub(crate) fn forbidden(s: &AppState, msg: &str) -> Response {
    pages::error_page(
        StatusCode::FORBIDDEN,
        "invalid_request",
        msg,
        &s.routes.stylesheet,
    )
}

/// The checks every page form POST starts with: `Origin` must be ours (or absent), the body a form of
/// acceptable size (413 when oversized, RFC 9110 §15.5.14; security notes "Robustness").
pub(crate) fn posted_form(
    s: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    what: &str,
) -> Result<Form, Box<Response>> {
    let css = &s.routes.stylesheet;
    if !origin_ok(s, headers) {
        return Err(Box::new(forbidden(
            s,
            "This form was submitted from another site.",
        )));
    }
    match body
        .map_err(|e| e.status())
        .and_then(|b| Form::parse(headers, &b).map_err(|_| StatusCode::BAD_REQUEST))
    {
        Ok(f) => Ok(f),
        Err(status) if status == StatusCode::PAYLOAD_TOO_LARGE => Err(Box::new(pages::error_page(
            status,
            "invalid_request",
            &format!("the {what} form is too large"),
            css,
        ))),
        Err(_) => Err(Box::new(page_error(
            &AuthzError::InvalidRequest(format!("the {what} form is malformed")),
            css,
        ))),
    }
}

/// `POST /login`.
pub async fn login(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let css = &s.routes.stylesheet;
    if !s.config.sign_in.password_login {
        return forbidden(
            &s,
            "Signing in with a password is turned off here. Use an identity provider on the sign-in page.",
        );
    }
    let form = match posted_form(&s, &headers, body, "sign-in") {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let request = form.get("request").unwrap_or("");
    let username = form.get("username").unwrap_or("");
    let password = form.get("password").unwrap_or("").to_owned();
    let authorizations = s.authz.authorizations();
    let (client_name, redirect_uri) = match authorizations.authorization_request(request).await {
        Ok(r) => (r.client.name().to_owned(), Some(r.redirect_uri)),
        Err(AuthorizeError::Redirect { redirect_uri, .. }) => {
            ("the application".to_owned(), Some(redirect_uri))
        }
        Err(AuthorizeError::Page(e)) => return page_error(&e, css),
    };
    let view = |status, error| LoginView {
        status,
        request,
        client_name: &client_name,
        redirect_uri: redirect_uri.as_deref(),
        error: Some(error),
        username: if username.len() <= 64 { username } else { "" },
    };
    if !login_csrf_matches(&s, &headers, &form) {
        let expired = "This sign-in form expired. Please sign in again.";
        return render_login(&s, &headers, view(StatusCode::FORBIDDEN, expired));
    }
    let keys = LoginKeys::new(username, peer.ip());
    let store = s.authz.core().store();
    let throttle = &s.login_throttle;
    let now = s.authz.core().now();
    match throttle.reserve(store.as_ref(), &keys, now).await {
        Err(e) => return page_error(&AuthzError::from(e), css),
        Ok(Some(wait)) => {
            let too_many = "Too many failed sign-in attempts. Wait a few minutes and try again.";
            let resp = render_login(&s, &headers, view(StatusCode::TOO_MANY_REQUESTS, too_many));
            return with_retry_after(resp, wait);
        }
        Ok(None) => {}
    }
    let checked = check_password(&s, username, password).await;
    let matched = match &checked {
        Ok(Ok(user)) => Some(user.is_some()),
        Ok(Err(Busy)) | Err(_) => None,
    };
    if let Err(e) = throttle.settle(store.as_ref(), &keys, now, matched).await {
        return page_error(&AuthzError::from(e), css);
    }
    match checked {
        Ok(Ok(Some(user))) => {
            let identity = DisplayIdentity::password_user(&user.username);
            resume_signed_in(&s, &headers, &user, identity, request)
                .await
                .unwrap_or_else(|e| page_error(&e, css))
        }
        Ok(Ok(None)) => {
            tracing::info!(ip = %peer.ip(), "failed sign-in");
            let invalid = "Invalid username or password.";
            render_login(&s, &headers, view(StatusCode::UNAUTHORIZED, invalid))
        }
        Ok(Err(Busy)) => {
            tracing::warn!(ip = %peer.ip(), "sign-in refused: every password check is busy");
            let busy = "The server is busy. Please try again in a moment.";
            let resp = render_login(&s, &headers, view(StatusCode::SERVICE_UNAVAILABLE, busy));
            with_retry_after(resp, password_checks::RETRY_AFTER_SECS)
        }
        Err(e) => page_error(&e, css),
    }
}

/// The double-submit check of the login form: the `csrf_token` field equals the login CSRF cookie.
fn login_csrf_matches(s: &AppState, headers: &HeaderMap, form: &Form) -> bool {
    let csrf_cookie = cookies::get(
        headers,
        &cookies::name(cookies::LOGIN_CSRF, s.secure_cookies),
    );
    matches!((&csrf_cookie, form.get("csrf_token")), (Some(c), Some(f)) if csrf::equal(c, f))
}

/// `resp` with `Retry-After: wait` (RFC 9110 §10.2.3).
fn with_retry_after(mut resp: Response, wait: i64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// The account if `password` is its password; `None` for an unknown account or a wrong password (the hash is
/// checked either way, so both take as long); [`Busy`] when the checking pool had no room
/// ([`crate::password_checks`]).
async fn check_password(
    s: &AppState,
    username: &str,
    password: String,
) -> Result<Result<Option<UserRecord>, Busy>, AuthzError> {
    let (user, hash) = s.authz.sessions().login_candidate(username).await?;
    Ok(s.password_checks
        .verify(password, hash)
        .await
        .map(|verified| user.filter(|_| verified)))
}

/// Once a user is authenticated (password, or an identity provider's callback): replaces any current session by
/// a new one (the session id rotates at every sign-in) and answers 303 back to `/authorize?request` with the
/// session cookie.
pub(crate) async fn resume_signed_in(
    s: &AppState,
    headers: &HeaderMap,
    user: &UserRecord,
    identity: DisplayIdentity,
    request: &str,
) -> Result<Response, AuthzError> {
    if let Ok(Some((_, old))) = current_session(s, headers).await {
        let _ = s.authz.core().store().delete_session(&old.id_hash).await;
    }
    let idp = identity.idp.clone();
    let (cookie, _) = s.authz.sessions().open_session(user, identity).await?;
    tracing::info!(user = %user.username, idp = idp.as_deref().unwrap_or("password"), "signed in");
    let mut resp = see_other(&format!("{}?{}", s.routes.authorize, request));
    let name = cookies::name(cookies::SESSION, s.secure_cookies);
    resp.headers_mut().append(
        header::SET_COOKIE,
        cookies::set(
            &name,
            cookie.expose(),
            s.authz.core().config().session_ttl,
            s.secure_cookies,
        ),
    );
    Ok(resp)
}

/// `POST /consent`.
pub async fn consent(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let css = &s.routes.stylesheet;
    let form = match posted_form(&s, &headers, body, "consent") {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let session = match current_session(&s, &headers).await {
        Ok(Some((_, r))) => r,
        Ok(None) => {
            return forbidden(
                &s,
                "Your sign-in session has ended. Start again from the application.",
            )
        }
        Err(e) => return page_error(&e, css),
    };
    let request = form.get("request").unwrap_or("");
    if !form
        .get("csrf_token")
        .is_some_and(|t| csrf::verify_consent_token(&session.csrf_key, request, t))
    {
        return forbidden(
            &s,
            "This consent form is not valid for your session. Start again from the application.",
        );
    }
    let authorizations = s.authz.authorizations();
    let req = match authorizations.authorization_request(request).await {
        Ok(r) => r,
        Err(AuthorizeError::Page(e)) => return page_error(&e, css),
        Err(e) => return redirect_or_page(&s, &session.user_id, e).await,
    };
    let req = match federation::scopes::entitled(&s, &session, req).await {
        Ok(r) => r,
        Err(e) => return page_error(&e, css),
    };
    match form.get("decision") {
        Some("approve") => match authorizations
            .approve(&session.user_id, &session.identity, &req)
            .await
        {
            Ok(loc) => {
                tracing::info!(client_id = %req.client.client_id, user = %session.username, "authorization approved");
                see_other(&loc)
            }
            Err(e) => page_error(&e, css),
        },
        Some("deny") => see_other(&authorizations.deny(&req)),
        _ => page_error(
            &AuthzError::InvalidRequest("decision must be approve or deny".into()),
            css,
        ),
    }
}
