//! Gateway mode (`portcullis serve --upstream URL`) against a small upstream MCP server written here: it records
//! every request's headers and can stream server-sent events gated by the test, so the test proves that the
//! first event reaches the client before the upstream sends the last one (no buffering).
//!
//! Checked: 401 before the upstream sees anything; the upstream never sees `Authorization` or a client's
//! `X-Portcullis-*` header and does see the identity headers; sessions pinned to the subject (another user's
//! token gets 404); per-tool scopes answer 403 `insufficient_scope` before the upstream; upstream slow → 504
//! within the timeout; upstream failing or down → 502 with a JSON-RPC body that leaks nothing.

#![allow(clippy::unwrap_used)]

use crate::support::*;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// One request the upstream received.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    method: Method,
    headers: HeaderMap,
    pub(crate) body: String,
}

#[derive(Debug, Default)]
pub(crate) struct Upstream {
    pub(crate) seen: Mutex<Vec<Seen>>,
    sessions: AtomicUsize,
    /// Released by the test once it has read the first event of a stream.
    gate: Notify,
    /// Set just before the upstream writes a stream's last event.
    last_sent: AtomicBool,
    /// Session ids ended with DELETE (answered 404 afterwards, as the transport specification says).
    deleted: Mutex<Vec<String>>,
}

impl Upstream {
    pub(crate) fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn last(&self) -> Seen {
        self.seen.lock().unwrap().last().cloned().unwrap()
    }
}

/// The upstream MCP server: `POST /mcp` (JSON, or SSE for the `stream` tool), `GET /mcp` (SSE), `DELETE /mcp`.
pub(crate) async fn start_upstream() -> (Arc<Upstream>, String) {
    let state = Arc::new(Upstream::default());
    let app = axum::Router::new()
        .route("/mcp", post(up_post).get(up_get).delete(up_delete))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (state, url)
}

fn record(up: &Upstream, method: Method, headers: &HeaderMap, body: &str) {
    up.seen.lock().unwrap().push(Seen {
        method,
        headers: headers.clone(),
        body: body.to_owned(),
    });
}

/// An SSE body: `first`, then (once the test releases the gate) `last`.
fn gated_stream(up: Arc<Upstream>, first: String, last: String) -> Response {
    let steps = futures_util::stream::unfold(0u8, move |step| {
        let up = up.clone();
        let (first, last) = (first.clone(), last.clone());
        async move {
            match step {
                0 => Some((Ok::<_, std::convert::Infallible>(first), 1)),
                1 => {
                    // If the gateway buffered, the test would never see `first` and never open the gate.
                    let opened =
                        tokio::time::timeout(Duration::from_secs(20), up.gate.notified()).await;
                    up.last_sent.store(true, Ordering::SeqCst);
                    let text = if opened.is_ok() {
                        last
                    } else {
                        "event: message\ndata: {\"gate\":\"timeout\"}\n\n".to_owned()
                    };
                    Some((Ok(text), 2))
                }
                _ => None,
            }
        }
    });
    (
        [(CONTENT_TYPE.as_str(), "text/event-stream")],
        Body::from_stream(steps),
    )
        .into_response()
}

async fn up_post(State(up): State<Arc<Upstream>>, headers: HeaderMap, body: String) -> Response {
    record(&up, Method::POST, &headers, &body);
    let session = headers
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    if session.is_some_and(|s| up.deleted.lock().unwrap().contains(&s)) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let msg: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let id = msg["id"].clone();
    let tool = msg["params"]["name"].as_str().unwrap_or("");
    match (msg["method"].as_str().unwrap_or(""), tool) {
        ("initialize", _) => {
            let n = up.sessions.fetch_add(1, Ordering::SeqCst) + 1;
            let result = json!({"jsonrpc": "2.0", "id": id, "result": {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "test-upstream", "version": "0"}}});
            (
                [("mcp-session-id", format!("sess-{n}"))],
                axum::Json(result),
            )
                .into_response()
        }
        ("tools/call", "slow") => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": {}})).into_response()
        }
        ("tools/call", "crash") => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "panic at src/secret_internal.rs:42: database password hunter2",
        )
            .into_response(),
        ("tools/call", "stream") => gated_stream(
            up.clone(),
            format!(
                "event: message\ndata: {}\n\n",
                json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}})
            ),
            format!(
                "event: message\ndata: {}\n\n",
                json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": "done"}]}})
            ),
        ),
        (_, _) if id.is_null() => StatusCode::ACCEPTED.into_response(),
        (method, _) => axum::Json(
            json!({"jsonrpc": "2.0", "id": id, "result": {"method": method, "tool": tool}}),
        )
        .into_response(),
    }
}

