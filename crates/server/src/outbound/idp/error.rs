//! [`IdpError`]: the one error enum of the identity-provider HTTP adapter.
//!
//! No variant ever holds a token, code, verifier, assertion or client secret: transport errors are reduced to the
//! endpoint's host, and the only provider-supplied text kept (an OAuth `error` / `error_description`, RFC 6749
//! §5.2) is trimmed to printable characters and a bounded length ([`sanitize`]). Pages must still escape it.

use portcullis_authz::federation::FederationError;

/// Longest provider-supplied text kept in an error (characters).
pub const MAX_PROVIDER_TEXT: usize = 200;

/// Why a call to an upstream identity provider failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdpError {
    /// No connection could be made (DNS, refused, TLS, reset). The sign-in page says the provider is down; the
    /// log gets a 503-class line ([`IdpError::is_unavailable`]).
    #[error("the identity provider at {host} cannot be reached")]
    Unreachable {
        /// The host (never the full URL).
        host: String,
    },
    /// No complete answer within the connect or whole-request timeout.
    #[error("the identity provider at {host} did not answer in time")]
    Timeout {
        /// The host (never the full URL).
        host: String,
    },
    /// The provider answered, but not with what the protocol asks: an unexpected status (including any
    /// redirect, which is never followed), a content type other than JSON, or a body that does not parse.
    #[error("the identity provider answered HTTP {status}: {reason}")]
    BadResponse {
        /// The HTTP status (0 when the status was fine but the body was not).
        status: u16,
        /// What was wrong, in a few words.
        reason: String,
    },
    /// An OAuth error response (RFC 6749 §5.2; RFC 6750 §3.1 for userinfo's `WWW-Authenticate`).
    #[error("the identity provider refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Upstream {
        /// The `error` code (`invalid_grant`, `invalid_client`, …), sanitized.
        error: String,
        /// The `error_description`, sanitized, when given.
        description: Option<String>,
    },
    /// The response body passed the size cap.
    #[error("the identity provider's response is larger than {limit} bytes")]
    TooLarge {
        /// The cap, bytes.
        limit: usize,
    },
    /// An endpoint this adapter will not call: not `https` (plain `http` is allowed only for a loopback host),
    /// or no host.
    #[error("refusing to call {endpoint}: {reason}")]
    Insecure {
        /// The endpoint's scheme and host (no path or query).
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// What the provider sent was refused by the protocol rules (discovery document, JWKS, token response,
    /// ID token).
    #[error(transparent)]
    Validation(FederationError),
}

impl From<FederationError> for IdpError {
    /// The provider's own OAuth error (which `authz` finds in a token response) becomes
    /// [`IdpError::Upstream`], so [`IdpError::is_invalid_grant`] sees it; everything else is a validation failure.
    fn from(e: FederationError) -> Self {
        match e {
            FederationError::Upstream { code, description } => Self::Upstream {
                error: sanitize(&code),
                description: description.as_deref().map(sanitize),
            },
            other => Self::Validation(other),
        }
    }
}

impl IdpError {
    /// The provider is down or slow: unreachable, timed out, answering with a 5xx status, or saying so
    /// (`temporarily_unavailable`, `server_error`). The sign-in page says the provider is having trouble; the
    /// log gets a 503.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Timeout { .. } => true,
            Self::BadResponse { status, .. } => *status >= 500,
            Self::Upstream { error, .. } => {
                error == "temporarily_unavailable" || error == "server_error"
            }
            _ => false,
        }
    }

    /// The provider refused a grant with `invalid_grant` (RFC 6749 §5.2): the code or refresh token is no longer
    /// honoured (deprovisioned user, revoked session, replayed code).
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, Self::Upstream { error, .. } if error == "invalid_grant")
    }

    /// A short stable code for logs and page templates.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "idp_unreachable",
            Self::Timeout { .. } => "idp_timeout",
            Self::BadResponse { .. } => "idp_bad_response",
            Self::Upstream { .. } => "idp_error",
            Self::TooLarge { .. } => "idp_response_too_large",
            Self::Insecure { .. } => "idp_insecure_endpoint",
            Self::Validation(e) => e.code(),
        }
    }
}

/// Provider-supplied text made safe to keep: control characters dropped, at most [`MAX_PROVIDER_TEXT`]
/// characters (RFC 6749 §5.2 allows only %x20-21 / %x23-5B / %x5D-7E in these fields anyway).
pub fn sanitize(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_PROVIDER_TEXT)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_and_codes() {
        let grant = IdpError::Upstream {
            error: "invalid_grant".into(),
            description: Some("expired".into()),
        };
        assert!(grant.is_invalid_grant());
        assert!(!grant.is_unavailable());
        assert_eq!(
            grant.to_string(),
            "the identity provider refused: invalid_grant (expired)"
        );
        let busy = IdpError::Upstream {
            error: "temporarily_unavailable".into(),
            description: None,
        };
        assert!(busy.is_unavailable());
        let down = IdpError::Timeout { host: "idp".into() };
        assert!(down.is_unavailable() && !down.is_invalid_grant());
        assert_eq!(down.code(), "idp_timeout");
        assert_eq!(sanitize("a\nb\u{7}c"), "abc");
        assert_eq!(sanitize(&"x".repeat(500)).len(), MAX_PROVIDER_TEXT);
    }
}
