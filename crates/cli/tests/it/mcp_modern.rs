//! The built-in MCP server speaking MCP 2026-07-28 (per-request `_meta`, no `initialize`, no session,
//! `Mcp-Method`/`Mcp-Name` checked against the body, `server/discover`, `resultType` and cache hints) beside
//! the legacy revisions and the seed's bare step 7, on one endpoint of the real binary.

use crate::support::*;
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde_json::{json, Value};

const V: &str = "2026-07-28";

fn envelope() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": V,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "it", "version": "1.0.0"},
    })
}

/// A modern request: `params` with the envelope added.
fn modern(id: u64, method: &str, mut params: Value) -> Value {
    params["_meta"] = envelope();
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// POSTs `body` with the bearer token and `headers`; the status, the headers and the JSON body.
async fn post(
    s: &Server,
    token: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = http()
        .post(s.mcp_here())
        .header(CONTENT_TYPE, "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("Authorization", format!("Bearer {token}"))
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, headers, json)
}

/// The standard headers of a modern request for `method` (and `Mcp-Name` when given).
fn std_headers<'a>(method: &'a str, name: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![("MCP-Protocol-Version", V), ("Mcp-Method", method)];
    if let Some(n) = name {
        h.push(("Mcp-Name", n));
    }
    h
}

#[tokio::test]
async fn modern_requests_are_served_statelessly_beside_legacy_ones() {
    let s = start();
    let t = grant(&s, "").await;
    let a = t.access.as_str();

    // server/discover: no initialize, no session; modern versions, capabilities, identity, cache hints.
    let (st, h, r) = post(
        &s,
        a,
        &std_headers("server/discover", None),
        &modern(1, "server/discover", json!({})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert!(h.get("mcp-session-id").is_none());
    let d = &r["result"];
    assert_eq!(d["resultType"], "complete");
    assert_eq!(d["supportedVersions"], json!([V]));
    assert!(d["capabilities"]["tools"].is_object(), "{d}");
    assert_eq!(
        d["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "portcullis"
    );
    assert_eq!(d["cacheScope"], "public");
    assert!(d["ttlMs"].as_u64().is_some(), "{d}");

    // tools/list: resultType, cache hints, the fixed order; a stray session id is ignored.
    let mut h = std_headers("tools/list", None);
    h.push(("Mcp-Session-Id", "not-a-session"));
    let (st, _, r) = post(&s, a, &h, &modern(2, "tools/list", json!({}))).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["result"]["resultType"], "complete");
    assert_eq!(r["result"]["cacheScope"], "public");
    assert!(r["result"]["ttlMs"].as_u64().is_some());
    let names: Vec<&str> = r["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["whoami", "echo", "server_stats"]);

    // tools/call with Mcp-Name (plain and in the Base64 form).
    let echo = modern(
        3,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "hi"}}),
    );
    for name in ["echo", "=?base64?ZWNobw==?="] {
        let (st, _, r) = post(&s, a, &std_headers("tools/call", Some(name)), &echo).await;
        assert_eq!(st, StatusCode::OK, "{r}");
        assert_eq!(r["id"], 3);
        assert_eq!(r["result"]["resultType"], "complete");
        assert_eq!(r["result"]["content"][0]["text"], "hi");
    }
    // A tool the token's scope does not cover: 403 with the challenge, as for legacy clients.
    let stats = modern(
        4,
        "tools/call",
        json!({"name": "server_stats", "arguments": {}}),
    );
    let (st, h, _) = post(
        &s,
        a,
        &std_headers("tools/call", Some("server_stats")),
        &stats,
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert!(h["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));

    // Methods 2026-07-28 does not have (ping, initialize) or this server does not implement: 404, -32601.
    for method in ["ping", "initialize", "subscriptions/listen"] {
        let (st, _, r) = post(
            &s,
            a,
            &std_headers(method, None),
            &modern(5, method, json!({})),
        )
        .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{method}: {r}");
        assert_eq!(r["error"]["code"], -32601, "{method}");
        assert_eq!(r["id"], 5);
    }
}

#[tokio::test]
async fn header_and_envelope_refusals() {
    let s = start();
    let t = grant(&s, "").await;
    let a = t.access.as_str();
    let echo = modern(
        7,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "hi"}}),
    );
    let list = modern(8, "tools/list", json!({}));
    let refused = |expect: i64| {
        move |(st, _, r): (StatusCode, reqwest::header::HeaderMap, Value)| {
            assert_eq!(st, StatusCode::BAD_REQUEST, "{r}");
            assert_eq!(r["error"]["code"], expect, "{r}");
            r
        }
    };
    // HeaderMismatch (-32020): each standard header missing or disagreeing with the body.
    let mismatch = refused(-32020);
    mismatch(post(&s, a, &std_headers("tools/call", Some("whoami")), &echo).await);
    mismatch(post(&s, a, &std_headers("tools/call", None), &echo).await);
    mismatch(post(&s, a, &std_headers("tools/list", Some("echo")), &echo).await);
    mismatch(post(&s, a, &[("MCP-Protocol-Version", V)], &list).await);
    mismatch(post(&s, a, &[("Mcp-Method", "tools/list")], &list).await);
    let r = mismatch(
        post(
            &s,
            a,
            &[
                ("MCP-Protocol-Version", "2025-11-25"),
                ("Mcp-Method", "tools/list"),
            ],
            &list,
        )
        .await,
    );
    assert_eq!(r["id"], 8);

    // UnsupportedProtocolVersion (-32022): for an envelope, the versions server/discover lists; for a legacy
    // request with an unknown version header, every version (modern first; older ones through initialize).
    let mut future = list.clone();
    future["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let h = [
        ("MCP-Protocol-Version", "2099-01-01"),
        ("Mcp-Method", "tools/list"),
    ];
    let r = refused(-32022)(post(&s, a, &h, &future).await);
    assert_eq!(
        r["error"]["data"],
        json!({"requested": "2099-01-01", "supported": [V]})
    );
    assert_eq!(r["id"], 8);
    let bare = json!({"jsonrpc": "2.0", "method": "tools/list", "id": 1});
    let r = refused(-32022)(post(&s, a, &[("MCP-Protocol-Version", "1900-01-01")], &bare).await);
    assert_eq!(r["error"]["data"]["supported"][0], V);
    assert!(r["error"]["data"]["supported"]
        .as_array()
        .unwrap()
        .contains(&json!("2025-11-25")));

    // Invalid params (-32602): a claimed envelope without capabilities; a modern header without an envelope.
    let mut no_caps = list.clone();
    no_caps["params"]["_meta"]
        .as_object_mut()
        .unwrap()
        .remove("io.modelcontextprotocol/clientCapabilities");
    refused(-32602)(post(&s, a, &std_headers("tools/list", None), &no_caps).await);
    refused(-32602)(post(&s, a, &std_headers("tools/list", None), &bare).await);
    // Invalid request (-32600): a batch holding a modern message.
    refused(-32600)(post(&s, a, &[], &json!([bare, list])).await);
}

