//! The pure decision of a refresh (RFC 6749 §6, OAuth 2.1 §4.3.1, RFC 9700 §4.14.2): given the presented token
//! and the family and grant as the store reads them inside its operation, rotate, replay, or refuse. No I/O, no
//! clock: the time is part of the attempt, so every branch is tested with fixed values.
//!
//! - The presented secret is the family's live one: **rotate** to the attempt's new secret, keeping the
//!   presented one as the family's previous token with the new secret sealed under it (`token::successor`).
//! - It is the previous token, the grace period is on and has not run out since the rotation (the live
//!   token's `issued_at`): **replay**, write nothing, and answer with the live token opened from the seal, the
//!   same refresh token the rotation's answer carried. Opened bytes that do not hash to the live token are
//!   treated as reuse.
//! - Anything else carrying the family's handle is a retired token: **reuse**, and the store revokes the
//!   family (RFC 9700 §4.14.2).
//!
//! Client binding, revocation, expiry, scope and resource rules apply alike to rotations and replays.

use super::successor;
use crate::secret::{Secret, TokenHash};
use crate::store::{
    GrantRecord, PreviousToken, RefreshError, RefreshFamily, RefreshUpdate, RotationDecision,
    RotationStep,
};
use portcullis_proto::{ResourceIndicator, Scope};

/// A refresh attempt: everything a rotation is decided on besides the stored family and grant. The decision
/// ([`RefreshAttempt::decide`]) is a pure function, run inside the storage operation
/// ([`crate::store::RotationDecider`]; PostgreSQL may run it again after a lost compare-and-swap).
pub(super) struct RefreshAttempt {
    /// The authenticated client.
    pub(super) client_id: String,
    /// The presented token's secret part (the key that opens a sealed successor).
    pub(super) presented: Secret,
    /// Its hash.
    pub(super) presented_hash: TokenHash,
    /// The scope asked for, if any.
    pub(super) scope: Option<Scope>,
    /// The resource asked for, if any.
    pub(super) resource: Option<ResourceIndicator>,
    /// The time of the attempt.
    pub(super) now: i64,
    /// The idle lifetime of a new refresh token.
    pub(super) idle_ttl: i64,
    /// The grace period, seconds (0: strict rotation).
    pub(super) grace_period: i64,
    /// The hash of the new secret, if this attempt rotates.
    pub(super) next: TokenHash,
    /// The presented token with the new secret sealed under it, stored by a rotation (`None` with no grace
    /// period). Computed before the storage operation so the store's writer does no cryptography.
    pub(super) previous: Option<PreviousToken>,
}

impl RefreshAttempt {
    /// Rotate, replay, or refuse (see the module documentation).
    pub(super) fn decide(
        &self,
        family: &RefreshFamily,
        grant: &GrantRecord,
    ) -> Result<RotationDecision, RefreshError> {
        if grant.client_id != self.client_id {
            return Err(RefreshError::OtherClient);
        }
        if grant.revoked_at.is_some() {
            return Err(RefreshError::Revoked);
        }
        let replayed = if family.token_hash.ct_eq(&self.presented_hash) {
            None
        } else {
            Some(self.replayable(family).ok_or(RefreshError::Reused)?)
        };
        if self.now >= family.expires_at || self.now >= grant.expires_at {
            return Err(RefreshError::Expired);
        }
        let granted = Scope::parse(&grant.scope).unwrap_or_default();
        let scope = match &self.scope {
            None => granted,
            Some(asked) if granted.includes(asked) => asked.clone(),
            Some(_) => return Err(RefreshError::ScopeWidened),
        };
        if self
            .resource
            .as_ref()
            .is_some_and(|r| r.as_str() != grant.resource)
        {
            return Err(RefreshError::OtherResource);
        }
        let step = match replayed {
            Some(successor) => RotationStep::Replay(successor),
            None => RotationStep::Rotate(RefreshUpdate {
                token_hash: self.next.clone(),
                issued_at: self.now,
                expires_at: (self.now + self.idle_ttl).min(grant.expires_at),
                previous: self.previous.clone(),
            }),
        };
        Ok(RotationDecision { step, scope })
    }

