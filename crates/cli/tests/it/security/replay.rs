//! Replays, races and cross-client use of codes and refresh tokens, and scope/resource widening. Rules:
//! security notes "/authorize" (codes single use and bound to client) and "/token" (refresh bound to its
//! client, exactly one of concurrent refreshes wins, no widening, RFC 7009 revocation never touches another
//! client's tokens); RFC 6749 §4.1.2, §6, §10.5; OAuth 2.1 §4.3.1; RFC 8707 §2.2; RFC 9700 §4.14; incident:
//! Keycloak CVE-2026-1035 (refresh-token reuse race).

use crate::support::{self, mcp_status, pkce, post_form, refresh, Server, Tokens, SEED_REDIRECT};
use reqwest::StatusCode;

/// Runs `n` copies of `f` at once and returns their statuses.
async fn race<F, Fut>(n: usize, f: F) -> Vec<StatusCode>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = StatusCode> + Send + 'static,
{
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::new();
    for _ in 0..n {
        let fut = f();
        let b = barrier.clone();
        tasks.push(tokio::spawn(async move {
            b.wait().await;
            fut.await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Rule: codes are single use, also under a race — 20 parallel redemptions of one code give exactly one 200,
/// the rest `invalid_grant`, never a 5xx (RFC 6749 §4.1.2; security notes "Robustness": one transaction).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_code_redemptions_yield_exactly_one_token() {
    let s = std::sync::Arc::new(support::start());
    let client = support::register_public(&s).await;
    let p = pkce();
    let code = support::code_for(&s, &client, &p, "&state=x").await;
    let statuses = race(20, || {
        let (s, client, code, v) = (s.clone(), client.clone(), code.clone(), p.verifier.clone());
        async move { support::exchange(&s, &client, &code, &v).await.0 }
    })
    .await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST),
        "{statuses:?}"
    );
}

/// Rule: a replay of a used code that proves nothing revokes nothing (issue 15; RFC 6749 §4.1.2, RFC 9700
/// §4.5.1, RFC 7636 §1: a code seen by someone else is useless without the verifier). A wrong verifier or
/// another client is refused with `invalid_grant`, and the first exchange's tokens keep working (the access
/// token at the MCP endpoint past a revocation sync, the refresh token); a replay with the right client and
/// verifier then revokes them.
#[tokio::test]
async fn a_code_replay_without_proof_revokes_nothing() {
    let s = support::start();
    let client = support::register_public(&s).await;
    let other = support::register_public(&s).await;
    let p = pkce();
    let code = support::code_for(&s, &client, &p, "&state=x").await;
    let (status, first) = support::exchange(&s, &client, &code, &p.verifier).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let access = first["access_token"].as_str().unwrap().to_owned();

    for (who, verifier) in [(&client, pkce().verifier), (&other, p.verifier.clone())] {
        let (status, body) = support::exchange(&s, who, &code, &verifier).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "invalid_grant", "{body}");
        assert!(body.get("access_token").is_none());
    }
    // A revocation would reach the endpoint within one sync (1 s): none comes.
    assert!(
        !support::refused_within(&s, &access, std::time::Duration::from_millis(1500)).await,
        "a replay without the verifier revoked the access token"
    );
    let (status, refreshed) = refresh(&s, &client, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the refresh token was revoked: {refreshed}"
    );
    let rt = refreshed["refresh_token"].as_str().unwrap();

    let (status, body) = support::exchange(&s, &client, &code, &p.verifier).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    let (status, body) = refresh(&s, &client, rt).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        support::refused_within(&s, &access, std::time::Duration::from_secs(3)).await,
        "a replay with proof of possession did not revoke the access token"
    );
}

/// Rule: the same for a confidential client — a replay with a wrong secret or none is `invalid_client` (401)
/// and revokes nothing, as does one with the right secret and a wrong verifier (`invalid_grant`); with the
/// secret and the verifier it revokes (RFC 6749 §4.1.2, §2.3.1).
#[tokio::test]
async fn a_confidential_code_replay_without_the_secret_revokes_nothing() {
    let s = support::start();
    let mut meta = support::seed_registration();
    meta["token_endpoint_auth_method"] = "client_secret_post".into();
    let (status, body) = support::register_raw(&s, &meta).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["client_id"].as_str().unwrap().to_owned();
    let secret = body["client_secret"].as_str().unwrap().to_owned();
    let p = pkce();
    let code = support::code_for(&s, &id, &p, "&state=x").await;
    let exchange = |secret: Option<&str>, verifier: &str| {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.clone()),
            ("redirect_uri", SEED_REDIRECT.to_owned()),
            ("client_id", id.clone()),
            ("code_verifier", verifier.to_owned()),
        ];
        if let Some(sec) = secret {
            form.push(("client_secret", sec.to_owned()));
        }
        let s = &s;
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (status, _, body) = post_form(s, "/token", &form).await;
            (status, body)
        }
    };
    let (status, first) = exchange(Some(&secret), &p.verifier).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let wrong = pkce().verifier;
    for (sec, verifier, want) in [
        (
            Some("wrong-secret"),
            p.verifier.as_str(),
            StatusCode::UNAUTHORIZED,
        ),
        (None, p.verifier.as_str(), StatusCode::UNAUTHORIZED),
        (
            Some(secret.as_str()),
            wrong.as_str(),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, body) = exchange(sec, verifier).await;
        assert_eq!(status, want, "{body}");
        let error = if want == StatusCode::UNAUTHORIZED {
            "invalid_client"
        } else {
            "invalid_grant"
        };
        assert_eq!(body["error"], error, "{body}");
    }
    let refresh_with = |rt: String| {
        let (s, id, secret) = (&s, id.clone(), secret.clone());
        async move {
            let form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", rt.as_str()),
                ("client_id", id.as_str()),
                ("client_secret", secret.as_str()),
            ];
            let (status, _, body) = post_form(s, "/token", &form).await;
            (status, body)
        }
    };
    let (status, body) = refresh_with(first["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the replays revoked the grant: {body}"
    );
    let rt = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = exchange(Some(&secret), &p.verifier).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = refresh_with(rt).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
}

