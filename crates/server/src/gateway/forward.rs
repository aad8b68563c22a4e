//! One request to the upstream MCP server and the mapping of its answer.
//!
//! Request headers are allow-listed ([`FORWARDED_REQUEST_HEADERS`]): `Authorization` (the client's token, MCP
//! authorization "Token Passthrough"), cookies and any client-sent `X-Portcullis-*` header never reach the
//! upstream. The gateway adds [`SUBJECT_HEADER`], [`CLIENT_ID_HEADER`] and [`SCOPE_HEADER`] from the verified
//! token, [`USERNAME_HEADER`], [`EMAIL_HEADER`] and [`IDP_HEADER`] when the token carries those claims, and
//! with `identity_jwt` the signed [`IDENTITY_HEADER`] ([`super::identity`]), and with `upstream_token_from` the
//! caller's own token at an identity provider ([`super::upstream_token`]). Responses:
//! `text/event-stream` bodies are streamed chunk by chunk as they arrive (no buffering); other bodies are read
//! whole, within the timeout and [`GatewayConfig::max_response`](super::GatewayConfig). With
//! `hide_unauthorized_tools`, `tools/list` answers of either kind are rewritten by [`super::tool_filter`].
//! Upstream failures answer 502 (refused, reset, 5xx, 401/403, redirects, malformed or oversized answers) or 504
//! (no response head, or no whole JSON body, within the timeout) with a generic JSON-RPC error body; details go
//! to the log only.

use super::identity::IDENTITY_HEADER;
use super::streams::StreamSlot;
use super::tool_filter::ToolFilter;
use super::upstream::{rpc_error, too_many_streams, until_closing, Gateway};
use crate::mcp::{METHOD_HEADER, NAME_HEADER, SESSION_HEADER, VERSION_HEADER};
use crate::state::AppState;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use portcullis_guard::VerifiedToken;
use serde_json::Value;

/// The authenticated subject (`sub` of the access token), set by the gateway for the upstream.
pub const SUBJECT_HEADER: &str = "x-portcullis-subject";
/// The OAuth client the token was issued to (`client_id`).
pub const CLIENT_ID_HEADER: &str = "x-portcullis-client-id";
/// The token's granted scopes, space-separated (RFC 6749 §3.3 syntax).
pub const SCOPE_HEADER: &str = "x-portcullis-scope";
/// The user's name to show (`preferred_username` of the access token), when it has one.
pub const USERNAME_HEADER: &str = "x-portcullis-username";
/// The user's verified email address (`email`), when the token has one.
pub const EMAIL_HEADER: &str = "x-portcullis-email";
/// The identity provider the user signed in through (`idp`), absent for a password login.
pub const IDP_HEADER: &str = "x-portcullis-idp";

/// Request headers passed to the upstream; every other header is dropped.
pub const FORWARDED_REQUEST_HEADERS: &[&str] = &[
    "accept",
    "content-type",
    "user-agent",
    SESSION_HEADER,
    VERSION_HEADER,
    METHOD_HEADER,
    NAME_HEADER,
    "last-event-id",
];

/// Request headers passed to the upstream by prefix: the custom headers a tool's `x-mcp-header` parameters
/// declare (MCP 2026-07-28 "Transports" §Custom Headers, `Mcp-Param-{Name}`). They carry tool arguments the
/// upstream checks against the body itself; no other prefix is forwarded.
pub const FORWARDED_REQUEST_PREFIXES: &[&str] = &["mcp-param-"];

/// Response headers passed back to the client; every other header is dropped.
pub const FORWARDED_RESPONSE_HEADERS: &[&str] = &[
    "content-type",
    "cache-control",
    "retry-after",
    "allow",
    SESSION_HEADER,
    VERSION_HEADER,
];

/// 502 with a generic JSON-RPC error.
fn bad_gateway(id: Value) -> Response {
    rpc_error(
        StatusCode::BAD_GATEWAY,
        id,
        -32000,
        "the upstream MCP server is unavailable or answered badly",
    )
}

/// 504 with a generic JSON-RPC error.
fn gateway_timeout(id: Value) -> Response {
    rpc_error(
        StatusCode::GATEWAY_TIMEOUT,
        id,
        -32000,
        "the upstream MCP server did not answer in time",
    )
}

