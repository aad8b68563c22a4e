//! MCP over Streamable HTTP (MCP "Transports", 2025-06-18 / 2025-11-25 / 2026-07-28): every JSON-RPC message is a
//! POST with `Accept: application/json, text/event-stream`; the answer is JSON, an SSE stream, or 202 for
//! notifications and responses. A message carrying the 2026-07-28 `_meta` goes out with the headers mirrored from
//! its body ([`crate::modern::standard_headers`]) and no session. Otherwise `Mcp-Session-Id` from the initialize
//! answer and `MCP-Protocol-Version` are sent afterwards, and a stream that ends early is resumed with GET and
//! `Last-Event-ID` after the server's `retry` delay.
//!
//! [`McpClient`] adds authorization: on 401 it refreshes once, then logs in again; on 403 `insufficient_scope` it
//! steps up with the union of scopes, at most [`MAX_STEP_UPS`] times, and not again once a step-up has already
//! been granted everything the server asks for.

use crate::auth::Authenticator;
use crate::error::snippet;
use crate::input::InputProvider;
use crate::modern::{self, Era};
pub use crate::protocol::{initialize_params, ACCEPT};
use crate::secret::AccessToken;
use crate::{Error, Result};
use portcullis_proto::www_authenticate::BearerChallenge;
use portcullis_proto::Scope;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use url::Url;

/// Step-ups allowed for one message before giving up.
pub const MAX_STEP_UPS: u32 = 3;
/// Reconnections of one interrupted SSE stream.
const MAX_RESUMES: u32 = 5;

/// One server-sent event (HTML Living Standard §9.2.6).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// `event`, empty for the default `message`.
    pub event: String,
    /// `data`, lines joined with `\n`.
    pub data: String,
    /// `id`, if set.
    pub id: Option<String>,
}

/// An open SSE response.
#[derive(Debug)]
pub struct SseStream {
    resp: reqwest::Response,
    buf: Vec<u8>,
    /// The last event id seen, for resumption.
    pub last_event_id: Option<String>,
    /// The server's `retry` delay in milliseconds.
    pub retry_ms: Option<u64>,
}

impl SseStream {
    fn new(resp: reqwest::Response) -> Self {
        Self {
            resp,
            buf: Vec::new(),
            last_event_id: None,
            retry_ms: None,
        }
    }

    /// The next event with data, or `None` when the stream ends (a broken connection also ends it).
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        let mut ev = SseEvent::default();
        let mut has_data = false;
        loop {
            while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\n', '\r']);
                if line.is_empty() {
                    if has_data {
                        if ev.id.is_some() {
                            self.last_event_id.clone_from(&ev.id);
                        }
                        return Some(ev);
                    }
                    ev = SseEvent::default();
                    continue;
                }
                if line.starts_with(':') {
                    continue;
                }
                let (field, value) = line
                    .split_once(':')
                    .map(|(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)))
                    .unwrap_or((line, ""));
                match field {
                    "data" => {
                        if has_data {
                            ev.data.push('\n');
                        }
                        ev.data.push_str(value);
                        has_data = true;
                    }
                    "event" => ev.event = value.to_owned(),
                    "id" => {
                        ev.id = Some(value.to_owned());
                        self.last_event_id = Some(value.to_owned());
                    }
                    "retry" => self.retry_ms = value.parse().ok().or(self.retry_ms),
                    _ => {}
                }
            }
            match self.resp.chunk().await {
                Ok(Some(c)) => self.buf.extend_from_slice(&c),
                _ => return None,
            }
        }
    }
}

/// What a POST produced.
#[derive(Debug)]
pub enum Reply {
    /// 202: nothing to read.
    Accepted,
    /// A JSON body, verbatim.
    Json(String),
    /// An SSE stream of messages.
    Stream(SseStream),
    /// 401 and the challenge.
    Unauthorized(Option<BearerChallenge>),
    /// 403 and the challenge.
    Forbidden(Option<BearerChallenge>),
}

