//! Redirect URIs: what may be registered (RFC 7591 §2, RFC 8252 §7, RFC 9700 §4.1.3) and how a requested
//! `redirect_uri` is matched against the registered ones (OAuth 2.1 §4.1.1: exact string match, except the port
//! of a loopback redirect URI, RFC 8252 §7.3).
//!
//! Parsing is deliberately strict: the text must be printable ASCII with no whitespace or control characters,
//! and must already be in the canonical form the WHATWG URL parser would print. So there is never a second
//! reading of the same string (a browser's) that differs from ours: case tricks, backslashes, encoded dots,
//! default ports and the like are refused instead of normalised.

use std::fmt;
use url::{Host, Url};

/// Longest redirect URI accepted.
pub const MAX_LEN: usize = 2000;

/// A registered redirect URI, known to follow the registration rules.
#[derive(Clone, PartialEq, Eq)]
pub struct RedirectUri {
    text: String,
    kind: Kind,
}

/// What kind of redirect URI it is (RFC 8252 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `https:` (RFC 8252 §7.2, web and claimed-https native clients).
    Https,
    /// `http:` on a loopback host; any port matches (RFC 8252 §7.3).
    Loopback,
    /// A reverse-domain private-use scheme such as `com.example.app:/cb` (RFC 8252 §7.1).
    PrivateUse,
}

/// Why a redirect URI was refused. The message is safe to show to the client developer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedirectUriError {
    /// Empty or longer than [`MAX_LEN`].
    #[error("redirect URI must be 1 to 2000 characters")]
    Length,
    /// Whitespace, control or non-ASCII characters.
    #[error("redirect URI contains whitespace, control or non-ASCII characters")]
    Characters,
    /// Not an absolute URI.
    #[error("redirect URI is not an absolute URI")]
    Syntax,
    /// Not in canonical form.
    #[error("redirect URI is not in canonical form (expected {0})")]
    NotCanonical(String),
    /// A fragment is present (RFC 6749 §3.1.2).
    #[error("redirect URI must not contain a fragment")]
    Fragment,
    /// User information in the authority.
    #[error("redirect URI must not contain user information")]
    Userinfo,
    /// `http:` on a host that is not loopback.
    #[error("http redirect URIs are allowed only on loopback hosts (127.0.0.1, [::1], localhost)")]
    InsecureHttp,
    /// A scheme that is neither https, loopback http, nor a reverse-domain private-use scheme.
    #[error("redirect URI scheme must be https, http on loopback, or a reverse-domain private-use scheme containing a dot")]
    Scheme,
}

