//! The SQLite backend: embedded, the default.
//!
//! Durability: WAL journal with `synchronous=FULL`, so every commit is fsynced before the call returns and a 2xx
//! built on it survives power loss. Writes go through one connection (SQLite allows one writer at a time; a
//! single connection avoids `SQLITE_BUSY` upgrade deadlocks between our own connections); reads use a pool.
//! Single-use transitions are conditional `UPDATE … WHERE used_at IS NULL` statements inside one transaction.
//!
//! The hot writes (registration, codes, redemption, rotation, revocation, sessions) go through
//! [`group_commit`]: concurrent writes share one transaction and one fsync, each in its own savepoint, and
//! every caller is answered only after the shared `COMMIT`. The rare writes (admin commands, key rotation,
//! purge) use the writer connection directly.

mod group_commit;

use crate::error::map;
use crate::StoreOptions;
use async_trait::async_trait;
use group_commit::{op, GroupCommit};
use portcullis_authz::secret::{Secret, TokenHash};
use portcullis_authz::store::*;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;
use std::str::FromStr;
use std::time::Duration;

/// SQLite storage.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    group: GroupCommit,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl SqliteStore {
    /// Opens (creating if needed) the database and applies migrations.
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let timeout = Duration::from_millis(options.acquire_timeout_ms);
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(timeout);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(timeout)
            .connect_with(connect.clone())
            .await
            .map_err(map)?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(timeout)
            .connect_with(connect.read_only(true))
            .await
            .map_err(map)?;
        let group = GroupCommit::start(writer.clone());
        Ok(Self {
            writer,
            reader,
            group,
        })
    }

    /// Closes both pools.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

fn client_row(r: &SqliteRow) -> ClientRecord {
    ClientRecord {
        client_id: r.get("client_id"),
        secret_hash: r
            .get::<Option<String>, _>("secret_hash")
            .map(TokenHash::from_stored),
        metadata_json: r.get("metadata"),
        created_at: r.get("created_at"),
    }
}

fn user_row(r: &SqliteRow) -> UserRecord {
    UserRecord {
        id: r.get("id"),
        username: r.get("username"),
        password_hash: r.get("password_hash"),
        created_at: r.get("created_at"),
    }
}

fn code_row(r: &SqliteRow) -> CodeRecord {
    CodeRecord {
        code_hash: TokenHash::from_stored(r.get("code_hash")),
        client_id: r.get("client_id"),
        user_id: r.get("user_id"),
        redirect_uri: r.get("redirect_uri"),
        code_challenge: r.get("code_challenge"),
        scope: r.get("scope"),
        resource: r.get("resource"),
        created_at: r.get("created_at"),
        expires_at: r.get("expires_at"),
        used_at: r.get("used_at"),
        grant_id: r.get("grant_id"),
    }
}

fn grant_row(r: &SqliteRow) -> GrantRecord {
    GrantRecord {
        id: r.get("id"),
        client_id: r.get("client_id"),
        user_id: r.get("user_id"),
        scope: r.get("scope"),
        resource: r.get("resource"),
        created_at: r.get("created_at"),
        expires_at: r.get("expires_at"),
        revoked_at: r.get("revoked_at"),
    }
}

fn key_row(r: &SqliteRow) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: r.get("kid"),
        alg: r.get("alg"),
        private_key: r.get("private_key"),
        public_jwk: r.get("public_jwk"),
        created_at: r.get("created_at"),
        active: r.get::<i64, _>("active") != 0,
        publish_until: r.get("publish_until"),
    }
}

const GRANT_REVOCATION: &str = "grant";
const ACCESS_REVOCATION: &str = "access_token";

