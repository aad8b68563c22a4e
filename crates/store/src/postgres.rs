//! The PostgreSQL backend: one database shared by many stateless `portcullis serve` instances.
//!
//! # Layout
//! - this file: connecting, migrations, the retry loop, row decoding and the revocation-feed helpers;
//! - [`clients`]: registered clients, their usage and the reaping of dead registrations;
//! - [`accounts`]: users, login sessions and consent;
//! - [`grants`]: codes, grants, refresh tokens, revocations, purging;
//! - [`federation`]: identities at upstream providers, pending upstream sign-ins, sealed upstream tokens;
//! - [`keys`]: signing keys and the health check;
//! - [`rate_limits`]: login throttling counters;
//! - [`notify`]: revocations pushed to every instance (`LISTEN`/`NOTIFY`), the feed still the source of truth.
//!
//! # Concurrency
//! Transactions run at PostgreSQL's default READ COMMITTED isolation. That is enough for the single-use
//! transitions because each is a conditional `UPDATE … WHERE used_at IS NULL`: a concurrent caller blocks on the
//! row lock the first one holds, and when that commits PostgreSQL re-evaluates the `WHERE` clause against the
//! newest row version (EvalPlanQual), finds `used_at` set and updates nothing. So exactly one caller sees one
//! affected row, and only that caller inserts the successor rows, in the same transaction. The other cases
//! that need more than a row lock are commented where they happen (`rotate_refresh`, `rotate_key`,
//! `insert_first_key`, revocation sequence numbers). Serialization failures (40001) and deadlocks (40P01) —
//! rare here, common on CockroachDB, which always runs SERIALIZABLE — are retried [`MAX_ATTEMPTS`] times in all.
//!
//! # Migrations
//! Embedded from `migrations/postgres` and applied by `open`. sqlx's PostgreSQL migrator holds a session-level
//! `pg_advisory_lock` keyed on the database name while it checks and applies migrations (sqlx-postgres 0.8,
//! `migrate.rs`, `lock`/`unlock`), so instances that start together apply each migration exactly once; a
//! crashed instance's lock goes away with its connection.
//!
//! # PostgreSQL-compatible distributed databases
//! The SQL avoids what CockroachDB or YugabyteDB lack or implement differently, where avoiding it was free:
//! no sequences or `SERIAL` for ordering (YugabyteDB caches sequence values per node and CockroachDB's `SERIAL`
//! is `unique_rowid()`, neither in commit order), no advisory locks of our own, no `LOCK TABLE`, no triggers or
//! PL/pgSQL, no deferred constraints, no `FOR SHARE`/`NOWAIT` variations; it uses `FOR UPDATE`, partial unique
//! indexes, `ON CONFLICT DO NOTHING`/`DO UPDATE`, `RETURNING` and `UNNEST … WITH ORDINALITY`, which all three
//! document. `pg_notify`/`LISTEN` (the revocation push, [`notify`]), which neither has, are probed at start and
//! left off where missing. Checked against their documentation, not run against them. One known gap: CockroachDB has no
//! advisory locks, so its migrations would need sqlx's `set_locking(false)` and start-ups one at a time.

mod accounts;
mod clients;
mod federation;
mod grants;
mod keys;
mod notify;
mod rate_limits;

use crate::error::{is_retryable, map};
use crate::options::StoreOptions;
use notify::{ListenOptions, Notices};
use portcullis_authz::secret::TokenHash;
use portcullis_authz::store::*;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::Row;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

/// PostgreSQL storage: a connection pool, shareable by many instances.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// The longest one attempt of a transaction may take ([`retry`]).
    deadline: Duration,
    /// Whether revocation writes notify the other instances ([`notify`]).
    notices: Notices,
    /// How to open the listening connection; `None` when notices are off.
    listen: Option<ListenOptions>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Tries per transaction: the first run and up to three retries after a serialization failure or deadlock.
pub const MAX_ATTEMPTS: u32 = 4;

