//! Who an access token names, for display only: `portcullis login` says "as carol (carol@example.com via Corp
//! SSO)" rather than an opaque subject. A Portcullis access token is a JWT (RFC 9068) carrying, besides `sub`, the
//! identity claims of OpenID Connect Core §5.1 (`preferred_username`, `email`) and the identity provider the user
//! signed in through (`idp`, its name, and `idp_name`, its display name). The client does not verify the token (the resource server does): its payload is
//! decoded here only to show a name, never for a decision.

use serde_json::Value;
use std::fmt;

/// The user an access token names, as far as it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    /// `preferred_username` (else `username`, `name`, or at least `sub`).
    pub name: String,
    /// `email` (Portcullis puts only verified addresses there).
    pub email: Option<String>,
    /// The identity provider: its display name (`idp_name`), else its name (`idp`); absent for a password
    /// login.
    pub idp: Option<String>,
}

impl TokenIdentity {
    /// Reads the payload of a JWT access token without checking its signature (display only). `None` when the
    /// token is not a JWT or names nobody.
    pub fn unverified(access_token: &str) -> Option<Self> {
        let payload = access_token.split('.').nth(1)?;
        let claims: Value =
            serde_json::from_slice(&portcullis_proto::b64::decode(payload)?).ok()?;
        let text = |k: &str| {
            claims
                .get(k)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(printable)
        };
        let name = ["preferred_username", "username", "name", "sub"]
            .iter()
            .find_map(|k| text(k))?;
        Some(Self {
            name,
            email: text("email"),
            idp: text("idp_name").or_else(|| text("idp")),
        })
    }
}

/// `carol (carol@example.com via Corp SSO)`, `carol (carol@example.com)`, `carol (via corp)` or `alice`.
impl fmt::Display for TokenIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        match (&self.email, &self.idp) {
            (Some(email), Some(idp)) => write!(f, " ({email} via {idp})"),
            (Some(email), None) => write!(f, " ({email})"),
            (None, Some(idp)) => write!(f, " (via {idp})"),
            (None, None) => Ok(()),
        }
    }
}

/// The claim with control characters replaced: an unverified token must not drive the terminal (escape
/// sequences), and a name is one line.
fn printable(v: &str) -> String {
    v.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use portcullis_proto::b64;

    fn token(claims: Value) -> String {
        format!(
            "eyJhbGciOiJFUzI1NiJ9.{}.c2ln",
            b64::encode(claims.to_string())
        )
    }

    #[test]
    fn a_federated_user_is_named_with_email_and_provider() {
        let t = token(
            serde_json::json!({"sub": "u-1", "preferred_username": "carol",
            "email": "carol@example.com", "idp": "corp", "idp_name": "Corp SSO"}),
        );
        let who = TokenIdentity::unverified(&t).unwrap();
        assert_eq!(who.to_string(), "carol (carol@example.com via Corp SSO)");
    }

    #[test]
    fn a_password_user_is_named_alone_and_partial_identities_read_well() {
        let t = token(serde_json::json!({"sub": "u-1", "preferred_username": "alice"}));
        assert_eq!(TokenIdentity::unverified(&t).unwrap().to_string(), "alice");
        let t = token(serde_json::json!({"sub": "u-1", "preferred_username": "bob", "idp": "gh"}));
        assert_eq!(
            TokenIdentity::unverified(&t).unwrap().to_string(),
            "bob (via gh)"
        );
        let t = token(serde_json::json!({"sub": "u-1", "email": "e@example.com"}));
        assert_eq!(
            TokenIdentity::unverified(&t).unwrap().to_string(),
            "u-1 (e@example.com)"
        );
    }

    #[test]
    fn opaque_tokens_name_nobody_and_control_characters_are_replaced() {
        assert_eq!(TokenIdentity::unverified("opaque-token"), None);
        assert_eq!(TokenIdentity::unverified("a.!!!.c"), None);
        assert_eq!(
            TokenIdentity::unverified(&token(serde_json::json!({}))),
            None
        );
        let t = token(serde_json::json!({"preferred_username": "eve\u{1b}[2J", "idp": "x\ny"}));
        assert_eq!(
            TokenIdentity::unverified(&t).unwrap().to_string(),
            "eve\u{FFFD}[2J (via x\u{FFFD}y)"
        );
    }
}
