//! Floods of the expensive endpoints besides sign-in ([`super::logins`]) (issue 19, "Beyond the list"):
//! dynamic client registration, the token endpoint and Client ID Metadata Document fetches. Rule (security
//! notes, "Robustness"; RFC 9700 §4.16 leaves resource limits to the server): however many requests arrive at
//! once from however many addresses, each is answered with its proper status — the endpoint's answer, or 429 /
//! 503 with `Retry-After` (RFC 9110 §15.5.20, §15.6.4) in the endpoint's error format — never a 500 and never
//! a hang; the server's peak memory grows by less than a stated bound; and `/livez` answers within
//! [`LIVEZ_BOUND`] throughout. Requests come from several loopback addresses (127.0.0.x), as the server keys
//! its limits by the connection's address.

use super::assert_no_leak;
use super::probe::{client_from, livez_while, PeakRss, LIVEZ_BOUND, MIB};
use crate::cimd::{document, json_reply, serve_allowing, DocServer, Reply};
use crate::support::{self, pkce, seed_registration, Server};
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// One answer of a flood, read completely, and how long it took.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
    took: Duration,
}

/// Sends `n` requests at once, the i-th from 127.0.0.`addresses[i % len]`, built by `request(client, i)`.
fn flood(
    n: usize,
    addresses: &[u8],
    request: impl Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder,
) -> Vec<JoinHandle<Answer>> {
    let clients: Vec<_> = addresses.iter().map(|a| client_from(*a, false)).collect();
    (0..n)
        .map(|i| {
            let req = request(&clients[i % clients.len()], i);
            tokio::spawn(async move {
                let started = Instant::now();
                let resp = req.send().await.unwrap();
                let (status, headers) = (resp.status(), resp.headers().clone());
                let body = resp.text().await.unwrap();
                Answer {
                    status,
                    headers,
                    body,
                    took: started.elapsed(),
                }
            })
        })
        .collect()
}

/// Waits for every answer while probing `/livez` ([`livez_while`]); checks each with `check` (which also
/// rules out any status it does not expect), and counts them per status.
async fn answers(
    s: &Server,
    what: &str,
    tasks: Vec<JoinHandle<Answer>>,
    check: impl Fn(&Answer),
) -> BTreeMap<u16, usize> {
    let worst = livez_while(s, &tasks).await;
    let mut counts = BTreeMap::new();
    let mut slowest = Duration::ZERO;
    for t in tasks {
        let a = t.await.unwrap();
        assert_no_leak(what, &a.body);
        if matches!(
            a.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            assert!(
                a.headers.contains_key("retry-after"),
                "{what}: {} without Retry-After",
                a.status
            );
        }
        check(&a);
        slowest = slowest.max(a.took);
        *counts.entry(a.status.as_u16()).or_insert(0) += 1;
    }
    eprintln!("{what}: {counts:?}, slowest answer {slowest:?}, /livez worst {worst:?}");
    counts
}

/// Asserts a JSON error body with `error` = one of `codes` (RFC 6749 §5.2, RFC 7591 §3.2.2).
fn assert_json_error(what: &str, a: &Answer, codes: &[&str]) {
    let ct = a
        .headers
        .get(CONTENT_TYPE)
        .map_or("", |v| v.to_str().unwrap());
    assert!(
        ct.starts_with("application/json"),
        "{what}: {} as {ct:?}: {}",
        a.status,
        a.body
    );
    let v: Value = serde_json::from_str(&a.body).unwrap();
    assert!(
        codes.contains(&v["error"].as_str().unwrap_or("")),
        "{what}: {} {}",
        a.status,
        a.body
    );
}

/// A registration of a public client with eight loopback redirect URIs (about 1 KiB), named after `i`.
fn registration(i: usize) -> String {
    let mut meta = seed_registration();
    meta["client_name"] = json!(format!("flood client {i}"));
    meta["redirect_uris"] = json!((0..8)
        .map(|j| format!("http://127.0.0.1/callback/{i}/{j}"))
        .collect::<Vec<_>>());
    meta.to_string()
}

/// `n` registrations at once from `addresses`.
fn registrations(s: &Server, n: usize, addresses: &[u8]) -> Vec<JoinHandle<Answer>> {
    let url = s.url("/register");
    flood(n, addresses, |c, i| {
        c.post(&url)
            .header(CONTENT_TYPE, "application/json")
            .body(registration(i))
    })
}

/// Checks a flooded registration: 201 with a `client_id`, or 429/503 `temporarily_unavailable`.
fn check_registration(a: &Answer) {
    match a.status {
        StatusCode::CREATED => {
            let v: Value = serde_json::from_str(&a.body).unwrap();
            assert!(v["client_id"].is_string(), "{}", a.body);
        }
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
            assert_json_error("flooded registration", a, &["temporarily_unavailable"]);
        }
        other => panic!("a flooded registration got {other}: {}", a.body),
    }
}

