//! The gateway's JSON-RPC inspection of a `POST` body (JSON-RPC 2.0 §4–§6; MCP "Base Protocol", "Tools"): the
//! body reaches the upstream byte for byte, so it must be exactly what was checked. What another parser could
//! read differently is refused (400) instead of forwarded:
//!
//! - not UTF-8 or not JSON (`-32700`); an empty batch, a nested batch, a message that is not an object;
//! - a member given twice, or a member name that imitates a JSON-RPC one (`Method`, `ｍｅｔｈｏｄ`, `paramſ`:
//!   equal after NFKC, case folding and dropping invisible characters, as case-insensitive decoders match it);
//! - `jsonrpc` other than `"2.0"`; an `id` that is not a string, number or null; `params` that is not structured;
//!   a message that is neither a request, a notification nor a response;
//! - a `method` that is not plain ASCII (`[A-Za-z0-9/_.-]`), or that differs from `tools/call` or `tools/list`
//!   only by case or punctuation (`Tools/Call`, `tools.call`);
//! - a `tools/call` without a string `params.name`, a name with whitespace, control or format characters (Unicode
//!   TR36), or a name that folds (NFKC, case) to a scoped tool's name without being it.
//!
//! Ids stay raw text ([`RawValue`]): an id above `u64` is never turned into a float.

use portcullis_proto::Scope;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::BTreeMap;
use unicode_normalization::UnicodeNormalization;

/// The MCP 2026-07-28 subscription stream request.
pub const SUBSCRIPTIONS_LISTEN: &str = "subscriptions/listen";
/// The method whose tool the per-tool scope rule checks.
pub const TOOLS_CALL: &str = "tools/call";
/// The method whose answer `hide_unauthorized_tools` rewrites.
pub const TOOLS_LIST: &str = "tools/list";
/// The members of a JSON-RPC message object (JSON-RPC 2.0 §4, §5).
const MEMBERS: &[&str] = &["jsonrpc", "id", "method", "params", "result", "error"];
/// Longest method name accepted.
const MAX_METHOD: usize = 256;

/// Why a body was refused (400 with a JSON-RPC error; [`RpcRefusal::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RpcRefusal {
    /// Not UTF-8, or not JSON.
    #[error("parse error")]
    Parse,
    /// An empty batch or a batch inside a batch.
    #[error("a batch must be a non-empty array of message objects")]
    Batch,
    /// A message that is not a JSON object.
    #[error("each message must be a JSON object")]
    NotObject,
    /// A member given twice.
    #[error("a member appears twice")]
    Duplicate,
    /// A member name that imitates a JSON-RPC or MCP one.
    #[error("a member name imitates a JSON-RPC member")]
    LookAlike,
    /// `jsonrpc` is not `"2.0"`.
    #[error("jsonrpc must be \"2.0\"")]
    Version,
    /// `method` is not a plain ASCII name, or imitates a checked method.
    #[error("method must be a string of letters, digits, '/', '_', '.' or '-'")]
    Method,
    /// `id` is not a string, a number or null.
    #[error("id must be a string, a number or null")]
    Id,
    /// `params` is not an object or an array.
    #[error("params must be an object or an array")]
    Params,
    /// Neither a request, a notification nor a response.
    #[error("not a JSON-RPC request, notification or response")]
    Kind,
    /// A `tools/call` without a plain string tool name.
    #[error("tools/call needs params.name: a tool name without whitespace, control or look-alike characters")]
    ToolName,
}

impl RpcRefusal {
    /// The JSON-RPC error code (§5.1): parse error or invalid request.
    pub fn code(self) -> i64 {
        match self {
            Self::Parse => -32700,
            _ => -32600,
        }
    }
}

/// One checked message.
#[derive(Debug)]
pub struct Message<'a> {
    /// The method of a request or notification; `None` for a response.
    pub method: Option<Cow<'a, str>>,
    /// The id as sent.
    pub id: Option<&'a RawValue>,
    /// The tool of a `tools/call`.
    pub tool: Option<Cow<'a, str>>,
}

/// A checked body: its messages (one, or a batch's).
#[derive(Debug)]
pub struct Inspected<'a> {
    pub messages: Vec<Message<'a>>,
    /// Whether the body was a batch.
    pub batch: bool,
}

