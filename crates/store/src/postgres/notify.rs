//! Revocations pushed, not only polled: PostgreSQL `LISTEN`/`NOTIFY` on one channel.
//!
//! Every transaction that appends to the revocation feed also runs `pg_notify`, in the same statement as the
//! `INSERT` (`insert_revocations`); PostgreSQL delivers the notice only once that transaction has committed,
//! and drops it if it rolls back. Each instance holds one dedicated connection (its own one-connection pool,
//! `application_name` `<name>-revocations`) that `LISTEN`s on [`CHANNEL`]. A notice only says "read the feed
//! again": the payload is the newest sequence number the writer appended, a hint that may let a follower skip a
//! read it has already done, never a value that is applied. The ordered feed (`revocations_since`) stays the
//! source of truth, so a notice lost, duplicated or forged (anyone who can connect can `NOTIFY`) costs at most
//! one read, and a follower still polls at its interval.
//!
//! Backends without `pg_notify` (CockroachDB, YugabyteDB) are found by a probe at start and run without push.

use crate::error::map;
use async_trait::async_trait;
use portcullis_authz::store::{RevocationListener, StoreError};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use std::time::Duration;

/// The channel every instance listens on and every revocation notifies.
pub(super) const CHANNEL: &str = "portcullis_revocations";

/// Silence on the listening connection for this long makes the listener check it with a round trip, so a
/// connection whose network path died without a reset is noticed (and replaced) within about this bound.
const IDLE_CHECK: Duration = Duration::from_secs(30);

/// How long that check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether revocation writes notify: `On` once the probe at start found `pg_notify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Notices {
    /// Every revocation transaction runs `pg_notify` on [`CHANNEL`].
    On,
    /// The database has no `pg_notify`: followers poll only.
    Off,
}

/// Connection options of the listening connection. `Debug` never shows them (they may hold a password).
#[derive(Clone)]
pub(super) struct ListenOptions {
    connect: PgConnectOptions,
    acquire_timeout: Duration,
}

impl std::fmt::Debug for ListenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenOptions").finish_non_exhaustive()
    }
}

impl ListenOptions {
    /// The pool's options with `application_name` `<name>-revocations`, so operators (and the tests) can tell
    /// the listening connection apart in `pg_stat_activity`.
    pub(super) fn new(pool: &PgConnectOptions, acquire_timeout: Duration) -> Self {
        let name = format!(
            "{}-revocations",
            pool.get_application_name().unwrap_or("portcullis")
        );
        Self {
            connect: pool.clone().application_name(&name),
            acquire_timeout,
        }
    }

    /// Connects and listens. The `LISTEN` has completed when this returns, so every revocation committed from
    /// now on is notified; the caller reads the feed once for what was committed before.
    pub(super) async fn listen(&self) -> Result<PgRevocationListener, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(self.acquire_timeout)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_with(self.connect.clone())
            .await
            .map_err(map)?;
        let mut listener = PgListener::connect_with(&pool).await.map_err(map)?;
        // A lost connection is reported (and the caller backs off, then reads the feed), not silently
        // replaced: a silent reconnect would hide the notices missed meanwhile.
        listener.eager_reconnect(false);
        listener.listen(CHANNEL).await.map_err(map)?;
        Ok(PgRevocationListener { listener })
    }
}

/// Tries `pg_notify` outside any transaction: whether revocation writes may notify.
pub(super) async fn probe(pool: &sqlx::PgPool) -> Notices {
    match sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(pool)
        .await
    {
        Ok(_) => Notices::On,
        Err(e) => {
            tracing::info!(error = %e, "no pg_notify on this database: revocations are polled only");
            Notices::Off
        }
    }
}

/// One instance's listening connection.
#[derive(Debug)]
pub(super) struct PgRevocationListener {
    listener: PgListener,
}

#[async_trait]
impl RevocationListener for PgRevocationListener {
    async fn next(&mut self) -> Result<Option<i64>, StoreError> {
        loop {
            let first = match tokio::time::timeout(IDLE_CHECK, self.listener.try_recv()).await {
                Ok(Ok(Some(notice))) => notice,
                // `try_recv` answers `None` once the connection is gone (`eager_reconnect` is off).
                Ok(Ok(None)) => return Err(lost("the listening connection closed")),
                Ok(Err(e)) => return Err(map(e)),
                Err(_) => {
                    self.check().await?;
                    continue;
                }
            };
            // Coalesce: everything already received becomes one notice, with the newest hint.
            let mut newest = hint(first.payload());
            while let Some(notice) = self.listener.next_buffered() {
                newest = newest.max(hint(notice.payload()));
            }
            return Ok(newest);
        }
    }
}

impl PgRevocationListener {
    /// One round trip on the listening connection (notices arriving meanwhile are buffered, not lost).
    async fn check(&mut self) -> Result<(), StoreError> {
        match tokio::time::timeout(
            CHECK_TIMEOUT,
            sqlx::query("SELECT 1").execute(&mut self.listener),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(map(e)),
            Err(_) => Err(lost("the listening connection did not answer")),
        }
    }
}

fn lost(why: &str) -> StoreError {
    StoreError::Unavailable(format!("revocation notices: {why}"))
}

/// The sequence number a notice names; `None` for anything else (the start-up probe's empty payload, or a
/// foreign one): such a notice still wakes the follower. `max` keeps any `Some` over `None`.
fn hint(payload: &str) -> Option<i64> {
    payload.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_hints_and_anything_else_is_none() {
        assert_eq!(hint("42"), Some(42));
        assert_eq!(hint(""), None);
        assert_eq!(hint("x; DROP"), None);
        assert_eq!(hint("42").max(None), Some(42));
    }

    #[test]
    fn listen_options_name_the_connection_and_hide_the_password() {
        let pool = PgConnectOptions::new()
            .password("hunter2")
            .application_name("pc-a");
        let options = ListenOptions::new(&pool, Duration::from_secs(1));
        assert_eq!(
            options.connect.get_application_name(),
            Some("pc-a-revocations")
        );
        assert!(!format!("{options:?}").contains("hunter2"));
    }
}
