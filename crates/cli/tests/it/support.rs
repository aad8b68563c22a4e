//! Shared helpers of the integration tests: start the real `portcullis serve` on 127.0.0.1:0 with a temporary
//! SQLite database and a user, register clients, drive the login and consent forms like a browser (cookies
//! kept, redirects not followed), PKCE (RFC 7636 §4.1, §4.2), token requests and MCP calls.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::header::{HeaderMap, CONTENT_TYPE, LOCATION};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The test user.
pub const USER: &str = "alice";
/// Their password.
pub const PASSWORD: &str = "correct horse battery staple";
/// The seed's redirect URI (step 3).
pub const SEED_REDIRECT: &str = "http://localhost:8080/callback";

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_portcullis")
}

/// `tests/support/auto_browser.py`, the scripted browser of the client commands.
pub fn auto_browser() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/support/auto_browser.py")
        .canonicalize()
        .unwrap()
}

/// A running `portcullis serve`, killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`: where it listens.
    pub base: String,
    /// The issuer it announced.
    pub issuer: String,
    /// The MCP endpoint's URL it announced (the resource identifier).
    pub mcp: String,
    /// `sqlite://…` of its database.
    pub db: String,
    /// Holds the database (and the server's log, `serve.log`).
    pub dir: tempfile::TempDir,
    /// A `PORTCULLIS_HOME` for client commands.
    pub home: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// An absolute URL on the listening address.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The MCP endpoint on the listening address (differs from `mcp` when `--issuer` names another port).
    pub fn mcp_here(&self) -> String {
        let path = url::Url::parse(&self.mcp).unwrap().path().to_owned();
        self.url(&path)
    }

    /// The server process's id (to read its `/proc/PID/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's stderr so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit; `None` if it is still running.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

/// Adds user `name` with `password` to the database `db` through `user add --password-stdin`.
pub fn add_user(db: &str, name: &str, password: &str) {
    let mut add = Command::new(bin())
        .args(["user", "add", name, "--password-stdin", "--database", db])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    assert!(add.wait().unwrap().success(), "user add failed");
}

/// Starts a server on a fresh database holding [`USER`].
pub fn start() -> Server {
    start_with(&[])
}

/// Starts a server on a fresh database holding [`USER`], with extra `serve` flags.
pub fn start_with(args: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("portcullis.db").display());
    add_user(&db, USER, PASSWORD);
    spawn(dir, db, args)
}

/// A port that was free a moment ago (for a server whose `--issuer` must name its port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a second server on `other`'s database, with extra `serve` flags.
pub fn start_on(other: &Server, args: &[&str]) -> Server {
    spawn(tempfile::tempdir().unwrap(), other.db.clone(), args)
}

fn spawn(dir: tempfile::TempDir, db: String, args: &[&str]) -> Server {
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    // A free port unless the caller chose one (e.g. to put it in `--issuer`).
    let listen: &[&str] = if args.contains(&"--listen") {
        &[]
    } else {
        &["--listen", "127.0.0.1:0"]
    };
    let mut child = Command::new(bin())
        .args(["serve", "--database", &db])
        .args(listen)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut base, mut issuer, mut mcp) = (None, None, None);
    while base.is_none() || issuer.is_none() || mcp.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
                panic!("the server did not announce itself; its log:\n{log}")
            });
        let rest = |prefix: &str| line.strip_prefix(prefix).map(|v| v.trim().to_owned());
        base = base.or(rest("listening on "));
        issuer = issuer.or(rest("issuer "));
        mcp = mcp.or(rest("mcp endpoint "));
    }
    Server {
        child,
        base: base.unwrap().trim_end_matches('/').to_owned(),
        issuer: issuer.unwrap(),
        mcp: mcp.unwrap(),
        db,
        dir,
        home: tempfile::tempdir().unwrap(),
    }
}

