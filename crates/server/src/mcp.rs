//! The built-in MCP server over Streamable HTTP (MCP 2025-03-26 onwards, "Transports"), JSON-RPC 2.0.
//!
//! It answers the seed's bare request (`tools/list` with no `initialize` first, `Content-Type:
//! application/json`, no `Accept` beyond `*/*`) with a JSON response, and serves spec-following clients
//! (`Accept: application/json, text/event-stream`, `Mcp-Session-Id`, `MCP-Protocol-Version`). Responses are JSON
//! unless the client accepts only `text/event-stream`, then a one-event SSE stream.
//!
//! Sessions are stateless: the session id is a random value bound by hash to the caller's subject and client,
//! so any instance can check it and a session opened by one user is refused with another user's token.
//! There is no server-initiated stream, so `GET` answers 405 (allowed by the transport spec).

use crate::guard;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;
use portcullis_guard::{Refusal, VerifiedToken};
use portcullis_proto::{b64, Scope};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::{Arc, LazyLock};

/// Protocol versions this server speaks, newest first.
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The session header.
pub const SESSION_HEADER: &str = "mcp-session-id";
/// The protocol version header.
pub const VERSION_HEADER: &str = "mcp-protocol-version";

struct Tool {
    name: &'static str,
    description: &'static str,
    /// The scope needed when the configured catalogue does not name this tool.
    scope: &'static str,
    schema: fn() -> Value,
}

const TOOLS: &[Tool] = &[
    Tool {
        name: "whoami",
        description: "Who is calling: the authenticated subject and, when known, their user name, verified email and identity provider; the client, the granted scopes and when the token expires.",
        scope: "mcp:tools",
        schema: || json!({"type": "object", "properties": {}, "additionalProperties": false}),
    },
    Tool {
        name: "echo",
        description: "Returns the message it is given.",
        scope: "mcp:tools",
        schema: || json!({"type": "object", "properties": {"message": {"type": "string", "description": "Text to echo back"}}, "required": ["message"], "additionalProperties": false}),
    },
    Tool {
        name: "server_stats",
        description: "Counts of registered clients and users (administrative; needs the mcp:admin scope).",
        scope: "mcp:admin",
        schema: || json!({"type": "object", "properties": {}, "additionalProperties": false}),
    },
];

/// The `tools/list` result, serialized once: the tool list is fixed at compile time, so every call sends the
/// same bytes (issue 7: no per-request building of the schemas).
static TOOLS_LIST: LazyLock<String> = LazyLock::new(|| {
    json!({"tools": TOOLS.iter().map(|t| json!({
        "name": t.name,
        "description": t.description,
        "inputSchema": (t.schema)(),
    })).collect::<Vec<_>>()})
    .to_string()
});

/// A JSON-RPC success response around an already serialized `result`.
fn rpc_result(id: &Value, result: &str) -> String {
    // `Value`'s Display is its compact JSON serialization; an id is a string or an integer here.
    let id = id.to_string();
    let mut out = String::with_capacity(40 + id.len() + result.len());
    out.push_str(r#"{"jsonrpc":"2.0","id":"#);
    out.push_str(&id);
    out.push_str(r#","result":"#);
    out.push_str(result);
    out.push('}');
    out
}

fn rpc_error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

fn http_rpc_error(status: StatusCode, code: i64, message: &str) -> Response {
    (status, axum::Json(rpc_error(Value::Null, code, message))).into_response()
}

fn session_mac(p: &VerifiedToken, nonce: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"portcullis mcp session v1\0");
    h.update(p.claims.sub.as_bytes());
    h.update([0]);
    h.update(p.claims.client_id.as_bytes());
    h.update([0]);
    h.update(nonce.as_bytes());
    b64::encode(&h.finalize()[..16])
}

fn new_session_id(s: &AppState, p: &VerifiedToken) -> String {
    let mut nonce = [0u8; 16];
    s.authz.core().rng().fill(&mut nonce);
    let nonce = b64::encode(nonce);
    let mac = session_mac(p, &nonce);
    format!("{nonce}.{mac}")
}

fn session_belongs_to(id: &str, p: &VerifiedToken) -> bool {
    id.split_once('.').is_some_and(|(nonce, mac)| {
        nonce.len() == 22 && portcullis_authz::csrf::equal(&session_mac(p, nonce), mac)
    })
}

/// Whether the client wants an SSE body: it accepts `text/event-stream` but not JSON.
fn wants_sse(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let accepts = |m: &str| {
        accept.split(',').any(|part| {
            part.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(m))
        })
    };
    accepts("text/event-stream")
        && !accepts("application/json")
        && !accepts("*/*")
        && !accepts("application/*")
}

enum Outcome {
    /// A serialized JSON-RPC response.
    Reply(String),
    Notification,
    Forbidden(Scope),
}

