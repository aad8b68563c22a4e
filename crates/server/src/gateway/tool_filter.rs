//! `tools/list` hiding (`[gateway] hide_unauthorized_tools`): the upstream's answer to a `tools/list` request has
//! the tools removed whose per-tool scope the caller's token lacks, so clients only see what they can call.
//!
//! Only the JSON-RPC response whose `id` is the id of a `tools/list` request in the body is rewritten (MCP
//! "Tools", Listing Tools), whether the upstream answers `application/json` (one body) or `text/event-stream`
//! (SSE, WHATWG HTML §9.2: events end at a blank line; lines end at CRLF, LF or CR). Every other event passes
//! through unchanged, as soon as it is complete; once every awaited response has been seen, the rest of the
//! stream passes through without being looked at. Hiding is a convenience, not the boundary: a `tools/call` of a
//! hidden tool is still refused by the per-tool scope check.

use super::rpc::{self, Inspected, TOOLS_LIST};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use portcullis_guard::VerifiedToken;
use portcullis_proto::Scope;
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The members of a 2026-07-28 list result ("Server Features" §Caching; `resultType` on every result).
const CACHE_MEMBERS: &[&str] = &["resultType", "ttlMs", CACHE_SCOPE];
/// The cache-scope member of a list result.
const CACHE_SCOPE: &str = "cacheScope";
/// `cacheScope` for an answer that differs per user (raw JSON).
const PRIVATE: &str = "\"private\"";

/// What to hide from which responses of one request.
#[derive(Debug, Clone)]
pub struct ToolFilter {
    /// Ids of the `tools/list` requests in the body; their responses are rewritten.
    ids: Vec<Value>,
    /// Tool names the caller may not call.
    hidden: Vec<String>,
}

impl ToolFilter {
    /// The filter for `body` sent by `p`, or `None` when there is nothing to do (no `tools/list` request with
    /// an id, or no per-tool scopes). A caller who may call every tool still gets one: its 2026-07-28 lists are
    /// marked private too, since another user's differ.
    pub fn for_request(
        tool_scopes: &BTreeMap<String, Scope>,
        p: &VerifiedToken,
        body: &Inspected<'_>,
    ) -> Option<Self> {
        let hidden: Vec<String> = tool_scopes
            .iter()
            .filter(|(_, needed)| !p.scope.includes(needed))
            .map(|(name, _)| name.clone())
            .collect();
        if tool_scopes.is_empty() {
            return None;
        }
        // Ids are compared as values (so `1` matches `1.0` as before); the answer keeps its own bytes.
        let ids: Vec<Value> = (body.messages.iter())
            .filter(|m| m.method.as_deref() == Some(TOOLS_LIST))
            .filter_map(|m| serde_json::from_str::<Value>(m.id?.get()).ok())
            .filter(|id| !id.is_null())
            .collect();
        (!ids.is_empty()).then_some(Self { ids, hidden })
    }

    /// `json` (one JSON-RPC message or a batch) without the hidden tools of awaited responses, and how many
    /// awaited responses it contained; the text is `None` when nothing changed. Everything but the removed
    /// tools keeps its bytes (ids above `u64` included): members are copied raw, never re-serialized.
    fn apply(&self, json: &str) -> (Option<String>, usize) {
        if !json.trim_start().starts_with('[') {
            return self.apply_one(json);
        }
        let Ok(batch) = serde_json::from_str::<Vec<&RawValue>>(json) else {
            return (None, 0);
        };
        let mut answered = 0;
        let mut changed = false;
        let parts: Vec<Cow<'_, str>> = batch
            .iter()
            .map(|m| {
                let (out, n) = self.apply_one(m.get());
                answered += n;
                changed |= out.is_some();
                out.map_or(Cow::Borrowed(m.get()), Cow::Owned)
            })
            .collect();
        (changed.then(|| format!("[{}]", parts.join(","))), answered)
    }

