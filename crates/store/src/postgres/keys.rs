//! PostgreSQL: the signing keys every instance shares (RFC 7517 JWKS, RFC 9068 access tokens), and the
//! health check behind `/readyz`.

use super::{key_row, retry, PostgresStore, KEY_COLUMNS, MAX_ATTEMPTS};
use async_trait::async_trait;
use portcullis_authz::store::*;

#[async_trait]
impl KeyStore for PostgresStore {
    async fn signing_keys(&self, now: i64) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query(&format!(
                "SELECT {KEY_COLUMNS} FROM signing_keys WHERE active OR publish_until > $1 ORDER BY created_at, kid"
            ))
            .bind(now)
            .fetch_all(pool)
            .await?
            .iter()
            .map(key_row)
            .collect()
        })
        .await
    }

    async fn insert_first_key(&self, k: &SigningKeyRecord) -> Result<bool, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            // Instances starting together on an empty database all pass the `NOT EXISTS` (each statement sees
            // only committed rows), then meet in the partial unique index `signing_keys_one_active`: the
            // first insert wins, the others wait for it to commit and then hit the conflict, which
            // `ON CONFLICT DO NOTHING` (no target: any unique index, partial ones included) turns into zero
            // rows. Exactly one active key remains; losers read it back.
            let n = sqlx::query(
                "INSERT INTO signing_keys (kid, alg, private_key, public_jwk, created_at, active) \
                 SELECT $1, $2, $3, $4, $5, TRUE WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE active) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&k.kid)
            .bind(&k.alg)
            .bind(&k.private_key)
            .bind(&k.public_jwk)
            .bind(k.created_at)
            .execute(pool)
            .await?
            .rows_affected();
            Ok(n == 1)
        })
        .await
    }

    async fn rotate_key(&self, k: &SigningKeyRecord, until: i64) -> Result<(), StoreError> {
        // With three or more rotations at once, a waiter can still find its fresh snapshot overtaken and hit
        // the one-active-key index; that rotation simply runs again.
        let mut attempts = 1;
        loop {
            match self.rotate_key_once(k, until).await {
                Err(StoreError::Conflict(_)) if attempts < MAX_ATTEMPTS => attempts += 1,
                result => return result,
            }
        }
    }
}

impl PostgresStore {
    async fn rotate_key_once(&self, k: &SigningKeyRecord, until: i64) -> Result<(), StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            let mut tx = pool.begin().await?;
            // Serialise rotations: a second rotator waits here for the first to commit. Its next statement
            // then runs on a fresh snapshot, sees the first rotator's new key as the active one and retires
            // it, so two rotations both succeed one after the other (as on SQLite) instead of the second
            // failing on the one-active-key index.
            sqlx::query("SELECT kid FROM signing_keys WHERE active FOR UPDATE")
                .fetch_all(&mut *tx)
                .await?;
            sqlx::query("UPDATE signing_keys SET active = FALSE, publish_until = $1 WHERE active")
                .bind(until)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO signing_keys (kid, alg, private_key, public_jwk, created_at, active) \
                 VALUES ($1, $2, $3, $4, $5, TRUE)",
            )
            .bind(&k.kid)
            .bind(&k.alg)
            .bind(&k.private_key)
            .bind(&k.public_jwk)
            .bind(k.created_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl HealthStore for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(crate::error::map)?;
        Ok(())
    }
}