impl Inspected<'_> {
    /// Whether the body is one `subscriptions/listen` request: the MCP 2026-07-28 server-to-client stream
    /// ("Transports" §Subscriptions, replacing the `GET` stream), held and ended like a `GET` stream.
    pub fn is_listen(&self) -> bool {
        matches!(self.messages.as_slice(), [one] if !self.batch
            && one.method.as_deref() == Some(SUBSCRIPTIONS_LISTEN))
    }

    /// The id of a single message (for error bodies), else null.
    pub fn id(&self) -> serde_json::Value {
        match self.messages.as_slice() {
            [one] if !self.batch => one
                .id
                .and_then(|raw| serde_json::from_str(raw.get()).ok())
                .unwrap_or(serde_json::Value::Null),
            _ => serde_json::Value::Null,
        }
    }
}

/// Checks `body` (see the module documentation); `scoped` are the tools with a per-tool scope.
pub fn inspect<'a>(
    body: &'a [u8],
    scoped: &BTreeMap<String, Scope>,
) -> Result<Inspected<'a>, RpcRefusal> {
    let text = std::str::from_utf8(body).map_err(|_| RpcRefusal::Parse)?;
    match first_byte(text) {
        Some(b'[') => {
            let raw: Vec<&RawValue> = serde_json::from_str(text).map_err(|_| RpcRefusal::Parse)?;
            if raw.is_empty() {
                return Err(RpcRefusal::Batch);
            }
            let messages = raw
                .iter()
                .map(|m| match first_byte(m.get()) {
                    Some(b'[') => Err(RpcRefusal::Batch),
                    _ => message(m.get(), scoped),
                })
                .collect::<Result<_, _>>()?;
            Ok(Inspected {
                messages,
                batch: true,
            })
        }
        Some(b'{') => Ok(Inspected {
            messages: vec![message(text, scoped)?],
            batch: false,
        }),
        _ if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => {
            Err(RpcRefusal::NotObject)
        }
        _ => Err(RpcRefusal::Parse),
    }
}

/// The first byte of a JSON text after white space.
fn first_byte(text: &str) -> Option<u8> {
    text.bytes()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// The members of a JSON object in order, names decoded, values raw; `None` if `text` is not one object.
pub(super) fn members(text: &str) -> Option<Vec<(Cow<'_, str>, &RawValue)>> {
    if first_byte(text) != Some(b'{') {
        return None;
    }
    serde_json::from_str::<Members<'_>>(text).ok().map(|m| m.0)
}

/// A JSON string, decoded (borrowed when it has no escapes); `None` if `raw` is not a string.
pub(super) fn string(raw: &RawValue) -> Option<Cow<'_, str>> {
    #[derive(Deserialize)]
    struct Text<'a>(#[serde(borrow)] Cow<'a, str>);
    if first_byte(raw.get()) != Some(b'"') {
        return None;
    }
    serde_json::from_str::<Text<'_>>(raw.get())
        .ok()
        .map(|t| t.0)
}

struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                #[derive(Deserialize)]
                struct Key<'a>(#[serde(borrow)] Cow<'a, str>);
                let mut out = Vec::new();
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    out.push((k, map.next_value::<&'de RawValue>()?));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The members of one message object that JSON-RPC defines.
#[derive(Default)]
struct Known<'a> {
    jsonrpc: Option<&'a RawValue>,
    id: Option<&'a RawValue>,
    method: Option<&'a RawValue>,
    params: Option<&'a RawValue>,
    answer: bool,
}

/// Checks one message object.
fn message<'a>(text: &'a str, scoped: &BTreeMap<String, Scope>) -> Result<Message<'a>, RpcRefusal> {
    let k = known_members(text)?;
    if k.jsonrpc.and_then(string).as_deref() != Some("2.0") {
        return Err(RpcRefusal::Version);
    }
    if let Some(id) = k.id {
        if !matches!(first_byte(id.get()), Some(b'"' | b'-' | b'0'..=b'9' | b'n')) {
            return Err(RpcRefusal::Id);
        }
    }
    if let Some(params) = k.params {
        if !matches!(first_byte(params.get()), Some(b'{' | b'[')) {
            return Err(RpcRefusal::Params);
        }
    }
    let Some(method) = k.method else {
        // A response (to a request of the server): an id and exactly one of result / error.
        if k.id.is_none() || !k.answer || k.params.is_some() {
            return Err(RpcRefusal::Kind);
        }
        return Ok(Message {
            method: None,
            id: k.id,
            tool: None,
        });
    };
    if k.answer {
        return Err(RpcRefusal::Kind);
    }
    let method = string(method).ok_or(RpcRefusal::Method)?;
    check_method(&method)?;
    let tool = if method == TOOLS_CALL {
        Some(tool_name(k.params, scoped)?)
    } else {
        None
    };
    Ok(Message {
        method: Some(method),
        id: k.id,
        tool,
    })
}