/// The Streamable HTTP transport to one MCP endpoint.
#[derive(Debug)]
pub struct Transport {
    http: reqwest::Client,
    url: Url,
    session_id: Mutex<Option<String>>,
    protocol_version: Mutex<Option<String>>,
}

fn challenge_of(resp: &reqwest::Response) -> Option<BearerChallenge> {
    resp.headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(BearerChallenge::parse)
}

impl Transport {
    /// A transport for `url`.
    pub fn new(http: reqwest::Client, url: Url) -> Self {
        Self {
            http,
            url,
            session_id: Mutex::new(None),
            protocol_version: Mutex::new(None),
        }
    }

    /// Records the negotiated protocol version, sent from now on as `MCP-Protocol-Version`.
    pub fn set_protocol_version(&self, v: &str) {
        if let Ok(mut g) = self.protocol_version.lock() {
            *g = Some(v.to_owned());
        }
    }

    fn headers(
        &self,
        mut req: reqwest::RequestBuilder,
        token: Option<&AccessToken>,
    ) -> reqwest::RequestBuilder {
        if let Some(t) = token {
            req = req.bearer_auth(t.expose());
        }
        if let Some(s) = self.session_id.lock().ok().and_then(|g| g.clone()) {
            req = req.header("mcp-session-id", s);
        }
        if let Some(v) = self.protocol_version.lock().ok().and_then(|g| g.clone()) {
            req = req.header("mcp-protocol-version", v);
        }
        req
    }

    /// The headers of a modern (2026-07-28) message: the standard ones mirrored from its body; no session and no
    /// remembered version, which belong to the older revisions ("Transports" §Request Metadata).
    fn modern_headers(
        mut req: reqwest::RequestBuilder,
        token: Option<&AccessToken>,
        msg: &Value,
    ) -> reqwest::RequestBuilder {
        if let Some(t) = token {
            req = req.bearer_auth(t.expose());
        }
        for (k, v) in modern::standard_headers(msg) {
            req = req.header(k, v);
        }
        req
    }

    fn remember_session(&self, resp: &reqwest::Response) {
        if let Some(s) = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            if let Ok(mut g) = self.session_id.lock() {
                *g = Some(s.to_owned());
            }
        }
    }

    /// POSTs one message (`body` is sent byte for byte).
    pub async fn post(&self, token: Option<&AccessToken>, body: &str) -> Result<Reply> {
        self.post_with(token, body, &[]).await
    }

    /// POSTs one message with `extra` headers (the `Mcp-Param-*` of a tool call). A message carrying the modern
    /// `_meta` gets the 2026-07-28 headers and no session; others the headers of the older revisions. A 4xx whose
    /// body is a JSON-RPC response (a modern server's `UnsupportedProtocolVersion`, `HeaderMismatch`, …) is an
    /// answer, returned as [`Reply::Json`].
    pub async fn post_with(
        &self,
        token: Option<&AccessToken>,
        body: &str,
        extra: &[(String, String)],
    ) -> Result<Reply> {
        let mut req = self
            .http
            .post(self.url.clone())
            .header("accept", ACCEPT)
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (k, v) in extra {
            req = req.header(k.as_str(), v.as_str());
        }
        let msg = serde_json::from_str::<Value>(body)
            .ok()
            .filter(|m| modern::meta_version(m).is_some());
        let req = match &msg {
            Some(m) => Self::modern_headers(req, token, m),
            None => self.headers(req, token),
        };
        let resp = req
            .send()
            .await
            .map_err(|e| Error::http(self.url.as_str(), &e))?;
        if msg.is_none() {
            self.remember_session(&resp);
        }
        let status = resp.status().as_u16();
        match status {
            401 => return Ok(Reply::Unauthorized(challenge_of(&resp))),
            403 => return Ok(Reply::Forbidden(challenge_of(&resp))),
            202 | 204 => return Ok(Reply::Accepted),
            200..=299 => {}
            _ => {
                let body = resp.text().await.unwrap_or_default();
                if (400..500).contains(&status) && is_jsonrpc_response(&body) {
                    return Ok(Reply::Json(body));
                }
                return Err(Error::UnexpectedStatus {
                    url: self.url.to_string(),
                    status,
                    body: snippet(&body),
                });
            }
        }
        let is_sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        if is_sse {
            return Ok(Reply::Stream(SseStream::new(resp)));
        }
        let text = resp
            .text()
            .await
            .map_err(|e| Error::http(self.url.as_str(), &e))?;
        if text.trim().is_empty() {
            return Ok(Reply::Accepted);
        }
        Ok(Reply::Json(text))
    }

    /// Opens (or resumes, with `Last-Event-ID`) the GET stream; `None` when the server offers none (405).
    pub async fn get_stream(
        &self,
        token: Option<&AccessToken>,
        last_event_id: Option<&str>,
    ) -> Result<Option<SseStream>> {
        let mut req = self
            .http
            .get(self.url.clone())
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = self
            .headers(req, token)
            .send()
            .await
            .map_err(|e| Error::http(self.url.as_str(), &e))?;
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            tracing::debug!(status, "no GET stream");
            return Ok(None);
        }
        Ok(Some(SseStream::new(resp)))
    }

    /// Ends the session (DELETE), ignoring failures.
    pub async fn close(&self, token: Option<&AccessToken>) {
        if self
            .session_id
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .is_some()
        {
            let _ = self
                .headers(self.http.delete(self.url.clone()), token)
                .send()
                .await;
        }
    }
}

