//! Sign-in floods (issue 19, items 1 and 2). Rules: password checks are bounded — at most
//! `password_hash_concurrency` argon2id checks (19 MiB each) run at once, beyond them and a short queue a sign-in
//! gets 503 with `Retry-After` (RFC 9110 §15.6.4), so memory stays under a bound and `/livez` stays fast; and the
//! sign-in throttle holds under parallel requests and cannot lock an owner out — each attempt is reserved
//! before its check, limits are per (account, address) and per address (OWASP Authentication Cheat Sheet,
//! "Login Throttling"). The tests vary the client address by binding to other loopback addresses (127.0.0.x):
//! the server keys its limits by the connection's address and trusts no forwarding header.

use super::assert_no_leak;
use super::probe::{client_from, livez_while, PeakRss, MIB};
use crate::support::{self, get, pkce, Page, Server, PASSWORD, USER};
use reqwest::StatusCode;
use std::sync::Arc;

/// `n` browsers, the i-th from 127.0.0.`addresses[i % len]`, each on the login page of a new request.
async fn login_pages(
    s: &Server,
    client: &str,
    n: usize,
    addresses: &[u8],
) -> Vec<(reqwest::Client, Page)> {
    let mut pages = Vec::new();
    for i in 0..n {
        let b = client_from(addresses[i % addresses.len()], true);
        let page = get(
            &b,
            &support::authorize_url(s, client, &pkce().challenge, ""),
        )
        .await;
        assert!(page.is_login(), "{}", page.body);
        pages.push((b, page));
    }
    pages
}

/// Submits every login form at once, `credentials(i)` for the i-th; the pages that come back.
async fn submit_all(
    s: &Arc<Server>,
    pages: Vec<(reqwest::Client, Page)>,
    credentials: impl Fn(usize) -> (String, String),
) -> Vec<tokio::task::JoinHandle<Page>> {
    let mut tasks = Vec::new();
    for (i, (b, page)) in pages.into_iter().enumerate() {
        let (s, (user, password)) = (s.clone(), credentials(i));
        tasks.push(tokio::spawn(async move {
            support::submit(
                &b,
                &s,
                &page,
                "/login",
                &[("username", &user), ("password", &password)],
            )
            .await
        }));
    }
    tasks
}

/// Rule: password checks are bounded (issue 19 item 1) — 100 sign-ins at once from five addresses, with
/// `--password-hash-concurrency 2`: every answer is 401 or a readable 503 sign-in page with `Retry-After` (some
/// must be 503; never a 500), the server's peak memory grows by less than 2 × 19 MiB plus slack (unbounded, it
/// grew by ~19 MiB per sign-in), and `/livez` answers within 2 s throughout (it took 3–4 s under such a flood).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sign_in_flood_is_bounded_and_livez_stays_fast() {
    let s = Arc::new(support::start_with(&["--password-hash-concurrency", "2"]));
    let client = support::register_public(&s).await;
    // Warm up: one check, so the baseline includes a check's memory and the allocator's first arenas.
    let warm = login_pages(&s, &client, 1, &[1]).await;
    for t in submit_all(&s, warm, |_| ("nobody".into(), "warm up".into())).await {
        assert_eq!(t.await.unwrap().status, StatusCode::UNAUTHORIZED);
    }
    let peak = PeakRss::before(&s);
    let pages = login_pages(&s, &client, 100, &[2, 3, 4, 5, 6]).await;
    let logins = submit_all(&s, pages, |i| (format!("user{i}"), format!("guess {i}"))).await;
    let worst = livez_while(&s, &logins).await;
    let (mut failed, mut busy) = (0, 0);
    for t in logins {
        let p = t.await.unwrap();
        assert_no_leak("flooded sign-in", &p.body);
        match p.status {
            StatusCode::UNAUTHORIZED => failed += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                busy += 1;
                assert!(
                    p.headers.get("retry-after").is_some(),
                    "503 without Retry-After"
                );
                assert!(
                    p.body.contains("action=\"/login\""),
                    "503 is not the sign-in page: {}",
                    p.body
                );
            }
            other => panic!("a flooded sign-in got {other}: {}", p.body),
        }
    }
    eprintln!("{failed} × 401, {busy} × 503, /livez worst {worst:?}");
    assert!(
        busy > 0,
        "100 sign-ins at once, none refused: the checks are not bounded"
    );
    assert!(failed >= 2, "only {failed} sign-ins were checked");
    peak.assert_grown_below(2 * 19 * MIB + 48 * MIB, "sign-in flood");
}

/// Rule: the sign-in throttle holds under parallel requests and cannot lock the owner out (issue 19 item 2) —
/// 200 wrong passwords for one account at once from one address get at most 10 real checks (401; the rest 429,
/// or 503 from the check cap, never a 500); the owner's right password from another address still signs in,
/// while the attacker's address stays throttled for that account.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_meet_the_limit_and_the_owner_still_signs_in() {
    let s = Arc::new(support::start());
    let client = support::register_public(&s).await;
    let pages = login_pages(&s, &client, 200, &[1]).await;
    let guesses = submit_all(&s, pages, |i| (USER.into(), format!("wrong guess {i}"))).await;
    let (mut checked, mut limited, mut busy) = (0, 0, 0);
    for t in guesses {
        let p = t.await.unwrap();
        match p.status {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                assert!(
                    p.headers.get("retry-after").is_some(),
                    "429 without Retry-After"
                );
            }
            StatusCode::SERVICE_UNAVAILABLE => busy += 1,
            other => panic!("a parallel guess got {other}: {}", p.body),
        }
    }
    eprintln!("{checked} × 401, {limited} × 429, {busy} × 503");
    assert!(
        checked <= 10,
        "{checked} passwords were checked; the limit is 10"
    );
    assert!(
        limited >= 100,
        "only {limited} of 200 guesses were throttled"
    );
    let owner = login_pages(&s, &client, 1, &[9]).await;
    let p = submit_all(&s, owner, |_| (USER.into(), PASSWORD.into()))
        .await
        .pop()
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        p.status,
        StatusCode::SEE_OTHER,
        "the owner was kept out: {}",
        p.body
    );
    let attacker = login_pages(&s, &client, 1, &[1]).await;
    let p = submit_all(&s, attacker, |_| (USER.into(), PASSWORD.into()))
        .await
        .pop()
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        p.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the guessing address is no longer throttled for the account"
    );
}
