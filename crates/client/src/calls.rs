//! The MCP operations of [`McpClient`], in whichever revision the server speaks: MCP 2026-07-28 first
//! (`server/discover` with the `_meta` envelope, "Versioning" §Backward Compatibility), falling back to
//! `initialize` for older servers; `tools/list` without the tools whose `x-mcp-header` annotations are invalid;
//! `tools/call` with their `Mcp-Param-*` headers ("Transports" §Custom Headers from Tool Parameters); and multi
//! round-trip requests (`input_required` results answered through the client's [`crate::input::InputProvider`],
//! then the request retried with a new id, SEP-2322).

use crate::input::unanswered;
use crate::mcp::McpClient;
use crate::modern::{self, DiscoverOutcome, Era, ResultKind, MODERN_VERSION};
use crate::protocol::initialize_params;
use crate::{Error, Result};
use serde_json::{json, Map, Value};

/// Rounds of input one request may take before the client gives up.
pub const MAX_INPUT_ROUNDS: u32 = 8;
/// Pages of `tools/list` followed.
const MAX_PAGES: u32 = 100;

/// A tool the client refuses, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedTool {
    /// Its name.
    pub name: String,
    /// Why.
    pub reason: String,
}

impl McpClient {
    /// Starts talking to the server: `server/discover` in 2026-07-28 (retried once with a version the server
    /// lists in `UnsupportedProtocolVersion`); on any answer that is neither a `DiscoverResult` listing that
    /// version nor a recognised modern error, `initialize` as in 2025-11-25. Returns the discover or initialize result.
    pub async fn connect(&self) -> Result<Value> {
        let mut version = MODERN_VERSION.to_owned();
        for _ in 0..2 {
            self.set_era(Era::Modern(version.clone()));
            let outcome = match self.request_once("server/discover", json!({}), &[]).await {
                Ok(result) if modern::discover_lists(&result, &version) => return Ok(result),
                Ok(_) => DiscoverOutcome::Legacy,
                Err(Error::JsonRpc {
                    code,
                    message,
                    data,
                }) => modern::classify_discover(Some(
                    &json!({"code": code, "message": message, "data": data}),
                )),
                Err(Error::UnexpectedStatus { status, .. }) if (400..500).contains(&status) => {
                    DiscoverOutcome::Legacy
                }
                Err(Error::Protocol { .. }) => DiscoverOutcome::Legacy,
                Err(e) => return Err(e),
            };
            match outcome {
                DiscoverOutcome::RetryWith(v) => version = v,
                _ => break,
            }
        }
        tracing::debug!("the server does not speak {MODERN_VERSION}; falling back to initialize");
        self.set_era(Era::Legacy);
        self.initialize().await
    }

    /// `initialize`, then `notifications/initialized` (MCP 2025-11-25 "Lifecycle").
    pub async fn initialize(&self) -> Result<Value> {
        let result = self
            .request_once("initialize", initialize_params(), &[])
            .await?;
        if let Some(v) = result.get("protocolVersion").and_then(Value::as_str) {
            self.transport().set_protocol_version(v);
        }
        self.notify("notifications/initialized", None).await?;
        Ok(result)
    }

    /// A request, following `input_required` results: each round's input requests are answered and the original
    /// params retried with `inputResponses` and the `requestState` echoed byte for byte (SEP-2322).
    pub async fn request(&self, method: &str, params: Value) -> Result<Value> {
        self.request_with(method, params, &[]).await
    }

