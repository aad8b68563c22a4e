//! Token requests (RFC 6749 §4.1.3, §6; OAuth 2.1 §4.1.3, §4.3; RFC 7636 §4.5; RFC 8707 §2.2), parsed from the
//! form parameters once, at the edge, into one variant per grant with typed fields.
//!
//! Adding a grant means one variant here, one parse function and one arm in [`TokenRequest::parse`].

use crate::pkce::{CodeVerifier, PkceError};
use crate::scope::{Scope, ScopeError};
use crate::secret::{AuthorizationCode, RefreshToken};
use crate::ErrorCode;
use std::collections::HashMap;

/// An RFC 8707 `resource` parameter: the protected resource the tokens are for. The token endpoint only
/// compares it with the one its grant was issued for (chosen from the configured list at the authorization
/// endpoint), so any other value is refused there as `invalid_target`; no syntax rule is checked here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceIndicator(String);

impl ResourceIndicator {
    /// Wraps a `resource` value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The resource URI.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A token request, one variant per grant (the client's own credentials are taken from the form before).
/// Deliberately exhaustive: a new grant is a new variant, and every `match` on requests must then handle it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRequest {
    /// `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.5).
    AuthorizationCode(AuthorizationCodeRequest),
    /// `grant_type=refresh_token` (RFC 6749 §6).
    RefreshToken(RefreshTokenRequest),
}

/// The parameters of the `authorization_code` grant. A `scope` is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCodeRequest {
    /// `code`.
    pub code: AuthorizationCode,
    /// `code_verifier` (required: PKCE is mandatory, OAuth 2.1 §4.1.3).
    pub code_verifier: CodeVerifier,
    /// `redirect_uri`, compared exactly with the authorization request's (RFC 6749 §4.1.3).
    pub redirect_uri: Option<String>,
    /// `resource` (RFC 8707 §2.2).
    pub resource: Option<ResourceIndicator>,
}

/// The parameters of the `refresh_token` grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRequest {
    /// `refresh_token`.
    pub refresh_token: RefreshToken,
    /// `scope`: at most the grant's (RFC 6749 §6).
    pub scope: Option<Scope>,
    /// `resource` (RFC 8707 §2.2).
    pub resource: Option<ResourceIndicator>,
}

/// Why a token request's form is refused. `Display` is the `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenRequestError {
    /// A parameter appears twice (RFC 6749 §3.2).
    #[error("parameter {0} is repeated")]
    Repeated(String),
    /// No `grant_type`.
    #[error("grant_type is required")]
    MissingGrantType,
    /// A `grant_type` this server does not support (RFC 6749 §5.2 `unsupported_grant_type`).
    #[error("only authorization_code and refresh_token are supported")]
    UnsupportedGrantType,
    /// No `code`.
    #[error("code is required")]
    MissingCode,
    /// No `code_verifier` (`invalid_grant`: the code cannot be redeemed without it).
    #[error("code_verifier is required (PKCE)")]
    MissingCodeVerifier,
    /// A `code_verifier` that is not RFC 7636 §4.1 syntax (`invalid_grant`).
    #[error("code_verifier {0}")]
    InvalidCodeVerifier(PkceError),
    /// No `refresh_token`.
    #[error("refresh_token is required")]
    MissingRefreshToken,
    /// A `scope` that is not RFC 6749 §3.3 syntax (`invalid_scope`).
    #[error("{0}")]
    InvalidScope(ScopeError),
}

impl TokenRequestError {
    /// The RFC 6749 §5.2 error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::UnsupportedGrantType => ErrorCode::UnsupportedGrantType,
            Self::MissingCodeVerifier | Self::InvalidCodeVerifier(_) => ErrorCode::InvalidGrant,
            Self::InvalidScope(_) => ErrorCode::InvalidScope,
            Self::Repeated(_)
            | Self::MissingGrantType
            | Self::MissingCode
            | Self::MissingRefreshToken => ErrorCode::InvalidRequest,
        }
    }
}

