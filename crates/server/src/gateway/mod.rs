//! Gateway mode: the MCP endpoint forwards to an upstream MCP server (Streamable HTTP) instead of the built-in
//! one, after the same bearer check (RFC 6750, RFC 9728 §5.1; MCP authorization "Access Token Privilege
//! Restriction" and "Token Passthrough": the client's token never reaches the upstream).
//!
//! - [`config`]: [`GatewayConfig`] and the parsers of `--upstream` and `--tool-scope NAME=SCOPE`.
//! - [`sessions`]: session ids sealed to the resource, subject and client (a MAC, so any instance can check them).
//! - [`mount`]: `[[gateway.routes]]`: more upstreams on their own paths, each its own protected resource.
//! - [`forward`]: the upstream request (allow-listed headers plus identity headers) and the response (streamed
//!   for `text/event-stream`, size-limited for JSON; 502/504 with a JSON-RPC error body on failure).
//! - [`identity`]: the optional signed identity header (`X-Portcullis-Identity`), cached per caller and upstream.
//! - [`streams`]: the cap on event streams open at once per caller (user and client), each an upstream
//!   connection; beyond it 429.
//! - [`rpc`]: the JSON-RPC inspection of `POST` bodies: malformed or ambiguous messages are refused (400), the
//!   rest is forwarded byte for byte.
//! - [`tool_filter`]: the optional removal of uncallable tools from `tools/list` answers (JSON and SSE).
//! - [`upstream_token`]: the optional caller's token at an identity provider on the forwarded request
//!   (`upstream_token_from`), or the 401 challenge sending the user through sign-in again.
//!
//! MCP 2026-07-28 passes through with the client's version unchanged (the upstream decides what it speaks and
//! answers `UnsupportedProtocolVersion` itself); its `Mcp-Method`/`Mcp-Name` headers are checked against the
//! body first ([`crate::mcp::envelope::check_agreement`]), and `subscriptions/listen` is held like a `GET` stream.
//!
//! Every request is authenticated by the guard layer ([`guard::ResourceGuard`]); a session id is only forwarded with the token of
//! the subject and client that opened it (else 404); a `tools/call` whose tool needs a scope the token lacks gets
//! 403 `insufficient_scope` before the upstream sees anything.

pub mod closing;
pub mod config;
pub mod forward;
pub mod identity;
pub mod mount;
pub mod rpc;
pub mod sessions;
pub mod streams;
pub mod tool_filter;
pub mod upstream;
pub mod upstream_token;

pub use config::{GatewayConfig, GatewayConfigError, RouteConfig};
pub(crate) use upstream::rpc_error;
use upstream::{too_many_streams, Gateway};

use crate::guard;
use crate::mcp::{envelope, METHOD_HEADER, NAME_HEADER, SESSION_HEADER, VERSION_HEADER};
use crate::state::AppState;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::{post, MethodRouter};
use axum::Extension;
use bytes::Bytes;
use portcullis_guard::VerifiedToken;
use serde_json::Value;
use std::sync::Arc;

/// The MCP endpoint's method router in gateway mode, behind the guard of the MCP endpoint.
pub fn method_router(config: &GatewayConfig, s: &Arc<AppState>) -> MethodRouter<Arc<AppState>> {
    handlers(
        Gateway::new(config.clone()),
        guard::ResourceGuard::mcp(s.clone()),
    )
}

/// The method router of one gateway (the MCP endpoint's or a route's), behind `guard` (only the routed
/// methods: a preflight or a wrong method is answered without a token, as before).
fn handlers(gateway: Gateway, guard: guard::ResourceGuard) -> MethodRouter<Arc<AppState>> {
    let gateway = Arc::new(gateway);
    post(handle_post)
        .get(handle_get)
        .delete(handle_delete)
        .layer(Extension(gateway))
        .route_layer(guard.layer())
}

