//! The gateway's runtime pieces shared by its handlers ([`super`]), the upstream exchange ([`super::forward`])
//! and the routes ([`super::mount`]): [`Gateway`] (one upstream's configuration, HTTP client, session ids,
//! protected resource), [`RouteResource`], the JSON-RPC error response, and the end of `GET` streams at shutdown.
//! Below every other gateway file that needs them, so no file imports back up.

use super::config::GatewayConfig;
use super::identity::IdentitySigner;
use super::sessions::SessionIds;
use super::streams::StreamCounts;
use crate::guard;
use crate::state::AppState;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_proto::Scope;
use serde_json::{json, Value};
use std::sync::Arc;

/// A route's protected resource, computed once at start-up.
#[derive(Debug, Clone)]
pub struct RouteResource {
    /// The resource identifier: the issuer's origin and the route's path.
    pub url: String,
    /// Path of its RFC 9728 document.
    pub metadata_path: String,
    /// The scope its challenges name (and a request naming none of its scopes gets).
    pub default_scope: Scope,
    /// Its `scopes_supported`.
    pub scopes: Vec<String>,
}

impl RouteResource {
    /// The route's resource as the guard sees it.
    pub fn as_resource(&self) -> guard::Resource<'_> {
        guard::Resource {
            url: &self.url,
            metadata_path: &self.metadata_path,
            default_scope: &self.default_scope,
        }
    }
}

/// The gateway's runtime state: configuration, HTTP client, session table.
#[derive(Debug)]
pub struct Gateway {
    pub(super) config: GatewayConfig,
    /// `None` only if the HTTP client could not be built (logged once; every request then answers 502).
    pub(super) client: Option<reqwest::Client>,
    pub(super) sessions: SessionIds,
    /// The protected resource of a `[[gateway.routes]]` entry; `None` on the MCP endpoint.
    pub(super) route: Option<RouteResource>,
    /// Cached identity assertions (`[gateway] identity_jwt`).
    pub(super) identity: IdentitySigner,
    /// Open event streams per caller (`gateway_streams_per_caller`).
    pub(super) streams: Arc<StreamCounts>,
}

impl Gateway {
    /// Builds the gateway for `config`.
    pub fn new(config: GatewayConfig) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| tracing::error!(error = %e, "cannot build the gateway's HTTP client"))
            .ok();
        Self {
            config,
            client,
            sessions: SessionIds::default(),
            route: None,
            identity: IdentitySigner::default(),
            streams: Arc::default(),
        }
    }

    /// The protected resource this gateway serves.
    pub(super) fn resource<'a>(&'a self, s: &'a AppState) -> guard::Resource<'a> {
        match &self.route {
            Some(r) => r.as_resource(),
            None => guard::Resource::mcp(s),
        }
    }
}

/// `stream`, ended when `closing` changes ([`super::closing::StreamCloser::close_streams`], called by
/// [`crate::serve`] when shutdown begins).
pub(super) fn until_closing<S, T>(
    stream: S,
    closing: tokio::sync::watch::Receiver<u64>,
) -> impl futures_util::Stream<Item = T> + Send
where
    S: futures_util::Stream<Item = T> + Send + 'static,
    T: Send + 'static,
{
    use futures_util::StreamExt;
    futures_util::stream::unfold(
        (Box::pin(stream), closing),
        |(mut stream, mut closing)| async move {
            tokio::select! {
                item = stream.next() => item.map(|i| (i, (stream, closing))),
                _ = closing.changed() => None,
            }
        },
    )
}

/// A JSON-RPC error response with no id (the gateway cannot always know it), `Cache-Control: no-store`.
pub(crate) fn rpc_error(status: StatusCode, id: Value, code: i64, message: &str) -> Response {
    let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    (
        status,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response()
}

/// 429 with `Retry-After` and a JSON-RPC error body (the gateway's error format): the caller holds as many
/// streams as allowed.
pub(crate) fn too_many_streams(id: Value) -> Response {
    let mut resp = rpc_error(
        StatusCode::TOO_MANY_REQUESTS,
        id,
        -32000,
        "too many open streams for this user and client; close one and retry",
    );
    resp.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(crate::error::RETRY_AFTER_SECS),
    );
    resp
}