/// What the optional features add to one request: the signed identity, the `tools/list` rewrite.
#[derive(Debug, Default)]
pub(crate) struct Extras {
    /// The [`IDENTITY_HEADER`] value (`identity_jwt`).
    identity: Option<HeaderValue>,
    /// The rewrite of `tools/list` answers (`hide_unauthorized_tools`).
    tool_filter: Option<ToolFilter>,
    /// The server's shutdown signal (used by a `GET` or `subscriptions/listen` stream, which ends at shutdown).
    closing: Option<tokio::sync::watch::Receiver<u64>>,
    /// The caller's upstream token and its header (`upstream_token_from`, [`super::upstream_token`]).
    upstream_credential: Option<(HeaderName, HeaderValue)>,
    /// The caller's stream slot, taken before the request (a `GET`); else one is taken if the answer is an
    /// event stream ([`super::streams`]).
    stream_slot: Option<StreamSlot>,
}

impl Extras {
    /// Sends the caller's upstream token in `header`.
    pub(crate) fn set_upstream_credential(&mut self, header: (HeaderName, HeaderValue)) {
        self.upstream_credential = Some(header);
    }

    /// Holds `slot` for the stream this request opens (released with the response if it is not one).
    pub(crate) fn set_stream_slot(&mut self, slot: StreamSlot) {
        self.stream_slot = Some(slot);
    }
}

/// The [`Extras`] of a request by `p` with the checked JSON-RPC `body` (if any), as configured.
pub(crate) fn extras(
    g: &Gateway,
    s: &AppState,
    p: &VerifiedToken,
    body: Option<&super::rpc::Inspected<'_>>,
) -> Extras {
    let config = &g.config;
    let identity = config.identity_jwt.then(|| {
        g.identity
            .header(&s.authz, &s.routes.issuer, config.upstream.as_str(), p)
    });
    let tool_filter = match body {
        Some(b) if config.hide_unauthorized_tools => {
            ToolFilter::for_request(&config.tool_scopes, p, b)
        }
        _ => None,
    };
    Extras {
        identity: identity.flatten(),
        tool_filter,
        closing: body
            .is_none_or(super::rpc::Inspected::is_listen)
            .then(|| s.stream_closer.subscribe()),
        upstream_credential: None,
        stream_slot: None,
    }
}

/// The headers sent upstream: the allow-listed ones from the client, then the identity headers.
fn upstream_headers(headers: &HeaderMap, p: &VerifiedToken, extras: &Extras) -> Option<HeaderMap> {
    let mut out = HeaderMap::new();
    for name in FORWARDED_REQUEST_HEADERS {
        for v in headers.get_all(*name) {
            out.append(HeaderName::from_static(name), v.clone());
        }
    }
    // Header names are lower case in `HeaderMap`.
    let prefixed = |n: &HeaderName| {
        FORWARDED_REQUEST_PREFIXES
            .iter()
            .any(|p| n.as_str().starts_with(p))
    };
    for (name, v) in headers.iter().filter(|(n, _)| prefixed(n)) {
        out.append(name.clone(), v.clone());
    }
    let identity = [
        (SUBJECT_HEADER, p.claims.sub.clone()),
        (CLIENT_ID_HEADER, p.claims.client_id.clone()),
        (SCOPE_HEADER, p.scope.to_string()),
    ];
    for (name, value) in identity {
        out.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(&value).ok()?,
        );
    }
    // Display only, and optional: a value that is not printable ASCII (a non-ASCII name from an identity
    // provider) is left out rather than mangled; the signed identity carries it as UTF-8.
    let display = [
        (USERNAME_HEADER, p.preferred_username()),
        (EMAIL_HEADER, p.email()),
        (IDP_HEADER, p.idp()),
    ];
    for (name, value) in display {
        if let Some(v) = value.filter(|v| v.bytes().all(|b| (b' '..=b'~').contains(&b))) {
            if let Ok(v) = HeaderValue::from_str(v) {
                out.insert(HeaderName::from_static(name), v);
            }
        }
    }
    if let Some(v) = &extras.identity {
        out.insert(HeaderName::from_static(IDENTITY_HEADER), v.clone());
    }
    if let Some((name, value)) = &extras.upstream_credential {
        out.insert(name.clone(), value.clone());
    }
    Some(out)
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// `stream`, ended when it yields nothing for `idle` (a hung upstream): the client sees the event stream close,
/// as when the upstream closes it, and may resume it with `Last-Event-ID` or retry.
fn until_idle<S, T>(
    stream: S,
    idle: Option<std::time::Duration>,
) -> impl futures_util::Stream<Item = T> + Send
where
    S: futures_util::Stream<Item = T> + Send + 'static,
    T: Send + 'static,
{
    use futures_util::StreamExt;
    futures_util::stream::unfold(Box::pin(stream), move |mut stream| async move {
        let next = match idle {
            Some(limit) => match tokio::time::timeout(limit, stream.next()).await {
                Ok(next) => next,
                Err(_) => {
                    tracing::warn!(
                        idle_ms = limit.as_millis() as u64,
                        "upstream event stream went silent; ended"
                    );
                    None
                }
            },
            None => stream.next().await,
        };
        next.map(|item| (item, stream))
    })
}

