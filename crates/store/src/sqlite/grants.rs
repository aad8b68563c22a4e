//! [`GrantStore`] on SQLite: codes, grants, refresh tokens and the revocation log. The single-use transitions
//! (code redemption, refresh rotation) are one writer operation each: the conditional `UPDATE … WHERE used_at
//! IS NULL` and, only if it matched, the successor rows, all in the batch's transaction.

use super::group_commit::Undo;
use super::revocation_sql::{revoke_one_grant, ACCESS_REVOCATION, GRANT_REVOCATION};
use super::{identity_row, SqliteStore};
use async_trait::async_trait;
use portcullis_authz::secret::TokenHash;
use portcullis_authz::store::*;
use rusqlite::{params, Connection, OptionalExtension, Row};

fn code_row(r: &Row<'_>) -> rusqlite::Result<CodeRecord> {
    Ok(CodeRecord {
        code_hash: TokenHash::from_stored(r.get("code_hash")?),
        client_id: r.get("client_id")?,
        user_id: r.get("user_id")?,
        redirect_uri: r.get("redirect_uri")?,
        code_challenge: r.get("code_challenge")?,
        scope: r.get("scope")?,
        resource: r.get("resource")?,
        created_at: r.get("created_at")?,
        expires_at: r.get("expires_at")?,
        used_at: r.get("used_at")?,
        grant_id: r.get("grant_id")?,
        identity: identity_row(r)?,
    })
}

fn grant_row(r: &Row<'_>) -> rusqlite::Result<GrantRecord> {
    Ok(GrantRecord {
        id: r.get("id")?,
        client_id: r.get("client_id")?,
        user_id: r.get("user_id")?,
        scope: r.get("scope")?,
        resource: r.get("resource")?,
        created_at: r.get("created_at")?,
        expires_at: r.get("expires_at")?,
        revoked_at: r.get("revoked_at")?,
        identity: identity_row(r)?,
    })
}

/// Runs `f` in a savepoint of its own, undone if it fails: for a multi-statement write inside an operation that
/// runs without one ([`Undo::Statement`]) because its usual path writes a single statement.
fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.execute_batch("SAVEPOINT inner_op")?;
    match f(conn) {
        Ok(v) => {
            conn.execute_batch("RELEASE inner_op")?;
            Ok(v)
        }
        Err(e) => {
            // If SQLite already rolled the whole transaction back, the writer sees that and fails the batch.
            let _ = conn.execute_batch("ROLLBACK TO inner_op; RELEASE inner_op");
            Err(e)
        }
    }
}

/// The refresh family stored on a grant row (columns `refresh_*`), if the grant has one.
fn family_row(r: &Row<'_>) -> rusqlite::Result<Option<RefreshFamily>> {
    let Some(key) = r.get::<_, Option<String>>("refresh_key")? else {
        return Ok(None);
    };
    Ok(Some(RefreshFamily {
        key: TokenHash::from_stored(key),
        token_hash: TokenHash::from_stored(r.get("refresh_hash")?),
        issued_at: r.get("refresh_issued_at")?,
        expires_at: r.get("refresh_expires_at")?,
        previous: previous_row(r)?,
    }))
}

/// The token a family's last rotation retired (columns `refresh_prev_*`), if it keeps one.
fn previous_row(r: &Row<'_>) -> rusqlite::Result<Option<PreviousToken>> {
    let hash: Option<String> = r.get("refresh_prev_hash")?;
    let sealed: Option<Vec<u8>> = r.get("refresh_prev_sealed")?;
    Ok(hash
        .zip(sealed)
        .map(|(hash, sealed_successor)| PreviousToken {
            hash: TokenHash::from_stored(hash),
            sealed_successor,
        }))
}

/// A grant with its refresh family (rows selected by `refresh_key` always have one).
fn family_and_grant(r: &Row<'_>) -> rusqlite::Result<Option<(RefreshFamily, GrantRecord)>> {
    match family_row(r)? {
        Some(f) => Ok(Some((f, grant_row(r)?))),
        None => Ok(None),
    }
}

fn transition(won: bool) -> Transition {
    if won {
        Transition::Won
    } else {
        Transition::AlreadyUsed
    }
}