/// Revokes every live grant matching `filter` (a column name) = `value`, adding revocation entries.
async fn revoke_grants_where(
    tx: &mut sqlx::SqliteConnection,
    column: &str,
    value: &str,
    now: i64,
    exp: i64,
) -> Result<(), sqlx::Error> {
    let insert = format!(
        "INSERT INTO revocations (kind, value, expires_at) SELECT '{GRANT_REVOCATION}', id, ? FROM grants WHERE {column} = ? AND revoked_at IS NULL"
    );
    sqlx::query(&insert)
        .bind(exp)
        .bind(value)
        .execute(&mut *tx)
        .await?;
    let update =
        format!("UPDATE grants SET revoked_at = ? WHERE {column} = ? AND revoked_at IS NULL");
    sqlx::query(&update)
        .bind(now)
        .bind(value)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

#[async_trait]
impl ClientStore for SqliteStore {
    async fn insert_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        let c = c.clone();
        self.group.run(op(move |conn| Box::pin(async move {
            let sql = "INSERT INTO clients (client_id, secret_hash, metadata, created_at) VALUES (?, ?, ?, ?)";
            Ok(sqlx::query(sql)
                .bind(&c.client_id)
                .bind(c.secret_hash.as_ref().map(TokenHash::as_str))
                .bind(&c.metadata_json)
                .bind(c.created_at)
                .execute(conn)
                .await?
                .rows_affected())
        })))
        .await?;
        Ok(())
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM clients WHERE client_id = ?")
            .bind(client_id)
            .fetch_optional(&self.reader)
            .await
            .map_err(map)?;
        Ok(row.as_ref().map(client_row))
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM clients ORDER BY created_at, client_id")
            .fetch_all(&self.reader)
            .await
            .map_err(map)?;
        Ok(rows.iter().map(client_row).collect())
    }

    async fn delete_client(&self, client_id: &str, now: i64, exp: i64) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map)?;
        revoke_grants_where(&mut tx, "client_id", client_id, now, exp)
            .await
            .map_err(map)?;
        let n = sqlx::query("DELETE FROM clients WHERE client_id = ?")
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        tx.commit().await.map_err(map)?;
        Ok(n.rows_affected() == 1)
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(&self, u: &UserRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, username, password_hash, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(&u.id)
        .bind(&u.username)
        .bind(&u.password_hash)
        .bind(u.created_at)
        .execute(&self.writer)
        .await
        .map_err(map)?;
        Ok(())
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM users WHERE username = ?")
            .bind(username)
            .fetch_optional(&self.reader)
            .await
            .map_err(map)?;
        Ok(row.as_ref().map(user_row))
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM users ORDER BY username")
            .fetch_all(&self.reader)
            .await
            .map_err(map)?;
        Ok(rows.iter().map(user_row).collect())
    }

    async fn delete_user(&self, username: &str, now: i64, exp: i64) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map)?;
        let id: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE username = ?")
            .bind(username)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map)?;
        let Some(id) = id else { return Ok(false) };
        revoke_grants_where(&mut tx, "user_id", &id, now, exp)
            .await
            .map_err(map)?;
        sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        tx.commit().await.map_err(map)?;
        Ok(true)
    }

    async fn set_password(&self, username: &str, hash: &str) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map)?;
        let n = sqlx::query("UPDATE users SET password_hash = ? WHERE username = ?")
            .bind(hash)
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        sqlx::query(
            "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE username = ?)",
        )
        .bind(username)
        .execute(&mut *tx)
        .await
        .map_err(map)?;
        tx.commit().await.map_err(map)?;
        Ok(n.rows_affected() == 1)
    }

    async fn count_users(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.reader)
            .await
            .map_err(map)
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        let s = s.clone();
        self.group.run(op(move |conn| Box::pin(async move {
            let sql = "INSERT INTO sessions (id_hash, user_id, csrf_key, created_at, expires_at) VALUES (?, ?, ?, ?, ?)";
            Ok(sqlx::query(sql)
                .bind(s.id_hash.as_str())
                .bind(&s.user_id)
                .bind(s.csrf_key.expose())
                .bind(s.created_at)
                .bind(s.expires_at)
                .execute(conn)
                .await?
                .rows_affected())
        })))
        .await?;
        Ok(())
    }

    async fn session(
        &self,
        id_hash: &TokenHash,
        now: i64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT s.*, u.username FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = ? AND s.expires_at > ?",
        )
        .bind(id_hash.as_str())
        .bind(now)
        .fetch_optional(&self.reader)
        .await
        .map_err(map)?;
        Ok(row.map(|r| SessionRecord {
            id_hash: TokenHash::from_stored(r.get("id_hash")),
            user_id: r.get("user_id"),
            username: r.get("username"),
            csrf_key: Secret::new(r.get::<String, _>("csrf_key")),
            created_at: r.get("created_at"),
            expires_at: r.get("expires_at"),
        }))
    }

    async fn delete_session(&self, id_hash: &TokenHash) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = ?")
            .bind(id_hash.as_str())
            .execute(&self.writer)
            .await
            .map_err(map)?;
        Ok(())
    }

    async fn consent(&self, user_id: &str, client_id: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT scope FROM consents WHERE user_id = ? AND client_id = ?")
            .bind(user_id)
            .bind(client_id)
            .fetch_optional(&self.reader)
            .await
            .map_err(map)
    }

    async fn save_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO consents (user_id, client_id, scope, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, updated_at = excluded.updated_at",
        )
        .bind(user_id)
        .bind(client_id)
        .bind(scope)
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(map)?;
        Ok(())
    }
}