#[tokio::test]
async fn legacy_clients_and_the_seed_are_served_as_before() {
    let s = start();
    let t = grant(&s, "").await;
    let a = t.access.as_str();
    // The seed's step 7: only Content-Type and Authorization; no resultType, no cache hints.
    let page = mcp_post(&s.mcp_here(), Some(a), TOOLS_LIST).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let r: Value = serde_json::from_str(&page.body).unwrap();
    assert!(
        r["result"].get("resultType").is_none() && r["result"].get("ttlMs").is_none(),
        "{r}"
    );
    assert_eq!(r["result"]["tools"].as_array().unwrap().len(), 3);

    // initialize: a legacy version and a session; the session works and a modern version is never offered.
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": V, "capabilities": {}, "clientInfo": {"name": "old", "version": "1"}}});
    let (st, h, r) = post(&s, a, &[], &init).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["result"]["protocolVersion"], "2025-11-25");
    let session = h["mcp-session-id"].to_str().unwrap().to_owned();
    let h = [
        ("Mcp-Session-Id", session.as_str()),
        ("MCP-Protocol-Version", "2025-11-25"),
    ];
    let (st, _, r) = post(&s, a, &h, &bare_call()).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert!(r["result"].get("resultType").is_none(), "{r}");
    // initialize with a modern version header is a contradiction: HeaderMismatch.
    let (st, _, r) = post(&s, a, &[("MCP-Protocol-Version", V)], &init).await;
    assert_eq!(
        (st, r["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!(-32020))
    );
}

fn bare_call() -> Value {
    json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "x"}}})
}
