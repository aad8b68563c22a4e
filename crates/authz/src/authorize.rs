//! The authorization endpoint's logic (RFC 6749 §4.1.1–4.1.2, OAuth 2.1 §4.1, RFC 7636, RFC 8707, RFC 9207).
//!
//! Checking happens in two stages, because the stage decides how an error reaches the user:
//! 1. `client_id` and `redirect_uri`: an error here is shown on a page and **never** redirected (RFC 6749
//!    §4.1.2.1, RFC 9700 §4.11), otherwise the server would be an open redirector.
//! 2. Everything else: an error is sent to the (now trusted) redirect URI — but only after the user has logged
//!    in (security notes), which the HTTP layer arranges.
//!
//! This module holds the request's types and rules; [`crate::authorizations::Authorizations`] is the service that
//! runs them (with the client lookup, consent and code issuing).

use crate::error::AuthzError;
use crate::registration::RegisteredClient;
use portcullis_proto::{CodeChallenge, Scope};
use std::collections::HashSet;
use url::Url;

/// Longest query string considered.
pub const MAX_QUERY_LEN: usize = 8192;
/// Longest `state` accepted.
pub const MAX_STATE_LEN: usize = 1024;

/// A checked authorization request.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// The client.
    pub client: RegisteredClient,
    /// The redirect URI to answer to (as sent, or the only registered one).
    pub redirect_uri: String,
    /// Whether `redirect_uri` was sent (then the token request must repeat it, RFC 6749 §4.1.3).
    pub redirect_uri_sent: bool,
    /// `state`, echoed byte for byte.
    pub state: Option<String>,
    /// The scope that will be granted.
    pub scope: Scope,
    /// Requested scopes the server does not know (ignored, RFC 6749 §3.3; shown on the consent page).
    pub ignored_scope: Scope,
    /// The PKCE challenge.
    pub code_challenge: CodeChallenge,
    /// The audience of the tokens (RFC 8707).
    pub resource: String,
}

/// How an authorization request failed.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthorizeError {
    /// Show an error page; never redirect.
    Page(AuthzError),
    /// Tell the client through its redirect URI (once the user is authenticated, and only if that user has
    /// approved the client before: [`crate::authorizations::Authorizations::may_redirect_error`]).
    Redirect {
        /// The client the request names.
        client_id: String,
        /// Where to.
        redirect_uri: String,
        /// `state` to echo.
        state: Option<String>,
        /// The error.
        error: AuthzError,
    },
}

impl From<AuthzError> for AuthorizeError {
    fn from(e: AuthzError) -> Self {
        Self::Page(e)
    }
}

/// Appends query parameters to a redirect URI (RFC 6749 §4.1.2: keep the URI's own query).
pub fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    match Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            url.into()
        }
        // Redirect URIs are parsed at registration; this cannot happen for a stored one.
        Err(_) => redirect_uri.to_owned(),
    }
}

impl AuthorizeError {
    /// The redirect location for a `Redirect` error, with `iss` (RFC 9207 §2).
    pub fn location(&self, issuer: &str) -> Option<String> {
        match self {
            Self::Page(_) => None,
            Self::Redirect {
                redirect_uri,
                state,
                error,
                ..
            } => {
                let desc = error.description();
                let mut p = vec![
                    ("error", error.code().as_str()),
                    ("error_description", desc.as_str()),
                ];
                if let Some(s) = state {
                    p.push(("state", s));
                }
                p.push(("iss", issuer));
                Some(redirect_with(redirect_uri, &p))
            }
        }
    }
}

/// Splits a query string into pairs, refusing repeated parameters (RFC 6749 §3.1: parameters MUST NOT be
/// included more than once). Returns the name of the first repeated one as the error.
pub fn parse_query(query: &str) -> Result<Vec<(String, String)>, String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if !seen.insert(k.clone()) {
            return Err(k.into_owned());
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

/// `response_type=code` (the only one, RFC 6749 §4.1.1) and, if given, `response_mode=query`.
pub(crate) fn check_response_type_and_mode(params: &[(String, String)]) -> Result<(), AuthzError> {
    match get(params, "response_type") {
        Some("code") => {}
        None => {
            return Err(AuthzError::InvalidRequest(
                "response_type is required".into(),
            ))
        }
        Some(_) => {
            return Err(AuthzError::UnsupportedResponseType(
                "only response_type=code is supported".into(),
            ))
        }
    }
    if let Some(mode) = get(params, "response_mode") {
        if mode != "query" {
            return Err(AuthzError::InvalidRequest(
                "only response_mode=query is supported".into(),
            ));
        }
    }
    Ok(())
}

/// The PKCE challenge, required, S256 only (RFC 7636 §4.3, OAuth 2.1 §4.1.1).
pub(crate) fn code_challenge(params: &[(String, String)]) -> Result<CodeChallenge, AuthzError> {
    match get(params, "code_challenge") {
        None => Err(AuthzError::InvalidRequest(
            "code_challenge is required (PKCE, S256)".into(),
        )),
        Some(c) => CodeChallenge::parse(c, get(params, "code_challenge_method"))
            .map_err(|e| AuthzError::InvalidRequest(format!("code_challenge: {e}"))),
    }
}

/// The value of parameter `name`, if present.
pub(crate) fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_echoed_byte_for_byte() {
        let loc = redirect_with("http://localhost/cb?x=1", &[("state", "a b&c=d/é")]);
        let url = Url::parse(&loc).unwrap();
        let pairs: Vec<_> = url.query_pairs().collect();
        assert_eq!(pairs[0], ("x".into(), "1".into()));
        assert_eq!(pairs[1], ("state".into(), "a b&c=d/é".into()));
    }
}
