//! CSRF, consent replay across browsers, and clickjacking. Rules: security notes "/authorize" (consent bound to
//! the browser session and the request; a new client is never silently approved) and "Login and consent pages"
//! (CSRF tokens on every POST, `Origin` checked, session rotated at login, anti-framing headers, HTML escaping);
//! RFC 9700 §4.7, §4.16; OWASP CSRF and Clickjacking cheat sheets; incident: fastmcp consent not bound to the
//! browser (GHSA-rww4-4w9c-7733).

use super::{assert_error_page, assert_no_framing};
use crate::support::{
    self, browser, get, hidden_inputs, pkce, resolve, submit, Page, Server, PASSWORD, USER,
};
use reqwest::StatusCode;

/// Signs browser `b` in through the login page of `url`; returns the consent page.
async fn consent_page(b: &reqwest::Client, s: &Server, url: &str) -> Page {
    let page = super::after_login(b, s, url).await;
    assert!(
        page.is_consent(),
        "expected the consent page: {:?} {}",
        page.status,
        page.body
    );
    page
}

/// Posts `fields` as a form to `path` with browser `b` and extra headers.
async fn post(
    b: &reqwest::Client,
    s: &Server,
    path: &str,
    fields: &[(String, String)],
    origin: Option<&str>,
) -> Page {
    let mut req = b.post(s.url(path)).form(fields);
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    let resp = req.send().await.unwrap();
    Page {
        status: resp.status(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap(),
    }
}

fn no_code(what: &str, p: &Page) {
    assert!(
        p.status.is_client_error(),
        "{what}: expected a refusal, got {:?} (Location {:?})",
        p.status,
        p.location()
    );
    if let Some(loc) = p.location() {
        assert!(!loc.contains("code="), "{what}: a code was issued: {loc}");
    }
}

/// Rule: consent is bound to the browser session — browser A's consent form (its csrf_token and request)
/// submitted from browser B's signed-in session is refused (GHSA-rww4-4w9c-7733; security notes "/authorize").
#[tokio::test]
async fn consent_form_of_one_browser_is_refused_in_another() {
    let s = support::start();
    let client = support::register_public(&s).await;
    let p = pkce();
    let url = support::authorize_url(&s, &client, &p.challenge, "&state=a");
    let a = browser();
    let form_a = consent_page(&a, &s, &url).await;
    // Browser B signs in as the same user on its own (a different session), with its own request.
    let b = browser();
    let _ = consent_page(
        &b,
        &s,
        &support::authorize_url(&s, &client, &pkce().challenge, "&state=b"),
    )
    .await;
    let mut fields = hidden_inputs(&form_a.body);
    fields.push(("decision".into(), "approve".into()));
    let replayed = post(&b, &s, "/consent", &fields, None).await;
    no_code("A's consent form in B's session", &replayed);
    // And with no session at all.
    let replayed = post(&support::http(), &s, "/consent", &fields, None).await;
    no_code("A's consent form without a session", &replayed);
    // A's own submission still works (the control).
    let ok = submit(&a, &s, &form_a, "/consent", &[("decision", "approve")]).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert!(ok.location().unwrap().contains("code="));
}

/// Rule: consent is bound to the authorization request — a consent token for request 1 cannot approve
/// request 2 (another client, another redirect URI) in the same session (security notes "/authorize").
#[tokio::test]
async fn consent_token_is_bound_to_its_request() {
    let s = support::start();
    let client1 = support::register_public(&s).await;
    let (status, body) = super::register_uris(&s, &["http://127.0.0.1/evil"]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let client2 = body["client_id"].as_str().unwrap().to_owned();
    let b = browser();
    let page1 = consent_page(
        &b,
        &s,
        &support::authorize_url(&s, &client1, &pkce().challenge, "&state=1"),
    )
    .await;
    let url2 = s.url(&format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={}&code_challenge_method=S256&state=2",
        support::enc(&client2),
        support::enc("http://127.0.0.1/evil"),
        pkce().challenge
    ));
    let page2 = get(&b, &url2).await;
    assert!(page2.is_consent());
    let token1 = hidden_inputs(&page1.body)
        .into_iter()
        .find(|(k, _)| k == "csrf_token")
        .unwrap()
        .1;
    let request2 = hidden_inputs(&page2.body)
        .into_iter()
        .find(|(k, _)| k == "request")
        .unwrap()
        .1;
    let fields = vec![
        ("csrf_token".to_owned(), token1),
        ("request".to_owned(), request2),
        ("decision".to_owned(), "approve".to_owned()),
    ];
    no_code(
        "request 1's consent token on request 2",
        &post(&b, &s, "/consent", &fields, None).await,
    );
}

/// Rule: CSRF token on every POST — a login POST without the CSRF cookie, or with a token that does not match
/// it, is refused and signs nobody in (OWASP CSRF cheat sheet, double-submit; security notes "Login and
/// consent pages"; login CSRF, RFC 9700 §4.7).
#[tokio::test]
async fn login_without_the_csrf_cookie_is_refused() {
    let s = support::start();
    let client = support::register_public(&s).await;
    let url = support::authorize_url(&s, &client, &pkce().challenge, "&state=x");
    let page = get(&browser(), &url).await;
    assert!(page.is_login());
    let mut fields = hidden_inputs(&page.body);
    fields.push(("username".into(), USER.into()));
    fields.push(("password".into(), PASSWORD.into()));
    // No cookies at all (a cross-site form post from an attacker's page).
    let p = post(&support::http(), &s, "/login", &fields, None).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    assert!(p
        .headers
        .get_all("set-cookie")
        .iter()
        .all(|c| !c.to_str().unwrap().contains("session")));
    // With its own CSRF cookie but another page's token.
    let b = browser();
    let _ = get(&b, &url).await;
    let mut wrong = fields.clone();
    for f in wrong.iter_mut().filter(|(k, _)| k == "csrf_token") {
        f.1 = "A".repeat(f.1.len().max(1));
    }
    let p = post(&b, &s, "/login", &wrong, None).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    // Without the csrf_token field.
    let without: Vec<_> = fields
        .iter()
        .filter(|(k, _)| k != "csrf_token")
        .cloned()
        .collect();
    let p = post(&b, &s, "/login", &without, None).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
}

/// Rule: `Origin` is checked — a cross-site `Origin` on /login or /consent is refused even with valid tokens
/// and cookies (OWASP CSRF cheat sheet "Verifying Origin"; security notes "Login and consent pages").
#[tokio::test]
async fn cross_site_origin_is_refused() {
    let s = support::start();
    let client = support::register_public(&s).await;
    let url = support::authorize_url(&s, &client, &pkce().challenge, "&state=x");
    let b = browser();
    let login = get(&b, &url).await;
    let mut fields = hidden_inputs(&login.body);
    fields.push(("username".into(), USER.into()));
    fields.push(("password".into(), PASSWORD.into()));
    for origin in [
        "https://evil.example",
        "null",
        &s.base.replace("127.0.0.1", "localhost"),
        &format!("{}.evil.example", s.base),
    ] {
        let p = post(&b, &s, "/login", &fields, Some(origin)).await;
        assert_eq!(
            p.status,
            StatusCode::FORBIDDEN,
            "login from Origin {origin}: {}",
            p.body
        );
        assert_no_framing("403 login page", &p);
    }
    let consent = consent_page(&b, &s, &url).await;
    let mut fields = hidden_inputs(&consent.body);
    fields.push(("decision".into(), "approve".into()));
    let p = post(&b, &s, "/consent", &fields, Some("https://evil.example")).await;
    no_code("consent from a cross-site Origin", &p);
    assert_eq!(p.status, StatusCode::FORBIDDEN);
}

/// Rule: the session id rotates at login — a session id planted before sign-in (session fixation) is never
/// the one issued (OWASP Session Management cheat sheet; security notes "Login and consent pages"); session
/// cookies are HttpOnly and SameSite=Lax.
#[tokio::test]
async fn session_rotates_at_login_and_cookies_are_hardened() {
    let s = support::start();
    let client = support::register_public(&s).await;
    let url = support::authorize_url(&s, &client, &pkce().challenge, "&state=x");
    let plain = support::http();
    let resp = plain.get(&url).send().await.unwrap();
    let csrf_cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.contains("portcullis_csrf"))
        .expect("no CSRF cookie on the login page");
    let login = Page {
        status: resp.status(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap(),
    };
    let mut fields = hidden_inputs(&login.body);
    fields.push(("username".into(), USER.into()));
    fields.push(("password".into(), PASSWORD.into()));
    let fixated = "portcullis_session=attacker-chosen-session-id";
    let resp = plain
        .post(s.url("/login"))
        .header("cookie", format!("{csrf_cookie}; {fixated}"))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let set: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .collect();
    let session = set
        .iter()
        .find(|c| {
            c.starts_with("portcullis_session=") || c.starts_with("__Host-portcullis_session=")
        })
        .unwrap_or_else(|| panic!("no session cookie at login: {set:?}"));
    assert!(
        !session.starts_with(fixated),
        "the planted session id was kept: {session}"
    );
    let lower = session.to_ascii_lowercase();
    assert!(
        lower.contains("httponly") && lower.contains("samesite=lax") && lower.contains("path=/"),
        "{session}"
    );
    let _ = resolve(&s, "/");
}

/// Rule: anti-framing headers on every HTML response — login, consent, login failure, CSRF failure and the
/// error pages (security notes "Login and consent pages"; RFC 9700 §4.16; OWASP Clickjacking cheat sheet).
#[tokio::test]
async fn every_html_response_forbids_framing() {
    let s = support::start();
    let client = support::register_public(&s).await;
    let url = support::authorize_url(&s, &client, &pkce().challenge, "&state=x");
    let b = browser();
    let login = get(&b, &url).await;
    assert!(login.is_login());
    assert_no_framing("login page", &login);
    let failed = submit(
        &b,
        &s,
        &login,
        "/login",
        &[("username", USER), ("password", "wrong password!")],
    )
    .await;
    assert_eq!(failed.status, StatusCode::UNAUTHORIZED);
    assert_no_framing("failed login", &failed);
    let consent = consent_page(&b, &s, &url).await;
    assert_no_framing("consent page", &consent);
    assert_error_page(
        "unknown client",
        &get(&browser(), &s.url("/authorize?client_id=nope")).await,
    );
    assert_error_page(
        "no parameters",
        &get(&browser(), &s.url("/authorize")).await,
    );
    let bad_form = post(
        &support::http(),
        &s,
        "/consent",
        &[("x".into(), "y".into())],
        None,
    )
    .await;
    assert_error_page("malformed consent", &bad_form);
    // The redirect that carries the code: no caching, no referrer (RFC 9700 §4.2.4).
    let ok = submit(&b, &s, &consent, "/consent", &[("decision", "approve")]).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(ok.headers.get("referrer-policy").unwrap(), "no-referrer");
    assert_eq!(ok.headers.get("cache-control").unwrap(), "no-store");
}

/// Rule: everything shown is HTML-escaped — a client name full of markup appears escaped on the consent page,
/// marked unverified, with the redirect host (security notes "/authorize" and "Login and consent pages").
#[tokio::test]
async fn client_name_is_escaped_on_the_consent_page() {
    let s = support::start();
    let evil = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&";
    let (status, body) = support::register_raw(
        &s,
        &serde_json::json!({"client_name": evil, "redirect_uris": [support::SEED_REDIRECT],
            "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let client = body["client_id"].as_str().unwrap();
    let page = consent_page(
        &browser(),
        &s,
        &support::authorize_url(&s, client, &pkce().challenge, ""),
    )
    .await;
    assert!(
        !page.body.contains("<script>alert(1)"),
        "unescaped client name"
    );
    assert!(!page.body.contains("<img src=x"), "unescaped client name");
    assert!(page.body.contains("&lt;script&gt;"), "client name missing");
    assert!(page.body.contains("localhost"), "redirect host not shown");
    assert!(
        page.body.to_ascii_lowercase().contains("unverified"),
        "name not marked unverified"
    );
}
