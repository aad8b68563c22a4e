//! What must fail, and how, against the real binary: exact status codes and RFC error codes (RFC 6749 §5.2,
//! RFC 6750 §3.1, RFC 7591 §3.2.2, RFC 7009 §2.2) for code reuse, PKCE, redirect URIs, refresh replay,
//! revocation, expiry, tampered and wrong-audience tokens, scope, client authentication, registration and
//! protocol errors.

#![allow(clippy::unwrap_used)]

use crate::support::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn assert_oauth_error(status: StatusCode, body: &Value, want_status: StatusCode, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"], code, "{body}");
}

#[tokio::test]
async fn code_reuse_is_invalid_grant_and_revokes_the_first_exchange() {
    let s = start();
    let client_id = register_public(&s).await;
    let p = pkce();
    let code = code_for(&s, &client_id, &p, "").await;
    let (status, first) = exchange(&s, &client_id, &code, &p.verifier).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(mcp_status(&s, access).await, StatusCode::OK);

    let (status, body) = exchange(&s, &client_id, &code, &p.verifier).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");

    let (status, body) = refresh(&s, &client_id, first["refresh_token"].as_str().unwrap()).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(
        refused_within(&s, access, Duration::from_secs(3)).await,
        "the access token of a reused code still works"
    );
}

#[tokio::test]
async fn pkce_mismatch_is_invalid_grant_and_consumes_nothing() {
    let s = start();
    let client_id = register_public(&s).await;
    let p = pkce();
    let code = code_for(&s, &client_id, &p, "").await;
    let wrong = pkce();
    let (status, body) = exchange(&s, &client_id, &code, &wrong.verifier).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    // No verifier at all.
    let (status, _, body) = post_form(
        &s,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", SEED_REDIRECT),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"] == "invalid_grant" || body["error"] == "invalid_request",
        "{body}"
    );
    let (status, body) = exchange(&s, &client_id, &code, &p.verifier).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a failed redemption consumed the code: {body}"
    );
}