/// Sends one request upstream and maps the answer (see the module documentation): send, refuse error
/// statuses, then pass an event stream through or read a whole body.
pub(crate) async fn forward(
    g: &Gateway,
    method: Method,
    headers: &HeaderMap,
    p: &VerifiedToken,
    body: Option<bytes::Bytes>,
    id: Value,
    mut extras: Extras,
) -> Response {
    let deadline = tokio::time::Instant::now() + g.config.timeout;
    let resp = match send(g, &method, headers, p, body, &extras, deadline).await {
        Ok(r) => r,
        Err(Failure::Timeout) => return gateway_timeout(id),
        Err(Failure::BadGateway) => return bad_gateway(id),
    };
    let status = resp.status();
    if is_error_status(status) {
        tracing::warn!(%method, upstream_status = status.as_u16(), "upstream answered with an error status");
        return bad_gateway(id);
    }
    let mut builder = Response::builder().status(status);
    for name in FORWARDED_RESPONSE_HEADERS {
        for v in resp.headers().get_all(*name) {
            builder = builder.header(*name, v);
        }
    }
    let built = if is_event_stream(resp.headers()) {
        // Checked before the request too (`is_full`); this is the count, which parallel requests cannot pass.
        let slot = extras
            .stream_slot
            .take()
            .or_else(|| g.streams.acquire(p, g.config.streams_per_caller));
        let Some(slot) = slot else {
            tracing::info!(sub = %p.claims.sub, client_id = %p.claims.client_id, "gateway stream limit reached");
            return too_many_streams(id);
        };
        stream_through(g, builder, resp, extras, slot)
    } else {
        match read_whole(g, resp, deadline, extras).await {
            Ok(buf) => builder.body(Body::from(buf)),
            Err(Failure::Timeout) => return gateway_timeout(id),
            Err(Failure::BadGateway) => return bad_gateway(id),
        }
    };
    built.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot build the gateway response");
        bad_gateway(Value::Null)
    })
}

/// Why an upstream exchange failed (logged where it happens): 504 or 502.
enum Failure {
    Timeout,
    BadGateway,
}

/// The upstream request: allow-listed headers plus the identity, the body; the response head by `deadline`.
async fn send(
    g: &Gateway,
    method: &Method,
    headers: &HeaderMap,
    p: &VerifiedToken,
    body: Option<bytes::Bytes>,
    extras: &Extras,
    deadline: tokio::time::Instant,
) -> Result<reqwest::Response, Failure> {
    let Some(client) = &g.client else {
        return Err(Failure::BadGateway);
    };
    let Some(out) = upstream_headers(headers, p, extras) else {
        tracing::error!("identity cannot be expressed as header values");
        return Err(Failure::BadGateway);
    };
    let mut req = client
        .request(method.clone(), g.config.upstream.clone())
        .headers(out);
    if let Some(b) = body {
        req = req.body(b);
    }
    match tokio::time::timeout_at(deadline, req.send()).await {
        Err(_) => {
            tracing::warn!(%method, "upstream response head timed out");
            Err(Failure::Timeout)
        }
        Ok(Err(e)) => {
            tracing::warn!(%method, error = %e, "upstream request failed");
            Err(Failure::BadGateway)
        }
        Ok(Ok(r)) => Ok(r),
    }
}

/// Upstream statuses never passed on (502): server errors, redirects, informational answers, and the
/// upstream's own authentication refusals (the client's token is not the upstream's business).
fn is_error_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status.is_redirection()
        || status.is_informational()
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN
        || status == StatusCode::PROXY_AUTHENTICATION_REQUIRED
}

/// `stream` holding `slot` until it is dropped (ended by either side, or at shutdown).
fn holding<S, T>(stream: S, slot: StreamSlot) -> impl futures_util::Stream<Item = T> + Send
where
    S: futures_util::Stream<Item = T> + Send + 'static,
    T: Send + 'static,
{
    use futures_util::StreamExt;
    stream.map(move |item| {
        let _held = &slot;
        item
    })
}

