//! Client ID Metadata Documents end to end: a URL `client_id` whose document a loopback document server
//! (started here) publishes, allowed through the SSRF guard with `--cimd-allow-host` only where a test says
//! so. The happy path goes through login, consent, the token endpoint and `/mcp`; each refusal (wrong
//! `client_id`, non-public address, redirect, oversize, timeout, non-https, unknown `redirect_uri`) must end
//! on an error page and never redirect to the client.

#![allow(clippy::unwrap_used)]

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One canned answer of the document server.
#[derive(Clone)]
pub(crate) enum Reply {
    /// Status, extra header lines, body.
    Answer(u16, Vec<String>, String),
    /// Status 200 with extra header lines and a body delimited by closing the connection (no
    /// `Content-Length`).
    Unsized(Vec<String>, String),
    /// Accept the request and never answer (until the peer closes, or 120 s).
    Hang,
    /// The inner reply after a pause.
    Delayed(Duration, Box<Reply>),
    /// Status 200, `application/json`, no `Content-Length`, and a body that never ends (until the peer closes).
    Endless,
}

/// A tiny HTTP/1.1 server on 127.0.0.1 serving canned replies by path, counting requests per path and the
/// requests it is answering at once (the peak in `max_open`; an endless body counts only until its head is sent:
/// that the fetcher hung up is noticed only at a later write, after the fetcher has moved on).
pub(crate) struct DocServer {
    pub(crate) port: u16,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    pub(crate) total: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    pub(crate) max_open: Arc<AtomicUsize>,
}

/// Counts a request as open from its creation to its drop (the end of its answer), keeping the peak.
struct Open(Arc<AtomicUsize>);

