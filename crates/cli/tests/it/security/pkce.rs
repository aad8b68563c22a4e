//! PKCE downgrades. Rules: security notes "/authorize" (PKCE required, S256 only, syntax checked) and "/token"
//! (missing or wrong verifier: `invalid_grant`); RFC 7636 §4.1–4.6, OAuth 2.1 §4.1.1, RFC 9700 §2.1.1 and
//! §4.8; incident: the workers-oauth-provider PKCE downgrade.

use super::{after_login, assert_refused_without_code};
use crate::support::{self, browser, enc, pkce, Server, SEED_REDIRECT};
use reqwest::StatusCode;

/// An /authorize URL with raw PKCE parameters (`pkce` appended verbatim).
fn url_with(s: &Server, client: &str, pkce_params: &str) -> String {
    s.url(&format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={}&state=st{pkce_params}",
        enc(client),
        enc(SEED_REDIRECT)
    ))
}

async fn refused(s: &Server, client: &str, pkce_params: &str) {
    let page = after_login(&browser(), s, &url_with(s, client, pkce_params)).await;
    assert_refused_without_code(&format!("PKCE {pkce_params:?}"), &page, "invalid_request");
}

/// Rule: PKCE is required — an authorization request without `code_challenge` gets no code (OAuth 2.1 §4.1.1;
/// RFC 9700 §2.1.1).
#[tokio::test]
async fn authorize_without_challenge_is_refused() {
    let s = support::start();
    let client = support::register_public(&s).await;
    refused(&s, &client, "").await;
    refused(&s, &client, "&code_challenge_method=S256").await;
    refused(&s, &client, "&code_challenge=&code_challenge_method=S256").await;
}

/// Rule: S256 only — `plain`, a missing method (RFC 7636 §4.3 defaults to plain), and other spellings are
/// refused (security notes "/authorize"; the PKCE downgrade incident).
#[tokio::test]
async fn authorize_refuses_plain_and_unknown_methods() {
    let s = support::start();
    let client = support::register_public(&s).await;
    let c = pkce().challenge;
    for method in [
        "&code_challenge_method=plain",
        "",
        "&code_challenge_method=s256",
        "&code_challenge_method=S512",
        "&code_challenge_method=none",
        "&code_challenge_method=S256%00",
    ] {
        refused(&s, &client, &format!("&code_challenge={c}{method}")).await;
    }
}

/// Rule: the challenge's syntax is checked — an S256 challenge is exactly 43 base64url characters
/// (RFC 7636 §4.2); shorter, longer, padded or wrong-alphabet challenges are refused.
#[tokio::test]
async fn authorize_refuses_malformed_challenges() {
    let s = support::start();
    let client = support::register_public(&s).await;
    let c = pkce().challenge;
    for bad in [
        c[..42].to_owned(),
        format!("{c}A"),
        format!("{c}="),
        "A".repeat(128),
        format!("{}+", &c[..42]),
        format!("{}%2F", &c[..42]),
        format!("{}%20", &c[..42]),
        format!("{}%00", &c[..42]),
        "' OR 1=1 --".into(),
    ] {
        refused(
            &s,
            &client,
            &format!("&code_challenge={bad}&code_challenge_method=S256"),
        )
        .await;
    }
}

/// Rule: repeated parameters are refused (security notes "/authorize"; RFC 6749 §3.1), so a second
/// `code_challenge_method=plain` cannot override the first.
#[tokio::test]
async fn authorize_refuses_repeated_pkce_parameters() {
    let s = support::start();
    let client = support::register_public(&s).await;
    let c = pkce().challenge;
    let page = after_login(
        &browser(),
        &s,
        &url_with(
            &s,
            &client,
            &format!("&code_challenge={c}&code_challenge_method=S256&code_challenge_method=plain"),
        ),
    )
    .await;
    assert_refused_without_code("repeated code_challenge_method", &page, "invalid_request");
}

/// Rule: a missing, wrong, wrong-length or wrong-charset `code_verifier`, or the challenge sent back as the
/// verifier (a plain-method downgrade), is `invalid_grant`; a failed attempt revokes nothing
/// (RFC 7636 §4.1, §4.6; security notes "/token").
#[tokio::test]
async fn token_refuses_bad_verifiers() {
    let s = support::start();
    let client = support::register_public(&s).await;
    let p = pkce();
    let other = pkce();
    let code = support::code_for(&s, &client, &p, "&state=x").await;
    let v = &p.verifier;
    for bad in [
        None,
        Some(other.verifier.clone()),
        Some(p.challenge.clone()),
        Some(v[..42].to_owned()),
        Some(format!("{}!", &v[..42])),
        Some(format!("{}\u{e9}", &v[..42])),
        Some(format!("{v} ")),
        Some("a".repeat(129)),
        Some(v.to_ascii_uppercase()),
    ] {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.clone()),
            ("redirect_uri", SEED_REDIRECT.to_owned()),
            ("client_id", client.clone()),
        ];
        if let Some(b) = &bad {
            form.push(("code_verifier", b.clone()));
        }
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, headers, body) = support::post_form(&s, "/token", &form).await;
        assert!(
            status.is_client_error(),
            "verifier {bad:?}: {status} {body}"
        );
        let expected = if bad.is_none() {
            ["invalid_request", "invalid_grant"]
        } else {
            ["invalid_grant", "invalid_grant"]
        };
        assert!(
            expected.contains(&body["error"].as_str().unwrap_or("")),
            "verifier {bad:?}: {body}"
        );
        assert_eq!(headers.get("cache-control").unwrap(), "no-store");
    }
    // Failed redemptions revoke nothing: the right verifier still works (security notes "/token").
    let (status, body) = support::exchange(&s, &client, &code, &p.verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
