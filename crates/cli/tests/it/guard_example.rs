//! The library guard end to end: the real `portcullis serve` as the authorization server (with `--resource`
//! naming the example) and the real `examples/rmcp-protected` binary (an rmcp server behind
//! `portcullis-guard`) as the resource server, both on 127.0.0.1; the seed flow's checks run against the
//! example, then the `portcullis` client commands.
//!
//! The example binary is brought up to date by `cargo test --no-run --workspace --test example_binary` (the
//! cargo that built this test, into the target directory of the `portcullis` binary under test): building the
//! example's own integration test builds its binary, and a workspace test build resolves dependency features
//! exactly as `cargo nextest run --workspace` does, so in CI this is a no-op; `cargo nextest run -p portcullis`
//! works on its own too (it then compiles what is missing).

#![allow(clippy::unwrap_used)]

use crate::support::*;
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The example binary, brought up to date by cargo.
fn example_bin() -> PathBuf {
    let portcullis = Path::new(bin());
    let profile_dir = portcullis.parent().unwrap();
    let target_dir = profile_dir.parent().unwrap();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut build = Command::new(env!("CARGO"));
    build
        .current_dir(&workspace)
        .args([
            "test",
            "--no-run",
            "--quiet",
            "--workspace",
            "--test",
            "example_binary",
        ])
        .arg("--target-dir")
        .arg(target_dir);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().unwrap();
    assert!(status.success(), "building the example binary failed");
    profile_dir.join(format!("rmcp-protected{}", std::env::consts::EXE_SUFFIX))
}

