//! The provider's redirect back to Portcullis (RFC 6749 §4.1.2, §4.1.2.1): [`Callback::parse`] and
//! [`check_callback`], which checks `state` (RFC 6749 §10.12) and the RFC 9207 `iss` parameter (mix-up defence
//! when several providers are configured) before anything in the response is believed.

use super::error::FederationError;
use super::metadata::ProviderMetadata;
use super::request::PendingLogin;
use crate::secret::Secret;
use std::collections::HashSet;

/// Largest callback query looked at.
pub const MAX_CALLBACK_QUERY: usize = 8192;

/// An authorization response, parsed but not yet trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callback {
    /// Success (RFC 6749 §4.1.2).
    Code {
        /// The authorization code.
        code: Secret,
        /// `state`, if sent.
        state: Option<String>,
        /// RFC 9207 `iss`, if sent.
        iss: Option<String>,
    },
    /// An error (RFC 6749 §4.1.2.1, OpenID Connect Core §3.1.2.6).
    Error {
        /// The error code.
        error: String,
        /// `error_description`, untrusted text.
        description: Option<String>,
        /// `state`, if sent.
        state: Option<String>,
        /// RFC 9207 `iss`, if sent.
        iss: Option<String>,
    },
}

impl Callback {
    /// Parses the callback's query string. A parameter sent twice (RFC 6749 §3.1), a response with both `code`
    /// and `error` or with neither, is malformed.
    pub fn parse(query: &str) -> Result<Self, FederationError> {
        if query.len() > MAX_CALLBACK_QUERY {
            return Err(FederationError::MalformedCallback(
                "the response is too long".into(),
            ));
        }
        let mut seen = HashSet::new();
        let (mut code, mut error, mut description, mut state, mut iss) =
            (None, None, None, None, None);
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            if !seen.insert(k.clone()) {
                return Err(FederationError::MalformedCallback(format!(
                    "{k} is repeated"
                )));
            }
            let slot = match k.as_ref() {
                "code" => &mut code,
                "error" => &mut error,
                "error_description" => &mut description,
                "state" => &mut state,
                "iss" => &mut iss,
                _ => continue,
            };
            *slot = Some(v.into_owned());
        }
        match (code, error) {
            (Some(code), None) if !code.is_empty() => Ok(Self::Code {
                code: Secret::new(code),
                state,
                iss,
            }),
            (None, Some(error)) if !error.is_empty() => Ok(Self::Error {
                error,
                description,
                state,
                iss,
            }),
            (Some(_), Some(_)) => Err(FederationError::MalformedCallback(
                "both a code and an error".into(),
            )),
            _ => Err(FederationError::MalformedCallback(
                "neither a code nor an error".into(),
            )),
        }
    }

    fn state(&self) -> Option<&str> {
        match self {
            Self::Code { state, .. } | Self::Error { state, .. } => state.as_deref(),
        }
    }

    fn iss(&self) -> Option<&str> {
        match self {
            Self::Code { iss, .. } | Self::Error { iss, .. } => iss.as_deref(),
        }
    }
}

/// Checks a callback against the sign-in it claims to finish and returns the code to exchange.
///
/// 1. `state` must equal the pending login's (constant-time; RFC 6749 §10.12). The caller found the pending
///    login by the hash of the browser's cookie, so this also checks that the response's `state` is the
///    cookie's.
/// 2. RFC 9207 §2.4: an `iss` must name this provider's issuer; when the provider advertises
///    `authorization_response_iss_parameter_supported`, `iss` must be present. (An OAuth 2.0 provider without a
///    configured issuer cannot be compared; its own callback URL keeps it apart from the others.)
/// 3. An error response becomes the matching [`FederationError`] (`access_denied`, `login_required`, …).
pub fn check_callback<'c>(
    callback: &'c Callback,
    pending: &PendingLogin,
    metadata: &ProviderMetadata,
) -> Result<&'c Secret, FederationError> {
    let state = callback.state().ok_or(FederationError::StateMismatch)?;
    if !ct_eq(state.as_bytes(), pending.state.expose().as_bytes()) {
        return Err(FederationError::StateMismatch);
    }
    match (callback.iss(), &metadata.issuer) {
        (Some(found), Some(expected)) if !metadata.issuer_matches(found, None) => {
            return Err(FederationError::IssuerMismatch {
                expected: expected.clone(),
                found: found.to_owned(),
            });
        }
        (None, _) if metadata.authorization_response_iss_parameter_supported => {
            return Err(FederationError::MissingIssuer);
        }
        _ => {}
    }
    match callback {
        Callback::Code { code, .. } => Ok(code),
        Callback::Error {
            error, description, ..
        } => Err(FederationError::from_authorization_error(
            error,
            description.clone(),
        )),
    }
}

