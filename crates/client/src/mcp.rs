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
use crate::input::InputProvider;
use crate::modern::{self, Era};
pub use crate::protocol::{initialize_params, ACCEPT};
use crate::secret::AccessToken;
use crate::transport::MAX_RESUMES;
pub use crate::transport::{Reply, SseEvent, SseStream, Transport};
use crate::{Error, Result};
use portcullis_proto::Scope;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Step-ups allowed for one message before giving up.
pub const MAX_STEP_UPS: u32 = 3;
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
    use url::Url;

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