/// A running example server, killed on drop.
struct Example {
    child: Child,
    /// Its resource identifier (the MCP endpoint URL).
    resource: String,
    base: String,
    log: tempfile::NamedTempFile,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Example {
    fn start(issuer: &str, scope: &str) -> Self {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(example_bin())
            .args([
                "--listen",
                "127.0.0.1:0",
                "--issuer",
                issuer,
                "--scope",
                scope,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut base, mut resource) = (None, None);
        while base.is_none() || resource.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| {
                    panic!(
                        "the example did not start: {}",
                        std::fs::read_to_string(log.path()).unwrap_or_default()
                    )
                });
            base = base.or(line.strip_prefix("listening on ").map(str::to_owned));
            resource = resource.or(line.strip_prefix("resource ").map(str::to_owned));
        }
        Self {
            child,
            resource: resource.unwrap(),
            base: base.unwrap(),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

/// Starts the authorization server (issuer on a chosen port) knowing the example's resource, and the example.
fn start_both(scope: &str) -> (Server, Example) {
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let example = Example::start(&issuer, scope);
    let listen = format!("127.0.0.1:{port}");
    let s = start_with(&["--listen", &listen, "--resource", &example.resource]);
    assert_eq!(s.issuer, issuer);
    (s, example)
}

/// A JSON-RPC POST as an MCP client sends it (Streamable HTTP: both media types accepted).
async fn mcp(url: &str, token: Option<&str>, body: &str) -> Page {
    let mut req = http()
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2025-06-18")
        .body(body.to_owned());
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let resp = req.send().await.unwrap();
    Page {
        status: resp.status(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap(),
    }
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"it","version":"1"}}}"#;
const WHOAMI: &str =
    r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#;

/// The JSON-RPC message of an answer (JSON, or the first `data:` of an event stream).
fn message(p: &Page) -> Value {
    let text = p
        .body
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .unwrap_or(&p.body);
    serde_json::from_str(text.trim()).unwrap_or_else(|_| panic!("not JSON-RPC: {}", p.body))
}

/// The authorization code flow for `resource` with `extra` (scope…), through the login and consent forms.
async fn tokens_for(s: &Server, resource: &str, extra: &str) -> (Tokens, Value) {
    let client_id = register_public(s).await;
    let p = pkce();
    let code = code_for(
        s,
        &client_id,
        &p,
        &format!("&resource={}{extra}", enc(resource)),
    )
    .await;
    let (status, _, body) = post_form(
        s,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", SEED_REDIRECT),
            ("client_id", &client_id),
            ("code_verifier", &p.verifier),
            ("resource", resource),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tokens = Tokens {
        client_id,
        access: body["access_token"].as_str().unwrap().to_owned(),
        refresh: body["refresh_token"].as_str().unwrap().to_owned(),
    };
    (tokens, body)
}

#[tokio::test]
async fn seed_flow_against_an_rmcp_server_behind_the_guard() {
    let (s, ex) = start_both("mcp:tools");
    let h = http();

    // 1. No token: 401 with the challenge naming the example's metadata and scope.
    let p = mcp(&ex.resource, None, INITIALIZE).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{}", p.body);
    let challenge = www_authenticate(&p);
    let prm_url = format!("{}/.well-known/oauth-protected-resource/mcp", ex.base);
    assert_eq!(
        auth_param(&challenge, "resource_metadata"),
        Some(prm_url.clone())
    );
    assert_eq!(
        auth_param(&challenge, "scope").as_deref(),
        Some("mcp:tools")
    );
    assert_eq!(auth_param(&challenge, "error"), None, "{challenge}");

    // 2. Protected resource metadata, then the issuer's metadata.
    let prm: Value = h.get(&prm_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(prm["resource"], ex.resource.as_str());
    assert_eq!(prm["authorization_servers"], serde_json::json!([s.issuer]));
    assert_eq!(
        prm["bearer_methods_supported"],
        serde_json::json!(["header"])
    );
    assert_eq!(prm["scopes_supported"], serde_json::json!(["mcp:tools"]));
    let meta: Value = h
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            s.issuer
        ))
        .header("MCP-Protocol-Version", "2024-11-05")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], s.issuer.as_str());
    assert_eq!(
        meta["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );

    // 3–6. Registration, PKCE, login and consent, the code exchange with resource = the example.
    let (tokens, body) = tokens_for(&s, &ex.resource, "").await;
    assert_eq!(body["scope"], "mcp:tools");
    let claims = jwt_part(&tokens.access, 1);
    assert_eq!(claims["aud"], ex.resource.as_str());
    assert_eq!(claims["iss"], s.issuer.as_str());

    // 7. MCP initialize and tools/call whoami with the token.
    let p = mcp(&ex.resource, Some(&tokens.access), INITIALIZE).await;
    assert_eq!(p.status, StatusCode::OK, "{}\n{}", p.body, ex.log());
    let init = message(&p);
    assert!(init["result"]["protocolVersion"].is_string(), "{init}");
    let p = mcp(&ex.resource, Some(&tokens.access), WHOAMI).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let who = message(&p);
    let structured = &who["result"]["structuredContent"];
    assert_eq!(structured["sub"], claims["sub"], "{who}");
    assert_eq!(structured["client_id"], tokens.client_id.as_str());
    assert_eq!(structured["scope"], "mcp:tools");

    // A token for another audience (Portcullis's own MCP endpoint) is refused, and the other way round.
    let own = grant(&s, "").await;
    let p = mcp(&ex.resource, Some(&own.access), WHOAMI).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    let c = www_authenticate(&p);
    assert_eq!(auth_param(&c, "error").as_deref(), Some("invalid_token"));
    assert_eq!(
        auth_param(&c, "error_description").as_deref(),
        Some("token is not for this resource (aud)")
    );
    assert_eq!(
        mcp_status(&s, &tokens.access).await,
        StatusCode::UNAUTHORIZED
    );
    // A resource Portcullis was not told about is refused at /authorize (RFC 8707 invalid_target).
    let client_id = register_public(&s).await;
    let url = authorize_url(
        &s,
        &client_id,
        &pkce().challenge,
        &format!("&resource={}", enc("http://127.0.0.1:1/mcp")),
    );
    // (An error page: this signed-in user never approved this client, so nothing is redirected to it.)
    let b = browser();
    let login = get(&b, &url).await;
    assert!(login.is_login(), "{:?} {}", login.status, login.body);
    let fields = [("username", USER), ("password", PASSWORD)];
    let signed_in = submit(&b, &s, &login, "/login", &fields).await;
    let page = get(&b, &resolve(&s, signed_in.location().unwrap())).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains("invalid_target"), "{}", page.body);

    // 8. Refresh: the new access token keeps the example as its audience and works there.
    let (status, body) = refresh(&s, &tokens.client_id, &tokens.refresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access2 = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_part(access2, 1)["aud"], ex.resource.as_str());
    let p = mcp(&ex.resource, Some(access2), WHOAMI).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
}

#[tokio::test]
async fn missing_scope_is_403_naming_the_scope() {
    let (s, ex) = start_both("mcp:admin");
    let (tokens, body) = tokens_for(&s, &ex.resource, "&scope=mcp:tools").await;
    assert_eq!(body["scope"], "mcp:tools");
    let p = mcp(&ex.resource, Some(&tokens.access), WHOAMI).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    let c = www_authenticate(&p);
    assert_eq!(
        auth_param(&c, "error").as_deref(),
        Some("insufficient_scope")
    );
    assert_eq!(auth_param(&c, "scope").as_deref(), Some("mcp:admin"));
    assert!(auth_param(&c, "resource_metadata").is_some(), "{c}");
    // With the scope it passes.
    let (tokens, _) = tokens_for(&s, &ex.resource, "&scope=mcp:admin").await;
    let p = mcp(&ex.resource, Some(&tokens.access), WHOAMI).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
}

#[test]
fn portcullis_client_commands_against_the_example() {
    let (s, ex) = start_both("mcp:tools");
    let client = |args: &[&str], browser: &Path| {
        let out = Command::new(bin())
            .args(args)
            .env("PORTCULLIS_HOME", s.home.path())
            .env("BROWSER", browser)
            .env("PORTCULLIS_TEST_USER", USER)
            .env("PORTCULLIS_TEST_PASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{args:?} failed: {stdout}\n{}\nexample log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            ex.log()
        );
        stdout
    };
    let out = client(&["login", &ex.resource], &auto_browser());
    assert!(out.contains("Logged in"), "{out}");
    let no_browser = Path::new("/bin/false");
    let tools = client(&["tools", &ex.resource], no_browser);
    assert!(
        tools.contains("whoami") && tools.contains("echo"),
        "{tools}"
    );
    let who = client(&["call", &ex.resource, "whoami"], no_browser);
    assert!(who.contains("mcp:tools"), "{who}");
    let echoed = client(
        &[
            "call",
            &ex.resource,
            "echo",
            "--args",
            r#"{"message":"through the guard"}"#,
        ],
        no_browser,
    );
    assert!(echoed.contains("through the guard"), "{echoed}");
}
