//! Slow clients and connection floods (issue 19, item 3; SECURITY.md "Slow clients"): a request whose header
//! section never finishes, an idle connection and an idle keep-alive connection are closed after
//! `header_read_timeout_ms`; beyond `max_connections` a new connection is closed without an answer, the accept
//! loop keeps going, and the server answers normally once connections close. Raw TCP, since an HTTP client
//! would not send half a request.

use crate::support::{self, Server};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the server did with a connection, read until it closed it or `within` passed.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// Closed (EOF or reset) after sending these bytes (maybe none, maybe a 408).
    Closed(String),
    /// Still open when `within` passed.
    Open,
}

/// Reads from `sock` until the server closes it or `within` passes.
async fn ending(sock: &mut TcpStream, within: Duration) -> Ending {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, sock.read(&mut buf)).await {
            Err(_) => return Ending::Open,
            Ok(Ok(0)) | Ok(Err(_)) => return Ending::Closed(String::from_utf8_lossy(&got).into()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// `host:port` of the server.
fn addr(s: &Server) -> String {
    s.base.trim_start_matches("http://").to_owned()
}

/// One keep-alive `GET path` on `sock`; returns the response head and body (Content-Length framed).
async fn get_on(sock: &mut TcpStream, path: &str) -> Option<String> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    sock.write_all(req.as_bytes()).await.ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return Some(text);
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
    }
}

/// Rule "Slow clients" (issue 19 item 3; RFC 9112 §9.8 lets a server close idle connections; the Slowloris
/// attack): a request whose header section is not complete within `header_read_timeout_ms`, a connection that
/// sends nothing, and a keep-alive connection left idle are all closed (no answer or a 408, never a handler's
/// answer); a header section sent in pieces within the time is answered.
#[tokio::test]
async fn unfinished_headers_and_idle_connections_are_closed_in_time() {
    let s = support::start_with(&["--header-read-timeout-ms", "1000"]);
    let start = Instant::now();
    let mut partial = TcpStream::connect(addr(&s)).await.unwrap();
    partial
        .write_all(b"GET /livez HTTP/1.1\r\nHost: test\r\nX-Slow: 1\r\n")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(addr(&s)).await.unwrap();
    let mut kept_alive = TcpStream::connect(addr(&s)).await.unwrap();
    let first = get_on(&mut kept_alive, "/livez").await.unwrap();
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // A slow but timely client: the header section in two pieces, 300 ms apart.
    let mut timely = TcpStream::connect(addr(&s)).await.unwrap();
    timely
        .write_all(b"GET /livez HTTP/1.1\r\nHost: te")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    timely.write_all(b"st\r\n\r\n").await.unwrap();
    let mut answer = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), timely.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Generous bound: the timeout is 1 s; without it all three stay open as long as the client likes.
    for (what, sock) in [
        ("unfinished header section", &mut partial),
        ("silent connection", &mut silent),
        ("idle keep-alive connection", &mut kept_alive),
    ] {
        match ending(sock, Duration::from_secs(10)).await {
            Ending::Open => panic!("{what}: still open after {:?}", start.elapsed()),
            Ending::Closed(sent) => assert!(
                sent.is_empty() || sent.starts_with("HTTP/1.1 408"),
                "{what}: answered {sent:?}"
            ),
        }
    }
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "closed before the timeout: {:?}",
        start.elapsed()
    );
    let live = support::http().get(s.url("/livez")).send().await.unwrap();
    assert_eq!(live.status(), reqwest::StatusCode::OK);
}

/// Rule "Slow clients" (issue 19 item 3: ~1,000 idle connections exhausted a 1,024-descriptor limit): with
/// `max_connections` 20, twenty held connections fill the server; more are closed at once without an answer
/// (the accept loop is not stalled), and once the twenty close, new requests and `/livez` are answered again.
#[tokio::test]
async fn connections_beyond_the_cap_are_closed_and_the_server_recovers() {
    let s = support::start_with(&[
        "--max-connections",
        "20",
        "--header-read-timeout-ms",
        "60000",
    ]);
    let mut held = Vec::new();
    for i in 0..20 {
        let mut sock = TcpStream::connect(addr(&s)).await.unwrap();
        // A whole request first, so each connection is known to hold a slot (kept alive afterwards).
        let answer = get_on(&mut sock, "/livez").await;
        assert!(
            answer
                .as_deref()
                .is_some_and(|a| a.starts_with("HTTP/1.1 200")),
            "held connection {i}: {answer:?}"
        );
        held.push(sock);
    }
    let start = Instant::now();
    for i in 0..10 {
        let mut extra = TcpStream::connect(addr(&s)).await.unwrap();
        let _ = extra
            .write_all(b"GET /livez HTTP/1.1\r\nHost: test\r\n\r\n")
            .await;
        match ending(&mut extra, Duration::from_secs(10)).await {
            Ending::Closed(sent) => assert!(sent.is_empty(), "extra {i} was answered: {sent:?}"),
            Ending::Open => panic!("extra connection {i} neither answered nor closed"),
        }
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "refusals took {:?}",
        start.elapsed()
    );
    // The held connections still work.
    let answer = get_on(&mut held[0], "/livez").await;
    assert!(
        answer
            .as_deref()
            .is_some_and(|a| a.starts_with("HTTP/1.1 200")),
        "{answer:?}"
    );
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    let client = support::http();
    loop {
        let live = client.get(s.url("/livez")).send().await;
        if live.is_ok_and(|r| r.status() == reqwest::StatusCode::OK) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no answer after the held connections closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metadata = client
        .get(s.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(metadata.status(), reqwest::StatusCode::OK);
}