fn is_loopback_host(host: Option<Host<&str>>) -> bool {
    match host {
        Some(Host::Domain(d)) => d == "localhost",
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn parse_canonical(text: &str) -> Result<Url, RedirectUriError> {
    if text.is_empty() || text.len() > MAX_LEN {
        return Err(RedirectUriError::Length);
    }
    if !text.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(RedirectUriError::Characters);
    }
    if text.contains('#') {
        return Err(RedirectUriError::Fragment);
    }
    let url = Url::parse(text).map_err(|_| RedirectUriError::Syntax)?;
    if url.as_str() != text {
        return Err(RedirectUriError::NotCanonical(url.as_str().to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(RedirectUriError::Userinfo);
    }
    Ok(url)
}

impl RedirectUri {
    /// Parses a redirect URI offered for registration.
    pub fn parse(text: &str) -> Result<Self, RedirectUriError> {
        let url = parse_canonical(text)?;
        let kind = match url.scheme() {
            "https" => {
                if url.host().is_none() {
                    return Err(RedirectUriError::Syntax);
                }
                Kind::Https
            }
            "http" => {
                if !is_loopback_host(url.host()) {
                    return Err(RedirectUriError::InsecureHttp);
                }
                Kind::Loopback
            }
            scheme if scheme.contains('.') => Kind::PrivateUse,
            _ => return Err(RedirectUriError::Scheme),
        };
        Ok(Self {
            text: text.to_owned(),
            kind,
        })
    }

    /// The URI exactly as registered.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The kind of redirect URI.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The host to show on the consent page (for a private-use scheme, the scheme).
    pub fn display_host(&self) -> String {
        match Url::parse(&self.text) {
            Ok(u) => match u.host_str() {
                Some(h) => h.to_owned(),
                None => format!("{}:", u.scheme()),
            },
            Err(_) => self.text.clone(),
        }
    }

    /// Whether a `redirect_uri` sent in an authorization or token request matches this registered one:
    /// byte-for-byte equality, or for loopback URIs equality with only the port allowed to differ
    /// (RFC 8252 §7.3, OAuth 2.1 §4.1.1, RFC 9700 §4.1.3).
    pub fn matches(&self, requested: &str) -> bool {
        if requested == self.text {
            return true;
        }
        if self.kind != Kind::Loopback {
            return false;
        }
        let Ok(req) = parse_canonical(requested) else {
            return false;
        };
        let Ok(mut reg) = Url::parse(&self.text) else {
            return false;
        };
        if req.scheme() != "http" || reg.set_port(req.port()).is_err() {
            return false;
        }
        reg.as_str() == requested
    }
}

impl fmt::Debug for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedirectUri({:?})", self.text)
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_three_kinds() {
        assert_eq!(
            RedirectUri::parse("https://app.example.com/cb")
                .unwrap()
                .kind(),
            Kind::Https
        );
        assert_eq!(
            RedirectUri::parse("http://localhost:8080/callback")
                .unwrap()
                .kind(),
            Kind::Loopback
        );
        assert_eq!(
            RedirectUri::parse("http://127.0.0.1:33418/")
                .unwrap()
                .kind(),
            Kind::Loopback
        );
        assert_eq!(
            RedirectUri::parse("http://[::1]/cb").unwrap().kind(),
            Kind::Loopback
        );
        assert_eq!(
            RedirectUri::parse("com.example.app:/oauth").unwrap().kind(),
            Kind::PrivateUse
        );
    }

    #[test]
    fn refuses_dangerous_and_ambiguous_uris() {
        use RedirectUriError as E;
        assert_eq!(RedirectUri::parse("javascript:alert(1)"), Err(E::Scheme));
        assert_eq!(
            RedirectUri::parse("JavaScript:alert(1)"),
            Err(E::NotCanonical("javascript:alert(1)".into()))
        );
        assert_eq!(
            RedirectUri::parse(" javascript:alert(1)"),
            Err(E::Characters)
        );
        assert_eq!(
            RedirectUri::parse("java\tscript:alert(1)"),
            Err(E::Characters)
        );
        assert_eq!(RedirectUri::parse("data:text/html,hi"), Err(E::Scheme));
        assert_eq!(RedirectUri::parse("file:///etc/passwd"), Err(E::Scheme));
        assert_eq!(
            RedirectUri::parse("http://example.com/cb"),
            Err(E::InsecureHttp)
        );
        assert_eq!(
            RedirectUri::parse("http://localhost.evil.com/cb"),
            Err(E::InsecureHttp)
        );
        assert_eq!(
            RedirectUri::parse("https://a.com/cb#frag"),
            Err(E::Fragment)
        );
        assert_eq!(
            RedirectUri::parse("https://user@a.com/cb"),
            Err(E::Userinfo)
        );
        assert_eq!(
            RedirectUri::parse("https://A.com/cb"),
            Err(E::NotCanonical("https://a.com/cb".into()))
        );
        assert!(matches!(
            RedirectUri::parse("https://a.com\\@evil.com/"),
            Err(E::NotCanonical(_))
        ));
        assert!(matches!(
            RedirectUri::parse("https://a.com:443/cb"),
            Err(E::NotCanonical(_))
        ));
        assert_eq!(
            RedirectUri::parse("https://a.com/\u{e9}"),
            Err(E::Characters)
        );
        assert_eq!(RedirectUri::parse(""), Err(E::Length));
        assert_eq!(
            RedirectUri::parse(&format!("https://a.com/{}", "a".repeat(2000))),
            Err(E::Length)
        );
        assert_eq!(RedirectUri::parse("myapp:/cb"), Err(E::Scheme));
        assert_eq!(RedirectUri::parse("relative/path"), Err(E::Syntax));
    }

    #[test]
    fn exact_matching() {
        let r = RedirectUri::parse("https://app.example.com/cb").unwrap();
        assert!(r.matches("https://app.example.com/cb"));
        for bad in [
            "https://app.example.com/cb/",
            "https://app.example.com/cb?x=1",
            "https://app.example.com/CB",
            "https://APP.example.com/cb",
            "https://app.example.com/cb/../cb",
            "https://app.example.com/%63b",
            "https://app.example.com.evil.com/cb",
            "https://app.example.com:8443/cb",
            "https://app.example.com/cb#x",
            "https://app.example.com/cb ",
        ] {
            assert!(!r.matches(bad), "{bad} must not match");
        }
    }

    #[test]
    fn loopback_matches_any_port_but_nothing_else() {
        let r = RedirectUri::parse("http://127.0.0.1/callback").unwrap();
        assert!(r.matches("http://127.0.0.1:49152/callback"));
        assert!(r.matches("http://127.0.0.1/callback"));
        assert!(!r.matches("http://127.0.0.1:49152/callback/x"));
        assert!(!r.matches("http://127.0.0.1:49152/callback?x"));
        assert!(!r.matches("http://localhost:49152/callback"));
        assert!(!r.matches("https://127.0.0.1:49152/callback"));
        assert!(!r.matches("http://u@127.0.0.1:49152/callback"));
        let r = RedirectUri::parse("http://localhost:8080/callback").unwrap();
        assert!(r.matches("http://localhost:9999/callback"));
        assert!(!r.matches("http://localhost:9999/callbackx"));
    }

    #[test]
    fn display_host() {
        assert_eq!(
            RedirectUri::parse("https://app.example.com/cb")
                .unwrap()
                .display_host(),
            "app.example.com"
        );
        assert_eq!(
            RedirectUri::parse("com.example.app:/cb")
                .unwrap()
                .display_host(),
            "com.example.app:"
        );
    }
}
