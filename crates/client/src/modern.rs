//! MCP 2026-07-28 ("modern") wire values for the client, with no I/O: the per-request `_meta` envelope
//! ("Basic" §_meta, SEP-2575), the request metadata headers of Streamable HTTP (`MCP-Protocol-Version`,
//! `Mcp-Method`, `Mcp-Name`, and `Mcp-Param-{Name}` from a tool's `x-mcp-header` annotations, "Transports" §Request
//! Metadata, SEP-2243), the Base64 sentinel encoding of header values, the modern error codes ("Basic" §Error
//! Codes), era detection ("Transports" §Backward Compatibility) and multi round-trip results ("Multi Round-Trip
//! Requests", SEP-2322).

use base64::Engine;
use serde_json::{json, Map, Value};

/// The modern protocol revision this client speaks first.
pub const MODERN_VERSION: &str = "2026-07-28";

/// `_meta` key of the protocol version of a request.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key of the client capabilities of a request.
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key of the client's identity.
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";

/// `HeaderMismatch`: headers and body disagree, or a required header is missing ("Transports" §Server Validation).
pub const HEADER_MISMATCH: i64 = -32020;
/// `MissingRequiredClientCapability`.
pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
/// `UnsupportedProtocolVersion`, whose `data.supported` lists the server's versions.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// Methods whose `Mcp-Name` header mirrors `params.name` or `params.uri`.
const NAMED_METHODS: [&str; 3] = ["tools/call", "resources/read", "prompts/get"];
/// Methods that may answer with an `InputRequiredResult` ("Multi Round-Trip Requests" §Supported Requests).
pub const MRTR_METHODS: [&str; 3] = ["tools/call", "resources/read", "prompts/get"];

/// Our `clientInfo`.
pub fn client_info() -> Value {
    json!({"name": "portcullis", "version": env!("CARGO_PKG_VERSION")})
}

/// The client capabilities we declare: elicitation (form mode) only when we can answer it.
pub fn client_capabilities(can_elicit: bool) -> Value {
    if can_elicit {
        json!({"elicitation": {"form": {}}})
    } else {
        json!({})
    }
}

/// `params` with the modern `_meta` keys added (other `_meta` keys, such as `progressToken`, are kept).
pub fn with_meta(params: Value, version: &str, capabilities: &Value) -> Value {
    let mut params = match params {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    if let Value::Object(m) = meta {
        m.insert(META_PROTOCOL_VERSION.into(), json!(version));
        m.insert(META_CLIENT_CAPABILITIES.into(), capabilities.clone());
        m.entry(META_CLIENT_INFO).or_insert_with(client_info);
    }
    Value::Object(params)
}

/// The protocol version a message's `_meta` declares, if it is a modern message.
pub fn meta_version(msg: &Value) -> Option<&str> {
    msg.pointer("/params/_meta")
        .and_then(|m| m.get(META_PROTOCOL_VERSION))
        .and_then(Value::as_str)
}

/// A header value as the spec encodes it ("Transports" §Value Encoding): as is when it is visible ASCII and
/// inner spaces with no leading or trailing whitespace and does not look like the sentinel, else
/// `=?base64?{standard Base64 of the UTF-8}?=`.
pub fn encode_header_value(v: &str) -> String {
    let plain = v.bytes().all(|b| (0x20..=0x7e).contains(&b))
        && v.trim() == v
        && !(v.starts_with("=?base64?") && v.ends_with("?="));
    if plain {
        v.to_owned()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(v.as_bytes())
        )
    }
}

/// The standard headers of a request body: `MCP-Protocol-Version` (from `_meta`), `Mcp-Method`, and `Mcp-Name`
/// for the named methods ("Transports" §Standard Request Headers).
pub fn standard_headers(msg: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(v) = meta_version(msg) {
        out.push(("mcp-protocol-version".into(), v.to_owned()));
    }
    let Some(method) = msg.get("method").and_then(Value::as_str) else {
        return out;
    };
    out.push(("mcp-method".into(), method.to_owned()));
    if NAMED_METHODS.contains(&method) {
        let params = msg.get("params");
        let name = params
            .and_then(|p| p.get("name").or_else(|| p.get("uri")))
            .and_then(Value::as_str);
        if let Some(n) = name {
            out.push(("mcp-name".into(), encode_header_value(n)));
        }
    }
    out
}

/// One `x-mcp-header` annotation: the chain of `properties` keys to the parameter, and the header's name part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamHeader {
    /// The property path from the arguments' root.
    pub path: Vec<String>,
    /// The `{Name}` of `Mcp-Param-{Name}`.
    pub name: String,
}