/// Server-sent events: every chunk is passed on as it arrives; the stream may outlive the timeout. A reverse
/// proxy in front of Portcullis is asked not to buffer either. The stream holds the caller's `slot`.
fn stream_through(
    g: &Gateway,
    builder: axum::http::response::Builder,
    resp: reqwest::Response,
    extras: Extras,
    slot: StreamSlot,
) -> Result<Response, axum::http::Error> {
    let builder = builder.header("x-accel-buffering", "no");
    // The standalone server-to-client stream (`GET`, or a 2026-07-28 `subscriptions/listen`) never ends by
    // itself and may be quiet for long: end it when the server shuts down, not when it is idle.
    if let Some(closing) = extras.closing {
        let stream = until_closing(holding(resp.bytes_stream(), slot), closing);
        return builder.body(Body::from_stream(stream));
    }
    // The answer to a request: an upstream that stops sending must not hold the client forever.
    let upstream = until_idle(
        holding(resp.bytes_stream(), slot),
        g.config.stream_idle_timeout,
    );
    match extras.tool_filter {
        Some(filter) => builder.body(Body::from_stream(
            filter.rewrite_sse(upstream, g.config.max_response),
        )),
        None => builder.body(Body::from_stream(upstream)),
    }
}

/// A non-stream body, read whole by `deadline` within `max_response`; a 2xx body must be JSON (or empty);
/// `tools/list` answers filtered when configured.
async fn read_whole(
    g: &Gateway,
    mut resp: reqwest::Response,
    deadline: tokio::time::Instant,
    extras: Extras,
) -> Result<Vec<u8>, Failure> {
    let too_large = || {
        tracing::warn!("upstream response larger than the limit");
        Failure::BadGateway
    };
    if resp
        .content_length()
        .is_some_and(|n| n > g.config.max_response as u64)
    {
        return Err(too_large());
    }
    let mut buf = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Err(_) => {
                tracing::warn!("upstream response body timed out");
                return Err(Failure::Timeout);
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "upstream response body failed");
                return Err(Failure::BadGateway);
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => {
                if buf.len() + chunk.len() > g.config.max_response {
                    return Err(too_large());
                }
                buf.extend_from_slice(&chunk);
            }
        }
    }
    let status = resp.status();
    if status.is_success()
        && !buf.is_empty()
        && !(is_json(resp.headers()) && serde_json::from_slice::<Value>(&buf).is_ok())
    {
        tracing::warn!("upstream 2xx body is neither JSON nor an event stream");
        return Err(Failure::BadGateway);
    }
    if let Some(filter) = extras.tool_filter.filter(|_| status.is_success()) {
        if let Some(rewritten) = filter.rewrite_json(&buf) {
            buf = rewritten;
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(username: &str, email: Option<&str>, idp: Option<&str>) -> VerifiedToken {
        let mut p = crate::guard::test_principal("u-1", "c", "mcp:tools");
        p.claims.preferred_username = Some(username.to_owned());
        p.claims.email = email.map(str::to_owned);
        p.claims.idp = idp.map(str::to_owned);
        p
    }

    fn sent(p: &VerifiedToken, client: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (k, v) in client {
            headers.insert(*k, HeaderValue::from_static(v));
        }
        upstream_headers(&headers, p, &Extras::default()).expect("headers")
    }

    /// The identity claims become headers next to the subject's; the client's own never pass.
    #[test]
    fn identity_claims_are_forwarded_and_client_copies_dropped() {
        let spoofed = [
            (USERNAME_HEADER, "mallory"),
            (EMAIL_HEADER, "mallory@example.com"),
            (IDP_HEADER, "evil"),
        ];
        let h = sent(
            &principal("carol", Some("carol@example.com"), Some("corp")),
            &spoofed,
        );
        let one = |name: &str| {
            let all: Vec<_> = h.get_all(name).iter().collect();
            assert_eq!(all.len(), 1, "{name}: {all:?}");
            all[0].to_str().expect("ascii").to_owned()
        };
        assert_eq!(one(SUBJECT_HEADER), "u-1");
        assert_eq!(one(USERNAME_HEADER), "carol");
        assert_eq!(one(EMAIL_HEADER), "carol@example.com");
        assert_eq!(one(IDP_HEADER), "corp");
        // A password user: the name only.
        let h = sent(&principal("alice", None, None), &spoofed);
        assert_eq!(
            h.get(USERNAME_HEADER).map(|v| v.as_bytes()),
            Some(&b"alice"[..])
        );
        assert!(h.get(EMAIL_HEADER).is_none() && h.get(IDP_HEADER).is_none());
    }

    /// A value a header cannot carry as printable ASCII is left out, never mangled and never a failure.
    #[test]
    fn a_non_ascii_name_is_left_out_of_the_headers() {
        let h = sent(
            &principal("Jörg", Some("j\r\nx@example.com"), Some("corp")),
            &[],
        );
        assert!(h.get(USERNAME_HEADER).is_none());
        assert!(h.get(EMAIL_HEADER).is_none());
        assert_eq!(h.get(IDP_HEADER).map(|v| v.as_bytes()), Some(&b"corp"[..]));
        assert_eq!(
            h.get(SUBJECT_HEADER).map(|v| v.as_bytes()),
            Some(&b"u-1"[..])
        );
    }
}