/// Rule: the same when redemptions race — one redemption with the verifier among 19 without it gives exactly
/// one 200, and its tokens keep working (nothing revoked by the losers, which proved nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_redemptions_without_proof_revoke_nothing() {
    let s = std::sync::Arc::new(support::start());
    let client = support::register_public(&s).await;
    let p = pkce();
    let code = support::code_for(&s, &client, &p, "&state=x").await;
    let turn = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let won = std::sync::Arc::new(std::sync::Mutex::new(None));
    let statuses = race(20, || {
        let i = turn.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let verifier = if i == 7 {
            p.verifier.clone()
        } else {
            pkce().verifier
        };
        let (s, client, code, won) = (s.clone(), client.clone(), code.clone(), won.clone());
        async move {
            let (status, body) = support::exchange(&s, &client, &code, &verifier).await;
            if status == StatusCode::OK {
                *won.lock().unwrap() = Some(body);
            }
            status
        }
    })
    .await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{statuses:?}");
    let first = won.lock().unwrap().take().unwrap();
    let access = first["access_token"].as_str().unwrap();
    assert!(
        !support::refused_within(&s, access, std::time::Duration::from_millis(1500)).await,
        "a losing redemption without the verifier revoked the winner's tokens"
    );
    let (status, body) = refresh(&s, &client, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Rule: with strict rotation (`--refresh-grace-period 0`), exactly one of many concurrent refreshes of the
/// same token succeeds (security notes "/token"; Keycloak CVE-2026-1035). With the grace period every one gets
/// the same single successor: `it/refresh_grace.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_yield_exactly_one_token() {
    let s = std::sync::Arc::new(support::start_with(&["--refresh-grace-period", "0"]));
    let t = support::grant(&s, "&state=x").await;
    let statuses = race(20, || {
        let (s, client, rt) = (s.clone(), t.client_id.clone(), t.refresh.clone());
        async move { refresh(&s, &client, &rt).await.0 }
    })
    .await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST),
        "{statuses:?}"
    );
}

/// Rule: a code is bound to the client it was issued to — another client cannot redeem it, even with the
/// right verifier and redirect URI (RFC 6749 §4.1.3, §10.5; security notes "/authorize").
#[tokio::test]
async fn another_client_cannot_redeem_a_code() {
    let s = support::start();
    let victim = support::register_public(&s).await;
    let attacker = support::register_public(&s).await;
    let p = pkce();
    let code = support::code_for(&s, &victim, &p, "&state=x").await;
    let (status, body) = support::exchange(&s, &attacker, &code, &p.verifier).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert!(body.get("access_token").is_none());
}

/// Rule: a refresh token is bound to its client — another client's refresh is `invalid_grant` (RFC 6749 §6;
/// OAuth 2.1 §4.3.1; security notes "/token").
#[tokio::test]
async fn another_client_cannot_use_a_refresh_token() {
    let s = support::start();
    let victim = support::grant(&s, "&state=x").await;
    let attacker = support::register_public(&s).await;
    let (status, body) = refresh(&s, &attacker, &victim.refresh).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
}

/// Rule: revoking one client's token never touches another's — RFC 7009 §2.1 (the server checks the token
/// was issued to the requesting client) and §2.2 (200 anyway, so nothing is learned).
#[tokio::test]
async fn revoking_another_clients_tokens_has_no_effect() {
    let s = support::start();
    let victim: Tokens = support::grant(&s, "&state=x").await;
    let attacker = support::register_public(&s).await;
    for (token, hint) in [
        (&victim.refresh, "refresh_token"),
        (&victim.access, "access_token"),
    ] {
        let (status, _, body) = post_form(
            &s,
            "/revoke",
            &[
                ("token", token.as_str()),
                ("token_type_hint", hint),
                ("client_id", &attacker),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "RFC 7009 §2.2 answers 200: {body}");
    }
    // Give a revocation the time it would need to reach the endpoint (revocation sync is 1 s).
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(mcp_status(&s, &victim.access).await, StatusCode::OK);
    let (status, body) = refresh(&s, &victim.client_id, &victim.refresh).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the victim's refresh token was revoked: {body}"
    );
}