#[async_trait]
impl GrantStore for SqliteStore {
    async fn insert_code(&self, c: &CodeRecord) -> Result<(), StoreError> {
        let c = c.clone();
        self.group.run(op(move |conn| Box::pin(async move {
            let sql = "INSERT INTO authorization_codes (code_hash, client_id, user_id, redirect_uri, code_challenge, \
                       scope, resource, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
            Ok(sqlx::query(sql)
                .bind(c.code_hash.as_str())
                .bind(&c.client_id)
                .bind(&c.user_id)
                .bind(&c.redirect_uri)
                .bind(&c.code_challenge)
                .bind(&c.scope)
                .bind(&c.resource)
                .bind(c.created_at)
                .bind(c.expires_at)
                .execute(conn)
                .await?
                .rows_affected())
        })))
        .await?;
        Ok(())
    }

    async fn code(&self, code_hash: &TokenHash) -> Result<Option<CodeRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM authorization_codes WHERE code_hash = ?")
            .bind(code_hash.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(map)?;
        Ok(row.as_ref().map(code_row))
    }

    async fn redeem_code(
        &self,
        code_hash: &TokenHash,
        now: i64,
        g: &GrantRecord,
        refresh: Option<&RefreshRecord>,
    ) -> Result<Transition, StoreError> {
        let (code_hash, g, refresh) = (code_hash.clone(), g.clone(), refresh.cloned());
        let won = self.group.run(op(move |conn| Box::pin(async move {
            let sql = "UPDATE authorization_codes SET used_at = ?, grant_id = ? WHERE code_hash = ? AND used_at IS NULL";
            let won = sqlx::query(sql)
                .bind(now)
                .bind(&g.id)
                .bind(code_hash.as_str())
                .execute(&mut *conn)
                .await?
                .rows_affected()
                == 1;
            if !won {
                return Ok(0);
            }
            sqlx::query(
                "INSERT INTO grants (id, client_id, user_id, scope, resource, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&g.id)
            .bind(&g.client_id)
            .bind(&g.user_id)
            .bind(&g.scope)
            .bind(&g.resource)
            .bind(g.created_at)
            .bind(g.expires_at)
            .execute(&mut *conn)
            .await?;
            if let Some(r) = &refresh {
                insert_refresh(conn, r).await?;
            }
            Ok(1)
        })))
        .await?;
        Ok(transition(won))
    }

    async fn revoke_grant_of_code(
        &self,
        code_hash: &TokenHash,
        now: i64,
        exp: i64,
    ) -> Result<Option<String>, StoreError> {
        let gid: Option<Option<String>> =
            sqlx::query_scalar("SELECT grant_id FROM authorization_codes WHERE code_hash = ?")
                .bind(code_hash.as_str())
                .fetch_optional(&self.writer)
                .await
                .map_err(map)?;
        let Some(Some(gid)) = gid else {
            return Ok(None);
        };
        self.revoke_grant(&gid, now, exp).await?;
        Ok(Some(gid))
    }

    async fn refresh_token(
        &self,
        token_hash: &TokenHash,
    ) -> Result<Option<(RefreshRecord, GrantRecord)>, StoreError> {
        let row = sqlx::query(
            "SELECT r.token_hash, r.grant_id, r.created_at AS r_created_at, r.expires_at AS r_expires_at, r.used_at, g.* \
             FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id WHERE r.token_hash = ?",
        )
        .bind(token_hash.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(map)?;
        Ok(row.map(|r| {
            let refresh = RefreshRecord {
                token_hash: TokenHash::from_stored(r.get("token_hash")),
                grant_id: r.get("grant_id"),
                created_at: r.get("r_created_at"),
                expires_at: r.get("r_expires_at"),
                used_at: r.get("used_at"),
            };
            (refresh, grant_row(&r))
        }))
    }

    async fn rotate_refresh(
        &self,
        old: &TokenHash,
        now: i64,
        new: &RefreshRecord,
    ) -> Result<Transition, StoreError> {
        let (old, new) = (old.clone(), new.clone());
        let won = self.group.run(op(move |conn| Box::pin(async move {
            let won = sqlx::query(
                "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL \
                 AND EXISTS (SELECT 1 FROM grants g WHERE g.id = refresh_tokens.grant_id AND g.revoked_at IS NULL)",
            )
            .bind(now)
            .bind(old.as_str())
            .execute(&mut *conn)
            .await?
            .rows_affected()
                == 1;
            if !won {
                return Ok(0);
            }
            insert_refresh(conn, &new).await?;
            Ok(1)
        })))
        .await?;
        Ok(transition(won))
    }

    async fn revoke_grant(&self, grant_id: &str, now: i64, exp: i64) -> Result<bool, StoreError> {
        let grant_id = grant_id.to_owned();
        let n = self
            .group
            .run(op(move |conn| {
                Box::pin(async move {
                    let n = sqlx::query(
                        "UPDATE grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                    )
                    .bind(now)
                    .bind(&grant_id)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    if n == 1 {
                        sqlx::query(
                            "INSERT INTO revocations (kind, value, expires_at) VALUES (?, ?, ?)",
                        )
                        .bind(GRANT_REVOCATION)
                        .bind(&grant_id)
                        .bind(exp)
                        .execute(&mut *conn)
                        .await?;
                    }
                    Ok(n)
                })
            }))
            .await?;
        Ok(n == 1)
    }

    async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        let jti = jti.to_owned();
        self.group
            .run(op(move |conn| {
                Box::pin(async move {
                    Ok(sqlx::query(
                        "INSERT INTO revocations (kind, value, expires_at) VALUES (?, ?, ?)",
                    )
                    .bind(ACCESS_REVOCATION)
                    .bind(&jti)
                    .bind(expires_at)
                    .execute(conn)
                    .await?
                    .rows_affected())
                })
            }))
            .await?;
        Ok(())
    }

    async fn revocations_since(
        &self,
        after: i64,
        now: i64,
    ) -> Result<Vec<RevocationRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM revocations WHERE seq > ? AND expires_at > ? ORDER BY seq LIMIT 10000",
        )
        .bind(after)
        .bind(now)
        .fetch_all(&self.reader)
        .await
        .map_err(map)?;
        Ok(rows
            .iter()
            .map(|r| RevocationRecord {
                seq: r.get("seq"),
                kind: if r.get::<String, _>("kind") == GRANT_REVOCATION {
                    RevokedKind::Grant
                } else {
                    RevokedKind::AccessToken
                },
                value: r.get("value"),
                expires_at: r.get("expires_at"),
            })
            .collect())
    }