    /// [`McpClient::request`] with extra headers on every round.
    pub async fn request_with(
        &self,
        method: &str,
        params: Value,
        extra: &[(String, String)],
    ) -> Result<Value> {
        let mut current = params.clone();
        for _ in 0..MAX_INPUT_ROUNDS {
            let result = self.request_once(method, current, extra).await?;
            let ResultKind::InputRequired {
                input_requests,
                request_state,
            } = modern::result_kind(&result)
            else {
                return Ok(result);
            };
            if !modern::MRTR_METHODS.contains(&method) {
                return Err(Error::Protocol {
                    reason: format!("an input_required result to {method}, which may not have one"),
                });
            }
            let responses = if input_requests.is_empty() {
                Map::new()
            } else {
                match self.inputs() {
                    Some(p) => p.answer(method, &input_requests)?,
                    None => return Err(unanswered(method, &input_requests)),
                }
            };
            current = modern::retry_params(&params, responses, request_state.as_deref());
        }
        Err(Error::Protocol {
            reason: format!(
                "the server still asked for input after {MAX_INPUT_ROUNDS} rounds of {method}"
            ),
        })
    }

    /// Every tool the server lists (`tools/list`, following `nextCursor`), and, on 2026-07-28, those left out
    /// because their `x-mcp-header` annotations are invalid.
    pub async fn list_tools_checked(&self) -> Result<(Vec<Value>, Vec<RefusedTool>)> {
        let mut tools = Vec::new();
        let mut refused = Vec::new();
        let mut cursor: Option<String> = None;
        let modern_era = matches!(self.era(), Era::Modern(_));
        for _ in 0..MAX_PAGES {
            let params = cursor.as_ref().map_or(json!({}), |c| json!({"cursor": c}));
            let r = self.request("tools/list", params).await?;
            for t in r
                .get("tools")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let schema = t.get("inputSchema").unwrap_or(&Value::Null);
                match modern::param_headers(schema) {
                    Err(e) if modern_era => refused.push(RefusedTool {
                        name: t
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("?")
                            .to_owned(),
                        reason: e.to_string(),
                    }),
                    _ => tools.push(t.clone()),
                }
            }
            cursor = r
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        Ok((tools, refused))
    }

    /// The usable tools, schemas exactly as the server sent them; refused ones are named on stderr.
    pub async fn list_tools(&self) -> Result<Vec<Value>> {
        let (tools, refused) = self.list_tools_checked().await?;
        for r in refused {
            eprintln!("warning: leaving out the tool {:?}: {}", r.name, r.reason);
        }
        Ok(tools)
    }

    /// `tools/call`. On 2026-07-28 the tool's definition is looked up first, for its `Mcp-Param-*` headers; a
    /// tool with invalid annotations is refused; a `HeaderMismatch` answer makes the client look the tool up again
    /// and retry once ("Transports" §Client Behavior).
    pub async fn call_tool(&self, name: &str, arguments: Value) -> Result<Value> {
        let params = json!({"name": name, "arguments": arguments});
        if !matches!(self.era(), Era::Modern(_)) {
            return self.request("tools/call", params).await;
        }
        let extra = self.param_headers_of(name, &arguments).await?;
        match self
            .request_with("tools/call", params.clone(), &extra)
            .await
        {
            Err(Error::JsonRpc { code, .. }) if code == modern::HEADER_MISMATCH => {
                let extra = self.param_headers_of(name, &arguments).await?;
                self.request_with("tools/call", params, &extra).await
            }
            other => other,
        }
    }

