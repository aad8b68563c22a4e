//! Issuer and discovery variants (MCP authorization "Authorization Server Metadata Discovery"; RFC 8414 §3.1,
//! OpenID Connect Discovery §4.1, RFC 9728 §3.1): an issuer with a path serves its metadata at every URL the
//! spec's clients try, 2025-03-26 clients find it at the origin root, and the MCP endpoint can live at the seed's
//! `/v1/mcp/` (trailing slash included) — proven with a real login by the `portcullis` client, which discovers
//! everything itself.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::Value;
use std::process::{Command, Stdio};

#[tokio::test]
async fn issuer_with_a_path_and_the_seeds_mcp_path() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let issuer = format!("http://127.0.0.1:{port}/tenant1");
    let s = start_with(&[
        "--listen",
        &listen,
        "--issuer",
        &issuer,
        "--mcp-path",
        "/v1/mcp/",
    ]);
    assert_eq!(s.issuer, issuer);
    assert_eq!(s.mcp, format!("http://127.0.0.1:{port}/v1/mcp/"));

    for path in [
        "/.well-known/oauth-authorization-server/tenant1",
        "/.well-known/openid-configuration/tenant1",
        "/tenant1/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server", // 2025-03-26 clients: the MCP origin's root
    ] {
        let resp = http()
            .get(s.url(path))
            .header("MCP-Protocol-Version", "2024-11-05")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let doc: Value = resp.json().await.unwrap();
        assert_eq!(
            doc["issuer"],
            issuer.as_str(),
            "{path}: the issuer must be identical (RFC 8414 §3.3)"
        );
        assert_eq!(doc["token_endpoint"], format!("{issuer}/token"), "{path}");
    }
    let prm: Value = http()
        .get(s.url("/.well-known/oauth-protected-resource/v1/mcp/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        prm["resource"],
        s.mcp.as_str(),
        "RFC 9728 §3.3: resource is the MCP URL exactly"
    );
    assert_eq!(prm["authorization_servers"][0], issuer.as_str());

    // The seed's step 1 at /v1/mcp/ → 401 pointing at that metadata.
    let unauth = mcp_post(&s.mcp, None, TOOLS_LIST).await;
    assert_eq!(unauth.status, StatusCode::UNAUTHORIZED);
    let challenge = www_authenticate(&unauth);
    assert_eq!(
        auth_param(&challenge, "resource_metadata").as_deref(),
        Some(
            format!("http://127.0.0.1:{port}/.well-known/oauth-protected-resource/v1/mcp/")
                .as_str()
        )
    );

    // A real client discovers, registers, logs in through the pages under /tenant1 and calls a tool.
    let run = |args: &[&str]| {
        let out = Command::new(bin())
            .args(args)
            .env("PORTCULLIS_HOME", s.home.path())
            .env("BROWSER", auto_browser())
            .env("PORTCULLIS_TEST_USER", USER)
            .env("PORTCULLIS_TEST_PASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{args:?}: {stdout}\n{}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            s.log()
        );
        stdout
    };
    run(&["login", &s.mcp]);
    let out = run(&["call", &s.mcp, "whoami"]);
    assert!(out.contains(&issuer), "{out}");
}
