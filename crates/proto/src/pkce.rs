//! Proof Key for Code Exchange (RFC 7636), S256 only (OAuth 2.1 §4.1.1, RFC 9700 §2.1.1).

use crate::b64;
use sha2::{Digest, Sha256};
use std::fmt;

/// A `code_verifier`: 43 to 128 characters of `[A-Za-z0-9-._~]` (RFC 7636 §4.1).
#[derive(Clone, PartialEq, Eq)]
pub struct CodeVerifier(String);

/// Why a PKCE value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PkceError {
    /// Shorter than 43 or longer than 128 characters.
    #[error("must be 43 to 128 characters long")]
    Length,
    /// A character outside the unreserved set.
    #[error("contains a character outside [A-Za-z0-9-._~]")]
    Charset,
    /// A `code_challenge_method` other than `S256`.
    #[error("only the S256 code_challenge_method is supported")]
    Method,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

impl CodeVerifier {
    /// Parses a verifier (RFC 7636 §4.1).
    pub fn parse(text: &str) -> Result<Self, PkceError> {
        if !(43..=128).contains(&text.len()) {
            return Err(PkceError::Length);
        }
        if !text.bytes().all(is_unreserved) {
            return Err(PkceError::Charset);
        }
        Ok(Self(text.to_owned()))
    }

    /// Builds a verifier from 32 random bytes (RFC 7636 §4.1 recommends 32 octets, base64url-encoded).
    pub fn from_random(bytes: [u8; 32]) -> Self {
        Self(b64::encode(bytes))
    }

    /// The verifier text, to send in the token request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CodeVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeVerifier([redacted])")
    }
}

/// An S256 `code_challenge`: `BASE64URL(SHA256(verifier))`, always 43 characters (RFC 7636 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// Parses a challenge sent with `code_challenge_method` (RFC 7636 §4.3). A missing method means `plain`
    /// (RFC 7636 §4.3), which is refused like any other non-S256 method.
    pub fn parse(challenge: &str, method: Option<&str>) -> Result<Self, PkceError> {
        if method != Some("S256") {
            return Err(PkceError::Method);
        }
        if challenge.len() != 43 {
            return Err(PkceError::Length);
        }
        if !challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(PkceError::Charset);
        }
        Ok(Self(challenge.to_owned()))
    }

    /// The challenge for a verifier (RFC 7636 §4.2, S256).
    pub fn s256(verifier: &CodeVerifier) -> Self {
        Self(b64::encode(Sha256::digest(verifier.0.as_bytes())))
    }

    /// Whether `verifier` hashes to this challenge (RFC 7636 §4.6). The comparison runs in constant time.
    pub fn verify(&self, verifier: &CodeVerifier) -> bool {
        let computed = Self::s256(verifier);
        let (a, b) = (computed.0.as_bytes(), self.0.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The challenge text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B.
    #[test]
    fn rfc7636_appendix_b_vector() {
        let verifier = CodeVerifier::parse("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
        let challenge = CodeChallenge::s256(&verifier);
        assert_eq!(
            challenge.as_str(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let parsed =
            CodeChallenge::parse("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", Some("S256"))
                .unwrap();
        assert!(parsed.verify(&verifier));
        let other = CodeVerifier::parse("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj").unwrap();
        assert!(!parsed.verify(&other));
    }

    #[test]
    fn verifier_syntax() {
        assert_eq!(CodeVerifier::parse("short").unwrap_err(), PkceError::Length);
        assert_eq!(
            CodeVerifier::parse(&"a".repeat(129)).unwrap_err(),
            PkceError::Length
        );
        assert_eq!(
            CodeVerifier::parse(&format!("{}+", "a".repeat(42))).unwrap_err(),
            PkceError::Charset
        );
        assert!(CodeVerifier::parse(&"a~._-".repeat(9)).is_ok());
    }

    #[test]
    fn plain_and_missing_methods_are_refused() {
        let c = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(
            CodeChallenge::parse(c, None).unwrap_err(),
            PkceError::Method
        );
        assert_eq!(
            CodeChallenge::parse(c, Some("plain")).unwrap_err(),
            PkceError::Method
        );
        assert_eq!(
            CodeChallenge::parse(c, Some("s256")).unwrap_err(),
            PkceError::Method
        );
        assert_eq!(
            CodeChallenge::parse("abc", Some("S256")).unwrap_err(),
            PkceError::Length
        );
        assert_eq!(
            CodeChallenge::parse(&format!("{}=", &c[..42]), Some("S256")).unwrap_err(),
            PkceError::Charset
        );
    }

    #[test]
    fn debug_is_redacted() {
        let v = CodeVerifier::from_random([7; 32]);
        assert_eq!(format!("{v:?}"), "CodeVerifier([redacted])");
    }
}