    async fn grant(&self, grant_id: &str) -> Result<Option<GrantRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM grants WHERE id = ?")
            .bind(grant_id)
            .fetch_optional(&self.reader)
            .await
            .map_err(map)?;
        Ok(row.as_ref().map(grant_row))
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map)?;
        let mut n = 0;
        // Codes are kept an hour past expiry so a late replay is still recognised as reuse.
        for (sql, cutoff) in [
            (
                "DELETE FROM authorization_codes WHERE expires_at < ?",
                now - 3600,
            ),
            ("DELETE FROM refresh_tokens WHERE expires_at < ?", now),
            ("DELETE FROM grants WHERE expires_at < ?", now),
            ("DELETE FROM sessions WHERE expires_at < ?", now),
            ("DELETE FROM revocations WHERE expires_at < ?", now),
            ("DELETE FROM rate_limits WHERE expires_at < ?", now),
            (
                "DELETE FROM clients WHERE created_at < ? \
                 AND NOT EXISTS (SELECT 1 FROM consents c WHERE c.client_id = clients.client_id) \
                 AND NOT EXISTS (SELECT 1 FROM grants g WHERE g.client_id = clients.client_id) \
                 AND NOT EXISTS (SELECT 1 FROM authorization_codes a WHERE a.client_id = clients.client_id)",
                now - UNUSED_CLIENT_TTL,
            ),
            (
                "DELETE FROM signing_keys WHERE active = 0 AND publish_until < ?",
                now,
            ),
        ] {
            n += sqlx::query(sql)
                .bind(cutoff)
                .execute(&mut *tx)
                .await
                .map_err(map)?
                .rows_affected();
        }
        tx.commit().await.map_err(map)?;
        Ok(n)
    }
}

