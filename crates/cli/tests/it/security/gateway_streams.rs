//! Event streams per caller at the gateway (issue 19, item 11; SECURITY.md "Gateway streams"): one token held
//! 166 streams, each an upstream connection. With `--gateway-streams-per-caller 3`: the fourth stream of one
//! user and client gets 429 with `Retry-After` and a JSON-RPC body (GET before the upstream is asked, a POST
//! that may stream before the upstream sees it), a refreshed token shares the count, another client is not
//! affected, parallel requests never pass the cap, and closing a stream frees its slot. Against a small
//! upstream written here whose streams stay open until the client goes.

use crate::support::{self, Server};
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::future::join_all;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Requests the upstream received.
#[derive(Debug, Default)]
struct Seen {
    gets: AtomicUsize,
    posts: AtomicUsize,
}

/// An event stream: one event, then open until the client goes.
fn endless_stream() -> Response {
    let first = futures_util::stream::once(async {
        Ok::<_, std::convert::Infallible>(
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/first\"}\n\n",
        )
    });
    let rest = futures_util::stream::pending();
    (
        [(CONTENT_TYPE.as_str(), "text/event-stream")],
        Body::from_stream(futures_util::StreamExt::chain(first, rest)),
    )
        .into_response()
}

async fn up_get(State(seen): State<Arc<Seen>>) -> Response {
    seen.gets.fetch_add(1, Ordering::SeqCst);
    endless_stream()
}

async fn up_post(State(seen): State<Arc<Seen>>, body: String) -> Response {
    seen.posts.fetch_add(1, Ordering::SeqCst);
    let msg: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if msg["params"]["name"] == "stream" {
        return endless_stream();
    }
    axum::Json(json!({"jsonrpc": "2.0", "id": msg["id"], "result": {}})).into_response()
}

async fn start_upstream() -> (Arc<Seen>, String) {
    let seen = Arc::new(Seen::default());
    let app = axum::Router::new()
        .route("/mcp", post(up_post).get(up_get))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (seen, url)
}

/// Opens the GET stream with `token`: the open response (its first event read) on 200, else the status,
/// headers and body.
async fn open_get(
    s: &Server,
    client: &reqwest::Client,
    token: &str,
) -> Result<reqwest::Response, support::Page> {
    let mut resp = client
        .get(s.mcp_here())
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(ACCEPT, "text/event-stream")
        .send()
        .await
        .unwrap();
    if resp.status() != reqwest::StatusCode::OK {
        return Err(support::Page {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        });
    }
    let first = resp.chunk().await.unwrap().unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&first).contains("notifications/first"),
        "{first:?}"
    );
    Ok(resp)
}

/// Asserts the stream cap's refusal: 429, `Retry-After`, a JSON-RPC error body.
fn assert_refused(what: &str, p: &support::Page) {
    assert_eq!(
        p.status,
        reqwest::StatusCode::TOO_MANY_REQUESTS,
        "{what}: {}",
        p.body
    );
    assert!(
        p.headers.get("retry-after").is_some(),
        "{what}: no Retry-After"
    );
    let v: Value = serde_json::from_str(&p.body).unwrap();
    assert_eq!(v["jsonrpc"], "2.0", "{what}: {v}");
    assert_eq!(v["error"]["code"], -32000, "{what}: {v}");
}

/// Rule "Gateway streams" (issue 19 item 11): at most `gateway_streams_per_caller` event streams per user and
/// client; the next one is refused with 429 until one closes; streams outlive the header read timeout.
#[tokio::test]
async fn streams_per_caller_are_capped_and_released_on_close() {
    let (seen, upstream) = start_upstream().await;
    let s = support::start_with(&[
        "--upstream",
        &upstream,
        "--gateway-streams-per-caller",
        "3",
        "--header-read-timeout-ms",
        "1000",
    ]);
    let a = support::grant(&s, "&state=a").await;
    let client = support::http();
    let mut open = Vec::new();
    for i in 0..3 {
        let stream = open_get(&s, &client, &a.access).await;
        open.push(stream.unwrap_or_else(|p| panic!("stream {i}: {p:?}")));
    }
    assert_eq!(seen.gets.load(Ordering::SeqCst), 3);
    // Longer than the header read timeout: the streams stay open (and counted).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let fourth = open_get(&s, &client, &a.access).await.unwrap_err();
    assert_refused("a fourth GET stream", &fourth);
    assert_eq!(
        seen.gets.load(Ordering::SeqCst),
        3,
        "the upstream was asked for it"
    );
    let call =
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "stream"}});
    let post = support::mcp_post(&s.mcp_here(), Some(&a.access), &call.to_string()).await;
    assert_refused("a POST that may stream", &post);
    assert_eq!(
        seen.posts.load(Ordering::SeqCst),
        0,
        "the upstream saw the POST"
    );
    // A refreshed token of the same grant is the same caller.
    let (status, body) = support::refresh(&s, &a.client_id, &a.refresh).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let refreshed = body["access_token"].as_str().unwrap();
    assert_refused(
        "a refreshed token",
        &open_get(&s, &client, refreshed).await.unwrap_err(),
    );

    // Another client of the same user: its own count, which parallel requests cannot pass.
    let b = support::grant(&s, "&state=b").await;
    let tries = join_all((0..8).map(|_| open_get(&s, &client, &b.access))).await;
    let (ok, refused): (Vec<_>, Vec<_>) = tries.into_iter().partition(Result::is_ok);
    assert_eq!(ok.len(), 3, "parallel streams of one caller: {refused:?}");
    for r in &refused {
        assert_refused("a parallel stream beyond the cap", r.as_ref().unwrap_err());
    }

    // Closing one of a's streams frees its slot (the gateway notices the client went).
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match open_get(&s, &client, &a.access).await {
            Ok(stream) => {
                open.push(stream);
                break;
            }
            Err(p) => {
                assert_refused("before the slot is freed", &p);
                assert!(Instant::now() < deadline, "the slot was never freed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