/// The JSON-RPC members of a message object: each at most once, no look-alike names; result and error are
/// exclusive.
fn known_members(text: &str) -> Result<Known<'_>, RpcRefusal> {
    let members = members(text).ok_or(match first_byte(text) {
        Some(b'{') => RpcRefusal::Parse,
        _ => RpcRefusal::NotObject,
    })?;
    let mut k = Known::default();
    let mut answers = 0;
    for (name, value) in members {
        let slot = match name.as_ref() {
            "jsonrpc" => &mut k.jsonrpc,
            "id" => &mut k.id,
            "method" => &mut k.method,
            "params" => &mut k.params,
            "result" | "error" => {
                answers += 1;
                if answers > 1 {
                    return Err(RpcRefusal::Duplicate);
                }
                k.answer = true;
                continue;
            }
            other if imitates(other, MEMBERS) => return Err(RpcRefusal::LookAlike),
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(RpcRefusal::Duplicate);
        }
    }
    Ok(k)
}

/// A method is plain ASCII and not a disguised `tools/call` or `tools/list`.
fn check_method(method: &str) -> Result<(), RpcRefusal> {
    let plain = method
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'.' | b'-'));
    if method.is_empty() || method.len() > MAX_METHOD || !plain {
        return Err(RpcRefusal::Method);
    }
    let skeleton = |m: &str| -> String {
        m.bytes()
            .filter(u8::is_ascii_alphanumeric)
            .map(|b| char::from(b.to_ascii_lowercase()))
            .collect()
    };
    for checked in [TOOLS_CALL, TOOLS_LIST] {
        if method != checked && skeleton(method) == skeleton(checked) {
            return Err(RpcRefusal::Method);
        }
    }
    Ok(())
}

/// The tool name of a `tools/call` (`params.name`, MCP "Calling Tools").
fn tool_name<'a>(
    params: Option<&'a RawValue>,
    scoped: &BTreeMap<String, Scope>,
) -> Result<Cow<'a, str>, RpcRefusal> {
    let params = params.ok_or(RpcRefusal::ToolName)?;
    let members = members(params.get()).ok_or(RpcRefusal::ToolName)?;
    let mut name = None;
    for (key, value) in members {
        if key == "name" {
            if name.replace(value).is_some() {
                return Err(RpcRefusal::Duplicate);
            }
        } else if imitates(&key, &["name"]) {
            return Err(RpcRefusal::LookAlike);
        }
    }
    let name = name.and_then(string).ok_or(RpcRefusal::ToolName)?;
    let invisible = name.chars().any(invisible);
    if name.is_empty()
        || invisible
        || (!scoped.contains_key(name.as_ref()) && imitates_any(&name, scoped))
    {
        return Err(RpcRefusal::ToolName);
    }
    Ok(name)
}

/// Whitespace, and the characters never shown to a person (controls, format characters, invisible letters:
/// Unicode TR36 §3, [`portcullis_authz::display_text::is_hidden`]).
pub(crate) fn invisible(c: char) -> bool {
    c.is_whitespace() || portcullis_authz::display_text::is_hidden(c)
}

