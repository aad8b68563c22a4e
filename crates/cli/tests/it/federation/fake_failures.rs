//! Sign-ins refused because the provider misbehaves, with the Rust fake IdP ([`crate::fake_idp`]): one test
//! each for a nonce mismatch, an ID token signed by another key, `alg: none`, a wrong `aud`, an expired token, an
//! `iss` of another configured provider (mix-up, RFC 9207), a disallowed email domain, `error=access_denied`, the
//! provider down and the provider slow. Each ends on a page with the right status and no session cookie.

use super::*;
use crate::fake_idp::{
    Behaviour, FakeIdp, FakeIdpConfig, IssParam, Misbehaviour, Mode, FAKE_CLIENT_ID,
    FAKE_CLIENT_SECRET,
};
use crate::support::{authorize_url, browser, get, pkce, register_public, start_with};
use std::time::{Duration, Instant};

/// A Portcullis with the fake as provider `fake` (plus `extra` lines) and, when given, a second fake as
/// provider `other`.
struct FakeFed {
    server: Server,
    fake: FakeIdp,
    other: Option<FakeIdp>,
    _config: tempfile::TempDir,
}

fn fake_table(name: &str, issuer: &str, extra: &str) -> String {
    format!(
        "[[identity_providers]]\nname = \"{name}\"\nissuer = \"{issuer}\"\nclient_id = \"{FAKE_CLIENT_ID}\"\n\
         client_secret = \"{FAKE_CLIENT_SECRET}\"\n{extra}\n"
    )
}

fn start_fake(extra: &str, two: bool) -> FakeFed {
    let fake = FakeIdp::start(FakeIdpConfig::default());
    let other = two.then(|| FakeIdp::start(FakeIdpConfig::default()));
    let mut toml = fake_table("fake", fake.issuer(), extra);
    if let Some(o) = &other {
        toml.push_str(&fake_table("other", o.issuer(), ""));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.toml");
    std::fs::write(&path, toml).unwrap();
    let server = start_with(&["--config", path.to_str().unwrap()]);
    FakeFed {
        server,
        fake,
        other,
        _config: dir,
    }
}

/// Start → the fake's `/authorize` → the callback URL it redirects to (not followed), in `b`.
async fn to_callback(f: &FakeFed, b: &reqwest::Client) -> String {
    let client = register_public(&f.server).await;
    let p = pkce();
    let url = authorize_url(&f.server, &client, &p.challenge, "&state=fake");
    let started = get(
        b,
        &f.server.url(&format!("/idp/fake/start?{}", query_of(&url))),
    )
    .await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    let at_fake = get(b, started.location().unwrap()).await;
    let back = at_fake
        .location()
        .unwrap_or_else(|| panic!("{}", at_fake.body))
        .to_owned();
    assert!(
        back.starts_with(&f.server.url("/idp/fake/callback?")),
        "{back}"
    );
    back
}

/// Runs a sign-in against a fake that misbehaves as `set` says; the callback's page must have `status`
/// and contain `text`, with no session cookie.
async fn refused(
    f: &FakeFed,
    set: impl FnOnce(&mut Behaviour),
    status: StatusCode,
    text: &str,
) -> Page {
    f.fake.update(set);
    let b = browser();
    let back = to_callback(f, &b).await;
    let page = get(&b, &back).await;
    assert_eq!(page.status, status, "{}", page.body);
    assert!(
        page.body.contains(text),
        "expected {text:?} in {}",
        page.body
    );
    assert!(!sets_session(&page), "{:?}", page.headers);
    page
}

#[tokio::test]
async fn a_valid_fake_sign_in_works() {
    let f = start_fake("", false);
    let b = browser();
    let back = to_callback(&f, &b).await;
    let page = get(&b, &back).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(sets_session(&page));
    let got = f.fake.received();
    assert_eq!(got.token.len(), 1);
    // The ID token had everything: no userinfo call.
    assert!(got.userinfo.is_empty());
    assert!(got.token[0].field("code_verifier").is_some());
    assert_eq!(
        got.token[0].basic_credentials(),
        Some((FAKE_CLIENT_ID.to_owned(), FAKE_CLIENT_SECRET.to_owned()))
    );
}

#[tokio::test]
async fn nonce_mismatch_is_refused() {
    let f = start_fake("", false);
    refused(
        &f,
        |b| b.id_token = Misbehaviour::WrongNonce,
        StatusCode::BAD_REQUEST,
        "nonce_mismatch",
    )
    .await;
}

#[tokio::test]
async fn an_id_token_signed_by_another_key_is_refused() {
    let f = start_fake("", false);
    let b = |b: &mut Behaviour| b.id_token = Misbehaviour::SignedByOtherKey;
    refused(&f, b, StatusCode::BAD_REQUEST, "bad_signature").await;
}

#[tokio::test]
async fn alg_none_is_refused() {
    let f = start_fake("", false);
    refused(
        &f,
        |b| b.id_token = Misbehaviour::AlgNone,
        StatusCode::BAD_REQUEST,
        "unsupported_alg",
    )
    .await;
}

#[tokio::test]
async fn a_wrong_audience_is_refused() {
    let f = start_fake("", false);
    let b = |b: &mut Behaviour| b.id_token = Misbehaviour::WrongAudience;
    refused(&f, b, StatusCode::BAD_REQUEST, "invalid_claim").await;
}

#[tokio::test]
async fn an_expired_id_token_is_refused() {
    let f = start_fake("", false);
    refused(
        &f,
        |b| b.id_token = Misbehaviour::Expired,
        StatusCode::BAD_REQUEST,
        "expired",
    )
    .await;
}

/// Two providers configured; the response at `fake`'s callback names `other`'s issuer (RFC 9207 §2.4).
#[tokio::test]
async fn an_iss_of_the_other_provider_is_a_mix_up() {
    let f = start_fake("", true);
    let other = f.other.as_ref().unwrap().issuer().to_owned();
    let set = move |b: &mut Behaviour| b.iss = IssParam::Other(other);
    refused(&f, set, StatusCode::BAD_REQUEST, "issuer_mismatch").await;
    assert!(
        f.fake.received().token.is_empty(),
        "the code was sent to the token endpoint"
    );
}

#[tokio::test]
async fn a_disallowed_email_domain_is_refused_with_the_reason() {
    let f = start_fake("allowed_domains = [\"corp.example\"]", false);
    refused(
        &f,
        |_| {},
        StatusCode::FORBIDDEN,
        "example.com is not allowed",
    )
    .await;
}

#[tokio::test]
async fn access_denied_at_the_provider_is_a_page() {
    let f = start_fake("", false);
    let set = |b: &mut Behaviour| b.authorize_error = Some("access_denied".into());
    let page = refused(&f, set, StatusCode::FORBIDDEN, "was cancelled").await;
    assert!(page.body.contains("Try signing in again"), "{}", page.body);
}

#[tokio::test]
async fn the_provider_down_is_a_503_page() {
    let f = start_fake("", false);
    let b = browser();
    let back = to_callback(&f, &b).await;
    f.fake.set_mode(Mode::Down);
    let page = get(&b, &back).await;
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.body
    );
    assert!(page.body.contains("is unavailable"), "{}", page.body);
    assert!(page.headers.get("retry-after").is_some());
    assert!(!sets_session(&page));
}

