//! The SQLite backend: embedded, the default.
//!
//! Durability: WAL journal with `synchronous=FULL`, so every commit is fsynced before the call returns and a 2xx
//! built on it survives power loss. Every write goes through one connection owned by one OS thread
//! ([`group_commit`]): SQLite allows one writer at a time, and a single writer avoids `SQLITE_BUSY` upgrade
//! deadlocks between our own connections. Concurrent writes share one transaction and one fsync, and every
//! caller is answered only after the shared `COMMIT`. Reads run on read-only connections right on the calling
//! thread ([`readers`]). Both use `rusqlite` with cached prepared statements; `sqlx` only applies the
//! migrations at start-up (its `_sqlx_migrations` table records them).
//! Single-use transitions are conditional `UPDATE … WHERE used_at IS NULL` statements inside one transaction.

mod clients;
mod federation;
mod grants;
mod group_commit;
mod readers;
mod revocation_sql;
mod usage_sql;

use crate::error::{map, map_sqlite};
use crate::options::StoreOptions;
use async_trait::async_trait;
use group_commit::{GroupCommit, Undo};
use portcullis_authz::secret::{Secret, TokenHash};
use portcullis_authz::store::*;
use readers::Readers;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// SQLite storage.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    group: GroupCommit,
    readers: Arc<Readers>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations. In-memory databases are refused:
    /// the writer and the readers are separate connections and must share one file.
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let timeout = Duration::from_millis(options.acquire_timeout_ms);
        let lower = url.to_ascii_lowercase();
        if lower.contains(":memory:") || lower.contains("mode=memory") {
            return Err(StoreError::Other(
                "in-memory SQLite is not supported; use sqlite://PATH".into(),
            ));
        }
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(timeout);
        let path = connect.get_filename().to_owned();
        // A one-connection pool rather than a bare connection: `Migrator::run` on `&mut SqliteConnection`
        // makes this future not `Send` for every lifetime, and callers spawn it.
        let migrations = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(timeout)
            .connect_with(connect)
            .await
            .map_err(map)?;
        MIGRATOR
            .run(&migrations)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
        migrations.close().await;
        let group = GroupCommit::start(open_writer(&path, timeout)?)?;
        let readers = Readers::new(path, timeout, options.max_connections as usize)?;
        Ok(Self {
            group,
            readers: Arc::new(readers),
        })
    }

    /// Nothing to do: the writer thread ends (after its last batch) when the last handle is dropped, and read
    /// connections close with the store.
    pub async fn close(&self) {}

    /// How many operations the writer thread was given so far (each is one closure in a batch's transaction):
    /// tests count them to check that an operation stays one trip to the writer.
    pub fn writer_operations(&self) -> u64 {
        self.group.operations()
    }

    /// Runs a write on the writer thread; see [`Undo`] for which `undo` an operation needs.
    async fn write<T, F>(&self, undo: Undo, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.group.run(undo, op).await
    }

    /// Runs a read on a read connection, on this thread.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        self.readers.read(f)
    }
}

/// The write connection: `synchronous=FULL` is a per-connection setting, so it is set (and checked) here.
fn open_writer(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(map_sqlite)?;
    conn.busy_timeout(busy_timeout).map_err(map_sqlite)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
    )
    .map_err(map_sqlite)?;
    let sync: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .map_err(map_sqlite)?;
    let journal: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(map_sqlite)?;
    // 2 = FULL. Anything weaker could lose an answered write on power loss.
    if sync != 2 || !journal.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Other(format!(
            "SQLite refused WAL with synchronous=FULL (got journal_mode={journal}, synchronous={sync})"
        )));
    }
    // The writer is the one serial stage: keep its B-tree pages in its own cache (it stays valid across
    // transactions, since no other connection writes) rather than re-reading them; up to 32 MiB, on demand.
    conn.execute_batch("PRAGMA cache_size = -32768;")
        .map_err(map_sqlite)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn user_row(r: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        id: r.get("id")?,
        username: r.get("username")?,
        password_hash: r.get("password_hash")?,
        created_at: r.get("created_at")?,
    })
}

