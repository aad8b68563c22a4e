//! Sign-in through an upstream identity provider, end to end (issue 13): the real `portcullis serve` with a
//! `[[identity_providers]]` table naming the test IdP (node-oidc-provider, [`crate::idp`]), driven like a
//! browser: `/authorize` → "Continue with …" → `/idp/{name}/start` → the IdP's login and consent → Portcullis's
//! `/idp/{name}/callback` → Portcullis's consent → code → token → MCP `whoami`.
//!
//! Order of start-up: Portcullis's port is picked first ([`free_port`]) because the IdP's client must know
//! Portcullis's callback URL, and Portcullis's configuration must know the IdP's issuer.

#![allow(dead_code, unreachable_pub)]

mod fake_failures;
mod signin;
mod signin_failures;
mod signin_postgres;

use crate::idp::{IdpConfig, TestIdp};
use crate::support::{
    bin, exchange, free_port, get, mcp_post, param, resolve, start_with, submit, Page, Pkce, Server,
};
use reqwest::StatusCode;
use serde_json::Value;
use std::process::Command;

/// The client secret of the IdP's default client.
pub const CLIENT_SECRET: &str = "portcullis idp secret";
/// The provider's name in these tests.
pub const PROVIDER: &str = "corp";

/// The test IdP and a Portcullis configured to sign in through it.
pub struct Fed {
    /// The server (dropped first: fields drop in order).
    pub server: Server,
    /// The IdP.
    pub idp: TestIdp,
    /// Holds the TOML configuration.
    pub config_dir: tempfile::TempDir,
}

/// What to start.
#[derive(Default)]
pub struct FedOptions<'a> {
    /// The IdP's configuration (its first client's redirect URI is set to Portcullis's callback).
    pub idp: IdpConfig,
    /// Extra lines of the `[[identity_providers]]` table; `{issuer}` is replaced by the IdP's issuer.
    pub provider: &'a str,
    /// Extra top-level TOML lines (before the table).
    pub top: &'a str,
    /// Extra `serve` flags.
    pub args: &'a [&'a str],
}

