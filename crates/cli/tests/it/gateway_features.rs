//! The gateway's optional features against an upstream written here:
//!
//! - `--upstream-identity-jwt`: the upstream verifies `X-Portcullis-Identity` itself, against the JWKS it fetches
//!   from the running Portcullis (the `jwks_uri` of the issuer's metadata), with `p256`, not Portcullis's code; a
//!   client's own header of that name never arrives; the assertion is refused as an access token.
//! - `--hide-unauthorized-tools`: `tools/list` answers lose the tools whose `--tool-scope` the token lacks, for
//!   JSON and for event-stream answers (only the matching response rewritten, other events unchanged and not
//!   held back); 504/502 on a slow or failing upstream still hold with the rewrite on.

#![allow(clippy::unwrap_used)]

use crate::support::*;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

const IDENTITY: &str = "x-portcullis-identity";

/// What the upstream concluded about one request's identity header.
#[derive(Debug, Clone)]
enum Identity {
    /// No header.
    Absent,
    /// More than one header, or one that does not verify.
    Refused(String),
    /// Verified: the raw assertion, its header and its claims.
    Verified {
        token: String,
        header: Value,
        claims: Value,
    },
}

#[derive(Debug, Default)]
struct Upstream {
    /// Where to fetch the JWKS (set once the gateway is up).
    jwks_uri: OnceLock<String>,
    /// The identity of each request, in order.
    seen: Mutex<Vec<Identity>>,
    /// Released by the test once it has read the first event of a stream.
    gate: Notify,
    /// Set just before the upstream writes the `tools/list` response event.
    answered: AtomicBool,
}

impl Upstream {
    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn last(&self) -> Identity {
        self.seen.lock().unwrap().last().cloned().unwrap()
    }
}

async fn start_upstream() -> (Arc<Upstream>, String) {
    let state = Arc::new(Upstream::default());
    let app = axum::Router::new()
        .route("/mcp", post(up_post))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (state, url)
}

/// What an upstream author does: verify the ES256 assertion with the key its `kid` names in the issuer's JWKS.
async fn verify_identity(up: &Upstream, headers: &HeaderMap) -> Identity {
    use p256::ecdsa::signature::Verifier;
    let all: Vec<_> = headers.get_all(IDENTITY).iter().collect();
    let token = match all.as_slice() {
        [] => return Identity::Absent,
        [one] => one.to_str().unwrap().to_owned(),
        more => return Identity::Refused(format!("{} identity headers", more.len())),
    };
    let Some(jwks_uri) = up.jwks_uri.get() else {
        return Identity::Refused("no JWKS yet".into());
    };
    let jwks: Value = http()
        .get(jwks_uri)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Identity::Refused(format!("not a JWS: {token}"));
    }
    let decode = |p: &str| URL_SAFE_NO_PAD.decode(p).ok();
    let header: Value = match decode(parts[0]).and_then(|b| serde_json::from_slice(&b).ok()) {
        Some(h) => h,
        None => return Identity::Refused(format!("bad header: {token}")),
    };
    let Some(jwk) = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
    else {
        return Identity::Refused(format!("kid {} not in the JWKS", header["kid"]));
    };
    let mut sec1 = vec![4u8];
    sec1.extend(decode(jwk["x"].as_str().unwrap()).unwrap());
    sec1.extend(decode(jwk["y"].as_str().unwrap()).unwrap());
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
    let Some(sig) = decode(parts[2]).and_then(|s| p256::ecdsa::Signature::from_slice(&s).ok())
    else {
        return Identity::Refused("bad signature encoding".into());
    };
    let input = format!("{}.{}", parts[0], parts[1]);
    if key.verify(input.as_bytes(), &sig).is_err() {
        return Identity::Refused("signature does not verify".into());
    }
    let claims: Value = serde_json::from_slice(&decode(parts[1]).unwrap()).unwrap();
    Identity::Verified {
        token,
        header,
        claims,
    }
}

