//! Consent and the browser session (issue 19, items 4–6 and 11): remembered consent never stands in for a client
//! whose identity cannot be proven (RFC 8252 §8.6), it is per protected resource and the page names the resource
//! (RFC 8707 §2), errors are redirected only to clients the user approved (RFC 9700 §4.11.2), signing out ends
//! the session on the server, and `http://localhost` redirect URIs follow `localhost_redirect_uris`
//! (RFC 8252 §8.3).

use super::after_login;
use crate::support::{
    self, authorize_url, browser, enc, form_inputs, get, pkce, register_confidential,
    register_public, register_raw, resolve, seed_registration, start, start_with, submit, Page,
    Server, SEED_REDIRECT,
};
use reqwest::header::SET_COOKIE;
use reqwest::StatusCode;
use serde_json::json;

/// Approves `url` in browser `b` (signing in first when needed); the 303 to the client.
async fn approve(b: &reqwest::Client, s: &Server, url: &str) -> Page {
    let page = after_login(b, s, url).await;
    assert!(page.is_consent(), "{:?} {}", page.status, page.body);
    let after = submit(b, s, &page, "/consent", &[("decision", "approve")]).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER, "{}", after.body);
    after
}

/// Rule (RFC 8252 §8.6): after alice approves a public client with a loopback redirect, another local program
/// reusing its `client_id` with its own port and PKCE pair still meets the consent page, never a code.
#[tokio::test]
async fn remembered_consent_never_stands_in_for_a_public_loopback_client() {
    let s = start();
    let b = browser();
    let client = register_public(&s).await;
    approve(&b, &s, &authorize_url(&s, &client, &pkce().challenge, "")).await;
    let impostor = s.url(&format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={}\
         &code_challenge_method=S256",
        enc(&client),
        enc("http://localhost:47123/callback"),
        pkce().challenge
    ));
    let page = get(&b, &impostor).await;
    assert!(
        page.is_consent(),
        "a code without asking: {:?} {:?}",
        page.status,
        page.location()
    );
    // A confidential client proves itself at the token endpoint: its consent is remembered.
    let (confidential, _) = register_confidential(&s, "client_secret_basic").await;
    let url = authorize_url(&s, &confidential, &pkce().challenge, "");
    approve(&b, &s, &url).await;
    let page = get(&b, &authorize_url(&s, &confidential, &pkce().challenge, "")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(page.location().unwrap().contains("code="));
}

/// Rule (RFC 8707 §2): approving a client for one protected resource approves nothing at another; the consent
/// page names the resource.
#[tokio::test]
async fn consent_is_per_resource_and_the_page_names_it() {
    let other = "https://files.example/mcp";
    let s = start_with(&["--resource", other]);
    let b = browser();
    let (client, _) = register_confidential(&s, "client_secret_basic").await;
    let mcp = authorize_url(&s, &client, &pkce().challenge, "");
    let page = after_login(&b, &s, &mcp).await;
    assert!(page.is_consent(), "{}", page.body);
    assert!(
        page.body.contains(&format!(
            "<strong id=\"resource\">{}</strong>",
            s.mcp_here()
        )),
        "the page does not name the resource: {}",
        page.body
    );
    approve(&b, &s, &mcp).await;
    let files = authorize_url(
        &s,
        &client,
        &pkce().challenge,
        &format!("&resource={}", enc(other)),
    );
    let page = get(&b, &files).await;
    assert!(
        page.is_consent(),
        "consent for the MCP endpoint stood in for {other}: {:?} {:?}",
        page.status,
        page.location()
    );
    assert!(page.body.contains(other), "{}", page.body);
    approve(&b, &s, &files).await;
    let again = get(&b, &files).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.body);
}

/// Rule (RFC 9700 §4.11.2): a signed-in user sent to `/authorize` of a client they never approved, with a bad
/// `response_type`, sees an error page: the client's (attacker's) redirect URI is not used as an open redirector.
#[tokio::test]
async fn errors_are_not_redirected_to_clients_the_user_never_approved() {
    let s = start();
    let b = browser();
    // alice is signed in (she approved some other client).
    let mine = register_public(&s).await;
    approve(&b, &s, &authorize_url(&s, &mine, &pkce().challenge, "")).await;
    let mut meta = seed_registration();
    meta["redirect_uris"] = json!(["https://attacker.example/landing"]);
    let (status, body) = register_raw(&s, &meta).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let attacker = body["client_id"].as_str().unwrap();
    let lure = s.url(&format!(
        "/authorize?response_type=token&client_id={}&redirect_uri={}",
        enc(attacker),
        enc("https://attacker.example/landing")
    ));
    let page = get(&b, &lure).await;
    assert_eq!(
        page.status,
        StatusCode::BAD_REQUEST,
        "{:?}",
        page.location()
    );
    assert!(page.location().is_none());
    assert!(
        page.body.contains("unsupported_response_type"),
        "{}",
        page.body
    );
    // Her own, approved, client still gets its error through its redirect URI (RFC 6749 §4.1.2.1).
    let own = authorize_url(&s, &mine, &pkce().challenge, "")
        .replace("response_type=code", "response_type=token");
    let page = get(&b, &own).await;
    let location = page
        .location()
        .expect("an error redirect to an approved client");
    assert!(location.starts_with(SEED_REDIRECT), "{location}");
    assert!(
        location.contains("error=unsupported_response_type"),
        "{location}"
    );
}