    fn apply_one(&self, json: &str) -> (Option<String>, usize) {
        let Some(members) = rpc::members(json) else {
            return (None, 0);
        };
        let has = |name: &str| members.iter().any(|(k, _)| k == name);
        if !(has("result") || has("error")) || has("method") {
            return (None, 0);
        }
        let id = members.iter().find(|(k, _)| k == "id").map(|(_, v)| v);
        let awaited = id
            .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok())
            .is_some_and(|id| self.ids.contains(&id));
        if !awaited {
            return (None, 0);
        }
        let result = members.iter().find(|(k, _)| k == "result").map(|(_, v)| v);
        let Some(new_result) = result.and_then(|r| self.without_hidden(r.get())) else {
            return (None, 1);
        };
        (Some(object(&members, "result", &new_result)), 1)
    }

    /// A `tools/list` result without the hidden tools, and when it is a 2026-07-28 result (it has `resultType`,
    /// `ttlMs` or `cacheScope`) marked `cacheScope: "private"`: the list differs per user, so no shared cache
    /// may serve it to another ("Server Features" §Caching). `None` if nothing changes.
    fn without_hidden(&self, result: &str) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct Tool<'a> {
            #[serde(borrow)]
            name: Option<Cow<'a, str>>,
        }
        let members = rpc::members(result)?;
        let tools = members.iter().find(|(k, _)| k == "tools")?.1;
        let tools: Vec<&RawValue> = serde_json::from_str(tools.get()).ok()?;
        let hidden = |t: &&RawValue| {
            serde_json::from_str::<Tool<'_>>(t.get())
                .ok()
                .and_then(|t| t.name)
                .is_some_and(|name| self.hidden.iter().any(|h| *h == name))
        };
        let modern = (members.iter()).any(|(k, _)| CACHE_MEMBERS.contains(&k.as_ref()));
        let private = members
            .iter()
            .any(|(k, v)| k == CACHE_SCOPE && v.get() == PRIVATE);
        let any_hidden = tools.iter().any(hidden);
        let mut changes = Vec::new();
        let kept;
        if any_hidden {
            let names: Vec<&str> = tools
                .iter()
                .filter(|t| !hidden(t))
                .map(|t| t.get())
                .collect();
            kept = format!("[{}]", names.join(","));
            changes.push(("tools", kept.as_str()));
        }
        if modern && !private {
            changes.push((CACHE_SCOPE, PRIVATE));
        }
        (!changes.is_empty()).then(|| object_with(&members, &changes))
    }

    /// Rewrites a whole JSON body; `None` if it is not JSON (left to the caller's checks).
    pub fn rewrite_json(&self, body: &[u8]) -> Option<Vec<u8>> {
        let text = std::str::from_utf8(body).ok()?;
        serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
        Some(match self.apply(text).0 {
            Some(changed) => changed.into_bytes(),
            None => body.to_vec(),
        })
    }

    /// Rewrites an event stream as it flows (see the module documentation). An event larger than `max_event`
    /// bytes ends the stream with an error.
    pub fn rewrite_sse<S, E>(
        self,
        upstream: S,
        max_event: usize,
    ) -> impl Stream<Item = Result<Bytes, SseError>> + Send + 'static
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let awaiting = self.ids.len();
        let state = SseState {
            upstream: Box::pin(upstream),
            filter: self,
            buf: BytesMut::new(),
            awaiting,
            max_event,
            done: false,
        };
        futures_util::stream::unfold(state, |mut st| async move {
            let item = st.next_item().await?;
            Some((item, st))
        })
    }
}