/// Constant-time equality of two byte strings (the length is not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::federation::testing::{oidc_metadata, pending};

    fn q(pairs: &[(&str, &str)]) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    }

    #[test]
    fn parses_code_and_error() {
        let cb =
            Callback::parse(&q(&[("code", "c1"), ("state", "s"), ("iss", "https://i")])).unwrap();
        assert_eq!(
            cb,
            Callback::Code {
                code: Secret::new("c1"),
                state: Some("s".into()),
                iss: Some("https://i".into())
            }
        );
        let cb = Callback::parse(&q(&[
            ("error", "access_denied"),
            ("error_description", "no"),
        ]))
        .unwrap();
        assert!(matches!(cb, Callback::Error { ref error, .. } if error == "access_denied"));
        for bad in [
            q(&[("code", "a"), ("code", "b"), ("state", "s")]),
            q(&[("code", "a"), ("error", "x")]),
            q(&[("state", "s")]),
            q(&[("code", ""), ("state", "s")]),
            "a".repeat(MAX_CALLBACK_QUERY + 1),
        ] {
            assert!(
                matches!(
                    Callback::parse(&bad),
                    Err(FederationError::MalformedCallback(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn state_must_match() {
        let p = pending();
        let meta = oidc_metadata();
        let good = Callback::parse(&q(&[("code", "c"), ("state", p.state.expose())])).unwrap();
        assert_eq!(check_callback(&good, &p, &meta).unwrap().expose(), "c");
        for cb in [
            q(&[("code", "c"), ("state", "forged")]),
            q(&[("code", "c")]),
            q(&[("error", "access_denied"), ("state", "forged")]),
        ] {
            let cb = Callback::parse(&cb).unwrap();
            assert_eq!(
                check_callback(&cb, &p, &meta).unwrap_err(),
                FederationError::StateMismatch
            );
        }
    }

    #[test]
    fn rfc9207_iss_is_checked() {
        let p = pending();
        let mut meta = oidc_metadata();
        let st = p.state.expose();
        let other = Callback::parse(&q(&[
            ("code", "c"),
            ("state", st),
            ("iss", "https://evil.example"),
        ]))
        .unwrap();
        assert_eq!(
            check_callback(&other, &p, &meta).unwrap_err(),
            FederationError::IssuerMismatch {
                expected: "https://idp.example".into(),
                found: "https://evil.example".into()
            }
        );
        let ok = Callback::parse(&q(&[
            ("code", "c"),
            ("state", st),
            ("iss", "https://idp.example"),
        ]))
        .unwrap();
        assert!(check_callback(&ok, &p, &meta).is_ok());
        let none = Callback::parse(&q(&[("code", "c"), ("state", st)])).unwrap();
        assert!(check_callback(&none, &p, &meta).is_ok());
        meta.authorization_response_iss_parameter_supported = true;
        assert_eq!(
            check_callback(&none, &p, &meta).unwrap_err(),
            FederationError::MissingIssuer
        );
        assert!(check_callback(&ok, &p, &meta).is_ok());
    }

    #[test]
    fn upstream_errors_become_variants() {
        let p = pending();
        let meta = oidc_metadata();
        let st = p.state.expose();
        let cb = Callback::parse(&q(&[
            ("error", "access_denied"),
            ("error_description", "User said no"),
            ("state", st),
        ]))
        .unwrap();
        assert_eq!(
            check_callback(&cb, &p, &meta).unwrap_err(),
            FederationError::AccessDenied {
                description: Some("User said no".into())
            }
        );
        let cb = Callback::parse(&q(&[("error", "login_required"), ("state", st)])).unwrap();
        assert!(matches!(
            check_callback(&cb, &p, &meta).unwrap_err(),
            FederationError::InteractionRequired { .. }
        ));
    }
}
