//! Which protocol era a `POST` to the MCP endpoint speaks, and the MCP 2026-07-28 rules checked before it is
//! served: the per-request `_meta` envelope ("Overview" §General fields, `_meta`), the standard request headers
//! `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` ("Transports", Streamable HTTP §Request Metadata), and
//! the renumbered error codes ("Overview" §Error Codes).
//!
//! Pure: no I/O and no HTTP types; the caller hands in the header bytes and the parsed body. The rule is the
//! one the official SDKs use to serve both eras on one endpoint ("Versioning" §Backward Compatibility):
//! - the body decides: a request whose `params._meta` carries `io.modelcontextprotocol/protocolVersion`
//!   claims the 2026-07-28 envelope and is served statelessly ([`Era::Modern`]); a malformed envelope behind
//!   a claim is refused (`-32602`), never quietly served as legacy traffic;
//! - `initialize` without a valid modern claim is the legacy handshake;
//! - a request without a claim is legacy traffic ([`Era::Legacy`]), unless its `MCP-Protocol-Version` header
//!   names a modern revision (then the envelope is missing: `-32602`). The seed's bare `tools/list` (no
//!   headers, no `_meta`) is legacy traffic, served exactly as before;
//! - headers are cross-checked against the body only on modern traffic (`HeaderMismatch`, `-32020`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Map, Value};

/// The modern revisions this server serves (per-request `_meta`, no `initialize`), newest first.
pub const MODERN_VERSIONS: &[&str] = &["2026-07-28"];
/// The legacy revisions this server serves (after `initialize`), newest first.
pub const LEGACY_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Every revision this server serves, newest first: the `supported` list of `UnsupportedProtocolVersion` for a
/// legacy request (one without an envelope) naming an unknown version: it may retry with `initialize`.
pub const ALL_VERSIONS: &[&str] = &[
    "2026-07-28",
    "2025-11-25",
    "2025-06-18",
    "2025-03-26",
    "2024-11-05",
];
/// The first modern revision; revision identifiers are ISO dates, so later dates are later revisions.
const FIRST_MODERN: &str = "2026-07-28";

/// `_meta` key: the request's protocol version (required on modern requests).
pub const PROTOCOL_VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key: the client's capabilities for this request (required on modern requests).
pub const CLIENT_CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key: the client's name and version (optional; display and logging only).
pub const CLIENT_INFO_KEY: &str = "io.modelcontextprotocol/clientInfo";
/// `_meta` key: the log level the client asks for on this request (optional).
pub const LOG_LEVEL_KEY: &str = "io.modelcontextprotocol/logLevel";
/// Result `_meta` key: the server's name and version.
pub const SERVER_INFO_KEY: &str = "io.modelcontextprotocol/serverInfo";

/// `HeaderMismatch` ("Transports" §Server Validation; schema `HEADER_MISMATCH`).
pub const HEADER_MISMATCH: i64 = -32020;
/// `MissingRequiredClientCapability` (schema `MISSING_REQUIRED_CLIENT_CAPABILITY`); this server requires no
/// client capability, so it never sends it.
pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
/// `UnsupportedProtocolVersion` (schema `UNSUPPORTED_PROTOCOL_VERSION`).
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
/// JSON-RPC 2.0 §5.1 invalid params.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC 2.0 §5.1 invalid request.
pub const INVALID_REQUEST: i64 = -32600;

const LOG_LEVELS: &[&str] = &[
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// The request headers the classification reads, as raw bytes (`None` when absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct McpHeaders<'a> {
    /// `MCP-Protocol-Version`.
    pub protocol_version: Option<&'a [u8]>,
    /// `Mcp-Method`.
    pub method: Option<&'a [u8]>,
    /// `Mcp-Name`.
    pub name: Option<&'a [u8]>,
}

/// How a message is to be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Era {
    /// 2025-11-25 and earlier: `initialize`, sessions, batches; the version header (if any) is a legacy one.
    Legacy,
    /// 2026-07-28: served statelessly from what the message carries.
    Modern(ModernMessage),
}

