//! The gateway between an MCP 2026-07-28 client and an MCP 2026-07-28 upstream (issue 14, gateway part): a small
//! upstream written here checks the standard headers as the revision requires ("Transports" §Server Validation)
//! and refuses versions it does not speak with `UnsupportedProtocolVersion` (-32022), so a header the gateway
//! dropped or a version it rewrote shows up as a refusal.
//!
//! Checked: `server/discover` and calls reach the upstream with `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`
//! and `Mcp-Param-*` as sent and no session; the upstream's -32022 reaches the client byte for byte; headers that
//! disagree with the body are refused with -32020 before the upstream; `input_required` results and their
//! retries pass untouched.

#![allow(clippy::unwrap_used)]

use crate::gateway::{gateway, token_as};
use crate::support::*;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

const MODERN: &str = "2026-07-28";

/// One request the modern upstream received.
#[derive(Debug, Clone)]
struct Seen {
    headers: HeaderMap,
    body: String,
}

#[derive(Debug, Default)]
struct ModernUpstream {
    seen: Mutex<Vec<Seen>>,
}

impl ModernUpstream {
    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn last(&self) -> Seen {
        self.seen.lock().unwrap().last().cloned().unwrap()
    }
}

async fn start_modern_upstream() -> (Arc<ModernUpstream>, String) {
    let state = Arc::new(ModernUpstream::default());
    let app = axum::Router::new()
        .route("/mcp", routing::post(modern_post))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (state, url)
}

fn refusal(id: &Value, code: i64, message: &str, data: Value) -> Response {
    let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message, "data": data}});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

fn ok(id: &Value, result: Value) -> Response {
    axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
}

/// A 2026-07-28-only server: every request carries the envelope and the standard headers, which must agree.
async fn modern_post(
    State(up): State<Arc<ModernUpstream>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    up.seen.lock().unwrap().push(Seen {
        headers: headers.clone(),
        body: body.clone(),
    });
    let msg: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let id = msg["id"].clone();
    let method = msg["method"].as_str().unwrap_or("");
    let header = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_owned());
    let version = msg["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"].as_str();
    if version != Some(MODERN) {
        let requested = version.unwrap_or("none");
        return refusal(
            &id,
            -32022,
            "Unsupported protocol version",
            json!({"supported": [MODERN], "requested": requested}),
        );
    }
    if header("mcp-protocol-version").as_deref() != Some(MODERN)
        || header("mcp-method").as_deref() != Some(method)
    {
        return refusal(&id, -32020, "Header mismatch", Value::Null);
    }
    let tool = msg["params"]["name"].as_str().unwrap_or("");
    if method == "tools/call" && header("mcp-name").as_deref() != Some(tool) {
        return refusal(&id, -32020, "Header mismatch", Value::Null);
    }
    match (method, tool) {
        ("server/discover", _) => ok(
            &id,
            json!({"supportedVersions": [MODERN], "capabilities": {"tools": {}}, "serverInfo": {"name": "modern-upstream", "version": "0"}, "resultType": "complete"}),
        ),
        ("tools/list", _) => ok(
            &id,
            json!({"tools": [{"name": "echo", "inputSchema": {"type": "object"}}, {"name": "admin_tool", "inputSchema": {"type": "object"}}], "resultType": "complete", "ttlMs": 60000, "cacheScope": "public"}),
        ),
        ("subscriptions/listen", _) => listen_stream(),
        ("tools/call", "ask") if msg["params"].get("inputResponses").is_none() => ok(
            &id,
            json!({"resultType": "input_required", "inputRequests": {"confirm": {"method": "elicitation/create", "params": {"message": "Sure?", "requestedSchema": {"type": "object", "properties": {}}}}}, "requestState": "opaque-state-1"}),
        ),
        ("tools/call", _) => ok(
            &id,
            json!({"content": [{"type": "text", "text": format!("{tool} region={}", header("mcp-param-region").unwrap_or_default())}], "resultType": "complete"}),
        ),
        _ => ok(&id, json!({"resultType": "complete"})),
    }
}

/// The `subscriptions/listen` answer: one event, then open until the client goes.
fn listen_stream() -> Response {
    let first = futures_util::stream::once(async {
        Ok::<_, std::convert::Infallible>(
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/subscriptions/acknowledged\"}\n\n",
        )
    });
    let rest = futures_util::stream::pending();
    (
        [(CONTENT_TYPE.as_str(), "text/event-stream")],
        axum::body::Body::from_stream(futures_util::StreamExt::chain(first, rest)),
    )
        .into_response()
}

