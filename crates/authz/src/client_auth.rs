//! Client authentication at the token and revocation endpoints (RFC 6749 §2.3.1, OAuth 2.1 §2.4, RFC 7009 §2.1).

use crate::error::AuthzError;
use crate::registration::{AuthMethod, RegisteredClient};
use crate::secret::TokenHash;
use crate::service::Authz;
use portcullis_proto::ClientSecret;
use std::sync::Arc;

/// The credentials a request presented, as the HTTP layer parsed them.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientCredentials {
    /// Only a `client_id` form parameter (public client).
    Public {
        /// The client id.
        client_id: String,
    },
    /// `Authorization: Basic` (RFC 6749 §2.3.1).
    Basic {
        /// The client id.
        client_id: String,
        /// The secret.
        secret: ClientSecret,
    },
    /// `client_id` and `client_secret` form parameters.
    Post {
        /// The client id.
        client_id: String,
        /// The secret.
        secret: ClientSecret,
    },
}

impl ClientCredentials {
    /// The claimed client id.
    pub fn client_id(&self) -> &str {
        match self {
            Self::Public { client_id }
            | Self::Basic { client_id, .. }
            | Self::Post { client_id, .. } => client_id,
        }
    }

    /// Whether HTTP Basic was used (a failure then answers 401 with `WWW-Authenticate: Basic`).
    pub fn used_basic(&self) -> bool {
        matches!(self, Self::Basic { .. })
    }
}

impl Authz {
    /// Authenticates the client the way it registered. One message for unknown client and wrong secret.
    pub async fn authenticate_client(
        &self,
        creds: &ClientCredentials,
    ) -> Result<Arc<RegisteredClient>, AuthzError> {
        let fail = || AuthzError::InvalidClient("client authentication failed".into());
        let client = self
            .registrations
            .client_for_authentication(creds.client_id())
            .await?
            .ok_or_else(fail)?;
        let secret = match (client.auth_method, creds) {
            (AuthMethod::None, ClientCredentials::Public { .. }) => return Ok(client),
            (AuthMethod::ClientSecretBasic, ClientCredentials::Basic { secret, .. })
            | (AuthMethod::ClientSecretPost, ClientCredentials::Post { secret, .. }) => secret,
            (method, _) => {
                return Err(AuthzError::InvalidClient(format!(
                    "this client must authenticate with token_endpoint_auth_method {}",
                    method.as_str()
                )))
            }
        };
        match &client.secret_hash {
            Some(h) if h.ct_eq(&TokenHash::of(secret.expose())) => Ok(client),
            _ => Err(fail()),
        }
    }
}