/// A message that passed the 2026-07-28 checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModernMessage {
    /// The revision the message names (one of [`MODERN_VERSIONS`]).
    pub version: String,
    /// The JSON-RPC method.
    pub method: String,
    /// A notification (no `id`): answered 202 with no body.
    pub notification: bool,
    /// `clientInfo.name`, when given (self-reported; for logs only).
    pub client_name: Option<String>,
}

/// Why a header disagrees with the body, or is missing or unreadable ("Transports" §Server Validation).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mismatch {
    /// A modern request without `MCP-Protocol-Version`.
    VersionHeaderMissing,
    /// A modern request without `Mcp-Method`.
    MethodHeaderMissing,
    /// A `tools/call`, `prompts/get` or `resources/read` whose body names something, without `Mcp-Name`.
    NameHeaderMissing,
    /// `MCP-Protocol-Version` names another version than the envelope.
    Version { header: String, body: String },
    /// `Mcp-Method` names another method than the body.
    Method { header: String, body: String },
    /// `Mcp-Name` (decoded) names another tool, prompt or resource than the body.
    Name { header: String, body: String },
    /// `Mcp-Name` carries a malformed `=?base64?…?=` value.
    NameEncoding,
    /// A header value with characters outside visible ASCII, space and tab.
    Unreadable(&'static str),
    /// `initialize` (the legacy handshake) sent with a modern `MCP-Protocol-Version`.
    InitializeWithModernVersion,
    /// `Mcp-Method` or `Mcp-Name` on a batch or a response (they name one request); gateway only.
    NotOneRequest(&'static str),
    /// A header sent more than once (a receiver could read either value); gateway only.
    Repeated(&'static str),
}

/// Why a message is refused before it is served. Every variant is answered with HTTP 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// `-32020`.
    #[error("Header mismatch: {}", describe(.0))]
    HeaderMismatch(Mismatch),
    /// `-32602`: a claimed envelope that is malformed, or a modern version header without an envelope.
    #[error("Invalid params: _meta {key}: {problem}")]
    InvalidEnvelope { key: String, problem: &'static str },
    /// `-32022`: a version this server does not serve, in the envelope or the header; `supported` is what
    /// the client may retry with on the same path: [`MODERN_VERSIONS`] (the `server/discover` list) for an
    /// envelope, [`ALL_VERSIONS`] for a legacy request.
    #[error("Unsupported protocol version")]
    UnsupportedProtocolVersion {
        requested: String,
        supported: &'static [&'static str],
    },
    /// `-32600`: a batch holding a modern message (modern messages are one per `POST`).
    #[error("Invalid request: a JSON-RPC batch may not hold 2026-07-28 messages")]
    ModernBatch,
}

impl EnvelopeError {
    /// The JSON-RPC error code.
    pub fn code(&self) -> i64 {
        match self {
            Self::HeaderMismatch(_) => HEADER_MISMATCH,
            Self::InvalidEnvelope { .. } => INVALID_PARAMS,
            Self::UnsupportedProtocolVersion { .. } => UNSUPPORTED_PROTOCOL_VERSION,
            Self::ModernBatch => INVALID_REQUEST,
        }
    }

    /// The JSON-RPC error `data`: the supported versions for `UnsupportedProtocolVersion` ("Versioning"
    /// §Protocol Version Negotiation), the offending key for an invalid envelope.
    pub fn data(&self) -> Option<Value> {
        match self {
            Self::UnsupportedProtocolVersion {
                requested,
                supported,
            } => Some(json!({"supported": supported, "requested": requested})),
            Self::InvalidEnvelope { key, problem } => {
                Some(json!({"envelope": {"key": key, "problem": problem}}))
            }
            Self::HeaderMismatch(_) | Self::ModernBatch => None,
        }
    }
}

fn describe(m: &Mismatch) -> String {
    match m {
        Mismatch::VersionHeaderMissing => "the required MCP-Protocol-Version header is absent".into(),
        Mismatch::MethodHeaderMissing => "the required Mcp-Method header is absent".into(),
        Mismatch::NameHeaderMissing => "the required Mcp-Name header is absent".into(),
        Mismatch::Version { header, body } => format!(
            "MCP-Protocol-Version header value '{header}' does not match body value '{body}'"
        ),
        Mismatch::Method { header, body } => {
            format!("Mcp-Method header value '{header}' does not match body value '{body}'")
        }
        Mismatch::Name { header, body } => {
            format!("Mcp-Name header value '{header}' does not match body value '{body}'")
        }
        Mismatch::NameEncoding => "the Mcp-Name header carries a malformed Base64 value".into(),
        Mismatch::Unreadable(h) => format!("the {h} header holds characters a header may not"),
        Mismatch::InitializeWithModernVersion => {
            "initialize is the legacy handshake but MCP-Protocol-Version names a 2026-07-28 or later revision"
                .into()
        }
        Mismatch::NotOneRequest(h) => format!("the {h} header names one request but the body is not one"),
        Mismatch::Repeated(h) => format!("the {h} header is sent more than once"),
    }
}

/// Classifies one parsed `POST` body with its headers (see the module documentation for the rule).
pub fn classify(headers: &McpHeaders<'_>, body: &Value) -> Result<Era, EnvelopeError> {
    let version_header = text(headers.protocol_version, "MCP-Protocol-Version")?;
    let header_is_modern = version_header.is_some_and(is_modern);
    let legacy = || match version_header {
        Some(v) if !LEGACY_VERSIONS.contains(&v) => {
            Err(EnvelopeError::UnsupportedProtocolVersion {
                requested: v.to_owned(),
                supported: ALL_VERSIONS,
            })
        }
        _ => Ok(Era::Legacy),
    };
    let msg = match body {
        Value::Array(batch) => {
            if batch.iter().any(|m| claim(m.get("params")).is_some()) {
                return Err(EnvelopeError::ModernBatch);
            }
            return legacy();
        }
        Value::Object(msg) => msg,
        _ => return legacy(),
    };
    let Some(method) = msg.get("method").and_then(Value::as_str) else {
        // A posted response, or no message at all: the legacy path answers it as before.
        return legacy();
    };
    let params = msg.get("params");
    let notification = !msg.contains_key("id");
    if method == "initialize" && !notification && !valid_modern_claim(params) {
        if header_is_modern {
            return Err(EnvelopeError::HeaderMismatch(
                Mismatch::InitializeWithModernVersion,
            ));
        }
        return legacy();
    }
    match claim(params) {
        Some(meta) => modern(headers, version_header, method, params, meta, notification),
        None if header_is_modern && notification => {
            check_method_header(headers, method)?;
            Ok(Era::Modern(ModernMessage {
                version: version_header.unwrap_or(FIRST_MODERN).to_owned(),
                method: method.to_owned(),
                notification,
                client_name: None,
            }))
        }
        None if header_is_modern => {
            let missing = if meta_of(params).is_some() {
                PROTOCOL_VERSION_KEY
            } else {
                "_meta"
            };
            Err(EnvelopeError::InvalidEnvelope {
                key: missing.to_owned(),
                problem: "missing",
            })
        }
        None => legacy(),
    }
}

/// The checks of a message that claims the envelope, in the SDKs' order: the envelope itself, the header
/// cross-checks, the version, then the presence of the standard headers and `Mcp-Name` (requests only).
fn modern(
    headers: &McpHeaders<'_>,
    version_header: Option<&str>,
    method: &str,
    params: Option<&Value>,
    meta: &Map<String, Value>,
    notification: bool,
) -> Result<Era, EnvelopeError> {
    let envelope = if notification {
        Envelope::claim_only(meta)?
    } else {
        Envelope::parse(meta)?
    };
    if let Some(h) = version_header {
        if h != envelope.version {
            return Err(EnvelopeError::HeaderMismatch(Mismatch::Version {
                header: h.to_owned(),
                body: envelope.version.to_owned(),
            }));
        }
    }
    check_method_header(headers, method)?;
    if !MODERN_VERSIONS.contains(&envelope.version) {
        return Err(EnvelopeError::UnsupportedProtocolVersion {
            requested: envelope.version.to_owned(),
            supported: MODERN_VERSIONS,
        });
    }
    if !notification {
        if version_header.is_none() {
            return Err(EnvelopeError::HeaderMismatch(
                Mismatch::VersionHeaderMissing,
            ));
        }
        if headers.method.is_none() {
            return Err(EnvelopeError::HeaderMismatch(Mismatch::MethodHeaderMissing));
        }
        check_name_header(headers, method, params)?;
    }
    Ok(Era::Modern(ModernMessage {
        version: envelope.version.to_owned(),
        method: method.to_owned(),
        notification,
        client_name: envelope.client_name.map(str::to_owned),
    }))
}

/// The agreement checks a gateway makes before forwarding ("Transports" §Server Validation: an intermediary
/// routing or authorizing by headers must see them agree with the body): `Mcp-Method` names the body's method,
/// `Mcp-Name` (decoded) the body's tool, prompt or resource, `MCP-Protocol-Version` the envelope's version when
/// the body claims one. Unlike [`classify`] nothing is decided about which versions are served and absent
/// headers are not refused: the upstream decides those, and answers with its own errors.
pub fn check_agreement(headers: &McpHeaders<'_>, body: &Value) -> Result<(), EnvelopeError> {
    let named = [(headers.method, "Mcp-Method"), (headers.name, "Mcp-Name")];
    let Some(method) = body.get("method").and_then(Value::as_str) else {
        return match named.iter().find(|(v, _)| v.is_some()) {
            Some((_, h)) => Err(EnvelopeError::HeaderMismatch(Mismatch::NotOneRequest(h))),
            None => Ok(()),
        };
    };
    let params = body.get("params");
    if let (Some(h), Some(meta)) = (
        text(headers.protocol_version, "MCP-Protocol-Version")?,
        claim(params),
    ) {
        let body_version = meta.get(PROTOCOL_VERSION_KEY).and_then(Value::as_str);
        if body_version.is_some_and(|b| b != h) {
            return Err(EnvelopeError::HeaderMismatch(Mismatch::Version {
                header: h.to_owned(),
                body: body_version.unwrap_or_default().to_owned(),
            }));
        }
    }
    check_method_header(headers, method)?;
    if headers.name.is_none() {
        return Ok(());
    }
    check_name_header(headers, method, params)
}

fn check_method_header(headers: &McpHeaders<'_>, method: &str) -> Result<(), EnvelopeError> {
    match text(headers.method, "Mcp-Method")? {
        Some(h) if h != method => Err(EnvelopeError::HeaderMismatch(Mismatch::Method {
            header: h.to_owned(),
            body: method.to_owned(),
        })),
        _ => Ok(()),
    }
}

/// `Mcp-Name` against `params.name` (`tools/call`, `prompts/get`) or `params.uri` (`resources/read`), after
/// decoding the `=?base64?…?=` form ("Transports" §Value Encoding).
fn check_name_header(
    headers: &McpHeaders<'_>,
    method: &str,
    params: Option<&Value>,
) -> Result<(), EnvelopeError> {
    let field = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return Ok(()),
    };
    let body = params.and_then(|p| p.get(field)).and_then(Value::as_str);
    let Some(header) = text(headers.name, "Mcp-Name")? else {
        return match body {
            Some(_) => Err(EnvelopeError::HeaderMismatch(Mismatch::NameHeaderMissing)),
            None => Ok(()),
        };
    };
    let decoded =
        decode_header_value(header).ok_or(EnvelopeError::HeaderMismatch(Mismatch::NameEncoding))?;
    match body {
        Some(b) if b != decoded => Err(EnvelopeError::HeaderMismatch(Mismatch::Name {
            header: decoded,
            body: b.to_owned(),
        })),
        _ => Ok(()),
    }
}