async fn call_tool(
    s: &AppState,
    p: &VerifiedToken,
    params: &Value,
) -> Result<Value, (i64, String)> {
    let name = params.get("name").and_then(Value::as_str).unwrap_or("");
    let args = params.get("arguments").cloned().unwrap_or(Value::Null);
    let text_result = |structured: Value| {
        let text = serde_json::to_string_pretty(&structured).unwrap_or_default();
        json!({"content": [{"type": "text", "text": text}], "structuredContent": structured, "isError": false})
    };
    match name {
        "whoami" => Ok(text_result(whoami(p))),
        "echo" => match args.get("message").and_then(Value::as_str) {
            Some(m) => Ok(json!({"content": [{"type": "text", "text": m}], "isError": false})),
            None => Err((-32602, "echo needs a string argument \"message\"".into())),
        },
        "server_stats" => {
            let store = s.authz.core().store();
            let clients = store
                .list_clients()
                .await
                .map_err(|_| (-32603, "storage unavailable".to_owned()))?
                .len();
            let users = store
                .count_users()
                .await
                .map_err(|_| (-32603, "storage unavailable".to_owned()))?;
            Ok(text_result(json!({"clients": clients, "users": users})))
        }
        _ => Err((-32602, format!("unknown tool: {name}"))),
    }
}

/// The `whoami` result: the subject, client, scope, expiry and issuer of the caller's token, and the identity
/// claims it carries (`preferred_username`, `email`, `idp`; each left out when the token has none).
fn whoami(p: &VerifiedToken) -> Value {
    let mut out = json!({
        "sub": p.claims.sub,
        "client_id": p.claims.client_id,
        "scope": p.scope.to_string(),
        "expires_at": p.claims.exp,
        "issuer": p.claims.iss,
    });
    for (name, value) in [
        ("preferred_username", p.preferred_username()),
        ("email", p.email()),
        ("idp", p.idp()),
    ] {
        if let Some(v) = value {
            out[name] = json!(v);
        }
    }
    out
}

/// Dispatches one JSON-RPC message to its method (JSON-RPC 2.0 §4, §5; MCP "Lifecycle", "Tools").
async fn dispatch(s: &AppState, p: &VerifiedToken, msg: &Value) -> Outcome {
    let Some(obj) = msg.as_object() else {
        return Outcome::Reply(rpc_error(Value::Null, -32600, "invalid request").to_string());
    };
    let id = obj.get("id").cloned();
    let method = obj.get("method").and_then(Value::as_str);
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Outcome::Reply(
            rpc_error(id.unwrap_or(Value::Null), -32600, "jsonrpc must be \"2.0\"").to_string(),
        );
    }
    let (Some(id), Some(method)) = (id, method) else {
        // A notification, or a response to a server request (this server sends none).
        return Outcome::Notification;
    };
    if !(id.is_string() || id.is_i64() || id.is_u64()) {
        return Outcome::Reply(
            rpc_error(Value::Null, -32600, "id must be a string or an integer").to_string(),
        );
    }
    let params = obj.get("params").unwrap_or(&Value::Null);
    let result = match method {
        "initialize" => {
            let asked = params
                .get("protocolVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            let version = PROTOCOL_VERSIONS
                .iter()
                .find(|v| **v == asked)
                .copied()
                .unwrap_or(PROTOCOL_VERSIONS[0]);
            Ok(json!({
                "protocolVersion": version,
                "capabilities": {"tools": {"listChanged": false}},
                "serverInfo": {"name": "portcullis", "title": "Portcullis built-in MCP server", "version": env!("CARGO_PKG_VERSION")},
                "instructions": "A demonstration MCP server protected by Portcullis. Call whoami to see who you are."
            }))
        }
        "ping" => Ok(json!({})),
        "tools/list" => return Outcome::Reply(rpc_result(&id, &TOOLS_LIST)),
        "tools/call" => {
            let name = params.get("name").and_then(Value::as_str).unwrap_or("");
            if let Some(tool) = TOOLS.iter().find(|t| t.name == name) {
                // The configured scope catalogue decides which scope a tool needs; the built-in default
                // applies when the catalogue does not mention the tool.
                let needed = s
                    .authz
                    .core()
                    .config()
                    .scope_for_tool(tool.name)
                    .unwrap_or(tool.scope);
                if !p.scope.contains(needed) {
                    return Outcome::Forbidden(Scope::from_tokens([needed]).unwrap_or_default());
                }
            }
            call_tool(s, p, params).await
        }
        _ => Err((-32601, format!("method not found: {method}"))),
    };
    Outcome::Reply(match result {
        Ok(r) => rpc_result(&id, &r.to_string()),
        Err((code, message)) => rpc_error(id, code, &message).to_string(),
    })
}

