//! The scope catalogue from the configuration file, `insufficient_scope` naming exactly the missing scope, and
//! `offline_access` handled as MCP SEP-2207 describes (an AS scope: advertised in the AS metadata, never in the
//! protected resource metadata, the challenge or the access token's `scope`).

use crate::support::*;
use reqwest::StatusCode;
use serde_json::Value;

const CATALOGUE: &str = r#"
[[scopes]]
name = "files:read"
description = "Read your files"
tools = ["echo"]
default = true

[[scopes]]
name = "files:admin"
description = "Administer your files"
tools = ["whoami", "server_stats"]
"#;

async fn json(url: &str) -> Value {
    http().get(url).send().await.unwrap().json().await.unwrap()
}

fn call(tool: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"{tool}","arguments":{{"message":"hi"}}}}}}"#
    )
}

#[tokio::test]
async fn configured_catalogue_and_offline_access() {
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cfg.path(), CATALOGUE).unwrap();
    let s = start_with(&["--config", cfg.path().to_str().unwrap()]);

    let as_meta = json(&s.url("/.well-known/oauth-authorization-server")).await;
    let advertised: Vec<&str> = as_meta["scopes_supported"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(advertised, ["files:admin", "files:read", "offline_access"]);
    let prm = json(&s.url("/.well-known/oauth-protected-resource/mcp")).await;
    let resource: Vec<&str> = prm["scopes_supported"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        resource,
        ["files:read", "files:admin"],
        "offline_access is not a resource scope"
    );

    // The 401 challenge names the default scope, never offline_access.
    let unauth = mcp_post(&s.mcp, None, TOOLS_LIST).await;
    assert_eq!(
        auth_param(&www_authenticate(&unauth), "scope").as_deref(),
        Some("files:read")
    );

    let client_id = register_public(&s).await;
    let p = pkce();
    let code = code_for(&s, &client_id, &p, "&scope=files:read%20offline_access").await;
    let (status, body) = exchange(&s, &client_id, &code, &p.verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["scope"], "files:read offline_access",
        "the grant records offline_access"
    );
    assert!(body["refresh_token"].is_string());
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(
        jwt_part(access, 1)["scope"],
        "files:read",
        "the resource never sees offline_access"
    );

    // The catalogue decides which scope each tool needs.
    let ok = mcp_post(&s.mcp, Some(access), &call("echo")).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert!(ok.body.contains("hi"), "{}", ok.body);
    let denied = mcp_post(&s.mcp, Some(access), &call("whoami")).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let challenge = www_authenticate(&denied);
    assert_eq!(
        auth_param(&challenge, "error").as_deref(),
        Some("insufficient_scope")
    );
    assert_eq!(
        auth_param(&challenge, "scope").as_deref(),
        Some("files:admin"),
        "exactly the missing scope"
    );
}

#[test]
fn a_bad_catalogue_stops_the_server_with_one_sentence() {
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        cfg.path(),
        "[[scopes]]\nname = \"a\"\ndescription = \"A\"\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            cfg.path().to_str().unwrap(),
        ])
        .arg("--database")
        .arg(format!("sqlite://{}", dir.path().join("p.db").display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error: mark at least one [[scopes]] entry with default = true"),
        "{err}"
    );
}