/// Rule: no widening of scope on refresh — asking for more than the grant is `invalid_scope`
/// (RFC 6749 §6; security notes "/token").
#[tokio::test]
async fn refresh_cannot_widen_scope() {
    let s = support::start();
    let t = support::grant(&s, "&state=x&scope=mcp%3Atools").await;
    for scope in ["mcp:tools mcp:admin", "mcp:admin", "mcp:tools' OR 1=1 --"] {
        let (status, _, body) = post_form(
            &s,
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &t.refresh),
                ("client_id", &t.client_id),
                ("scope", scope),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{scope}: {body}");
        assert_eq!(body["error"], "invalid_scope", "{scope}: {body}");
    }
}

/// Rule: `resource` is the token's audience; a resource other than the MCP endpoint is `invalid_target`, at the
/// code exchange and on refresh (RFC 8707 §2, §2.2; security notes "/token").
#[tokio::test]
async fn resource_other_than_the_mcp_url_is_invalid_target() {
    let s = support::start();
    let client = support::register_public(&s).await;
    let p = pkce();
    let code = support::code_for(&s, &client, &p, "&state=x").await;
    let evil = [
        "https://evil.example/mcp",
        &format!("{}/", s.mcp),
        &format!("{}x", s.mcp),
        "' OR 1=1 --",
    ];
    for resource in evil {
        let (status, _, body) = post_form(
            &s,
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", SEED_REDIRECT),
                ("client_id", &client),
                ("code_verifier", &p.verifier),
                ("resource", resource),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{resource}: {body}");
        assert_eq!(body["error"], "invalid_target", "{resource}: {body}");
    }
    let t = support::grant(&s, "&state=y").await;
    for resource in evil {
        let (status, _, body) = post_form(
            &s,
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &t.refresh),
                ("client_id", &t.client_id),
                ("resource", resource),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{resource}: {body}");
        assert_eq!(body["error"], "invalid_target", "{resource}: {body}");
    }
}

/// Rule: a resource at /authorize that is not the MCP endpoint gets no code (RFC 8707 §2: `invalid_target`).
#[tokio::test]
async fn authorize_with_a_foreign_resource_gets_no_code() {
    let s: Server = support::start();
    let client = support::register_public(&s).await;
    let p = pkce();
    let url = support::authorize_url(
        &s,
        &client,
        &p.challenge,
        "&state=x&resource=https%3A%2F%2Fevil.example%2Fmcp",
    );
    let page = super::after_login(&support::browser(), &s, &url).await;
    super::assert_refused_without_code("foreign resource", &page, "invalid_target");
}

/// Rule: codes, refresh tokens (both parts: the family's handle and each secret) and client secrets are stored
/// only as SHA-256 hashes (security notes "Storage"; RFC 9700 §4.14.2). The database files (main, WAL) are read
/// byte for byte after a code exchange, a refresh and a confidential registration; the hash of the family's
/// handle is found there (so these are the right files) and none of the values, nor the live secret's raw
/// bytes (the grace period keeps it only sealed under the rotated token).
#[tokio::test]
async fn tokens_and_secrets_are_stored_only_hashed() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let s = support::start();
    let client = support::register_public(&s).await;
    let p = pkce();
    let code = support::code_for(&s, &client, &p, "&state=x").await;
    let (status, body) = support::exchange(&s, &client, &code, &p.verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = refresh(&s, &client, &first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = body["refresh_token"].as_str().unwrap().to_owned();
    let mut confidential = support::seed_registration();
    confidential["token_endpoint_auth_method"] = "client_secret_basic".into();
    let (status, body) = support::register_raw(&s, &confidential).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let client_secret = body["client_secret"].as_str().unwrap().to_owned();

    let (handle, secret1) = first
        .split_once('.')
        .expect("a refresh token is HANDLE.SECRET");
    let (handle2, secret2) = second.split_once('.').unwrap();
    assert_eq!(handle, handle2, "rotation keeps the family's handle");
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(s.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains(".db") {
            stored.extend(std::fs::read(&path).unwrap());
        }
    }
    let contains = |needle: &str| stored.windows(needle.len()).any(|w| w == needle.as_bytes());
    let hash = |v: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(v.as_bytes()))
    };
    assert!(
        contains(&hash(handle)),
        "the family key is not in the files read"
    );
    for (what, value) in [
        ("code", code.as_str()),
        ("refresh token", first.as_str()),
        ("rotated refresh token", second.as_str()),
        ("refresh handle", handle),
        ("refresh secret", secret1),
        ("rotated refresh secret", secret2),
        ("client secret", client_secret.as_str()),
    ] {
        assert!(!contains(value), "the {what} is stored in the clear");
    }
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(secret2)
        .unwrap();
    assert_eq!(raw.len(), 32);
    assert!(
        !stored.windows(raw.len()).any(|w| w == raw.as_slice()),
        "the live refresh secret's bytes are stored in the clear"
    );
}