/// The request headers to forward: the client's `Mcp-Session-Id`, if any, replaced by the upstream's own id
/// after its MAC is checked against `p` and this resource ([`sessions`]); 404 (JSON-RPC `-32001`, "initialize a
/// new session") when it was not sealed for them, 400 for several ids.
async fn upstream_session(
    s: &AppState,
    g: &Gateway,
    headers: &HeaderMap,
    p: &VerifiedToken,
) -> Result<HeaderMap, Response> {
    let mut values = headers.get_all(SESSION_HEADER).iter();
    let sealed = match (values.next(), values.next()) {
        (None, _) => return Ok(headers.clone()),
        (Some(_), Some(_)) => {
            return Err(rpc_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                -32600,
                "send at most one Mcp-Session-Id header",
            ))
        }
        (Some(v), None) => v.to_str().unwrap_or(""),
    };
    let resource = g.resource(s).url;
    let store = s.authz.core().store();
    let opened = g
        .sessions
        .open(store.as_ref(), s.authz.core().now(), resource, sealed, p)
        .await;
    let upstream = match opened {
        Ok(Some(id)) => id,
        Ok(None) => {
            return Err(rpc_error(
                StatusCode::NOT_FOUND,
                Value::Null,
                -32001,
                "session not found; initialize a new session",
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot check a gateway session id");
            return Err(rpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                Value::Null,
                -32000,
                "temporarily unavailable; retry later",
            ));
        }
    };
    let mut out = headers.clone();
    // Visible ASCII (checked by `open`), so always a valid header value.
    match axum::http::HeaderValue::from_str(&upstream) {
        Ok(v) => {
            out.insert(SESSION_HEADER, v);
            Ok(out)
        }
        Err(_) => Err(rpc_error(
            StatusCode::NOT_FOUND,
            Value::Null,
            -32001,
            "session not found; initialize a new session",
        )),
    }
}

/// The upstream's answer with its `Mcp-Session-Id`, if any, sealed for `p` and this resource ([`sessions`]);
/// 502 (JSON-RPC error with the request's `id`) if the upstream's id is not 1 to 512 visible ASCII characters.
async fn seal_session(
    s: &AppState,
    g: &Gateway,
    p: &VerifiedToken,
    id: Value,
    mut resp: Response,
) -> Response {
    let rpc_id = id;
    let Some(id) = resp.headers().get(SESSION_HEADER) else {
        return resp;
    };
    let Ok(id) = id.to_str().map(str::to_owned) else {
        tracing::warn!("upstream sent a malformed Mcp-Session-Id");
        return rpc_error(
            StatusCode::BAD_GATEWAY,
            rpc_id,
            -32000,
            "the upstream MCP server is unavailable or answered badly",
        );
    };
    let resource = g.resource(s).url;
    let store = s.authz.core().store();
    let sealed = g
        .sessions
        .seal(store.as_ref(), s.authz.core().now(), resource, &id, p)
        .await;
    match sealed.map(|v| axum::http::HeaderValue::from_str(&v)) {
        Ok(Ok(v)) => {
            resp.headers_mut().insert(SESSION_HEADER, v);
            resp
        }
        Ok(Err(_)) | Err(sessions::SessionError::BadUpstreamId) => {
            tracing::warn!(
                "upstream sent a session id that is not 1 to 512 visible ASCII characters"
            );
            rpc_error(
                StatusCode::BAD_GATEWAY,
                rpc_id,
                -32000,
                "the upstream MCP server is unavailable or answered badly",
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot seal a gateway session id");
            rpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                rpc_id,
                -32000,
                "temporarily unavailable; retry later",
            )
        }
    }
}

/// `extras` with the caller's upstream token when the gateway sends one (`upstream_token_from`); nothing is
/// done otherwise.
async fn with_upstream_token(
    s: &AppState,
    g: &Gateway,
    p: &VerifiedToken,
    mut extras: forward::Extras,
    id: &Value,
) -> Result<forward::Extras, Response> {
    if let Some(cfg) = &g.config.upstream_token {
        extras.set_upstream_credential(upstream_token::credential(s, g, p, cfg, id).await?);
    }
    Ok(extras)
}

