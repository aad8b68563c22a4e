//! The SQL that keeps a client's last use when grants are deleted (`ClientUsage::last_used_at`): shared by the
//! purge of expired grants and the deletion of a user, whose grants go with them.

use rusqlite::Connection;

/// Keeps on each client row the last use among its grants that match `filter` (over `grants`, with the one
/// parameter `?1`), which are about to be deleted: their use must outlive them.
pub(super) fn keep_last_use(
    conn: &Connection,
    filter: &str,
    value: &dyn rusqlite::ToSql,
) -> rusqlite::Result<()> {
    let sql = format!(
        "UPDATE clients SET last_used_at = x.used FROM \
         (SELECT client_id, MAX(COALESCE(refresh_issued_at, created_at)) AS used FROM grants \
          WHERE {filter} GROUP BY client_id) AS x \
         WHERE x.client_id = clients.client_id \
         AND (clients.last_used_at IS NULL OR clients.last_used_at < x.used)"
    );
    conn.prepare_cached(&sql)?.execute([value]).map(drop)
}