/// A 2026-07-28 request: `_meta` envelope in the body.
fn modern(id: i64, method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "it", "version": "0"},
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// A POST of `body` with the bearer token and exactly the given extra headers.
async fn post(s: &Server, token: &str, body: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut req = http()
        .post(s.mcp_here())
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json, text/event-stream")
        .body(body.to_owned());
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// The standard headers of a modern `method` request (and `Mcp-Name` when given).
fn standard<'a>(method: &'a str, name: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![("mcp-protocol-version", MODERN), ("mcp-method", method)];
    h.extend(name.map(|n| ("mcp-name", n)));
    h
}

async fn setup(extra: &[&str]) -> (Arc<ModernUpstream>, Server, String) {
    let (up, url) = start_modern_upstream().await;
    let s = gateway(&url, extra);
    let client_id = register_public(&s).await;
    let token = token_as(&s, &client_id, USER, PASSWORD).await;
    (up, s, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_client_and_upstream_negotiate_2026_07_28_through_the_gateway() {
    let (up, s, token) = setup(&["--tool-scope", "admin_tool=mcp:admin"]).await;
    let discover = modern(1, "server/discover", json!({})).to_string();
    let r = post(&s, &token, &discover, &standard("server/discover", None)).await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    assert!(r.headers().get("mcp-session-id").is_none());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["result"]["supportedVersions"], json!([MODERN]), "{v}");
    let seen = up.last();
    assert_eq!(seen.body, discover, "forwarded byte for byte");
    assert_eq!(seen.headers["mcp-protocol-version"], MODERN);
    assert_eq!(seen.headers["mcp-method"], "server/discover");
    assert!(seen.headers.get("mcp-session-id").is_none());
    assert!(seen.headers.get("authorization").is_none());

    // A call with its custom header (`x-mcp-header`) reaches the upstream with every standard header.
    let call = modern(
        2,
        "tools/call",
        json!({"name": "echo", "arguments": {"region": "eu"}}),
    );
    let mut headers = standard("tools/call", Some("echo"));
    headers.push(("Mcp-Param-Region", "eu"));
    let r = post(&s, &token, &call.to_string(), &headers).await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["result"]["content"][0]["text"], "echo region=eu", "{v}");
    let seen = up.last();
    assert_eq!(seen.headers["mcp-name"], "echo");
    assert_eq!(seen.headers["mcp-param-region"], "eu");
}

/// `--hide-unauthorized-tools` on a 2026-07-28 list: the scoped tool is gone and the list is marked
/// `cacheScope: "private"` (it differs per user), the upstream's other cache hints kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_tools_make_a_modern_list_private() {
    let (_up, s, token) = setup(&[
        "--tool-scope",
        "admin_tool=mcp:admin",
        "--hide-unauthorized-tools",
    ])
    .await;
    let list = modern(1, "tools/list", json!({})).to_string();
    let r = post(&s, &token, &list, &standard("tools/list", None)).await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let result = &v["result"];
    assert_eq!(result["tools"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(result["tools"][0]["name"], "echo");
    assert_eq!(result["cacheScope"], "private");
    assert_eq!(result["ttlMs"], 60000);
    assert_eq!(result["resultType"], "complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstreams_unsupported_protocol_version_reaches_the_client_unchanged() {
    let (up, s, token) = setup(&[]).await;
    let mut future = modern(1, "server/discover", json!({}));
    future["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let headers = [
        ("mcp-protocol-version", "2099-01-01"),
        ("mcp-method", "server/discover"),
    ];
    let r = post(&s, &token, &future.to_string(), &headers).await;
    assert_eq!(r.status(), reqwest::StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32022, "message": "Unsupported protocol version", "data": {"supported": [MODERN], "requested": "2099-01-01"}}})
    );
    assert_eq!(up.count(), 1, "the upstream decided, not the gateway");
    assert_eq!(up.last().headers["mcp-protocol-version"], "2099-01-01");
}