/// The `[[identity_providers]]` table for the test IdP at `issuer`, with `extra` lines.
pub fn provider_table(name: &str, issuer: &str, extra: &str) -> String {
    format!(
        "[[identity_providers]]\nname = \"{name}\"\ndisplay_name = \"Corp SSO\"\nissuer = \"{issuer}\"\n\
         client_id = \"portcullis\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
         scopes = [\"openid\", \"email\", \"profile\", \"groups\"]\n{extra}\n"
    )
}

/// Starts the IdP, then Portcullis on a port chosen first, with the provider [`PROVIDER`].
pub fn start_fed(opts: FedOptions<'_>) -> Fed {
    let port = free_port();
    let mut idp_config = opts.idp;
    idp_config.clients[0].redirect_uris =
        vec![format!("http://127.0.0.1:{port}/idp/{PROVIDER}/callback")];
    let idp = TestIdp::start(idp_config);
    let config_dir = tempfile::tempdir().unwrap();
    let path = config_dir.path().join("portcullis.toml");
    let toml = format!(
        "{}\n{}",
        opts.top,
        provider_table(
            PROVIDER,
            idp.issuer(),
            &opts.provider.replace("{issuer}", idp.issuer())
        )
    );
    std::fs::write(&path, toml).unwrap();
    let listen = format!("127.0.0.1:{port}");
    let path = path.display().to_string();
    let mut args = vec!["--listen", &listen, "--config", &path];
    args.extend_from_slice(opts.args);
    let server = start_with(&args);
    Fed {
        server,
        idp,
        config_dir,
    }
}

/// The query string of a URL.
pub fn query_of(url: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query()
        .unwrap_or("")
        .to_owned()
}

/// From Portcullis's login page through the IdP: GETs `authorize` (the login page, which must offer the
/// provider), follows the provider's start link, signs in at the IdP as `login` and returns what Portcullis's
/// callback answered (not followed).
pub async fn through_idp(fed: &Fed, b: &reqwest::Client, authorize: &str, login: &str) -> Page {
    let login_page = get(b, authorize).await;
    let link = format!("/idp/{PROVIDER}/start?");
    assert!(login_page.body.contains(&link), "{}", login_page.body);
    assert!(login_page.body.contains("Continue with Corp SSO"));
    let back = to_idp_and_back(fed, b, authorize, login, true).await;
    get(b, &back).await
}

/// `/idp/{PROVIDER}/start?<authorize's query>`, then the IdP's pages (`allow` or deny at its consent): the
/// callback URL the IdP sends the browser to.
pub async fn to_idp_and_back(
    fed: &Fed,
    b: &reqwest::Client,
    authorize: &str,
    login: &str,
    allow: bool,
) -> String {
    let start = fed
        .server
        .url(&format!("/idp/{PROVIDER}/start?{}", query_of(authorize)));
    let started = get(b, &start).await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    let at_idp = started.location().unwrap().to_owned();
    assert!(at_idp.starts_with(fed.idp.issuer()), "{at_idp}");
    let cookie = started.headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(
        cookie.starts_with("portcullis-idp=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let back = fed
        .idp
        .drive(b, &at_idp, login, crate::idp::IDP_PASSWORD, allow)
        .await;
    let callback = fed.server.url(&format!("/idp/{PROVIDER}/callback?"));
    assert!(back.starts_with(&callback), "{back}");
    back
}

/// After the callback's 303 back to `/authorize`: the consent page (approved) or straight the redirect to the
/// client; returns the client redirect's `Location`.
pub async fn consent_and_code(
    fed: &Fed,
    b: &reqwest::Client,
    callback: &Page,
) -> (Option<Page>, String) {
    assert_eq!(callback.status, StatusCode::SEE_OTHER, "{}", callback.body);
    let back = resolve(&fed.server, callback.location().unwrap());
    assert!(back.starts_with(&fed.server.url("/authorize?")), "{back}");
    let page = get(b, &back).await;
    if page.is_consent() {
        let after = submit(
            b,
            &fed.server,
            &page,
            "/consent",
            &[("decision", "approve")],
        )
        .await;
        assert_eq!(after.status, StatusCode::SEE_OTHER, "{}", after.body);
        let location = after.location().unwrap().to_owned();
        return (Some(page), location);
    }
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    (None, page.location().unwrap().to_owned())
}

/// The whole sign-in for `client_id` as `login` at the IdP, in `b`: the access token.
pub async fn sign_in_for_token(
    fed: &Fed,
    b: &reqwest::Client,
    client_id: &str,
    pkce: &Pkce,
    extra: &str,
    login: &str,
) -> Value {
    let url = crate::support::authorize_url(&fed.server, client_id, &pkce.challenge, extra);
    let callback = through_idp(fed, b, &url, login).await;
    assert!(
        callback
            .headers
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("portcullis_session=")),
        "no session cookie: {:?}",
        callback.headers
    );
    let (_, location) = consent_and_code(fed, b, &callback).await;
    let code = param(&location, "code").unwrap_or_else(|| panic!("no code: {location}"));
    let (status, body) = exchange(&fed.server, client_id, &code, &pkce.verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The MCP `whoami` tool's answer for `access`.
pub async fn whoami(s: &Server, access: &str) -> Value {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#;
    let page = mcp_post(&s.mcp_here(), Some(access), body).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let v: Value = serde_json::from_str(&page.body).unwrap();
    v["result"]["structuredContent"].clone()
}

/// `portcullis user list` on the server's database.
pub fn user_list(s: &Server) -> String {
    let out = Command::new(bin())
        .args(["user", "list", "--database", &s.db])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Whether a response sets a session cookie.
pub fn sets_session(p: &Page) -> bool {
    p.headers
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap_or("").contains("portcullis_session="))
}