/// Why a tool's `x-mcp-header` annotations are invalid ("Transports" §Schema Extension); such a tool is left out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidToolHeader {
    /// Not a string, empty, or not an HTTP token (`1*tchar`, RFC 9110 §5.1).
    #[error("x-mcp-header {0:?} is not an HTTP field-name token")]
    NotAToken(String),
    /// Two annotations equal ignoring case.
    #[error("x-mcp-header {0:?} is used twice (names are case-insensitive)")]
    Duplicate(String),
    /// On a parameter that is not an integer, string or boolean.
    #[error("x-mcp-header {0:?} is on a parameter that is not an integer, string or boolean")]
    NotPrimitive(String),
    /// Reachable only through something other than `properties` keys.
    #[error("x-mcp-header {0:?} is not reachable through properties alone")]
    NotStaticallyReachable(String),
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// The `x-mcp-header` annotations of a tool's `inputSchema`, checked; any violation makes the tool invalid.
pub fn param_headers(schema: &Value) -> Result<Vec<ParamHeader>, InvalidToolHeader> {
    let mut out = Vec::new();
    collect(schema, &mut Vec::new(), true, &mut out)?;
    let mut seen: Vec<String> = Vec::new();
    for h in &out {
        let lower = h.name.to_ascii_lowercase();
        if seen.contains(&lower) {
            return Err(InvalidToolHeader::Duplicate(h.name.clone()));
        }
        seen.push(lower);
    }
    Ok(out)
}

/// Walks a schema: annotations on `properties` chains from the root are collected; any elsewhere is an error.
fn collect(
    schema: &Value,
    path: &mut Vec<String>,
    reachable: bool,
    out: &mut Vec<ParamHeader>,
) -> Result<(), InvalidToolHeader> {
    match schema {
        Value::Object(m) => {
            if let Some(h) = m.get("x-mcp-header") {
                let name = h.as_str().unwrap_or_default().to_owned();
                if name.is_empty() || !name.chars().all(is_tchar) {
                    return Err(InvalidToolHeader::NotAToken(h.to_string()));
                }
                if !reachable || path.is_empty() {
                    return Err(InvalidToolHeader::NotStaticallyReachable(name));
                }
                let primitive = matches!(
                    m.get("type").and_then(Value::as_str),
                    Some("string" | "integer" | "boolean")
                );
                if !primitive {
                    return Err(InvalidToolHeader::NotPrimitive(name));
                }
                out.push(ParamHeader {
                    path: path.clone(),
                    name,
                });
            }
            for (k, v) in m {
                if k == "properties" {
                    if let Value::Object(props) = v {
                        for (pk, pv) in props {
                            path.push(pk.clone());
                            collect(pv, path, reachable, out)?;
                            path.pop();
                        }
                    }
                } else if k != "x-mcp-header" {
                    collect(v, path, false, out)?;
                }
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(|i| collect(i, path, false, out)),
        _ => Ok(()),
    }
}

/// The `Mcp-Param-{Name}` headers of a call: each annotated parameter present (and not null) in `arguments`,
/// converted to its string form and encoded ("Transports" §Value Encoding).
pub fn param_header_values(headers: &[ParamHeader], arguments: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for h in headers {
        let mut v = arguments;
        let mut found = true;
        for key in &h.path {
            match v.get(key) {
                Some(next) => v = next,
                None => {
                    found = false;
                    break;
                }
            }
        }
        let text = match v {
            _ if !found => continue,
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            _ => continue,
        };
        out.push((
            format!("mcp-param-{}", h.name.to_ascii_lowercase()),
            encode_header_value(&text),
        ));
    }
    out
}

/// A JSON-RPC error the client recognises as coming from a modern server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModernError {
    /// `UnsupportedProtocolVersion` and the versions the server supports.
    UnsupportedVersion(Vec<String>),
    /// `HeaderMismatch`.
    HeaderMismatch(String),
    /// `MissingRequiredClientCapability`.
    MissingCapability(String),
}

/// The modern error in a JSON-RPC error object, if it is one.
pub fn modern_error(error: &Value) -> Option<ModernError> {
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    match error.get("code").and_then(Value::as_i64)? {
        UNSUPPORTED_PROTOCOL_VERSION => {
            let supported = error
                .pointer("/data/supported")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            Some(ModernError::UnsupportedVersion(supported))
        }
        HEADER_MISMATCH => Some(ModernError::HeaderMismatch(message)),
        MISSING_REQUIRED_CLIENT_CAPABILITY => Some(ModernError::MissingCapability(message)),
        _ => None,
    }
}

/// Which revision family a server speaks ("Versioning" §Backward Compatibility), decided once per client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Era {
    /// Not decided yet: messages go out as given.
    Unknown,
    /// Per-request `_meta` with this protocol version.
    Modern(String),
    /// `initialize` and sessions (2025-11-25 and earlier).
    Legacy,
}

