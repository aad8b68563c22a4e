//! What the built-in MCP server offers, the same in every protocol revision: its identity and instructions,
//! its tools (MCP "Tools") and what calling them does.

use crate::state::AppState;
use portcullis_guard::VerifiedToken;
use portcullis_proto::Scope;
use serde_json::{json, Value};
use std::sync::LazyLock;

/// The server's `Implementation` (`serverInfo`).
pub(crate) fn server_info() -> Value {
    json!({"name": "portcullis", "title": "Portcullis built-in MCP server", "version": env!("CARGO_PKG_VERSION")})
}

/// The `instructions` of `initialize` and `server/discover`.
pub(crate) const INSTRUCTIONS: &str =
    "A demonstration MCP server protected by Portcullis. Call whoami to see who you are.";

struct Tool {
    name: &'static str,
    description: &'static str,
    /// The scope needed when the configured catalogue does not name this tool.
    scope: &'static str,
    schema: fn() -> Value,
}

/// The tools, in the one order every listing uses (2026-07-28 "Tools": a deterministic order lets clients
/// and prompt caches reuse a listing).
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

/// The tool definitions, in order.
pub(crate) fn definitions() -> Value {
    TOOLS
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "description": t.description,
                "inputSchema": (t.schema)(),
            })
        })
        .collect()
}

/// The legacy `tools/list` result, serialized once: the tool list is fixed at compile time, so every call
/// sends the same bytes (issue 7: no per-request building of the schemas).
pub(crate) static TOOLS_LIST: LazyLock<String> =
    LazyLock::new(|| json!({"tools": definitions()}).to_string());

/// The scope the caller lacks for calling tool `name`, if any. The configured scope catalogue decides which
/// scope a tool needs; the built-in default applies when the catalogue does not mention the tool. An unknown
/// tool needs nothing here (the call answers "unknown tool").
pub(crate) fn missing_scope(s: &AppState, p: &VerifiedToken, name: &str) -> Option<Scope> {
    let tool = TOOLS.iter().find(|t| t.name == name)?;
    let needed = s
        .authz
        .core()
        .config()
        .scope_for_tool(tool.name)
        .unwrap_or(tool.scope);
    if p.scope.contains(needed) {
        return None;
    }
    Some(Scope::from_tokens([needed]).unwrap_or_default())
}

/// Runs a `tools/call` (scope already checked): the `CallToolResult`, or a JSON-RPC error code and message.
pub(crate) async fn call(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_is_fixed_and_ordered() {
        let names: Vec<String> = definitions()
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(names, ["whoami", "echo", "server_stats"]);
        assert_eq!(*TOOLS_LIST, json!({"tools": definitions()}).to_string());
    }
}
