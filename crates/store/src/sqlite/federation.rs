//! [`FederationStore`] on SQLite: identities at upstream providers, pending upstream sign-ins and the sealed
//! upstream tokens. The single-use and lease transitions are one conditional statement each on the one writer
//! connection (`DELETE … WHERE expires_at > ? RETURNING`, `UPDATE … WHERE refreshing_until <= ?`), so exactly
//! one of concurrent callers wins; operations with several statements run under their own savepoint.

use super::group_commit::Undo;
use super::{user_row, SqliteStore};
use async_trait::async_trait;
use portcullis_authz::secret::TokenHash;
use portcullis_authz::store::*;
use portcullis_authz::vault::KeyId;
use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row};

const IDENTITY_INSERT: &str =
    "INSERT INTO identities (provider, subject, user_id, email, email_verified, \
     username, groups_json, created_at, last_login_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";

fn groups_json(groups: &[String]) -> String {
    serde_json::Value::from(groups).to_string()
}

fn identity_row(r: &Row<'_>) -> rusqlite::Result<IdentityRecord> {
    let groups: String = r.get("groups_json")?;
    let groups = serde_json::from_str(&groups)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, Type::Text, Box::new(e)))?;
    Ok(IdentityRecord {
        provider: r.get("provider")?,
        subject: r.get("subject")?,
        user_id: r.get("user_id")?,
        email: r.get("email")?,
        email_verified: r.get::<_, i64>("email_verified")? != 0,
        username: r.get("username")?,
        groups,
        created_at: r.get("created_at")?,
        last_login_at: r.get("last_login_at")?,
    })
}

fn insert_identity(conn: &Connection, i: &IdentityRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(IDENTITY_INSERT)?
        .execute(params![
            i.provider,
            i.subject,
            i.user_id,
            i.email,
            i.email_verified,
            i.username,
            groups_json(&i.groups),
            i.created_at,
            i.last_login_at
        ])
        .map(drop)
}

fn state_row(r: &Row<'_>) -> rusqlite::Result<UpstreamStateRecord> {
    Ok(UpstreamStateRecord {
        state_hash: TokenHash::from_stored(r.get("state_hash")?),
        provider: r.get("provider")?,
        key_id: KeyId::from_stored(r.get("key_id")?),
        sealed: r.get("sealed")?,
        expires_at: r.get("expires_at")?,
    })
}

fn tokens_row(r: &Row<'_>) -> rusqlite::Result<UpstreamTokenRecord> {
    Ok(UpstreamTokenRecord {
        user_id: r.get("user_id")?,
        provider: r.get("provider")?,
        key_id: KeyId::from_stored(r.get("key_id")?),
        sealed: r.get("sealed")?,
        expires_at: r.get("expires_at")?,
        refreshing_until: r.get("refreshing_until")?,
        updated_at: r.get("updated_at")?,
    })
}

fn sealed_token_row(r: &Row<'_>) -> rusqlite::Result<SealedRow> {
    Ok(SealedRow {
        key: SealedRowKey::UpstreamToken {
            user_id: r.get("user_id")?,
            provider: r.get("provider")?,
        },
        key_id: KeyId::from_stored(r.get("key_id")?),
        sealed: r.get("sealed")?,
    })
}

fn sealed_state_row(r: &Row<'_>) -> rusqlite::Result<SealedRow> {
    Ok(SealedRow {
        key: SealedRowKey::UpstreamState {
            state_hash: TokenHash::from_stored(r.get("state_hash")?),
        },
        key_id: KeyId::from_stored(r.get("key_id")?),
        sealed: r.get("sealed")?,
    })
}

/// Replaces one sealed value if the row still holds what was read; returns whether it did.
fn reseal_one(conn: &Connection, r: &Reseal) -> rusqlite::Result<bool> {
    let (old_id, old) = (r.row.key_id.as_str(), &r.row.sealed);
    let (new_id, new) = (r.key_id.as_str(), &r.sealed);
    let n = match &r.row.key {
        SealedRowKey::UpstreamToken { user_id, provider } => conn
            .prepare_cached(
                "UPDATE upstream_tokens SET key_id = ?, sealed = ? \
                 WHERE user_id = ? AND provider = ? AND key_id = ? AND sealed = ?",
            )?
            .execute(params![new_id, new, user_id, provider, old_id, old])?,
        SealedRowKey::UpstreamState { state_hash } => conn
            .prepare_cached(
                "UPDATE upstream_states SET key_id = ?, sealed = ? \
                 WHERE state_hash = ? AND key_id = ? AND sealed = ?",
            )?
            .execute(params![new_id, new, state_hash.as_str(), old_id, old])?,
    };
    Ok(n == 1)
}