/// A plain HTTP client: no cookies, redirects not followed.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A "browser": keeps cookies, does not follow redirects (so the loopback redirect is read, not followed).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A PKCE pair (RFC 7636 §4.1, §4.2): a verifier from 32 random bytes, base64url without padding (43
/// characters, as the seed's step 4 makes), and its S256 challenge.
#[derive(Debug, Clone)]
pub struct Pkce {
    /// `code_verifier`.
    pub verifier: String,
    /// `code_challenge` (S256).
    pub challenge: String,
}

/// A fresh PKCE pair.
pub fn pkce() -> Pkce {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

/// Percent-encodes a query value.
pub fn enc(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// POSTs `body` to `/register` and returns the status and JSON body.
pub async fn register_raw(s: &Server, body: &Value) -> (StatusCode, Value) {
    let resp = http()
        .post(s.url("/register"))
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

/// The seed's registration JSON (step 3).
pub fn seed_registration() -> Value {
    json!({
        "client_name": "My MCP Client",
        "redirect_uris": [SEED_REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none"
    })
}

/// Registers the seed's public client; returns its `client_id`.
pub async fn register_public(s: &Server) -> String {
    let (status, body) = register_raw(s, &seed_registration()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["client_id"].as_str().unwrap().to_owned()
}

/// Registers the seed's client as a confidential one with `method` (`client_secret_basic` or
/// `client_secret_post`); its id and secret.
pub async fn register_confidential(s: &Server, method: &str) -> (String, String) {
    let mut meta = seed_registration();
    meta["token_endpoint_auth_method"] = json!(method);
    let (status, body) = register_raw(s, &meta).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["token_endpoint_auth_method"], method);
    (
        body["client_id"].as_str().unwrap().to_owned(),
        body["client_secret"]
            .as_str()
            .expect("a client_secret")
            .to_owned(),
    )
}

/// An authorization URL for `client_id` with the seed's redirect URI, S256 and `extra` appended verbatim
/// (e.g. `&state=…&scope=…`).
pub fn authorize_url(s: &Server, client_id: &str, challenge: &str, extra: &str) -> String {
    s.url(&format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={SEED_REDIRECT}&code_challenge={challenge}\
         &code_challenge_method=S256{extra}",
        enc(client_id)
    ))
}

/// Decodes the five entities the server's HTML escaping produces.
pub fn html_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

/// The `name`/`value` pairs of the `<input type="hidden">` fields of a page's first form (what a browser submits
/// with that form's button; the consent page's second form is the sign-out one: [`form_inputs`]).
pub fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    all_hidden_inputs(html.split("</form>").next().unwrap_or(html))
}

/// The hidden fields of the form posting to `action` (e.g. `/logout`).
pub fn form_inputs(html: &str, action: &str) -> Vec<(String, String)> {
    let marker = format!("action=\"{action}\"");
    let form = html
        .split("<form")
        .find(|f| f.split('>').next().is_some_and(|tag| tag.contains(&marker)))
        .unwrap_or_else(|| panic!("no form posting to {action}: {html}"));
    all_hidden_inputs(form.split("</form>").next().unwrap_or(form))
}

fn all_hidden_inputs(html: &str) -> Vec<(String, String)> {
    let attr = |tag: &str, name: &str| {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let len = tag[start..].find('"')?;
        Some(html_unescape(&tag[start..start + len]))
    };
    html.split("<input")
        .skip(1)
        .filter_map(|rest| rest.split('>').next())
        .filter(|tag| tag.contains("type=\"hidden\""))
        .filter_map(|tag| Some((attr(tag, "name")?, attr(tag, "value")?)))
        .collect()
}

/// A response read completely.
#[derive(Debug)]
pub struct Page {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body text.
    pub body: String,
}

impl Page {
    async fn read(resp: reqwest::Response) -> Self {
        Self {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        }
    }

    /// The `Location` header.
    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).map(|v| v.to_str().unwrap())
    }

    /// Whether this is the login page.
    pub fn is_login(&self) -> bool {
        self.status == StatusCode::OK && self.body.contains("action=\"/login\"")
    }

    /// Whether this is the consent page.
    pub fn is_consent(&self) -> bool {
        self.status == StatusCode::OK && self.body.contains("action=\"/consent\"")
    }
}

