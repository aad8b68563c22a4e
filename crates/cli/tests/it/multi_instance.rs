//! Two `portcullis serve` processes on one PostgreSQL database (`TEST_POSTGRES_URL`), as behind a load
//! balancer: both claim the same issuer and share nothing but the database. The seed flow with every step on a
//! different instance, single-use races across instances, key agreement and rotation, revocation reaching the
//! other instance, and a stopped database (through a proxy) with recovery without a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::instances::*;
use futures_util::future::join_all;
use std::time::{Duration, Instant};

/// The revocation sync interval the servers run with (the default).
const SYNC_MS: u64 = 1000;

/// Two instances on `database`, both with issuer = the first one's URL.
fn pair(database: &str) -> (String, Server, Server) {
    let (p1, p2) = (free_port(), free_port());
    let issuer = format!("http://127.0.0.1:{p1}");
    let sync = SYNC_MS.to_string();
    // Strict refresh rotation: a token spent by an attempt that failed to answer then shows as reuse, and the
    // refresh race has one winner. The grace period across instances is tested in `refresh_grace.rs`.
    let extra = [
        "--issuer",
        &issuer,
        "--revocation-sync-ms",
        &sync,
        "--refresh-grace-period",
        "0",
    ];
    // Started at the same time: migrations and the first signing key must come out right with two at once.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Server::start(database, p1, &extra));
        let b = s.spawn(|| Server::start(database, p2, &extra));
        (a.join().unwrap(), b.join().unwrap())
    });
    (issuer, a, b)
}

