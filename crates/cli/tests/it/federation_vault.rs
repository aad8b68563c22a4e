//! The upstream token vault at the gateway and deprovisioning (issue 13 §1 last bullet, §3), end to end: the real
//! test IdP (node-oidc-provider, [`crate::idp`]), `portcullis serve` with `[[identity_providers]]` and a gateway
//! whose `upstream_token_from = "corp"`, and a small upstream MCP server written here that records the
//! `Authorization` header it receives.
//!
//! Checked: the upstream receives the user's access token at the IdP (the IdP's userinfo accepts it as carol's),
//! never the Portcullis token; after the short IdP token lifetime the gateway refreshes first and the upstream gets
//! the new token, one refresh for two concurrent calls (the IdP rotates refresh tokens and revokes the grant on a
//! reuse, so a second refresh would break the next one); exchange mode sends a token whose `aud` is
//! `upstream_audience`; revoking the user at the IdP makes the next Portcullis refresh fail with `invalid_grant`,
//! revokes the grant (the old access token stops working), and the gateway then answers 401 naming the provider;
//! the SQLite files never hold the upstream tokens in the clear.

#![allow(clippy::unwrap_used)]

mod postgres;

use crate::idp::{IdpClient, IdpConfig, TestIdp};
use crate::support::*;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The IdP's access token lifetime: a little over the gateway's refresh margin (60 s), so the token stored at
/// sign-in is used as is and a few seconds later is refreshed first.
const SHORT_TTL: u64 = 63;

/// What the upstream received: each request's `Authorization` and `X-Upstream-Token` headers.
#[derive(Debug, Default)]
struct Upstream {
    seen: Mutex<Vec<(Option<String>, Option<String>)>>,
}