/// The JSON object of `members` (raw values) with the value of `name` replaced by `value` (raw JSON).
fn object(members: &[(Cow<'_, str>, &RawValue)], name: &str, value: &str) -> String {
    object_with(members, &[(name, value)])
}

/// The JSON object of `members` (raw values) with each `(name, value)` of `changes` (raw JSON) replacing the
/// member of that name, or appended when there is none.
fn object_with(members: &[(Cow<'_, str>, &RawValue)], changes: &[(&str, &str)]) -> String {
    let mut parts: Vec<(&str, &str)> = members
        .iter()
        .map(|(k, v)| {
            let changed = changes.iter().find(|(n, _)| *n == k.as_ref());
            (k.as_ref(), changed.map_or(v.get(), |(_, value)| *value))
        })
        .collect();
    for (name, value) in changes {
        if !members.iter().any(|(k, _)| k == name) {
            parts.push((name, value));
        }
    }
    let mut out = String::with_capacity(64 + parts.iter().map(|(_, v)| v.len()).sum::<usize>());
    out.push('{');
    for (i, (k, v)) in parts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // A string always serializes.
        out.push_str(&serde_json::to_string(k).unwrap_or_default());
        out.push(':');
        out.push_str(v);
    }
    out.push('}');
    out
}

/// Why a rewritten event stream ended early.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseError {
    /// The upstream stream failed.
    #[error("upstream event stream failed: {0}")]
    Upstream(String),
    /// An event exceeded the size limit.
    #[error("upstream event larger than the limit")]
    TooLarge,
}

struct SseState<S> {
    upstream: std::pin::Pin<Box<S>>,
    filter: ToolFilter,
    /// Bytes of the event being read (always starts at an event boundary while filtering).
    buf: BytesMut,
    /// Awaited responses not yet seen; at 0 everything passes through untouched.
    awaiting: usize,
    max_event: usize,
    done: bool,
}

impl<S, E> SseState<S>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    /// The next chunk to send downstream, `None` at the end.
    async fn next_item(&mut self) -> Option<Result<Bytes, SseError>> {
        loop {
            if self.done {
                return None;
            }
            if self.awaiting == 0 {
                if !self.buf.is_empty() {
                    return Some(Ok(self.buf.split().freeze()));
                }
                return match self.upstream.next().await {
                    Some(Ok(chunk)) => Some(Ok(chunk)),
                    Some(Err(e)) => self.fail(SseError::Upstream(e.to_string())),
                    None => None,
                };
            }
            let mut out = BytesMut::new();
            while self.awaiting > 0 {
                let Some(end) = event_end(&self.buf) else {
                    break;
                };
                let event = self.buf.split_to(end);
                out.extend_from_slice(&self.rewrite_event(event));
            }
            if self.awaiting == 0 {
                out.extend_from_slice(&self.buf.split());
            }
            if !out.is_empty() {
                return Some(Ok(out.freeze()));
            }
            if self.buf.len() > self.max_event {
                return self.fail(SseError::TooLarge);
            }
            match self.upstream.next().await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(e)) => return self.fail(SseError::Upstream(e.to_string())),
                None => {
                    // An unfinished last event is not dispatched by an SSE client (§9.2.6): pass it on as is.
                    self.done = true;
                    return (!self.buf.is_empty()).then(|| Ok(self.buf.split().freeze()));
                }
            }
        }
    }

    fn fail(&mut self, e: SseError) -> Option<Result<Bytes, SseError>> {
        self.done = true;
        Some(Err(e))
    }

    /// One complete event (its terminating blank line included), rewritten if it carries an awaited response.
    fn rewrite_event(&mut self, event: BytesMut) -> Bytes {
        let lines = split_lines(&event);
        let data: Vec<&[u8]> = lines.iter().filter_map(|l| field(l, b"data")).collect();
        if data.is_empty() {
            return event.freeze();
        }
        let joined = data.join(&b'\n');
        let Ok(text) = std::str::from_utf8(&joined) else {
            return event.freeze();
        };
        let (rewritten, answered) = self.filter.apply(text);
        self.awaiting = self.awaiting.saturating_sub(answered);
        let Some(json) = rewritten else {
            return event.freeze();
        };
        // The event's other fields (id, event, retry, comments) in their order, then the rewritten data.
        let mut out = BytesMut::with_capacity(json.len() + 64);
        for line in lines.iter().filter(|l| field(l, b"data").is_none()) {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\n");
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(json.as_bytes());
        out.extend_from_slice(b"\n\n");
        out.freeze()
    }
}