/// An MCP client with authorization. The protocol operations (era detection, listing, calling, multi round-trip
/// requests) are in [`crate::calls`].
pub struct McpClient {
    auth: Arc<Authenticator>,
    transport: Transport,
    next_id: AtomicI64,
    era: Mutex<Era>,
    inputs: Option<Arc<dyn InputProvider>>,
}

impl std::fmt::Debug for McpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClient")
            .field("auth", &self.auth)
            .field("era", &self.era())
            .finish_non_exhaustive()
    }
}

impl McpClient {
    /// A client for the authenticator's server.
    pub fn new(auth: Arc<Authenticator>) -> Self {
        let transport = Transport::new(auth.http().clone(), auth.server().clone());
        Self {
            auth,
            transport,
            next_id: AtomicI64::new(1),
            era: Mutex::new(Era::Unknown),
            inputs: None,
        }
    }

    /// Answers the server's input requests (MCP 2026-07-28 multi round-trip requests) with `inputs`.
    pub fn with_inputs(mut self, inputs: Arc<dyn InputProvider>) -> Self {
        self.inputs = Some(inputs);
        self
    }

    /// Who answers input requests, if anyone.
    pub fn inputs(&self) -> Option<&Arc<dyn InputProvider>> {
        self.inputs.as_ref()
    }

    /// The transport.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The protocol era in use.
    pub fn era(&self) -> Era {
        self.era.lock().map(|g| g.clone()).unwrap_or(Era::Unknown)
    }

    /// Sets the protocol era (after detection).
    pub fn set_era(&self, era: Era) {
        if let Ok(mut g) = self.era.lock() {
            *g = era;
        }
    }

    /// The current token, without logging in.
    pub async fn token(&self) -> Result<Option<AccessToken>> {
        self.auth.current().await
    }

    /// POSTs a message with authorization: 401 → refresh once, then a new login; 403 `insufficient_scope` →
    /// step-up, at most [`MAX_STEP_UPS`] times.
    pub async fn send(&self, body: &str) -> Result<Reply> {
        self.send_with(body, &[]).await
    }