/// The session cookie a response sets, as `name=value`.
fn session_cookie(p: &Page) -> Option<String> {
    p.headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("portcullis_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

/// Rule: signing out ends the session on the server (a copy of the cookie is worthless afterwards); the form needs
/// this session's CSRF token and our `Origin`, so another site cannot sign a user out.
#[tokio::test]
async fn signing_out_ends_the_session_and_needs_the_sessions_token() {
    let s = start();
    let b = browser();
    let client = register_public(&s).await;
    let url = authorize_url(&s, &client, &pkce().challenge, "");
    let login = get(&b, &url).await;
    let signed_in = submit(
        &b,
        &s,
        &login,
        "/login",
        &[("username", support::USER), ("password", support::PASSWORD)],
    )
    .await;
    let stolen = session_cookie(&signed_in).expect("a session cookie");
    let consent = get(&b, &resolve(&s, signed_in.location().unwrap())).await;
    assert!(consent.is_consent(), "{}", consent.body);
    assert!(
        consent.body.contains("Not <strong>alice</strong>?"),
        "{}",
        consent.body
    );
    let fields = form_inputs(&consent.body, "/logout");
    let post = |fields: Vec<(String, String)>, origin: Option<&'static str>| {
        let mut req = b.post(s.url("/logout")).form(&fields);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        async move {
            let r = req.send().await.unwrap();
            Page {
                status: r.status(),
                headers: r.headers().clone(),
                body: r.text().await.unwrap(),
            }
        }
    };
    let without_token: Vec<_> = fields
        .iter()
        .filter(|(k, _)| k != "csrf_token")
        .cloned()
        .collect();
    assert_eq!(
        post(without_token, None).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(fields.clone(), Some("https://evil.example"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert!(
        get(&b, &url).await.is_consent(),
        "a refused sign-out must not end the session"
    );
    // GET /logout names the user and offers the button.
    let page = get(&b, &s.url("/logout")).await;
    assert!(
        page.body
            .contains("signed in to Portcullis as <strong>alice</strong>"),
        "{}",
        page.body
    );
    // The consent page's "Sign out" goes back to the request, now at the sign-in page.
    let out = post(fields, None).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    assert!(
        out.location().unwrap().starts_with("/authorize?"),
        "{:?}",
        out.location()
    );
    assert!(
        out.headers
            .get_all(SET_COOKIE)
            .iter()
            .any(|v| v.to_str().unwrap().contains("Max-Age=0")),
        "the cookie is not cleared"
    );
    assert!(get(&b, &resolve(&s, out.location().unwrap()))
        .await
        .is_login());
    // The old cookie value, replayed, no longer signs anyone in.
    let replay = support::http()
        .get(&url)
        .header("cookie", &stolen)
        .send()
        .await
        .unwrap();
    let body = replay.text().await.unwrap();
    assert!(
        body.contains("action=\"/login\""),
        "the session outlived sign-out: {body}"
    );
    // Signing out again (no session) is not an error.
    let again = b
        .post(s.url("/logout"))
        .form(&[("csrf_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert!(again.text().await.unwrap().contains("Signed out"));
}

/// Rule (RFC 8252 §8.3): `http://localhost` redirect URIs are accepted with a warning in the log by default and
/// refused under `localhost_redirect_uris = "refuse"`; loopback IP literals are always accepted.
#[tokio::test]
async fn localhost_redirect_uris_are_warned_of_or_refused() {
    let s = start();
    register_public(&s).await;
    let log = s.log();
    assert!(
        log.contains("localhost redirect URI") && log.contains("8252"),
        "no warning: {log}"
    );
    let strict = start_with(&["--localhost-redirect-uris", "refuse"]);
    let (status, body) = register_raw(&strict, &seed_registration()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_redirect_uri");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1"),
        "{body}"
    );
    let mut meta = seed_registration();
    meta["redirect_uris"] = json!([
        "http://127.0.0.1:8080/callback",
        "http://[::1]:8080/callback"
    ]);
    let (status, body) = register_raw(&strict, &meta).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}