fn tools_result(id: &Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": {"tools": [
        {"name": "echo", "inputSchema": {"type": "object"}},
        {"name": "admin_tool", "inputSchema": {"type": "object"}},
        {"name": "other", "inputSchema": {"type": "object"}}
    ]}})
}

fn event(msg: &Value) -> String {
    format!("event: message\ndata: {msg}\n\n")
}

/// `tools/list` with `params.cursor` "sse" answers as an event stream: a progress notification, a response to
/// another id that carries a tool list too, then (after the test opens the gate) the real response.
fn sse_list(up: Arc<Upstream>, id: Value) -> Response {
    let steps = futures_util::stream::unfold(0u8, move |step| {
        let (up, id) = (up.clone(), id.clone());
        async move {
            let text = match step {
                0 => event(
                    &json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}}),
                ),
                1 => event(&tools_result(&json!("not-the-request"))),
                2 => {
                    let opened =
                        tokio::time::timeout(Duration::from_secs(20), up.gate.notified()).await;
                    up.answered.store(true, Ordering::SeqCst);
                    if opened.is_ok() {
                        format!(
                            "id: e3\r\nevent: message\r\ndata: {}\r\n\r\n",
                            tools_result(&id)
                        )
                    } else {
                        event(&json!({"gate": "timeout"}))
                    }
                }
                3 => ": after the response\n\n".to_owned(),
                _ => return None,
            };
            Some((Ok::<_, std::convert::Infallible>(text), step + 1))
        }
    });
    (
        [(CONTENT_TYPE.as_str(), "text/event-stream")],
        Body::from_stream(steps),
    )
        .into_response()
}

async fn up_post(State(up): State<Arc<Upstream>>, headers: HeaderMap, body: String) -> Response {
    let identity = verify_identity(&up, &headers).await;
    up.seen.lock().unwrap().push(identity);
    let msg: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let id = msg["id"].clone();
    match (
        msg["method"].as_str().unwrap_or(""),
        msg["params"]["cursor"].as_str().unwrap_or(""),
    ) {
        ("tools/list", "sse") => sse_list(up.clone(), id),
        ("tools/list", "slow") => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            axum::Json(tools_result(&id)).into_response()
        }
        ("tools/list", "crash") => {
            (StatusCode::INTERNAL_SERVER_ERROR, "stack trace: hunter2").into_response()
        }
        ("tools/list", _) => axum::Json(tools_result(&id)).into_response(),
        (method, _) => {
            axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": {"method": method}}))
                .into_response()
        }
    }
}

async fn post_mcp(
    s: &Server,
    token: &str,
    body: &Value,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = http()
        .post(s.mcp_here())
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json, text/event-stream")
        .body(body.to_string());
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn list(id: i64, cursor: Option<&str>) -> Value {
    match cursor {
        Some(c) => {
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/list", "params": {"cursor": c}})
        }
        None => json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}),
    }
}

