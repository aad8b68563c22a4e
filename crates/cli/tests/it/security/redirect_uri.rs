//! Redirect-URI tricks at registration and at /authorize. Rules: security notes "Registration" (allowed kinds,
//! normalise before checking) and "/authorize" (exact match, error page and never a redirect); RFC 8252 §7.1–7.3,
//! RFC 9700 §4.1.3, OAuth 2.1 §4.1.1; incidents: the workers-oauth-provider redirect-scheme blacklist bypass and
//! CVE-2025-4143, python-sdk accepting `javascript:` redirect URIs.

use super::{assert_error_page, register_uris};
use crate::support::{self, browser, enc, get, pkce, Server, SEED_REDIRECT};
use reqwest::StatusCode;

/// Asserts that registering each of `uris` (alone, and next to a valid one) is refused with
/// `invalid_redirect_uri` (RFC 7591 §3.2.2).
async fn refused_at_registration(s: &Server, uris: &[&str]) {
    for uri in uris {
        for list in [vec![*uri], vec![SEED_REDIRECT, *uri]] {
            let (status, body) = register_uris(s, &list).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{uri:?} was registered: {body}"
            );
            assert_eq!(body["error"], "invalid_redirect_uri", "{uri:?}: {body}");
            super::assert_no_leak(uri, &body.to_string());
        }
    }
}

/// Rule: normalise before you check — case tricks of scheme and host are refused, not normalised into a second
/// reading (security notes "Registration"; the workers-oauth-provider scheme-blacklist bypass).
#[tokio::test]
async fn registration_refuses_case_tricks() {
    let s = support::start();
    refused_at_registration(
        &s,
        &[
            "JaVaScRiPt:alert(1)",
            "JAVASCRIPT:alert(1)",
            "HTTP://localhost/cb",
            "Https://app.example.com/cb",
            "https://APP.example.com/cb",
            "http://LOCALHOST/cb",
            "DATA:text/html,x",
            "FiLe:///etc/passwd",
        ],
    )
    .await;
}

/// Rule: whitespace and control characters (tab, CR, LF, NUL, DEL, NBSP, zero-width space) cannot smuggle a
/// scheme past the check (security notes "Registration"; WHATWG URL strips tab/CR/LF and leading C0/space).
#[tokio::test]
async fn registration_refuses_whitespace_and_control_characters() {
    let s = support::start();
    refused_at_registration(
        &s,
        &[
            " javascript:alert(1)",
            "\tjavascript:alert(1)",
            "java\tscript:alert(1)",
            "java\nscript:alert(1)",
            "java\rscript:alert(1)",
            "\u{0}javascript:alert(1)",
            "javascript\u{0}:alert(1)",
            "https://app.example.com/cb ",
            " https://app.example.com/cb",
            "https://app.example.com/c\tb",
            "https://app.example.com/cb\r\nSet-Cookie:x=1",
            "https://app.example.com/cb\u{7f}",
            "https://app.example.com/\u{a0}cb",
            "https://app.example.com/\u{200b}cb",
            "\u{1}http://localhost/cb",
            "http://localhost/cb\u{0}",
            "",
        ],
    )
    .await;
}

/// Rule: refuse `javascript:`, `data:`, `file:` and other non-redirect schemes; only https, loopback http,
/// reverse-domain private-use schemes and the listed ones (`allowed_redirect_schemes`, default `cursor` and
/// `claude`, so `myapp:` and `x:` are refused) (RFC 8252 §7.1; python-sdk `javascript:` incident).
#[tokio::test]
async fn registration_refuses_dangerous_schemes() {
    let s = support::start();
    refused_at_registration(
        &s,
        &[
            "javascript:alert(1)",
            "javascript://localhost/%0aalert(1)",
            "data:text/html,<script>alert(1)</script>",
            "file:///etc/passwd",
            "vbscript:msgbox(1)",
            "about:blank",
            "blob:https://app.example.com/x",
            "ftp://app.example.com/cb",
            "ws://localhost/cb",
            "myapp:/cb",
            "x:/cb",
            "//app.example.com/cb",
            "/cb",
            "cb",
        ],
    )
    .await;
}

