//! The gateway's JSON-RPC inspection (issue 19, items 10 and 11): the upstream only ever sees a body the gateway
//! checked, byte for byte. Disguised methods, tool names that are not strings or imitate a scoped one, nested or
//! empty batches, duplicate or look-alike members: 400 with a JSON-RPC error, and the upstream never receives them
//! (JSON-RPC 2.0 §4–§6; Unicode TR36 for the look-alikes). Ids above `u64` reach the upstream as sent.

use crate::gateway::{call, gateway, start_upstream, token_as, tool_call};
use crate::support::*;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value;

/// A POST of `body` exactly as given.
async fn post_raw(s: &Server, token: &str, body: &str) -> reqwest::Response {
    http()
        .post(s.mcp_here())
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json, text/event-stream")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

/// Each shape that slipped past the per-tool scope check (exact string matching) is refused before the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_refuses_json_rpc_it_did_not_check() {
    let (up, url) = start_upstream().await;
    let s = gateway(&url, &["--tool-scope", "admin_tool=mcp:admin"]);
    let client_id = register_public(&s).await;
    let token = token_as(&s, &client_id, USER, PASSWORD).await;

    // The plumbing works: an allowed call reaches the upstream.
    let r = call(&s, &token, None, &tool_call(1, "echo"), &[]).await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let before = up.count();

    let call_with = |method: &str, params: &str| {
        format!(r#"{{"jsonrpc":"2.0","id":2,"method":"{method}","params":{params}}}"#)
    };
    let admin = r#"{"name":"admin_tool","arguments":{}}"#;
    let bypasses = [
        ("method in another case", call_with("Tools/Call", admin)),
        ("method with a trailing space", call_with("tools/call ", admin)),
        ("method with other punctuation", call_with("tools.call", admin)),
        ("full-width method", call_with("ｔｏｏｌｓ/call", admin)),
        ("name as an array", call_with("tools/call", r#"{"name":["admin_tool"]}"#)),
        ("name as an object", call_with("tools/call", r#"{"name":{"0":"admin_tool"}}"#)),
        ("no name", call_with("tools/call", r#"{"arguments":{}}"#)),
        ("positional params", call_with("tools/call", r#"["admin_tool"]"#)),
        ("full-width tool name", call_with("tools/call", r#"{"name":"ａｄｍｉｎ_tool"}"#)),
        ("tool name in another case", call_with("tools/call", r#"{"name":"Admin_Tool"}"#)),
        ("tool name with a zero-width space", call_with("tools/call", "{\"name\":\"admin\u{200b}_tool\"}")),
        ("tool name with a trailing space", call_with("tools/call", r#"{"name":"admin_tool "}"#)),
        ("duplicate name", call_with("tools/call", r#"{"name":"echo","name":"admin_tool"}"#)),
        ("look-alike name member", call_with("tools/call", r#"{"name":"echo","Name":"admin_tool"}"#)),
        (
            "duplicate method",
            r#"{"jsonrpc":"2.0","id":2,"method":"ping","method":"tools/call","params":{"name":"admin_tool"}}"#.to_owned(),
        ),
        (
            "look-alike method member",
            r#"{"jsonrpc":"2.0","id":2,"method":"ping","Method":"tools/call","params":{"name":"admin_tool"}}"#.to_owned(),
        ),
        ("nested batch", format!("[[{}]]", call_with("tools/call", admin))),
        ("empty batch", "[]".to_owned()),
        ("batch of a string", r#"["tools/call"]"#.to_owned()),
        ("no jsonrpc member", r#"{"id":2,"method":"tools/call","params":{"name":"admin_tool"}}"#.to_owned()),
        ("method not a string", r#"{"jsonrpc":"2.0","id":2,"method":["tools/call"]}"#.to_owned()),
        ("not JSON", "tools/call admin_tool".to_owned()),
    ];
    for (what, body) in &bypasses {
        let r = post_raw(&s, &token, body).await;
        assert_eq!(
            r.status(),
            reqwest::StatusCode::BAD_REQUEST,
            "{what}: {body}"
        );
        let text = r.text().await.unwrap();
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: {text}"));
        assert_eq!(v["jsonrpc"], "2.0", "{what}: {text}");
        let code = v["error"]["code"].as_i64();
        assert!(matches!(code, Some(-32600 | -32700)), "{what}: {text}");
        crate::security::assert_no_leak(what, &text);
    }
    assert_eq!(
        up.count(),
        before,
        "the upstream received a body the gateway did not check: {:?}",
        up.seen.lock().unwrap().last().map(|s| s.body.clone())
    );
}

/// Ids above `u64` (and every other byte) reach the upstream as sent when per-tool scopes are on: the body is
/// checked, not re-serialized (JSON-RPC 2.0 §4: the response must carry the same id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_forwards_big_ids_byte_for_byte() {
    let (up, url) = start_upstream().await;
    let s = gateway(&url, &["--tool-scope", "admin_tool=mcp:admin"]);
    let client_id = register_public(&s).await;
    let token = token_as(&s, &client_id, USER, PASSWORD).await;
    let bodies = [
        r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"tools/call","params":{"name":"echo","arguments":{"x":1.10}}}"#,
        r#"[{"jsonrpc":"2.0","id":18446744073709551616,"method":"tools/list"}, {"jsonrpc":"2.0","method":"notifications/initialized"}]"#,
    ];
    for body in bodies {
        let r = post_raw(&s, &token, body).await;
        assert!(r.status().is_success(), "{}: {body}", r.status());
        assert_eq!(up.seen.lock().unwrap().last().unwrap().body, body);
    }
}