/// The listing query of a table after a row: the keyset condition and its parameters.
fn sealed_page(
    conn: &Connection,
    table: SealedTable,
    after: Option<&SealedRowKey>,
    limit: u32,
) -> rusqlite::Result<Vec<SealedRow>> {
    match (table, after) {
        (SealedTable::UpstreamTokens, None) => conn
            .prepare_cached(
                "SELECT user_id, provider, key_id, sealed FROM upstream_tokens \
                 ORDER BY user_id, provider LIMIT ?",
            )?
            .query_map([limit], sealed_token_row)?
            .collect(),
        (SealedTable::UpstreamTokens, Some(SealedRowKey::UpstreamToken { user_id, provider })) => {
            conn.prepare_cached(
                "SELECT user_id, provider, key_id, sealed FROM upstream_tokens \
                 WHERE (user_id, provider) > (?, ?) ORDER BY user_id, provider LIMIT ?",
            )?
            .query_map(params![user_id, provider, limit], sealed_token_row)?
            .collect()
        }
        (SealedTable::UpstreamStates, None) => conn
            .prepare_cached(
                "SELECT state_hash, key_id, sealed FROM upstream_states ORDER BY state_hash LIMIT ?",
            )?
            .query_map([limit], sealed_state_row)?
            .collect(),
        (SealedTable::UpstreamStates, Some(SealedRowKey::UpstreamState { state_hash })) => conn
            .prepare_cached(
                "SELECT state_hash, key_id, sealed FROM upstream_states WHERE state_hash > ? \
                 ORDER BY state_hash LIMIT ?",
            )?
            .query_map(params![state_hash.as_str(), limit], sealed_state_row)?
            .collect(),
        _ => Err(rusqlite::Error::InvalidParameterName(
            "the cursor is a row of another table".into(),
        )),
    }
}

