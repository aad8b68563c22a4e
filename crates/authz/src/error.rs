//! The error type of the authorization-server logic. Each variant knows its RFC error code; the HTTP layer maps
//! it to a status, body and headers in one place.

use crate::store::StoreError;
use portcullis_proto::ErrorCode;

/// Everything that can go wrong in the logic. Descriptions are safe to send to the client (no secrets, no
/// internals); [`AuthzError::Internal`] carries details meant for the log only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthzError {
    /// RFC 6749 §5.2 `invalid_request`.
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// RFC 6749 §5.2 `invalid_client`.
    #[error("invalid_client: {0}")]
    InvalidClient(String),
    /// RFC 6749 §5.2 `invalid_grant`.
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    /// RFC 6749 §5.2 `unauthorized_client`.
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(String),
    /// RFC 6749 §5.2 `unsupported_grant_type`.
    #[error("unsupported_grant_type: {0}")]
    UnsupportedGrantType(String),
    /// RFC 6749 §4.1.2.1 `unsupported_response_type`.
    #[error("unsupported_response_type: {0}")]
    UnsupportedResponseType(String),
    /// RFC 6749 §5.2 `invalid_scope`.
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
    /// RFC 6749 §4.1.2.1 `access_denied`.
    #[error("access_denied: {0}")]
    AccessDenied(String),
    /// RFC 8707 §2 `invalid_target`.
    #[error("invalid_target: {0}")]
    InvalidTarget(String),
    /// RFC 7591 §3.2.2 `invalid_redirect_uri`.
    #[error("invalid_redirect_uri: {0}")]
    InvalidRedirectUri(String),
    /// RFC 7591 §3.2.2 `invalid_client_metadata`.
    #[error("invalid_client_metadata: {0}")]
    InvalidClientMetadata(String),
    /// RFC 7009 §2.2.1 `unsupported_token_type`.
    #[error("unsupported_token_type: {0}")]
    UnsupportedTokenType(String),
    /// Login failed: unknown user or wrong password (one variant, so the two cannot be told apart).
    #[error("invalid username or password")]
    BadCredentials,
    /// Storage is down or too slow: `temporarily_unavailable` (never `invalid_grant`, so clients keep their
    /// credentials).
    #[error("temporarily_unavailable")]
    TemporarilyUnavailable,
    /// A bug or an unexpected storage failure; the text is for the log, never for the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AuthzError {
    /// The RFC error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidRequest(_) => ErrorCode::InvalidRequest,
            Self::InvalidClient(_) => ErrorCode::InvalidClient,
            Self::InvalidGrant(_) => ErrorCode::InvalidGrant,
            Self::UnauthorizedClient(_) => ErrorCode::UnauthorizedClient,
            Self::UnsupportedGrantType(_) => ErrorCode::UnsupportedGrantType,
            Self::UnsupportedResponseType(_) => ErrorCode::UnsupportedResponseType,
            Self::InvalidScope(_) => ErrorCode::InvalidScope,
            Self::AccessDenied(_) | Self::BadCredentials => ErrorCode::AccessDenied,
            Self::InvalidTarget(_) => ErrorCode::InvalidTarget,
            Self::InvalidRedirectUri(_) => ErrorCode::InvalidRedirectUri,
            Self::InvalidClientMetadata(_) => ErrorCode::InvalidClientMetadata,
            Self::UnsupportedTokenType(_) => ErrorCode::UnsupportedTokenType,
            Self::TemporarilyUnavailable => ErrorCode::TemporarilyUnavailable,
            Self::Internal(_) => ErrorCode::ServerError,
        }
    }

    /// The description safe to show the client.
    pub fn description(&self) -> String {
        match self {
            Self::InvalidRequest(d)
            | Self::InvalidClient(d)
            | Self::InvalidGrant(d)
            | Self::UnauthorizedClient(d)
            | Self::UnsupportedGrantType(d)
            | Self::UnsupportedResponseType(d)
            | Self::InvalidScope(d)
            | Self::AccessDenied(d)
            | Self::InvalidTarget(d)
            | Self::InvalidRedirectUri(d)
            | Self::InvalidClientMetadata(d)
            | Self::UnsupportedTokenType(d) => d.clone(),
            Self::BadCredentials => "invalid username or password".into(),
            Self::TemporarilyUnavailable => {
                "the server is temporarily unavailable; retry later".into()
            }
            Self::Internal(_) => "internal server error".into(),
        }
    }
}

impl From<StoreError> for AuthzError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Self::TemporarilyUnavailable,
            StoreError::Conflict(what) => Self::Internal(format!("unexpected conflict: {what}")),
            StoreError::Corrupt(what) | StoreError::Other(what) => Self::Internal(what),
        }
    }
}
