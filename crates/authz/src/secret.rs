//! Secrets: a newtype whose `Debug` never prints the value, and the hash under which tokens are stored.

use portcullis_proto::b64;
use sha2::{Digest, Sha256};
use std::fmt;

/// A secret string (token, code, password, client secret). `Debug` prints `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Call only where it is sent to its owner or hashed.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash under which this secret is stored.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// SHA-256 of a high-entropy token, base64url. Codes, refresh tokens, session ids and client secrets are stored
/// only in this form (RFC 9700 §4.14.2 for refresh tokens; the security notes ask it of all of them). A fast hash
/// is right here: the inputs carry 256 bits of entropy, so there is nothing to brute-force.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(String);

impl TokenHash {
    /// Hashes a token.
    pub fn of(token: &str) -> Self {
        Self(b64::encode(Sha256::digest(token.as_bytes())))
    }

    /// Wraps a hash read back from storage.
    pub fn from_stored(hash: String) -> Self {
        Self(hash)
    }

    /// The hash text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with another hash.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_hash_is_stable() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(s.hash(), TokenHash::of("hunter2"));
        assert_ne!(s.hash(), TokenHash::of("hunter3"));
        assert!(s.hash().ct_eq(&TokenHash::of("hunter2")));
        assert_eq!(s.hash().as_str().len(), 43);
    }
}
