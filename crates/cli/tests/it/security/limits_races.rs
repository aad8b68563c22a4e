//! Limits under parallel requests (issue 19, items 7–9): each limit takes its place before the work, so a burst
//! of parallel requests from one address gets exactly the limit and no more (security notes "Registration",
//! "Brute force"; RFC 7591 §5, RFC 7009 §5); text shown on the consent page holds no bidirectional or invisible
//! formatting characters (Unicode TR36 §2, CVE-2021-42574).

use crate::support::{self, register_raw, seed_registration, Server};
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// How many parallel requests each race sends.
const BURST: usize = 60;

/// The statuses of `BURST` parallel runs of `one`, counted per status.
async fn burst<F, Fut>(one: F) -> std::collections::BTreeMap<u16, usize>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = StatusCode> + Send + 'static,
{
    let tasks: Vec<_> = (0..BURST).map(|_| tokio::spawn(one())).collect();
    let mut counts = std::collections::BTreeMap::new();
    for status in join_all(tasks).await {
        *counts.entry(status.unwrap().as_u16()).or_insert(0) += 1;
    }
    counts
}

async fn confidential(s: &Server) -> (String, String) {
    support::register_confidential(s, "client_secret_basic").await
}

/// POSTs `token` to `/revoke` as `client_id` with `secret` (HTTP Basic); the status.
async fn revoke(url: String, client_id: String, secret: String, token: &'static str) -> StatusCode {
    support::http()
        .post(url)
        .basic_auth(client_id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .status()
}

/// Rule: registrations per IP per hour hold under parallel requests — with `--register-per-ip-per-hour 5`,
/// 60 parallel registrations from one address give exactly 5 × 201 and 55 × 429 (the place is reserved in the
/// database before the registration, not counted after it).
#[tokio::test]
async fn parallel_registrations_get_exactly_the_limit() {
    let s = support::start_with(&["--register-per-ip-per-hour", "5"]);
    let url = s.url("/register");
    let counts = burst(|| {
        let url = url.clone();
        async move {
            support::http()
                .post(url)
                .header("content-type", "application/json")
                .body(seed_registration().to_string())
                .send()
                .await
                .unwrap()
                .status()
        }
    })
    .await;
    assert_eq!(counts.get(&201), Some(&5), "{counts:?}");
    assert_eq!(counts.get(&429), Some(&(BURST - 5)), "{counts:?}");
}

/// Rule: brute force of client secrets at the revocation endpoint (RFC 7009 §5; security notes "Brute
/// force") — `/revoke` counts failed client authentication like `/token`: with `--token-failures-per-ip 5`,
/// revocations with the right secret (of known or unknown tokens: 200, RFC 7009 §2.2) do not count, five wrong
/// secrets are 401, the sixth attempt 429 with `Retry-After`, and then even the right secret is refused.
#[tokio::test]
async fn wrong_secrets_at_revoke_are_rate_limited() {
    let s = support::start_with(&["--token-failures-per-ip", "5"]);
    let (id, secret) = confidential(&s).await;
    let url = s.url("/revoke");
    for _ in 0..10 {
        let status = revoke(url.clone(), id.clone(), secret.clone(), "no-such-token").await;
        assert_eq!(status, StatusCode::OK, "an unknown token is not a guess");
    }
    for i in 0..5 {
        let status = revoke(url.clone(), id.clone(), format!("wrong-{i}"), "t").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "wrong secret {i}");
    }
    let resp = support::http()
        .post(&url)
        .basic_auth(&id, Some("wrong-5"))
        .form(&[("token", "t")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().get("retry-after").is_some());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    let status = revoke(url, id, secret, "no-such-token").await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the address is over the limit"
    );
}

/// Rule: the guess limit holds under parallel requests — 60 parallel wrong secrets at `/revoke` with
/// `--token-failures-per-ip 5` get exactly 5 × 401 (five secrets checked) and 55 × 429.
#[tokio::test]
async fn parallel_wrong_secrets_at_revoke_get_exactly_the_limit() {
    let s = support::start_with(&["--token-failures-per-ip", "5"]);
    let (id, _) = confidential(&s).await;
    let url = s.url("/revoke");
    let counts = burst(|| revoke(url.clone(), id.clone(), "wrong".into(), "t")).await;
    assert_eq!(counts.get(&401), Some(&5), "{counts:?}");
    assert_eq!(counts.get(&429), Some(&(BURST - 5)), "{counts:?}");
}

/// Rule: the same at the token endpoint — 60 parallel guessed refresh tokens get exactly 5 × `invalid_grant`.
#[tokio::test]
async fn parallel_guesses_at_token_get_exactly_the_limit() {
    let s = support::start_with(&["--token-failures-per-ip", "5"]);
    let client_id = support::register_public(&s).await;
    let url = s.url("/token");
    let counts = burst(|| {
        let (url, client_id) = (url.clone(), client_id.clone());
        async move {
            support::http()
                .post(url)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", "guess"),
                    ("client_id", client_id.as_str()),
                ])
                .send()
                .await
                .unwrap()
                .status()
        }
    })
    .await;
    assert_eq!(counts.get(&400), Some(&5), "{counts:?}");
    assert_eq!(counts.get(&429), Some(&(BURST - 5)), "{counts:?}");
}

/// Rule: no bidirectional or invisible characters in a client's name (Unicode TR36 §2, CVE-2021-42574) — a
/// `client_name` with U+202E (which reverses the rest of the consent sentence), U+2066, U+200B, U+200F, U+2060,
/// U+FEFF or U+00AD is refused at `/register` with 400 `invalid_client_metadata` naming the code point; the
/// same name without it, and names in right-to-left scripts, are accepted.
#[tokio::test]
async fn bidi_and_invisible_characters_in_client_name_are_refused() {
    let s = support::start();
    for (c, named) in [
        ('\u{202E}', "U+202E"),
        ('\u{2066}', "U+2066"),
        ('\u{200B}', "U+200B"),
        ('\u{200F}', "U+200F"),
        ('\u{2060}', "U+2060"),
        ('\u{FEFF}', "U+FEFF"),
        ('\u{AD}', "U+00AD"),
    ] {
        let mut meta = seed_registration();
        meta["client_name"] = json!(format!("Trusted{c} App (unverified)"));
        let (status, body) = register_raw(&s, &meta).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{named}: {body}");
        assert_eq!(body["error"], "invalid_client_metadata", "{named}: {body}");
        let description = body["error_description"].as_str().unwrap_or("");
        assert!(
            description.contains("client_name") && description.contains(named),
            "{named}: {description}"
        );
    }
    for name in ["Trusted App", "تطبيق موثوق", "אפליקציה"] {
        let mut meta = seed_registration();
        meta["client_name"] = json!(name);
        let (status, body) = register_raw(&s, &meta).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
    }
}
