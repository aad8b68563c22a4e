//! Which URLs the client accepts: `https:`, or `http:` on a loopback host (RFC 8252 §8.3, MCP authorization
//! "Communication Security"). Endpoints from metadata documents pass through here before they are used, and
//! the authorization URL before it is handed to a browser, so a hostile `authorization_endpoint` such as
//! `javascript:…`, `file:…` or one carrying shell metacharacters (mcp-remote CVE-2025-6514) is refused.

use crate::{Error, Result};
use url::{Host, Url};

/// Characters never accepted in an endpoint URL even though a URL parser would percent-encode or tolerate them:
/// they have no business in an endpoint and are what a shell or `cmd.exe` would interpret.
const FORBIDDEN: &[char] = &[
    '`', '$', '|', ';', '<', '>', '\\', '"', '\'', '{', '}', '^', '!',
];

/// Whether `url`'s host is loopback (127.0.0.0/8, `::1`, `localhost`).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Parses a URL the client will send requests to or open: `https:`, or `http:` on loopback; no user
/// information, no fragment, no whitespace, control or shell metacharacters. `name` says which URL it is, for
/// the error message.
pub fn safe_url(name: &str, text: &str) -> Result<Url> {
    let refuse = |reason: &str| Error::UnsafeUrl {
        name: name.to_owned(),
        url: text.to_owned(),
        reason: reason.to_owned(),
    };
    if text.is_empty() || text.len() > 4096 {
        return Err(refuse("empty or longer than 4096 characters"));
    }
    if text
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
    {
        return Err(refuse(
            "contains whitespace, control or non-ASCII characters",
        ));
    }
    if text.contains(FORBIDDEN) {
        return Err(refuse("contains shell metacharacters"));
    }
    let url = Url::parse(text).map_err(|e| refuse(&format!("not an absolute URL: {e}")))?;
    match url.scheme() {
        "https" if url.host().is_some() => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(refuse(
                "plain http is allowed only on 127.0.0.1, [::1] or localhost",
            ))
        }
        _ => return Err(refuse("only https URLs (or http on loopback) are allowed")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("contains user information"));
    }
    if url.fragment().is_some() {
        return Err(refuse("contains a fragment"));
    }
    Ok(url)
}

/// Parses the MCP server URL given by the user (same rules as [`safe_url`]).
pub fn server_url(text: &str) -> Result<Url> {
    safe_url("server URL", text).map_err(|e| match e {
        Error::UnsafeUrl { url, reason, .. } => Error::InvalidServerUrl { url, reason },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_https_and_loopback_http() {
        assert!(safe_url("x", "https://a.example/authorize?x=1&y=2").is_ok());
        assert!(safe_url("x", "http://127.0.0.1:8080/authorize").is_ok());
        assert!(safe_url("x", "http://localhost:3000/authorize").is_ok());
        assert!(safe_url("x", "http://[::1]/authorize").is_ok());
    }

    #[test]
    fn refuses_dangerous_urls() {
        for bad in [
            "javascript:alert(1)",
            "file:///etc/passwd",
            "data:text/html,hi",
            "http://evil.example/authorize",
            "http://localhost.evil.example/authorize",
            "https://a.example/$(touch /tmp/pwned)",
            "https://a.example/`id`",
            "https://a.example/a;rm -rf",
            "https://a.example/a|id",
            "a:$(calc.exe)",
            "https://user:pw@a.example/",
            "https://a.example/#frag",
            " https://a.example/",
            "https://a.example/\u{e9}",
            "https://a.example/&calc.exe\"",
            "",
        ] {
            assert!(
                matches!(
                    safe_url("authorization_endpoint", bad),
                    Err(Error::UnsafeUrl { .. })
                ),
                "{bad}"
            );
        }
    }
}