/// Rule: http only on loopback hosts; look-alike hosts are not loopback (RFC 8252 §7.3, §8.3).
#[tokio::test]
async fn registration_refuses_look_alike_loopback_hosts() {
    let s = support::start();
    refused_at_registration(
        &s,
        &[
            "http://localhost.evil.com/cb",
            "http://127.0.0.1.nip.io/cb",
            "http://evil.com/cb",
            "http://localhost@evil.com/cb",
            "http://evil.com#@localhost/cb",
            "http://evil.com?@localhost/cb",
            "http://2130706433/cb",
            "http://0x7f.1/cb",
            "http://127.1/cb",
            "http://app.example.com/cb",
        ],
    )
    .await;
}

/// Rule: no userinfo (`https://good@evil`), no fragments (RFC 6749 §3.1.2), no backslashes or encoded
/// slashes/dots that another parser reads differently (security notes "Registration"; RFC 9700 §4.1.3).
#[tokio::test]
async fn registration_refuses_userinfo_fragments_and_parser_confusion() {
    let s = support::start();
    refused_at_registration(
        &s,
        &[
            "https://good@evil.com/cb",
            "https://good:pw@evil.com/cb",
            "https://app.example.com@evil.com/cb",
            "https://app.example.com/cb#",
            "https://app.example.com/cb#frag",
            "http://localhost/cb#x",
            "https://app.example.com\\@evil.com/cb",
            "https:\\\\evil.com\\cb",
            "https://app.example.com/a/../cb",
            "https://app.example.com/%2e%2e/cb",
            "https://app.example.com:443/cb",
            "http://localhost:80/cb",
            "https:app.example.com/cb",
            "https:/app.example.com/cb",
            "https:///app.example.com/cb",
        ],
    )
    .await;
}

/// What every tampered `redirect_uri` at /authorize must get: an error page with no `Location`, before and
/// after sign-in (security notes "/authorize": never a redirect; CVE-2025-4143: checked at /authorize, not only
/// at /token).
async fn refused_at_authorize(s: &Server, client_id: &str, redirect_uri: &str) {
    let p = pkce();
    let url = s.url(&format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={}&code_challenge_method=S256&state=s1",
        enc(client_id),
        enc(redirect_uri),
        p.challenge
    ));
    // A fresh browser (not signed in), and one that is signed in.
    let page = get(&browser(), &url).await;
    assert_error_page(&format!("/authorize with {redirect_uri:?}"), &page);
    let signed_in = browser();
    let _ = super::after_login(
        &signed_in,
        s,
        &support::authorize_url(s, client_id, &p.challenge, "&state=ok"),
    )
    .await;
    let page = get(&signed_in, &url).await;
    assert_error_page(
        &format!("/authorize (signed in) with {redirect_uri:?}"),
        &page,
    );
}