    /// The family's live token, if the presented one is the token the last rotation retired and the grace
    /// period since that rotation has not run out (RFC 9700 §4.14.2 relaxed for lost responses and races).
    fn replayable(&self, family: &RefreshFamily) -> Option<Secret> {
        let previous = family.previous.as_ref()?;
        if self.grace_period <= 0
            || self.now >= family.issued_at.saturating_add(self.grace_period)
            || !previous.hash.ct_eq(&self.presented_hash)
        {
            return None;
        }
        let live = successor::open(&self.presented, &family.key, &previous.sealed_successor)?;
        live.hash().ct_eq(&family.token_hash).then_some(live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DisplayIdentity;
    use portcullis_proto::b64;

    const NOW: i64 = 1_700_000_000;
    const GRACE: i64 = 30;
    /// The family's handle hash.
    const KEY: &str = "family-key";
    /// The token the last rotation retired, and the live one it was rotated into (raw bytes).
    const RETIRED: &str = "retired-secret";
    const LIVE: [u8; 32] = [7; 32];

    fn live() -> Secret {
        Secret::new(b64::encode(LIVE))
    }

    fn grant() -> GrantRecord {
        GrantRecord {
            id: "g".into(),
            client_id: "c".into(),
            user_id: "u".into(),
            scope: "mcp:tools mcp:admin".into(),
            resource: "http://x/mcp".into(),
            created_at: NOW - 100,
            expires_at: NOW + 10_000,
            revoked_at: None,
            identity: DisplayIdentity::password_user("alice"),
        }
    }

    /// A family rotated at `rotated_at` from [`RETIRED`] into [`LIVE`].
    fn family(rotated_at: i64) -> RefreshFamily {
        let key = TokenHash::of(KEY);
        RefreshFamily {
            previous: Some(PreviousToken {
                hash: TokenHash::of(RETIRED),
                sealed_successor: successor::seal(&Secret::new(RETIRED), &key, &LIVE),
            }),
            key,
            token_hash: live().hash(),
            issued_at: rotated_at,
            expires_at: rotated_at + 600,
        }
    }

    /// An attempt by client `c` presenting `secret` at `now` with grace period `grace`.
    fn attempt(secret: &str, now: i64, grace: i64) -> RefreshAttempt {
        RefreshAttempt {
            client_id: "c".into(),
            presented: Secret::new(secret),
            presented_hash: TokenHash::of(secret),
            scope: None,
            resource: None,
            now,
            idle_ttl: 600,
            grace_period: grace,
            next: TokenHash::of("next"),
            previous: Some(PreviousToken {
                hash: TokenHash::of(secret),
                sealed_successor: vec![1; 32],
            }),
        }
    }

    fn replayed(d: Result<RotationDecision, RefreshError>) -> Option<Secret> {
        match d.unwrap().step {
            RotationStep::Replay(s) => Some(s),
            RotationStep::Rotate(_) => None,
        }
    }

    #[test]
    fn the_live_token_rotates_and_keeps_itself_as_previous() {
        let a = attempt(live().expose(), NOW + 5, GRACE);
        let d = a.decide(&family(NOW), &grant()).unwrap();
        assert_eq!(
            d.step,
            RotationStep::Rotate(RefreshUpdate {
                token_hash: TokenHash::of("next"),
                issued_at: NOW + 5,
                expires_at: NOW + 605,
                previous: a.previous.clone(),
            })
        );
        assert_eq!(d.scope, Scope::parse("mcp:tools mcp:admin").unwrap());
    }

    #[test]
    fn the_retired_token_within_the_window_replays_the_live_one() {
        let d = attempt(RETIRED, NOW + 1, GRACE).decide(&family(NOW), &grant());
        assert_eq!(replayed(d), Some(live()));
    }

    /// The window is `[rotation, rotation + grace)`: its last second replays, the next one is reuse.
    #[test]
    fn the_window_edge() {
        let last = attempt(RETIRED, NOW + GRACE - 1, GRACE).decide(&family(NOW), &grant());
        assert_eq!(replayed(last), Some(live()));
        assert_eq!(
            attempt(RETIRED, NOW + GRACE, GRACE).decide(&family(NOW), &grant()),
            Err(RefreshError::Reused)
        );
    }

    #[test]
    fn no_grace_period_is_strict_rotation() {
        assert_eq!(
            attempt(RETIRED, NOW, 0).decide(&family(NOW), &grant()),
            Err(RefreshError::Reused)
        );
        let mut a = attempt(live().expose(), NOW, 0);
        a.previous = None;
        let d = a.decide(&family(NOW), &grant()).unwrap();
        assert!(matches!(
            d.step,
            RotationStep::Rotate(RefreshUpdate { previous: None, .. })
        ));
    }

    #[test]
    fn an_older_generation_is_reuse_even_within_the_window() {
        assert_eq!(
            attempt("older-secret", NOW + 1, GRACE).decide(&family(NOW), &grant()),
            Err(RefreshError::Reused)
        );
        // A family never rotated (or rotated strictly) has no previous token to replay.
        let mut f = family(NOW);
        f.previous = None;
        assert_eq!(
            attempt(RETIRED, NOW + 1, GRACE).decide(&f, &grant()),
            Err(RefreshError::Reused)
        );
    }

    /// A sealed successor that does not open to the live token (tampered, or written for another family) is
    /// never answered: it reads as reuse.
    #[test]
    fn a_seal_that_does_not_open_to_the_live_token_is_reuse() {
        let mut tampered = family(NOW);
        if let Some(p) = tampered.previous.as_mut() {
            p.sealed_successor[0] ^= 1;
        }
        let mut moved = family(NOW);
        moved.key = TokenHash::of("another family");
        let mut short = family(NOW);
        if let Some(p) = short.previous.as_mut() {
            p.sealed_successor.truncate(16);
        }
        for f in [tampered, moved, short] {
            assert_eq!(
                attempt(RETIRED, NOW + 1, GRACE).decide(&f, &grant()),
                Err(RefreshError::Reused)
            );
        }
    }

    /// Client binding, revocation, expiry, scope and resource hold for a replay as for a rotation, and none of
    /// them is reuse (nothing is revoked).
    #[test]
    fn a_replay_keeps_every_other_rule() {
        let f = family(NOW);
        let mut other = attempt(RETIRED, NOW + 1, GRACE);
        other.client_id = "other".into();
        assert_eq!(other.decide(&f, &grant()), Err(RefreshError::OtherClient));
        let mut revoked = grant();
        revoked.revoked_at = Some(NOW);
        let a = attempt(RETIRED, NOW + 1, GRACE);
        assert_eq!(a.decide(&f, &revoked), Err(RefreshError::Revoked));
        let mut ended = grant();
        ended.expires_at = NOW + 1;
        assert_eq!(a.decide(&f, &ended), Err(RefreshError::Expired));
        let mut idle = family(NOW);
        idle.expires_at = NOW + 1;
        assert_eq!(a.decide(&idle, &grant()), Err(RefreshError::Expired));
        let mut wide = attempt(RETIRED, NOW + 1, GRACE);
        wide.scope = Some(Scope::parse("mcp:tools mcp:other").unwrap());
        assert_eq!(wide.decide(&f, &grant()), Err(RefreshError::ScopeWidened));
        let mut elsewhere = attempt(RETIRED, NOW + 1, GRACE);
        elsewhere.resource = Some(ResourceIndicator::new("http://y/mcp"));
        assert_eq!(
            elsewhere.decide(&f, &grant()),
            Err(RefreshError::OtherResource)
        );
        // A narrower scope is granted to a replay's access token; the refresh token is the same.
        let mut narrow = attempt(RETIRED, NOW + 1, GRACE);
        narrow.scope = Some(Scope::parse("mcp:tools").unwrap());
        let d = narrow.decide(&f, &grant()).unwrap();
        assert_eq!(d.scope, Scope::parse("mcp:tools").unwrap());
        assert_eq!(d.step, RotationStep::Replay(live()));
    }
}