#[async_trait]
impl FederationStore for SqliteStore {
    async fn identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<IdentityRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT * FROM identities WHERE provider = ? AND subject = ?")?
                .query_row([provider, subject], identity_row)
                .optional()
        })
    }

    async fn identities_of(&self, user_id: &str) -> Result<Vec<IdentityRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT * FROM identities WHERE user_id = ? ORDER BY provider")?
                .query_map([user_id], identity_row)?
                .collect()
        })
    }

    async fn list_identities(&self) -> Result<Vec<IdentityRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT * FROM identities ORDER BY user_id, provider")?
                .query_map([], identity_row)?
                .collect()
        })
    }

    async fn create_user_with_identity(
        &self,
        u: &UserRecord,
        identity: &IdentityRecord,
    ) -> Result<(), StoreError> {
        let (u, identity) = (u.clone(), identity.clone());
        self.write(Undo::Savepoint, move |conn| {
            conn.prepare_cached(
                "INSERT INTO users (id, username, password_hash, created_at) VALUES (?, ?, ?, ?)",
            )?
            .execute(params![u.id, u.username, u.password_hash, u.created_at])?;
            insert_identity(conn, &identity)
        })
        .await
    }

    async fn link_identity(&self, identity: &IdentityRecord) -> Result<(), StoreError> {
        let identity = identity.clone();
        self.write(Undo::Statement, move |conn| {
            insert_identity(conn, &identity)
        })
        .await
    }

    async fn unlink_identity(&self, user_id: &str, provider: &str) -> Result<bool, StoreError> {
        let (user_id, provider) = (user_id.to_owned(), provider.to_owned());
        self.write(Undo::Savepoint, move |conn| {
            let n = conn
                .prepare_cached("DELETE FROM identities WHERE user_id = ? AND provider = ?")?
                .execute([&user_id, &provider])?;
            conn.prepare_cached("DELETE FROM upstream_tokens WHERE user_id = ? AND provider = ?")?
                .execute([&user_id, &provider])?;
            Ok(n == 1)
        })
        .await
    }

    async fn touch_identity(&self, i: &IdentityRecord) -> Result<bool, StoreError> {
        let i = i.clone();
        self.write(Undo::Statement, move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE identities SET email = ?, email_verified = ?, username = ?, groups_json = ?, \
                     last_login_at = ? WHERE provider = ? AND subject = ?",
                )?
                .execute(params![
                    i.email,
                    i.email_verified,
                    i.username,
                    groups_json(&i.groups),
                    i.last_login_at,
                    i.provider,
                    i.subject
                ])?;
            Ok(n == 1)
        })
        .await
    }

    async fn user_by_id(&self, user_id: &str) -> Result<Option<UserRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT * FROM users WHERE id = ?")?
                .query_row([user_id], user_row)
                .optional()
        })
    }

    async fn insert_upstream_state(&self, s: &UpstreamStateRecord) -> Result<(), StoreError> {
        let s = s.clone();
        self.write(Undo::Statement, move |conn| {
            conn.prepare_cached(
                "INSERT INTO upstream_states (state_hash, provider, key_id, sealed, expires_at) \
                 VALUES (?, ?, ?, ?, ?)",
            )?
            .execute(params![
                s.state_hash.as_str(),
                s.provider,
                s.key_id.as_str(),
                s.sealed,
                s.expires_at
            ])
            .map(drop)
        })
        .await
    }

    async fn take_upstream_state(
        &self,
        state_hash: &TokenHash,
        now: i64,
    ) -> Result<Option<UpstreamStateRecord>, StoreError> {
        let state_hash = state_hash.clone();
        self.write(Undo::Statement, move |conn| {
            conn.prepare_cached(
                "DELETE FROM upstream_states WHERE state_hash = ? AND expires_at > ? RETURNING *",
            )?
            .query_row(params![state_hash.as_str(), now], state_row)
            .optional()
        })
        .await
    }

    async fn put_upstream_tokens(&self, t: &UpstreamTokenRecord) -> Result<(), StoreError> {
        let t = t.clone();
        self.write(Undo::Statement, move |conn| {
            conn.prepare_cached(
                "INSERT INTO upstream_tokens (user_id, provider, key_id, sealed, expires_at, refreshing_until, \
                 updated_at) VALUES (?, ?, ?, ?, ?, 0, ?) ON CONFLICT (user_id, provider) DO UPDATE SET \
                 key_id = excluded.key_id, sealed = excluded.sealed, expires_at = excluded.expires_at, \
                 refreshing_until = 0, updated_at = excluded.updated_at",
            )?
            .execute(params![
                t.user_id,
                t.provider,
                t.key_id.as_str(),
                t.sealed,
                t.expires_at,
                t.updated_at
            ])
            .map(drop)
        })
        .await
    }

    async fn upstream_tokens(
        &self,
        user_id: &str,
        provider: &str,
    ) -> Result<Option<UpstreamTokenRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT * FROM upstream_tokens WHERE user_id = ? AND provider = ?")?
                .query_row([user_id, provider], tokens_row)
                .optional()
        })
    }

    async fn lease_upstream_refresh(
        &self,
        user_id: &str,
        provider: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        let (user_id, provider) = (user_id.to_owned(), provider.to_owned());
        self.write(Undo::Statement, move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE upstream_tokens SET refreshing_until = ? \
                     WHERE user_id = ? AND provider = ? AND refreshing_until <= ?",
                )?
                .execute(params![until, user_id, provider, now])?;
            Ok(n == 1)
        })
        .await
    }

    async fn delete_upstream_tokens(
        &self,
        user_id: &str,
        provider: &str,
    ) -> Result<bool, StoreError> {
        let (user_id, provider) = (user_id.to_owned(), provider.to_owned());
        self.write(Undo::Statement, move |conn| {
            let n = conn
                .prepare_cached("DELETE FROM upstream_tokens WHERE user_id = ? AND provider = ?")?
                .execute([&user_id, &provider])?;
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
        self.read(|conn| sealed_page(conn, table, after, limit))
    }

    async fn reseal(&self, batch: &[Reseal]) -> Result<u64, StoreError> {
        let batch = batch.to_vec();
        self.write(Undo::Savepoint, move |conn| {
            let mut n = 0;
            for r in &batch {
                n += u64::from(reseal_one(conn, r)?);
            }
            Ok(n)
        })
        .await
    }
}