fn names(msg: &Value) -> Vec<String> {
    msg["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {msg}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Reads `resp` until its text contains `needle` (or 15 s pass).
async fn read_until(resp: &mut reqwest::Response, text: &mut String, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !text.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("{needle:?} did not arrive; got: {text:?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("stream ended before {needle:?}; got: {text:?}"));
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_identity_jwt_verifies_with_the_jwks() {
    let (up, url) = start_upstream().await;
    let s = start_with(&["--upstream", &url, "--upstream-identity-jwt"]);
    let meta: Value = http()
        .get(s.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwks_uri = meta["jwks_uri"].as_str().unwrap().to_owned();
    up.jwks_uri.set(jwks_uri).unwrap();
    let t = grant(&s, "").await;
    let sub = jwt_part(&t.access, 1)["sub"].as_str().unwrap().to_owned();

    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}});
    let r = post_mcp(&s, &t.access, &init, &[(IDENTITY, "forged.by.client")]).await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let (token, header, claims) = match up.last() {
        Identity::Verified {
            token,
            header,
            claims,
        } => (token, header, claims),
        Identity::Refused(why) => panic!("the upstream refused the identity: {why}"),
        Identity::Absent => panic!("the upstream received no identity header"),
    };
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "portcullis-identity+jwt");
    assert_eq!(claims["iss"], s.issuer.as_str());
    assert_eq!(claims["aud"], url.as_str());
    assert_eq!(claims["sub"], sub.as_str());
    assert_eq!(claims["client_id"], t.client_id.as_str());
    assert_eq!(claims["scope"], "mcp:tools");
    // The user's name as the access token gives it; a password user has no email and no identity provider.
    assert_eq!(claims["preferred_username"], USER);
    assert!(
        claims.get("email").is_none() && claims.get("idp").is_none(),
        "{claims}"
    );
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 60);
    assert!((iat - unix_now()).abs() <= 10, "iat {iat}");
    assert!(!claims["jti"].as_str().unwrap().is_empty());

    // Cached: the next request of the same caller carries the same assertion.
    let r = post_mcp(&s, &t.access, &list(2, None), &[]).await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    match up.last() {
        Identity::Verified { token: again, .. } => assert_eq!(again, token),
        other => panic!("{other:?}"),
    }

    // RFC 8725 §3.11: the assertion is no access token, at the gateway or anywhere.
    let before = up.count();
    let r = post_mcp(&s, &token, &list(3, None), &[]).await;
    assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert_eq!(
        auth_param(&challenge, "error").as_deref(),
        Some("invalid_token")
    );
    assert_eq!(
        up.count(),
        before,
        "the upstream saw a request authenticated by an assertion"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_hides_tools_the_token_cannot_call() {
    let (up, url) = start_upstream().await;
    let s = start_with(&[
        "--upstream",
        &url,
        "--tool-scope",
        "admin_tool=mcp:admin",
        "--hide-unauthorized-tools",
        "--upstream-timeout-ms",
        "1000",
    ]);
    let t = grant(&s, "").await;

    // JSON answer.
    let r = post_mcp(&s, &t.access, &list(1, None), &[(IDENTITY, "forged")]).await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    assert_eq!(names(&r.json::<Value>().await.unwrap()), ["echo", "other"]);
    assert!(
        matches!(up.last(), Identity::Absent),
        "an identity header arrived without --upstream-identity-jwt: {:?}",
        up.last()
    );

    // Event-stream answer: events before the response arrive while the upstream still holds it back; only the
    // response to this request's id is rewritten.
    let mut resp = post_mcp(&s, &t.access, &list(2, Some("sse")), &[]).await;
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut text = String::new();
    read_until(&mut resp, &mut text, "not-the-request").await;
    assert!(
        !up.answered.load(Ordering::SeqCst),
        "the response was sent before the earlier events arrived"
    );
    up.gate.notify_one();
    read_until(&mut resp, &mut text, "after the response").await;
    let events: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(events.len(), 3, "{text}");
    assert_eq!(events[0]["method"], "notifications/progress");
    assert_eq!(
        names(&events[1]),
        ["echo", "admin_tool", "other"],
        "another id"
    );
    assert_eq!(events[2]["id"], 2);
    assert_eq!(names(&events[2]), ["echo", "other"]);
    assert!(text.contains("id: e3\n"), "the event id is kept: {text}");

    // A token with the scope sees every tool.
    let admin = grant(&s, "&scope=mcp:tools%20mcp:admin").await;
    let r = post_mcp(&s, &admin.access, &list(3, None), &[]).await;
    assert_eq!(
        names(&r.json::<Value>().await.unwrap()),
        ["echo", "admin_tool", "other"]
    );

    // Failures still answer 504 within the timeout and 502 without upstream details.
    let started = Instant::now();
    let r = post_mcp(&s, &t.access, &list(4, Some("slow")), &[]).await;
    assert_eq!(r.status(), reqwest::StatusCode::GATEWAY_TIMEOUT);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.json::<Value>().await.unwrap()["id"], 4);
    let r = post_mcp(&s, &t.access, &list(5, Some("crash")), &[]).await;
    assert_eq!(r.status(), reqwest::StatusCode::BAD_GATEWAY);
    let text = r.text().await.unwrap();
    assert!(!text.contains("hunter2"), "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["id"], 5);
}
