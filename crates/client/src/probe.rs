//! The unauthenticated requests `portcullis login` makes to find the server's challenge (MCP "Authorization"
//! §Authorization Flow Steps: the client learns where to authorize from a 401). A server may answer the opening
//! request (`server/discover` in 2026-07-28, `initialize` before) without a token and challenge only later, so a
//! success there is followed by a listing call (`tools/list`) before deciding there is nothing to log in to.

use crate::discovery::PROTOCOL_VERSION;
use crate::modern::{self, DiscoverOutcome, MODERN_VERSION};
use crate::protocol::initialize_params;
use crate::transport::{Reply, Transport};
use crate::{Error, Result};
use portcullis_proto::www_authenticate::BearerChallenge;
use serde_json::{json, Value};
use url::Url;

/// What one probe request showed.
enum Step {
    /// 401 or 403: the challenge (if any) to log in with.
    Challenged(Option<BearerChallenge>),
    /// A JSON-RPC answer: the error object, or `None` for a result.
    Answered(Option<Value>),
    /// A result, for the one request whose result is looked at (`server/discover`).
    Result(Value),
    /// Something else (5xx, a body without a response): let discovery try without a challenge.
    Inconclusive,
}

/// The challenge to log in with; `Ok(None)` when the server's answers say nothing either way (discovery then
/// starts from the well-known URLs); [`Error::NotProtected`] when it served a listing without a token.
pub async fn challenge(http: &reqwest::Client, server: &Url) -> Result<Option<BearerChallenge>> {
    let t = Transport::new(http.clone(), server.clone());
    let mut version = MODERN_VERSION.to_owned();
    for _ in 0..2 {
        let discover = modern_request(1, "server/discover", &version);
        match step(&t, &discover).await? {
            Step::Challenged(ch) => return Ok(ch),
            Step::Inconclusive => return Ok(None),
            Step::Result(r) if modern::discover_lists(&r, &version) => {
                let list = modern_request(2, "tools/list", &version);
                return listing(&t, &list, server).await;
            }
            Step::Result(_) | Step::Answered(None) => break,
            Step::Answered(Some(e)) => match modern::classify_discover(Some(&e)) {
                DiscoverOutcome::RetryWith(v) => version = v,
                _ => break,
            },
        }
    }
    // The older revisions: initialize, then a listing in the session.
    t.set_protocol_version(PROTOCOL_VERSION);
    let init =
        json!({"jsonrpc": "2.0", "id": 3, "method": "initialize", "params": initialize_params()});
    match step(&t, &init).await? {
        Step::Challenged(ch) => return Ok(ch),
        Step::Inconclusive | Step::Answered(Some(_)) => return Ok(None),
        Step::Answered(None) | Step::Result(_) => {}
    }
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    if let Reply::Unauthorized(ch) | Reply::Forbidden(ch) =
        t.post(None, &initialized.to_string()).await?
    {
        return Ok(ch);
    }
    let list = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list", "params": {}});
    let outcome = listing(&t, &list, server).await;
    t.close(None).await;
    outcome
}

fn modern_request(id: i64, method: &str, version: &str) -> Value {
    let params = modern::with_meta(json!({}), version, &modern::client_capabilities(false));
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// The listing call: a challenge, or proof that the server is not protected.
async fn listing(t: &Transport, msg: &Value, server: &Url) -> Result<Option<BearerChallenge>> {
    match step(t, msg).await? {
        Step::Challenged(ch) => Ok(ch),
        Step::Answered(None) | Step::Result(_) => Err(Error::NotProtected {
            url: server.to_string(),
        }),
        Step::Answered(Some(_)) | Step::Inconclusive => Ok(None),
    }
}

async fn step(t: &Transport, msg: &Value) -> Result<Step> {
    let reply = match t.post(None, &msg.to_string()).await {
        Ok(r) => r,
        Err(Error::UnexpectedStatus { status, .. }) if (400..500).contains(&status) => {
            return Ok(Step::Answered(Some(json!({"code": 0}))))
        }
        Err(Error::UnexpectedStatus { status, .. }) => {
            tracing::debug!(status, "unexpected answer to the unauthenticated request");
            return Ok(Step::Inconclusive);
        }
        Err(e) => return Err(e),
    };
    let text = match reply {
        Reply::Unauthorized(ch) | Reply::Forbidden(ch) => return Ok(Step::Challenged(ch)),
        Reply::Accepted => return Ok(Step::Inconclusive),
        Reply::Json(text) => Some(text),
        Reply::Stream(mut s) => {
            let mut found = None;
            while let Some(ev) = s.next_event().await {
                if ev.data.contains("\"result\"") || ev.data.contains("\"error\"") {
                    found = Some(ev.data);
                    break;
                }
            }
            found
        }
    };
    let v = text.and_then(|t| serde_json::from_str::<Value>(&t).ok());
    Ok(match v {
        Some(v) if v.get("error").is_some() => Step::Answered(v.get("error").cloned()),
        Some(v) if v.get("result").is_some() => Step::Result(v["result"].clone()),
        _ => Step::Inconclusive,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::mock::{MockServer, Resp};

    /// Answers the opening request of either revision without a token; challenges the listing.
    async fn lenient_opening(modern_too: bool) -> MockServer {
        MockServer::start(move |req, base| {
            let v: Value = serde_json::from_str(&req.body).unwrap();
            let challenge = format!("Bearer resource_metadata=\"{base}/.well-known/oauth-protected-resource\", scope=\"a b\"");
            match v["method"].as_str().unwrap_or("") {
                "server/discover" if modern_too => Resp::json(200, json!({"jsonrpc": "2.0", "id": v["id"], "result": {"supportedVersions": ["2026-07-28"]}})),
                "server/discover" => Resp::json(200, json!({"jsonrpc": "2.0", "id": v["id"], "error": {"code": -32601, "message": "no"}})),
                "initialize" => Resp::json(200, json!({"jsonrpc": "2.0", "id": v["id"], "result": {"protocolVersion": "2025-11-25"}})),
                "notifications/initialized" => Resp::status(202),
                _ => Resp::json(401, json!({"error": "invalid_token"})).with_header("www-authenticate", &challenge),
            }
        })
        .await
    }

    #[tokio::test]
    async fn a_later_challenge_is_found_in_either_revision() {
        for modern_too in [true, false] {
            let srv = lenient_opening(modern_too).await;
            let url = Url::parse(&format!("{}/mcp", srv.base)).unwrap();
            let ch = challenge(&crate::http_client().unwrap(), &url)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(ch.scope.as_deref(), Some("a b"));
            let listed = srv
                .requests()
                .iter()
                .filter(|r| r.body.contains("tools/list"))
                .count();
            assert_eq!(listed, 1);
        }
    }

    #[tokio::test]
    async fn an_open_listing_means_not_protected() {
        let srv = MockServer::start(|req, _| {
            let v: Value = serde_json::from_str(&req.body).unwrap();
            Resp::json(
                200,
                json!({"jsonrpc": "2.0", "id": v["id"], "result": {"tools": []}}),
            )
        })
        .await;
        let url = Url::parse(&format!("{}/mcp", srv.base)).unwrap();
        assert!(matches!(
            challenge(&crate::http_client().unwrap(), &url).await,
            Err(Error::NotProtected { .. })
        ));
    }
}