/// What an answer to our `server/discover` means for the era (Streamable HTTP §Backward Compatibility).
#[derive(Debug, Clone, PartialEq)]
pub enum DiscoverOutcome {
    /// A modern server that accepted our version.
    Modern,
    /// A modern server that refused our version and supports this one of ours instead.
    RetryWith(String),
    /// Not a modern server, or none of its versions is ours: use `initialize`.
    Legacy,
}

/// Classifies the JSON-RPC error (or `None` for a result) a server answered `server/discover` with. Only a recognised modern error keeps the client modern; anything else means legacy.
pub fn classify_discover(error: Option<&Value>) -> DiscoverOutcome {
    let Some(error) = error else {
        return DiscoverOutcome::Modern;
    };
    match modern_error(error) {
        Some(ModernError::UnsupportedVersion(supported)) => {
            if supported.iter().any(|v| v == MODERN_VERSION) {
                DiscoverOutcome::RetryWith(MODERN_VERSION.into())
            } else {
                // A dual-era server without our modern version: its legacy versions are negotiated by
                // `initialize`.
                DiscoverOutcome::Legacy
            }
        }
        _ => DiscoverOutcome::Legacy,
    }
}

/// Whether a `server/discover` result is a `DiscoverResult` that lists `version` ("Discovery" §DiscoverResult).
/// An older server that answers every method with some result is not taken for a modern one.
pub fn discover_lists(result: &Value, version: &str) -> bool {
    result
        .get("supportedVersions")
        .and_then(Value::as_array)
        .is_some_and(|vs| vs.iter().any(|v| v.as_str() == Some(version)))
}

/// What a result is ("Multi Round-Trip Requests" §Core Types): a missing `resultType` means complete.
#[derive(Debug, Clone, PartialEq)]
pub enum ResultKind {
    /// The final result.
    Complete,
    /// The server needs input first: retry with `inputResponses` for these requests and `requestState` echoed.
    InputRequired {
        /// The server's requests, by key.
        input_requests: Map<String, Value>,
        /// The opaque state to echo byte for byte.
        request_state: Option<String>,
    },
}