/// A header value as text: visible ASCII, space and tab only (RFC 9110 §5.5 without obs-text), trimmed of
/// optional whitespace.
fn text<'a>(value: Option<&'a [u8]>, name: &'static str) -> Result<Option<&'a str>, EnvelopeError> {
    let Some(bytes) = value else { return Ok(None) };
    if !bytes
        .iter()
        .all(|b| matches!(b, b'\t' | b' ' | 0x21..=0x7e))
    {
        return Err(EnvelopeError::HeaderMismatch(Mismatch::Unreadable(name)));
    }
    // Checked above: every byte is ASCII.
    let s = std::str::from_utf8(bytes)
        .map_err(|_| EnvelopeError::HeaderMismatch(Mismatch::Unreadable(name)))?;
    Ok(Some(s.trim_matches([' ', '\t'])))
}

/// A header value with the Base64 sentinel `=?base64?…?=` decoded (standard alphabet, UTF-8); other values
/// as they are. `None` for a malformed sentinel.
pub fn decode_header_value(value: &str) -> Option<String> {
    let Some(inner) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return Some(value.to_owned());
    };
    let bytes = STANDARD.decode(inner).ok()?;
    String::from_utf8(bytes).ok()
}

/// Whether `version` names a modern revision: an ISO date on or after 2026-07-28.
pub fn is_modern(version: &str) -> bool {
    let b = version.as_bytes();
    let date_shaped = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    date_shaped && version >= FIRST_MODERN
}

