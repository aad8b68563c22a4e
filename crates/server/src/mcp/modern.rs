//! Messages of MCP 2026-07-28, served statelessly from what each request carries (the envelope was checked
//! by [`super::envelope`]): `server/discover`, `tools/list`, `tools/call`. Every result carries
//! `resultType: "complete"` and the server's identity in `_meta` ("Overview" §Result Responses, §`_meta`);
//! `server/discover` and `tools/list` carry cache hints ("Caching"). `initialize`, `ping` and every other
//! method are unknown here: 404 with `-32601` ("Transports" §Protocol Version Header).

use super::envelope::{MODERN_VERSIONS, SERVER_INFO_KEY};
use super::rpc::{self, Message, Outcome};
use super::tools;
use crate::state::AppState;
use axum::http::StatusCode;
use portcullis_guard::VerifiedToken;
use serde_json::{json, Value};
use std::sync::LazyLock;

/// How long a `server/discover` result may be reused: it changes only with the binary.
pub(crate) const DISCOVER_TTL_MS: u64 = 3_600_000;
/// How long a `tools/list` result may be reused: the tools are fixed at compile time, but an upgrade of the
/// server behind a load balancer should show within minutes.
pub(crate) const TOOLS_LIST_TTL_MS: u64 = 300_000;

/// The result `_meta`: the server's identity.
fn result_meta() -> Value {
    json!({SERVER_INFO_KEY: tools::server_info()})
}

/// The `server/discover` result, serialized once ("Discovery"). `supportedVersions` names the modern
/// revisions only: a version the client picks from it goes in the next request's envelope, and the legacy
/// revisions are reached through `initialize`, not through the envelope.
static DISCOVER: LazyLock<String> = LazyLock::new(|| {
    json!({
        "resultType": "complete",
        "supportedVersions": MODERN_VERSIONS,
        "capabilities": {"tools": {"listChanged": false}},
        "instructions": tools::INSTRUCTIONS,
        "_meta": result_meta(),
        "ttlMs": DISCOVER_TTL_MS,
        // The same for every caller: the server's identity and capabilities hold no user data.
        "cacheScope": "public",
    })
    .to_string()
});

/// The `tools/list` result, serialized once. `cacheScope` is public: the built-in server lists the same
/// tools to every caller (scopes are checked when a tool is called, not by hiding it).
static TOOLS_LIST: LazyLock<String> = LazyLock::new(|| {
    json!({
        "resultType": "complete",
        "tools": tools::definitions(),
        "_meta": result_meta(),
        "ttlMs": TOOLS_LIST_TTL_MS,
        "cacheScope": "public",
    })
    .to_string()
});

/// Dispatches one modern message.
pub(crate) async fn dispatch(s: &AppState, p: &VerifiedToken, msg: &Value) -> Outcome {
    let (id, method, params) = match rpc::read(msg) {
        Message::Request { id, method, params } => (id, method, params),
        Message::Notification => return Outcome::Notification,
        Message::Invalid { id, message } => {
            let body = rpc::error(id, -32600, message).to_string();
            return Outcome::Refused(StatusCode::BAD_REQUEST, body);
        }
    };
    match method {
        "server/discover" => Outcome::Reply(rpc::result(&id, &DISCOVER)),
        "tools/list" => Outcome::Reply(rpc::result(&id, &TOOLS_LIST)),
        "tools/call" => {
            let name = params.get("name").and_then(Value::as_str).unwrap_or("");
            if let Some(scope) = tools::missing_scope(s, p, name) {
                return Outcome::Forbidden(scope);
            }
            // Errors of the call itself stay in-band (200), as the SDKs answer them.
            Outcome::Reply(match tools::call(s, p, params).await {
                Ok(result) => rpc::result(&id, &complete(result)),
                Err((code, message)) => rpc::error(id, code, &message).to_string(),
            })
        }
        _ => {
            let body = rpc::error(id, -32601, &format!("method not found: {method}")).to_string();
            Outcome::Refused(StatusCode::NOT_FOUND, body)
        }
    }
}

/// `result` as a complete 2026-07-28 result: `resultType` and the server's identity added.
fn complete(mut result: Value) -> String {
    if let Some(obj) = result.as_object_mut() {
        obj.insert("resultType".into(), json!("complete"));
        obj.insert("_meta".into(), result_meta());
    }
    result.to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn discover_and_list_results_carry_result_type_and_cache_hints() {
        let discover: Value = serde_json::from_str(&DISCOVER).unwrap();
        assert_eq!(discover["resultType"], "complete");
        assert_eq!(discover["supportedVersions"], json!(["2026-07-28"]));
        assert_eq!(discover["ttlMs"], DISCOVER_TTL_MS);
        assert_eq!(discover["cacheScope"], "public");
        assert_eq!(discover["_meta"][SERVER_INFO_KEY]["name"], "portcullis");
        let list: Value = serde_json::from_str(&TOOLS_LIST).unwrap();
        assert_eq!(list["resultType"], "complete");
        assert_eq!(list["tools"], tools::definitions());
        assert_eq!(list["ttlMs"], TOOLS_LIST_TTL_MS);
        assert_eq!(list["cacheScope"], "public");
        let called: Value = serde_json::from_str(&complete(json!({"content": []}))).unwrap();
        assert_eq!(called["resultType"], "complete");
        assert_eq!(called["_meta"][SERVER_INFO_KEY]["name"], "portcullis");
    }
}
