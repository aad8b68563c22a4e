//! Helpers for tests that run several `portcullis serve` processes: a fresh PostgreSQL database per test, a
//! server process that can be killed and restarted, a TCP proxy that can "stop the database", and the seed's
//! browser flow driven step by step over HTTP so each step can go to a different instance.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::Digest as _;
use std::hash::{BuildHasher as _, Hasher as _};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub(crate) const USER: &str = "alice";
pub(crate) const PASSWORD: &str = "correct horse battery staple";
/// The (never contacted) loopback redirect URI of the test clients.
pub(crate) const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_portcullis")
}

/// Random lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut out = String::new();
    while out.len() < bytes * 2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(bytes * 2);
    out
}

/// `TEST_POSTGRES_URL`, or `None` (with a note) when it is unset. When it is set the database must be reachable:
/// the test fails otherwise (CI sets it).
pub(crate) fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("note: {test} skipped: TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// A database of its own (`pc_<random>`) on the server of `TEST_POSTGRES_URL`, dropped at the end.
pub(crate) struct TempDb {
    admin: String,
    pub(crate) name: String,
    /// The URL of the new database.
    pub(crate) url: String,
}

impl TempDb {
    pub(crate) async fn create(admin: &str) -> Self {
        use sqlx::Connection as _;
        let name = format!("pc_{}", random_hex(8));
        let mut c = sqlx::PgConnection::connect(admin)
            .await
            .unwrap_or_else(|e| panic!("TEST_POSTGRES_URL is set but unreachable: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.ok();
        let mut url = url::Url::parse(admin).unwrap();
        url.set_path(&format!("/{name}"));
        Self {
            admin: admin.to_owned(),
            name,
            url: url.to_string(),
        }
    }

    /// The database URL with another host port (to go through a proxy).
    pub(crate) fn url_via(&self, port: u16) -> String {
        let mut url = url::Url::parse(&self.url).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(port)).unwrap();
        url.to_string()
    }

    /// The port of the real server.
    pub(crate) fn port(&self) -> u16 {
        url::Url::parse(&self.url)
            .unwrap()
            .port_or_known_default()
            .unwrap()
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop may run inside a runtime: use a thread with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection as _;
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut c)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A free port on 127.0.0.1 (bound and released; good enough for tests).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Adds the test user to `database`.
pub(crate) fn add_user(database: &str) {
    let mut add = Command::new(bin())
        .args([
            "user",
            "add",
            USER,
            "--password-stdin",
            "--database",
            database,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(PASSWORD.as_bytes())
        .unwrap();
    assert!(add.wait().unwrap().success(), "user add failed");
}

/// A running `portcullis serve`.
pub(crate) struct Server {
    pub(crate) child: Child,
    /// `http://127.0.0.1:PORT` of this process.
    pub(crate) base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `portcullis serve --listen 127.0.0.1:<port> --database <database> [extra…]` and waits for
    /// `listening on`.
    pub(crate) fn start(database: &str, port: u16, extra: &[&str]) -> Self {
        let listen = format!("127.0.0.1:{port}");
        let mut child = Command::new(bin())
            .args(["serve", "--listen", &listen, "--database", database])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.split("listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server did not print `listening on`");
        Self {
            child,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// `kill -9`.
    pub(crate) fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that never follows redirects (each browser gets its own, with its own cookies).
pub(crate) fn http(cookies: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(cookies)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Registers a public client at `base` (RFC 7591); returns the `client_id`.
pub(crate) async fn register(base: &str) -> String {
    let r = try_register(&http(false), base).await.unwrap();
    assert_eq!(r.0, 201, "register: {}", r.1);
    r.1["client_id"].as_str().unwrap().to_owned()
}

/// POST /register: (status, JSON body).
pub(crate) async fn try_register(
    http: &reqwest::Client,
    base: &str,
) -> Result<(u16, Value), reqwest::Error> {
    let resp = http
        .post(format!("{base}/register"))
        .json(&json!({
            "client_name": "multi-instance test",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }))
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

/// PKCE pair (RFC 7636 §4.1, §4.2): (verifier, S256 challenge).
pub(crate) fn pkce() -> (String, String) {
    let verifier = random_hex(32);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of the hidden input `name` in an HTML page.
pub(crate) fn hidden(page: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&needle)
        .unwrap_or_else(|| panic!("no input {name} in page:\n{page}"))
        + needle.len();
    let end = start + page[start..].find('"').unwrap();
    unescape(&page[start..end])
}

/// The authorization request query of a client.
pub(crate) fn authorize_query(issuer: &str, client_id: &str, challenge: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", "st")
        .append_pair("scope", "mcp:tools")
        .append_pair("resource", &format!("{issuer}/mcp"))
        .finish()
}

/// The browser part of the seed flow: GET /authorize and the login at `login_at`, the consent at `consent_at`
/// (one cookie jar, as one browser behind a load balancer). Returns the authorization code.
pub(crate) async fn browser_flow(
    issuer: &str,
    login_at: &str,
    consent_at: &str,
    client_id: &str,
    challenge: &str,
) -> String {
    let browser = http(true);
    let query = authorize_query(issuer, client_id, challenge);
    let resp = browser
        .get(format!("{login_at}/authorize?{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    let form = [
        ("request", hidden(&page, "request")),
        ("csrf_token", hidden(&page, "csrf_token")),
        ("username", USER.to_owned()),
        ("password", PASSWORD.to_owned()),
    ];
    let resp = browser
        .post(format!("{login_at}/login"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "login: {}", resp.text().await.unwrap());
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/authorize?"), "{location}");
    // The session cookie was set by `login_at`; the consent page comes from the other instance.
    let resp = browser
        .get(format!("{consent_at}{location}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("name=\"decision\""),
        "no consent form:\n{page}"
    );
    let form = [
        ("request", hidden(&page, "request")),
        ("csrf_token", hidden(&page, "csrf_token")),
        ("decision", "approve".to_owned()),
    ];
    let resp = browser
        .post(format!("{consent_at}/consent"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        303,
        "consent: {}",
        resp.text().await.unwrap()
    );
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(REDIRECT_URI), "{location}");
    let pairs: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(pairs.get("state").map(String::as_str), Some("st"));
    pairs.get("code").expect("no code in the redirect").clone()
}

/// POST /token: (status, JSON body, headers).
pub(crate) async fn token(
    http: &reqwest::Client,
    base: &str,
    form: &[(&str, &str)],
) -> Result<(u16, Value, reqwest::header::HeaderMap), reqwest::Error> {
    let resp = http.post(format!("{base}/token")).form(form).send().await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    Ok((status, resp.json().await.unwrap_or(Value::Null), headers))
}

/// Redeems a code at `base`.
pub(crate) async fn redeem(
    http: &reqwest::Client,
    base: &str,
    issuer: &str,
    client_id: &str,
    code: &str,
    verifier: &str,
) -> Result<(u16, Value, reqwest::header::HeaderMap), reqwest::Error> {
    let resource = format!("{issuer}/mcp");
    token(
        http,
        base,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", client_id),
            ("code_verifier", verifier),
            ("resource", &resource),
        ],
    )
    .await
}

/// Refreshes at `base`.
pub(crate) async fn refresh(
    http: &reqwest::Client,
    base: &str,
    client_id: &str,
    refresh_token: &str,
) -> Result<(u16, Value, reqwest::header::HeaderMap), reqwest::Error> {
    token(
        http,
        base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id),
        ],
    )
    .await
}

/// `tools/list` at `base`'s MCP endpoint with an access token: the status.
pub(crate) async fn mcp_status(http: &reqwest::Client, base: &str, access_token: &str) -> u16 {
    http.post(format!("{base}/mcp"))
        .bearer_auth(access_token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Tokens of one completed flow.
pub(crate) struct Tokens {
    pub(crate) client_id: String,
    pub(crate) access: String,
    pub(crate) refresh: String,
}

/// The whole flow at one instance (register, browser, token).
pub(crate) async fn full_flow(issuer: &str, base: &str) -> Tokens {
    let client_id = register(base).await;
    let (verifier, challenge) = pkce();
    let code = browser_flow(issuer, base, base, &client_id, &challenge).await;
    let (status, body, _) = redeem(&http(false), base, issuer, &client_id, &code, &verifier)
        .await
        .unwrap();
    assert_eq!(status, 200, "token: {body}");
    Tokens {
        client_id,
        access: body["access_token"].as_str().unwrap().to_owned(),
        refresh: body["refresh_token"].as_str().unwrap().to_owned(),
    }
}

/// The `kid` of a JWT's header.
pub(crate) fn kid_of(jwt: &str) -> String {
    let header = jwt.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v["kid"].as_str().unwrap().to_owned()
}

/// A TCP proxy in front of the database, with a switch: `down()` closes every open connection and refuses new
/// ones (as a stopped database does), `stall()` keeps connections open but forwards nothing (a database or
/// network that hangs), `up()` forwards again (connections from before are closed).
pub(crate) struct Proxy {
    pub(crate) port: u16,
    state: tokio::sync::watch::Sender<u8>,
    task: tokio::task::JoinHandle<()>,
}

const UP: u8 = 0;
const DOWN: u8 = 1;
const STALLED: u8 = 2;

impl Proxy {
    pub(crate) async fn start(target_port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (state, _) = tokio::sync::watch::channel(UP);
        let switch = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let mut rx = switch.subscribe();
                let now = *rx.borrow_and_update();
                match now {
                    DOWN => drop(inbound),
                    STALLED => {
                        tokio::spawn(async move {
                            let _ = rx.wait_for(|s| *s != STALLED).await;
                            drop(inbound);
                        });
                    }
                    _ => {
                        tokio::spawn(async move {
                            let Ok(mut outbound) =
                                tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await
                            else {
                                return;
                            };
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                                _ = rx.wait_for(|s| *s != UP) => {}
                            }
                            // Stalled: hold both ends open, silently, until the switch moves again.
                            let _ = rx.wait_for(|s| *s != STALLED).await;
                        });
                    }
                }
            }
        });
        Self { port, state, task }
    }

    pub(crate) fn down(&self) {
        self.state.send_replace(DOWN);
    }

    pub(crate) fn stall(&self) {
        self.state.send_replace(STALLED);
    }

    pub(crate) fn up(&self) {
        self.state.send_replace(UP);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
