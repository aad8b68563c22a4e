//! The client commands against a real `portcullis serve`: login through the real login and consent forms
//! (tests/support/auto_browser.py as $BROWSER), tools, call, token, refresh after expiry, step-up, bridge, logout.

#![allow(clippy::unwrap_used)]

use crate::support::{auto_browser, bin, start, Server, PASSWORD, USER};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn client(s: &Server, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env("PORTCULLIS_HOME", s.home.path())
        .env("BROWSER", auto_browser())
        .env("PORTCULLIS_TEST_USER", USER)
        .env("PORTCULLIS_TEST_PASSWORD", PASSWORD)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn ok(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "failed: stdout={out}\nstderr={}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn cache_file(s: &Server) -> PathBuf {
    let dir = s.home.path().join("servers");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap()
}

#[test]
fn client_login_tools_call_token_logout() {
    let s = start();
    let out = ok(&client(&s, &["login", &s.mcp], &[]));
    // The token names the password user by login name (`preferred_username`), with no email or provider.
    assert!(
        out.lines()
            .any(|l| l == format!("Logged in to {} as {USER}.", s.mcp)),
        "{out}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(cache_file(&s))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    assert!(ok(&client(&s, &["status"], &[])).contains(&s.mcp));
    // From here on no browser may open: the cached token is used.
    let no_browser = [("BROWSER", "/bin/false")];
    let tools = ok(&client(&s, &["tools", &s.mcp], &no_browser));
    assert!(
        tools.contains("whoami") && tools.contains("echo"),
        "{tools}"
    );
    let json: Value =
        serde_json::from_str(&ok(&client(&s, &["tools", &s.mcp, "--json"], &no_browser))).unwrap();
    assert!(json.as_array().unwrap().iter().any(|t| t["name"] == "echo"));
    let echoed = ok(&client(
        &s,
        &[
            "call",
            &s.mcp,
            "echo",
            "--args",
            r#"{"message":"hello portcullis"}"#,
        ],
        &no_browser,
    ));
    assert!(echoed.contains("hello portcullis"), "{echoed}");
    let token = ok(&client(&s, &["token", &s.mcp], &no_browser));
    assert_eq!(
        token.trim().split('.').count(),
        3,
        "expected a JWT access token"
    );
    let out = ok(&client(&s, &["logout", &s.mcp], &no_browser));
    assert!(out.contains("Logged out"), "{out}");
    assert!(ok(&client(&s, &["status"], &[])).contains("No credentials"));
}

#[test]
fn client_refreshes_after_expiry_without_a_browser() {
    let s = start();
    ok(&client(&s, &["login", &s.mcp], &[]));
    let before = ok(&client(&s, &["token", &s.mcp], &[]));
    let path = cache_file(&s);
    let mut entry: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    entry["expires_at"] = Value::from(1);
    std::fs::write(&path, entry.to_string()).unwrap();
    let after = ok(&client(
        &s,
        &["token", &s.mcp],
        &[("BROWSER", "/bin/false")],
    ));
    assert_ne!(before.trim(), after.trim(), "the token was not refreshed");
    let tools = ok(&client(
        &s,
        &["tools", &s.mcp],
        &[("BROWSER", "/bin/false")],
    ));
    assert!(tools.contains("whoami"));
}

#[test]
fn client_login_denied_fails_clearly() {
    let s = start();
    let o = client(
        &s,
        &["login", &s.mcp],
        &[("PORTCULLIS_TEST_DECISION", "deny")],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("access_denied"), "{err}");
}

#[test]
fn client_step_up_ends() {
    let s = start();
    ok(&client(&s, &["login", &s.mcp], &[]));
    let tools: Value =
        serde_json::from_str(&ok(&client(&s, &["tools", &s.mcp, "--json"], &[]))).unwrap();
    let admin = tools
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .find(|n| *n == "server_stats")
        .map(str::to_owned)
        .expect("the built-in server lists server_stats, which needs mcp:admin");
    let o = client(&s, &["call", &s.mcp, &admin], &[]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    // The first call gets 403 insufficient_scope; the client steps up (the test browser approves mcp:admin)
    // and the retried call succeeds.
    assert!(o.status.success(), "stdout={out}\nstderr={err}");
    assert!(out.contains("clients"), "stdout={out}");
}

#[test]
fn client_bridge_passes_messages_through() {
    let s = start();
    ok(&client(&s, &["login", &s.mcp], &[]));
    let mut child = Command::new(bin())
        .args(["bridge", &s.mcp])
        .env("PORTCULLIS_HOME", s.home.path())
        .env("BROWSER", "/bin/false")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let recv = |id: i64| -> Value {
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("no answer from the bridge");
            let v: Value = serde_json::from_str(&line).expect("stdout carries only JSON-RPC lines");
            if v["id"] == id {
                return v;
            }
        }
    };
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"2025-06-18","capabilities":{{}},"clientInfo":{{"name":"it","version":"0"}}}}}}"#).unwrap();
    assert!(recv(1)["result"]["protocolVersion"].is_string());
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#
    )
    .unwrap();
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":2,"method":"tools/list"}}"#).unwrap();
    assert!(recv(2)["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "whoami"));
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"via bridge"}}}}}}"#).unwrap();
    assert!(recv(3)["result"].to_string().contains("via bridge"));
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success());
}
