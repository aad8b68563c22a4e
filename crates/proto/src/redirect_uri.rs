//! Redirect URIs: what may be registered (RFC 7591 §2, RFC 8252 §7, RFC 9700 §4.1.3) and how a requested
//! `redirect_uri` is matched against the registered ones (OAuth 2.1 §4.1.1: exact string match, except the port
//! of a loopback redirect URI, RFC 8252 §7.3).
//!
//! Which private-use schemes are accepted is the caller's policy: a reverse-domain scheme always (RFC 8252
//! §7.1), and the schemes of a [`PrivateUseSchemes`] list ([`RedirectUri::parse_allowing`]).
//!
//! Parsing is deliberately strict: the text must be printable ASCII with no whitespace or control characters,
//! and must already be in the canonical form the WHATWG URL parser would print. So there is never a second
//! reading of the same string (a browser's) that differs from ours: case tricks, backslashes, encoded dots,
//! default ports and the like are refused instead of normalised.

use crate::redirect_scheme::{is_private_use_candidate, PrivateUseSchemes};
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
    /// A private-use scheme (RFC 8252 §7.1): reverse-domain such as `com.example.app:/cb`, or one the
    /// operator allows such as `cursor://anysphere.cursor-mcp/oauth/callback`.
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
    /// A scheme that is neither https, loopback http, nor a private-use scheme.
    #[error("redirect URI scheme must be https, http on loopback, or a reverse-domain private-use scheme containing a dot")]
    Scheme,
    /// A private-use scheme without a dot that is not in the allowed list (`allowed_redirect_schemes`).
    #[error("redirect URI scheme {0:?} is not allowed: use https, http on loopback, a reverse-domain private-use scheme containing a dot (RFC 8252 §7.1), or a scheme the server allows (allowed_redirect_schemes)")]
    SchemeNotAllowed(String),
}