/// Rule: registration floods are bounded — with the per-address limit off (`--register-per-ip-per-hour 0`, so
/// every request is parsed, checked and stored), 300 registrations at once from six addresses are each
/// answered 201 (or 503 with `Retry-After`, never a 500), at least half of them 201; the peak memory grows by
/// less than 64 MiB, and `/livez` answers within 2 s throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registration_flood_is_bounded_and_livez_stays_fast() {
    let s = support::start_with(&["--register-per-ip-per-hour", "0"]);
    for t in registrations(&s, 10, &[1]) {
        assert_eq!(t.await.unwrap().status, StatusCode::CREATED, "warm-up");
    }
    let peak = PeakRss::before(&s);
    let tasks = registrations(&s, 300, &[2, 3, 4, 5, 6, 7]);
    let counts = answers(&s, "registration flood", tasks, check_registration).await;
    let created = counts.get(&201).copied().unwrap_or(0);
    assert!(created >= 150, "only {created} of 300 were registered");
    peak.assert_grown_below(64 * MIB, "registration flood");
}

/// Rule: a registration flood beyond the limit is refused cheaply — with the default limit (100 per address per
/// hour), 300 registrations at once from two addresses get at most 100 × 201 per address, the rest 429 with
/// `Retry-After` and an RFC 7591 §3.2.2 JSON error; then, while both addresses are over the limit, 600 more
/// get only 429 (refused before the body is read), the peak memory grows by less than 16 MiB, and `/livez`
/// answers within 2 s throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registration_flood_over_the_limit_is_refused_cheaply() {
    let s = support::start();
    let counts = answers(
        &s,
        "registrations up to the limit",
        registrations(&s, 300, &[2, 3]),
        check_registration,
    )
    .await;
    let created = counts.get(&201).copied().unwrap_or(0);
    assert!(
        (100..=200).contains(&created),
        "{created} registered from two addresses at 100 each"
    );
    assert!(counts.get(&429).copied().unwrap_or(0) >= 100, "{counts:?}");
    let peak = PeakRss::before(&s);
    let counts = answers(
        &s,
        "registrations over the limit",
        registrations(&s, 600, &[2, 3]),
        check_registration,
    )
    .await;
    assert_eq!(counts.get(&429), Some(&600), "{counts:?}");
    peak.assert_grown_below(16 * MIB, "registrations over the limit");
}

/// Registers a confidential client (`client_secret_basic`); its id.
async fn confidential(s: &Server) -> String {
    let mut meta = seed_registration();
    meta["token_endpoint_auth_method"] = json!("client_secret_basic");
    let (status, body) = support::register_raw(s, &meta).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["client_id"].as_str().unwrap().to_owned()
}

/// The i-th wrong token request: a wrong code, a wrong refresh token (both for the public client `public`), or
/// a wrong client secret (HTTP Basic, for the confidential client `secret_client`).
fn wrong_token_request(
    c: &reqwest::Client,
    url: &str,
    public: &str,
    secret_client: &str,
    i: usize,
) -> reqwest::RequestBuilder {
    let guess = format!("guess-{i}-{}", pkce().verifier);
    match i % 3 {
        0 => c.post(url).form(&[
            ("grant_type", "authorization_code"),
            ("code", guess.as_str()),
            ("redirect_uri", support::SEED_REDIRECT),
            ("client_id", public),
            ("code_verifier", pkce().verifier.as_str()),
        ]),
        1 => c.post(url).form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", format!("{guess}.{guess}").as_str()),
            ("client_id", public),
        ]),
        _ => c
            .post(url)
            .basic_auth(secret_client, Some(&guess))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", "x.y")]),
    }
}

/// Checks a flooded wrong token request: 400 `invalid_grant`, 401 `invalid_client` (with a `Basic`
/// challenge), or 429/503 `temporarily_unavailable`.
fn check_token(a: &Answer) {
    let what = "flooded token request";
    match a.status {
        StatusCode::BAD_REQUEST => assert_json_error(what, a, &["invalid_grant"]),
        StatusCode::UNAUTHORIZED => {
            assert_json_error(what, a, &["invalid_client"]);
            assert!(a.headers.contains_key("www-authenticate"), "{what}: 401");
        }
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
            assert_json_error(what, a, &["temporarily_unavailable"]);
        }
        other => panic!("{what} got {other}: {}", a.body),
    }
}

