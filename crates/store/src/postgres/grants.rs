//! PostgreSQL: authorization codes (RFC 6749 §4.1), grants and their rotating refresh tokens (OAuth 2.1 §4.3.1),
//! the revocation feed the MCP endpoints follow, and purging of expired rows.

use super::clients::{keep_last_use, Deleting};
use super::notify::Notices;
use super::{code_row, grant_row, insert_revocations, retry, PostgresStore};
use super::{ACCESS_REVOCATION, CODE_COLUMNS, GRANT_COLUMNS, GRANT_REVOCATION};
use async_trait::async_trait;
use portcullis_authz::secret::TokenHash;
use portcullis_authz::store::*;
use sqlx::postgres::PgRow;
use sqlx::Row;

#[async_trait]
impl GrantStore for PostgresStore {
    async fn insert_code(&self, c: &CodeRecord) -> Result<(), StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query(
                "INSERT INTO authorization_codes (code_hash, client_id, user_id, redirect_uri, code_challenge, \
                 scope, resource, created_at, expires_at, preferred_username, email, idp) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(c.code_hash.as_str())
            .bind(&c.client_id)
            .bind(&c.user_id)
            .bind(&c.redirect_uri)
            .bind(&c.code_challenge)
            .bind(&c.scope)
            .bind(&c.resource)
            .bind(c.created_at)
            .bind(c.expires_at)
            .bind(&c.identity.preferred_username)
            .bind(&c.identity.email)
            .bind(&c.identity.idp)
            .execute(pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn code(&self, code_hash: &TokenHash) -> Result<Option<CodeRecord>, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query(&format!(
                "SELECT {CODE_COLUMNS} FROM authorization_codes WHERE code_hash = $1"
            ))
            .bind(code_hash.as_str())
            .fetch_optional(pool)
            .await?
            .as_ref()
            .map(code_row)
            .transpose()
        })
        .await
    }

    async fn redeem_code(
        &self,
        code_hash: &TokenHash,
        now: i64,
        g: &GrantRecord,
        refresh: Option<&RefreshFamily>,
    ) -> Result<Transition, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            let mut tx = pool.begin().await?;
            // The single-use step. Concurrent redeemers queue on this row's lock; when the holder commits, each
            // re-checks `used_at IS NULL` against the committed row and updates nothing (see the module doc).
            // If the holder rolls back instead, the next in line wins. Only the winner inserts the grant.
            let won = sqlx::query(
                "UPDATE authorization_codes SET used_at = $1, grant_id = $2 \
                 WHERE code_hash = $3 AND used_at IS NULL",
            )
            .bind(now)
            .bind(&g.id)
            .bind(code_hash.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !won {
                tx.rollback().await?;
                return Ok(Transition::AlreadyUsed);
            }
            sqlx::query(
                "INSERT INTO grants (id, client_id, user_id, scope, resource, created_at, expires_at, \
                 refresh_key, refresh_hash, refresh_issued_at, refresh_expires_at, preferred_username, email, \
                 idp) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(&g.id)
            .bind(&g.client_id)
            .bind(&g.user_id)
            .bind(&g.scope)
            .bind(&g.resource)
            .bind(g.created_at)
            .bind(g.expires_at)
            .bind(refresh.map(|f| f.key.as_str()))
            .bind(refresh.map(|f| f.token_hash.as_str()))
            .bind(refresh.map(|f| f.issued_at))
            .bind(refresh.map(|f| f.expires_at))
            .bind(&g.identity.preferred_username)
            .bind(&g.identity.email)
            .bind(&g.identity.idp)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Transition::Won)
        })
        .await
    }

    async fn revoke_grant_of_code(
        &self,
        code_hash: &TokenHash,
        now: i64,
        exp: i64,
    ) -> Result<Option<String>, StoreError> {
        let pool = &self.pool;
        let gid: Option<Option<String>> = retry(self.deadline, || async move {
            sqlx::query_scalar("SELECT grant_id FROM authorization_codes WHERE code_hash = $1")
                .bind(code_hash.as_str())
                .fetch_optional(pool)
                .await
        })
        .await?;
        let Some(Some(gid)) = gid else {
            return Ok(None);
        };
        self.revoke_grant(&gid, now, exp).await?;
        Ok(Some(gid))
    }

    async fn refresh_family(
        &self,
        key: &TokenHash,
    ) -> Result<Option<(RefreshFamily, GrantRecord)>, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query(&format!(
                "SELECT {GRANT_COLUMNS}, {FAMILY_COLUMNS} FROM grants WHERE refresh_key = $1"
            ))
            .bind(key.as_str())
            .fetch_optional(pool)
            .await?
            .as_ref()
            .map(family_and_grant)
            .transpose()
        })
        .await
    }

    async fn rotate_refresh(
        &self,
        key: &TokenHash,
        decide: RotationDecider,
        reuse: ReuseRevocation,
    ) -> Result<Result<Rotation, RefreshError>, StoreError> {
        let pool = &self.pool;
        let notices = self.notices;
        let decide = &decide;
        retry(self.deadline, || async move {
            // Optimistic, two round trips and no lock held across them: read the family, decide, then store the
            // update only if the family is still what was decided on (same live secret, grant not revoked) —
            // a compare-and-swap in one autocommitted statement. Concurrent rotations of one family queue on
            // the row lock inside that UPDATE; when the first commits, PostgreSQL re-evaluates the others'
            // WHERE against the new row (EvalPlanQual) and they match nothing, so exactly one caller rotates.
            // A loser reads again and decides on what the winner committed: its token is then the one the
            // winner retired, which the decision replays within the grace period (every racer gets the
            // winner's successor) or, with no grace period, finds reused.
            // A revocation (`revoke_grant` sets `revoked_at`) that commits first makes the swap miss too, so
            // no token is issued from a grant after its revocation has committed. Every other input of the
            // decision (client, scope, resource, the grant's expiry) never changes. A reuse revokes the grant
            // right away, in this operation (a retired secret never becomes live again, so that decision
            // cannot go stale). On SQLite the single writer runs read, decision and update as one operation.
            for _ in 0..MAX_SWAPS {
                let row = sqlx::query(&format!(
                    "SELECT {GRANT_COLUMNS}, {FAMILY_COLUMNS} FROM grants WHERE refresh_key = $1"
                ))
                .bind(key.as_str())
                .fetch_optional(pool)
                .await?;
                let Some((family, grant)) = row.as_ref().map(family_and_grant).transpose()? else {
                    return Ok(Err(RefreshError::Unknown));
                };
                let decision = match decide(&family, &grant) {
                    Ok(d) => d,
                    Err(e) => {
                        if e.revokes_family() {
                            let mut tx = pool.begin().await?;
                            revoke_in(&mut tx, notices, &grant.id, reuse.now, reuse.expires_at)
                                .await?;
                            tx.commit().await?;
                        }
                        return Ok(Err(e));
                    }
                };
                let u = match &decision.step {
                    RotationStep::Rotate(u) => u,
                    // Within the grace period: no write. The successor it answers was committed by the
                    // rotation this read saw; a revocation committing after the read still reaches the access
                    // token through the revocation feed, and the successor is then dead.
                    RotationStep::Replay(_) => return Ok(Ok(Rotation::of(grant, decision))),
                };
                let previous = u.previous.as_ref();
                let swapped = sqlx::query(
                    "UPDATE grants SET refresh_hash = $1, refresh_issued_at = $2, refresh_expires_at = $3, \
                     refresh_prev_hash = $4, refresh_prev_sealed = $5 \
                     WHERE refresh_key = $6 AND refresh_hash = $7 AND revoked_at IS NULL",
                )
                .bind(u.token_hash.as_str())
                .bind(u.issued_at)
                .bind(u.expires_at)
                .bind(previous.map(|p| p.hash.as_str()))
                .bind(previous.map(|p| p.sealed_successor.as_slice()))
                .bind(key.as_str())
                .bind(family.token_hash.as_str())
                .execute(pool)
                .await?
                .rows_affected()
                    == 1;
                if swapped {
                    return Ok(Ok(Rotation::of(grant, decision)));
                }
            }
            // The family kept changing under us (each miss means another rotation or a revocation won): give
            // up without a change; the caller refuses, the safe side.
            Ok(Err(RefreshError::Unknown))
        })
        .await
    }

    async fn revoke_grant(&self, grant_id: &str, now: i64, exp: i64) -> Result<bool, StoreError> {
        let pool = &self.pool;
        let notices = self.notices;
        retry(self.deadline, || async move {
            let mut tx = pool.begin().await?;
            let revoked = revoke_in(&mut tx, notices, grant_id, now, exp).await?;
            tx.commit().await?;
            Ok(revoked)
        })
        .await
    }

    async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        let pool = &self.pool;
        let notices = self.notices;
        retry(self.deadline, || async move {
            let mut tx = pool.begin().await?;
            let jti = [jti.to_owned()];
            insert_revocations(&mut tx, notices, ACCESS_REVOCATION, &jti, expires_at).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn revocations_since(
        &self,
        after: i64,
        now: i64,
    ) -> Result<Vec<RevocationRecord>, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            let rows = sqlx::query(
                "SELECT seq, kind, value, expires_at FROM revocations \
                 WHERE seq > $1 AND expires_at > $2 ORDER BY seq LIMIT 10000",
            )
            .bind(after)
            .bind(now)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(RevocationRecord {
                        seq: r.try_get("seq")?,
                        kind: if r.try_get::<String, _>("kind")? == GRANT_REVOCATION {
                            RevokedKind::Grant
                        } else {
                            RevokedKind::AccessToken
                        },
                        value: r.try_get("value")?,
                        expires_at: r.try_get("expires_at")?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn listen_revocations(&self) -> Result<Option<Box<dyn RevocationListener>>, StoreError> {
        match &self.listen {
            Some(options) => Ok(Some(Box::new(options.listen().await?))),
            None => Ok(None),
        }
    }

    async fn grant(&self, grant_id: &str) -> Result<Option<GrantRecord>, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            sqlx::query(&format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1"))
                .bind(grant_id)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(grant_row)
                .transpose()
        })
        .await
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let pool = &self.pool;
        retry(self.deadline, || async move {
            let mut tx = pool.begin().await?;
            let mut n = 0;
            // What the expired grants say about their clients' last use outlives them.
            keep_last_use(&mut tx, Deleting::ExpiredBefore(now)).await?;
            // Codes are kept an hour past expiry so a late replay is still recognised as reuse. Deleting
            // revocation entries never touches `revocation_counter`, so sequence numbers are not reused.
            for (sql, cutoff) in [
                (
                    "DELETE FROM authorization_codes WHERE expires_at < $1",
                    now - 3600,
                ),
                ("DELETE FROM grants WHERE expires_at < $1", now),
                ("DELETE FROM sessions WHERE expires_at < $1", now),
                ("DELETE FROM revocations WHERE expires_at < $1", now),
                ("DELETE FROM rate_limits WHERE expires_at < $1", now),
                ("DELETE FROM upstream_states WHERE expires_at < $1", now),
                (
                    "DELETE FROM signing_keys WHERE NOT active AND publish_until < $1",
                    now,
                ),
            ] {
                n += sqlx::query(sql)
                    .bind(cutoff)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            Ok(n)
        })
        .await
    }
}

/// Compare-and-swap attempts of one rotation. A miss means the family changed (another rotation or a
/// revocation committed), after which the decision is normally "no change"; three covers any interleaving.
const MAX_SWAPS: usize = 3;

/// The refresh-family columns of `grants`.
const FAMILY_COLUMNS: &str = "refresh_key, refresh_hash, refresh_issued_at, refresh_expires_at, \
                              refresh_prev_hash, refresh_prev_sealed";

/// A grant row selected by `refresh_key`, with its family.
fn family_and_grant(r: &PgRow) -> Result<(RefreshFamily, GrantRecord), sqlx::Error> {
    let family = RefreshFamily {
        key: TokenHash::from_stored(r.try_get("refresh_key")?),
        token_hash: TokenHash::from_stored(r.try_get("refresh_hash")?),
        issued_at: r.try_get("refresh_issued_at")?,
        expires_at: r.try_get("refresh_expires_at")?,
        previous: previous_row(r)?,
    };
    Ok((family, grant_row(r)?))
}

/// The token a family's last rotation retired (columns `refresh_prev_*`), if it keeps one.
fn previous_row(r: &PgRow) -> Result<Option<PreviousToken>, sqlx::Error> {
    let hash: Option<String> = r.try_get("refresh_prev_hash")?;
    let sealed: Option<Vec<u8>> = r.try_get("refresh_prev_sealed")?;
    Ok(hash
        .zip(sealed)
        .map(|(hash, sealed_successor)| PreviousToken {
            hash: TokenHash::from_stored(hash),
            sealed_successor,
        }))
}

/// Revokes a grant if it is live and adds its revocation entry, in the caller's transaction; returns whether it
/// was live.
async fn revoke_in(
    tx: &mut sqlx::PgConnection,
    notices: Notices,
    grant_id: &str,
    now: i64,
    exp: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query("UPDATE grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(grant_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 1 {
        insert_revocations(tx, notices, GRANT_REVOCATION, &[grant_id.to_owned()], exp).await?;
    }
    Ok(n == 1)
}
