//! The SQL that revokes grants: the grant row is marked and an entry written to the `revocations` table (the
//! feed every instance reads). Shared by the account operations (removing a client or user revokes its grants)
//! and the grant operations (revocation, refresh-token reuse).

use rusqlite::{params, Connection};

/// The revocation log's `kind` for a grant.
pub(super) const GRANT_REVOCATION: &str = "grant";
/// The revocation log's `kind` for one access token (`jti`).
pub(super) const ACCESS_REVOCATION: &str = "access_token";

/// Revokes every live grant whose `column` (a fixed column name, never input) is `value`, adding revocation
/// entries that live until `exp`.
pub(super) fn revoke_grants_where(
    conn: &Connection,
    column: &str,
    value: &str,
    now: i64,
    exp: i64,
) -> rusqlite::Result<()> {
    let insert = format!(
        "INSERT INTO revocations (kind, value, expires_at) SELECT '{GRANT_REVOCATION}', id, ? FROM grants \
         WHERE {column} = ? AND revoked_at IS NULL"
    );
    conn.prepare_cached(&insert)?.execute(params![exp, value])?;
    let update =
        format!("UPDATE grants SET revoked_at = ? WHERE {column} = ? AND revoked_at IS NULL");
    conn.prepare_cached(&update)?.execute(params![now, value])?;
    Ok(())
}

/// Revokes one grant if it is live; returns whether it was. Two statements: callers run it under a savepoint.
pub(super) fn revoke_one_grant(
    conn: &Connection,
    grant_id: &str,
    now: i64,
    exp: i64,
) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached("UPDATE grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")?
        .execute(params![now, grant_id])?;
    if n == 1 {
        conn.prepare_cached("INSERT INTO revocations (kind, value, expires_at) VALUES (?, ?, ?)")?
            .execute(params![GRANT_REVOCATION, grant_id, exp])?;
    }
    Ok(n == 1)
}
