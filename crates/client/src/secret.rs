//! Secret values. Each is a newtype whose `Debug` prints `[redacted]`, so a secret never reaches a log through
//! `{:?}`; the text is read only through `expose()`, where it is sent on the wire or stored.

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

            /// The secret text, for the wire or the cache file only.
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
    /// An access token (RFC 6749 §1.4).
    AccessToken
);
// The secrets the authorization server sees too are the protocol's own types.
pub use portcullis_proto::secret::{AuthorizationCode, ClientSecret, RefreshToken};

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn debug_is_redacted() {
        assert_eq!(
            format!("{:?}", AccessToken::new("at-123")),
            "AccessToken([redacted])"
        );
        assert_eq!(
            format!("{:?}", Some(ClientSecret::new("s"))),
            "Some(ClientSecret([redacted]))"
        );
        assert_eq!(
            serde_json::to_string(&RefreshToken::new("rt")).unwrap(),
            "\"rt\""
        );
    }
}
