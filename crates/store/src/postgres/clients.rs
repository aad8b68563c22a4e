//! PostgreSQL: registered clients, their usage (derived from their grants) and the reaping of dead
//! registrations (`portcullis_authz::client_reaping`).

use super::{client_row, insert_revocations, retry, PostgresStore};
use super::{revoke_grants_of, GrantOwner};
use super::{CLIENT_COLUMNS, GRANT_REVOCATION};
use async_trait::async_trait;
use portcullis_authz::secret::TokenHash;
use portcullis_authz::store::*;
use sqlx::{PgConnection, Row};

/// A grant `g` that is live at `$1`: not revoked, not expired, and its refresh token (if any) not idle-expired.
const LIVE_GRANT: &str = "g.revoked_at IS NULL AND g.expires_at > $1 \
     AND (g.refresh_expires_at IS NULL OR g.refresh_expires_at > $1)";

/// The newest use among the grants of client `c`: a grant's last refresh, else its creation.
const GRANT_LAST_USE: &str =
    "(SELECT MAX(COALESCE(g.refresh_issued_at, g.created_at)) FROM grants g \
     WHERE g.client_id = c.client_id)";

/// The reaping rule over `clients c`, as `ReapCutoffs::reason`: `$1` now, `$2` the tokenless cutoff, `$3` the
/// idle cutoff (NULL: that rule is off, and the comparison is never true). `GREATEST` skips NULLs.
fn reapable() -> String {
    format!(
        "c.origin <> 'admin' \
         AND NOT EXISTS (SELECT 1 FROM grants g WHERE g.client_id = c.client_id AND {LIVE_GRANT}) \
         AND ((c.last_used_at IS NULL AND c.created_at < $2::BIGINT \
               AND NOT EXISTS (SELECT 1 FROM grants g WHERE g.client_id = c.client_id)) \
              OR GREATEST(c.created_at, c.last_used_at, {GRANT_LAST_USE}) < $3::BIGINT)"
    )
}

/// Which grants [`keep_last_use`] is about to see deleted.
#[derive(Clone, Copy)]
pub(super) enum Deleting<'a> {
    /// Those expired before this time (the purge).
    ExpiredBefore(i64),
    /// Those of this user (deleting the user).
    OfUser(&'a str),
}

/// Keeps on each client row the last use among its grants that are about to be deleted: their use must outlive
/// them ([`ClientUsage::last_used_at`]). Only `last_used_at` changes, so the row lock it takes never waits for,
/// nor blocks, a grant being inserted for the client (a foreign key check takes `FOR KEY SHARE`).
pub(super) async fn keep_last_use(
    tx: &mut PgConnection,
    deleting: Deleting<'_>,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "UPDATE clients SET last_used_at = x.used FROM \
         (SELECT client_id, MAX(COALESCE(refresh_issued_at, created_at)) AS used FROM grants \
          WHERE FILTER GROUP BY client_id) AS x \
         WHERE x.client_id = clients.client_id \
         AND (clients.last_used_at IS NULL OR clients.last_used_at < x.used)";
    let q = SQL.replace(
        "FILTER",
        match deleting {
            Deleting::ExpiredBefore(_) => "expires_at < $1",
            Deleting::OfUser(_) => "user_id = $1",
        },
    );
    let query = sqlx::query(&q);
    let query = match deleting {
        Deleting::ExpiredBefore(t) => query.bind(t),
        Deleting::OfUser(id) => query.bind(id),
    };
    query.execute(tx).await.map(drop)
}

