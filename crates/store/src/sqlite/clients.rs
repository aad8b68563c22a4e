//! [`ClientStore`] on SQLite: registered clients, their usage (derived from their grants) and the reaping of
//! dead registrations (`portcullis_authz::client_reaping`).

use super::group_commit::Undo;
use super::revocation_sql::revoke_grants_where;
use super::SqliteStore;
use async_trait::async_trait;
use portcullis_authz::secret::TokenHash;
use portcullis_authz::store::*;
use rusqlite::{params, OptionalExtension, Row};

/// A grant `g` that is live at `?1`: not revoked, not expired, and its refresh token (if any) not idle-expired.
const LIVE_GRANT: &str = "g.revoked_at IS NULL AND g.expires_at > ?1 \
     AND (g.refresh_expires_at IS NULL OR g.refresh_expires_at > ?1)";

/// The newest use among the grants of client `c`: a grant's last refresh, else its creation.
const GRANT_LAST_USE: &str =
    "(SELECT MAX(COALESCE(g.refresh_issued_at, g.created_at)) FROM grants g \
     WHERE g.client_id = c.client_id)";

/// The reaping rule over `clients c`, as `ReapCutoffs::reason`: `?1` now, `?2` the tokenless cutoff, `?3` the
/// idle cutoff (NULL: that rule is off, and the comparison is never true).
fn reapable() -> String {
    format!(
        "c.origin <> 'admin' \
         AND NOT EXISTS (SELECT 1 FROM grants g WHERE g.client_id = c.client_id AND {LIVE_GRANT}) \
         AND ((c.last_used_at IS NULL AND c.created_at < ?2 \
               AND NOT EXISTS (SELECT 1 FROM grants g WHERE g.client_id = c.client_id)) \
              OR MAX(c.created_at, COALESCE(c.last_used_at, c.created_at), \
                     COALESCE({GRANT_LAST_USE}, c.created_at)) < ?3)"
    )
}

pub(super) fn client_row(r: &Row<'_>) -> rusqlite::Result<ClientRecord> {
    let origin: String = r.get("origin")?;
    Ok(ClientRecord {
        client_id: r.get("client_id")?,
        secret_hash: r
            .get::<_, Option<String>>("secret_hash")?
            .map(TokenHash::from_stored),
        metadata_json: r.get("metadata")?,
        created_at: r.get("created_at")?,
        origin: ClientOrigin::from_stored(&origin).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Text,
                format!("unknown client origin {origin:?}").into(),
            )
        })?,
        introspection: crate::introspection_column::introspection_from_column(
            r.get("introspection")?,
        ),
    })
}

#[async_trait]
impl ClientStore for SqliteStore {
    async fn insert_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        let c = c.clone();
        self.write(Undo::Statement, move |conn| {
            conn.prepare_cached(
                "INSERT INTO clients (client_id, secret_hash, metadata, created_at, origin, introspection) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                c.client_id,
                c.secret_hash.as_ref().map(TokenHash::as_str),
                c.metadata_json,
                c.created_at,
                c.origin.as_str(),
                crate::introspection_column::introspection_to_column(&c)
            ])
            .map(drop)
        })
        .await
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT * FROM clients WHERE client_id = ?")?
                .query_row([client_id], client_row)
                .optional()
        })
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT * FROM clients ORDER BY created_at, client_id")?
                .query_map([], client_row)?
                .collect()
        })
    }

    async fn delete_client(&self, client_id: &str, now: i64, exp: i64) -> Result<bool, StoreError> {
        let client_id = client_id.to_owned();
        self.write(Undo::Savepoint, move |conn| {
            revoke_grants_where(conn, "client_id", &client_id, now, exp)?;
            let n = conn
                .prepare_cached("DELETE FROM clients WHERE client_id = ?")?
                .execute([&client_id])?;
            Ok(n == 1)
        })
        .await
    }

    async fn client_usage(&self, now: i64) -> Result<Vec<ClientUsage>, StoreError> {
        let sql = format!(
            "SELECT c.*, {GRANT_LAST_USE} AS grant_last_use, \
             (SELECT COUNT(*) FROM grants g WHERE g.client_id = c.client_id AND {LIVE_GRANT}) AS live_grants \
             FROM clients c ORDER BY c.created_at, c.client_id"
        );
        self.read(|conn| {
            conn.prepare_cached(&sql)?
                .query_map([now], |r| {
                    let kept: Option<i64> = r.get("last_used_at")?;
                    let grants: Option<i64> = r.get("grant_last_use")?;
                    Ok(ClientUsage {
                        client: client_row(r)?,
                        last_used_at: kept.max(grants),
                        live_grants: r.get::<_, i64>("live_grants")?.unsigned_abs(),
                    })
                })?
                .collect()
        })
    }

    async fn reap_clients(
        &self,
        cutoffs: &ReapCutoffs,
        after: &str,
        limit: u32,
        exp: i64,
    ) -> Result<Vec<String>, StoreError> {
        let (c, after) = (*cutoffs, after.to_owned());
        let select = format!(
            "SELECT c.client_id FROM clients c WHERE c.client_id > ?4 AND {} ORDER BY c.client_id LIMIT ?5",
            reapable()
        );
        // One writer operation: nothing commits between the choice and the deletion.
        self.write(Undo::Savepoint, move |conn| {
            let ids = conn
                .prepare_cached(&select)?
                .query_map(
                    params![c.now, c.tokenless_before, c.idle_before, after, limit],
                    |r| r.get::<_, String>(0),
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for id in &ids {
                revoke_grants_where(conn, "client_id", id, c.now, exp)?;
                conn.prepare_cached("DELETE FROM clients WHERE client_id = ?")?
                    .execute([id])?;
            }
            Ok(ids)
        })
        .await
    }
}