/// The display identity of a session, code or grant row (columns `preferred_username`, `email`, `idp` of
/// migration 0005; NULL is unknown: an empty name, no email, no provider).
fn identity_row(r: &Row<'_>) -> rusqlite::Result<DisplayIdentity> {
    Ok(DisplayIdentity {
        preferred_username: r
            .get::<_, Option<String>>("preferred_username")?
            .unwrap_or_default(),
        email: r.get("email")?,
        idp: r.get("idp")?,
    })
}

fn key_row(r: &Row<'_>) -> rusqlite::Result<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        kid: r.get("kid")?,
        alg: r.get("alg")?,
        private_key: r.get("private_key")?,
        public_jwk: r.get("public_jwk")?,
        created_at: r.get("created_at")?,
        active: r.get::<_, i64>("active")? != 0,
        publish_until: r.get("publish_until")?,
    })
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(&self, u: &UserRecord) -> Result<(), StoreError> {
        let u = u.clone();
        self.write(Undo::Statement, move |conn| {
            conn.prepare_cached(
                "INSERT INTO users (id, username, password_hash, created_at) VALUES (?, ?, ?, ?)",
            )?
            .execute(params![u.id, u.username, u.password_hash, u.created_at])
            .map(drop)
        })
        .await
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT * FROM users WHERE username = ?")?
                .query_row([username], user_row)
                .optional()
        })
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT * FROM users ORDER BY username")?
                .query_map([], user_row)?
                .collect()
        })
    }

    async fn delete_user(&self, username: &str, now: i64, exp: i64) -> Result<bool, StoreError> {
        let username = username.to_owned();
        self.write(Undo::Savepoint, move |conn| {
            let id: Option<String> = conn
                .prepare_cached("SELECT id FROM users WHERE username = ?")?
                .query_row([&username], |r| r.get(0))
                .optional()?;
            let Some(id) = id else { return Ok(false) };
            revocation_sql::revoke_grants_where(conn, "user_id", &id, now, exp)?;
            usage_sql::keep_last_use(conn, "user_id = ?1", &id)?;
            conn.prepare_cached("DELETE FROM users WHERE id = ?")?
                .execute([&id])?;
            Ok(true)
        })
        .await
    }

    async fn set_password(&self, username: &str, hash: &str) -> Result<bool, StoreError> {
        let (username, hash) = (username.to_owned(), hash.to_owned());
        self.write(Undo::Savepoint, move |conn| {
            let n = conn
                .prepare_cached("UPDATE users SET password_hash = ? WHERE username = ?")?
                .execute([&hash, &username])?;
            conn.prepare_cached(
                "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE username = ?)",
            )?
            .execute([&username])?;
            Ok(n == 1)
        })
        .await
    }

    async fn count_users(&self) -> Result<i64, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT COUNT(*) FROM users")?
                .query_row([], |r| r.get(0))
        })
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        let s = s.clone();
        self.write(Undo::Statement, move |conn| {
            conn.prepare_cached(
                "INSERT INTO sessions (id_hash, user_id, csrf_key, created_at, expires_at, preferred_username, \
                 email, idp) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                s.id_hash.as_str(),
                s.user_id,
                s.csrf_key.expose(),
                s.created_at,
                s.expires_at,
                s.identity.preferred_username,
                s.identity.email,
                s.identity.idp
            ])
            .map(drop)
        })
        .await
    }

    async fn session(
        &self,
        id_hash: &TokenHash,
        now: i64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT s.id_hash, s.user_id, s.csrf_key, s.created_at, s.expires_at, s.email, s.idp, \
                 u.username, COALESCE(s.preferred_username, u.username) AS preferred_username \
                 FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = ? AND s.expires_at > ?",
            )?
            .query_row(params![id_hash.as_str(), now], |r| {
                Ok(SessionRecord {
                    id_hash: TokenHash::from_stored(r.get("id_hash")?),
                    user_id: r.get("user_id")?,
                    username: r.get("username")?,
                    identity: identity_row(r)?,
                    csrf_key: Secret::new(r.get::<_, String>("csrf_key")?),
                    created_at: r.get("created_at")?,
                    expires_at: r.get("expires_at")?,
                })
            })
            .optional()
        })
    }

    async fn delete_session(&self, id_hash: &TokenHash) -> Result<(), StoreError> {
        let id_hash = id_hash.clone();
        self.write(Undo::Statement, move |conn| {
            conn.prepare_cached("DELETE FROM sessions WHERE id_hash = ?")?
                .execute([id_hash.as_str()])
                .map(drop)
        })
        .await
    }

    async fn consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
    ) -> Result<Option<String>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT scope FROM consents WHERE user_id = ? AND client_id = ? AND resource = ?",
            )?
            .query_row([user_id, client_id, resource], |r| r.get(0))
            .optional()
        })
    }

    async fn has_consented(&self, user_id: &str, client_id: &str) -> Result<bool, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT 1 FROM consents WHERE user_id = ? AND client_id = ? LIMIT 1",
            )?
            .query_row([user_id, client_id], |_| Ok(()))
            .optional()
            .map(|r| r.is_some())
        })
    }

    async fn save_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
        scope: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let (user_id, client_id, resource, scope) = (
            user_id.to_owned(),
            client_id.to_owned(),
            resource.to_owned(),
            scope.to_owned(),
        );
        self.write(Undo::Statement, move |conn| {
            conn.prepare_cached(
                "INSERT INTO consents (user_id, client_id, resource, scope, updated_at) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (user_id, client_id, resource) DO UPDATE SET scope = excluded.scope, updated_at = excluded.updated_at",
            )?
            .execute(params![user_id, client_id, resource, scope, now])
            .map(drop)
        })
        .await
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn signing_keys(&self, now: i64) -> Result<Vec<SigningKeyRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT * FROM signing_keys WHERE active = 1 OR publish_until > ? ORDER BY created_at",
            )?
            .query_map([now], key_row)?
            .collect()
        })
    }

    async fn insert_first_key(&self, k: &SigningKeyRecord) -> Result<bool, StoreError> {
        let k = k.clone();
        // The partial unique index makes a second active key impossible; losing that race is not an error.
        self.write(Undo::Statement, move |conn| {
            let n = conn
                .prepare_cached(
                    "INSERT INTO signing_keys (kid, alg, private_key, public_jwk, created_at, active) \
                     SELECT ?, ?, ?, ?, ?, 1 WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE active = 1) \
                     ON CONFLICT DO NOTHING",
                )?
                .execute(params![k.kid, k.alg, k.private_key, k.public_jwk, k.created_at])?;
            Ok(n == 1)
        })
        .await
    }

    async fn rotate_key(&self, k: &SigningKeyRecord, until: i64) -> Result<(), StoreError> {
        let k = k.clone();
        self.write(Undo::Savepoint, move |conn| {
            conn.prepare_cached(
                "UPDATE signing_keys SET active = 0, publish_until = ? WHERE active = 1",
            )?
            .execute([until])?;
            conn.prepare_cached(
                "INSERT INTO signing_keys (kid, alg, private_key, public_jwk, created_at, active) \
                 VALUES (?, ?, ?, ?, ?, 1)",
            )?
            .execute(params![
                k.kid,
                k.alg,
                k.private_key,
                k.public_jwk,
                k.created_at
            ])
            .map(drop)
        })
        .await
    }
}

