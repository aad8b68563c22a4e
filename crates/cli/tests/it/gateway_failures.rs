//! Gateway mode in front of an upstream that misbehaves in every way `docs/gateway.md` ("Failures") lists. The
//! upstream here is raw TCP, so it can send exactly the bytes each case needs (a stalled body, a reset, a
//! redirect). Each case must get its documented status within the timeout, with a JSON-RPC error body carrying
//! the request's id and nothing of the upstream's (no address, header, body text); other 4xx pass through; an
//! event stream that goes silent is ended after `--upstream-stream-idle-timeout-ms`.

#![allow(clippy::unwrap_used)]

use crate::gateway::{call, gateway, token_as, tool_call};
use crate::support::*;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Leaks to look for in what the client gets: every one of them is in some upstream answer below.
const UPSTREAM_SECRETS: &[&str] = &["upstream-secret", "evil.example", "Basic realm", "hunter2"];

/// Reads one HTTP/1.1 request (head and Content-Length body) and returns the tool name it calls.
async fn read_request(sock: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body: Value = serde_json::from_slice(&buf[head_end..head_end + len]).ok()?;
    Some(body["params"]["name"].as_str().unwrap_or("").to_owned())
}

fn response(status: &str, headers: &[&str], body: &str) -> String {
    let mut r = format!(
        "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r.push_str(body);
    r
}

/// One connection: the answer the called tool names.
async fn misbehave(mut sock: TcpStream) {
    let Some(tool) = read_request(&mut sock).await else {
        return;
    };
    let json = "application/json";
    let answer = match tool.as_str() {
        "unauthorized" => response(
            "401 Unauthorized",
            &["www-authenticate: Basic realm=\"upstream-secret\""],
            "upstream-secret: bad credentials",
        ),
        "forbidden" => response("403 Forbidden", &[], "upstream-secret: go away"),
        "proxy_auth" => response(
            "407 Proxy Authentication Required",
            &["proxy-authenticate: Basic realm=\"upstream-secret\""],
            "",
        ),
        "redirect" => response(
            "302 Found",
            &["location: http://evil.example/steal"],
            "moved to evil.example",
        ),
        "html" => response(
            "200 OK",
            &["content-type: text/html"],
            "<html>upstream-secret</html>",
        ),
        "bad_session" => response(
            "200 OK",
            &[
                &format!("content-type: {json}"),
                &format!("mcp-session-id: {}", "s".repeat(600)),
            ],
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
        ),
        "not_found" => response("404 Not Found", &[&format!("content-type: {json}")], "{}"),
        "stall_body" => {
            // A head promising 100 bytes, 10 of them, then nothing for longer than the gateway waits.
            let head =
                format!("HTTP/1.1 200 OK\r\ncontent-type: {json}\r\ncontent-length: 100\r\n\r\n");
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(br#"{"jsonrpc""#).await;
            tokio::time::sleep(Duration::from_secs(10)).await;
            return;
        }
        "reset" => {
            // Half a response head, then a TCP reset.
            let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-ty").await;
            // A zero linger makes the drop send RST at once (the deprecation is about a non-zero linger
            // blocking the thread on drop).
            #[allow(deprecated)]
            let _ = sock.set_linger(Some(Duration::ZERO));
            return;
        }
        "silent_stream" => {
            // An event stream that sends one event and then nothing (a hung upstream).
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n";
            let _ = sock.write_all(head.as_bytes()).await;
            let event = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n";
            let _ = sock.write_all(event.as_bytes()).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
            return;
        }
        _ => response(
            "200 OK",
            &[&format!("content-type: {json}")],
            r#"{"jsonrpc":"2.0","id":1,"result":{"ok":true}}"#,
        ),
    };
    let _ = sock.write_all(answer.as_bytes()).await;
    let _ = sock.shutdown().await;
}

async fn start_misbehaving_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(misbehave(sock));
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_upstream_failure_gets_its_documented_status() {
    let url = start_misbehaving_upstream().await;
    let s = gateway(
        &url,
        &[
            "--upstream-timeout-ms",
            "1000",
            "--upstream-stream-idle-timeout-ms",
            "1500",
        ],
    );
    let client_id = register_public(&s).await;
    let token = token_as(&s, &client_id, USER, PASSWORD).await;

    // The upstream works: the test's own plumbing is right.
    let r = call(&s, &token, None, &tool_call(1, "fine"), &[]).await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["result"]["ok"], true);

    let cases = [
        ("unauthorized", 502),
        ("forbidden", 502),
        ("proxy_auth", 502),
        ("redirect", 502),
        ("html", 502),
        ("bad_session", 502),
        ("reset", 502),
        ("stall_body", 504),
    ];
    for (id, (tool, status)) in (10..).zip(cases) {
        let started = Instant::now();
        let r = call(&s, &token, None, &tool_call(id, tool), &[]).await;
        let took = started.elapsed();
        assert_eq!(r.status().as_u16(), status, "{tool}");
        assert!(took < Duration::from_secs(5), "{tool} took {took:?}");
        if status == 504 {
            assert!(
                took >= Duration::from_millis(900),
                "{tool} gave up early: {took:?}"
            );
        }
        for h in [
            "location",
            "www-authenticate",
            "proxy-authenticate",
            "mcp-session-id",
        ] {
            assert!(
                r.headers().get(h).is_none(),
                "{tool}: the upstream's {h} reached the client"
            );
        }
        let text = r.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{tool}: {text}"));
        assert_eq!(body["jsonrpc"], "2.0", "{tool}: {text}");
        assert_eq!(body["id"], id, "{tool}: {text}");
        assert_eq!(body["error"]["code"], -32000, "{tool}: {text}");
        for secret in UPSTREAM_SECRETS.iter().chain([&"127.0.0.1"]) {
            assert!(!text.contains(secret), "{tool} leaked {secret:?}: {text}");
        }
    }

    // An event stream that goes silent is ended after the idle limit: the client is not held forever.
    let started = Instant::now();
    let mut r = call(&s, &token, None, &tool_call(20, "silent_stream"), &[]).await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let mut text = String::new();
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = r.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    let took = started.elapsed();
    assert!(end.is_ok(), "the silent stream was not ended: {text:?}");
    assert!(text.contains("notifications/progress"), "{text:?}");
    assert!(took >= Duration::from_millis(1400), "ended early: {took:?}");

    // Other 4xx answers pass through as they are.
    let r = call(&s, &token, None, &tool_call(30, "not_found"), &[]).await;
    assert_eq!(r.status(), reqwest::StatusCode::NOT_FOUND);
}
