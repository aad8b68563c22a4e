//! Gateway routes (`[[gateway.routes]]`), session ids that hold across instances, and the graceful drain, against
//! small upstream MCP servers written here.
//!
//! - Routes: each path is its own protected resource (RFC 9728 document, 401 challenge, audience, scopes); a
//!   token for one route is refused at another and at the MCP endpoint; the granted scope is limited to what the
//!   route offers; per-route tool scopes; bad route configurations stop start-up with a clear message; the
//!   `portcullis` client discovers a route from its challenge, gets a token for it and steps up there.
//! - Sessions: two `portcullis serve` on one database in front of one upstream; a session opened through one is
//!   continued through the other by the same user and refused (404) to another user or with a forged id.
//! - Drain: SIGTERM lets an in-flight request finish, refuses new connections, and ends a never-ending stream
//!   after `--drain-timeout-ms`.

#![allow(clippy::unwrap_used)]

use crate::support::*;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde_json::{json, Value};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    /// `Mcp-Session-Id`.
    session: Option<String>,
    /// `X-Portcullis-Subject`.
    subject: Option<String>,
}

/// One upstream MCP server: answers with its name, records the session ids and identities it saw.
#[derive(Debug, Default)]
struct Upstream {
    name: String,
    seen: Mutex<Vec<Seen>>,
    sessions: AtomicUsize,
}

impl Upstream {
    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn last(&self) -> Seen {
        self.seen.lock().unwrap().last().unwrap().clone()
    }

    fn last_session(&self) -> Option<String> {
        self.last().session
    }
}

async fn start_upstream(name: &str) -> (Arc<Upstream>, String) {
    let state = Arc::new(Upstream {
        name: name.to_owned(),
        ..Default::default()
    });
    let app = axum::Router::new()
        .route("/mcp", post(up_post))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (state, url)
}

async fn up_post(State(up): State<Arc<Upstream>>, headers: HeaderMap, body: String) -> Response {
    let header = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_owned());
    let msg: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let method = msg["method"].as_str().unwrap_or("").to_owned();
    up.seen.lock().unwrap().push(Seen {
        session: header("mcp-session-id"),
        subject: header("x-portcullis-subject"),
    });
    let id = msg["id"].clone();
    let tool = msg["params"]["name"].as_str().unwrap_or("");
    match (method.as_str(), tool) {
        ("initialize", _) => {
            let n = up.sessions.fetch_add(1, Ordering::SeqCst) + 1;
            (
                [("mcp-session-id", format!("{}-sess.{n}", up.name))],
                axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": {"serverInfo": {"name": up.name}}})),
            )
                .into_response()
        }
        ("tools/call", "slow") => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": {"slow": "done"}}))
                .into_response()
        }
        ("tools/call", "big") => {
            let text = "x".repeat(4096);
            axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": {"text": text}}))
                .into_response()
        }
        ("tools/call", "hang") => {
            // One event, then nothing, ever: only the drain bound ends this response.
            let first = futures_util::stream::once(async {
                Ok::<_, std::convert::Infallible>(
                    "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/first\"}\n\n",
                )
            });
            let body = futures_util::StreamExt::chain(first, futures_util::stream::pending());
            (
                [(CONTENT_TYPE.as_str(), "text/event-stream")],
                Body::from_stream(body),
            )
                .into_response()
        }
        _ if id.is_null() => StatusCode::ACCEPTED.into_response(),
        _ => axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": {
            "upstream": up.name, "tool": tool,
            "content": [{"type": "text", "text": format!("{}:{tool}", up.name)}]
        }}))
        .into_response(),
    }
}

/// Signs `user` in for `client_id` with `extra` authorization parameters; returns the token response.
async fn token_for(s: &Server, client_id: &str, user: &str, password: &str, extra: &str) -> Value {
    let p = pkce();
    let b = browser();
    let page = get(&b, &authorize_url(s, client_id, &p.challenge, extra)).await;
    assert!(page.is_login(), "{}", page.body);
    let after = submit(
        &b,
        s,
        &page,
        "/login",
        &[("username", user), ("password", password)],
    )
    .await;
    assert_eq!(
        after.status,
        reqwest::StatusCode::SEE_OTHER,
        "{}",
        after.body
    );
    let page = get(&b, &resolve(s, after.location().unwrap())).await;
    assert!(page.is_consent(), "{}", page.body);
    let after = submit(&b, s, &page, "/consent", &[("decision", "approve")]).await;
    let code = param(after.location().unwrap(), "code").unwrap();
    let (status, body) = exchange(s, client_id, &code, &p.verifier).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    body
}