/// `Won` when the conditional update matched (the op answered 1).
fn transition(won: u64) -> Transition {
    if won == 1 {
        Transition::Won
    } else {
        Transition::AlreadyUsed
    }
}

async fn insert_refresh(
    tx: &mut sqlx::SqliteConnection,
    r: &RefreshRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
        .bind(r.token_hash.as_str())
        .bind(&r.grant_id)
        .bind(r.created_at)
        .bind(r.expires_at)
        .execute(tx)
        .await?;
    Ok(())
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn signing_keys(&self, now: i64) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM signing_keys WHERE active = 1 OR publish_until > ? ORDER BY created_at",
        )
        .bind(now)
        .fetch_all(&self.writer)
        .await
        .map_err(map)?;
        Ok(rows.iter().map(key_row).collect())
    }

    async fn insert_first_key(&self, k: &SigningKeyRecord) -> Result<bool, StoreError> {
        // The partial unique index makes a second active key impossible; losing that race is not an error.
        let n = sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_key, public_jwk, created_at, active) \
             SELECT ?, ?, ?, ?, ?, 1 WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE active = 1) ON CONFLICT DO NOTHING",
        )
        .bind(&k.kid)
        .bind(&k.alg)
        .bind(&k.private_key)
        .bind(&k.public_jwk)
        .bind(k.created_at)
        .execute(&self.writer)
        .await
        .map_err(map)?;
        Ok(n.rows_affected() == 1)
    }

    async fn rotate_key(&self, k: &SigningKeyRecord, until: i64) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await.map_err(map)?;
        sqlx::query("UPDATE signing_keys SET active = 0, publish_until = ? WHERE active = 1")
            .bind(until)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        sqlx::query("INSERT INTO signing_keys (kid, alg, private_key, public_jwk, created_at, active) VALUES (?, ?, ?, ?, ?, 1)")
            .bind(&k.kid)
            .bind(&k.alg)
            .bind(&k.private_key)
            .bind(&k.public_jwk)
            .bind(k.created_at)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        tx.commit().await.map_err(map)?;
        Ok(())
    }
}

#[async_trait]
impl HealthStore for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(map)?;
        Ok(())
    }
}

/// Login throttling counters: one upsert per event on the writer connection (failed logins are rare, so they
/// stay out of the group commit).
#[async_trait]
impl RateLimitStore for SqliteStore {
    async fn hit(&self, key: &str, window_start: i64, expires_at: i64) -> Result<u32, StoreError> {
        let hits: i64 = sqlx::query_scalar(
            "INSERT INTO rate_limits (limit_key, window_start, hits, expires_at) VALUES (?, ?, 1, ?) \
             ON CONFLICT (limit_key, window_start) DO UPDATE SET hits = hits + 1 RETURNING hits",
        )
        .bind(key)
        .bind(window_start)
        .bind(expires_at)
        .fetch_one(&self.writer)
        .await
        .map_err(map)?;
        Ok(u32::try_from(hits).unwrap_or(u32::MAX))
    }

    async fn hits(&self, key: &str, window_start: i64) -> Result<u32, StoreError> {
        let hits: Option<i64> = sqlx::query_scalar(
            "SELECT hits FROM rate_limits WHERE limit_key = ? AND window_start = ?",
        )
        .bind(key)
        .bind(window_start)
        .fetch_optional(&self.reader)
        .await
        .map_err(map)?;
        Ok(hits.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)))
    }

    async fn clear_hits(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM rate_limits WHERE limit_key = ?")
            .bind(key)
            .execute(&self.writer)
            .await
            .map_err(map)?;
        Ok(())
    }
}
