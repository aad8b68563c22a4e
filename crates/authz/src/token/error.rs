//! The refusals of each grant, one enum per grant (RFC 6749 §5.2). Each knows its error code; its `Display` is
//! the `error_description` sent to the client (no secrets, no internals).

use portcullis_proto::ErrorCode;

/// Why a `refresh_token` grant was refused (RFC 6749 §6, RFC 9700 §4.14.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    /// The client did not register the `refresh_token` grant (RFC 6749 §5.2 `unauthorized_client`).
    #[error("this client did not register the refresh_token grant")]
    NotRegistered,
    /// No family has this token's handle.
    #[error("the refresh token is invalid")]
    Unknown,
    /// The family belongs to another client (RFC 6749 §6: the token is bound to its client).
    #[error("the refresh token was issued to another client")]
    OtherClient,
    /// The grant was revoked.
    #[error("the refresh token was revoked")]
    Revoked,
    /// A retired token of the family was presented: the family is revoked, in the same storage operation
    /// (RFC 9700 §4.14.2).
    #[error("the refresh token was already used; the grant is revoked")]
    Reused,
    /// Idle or absolute expiry passed.
    #[error("the refresh token expired")]
    Expired,
    /// The requested scope is wider than the grant's (RFC 6749 §6).
    #[error("scope exceeds the scope originally granted")]
    ScopeWidened,
    /// The requested resource is not the grant's (RFC 8707 §2.2).
    #[error("resource differs from the original grant")]
    OtherResource,
}

impl RefreshError {
    /// The RFC 6749 §5.2 (or RFC 8707 §2) error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotRegistered => ErrorCode::UnauthorizedClient,
            Self::ScopeWidened => ErrorCode::InvalidScope,
            Self::OtherResource => ErrorCode::InvalidTarget,
            Self::Unknown | Self::OtherClient | Self::Revoked | Self::Reused | Self::Expired => {
                ErrorCode::InvalidGrant
            }
        }
    }

    /// Whether storage revokes the family when the decision is this refusal (RFC 9700 §4.14.2).
    pub fn revokes_family(&self) -> bool {
        matches!(self, Self::Reused)
    }
}

/// Why an `authorization_code` grant was refused (RFC 6749 §4.1.3, RFC 7636 §4.6, RFC 8707 §2.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorizationCodeError {
    /// No such code.
    #[error("the authorization code is invalid")]
    Unknown,
    /// The code was redeemed before and this request proved possession (its client, redirect URI, verifier
    /// and resource): the grant of its first redemption is revoked (RFC 6749 §4.1.2, RFC 9700 §4.5.1).
    #[error("the authorization code was already used; tokens issued from it are revoked")]
    Reused,
    /// The code was redeemed before and this request did not prove possession (wrong verifier, client, redirect
    /// URI or resource): refused, and nothing is revoked.
    #[error("the authorization code was already used")]
    AlreadyUsed,
    /// The code's lifetime passed.
    #[error("the authorization code expired")]
    Expired,
    /// The code was issued to another client.
    #[error("the authorization code was issued to another client")]
    OtherClient,
    /// `redirect_uri` is not the authorization request's (RFC 6749 §4.1.3).
    #[error("redirect_uri does not match the authorization request")]
    RedirectUriMismatch,
    /// The verifier does not hash to the challenge (RFC 7636 §4.6).
    #[error("code_verifier does not match the code_challenge")]
    VerifierMismatch,
    /// `resource` is not the authorization request's (RFC 8707 §2.2).
    #[error("resource differs from the authorization request")]
    OtherResource,
}

impl AuthorizationCodeError {
    /// The RFC 6749 §5.2 (or RFC 8707 §2) error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::OtherResource => ErrorCode::InvalidTarget,
            Self::Unknown
            | Self::Reused
            | Self::AlreadyUsed
            | Self::Expired
            | Self::OtherClient
            | Self::RedirectUriMismatch
            | Self::VerifierMismatch => ErrorCode::InvalidGrant,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes and descriptions on the wire, as they were before the per-grant enums (clients and the
    /// integration tests read some of them).
    #[test]
    fn codes_and_descriptions() {
        use AuthorizationCodeError as A;
        use RefreshError as R;
        let refresh = [
            (
                R::NotRegistered,
                "unauthorized_client",
                "this client did not register the refresh_token grant",
            ),
            (R::Unknown, "invalid_grant", "the refresh token is invalid"),
            (
                R::OtherClient,
                "invalid_grant",
                "the refresh token was issued to another client",
            ),
            (R::Revoked, "invalid_grant", "the refresh token was revoked"),
            (
                R::Reused,
                "invalid_grant",
                "the refresh token was already used; the grant is revoked",
            ),
            (R::Expired, "invalid_grant", "the refresh token expired"),
            (
                R::ScopeWidened,
                "invalid_scope",
                "scope exceeds the scope originally granted",
            ),
            (
                R::OtherResource,
                "invalid_target",
                "resource differs from the original grant",
            ),
        ];
        for (e, code, text) in refresh {
            assert_eq!((e.code().as_str(), e.to_string().as_str()), (code, text));
            assert_eq!(e.revokes_family(), e == R::Reused);
        }
        let code = [
            (
                A::Unknown,
                "invalid_grant",
                "the authorization code is invalid",
            ),
            (
                A::Reused,
                "invalid_grant",
                "the authorization code was already used; tokens issued from it are revoked",
            ),
            (
                A::AlreadyUsed,
                "invalid_grant",
                "the authorization code was already used",
            ),
            (
                A::Expired,
                "invalid_grant",
                "the authorization code expired",
            ),
            (
                A::OtherClient,
                "invalid_grant",
                "the authorization code was issued to another client",
            ),
            (
                A::RedirectUriMismatch,
                "invalid_grant",
                "redirect_uri does not match the authorization request",
            ),
            (
                A::VerifierMismatch,
                "invalid_grant",
                "code_verifier does not match the code_challenge",
            ),
            (
                A::OtherResource,
                "invalid_target",
                "resource differs from the authorization request",
            ),
        ];
        for (e, code, text) in code {
            assert_eq!((e.code().as_str(), e.to_string().as_str()), (code, text));
        }
    }
}
