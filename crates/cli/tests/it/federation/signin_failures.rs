//! Sign-ins that must not succeed, with the real test IdP: a callback in another browser (no state cookie), a
//! forged `state`, a replayed callback, `access_denied` at the IdP, the IdP down and the IdP too slow. Each is a
//! page with the right status and no session cookie.

use super::*;
use crate::idp::TestIdp;
use crate::support::{browser, get, pkce, register_public};

/// A sign-in up to the IdP's redirect back: (the fed, its browser, the callback URL, the authorize URL).
async fn up_to_callback(fed: &Fed, allow: bool) -> (reqwest::Client, String, String) {
    let client = register_public(&fed.server).await;
    let p = pkce();
    let url = crate::support::authorize_url(&fed.server, &client, &p.challenge, "&state=neg");
    let b = browser();
    let back = to_idp_and_back(fed, &b, &url, "carol", allow).await;
    (b, back, url)
}

fn assert_failure(p: &Page, status: StatusCode, text: &str) {
    assert_eq!(p.status, status, "{}", p.body);
    assert!(p.body.contains(text), "expected {text:?} in {}", p.body);
    assert!(
        !sets_session(p),
        "a failure set a session cookie: {:?}",
        p.headers
    );
}

#[tokio::test]
async fn the_callback_in_another_browser_or_with_another_state_is_refused() {
    if !TestIdp::available() {
        return;
    }
    let fed = start_fed(FedOptions::default());
    let (b, back, _) = up_to_callback(&fed, true).await;
    // Another browser: no state cookie.
    let other = get(&browser(), &back).await;
    assert_failure(
        &other,
        StatusCode::BAD_REQUEST,
        "did not start in this browser",
    );
    // This browser, but the state in the URL changed (a forged or swapped response).
    let state = param(&back, "state").unwrap();
    let forged = back.replace(&format!("state={state}"), "state=forged");
    let p = get(&b, &forged).await;
    assert_failure(&p, StatusCode::BAD_REQUEST, "did not start in this browser");
    // The genuine callback still works afterwards (nothing was consumed by the forgeries).
    let ok = get(&b, &back).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert!(sets_session(&ok));
}

#[tokio::test]
async fn a_replayed_callback_is_a_page_not_a_session() {
    if !TestIdp::available() {
        return;
    }
    let fed = start_fed(FedOptions::default());
    let (b, back, _) = up_to_callback(&fed, true).await;
    // Keep the state cookie for the replay: a second browser carrying the same cookie value.
    let state = param(&back, "state").unwrap();
    let first = get(&b, &back).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    let replay = crate::support::http()
        .get(&back)
        .header("cookie", format!("portcullis-idp={state}"))
        .send()
        .await
        .unwrap();
    let status = replay.status();
    let set_session = replay
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().contains("portcullis_session="));
    let body = replay.text().await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("already been used"), "{body}");
    assert!(!set_session);
}

#[tokio::test]
async fn access_denied_at_the_idp_is_a_page_with_ways_back() {
    if !TestIdp::available() {
        return;
    }
    let fed = start_fed(FedOptions::default());
    let (b, back, url) = up_to_callback(&fed, false).await;
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
    let p = get(&b, &back).await;
    assert_failure(&p, StatusCode::FORBIDDEN, "was cancelled");
    // "Try signing in again" goes to the original request; "Return to the application" to the client with
    // error=access_denied.
    let query = query_of(&url);
    assert!(
        p.body
            .contains(&format!("/authorize?{}", query.replace('&', "&amp;"))),
        "{}",
        p.body
    );
    assert!(p.body.contains("error=access_denied"), "{}", p.body);
}

#[tokio::test]
async fn the_idp_down_at_the_callback_is_a_503_page() {
    if !TestIdp::available() {
        return;
    }
    let fed = start_fed(FedOptions::default());
    let (b, back, _) = up_to_callback(&fed, true).await;
    let Fed { server, idp, .. } = fed;
    drop(idp);
    let p = get(&b, &back).await;
    assert_failure(&p, StatusCode::SERVICE_UNAVAILABLE, "is unavailable");
    assert!(
        server.log().contains("upstream sign-in failed"),
        "{}",
        server.log()
    );
}

#[tokio::test]
async fn a_slow_idp_is_a_503_page_within_the_timeout() {
    if !TestIdp::available() {
        return;
    }
    let fed = start_fed(FedOptions::default());
    let (b, back, _) = up_to_callback(&fed, true).await;
    fed.idp.set_delay(15_000).await;
    let started = std::time::Instant::now();
    let p = get(&b, &back).await;
    assert_failure(&p, StatusCode::SERVICE_UNAVAILABLE, "is unavailable");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(13),
        "{:?}",
        started.elapsed()
    );
    fed.idp.set_delay(0).await;
}

/// A provider whose issuer cannot be reached stops `serve` at start, naming the provider's table.
#[test]
fn an_unreachable_issuer_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.toml");
    let dead = format!("http://127.0.0.1:{}", free_port());
    std::fs::write(&path, provider_table(PROVIDER, &dead, "")).unwrap();
    let db = format!("sqlite://{}", dir.path().join("p.db").display());
    let out = std::process::Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            &db,
            "--config",
        ])
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("identity_providers[corp]"), "{stderr}");
    assert!(!stderr.contains(CLIENT_SECRET), "{stderr}");
    assert!(
        !dir.path().join("vault.key").exists(),
        "a key was generated for nothing"
    );
}