fn meta_of(params: Option<&Value>) -> Option<&Map<String, Value>> {
    params?.get("_meta")?.as_object()
}

/// The `_meta` object when it claims the envelope (holds the protocol-version key, whatever its value).
fn claim(params: Option<&Value>) -> Option<&Map<String, Value>> {
    meta_of(params).filter(|m| m.contains_key(PROTOCOL_VERSION_KEY))
}

fn valid_modern_claim(params: Option<&Value>) -> bool {
    claim(params)
        .and_then(|m| Envelope::parse(m).ok())
        .is_some_and(|e| is_modern(e.version))
}

/// The per-request protocol fields of a modern request's `_meta` ("Overview" §General fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// `io.modelcontextprotocol/protocolVersion`.
    pub version: &'a str,
    /// `io.modelcontextprotocol/clientInfo` `name`, when given.
    pub client_name: Option<&'a str>,
}

impl<'a> Envelope<'a> {
    /// Parses a request's `_meta`: `protocolVersion` (string) and `clientCapabilities` (object) required,
    /// `clientInfo` (object with string `name` and `version`) and `logLevel` (a logging level) checked when
    /// given. Missing keys are reported before malformed ones.
    pub fn parse(meta: &'a Map<String, Value>) -> Result<Self, EnvelopeError> {
        let invalid = |key: &str, problem| EnvelopeError::InvalidEnvelope {
            key: key.to_owned(),
            problem,
        };
        for key in [PROTOCOL_VERSION_KEY, CLIENT_CAPABILITIES_KEY] {
            if !meta.contains_key(key) {
                return Err(invalid(key, "missing"));
            }
        }
        let version = Self::claim_only(meta)?.version;
        if !meta[CLIENT_CAPABILITIES_KEY].is_object() {
            return Err(invalid(CLIENT_CAPABILITIES_KEY, "must be an object"));
        }
        let client_name = match meta.get(CLIENT_INFO_KEY) {
            None => None,
            Some(info) => match (
                info.get("name").and_then(Value::as_str),
                info.get("version").and_then(Value::as_str),
            ) {
                (Some(name), Some(_)) => Some(name),
                _ => {
                    return Err(invalid(
                        CLIENT_INFO_KEY,
                        "must be an object with string name and version",
                    ))
                }
            },
        };
        if let Some(level) = meta.get(LOG_LEVEL_KEY) {
            if !level.as_str().is_some_and(|l| LOG_LEVELS.contains(&l)) {
                return Err(invalid(LOG_LEVEL_KEY, "must be a logging level"));
            }
        }
        Ok(Self {
            version,
            client_name,
        })
    }

    /// Only the protocol-version claim (a notification's envelope: no capabilities are required).
    fn claim_only(meta: &'a Map<String, Value>) -> Result<Self, EnvelopeError> {
        match meta.get(PROTOCOL_VERSION_KEY).map(Value::as_str) {
            Some(Some(version)) => Ok(Self {
                version,
                client_name: None,
            }),
            Some(None) => Err(EnvelopeError::InvalidEnvelope {
                key: PROTOCOL_VERSION_KEY.to_owned(),
                problem: "must be a string",
            }),
            None => Err(EnvelopeError::InvalidEnvelope {
                key: PROTOCOL_VERSION_KEY.to_owned(),
                problem: "missing",
            }),
        }
    }
}

#[cfg(test)]
mod tests;