/// GET with the browser.
pub async fn get(b: &reqwest::Client, url: &str) -> Page {
    Page::read(b.get(url).send().await.unwrap()).await
}

/// Submits a page's form: its hidden fields plus `fields`, to `s`'s `action`.
pub async fn submit(
    b: &reqwest::Client,
    s: &Server,
    page: &Page,
    action: &str,
    fields: &[(&str, &str)],
) -> Page {
    let mut form = hidden_inputs(&page.body);
    assert!(
        form.iter().any(|(k, _)| k == "csrf_token") && form.iter().any(|(k, _)| k == "request"),
        "the form lacks csrf_token/request: {}",
        page.body
    );
    form.extend(
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Page::read(b.post(s.url(action)).form(&form).send().await.unwrap()).await
}

/// Resolves a `Location` against the server.
pub fn resolve(s: &Server, location: &str) -> String {
    url::Url::parse(&s.base)
        .unwrap()
        .join(location)
        .unwrap()
        .to_string()
}

/// What the browser went through for one authorization request.
#[derive(Debug)]
pub struct Outcome {
    /// Whether the login page was shown.
    pub saw_login: bool,
    /// The consent page, when shown.
    pub consent: Option<Page>,
    /// The final 303 `Location` to the client's redirect URI (not followed).
    pub location: String,
}

/// Runs the browser step of `url`: GET it, sign in if the login page appears (following the 303 back to
/// `/authorize`), answer the consent page with `decision` if it appears, and return the 303 to the client.
pub async fn authorize_in(b: &reqwest::Client, s: &Server, url: &str, decision: &str) -> Outcome {
    let mut page = get(b, url).await;
    let mut saw_login = false;
    if page.is_login() {
        saw_login = true;
        let after = submit(
            b,
            s,
            &page,
            "/login",
            &[("username", USER), ("password", PASSWORD)],
        )
        .await;
        assert_eq!(after.status, StatusCode::SEE_OTHER, "login: {}", after.body);
        let back = resolve(s, after.location().unwrap());
        assert!(back.starts_with(&s.url("/authorize?")), "{back}");
        page = get(b, &back).await;
    }
    let mut consent = None;
    if page.is_consent() {
        let after = submit(b, s, &page, "/consent", &[("decision", decision)]).await;
        assert_eq!(
            after.status,
            StatusCode::SEE_OTHER,
            "consent: {}",
            after.body
        );
        consent = Some(page);
        page = after;
    }
    assert_eq!(
        page.status,
        StatusCode::SEE_OTHER,
        "expected a redirect to the client, got {:?}: {}",
        page.status,
        page.body
    );
    Outcome {
        saw_login,
        consent,
        location: page.location().unwrap().to_owned(),
    }
}

/// A query parameter of a URL, decoded; panics if it appears more than once.
pub fn param(url: &str, name: &str) -> Option<String> {
    let u = url::Url::parse(url).unwrap();
    let mut values = u
        .query_pairs()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned());
    let first = values.next();
    assert!(values.next().is_none(), "{name} repeated in {url}");
    first
}

/// Asserts a redirect to the seed's redirect URI carrying `iss` = the issuer (RFC 9207 §2).
pub fn assert_client_redirect(s: &Server, location: &str) {
    assert!(
        location.starts_with(&format!("{SEED_REDIRECT}?")),
        "not a redirect to the client: {location}"
    );
    assert_eq!(
        param(location, "iss").as_deref(),
        Some(s.issuer.as_str()),
        "iss missing or wrong in {location}"
    );
}