/// POSTs `body` to `url` with an optional token and session id.
async fn call(
    url: &str,
    token: Option<&str>,
    session: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut req = http()
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json, text/event-stream")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.header(AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(id) = session {
        req = req.header("mcp-session-id", id);
    }
    req.send().await.unwrap()
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "it", "version": "0"}}})
}

fn tool_call(name: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": {}}})
}

fn challenge_of(r: &reqwest::Response) -> String {
    r.headers()["www-authenticate"].to_str().unwrap().to_owned()
}

const CATALOGUE: &str = r#"
[[scopes]]
name = "mcp:tools"
description = "Use the built-in tools"
default = true

[[scopes]]
name = "github:read"
description = "Read issues"

[[scopes]]
name = "github:write"
description = "Create issues"

[[scopes]]
name = "files:read"
description = "Read files"
"#;

/// Writes a config file into a new directory (kept alive by the returned guard).
fn config_file(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.toml");
    std::fs::write(&path, text).unwrap();
    let path = path.display().to_string();
    (dir, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_are_separate_protected_resources() {
    let (github, github_url) = start_upstream("github").await;
    let (files, files_url) = start_upstream("files").await;
    let (_dir, config) = config_file(&format!(
        r#"{CATALOGUE}
[[gateway.routes]]
path = "/github/mcp"
upstream = "{github_url}"
scopes = ["github:read", "github:write"]
default_scopes = ["github:read"]
[gateway.routes.tool_scopes]
create_issue = "github:write"

[[gateway.routes]]
path = "/files/mcp"
upstream = "{files_url}"
scopes = ["files:read"]
max_response_bytes = 2048
"#
    ));
    let s = start_with(&["--config", &config]);
    let github_mcp = s.url("/github/mcp");
    let files_mcp = s.url("/files/mcp");
    let resource = |path: &str| format!("{}{path}", s.issuer);

    // Each route's own RFC 9728 document (§3.1 path insertion), its own scopes.
    let doc: Value = http()
        .get(s.url("/.well-known/oauth-protected-resource/github/mcp"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["resource"], resource("/github/mcp"));
    assert_eq!(
        doc["scopes_supported"],
        json!(["github:read", "github:write"])
    );
    assert_eq!(doc["authorization_servers"], json!([s.issuer]));
    let doc: Value = http()
        .get(s.url("/.well-known/oauth-protected-resource/files/mcp"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["resource"], resource("/files/mcp"));
    assert_eq!(doc["scopes_supported"], json!(["files:read"]));
    // The MCP endpoint (built-in server) keeps its own document and the whole catalogue.
    let doc: Value = http()
        .get(s.url("/.well-known/oauth-protected-resource/mcp"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["resource"], s.mcp);

    // Each route's own challenge: its document, its default scope. The upstream sees nothing.
    let r = call(&github_mcp, None, None, &initialize()).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let c = challenge_of(&r);
    assert_eq!(
        auth_param(&c, "resource_metadata"),
        Some(s.url("/.well-known/oauth-protected-resource/github/mcp"))
    );
    assert_eq!(auth_param(&c, "scope").as_deref(), Some("github:read"));
    let r = call(&files_mcp, Some("not-a-token"), None, &initialize()).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let c = challenge_of(&r);
    assert_eq!(auth_param(&c, "error").as_deref(), Some("invalid_token"));
    assert_eq!(auth_param(&c, "scope").as_deref(), Some("files:read"));
    assert_eq!(
        auth_param(&c, "resource_metadata"),
        Some(s.url("/.well-known/oauth-protected-resource/files/mcp"))
    );
    assert_eq!(github.count() + files.count(), 0);

    // A token for the github route: the scope is what that resource offers, whatever else was asked.
    let client_id = register_public(&s).await;
    let extra = format!(
        "&scope={}&resource={}",
        enc("github:read github:write mcp:tools files:read"),
        enc(&resource("/github/mcp"))
    );
    let body = token_for(&s, &client_id, USER, PASSWORD, &extra).await;
    assert_eq!(body["scope"], "github:read github:write");
    let gh_token = body["access_token"].as_str().unwrap().to_owned();
    let claims = jwt_part(&gh_token, 1);
    assert_eq!(claims["aud"], resource("/github/mcp"));
    assert_eq!(claims["scope"], "github:read github:write");

    let r = call(&github_mcp, Some(&gh_token), None, &initialize()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    assert!(session.starts_with("github-sess.1."), "{session}");
    assert!(
        session.bytes().all(|b| (0x21..=0x7e).contains(&b)),
        "{session}"
    );
    assert_eq!(
        r.json::<Value>().await.unwrap()["result"]["serverInfo"]["name"],
        "github"
    );
    let r = call(
        &github_mcp,
        Some(&gh_token),
        Some(&session),
        &tool_call("create_issue"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap()["result"]["upstream"],
        "github"
    );
    assert_eq!(
        github.last_session().as_deref(),
        Some("github-sess.1"),
        "the upstream sees its own id"
    );

    // The github token (now in the verified-token cache) is refused at the other route and at /mcp.
    let before = files.count();
    for url in [&files_mcp, &s.mcp_here()] {
        let r = call(url, Some(&gh_token), None, &initialize()).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{url}");
        assert_eq!(
            auth_param(&challenge_of(&r), "error").as_deref(),
            Some("invalid_token")
        );
    }
    assert_eq!(files.count(), before);

    // A token for /mcp (the default resource), used there first, is refused at the routes.
    let mcp_token = token_for(&s, &register_public(&s).await, USER, PASSWORD, "").await;
    let mcp_token = mcp_token["access_token"].as_str().unwrap().to_owned();
    assert_eq!(mcp_status(&s, &mcp_token).await, StatusCode::OK);
    for url in [&github_mcp, &files_mcp] {
        let r = call(url, Some(&mcp_token), None, &initialize()).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{url}");
    }

    // A files token: its own scope; the github session id is not valid on another route.
    let extra = format!("&resource={}", enc(&resource("/files/mcp")));
    let body = token_for(&s, &register_public(&s).await, USER, PASSWORD, &extra).await;
    assert_eq!(body["scope"], "files:read", "the route's default");
    let files_token = body["access_token"].as_str().unwrap().to_owned();
    let before = files.count();
    let r = call(
        &files_mcp,
        Some(&files_token),
        Some(&session),
        &tool_call("read"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(files.count(), before);
    let r = call(&files_mcp, Some(&files_token), None, &tool_call("read")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap()["result"]["upstream"],
        "files"
    );

    // Size limits: a request body over 64 KiB is 413 before the upstream; an answer over the route's
    // max_response_bytes is 502.
    let before = files.count();
    let huge = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "read", "arguments": {"pad": "y".repeat(70 * 1024)}}});
    let r = call(&files_mcp, Some(&files_token), None, &huge).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(files.count(), before);
    let r = call(&files_mcp, Some(&files_token), None, &tool_call("big")).await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(r.json::<Value>().await.unwrap()["jsonrpc"], "2.0");
    let r = call(&github_mcp, Some(&gh_token), None, &tool_call("big")).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the github route keeps the 16 MiB default"
    );

    // Per-route tool scope: a github token without github:write gets 403 naming it, at that route's document.
    let extra = format!(
        "&scope={}&resource={}",
        enc("github:read"),
        enc(&resource("/github/mcp"))
    );
    let body = token_for(&s, &register_public(&s).await, USER, PASSWORD, &extra).await;
    let read_only = body["access_token"].as_str().unwrap().to_owned();
    let before = github.count();
    let r = call(
        &github_mcp,
        Some(&read_only),
        None,
        &tool_call("create_issue"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let c = challenge_of(&r);
    assert_eq!(
        auth_param(&c, "error").as_deref(),
        Some("insufficient_scope")
    );
    assert_eq!(auth_param(&c, "scope").as_deref(), Some("github:write"));
    assert_eq!(
        auth_param(&c, "resource_metadata"),
        Some(s.url("/.well-known/oauth-protected-resource/github/mcp"))
    );
    assert_eq!(github.count(), before);
}

/// Runs `serve` with `config`; it must exit with an error whose message contains `needle`.
fn refused_at_start(config: &str, needle: &str) {
    let (dir, path) = config_file(config);
    let db = format!("sqlite://{}", dir.path().join("p.db").display());
    let mut child = Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            &db,
            "--config",
            &path,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve started with a bad route configuration ({needle})");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{needle}: {stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
}

#[test]
fn bad_route_configurations_stop_start_up() {
    let route = |path: &str, upstream: &str, scopes: &str| {
        format!("[[gateway.routes]]\npath = \"{path}\"\nupstream = \"{upstream}\"\nscopes = [{scopes}]\n")
    };
    let up = "http://127.0.0.1:9/mcp";
    let ok = route("/github/mcp", up, "\"github:read\"");
    refused_at_start(
        &format!("{CATALOGUE}{ok}{ok}"),
        "gateway route path \"/github/mcp\" is listed twice",
    );
    refused_at_start(
        &format!("{CATALOGUE}{}", route("/token", up, "\"github:read\"")),
        "gateway route path \"/token\" is already an endpoint of this server",
    );
    refused_at_start(
        &format!("{CATALOGUE}{}", route("/mcp", up, "\"github:read\"")),
        "gateway route path \"/mcp\" is already an endpoint",
    );
    refused_at_start(
        &format!(
            "{CATALOGUE}{}",
            route("/.well-known/x", up, "\"github:read\"")
        ),
        "gateway route path \"/.well-known/x\" must start with /",
    );
    refused_at_start(
        &format!(
            "{CATALOGUE}{}",
            route("/gh", "ftp://127.0.0.1/mcp", "\"github:read\"")
        ),
        "gateway route /gh: upstream \"ftp://127.0.0.1/mcp\" must be an http or https URL",
    );
    refused_at_start(
        &format!("{CATALOGUE}{}", route("/gh", up, "\"github:admin\"")),
        "gateway route /gh: scope \"github:admin\" is not in the scope catalogue",
    );
    refused_at_start(
        &format!(
            "{CATALOGUE}{}[gateway.routes.tool_scopes]\ndelete_repo = \"github:write\"\n",
            route("/gh", up, "\"github:read\"")
        ),
        "gateway route /gh: tool \"delete_repo\" needs scope \"github:write\", which this route does not offer",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_hold_across_instances_and_stay_pinned() {
    let (up, url) = start_upstream("shared").await;
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let issuer = format!("http://127.0.0.1:{port}");
    let a = start_with(&["--listen", &listen, "--issuer", &issuer, "--upstream", &url]);
    let b = start_on(&a, &["--issuer", &issuer, "--upstream", &url]);
    add_user(&a.db, "bob", "bob's long password");
    let client_id = register_public(&a).await;
    let alice = token_for(&a, &client_id, USER, PASSWORD, "").await;
    let alice = alice["access_token"].as_str().unwrap().to_owned();
    let bob = token_for(&a, &client_id, "bob", "bob's long password", "").await;
    let bob = bob["access_token"].as_str().unwrap().to_owned();

    // Opened through A …
    let r = call(&a.mcp_here(), Some(&alice), None, &initialize()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    assert!(session.starts_with("shared-sess.1."), "{session}");
    // … continued through B by the same user: the upstream gets its own id.
    let r = call(
        &b.mcp_here(),
        Some(&alice),
        Some(&session),
        &tool_call("echo"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", b.log());
    assert_eq!(
        r.json::<Value>().await.unwrap()["result"]["upstream"],
        "shared"
    );
    assert_eq!(up.last_session().as_deref(), Some("shared-sess.1"));
    let alice_sub = jwt_part(&alice, 1)["sub"].as_str().unwrap().to_owned();
    assert_eq!(up.last().subject, Some(alice_sub));

    // Another user, a forged or tampered id, or the bare upstream id: 404 with a JSON-RPC error, upstream untouched.
    let before = up.count();
    let tampered = session.replacen("shared-sess.1", "shared-sess.2", 1);
    let mut forged = session.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    for (who, id) in [
        (&bob, session.as_str()),
        (&alice, tampered.as_str()),
        (&alice, forged.as_str()),
        (&alice, "shared-sess.1"),
    ] {
        for s in [&a, &b] {
            let r = call(&s.mcp_here(), Some(who), Some(id), &tool_call("echo")).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{id}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["jsonrpc"], "2.0");
            assert_eq!(body["error"]["code"], -32001, "{body}");
        }
    }
    assert_eq!(up.count(), before, "the upstream saw a refused session");

    // Bob's own session, opened through B, works through A for him only.
    let r = call(&b.mcp_here(), Some(&bob), None, &initialize()).await;
    let bobs = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let r = call(&a.mcp_here(), Some(&bob), Some(&bobs), &tool_call("echo")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = call(&a.mcp_here(), Some(&alice), Some(&bobs), &tool_call("echo")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_within_the_bound() {
    let (_up, url) = start_upstream("drain").await;

    // An in-flight request finishes; new connections are refused meanwhile.
    let mut s = start_with(&["--upstream", &url, "--drain-timeout-ms", "10000"]);
    let t = grant(&s, "").await.access;
    let mcp = s.mcp_here();
    let (token, target) = (t.clone(), mcp.clone());
    let slow =
        tokio::spawn(async move { call(&target, Some(&token), None, &tool_call("slow")).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let term = tokio::task::spawn_blocking(move || {
        let status = s.terminate(Duration::from_secs(15));
        (status, s)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fresh = reqwest::Client::new().post(&mcp).send().await;
    assert!(
        fresh.is_err(),
        "a new connection was accepted while draining: {fresh:?}"
    );
    let r = slow.await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["result"]["slow"], "done");
    let (status, s) = term.await.unwrap();
    assert!(
        status.is_some_and(|st| st.success()),
        "{:?} {}",
        status,
        s.log()
    );

    // A response that never ends is closed once the bound has passed.
    let mut s = start_with(&["--upstream", &url, "--drain-timeout-ms", "1000"]);
    let t = grant(&s, "").await.access;
    let mut resp = call(&s.mcp_here(), Some(&t), None, &tool_call("hang")).await;
    let first = tokio::time::timeout(Duration::from_secs(10), resp.chunk()).await;
    assert!(matches!(first, Ok(Ok(Some(_)))), "{first:?}");
    let started = Instant::now();
    let status = tokio::task::block_in_place(|| s.terminate(Duration::from_secs(10)));
    let took = started.elapsed();
    assert!(
        status.is_some(),
        "the server did not exit with a stream open"
    );
    assert!(
        took >= Duration::from_millis(900),
        "exited before the drain bound: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    let end = tokio::time::timeout(Duration::from_secs(5), resp.chunk()).await;
    assert!(
        matches!(end, Ok(Ok(None)) | Ok(Err(_))),
        "the stream did not end: {end:?}"
    );
}

/// A client command (`portcullis login|call|token …`) with the test browser signing in as [`USER`].
fn client(s: &Server, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("PORTCULLIS_HOME", s.home.path())
        .env("BROWSER", auto_browser())
        .env("PORTCULLIS_TEST_USER", USER)
        .env("PORTCULLIS_TEST_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "failed: stdout={out}\nstderr={err}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_discovers_a_route_as_its_own_resource() {
    let (_github, github_url) = start_upstream("github").await;
    let (_dir, config) = config_file(&format!(
        r#"{CATALOGUE}
[[gateway.routes]]
path = "/github/mcp"
upstream = "{github_url}"
scopes = ["github:read", "github:write"]
default_scopes = ["github:read"]
[gateway.routes.tool_scopes]
create_issue = "github:write"
"#
    ));
    let s = start_with(&["--config", &config]);
    let route = s.url("/github/mcp");
    let resource = format!("{}/github/mcp", s.issuer);
    tokio::task::block_in_place(|| {
        // Discovery from the route's own challenge and document: a token for that resource, its default scope.
        ok(&client(&s, &["login", &route]));
        let token = ok(&client(&s, &["token", &route])).trim().to_owned();
        let claims = jwt_part(&token, 1);
        assert_eq!(claims["aud"], resource);
        assert_eq!(claims["scope"], "github:read");
        let out = ok(&client(&s, &["call", &route, "list_issues"]));
        assert!(out.contains("github:list_issues"), "{out}");
        // create_issue needs github:write: 403, step-up through the browser, then the call succeeds.
        let out = ok(&client(&s, &["call", &route, "create_issue"]));
        assert!(out.contains("github:create_issue"), "{out}");
        let token = ok(&client(&s, &["token", &route])).trim().to_owned();
        let claims = jwt_part(&token, 1);
        assert_eq!(claims["aud"], resource);
        assert_eq!(claims["scope"], "github:read github:write");
    });
}
