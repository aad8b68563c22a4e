//! CORS for browser-based MCP clients (e.g. MCP Inspector) against a real `portcullis serve`: the metadata
//! documents, JWKS, `/register`, `/token`, `/revoke` and the MCP endpoint answer preflights and carry
//! `Access-Control-Allow-Origin: *` (never with credentials); `/authorize`, `/login`, `/consent` and the pages
//! carry no CORS header at all.

#![allow(clippy::unwrap_used)]

use crate::support::{http, start, start_with, Server};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};

/// A browser-based client's origin (MCP Inspector's default).
const ORIGIN: &str = "http://localhost:6274";

/// Every path that must allow cross-origin requests, for a server started with `start()`.
fn cors_paths() -> Vec<&'static str> {
    vec![
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
        "/jwks.json",
        "/register",
        "/token",
        "/revoke",
        "/mcp",
    ]
}

/// Paths that are navigated to, never fetched: no CORS.
const NO_CORS_PATHS: [&str; 3] = ["/authorize", "/login", "/consent"];

async fn preflight(s: &Server, path: &str, method: &str) -> (StatusCode, HeaderMap) {
    let resp = http()
        .request(Method::OPTIONS, s.url(path))
        .header("Origin", ORIGIN)
        .header("Access-Control-Request-Method", method)
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type, mcp-protocol-version, mcp-session-id, last-event-id",
        )
        .send()
        .await
        .unwrap();
    (resp.status(), resp.headers().clone())
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).map_or("", |v| v.to_str().unwrap())
}

fn list(h: &HeaderMap, name: &str) -> Vec<String> {
    header(h, name)
        .split(',')
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .collect()
}

fn assert_no_cors(h: &HeaderMap, what: &str) {
    for name in [
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-allow-headers",
        "access-control-allow-credentials",
        "access-control-expose-headers",
    ] {
        assert!(h.get(name).is_none(), "{what}: unexpected {name}: {h:?}");
    }
}

#[tokio::test]
async fn preflight_is_answered_on_every_fetchable_route() {
    let s = start();
    for path in cors_paths() {
        for method in ["GET", "POST", "DELETE"] {
            let (status, h) = preflight(&s, path, method).await;
            assert!(status.is_success(), "preflight {method} {path}: {status}");
            assert_eq!(header(&h, "access-control-allow-origin"), "*", "{path}");
            assert!(
                h.get("access-control-allow-credentials").is_none(),
                "{path}: credentials must not be allowed"
            );
            let methods = list(&h, "access-control-allow-methods");
            for m in ["get", "post", "delete", "options"] {
                assert!(methods.iter().any(|x| x == m), "{path}: {methods:?}");
            }
            let headers = list(&h, "access-control-allow-headers");
            for name in [
                "authorization",
                "content-type",
                "mcp-protocol-version",
                "mcp-method",
                "mcp-name",
                "mcp-session-id",
                "last-event-id",
            ] {
                assert!(headers.iter().any(|x| x == name), "{path}: {headers:?}");
            }
        }
    }
}

#[tokio::test]
async fn responses_carry_cors_headers_and_expose_the_challenge() {
    let s = start();
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/.well-known/oauth-protected-resource/mcp",
        "/jwks.json",
    ] {
        let resp = http()
            .get(s.url(path))
            .header("Origin", ORIGIN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(resp.headers(), "access-control-allow-origin"),
            "*",
            "{path}"
        );
    }
    // The 401 challenge of the MCP endpoint must be readable by a script (the client needs resource_metadata).
    let resp = http()
        .post(s.url("/mcp"))
        .header("Origin", ORIGIN)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let h = resp.headers();
    assert_eq!(header(h, "access-control-allow-origin"), "*");
    assert!(h.get("www-authenticate").is_some());
    let exposed = list(h, "access-control-expose-headers");
    for name in ["www-authenticate", "mcp-session-id"] {
        assert!(exposed.iter().any(|x| x == name), "{exposed:?}");
    }
    // Errors of the token, revocation and registration endpoints too: a browser client must read them.
    for (path, body, ctype) in [
        (
            "/token",
            "grant_type=nope",
            "application/x-www-form-urlencoded",
        ),
        ("/revoke", "token=x", "application/x-www-form-urlencoded"),
        ("/register", "{", "application/json"),
    ] {
        let resp = http()
            .post(s.url(path))
            .header("Origin", ORIGIN)
            .header("Content-Type", ctype)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            header(resp.headers(), "access-control-allow-origin"),
            "*",
            "{path}: {}",
            resp.status()
        );
    }
}

#[tokio::test]
async fn authorize_login_consent_and_pages_have_no_cors() {
    let s = start();
    for path in NO_CORS_PATHS.iter().chain(["/livez", "/readyz"].iter()) {
        for method in ["GET", "POST"] {
            let (status, h) = preflight(&s, path, method).await;
            assert!(!status.is_success(), "preflight {method} {path}: {status}");
            assert_no_cors(&h, &format!("preflight {method} {path}"));
        }
    }
    let resp = http()
        .get(s.url("/authorize?response_type=code&client_id=unknown"))
        .header("Origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert_no_cors(resp.headers(), "GET /authorize");
    for path in ["/login", "/consent"] {
        let resp = http()
            .post(s.url(path))
            .header("Origin", ORIGIN)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("csrf_token=x&request=y")
            .send()
            .await
            .unwrap();
        assert_no_cors(resp.headers(), &format!("POST {path}"));
    }
}

#[tokio::test]
async fn issuer_with_a_path_has_cors_on_every_metadata_url() {
    // The issuer's port is not the listening one; only paths matter here.
    let s = start_with(&["--issuer", "http://127.0.0.1:1/tenant"]);
    for path in [
        "/.well-known/oauth-authorization-server/tenant",
        "/.well-known/openid-configuration/tenant",
        "/tenant/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/tenant/token",
        "/tenant/register",
        "/tenant/jwks.json",
    ] {
        let (status, h) = preflight(&s, path, "GET").await;
        assert!(status.is_success(), "preflight {path}: {status}");
        assert_eq!(header(&h, "access-control-allow-origin"), "*", "{path}");
    }
    let (status, h) = preflight(&s, "/tenant/authorize", "GET").await;
    assert!(
        !status.is_success(),
        "preflight /tenant/authorize: {status}"
    );
    assert_no_cors(&h, "preflight /tenant/authorize");
}