/// Per-tool scopes: the first `tools/call` in `body` whose tool needs a scope `p` lacks, and that scope. The
/// name is the exact one [`rpc::inspect`] checked (look-alikes of scoped names are refused there).
fn missing_tool_scope(
    config: &GatewayConfig,
    p: &VerifiedToken,
    body: &rpc::Inspected<'_>,
) -> Option<portcullis_proto::Scope> {
    body.messages.iter().find_map(|m| {
        let needed = config.tool_scopes.get(m.tool.as_deref()?)?;
        (!p.scope.includes(needed)).then(|| needed.clone())
    })
}

/// MCP 2026-07-28 request headers (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`) agree with the checked
/// body ([`envelope::check_agreement`]), each sent at most once, so an upstream that reads the headers acts on
/// what the per-tool scope check saw; else 400 `HeaderMismatch` (-32020) and the upstream sees nothing.
/// Nothing is parsed again for older-revision traffic (no `Mcp-Method`/`Mcp-Name`, no 2026-07-28 version).
// The error is the finished response, built on the refusal path only.
#[allow(clippy::result_large_err)]
fn headers_agree(headers: &HeaderMap, body: &[u8], id: Value) -> Result<(), Response> {
    use envelope::{EnvelopeError, Mismatch};
    let named = [
        (VERSION_HEADER, "MCP-Protocol-Version"),
        (METHOD_HEADER, "Mcp-Method"),
        (NAME_HEADER, "Mcp-Name"),
    ];
    // Without `Mcp-Method`/`Mcp-Name` and with no 2026-07-28 version header, an upstream can only act on the
    // body, which was checked: older-revision traffic is not parsed twice.
    let modern_version = headers
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| envelope::is_modern(v.trim()));
    let named_present = named[1..].iter().any(|(h, _)| headers.contains_key(*h));
    if !modern_version && !named_present && headers.get_all(VERSION_HEADER).iter().nth(1).is_none()
    {
        return Ok(());
    }
    let repeated = named
        .iter()
        .find(|(h, _)| headers.get_all(*h).iter().nth(1).is_some());
    let checked = match repeated {
        Some((_, shown)) => Err(EnvelopeError::HeaderMismatch(Mismatch::Repeated(shown))),
        // `rpc::inspect` accepted the body, so it is JSON (else null: named headers are then refused).
        None => {
            let v = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
            envelope::check_agreement(&crate::mcp::mcp_headers(headers), &v)
        }
    };
    checked.map_err(|e| {
        tracing::info!(reason = %e, "gateway request refused before the upstream");
        rpc_error(StatusCode::BAD_REQUEST, id, e.code(), &e.to_string())
    })
}

/// `POST` on the MCP endpoint: authenticate, check the session, the JSON-RPC body ([`rpc`]) and per-tool
/// scopes, forward.
///
/// The upstream receives the body byte for byte (ids included), and only a body [`rpc::inspect`] accepted:
/// nothing another parser could read differently (duplicate or look-alike members, disguised methods or tool
/// names) gets past the check.
async fn handle_post(
    State(s): State<Arc<AppState>>,
    Extension(g): Extension<Arc<Gateway>>,
    Extension(p): Extension<Arc<VerifiedToken>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return rpc_error(
                e.status(),
                Value::Null,
                -32600,
                "request body too large or unreadable",
            )
        }
    };
    let headers = match upstream_session(&s, &g, &headers, &p).await {
        Ok(h) => h,
        Err(resp) => return resp,
    };
    let (id, extras, listen) = {
        let inspected = match rpc::inspect(&body, &g.config.tool_scopes) {
            Ok(i) => i,
            Err(e) => {
                tracing::info!(reason = %e, "gateway request refused before the upstream");
                return rpc_error(
                    StatusCode::BAD_REQUEST,
                    Value::Null,
                    e.code(),
                    &e.to_string(),
                );
            }
        };
        if let Err(resp) = headers_agree(&headers, &body, inspected.id()) {
            return resp;
        }
        if let Some(needed) = missing_tool_scope(&g.config, &p, &inspected) {
            let refusal = portcullis_guard::Refusal::InsufficientScope(needed);
            return guard::refusal_for(&s, g.resource(&s), &refusal);
        }
        (
            inspected.id(),
            forward::extras(&g, &s, &p, Some(&inspected)),
            inspected.is_listen(),
        )
    };
    // A caller at its stream cap: refused before the upstream sees the request, since its answer may be a
    // stream (the count itself is taken when it is one, in `forward`). A `subscriptions/listen` is counted
    // before the upstream is asked, like a `GET` stream.
    let mut extras = extras;
    if listen {
        let Some(slot) = g.streams.acquire(&p, g.config.streams_per_caller) else {
            return too_many_streams(id);
        };
        extras.set_stream_slot(slot);
    } else if g.streams.is_full(&p, g.config.streams_per_caller) {
        return too_many_streams(id);
    }
    let extras = match with_upstream_token(&s, &g, &p, extras, &id).await {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    let resp = forward::forward(
        &g,
        Method::POST,
        &headers,
        &p,
        Some(body),
        id.clone(),
        extras,
    )
    .await;
    seal_session(&s, &g, &p, id, resp).await
}