/// The end (exclusive) of the first complete event in `buf`: just past the blank line that ends it. A CR at
/// the very end of `buf` may be the first half of a CRLF, so it waits for more input.
fn event_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    let mut i = 0;
    while i < buf.len() {
        let terminator = match buf[i] {
            b'\n' => 1,
            b'\r' if i + 1 < buf.len() => {
                if buf[i + 1] == b'\n' {
                    2
                } else {
                    1
                }
            }
            b'\r' => return None,
            _ => {
                i += 1;
                continue;
            }
        };
        if i == line_start {
            return Some(i + terminator);
        }
        i += terminator;
        line_start = i;
    }
    None
}

/// The non-empty lines of one event, without their terminators.
fn split_lines(event: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < event.len() {
        match event[i] {
            b'\n' | b'\r' => {
                if i > start {
                    lines.push(&event[start..i]);
                }
                i += if event[i] == b'\r' && event.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < event.len() {
        lines.push(&event[start..]);
    }
    lines
}

/// The value of `line` if it is field `name` (`name: value`, `name:value`, or a bare `name`).
fn field<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let rest = line.strip_prefix(name)?;
    match rest.first() {
        None => Some(rest),
        Some(b':') => Some(rest[1..].strip_prefix(b" ").unwrap_or(&rest[1..])),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn principal(scope: &str) -> VerifiedToken {
        crate::guard::test_principal("alice", "c", scope)
    }

    fn scopes() -> BTreeMap<String, Scope> {
        BTreeMap::from([(
            "admin_tool".to_owned(),
            Scope::parse("mcp:admin").expect("scope"),
        )])
    }

    fn list_result(id: i64) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "result": {"tools": [
            {"name": "echo", "inputSchema": {"type": "object"}},
            {"name": "admin_tool", "inputSchema": {"type": "object"}}
        ]}})
    }

    fn names(msg: &Value) -> Vec<String> {
        msg["result"]["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .map(|t| t["name"].as_str().expect("name").to_owned())
            .collect()
    }

    fn for_request(scope: &str, body: &Value) -> Option<ToolFilter> {
        let text = body.to_string();
        let inspected = rpc::inspect(text.as_bytes(), &scopes()).expect("well-formed");
        ToolFilter::for_request(&scopes(), &principal(scope), &inspected)
    }

    fn filter() -> ToolFilter {
        let list = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"});
        for_request("mcp:tools", &list).expect("filter")
    }

    #[test]
    fn filter_only_for_a_tools_list_with_per_tool_scopes() {
        let list = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"});
        let text = list.to_string();
        let inspected = rpc::inspect(text.as_bytes(), &scopes()).expect("well-formed");
        let none = BTreeMap::new();
        assert!(ToolFilter::for_request(&none, &principal("mcp:tools"), &inspected).is_none());
        // Nothing hidden from a caller with every scope: an older list passes byte for byte.
        let all = for_request("mcp:tools mcp:admin", &list).expect("filter");
        let legacy = serde_json::to_vec(&list_result(7)).expect("json");
        assert_eq!(all.rewrite_json(&legacy).expect("same"), legacy);
        let call =
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "echo"}});
        assert!(for_request("mcp:tools", &call).is_none());
        let note = json!({"jsonrpc": "2.0", "method": "tools/list"});
        assert!(for_request("mcp:tools", &note).is_none());
        let batch = json!([call, list]);
        let f = for_request("mcp:tools", &batch).expect("batch");
        assert_eq!(f.ids, vec![json!(7)]);
    }

    #[test]
    fn json_answers_lose_hidden_tools_only_in_the_matching_response() {
        let f = filter();
        let out = f
            .rewrite_json(&serde_json::to_vec(&list_result(7)).expect("json"))
            .expect("rewritten");
        assert_eq!(
            names(&serde_json::from_slice(&out).expect("json")),
            ["echo"]
        );
        let other = serde_json::to_vec(&list_result(8)).expect("json");
        assert_eq!(
            f.rewrite_json(&other).expect("same"),
            other,
            "another id is untouched"
        );
        let batch = serde_json::to_vec(&json!([list_result(8), list_result(7)])).expect("json");
        let out: Value =
            serde_json::from_slice(&f.rewrite_json(&batch).expect("batch")).expect("json");
        assert_eq!(names(&out[0]), ["echo", "admin_tool"]);
        assert_eq!(names(&out[1]), ["echo"]);
        assert!(f.rewrite_json(b"not json").is_none());
    }

    /// MCP 2026-07-28 list results differ per user: marked `cacheScope: "private"` whether or not a tool is
    /// hidden, the other members kept.
    #[test]
    fn modern_list_results_are_marked_private() {
        let modern = |id: i64, cache: Option<&str>| {
            let mut v = list_result(id);
            v["result"]["resultType"] = json!("complete");
            v["result"]["ttlMs"] = json!(60000);
            if let Some(c) = cache {
                v["result"]["cacheScope"] = json!(c);
            }
            serde_json::to_vec(&v).expect("json")
        };
        let list = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"});
        for scope in ["mcp:tools", "mcp:tools mcp:admin"] {
            let f = for_request(scope, &list).expect("filter");
            for cache in [None, Some("public"), Some("private")] {
                let out: Value =
                    serde_json::from_slice(&f.rewrite_json(&modern(7, cache)).expect("json"))
                        .expect("json");
                assert_eq!(out["result"]["cacheScope"], "private", "{scope} {cache:?}");
                assert_eq!(out["result"]["resultType"], "complete");
                assert_eq!(out["result"]["ttlMs"], 60000);
                let want: &[&str] = if scope == "mcp:tools" {
                    &["echo"]
                } else {
                    &["echo", "admin_tool"]
                };
                assert_eq!(names(&out), want);
            }
            let other = modern(8, Some("public"));
            assert_eq!(f.rewrite_json(&other).expect("same"), other);
        }
    }

    /// Ids above `u64` keep their digits, and every other byte of the answer but the hidden tool stays.
    #[test]
    fn big_ids_and_other_members_keep_their_bytes() {
        let big = "123456789012345678901234567890";
        let text = format!(r#"{{"jsonrpc":"2.0","id":{big},"method":"tools/list"}}"#);
        let inspected = rpc::inspect(text.as_bytes(), &scopes()).expect("well-formed");
        let f = ToolFilter::for_request(&scopes(), &principal("mcp:tools"), &inspected)
            .expect("filter");
        let answer = format!(
            r#"{{"jsonrpc":"2.0", "id":{big},"result":{{"tools":[{{"name":"echo","x":1.50}},{{"name":"admin_tool"}}],"nextCursor":"c"}}}}"#
        );
        let out =
            String::from_utf8(f.rewrite_json(answer.as_bytes()).expect("json")).expect("utf-8");
        assert_eq!(
            out,
            format!(
                r#"{{"jsonrpc":"2.0","id":{big},"result":{{"tools":[{{"name":"echo","x":1.50}}],"nextCursor":"c"}}}}"#
            )
        );
        let untouched =
            format!(r#"{{"jsonrpc":"2.0","id":{big},"result":{{"tools":[{{"name":"echo"}}]}}}}"#);
        assert_eq!(
            f.rewrite_json(untouched.as_bytes()).expect("json"),
            untouched.as_bytes()
        );
    }

    fn chunks(
        parts: &[&str],
    ) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static {
        let owned: Vec<Result<Bytes, std::convert::Infallible>> = parts
            .iter()
            .map(|p| Ok(Bytes::from(p.to_string())))
            .collect();
        futures_util::stream::iter(owned)
    }

    async fn collect(
        s: impl Stream<Item = Result<Bytes, SseError>>,
    ) -> (Vec<String>, Option<SseError>) {
        let mut out = Vec::new();
        let mut s = std::pin::pin!(s);
        while let Some(item) = s.next().await {
            match item {
                Ok(b) => out.push(String::from_utf8(b.to_vec()).expect("utf-8")),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    #[tokio::test]
    async fn event_streams_are_rewritten_event_by_event() {
        let progress = "id: 1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n";
        let other = format!("data: {}\r\n\r\n", list_result(8));
        let target = format!(
            "id: 2\r\nevent: message\r\ndata: {}\r\n\r\n",
            list_result(7)
        );
        let tail = ": keep-alive\n\ndata: {\"after\":true}\n\n";
        // The target split mid-line and mid-CRLF across chunks.
        let (a, b) = target.split_at(target.len() - 3);
        let input = [progress, &other[..10], &other[10..], a, b, tail];
        let (out, err) = collect(filter().rewrite_sse(chunks(&input), 1 << 20)).await;
        assert_eq!(err, None);
        assert_eq!(
            out[0], progress,
            "a complete event passes as soon as it is complete"
        );
        let all = out.concat();
        assert!(all.starts_with(&format!("{progress}{other}")), "{all}");
        let rest = &all[progress.len() + other.len()..];
        let (event, after) = rest.split_once("\n\n").expect("event");
        assert!(
            event.starts_with("id: 2\nevent: message\ndata: "),
            "{event:?}"
        );
        let data: Value =
            serde_json::from_str(&event[event.find('{').expect("json")..]).expect("json");
        assert_eq!(names(&data), ["echo"]);
        assert_eq!(
            after, tail,
            "after the awaited response everything passes through"
        );
    }

    #[tokio::test]
    async fn multi_line_data_and_limits() {
        let json = serde_json::to_string_pretty(&list_result(7)).expect("json");
        let event: String = json
            .lines()
            .map(|l| format!("data:{l}\n"))
            .collect::<String>()
            + "\n";
        let (out, err) = collect(filter().rewrite_sse(chunks(&[&event]), 1 << 20)).await;
        assert_eq!(err, None);
        let all = out.concat();
        let data: Value =
            serde_json::from_str(all.trim_start_matches("data: ").trim()).expect("json");
        assert_eq!(names(&data), ["echo"]);

        let big = format!("data: {}", "x".repeat(100));
        let (_, err) = collect(filter().rewrite_sse(chunks(&[&big, &big]), 150)).await;
        assert_eq!(err, Some(SseError::TooLarge));
        // An unterminated last event is passed on as it is.
        let (out, err) = collect(filter().rewrite_sse(chunks(&["data: {}"]), 150)).await;
        assert_eq!((out.concat(), err), ("data: {}".to_owned(), None));
    }

    #[test]
    fn event_boundaries() {
        assert_eq!(event_end(b"data: x\n\nrest"), Some(9));
        assert_eq!(event_end(b"data: x\r\n\r\nrest"), Some(11));
        assert_eq!(event_end(b"data: x\r\rrest"), Some(9));
        assert_eq!(
            event_end(b"data: x\r\n\r"),
            None,
            "a final CR may be half a CRLF"
        );
        assert_eq!(event_end(b"data: x\n"), None);
        assert_eq!(event_end(b"\n"), Some(1));
        assert_eq!(field(b"data: {}", b"data"), Some(&b"{}"[..]));
        assert_eq!(field(b"data:{}", b"data"), Some(&b"{}"[..]));
        assert_eq!(field(b"database: x", b"data"), None);
    }
}