impl PostgresStore {
    /// Connects to `url` (`postgres://` or `postgresql://`, with any libpq-style query parameters sqlx accepts)
    /// and applies migrations.
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        // The parse error never contains the URL itself, so it is safe to report.
        let mut connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("bad PostgreSQL URL: {e}")))?;
        if connect.get_application_name().is_none() {
            // Names our sessions in `pg_stat_activity`; a URL's `application_name` (say, per instance) wins.
            connect = connect.application_name("portcullis");
        }
        let timeout = Duration::from_millis(options.acquire_timeout_ms);
        // Migrations first, on a connection of their own without the statement timeout: waiting for another
        // instance's migration lock, or a long schema change, must not be cancelled half way.
        let migrations = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(timeout)
            .connect_with(connect.clone())
            .await
            .map_err(map)?;
        let migrated = MIGRATOR.run(&migrations).await;
        let notices = if migrated.is_ok() {
            notify::probe(&migrations).await
        } else {
            Notices::Off
        };
        migrations.close().await;
        migrated.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => map(e),
            e => StoreError::Other(format!("migration failed: {e}")),
        })?;
        if options.statement_timeout_ms > 0 {
            // Sent in the startup packet, so every pooled connection has it without an extra round trip.
            connect = connect.options([("statement_timeout", options.statement_timeout_ms)]);
        }
        let listen = (notices == Notices::On).then(|| ListenOptions::new(&connect, timeout));
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(timeout)
            .idle_timeout(Some(Duration::from_secs(600)))
            // Checks a pooled connection before handing it out, so the pool recovers by itself after the
            // database restarts instead of failing once per stale connection.
            .test_before_acquire(true)
            .connect_with(connect)
            .await
            .map_err(map)?;
        // Acquiring a connection is bounded by `timeout` and each statement by the server's statement timeout,
        // but a statement already sent when the network path starts dropping packets silently would wait
        // for the operating system's TCP timeout (minutes): bound the whole attempt on our side too.
        let statement = Duration::from_millis(if options.statement_timeout_ms > 0 {
            options.statement_timeout_ms
        } else {
            30_000
        });
        let deadline = timeout + statement + Duration::from_secs(1);
        Ok(Self {
            pool,
            deadline,
            notices,
            listen,
        })
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Runs `attempt` (one whole transaction) until it succeeds, fails for a reason other than a serialization
/// failure or deadlock, or [`MAX_ATTEMPTS`] runs are spent. A failed run committed nothing, so running it again
/// is safe; a final concurrency failure is reported as `Unavailable` (503 and `Retry-After` upstream).
///
/// An attempt that takes longer than `deadline` is abandoned and answered `Unavailable`: the database or the
/// network to it hangs. (If its `COMMIT` had already been sent, the change may still land; the caller then
/// sees 503 for a change that happened, as when an answer is lost on the way to the client.)
async fn retry<T, F, Fut>(deadline: Duration, mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut n = 1;
    loop {
        let Ok(result) = tokio::time::timeout(deadline, attempt()).await else {
            return Err(StoreError::Unavailable(format!(
                "no answer from the database within {} ms",
                deadline.as_millis()
            )));
        };
        match result {
            Ok(v) => return Ok(v),
            Err(e) if n < MAX_ATTEMPTS && is_retryable(&e) => {
                tracing::debug!(attempt = n, error = %e, "retrying transaction after a concurrency failure");
                tokio::time::sleep(backoff(n)).await;
                n += 1;
            }
            Err(e) => return Err(map(e)),
        }
    }
}

/// 5, 10, 20 ms plus up to 10 ms of jitter, so the losers of a race do not collide again in lockstep.
fn backoff(attempt: u32) -> Duration {
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos() % 10_000_000))
        .unwrap_or(0);
    Duration::from_millis(5 << attempt.min(4).saturating_sub(1)) + Duration::from_nanos(jitter)
}

const CLIENT_COLUMNS: &str = "client_id, secret_hash, metadata, created_at, origin, introspection";
const USER_COLUMNS: &str = "id, username, password_hash, created_at";
const CODE_COLUMNS: &str =
    "code_hash, client_id, user_id, redirect_uri, code_challenge, scope, resource, \
                            created_at, expires_at, used_at, grant_id, preferred_username, email, idp";
const GRANT_COLUMNS: &str =
    "id, client_id, user_id, scope, resource, created_at, expires_at, revoked_at, \
                             preferred_username, email, idp";
const KEY_COLUMNS: &str = "kid, alg, private_key, public_jwk, created_at, active, publish_until";

fn client_row(r: &PgRow) -> Result<ClientRecord, sqlx::Error> {
    Ok(ClientRecord {
        client_id: r.try_get("client_id")?,
        secret_hash: r
            .try_get::<Option<String>, _>("secret_hash")?
            .map(TokenHash::from_stored),
        metadata_json: r.try_get("metadata")?,
        created_at: r.try_get("created_at")?,
        origin: {
            let origin: String = r.try_get("origin")?;
            ClientOrigin::from_stored(&origin).ok_or_else(|| sqlx::Error::ColumnDecode {
                index: "origin".into(),
                source: format!("unknown client origin {origin:?}").into(),
            })?
        },
        introspection: crate::introspection_column::introspection_from_column(
            r.try_get("introspection")?,
        ),
    })
}

fn user_row(r: &PgRow) -> Result<UserRecord, sqlx::Error> {
    Ok(UserRecord {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        password_hash: r.try_get("password_hash")?,
        created_at: r.try_get("created_at")?,
    })
}

fn code_row(r: &PgRow) -> Result<CodeRecord, sqlx::Error> {
    Ok(CodeRecord {
        code_hash: TokenHash::from_stored(r.try_get("code_hash")?),
        client_id: r.try_get("client_id")?,
        user_id: r.try_get("user_id")?,
        redirect_uri: r.try_get("redirect_uri")?,
        code_challenge: r.try_get("code_challenge")?,
        scope: r.try_get("scope")?,
        resource: r.try_get("resource")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        used_at: r.try_get("used_at")?,
        grant_id: r.try_get("grant_id")?,
        identity: identity_row(r)?,
    })
}

