//! Messages of the legacy revisions (2024-11-05 to 2025-11-25), and of clients that name none, like the
//! seed's bare `tools/list`: `initialize`, `ping`, batches; results without `resultType` or cache hints,
//! byte for byte as before MCP 2026-07-28 was added.

use super::envelope::LEGACY_VERSIONS;
use super::rpc::{self, Message, Outcome};
use super::tools;
use crate::state::AppState;
use portcullis_guard::VerifiedToken;
use serde_json::{json, Value};

/// The most messages of one batch that are answered.
const MAX_BATCH: usize = 100;

/// Dispatches one JSON-RPC message to its method (JSON-RPC 2.0 §4, §5; MCP "Lifecycle", "Tools").
pub(crate) async fn dispatch(s: &AppState, p: &VerifiedToken, msg: &Value) -> Outcome {
    let (id, method, params) = match rpc::read(msg) {
        Message::Request { id, method, params } => (id, method, params),
        Message::Notification => return Outcome::Notification,
        Message::Invalid { id, message } => {
            return Outcome::Reply(rpc::error(id, -32600, message).to_string())
        }
    };
    let result = match method {
        "initialize" => Ok(initialize(params)),
        "ping" => Ok(json!({})),
        "tools/list" => return Outcome::Reply(rpc::result(&id, &tools::TOOLS_LIST)),
        "tools/call" => {
            let name = params.get("name").and_then(Value::as_str).unwrap_or("");
            if let Some(scope) = tools::missing_scope(s, p, name) {
                return Outcome::Forbidden(scope);
            }
            tools::call(s, p, params).await
        }
        _ => Err((-32601, format!("method not found: {method}"))),
    };
    Outcome::Reply(match result {
        Ok(r) => rpc::result(&id, &r.to_string()),
        Err((code, message)) => rpc::error(id, code, &message).to_string(),
    })
}

/// The `initialize` result: the client's version when this server speaks it, else the newest legacy one
/// (2025-11-25 "Lifecycle" §Version Negotiation; a modern revision is never offered here).
fn initialize(params: &Value) -> Value {
    let asked = params
        .get("protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let version = LEGACY_VERSIONS
        .iter()
        .find(|v| **v == asked)
        .copied()
        .unwrap_or(LEGACY_VERSIONS[0]);
    json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": tools::server_info(),
        "instructions": tools::INSTRUCTIONS,
    })
}

/// The replies to a batch (at most [`MAX_BATCH`] messages): their JSON array, `Ok(None)` when none needs an
/// answer, `Err` for the first message refused outright (a missing tool scope).
pub(crate) async fn batch(
    s: &AppState,
    p: &VerifiedToken,
    batch: &[Value],
) -> Result<Option<String>, Outcome> {
    let mut out = Vec::new();
    for m in batch.iter().take(MAX_BATCH) {
        match dispatch(s, p, m).await {
            Outcome::Reply(r) | Outcome::Refused(_, r) => out.push(r),
            Outcome::Notification => {}
            refused @ Outcome::Forbidden(_) => return Err(refused),
        }
    }
    if out.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!("[{}]", out.join(","))))
}
