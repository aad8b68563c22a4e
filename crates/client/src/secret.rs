//! Secret values. Each is a newtype whose `Debug` prints `[redacted]`, so a secret never reaches a log through
//! `{:?}`; the text is read only through `expose()`, where it is sent on the wire or stored. They are the
//! protocol's own types (`portcullis_proto::secret`), shared with the authorization server.

pub use portcullis_proto::secret::{AccessToken, AuthorizationCode, ClientSecret, RefreshToken};

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