/// `GET` on the MCP endpoint: the server-to-client SSE stream, streamed through unbuffered; one of the caller's
/// [`streams`] (429 beyond the cap).
async fn handle_get(
    State(s): State<Arc<AppState>>,
    Extension(g): Extension<Arc<Gateway>>,
    Extension(p): Extension<Arc<VerifiedToken>>,
    headers: HeaderMap,
) -> Response {
    let headers = match upstream_session(&s, &g, &headers, &p).await {
        Ok(h) => h,
        Err(resp) => return resp,
    };
    // The GET stream is counted before the upstream is asked for it.
    let Some(slot) = g.streams.acquire(&p, g.config.streams_per_caller) else {
        return too_many_streams(Value::Null);
    };
    let mut extras = forward::extras(&g, &s, &p, None);
    extras.set_stream_slot(slot);
    let extras = match with_upstream_token(&s, &g, &p, extras, &Value::Null).await {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    let resp = forward::forward(&g, Method::GET, &headers, &p, None, Value::Null, extras).await;
    seal_session(&s, &g, &p, Value::Null, resp).await
}

/// `DELETE` on the MCP endpoint: ends the session upstream and forgets it here.
async fn handle_delete(
    State(s): State<Arc<AppState>>,
    Extension(g): Extension<Arc<Gateway>>,
    Extension(p): Extension<Arc<VerifiedToken>>,
    headers: HeaderMap,
) -> Response {
    let headers = match upstream_session(&s, &g, &headers, &p).await {
        Ok(h) => h,
        Err(resp) => return resp,
    };
    let extras = forward::extras(&g, &s, &p, None);
    let extras = match with_upstream_token(&s, &g, &p, extras, &Value::Null).await {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    let resp = forward::forward(&g, Method::DELETE, &headers, &p, None, Value::Null, extras).await;
    seal_session(&s, &g, &p, Value::Null, resp).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn principal(scope: &str) -> VerifiedToken {
        crate::guard::test_principal("alice", "c", scope)
    }

    #[test]
    fn tool_scopes_are_checked_in_single_messages_and_batches() {
        let mut c = GatewayConfig::new(url::Url::parse("http://127.0.0.1:1/mcp").expect("url"));
        c.add_tool_scope("admin_tool=mcp:admin")
            .expect("tool scope");
        let p = principal("mcp:tools");
        let call = |name: &str| json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name}});
        let missing = |p: &VerifiedToken, body: &Value| {
            let text = body.to_string();
            let inspected = rpc::inspect(text.as_bytes(), &c.tool_scopes).expect("well-formed");
            missing_tool_scope(&c, p, &inspected).map(|s| s.to_string())
        };
        assert_eq!(
            missing(&p, &call("admin_tool")),
            Some("mcp:admin".to_owned())
        );
        assert_eq!(missing(&p, &call("echo")), None);
        let batch = json!([call("echo"), call("admin_tool")]);
        assert!(missing(&p, &batch).is_some());
        let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"name": "admin_tool"}});
        assert_eq!(missing(&p, &list), None);
        assert_eq!(
            missing(&principal("mcp:tools mcp:admin"), &call("admin_tool")),
            None
        );
    }
}
