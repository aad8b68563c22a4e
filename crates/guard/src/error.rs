//! The guard's two error types: [`ConfigError`] for settings refused at start-up, [`JwksError`] for a JWKS that
//! could not be fetched or read. Per-request refusals are [`crate::Refusal`].

/// A setting refused by [`crate::GuardConfig`] or [`crate::Guard::new`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not an absolute https URL (or http on a loopback host), or it has a fragment (or, for the issuer, a query).
    #[error("{what} {value:?} must be an absolute https URL (http only on a loopback host) without a fragment{extra}")]
    Url {
        /// Which setting.
        what: &'static str,
        /// The value given.
        value: String,
        /// What else is refused for this setting.
        extra: &'static str,
    },
    /// Not an RFC 6749 §3.3 scope token.
    #[error("scope {0:?} is not a valid scope token")]
    Scope(String),
    /// A duration or size out of range.
    #[error("{0}")]
    Range(&'static str),
    /// The HTTP client could not be built (TLS back end).
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// Why the issuer's keys could not be obtained. The guard answers 503 while it holds no keys at all; once it
/// has keys it keeps using them when a refresh fails (and logs the failure).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// Connecting, sending or reading failed (includes timeouts).
    #[error("request to {url} failed: {reason}")]
    Http {
        /// The URL fetched.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The answer was not 200.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL fetched.
        url: String,
        /// The status.
        status: u16,
    },
    /// The body exceeded the size limit.
    #[error("{0} sent more than the size limit")]
    TooLarge(String),
    /// Not the JSON document expected.
    #[error("{url} is not a valid {what}: {reason}")]
    Document {
        /// The URL fetched.
        url: String,
        /// `JWK Set` or `authorization server metadata`.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// RFC 8414 §3.3: the metadata's `issuer` differs from the configured issuer.
    #[error("the metadata at {url} names issuer {found:?}, not the configured {expected:?}")]
    IssuerMismatch {
        /// The metadata URL.
        url: String,
        /// The configured issuer.
        expected: String,
        /// What the document says.
        found: String,
    },
    /// The issuer's metadata has no usable `jwks_uri`.
    #[error("the issuer's metadata has no usable jwks_uri ({0})")]
    NoJwksUri(String),
    /// The set holds no P-256 signing key.
    #[error("the JWK Set at {0} holds no usable ES256 key")]
    NoUsableKeys(String),
    /// A fetch was due but the rate limit (`unknown_kid_interval`) allows none yet, and no keys are held.
    #[error("no keys yet and the last fetch failed: {0}")]
    NotYet(String),
}