/// `POST /mcp`, behind the guard layer ([`crate::guard::ResourceGuard`]): the transport checks, then the
/// message or batch, then the reply in the form the client accepts.
pub async fn post(
    State(s): State<Arc<AppState>>,
    Extension(p): Extension<Arc<VerifiedToken>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let msg = match check_transport(&headers, &p, body) {
        Ok(msg) => msg,
        Err(resp) => return resp,
    };
    let is_initialize = msg.get("method").and_then(Value::as_str) == Some("initialize");
    let reply = match reply_to(&s, &p, &msg).await {
        Ok(reply) => reply,
        Err(resp) => return resp,
    };
    let mut resp = encode(&headers, reply);
    if is_initialize {
        if let Ok(v) = HeaderValue::from_str(&new_session_id(&s, &p)) {
            resp.headers_mut().insert(SESSION_HEADER, v);
        }
    }
    resp
}

/// The Streamable HTTP rules of a `POST` ("Transports"): a readable body, a known protocol version, the
/// caller's own session, JSON content; the parsed message.
// The error is the finished response, built on the refusal path only; boxing it would cost the same.
#[allow(clippy::result_large_err)]
fn check_transport(
    headers: &HeaderMap,
    p: &VerifiedToken,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Value, Response> {
    let body = body
        .map_err(|e| http_rpc_error(e.status(), -32600, "request body too large or unreadable"))?;
    if let Some(v) = headers.get(VERSION_HEADER) {
        if !PROTOCOL_VERSIONS
            .iter()
            .any(|k| k.as_bytes() == v.as_bytes())
        {
            return Err(http_rpc_error(
                StatusCode::BAD_REQUEST,
                -32600,
                "unsupported MCP-Protocol-Version",
            ));
        }
    }
    if let Some(id) = headers.get(SESSION_HEADER) {
        if !id.to_str().is_ok_and(|id| session_belongs_to(id, p)) {
            return Err(http_rpc_error(
                StatusCode::NOT_FOUND,
                -32001,
                "session not found; initialize a new session",
            ));
        }
    }
    if !crate::form::content_type_is(headers, "application/json") {
        return Err(http_rpc_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            -32600,
            "Content-Type must be application/json",
        ));
    }
    serde_json::from_slice(&body)
        .map_err(|_| http_rpc_error(StatusCode::BAD_REQUEST, -32700, "parse error"))
}

/// The reply to a message or a batch (at most 100 messages); `Err` for an answer without a body (202), a
/// missing tool scope (403) or an empty batch.
async fn reply_to(s: &AppState, p: &VerifiedToken, msg: &Value) -> Result<String, Response> {
    let forbidden = |scope: Scope| {
        guard::refusal_for(
            s,
            guard::Resource::mcp(s),
            &Refusal::InsufficientScope(scope),
        )
    };
    match msg {
        Value::Array(batch) if batch.is_empty() => Err(http_rpc_error(
            StatusCode::BAD_REQUEST,
            -32600,
            "empty batch",
        )),
        Value::Array(batch) => {
            let mut out = Vec::new();
            for m in batch.iter().take(100) {
                match dispatch(s, p, m).await {
                    Outcome::Reply(r) => out.push(r),
                    Outcome::Notification => {}
                    Outcome::Forbidden(scope) => return Err(forbidden(scope)),
                }
            }
            if out.is_empty() {
                return Err(StatusCode::ACCEPTED.into_response());
            }
            Ok(format!("[{}]", out.join(",")))
        }
        single => match dispatch(s, p, single).await {
            Outcome::Reply(r) => Ok(r),
            Outcome::Notification => Err(StatusCode::ACCEPTED.into_response()),
            Outcome::Forbidden(scope) => Err(forbidden(scope)),
        },
    }
}

/// `reply` as JSON, or as a one-event SSE stream when the client accepts only that.
fn encode(headers: &HeaderMap, reply: String) -> Response {
    if wants_sse(headers) {
        let event = format!("event: message\ndata: {reply}\n\n");
        (
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            event,
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            reply,
        )
            .into_response()
    }
}

/// `GET /mcp`: no server-initiated stream is offered (405), after authentication (by the guard layer).
pub async fn get() -> Response {
    let mut r = http_rpc_error(
        StatusCode::METHOD_NOT_ALLOWED,
        -32000,
        "this server offers no server-initiated stream",
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST, DELETE"));
    r
}

/// `DELETE /mcp`: ends a session (stateless: nothing to free, but the id must be the caller's).
pub async fn delete(Extension(p): Extension<Arc<VerifiedToken>>, headers: HeaderMap) -> Response {
    match headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) {
        Some(id) if session_belongs_to(id, &p) => StatusCode::NO_CONTENT.into_response(),
        Some(_) => http_rpc_error(StatusCode::NOT_FOUND, -32001, "session not found"),
        None => http_rpc_error(
            StatusCode::BAD_REQUEST,
            -32600,
            "Mcp-Session-Id header required",
        ),
    }
}