/// Counts statuses and error codes of a race: (successes, invalid_grant, other answers as text).
fn tally(
    results: Vec<(u16, serde_json::Value, reqwest::header::HeaderMap)>,
) -> (usize, usize, Vec<String>) {
    let (mut ok, mut invalid, mut other) = (0, 0, Vec::new());
    for (status, body, _) in results {
        match (status, body["error"].as_str()) {
            (200, _) => ok += 1,
            (400, Some("invalid_grant")) => invalid += 1,
            (s, _) => other.push(format!("{s} {body}")),
        }
    }
    (ok, invalid, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_one_postgres_database() {
    let Some(admin) = postgres_url("two_instances_share_one_postgres_database") else {
        return;
    };
    let db = TempDb::create(&admin).await;
    add_user(&db.url);
    let (issuer, a, b) = pair(&db.url);
    let (a, b) = (a.base.clone(), b.base.clone());
    let http = http(false);

    // Key agreement: one active key, the same JWKS everywhere.
    let jwks_a: serde_json::Value = http
        .get(format!("{a}/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwks_b: serde_json::Value = http
        .get(format!("{b}/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks_a, jwks_b, "the instances publish different JWKS");
    assert_eq!(jwks_a["keys"].as_array().unwrap().len(), 1, "{jwks_a}");
    for base in [&a, &b] {
        let meta: serde_json::Value = http
            .get(format!("{base}/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(meta["issuer"], issuer.as_str());
    }

    // The seed flow, every step on the other instance than the one before.
    let client_id = register(&a).await;
    let (verifier, challenge) = pkce();
    let code = browser_flow(&issuer, &b, &a, &client_id, &challenge).await;
    let (status, body, _) = redeem(&http, &b, &issuer, &client_id, &code, &verifier)
        .await
        .unwrap();
    assert_eq!(status, 200, "token on B: {body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        mcp_status(&http, &a, &access).await,
        200,
        "a token minted by B must verify at A"
    );
    let (status, body, _) = refresh(&http, &b, &client_id, &refresh_token)
        .await
        .unwrap();
    assert_eq!(status, 200, "refresh on B: {body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(mcp_status(&http, &a, &access).await, 200);
    assert_eq!(mcp_status(&http, &b, &access).await, 200);

    // 50 concurrent redemptions of one code, split across both instances.
    let client_id = register(&b).await;
    let (verifier, challenge) = pkce();
    let code = browser_flow(&issuer, &a, &b, &client_id, &challenge).await;
    let results = join_all((0..50).map(|i| {
        let base = if i % 2 == 0 { &a } else { &b };
        let (http, issuer, client_id, code, verifier) =
            (&http, &issuer, &client_id, &code, &verifier);
        async move {
            redeem(http, base, issuer, client_id, code, verifier)
                .await
                .unwrap()
        }
    }))
    .await;
    let (ok, invalid, other) = tally(results);
    assert_eq!((ok, invalid), (1, 49), "code race: other answers {other:?}");

    // 50 concurrent refreshes of one refresh token, strict rotation.
    let t = full_flow(&issuer, &a).await;
    let results = join_all((0..50).map(|i| {
        let base = if i % 2 == 0 { &a } else { &b };
        let (http, t) = (&http, &t);
        async move { refresh(http, base, &t.client_id, &t.refresh).await.unwrap() }
    }))
    .await;
    let winner = results
        .iter()
        .find(|(s, _, _)| *s == 200)
        .map(|(_, body, _)| body["refresh_token"].as_str().unwrap().to_owned());
    let (ok, invalid, other) = tally(results);
    assert_eq!(
        (ok, invalid),
        (1, 49),
        "refresh race: other answers {other:?}"
    );
    // Reuse detection revoked the family: the winner's new refresh token is dead too.
    let winner = winner.unwrap();
    for base in [&a, &b] {
        let (status, body, _) = refresh(&http, base, &t.client_id, &winner).await.unwrap();
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{body}"
        );
    }

    // Revocation at A reaches B's MCP endpoint within the sync interval.
    let t = full_flow(&issuer, &b).await;
    assert_eq!(mcp_status(&http, &b, &t.access).await, 200);
    let resp = http
        .post(format!("{a}/revoke"))
        .form(&[
            ("token", t.access.as_str()),
            ("client_id", t.client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let revoked_at = Instant::now();
    assert_eq!(
        mcp_status(&http, &a, &t.access).await,
        401,
        "A refuses at once"
    );
    let bound = Duration::from_millis(SYNC_MS + 1500);
    loop {
        if mcp_status(&http, &b, &t.access).await == 401 {
            break;
        }
        assert!(
            revoked_at.elapsed() < bound,
            "B still accepts a token revoked at A after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Key rotation by the CLI: a token signed with the new key verifies at both instances.
    let old_kid = kid_of(&full_flow(&issuer, &a).await.access);
    let out = std::process::Command::new(bin())
        .args(["keys", "rotate", "--database", &db.url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A third instance started after the rotation signs with the new key from the start.
    let c = Server::start(&db.url, free_port(), &["--issuer", &issuer]);
    let fresh = full_flow(&issuer, &c.base).await;
    let new_kid = kid_of(&fresh.access);
    assert_ne!(
        old_kid, new_kid,
        "the third instance signs with the old key"
    );
    // A and B have not reloaded yet (every 60 s): the unknown `kid` makes them reload at once.
    assert_eq!(mcp_status(&http, &a, &fresh.access).await, 200);
    assert_eq!(mcp_status(&http, &b, &fresh.access).await, 200);
    let jwks_a: serde_json::Value = http
        .get(format!("{a}/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwks_b: serde_json::Value = http
        .get(format!("{b}/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks_a, jwks_b);
    let kids: Vec<_> = jwks_a["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        kids.contains(&old_kid) && kids.contains(&new_kid),
        "{kids:?}"
    );
    // And after the reload they sign with the new key themselves.
    assert_eq!(kid_of(&full_flow(&issuer, &b).await.access), new_kid);
    drop((c, db));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stopped_database_answers_503_and_recovers() {
    let Some(admin) = postgres_url("stopped_database_answers_503_and_recovers") else {
        return;
    };
    let db = TempDb::create(&admin).await;
    add_user(&db.url);
    let proxy = Proxy::start(db.port()).await;
    let via_proxy = db.url_via(proxy.port);
    let (issuer, sa, sb) = pair(&via_proxy);
    let (a, b) = (sa.base.clone(), sb.base.clone());
    let http = http(false);
    let t = full_flow(&issuer, &a).await;
    let client_id = register(&b).await;
    let (_verifier, challenge) = pkce();

    proxy.down();
    let started = Instant::now();
    let query = authorize_query(&issuer, &client_id, &challenge);
    let (refreshed, registered, authorized, ready, live, mcp) = tokio::join!(
        refresh(&http, &b, &t.client_id, &t.refresh),
        try_register(&http, &a),
        http.get(format!("{b}/authorize?{query}")).send(),
        http.get(format!("{a}/readyz")).send(),
        http.get(format!("{a}/livez")).send(),
        mcp_status(&http, &b, &t.access),
    );
    let waited = started.elapsed();
    let (status, body, headers) = refreshed.unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("temporarily_unavailable")),
        "/token: {body}"
    );
    assert!(
        headers.contains_key("retry-after"),
        "/token without Retry-After"
    );
    let (status, body) = registered.unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("temporarily_unavailable")),
        "/register: {body}"
    );
    let authorized = authorized.unwrap();
    assert_eq!(authorized.status(), 503);
    assert!(authorized.headers().contains_key("retry-after"));
    let content_type = authorized.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert_eq!(ready.unwrap().status(), 503);
    assert_eq!(live.unwrap().status(), 200);
    assert_eq!(
        mcp, 200,
        "an issued token must keep working without the database"
    );
    assert!(
        waited < Duration::from_secs(10),
        "answers took {waited:?} while the database was down"
    );
    // Still down a moment later (the pool must not have cached a broken state as success).
    let (status, body, headers) = refresh(&http, &a, &t.client_id, &t.refresh).await.unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("temporarily_unavailable")),
        "{body}"
    );
    assert!(headers.contains_key("retry-after"));

    proxy.up();
    let back = Instant::now();
    for base in [&a, &b] {
        loop {
            if http
                .get(format!("{base}/readyz"))
                .send()
                .await
                .unwrap()
                .status()
                == 200
            {
                break;
            }
            assert!(
                back.elapsed() < Duration::from_secs(20),
                "{base} did not become ready again"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // The refresh token was never spent by the failed attempts.
    let (status, body, _) = refresh(&http, &b, &t.client_id, &t.refresh).await.unwrap();
    assert_eq!(status, 200, "refresh after recovery: {body}");
    let t2 = full_flow(&issuer, &b).await;
    assert_eq!(mcp_status(&http, &a, &t2.access).await, 200);
    drop((sa, sb, proxy, db));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hanging_database_answers_503_within_seconds() {
    let Some(admin) = postgres_url("hanging_database_answers_503_within_seconds") else {
        return;
    };
    let db = TempDb::create(&admin).await;
    add_user(&db.url);
    let proxy = Proxy::start(db.port()).await;
    let (issuer, sa, sb) = pair(&db.url_via(proxy.port));
    let (a, b) = (sa.base.clone(), sb.base.clone());
    let http = http(false);
    let t = full_flow(&issuer, &a).await;

    // Stall while requests are in flight: statements already sent get no answer, ever. Each must still be
    // answered (committed 201 or 503) within the store's per-attempt deadline (acquire 3 s + statement 5 s
    // + 1 s), not after the operating system's TCP timeout.
    let burst = tokio::spawn({
        let (http, a, b) = (http.clone(), a.clone(), b.clone());
        async move {
            let started = Instant::now();
            let answers = join_all((0..30).map(|i| {
                let base = if i % 2 == 0 { a.clone() } else { b.clone() };
                let http = http.clone();
                async move { try_register(&http, &base).await.unwrap().0 }
            }))
            .await;
            (answers, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(15)).await;
    proxy.stall();
    let started = Instant::now();
    let (refreshed, registered, ready, mcp) = tokio::join!(
        refresh(&http, &b, &t.client_id, &t.refresh),
        try_register(&http, &a),
        http.get(format!("{a}/readyz")).send(),
        mcp_status(&http, &a, &t.access),
    );
    let waited = started.elapsed();
    eprintln!("answers while the database hangs took {waited:?}");
    let (answers, burst_took) = burst.await.unwrap();
    eprintln!("in-flight burst: {answers:?} in {burst_took:?}");
    assert!(
        answers.iter().all(|s| *s == 201 || *s == 503),
        "{answers:?}"
    );
    assert!(
        burst_took < Duration::from_secs(12),
        "in-flight requests took {burst_took:?}"
    );
    let (status, body, headers) = refreshed.unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("temporarily_unavailable")),
        "/token: {body}"
    );
    assert!(headers.contains_key("retry-after"));
    let (status, body) = registered.unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("temporarily_unavailable")),
        "/register: {body}"
    );
    assert_eq!(ready.unwrap().status(), 503);
    assert_eq!(mcp, 200);
    assert!(
        waited < Duration::from_secs(5),
        "answers took {waited:?} while the database hung"
    );

    proxy.up();
    let back = Instant::now();
    loop {
        let (status, body, _) = refresh(&http, &b, &t.client_id, &t.refresh).await.unwrap();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "no recovery: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop((sa, sb, proxy, db));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_limits_hold_across_instances() {
    let Some(admin) = postgres_url("login_limits_hold_across_instances") else {
        return;
    };
    let db = TempDb::create(&admin).await;
    add_user(&db.url);
    let (issuer, sa, sb) = pair(&db.url);
    let (a, b) = (sa.base.clone(), sb.base.clone());
    let client_id = register(&a).await;
    let (_, challenge) = pkce();
    let browser = http(true);
    let query = authorize_query(&issuer, &client_id, &challenge);
    let mut page = browser
        .get(format!("{a}/authorize?{query}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let attempt = |base: String, page: String, password: &'static str| {
        let browser = browser.clone();
        async move {
            let form = [
                ("request", hidden(&page, "request")),
                ("csrf_token", hidden(&page, "csrf_token")),
                ("username", USER.to_owned()),
                ("password", password.to_owned()),
            ];
            let resp = browser
                .post(format!("{base}/login"))
                .form(&form)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let retry_after = resp.headers().get("retry-after").cloned();
            (status, retry_after, resp.text().await.unwrap())
        }
    };
    // 10 failed sign-ins per account per window, alternating between the instances.
    for i in 0..10 {
        let base = if i % 2 == 0 { &a } else { &b };
        let (status, _, next) = attempt(base.clone(), page, "wrong password!").await;
        assert_eq!(status, 401, "attempt {i}: {next}");
        page = next;
    }
    for base in [&a, &b] {
        // Even the right password is refused now, on either instance.
        let (status, retry_after, next) = attempt(base.clone(), page, PASSWORD).await;
        assert_eq!(status, 429, "{next}");
        let secs: i64 = retry_after
            .expect("429 without Retry-After")
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=900).contains(&secs), "Retry-After {secs}");
        page = next;
    }
    drop((sa, sb, db));
}
