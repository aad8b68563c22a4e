//! Secret values of the protocol: each a newtype whose `Debug` prints `[redacted]`, so a secret never reaches a
//! log through `{:?}`. The text is read only through `expose()`, where it is sent to its owner or hashed.
//! [`CodeVerifier`](crate::CodeVerifier) is one too, with the RFC 7636 syntax rules (`pkce`).

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! secret {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret text. Call only where it is sent to its owner, stored by its owner, or hashed.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

secret!(
    /// An authorization code (RFC 6749 §1.3.1, §4.1.2).
    AuthorizationCode
);
secret!(
    /// A refresh token (RFC 6749 §1.5).
    RefreshToken
);
secret!(
    /// A client secret (RFC 6749 §2.3.1).
    ClientSecret
);
secret!(
    /// An access token (RFC 6749 §1.4), as its client holds it.
    AccessToken
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        assert_eq!(
            format!("{:?}", AuthorizationCode::new("c0de")),
            "AuthorizationCode([redacted])"
        );
        assert_eq!(
            format!("{:?}", RefreshToken::new("rt")),
            "RefreshToken([redacted])"
        );
        assert_eq!(
            format!("{:?}", ClientSecret::new("s3cret")),
            "ClientSecret([redacted])"
        );
        assert_eq!(ClientSecret::new("s3cret").expose(), "s3cret");
    }
}
