//! The loopback redirect listener (RFC 8252 §7.3): bound on 127.0.0.1 *before* the browser is opened, so the
//! redirect can never arrive before someone listens; single use; a timeout with a clear message.

use crate::authorize::AuthorizationResponse;
use crate::{Error, Result};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The path of the redirect URI.
pub const CALLBACK_PATH: &str = "/callback";

/// A bound, not yet used, callback listener.
#[derive(Debug)]
pub struct CallbackListener {
    listener: TcpListener,
    port: u16,
}

impl CallbackListener {
    /// Binds 127.0.0.1 on `port`, or on a random port when `None`.
    pub async fn bind(port: Option<u16>) -> Result<Self> {
        let want = port.unwrap_or(0);
        let listener =
            TcpListener::bind(("127.0.0.1", want))
                .await
                .map_err(|e| Error::CallbackBind {
                    port: want,
                    reason: e.to_string(),
                })?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::CallbackBind {
                port: want,
                reason: e.to_string(),
            })?
            .port();
        Ok(Self { listener, port })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The redirect URI for this listener (an IP literal, as RFC 8252 §7.3 recommends).
    pub fn redirect_uri(&self) -> String {
        redirect_uri_for(self.port)
    }

    /// Waits for the browser's redirect to [`CALLBACK_PATH`], answers it with a small page and returns its
    /// parameters. Other paths (a favicon request) get a 404 and the wait goes on.
    pub async fn wait(self, timeout: Duration) -> Result<AuthorizationResponse> {
        let work = async {
            loop {
                let Ok((sock, _)) = self.listener.accept().await else {
                    continue;
                };
                if let Some(resp) = receive_authorization_response(sock).await {
                    return resp;
                }
            }
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| Error::CallbackTimeout {
                seconds: timeout.as_secs(),
            })
    }
}

/// `http://127.0.0.1:{port}/callback`.
pub fn redirect_uri_for(port: u16) -> String {
    format!("http://127.0.0.1:{port}{CALLBACK_PATH}")
}

/// The port of a loopback redirect URI, if it names one.
pub fn port_of(redirect_uri: &str) -> Option<u16> {
    url::Url::parse(redirect_uri).ok()?.port()
}

/// Reads one request on the loopback redirect listener (RFC 8252 §7.3): `GET` of the callback path yields the
/// authorization response of its query (RFC 6749 §4.1.2) and a page telling the user to close the window; any
/// other request gets 404 and `None`.
async fn receive_authorization_response(mut sock: TcpStream) -> Option<AuthorizationResponse> {
    let mut buf = Vec::with_capacity(2048);
    let mut tmp = [0u8; 2048];
    let read = async {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            let n = sock.read(&mut tmp).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        Some(())
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .ok()??;
    let head = String::from_utf8_lossy(&buf);
    let target = head.lines().next()?.split(' ').nth(1)?.to_owned();
    let (path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
    if !head.starts_with("GET ") || path != CALLBACK_PATH {
        let _ = sock
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
        return None;
    }
    let resp = AuthorizationResponse::from_query(query);
    let (title, text) = match &resp.error {
        None => (
            "Signed in",
            "Portcullis received the authorization. You can close this window.".to_owned(),
        ),
        Some(e) => (
            "Authorization failed",
            format!(
                "The authorization server answered: {}. You can close this window.",
                escape(e)
            ),
        ),
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"font-family:sans-serif;margin:3em\"><h1>{title}</h1><p>{text}</p></body></html>"
    );
    let msg = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\ncache-control: no-store\r\n\
         referrer-policy: no-referrer\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = sock.write_all(msg.as_bytes()).await;
    let _ = sock.shutdown().await;
    Some(resp)
}

fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '&' => "&amp;".into(),
            '"' => "&quot;".into(),
            '\'' => "&#39;".into(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn receives_the_redirect_and_ignores_other_paths() {
        let l = CallbackListener::bind(None).await.unwrap();
        let uri = l.redirect_uri();
        assert_eq!(port_of(&uri), Some(l.port()));
        let wait = tokio::spawn(l.wait(Duration::from_secs(5)));
        let http = reqwest::Client::new();
        let base = uri.trim_end_matches(CALLBACK_PATH).to_owned();
        assert_eq!(
            http.get(format!("{base}/favicon.ico"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        let page = http
            .get(format!("{uri}?code=abc&state=xyz&iss=https%3A%2F%2Fas"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.text().await.unwrap().contains("close this window"));
        let r = wait.await.unwrap().unwrap();
        assert_eq!(r.code.as_deref(), Some("abc"));
        assert_eq!(r.state.as_deref(), Some("xyz"));
        assert_eq!(r.iss.as_deref(), Some("https://as"));
    }

    #[tokio::test]
    async fn times_out_clearly() {
        let l = CallbackListener::bind(None).await.unwrap();
        assert_eq!(
            l.wait(Duration::from_millis(50)).await,
            Err(Error::CallbackTimeout { seconds: 0 })
        );
    }
}