/// Signs in and approves `extra` for `client_id` in a fresh browser; returns the code.
pub async fn code_for(s: &Server, client_id: &str, pkce: &Pkce, extra: &str) -> String {
    let url = authorize_url(s, client_id, &pkce.challenge, extra);
    let out = authorize_in(&browser(), s, &url, "approve").await;
    assert_client_redirect(s, &out.location);
    param(&out.location, "code").expect("no code in the redirect")
}

/// POSTs a form to `/token` (or another path) and returns the status, headers and JSON body.
pub async fn post_form(
    s: &Server,
    path: &str,
    form: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Value) {
    let resp = http().post(s.url(path)).form(form).send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, headers, body)
}

/// The code exchange (step 6) for a public client with the seed's redirect URI.
pub async fn exchange(
    s: &Server,
    client_id: &str,
    code: &str,
    verifier: &str,
) -> (StatusCode, Value) {
    let (status, _, body) = post_form(
        s,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", SEED_REDIRECT),
            ("client_id", client_id),
            ("code_verifier", verifier),
        ],
    )
    .await;
    (status, body)
}

/// The refresh (step 8) for a public client.
pub async fn refresh(s: &Server, client_id: &str, refresh_token: &str) -> (StatusCode, Value) {
    let (status, _, body) = post_form(
        s,
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id),
        ],
    )
    .await;
    (status, body)
}

/// Tokens of one grant.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The client.
    pub client_id: String,
    /// `access_token`.
    pub access: String,
    /// `refresh_token`.
    pub refresh: String,
}

/// Registers the seed's client, authorizes `extra` in a browser and exchanges the code.
pub async fn grant(s: &Server, extra: &str) -> Tokens {
    let client_id = register_public(s).await;
    let p = pkce();
    let code = code_for(s, &client_id, &p, extra).await;
    let (status, body) = exchange(s, &client_id, &code, &p.verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    Tokens {
        client_id,
        access: body["access_token"].as_str().unwrap().to_owned(),
        refresh: body["refresh_token"].as_str().unwrap().to_owned(),
    }
}

/// POSTs a JSON-RPC message to `url` with only `Content-Type` and (when given) `Authorization`, as the
/// seed's step 7.
pub async fn mcp_post(url: &str, token: Option<&str>, body: &str) -> Page {
    let mut req = http()
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_owned());
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    Page::read(req.send().await.unwrap()).await
}

/// The seed's step-7 body.
pub const TOOLS_LIST: &str = r#"{"jsonrpc": "2.0", "method": "tools/list", "id": 1}"#;

/// The status of a `tools/list` with `token` at the server's MCP endpoint.
pub async fn mcp_status(s: &Server, token: &str) -> StatusCode {
    mcp_post(&s.mcp_here(), Some(token), TOOLS_LIST)
        .await
        .status
}

/// Polls until `token` is refused by the MCP endpoint (401) or `within` passes; returns whether it was.
pub async fn refused_within(s: &Server, token: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if mcp_status(s, token).await == StatusCode::UNAUTHORIZED {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A parameter of a `WWW-Authenticate` challenge (`name="value"`), unquoted.
pub fn auth_param(header: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let mut search = header;
    loop {
        let at = search.find(&needle)?;
        let boundary = at == 0 || matches!(search.as_bytes()[at - 1], b' ' | b',');
        let rest = &search[at + needle.len()..];
        if boundary {
            let mut out = String::new();
            let mut chars = rest.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.extend(chars.next()),
                    '"' => return Some(out),
                    c => out.push(c),
                }
            }
            return None;
        }
        search = rest;
    }
}

/// The `WWW-Authenticate` header of a page.
pub fn www_authenticate(p: &Page) -> String {
    p.headers
        .get("www-authenticate")
        .unwrap_or_else(|| panic!("no WWW-Authenticate on {:?}: {}", p.status, p.body))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The JSON payload of a JWT (not verified).
pub fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}