    /// [`McpClient::send`] with extra headers.
    pub async fn send_with(&self, body: &str, extra: &[(String, String)]) -> Result<Reply> {
        let mut token = self.auth.current().await?;
        let (mut unauthorized, mut step_ups) = (0u32, 0u32);
        loop {
            match self
                .transport
                .post_with(token.as_ref(), body, extra)
                .await?
            {
                Reply::Unauthorized(ch) => {
                    unauthorized += 1;
                    if unauthorized > 2 {
                        return Err(Error::StillUnauthorized);
                    }
                    token = Some(
                        self.auth
                            .after_unauthorized(token.as_ref(), ch, unauthorized == 1)
                            .await?,
                    );
                }
                Reply::Forbidden(Some(ch)) if ch.error.as_deref() == Some("insufficient_scope") => {
                    // A step-up that already obtained the scope the server asks for cannot make progress by
                    // asking again, so it ends there rather than looping through the browser.
                    let needed = ch
                        .scope
                        .as_deref()
                        .and_then(|s| Scope::parse(s).ok())
                        .unwrap_or_default();
                    let granted = self
                        .auth
                        .cached()?
                        .and_then(|e| e.scope)
                        .and_then(|s| Scope::parse(&s).ok())
                        .unwrap_or_default();
                    if step_ups >= MAX_STEP_UPS || (step_ups > 0 && granted.includes(&needed)) {
                        return Err(Error::InsufficientScope {
                            scope: ch.scope.unwrap_or_default(),
                            attempts: step_ups,
                        });
                    }
                    step_ups += 1;
                    tracing::info!(scope = ?ch.scope, "the server needs more scope; authorizing again");
                    token = Some(self.auth.step_up(ch).await?);
                }
                Reply::Forbidden(_) => {
                    return Err(Error::UnexpectedStatus {
                        url: self.auth.server().to_string(),
                        status: 403,
                        body: String::new(),
                    })
                }
                other => return Ok(other),
            }
        }
    }

    /// Sends one request and waits for its response's `result` (one round: an `input_required` result is
    /// returned as is). In the modern era the params get the `_meta` envelope; `extra` headers are added.
    pub async fn request_once(
        &self,
        method: &str,
        params: Value,
        extra: &[(String, String)],
    ) -> Result<Value> {
        let params = match self.era() {
            Era::Modern(v) => {
                let caps = modern::client_capabilities(self.inputs.is_some());
                modern::with_meta(params, &v, &caps)
            }
            _ => params,
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body =
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        let reply = self.send_with(&body, extra).await?;
        let msg = match reply {
            Reply::Json(text) => find_response(&parse(&text)?, id),
            Reply::Stream(s) => self.response_from_stream(s, id).await?,
            _ => None,
        };
        let msg = msg.ok_or_else(|| Error::Protocol {
            reason: format!("no response to {method}"),
        })?;
        if let Some(e) = msg.get("error") {
            return Err(Error::JsonRpc {
                code: e.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                data: e.get("data").cloned(),
            });
        }
        Ok(msg.get("result").cloned().unwrap_or(Value::Null))
    }

    /// Reads a POST's stream until the response `id`, resuming with GET + `Last-Event-ID` if it breaks off (the
    /// older revisions only: 2026-07-28 has no resumption).
    async fn response_from_stream(&self, mut s: SseStream, id: i64) -> Result<Option<Value>> {
        let mut resumes = 0;
        loop {
            while let Some(ev) = s.next_event().await {
                if ev.data.trim().is_empty() {
                    continue;
                }
                if let Some(found) = parse(&ev.data)
                    .ok()
                    .as_ref()
                    .and_then(|v| find_response(v, id))
                {
                    return Ok(Some(found));
                }
            }
            let Some(last) = s.last_event_id.clone() else {
                return Ok(None);
            };
            resumes += 1;
            if resumes > MAX_RESUMES || matches!(self.era(), Era::Modern(_)) {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(s.retry_ms.unwrap_or(1000))).await;
            let token = self.auth.current().await?;
            let retry = s.retry_ms;
            match self
                .transport
                .get_stream(token.as_ref(), Some(&last))
                .await?
            {
                Some(next) => {
                    s = next;
                    s.retry_ms = s.retry_ms.or(retry);
                    s.last_event_id.get_or_insert(last);
                }
                None => return Ok(None),
            }
        }
    }

    /// Sends a notification.
    pub async fn notify(&self, method: &str, params: Option<Value>) -> Result<()> {
        let mut msg = json!({"jsonrpc": "2.0", "method": method});
        if let Some(p) = params {
            msg["params"] = p;
        }
        self.send(&msg.to_string()).await.map(|_| ())
    }

    /// Ends the session (older revisions; a modern server has none).
    pub async fn close(&self) {
        let token = self.auth.current().await.ok().flatten();
        self.transport.close(token.as_ref()).await;
    }
}

/// Whether an error body is a JSON-RPC response (with an `error` or `result`).
fn is_jsonrpc_response(body: &str) -> bool {
    serde_json::from_str::<Value>(body).is_ok_and(|v| {
        v.get("jsonrpc").is_some() && (v.get("error").is_some() || v.get("result").is_some())
    })
}

fn parse(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| Error::Protocol {
        reason: format!("invalid JSON ({e})"),
    })
}

