//! The one place errors become HTTP responses: status code, RFC error body (RFC 6749 §5.2, RFC 7591 §3.2.2,
//! RFC 6750 §3), `WWW-Authenticate`, `Retry-After` and `Cache-Control: no-store`. Internal details go to the
//! log, never into a body.

use crate::pages;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_authz::token::TokenError;
use portcullis_authz::AuthzError;
use portcullis_proto::www_authenticate::BearerChallenge;
use portcullis_proto::{ErrorCode, ErrorResponse};

/// Seconds a client is told to wait when storage is unavailable.
pub const RETRY_AFTER_SECS: &str = "5";

/// A JSON error body with `Cache-Control: no-store`.
pub fn json_error(status: StatusCode, code: &str, description: &str) -> Response {
    let body = ErrorResponse {
        error: code.to_owned(),
        error_description: Some(description.to_owned()),
    };
    let mut resp = (status, axum::Json(body)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
    resp
}

/// 429 `temporarily_unavailable` with `Retry-After: wait` (at least 1): the address failed client
/// authentication, code or refresh-token guesses too often (`/token` and `/introspect` share the limit).
pub fn too_many_token_failures(wait: i64) -> Response {
    let mut resp = json_error(
        StatusCode::TOO_MANY_REQUESTS,
        "temporarily_unavailable",
        "too many failed token requests from this address; retry later",
    );
    if let Ok(v) = HeaderValue::from_str(&wait.max(1).to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// An error of the token, revocation or registration endpoints.
#[derive(Debug)]
pub struct OAuthError {
    /// The error.
    pub error: EndpointError,
    /// The client tried HTTP Basic: a failed client authentication answers with a `Basic` challenge
    /// (RFC 6749 §5.2).
    pub basic: bool,
}

/// What went wrong at an OAuth endpoint: a logic error, or a token endpoint's refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointError {
    /// From the logic shared by the endpoints (client authentication, registration, revocation, storage).
    Authz(AuthzError),
    /// From a grant of the token endpoint.
    Token(TokenError),
}

impl EndpointError {
    /// The logic error underneath, if it is one (a token endpoint's shared failures are).
    fn as_authz(&self) -> Option<&AuthzError> {
        match self {
            Self::Authz(e) => Some(e),
            Self::Token(e) => e.as_authz(),
        }
    }

    /// The RFC error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Authz(e) => e.code(),
            Self::Token(e) => e.code(),
        }
    }

    /// The description safe to show the client.
    pub fn description(&self) -> String {
        match self {
            Self::Authz(e) => e.description(),
            Self::Token(e) => e.description(),
        }
    }

    /// The HTTP status: a grant's own refusals are all 400 (RFC 6749 §5.2).
    pub fn status(&self) -> StatusCode {
        self.as_authz().map_or(StatusCode::BAD_REQUEST, status_of)
    }
}

impl From<AuthzError> for EndpointError {
    fn from(e: AuthzError) -> Self {
        Self::Authz(e)
    }
}

impl From<TokenError> for EndpointError {
    fn from(e: TokenError) -> Self {
        Self::Token(e)
    }
}

impl OAuthError {
    /// An error; `basic` says whether the client tried HTTP Basic.
    pub fn new(error: impl Into<EndpointError>, basic: bool) -> Self {
        Self {
            error: error.into(),
            basic,
        }
    }
}

impl From<AuthzError> for OAuthError {
    fn from(error: AuthzError) -> Self {
        Self::new(error, false)
    }
}

impl From<TokenError> for OAuthError {
    fn from(error: TokenError) -> Self {
        Self::new(error, false)
    }
}

/// The status for an error code.
pub fn status_of(e: &AuthzError) -> StatusCode {
    match e {
        AuthzError::InvalidClient(_) => StatusCode::UNAUTHORIZED,
        AuthzError::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        AuthzError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        AuthzError::AccessDenied(_) | AuthzError::BadCredentials => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Logs what must be logged about an error (internal details, unavailability).
pub fn log(e: &AuthzError) {
    match e {
        AuthzError::Internal(detail) => tracing::error!(%detail, "internal error"),
        AuthzError::TemporarilyUnavailable => {
            tracing::warn!("storage or a client metadata document fetch unavailable; answering 503")
        }
        _ => {}
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        if let Some(e) = self.error.as_authz() {
            log(e);
        }
        let status = self.error.status();
        let mut resp = json_error(
            status,
            self.error.code().as_str(),
            &self.error.description(),
        );
        if status == StatusCode::UNAUTHORIZED && self.basic {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"portcullis\""),
            );
        }
        resp
    }
}

/// A 401/403 from the bearer guard (RFC 6750 §3, RFC 9728 §5.1).
pub fn bearer_error(
    status: StatusCode,
    challenge: &BearerChallenge,
    description: &str,
) -> Response {
    let code = challenge.error.as_deref().unwrap_or("invalid_token");
    let mut resp = json_error(status, code, description);
    if let Ok(v) = HeaderValue::from_str(&challenge.to_header_value()) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// An HTML error page for the browser-facing endpoints.
pub fn page_error(e: &AuthzError, stylesheet: &str) -> Response {
    log(e);
    let status = status_of(e);
    let status = if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    let mut resp = pages::error_page(status, e.code().as_str(), &e.description(), stylesheet);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
    resp
}

/// 404 for unknown paths.
pub async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// 405 for a known path with the wrong method.
pub async fn method_not_allowed() -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        "method not allowed on this endpoint",
    )
}
