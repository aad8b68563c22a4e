//! The answers to a request the guard refuses (RFC 6750 §3, §3.1; RFC 9728 §5.1; MCP authorization "Error
//! Handling"):
//!
//! | refusal | status | `WWW-Authenticate` |
//! |---|---|---|
//! | no bearer token | 401 | `Bearer scope="…", resource_metadata="…"` (no `error`, RFC 6750 §3.1) |
//! | a bad token, or several `Authorization` headers | 401 | `Bearer error="invalid_token", error_description="…", scope, resource_metadata` |
//! | a good token without the required scope | 403 | `Bearer error="insufficient_scope", error_description, scope="<needed>", resource_metadata` |
//! | the issuer's keys cannot be fetched (none held) | 503 | none; `Retry-After: 5` |
//! | introspection on, and the issuer's endpoint cannot answer | 503 | none; `Retry-After: 5` |
//!
//! Bodies are the RFC 6749 §5.2 JSON error object; every refusal is `Cache-Control: no-store`.

use crate::error::JwksError;
use crate::introspection::IntrospectionError;
use axum::body::Body;
use http::{header, HeaderValue, Response, StatusCode};
use portcullis_authz::access_token::TokenError;
use portcullis_proto::www_authenticate::BearerChallenge;
use portcullis_proto::{ErrorCode, Scope};

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No `Authorization: Bearer` header (a token elsewhere, e.g. the query, is ignored: RFC 6750 §2.1 only).
    #[error("a bearer access token is required")]
    MissingToken,
    /// More than one `Authorization` header.
    #[error("send exactly one Authorization header")]
    SeveralAuthorizationHeaders,
    /// The token failed verification.
    #[error("{0}")]
    InvalidToken(TokenError),
    /// The token lacks scopes this resource requires; holds the scope needed.
    #[error("this request needs scope {0}")]
    InsufficientScope(Scope),
    /// No key of the issuer could be obtained, so no token can be checked.
    #[error("the issuer's keys are unavailable: {0}")]
    KeysUnavailable(JwksError),
    /// Introspection is on and the issuer's endpoint could not say whether the token is active (fails closed).
    #[error("{0}")]
    IntrospectionUnavailable(IntrospectionError),
}

/// The JSON bodies' `error_description` for a 503 (details go to the log, not the client).
const UNAVAILABLE: &str = "the authorization server's keys are unavailable; try again shortly";
/// The same when introspection failed.
const INTROSPECTION_UNAVAILABLE: &str =
    "the authorization server cannot confirm the token now; try again shortly";

impl Refusal {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::SeveralAuthorizationHeaders | Self::InvalidToken(_) => {
                StatusCode::UNAUTHORIZED
            }
            Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::KeysUnavailable(_) | Self::IntrospectionUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The `WWW-Authenticate` challenge, given the resource metadata URL and the scope to advertise.
    pub fn challenge(&self, resource_metadata: &str, scope: &Scope) -> Option<BearerChallenge> {
        let base = BearerChallenge {
            resource_metadata: Some(resource_metadata.to_owned()),
            scope: (!scope.is_empty()).then(|| scope.to_string()),
            ..Default::default()
        };
        match self {
            Self::MissingToken => Some(base),
            Self::SeveralAuthorizationHeaders | Self::InvalidToken(_) => {
                Some(base.with_error(ErrorCode::InvalidToken, self.to_string()))
            }
            Self::InsufficientScope(needed) => {
                let mut c = base.with_error(ErrorCode::InsufficientScope, self.to_string());
                c.scope = Some(needed.to_string());
                Some(c)
            }
            Self::KeysUnavailable(_) | Self::IntrospectionUnavailable(_) => None,
        }
    }

    /// The whole response.
    pub fn to_response(&self, resource_metadata: &str, scope: &Scope) -> Response<Body> {
        let (code, description) = match self {
            Self::MissingToken => (ErrorCode::InvalidToken.as_str(), self.to_string()),
            Self::SeveralAuthorizationHeaders | Self::InvalidToken(_) => {
                (ErrorCode::InvalidToken.as_str(), self.to_string())
            }
            Self::InsufficientScope(_) => (ErrorCode::InsufficientScope.as_str(), self.to_string()),
            Self::KeysUnavailable(e) => {
                tracing::warn!(error = %e, "refusing a request: no JWKS");
                ("temporarily_unavailable", UNAVAILABLE.to_owned())
            }
            Self::IntrospectionUnavailable(e) => {
                tracing::warn!(error = %e, "refusing a request: introspection failed");
                (
                    "temporarily_unavailable",
                    INTROSPECTION_UNAVAILABLE.to_owned(),
                )
            }
        };
        let body = serde_json::json!({"error": code, "error_description": description});
        let mut resp = Response::new(Body::from(body.to_string()));
        *resp.status_mut() = self.status();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(c) = self.challenge(resource_metadata, scope) {
            // The builder drops characters a quoted-string cannot carry, so the value is always valid.
            if let Ok(v) = HeaderValue::from_str(&c.to_header_value()) {
                h.insert(header::WWW_AUTHENTICATE, v);
            }
        }
        if matches!(
            self,
            Self::KeysUnavailable(_) | Self::IntrospectionUnavailable(_)
        ) {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        resp
    }
}
