//! The built-in MCP server over Streamable HTTP, JSON-RPC 2.0: MCP 2026-07-28 and every earlier revision from
//! 2024-11-05, decided per request ([`envelope`]).
//!
//! - **2026-07-28** (a request whose `params._meta` carries `io.modelcontextprotocol/protocolVersion`):
//!   stateless, no `initialize` and no session; `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` checked
//!   against the body; `server/discover`; `resultType` and cache hints on results ([`modern`]).
//! - **2025-11-25 and earlier**, and clients that name no version: `initialize`, sessions, batches, as before
//!   ([`legacy`]). The seed's bare request (`tools/list` with no `initialize`, `Content-Type:
//!   application/json`, no `Accept` beyond `*/*`, no `_meta`) is answered exactly as it always was.
//!
//! Responses are JSON unless the client accepts only `text/event-stream`, then a one-event SSE stream. Legacy
//! sessions are stateless ([`session`]). There is no server-initiated stream, so `GET` answers 405 (allowed by
//! the transport spec of every revision).

pub mod envelope;
mod legacy;
mod modern;
mod rpc;
mod session;
mod tools;

use crate::guard;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;
use envelope::{EnvelopeError, Era, McpHeaders, ModernMessage};
use portcullis_guard::{Refusal, VerifiedToken};
use rpc::Outcome;
use serde_json::Value;
use std::sync::Arc;

/// Protocol versions `initialize` negotiates (the legacy revisions), newest first.
pub use envelope::LEGACY_VERSIONS as PROTOCOL_VERSIONS;

/// The session header (legacy revisions only).
pub const SESSION_HEADER: &str = "mcp-session-id";
/// The protocol version header.
pub const VERSION_HEADER: &str = "mcp-protocol-version";
/// The method header (2026-07-28).
pub const METHOD_HEADER: &str = "mcp-method";
/// The name header (2026-07-28): the tool, prompt or resource a request names.
pub const NAME_HEADER: &str = "mcp-name";

type Body = Result<Bytes, axum::extract::rejection::BytesRejection>;

/// `POST /mcp`, behind the guard layer ([`crate::guard::ResourceGuard`]): the body, its era, then the reply in
/// the form the client accepts.
pub async fn post(
    State(s): State<Arc<AppState>>,
    Extension(p): Extension<Arc<VerifiedToken>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let msg = match parse(&headers, body) {
        Ok(msg) => msg,
        Err(resp) => return resp,
    };
    match envelope::classify(&mcp_headers(&headers), &msg) {
        Ok(Era::Legacy) => serve_legacy(&s, &p, &headers, &msg).await,
        Ok(Era::Modern(m)) => serve_modern(&s, &p, &headers, &msg, &m).await,
        Err(e) => refuse(&msg, &e),
    }
}

/// The headers [`envelope::classify`] reads.
pub(crate) fn mcp_headers(headers: &HeaderMap) -> McpHeaders<'_> {
    let get = |name: &str| headers.get(name).map(HeaderValue::as_bytes);
    McpHeaders {
        protocol_version: get(VERSION_HEADER),
        method: get(METHOD_HEADER),
        name: get(NAME_HEADER),
    }
}

/// A readable body of JSON content, parsed ("Transports": `POST` bodies are JSON-RPC messages).
// The error is the finished response, built on the refusal path only; boxing it would cost the same.
#[allow(clippy::result_large_err)]
fn parse(headers: &HeaderMap, body: Body) -> Result<Value, Response> {
    let body = body
        .map_err(|e| rpc::http_error(e.status(), -32600, "request body too large or unreadable"))?;
    if !crate::form::content_type_is(headers, "application/json") {
        return Err(rpc::http_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            -32600,
            "Content-Type must be application/json",
        ));
    }
    serde_json::from_slice(&body)
        .map_err(|_| rpc::http_error(StatusCode::BAD_REQUEST, -32700, "parse error"))
}

/// A message refused before it is served: 400 with the JSON-RPC error ("Transports" §Server Validation,
/// "Versioning" §Protocol Version Negotiation, "Overview" §`_meta`).
fn refuse(msg: &Value, e: &EnvelopeError) -> Response {
    let body = rpc::error_with_data(rpc::id_of(msg), e.code(), &e.to_string(), e.data());
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// A legacy message or batch: the caller's own session (when one is named), the reply, and a new session
/// for `initialize`.
async fn serve_legacy(
    s: &AppState,
    p: &VerifiedToken,
    headers: &HeaderMap,
    msg: &Value,
) -> Response {
    if let Some(id) = headers.get(SESSION_HEADER) {
        if !id.to_str().is_ok_and(|id| session::belongs_to(id, p)) {
            return rpc::http_error(
                StatusCode::NOT_FOUND,
                -32001,
                "session not found; initialize a new session",
            );
        }
    }
    let reply = match msg {
        Value::Array(batch) if batch.is_empty() => {
            return rpc::http_error(StatusCode::BAD_REQUEST, -32600, "empty batch")
        }
        Value::Array(batch) => match legacy::batch(s, p, batch).await {
            Ok(Some(reply)) => reply,
            Ok(None) => return StatusCode::ACCEPTED.into_response(),
            Err(refused) => return without_reply(s, refused),
        },
        single => match legacy::dispatch(s, p, single).await {
            Outcome::Reply(reply) => reply,
            other => return without_reply(s, other),
        },
    };
    let mut resp = encode(headers, reply);
    if msg.get("method").and_then(Value::as_str) == Some("initialize") {
        if let Ok(v) = HeaderValue::from_str(&session::new_session_id(s, p)) {
            resp.headers_mut().insert(SESSION_HEADER, v);
        }
    }
    resp
}

/// A 2026-07-28 message: no session is checked or minted (an `Mcp-Session-Id` is ignored, "Transports"
/// §Earlier Streamable HTTP Revisions).
async fn serve_modern(
    s: &AppState,
    p: &VerifiedToken,
    headers: &HeaderMap,
    msg: &Value,
    m: &ModernMessage,
) -> Response {
    tracing::debug!(method = %m.method, version = %m.version, client = ?m.client_name, "mcp request");
    match modern::dispatch(s, p, msg).await {
        Outcome::Reply(reply) => encode(headers, reply),
        other => without_reply(s, other),
    }
}

/// The response for an outcome other than a 200 reply.
fn without_reply(s: &AppState, outcome: Outcome) -> Response {
    match outcome {
        Outcome::Reply(reply) => (StatusCode::OK, json_body(reply)).into_response(),
        Outcome::Refused(status, reply) => (status, json_body(reply)).into_response(),
        Outcome::Notification => StatusCode::ACCEPTED.into_response(),
        Outcome::Forbidden(scope) => guard::refusal_for(
            s,
            guard::Resource::mcp(s),
            &Refusal::InsufficientScope(scope),
        ),
    }
}

fn json_body(reply: String) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        reply,
    )
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
        json_body(reply).into_response()
    }
}

/// `GET /mcp`: no server-initiated stream is offered (405), after authentication (by the guard layer).
pub async fn get() -> Response {
    let mut r = rpc::http_error(
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
        Some(id) if session::belongs_to(id, &p) => StatusCode::NO_CONTENT.into_response(),
        Some(_) => rpc::http_error(StatusCode::NOT_FOUND, -32001, "session not found"),
        None => rpc::http_error(
            StatusCode::BAD_REQUEST,
            -32600,
            "Mcp-Session-Id header required",
        ),
    }
}