/// Rule: token-endpoint floods are bounded — 360 wrong codes, wrong refresh tokens and wrong client secrets at
/// once from six addresses, with `--token-failures-per-ip 40`: each is answered 400 `invalid_grant` / 401
/// `invalid_client` (at most 40 per address) or 429 with `Retry-After` (never a 500); the peak memory grows by
/// less than 48 MiB and `/livez` answers within 2 s throughout; afterwards a real refresh from another address
/// still succeeds. (Client secrets are 256-bit random values the server issued, kept as SHA-256 hashes: no
/// deliberately slow hash runs here, so the per-address guess limit is the bound, not a hashing pool.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_flood_is_bounded_and_livez_stays_fast() {
    let s = support::start_with(&["--token-failures-per-ip", "40"]);
    let grant = support::grant(&s, "").await;
    let secret_client = confidential(&s).await;
    let url = s.url("/token");
    let request =
        |c: &reqwest::Client, i| wrong_token_request(c, &url, &grant.client_id, &secret_client, i);
    let warm = flood(9, &[1], request);
    answers(&s, "token warm-up", warm, check_token).await;
    let peak = PeakRss::before(&s);
    let tasks = flood(360, &[2, 3, 4, 5, 6, 7], request);
    let counts = answers(&s, "token flood", tasks, check_token).await;
    let answered = counts.get(&400).copied().unwrap_or(0) + counts.get(&401).copied().unwrap_or(0);
    assert!(
        (100..=6 * 40).contains(&answered),
        "{answered} guesses answered, limit 40 per address: {counts:?}"
    );
    assert!(
        counts.get(&429).copied().unwrap_or(0) >= 360 - 6 * 40,
        "{counts:?}"
    );
    peak.assert_grown_below(48 * MIB, "token flood");
    let refreshed = client_from(9, false)
        .post(&url)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", grant.refresh.as_str()),
            ("client_id", grant.client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        refreshed.status(),
        StatusCode::OK,
        "a real refresh after the flood"
    );
}

/// Most Client ID Metadata Document fetches in flight (`outbound::cimd::MAX_CONCURRENT_FETCHES`).
const MAX_FETCHES: usize = 32;
/// Longest a fetch may take (`outbound::cimd::FETCH_TIMEOUT`).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks a flooded authorization request naming a URL `client_id`: the login page (the document was
/// fetched), an error page (400: the document was too large), or 503 `temporarily_unavailable` (no answer in
/// time, or too many fetches in flight); never a redirect, and within the fetch timeout plus slack.
fn check_authorize(a: &Answer) {
    let what = "flooded authorization request";
    assert!(
        a.took < FETCH_TIMEOUT + LIVEZ_BOUND,
        "{what} took {:?}",
        a.took
    );
    assert!(!a.headers.contains_key("location"), "{what} redirected");
    match a.status {
        StatusCode::OK => assert!(a.body.contains("action=\"/login\""), "{what}: {}", a.body),
        StatusCode::BAD_REQUEST => {
            assert!(a.body.contains("larger than"), "{what}: {}", a.body)
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            assert!(
                a.body.contains("temporarily_unavailable"),
                "{what}: {}",
                a.body
            )
        }
        other => panic!("{what} got {other}: {}", a.body),
    }
}

/// Rule: Client ID Metadata Document fetches are bounded in number, time and size (draft-ietf-oauth-client-id-
/// metadata-document, "Security Considerations") — 150 authorization requests at once from five addresses,
/// each naming its own document URL on a loopback host whose documents never come, come after 300 ms, or
/// never end: the document host sees at most 32 fetches at once, every request is answered within the 5 s
/// fetch timeout plus slack (login page, 400 for the endless document, 503 with `Retry-After` for the rest,
/// never a 500), the peak memory grows by less than 24 MiB (it grew by ~4 MiB; with a 4 MiB document limit
/// instead of 5 KiB, by ~51 MiB), `/livez` answers within 2 s throughout, and afterwards a document is fetched
/// again (every fetch's place was given back).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_metadata_flood_is_bounded_and_livez_stays_fast() {
    let doc = DocServer::start().await;
    let slow = |path: &str| {
        let answer = json_reply(&document(&doc.url(path)), &["Cache-Control: no-store"]);
        Reply::Delayed(Duration::from_millis(300), Box::new(answer))
    };
    let ids: Vec<String> = (0..150)
        .map(|i| {
            let path = format!("/flood/{i}.json");
            let reply = match i % 3 {
                0 => Reply::Hang,
                1 => slow(&path),
                _ => Reply::Endless,
            };
            doc.set(&path, reply);
            doc.url(&path)
        })
        .collect();
    doc.set("/after.json", slow("/after.json"));
    let s = serve_allowing(&doc);
    let challenge = pkce().challenge;
    let authorize = |client_id: &str| support::authorize_url(&s, client_id, &challenge, "");
    // Warm up with a document that comes and one that never ends (one that never comes would cost 5 s).
    let warm = flood(2, &[1], |c, i| c.get(authorize(&ids[i + 1])));
    answers(&s, "metadata warm-up", warm, check_authorize).await;
    let peak = PeakRss::before(&s);
    let tasks = flood(150, &[2, 3, 4, 5, 6], |c, i| c.get(authorize(&ids[i])));
    let counts = answers(&s, "metadata flood", tasks, check_authorize).await;
    let max_open = doc.max_open.load(Ordering::SeqCst);
    eprintln!(
        "{} fetches, at most {max_open} at once",
        doc.total.load(Ordering::SeqCst)
    );
    assert!(max_open <= MAX_FETCHES, "{max_open} fetches at once");
    assert!(
        counts.get(&503).copied().unwrap_or(0) > 0,
        "150 fetches, none refused: {counts:?}"
    );
    peak.assert_grown_below(24 * MIB, "metadata flood");
    let after = flood(1, &[7], |c, _| c.get(authorize(&doc.url("/after.json"))));
    let counts = answers(&s, "metadata after the flood", after, check_authorize).await;
    assert_eq!(counts.get(&200), Some(&1), "no fetch after the flood");
}
