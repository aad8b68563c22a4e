//! PostgreSQL: users, login sessions and remembered consent.

use super::clients::{keep_last_use, Deleting};
use super::USER_COLUMNS;
use super::{identity_row, retry, revoke_grants_of, user_row, GrantOwner, PostgresStore};
use async_trait::async_trait;
use portcullis_authz::secret::{Secret, TokenHash};
use portcullis_authz::store::*;
use sqlx::Row;

#[async_trait]
impl UserStore for PostgresStore {
    async fn insert_user(&self, u: &UserRecord) -> Result<(), StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query(
                "INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&u.id)
            .bind(&u.username)
            .bind(&u.password_hash)
            .bind(u.created_at)
            .execute(pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
            ))
            .bind(username)
            .fetch_optional(pool)
            .await?
            .as_ref()
            .map(user_row)
            .transpose()
        })
        .await
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query(&format!(
                "SELECT {USER_COLUMNS} FROM users ORDER BY username"
            ))
            .fetch_all(pool)
            .await?
            .iter()
            .map(user_row)
            .collect()
        })
        .await
    }

    async fn delete_user(&self, username: &str, now: i64, exp: i64) -> Result<bool, StoreError> {
        let pool = &self.pool;
        let notices = self.notices;
        retry(self.deadline, || async move {
            let mut tx = pool.begin().await?;
            // Locks the user first, so a concurrent delete of the same user waits instead of revoking twice.
            let id: Option<String> =
                sqlx::query_scalar("SELECT id FROM users WHERE username = $1 FOR UPDATE")
                    .bind(username)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(id) = id else { return Ok(false) };
            revoke_grants_of(&mut tx, notices, GrantOwner::User(&id), now, exp).await?;
            keep_last_use(&mut tx, Deleting::OfUser(&id)).await?;
            sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn set_password(&self, username: &str, hash: &str) -> Result<bool, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            let mut tx = pool.begin().await?;
            let id: Option<String> = sqlx::query_scalar(
                "UPDATE users SET password_hash = $1 WHERE username = $2 RETURNING id",
            )
            .bind(hash)
            .bind(username)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(id) = id else { return Ok(false) };
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn count_users(&self) -> Result<i64, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query_scalar("SELECT COUNT(*) FROM users")
                .fetch_one(pool)
                .await
        })
        .await
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query(
                "INSERT INTO sessions (id_hash, user_id, csrf_key, created_at, expires_at, preferred_username, \
                 email, idp) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(s.id_hash.as_str())
            .bind(&s.user_id)
            .bind(s.csrf_key.expose())
            .bind(s.created_at)
            .bind(s.expires_at)
            .bind(&s.identity.preferred_username)
            .bind(&s.identity.email)
            .bind(&s.identity.idp)
            .execute(pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn session(
        &self,
        id_hash: &TokenHash,
        now: i64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            let row = sqlx::query(
                "SELECT s.id_hash, s.user_id, s.csrf_key, s.created_at, s.expires_at, s.email, s.idp, u.username, \
                 COALESCE(s.preferred_username, u.username) AS preferred_username \
                 FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1 AND s.expires_at > $2",
            )
            .bind(id_hash.as_str())
            .bind(now)
            .fetch_optional(pool)
            .await?;
            row.map(|r| {
                Ok(SessionRecord {
                    id_hash: TokenHash::from_stored(r.try_get("id_hash")?),
                    user_id: r.try_get("user_id")?,
                    username: r.try_get("username")?,
                    identity: identity_row(&r)?,
                    csrf_key: Secret::new(r.try_get::<String, _>("csrf_key")?),
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn delete_session(&self, id_hash: &TokenHash) -> Result<(), StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
                .bind(id_hash.as_str())
                .execute(pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
    ) -> Result<Option<String>, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query_scalar(
                "SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2 AND resource = $3",
            )
            .bind(user_id)
            .bind(client_id)
            .bind(resource)
            .fetch_optional(pool)
            .await
        })
        .await
    }

    async fn has_consented(&self, user_id: &str, client_id: &str) -> Result<bool, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query_scalar::<_, i32>(
                "SELECT 1 FROM consents WHERE user_id = $1 AND client_id = $2 LIMIT 1",
            )
            .bind(user_id)
            .bind(client_id)
            .fetch_optional(pool)
            .await
            .map(|r| r.is_some())
        })
        .await
    }

    async fn save_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
        scope: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query(
                "INSERT INTO consents (user_id, client_id, resource, scope, updated_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (user_id, client_id, resource) DO UPDATE SET scope = excluded.scope, updated_at = excluded.updated_at",
            )
            .bind(user_id)
            .bind(client_id)
            .bind(resource)
            .bind(scope)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(())
        })
        .await
    }
}