async fn up_get(State(up): State<Arc<Upstream>>, headers: HeaderMap) -> Response {
    record(&up, Method::GET, &headers, "");
    gated_stream(
        up.clone(),
        "id: ev-1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/first\"}\n\n".into(),
        "id: ev-2\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/last\"}\n\n".into(),
    )
}

async fn up_delete(State(up): State<Arc<Upstream>>, headers: HeaderMap) -> Response {
    record(&up, Method::DELETE, &headers, "");
    if let Some(s) = headers.get("mcp-session-id") {
        up.deleted
            .lock()
            .unwrap()
            .push(s.to_str().unwrap().to_owned());
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Signs `user` in through the real forms for `client_id` and returns an access token.
pub(crate) async fn token_as(s: &Server, client_id: &str, user: &str, password: &str) -> String {
    let p = pkce();
    let b = browser();
    let page = get(&b, &authorize_url(s, client_id, &p.challenge, "&state=gw")).await;
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
    body["access_token"].as_str().unwrap().to_owned()
}

/// A POST to the gateway with a bearer token, JSON body and extra headers.
pub(crate) async fn call(
    s: &Server,
    token: &str,
    session: Option<&str>,
    body: &Value,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = http()
        .post(s.mcp_here())
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json, text/event-stream")
        .body(body.to_string());
    if let Some(id) = session {
        req = req.header("mcp-session-id", id);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "it", "version": "0"}}})
}

pub(crate) fn tool_call(id: i64, name: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": {}}})
}

/// Opens a session; returns its id.
async fn open_session(s: &Server, token: &str) -> String {
    let r = call(s, token, None, &initialize(), &[]).await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    r.headers()["mcp-session-id"].to_str().unwrap().to_owned()
}

