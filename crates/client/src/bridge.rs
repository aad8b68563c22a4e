//! A stdio ↔ Streamable HTTP bridge, for MCP clients that only speak stdio (MCP "Transports" §stdio): each
//! newline-delimited JSON-RPC message read on stdin is POSTed unchanged; every message the server sends back —
//! JSON bodies, SSE events of a POST, and the events of the GET stream (server notifications and requests) — is
//! written to stdout as one line. Authorization and refresh happen underneath ([`McpClient::send`]). Nothing
//! but protocol messages is written to stdout; logs go to stderr.
//!
//! Either revision on either side (MCP 2026-07-28 "Versioning" §Compatibility Matrix): a message carrying the
//! modern `_meta` goes out with the 2026-07-28 headers (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, and the
//! `Mcp-Param-*` headers of the tools the bridge has seen listed); a modern client facing an older server gets
//! that server's error to `server/discover` and falls back to `initialize` itself. An older client facing a
//! server that refuses `initialize` but answers `server/discover` is translated: its `initialize` is answered from
//! the discover result, `notifications/initialized` is dropped, and its requests get the `_meta` envelope.

use crate::mcp::{McpClient, Reply, SseStream};
use crate::modern::{self, ParamHeader, MODERN_VERSION};
use crate::Result;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Runs the bridge until stdin closes, then waits for answers still in flight and ends the session.
pub async fn run<R, W>(client: Arc<McpClient>, input: R, output: W) -> Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(write_lines(rx, output));
    let mut lines = input.lines();
    let mut tasks = JoinSet::new();
    let mut get_stream_started = false;
    let state = Arc::new(State::default());
    while let Ok(Some(line)) = lines.next_line().await {
        let line = line.trim_end_matches('\r').to_owned();
        if line.trim().is_empty() {
            continue;
        }
        let msg: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                let _ = tx.send(json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": format!("parse error: {e}")}}).to_string());
                continue;
            }
        };
        let method = msg
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if method == "initialize" {
            // Handled inline: the session id and protocol version must be known before anything else is sent.
            initialize(&client, &state, &line, &msg, &tx).await;
            continue;
        }
        let Some((line, msg)) = state.outgoing(line, msg) else {
            continue;
        };
        let (c, t, l, m, st) = (client.clone(), tx.clone(), line, msg, state.clone());
        tasks.spawn(async move { forward(&c, &st, &l, &m, &t).await });
        if method == "notifications/initialized" && !get_stream_started {
            get_stream_started = true;
            let (c, t) = (client.clone(), tx.clone());
            tokio::spawn(async move { listen(&c, &t).await });
        }
    }
    while tasks.join_next().await.is_some() {}
    client.close().await;
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    Ok(())
}

async fn write_lines<W: AsyncWrite + Unpin>(mut rx: mpsc::UnboundedReceiver<String>, mut out: W) {
    while let Some(line) = rx.recv().await {
        if out.write_all(line.as_bytes()).await.is_err()
            || out.write_all(b"\n").await.is_err()
            || out.flush().await.is_err()
        {
            return;
        }
    }
}

/// A message as one stdout line: verbatim when it has no newline, else re-serialised compactly.
fn one_line(text: &str) -> Option<String> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if !t.contains('\n') {
        return Some(t.to_owned());
    }
    serde_json::from_str::<Value>(t).ok().map(|v| v.to_string())
}

/// What the bridge remembers across messages.
#[derive(Debug, Default)]
struct State {
    /// Set when an older stdio client is translated for a modern-only server: the version to put in `_meta`.
    translated: Mutex<Option<String>>,
    /// The `x-mcp-header` annotations of the tools seen in modern `tools/list` results, by tool name.
    tool_headers: Mutex<HashMap<String, Vec<ParamHeader>>>,
}

impl State {
    /// The message as it goes to the server, or `None` when it is not sent at all.
    fn outgoing(&self, line: String, mut msg: Value) -> Option<(String, Value)> {
        let Some(version) = self.translated.lock().ok().and_then(|g| g.clone()) else {
            return Some((line, msg));
        };
        let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
        if method == "notifications/initialized" {
            return None;
        }
        if method.is_empty() || modern::meta_version(&msg).is_some() {
            return Some((line, msg));
        }
        let params = msg.get("params").cloned().unwrap_or(Value::Null);
        msg["params"] = modern::with_meta(params, &version, &json!({}));
        Some((msg.to_string(), msg))
    }

