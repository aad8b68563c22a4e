//! Private-use URI schemes accepted for redirect URIs besides the reverse-domain ones (RFC 8252 §7.1).
//!
//! RFC 8252 §7.1 asks native apps for a scheme based on a domain they control (`com.example.app:/cb`), and
//! [`crate::RedirectUri`] accepts any scheme containing a dot on that ground. Widely used MCP clients register
//! plain schemes instead (Cursor: `cursor://anysphere.cursor-mcp/oauth/callback`), so an operator lists the ones
//! to accept as well: [`PrivateUseSchemes`], the `allowed_redirect_schemes` setting. A listed scheme is one the
//! operator trusts to be handled by the app it names; the code still needs the client's PKCE verifier (RFC 8252
//! §8.1), so an app that claims the same scheme gets a useless code.
//!
//! A listed scheme must be a syntactically valid, lowercase scheme (RFC 3986 §3.1) that is not a web or
//! browser scheme ([`NOT_PRIVATE_USE`]): `https`, `http`, `javascript`, `data`, `file` and the like can never be
//! listed.

use std::collections::BTreeSet;
use std::fmt;

/// Schemes of MCP clients seen registering a private-use redirect URI, the default list:
/// - `cursor`: Cursor registers `cursor://anysphere.cursor-mcp/oauth/callback` (RFC 7591 registration and
///   its authorization requests; reported in many MCP servers' trackers, e.g. laravel/mcp#173,
///   modelcontextprotocol/python-sdk#897);
/// - `claude`: the Claude desktop app's Code tab sends `claude://claude.ai/mcp-auth-callback/sdk`
///   (anthropics/claude-code#93671, RevenueCat/ai-toolkit#58).
///
/// VS Code, Zed, Claude Code (CLI), Codex and Claude.ai use loopback or https redirect URIs, which need no
/// entry.
pub const MCP_CLIENT_SCHEMES: &[&str] = &["cursor", "claude"];

/// Schemes that are never private-use, and refused in the list: the web's own (WHATWG "special" schemes)
/// and the ones a browser runs or renders itself (script, inline content, local files, browser internals).
pub const NOT_PRIVATE_USE: &[&str] = &[
    "http",
    "https",
    "ws",
    "wss",
    "ftp",
    "file",
    "javascript",
    "vbscript",
    "data",
    "blob",
    "about",
    "filesystem",
    "view-source",
    "intent",
    "ms-msdt",
    "mailto",
    "tel",
    "sms",
    "urn",
];

/// Longest scheme accepted in the list.
pub const MAX_SCHEME_LEN: usize = 64;

/// The private-use schemes accepted besides reverse-domain ones. Built only from valid entries.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PrivateUseSchemes(BTreeSet<String>);

/// Why a scheme could not be listed. The message names the scheme; the caller names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemeError {
    /// Not `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` (RFC 3986 §3.1), or too long.
    #[error("{0:?} is not a URI scheme (RFC 3986 §3.1: a letter, then letters, digits, '+', '-' or '.'; write the scheme alone, e.g. \"cursor\")")]
    Syntax(String),
    /// Upper-case letters: redirect URIs are compared in canonical (lower-case) form.
    #[error("{0:?} must be lower-case")]
    Case(String),
    /// A web or browser scheme ([`NOT_PRIVATE_USE`]).
    #[error("{0:?} is not a private-use scheme and cannot be allowed")]
    NotPrivateUse(String),
}

impl PrivateUseSchemes {
    /// No scheme beyond the reverse-domain rule.
    pub fn none() -> Self {
        Self::default()
    }

    /// The default: [`MCP_CLIENT_SCHEMES`].
    pub fn mcp_clients() -> Self {
        Self(MCP_CLIENT_SCHEMES.iter().map(|s| (*s).to_owned()).collect())
    }

    /// Parses a list of schemes; the first invalid one is the error. Duplicates are harmless.
    pub fn parse<I, S>(schemes: I) -> Result<Self, SchemeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = BTreeSet::new();
        for s in schemes {
            let s = s.as_ref();
            check_listable(s)?;
            set.insert(s.to_owned());
        }
        Ok(Self(set))
    }

    /// Whether `scheme` is listed.
    pub fn contains(&self, scheme: &str) -> bool {
        self.0.contains(scheme)
    }

    /// The listed schemes, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Debug for PrivateUseSchemes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Whether `scheme` is valid RFC 3986 §3.1 syntax and not a web or browser scheme: what a private-use scheme
/// must be, listed or not.
pub(crate) fn is_private_use_candidate(scheme: &str) -> bool {
    check_listable(scheme).is_ok()
}

fn check_listable(s: &str) -> Result<(), SchemeError> {
    let mut bytes = s.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic());
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !first_ok || !rest_ok || s.len() > MAX_SCHEME_LEN {
        return Err(SchemeError::Syntax(s.to_owned()));
    }
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(SchemeError::Case(s.to_owned()));
    }
    if NOT_PRIVATE_USE.contains(&s) {
        return Err(SchemeError::NotPrivateUse(s.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_lists_the_mcp_clients() {
        let d = PrivateUseSchemes::mcp_clients();
        assert!(d.contains("cursor") && d.contains("claude"));
        assert!(!d.contains("vscode"));
        assert_eq!(d.iter().collect::<Vec<_>>(), ["claude", "cursor"]);
        assert!(!PrivateUseSchemes::none().contains("cursor"));
        assert_eq!(format!("{d:?}"), r#"{"claude", "cursor"}"#);
    }

    #[test]
    fn valid_schemes_are_listed() {
        let s = PrivateUseSchemes::parse(["cursor", "my-app+x.v2", "cursor"]).unwrap();
        assert_eq!(s.iter().collect::<Vec<_>>(), ["cursor", "my-app+x.v2"]);
        assert_eq!(
            PrivateUseSchemes::parse(Vec::<String>::new()).unwrap(),
            PrivateUseSchemes::none()
        );
    }

    #[test]
    fn invalid_or_web_schemes_are_refused() {
        use SchemeError as E;
        for bad in [
            "",
            "1app",
            "-app",
            "cursor:",
            "cursor://",
            "my app",
            "my_app",
            "caf\u{e9}",
        ] {
            assert_eq!(
                PrivateUseSchemes::parse([bad]),
                Err(E::Syntax(bad.into())),
                "{bad:?}"
            );
        }
        assert_eq!(
            PrivateUseSchemes::parse(["a".repeat(65)]),
            Err(E::Syntax("a".repeat(65)))
        );
        assert_eq!(
            PrivateUseSchemes::parse(["Cursor"]),
            Err(E::Case("Cursor".into()))
        );
        for web in NOT_PRIVATE_USE {
            assert_eq!(
                PrivateUseSchemes::parse(["cursor", web]),
                Err(E::NotPrivateUse((*web).into())),
                "{web}"
            );
        }
        assert!(E::NotPrivateUse("https".into())
            .to_string()
            .contains("\"https\""));
    }
}