    /// The `Mcp-Param-*` headers of a call of `name`, from its listed definition; a refused tool is an error.
    async fn param_headers_of(
        &self,
        name: &str,
        arguments: &Value,
    ) -> Result<Vec<(String, String)>> {
        let (tools, refused) = self.list_tools_checked().await?;
        if let Some(r) = refused.into_iter().find(|r| r.name == name) {
            return Err(Error::InvalidTool {
                name: r.name,
                reason: r.reason,
            });
        }
        let schema = tools
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|t| t.get("inputSchema"));
        Ok(schema
            .and_then(|s| modern::param_headers(s).ok())
            .map(|hs| modern::param_header_values(&hs, arguments))
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cache::Store;
    use crate::input::Preset;
    use crate::mock::{MockServer, Req, Resp};
    use crate::{Authenticator, LoginOptions};
    use std::sync::Arc;

    fn client(srv: &MockServer, home: &std::path::Path) -> McpClient {
        let url = url::Url::parse(&format!("{}/mcp", srv.base)).unwrap();
        let auth = Authenticator::new(
            crate::http_client().unwrap(),
            Store::open(Some(home.into())).unwrap(),
            url,
            LoginOptions::default(),
        );
        McpClient::new(Arc::new(auth))
    }

    fn body(req: &Req) -> Value {
        serde_json::from_str(&req.body).unwrap()
    }

    /// A 2026-07-28-only server: refuses the first version it sees once, then serves tools, one of them with
    /// custom headers and one invalid, and a tool that needs a confirmation first.
    fn modern_server(req: &Req, _: &str) -> Resp {
        let v = body(req);
        let id = v["id"].clone();
        let ok =
            |result: Value| Resp::json(200, json!({"jsonrpc": "2.0", "id": id, "result": result}));
        match v["method"].as_str().unwrap_or("") {
            "server/discover" if v["id"] == 1 => Resp::json(
                400,
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32022, "message": "no", "data": {"supported": ["2026-07-28"]}}}),
            ),
            "server/discover" => {
                ok(json!({"supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}}}))
            }
            "tools/list" => ok(json!({"resultType": "complete", "tools": [
                {"name": "sql", "inputSchema": {"type": "object", "properties": {"region": {"type": "string", "x-mcp-header": "Region"}}}},
                {"name": "bad", "inputSchema": {"type": "object", "properties": {"d": {"type": "object", "x-mcp-header": "D"}}}},
                {"name": "confirm", "inputSchema": {"type": "object", "$defs": {"a": {"$anchor": "x"}}}}
            ]})),
            "tools/call"
                if v["params"]["name"] == "confirm"
                    && v["params"].get("inputResponses").is_none() =>
            {
                ok(json!({
                "resultType": "input_required", "requestState": "s{1}",
                "inputRequests": {"ok": {"method": "elicitation/create", "params": {"message": "Sure?"}}}}))
            }
            "tools/call" => {
                ok(json!({"resultType": "complete", "content": [], "echo": v["params"]}))
            }
            _ => Resp::json(
                404,
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "no"}}),
            ),
        }
    }

    #[tokio::test]
    async fn modern_server_gets_meta_headers_and_retries() {
        let srv = MockServer::start(modern_server).await;
        let home = tempfile::tempdir().unwrap();
        let answers = json!({"ok": {"action": "accept", "content": {}}});
        let c = client(&srv, home.path()).with_inputs(Arc::new(Preset::new(
            answers.as_object().cloned().unwrap(),
            None,
        )));
        c.connect().await.unwrap();
        assert_eq!(c.era(), Era::Modern(MODERN_VERSION.into()));
        let tools = c.list_tools().await.unwrap();
        let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
        assert_eq!(names, vec!["sql", "confirm"]);
        assert_eq!(tools[1]["inputSchema"]["$defs"]["a"]["$anchor"], "x");
        c.call_tool("sql", json!({"region": "eu west"}))
            .await
            .unwrap();
        assert!(matches!(
            c.call_tool("bad", json!({})).await,
            Err(Error::InvalidTool { .. })
        ));
        let r = c.call_tool("confirm", json!({})).await.unwrap();
        assert_eq!(r["echo"]["requestState"], "s{1}");
        assert_eq!(r["echo"]["inputResponses"]["ok"]["action"], "accept");
        let reqs = srv.requests();
        assert!(reqs.iter().all(|r| r.header("mcp-session-id").is_none()));
        for r in &reqs {
            let b = body(r);
            assert_eq!(r.header("mcp-method"), b["method"].as_str());
            assert_eq!(
                r.header("mcp-protocol-version"),
                b["params"]["_meta"][modern::META_PROTOCOL_VERSION].as_str()
            );
        }
        let call = reqs
            .iter()
            .find(|r| body(r)["params"]["name"] == "sql")
            .unwrap();
        assert_eq!(call.header("mcp-name"), Some("sql"));
        assert_eq!(call.header("mcp-param-region"), Some("eu west"));
        let confirms: Vec<Value> = reqs
            .iter()
            .map(body)
            .filter(|b| b["params"]["name"] == "confirm")
            .collect();
        assert_eq!(confirms.len(), 2);
        assert_ne!(confirms[0]["id"], confirms[1]["id"]);
        assert!(confirms[0]["params"].get("requestState").is_none());
    }

    #[tokio::test]
    async fn input_nobody_can_give_is_named() {
        let srv = MockServer::start(modern_server).await;
        let home = tempfile::tempdir().unwrap();
        let c = client(&srv, home.path());
        c.connect().await.unwrap();
        let Err(Error::InputRequired { method, wants }) = c.call_tool("confirm", json!({})).await
        else {
            panic!("expected InputRequired");
        };
        assert_eq!(method, "tools/call");
        assert!(wants.contains("elicitation/create") && wants.contains("Sure?"));
    }

    #[tokio::test]
    async fn older_server_falls_back_to_initialize() {
        let srv = MockServer::start(|req, _| {
            let v = body(req);
            match v["method"].as_str().unwrap_or("") {
                "initialize" => Resp::json(200, json!({"jsonrpc": "2.0", "id": v["id"], "result": {"protocolVersion": "2025-06-18", "capabilities": {}}}))
                    .with_header("mcp-session-id", "s1"),
                _ if req.header("mcp-session-id").is_none() => Resp::json(400, json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32000, "message": "Bad Request: No valid session ID provided"}})),
                "notifications/initialized" => Resp::status(202),
                _ => Resp::json(200, json!({"jsonrpc": "2.0", "id": v["id"], "result": {"tools": [{"name": "t", "inputSchema": {"type": "object"}}]}})),
            }
        })
        .await;
        let home = tempfile::tempdir().unwrap();
        let c = client(&srv, home.path());
        c.connect().await.unwrap();
        assert_eq!(c.era(), Era::Legacy);
        assert_eq!(c.list_tools().await.unwrap().len(), 1);
        let reqs = srv.requests();
        let last = reqs.last().unwrap();
        assert_eq!(last.header("mcp-protocol-version"), Some("2025-06-18"));
        assert!(body(last)["params"].get("_meta").is_none());
    }

    /// The first listing lacks the annotation; the server then answers the call with `HeaderMismatch`, and the
    /// client lists again and retries with the header.
    #[tokio::test]
    async fn header_mismatch_lists_again_and_retries_once() {
        let lists = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let l = lists.clone();
        let srv = MockServer::start(move |req, _| {
            let v = body(req);
            let id = v["id"].clone();
            let ok = |result: Value| Resp::json(200, json!({"jsonrpc": "2.0", "id": id, "result": result}));
            match v["method"].as_str().unwrap_or("") {
                "server/discover" => ok(json!({"supportedVersions": ["2026-07-28"]})),
                "tools/list" => {
                    let n = l.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let region = if n == 0 { json!({"type": "string"}) } else { json!({"type": "string", "x-mcp-header": "Region"}) };
                    ok(json!({"tools": [{"name": "t", "inputSchema": {"type": "object", "properties": {"region": region}}}]}))
                }
                _ if req.header("mcp-param-region").is_none() => Resp::json(
                    400,
                    json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32020, "message": "missing Mcp-Param-Region"}}),
                ),
                _ => ok(json!({"content": []})),
            }
        })
        .await;
        let home = tempfile::tempdir().unwrap();
        let c = client(&srv, home.path());
        c.connect().await.unwrap();
        c.call_tool("t", json!({"region": "eu"})).await.unwrap();
        assert_eq!(lists.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
