//! The token endpoint's grants (RFC 6749 §4.1.3, §6; OAuth 2.1 §4.1.3, §4.3) and token issuing: [`Tokens`], the
//! token service over the shared [`Core`] and the [`Keys`] it signs access tokens with.
//!
//! - [`authorization_code`]: the code-for-token exchange with PKCE.
//! - [`refresh`]: refresh with rotation and reuse detection (RFC 9700 §4.14.2) and its grace period;
//!   `rotation`: its pure decision; `successor`: the retired token's sealed successor.

pub mod authorization_code;
pub mod error;
pub mod refresh;
mod rotation;
mod successor;

use crate::access_token::{self, AccessClaims, Audience};
use crate::error::AuthzError;
use crate::keys::Keys;
use crate::random;
use crate::registration::RegisteredClient;
use crate::shared::Core;
use crate::store::{GrantRecord, StoreError};
use error::{AuthorizationCodeError, RefreshError};
use portcullis_proto::token::TokenResponse;
use portcullis_proto::{ErrorCode, TokenRequest, TokenRequestError};
use std::sync::Arc;

/// Why the token endpoint refused: the form, a grant's own refusal, or a failure shared by all grants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The form is not a token request this server accepts.
    #[error(transparent)]
    Request(#[from] TokenRequestError),
    /// The `authorization_code` grant refused.
    #[error(transparent)]
    AuthorizationCode(#[from] AuthorizationCodeError),
    /// The `refresh_token` grant refused.
    #[error(transparent)]
    Refresh(#[from] RefreshError),
    /// Anything else (storage, internal).
    #[error(transparent)]
    Other(#[from] AuthzError),
}

impl From<StoreError> for TokenError {
    fn from(e: StoreError) -> Self {
        Self::Other(e.into())
    }
}

impl TokenError {
    /// The RFC 6749 §5.2 error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Request(e) => e.code(),
            Self::AuthorizationCode(e) => e.code(),
            Self::Refresh(e) => e.code(),
            Self::Other(e) => e.code(),
        }
    }

    /// The `error_description` safe to show the client.
    pub fn description(&self) -> String {
        match self {
            Self::Other(e) => e.description(),
            e => e.to_string(),
        }
    }

    /// The error of the logic layer underneath, for what only looks at that (status, logging).
    pub fn as_authz(&self) -> Option<&AuthzError> {
        match self {
            Self::Other(e) => Some(e),
            _ => None,
        }
    }
}

/// The token service: the grants and access-token minting. Built by [`crate::Authz::new`]; reached with
/// [`crate::Authz::tokens`].
#[derive(Debug)]
pub struct Tokens {
    core: Arc<Core>,
    keys: Arc<Keys>,
}

impl Tokens {
    /// The service over the shared dependencies, signing with `keys`.
    pub fn new(core: Arc<Core>, keys: Arc<Keys>) -> Self {
        Self { core, keys }
    }

    /// Runs the grant of a parsed token request for an authenticated client.
    pub async fn token(
        &self,
        client: &RegisteredClient,
        req: TokenRequest,
    ) -> Result<TokenResponse, TokenError> {
        if client.introspection.is_some() {
            // It has no grant type and no redirect URI, so no grant could succeed; say why plainly.
            return Err(AuthzError::UnauthorizedClient(
                "an introspection credential cannot obtain tokens".into(),
            )
            .into());
        }
        match req {
            TokenRequest::AuthorizationCode(req) => self.exchange_code(client, req).await,
            TokenRequest::RefreshToken(req) => self.refresh(client, req).await,
        }
    }

    /// Signs an access token for `grant` with `scope` (RFC 9068 §2.2), naming the user as the grant's identity
    /// does (RFC 9068 §2.2.3.1; OpenID Connect Core §5.1 `preferred_username`, `email`, `idp`).
    pub(crate) fn access_token_for(&self, grant: &GrantRecord, scope: &str) -> String {
        let now = self.core.now();
        // offline_access concerns the client and the AS only; the resource never sees it (MCP SEP-2207).
        let scope = scope
            .split(' ')
            .filter(|s| *s != crate::config::OFFLINE_ACCESS)
            .collect::<Vec<_>>()
            .join(" ");
        let scope = scope.as_str();
        let claims = AccessClaims {
            iss: self.core.config.issuer.clone(),
            sub: grant.user_id.clone(),
            aud: Audience::One(grant.resource.clone()),
            client_id: grant.client_id.clone(),
            scope: if scope.is_empty() {
                None
            } else {
                Some(scope.to_owned())
            },
            exp: now + self.core.config.access_token_ttl,
            iat: now,
            nbf: None,
            jti: random::id(self.core.rng()),
            grant_id: Some(grant.id.clone()),
            preferred_username: non_empty(Some(&grant.identity.preferred_username)),
            email: non_empty(grant.identity.email.as_ref()),
            idp: non_empty(grant.identity.idp.as_ref()),
            idp_name: (grant.identity.idp.as_ref())
                .and_then(|idp| self.core.config.idp_display_names.get(idp))
                .cloned(),
        };
        access_token::mint(&self.keys.ring(), &claims)
    }

    /// Builds the response of RFC 6749 §5.1.
    pub(crate) fn token_response(
        &self,
        access_token: String,
        refresh: Option<String>,
        scope: &str,
    ) -> TokenResponse {
        TokenResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in: Some(self.core.config.access_token_ttl as u64),
            refresh_token: refresh,
            scope: Some(scope.to_owned()),
        }
    }
}

/// An identity claim's value: an empty one is left out (a row stored before migration 0005 may have none).
fn non_empty(v: Option<&String>) -> Option<String> {
    v.filter(|s| !s.is_empty()).cloned()
}
