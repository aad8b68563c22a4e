//! CORS (Fetch standard, "CORS protocol") for the routes a script on another origin must reach: the metadata
//! documents, the JWKS, `/register`, `/token`, `/revoke` and the MCP endpoints (browser-based MCP clients such as
//! MCP Inspector). Never for `/authorize`, `/login`, `/consent` or the pages: those are navigated to, not fetched.
//!
//! Any origin and no credentials: these routes authenticate with a bearer token or the request body, never with
//! cookies, so `Access-Control-Allow-Origin: *` exposes nothing a script could not already send. The allowed and
//! exposed headers are the ones an MCP client sends and reads (MCP "Transports", Streamable HTTP; RFC 9728 §5.1:
//! the client must read `WWW-Authenticate`).
//!
//! This is a small hand-written layer rather than `tower_http::cors` for speed: axum clones a route's service for
//! every request, and `tower_http`'s layer carries its configuration in vectors, so each request paid several
//! allocations for it. Here every header value is a `'static` constant and the service is just its inner one.

use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use axum::routing::MethodRouter;
use futures_util::future::{Either, FutureExt, Map, Ready};
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Allowed methods (a preflight's `Access-Control-Allow-Methods`).
pub const ALLOW_METHODS: &str = "GET, POST, DELETE, OPTIONS";
/// Request headers a script may send.
/// (`mcp-method` and `mcp-name` are MCP 2026-07-28's standard request headers. The `Mcp-Param-*` headers a tool
/// may declare are not listed: no built-in tool declares one, and a preflight cannot allow a prefix.)
pub const ALLOW_HEADERS: &str =
    "authorization, content-type, mcp-protocol-version, mcp-method, mcp-name, mcp-session-id, last-event-id";
/// Response headers a script may read.
pub const EXPOSE_HEADERS: &str = "www-authenticate, mcp-session-id";
/// How long a browser may cache a preflight answer, in seconds.
pub const MAX_AGE: &str = "3600";
/// The request headers the answer depends on (for caches).
const VARY: &str = "origin, access-control-request-method, access-control-request-headers";

/// The layer: wrap a route with it.
#[derive(Debug, Clone, Copy, Default)]
pub struct CorsLayer;

impl<S> Layer<S> for CorsLayer {
    type Service = Cors<S>;
    fn layer(&self, inner: S) -> Cors<S> {
        Cors { inner }
    }
}

/// The service: answers preflights itself, adds the CORS headers to every other response.
#[derive(Debug, Clone)]
pub struct Cors<S> {
    inner: S,
}

type Finish<B, E> = fn(Result<Response<B>, E>) -> Result<Response<B>, E>;

impl<S, ReqB, ResB> Service<Request<ReqB>> for Cors<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Default,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future =
        Either<Ready<Result<Response<ResB>, S::Error>>, Map<S::Future, Finish<ResB, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        if req.method() == Method::OPTIONS {
            // Every OPTIONS on these routes is answered as a preflight: they have no other use for it.
            let mut resp = Response::new(ResB::default());
            *resp.status_mut() = StatusCode::OK;
            preflight_headers(resp.headers_mut());
            return Either::Left(futures_util::future::ready(Ok(resp)));
        }
        Either::Right(self.inner.call(req).map(add_headers::<ResB, S::Error>))
    }
}

fn add_headers<B, E>(result: Result<Response<B>, E>) -> Result<Response<B>, E> {
    result.map(|mut resp| {
        let h = resp.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
        h.append(header::VARY, HeaderValue::from_static(VARY));
        resp
    })
}

fn preflight_headers(h: &mut HeaderMap) {
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE),
    );
    h.insert(header::VARY, HeaderValue::from_static(VARY));
}

/// `route` with CORS ([`CorsLayer`]) and an explicit OPTIONS handler: the router's method-not-allowed
/// fallback replaces the per-route default one, so without it a preflight would get a 405 without CORS headers
/// (the layer answers every OPTIONS itself; the handler only makes the method routable).
pub fn route<S: Clone + Send + Sync + 'static>(route: MethodRouter<S>) -> MethodRouter<S> {
    route
        .options(|| async { StatusCode::NO_CONTENT })
        .layer(CorsLayer)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    fn app() -> Router {
        Router::new().route(
            "/x",
            get(|| async { (StatusCode::UNAUTHORIZED, "no") }).layer(CorsLayer),
        )
    }

    #[tokio::test]
    async fn preflight_and_simple_responses() {
        let resp = app()
            .oneshot(
                Request::options("/x")
                    .header("origin", "https://a.example")
                    .header("access-control-request-method", "POST")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let h = resp.headers();
        assert_eq!(h["access-control-allow-origin"], "*");
        assert_eq!(h["access-control-allow-methods"], ALLOW_METHODS);
        assert_eq!(h["access-control-allow-headers"], ALLOW_HEADERS);
        assert_eq!(h["access-control-max-age"], "3600");
        assert!(h.get("access-control-allow-credentials").is_none());

        let resp = app()
            .oneshot(
                Request::get("/x")
                    .header("origin", "https://a.example")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        // The inner answer is kept; only headers are added.
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let h = resp.headers();
        assert_eq!(h["access-control-allow-origin"], "*");
        assert_eq!(h["access-control-expose-headers"], EXPOSE_HEADERS);
        assert!(h["vary"].to_str().unwrap().contains("origin"));
        assert!(h.get("access-control-allow-methods").is_none());
    }
}
