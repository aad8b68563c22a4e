//! Registration that real MCP clients can use (issue 15), against the real binary: Cursor's private-use
//! redirect URI registers and completes the flow with the default `allowed_redirect_schemes`; an operator can
//! narrow or widen the list (flag, environment, TOML) and a bad entry stops start-up naming the key;
//! `application_type` (OpenID Connect Registration 1.0 §2) is inferred and echoed, and a declared type that
//! conflicts with a redirect URI is `invalid_client_metadata` naming the URI.

use crate::support::{self, authorize_in, browser, enc, param, pkce, register_raw};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Cursor's private-use redirect URI (it fails RFC 8252 §7.1's reverse-domain rule).
const CURSOR: &str = "cursor://anysphere.cursor-mcp/oauth/callback";

/// The registration Cursor sends: its three redirect URIs, a public client, no `application_type`.
fn cursor_registration() -> Value {
    json!({
        "client_name": "Cursor",
        "redirect_uris": [CURSOR, "https://www.cursor.com/agents/mcp/oauth/callback", "http://localhost:8787/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none"
    })
}

fn with_uris(uris: &[&str], application_type: Option<&str>) -> Value {
    let mut v = support::seed_registration();
    v["redirect_uris"] = json!(uris);
    if let Some(t) = application_type {
        v["application_type"] = json!(t);
    }
    v
}

/// Cursor registers with the defaults (201, `application_type` inferred `native` and echoed), is sent back to
/// `cursor://…?code=…&iss=…` after consent, and redeems the code there.
#[tokio::test]
async fn cursor_registers_and_completes_the_flow() {
    let s = support::start();
    let (status, body) = register_raw(&s, &cursor_registration()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["redirect_uris"][0], CURSOR, "{body}");
    assert_eq!(body["application_type"], "native", "{body}");
    let client = body["client_id"].as_str().unwrap();

    let p = pkce();
    let url = s.url(&format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={}\
         &code_challenge_method=S256&state=st",
        enc(client),
        enc(CURSOR),
        p.challenge
    ));
    let out = authorize_in(&browser(), &s, &url, "approve").await;
    assert!(
        out.location.starts_with(&format!("{CURSOR}?")),
        "{}",
        out.location
    );
    assert_eq!(
        param(&out.location, "iss").as_deref(),
        Some(s.issuer.as_str())
    );
    let consent = out.consent.expect("the consent page").body;
    assert!(
        consent.contains("your browser goes to <strong>cursor:</strong>"),
        "the consent page names the scheme, not its opaque host: {consent}"
    );
    let code = param(&out.location, "code").unwrap();
    let (status, _, tokens) = support::post_form(
        &s,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CURSOR),
            ("client_id", client),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(
        support::mcp_status(&s, tokens["access_token"].as_str().unwrap()).await,
        StatusCode::OK
    );
}

/// The list replaces the default: with `--allowed-redirect-schemes zed` Cursor's URI is refused by name and a
/// `zed:` one registers; the reverse-domain rule holds either way. The TOML key does the same.
#[tokio::test]
async fn the_operator_sets_the_list() {
    let s = support::start_with(&["--allowed-redirect-schemes", "zed"]);
    let (status, body) = register_raw(&s, &cursor_registration()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_redirect_uri", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("\"cursor\" is not allowed"),
        "{body}"
    );
    for uri in ["zed://oauth/callback", "com.example.app:/cb"] {
        let (status, body) = register_raw(&s, &with_uris(&[uri], None)).await;
        assert_eq!(status, StatusCode::CREATED, "{uri}: {body}");
    }
    drop(s);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("p.toml");
    std::fs::write(
        &config,
        "allowed_redirect_schemes = [\"my-app\", \"zed\"]\n",
    )
    .unwrap();
    let s = support::start_with(&["--config", config.to_str().unwrap()]);
    let (status, body) = register_raw(&s, &with_uris(&["my-app:/cb"], None)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = register_raw(&s, &with_uris(&[CURSOR], None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// `application_type` absent → inferred and echoed; declared and fitting → kept; `native` with an https
/// redirect URI on the web, or `web` with a private-use scheme → 400 `invalid_client_metadata` naming the URI;
/// any other value → `invalid_client_metadata`.
#[tokio::test]
async fn application_type_is_inferred_or_must_fit() {
    let s = support::start();
    let web = "https://app.example.com/cb";
    for (uris, declared, echoed) in [
        (vec![web], None, "web"),
        (vec![support::SEED_REDIRECT], None, "native"),
        (vec![web, support::SEED_REDIRECT], None, "native"),
        (
            vec![CURSOR, support::SEED_REDIRECT],
            Some("native"),
            "native",
        ),
        (vec![web, support::SEED_REDIRECT], Some("web"), "web"),
    ] {
        let (status, body) = register_raw(&s, &with_uris(&uris, declared)).await;
        assert_eq!(status, StatusCode::CREATED, "{uris:?} {declared:?}: {body}");
        assert_eq!(body["application_type"], echoed, "{uris:?} {declared:?}");
    }
    for (uris, declared, named) in [
        (vec![support::SEED_REDIRECT, web], "native", web),
        (vec![web, CURSOR], "web", CURSOR),
        (
            vec![web, "com.example.app:/cb"],
            "web",
            "com.example.app:/cb",
        ),
    ] {
        let (status, body) = register_raw(&s, &with_uris(&uris, Some(declared))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "invalid_client_metadata", "{body}");
        let d = body["error_description"].as_str().unwrap();
        assert!(
            d.contains(&format!(
                "application_type {declared} conflicts with redirect URI {named}"
            )),
            "{d}"
        );
    }
    for other in ["desktop", "Web", ""] {
        let (status, body) = register_raw(&s, &with_uris(&[web], Some(other))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "invalid_client_metadata", "{body}");
    }
}

/// A bad list stops `serve` at start-up, naming the key: web and browser schemes, bad syntax; from the TOML
/// file and from the environment.
#[test]
fn a_bad_list_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    for (toml, env, needle) in [
        (
            "allowed_redirect_schemes = [\"cursor\", \"https\"]",
            None,
            "\"https\"",
        ),
        (
            "allowed_redirect_schemes = [\"javascript\"]",
            None,
            "\"javascript\"",
        ),
        (
            "allowed_redirect_schemes = [\"cursor://\"]",
            None,
            "\"cursor://\"",
        ),
        ("", Some("cursor,data"), "\"data\""),
        ("", Some("file"), "\"file\""),
    ] {
        let path = dir.path().join("p.toml");
        std::fs::write(&path, toml).unwrap();
        let db = format!("sqlite://{}", dir.path().join("p.db").display());
        let mut cmd = Command::new(support::bin());
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            &db,
            "--config",
        ])
        .arg(&path)
        .env_remove("PORTCULLIS_ALLOWED_REDIRECT_SCHEMES")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        if let Some(v) = env {
            cmd.env("PORTCULLIS_ALLOWED_REDIRECT_SCHEMES", v);
        }
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("serve started with a bad allowed_redirect_schemes ({needle})");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(!status.success(), "{needle}: {stderr}");
        assert!(
            stderr.contains("allowed_redirect_schemes: ") && stderr.contains(needle),
            "expected the key and {needle} in: {stderr}"
        );
    }
}