#[tokio::test]
async fn a_slow_provider_is_a_503_page_not_a_hang() {
    let f = start_fake("", false);
    let b = browser();
    let back = to_callback(&f, &b).await;
    f.fake
        .set_mode(Mode::SlowOn("/token".into(), Duration::from_secs(20)));
    let started = Instant::now();
    let page = get(&b, &back).await;
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.body
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(!sets_session(&page));
}

/// The start route checks the authorization request as `/authorize` does: an unknown client is the same error
/// page (never a trip to the provider); an unknown provider is a 404 page.
#[tokio::test]
async fn a_bad_request_or_provider_at_the_start_is_a_page() {
    let f = start_fake("", false);
    let p = pkce();
    let q = format!(
        "response_type=code&client_id=nobody&redirect_uri={}&code_challenge={}&code_challenge_method=S256",
        crate::support::enc(crate::support::SEED_REDIRECT),
        p.challenge
    );
    let b = browser();
    let at_authorize = get(&b, &f.server.url(&format!("/authorize?{q}"))).await;
    let at_start = get(&b, &f.server.url(&format!("/idp/fake/start?{q}"))).await;
    assert_eq!(at_start.status, at_authorize.status, "{}", at_start.body);
    assert!(at_start.status.is_client_error());
    assert_eq!(at_start.body, at_authorize.body);
    assert!(at_start.headers.get("set-cookie").is_none());
    assert_eq!(f.fake.received().authorize.len(), 0);
    let unknown = get(&b, &f.server.url(&format!("/idp/nope/start?{q}"))).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
}

/// An ID token without `preferred_username` (or email, or groups the policy needs) is completed from userinfo.
#[tokio::test]
async fn an_incomplete_id_token_is_completed_from_userinfo() {
    let f = start_fake("", false);
    f.fake.update(|b| {
        b.claims.remove("preferred_username");
    });
    let b = browser();
    let back = to_callback(&f, &b).await;
    let page = get(&b, &back).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(f.fake.received().userinfo.len(), 1);
    // A userinfo `sub` other than the ID token's is refused (OpenID Connect Core §5.3.2).
    f.fake
        .update(|b| b.userinfo_sub = Some("someone-else".into()));
    let b = browser();
    let back = to_callback(&f, &b).await;
    let page = get(&b, &back).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(!sets_session(&page));
}

/// Each start stores a pending sign-in row, so starts are limited per client address (300 per 10 minutes):
/// the 301st from one address gets a 429 page with `Retry-After` and no redirect to the provider.
#[tokio::test]
async fn sign_in_starts_are_limited_per_address() {
    let f = start_fake("", false);
    let b = browser();
    let client = register_public(&f.server).await;
    let p = pkce();
    let url = authorize_url(&f.server, &client, &p.challenge, "&state=flood");
    let start = f.server.url(&format!("/idp/fake/start?{}", query_of(&url)));
    for i in 0..300 {
        let page = get(&b, &start).await;
        assert_eq!(
            page.status,
            StatusCode::SEE_OTHER,
            "start {i}: {}",
            page.body
        );
    }
    let page = get(&b, &start).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
    assert!(page.headers.contains_key("retry-after"));
    assert!(page.headers.get("location").is_none());
    assert!(page.body.contains("Too many sign-ins"), "{}", page.body);
}
