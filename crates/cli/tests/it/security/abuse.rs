//! Abuse limits: registrations per client address per hour (security notes "Registration": "registrations per
//! IP per hour"; RFC 7591 §5 leaves abuse limits to the server; issue 6 "Abuse limits").

use crate::support::{self, register_raw, seed_registration};
use reqwest::StatusCode;
use serde_json::json;

/// Rule: registrations per IP per hour — with `--register-per-ip-per-hour 3` the 4th registration is 429 with
/// `Retry-After` and an RFC 7591-style JSON error; refused registrations do not count.
#[tokio::test]
async fn registration_is_rate_limited_per_address() {
    let s = support::start_with(&["--register-per-ip-per-hour", "3"]);
    for _ in 0..5 {
        let (status, _) =
            register_raw(&s, &json!({"redirect_uris": ["javascript:alert(1)"]})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    for i in 0..3 {
        let (status, body) = register_raw(&s, &seed_registration()).await;
        assert_eq!(status, StatusCode::CREATED, "registration {i}: {body}");
    }
    let resp = support::http()
        .post(s.url("/register"))
        .header("content-type", "application/json")
        .body(seed_registration().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    assert!(resp
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["error"].is_string() && body["error_description"].is_string(),
        "{body}"
    );
    // The rest of the server is unaffected.
    let meta = support::http()
        .get(s.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(meta.status(), StatusCode::OK);
}

/// Rule: the limit is configurable and 0 means unlimited (`PORTCULLIS_REGISTER_PER_IP_PER_HOUR`, README).
#[tokio::test]
async fn registration_limit_zero_is_unlimited() {
    let s = support::start_with(&["--register-per-ip-per-hour", "0"]);
    for i in 0..120 {
        let (status, body) = register_raw(&s, &seed_registration()).await;
        assert_eq!(status, StatusCode::CREATED, "registration {i}: {body}");
    }
}

/// Rule: the default limit (100 per hour) applies without configuration.
#[tokio::test]
async fn registration_limit_defaults_to_100() {
    let s = support::start();
    for i in 0..100 {
        let (status, body) = register_raw(&s, &seed_registration()).await;
        assert_eq!(status, StatusCode::CREATED, "registration {i}: {body}");
    }
    let (status, body) = register_raw(&s, &seed_registration()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
}

/// Rule: brute force at the token endpoint (security notes "Brute force"; issue 6 "rate limits on … token
/// requests") — with `--token-failures-per-ip 5`, five failed redemptions (guessed refresh tokens) are answered
/// `invalid_grant`; from then on the address gets 429 with `Retry-After`, even for a valid request, and the count
/// lives in the database (a second instance on it refuses the address at once: each request reserves its place
/// there before any work).
#[tokio::test]
async fn failed_token_requests_are_rate_limited_per_address() {
    let s = support::start_with(&["--token-failures-per-ip", "5"]);
    let tokens = support::grant(&s, "").await;
    for i in 0..5 {
        let (status, body) = support::refresh(&s, &tokens.client_id, &format!("guess-{i}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "invalid_grant");
    }
    let (status, body) = support::refresh(&s, &tokens.client_id, &tokens.refresh).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");

    // Another instance on the same database refuses the address too, at its first request.
    let b = support::start_on(&s, &["--token-failures-per-ip", "5"]);
    let (status, _) = support::refresh(&b, &tokens.client_id, "guess-b").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, _) = support::refresh(&b, &tokens.client_id, &tokens.refresh).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the count is shared through the database"
    );
}