/// The response with `id` in a message or batch.
fn find_response(v: &Value, id: i64) -> Option<Value> {
    match v {
        Value::Array(items) => items.iter().find_map(|i| find_response(i, id)),
        Value::Object(o)
            if o.get("id").and_then(Value::as_i64) == Some(id)
                && (o.contains_key("result") || o.contains_key("error")) =>
        {
            Some(v.clone())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cache::Store;
    use crate::mock::{MockServer, Resp};
    use crate::LoginOptions;

    fn sse(body: &str) -> Resp {
        Resp {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            body: body.into(),
        }
    }

    /// A server whose POST stream breaks off after a notification; the response comes on the resumed GET.
    async fn server() -> MockServer {
        MockServer::start(|req, _| match req.method.as_str() {
            "POST" if req.body.contains("\"initialize\"") => Resp::json(
                200,
                json!({"jsonrpc": "2.0", "id": 1, "result": {"protocolVersion": "2025-06-18", "capabilities": {}, "serverInfo": {"name": "m", "version": "0"}}}),
            )
            .with_header("mcp-session-id", "sess-1"),
            "POST" if req.body.contains("notifications/") => Resp::status(202),
            "POST" => sse("retry: 20\nid: ev-1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n: comment\n\n"),
            "GET" if req.header("last-event-id") == Some("ev-1") => {
                sse("id: ev-2\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\ndata: \"result\":{\"tools\":[]}}\n\n")
            }
            _ => Resp::status(405),
        })
        .await
    }

    #[tokio::test]
    async fn initialize_then_resumed_stream() {
        let srv = server().await;
        let home = tempfile::tempdir().unwrap();
        let url = Url::parse(&format!("{}/mcp", srv.base)).unwrap();
        let auth = Authenticator::new(
            crate::http_client().unwrap(),
            Store::open(Some(home.path().into())).unwrap(),
            url,
            LoginOptions::default(),
        );
        let client = McpClient::new(Arc::new(auth));
        client.initialize().await.unwrap();
        assert_eq!(client.list_tools().await.unwrap(), Vec::<Value>::new());
        let reqs = srv.requests();
        assert_eq!(reqs[0].header("accept"), Some(ACCEPT));
        assert_eq!(reqs[1].header("mcp-session-id"), Some("sess-1"));
        assert_eq!(reqs[1].header("mcp-protocol-version"), Some("2025-06-18"));
        let get = reqs.iter().find(|r| r.method == "GET").unwrap();
        assert_eq!(get.header("last-event-id"), Some("ev-1"));
        assert!(reqs.iter().all(|r| r.header("authorization").is_none()));
    }
}