/// The kind of a `result`.
pub fn result_kind(result: &Value) -> ResultKind {
    if result.get("resultType").and_then(Value::as_str) != Some("input_required") {
        return ResultKind::Complete;
    }
    ResultKind::InputRequired {
        input_requests: result
            .get("inputRequests")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        request_state: result
            .get("requestState")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

/// The params of a retry: the original params (without an earlier round's `inputResponses`/`requestState`), the
/// new responses, and the state only when the server sent one (SEP-2322 client requirements 2 and 4).
pub fn retry_params(
    original: &Value,
    responses: Map<String, Value>,
    request_state: Option<&str>,
) -> Value {
    let mut p = original.as_object().cloned().unwrap_or_default();
    p.remove("inputResponses");
    p.remove("requestState");
    if !responses.is_empty() {
        p.insert("inputResponses".into(), Value::Object(responses));
    }
    if let Some(s) = request_state {
        p.insert("requestState".into(), json!(s));
    }
    Value::Object(p)
}

/// A one-line description of what an input request asks for, for errors and prompts.
pub fn describe_input_request(key: &str, req: &Value) -> String {
    let method = req.get("method").and_then(Value::as_str).unwrap_or("?");
    let message = req
        .pointer("/params/message")
        .and_then(Value::as_str)
        .map(|m| format!(": {m:?}"))
        .unwrap_or_default();
    let fields = req
        .pointer("/params/requestedSchema/properties")
        .and_then(Value::as_object)
        .map(|p| {
            let f: Vec<String> = p
                .iter()
                .map(|(k, v)| {
                    let t = v.get("type").and_then(Value::as_str).unwrap_or("any");
                    format!("{k} ({t})")
                })
                .collect();
            format!(" [fields: {}]", f.join(", "))
        })
        .unwrap_or_default();
    format!("{key} ({method}{message}){fields}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn meta_is_added_and_other_keys_kept() {
        let p = with_meta(
            json!({"name": "t", "_meta": {"progressToken": 1}}),
            MODERN_VERSION,
            &client_capabilities(false),
        );
        assert_eq!(p["name"], "t");
        assert_eq!(p["_meta"]["progressToken"], 1);
        assert_eq!(p["_meta"][META_PROTOCOL_VERSION], MODERN_VERSION);
        assert_eq!(p["_meta"][META_CLIENT_CAPABILITIES], json!({}));
        assert_eq!(p["_meta"][META_CLIENT_INFO]["name"], "portcullis");
        let p = with_meta(Value::Null, "x", &client_capabilities(true));
        assert_eq!(
            p["_meta"][META_CLIENT_CAPABILITIES]["elicitation"],
            json!({"form": {}})
        );
    }

    #[test]
    fn standard_headers_mirror_the_body() {
        let msg = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": with_meta(json!({"name": "my-tool"}), MODERN_VERSION, &json!({}))});
        assert_eq!(
            standard_headers(&msg),
            vec![
                ("mcp-protocol-version".into(), MODERN_VERSION.into()),
                ("mcp-method".into(), "tools/call".into()),
                ("mcp-name".into(), "my-tool".into()),
            ]
        );
        let read = json!({"method": "resources/read", "params": {"uri": "file:///a b"}});
        assert_eq!(standard_headers(&read)[1].1, "file:///a b");
        let list = json!({"method": "tools/list", "params": {"name": "ignored"}});
        assert_eq!(
            standard_headers(&list),
            vec![("mcp-method".into(), "tools/list".into())]
        );
    }

    /// The examples of "Transports" §Value Encoding.
    #[test]
    fn header_values_are_encoded_as_the_spec_shows() {
        assert_eq!(encode_header_value("us-west1"), "us-west1");
        assert_eq!(encode_header_value("us west 1"), "us west 1");
        assert_eq!(encode_header_value(""), "");
        assert_eq!(
            encode_header_value("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(encode_header_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(
            encode_header_value("line1\nline2"),
            "=?base64?bGluZTEKbGluZTI=?="
        );
        assert_eq!(
            encode_header_value("=?base64?literal?="),
            "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
        );
        assert!(encode_header_value("\tindented").starts_with("=?base64?"));
    }

    #[test]
    fn annotations_are_collected_and_mirrored() {
        let schema = json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "n": {"type": "integer", "x-mcp-header": "Priority"},
            "flag": {"type": "boolean", "x-mcp-header": "Verbose"},
            "nested": {"type": "object", "properties": {"deep": {"type": "string", "x-mcp-header": "Deep"}}},
            "query": {"type": "string"}
        }});
        let hs = param_headers(&schema).unwrap();
        assert_eq!(hs.len(), 4);
        let args = json!({"region": "Hello, 世界", "n": 42, "flag": null, "nested": {"deep": "x"}, "query": "q"});
        let mut got = param_header_values(&hs, &args);
        got.sort();
        assert_eq!(
            got,
            vec![
                ("mcp-param-deep".into(), "x".into()),
                ("mcp-param-priority".into(), "42".into()),
                (
                    "mcp-param-region".into(),
                    "=?base64?SGVsbG8sIOS4lueVjA==?=".into()
                ),
            ]
        );
    }

    #[test]
    fn invalid_annotations_are_each_refused() {
        let one = |prop: Value| json!({"type": "object", "properties": {"v": prop}});
        let cases = [
            (
                one(json!({"type": "string", "x-mcp-header": ""})),
                InvalidToolHeader::NotAToken("\"\"".into()),
            ),
            (
                one(json!({"type": "string", "x-mcp-header": "My Region"})),
                InvalidToolHeader::NotAToken("\"My Region\"".into()),
            ),
            (
                one(json!({"type": "string", "x-mcp-header": "A:B"})),
                InvalidToolHeader::NotAToken("\"A:B\"".into()),
            ),
            (
                one(json!({"type": "string", "x-mcp-header": "Région"})),
                InvalidToolHeader::NotAToken("\"Région\"".into()),
            ),
            (
                one(json!({"type": "string", "x-mcp-header": "R\t1"})),
                InvalidToolHeader::NotAToken("\"R\\t1\"".into()),
            ),
            (
                one(json!({"type": "object", "x-mcp-header": "Data"})),
                InvalidToolHeader::NotPrimitive("Data".into()),
            ),
            (
                one(json!({"type": "number", "x-mcp-header": "F"})),
                InvalidToolHeader::NotPrimitive("F".into()),
            ),
            (
                one(json!({"type": "array", "items": {"type": "string"}, "x-mcp-header": "I"})),
                InvalidToolHeader::NotPrimitive("I".into()),
            ),
            (
                one(json!({"type": "array", "items": {"type": "string", "x-mcp-header": "I"}})),
                InvalidToolHeader::NotStaticallyReachable("I".into()),
            ),
            (
                json!({"type": "object", "properties": {
                    "a": {"type": "string", "x-mcp-header": "MyField"},
                    "b": {"type": "string", "x-mcp-header": "myfield"}}}),
                InvalidToolHeader::Duplicate("myfield".into()),
            ),
        ];
        for (schema, want) in cases {
            assert_eq!(param_headers(&schema), Err(want), "{schema}");
        }
        let any_of = json!({"anyOf": [{"type": "object", "properties": {"v": {"type": "string", "x-mcp-header": "V"}}}]});
        assert!(matches!(
            param_headers(&any_of),
            Err(InvalidToolHeader::NotStaticallyReachable(_))
        ));
    }

    #[test]
    fn each_modern_error_code_is_recognised() {
        assert_eq!(
            modern_error(
                &json!({"code": -32022, "message": "m", "data": {"supported": ["2026-07-28"]}})
            ),
            Some(ModernError::UnsupportedVersion(vec![MODERN_VERSION.into()]))
        );
        assert_eq!(
            modern_error(&json!({"code": -32020, "message": "mismatch"})),
            Some(ModernError::HeaderMismatch("mismatch".into()))
        );
        assert_eq!(
            modern_error(&json!({"code": -32021, "message": "cap"})),
            Some(ModernError::MissingCapability("cap".into()))
        );
        assert_eq!(modern_error(&json!({"code": -32601, "message": "x"})), None);
        assert_eq!(modern_error(&json!({"code": -32000})), None);
    }

    #[test]
    fn discover_answers_decide_the_era() {
        assert_eq!(classify_discover(None), DiscoverOutcome::Modern);
        let unsupported = json!({"code": -32022, "message": "m", "data": {"supported": ["2026-07-28"], "requested": "x"}});
        assert_eq!(
            classify_discover(Some(&unsupported)),
            DiscoverOutcome::RetryWith(MODERN_VERSION.into())
        );
        let only_old =
            json!({"code": -32022, "message": "m", "data": {"supported": ["2025-11-25"]}});
        assert_eq!(classify_discover(Some(&only_old)), DiscoverOutcome::Legacy);
        let no_session =
            json!({"code": -32000, "message": "Bad Request: No valid session ID provided"});
        assert_eq!(
            classify_discover(Some(&no_session)),
            DiscoverOutcome::Legacy
        );
        let not_found = json!({"code": -32601, "message": "Method not found"});
        assert_eq!(classify_discover(Some(&not_found)), DiscoverOutcome::Legacy);
    }

    #[test]
    fn only_a_discover_result_listing_the_version_is_modern() {
        assert!(discover_lists(
            &json!({"supportedVersions": ["2025-11-25", "2026-07-28"]}),
            MODERN_VERSION
        ));
        assert!(!discover_lists(
            &json!({"supportedVersions": ["2025-11-25"]}),
            MODERN_VERSION
        ));
        assert!(!discover_lists(&json!({}), MODERN_VERSION));
        assert!(!discover_lists(
            &json!({"supportedVersions": "2026-07-28"}),
            MODERN_VERSION
        ));
    }

    #[test]
    fn results_default_to_complete_and_retries_carry_state_only_when_sent() {
        assert_eq!(result_kind(&json!({"content": []})), ResultKind::Complete);
        let r = json!({"resultType": "input_required", "inputRequests": {"confirm": {"method": "elicitation/create"}}, "requestState": "{\"a\": 1}"});
        let ResultKind::InputRequired {
            input_requests,
            request_state,
        } = result_kind(&r)
        else {
            panic!("not input_required");
        };
        assert!(input_requests.contains_key("confirm"));
        assert_eq!(request_state.as_deref(), Some("{\"a\": 1}"));
        let original = json!({"name": "t", "arguments": {}, "requestState": "old", "inputResponses": {"x": 1}});
        let mut responses = Map::new();
        responses.insert("confirm".into(), json!({"action": "accept"}));
        let p = retry_params(&original, responses.clone(), None);
        assert!(p.get("requestState").is_none());
        assert_eq!(
            p["inputResponses"],
            json!({"confirm": {"action": "accept"}})
        );
        let p = retry_params(&original, responses, Some("{\"a\": 1}"));
        assert_eq!(p["requestState"], "{\"a\": 1}");
        assert_eq!(p["name"], "t");
    }
}
