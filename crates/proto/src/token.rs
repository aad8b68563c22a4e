//! Token endpoint responses (RFC 6749 §5.1) and revocation hints (RFC 7009 §2.1).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A successful token response (RFC 6749 §5.1, OAuth 2.1 §3.2.3).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// RFC 6749 §5.1.
    pub access_token: String,
    /// RFC 6749 §5.1; `Bearer` (RFC 6750), compared case-insensitively by clients.
    pub token_type: String,
    /// RFC 6749 §5.1, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// RFC 6749 §5.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// RFC 6749 §5.1: the granted scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("scope", &self.scope)
            .finish()
    }
}

/// `token_type_hint` values (RFC 7009 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTypeHint {
    /// `access_token`.
    AccessToken,
    /// `refresh_token`.
    RefreshToken,
}

impl TokenTypeHint {
    /// Parses a hint; unknown hints are ignored by the caller (RFC 7009 §2.1: the server MAY ignore the hint).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "access_token" => Some(Self::AccessToken),
            "refresh_token" => Some(Self::RefreshToken),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_tokens() {
        let t = TokenResponse {
            access_token: "secret-at".into(),
            token_type: "Bearer".into(),
            expires_in: Some(3600),
            refresh_token: Some("secret-rt".into()),
            scope: None,
        };
        let d = format!("{t:?}");
        assert!(!d.contains("secret"));
        assert_eq!(
            TokenTypeHint::parse("refresh_token"),
            Some(TokenTypeHint::RefreshToken)
        );
        assert_eq!(TokenTypeHint::parse("id_token"), None);
    }
}
