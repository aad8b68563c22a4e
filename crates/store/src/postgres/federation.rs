//! PostgreSQL: identities at upstream providers, pending upstream sign-ins and the sealed upstream tokens.
//!
//! The single-use and lease transitions are one conditional statement each, safe across instances at READ
//! COMMITTED for the reason given in the parent module: `DELETE … WHERE expires_at > $2 RETURNING` and
//! `UPDATE … WHERE refreshing_until <= $now` block on the first caller's row lock and re-check their `WHERE`
//! against what it committed, so exactly one caller takes the state or the lease.

use super::{retry, user_row, PostgresStore, USER_COLUMNS};
use async_trait::async_trait;
use portcullis_authz::secret::TokenHash;
use portcullis_authz::store::*;
use portcullis_authz::vault::KeyId;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

const IDENTITY_COLUMNS: &str =
    "provider, subject, user_id, email, email_verified, username, groups_json, \
                                created_at, last_login_at";
const STATE_COLUMNS: &str = "state_hash, provider, key_id, sealed, expires_at";
const TOKEN_COLUMNS: &str =
    "user_id, provider, key_id, sealed, expires_at, refreshing_until, updated_at";

fn groups_json(groups: &[String]) -> String {
    serde_json::Value::from(groups).to_string()
}

fn identity_row(r: &PgRow) -> Result<IdentityRecord, sqlx::Error> {
    let groups: String = r.try_get("groups_json")?;
    Ok(IdentityRecord {
        provider: r.try_get("provider")?,
        subject: r.try_get("subject")?,
        user_id: r.try_get("user_id")?,
        email: r.try_get("email")?,
        email_verified: r.try_get("email_verified")?,
        username: r.try_get("username")?,
        groups: serde_json::from_str(&groups).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        created_at: r.try_get("created_at")?,
        last_login_at: r.try_get("last_login_at")?,
    })
}

fn state_row(r: &PgRow) -> Result<UpstreamStateRecord, sqlx::Error> {
    Ok(UpstreamStateRecord {
        state_hash: TokenHash::from_stored(r.try_get("state_hash")?),
        provider: r.try_get("provider")?,
        key_id: KeyId::from_stored(r.try_get("key_id")?),
        sealed: r.try_get("sealed")?,
        expires_at: r.try_get("expires_at")?,
    })
}