#[async_trait]
impl HealthStore for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        if self.group.stopped() {
            return Err(StoreError::Unavailable(
                "the SQLite writer has stopped".into(),
            ));
        }
        self.read(|conn| conn.prepare_cached("SELECT 1")?.query_row([], |_| Ok(())))
    }
}

/// Rate-limit counters: one upsert per event.
#[async_trait]
impl RateLimitStore for SqliteStore {
    async fn hit(&self, key: &str, window_start: i64, expires_at: i64) -> Result<u32, StoreError> {
        let key = key.to_owned();
        let hits: i64 = self
            .write(Undo::Statement, move |conn| {
                conn.prepare_cached(
                    "INSERT INTO rate_limits (limit_key, window_start, hits, expires_at) VALUES (?, ?, 1, ?) \
                     ON CONFLICT (limit_key, window_start) DO UPDATE SET hits = hits + 1 RETURNING hits",
                )?
                .query_row(params![key, window_start, expires_at], |r| r.get(0))
            })
            .await?;
        Ok(u32::try_from(hits).unwrap_or(u32::MAX))
    }

    async fn hits(&self, key: &str, window_start: i64) -> Result<u32, StoreError> {
        let hits: Option<i64> = self.read(|conn| {
            conn.prepare_cached(
                "SELECT hits FROM rate_limits WHERE limit_key = ? AND window_start = ?",
            )?
            .query_row(params![key, window_start], |r| r.get(0))
            .optional()
        })?;
        Ok(hits.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)))
    }

    async fn clear_hits(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.write(Undo::Statement, move |conn| {
            conn.prepare_cached("DELETE FROM rate_limits WHERE limit_key = ?")?
                .execute([&key])
                .map(drop)
        })
        .await
    }

    async fn reserve_hit(
        &self,
        key: &str,
        window_start: i64,
        expires_at: i64,
        limit: u32,
    ) -> Result<Option<u32>, StoreError> {
        let key = key.to_owned();
        // A full window is left as it is: the upsert's `WHERE` fails, so no row is updated or returned.
        let hits: Option<i64> = self
            .write(Undo::Statement, move |conn| {
                conn.prepare_cached(
                    "INSERT INTO rate_limits (limit_key, window_start, hits, expires_at) VALUES (?, ?, 1, ?) \
                     ON CONFLICT (limit_key, window_start) DO UPDATE SET hits = hits + 1 WHERE hits < ? \
                     RETURNING hits",
                )?
                .query_row(params![key, window_start, expires_at, limit], |r| r.get(0))
                .optional()
            })
            .await?;
        Ok(hits.map(|n| u32::try_from(n).unwrap_or(u32::MAX)))
    }

    async fn release_hit(&self, key: &str, window_start: i64) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.write(Undo::Statement, move |conn| {
            conn.prepare_cached(
                "UPDATE rate_limits SET hits = hits - 1 WHERE limit_key = ? AND window_start = ? AND hits > 0",
            )?
            .execute(params![key, window_start])
            .map(drop)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn the_writer_is_wal_with_synchronous_full() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let url = format!("sqlite://{}", path.display());
        let store = SqliteStore::open(&url, &StoreOptions::default())
            .await
            .unwrap();
        // Every write goes through the writer thread's connection; check its settings from inside an op.
        let (sync, journal, fk) = store
            .write(Undo::Statement, |c| {
                let n = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0));
                let journal = c.query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))?;
                Ok((n("PRAGMA synchronous")?, journal, n("PRAGMA foreign_keys")?))
            })
            .await
            .unwrap();
        assert_eq!((sync, journal.as_str(), fk), (2, "wal", 1));
        assert!(open_writer(&path, Duration::from_secs(1))
            .unwrap()
            .is_autocommit());
    }

    #[tokio::test]
    async fn in_memory_databases_are_refused() {
        for url in ["sqlite::memory:", "sqlite://file?mode=memory"] {
            let r = SqliteStore::open(url, &StoreOptions::default()).await;
            assert!(matches!(r, Err(StoreError::Other(_))), "{url}");
        }
    }
}
