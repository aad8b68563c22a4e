//! Browser login sessions. The cookie carries a random 256-bit id; only its hash is stored. A new id is minted at
//! every login (session fixation defence, OWASP Session Management Cheat Sheet).

use crate::error::AuthzError;
use crate::password;
use crate::random;
use crate::secret::{Secret, TokenHash};
use crate::service::Authz;
use crate::store::{SessionRecord, UserRecord};

impl Authz {
    /// Finds the user for a login attempt together with the hash to check the password against. For an unknown
    /// user the hash is a dummy one, so both cases cost one argon2 verification (no enumeration by timing).
    pub async fn login_candidate(
        &self,
        username: &str,
    ) -> Result<(Option<UserRecord>, String), AuthzError> {
        if username.is_empty() || username.len() > crate::users::MAX_USERNAME_LEN {
            return Ok((None, password::dummy_hash().to_owned()));
        }
        let user = self.store.user_by_name(username).await?;
        let hash = user.as_ref().map_or_else(
            || password::dummy_hash().to_owned(),
            |u| u.password_hash.clone(),
        );
        Ok((user, hash))
    }

    /// Opens a session for a user whose password was verified. Returns the cookie value and the record.
    pub async fn open_session(
        &self,
        user: &UserRecord,
    ) -> Result<(Secret, SessionRecord), AuthzError> {
        let now = self.now();
        let id = random::token(self.rng.as_ref());
        let record = SessionRecord {
            id_hash: id.hash(),
            user_id: user.id.clone(),
            username: user.username.clone(),
            csrf_key: random::token(self.rng.as_ref()),
            created_at: now,
            expires_at: now + self.config.session_ttl,
        };
        self.store.insert_session(&record).await?;
        Ok((id, record))
    }

    /// The live session for a cookie value.
    pub async fn session(&self, cookie: &str) -> Result<Option<SessionRecord>, AuthzError> {
        if cookie.is_empty() || cookie.len() > 128 {
            return Ok(None);
        }
        Ok(self
            .store
            .session(&TokenHash::of(cookie), self.now())
            .await?)
    }
}