/// Reads `resp` until its text contains `needle` (or 15 s pass); returns the text so far.
async fn read_until(resp: &mut reqwest::Response, text: &mut String, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !text.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("{needle:?} did not arrive; got so far: {text:?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("stream ended before {needle:?}; got: {text:?}"));
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

pub(crate) fn gateway(up: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--upstream", up];
    args.extend_from_slice(extra);
    start_with(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_forwards_identity_never_the_token() {
    let (up, url) = start_upstream().await;
    let s = gateway(&url, &[]);
    let unauth = mcp_post(&s.mcp_here(), None, TOOLS_LIST).await;
    assert_eq!(unauth.status, reqwest::StatusCode::UNAUTHORIZED);
    let challenge = www_authenticate(&unauth);
    assert_eq!(
        auth_param(&challenge, "resource_metadata"),
        Some(s.url("/.well-known/oauth-protected-resource/mcp"))
    );
    let bad = mcp_post(&s.mcp_here(), Some("not-a-token"), TOOLS_LIST).await;
    assert_eq!(bad.status, reqwest::StatusCode::UNAUTHORIZED);
    assert_eq!(
        auth_param(&www_authenticate(&bad), "error").as_deref(),
        Some("invalid_token")
    );
    assert_eq!(up.count(), 0, "the upstream saw an unauthenticated request");

    let client_id = register_public(&s).await;
    let token = token_as(&s, &client_id, USER, PASSWORD).await;
    let sub = jwt_part(&token, 1)["sub"].as_str().unwrap().to_owned();
    let r = call(
        &s,
        &token,
        None,
        &initialize(),
        &[
            ("x-portcullis-subject", "mallory"),
            ("X-Portcullis-Scope", "mcp:admin"),
            ("x-portcullis-anything", "spoofed"),
            ("x-portcullis-username", "mallory"),
            ("X-Portcullis-Email", "mallory@example.com"),
            ("x-portcullis-idp", "evil"),
            ("cookie", "session=secret"),
            ("mcp-protocol-version", "2025-06-18"),
        ],
    )
    .await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    // The client gets the upstream's id sealed to it (docs/gateway.md, "Sessions").
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    assert!(session.starts_with("sess-1."), "{session}");
    let reply: Value = r.json().await.unwrap();
    assert_eq!(reply["result"]["serverInfo"]["name"], "test-upstream");
    let seen = up.last();
    assert_eq!(seen.method, Method::POST);
    assert!(
        seen.headers.get("authorization").is_none(),
        "token passed through: {:?}",
        seen.headers
    );
    assert!(seen.headers.get("cookie").is_none());
    assert!(seen.headers.get("x-portcullis-anything").is_none());
    let one = |name: &str| {
        let all: Vec<_> = seen
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(all.len(), 1, "{name}: {all:?}");
        all[0].clone()
    };
    assert_eq!(one("x-portcullis-subject"), sub);
    assert_ne!(sub, "mallory");
    assert_eq!(one("x-portcullis-client-id"), client_id);
    assert_eq!(one("x-portcullis-scope"), "mcp:tools");
    // The user's name from the token (`preferred_username`); a password user has no email and no identity
    // provider, so the client's own headers of those names are dropped and nothing replaces them.
    assert_eq!(jwt_part(&token, 1)["preferred_username"], USER);
    assert_eq!(one("x-portcullis-username"), USER);
    assert!(seen.headers.get("x-portcullis-email").is_none());
    assert!(seen.headers.get("x-portcullis-idp").is_none());
    assert_eq!(one("mcp-protocol-version"), "2025-06-18");
    assert_eq!(one("content-type"), "application/json");
    assert_eq!(one("accept"), "application/json, text/event-stream");
    assert_eq!(
        serde_json::from_str::<Value>(&seen.body).unwrap(),
        initialize()
    );

    // The session works, then DELETE ends it upstream and here.
    let r = call(&s, &token, Some(&session), &tool_call(2, "echo"), &[]).await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    assert_eq!(up.last().headers["mcp-session-id"], "sess-1");
    let del = http()
        .delete(s.mcp_here())
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), reqwest::StatusCode::NO_CONTENT);
    assert_eq!(up.last().method, Method::DELETE);
    assert_eq!(up.last().headers["mcp-session-id"], "sess-1");
    // The upstream decides whether a session still exists: its 404 reaches the client.
    let r = call(&s, &token, Some(&session), &tool_call(3, "echo"), &[]).await;
    assert_eq!(r.status(), reqwest::StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_streams_events_without_buffering() {
    let (up, url) = start_upstream().await;
    let s = gateway(&url, &[]);
    let client_id = register_public(&s).await;
    let token = token_as(&s, &client_id, USER, PASSWORD).await;
    let session = open_session(&s, &token).await;

    // GET: the server-to-client stream, resumed with Last-Event-ID.
    let mut resp = http()
        .get(s.mcp_here())
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(ACCEPT, "text/event-stream")
        .header("mcp-session-id", &session)
        .header("last-event-id", "ev-0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut text = String::new();
    read_until(&mut resp, &mut text, "notifications/first").await;
    assert!(
        !up.last_sent.load(Ordering::SeqCst),
        "the last event was sent before the first one arrived"
    );
    assert!(!text.contains("notifications/last"));
    up.gate.notify_one();
    read_until(&mut resp, &mut text, "notifications/last").await;
    let seen = up
        .seen
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.method == Method::GET)
        .cloned()
        .unwrap();
    assert_eq!(seen.headers["last-event-id"], "ev-0");
    assert_eq!(seen.headers["accept"], "text/event-stream");
    assert!(seen.headers.get("authorization").is_none());

    // POST answered with an event stream: a progress notification, then the result.
    up.last_sent.store(false, Ordering::SeqCst);
    let mut resp = call(&s, &token, Some(&session), &tool_call(7, "stream"), &[]).await;
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    let mut text = String::new();
    read_until(&mut resp, &mut text, "notifications/progress").await;
    assert!(
        !up.last_sent.load(Ordering::SeqCst),
        "the result was sent before the progress event arrived"
    );
    up.gate.notify_one();
    read_until(&mut resp, &mut text, "\"done\"").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_pins_sessions_to_the_subject() {
    let (up, url) = start_upstream().await;
    let s = gateway(&url, &[]);
    add_user(&s.db, "bob", "bob's long password");
    let client_id = register_public(&s).await;
    let alice = token_as(&s, &client_id, USER, PASSWORD).await;
    let bob = token_as(&s, &client_id, "bob", "bob's long password").await;
    assert_ne!(jwt_part(&alice, 1)["sub"], jwt_part(&bob, 1)["sub"]);
    let session = open_session(&s, &alice).await;
    let before = up.count();

    let r = call(&s, &bob, Some(&session), &tool_call(2, "echo"), &[]).await;
    assert_eq!(r.status(), reqwest::StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert!(body["error"]["code"].is_i64(), "{body}");
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let r = http()
            .request(method.clone(), s.mcp_here())
            .header(AUTHORIZATION, format!("Bearer {bob}"))
            .header("mcp-session-id", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::NOT_FOUND, "{method}");
    }
    let r = call(&s, &bob, Some("sess-made-up"), &tool_call(3, "echo"), &[]).await;
    assert_eq!(r.status(), reqwest::StatusCode::NOT_FOUND);
    assert_eq!(
        up.count(),
        before,
        "the upstream saw a request on another user's session"
    );

    // Alice's session still works, and bob can open his own.
    let r = call(&s, &alice, Some(&session), &tool_call(4, "echo"), &[]).await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let bobs = open_session(&s, &bob).await;
    assert_ne!(bobs, session);
    let r = call(&s, &alice, Some(&bobs), &tool_call(5, "echo"), &[]).await;
    assert_eq!(r.status(), reqwest::StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_tool_scopes_and_upstream_failures() {
    let (up, url) = start_upstream().await;
    let s = gateway(
        &url,
        &[
            "--upstream-timeout-ms",
            "1000",
            "--tool-scope",
            "admin_tool=mcp:admin",
        ],
    );
    let client_id = register_public(&s).await;
    let token = token_as(&s, &client_id, USER, PASSWORD).await;
    let before = up.count();

    // Per-tool scope: 403 insufficient_scope naming the scope, before the upstream sees anything.
    for body in [
        tool_call(2, "admin_tool"),
        json!([tool_call(3, "echo"), tool_call(4, "admin_tool")]),
    ] {
        let r = call(&s, &token, None, &body, &[]).await;
        assert_eq!(r.status(), reqwest::StatusCode::FORBIDDEN);
        let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert_eq!(
            auth_param(&challenge, "error").as_deref(),
            Some("insufficient_scope")
        );
        assert_eq!(
            auth_param(&challenge, "scope").as_deref(),
            Some("mcp:admin")
        );
        assert!(auth_param(&challenge, "resource_metadata").is_some());
    }
    assert_eq!(
        up.count(),
        before,
        "the upstream saw a call the token may not make"
    );
    let r = call(&s, &token, None, &tool_call(5, "echo"), &[]).await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["result"]["tool"], "echo");

    // Slow upstream: 504 within the timeout, JSON-RPC error with the request's id.
    let started = Instant::now();
    let r = call(&s, &token, None, &tool_call(6, "slow"), &[]).await;
    let took = started.elapsed();
    assert_eq!(r.status(), reqwest::StatusCode::GATEWAY_TIMEOUT);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["id"], 6);
    assert!(body["error"]["code"].is_i64(), "{body}");

    // Failing upstream: 502, no upstream internals in the answer.
    let r = call(&s, &token, None, &tool_call(8, "crash"), &[]).await;
    assert_eq!(r.status(), reqwest::StatusCode::BAD_GATEWAY);
    let text = r.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["id"], 8);
    assert!(
        !text.contains("secret") && !text.contains("hunter2") && !text.contains("panic"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_upstream_down_is_502() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", closed.local_addr().unwrap());
    drop(closed);
    let s = gateway(&url, &["--upstream-timeout-ms", "2000"]);
    let client_id = register_public(&s).await;
    let token = token_as(&s, &client_id, USER, PASSWORD).await;
    let started = Instant::now();
    let r = call(&s, &token, None, &initialize(), &[]).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(r.status(), reqwest::StatusCode::BAD_GATEWAY);
    let text = r.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["id"], 1);
    assert!(body["error"]["message"].is_string());
    assert!(
        !text.contains("127.0.0.1") && !text.to_lowercase().contains("refused"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_sigterm_ends_open_event_streams() {
    let (_up, url) = start_upstream().await;
    let mut s = gateway(&url, &[]);
    let client_id = register_public(&s).await;
    let token = token_as(&s, &client_id, USER, PASSWORD).await;
    let session = open_session(&s, &token).await;
    let mut resp = http()
        .get(s.mcp_here())
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(ACCEPT, "text/event-stream")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    read_until(&mut resp, &mut text, "notifications/first").await;
    // The upstream keeps this stream open (its gate is never released); shutdown must not wait for it.
    let status = tokio::task::block_in_place(|| s.terminate(Duration::from_secs(10)));
    assert!(
        status.is_some(),
        "SIGTERM did not stop the gateway with an open event stream"
    );
    let end = tokio::time::timeout(Duration::from_secs(5), resp.chunk()).await;
    assert!(
        matches!(end, Ok(Ok(None)) | Ok(Err(_))),
        "the event stream did not end: {end:?}"
    );
}
