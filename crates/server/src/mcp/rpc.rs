//! JSON-RPC 2.0 framing of the built-in MCP server's messages: reading a message's shape, writing results
//! and errors (JSON-RPC 2.0 §4, §5).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portcullis_proto::Scope;
use serde_json::{json, Map, Value};

/// What one dispatched message comes to.
pub(crate) enum Outcome {
    /// A serialized JSON-RPC response, sent with 200.
    Reply(String),
    /// A serialized JSON-RPC error response sent with another status (2026-07-28: 404 for an unknown method).
    Refused(StatusCode, String),
    /// A notification, or a posted response: nothing to answer (202).
    Notification,
    /// The token lacks the scope a tool needs (403 with a challenge).
    Forbidden(Scope),
}

/// A message's shape (JSON-RPC 2.0 §4).
pub(crate) enum Message<'a> {
    /// A request: its id (a string or an integer), method and params (`Null` when absent).
    Request {
        id: Value,
        method: &'a str,
        params: &'a Value,
    },
    /// A notification, or a response to a server request (this server sends none).
    Notification,
    /// Not a valid request: the error to answer with (id as far as it could be read).
    Invalid { id: Value, message: &'static str },
}

/// Reads `msg`'s shape.
pub(crate) fn read(msg: &Value) -> Message<'_> {
    let Some(obj) = msg.as_object() else {
        return Message::Invalid {
            id: Value::Null,
            message: "invalid request",
        };
    };
    let id = obj.get("id").cloned();
    let method = obj.get("method").and_then(Value::as_str);
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Message::Invalid {
            id: id.unwrap_or(Value::Null),
            message: "jsonrpc must be \"2.0\"",
        };
    }
    let (Some(id), Some(method)) = (id, method) else {
        return Message::Notification;
    };
    if !(id.is_string() || id.is_i64() || id.is_u64()) {
        return Message::Invalid {
            id: Value::Null,
            message: "id must be a string or an integer",
        };
    }
    static NULL: Value = Value::Null;
    Message::Request {
        id,
        method,
        params: obj.get("params").unwrap_or(&NULL),
    }
}

/// The id of `msg` when it is a usable request id (for error responses before dispatch).
pub(crate) fn id_of(msg: &Value) -> Value {
    match msg.get("id") {
        Some(id) if id.is_string() || id.is_i64() || id.is_u64() => id.clone(),
        _ => Value::Null,
    }
}

/// A JSON-RPC success response around an already serialized `result`.
pub(crate) fn result(id: &Value, result: &str) -> String {
    // `Value`'s Display is its compact JSON serialization; an id is a string or an integer here.
    let id = id.to_string();
    let mut out = String::with_capacity(40 + id.len() + result.len());
    out.push_str(r#"{"jsonrpc":"2.0","id":"#);
    out.push_str(&id);
    out.push_str(r#","result":"#);
    out.push_str(result);
    out.push('}');
    out
}

/// A JSON-RPC error response.
pub(crate) fn error(id: Value, code: i64, message: &str) -> Value {
    error_with_data(id, code, message, None)
}

/// A JSON-RPC error response with `data` when given.
pub(crate) fn error_with_data(id: Value, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = Map::new();
    error.insert("code".into(), json!(code));
    error.insert("message".into(), json!(message));
    if let Some(data) = data {
        error.insert("data".into(), data);
    }
    json!({"jsonrpc": "2.0", "id": id, "error": error})
}

/// An HTTP error status with a JSON-RPC error body that has no id.
pub(crate) fn http_error(status: StatusCode, code: i64, message: &str) -> Response {
    (status, axum::Json(error(Value::Null, code, message))).into_response()
}