/// What is refused, its body and its headers.
type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_that_disagree_with_the_body_never_reach_the_upstream() {
    let (up, s, token) = setup(&["--tool-scope", "admin_tool=mcp:admin"]).await;
    let admin = modern(
        3,
        "tools/call",
        json!({"name": "admin_tool", "arguments": {}}),
    )
    .to_string();
    let echo = modern(3, "tools/call", json!({"name": "echo", "arguments": {}})).to_string();
    let batch = format!("[{echo}]");
    let cases: Vec<Case<'_>> = vec![
        (
            "name header names an allowed tool",
            &admin,
            standard("tools/call", Some("echo")),
        ),
        (
            "name header names a scoped tool",
            &echo,
            standard("tools/call", Some("admin_tool")),
        ),
        (
            "base64 name header",
            &admin,
            standard("tools/call", Some("=?base64?ZWNobw==?=")),
        ),
        (
            "method header disagrees",
            &admin,
            standard("tools/list", None),
        ),
        (
            "version header disagrees",
            &echo,
            vec![
                ("mcp-protocol-version", "2025-11-25"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "echo"),
            ],
        ),
        (
            "method header on a batch",
            &batch,
            standard("tools/call", None),
        ),
    ];
    for (what, body, headers) in &cases {
        let r = post(&s, &token, body, headers).await;
        assert_eq!(r.status(), reqwest::StatusCode::BAD_REQUEST, "{what}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], -32020, "{what}: {v}");
    }
    // The same header twice (a receiver could read either).
    let r = http()
        .post(s.mcp_here())
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "echo")
        .header("mcp-name", "admin_tool")
        .body(echo.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32020, "{v}");
    assert_eq!(up.count(), 0, "a mismatched request was forwarded");

    // Agreeing headers for a scoped tool: the scope check answers 403 as before.
    let r = post(
        &s,
        &token,
        &admin,
        &standard("tools/call", Some("admin_tool")),
    )
    .await;
    assert_eq!(r.status(), reqwest::StatusCode::FORBIDDEN);
    assert_eq!(up.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_required_and_its_retry_pass_untouched() {
    let (up, s, token) = setup(&[]).await;
    let first = modern(4, "tools/call", json!({"name": "ask", "arguments": {}})).to_string();
    let r = post(&s, &token, &first, &standard("tools/call", Some("ask"))).await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["result"]["resultType"], "input_required", "{v}");
    assert_eq!(v["result"]["requestState"], "opaque-state-1");
    assert_eq!(
        v["result"]["inputRequests"]["confirm"]["method"],
        "elicitation/create"
    );
    let retry = modern(
        5,
        "tools/call",
        json!({"name": "ask", "arguments": {}, "inputResponses": {"confirm": {"action": "accept", "content": {}}}, "requestState": "opaque-state-1"}),
    )
    .to_string();
    let r = post(&s, &token, &retry, &standard("tools/call", Some("ask"))).await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["result"]["resultType"], "complete", "{v}");
    assert_eq!(
        up.last().body,
        retry,
        "the retry reached the upstream byte for byte"
    );
}

/// `subscriptions/listen` streams count against `gateway_streams_per_caller` like `GET` streams: the one beyond
/// the cap gets 429 before the upstream is asked, and closing a stream frees its slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_streams_are_capped_like_get_streams() {
    let (up, s, token) = setup(&["--gateway-streams-per-caller", "2"]).await;
    let listen = modern(
        9,
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
    )
    .to_string();
    let headers = standard("subscriptions/listen", None);
    let open = || post(&s, &token, &listen, &headers);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut r = open().await;
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        let first = r.chunk().await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&first).contains("acknowledged"));
        held.push(r);
    }
    let before = up.count();
    let r = open().await;
    assert_eq!(r.status(), reqwest::StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(up.count(), before, "the upstream was asked beyond the cap");
    drop(held.pop());
    // The slot is released once the gateway notices the client went (its next write or the connection close).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = open().await;
        if r.status() == reqwest::StatusCode::OK {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A `subscriptions/listen` stream, like the `GET` stream, ends at shutdown: SIGTERM does not wait out the
/// drain timeout (30 s) for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_open_listen_streams() {
    let (_up, mut s, token) = setup(&[]).await;
    let listen = modern(9, "subscriptions/listen", json!({"notifications": {}})).to_string();
    let mut r = post(&s, &token, &listen, &standard("subscriptions/listen", None)).await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let first = r.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("acknowledged"));
    let status = tokio::task::block_in_place(|| s.terminate(std::time::Duration::from_secs(10)));
    assert!(status.is_some(), "SIGTERM waited for an open listen stream");
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), r.chunk()).await;
    assert!(
        matches!(end, Ok(Ok(None)) | Ok(Err(_))),
        "the listen stream did not end: {end:?}"
    );
}
