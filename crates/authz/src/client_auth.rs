//! Client authentication at the token and revocation endpoints (RFC 6749 §2.3.1, OAuth 2.1 §2.4, RFC 7009 §2.1):
//! the presented credentials and the check against a registered client. The lookup is
//! [`crate::registrations::Registrations::authenticate_client`]'s.

use crate::error::AuthzError;
use crate::registration::{AuthMethod, RegisteredClient};
use crate::secret::TokenHash;
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

/// Checks `creds` against how `client` registered (RFC 6749 §2.3.1): the method must be the registered one and
/// the secret must match its stored hash. One message for unknown client and wrong secret.
pub(crate) fn check(
    client: Arc<RegisteredClient>,
    creds: &ClientCredentials,
) -> Result<Arc<RegisteredClient>, AuthzError> {
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
        _ => Err(failed()),
    }
}

/// The one refusal for an unknown client and a wrong secret.
pub(crate) fn failed() -> AuthzError {
    AuthzError::InvalidClient("client authentication failed".into())
}