/// The form's parameters by name; an empty value counts as absent (RFC 6749 §3.1).
struct Params<'a>(HashMap<&'a str, &'a str>);

impl<'a> Params<'a> {
    fn get(&self, name: &str) -> Option<&'a str> {
        self.0.get(name).copied().filter(|v| !v.is_empty())
    }

    fn resource(&self) -> Option<ResourceIndicator> {
        self.get("resource").map(ResourceIndicator::new)
    }
}

impl TokenRequest {
    /// Parses the form parameters (decoded name/value pairs) of a token request. Checks run in the order the
    /// refusals are documented: `grant_type`, then the grant's own parameters.
    pub fn parse<'a, I>(pairs: I) -> Result<Self, TokenRequestError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut map = HashMap::new();
        for (name, value) in pairs {
            if map.insert(name, value).is_some() {
                return Err(TokenRequestError::Repeated(name.to_owned()));
            }
        }
        let params = Params(map);
        match params.get("grant_type") {
            Some("authorization_code") => Self::authorization_code(&params),
            Some("refresh_token") => Self::refresh_token(&params),
            Some(_) => Err(TokenRequestError::UnsupportedGrantType),
            None => Err(TokenRequestError::MissingGrantType),
        }
    }

    fn authorization_code(p: &Params<'_>) -> Result<Self, TokenRequestError> {
        let code = p.get("code").ok_or(TokenRequestError::MissingCode)?;
        let verifier = p
            .get("code_verifier")
            .ok_or(TokenRequestError::MissingCodeVerifier)?;
        Ok(Self::AuthorizationCode(AuthorizationCodeRequest {
            code: AuthorizationCode::new(code),
            code_verifier: CodeVerifier::parse(verifier)
                .map_err(TokenRequestError::InvalidCodeVerifier)?,
            redirect_uri: p.get("redirect_uri").map(str::to_owned),
            resource: p.resource(),
        }))
    }

    fn refresh_token(p: &Params<'_>) -> Result<Self, TokenRequestError> {
        let token = p
            .get("refresh_token")
            .ok_or(TokenRequestError::MissingRefreshToken)?;
        let scope = match p.get("scope") {
            Some(s) => Some(Scope::parse(s).map_err(TokenRequestError::InvalidScope)?),
            None => None,
        };
        Ok(Self::RefreshToken(RefreshTokenRequest {
            refresh_token: RefreshToken::new(token),
            scope,
            resource: p.resource(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    fn parse(pairs: &[(&str, &str)]) -> Result<TokenRequest, TokenRequestError> {
        TokenRequest::parse(pairs.iter().copied())
    }

    #[test]
    fn authorization_code_grant() {
        let r = parse(&[
            ("grant_type", "authorization_code"),
            ("code", "c0de"),
            ("code_verifier", VERIFIER),
            ("redirect_uri", "http://localhost:8080/callback"),
            ("resource", "https://mcp.example/mcp"),
            ("scope", "ignored \"here\""),
        ])
        .unwrap();
        assert_eq!(
            r,
            TokenRequest::AuthorizationCode(AuthorizationCodeRequest {
                code: AuthorizationCode::new("c0de"),
                code_verifier: CodeVerifier::parse(VERIFIER).unwrap(),
                redirect_uri: Some("http://localhost:8080/callback".into()),
                resource: Some(ResourceIndicator::new("https://mcp.example/mcp")),
            })
        );
        let minimal = parse(&[
            ("grant_type", "authorization_code"),
            ("code", "c0de"),
            ("code_verifier", VERIFIER),
            ("redirect_uri", ""),
            ("resource", ""),
        ])
        .unwrap();
        assert!(matches!(
            minimal,
            TokenRequest::AuthorizationCode(AuthorizationCodeRequest {
                redirect_uri: None,
                resource: None,
                ..
            })
        ));
    }

    #[test]
    fn refresh_token_grant() {
        let r = parse(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "h.s"),
            ("scope", "mcp:tools  mcp:admin"),
            ("resource", "https://mcp.example/mcp"),
        ])
        .unwrap();
        assert_eq!(
            r,
            TokenRequest::RefreshToken(RefreshTokenRequest {
                refresh_token: RefreshToken::new("h.s"),
                scope: Some(Scope::parse("mcp:admin mcp:tools").unwrap()),
                resource: Some(ResourceIndicator::new("https://mcp.example/mcp")),
            })
        );
        let minimal = parse(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "h.s"),
            ("scope", ""),
        ])
        .unwrap();
        assert!(matches!(
            minimal,
            TokenRequest::RefreshToken(RefreshTokenRequest {
                scope: None,
                resource: None,
                ..
            })
        ));
    }

    #[test]
    fn malformed_forms() {
        use TokenRequestError as E;
        let code = ("grant_type", "authorization_code");
        let refresh = ("grant_type", "refresh_token");
        let cases: &[(&[(&str, &str)], E)] = &[
            (&[], E::MissingGrantType),
            (&[("grant_type", "")], E::MissingGrantType),
            (&[("code", "c")], E::MissingGrantType),
            (&[("grant_type", "password")], E::UnsupportedGrantType),
            (
                &[("grant_type", "client_credentials")],
                E::UnsupportedGrantType,
            ),
            (&[code, ("code_verifier", VERIFIER)], E::MissingCode),
            (
                &[code, ("code", ""), ("code_verifier", VERIFIER)],
                E::MissingCode,
            ),
            (&[code, ("code", "c")], E::MissingCodeVerifier),
            (
                &[code, ("code", "c"), ("code_verifier", "")],
                E::MissingCodeVerifier,
            ),
            (
                &[code, ("code", "c"), ("code_verifier", "short")],
                E::InvalidCodeVerifier(PkceError::Length),
            ),
            (
                &[code, ("code", "c"), ("code_verifier", &"!".repeat(43))],
                E::InvalidCodeVerifier(PkceError::Charset),
            ),
            (&[refresh], E::MissingRefreshToken),
            (&[refresh, ("refresh_token", "")], E::MissingRefreshToken),
            (
                &[refresh, ("refresh_token", "t"), ("scope", "a\tb")],
                E::InvalidScope(ScopeError),
            ),
            (
                &[refresh, ("refresh_token", "t"), ("scope", "a\"b")],
                E::InvalidScope(ScopeError),
            ),
            (
                &[refresh, ("refresh_token", "t"), ("refresh_token", "u")],
                E::Repeated("refresh_token".into()),
            ),
            (&[refresh, refresh], E::Repeated("grant_type".into())),
        ];
        for (pairs, want) in cases {
            assert_eq!(parse(pairs).unwrap_err(), *want, "{pairs:?}");
        }
    }

    /// The codes and descriptions the token endpoint sends (RFC 6749 §5.2), as before the typed parser.
    #[test]
    fn codes_and_descriptions() {
        use TokenRequestError as E;
        let cases = [
            (
                E::MissingGrantType,
                "invalid_request",
                "grant_type is required",
            ),
            (
                E::UnsupportedGrantType,
                "unsupported_grant_type",
                "only authorization_code and refresh_token are supported",
            ),
            (E::MissingCode, "invalid_request", "code is required"),
            (
                E::MissingCodeVerifier,
                "invalid_grant",
                "code_verifier is required (PKCE)",
            ),
            (
                E::InvalidCodeVerifier(PkceError::Length),
                "invalid_grant",
                "code_verifier must be 43 to 128 characters long",
            ),
            (
                E::MissingRefreshToken,
                "invalid_request",
                "refresh_token is required",
            ),
            (
                E::InvalidScope(ScopeError),
                "invalid_scope",
                "scope must be space-separated tokens of printable ASCII without '\"' or '\\\\'",
            ),
            (
                E::Repeated("code".into()),
                "invalid_request",
                "parameter code is repeated",
            ),
        ];
        for (e, code, description) in cases {
            assert_eq!(
                (e.code().as_str(), e.to_string().as_str()),
                (code, description)
            );
        }
    }
}
