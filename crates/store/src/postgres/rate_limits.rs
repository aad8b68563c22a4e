//! Login throttling counters shared by every instance: one atomic upsert per event, so concurrent failed
//! logins on different instances are all counted.

use super::{retry, PostgresStore};
use async_trait::async_trait;
use portcullis_authz::store::*;

#[async_trait]
impl RateLimitStore for PostgresStore {
    async fn hit(&self, key: &str, window_start: i64, expires_at: i64) -> Result<u32, StoreError> {
        let pool = &self.pool;
        // `INSERT … ON CONFLICT DO UPDATE` takes the row lock, so two concurrent hits serialise on the row and
        // both count (READ COMMITTED re-reads the updated row).
        let hits: i64 = retry(self.deadline, || async move {
            sqlx::query_scalar(
                "INSERT INTO rate_limits (limit_key, window_start, hits, expires_at) VALUES ($1, $2, 1, $3) \
                 ON CONFLICT (limit_key, window_start) DO UPDATE SET hits = rate_limits.hits + 1 \
                 RETURNING hits",
            )
            .bind(key)
            .bind(window_start)
            .bind(expires_at)
            .fetch_one(pool)
            .await
        })
        .await?;
        Ok(u32::try_from(hits).unwrap_or(u32::MAX))
    }

    async fn hits(&self, key: &str, window_start: i64) -> Result<u32, StoreError> {
        let pool = &self.pool;
        let hits: Option<i64> = retry(self.deadline, || async move {
            sqlx::query_scalar(
                "SELECT hits FROM rate_limits WHERE limit_key = $1 AND window_start = $2",
            )
            .bind(key)
            .bind(window_start)
            .fetch_optional(pool)
            .await
        })
        .await?;
        Ok(hits.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)))
    }

    async fn clear_hits(&self, key: &str) -> Result<(), StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query("DELETE FROM rate_limits WHERE limit_key = $1")
                .bind(key)
                .execute(pool)
                .await
        })
        .await?;
        Ok(())
    }

    async fn reserve_hit(
        &self,
        key: &str,
        window_start: i64,
        expires_at: i64,
        limit: u32,
    ) -> Result<Option<u32>, StoreError> {
        let pool = &self.pool;
        // The conflicting row is locked before the `WHERE` is evaluated (READ COMMITTED re-checks it on the
        // latest version), so concurrent reservations serialise on the row; a full window returns no row.
        let hits: Option<i64> = retry(self.deadline, || async move {
            sqlx::query_scalar(
                "INSERT INTO rate_limits (limit_key, window_start, hits, expires_at) VALUES ($1, $2, 1, $3) \
                 ON CONFLICT (limit_key, window_start) DO UPDATE SET hits = rate_limits.hits + 1 \
                 WHERE rate_limits.hits < $4 RETURNING hits",
            )
            .bind(key)
            .bind(window_start)
            .bind(expires_at)
            .bind(i64::from(limit))
            .fetch_optional(pool)
            .await
        })
        .await?;
        Ok(hits.map(|n| u32::try_from(n).unwrap_or(u32::MAX)))
    }

    async fn release_hit(&self, key: &str, window_start: i64) -> Result<(), StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query(
                "UPDATE rate_limits SET hits = hits - 1 \
                 WHERE limit_key = $1 AND window_start = $2 AND hits > 0",
            )
            .bind(key)
            .bind(window_start)
            .execute(pool)
            .await
        })
        .await?;
        Ok(())
    }
}
