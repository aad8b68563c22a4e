//! The MCP wire values both the [`crate::auth`] probe and the [`crate::mcp`] client send (MCP 2025-11-25,
//! "Transports": Streamable HTTP; "Lifecycle": initialization).

use crate::discovery::PROTOCOL_VERSION;
use serde_json::{json, Value};

/// The `Accept` header of every POST.
pub const ACCEPT: &str = "application/json, text/event-stream";

/// The `params` of our `initialize` request.
pub fn initialize_params() -> Value {
    json!({
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "portcullis", "version": env!("CARGO_PKG_VERSION")},
    })
}
