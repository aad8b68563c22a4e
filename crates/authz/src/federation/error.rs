//! [`FederationError`]: the one error enum of the upstream (identity provider) leg. Every variant has a short
//! [`FederationError::code`] for logs and page templates, and a `Display` meant for people. No variant ever holds
//! a token, code, verifier, state, nonce or client secret; text that came from the identity provider (an
//! `error_description`) is carried as-is, so pages must escape it like any other untrusted text.

/// Everything that can go wrong when signing in through an upstream identity provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FederationError {
    /// A provider's configuration is wrong; `key` names the TOML key (e.g. `identity_providers[corp].issuer`).
    #[error("{key}: {reason}")]
    Config {
        /// The offending key, with the provider's name.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The discovery document (OpenID Connect Discovery 1.0 §3, §4.3) is unusable; `field` names the member.
    #[error("the identity provider's discovery document is unusable: {field}: {reason}")]
    Metadata {
        /// The metadata member at fault (`issuer`, `response_types_supported`, …), or `document`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The JWK Set (RFC 7517 §5) cannot be parsed or holds no usable signing key.
    #[error("the identity provider's key set is unusable: {0}")]
    Jwks(String),
    /// The callback carries no `state`, or one that does not match this browser's sign-in (RFC 6749 §10.12):
    /// a forged, replayed or cross-browser callback.
    #[error("this sign-in response does not belong to a sign-in started in this browser")]
    StateMismatch,
    /// The callback is neither a code nor an error response, or lacks a required parameter.
    #[error("the identity provider's response is malformed: {0}")]
    MalformedCallback(String),
    /// RFC 9207 §2.4: the `iss` of the authorization response (or an ID token's `iss`, OpenID Connect Core
    /// §3.1.3.7 step 2) is not this provider's issuer: a possible mix-up attack.
    #[error("the response came from issuer {found}, not from {expected}")]
    IssuerMismatch {
        /// The configured/discovered issuer.
        expected: String,
        /// The issuer the response names.
        found: String,
    },
    /// RFC 9207 §2.4: the provider advertises `authorization_response_iss_parameter_supported` but the response
    /// has no `iss`.
    #[error("the identity provider's response lacks its iss parameter")]
    MissingIssuer,
    /// The user declined at the identity provider (`error=access_denied`, RFC 6749 §4.1.2.1).
    #[error("sign-in was cancelled or refused at the identity provider")]
    AccessDenied {
        /// The provider's `error_description`, if any (untrusted text).
        description: Option<String>,
    },
    /// The provider needs an interaction it was not allowed (`login_required`, `consent_required`,
    /// `interaction_required`, `account_selection_required`; OpenID Connect Core §3.1.2.6).
    #[error("the identity provider needs you to sign in again ({code})")]
    InteractionRequired {
        /// The OpenID error code.
        code: String,
        /// The provider's `error_description`, if any (untrusted text).
        description: Option<String>,
    },
    /// Any other error the provider answered with, at the authorization or the token endpoint (RFC 6749
    /// §4.1.2.1, §5.2; RFC 8693 §2.2.2).
    #[error("the identity provider answered {code}")]
    Upstream {
        /// The OAuth error code (`invalid_grant`, `temporarily_unavailable`, …).
        code: String,
        /// The provider's `error_description`, if any (untrusted text).
        description: Option<String>,
    },
    /// The token endpoint's answer is not a usable token response (RFC 6749 §5.1).
    #[error("the identity provider's token response is unusable: {0}")]
    TokenResponse(String),
    /// A JWS that is not compact serialization of three base64url parts with a JSON header and payload.
    #[error("the ID token is malformed: {0}")]
    MalformedToken(String),
    /// The token's `alg` is not on the allow-list (never `none` or HMAC; RFC 8725 §3.1, §3.2).
    #[error("the ID token is signed with an algorithm that is not accepted: {0}")]
    UnsupportedAlgorithm(String),
    /// The `kid` names no key in the JWK Set: the caller refetches the set once and retries (OpenID Connect Core
    /// §10.1.1), then gives up.
    #[error("the ID token is signed with a key the identity provider does not publish")]
    UnknownKey,
    /// The signature does not verify with the selected key.
    #[error("the ID token's signature does not verify")]
    BadSignature,
    /// A claim fails OpenID Connect Core §3.1.3.7 (`aud`, `azp`, `iat`, `sub`, …).
    #[error("the ID token's {claim} claim is unacceptable: {reason}")]
    InvalidClaim {
        /// The claim's name.
        claim: &'static str,
        /// Why.
        reason: String,
    },
    /// The ID token's `exp` has passed (OpenID Connect Core §3.1.3.7 step 9).
    #[error("the ID token has expired")]
    Expired,
    /// The ID token's `nonce` is not this sign-in's (OpenID Connect Core §3.1.3.7 step 11): a replayed token.
    #[error("the ID token does not belong to this sign-in (nonce mismatch)")]
    NonceMismatch,
    /// The userinfo response is unusable, or its `sub` differs from the ID token's (OpenID Connect Core §5.3.2).
    #[error("the identity provider's user information is unusable: {0}")]
    Userinfo(String),
    /// Policy: the user's verified email domain is not in `allowed_domains`.
    #[error("your email domain {domain} is not allowed here")]
    DomainNotAllowed {
        /// The domain (lower-cased).
        domain: String,
    },
    /// Policy: `allowed_domains` is set and the provider gave no email, or an unverified one.
    #[error("{0}")]
    EmailNotVerified(String),
    /// Policy: none of the user's groups is in `allowed_groups`.
    #[error("your account is not in a group allowed here")]
    GroupNotAllowed,
}

impl FederationError {
    /// A short, stable code for logs and page templates.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Config { .. } => "config",
            Self::Metadata { .. } => "bad_metadata",
            Self::Jwks(_) => "bad_jwks",
            Self::StateMismatch => "state_mismatch",
            Self::MalformedCallback(_) => "malformed_callback",
            Self::IssuerMismatch { .. } => "issuer_mismatch",
            Self::MissingIssuer => "missing_issuer",
            Self::AccessDenied { .. } => "access_denied",
            Self::InteractionRequired { .. } => "interaction_required",
            Self::Upstream { .. } => "upstream_error",
            Self::TokenResponse(_) => "bad_token_response",
            Self::MalformedToken(_) => "malformed_id_token",
            Self::UnsupportedAlgorithm(_) => "unsupported_alg",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::InvalidClaim { .. } => "invalid_claim",
            Self::Expired => "expired",
            Self::NonceMismatch => "nonce_mismatch",
            Self::Userinfo(_) => "bad_userinfo",
            Self::DomainNotAllowed { .. } => "domain_not_allowed",
            Self::EmailNotVerified(_) => "email_not_verified",
            Self::GroupNotAllowed => "group_not_allowed",
        }
    }

    /// Whether the provider answered `invalid_grant` (RFC 6749 §5.2): the upstream refresh token is no longer
    /// honoured (user removed, session revoked), so the Portcullis grant must end too.
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, Self::Upstream { code, .. } if code == "invalid_grant")
    }

    /// Whether the provider said it is overloaded or failing (`temporarily_unavailable`, `server_error`): the
    /// page says the provider is having trouble (a 503), not that the user did something wrong.
    pub fn is_temporary(&self) -> bool {
        matches!(self, Self::Upstream { code, .. } if code == "temporarily_unavailable" || code == "server_error")
    }

    /// Whether the user is refused by policy (`allowed_domains`, `allowed_groups`): a page explains why.
    pub fn is_policy(&self) -> bool {
        matches!(
            self,
            Self::DomainNotAllowed { .. } | Self::EmailNotVerified(_) | Self::GroupNotAllowed
        )
    }

    /// The error an authorization error response becomes (RFC 6749 §4.1.2.1, OpenID Connect Core §3.1.2.6).
    pub fn from_authorization_error(code: &str, description: Option<String>) -> Self {
        match code {
            "access_denied" => Self::AccessDenied { description },
            "login_required"
            | "consent_required"
            | "interaction_required"
            | "account_selection_required" => Self::InteractionRequired {
                code: code.to_owned(),
                description,
            },
            _ => Self::Upstream {
                code: code.to_owned(),
                description,
            },
        }
    }

    /// A [`FederationError::Config`] for `identity_providers[<provider>].<key>`.
    pub(crate) fn config(provider: &str, key: &str, reason: impl Into<String>) -> Self {
        Self::Config {
            key: format!("identity_providers[{provider}].{key}"),
            reason: reason.into(),
        }
    }

    /// A [`FederationError::Metadata`].
    pub(crate) fn metadata(field: &str, reason: impl Into<String>) -> Self {
        Self::Metadata {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    /// A [`FederationError::InvalidClaim`].
    pub(crate) fn claim(claim: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidClaim {
            claim,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_errors_map_to_variants() {
        assert_eq!(
            FederationError::from_authorization_error("access_denied", None),
            FederationError::AccessDenied { description: None }
        );
        assert_eq!(
            FederationError::from_authorization_error("login_required", None).code(),
            "interaction_required"
        );
        let e = FederationError::from_authorization_error("server_error", Some("x".into()));
        assert_eq!(e.code(), "upstream_error");
        assert!(!e.is_invalid_grant());
        assert!(e.is_temporary());
        assert!(FederationError::Upstream {
            code: "invalid_grant".into(),
            description: None
        }
        .is_invalid_grant());
    }

    #[test]
    fn messages_are_for_people() {
        let e = FederationError::DomainNotAllowed {
            domain: "other.org".into(),
        };
        assert_eq!(
            e.to_string(),
            "your email domain other.org is not allowed here"
        );
        assert!(e.is_policy());
        let e = FederationError::config("corp", "issuer", "must use https");
        assert_eq!(
            e.to_string(),
            "identity_providers[corp].issuer: must use https"
        );
    }
}
