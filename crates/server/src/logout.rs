//! Signing out of Portcullis: `GET /logout` (a page with a sign-out button) and `POST /logout` (ends the browser's
//! sign-in session). The consent page carries the same form as "Not alice? Sign out", which then returns to the
//! authorization request so someone else can sign in.
//!
//! Rules (security notes, "Login and consent pages"): the POST checks `Origin` and a CSRF token bound to the
//! session ([`csrf::logout_token`]), so another site cannot sign a user out; the session row is deleted, not just
//! the cookie; the cookie is cleared with `Max-Age=0`. Signing out ends only the browser session: tokens already
//! issued to applications keep working until they expire or are revoked (`portcullis grants revoke`, RFC 7009).

use crate::authorize::{current_session, forbidden, posted_form, see_other};
use crate::cookies;
use crate::error::page_error;
use crate::pages::{self, escape};
use crate::state::AppState;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use portcullis_authz::csrf;
use std::sync::Arc;

/// `GET /logout`: who is signed in and a button to sign out, or that nobody is.
pub async fn page(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let css = &s.routes.stylesheet;
    let session = match current_session(&s, &headers).await {
        Ok(session) => session,
        Err(e) => return page_error(&e, css),
    };
    let Some((_, session)) = session else {
        return signed_out_page(&s);
    };
    let body = format!(
        "<h1>Sign out?</h1><p>You are signed in to Portcullis as <strong>{}</strong>.</p>\
         <p class=\"muted\">Applications you approved keep the access you gave them until it expires or is revoked.</p>\
         <form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"csrf_token\" value=\"{}\">\
         <div class=\"actions\"><button type=\"submit\" id=\"sign-out\">Sign out</button></div></form>",
        escape(&session.username),
        escape(&s.routes.logout),
        escape(&csrf::logout_token(&session.csrf_key)),
    );
    pages::page(StatusCode::OK, "Sign out", &body, css, "'self'")
}

/// `POST /logout`: ends the session (when the form's token is this session's), clears the cookie, then goes back
/// to the authorization request named in `request` (the consent page's "Not you?"), else shows that the user is
/// signed out. Without a session it only clears the cookie: signing out twice is not an error.
pub async fn logout(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let css = &s.routes.stylesheet;
    let form = match posted_form(&s, &headers, body, "sign-out") {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    match current_session(&s, &headers).await {
        Err(e) => return page_error(&e, css),
        Ok(None) => {}
        Ok(Some((_, session))) => {
            let token = form.get("csrf_token").unwrap_or("");
            if !csrf::verify_logout_token(&session.csrf_key, token) {
                return forbidden(
                    &s,
                    "This sign-out form is not valid for your session. Reload the page and try again.",
                );
            }
            if let Err(e) = s
                .authz
                .core()
                .store()
                .delete_session(&session.id_hash)
                .await
            {
                return page_error(&e.into(), css);
            }
            tracing::info!(user = %session.username, "signed out");
        }
    }
    let mut resp = match form.get("request").filter(|r| !r.is_empty()) {
        Some(request) => see_other(&format!("{}?{request}", s.routes.authorize)),
        None => signed_out_page(&s),
    };
    resp.headers_mut().append(
        header::SET_COOKIE,
        cookies::set(
            &cookies::name(cookies::SESSION, s.secure_cookies),
            "",
            0,
            s.secure_cookies,
        ),
    );
    resp
}

fn signed_out_page(s: &AppState) -> Response {
    let body = "<h1>Signed out</h1><p>You are not signed in to Portcullis.</p>\
                <p class=\"muted\">To sign in again, start from the application.</p>";
    pages::page(
        StatusCode::OK,
        "Signed out",
        body,
        &s.routes.stylesheet,
        "'self'",
    )
}