/// `s` folded for look-alike comparison: NFKC, invisible characters dropped, lower case.
fn fold(s: &str) -> String {
    s.nfkc()
        .filter(|c| !invisible(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether `name` is not one of `names` but folds to one of them.
fn imitates(name: &str, names: &[&str]) -> bool {
    if names.contains(&name) {
        return false;
    }
    if name.is_ascii() {
        // Fast path: ASCII folds to itself but for case and control characters.
        let visible = name.bytes().all(|b| b.is_ascii_graphic());
        if visible {
            return names.iter().any(|n| n.eq_ignore_ascii_case(name));
        }
    }
    let folded = fold(name);
    names.iter().any(|n| fold(n) == folded)
}

/// Whether `name` folds to a scoped tool's name (it is not one itself).
fn imitates_any(name: &str, scoped: &BTreeMap<String, Scope>) -> bool {
    if name.is_ascii() && scoped.keys().all(|k| k.is_ascii()) {
        // `name` has no invisible characters here, so its fold is its lower case.
        return scoped.keys().any(|k| k.eq_ignore_ascii_case(name));
    }
    let folded = fold(name);
    scoped.keys().any(|k| fold(k) == folded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn scoped() -> BTreeMap<String, Scope> {
        BTreeMap::from([(
            "admin_tool".to_owned(),
            Scope::parse("mcp:admin").expect("scope"),
        )])
    }

    /// Method and tool of each message.
    type Checked = Vec<(Option<String>, Option<String>)>;

    fn check(body: &str) -> Result<Checked, RpcRefusal> {
        inspect(body.as_bytes(), &scoped()).map(|i| {
            i.messages
                .into_iter()
                .map(|m| (m.method.map(Cow::into_owned), m.tool.map(Cow::into_owned)))
                .collect()
        })
    }

    fn call(name: &str) -> String {
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name}})
            .to_string()
    }

    #[test]
    fn well_formed_messages_pass() {
        let one = |m: &str, t: Option<&str>| vec![(Some(m.to_owned()), t.map(str::to_owned))];
        assert_eq!(
            check(&call("admin_tool")),
            Ok(one("tools/call", Some("admin_tool")))
        );
        assert_eq!(
            check(&call("ｅｃｈｏ")),
            Ok(one("tools/call", Some("ｅｃｈｏ"))),
            "not a scoped name"
        );
        assert_eq!(
            check(r#" {"jsonrpc":"2.0","method":"notifications/initialized"} "#),
            Ok(one("notifications/initialized", None))
        );
        assert_eq!(
            check(
                r#"{"jsonrpc":"2.0","id":"a","method":"tools\/call","params":{"name":"echo","arguments":{"Name":1}}}"#
            ),
            Ok(one("tools/call", Some("echo")))
        );
        assert_eq!(
            check(
                r#"[{"jsonrpc":"2.0","id":null,"result":{}},{"jsonrpc":"2.0","id":2,"error":{"code":1,"message":"x"}}]"#
            ),
            Ok(vec![(None, None), (None, None)])
        );
        let big = r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"ping"}"#;
        let i = inspect(big.as_bytes(), &scoped()).expect("big id");
        assert_eq!(
            i.messages[0].id.map(RawValue::get),
            Some("123456789012345678901234567890")
        );
    }

    #[test]
    fn only_one_listen_request_is_a_listen_stream() {
        let listen = r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{}}"#;
        let is_listen = |b: &str| inspect(b.as_bytes(), &scoped()).expect("ok").is_listen();
        assert!(is_listen(listen));
        assert!(!is_listen(&format!("[{listen}]")));
        assert!(!is_listen(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#
        ));
    }

    #[test]
    fn malformed_bodies_are_refused() {
        use RpcRefusal::*;
        let cases: &[(&str, RpcRefusal)] = &[
            ("", Parse),
            ("not json", Parse),
            ("{", Parse),
            ("[]", Batch),
            (r#"[[{"jsonrpc":"2.0","method":"ping"}]]"#, Batch),
            ("[1]", NotObject),
            ("\"tools/call\"", NotObject),
            (r#"{"jsonrpc":"2.0","method":"ping"} {}"#, Parse),
            (r#"{"method":"ping"}"#, Version),
            (r#"{"jsonrpc":2.0,"method":"ping"}"#, Version),
            (r#"{"jsonrpc":"2.0","method":1}"#, Method),
            (
                r#"{"jsonrpc":"2.0","method":"Tools/Call","params":{"name":"admin_tool"}}"#,
                Method,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"tools/call ","params":{"name":"admin_tool"}}"#,
                Method,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"tools.call","params":{"name":"admin_tool"}}"#,
                Method,
            ),
            (r#"{"jsonrpc":"2.0","method":"TOOLS/LIST"}"#, Method),
            (r#"{"jsonrpc":"2.0","method":"ｔools/call"}"#, Method),
            (r#"{"jsonrpc":"2.0","method":""}"#, Method),
            (
                r#"{"jsonrpc":"2.0","method":"ping","Method":"tools/call"}"#,
                LookAlike,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"ping","paramſ":{}}"#,
                LookAlike,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"ping","ｍethod":"x"}"#,
                LookAlike,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"ping","method":"tools/call"}"#,
                Duplicate,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#,
                Duplicate,
            ),
            (r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#, Id),
            (r#"{"jsonrpc":"2.0","id":true,"method":"ping"}"#, Id),
            (r#"{"jsonrpc":"2.0","method":"ping","params":"x"}"#, Params),
            (r#"{"jsonrpc":"2.0","id":1}"#, Kind),
            (r#"{"jsonrpc":"2.0","result":{}}"#, Kind),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}"#,
                Kind,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
                ToolName,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["admin_tool"]}"#,
                ToolName,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["admin_tool"]}}"#,
                ToolName,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"admin_tool"}}"#,
                Duplicate,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","Name":"admin_tool"}}"#,
                LookAlike,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(check(body), Err(*want), "{body}");
        }
        assert_eq!(
            inspect(b"{\"jsonrpc\":\"2.0\",\"method\":\"\xff\"}", &scoped()).err(),
            Some(Parse)
        );
    }

    #[test]
    fn look_alike_and_invisible_tool_names_are_refused() {
        for name in [
            "ａｄｍｉｎ_tool",
            "Admin_Tool",
            "admin_tool ",
            " admin_tool",
            "admin\u{200b}_tool",
            "admin_tool\u{202e}",
            "admin_tool\u{feff}",
            "admin\t_tool",
            "admin_tool\u{0}",
            "",
        ] {
            assert_eq!(check(&call(name)), Err(RpcRefusal::ToolName), "{name:?}");
        }
        assert!(
            imitates("paramſ", MEMBERS) && imitates("ID", MEMBERS) && !imitates("idx", MEMBERS)
        );
        assert_eq!(RpcRefusal::Parse.code(), -32700);
        assert_eq!(RpcRefusal::Method.code(), -32600);
    }

    /// JSON values of bounded size, with the members and names the rules look at over-represented.
    fn json_value() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("jsonrpc".to_owned()),
            Just("method".to_owned()),
            Just("params".to_owned()),
            Just("name".to_owned()),
            Just("id".to_owned()),
            Just("result".to_owned()),
            "[A-Za-zſＭ \u{200b}]{0,8}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            Just(json!("2.0")),
            Just(json!("tools/call")),
            Just(json!("admin_tool")),
            "[a-zA-Z/_ \u{ff41}-\u{ff5a}\u{202e}]{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 24, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::vec((key.clone(), inner), 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Everything accepted has a plain string method or is a response, and every `tools/call` carries the exact
    /// name the scope rule is applied to.
    fn accepted_is_checked(body: &[u8]) {
        let Ok(i) = inspect(body, &scoped()) else {
            return;
        };
        let parsed: Value = serde_json::from_slice(body).expect("accepted bodies are JSON");
        let all: Vec<&Value> = match &parsed {
            Value::Array(b) => b.iter().collect(),
            one => vec![one],
        };
        assert_eq!(all.len(), i.messages.len());
        for (m, v) in i.messages.iter().zip(all) {
            assert_eq!(v["jsonrpc"], "2.0");
            assert_eq!(m.method.as_deref(), v.get("method").and_then(Value::as_str));
            if let Some(method) = &m.method {
                assert!(check_method(method).is_ok());
            }
            let is_call = m.method.as_deref() == Some(TOOLS_CALL);
            assert_eq!(is_call, m.tool.is_some());
            if let Some(tool) = &m.tool {
                assert_eq!(Some(tool.as_ref()), v["params"]["name"].as_str());
                assert!(!tool.chars().any(invisible));
                assert!(scoped().contains_key(tool.as_ref()) || !imitates_any(tool, &scoped()));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_json_never_panics(v in json_value(), batch in any::<bool>()) {
            let body = if batch { json!([v]) } else { v };
            accepted_is_checked(serde_json::to_string(&body).expect("json").as_bytes());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            accepted_is_checked(&bytes);
        }

        #[test]
        fn request_shapes_are_checked(
            method in "[a-zA-Z/ ._]{0,12}|tools/call|tools/list",
            name in "[a-zA-Z_ \u{ff41}-\u{ff5a}\u{200b}]{0,12}|admin_tool",
            id in prop_oneof![Just("1".to_owned()), "[0-9]{1,40}", Just("\"x\"".to_owned())],
        ) {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":{},"params":{{"name":{}}}}}"#,
                Value::from(method.as_str()),
                Value::from(name.as_str()),
            );
            accepted_is_checked(body.as_bytes());
            if let Ok(i) = inspect(body.as_bytes(), &scoped()) {
                prop_assert_eq!(i.messages[0].id.map(RawValue::get), Some(id.as_str()));
            }
        }
    }
}
