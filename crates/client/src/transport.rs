//! The Streamable HTTP transport of MCP (MCP "Transports", 2025-06-18 / 2025-11-25 / 2026-07-28): one JSON-RPC
//! message per POST with `Accept: application/json, text/event-stream`; the answer is JSON, an SSE stream, or 202.
//! A message carrying the 2026-07-28 `_meta` goes out with the headers mirrored from its body
//! ([`crate::modern::standard_headers`]) and no session; otherwise `Mcp-Session-Id` and `MCP-Protocol-Version`
//! follow the initialize answer. No authorization here: [`crate::mcp::McpClient`] adds it on top, and
//! [`crate::probe`] uses this transport unauthenticated.

use crate::error::snippet;
use crate::modern;
use crate::protocol::ACCEPT;
use crate::secret::AccessToken;
use crate::{Error, Result};
use portcullis_proto::www_authenticate::BearerChallenge;
use serde_json::Value;
use std::sync::Mutex;
use url::Url;

/// Reconnections of one interrupted SSE stream.
pub(crate) const MAX_RESUMES: u32 = 5;

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

/// Whether an error body is a JSON-RPC response (with an `error` or `result`).
fn is_jsonrpc_response(body: &str) -> bool {
    serde_json::from_str::<Value>(body).is_ok_and(|v| {
        v.get("jsonrpc").is_some() && (v.get("error").is_some() || v.get("result").is_some())
    })
}