/// Rule: exact string match at /authorize; every variant of a registered https URI is an error page with no
/// `Location` (OAuth 2.1 §4.1.1, RFC 9700 §4.1.3 and §2.1; CVE-2025-4143).
#[tokio::test]
async fn authorize_refuses_every_variant_of_an_https_redirect_uri() {
    let s = support::start();
    let (status, body) = register_uris(&s, &["https://app.example.com/cb"]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let client = body["client_id"].as_str().unwrap().to_owned();
    for variant in [
        "https://APP.example.com/cb",
        "HTTPS://app.example.com/cb",
        "https://app.example.com/CB",
        "https://app.example.com/cb/",
        "https://app.example.com/cb/evil",
        "https://app.example.com/cb?x=1",
        "https://app.example.com/cb?",
        "https://app.example.com/cb#f",
        "https://app.example.com/cb%2F..",
        "https://app.example.com/cb/../cb",
        "https://app.example.com/%63b",
        "https://app.example.com:443/cb",
        "https://app.example.com:8443/cb",
        "https://app.example.com.evil.com/cb",
        "https://evil.com/cb",
        "https://app.example.com@evil.com/cb",
        "https://evil.com@app.example.com/cb",
        "https://app.example.com\\@evil.com/cb",
        " https://app.example.com/cb",
        "https://app.example.com/cb ",
        "https://app.example.com/cb\t",
        "https://app.example.com/cb\r\n",
        "https://app.example.com/cb\u{0}",
        "http://app.example.com/cb",
        "https://app.example.com",
        "javascript:alert(1)//https://app.example.com/cb",
    ] {
        refused_at_authorize(&s, &client, variant).await;
    }
}

/// Rule: loopback redirect URIs match with any port and nothing else varies — not the path, host spelling,
/// query or scheme (RFC 8252 §7.3, security notes "/authorize").
#[tokio::test]
async fn authorize_loopback_varies_only_in_port() {
    let s = support::start();
    let client = support::register_public(&s).await; // http://localhost:8080/callback
                                                     // The port may vary: the login page is shown (the request is accepted).
    let p = pkce();
    let url = s.url(&format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={}&code_challenge_method=S256",
        enc(&client),
        enc("http://localhost:53117/callback"),
        p.challenge
    ));
    assert!(
        get(&browser(), &url).await.is_login(),
        "another loopback port must be accepted"
    );
    for variant in [
        "http://localhost:8080/callback/",
        "http://localhost:8080/callback/x",
        "http://localhost:8080/Callback",
        "http://localhost:8080/callback?x=1",
        "http://localhost:8080/callback#x",
        "http://127.0.0.1:8080/callback",
        "http://[::1]:8080/callback",
        "http://LOCALHOST:8080/callback",
        "http://localhost.evil.com:8080/callback",
        "http://127.0.0.1.nip.io:8080/callback",
        "https://localhost:8080/callback",
        "http://localhost:8080",
        "http://localhost:8080/8080/callback",
        "http://localhost/callback:8080",
        "http://localhost:8080/%63allback",
        "http://evil@localhost:8080/callback",
        "http://localhost:8080@evil.com/callback",
        "http://localhost:8080\\@evil.com/callback",
    ] {
        refused_at_authorize(&s, &client, variant).await;
    }
}

/// Rule: an unknown `client_id` (including SQL and NUL tricks) is an error page, never a redirect, even to a
/// valid-looking redirect URI (security notes "/authorize"; RFC 6749 §4.1.2.1).
#[tokio::test]
async fn authorize_unknown_client_is_an_error_page() {
    let s = support::start();
    for client in [
        "nope",
        "' OR 1=1 --",
        "\"; DROP TABLE clients; --",
        "a\u{0}b",
        &"x".repeat(2000),
    ] {
        let p = pkce();
        let url = s.url(&format!(
            "/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={}&code_challenge_method=S256",
            enc(client),
            enc(SEED_REDIRECT),
            p.challenge
        ));
        assert_error_page(
            &format!("client_id {client:?}"),
            &get(&browser(), &url).await,
        );
    }
}

/// Rule: the `redirect_uri` at /token must equal the code's (RFC 6749 §4.1.3; CVE-2025-4143 checked it only
/// there, we check both): a code redeemed with another loopback port or path is `invalid_grant`.
#[tokio::test]
async fn token_refuses_a_redirect_uri_other_than_the_codes() {
    let s = support::start();
    let client = support::register_public(&s).await;
    let p = pkce();
    let code = support::code_for(&s, &client, &p, "&state=x").await;
    for other in [
        "http://localhost:8080/callback/",
        "http://localhost:8080/other",
        "https://evil.com/cb",
    ] {
        let (status, _, body) = support::post_form(
            &s,
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", other),
                ("client_id", &client),
                ("code_verifier", &p.verifier),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{other}: {body}");
        assert_eq!(body["error"], "invalid_grant", "{other}: {body}");
    }
}
