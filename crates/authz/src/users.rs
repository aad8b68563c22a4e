//! End-user accounts: creation, removal, password changes.

use crate::error::AuthzError;
use crate::password;
use crate::random;
use crate::service::Authz;
use crate::store::{StoreError, UserRecord};

/// Longest user name.
pub const MAX_USERNAME_LEN: usize = 64;

/// Checks a user name: 1–64 characters of `[A-Za-z0-9._@+-]`.
pub fn check_username(name: &str) -> Result<(), AuthzError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_USERNAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(AuthzError::InvalidRequest(
            "user names are 1 to 64 characters of letters, digits and . _ @ + -".into(),
        ))
    }
}

impl Authz {
    /// Creates a user. The password is hashed here (slow by design: call off the async runtime's core threads
    /// when serving requests).
    pub async fn add_user(&self, username: &str, password: &str) -> Result<UserRecord, AuthzError> {
        check_username(username)?;
        let hash = password::hash(password, self.rng.as_ref())
            .map_err(|e| AuthzError::InvalidRequest(e.to_string()))?;
        let user = UserRecord {
            id: random::id(self.rng.as_ref()),
            username: username.to_owned(),
            password_hash: hash,
            created_at: self.now(),
        };
        match self.store.insert_user(&user).await {
            Ok(()) => Ok(user),
            Err(StoreError::Conflict(_)) => Err(AuthzError::InvalidRequest(format!(
                "user {username} already exists"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a user; their grants are revoked. Returns whether the user existed.
    pub async fn remove_user(&self, username: &str) -> Result<bool, AuthzError> {
        let now = self.now();
        Ok(self
            .store
            .delete_user(username, now, now + self.config.access_token_ttl + 60)
            .await?)
    }

    /// Removes a client; its grants are revoked. Returns whether the client existed.
    pub async fn remove_client(&self, client_id: &str) -> Result<bool, AuthzError> {
        let now = self.now();
        let existed = self
            .store
            .delete_client(client_id, now, now + self.config.access_token_ttl + 60)
            .await?;
        self.registrations.forget(client_id);
        Ok(existed)
    }

    /// Changes a user's password and ends their sessions. Returns whether the user exists.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<bool, AuthzError> {
        let hash = password::hash(password, self.rng.as_ref())
            .map_err(|e| AuthzError::InvalidRequest(e.to_string()))?;
        Ok(self.store.set_password(username, &hash).await?)
    }
}