    /// The `Mcp-Param-*` headers of a modern `tools/call`.
    fn param_headers(&self, msg: &Value) -> Vec<(String, String)> {
        if msg.get("method").and_then(Value::as_str) != Some("tools/call")
            || modern::meta_version(msg).is_none()
        {
            return Vec::new();
        }
        let name = msg.pointer("/params/name").and_then(Value::as_str);
        let args = msg.pointer("/params/arguments").unwrap_or(&Value::Null);
        let map = self.tool_headers.lock();
        match (name, map) {
            (Some(n), Ok(m)) => m
                .get(n)
                .map(|hs| modern::param_header_values(hs, args))
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Remembers the annotations of the tools in a modern `tools/list` answer.
    fn note_tools(&self, request: &Value, answer: &str) {
        if request.get("method").and_then(Value::as_str) != Some("tools/list")
            || modern::meta_version(request).is_none()
        {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(answer) else {
            return;
        };
        let Ok(mut map) = self.tool_headers.lock() else {
            return;
        };
        for t in v
            .pointer("/result/tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(name), Some(schema)) =
                (t.get("name").and_then(Value::as_str), t.get("inputSchema"))
            else {
                continue;
            };
            if let Ok(hs) = modern::param_headers(schema) {
                map.insert(name.to_owned(), hs);
            }
        }
    }
}

/// An older client's `initialize`: forwarded; if the server refuses it but answers `server/discover` in
/// 2026-07-28, answered from that instead and the client's later messages translated.
async fn initialize(
    client: &McpClient,
    state: &State,
    line: &str,
    msg: &Value,
    tx: &mpsc::UnboundedSender<String>,
) {
    let refused = match client.send(line).await {
        Ok(Reply::Json(text)) => {
            let v: Option<Value> = serde_json::from_str(&text).ok();
            if v.as_ref().is_some_and(|v| v.get("error").is_none()) {
                forward_text(client, state, msg, &text, tx);
                return;
            }
            Some(text)
        }
        Ok(Reply::Stream(s)) => {
            let note = |text: &str| set_version(client, text);
            pump(client, s, tx, &note).await;
            return;
        }
        Ok(_) => None,
        Err(e) => {
            tracing::debug!("initialize refused ({e}); trying server/discover");
            None
        }
    };
    let probe = modern::with_meta(json!({}), MODERN_VERSION, &json!({}));
    let discover = json!({"jsonrpc": "2.0", "id": "portcullis-bridge-discover", "method": "server/discover", "params": probe});
    let answer = match client.send(&discover.to_string()).await {
        Ok(Reply::Json(text)) => serde_json::from_str::<Value>(&text).ok(),
        _ => None,
    };
    let Some(result) = answer.and_then(|a| a.get("result").cloned()) else {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let text = refused.unwrap_or_else(|| json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": "the server refused initialize"}}).to_string());
        if let Some(l) = one_line(&text) {
            let _ = tx.send(l);
        }
        return;
    };
    if let Ok(mut g) = state.translated.lock() {
        *g = Some(MODERN_VERSION.to_owned());
    }
    let wanted = msg
        .pointer("/params/protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or(crate::discovery::PROTOCOL_VERSION);
    let server_info = result
        .pointer("/_meta/io.modelcontextprotocol~1serverInfo")
        .or_else(|| result.get("serverInfo"))
        .cloned()
        .unwrap_or_else(|| json!({"name": "mcp-server", "version": "0"}));
    let mut init = json!({"protocolVersion": wanted, "capabilities": result.get("capabilities").cloned().unwrap_or_else(|| json!({})), "serverInfo": server_info});
    if let Some(i) = result.get("instructions") {
        init["instructions"] = i.clone();
    }
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let _ = tx.send(json!({"jsonrpc": "2.0", "id": id, "result": init}).to_string());
}

/// Notes the protocol version of an `initialize` answer for the transport's header.
fn set_version(client: &McpClient, text: &str) {
    if let Some(v) = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.pointer("/result/protocolVersion").cloned())
    {
        if let Some(v) = v.as_str() {
            client.transport().set_protocol_version(v);
        }
    }
}

/// A JSON answer to `request`, written out.
fn forward_text(
    client: &McpClient,
    state: &State,
    request: &Value,
    text: &str,
    tx: &mpsc::UnboundedSender<String>,
) {
    if request.get("method").and_then(Value::as_str) == Some("initialize") {
        set_version(client, text);
    }
    state.note_tools(request, text);
    if let Some(l) = one_line(text) {
        let _ = tx.send(l);
    }
}

async fn forward(
    client: &McpClient,
    state: &State,
    line: &str,
    msg: &Value,
    tx: &mpsc::UnboundedSender<String>,
) {
    let note = |text: &str| state.note_tools(msg, text);
    let extra = state.param_headers(msg);
    match client.send_with(line, &extra).await {
        Ok(Reply::Json(text)) => forward_text(client, state, msg, &text, tx),
        Ok(Reply::Stream(s)) => pump(client, s, tx, &note).await,
        Ok(_) => {}
        Err(e) => {
            eprintln!("portcullis bridge: {e}");
            if let Some(id) = msg.get("id") {
                let _ = tx.send(json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": e.to_string()}}).to_string());
            }
        }
    }
}

/// Forwards a stream's events, resuming it (GET + `Last-Event-ID`) when it breaks off after an event id.
async fn pump(
    client: &McpClient,
    mut s: SseStream,
    tx: &mpsc::UnboundedSender<String>,
    note: &(dyn Fn(&str) + Sync),
) {
    for _ in 0..5 {
        let mut got_response = false;
        while let Some(ev) = s.next_event().await {
            note(&ev.data);
            if let Some(l) = one_line(&ev.data) {
                got_response |= serde_json::from_str::<Value>(&l)
                    .is_ok_and(|v| v.get("result").is_some() || v.get("error").is_some());
                let _ = tx.send(l);
            }
        }
        let Some(last) = s.last_event_id.clone().filter(|_| !got_response) else {
            return;
        };
        tokio::time::sleep(Duration::from_millis(s.retry_ms.unwrap_or(1000))).await;
        let token = client.token().await.ok().flatten();
        match client
            .transport()
            .get_stream(token.as_ref(), Some(&last))
            .await
        {
            Ok(Some(next)) => s = next,
            _ => return,
        }
    }
}

/// The GET stream for server-initiated messages, reopened while the server keeps offering it.
async fn listen(client: &McpClient, tx: &mpsc::UnboundedSender<String>) {
    let mut last: Option<String> = None;
    for _ in 0..100 {
        let token = client.token().await.ok().flatten();
        let Ok(Some(mut s)) = client
            .transport()
            .get_stream(token.as_ref(), last.as_deref())
            .await
        else {
            return;
        };
        while let Some(ev) = s.next_event().await {
            if let Some(l) = one_line(&ev.data) {
                let _ = tx.send(l);
            }
        }
        last = s.last_event_id.clone().or(last);
        tokio::time::sleep(Duration::from_millis(s.retry_ms.unwrap_or(2000))).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cache::Store;
    use crate::mock::{MockServer, Resp};
    use crate::{Authenticator, LoginOptions};
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn lines_pass_through_unchanged() {
        let srv = MockServer::start(|req, _| {
            if req.method != "POST" {
                return Resp::status(405);
            }
            let v: Value = serde_json::from_str(&req.body).unwrap();
            match v.get("id") {
                None => Resp::status(202),
                Some(id) if v["method"] == "tools/list" => Resp {
                    status: 200,
                    headers: vec![("content-type".into(), "text/event-stream".into())],
                    body: format!("data: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}}\n\ndata: {{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"tools\":[]}}}}\n\n"),
                },
                Some(id) => Resp::json(200, json!({"jsonrpc": "2.0", "id": id, "result": {"protocolVersion": "2025-06-18"}})),
            }
        })
        .await;
        let home = tempfile::tempdir().unwrap();
        let url = url::Url::parse(&format!("{}/mcp", srv.base)).unwrap();
        let auth = Authenticator::new(
            crate::http_client().unwrap(),
            Store::open(Some(home.path().into())).unwrap(),
            url,
            LoginOptions::default(),
        );
        let client = Arc::new(McpClient::new(Arc::new(auth)));
        let input = concat!(
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}\n",
            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n",
            "\n",
            "not json\n",
            "{\"jsonrpc\":\"2.0\",\"id\":\"b\",\"method\":\"tools/list\"}\n",
        );
        let (w, mut r) = tokio::io::duplex(64 * 1024);
        run(client, input.as_bytes(), w).await.unwrap();
        let mut out = String::new();
        r.read_to_string(&mut out).await.unwrap();
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(lines
            .iter()
            .any(|v| v["id"] == 1 && v["result"]["protocolVersion"] == "2025-06-18"));
        assert!(lines
            .iter()
            .any(|v| v["id"].is_null() && v["error"]["code"] == -32700));
        assert!(lines.iter().any(|v| v["method"] == "notifications/message"));
        assert!(lines
            .iter()
            .any(|v| v["id"] == "b" && v["result"]["tools"].is_array()));
        // The stdin lines were POSTed byte for byte.
        let bodies: Vec<String> = srv
            .requests()
            .iter()
            .filter(|r| r.method == "POST")
            .map(|r| r.body.clone())
            .collect();
        assert!(bodies
            .contains(&"{\"jsonrpc\":\"2.0\",\"id\":\"b\",\"method\":\"tools/list\"}".to_owned()));
    }

    /// A 2026-07-28-only server: `initialize` is refused; every request must carry `_meta` and the headers.
    fn modern_only(req: &crate::mock::Req, _: &str) -> Resp {
        let v: Value = serde_json::from_str(&req.body).unwrap();
        let id = v["id"].clone();
        if crate::modern::meta_version(&v).is_none()
            || req.header("mcp-method") != v["method"].as_str()
        {
            return Resp::json(
                400,
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32020, "message": "headers"}}),
            );
        }
        let result = match v["method"].as_str().unwrap() {
            "server/discover" => {
                json!({"supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}},
                "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "modern", "version": "1"}}})
            }
            "tools/list" => {
                json!({"resultType": "complete", "tools": [{"name": "t", "inputSchema": {"type": "object",
                "properties": {"region": {"type": "string", "x-mcp-header": "Region"}}}}]})
            }
            _ => {
                json!({"resultType": "complete", "content": [], "region": req.header("mcp-param-region")})
            }
        };
        Resp::json(200, json!({"jsonrpc": "2.0", "id": id, "result": result}))
    }

    async fn bridge_lines(srv: &MockServer, input: &str) -> Vec<Value> {
        let home = tempfile::tempdir().unwrap();
        let url = url::Url::parse(&format!("{}/mcp", srv.base)).unwrap();
        let auth = Authenticator::new(
            crate::http_client().unwrap(),
            Store::open(Some(home.path().into())).unwrap(),
            url,
            LoginOptions::default(),
        );
        let client = Arc::new(McpClient::new(Arc::new(auth)));
        let (w, mut r) = tokio::io::duplex(64 * 1024);
        run(client, input.as_bytes(), w).await.unwrap();
        let mut out = String::new();
        r.read_to_string(&mut out).await.unwrap();
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn an_older_client_is_translated_for_a_modern_only_server() {
        let srv = MockServer::start(modern_only).await;
        let input = concat!(
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\"}}\n",
            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n",
            "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}\n",
        );
        let lines = bridge_lines(&srv, input).await;
        let init = lines.iter().find(|v| v["id"] == 1).unwrap();
        assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
        assert_eq!(init["result"]["serverInfo"]["name"], "modern");
        let list = lines.iter().find(|v| v["id"] == 2).unwrap();
        assert_eq!(list["result"]["tools"][0]["name"], "t");
        assert!(srv
            .requests()
            .iter()
            .all(|r| !r.body.contains("notifications/initialized")));
    }

    #[tokio::test]
    async fn a_modern_client_gets_the_headers_its_messages_need() {
        let srv = MockServer::start(modern_only).await;
        let meta = "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{}}";
        let input = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{{{meta}}}}}\n{{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{{\"name\":\"t\",\"arguments\":{{\"region\":\"eu\"}},{meta}}}}}\n"
        );
        let lines = bridge_lines(&srv, &input).await;
        assert!(lines
            .iter()
            .any(|v| v["id"] == 1 && v["result"]["tools"][0]["name"] == "t"));
        let call = lines.iter().find(|v| v["id"] == 2).unwrap();
        assert!(call["result"].get("content").is_some(), "{call}");
        let reqs = srv.requests();
        let call_req = reqs.iter().find(|r| r.body.contains("tools/call")).unwrap();
        assert_eq!(call_req.header("mcp-name"), Some("t"));
        assert_eq!(call_req.header("mcp-protocol-version"), Some("2026-07-28"));
    }

    #[test]
    fn listed_annotations_become_param_headers_of_later_calls() {
        let state = State::default();
        let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28"});
        let list =
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}});
        let answer = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "t", "inputSchema": {"type": "object",
            "properties": {"region": {"type": "string", "x-mcp-header": "Region"}}}}]}});
        state.note_tools(&list, &answer.to_string());
        let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "t", "arguments": {"region": "eu west"}, "_meta": meta}});
        assert_eq!(
            state.param_headers(&call),
            vec![("mcp-param-region".to_owned(), "eu west".to_owned())]
        );
        let mut older = call.clone();
        older["params"].as_object_mut().unwrap().remove("_meta");
        assert!(state.param_headers(&older).is_empty());
    }
}