/// Which private-use schemes a parse accepts besides reverse-domain ones.
#[derive(Clone, Copy)]
enum PrivateUse<'a> {
    /// These.
    Listed(&'a PrivateUseSchemes),
    /// Any valid one that is not a web or browser scheme: what some earlier registration may have allowed.
    AnyValid,
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
    /// Parses a redirect URI offered for registration, accepting only reverse-domain private-use schemes.
    pub fn parse(text: &str) -> Result<Self, RedirectUriError> {
        Self::parse_allowing(text, &PrivateUseSchemes::none())
    }

    /// Parses a redirect URI offered for registration, accepting the private-use schemes of `allowed` as well
    /// as reverse-domain ones (RFC 8252 §7.1).
    pub fn parse_allowing(
        text: &str,
        allowed: &PrivateUseSchemes,
    ) -> Result<Self, RedirectUriError> {
        Self::parse_with(text, PrivateUse::Listed(allowed))
    }

    /// Parses a redirect URI read back from a registration that was accepted then: any private-use scheme a
    /// list could have allowed is accepted, so narrowing the list later does not make stored clients
    /// unreadable. Never for URIs offered for registration.
    pub fn parse_registered(text: &str) -> Result<Self, RedirectUriError> {
        Self::parse_with(text, PrivateUse::AnyValid)
    }

    fn parse_with(text: &str, private_use: PrivateUse<'_>) -> Result<Self, RedirectUriError> {
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
            scheme if !is_private_use_candidate(scheme) => return Err(RedirectUriError::Scheme),
            scheme => match private_use {
                PrivateUse::Listed(allowed) if !allowed.contains(scheme) => {
                    return Err(RedirectUriError::SchemeNotAllowed(scheme.to_owned()))
                }
                _ => Kind::PrivateUse,
            },
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

    /// Whether the host is a loopback one (`http` loopback URIs, or `https` on a loopback host).
    pub fn is_loopback_host(&self) -> bool {
        Url::parse(&self.text).is_ok_and(|u| is_loopback_host(u.host()))
    }

    /// Whether the host is the name `localhost` (not a loopback IP literal). RFC 8252 §8.3 recommends the
    /// literals: the name may resolve to another address or family, where another program may listen.
    pub fn names_localhost(&self) -> bool {
        Url::parse(&self.text).is_ok_and(|u| u.host() == Some(Host::Domain("localhost")))
    }

    /// The host to show on the consent page; for a private-use scheme, the scheme (its "host" names nothing:
    /// whichever app handles the scheme gets the redirect).
    pub fn display_host(&self) -> String {
        match Url::parse(&self.text) {
            Ok(u) => match (self.kind, u.host_str()) {
                (Kind::PrivateUse, _) | (_, None) => format!("{}:", u.scheme()),
                (_, Some(h)) => h.to_owned(),
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
        assert_eq!(
            RedirectUri::parse("myapp:/cb"),
            Err(E::SchemeNotAllowed("myapp".into()))
        );
        assert_eq!(RedirectUri::parse("relative/path"), Err(E::Syntax));
    }

    const CURSOR: &str = "cursor://anysphere.cursor-mcp/oauth/callback";

    /// A listed scheme is accepted; an unlisted one is refused by name; the reverse-domain rule holds either
    /// way; web and browser schemes stay refused whatever the list says.
    #[test]
    fn allowed_private_use_schemes() {
        use RedirectUriError as E;
        let allowed = PrivateUseSchemes::parse(["cursor"]).unwrap();
        let r = RedirectUri::parse_allowing(CURSOR, &allowed).unwrap();
        assert_eq!(r.kind(), Kind::PrivateUse);
        assert_eq!(r.as_str(), CURSOR);
        assert!(r.matches(CURSOR));
        assert!(!r.matches("cursor://anysphere.cursor-mcp/oauth/callback/x"));
        assert!(!r.matches("cursor://evil/oauth/callback"));
        assert_eq!(
            RedirectUri::parse(CURSOR),
            Err(E::SchemeNotAllowed("cursor".into()))
        );
        assert_eq!(
            RedirectUri::parse_allowing("claude://claude.ai/mcp-auth-callback/sdk", &allowed),
            Err(E::SchemeNotAllowed("claude".into()))
        );
        assert!(RedirectUri::parse_allowing(
            "claude://claude.ai/mcp-auth-callback/sdk",
            &PrivateUseSchemes::mcp_clients()
        )
        .is_ok());
        assert_eq!(
            RedirectUri::parse_allowing("com.example.app:/oauth", &PrivateUseSchemes::none())
                .unwrap()
                .kind(),
            Kind::PrivateUse
        );
        assert_eq!(
            RedirectUri::parse_allowing("Cursor://anysphere.cursor-mcp/cb", &allowed),
            Err(E::NotCanonical("cursor://anysphere.cursor-mcp/cb".into()))
        );
        assert_eq!(
            RedirectUri::parse_allowing("cursor://a/cb#x", &allowed),
            Err(E::Fragment)
        );
        for bad in [
            "javascript:alert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "vbscript:x",
        ] {
            assert_eq!(RedirectUri::parse_allowing(bad, &allowed), Err(E::Scheme));
            assert_eq!(RedirectUri::parse_registered(bad), Err(E::Scheme));
        }
    }

    /// Stored registrations stay readable whatever the list is now; web schemes never pass.
    #[test]
    fn registered_uris_parse_without_the_list() {
        assert!(RedirectUri::parse_registered(CURSOR).is_ok());
        assert!(RedirectUri::parse_registered("myapp:/cb").is_ok());
        assert!(RedirectUri::parse_registered("http://evil.com/cb").is_err());
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
    fn loopback_hosts() {
        let yes = [
            "http://127.0.0.1/cb",
            "https://localhost/cb",
            "https://[::1]:8443/cb",
        ];
        for u in yes {
            assert!(RedirectUri::parse(u).unwrap().is_loopback_host(), "{u}");
        }
        let no = [
            "https://app.example.com/cb",
            "com.example.app:/cb",
            "https://127.0.0.2.nip.io/cb",
        ];
        for u in no {
            assert!(!RedirectUri::parse(u).unwrap().is_loopback_host(), "{u}");
        }
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
        assert_eq!(
            RedirectUri::parse_registered(CURSOR)
                .unwrap()
                .display_host(),
            "cursor:"
        );
    }
}