#[async_trait]
impl GrantStore for SqliteStore {
    async fn insert_code(&self, c: &CodeRecord) -> Result<(), StoreError> {
        let c = c.clone();
        self.write(Undo::Statement, move |conn| {
            conn.prepare_cached(
                "INSERT INTO authorization_codes (code_hash, client_id, user_id, redirect_uri, code_challenge, \
                 scope, resource, created_at, expires_at, preferred_username, email, idp) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                c.code_hash.as_str(),
                c.client_id,
                c.user_id,
                c.redirect_uri,
                c.code_challenge,
                c.scope,
                c.resource,
                c.created_at,
                c.expires_at,
                c.identity.preferred_username,
                c.identity.email,
                c.identity.idp
            ])
            .map(drop)
        })
        .await
    }

    async fn code(&self, code_hash: &TokenHash) -> Result<Option<CodeRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT * FROM authorization_codes WHERE code_hash = ?")?
                .query_row([code_hash.as_str()], code_row)
                .optional()
        })
    }

    async fn redeem_code(
        &self,
        code_hash: &TokenHash,
        now: i64,
        g: &GrantRecord,
        refresh: Option<&RefreshFamily>,
    ) -> Result<Transition, StoreError> {
        let (code_hash, g, refresh) = (code_hash.clone(), g.clone(), refresh.cloned());
        let won = self
            .write(Undo::Savepoint, move |conn| {
                let won = conn
                    .prepare_cached(
                        "UPDATE authorization_codes SET used_at = ?, grant_id = ? \
                         WHERE code_hash = ? AND used_at IS NULL",
                    )?
                    .execute(params![now, g.id, code_hash.as_str()])?
                    == 1;
                if !won {
                    return Ok(false);
                }
                let f = refresh.as_ref();
                conn.prepare_cached(
                    "INSERT INTO grants (id, client_id, user_id, scope, resource, created_at, expires_at, \
                     refresh_key, refresh_hash, refresh_issued_at, refresh_expires_at, preferred_username, \
                     email, idp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )?
                .execute(params![
                    g.id,
                    g.client_id,
                    g.user_id,
                    g.scope,
                    g.resource,
                    g.created_at,
                    g.expires_at,
                    f.map(|f| f.key.as_str()),
                    f.map(|f| f.token_hash.as_str()),
                    f.map(|f| f.issued_at),
                    f.map(|f| f.expires_at),
                    g.identity.preferred_username,
                    g.identity.email,
                    g.identity.idp,
                ])?;
                Ok(true)
            })
            .await?;
        Ok(transition(won))
    }

    async fn revoke_grant_of_code(
        &self,
        code_hash: &TokenHash,
        now: i64,
        exp: i64,
    ) -> Result<Option<String>, StoreError> {
        let code_hash = code_hash.clone();
        // The read and the revocation in one operation: the grant id is read inside the write transaction.
        self.write(Undo::Savepoint, move |conn| {
            let gid: Option<Option<String>> = conn
                .prepare_cached("SELECT grant_id FROM authorization_codes WHERE code_hash = ?")?
                .query_row([code_hash.as_str()], |r| r.get(0))
                .optional()?;
            let Some(Some(gid)) = gid else {
                return Ok(None);
            };
            revoke_one_grant(conn, &gid, now, exp)?;
            Ok(Some(gid))
        })
        .await
    }

    async fn refresh_family(
        &self,
        key: &TokenHash,
    ) -> Result<Option<(RefreshFamily, GrantRecord)>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT * FROM grants WHERE refresh_key = ?")?
                .query_row([key.as_str()], family_and_grant)
                .optional()
                .map(Option::flatten)
        })
    }

    async fn rotate_refresh(
        &self,
        key: &TokenHash,
        decide: RotationDecider,
        reuse: ReuseRevocation,
    ) -> Result<Result<Rotation, RefreshError>, StoreError> {
        let key = key.clone();
        // The read, the decision and its consequence in one writer operation: the writer's own connection
        // reads what the batch before committed (and the ops before this one in the batch wrote), from its page
        // cache, and nothing else writes in between. A rotation is one `UPDATE` (so no savepoint on the happy
        // path); a detected reuse revokes the grant with two statements under a savepoint of its own.
        self.write(Undo::Statement, move |conn| {
            let Some((family, grant)) = conn
                .prepare_cached("SELECT * FROM grants WHERE refresh_key = ?")?
                .query_row([key.as_str()], family_and_grant)
                .optional()?
                .flatten()
            else {
                return Ok(Err(RefreshError::Unknown));
            };
            let decision = match decide(&family, &grant) {
                Ok(d) => d,
                Err(e) => {
                    if e.revokes_family() {
                        in_savepoint(conn, |conn| {
                            revoke_one_grant(conn, &grant.id, reuse.now, reuse.expires_at)
                        })?;
                    }
                    return Ok(Err(e));
                }
            };
            // A replay within the grace period writes nothing; it is still answered after this batch's
            // commit, so it never hands out a successor whose rotation could yet be lost.
            if let RotationStep::Rotate(u) = &decision.step {
                let previous = u.previous.as_ref();
                conn.prepare_cached(
                    "UPDATE grants SET refresh_hash = ?, refresh_issued_at = ?, refresh_expires_at = ?, \
                     refresh_prev_hash = ?, refresh_prev_sealed = ? WHERE id = ?",
                )?
                .execute(params![
                    u.token_hash.as_str(),
                    u.issued_at,
                    u.expires_at,
                    previous.map(|p| p.hash.as_str()),
                    previous.map(|p| p.sealed_successor.as_slice()),
                    grant.id
                ])?;
            }
            Ok(Ok(Rotation::of(grant, decision)))
        })
        .await
    }

    async fn revoke_grant(&self, grant_id: &str, now: i64, exp: i64) -> Result<bool, StoreError> {
        let grant_id = grant_id.to_owned();
        self.write(Undo::Savepoint, move |conn| {
            revoke_one_grant(conn, &grant_id, now, exp)
        })
        .await
    }

    async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        let jti = jti.to_owned();
        self.write(Undo::Statement, move |conn| {
            conn.prepare_cached(
                "INSERT INTO revocations (kind, value, expires_at) VALUES (?, ?, ?)",
            )?
            .execute(params![ACCESS_REVOCATION, jti, expires_at])
            .map(drop)
        })
        .await
    }

    async fn revocations_since(
        &self,
        after: i64,
        now: i64,
    ) -> Result<Vec<RevocationRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT seq, kind, value, expires_at FROM revocations WHERE seq > ? AND expires_at > ? \
                 ORDER BY seq LIMIT 10000",
            )?
            .query_map([after, now], |r| {
                Ok(RevocationRecord {
                    seq: r.get(0)?,
                    kind: if r.get::<_, String>(1)? == GRANT_REVOCATION {
                        RevokedKind::Grant
                    } else {
                        RevokedKind::AccessToken
                    },
                    value: r.get(2)?,
                    expires_at: r.get(3)?,
                })
            })?
            .collect()
        })
    }

    async fn grant(&self, grant_id: &str) -> Result<Option<GrantRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT * FROM grants WHERE id = ?")?
                .query_row([grant_id], grant_row)
                .optional()
        })
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        self.write(Undo::Savepoint, move |conn| {
            let mut n = 0;
            // Codes are kept an hour past expiry so a late replay is still recognised as reuse.
            for (sql, cutoff) in [
                (
                    "DELETE FROM authorization_codes WHERE expires_at < ?",
                    now - 3600,
                ),
                ("DELETE FROM grants WHERE expires_at < ?", now),
                ("DELETE FROM sessions WHERE expires_at < ?", now),
                ("DELETE FROM revocations WHERE expires_at < ?", now),
                ("DELETE FROM rate_limits WHERE expires_at < ?", now),
                ("DELETE FROM upstream_states WHERE expires_at < ?", now),
                (
                    "DELETE FROM clients WHERE created_at < ? AND introspection IS NULL \
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
                n += conn.prepare_cached(sql)?.execute([cutoff])? as u64;
            }
            Ok(n)
        })
        .await
    }
}
