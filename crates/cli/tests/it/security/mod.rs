//! The attack suite of issue 6: one test per rule of `shared/notes/security.md` and per known bypass, each
//! talking HTTP to the real `portcullis serve` on 127.0.0.1. Every test's doc comment names the rule and its
//! source (RFC section or incident). Functional negative tests (plain code reuse, expiry, …) live in
//! `negative.rs`; these are the adversarial ones. SECURITY.md maps every rule to its tests.
//!
//! Files: [`redirect_uri`] (registration and /authorize tricks), [`pkce`] (downgrades), [`replay`] (codes and
//! refresh tokens: replays, races, cross-client use, widening), [`jwt`] (forged access tokens at /mcp),
//! [`csrf`] (CSRF, consent replay across browsers, framing), [`input`] (oversized and malformed input, SQL
//! metacharacters, NUL bytes), [`enumeration`] (user enumeration, brute force, password hashing off the runtime),
//! [`abuse`] (registration rate limit), [`limits_races`] (limits under parallel requests, guesses at /revoke,
//! hidden characters in client names), [`slow_clients`] (header read timeout, connection cap),
//! [`gateway_streams`] (event streams per caller at the gateway), [`gateway_rpc`] (JSON-RPC the gateway did not
//! check never reaches the upstream), [`logins`] (sign-in floods: the password-check cap, race-safe throttling
//! per account and address), [`consent`] (remembered consent per resource and never for an unprovable client,
//! no error redirects to unapproved clients, signing out, localhost redirect URIs), [`floods`] (floods of
//! registration, the token endpoint and Client ID Metadata Document fetches: memory and `/livez` stay bounded),
//! [`probe`] (what the flood tests share: clients from other loopback addresses, `/livez` probing, peak memory).

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

mod abuse;
mod consent;
mod csrf;
mod enumeration;
mod floods;
mod gateway_rpc;
mod gateway_streams;
mod input;
mod jwt;
mod limits_races;
mod logins;
mod pkce;
mod probe;
mod redirect_uri;
mod replay;
mod slow_clients;

use crate::support::{self, Page, Server};
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Text that must never reach a response body: SQL, database and panic internals.
const LEAKS: &[&str] = &[
    "sqlite",
    "sqlx",
    "postgres",
    "syntax error",
    "SELECT ",
    "INSERT ",
    "UPDATE ",
    "DELETE FROM",
    "panicked",
    "stack backtrace",
    "RUST_BACKTRACE",
    "src/",
    ".rs:",
];

/// Asserts no internals in `body`.
pub fn assert_no_leak(what: &str, body: &str) {
    let lower = body.to_ascii_lowercase();
    for leak in LEAKS {
        assert!(
            !lower.contains(&leak.to_ascii_lowercase()),
            "{what}: the body leaks {leak:?}: {body}"
        );
    }
}

/// Asserts a 4xx with an RFC 6749 §5.2 / RFC 7591 §3.2.2 JSON error body (and no internals).
pub fn assert_json_4xx(
    what: &str,
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
) {
    assert!(
        status.is_client_error(),
        "{what}: expected a 4xx, got {status}: {body}"
    );
    let ct = headers
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or(""))
        .unwrap_or("");
    assert!(
        ct.starts_with("application/json"),
        "{what}: {status} with Content-Type {ct:?}: {body}"
    );
    let v: Value =
        serde_json::from_str(body).unwrap_or_else(|_| panic!("{what}: not JSON: {body}"));
    assert!(v["error"].is_string(), "{what}: no `error` member: {body}");
    assert_no_leak(what, body);
}

/// Asserts the anti-framing headers of every HTML response (security notes, "Login and consent pages";
/// OWASP Clickjacking Defense Cheat Sheet; RFC 9700 §4.16).
pub fn assert_no_framing(what: &str, p: &Page) {
    let csp = p
        .headers
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("{what}: no CSP on {:?}", p.status));
    assert!(
        csp.contains("frame-ancestors 'none'"),
        "{what}: CSP {csp:?}"
    );
    assert_eq!(
        p.headers
            .get("x-frame-options")
            .map(|v| v.to_str().unwrap()),
        Some("DENY"),
        "{what}: X-Frame-Options"
    );
    assert_eq!(
        p.headers
            .get("x-content-type-options")
            .map(|v| v.to_str().unwrap()),
        Some("nosniff"),
        "{what}: X-Content-Type-Options"
    );
}

/// Asserts an HTML error page: 4xx, no `Location` (never a redirect), anti-framing headers, no internals.
pub fn assert_error_page(what: &str, p: &Page) {
    assert!(
        p.status.is_client_error(),
        "{what}: expected an error page, got {:?} (Location {:?}): {}",
        p.status,
        p.location(),
        p.body
    );
    assert!(
        p.location().is_none(),
        "{what}: an error must never redirect: {:?}",
        p.location()
    );
    let ct = p
        .headers
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("");
    assert!(ct.starts_with("text/html"), "{what}: Content-Type {ct:?}");
    assert_no_framing(what, p);
    assert_no_leak(what, &p.body);
}

/// Registers a public client with these redirect URIs.
pub async fn register_uris(s: &Server, uris: &[&str]) -> (StatusCode, Value) {
    support::register_raw(
        s,
        &json!({
            "client_name": "attack suite",
            "redirect_uris": uris,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none"
        }),
    )
    .await
}

/// Sends a raw request (method, path with query, headers, body bytes) with a plain client.
pub async fn raw(
    s: &Server,
    method: reqwest::Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Page {
    let mut req = support::http().request(method, s.url(path)).body(body);
    if let Some(ct) = content_type {
        req = req.header(CONTENT_TYPE, ct);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap();
    Page {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// GETs `url` in browser `b`, signing in when the login page appears; returns the page after sign-in (the
/// consent page, an error page or a redirect), without answering consent.
pub async fn after_login(b: &reqwest::Client, s: &Server, url: &str) -> Page {
    let page = support::get(b, url).await;
    if !page.is_login() {
        return page;
    }
    let after = support::submit(
        b,
        s,
        &page,
        "/login",
        &[("username", support::USER), ("password", support::PASSWORD)],
    )
    .await;
    assert_eq!(after.status, StatusCode::SEE_OTHER, "login: {}", after.body);
    support::get(b, &support::resolve(s, after.location().unwrap())).await
}

/// Asserts that an authorization request was refused without issuing a code: an error page, or (after sign-in,
/// RFC 6749 §4.1.2.1) a redirect carrying `error` and no `code`. A consent page means it was accepted.
pub fn assert_refused_without_code(what: &str, p: &Page, error: &str) {
    assert!(
        !p.is_consent(),
        "{what}: the request was accepted (consent page shown)"
    );
    match p.location() {
        None => assert_error_page(what, p),
        Some(loc) => {
            assert_eq!(p.status, StatusCode::SEE_OTHER, "{what}");
            assert!(
                support::param(loc, "code").is_none(),
                "{what}: a code was issued: {loc}"
            );
            assert_eq!(
                support::param(loc, "error").as_deref(),
                Some(error),
                "{what}: {loc}"
            );
        }
    }
}