#[tokio::test]
async fn pkce_missing_or_plain_at_authorize_is_refused_after_sign_in() {
    let s = start();
    let client_id = register_public(&s).await;
    let b = browser();
    let no_pkce = s.url(&format!(
        "/authorize?response_type=code&client_id={client_id}&redirect_uri={SEED_REDIRECT}&state=s1"
    ));
    // Before the user has signed in there is no error redirect: the login page.
    let page = get(&b, &no_pkce).await;
    assert!(page.is_login(), "{:?} {}", page.status, page.body);
    // Signed in, but this client was never approved: an error page, no redirect (RFC 9700 §4.11.2).
    let signed_in = submit(
        &b,
        &s,
        &page,
        "/login",
        &[("username", USER), ("password", PASSWORD)],
    )
    .await;
    let page = get(&b, &resolve(&s, signed_in.location().unwrap())).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.location().is_none());
    assert!(page.body.contains("invalid_request"), "{}", page.body);
    // Once the user has approved the client, the error goes to its redirect URI.
    authorize_in(
        &b,
        &s,
        &authorize_url(&s, &client_id, &pkce().challenge, ""),
        "approve",
    )
    .await;
    let out = authorize_in(&b, &s, &no_pkce, "approve").await;
    assert!(out.consent.is_none());
    assert_client_redirect(&s, &out.location);
    assert_eq!(
        param(&out.location, "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(param(&out.location, "state").as_deref(), Some("s1"));
    assert_eq!(param(&out.location, "code"), None);

    let p = pkce();
    let plain = s.url(&format!(
        "/authorize?response_type=code&client_id={client_id}&redirect_uri={SEED_REDIRECT}\
         &code_challenge={}&code_challenge_method=plain",
        p.verifier
    ));
    let page = get(&b, &plain).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let loc = page.location().unwrap();
    assert_client_redirect(&s, loc);
    assert_eq!(param(loc, "error").as_deref(), Some("invalid_request"));
    assert_eq!(param(loc, "code"), None);
}

/// An HTML error page with status 400 and no `Location`.
fn assert_error_page(p: &Page) {
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(
        p.headers.get(LOCATION).is_none(),
        "redirected: {:?}",
        p.headers
    );
    assert!(p.headers[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
}

#[tokio::test]
async fn wrong_redirect_uri_or_unknown_client_at_authorize_is_a_page_never_a_redirect() {
    let s = start();
    let client_id = register_public(&s).await;
    let p = pkce();
    let evil = |client: &str, redirect: &str| {
        s.url(&format!(
            "/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={}\
             &code_challenge_method=S256&state=x",
            enc(client),
            enc(redirect),
            p.challenge
        ))
    };
    let b = browser();
    for url in [
        evil(&client_id, "https://evil.example/callback"),
        evil(&client_id, "http://localhost:8080/callback/other"),
        evil("no-such-client", SEED_REDIRECT),
    ] {
        assert_error_page(&get(&b, &url).await);
    }
    // Signed in, still a page.
    let out = authorize_in(
        &b,
        &s,
        &authorize_url(&s, &client_id, &p.challenge, ""),
        "approve",
    )
    .await;
    assert_client_redirect(&s, &out.location);
    assert_error_page(&get(&b, &evil(&client_id, "https://evil.example/callback")).await);
    assert_error_page(&get(&b, &evil("no-such-client", SEED_REDIRECT)).await);
}

#[tokio::test]
async fn wrong_redirect_uri_at_token_is_invalid_grant() {
    let s = start();
    let client_id = register_public(&s).await;
    let p = pkce();
    let code = code_for(&s, &client_id, &p, "").await;
    let (status, _, body) = post_form(
        &s,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://localhost:8080/elsewhere"),
            ("client_id", &client_id),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    let (status, body) = exchange(&s, &client_id, &code, &p.verifier).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a failed redemption consumed the code: {body}"
    );
}

/// Strict rotation (`--refresh-grace-period 0`): the first replay of a rotated token revokes the family. With
/// the grace period (the default) see `refresh_grace.rs`.
#[tokio::test]
async fn refresh_replay_revokes_the_whole_family() {
    let s = start_with(&["--refresh-grace-period", "0"]);
    let t = grant(&s, "").await;
    let (status, second) = refresh(&s, &t.client_id, &t.refresh).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let rt2 = second["refresh_token"].as_str().unwrap();
    let at2 = second["access_token"].as_str().unwrap();
    assert_eq!(mcp_status(&s, at2).await, StatusCode::OK);

    let (status, body) = refresh(&s, &t.client_id, &t.refresh).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    let (status, body) = refresh(&s, &t.client_id, rt2).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(
        refused_within(&s, at2, Duration::from_secs(3)).await,
        "the family's access token still works after a replay"
    );
}

#[tokio::test]
async fn refresh_token_is_bound_to_its_client() {
    let s = start();
    let t = grant(&s, "").await;
    let other = register_public(&s).await;
    let (status, body) = refresh(&s, &other, &t.refresh).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn revocation_of_refresh_and_access_tokens() {
    let s = start();
    let t = grant(&s, "").await;
    assert_eq!(mcp_status(&s, &t.access).await, StatusCode::OK);
    let (status, headers, body) = post_form(
        &s,
        "/revoke",
        &[("token", &t.refresh), ("client_id", &t.client_id)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers[CACHE_CONTROL], "no-store");
    let (status, body) = refresh(&s, &t.client_id, &t.refresh).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(
        refused_within(&s, &t.access, Duration::from_secs(1)).await,
        "the grant's access token works a second after its refresh token was revoked"
    );

    // An access token, by itself.
    let t2 = grant(&s, "").await;
    assert_eq!(mcp_status(&s, &t2.access).await, StatusCode::OK);
    let (status, _, body) = post_form(
        &s,
        "/revoke",
        &[
            ("token", &t2.access),
            ("token_type_hint", "access_token"),
            ("client_id", &t2.client_id),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page = mcp_post(&s.mcp, Some(&t2.access), TOOLS_LIST).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    assert_eq!(
        auth_param(&www_authenticate(&page), "error").as_deref(),
        Some("invalid_token")
    );

    // Unknown tokens: 200 (RFC 7009 §2.2).
    let (status, _, body) = post_form(
        &s,
        "/revoke",
        &[("token", "no-such-token"), ("client_id", &t2.client_id)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn expired_access_token_is_invalid_token() {
    let s = start_with(&["--access-token-ttl", "10"]);
    let t = grant(&s, "").await;
    let issued = Instant::now();
    assert_eq!(mcp_status(&s, &t.access).await, StatusCode::OK);
    let exp = jwt_part(&t.access, 1)["exp"].as_i64().unwrap();
    let iat = jwt_part(&t.access, 1)["iat"].as_i64().unwrap();
    assert_eq!(exp - iat, 10);
    tokio::time::sleep(Duration::from_secs(11).saturating_sub(issued.elapsed())).await;
    let page = mcp_post(&s.mcp, Some(&t.access), TOOLS_LIST).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    let h = www_authenticate(&page);
    assert_eq!(
        auth_param(&h, "error").as_deref(),
        Some("invalid_token"),
        "{h}"
    );
    assert!(auth_param(&h, "resource_metadata").is_some(), "{h}");
}

#[tokio::test]
async fn tampered_tokens_are_refused() {
    let s = start();
    let t = grant(&s, "").await;
    let parts: Vec<&str> = t.access.split('.').collect();
    let flip = |part: &str| {
        let mut chars: Vec<char> = part.chars().collect();
        let i = chars.len() / 2;
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect::<String>()
    };
    let forged_payload = format!("{}.{}.{}", parts[0], flip(parts[1]), parts[2]);
    let forged_signature = format!("{}.{}.{}", parts[0], parts[1], flip(parts[2]));
    let unsigned = format!(
        "{}.{}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt"}"#),
        parts[1]
    );
    for bad in [forged_payload, forged_signature, unsigned] {
        assert_ne!(bad, t.access);
        let page = mcp_post(&s.mcp, Some(&bad), TOOLS_LIST).await;
        assert_eq!(
            page.status,
            StatusCode::UNAUTHORIZED,
            "{bad}: {}",
            page.body
        );
        assert_eq!(
            auth_param(&www_authenticate(&page), "error").as_deref(),
            Some("invalid_token")
        );
    }
    assert_eq!(mcp_status(&s, &t.access).await, StatusCode::OK);
}

#[tokio::test]
async fn token_for_another_resource_is_refused() {
    let a = start();
    // Same database (so the same signing key) and the same issuer: only the audience differs.
    let b = start_on(&a, &["--issuer", &a.issuer, "--mcp-path", "/other/mcp"]);
    assert_eq!(b.mcp, format!("{}/other/mcp", a.issuer));
    let ta = grant(&a, "").await;
    let tb = grant(&b, "").await;
    assert_eq!(jwt_part(&tb.access, 1)["aud"], b.mcp.as_str());
    assert_eq!(mcp_status(&a, &ta.access).await, StatusCode::OK);
    assert_eq!(mcp_status(&b, &tb.access).await, StatusCode::OK);
    for (server, token) in [(&b, &ta.access), (&a, &tb.access)] {
        let page = mcp_post(&server.mcp_here(), Some(token), TOOLS_LIST).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
        assert_eq!(
            auth_param(&www_authenticate(&page), "error").as_deref(),
            Some("invalid_token")
        );
    }
}

#[tokio::test]
async fn tool_needing_a_missing_scope_is_403_insufficient_scope() {
    let s = start();
    let call = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"server_stats","arguments":{}}}"#;
    let t = grant(&s, "").await;
    let page = mcp_post(&s.mcp, Some(&t.access), call).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    let h = www_authenticate(&page);
    assert!(h.starts_with("Bearer "), "{h}");
    assert_eq!(
        auth_param(&h, "error").as_deref(),
        Some("insufficient_scope"),
        "{h}"
    );
    assert_eq!(auth_param(&h, "scope").as_deref(), Some("mcp:admin"), "{h}");
    assert!(auth_param(&h, "resource_metadata").is_some(), "{h}");

    let admin = grant(&s, "&scope=mcp:tools%20mcp:admin").await;
    let page = mcp_post(&s.mcp, Some(&admin.access), call).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let v: Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(v["result"]["structuredContent"]["users"], 1, "{v}");
}

fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

#[tokio::test]
async fn confidential_clients_basic_and_post() {
    let s = start();
    let h = http();
    let code_form = |code: &str, verifier: &str| {
        vec![
            ("grant_type".to_owned(), "authorization_code".to_owned()),
            ("code".to_owned(), code.to_owned()),
            ("redirect_uri".to_owned(), SEED_REDIRECT.to_owned()),
            ("code_verifier".to_owned(), verifier.to_owned()),
        ]
    };

    // client_secret_basic: a wrong secret first (401 invalid_client with a Basic challenge), then the right one.
    let (id, secret) = register_confidential(&s, "client_secret_basic").await;
    let p = pkce();
    let code = code_for(&s, &id, &p, "").await;
    let resp = h
        .post(s.url("/token"))
        .header("Authorization", basic(&id, "wrong-secret"))
        .form(&code_form(&code, &p.verifier))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.starts_with("Basic"), "{challenge}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    // Without any credentials.
    let mut form = code_form(&code, &p.verifier);
    form.push(("client_id".into(), id.clone()));
    let resp = h.post(s.url("/token")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    let resp = h
        .post(s.url("/token"))
        .header("Authorization", basic(&id, &secret))
        .form(&code_form(&code, &p.verifier))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let tok: Value = resp.json().await.unwrap();
    assert_eq!(
        mcp_status(&s, tok["access_token"].as_str().unwrap()).await,
        StatusCode::OK
    );

    // client_secret_post.
    let (id, secret) = register_confidential(&s, "client_secret_post").await;
    let p = pkce();
    let code = code_for(&s, &id, &p, "").await;
    let mut form = code_form(&code, &p.verifier);
    form.push(("client_id".into(), id.clone()));
    form.push(("client_secret".into(), "wrong-secret".into()));
    let resp = h.post(s.url("/token")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    form.pop();
    form.push(("client_secret".into(), secret.clone()));
    let resp = h.post(s.url("/token")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let tok: Value = resp.json().await.unwrap();
    let resp = h
        .post(s.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tok["refresh_token"].as_str().unwrap()),
            ("client_id", &id),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn registration_errors() {
    let s = start();
    for bad in [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "data:text/html,hi",
        "file:///etc/passwd",
        "http://evil.example/callback",
        "http://localhost:8080/callback#frag",
    ] {
        let mut meta = seed_registration();
        meta["redirect_uris"] = json!([bad]);
        let (status, body) = register_raw(&s, &meta).await;
        assert_oauth_error(
            status,
            &body,
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
        );
    }
    let h = http();
    for (ct, body) in [
        ("application/json", "{\"client_name\": "),
        ("application/json", "[1, 2]"),
        (
            "application/json",
            "{\"redirect_uris\": \"http://localhost/cb\"}",
        ),
    ] {
        let resp = h
            .post(s.url("/register"))
            .header(CONTENT_TYPE, ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            resp.json::<Value>().await.unwrap()["error"],
            "invalid_client_metadata"
        );
    }
    let mut meta = seed_registration();
    meta["client_name"] = json!("x".repeat(17 * 1024));
    let resp = h
        .post(s.url("/register"))
        .header(CONTENT_TYPE, "application/json")
        .body(meta.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn protocol_errors_at_the_token_endpoint_and_elsewhere() {
    let s = start();
    let h = http();
    let client_id = register_public(&s).await;
    let resp = h
        .post(s.url("/token"))
        .json(&json!({"grant_type": "refresh_token", "refresh_token": "x", "client_id": client_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );

    let (status, _, body) = post_form(
        &s,
        "/token",
        &[("grant_type", "password"), ("client_id", &client_id)],
    )
    .await;
    assert_oauth_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
    );

    let resp = h.get(s.url("/token")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    for path in ["/register", "/revoke"] {
        let resp = h.get(s.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
    }
    let resp = h.get(s.url("/no/such/path")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}