#[async_trait]
impl ClientStore for PostgresStore {
    async fn insert_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query(
                "INSERT INTO clients (client_id, secret_hash, metadata, created_at, origin, introspection) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&c.client_id)
            .bind(c.secret_hash.as_ref().map(TokenHash::as_str))
            .bind(&c.metadata_json)
            .bind(c.created_at)
            .bind(c.origin.as_str())
            .bind(crate::introspection_column::introspection_to_column(c))
            .execute(pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query(&format!(
                "SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = $1"
            ))
            .bind(client_id)
            .fetch_optional(pool)
            .await?
            .as_ref()
            .map(client_row)
            .transpose()
        })
        .await
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query(&format!(
                "SELECT {CLIENT_COLUMNS} FROM clients ORDER BY created_at, client_id"
            ))
            .fetch_all(pool)
            .await?
            .iter()
            .map(client_row)
            .collect()
        })
        .await
    }

    async fn delete_client(&self, client_id: &str, now: i64, exp: i64) -> Result<bool, StoreError> {
        let pool = &self.pool;
        let notices = self.notices;
        retry(self.deadline, || async move {
            let mut tx = pool.begin().await?;
            revoke_grants_of(&mut tx, notices, GrantOwner::Client(client_id), now, exp).await?;
            let n = sqlx::query("DELETE FROM clients WHERE client_id = $1")
                .bind(client_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(n == 1)
        })
        .await
    }

    async fn client_usage(&self, now: i64) -> Result<Vec<ClientUsage>, StoreError> {
        let pool = &self.pool;
        let sql = format!(
            "SELECT {columns}, c.last_used_at, {GRANT_LAST_USE} AS grant_last_use, \
             (SELECT COUNT(*) FROM grants g WHERE g.client_id = c.client_id AND {LIVE_GRANT}) AS live_grants \
             FROM clients c ORDER BY c.created_at, c.client_id",
            columns = CLIENT_COLUMNS
                .split(", ")
                .map(|col| format!("c.{col}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let sql = &sql;
        retry(self.deadline, || async move {
            sqlx::query(sql)
                .bind(now)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| {
                    let kept: Option<i64> = r.try_get("last_used_at")?;
                    let grants: Option<i64> = r.try_get("grant_last_use")?;
                    Ok(ClientUsage {
                        client: client_row(r)?,
                        last_used_at: kept.max(grants),
                        live_grants: r.try_get::<i64, _>("live_grants")?.unsigned_abs(),
                    })
                })
                .collect()
        })
        .await
    }

    async fn reap_clients(
        &self,
        cutoffs: &ReapCutoffs,
        after: &str,
        limit: u32,
        exp: i64,
    ) -> Result<Vec<String>, StoreError> {
        let pool = &self.pool;
        let notices = self.notices;
        let c = *cutoffs;
        let choose = format!(
            "SELECT c.client_id FROM clients c WHERE c.client_id > $4 AND {} \
             ORDER BY c.client_id LIMIT $5 FOR UPDATE SKIP LOCKED",
            reapable()
        );
        let recheck = format!(
            "SELECT c.client_id FROM clients c WHERE c.client_id = ANY($4) AND {} ORDER BY c.client_id",
            reapable()
        );
        let (choose, recheck) = (&choose, &recheck);
        retry(self.deadline, || async move {
            let mut tx = pool.begin().await?;
            // The row locks keep new grants away from the chosen clients (inserting one takes `FOR KEY SHARE`
            // on its client, which waits for ours); a client being given a grant right now is skipped. The
            // second statement sees what committed before the locks were taken: a grant that did is kept.
            let chosen: Vec<String> = sqlx::query_scalar(choose)
                .bind(c.now)
                .bind(c.tokenless_before)
                .bind(c.idle_before)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
            if chosen.is_empty() {
                return Ok(chosen);
            }
            let ids: Vec<String> = sqlx::query_scalar(recheck)
                .bind(c.now)
                .bind(c.tokenless_before)
                .bind(c.idle_before)
                .bind(&chosen)
                .fetch_all(&mut *tx)
                .await?;
            let revoked: Vec<String> = sqlx::query_scalar(
                "UPDATE grants SET revoked_at = $1 WHERE client_id = ANY($2) AND revoked_at IS NULL \
                 RETURNING id",
            )
            .bind(c.now)
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
            insert_revocations(&mut tx, notices, GRANT_REVOCATION, &revoked, exp).await?;
            sqlx::query("DELETE FROM clients WHERE client_id = ANY($1)")
                .bind(&ids)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(ids)
        })
        .await
    }
}