fn grant_row(r: &PgRow) -> Result<GrantRecord, sqlx::Error> {
    Ok(GrantRecord {
        id: r.try_get("id")?,
        client_id: r.try_get("client_id")?,
        user_id: r.try_get("user_id")?,
        scope: r.try_get("scope")?,
        resource: r.try_get("resource")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
        identity: identity_row(r)?,
    })
}

/// The display identity of a session, code or grant row (columns `preferred_username`, `email`, `idp` of
/// migration 0005; NULL is unknown: an empty name, no email, no provider).
fn identity_row(r: &PgRow) -> Result<DisplayIdentity, sqlx::Error> {
    Ok(DisplayIdentity {
        preferred_username: r
            .try_get::<Option<String>, _>("preferred_username")?
            .unwrap_or_default(),
        email: r.try_get("email")?,
        idp: r.try_get("idp")?,
    })
}

fn key_row(r: &PgRow) -> Result<SigningKeyRecord, sqlx::Error> {
    Ok(SigningKeyRecord {
        kid: r.try_get("kid")?,
        alg: r.try_get("alg")?,
        private_key: r.try_get("private_key")?,
        public_jwk: r.try_get("public_jwk")?,
        created_at: r.try_get("created_at")?,
        active: r.try_get("active")?,
        publish_until: r.try_get("publish_until")?,
    })
}

const GRANT_REVOCATION: &str = "grant";
const ACCESS_REVOCATION: &str = "access_token";

/// Reserves `n` consecutive revocation sequence numbers and returns the first.
///
/// The `UPDATE` locks the single counter row until the caller's transaction ends, so transactions that add
/// revocations commit one after another in the order of their numbers. That is what makes the feed
/// (`revocations_since`) safe to follow with a cursor: once any instance has seen `seq = n`, no entry below `n`
/// can still appear. Call it as late as possible in the transaction: it serialises revocations (which are rare).
async fn reserve_seqs(tx: &mut PgConnection, n: i64) -> Result<i64, sqlx::Error> {
    let last: i64 = sqlx::query_scalar(
        "UPDATE revocation_counter SET last_seq = last_seq + $1 WHERE id = 1 RETURNING last_seq",
    )
    .bind(n)
    .fetch_one(tx)
    .await?;
    Ok(last - n + 1)
}

/// The feed's `INSERT`: one entry per value, numbered from `$1`.
macro_rules! insert_revocations_sql {
    () => {
        "INSERT INTO revocations (seq, kind, value, expires_at) \
         SELECT $1 + t.ord - 1, $2, t.value, $3 FROM UNNEST($4::TEXT[]) WITH ORDINALITY AS t(value, ord)"
    };
}

/// The same, notifying [`notify::CHANNEL`] (`$5`) with a payload (`$6`). A data-modifying `WITH` runs exactly
/// once whether or not the query reads it, so this is still one statement and one round trip.
const INSERT_REVOCATIONS_NOTIFYING: &str = concat!(
    "WITH added AS (",
    insert_revocations_sql!(),
    ") SELECT pg_notify($5, $6)"
);

/// Adds one revocation entry per value, in one statement. With notices on, the same statement notifies the
/// other instances with the newest sequence number: PostgreSQL delivers the notice when the caller's
/// transaction commits, and never if it rolls back.
async fn insert_revocations(
    tx: &mut PgConnection,
    notices: Notices,
    kind: &str,
    values: &[String],
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    if values.is_empty() {
        return Ok(());
    }
    let n = i64::try_from(values.len()).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    let first = reserve_seqs(&mut *tx, n).await?;
    let sql = match notices {
        Notices::On => INSERT_REVOCATIONS_NOTIFYING,
        Notices::Off => insert_revocations_sql!(),
    };
    let mut query = sqlx::query(sql)
        .bind(first)
        .bind(kind)
        .bind(expires_at)
        .bind(values);
    if notices == Notices::On {
        query = query
            .bind(notify::CHANNEL)
            .bind((first + n - 1).to_string());
    }
    query.execute(tx).await?;
    Ok(())
}

/// Which grants [`revoke_grants_of`] revokes.
#[derive(Clone, Copy)]
enum GrantOwner<'a> {
    Client(&'a str),
    User(&'a str),
}

/// Revokes every live grant of a client or user and adds their revocation entries.
async fn revoke_grants_of(
    tx: &mut PgConnection,
    notices: Notices,
    owner: GrantOwner<'_>,
    now: i64,
    exp: i64,
) -> Result<(), sqlx::Error> {
    let (sql, value) = match owner {
        GrantOwner::Client(id) => (
            "UPDATE grants SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL RETURNING id",
            id,
        ),
        GrantOwner::User(id) => (
            "UPDATE grants SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL RETURNING id",
            id,
        ),
    };
    let ids: Vec<String> = sqlx::query_scalar(sql)
        .bind(now)
        .bind(value)
        .fetch_all(&mut *tx)
        .await?;
    insert_revocations(tx, notices, GRANT_REVOCATION, &ids, exp).await
}