fn tokens_row(r: &PgRow) -> Result<UpstreamTokenRecord, sqlx::Error> {
    Ok(UpstreamTokenRecord {
        user_id: r.try_get("user_id")?,
        provider: r.try_get("provider")?,
        key_id: KeyId::from_stored(r.try_get("key_id")?),
        sealed: r.try_get("sealed")?,
        expires_at: r.try_get("expires_at")?,
        refreshing_until: r.try_get("refreshing_until")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn sealed_row(table: SealedTable, r: &PgRow) -> Result<SealedRow, sqlx::Error> {
    let key = match table {
        SealedTable::UpstreamTokens => SealedRowKey::UpstreamToken {
            user_id: r.try_get("user_id")?,
            provider: r.try_get("provider")?,
        },
        SealedTable::UpstreamStates => SealedRowKey::UpstreamState {
            state_hash: TokenHash::from_stored(r.try_get("state_hash")?),
        },
    };
    Ok(SealedRow {
        key,
        key_id: KeyId::from_stored(r.try_get("key_id")?),
        sealed: r.try_get("sealed")?,
    })
}

async fn insert_identity(tx: &mut PgConnection, i: &IdentityRecord) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO identities ({IDENTITY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(&i.provider)
    .bind(&i.subject)
    .bind(&i.user_id)
    .bind(&i.email)
    .bind(i.email_verified)
    .bind(&i.username)
    .bind(groups_json(&i.groups))
    .bind(i.created_at)
    .bind(i.last_login_at)
    .execute(tx)
    .await?;
    Ok(())
}

/// Replaces one sealed value if the row still holds what was read; returns whether it did.
async fn reseal_one(tx: &mut PgConnection, r: &Reseal) -> Result<bool, sqlx::Error> {
    let (new_id, new, old_id, old) = (
        r.key_id.as_str(),
        &r.sealed,
        r.row.key_id.as_str(),
        &r.row.sealed,
    );
    let q = match &r.row.key {
        SealedRowKey::UpstreamToken { user_id, provider } => sqlx::query(
            "UPDATE upstream_tokens SET key_id = $1, sealed = $2 \
             WHERE key_id = $3 AND sealed = $4 AND user_id = $5 AND provider = $6",
        )
        .bind(new_id)
        .bind(new)
        .bind(old_id)
        .bind(old)
        .bind(user_id)
        .bind(provider),
        SealedRowKey::UpstreamState { state_hash } => sqlx::query(
            "UPDATE upstream_states SET key_id = $1, sealed = $2 \
             WHERE key_id = $3 AND sealed = $4 AND state_hash = $5",
        )
        .bind(new_id)
        .bind(new)
        .bind(old_id)
        .bind(old)
        .bind(state_hash.as_str()),
    };
    Ok(q.execute(tx).await?.rows_affected() == 1)
}

/// A page of sealed rows: the table and the row to continue after.
#[derive(Clone, Copy)]
enum Page<'a> {
    Tokens(Option<(&'a str, &'a str)>),
    States(Option<&'a str>),
}

impl<'a> Page<'a> {
    fn of(table: SealedTable, after: Option<&'a SealedRowKey>) -> Result<Self, StoreError> {
        match (table, after) {
            (SealedTable::UpstreamTokens, None) => Ok(Self::Tokens(None)),
            (SealedTable::UpstreamStates, None) => Ok(Self::States(None)),
            (
                SealedTable::UpstreamTokens,
                Some(SealedRowKey::UpstreamToken { user_id, provider }),
            ) => Ok(Self::Tokens(Some((user_id, provider)))),
            (SealedTable::UpstreamStates, Some(SealedRowKey::UpstreamState { state_hash })) => {
                Ok(Self::States(Some(state_hash.as_str())))
            }
            _ => Err(StoreError::Other(
                "the cursor is a row of another table".into(),
            )),
        }
    }

    /// Keyset pagination: the row-value comparison follows the ORDER BY.
    async fn fetch(self, pool: &sqlx::PgPool, limit: i64) -> Result<Vec<PgRow>, sqlx::Error> {
        let q = match self {
            Self::Tokens(None) => sqlx::query(
                "SELECT user_id, provider, key_id, sealed FROM upstream_tokens \
                 ORDER BY user_id, provider LIMIT $1",
            )
            .bind(limit),
            Self::Tokens(Some((user_id, provider))) => sqlx::query(
                "SELECT user_id, provider, key_id, sealed FROM upstream_tokens \
                 WHERE (user_id, provider) > ($1, $2) ORDER BY user_id, provider LIMIT $3",
            )
            .bind(user_id)
            .bind(provider)
            .bind(limit),
            Self::States(None) => sqlx::query(
                "SELECT state_hash, key_id, sealed FROM upstream_states ORDER BY state_hash LIMIT $1",
            )
            .bind(limit),
            Self::States(Some(hash)) => sqlx::query(
                "SELECT state_hash, key_id, sealed FROM upstream_states WHERE state_hash > $1 \
                 ORDER BY state_hash LIMIT $2",
            )
            .bind(hash)
            .bind(limit),
        };
        q.fetch_all(pool).await
    }
}

#[async_trait]
impl FederationStore for PostgresStore {
    async fn identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<IdentityRecord>, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query(&format!(
                "SELECT {IDENTITY_COLUMNS} FROM identities WHERE provider = $1 AND subject = $2"
            ))
            .bind(provider)
            .bind(subject)
            .fetch_optional(pool)
            .await?
            .as_ref()
            .map(identity_row)
            .transpose()
        })
        .await
    }

    async fn identities_of(&self, user_id: &str) -> Result<Vec<IdentityRecord>, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query(&format!(
                "SELECT {IDENTITY_COLUMNS} FROM identities WHERE user_id = $1 ORDER BY provider"
            ))
            .bind(user_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(identity_row)
            .collect()
        })
        .await
    }

    async fn list_identities(&self) -> Result<Vec<IdentityRecord>, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query(&format!(
                "SELECT {IDENTITY_COLUMNS} FROM identities ORDER BY user_id, provider"
            ))
            .fetch_all(pool)
            .await?
            .iter()
            .map(identity_row)
            .collect()
        })
        .await
    }

    async fn create_user_with_identity(
        &self,
        u: &UserRecord,
        identity: &IdentityRecord,
    ) -> Result<(), StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&u.id)
            .bind(&u.username)
            .bind(&u.password_hash)
            .bind(u.created_at)
            .execute(&mut *tx)
            .await?;
            insert_identity(&mut tx, identity).await?;
            tx.commit().await
        })
        .await
    }

    async fn link_identity(&self, identity: &IdentityRecord) -> Result<(), StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            let mut conn = pool.acquire().await?;
            insert_identity(&mut conn, identity).await
        })
        .await
    }

    async fn unlink_identity(&self, user_id: &str, provider: &str) -> Result<bool, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            let mut tx = pool.begin().await?;
            let n = sqlx::query("DELETE FROM identities WHERE user_id = $1 AND provider = $2")
                .bind(user_id)
                .bind(provider)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM upstream_tokens WHERE user_id = $1 AND provider = $2")
                .bind(user_id)
                .bind(provider)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(n == 1)
        })
        .await
    }

    async fn touch_identity(&self, i: &IdentityRecord) -> Result<bool, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            let n = sqlx::query(
                "UPDATE identities SET email = $1, email_verified = $2, username = $3, groups_json = $4, \
                 last_login_at = $5 WHERE provider = $6 AND subject = $7",
            )
            .bind(&i.email)
            .bind(i.email_verified)
            .bind(&i.username)
            .bind(groups_json(&i.groups))
            .bind(i.last_login_at)
            .bind(&i.provider)
            .bind(&i.subject)
            .execute(pool)
            .await?
            .rows_affected();
            Ok(n == 1)
        })
        .await
    }

    async fn user_by_id(&self, user_id: &str) -> Result<Option<UserRecord>, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
                .bind(user_id)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(user_row)
                .transpose()
        })
        .await
    }

    async fn insert_upstream_state(&self, s: &UpstreamStateRecord) -> Result<(), StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query(&format!(
                "INSERT INTO upstream_states ({STATE_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
            ))
            .bind(s.state_hash.as_str())
            .bind(&s.provider)
            .bind(s.key_id.as_str())
            .bind(&s.sealed)
            .bind(s.expires_at)
            .execute(pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn take_upstream_state(
        &self,
        state_hash: &TokenHash,
        now: i64,
    ) -> Result<Option<UpstreamStateRecord>, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query(&format!(
                "DELETE FROM upstream_states WHERE state_hash = $1 AND expires_at > $2 \
                 RETURNING {STATE_COLUMNS}"
            ))
            .bind(state_hash.as_str())
            .bind(now)
            .fetch_optional(pool)
            .await?
            .as_ref()
            .map(state_row)
            .transpose()
        })
        .await
    }

    async fn put_upstream_tokens(&self, t: &UpstreamTokenRecord) -> Result<(), StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query(&format!(
                "INSERT INTO upstream_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, 0, $6) \
                 ON CONFLICT (user_id, provider) DO UPDATE SET key_id = excluded.key_id, \
                 sealed = excluded.sealed, expires_at = excluded.expires_at, refreshing_until = 0, \
                 updated_at = excluded.updated_at"
            ))
            .bind(&t.user_id)
            .bind(&t.provider)
            .bind(t.key_id.as_str())
            .bind(&t.sealed)
            .bind(t.expires_at)
            .bind(t.updated_at)
            .execute(pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn upstream_tokens(
        &self,
        user_id: &str,
        provider: &str,
    ) -> Result<Option<UpstreamTokenRecord>, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query(&format!(
                "SELECT {TOKEN_COLUMNS} FROM upstream_tokens WHERE user_id = $1 AND provider = $2"
            ))
            .bind(user_id)
            .bind(provider)
            .fetch_optional(pool)
            .await?
            .as_ref()
            .map(tokens_row)
            .transpose()
        })
        .await
    }

    async fn lease_upstream_refresh(
        &self,
        user_id: &str,
        provider: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            let n = sqlx::query(
                "UPDATE upstream_tokens SET refreshing_until = $1 \
                 WHERE user_id = $2 AND provider = $3 AND refreshing_until <= $4",
            )
            .bind(until)
            .bind(user_id)
            .bind(provider)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected();
            Ok(n == 1)
        })
        .await
    }

    async fn delete_upstream_tokens(
        &self,
        user_id: &str,
        provider: &str,
    ) -> Result<bool, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            let n = sqlx::query("DELETE FROM upstream_tokens WHERE user_id = $1 AND provider = $2")
                .bind(user_id)
                .bind(provider)
                .execute(pool)
                .await?
                .rows_affected();
            Ok(n == 1)
        })
        .await
    }

    async fn sealed_rows(
        &self,
        table: SealedTable,
        after: Option<&SealedRowKey>,
        limit: u32,
    ) -> Result<Vec<SealedRow>, StoreError> {
        let page = Page::of(table, after)?;
        let pool = &self.pool;
        retry(self.deadline, || async move {
            page.fetch(pool, i64::from(limit))
                .await?
                .iter()
                .map(|r| sealed_row(table, r))
                .collect()
        })
        .await
    }

    async fn reseal(&self, batch: &[Reseal]) -> Result<u64, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            let mut tx = pool.begin().await?;
            let mut n = 0;
            for r in batch {
                n += u64::from(reseal_one(&mut tx, r).await?);
            }
            tx.commit().await?;
            Ok(n)
        })
        .await
    }
}
