//! [`Sessions`]: browser login sessions and the accounts they log in to (users, passwords). The cookie carries a
//! random 256-bit id; only its hash is stored. A new id is minted at every login (session fixation defence, OWASP
//! Session Management Cheat Sheet). The account rules (user names) are [`crate::users`]'s.

use crate::error::AuthzError;
use crate::password;
use crate::random;
use crate::secret::{Secret, TokenHash};
use crate::shared::Core;
use crate::store::{DisplayIdentity, SessionRecord, StoreError, UserRecord};
use crate::users::{check_username, MAX_USERNAME_LEN};
use std::sync::Arc;

/// The session and account service. Built by [`crate::Authz::new`]; reached with [`crate::Authz::sessions`].
#[derive(Debug)]
pub struct Sessions {
    core: Arc<Core>,
}

impl Sessions {
    /// The service over the shared dependencies.
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// Finds the user for a login attempt together with the hash to check the password against. For an unknown
    /// user the hash is a dummy one, so both cases cost one argon2 verification (no enumeration by timing).
    pub async fn login_candidate(
        &self,
        username: &str,
    ) -> Result<(Option<UserRecord>, String), AuthzError> {
        if username.is_empty() || username.len() > MAX_USERNAME_LEN {
            return Ok((None, password::dummy_hash().to_owned()));
        }
        let user = self.core.store.user_by_name(username).await?;
        // A user without a password (created through an identity provider) is, for password sign-in, an
        // unknown user: no candidate, and the dummy hash so the attempt costs the same.
        let user = user.filter(|u| !u.password_hash.is_empty());
        let hash = user.as_ref().map_or_else(
            || password::dummy_hash().to_owned(),
            |u| u.password_hash.clone(),
        );
        Ok((user, hash))
    }

    /// Opens a session for an authenticated user (password verified, or signed in at an identity provider), who
    /// is shown and named in tokens as `identity` (a password login passes [`DisplayIdentity::password_user`]).
    /// Returns the cookie value and the record.
    pub async fn open_session(
        &self,
        user: &UserRecord,
        identity: DisplayIdentity,
    ) -> Result<(Secret, SessionRecord), AuthzError> {
        let now = self.core.now();
        let id = random::token(self.core.rng());
        let record = SessionRecord {
            id_hash: id.hash(),
            user_id: user.id.clone(),
            username: user.username.clone(),
            identity,
            csrf_key: random::token(self.core.rng()),
            created_at: now,
            expires_at: now + self.core.config.session_ttl,
        };
        self.core.store.insert_session(&record).await?;
        Ok((id, record))
    }

    /// The live session for a cookie value.
    pub async fn session(&self, cookie: &str) -> Result<Option<SessionRecord>, AuthzError> {
        if cookie.is_empty() || cookie.len() > 128 {
            return Ok(None);
        }
        Ok(self
            .core
            .store
            .session(&TokenHash::of(cookie), self.core.now())
            .await?)
    }

    /// Creates a user. The password is hashed here (slow by design: call off the async runtime's core threads
    /// when serving requests).
    pub async fn add_user(&self, username: &str, password: &str) -> Result<UserRecord, AuthzError> {
        check_username(username)?;
        let hash = password::hash(password, self.core.rng())
            .map_err(|e| AuthzError::InvalidRequest(e.to_string()))?;
        let user = UserRecord {
            id: random::id(self.core.rng()),
            username: username.to_owned(),
            password_hash: hash,
            created_at: self.core.now(),
        };
        match self.core.store.insert_user(&user).await {
            Ok(()) => Ok(user),
            Err(StoreError::Conflict(_)) => Err(AuthzError::InvalidRequest(format!(
                "user {username} already exists"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a user; their grants are revoked. Returns whether the user existed.
    pub async fn remove_user(&self, username: &str) -> Result<bool, AuthzError> {
        let now = self.core.now();
        Ok(self
            .core
            .store
            .delete_user(username, now, self.core.revocation_expiry(now))
            .await?)
    }

    /// Changes a user's password and ends their sessions. Returns whether the user exists.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<bool, AuthzError> {
        let hash = password::hash(password, self.core.rng())
            .map_err(|e| AuthzError::InvalidRequest(e.to_string()))?;
        Ok(self.core.store.set_password(username, &hash).await?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::store::{UserRecord, UserStore};
    use crate::testing::{authz_on, MemStore};
    use std::sync::Arc;

    /// A user created through an identity provider (password hash "") is no candidate for password sign-in:
    /// the attempt is checked against the dummy hash, like an unknown user's.
    #[tokio::test]
    async fn users_without_a_password_are_no_login_candidates() {
        let store = Arc::new(MemStore::default());
        let (a, _) = authz_on(store.clone()).await;
        let jit = UserRecord {
            id: "u-jit".into(),
            username: "carol".into(),
            password_hash: String::new(),
            created_at: 1,
        };
        store.insert_user(&jit).await.unwrap();
        let (user, hash) = a.sessions().login_candidate("carol").await.unwrap();
        assert_eq!(user, None);
        assert_eq!(hash, crate::password::dummy_hash());
        assert!(!crate::password::verify("", &hash));
        a.sessions()
            .add_user("alice", "correct horse")
            .await
            .unwrap();
        let (user, hash) = a.sessions().login_candidate("alice").await.unwrap();
        assert_eq!(user.unwrap().username, "alice");
        assert!(crate::password::verify("correct horse", &hash));
    }
}