impl Open {
    fn new(open: &Arc<AtomicUsize>, max_open: &AtomicUsize) -> Self {
        let now = open.fetch_add(1, Ordering::SeqCst) + 1;
        max_open.fetch_max(now, Ordering::SeqCst);
        Self(open.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl DocServer {
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let doc = Self {
            port,
            routes: Arc::default(),
            hits: Arc::default(),
            total: Arc::default(),
            open: Arc::default(),
            max_open: Arc::default(),
        };
        let shared = doc.handles();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(shared.handles().serve(sock));
            }
        });
        doc
    }

    /// Another handle on the same routes and counters.
    fn handles(&self) -> Self {
        Self {
            port: self.port,
            routes: self.routes.clone(),
            hits: self.hits.clone(),
            total: self.total.clone(),
            open: self.open.clone(),
            max_open: self.max_open.clone(),
        }
    }

    /// Reads one request head from `sock` and answers it with its path's reply.
    async fn serve(self, mut sock: tokio::net::TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let mut open = Some(Open::new(&self.open, &self.max_open));
        let head = String::from_utf8_lossy(&buf).into_owned();
        let path = head.split(' ').nth(1).unwrap_or("").to_owned();
        self.total.fetch_add(1, Ordering::SeqCst);
        *self.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
        let mut reply = self.routes.lock().unwrap().get(&path).cloned();
        while let Some(Reply::Delayed(pause, inner)) = reply {
            tokio::time::sleep(pause).await;
            reply = Some(*inner);
        }
        match reply {
            Some(Reply::Hang) => {
                let _ = tokio::time::timeout(Duration::from_secs(120), async {
                    while let Ok(n) = sock.read(&mut chunk).await {
                        if n == 0 {
                            return;
                        }
                    }
                })
                .await;
            }
            Some(Reply::Answer(status, headers, body)) => {
                let mut resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                for h in headers {
                    resp.push_str(&h);
                    resp.push_str("\r\n");
                }
                resp.push_str("\r\n");
                resp.push_str(&body);
                let _ = sock.write_all(resp.as_bytes()).await;
            }
            Some(Reply::Unsized(headers, body)) => {
                let mut resp = "HTTP/1.1 200 X\r\nConnection: close\r\n".to_owned();
                for h in headers {
                    resp.push_str(&h);
                    resp.push_str("\r\n");
                }
                resp.push_str("\r\n");
                let _ = sock.write_all(resp.as_bytes()).await;
                for part in body.as_bytes().chunks(1000) {
                    let _ = sock.write_all(part).await;
                }
            }
            Some(Reply::Endless) => {
                let head =
                    "HTTP/1.1 200 X\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
                let padding = [b' '; 16 * 1024];
                let sent = sock.write_all(head.as_bytes()).await.is_ok();
                open.take();
                if sent {
                    while sock.write_all(&padding).await.is_ok() {}
                }
            }
            Some(Reply::Delayed(..)) => unreachable!("delays are taken off above"),
            None => {
                let _ = sock
                    .write_all(b"HTTP/1.1 404 X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            }
        }
    }

    pub(crate) fn set(&self, path: &str, reply: Reply) {
        self.routes.lock().unwrap().insert(path.to_owned(), reply);
    }

    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

pub(crate) fn json_reply(doc: &Value, extra_headers: &[&str]) -> Reply {
    let mut headers = vec!["Content-Type: application/json".to_owned()];
    headers.extend(extra_headers.iter().map(|h| (*h).to_owned()));
    Reply::Answer(200, headers, doc.to_string())
}

/// The document of a public client with the seed's redirect URI.
pub(crate) fn document(client_id: &str) -> Value {
    json!({
        "client_id": client_id,
        "client_name": "Doc Client",
        "redirect_uris": [SEED_REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none"
    })
}

/// Starts `portcullis serve` allowing `doc`'s host (testing flag).
pub(crate) fn serve_allowing(doc: &DocServer) -> Server {
    start_with(&["--cimd-allow-host", &doc.host()])
}

/// GETs the authorization URL for `client_id` (with `redirect_uri`) in a fresh browser and asserts an error
/// page that does not redirect; returns the page.
async fn error_page(s: &Server, client_id: &str, redirect_uri: &str) -> Page {
    let p = pkce();
    let url = s.url(&format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={}\
         &code_challenge_method=S256&state=xyz",
        enc(client_id),
        enc(redirect_uri),
        p.challenge
    ));
    let page = get(&browser(), &url).await;
    assert!(
        page.location().is_none(),
        "an invalid client must never be redirected to: {:?}",
        page.location()
    );
    assert!(
        page.status.is_client_error() || page.status.is_server_error(),
        "expected an error page, got {:?}: {}",
        page.status,
        page.body
    );
    assert!(!page.is_login() && !page.is_consent(), "{}", page.body);
    page
}

#[tokio::test]
async fn url_client_id_logs_in_consents_and_calls_mcp() {
    let doc = DocServer::start().await;
    let client_id = doc.url("/client.json");
    doc.set(
        "/client.json",
        json_reply(&document(&client_id), &["Cache-Control: max-age=600"]),
    );
    let s = serve_allowing(&doc);

    let meta: Value = http()
        .get(s.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["client_id_metadata_document_supported"], json!(true));

    let p = pkce();
    let url = authorize_url(&s, &client_id, &p.challenge, "&state=st1");
    let out = authorize_in(&browser(), &s, &url, "approve").await;
    assert!(out.saw_login);
    let consent = out
        .consent
        .expect("a new client is never silently approved");
    assert!(consent.body.contains("Doc Client"), "{}", consent.body);
    assert!(consent.body.contains("unverified"), "{}", consent.body);
    assert!(
        consent.body.contains("localhost"),
        "redirect host shown: {}",
        consent.body
    );
    assert!(
        consent
            .body
            .contains(&format!("published by <strong>{}</strong>", doc.host())),
        "client_id host shown: {}",
        consent.body
    );
    assert_client_redirect(&s, &out.location);
    assert_eq!(param(&out.location, "state").as_deref(), Some("st1"));
    let code = param(&out.location, "code").unwrap();

    let (status, body) = exchange(&s, &client_id, &code, &p.verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(jwt_part(&access, 1)["client_id"], json!(client_id));
    let mcp = mcp_post(&s.mcp_here(), Some(&access), TOOLS_LIST).await;
    assert_eq!(mcp.status, StatusCode::OK, "{}", mcp.body);
    assert!(mcp.body.contains("whoami"), "{}", mcp.body);

    let (status, body) = refresh(&s, &client_id, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Cached for max-age: one fetch served the authorize, login, consent, token and refresh steps.
    assert_eq!(doc.hits("/client.json"), 1);
}

#[tokio::test]
async fn document_with_another_client_id_is_refused() {
    let doc = DocServer::start().await;
    doc.set(
        "/client.json",
        json_reply(&document("https://somebody.example/client.json"), &[]),
    );
    let s = serve_allowing(&doc);
    let client_id = doc.url("/client.json");
    let page = error_page(&s, &client_id, SEED_REDIRECT).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("invalid_client"), "{}", page.body);
    assert!(page.body.contains("does not match"), "{}", page.body);
    // The token endpoint refuses it too, as invalid_client.
    let (status, _, body) = post_form(
        &s,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", "nope"),
            ("redirect_uri", SEED_REDIRECT),
            ("client_id", &client_id),
            ("code_verifier", &pkce().verifier),
        ],
    )
    .await;
    assert!(status.is_client_error(), "{status}");
    assert_eq!(body["error"], json!("invalid_client"), "{body}");
}

#[tokio::test]
async fn non_public_addresses_are_refused_without_the_allow_list() {
    let doc = DocServer::start().await;
    for path in ["/a.json", "/b.json"] {
        doc.set(path, json_reply(&document(&doc.url(path)), &[]));
    }
    let s = start();
    for client_id in [
        format!("https://127.0.0.1:{}/a.json", doc.port),
        format!("https://localhost:{}/b.json", doc.port),
    ] {
        let page = error_page(&s, &client_id, SEED_REDIRECT).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{client_id}");
        assert!(
            page.body.contains("non-public address"),
            "{client_id}: {}",
            page.body
        );
    }
    // Plain http to the same server is refused as non-https before any address is considered.
    let page = error_page(&s, &doc.url("/a.json"), SEED_REDIRECT).await;
    assert!(page.body.contains("must use https"), "{}", page.body);
    assert_eq!(
        doc.total.load(Ordering::SeqCst),
        0,
        "nothing was sent to the refused host"
    );
}

#[tokio::test]
async fn non_https_client_id_is_refused() {
    let s = start();
    let page = error_page(&s, "http://mcp-client.example/client.json", SEED_REDIRECT).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("invalid_client"), "{}", page.body);
    assert!(page.body.contains("must use https"), "{}", page.body);
}

#[tokio::test]
async fn redirects_are_not_followed_even_to_allowed_hosts() {
    let doc = DocServer::start().await;
    let internal = doc.url("/internal.json");
    doc.set("/internal.json", json_reply(&document(&internal), &[]));
    for (path, target) in [
        (
            "/to-metadata.json",
            "http://169.254.169.254/latest/meta-data/".to_owned(),
        ),
        ("/to-loopback.json", internal.clone()),
    ] {
        doc.set(
            path,
            Reply::Answer(302, vec![format!("Location: {target}")], String::new()),
        );
    }
    let s = serve_allowing(&doc);
    for path in ["/to-metadata.json", "/to-loopback.json"] {
        let page = error_page(&s, &doc.url(path), SEED_REDIRECT).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
        assert!(page.body.contains("redirect"), "{path}: {}", page.body);
        assert_eq!(doc.hits(path), 1);
    }
    assert_eq!(
        doc.hits("/internal.json"),
        0,
        "the redirect target was never fetched"
    );
}

#[tokio::test]
async fn oversize_document_is_refused() {
    let doc = DocServer::start().await;
    let client_id = doc.url("/big.json");
    let mut big = document(&client_id);
    big["padding"] = json!("x".repeat(6 * 1024));
    doc.set("/big.json", json_reply(&big, &[]));
    // Without Content-Length the streamed limit applies as well.
    let chunked_id = doc.url("/big-nolen.json");
    let mut big2 = document(&chunked_id);
    big2["padding"] = json!("y".repeat(6 * 1024));
    doc.set(
        "/big-nolen.json",
        Reply::Unsized(
            vec!["Content-Type: application/json".into()],
            big2.to_string(),
        ),
    );
    let s = serve_allowing(&doc);
    for id in [&client_id, &chunked_id] {
        let page = error_page(&s, id, SEED_REDIRECT).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
        assert!(
            page.body.contains("larger than 5120 bytes"),
            "{}",
            page.body
        );
    }
}

#[tokio::test]
async fn document_host_that_never_answers_times_out_with_an_error_page() {
    let doc = DocServer::start().await;
    doc.set("/slow.json", Reply::Hang);
    let s = serve_allowing(&doc);
    let started = Instant::now();
    let page = error_page(&s, &doc.url("/slow.json"), SEED_REDIRECT).await;
    let took = started.elapsed();
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.body
    );
    assert!(
        page.body.contains("temporarily_unavailable"),
        "{}",
        page.body
    );
    assert!(page.headers.contains_key("retry-after"));
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(12),
        "took {took:?}; the limit is 5 s"
    );
}

#[tokio::test]
async fn redirect_uri_not_in_the_document_is_an_error_page() {
    let doc = DocServer::start().await;
    let client_id = doc.url("/client.json");
    doc.set("/client.json", json_reply(&document(&client_id), &[]));
    let s = serve_allowing(&doc);
    let page = error_page(&s, &client_id, "https://attacker.example/cb").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("redirect_uri"), "{}", page.body);
}

#[tokio::test]
async fn not_json_and_http_errors_are_refused() {
    let doc = DocServer::start().await;
    let html = doc.url("/page.html");
    doc.set(
        "/page.html",
        Reply::Answer(
            200,
            vec!["Content-Type: text/html".into()],
            document(&html).to_string(),
        ),
    );
    let s = serve_allowing(&doc);
    let page = error_page(&s, &html, SEED_REDIRECT).await;
    assert!(page.body.contains("application/json"), "{}", page.body);
    let page = error_page(&s, &doc.url("/missing.json"), SEED_REDIRECT).await;
    assert!(page.body.contains("HTTP 404"), "{}", page.body);
}