impl Upstream {
    fn last_bearer(&self) -> String {
        let seen = self.seen.lock().unwrap();
        let auth = seen
            .last()
            .unwrap()
            .0
            .clone()
            .expect("no Authorization upstream");
        auth.strip_prefix("Bearer ").unwrap().to_owned()
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

async fn up_post(State(up): State<Arc<Upstream>>, headers: HeaderMap, body: String) -> Response {
    let h = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    up.seen
        .lock()
        .unwrap()
        .push((h("authorization"), h("x-upstream-token")));
    let id = serde_json::from_str::<Value>(&body).unwrap_or(Value::Null)["id"].clone();
    axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": {"tools": []}})).into_response()
}

async fn start_upstream() -> (Arc<Upstream>, String) {
    let state = Arc::new(Upstream::default());
    let app = axum::Router::new()
        .route("/mcp", post(up_post))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (state, format!("http://{addr}/mcp"))
}

/// A running setup: the IdP, Portcullis (on a port chosen first, so the IdP knows the callback), the upstream.
struct Setup {
    idp: TestIdp,
    s: Server,
    up: Arc<Upstream>,
    /// The config file (in a directory kept alive here).
    config: String,
    _config_dir: tempfile::TempDir,
}

/// Starts everything; `gateway` is extra `[gateway]` keys (after `upstream` and `upstream_token_from`).
async fn setup(gateway: &str) -> Setup {
    setup_with(Some(gateway), SHORT_TTL).await
}

/// [`setup`] with the IdP's access tokens living `ttl` seconds; `None`: no gateway (the built-in MCP server).
async fn setup_with(gateway: Option<&str>, ttl: u64) -> Setup {
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let mut config = IdpConfig {
        access_token_ttl: Some(ttl),
        ..IdpConfig::default()
    };
    config.clients = vec![IdpClient::new(
        "portcullis",
        "portcullis idp secret",
        &format!("{issuer}/idp/corp/callback"),
    )];
    let idp = TestIdp::start(config);
    let (up, up_url) = start_upstream().await;
    let gateway = gateway.map_or_else(String::new, |extra| {
        format!("[gateway]\nupstream = \"{up_url}\"\nupstream_token_from = \"corp\"\n{extra}\n")
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.toml");
    std::fs::write(
        &path,
        format!(
            r#"[[identity_providers]]
name = "corp"
display_name = "Corp SSO"
issuer = "{}"
client_id = "portcullis"
client_secret = "portcullis idp secret"
scopes = ["openid", "email", "profile"]

{gateway}"#,
            idp.issuer()
        ),
    )
    .unwrap();
    let listen = format!("127.0.0.1:{port}");
    let s = start_with(&[
        "--config",
        path.to_str().unwrap(),
        "--listen",
        &listen,
        "--issuer",
        &issuer,
    ]);
    Setup {
        idp,
        s,
        up,
        config: path.display().to_string(),
        _config_dir: dir,
    }
}

/// The `href` of the sign-in page's link to `/idp/corp/start`, resolved.
fn start_link(s: &Server, page: &Page) -> String {
    let at = page
        .body
        .find("/idp/corp/start")
        .unwrap_or_else(|| panic!("no corp start link: {}", page.body));
    let end = at + page.body[at..].find('"').unwrap();
    resolve(s, &html_unescape(&page.body[at..end]))
}

/// Signs carol in through the IdP in `b` for a new public client and exchanges the code: the grant's tokens.
async fn sign_in_through_idp(t: &Setup, b: &reqwest::Client) -> Tokens {
    let s = &t.s;
    let client_id = register_public(s).await;
    let p = pkce();
    let page = get(b, &authorize_url(s, &client_id, &p.challenge, "")).await;
    assert!(
        page.is_login() || page.body.contains("/idp/corp/start"),
        "{}",
        page.body
    );
    let start = get(b, &start_link(s, &page)).await;
    let at_idp = start
        .location()
        .unwrap_or_else(|| panic!("start: {:?} {}", start.status, start.body));
    let callback = t
        .idp
        .login_and_consent(b, at_idp, "carol@example.com")
        .await;
    let back = get(b, &callback).await;
    assert_eq!(
        back.status,
        StatusCode::SEE_OTHER,
        "callback: {}\n{}",
        back.body,
        s.log()
    );
    let mut page = get(b, &resolve(s, back.location().unwrap())).await;
    if page.is_consent() {
        page = submit(b, s, &page, "/consent", &[("decision", "approve")]).await;
    }
    let location = page
        .location()
        .unwrap_or_else(|| panic!("{:?}: {}", page.status, page.body));
    let code = param(location, "code").expect("no code");
    let (status, body) = exchange(s, &client_id, &code, &p.verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    Tokens {
        client_id,
        access: body["access_token"].as_str().unwrap().to_owned(),
        refresh: body["refresh_token"].as_str().unwrap().to_owned(),
    }
}

/// A `tools/list` through the gateway with the Portcullis access token.
async fn call(t: &Setup, token: &str) -> Page {
    mcp_post(&t.s.mcp_here(), Some(token), TOOLS_LIST).await
}

/// Whether the IdP's userinfo accepts `token` as carol's access token.
async fn idp_says_carol(idp: &TestIdp, token: &str) -> bool {
    let resp = http()
        .get(idp.url("/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    if !resp.status().is_success() {
        return false;
    }
    let me: Value = resp.json().await.unwrap();
    me["sub"] == "carol"
}

/// Every byte of the server's SQLite files (database, WAL).
fn database_bytes(s: &Server) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(s.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("portcullis.db") {
            all.extend(std::fs::read(&path).unwrap());
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Makes the stored upstream tokens look `secs` older (the deprovisioning check skips tokens refreshed or
/// stored within the last minute).
async fn age_upstream_tokens(s: &Server, secs: i64) {
    use sqlx::Connection as _;
    let mut db = sqlx::SqliteConnection::connect(&s.db).await.unwrap();
    sqlx::query("UPDATE upstream_tokens SET updated_at = updated_at - ?")
        .bind(secs)
        .execute(&mut db)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_gets_the_users_idp_token_refreshed_once_after_expiry() {
    if !TestIdp::available() {
        return;
    }
    let t = setup("").await;
    let tokens = sign_in_through_idp(&t, &browser()).await;

    let page = call(&t, &tokens.access).await;
    assert_eq!(page.status, StatusCode::OK, "{}\n{}", page.body, t.s.log());
    let first = t.up.last_bearer();
    assert_ne!(first, tokens.access, "never the Portcullis token");
    assert!(
        idp_says_carol(&t.idp, &first).await,
        "the upstream got carol's IdP token"
    );

    // Cached: the same token again, no refresh.
    assert_eq!(call(&t, &tokens.access).await.status, StatusCode::OK);
    assert_eq!(t.up.last_bearer(), first);

    // Past the refresh margin: two concurrent calls, one refresh (a second one would present the rotated refresh
    // token again, and the IdP would revoke the whole grant).
    tokio::time::sleep(Duration::from_secs(SHORT_TTL - 58)).await;
    let (a, b) = tokio::join!(call(&t, &tokens.access), call(&t, &tokens.access));
    assert_eq!(
        (a.status, b.status),
        (StatusCode::OK, StatusCode::OK),
        "{}\n{}",
        a.body,
        t.s.log()
    );
    let seen = t.up.seen.lock().unwrap().clone();
    let (x, y) = (&seen[seen.len() - 2].0, &seen[seen.len() - 1].0);
    assert_eq!(x, y, "both calls carried the one refreshed token");
    let second = t.up.last_bearer();
    assert_ne!(second, first, "refreshed");
    assert!(idp_says_carol(&t.idp, &second).await);
    assert_eq!(t.up.count(), 4);
    // The IdP's refresh answer carries an ID token: checked against carol's subject (OIDC Core §12.2) and accepted.
    let log = t.s.log();
    assert!(!log.contains("refreshed ID token"), "{log}");

    // The refreshed tokens were stored: a Portcullis refresh (deprovisioning check) still works.
    let (status, body) = refresh(&t.s, &tokens.client_id, &tokens.refresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Nothing in the clear on disk: neither access token, nor the Portcullis token.
    let bytes = database_bytes(&t.s);
    for token in [&first, &second] {
        assert!(
            !contains(&bytes, token),
            "an upstream access token is in the database file"
        );
    }
    assert!(!t.s.log().contains(&second), "an upstream token in the log");
    // The sealed payload is JSON with a refresh_token member: it never appears in the clear either.
    let member = b"\"refresh_token\":\"";
    if let Some(at) = bytes.windows(member.len()).position(|w| w == member) {
        let context =
            String::from_utf8_lossy(&bytes[at.saturating_sub(60)..(at + 60).min(bytes.len())]);
        panic!("an upstream token payload in the clear: {context:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_refresh_once_through_the_lease() {
    if !TestIdp::available() {
        return;
    }
    let t = setup("").await;
    let b = start_on(&t.s, &["--config", &t.config, "--issuer", &t.s.issuer]);
    let tokens = sign_in_through_idp(&t, &browser()).await;
    assert_eq!(call(&t, &tokens.access).await.status, StatusCode::OK);
    let first = t.up.last_bearer();
    tokio::time::sleep(Duration::from_secs(SHORT_TTL - 58)).await;
    // Both instances find the token about to expire at once; one takes the lease and refreshes, the other waits for
    // the stored result. (Two refreshes would present one rotated refresh token twice: the IdP would revoke the
    // grant and one call would be refused.)
    let on_b = b.mcp_here();
    let (x, y) = tokio::join!(
        call(&t, &tokens.access),
        mcp_post(&on_b, Some(&tokens.access), TOOLS_LIST)
    );
    assert_eq!(
        (x.status, y.status),
        (StatusCode::OK, StatusCode::OK),
        "{} / {}\nA: {}\nB: {}",
        x.body,
        y.body,
        t.s.log(),
        b.log()
    );
    let seen = t.up.seen.lock().unwrap().clone();
    let (p, q) = (&seen[seen.len() - 2].0, &seen[seen.len() - 1].0);
    assert_eq!(p, q, "both instances sent the one refreshed token");
    assert_ne!(t.up.last_bearer(), first);
    assert!(idp_says_carol(&t.idp, &t.up.last_bearer()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_mode_sends_a_token_for_the_upstream_audience_in_the_named_header() {
    if !TestIdp::available() {
        return;
    }
    let t = setup(
        "upstream_token_mode = \"exchange\"\nupstream_audience = \"https://mcp.vendor.example\"\nupstream_token_header = \"X-Upstream-Token\"",
    )
    .await;
    let tokens = sign_in_through_idp(&t, &browser()).await;
    let page = call(&t, &tokens.access).await;
    assert_eq!(page.status, StatusCode::OK, "{}\n{}", page.body, t.s.log());
    let (auth, named) = t.up.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(auth, None, "no Authorization upstream in header mode");
    let exchanged = named.expect("the exchanged token in X-Upstream-Token");
    assert!(!exchanged.starts_with("Bearer "), "no scheme: {exchanged}");
    let payload = exchanged.split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["aud"], "https://mcp.vendor.example");
    assert_eq!(claims["sub"], "carol");
    // Cached per audience: the same token on the next call.
    assert_eq!(call(&t, &tokens.access).await.status, StatusCode::OK);
    assert_eq!(
        t.up.seen.lock().unwrap().last().unwrap().1.as_deref(),
        Some(exchanged.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_user_at_the_idp_ends_the_grant_at_the_next_refresh() {
    if !TestIdp::available() {
        return;
    }
    let t = setup("").await;
    let tokens = sign_in_through_idp(&t, &browser()).await;
    assert_eq!(call(&t, &tokens.access).await.status, StatusCode::OK);

    t.idp.revoke_user("carol").await;
    age_upstream_tokens(&t.s, 120).await;
    let (status, body) = refresh(&t.s, &tokens.client_id, &tokens.refresh).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("Corp SSO"),
        "{body}"
    );
    // The grant is revoked: the old access token stops working once the revocation is synced.
    assert!(
        refused_within(&t.s, &tokens.access, Duration::from_secs(5)).await,
        "the old access token still works"
    );
    // And the upstream tokens are gone: /authorize with the old session shows the sign-in page again.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_upstream_tokens_the_gateway_challenges_and_authorize_asks_for_the_provider_again()
{
    if !TestIdp::available() {
        return;
    }
    let t = setup("").await;
    let b = browser();
    let tokens = sign_in_through_idp(&t, &b).await;
    t.idp.revoke_user("carol").await;
    // Expired at the IdP and refused there: the gateway's refresh meets invalid_grant.
    tokio::time::sleep(Duration::from_secs(SHORT_TTL - 58)).await;
    let page = call(&t, &tokens.access).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    let challenge = www_authenticate(&page);
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains("Corp SSO"), "{challenge}");
    assert_eq!(t.up.count(), 0, "nothing reached the upstream");
    // The client's refresh fails too (the grant was revoked), so it authorizes again ...
    let (status, body) = refresh(&t.s, &tokens.client_id, &tokens.refresh).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // ... and the browser's Portcullis session is not reused: the sign-in page offers the provider.
    let client_id = register_public(&t.s).await;
    let p = pkce();
    let page = get(&b, &authorize_url(&t.s, &client_id, &p.challenge, "")).await;
    assert!(
        page.body.contains("/idp/corp/start"),
        "{:?} {}",
        page.status,
        page.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_idp_lets_the_refresh_proceed_and_the_gateway_answers_503() {
    if !TestIdp::available() {
        return;
    }
    // IdP access tokens of 2 s: always due for refresh, expired soon after.
    let t = setup_with(Some(""), 2).await;
    let tokens = sign_in_through_idp(&t, &browser()).await;
    assert_eq!(call(&t, &tokens.access).await.status, StatusCode::OK);
    let Setup { idp, s, up, .. } = t;
    drop(idp); // the IdP process is killed: connections are refused
    age_upstream_tokens(&s, 120).await;
    tokio::time::sleep(Duration::from_secs(3)).await; // the upstream access token has expired too
                                                      // Deliberate availability choice: the Portcullis refresh proceeds, with a warning.
    let (status, body) = refresh(&s, &tokens.client_id, &tokens.refresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(s.log().contains("the refresh proceeds"), "{}", s.log());
    // Expired and the IdP unreachable: the gateway answers 503, and nothing is revoked.
    let access = body["access_token"].as_str().unwrap();
    let page = mcp_post(&s.mcp_here(), Some(access), TOOLS_LIST).await;
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.body
    );
    assert!(page.headers.contains_key("retry-after"));
    assert_eq!(up.count(), 1, "nothing more reached the upstream");
    let (status, body) = refresh(
        &s,
        &tokens.client_id,
        body["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the grant is intact: {body}");
}

/// Deprovisioning without a gateway: after the refresh fails, the browser's Portcullis session (from the
/// provider) is not reused: the user must go through the provider again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deprovisioned_users_session_is_not_reused() {
    if !TestIdp::available() {
        return;
    }
    let t = setup_with(None, SHORT_TTL).await;
    let b = browser();
    let tokens = sign_in_through_idp(&t, &b).await;
    assert_eq!(mcp_status(&t.s, &tokens.access).await, StatusCode::OK);
    // Still signed in at Portcullis: a new authorization reuses the session (the consent page, not sign-in; a
    // public loopback client is asked every time, RFC 8252 §8.6).
    let p = pkce();
    let page = get(
        &b,
        &authorize_url(&t.s, &tokens.client_id, &p.challenge, ""),
    )
    .await;
    assert!(page.is_consent(), "{:?} {}", page.status, page.body);
    t.idp.revoke_user("carol").await;
    age_upstream_tokens(&t.s, 120).await;
    let (status, body) = refresh(&t.s, &tokens.client_id, &tokens.refresh).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let page = get(
        &b,
        &authorize_url(&t.s, &tokens.client_id, &p.challenge, ""),
    )
    .await;
    assert!(page.is_login(), "{:?} {}", page.status, page.body);
    assert!(page.body.contains("/idp/corp/start"), "{}", page.body);
}

/// `upstream_token_from` on a `[[gateway.routes]]` entry, for a password user (no token at the provider):
/// `/authorize` for that route's resource does not reuse the session (nor accept the password sign-in) but asks
/// for the provider, while the MCP endpoint (no upstream token) is authorized as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_needs_the_provider_token_a_password_user_lacks() {
    if !TestIdp::available() {
        return;
    }
    let idp = TestIdp::start(IdpConfig::default());
    let (up, up_url) = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.toml");
    std::fs::write(
        &path,
        format!(
            "[[identity_providers]]\nname = \"corp\"\ndisplay_name = \"Corp SSO\"\nissuer = \"{}\"\n\
             client_id = \"portcullis\"\nclient_secret = \"portcullis idp secret\"\n\n\
             [[gateway.routes]]\npath = \"/corp/mcp\"\nupstream = \"{up_url}\"\nupstream_token_from = \"corp\"\n",
            idp.issuer()
        ),
    )
    .unwrap();
    let s = start_with(&["--config", path.to_str().unwrap()]);
    let route = format!("&resource={}", enc(&format!("{}/corp/mcp", s.issuer)));
    let b = browser();
    // alice signs in with her password for the MCP endpoint: as before.
    let client_id = register_public(&s).await;
    let p = pkce();
    let out = authorize_in(
        &b,
        &s,
        &authorize_url(&s, &client_id, &p.challenge, ""),
        "approve",
    )
    .await;
    assert!(out.saw_login);
    assert!(param(&out.location, "code").is_some());
    // For the route her session is not enough: the sign-in page says which account is needed.
    let page = get(&b, &authorize_url(&s, &client_id, &p.challenge, &route)).await;
    assert!(page.is_login(), "{}", page.body);
    assert!(
        page.body.contains("needs your Corp SSO account"),
        "{}",
        page.body
    );
    assert!(page.body.contains("/idp/corp/start"), "{}", page.body);
    // The MCP endpoint still reuses the session.
    let page = get(&b, &authorize_url(&s, &client_id, &p.challenge, "")).await;
    assert!(!page.is_login(), "{}", page.body);
    assert_eq!(up.count(), 0);
}
