//! The pages a sign-in through an identity provider ends on when it cannot go on: what went wrong in words,
//! the status, and links back (to the sign-in page, to the application). Never a session cookie; never a
//! token, code or provider secret on the page or in the log line.

use crate::outbound::idp::IdpError;
use crate::pages::{escape, page};
use crate::state::AppState;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use portcullis_authz::federation::FederationError;

/// Why a sign-in stopped, as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The HTTP status.
    pub status: StatusCode,
    /// A short stable code (logs, the page's small print).
    pub code: &'static str,
    /// The heading.
    pub title: String,
    /// The explanation (untrusted provider text is escaped when rendered).
    pub message: String,
}

impl Failure {
    /// A failure with these parts.
    pub fn new(status: StatusCode, code: &'static str, title: &str, message: &str) -> Self {
        Self {
            status,
            code,
            title: title.to_owned(),
            message: message.to_owned(),
        }
    }

    /// The callback's `state` is not this browser's pending sign-in (missing or other cookie).
    pub fn not_this_browser() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "state_mismatch",
            "This sign-in did not start in this browser",
            "The identity provider sent back a sign-in this browser did not start, or it took longer than 10 \
             minutes. Start again from the application.",
        )
    }

    /// The pending sign-in was already used (a replayed callback) or expired.
    pub fn used_or_expired() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "state_used",
            "This sign-in has already been used",
            "This sign-in response was already used, or it expired. Start again from the application.",
        )
    }

    /// No identity provider called `name`.
    pub fn unknown_provider(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "unknown_provider",
            "Unknown identity provider",
            &format!("There is no identity provider called {name} here."),
        )
    }

    /// A refusal found by the protocol checks (`authz::federation`), at `provider` (its display name).
    pub fn from_federation(e: &FederationError, provider: &str) -> Self {
        let text = e.to_string();
        match e {
            FederationError::AccessDenied { .. } => Self::new(
                StatusCode::FORBIDDEN,
                e.code(),
                &format!("Sign-in at {provider} was cancelled"),
                &format!("{provider} says the sign-in was cancelled or refused. You can try again, or go back to the application."),
            ),
            FederationError::InteractionRequired { .. } => {
                Self::new(StatusCode::FORBIDDEN, e.code(), &format!("Sign-in at {provider} did not finish"), &text)
            }
            _ if e.is_policy() => Self::new(
                StatusCode::FORBIDDEN,
                e.code(),
                "You cannot sign in here with this account",
                &format!("{text}. Ask your administrator, or use another account."),
            ),
            _ if e.is_temporary() => Self::unavailable(provider, e.code()),
            FederationError::Metadata { .. }
            | FederationError::Jwks(_)
            | FederationError::TokenResponse(_)
            | FederationError::Upstream { .. }
            | FederationError::Config { .. } => Self::new(
                StatusCode::BAD_GATEWAY,
                e.code(),
                &format!("{provider} answered in a way Portcullis cannot use"),
                &text,
            ),
            _ => Self::new(
                StatusCode::BAD_REQUEST,
                e.code(),
                &format!("The answer from {provider} was refused"),
                &format!("{text}. Start again from the application."),
            ),
        }
    }

    /// A failed call to the provider (`outbound::idp`).
    pub fn from_idp(e: &IdpError, provider: &str) -> Self {
        match e {
            IdpError::Validation(inner) => Self::from_federation(inner, provider),
            _ if e.is_unavailable() => Self::unavailable(provider, e.code()),
            _ => Self::new(
                StatusCode::BAD_GATEWAY,
                e.code(),
                &format!("{provider} answered in a way Portcullis cannot use"),
                &e.to_string(),
            ),
        }
    }

    /// The provider is down or slow: 503 with `Retry-After`.
    pub fn unavailable(provider: &str, code: &'static str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code,
            &format!("{provider} is unavailable"),
            &format!("{provider} cannot be reached right now, or did not answer in time. Try again in a few minutes."),
        )
    }

    /// The page, with `links` (label, href) under the explanation. Logged once (`code` and the provider only).
    pub fn render(&self, s: &AppState, provider: &str, links: &[(&str, String)]) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(
                provider,
                code = self.code,
                status = self.status.as_u16(),
                "upstream sign-in failed"
            );
        } else {
            tracing::info!(
                provider,
                code = self.code,
                status = self.status.as_u16(),
                "upstream sign-in refused"
            );
        }
        let links: String = links
            .iter()
            .map(|(label, href)| {
                format!("<p><a href=\"{}\">{}</a></p>", escape(href), escape(label))
            })
            .collect();
        let body = format!(
            "<h1>{}</h1><div class=\"error\" role=\"alert\">{}</div>{links}\
             <p class=\"muted\">Error code: <code>{}</code>.</p>",
            escape(&self.title),
            escape(&self.message),
            escape(self.code),
        );
        let mut resp = page(
            self.status,
            &self.title,
            &body,
            &s.routes.stylesheet,
            "'none'",
        );
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        }
        resp
    }
}
