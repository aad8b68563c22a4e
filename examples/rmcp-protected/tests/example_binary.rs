//! The example binary on its own (no authorization server running): it refuses a bad issuer with a clear
//! message, and without a token it answers the RFC 9728 metadata and the 401 challenge. The full flow against
//! a real Portcullis is `crates/cli/tests/it/guard_example.rs` (which also builds this binary through this
//! test target, so both get the same dependency features).

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_rmcp-protected");

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request; the whole answer as text.
fn http(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    // The guard answers without reading a refused request's body, so the server may reset the connection
    // after its answer: keep what arrived.
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if !out.is_empty() => {
                eprintln!("after {} bytes: {e}", out.len());
                break;
            }
            Err(e) => panic!("{e} on {}", request.lines().next().unwrap_or("")),
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn refuses_a_non_https_issuer() {
    let out = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--issuer",
            "http://auth.example.com",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must be an absolute https URL"), "{err}");
}

#[test]
fn serves_metadata_and_challenges_without_a_token() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--issuer", "http://127.0.0.1:9"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().unwrap().unwrap();
    let base = first
        .strip_prefix("listening on http://")
        .unwrap()
        .to_owned();
    // Keep the pipe open (a closed stdout would fail the example's next print).
    std::thread::spawn(move || lines.for_each(drop));

    let prm = http(
        &base,
        &format!("GET /.well-known/oauth-protected-resource/mcp HTTP/1.1\r\nHost: {base}\r\nConnection: close\r\n\r\n"),
    );
    assert!(prm.starts_with("HTTP/1.1 200"), "{prm}");
    assert!(
        prm.contains(&format!(r#""resource":"http://{base}/mcp""#)),
        "{prm}"
    );
    assert!(
        prm.contains(r#""authorization_servers":["http://127.0.0.1:9"]"#),
        "{prm}"
    );

    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let resp = http(
        &base,
        &format!(
            "POST /mcp HTTP/1.1\r\nHost: {base}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
    let challenge = format!(
        r#"www-authenticate: Bearer scope="mcp:tools", resource_metadata="http://{base}/.well-known/oauth-protected-resource/mcp""#
    );
    assert!(
        resp.to_ascii_lowercase()
            .contains(&challenge.to_ascii_lowercase()),
        "{resp}"
    );
}
