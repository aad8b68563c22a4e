//! Reaping dead registrations: which stored clients the background job deletes, as a pure rule the storage
//! backends implement in SQL (and the tests check against it).
//!
//! Open dynamic registration (RFC 7591 §3) lets anyone store a client, and real MCP clients register again and
//! again (a new registration per install, per retry, per lost file), so registrations pile up: most never obtain
//! a token, and most of the rest are abandoned. RFC 7591 §5 leaves the lifetime of a registration to the
//! server. Two rules, each a number of seconds (0: the rule is off):
//! - **tokenless** ([`ReapPolicy::tokenless_after`], default 24 h): a client that never obtained a token within
//!   that long after it was stored;
//! - **idle** ([`ReapPolicy::idle_after`], default 90 days): a client with no live grant whose last use (its
//!   last code exchange or refresh, [`ClientUsage::last_used_at`]) is older than that (never used: its
//!   registration time counts).
//!
//! Only clients stored by unauthenticated parties are ever reaped: registered at `POST /register`, or the row of
//! a Client ID Metadata Document (re-created from the document at its next use). A client made by an
//! administrator ([`ClientOrigin::Admin`]) never is. Deleting a client revokes every grant it still has and
//! removes its consents, codes and grants ([`crate::store::ClientStore::reap_clients`]).

use crate::store::{ClientOrigin, ClientUsage};

/// The default of [`ReapPolicy::tokenless_after`]: 24 hours.
pub const DEFAULT_TOKENLESS_AFTER: i64 = 24 * 3600;
/// The default of [`ReapPolicy::idle_after`]: 90 days.
pub const DEFAULT_IDLE_AFTER: i64 = 90 * 24 * 3600;
/// Clients deleted per storage operation: each batch is one short transaction.
pub const REAP_BATCH: u32 = 100;

/// When stored clients are reaped. Times in seconds; 0 turns a rule off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReapPolicy {
    /// A client that obtained no token this long after it was stored is deleted (0: never).
    pub tokenless_after: i64,
    /// A client with no live grant, unused for this long, is deleted (0: never).
    pub idle_after: i64,
}

impl Default for ReapPolicy {
    fn default() -> Self {
        Self {
            tokenless_after: DEFAULT_TOKENLESS_AFTER,
            idle_after: DEFAULT_IDLE_AFTER,
        }
    }
}

/// Why a client is reaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReapReason {
    /// It never obtained a token within [`ReapPolicy::tokenless_after`] of its registration.
    Tokenless,
    /// No live grant, and unused for [`ReapPolicy::idle_after`].
    Idle,
}

/// The rule as the storage backends' SQL takes it: a client is reaped if it is not admin-made, has no live
/// grant, and either (never used and stored before `tokenless_before`) or (last used, else stored, before
/// `idle_before`). `None`: that rule is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReapCutoffs {
    /// The current time (a live grant is one not revoked and not expired at `now`).
    pub now: i64,
    /// Never-used clients stored before this are reaped.
    pub tokenless_before: Option<i64>,
    /// Clients last used (or, never used, stored) before this are reaped.
    pub idle_before: Option<i64>,
}

impl ReapCutoffs {
    /// Why `usage`'s client is reaped, if it is (see [`ReapPolicy::reason`]).
    pub fn reason(&self, usage: &ClientUsage) -> Option<ReapReason> {
        if usage.client.origin == ClientOrigin::Admin || usage.live_grants > 0 {
            return None;
        }
        let created = usage.client.created_at;
        if usage.last_used_at.is_none() && self.tokenless_before.is_some_and(|t| created < t) {
            return Some(ReapReason::Tokenless);
        }
        let last = usage.last_used_at.unwrap_or(created).max(created);
        if self.idle_before.is_some_and(|t| last < t) {
            return Some(ReapReason::Idle);
        }
        None
    }
}

impl ReapPolicy {
    /// Whether both rules are off.
    pub fn is_off(&self) -> bool {
        self.tokenless_after <= 0 && self.idle_after <= 0
    }

    /// The cutoffs at `now`, for the storage backends.
    pub fn cutoffs(&self, now: i64) -> ReapCutoffs {
        let before = |after: i64| (after > 0).then(|| now.saturating_sub(after));
        ReapCutoffs {
            now,
            tokenless_before: before(self.tokenless_after),
            idle_before: before(self.idle_after),
        }
    }

    /// Why `usage`'s client is reaped at `now`, if it is: the rule every backend implements.
    pub fn reason(&self, usage: &ClientUsage, now: i64) -> Option<ReapReason> {
        self.cutoffs(now).reason(usage)
    }

    /// How often the background job looks for clients to reap, in seconds: every `max_period` (the purge
    /// interval), or a tenth of the shorter rule when that is shorter (at least every second), so a short
    /// setting is honoured to about a tenth of itself. `None` when both rules are off.
    pub fn period(&self, max_period: u64) -> Option<u64> {
        let shortest = [self.tokenless_after, self.idle_after]
            .into_iter()
            .filter(|&s| s > 0)
            .min()?;
        let tenth = u64::try_from(shortest / 10).unwrap_or(0).max(1);
        Some(tenth.min(max_period.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ClientRecord;

    const T0: i64 = 1_700_000_000;
    const DAY: i64 = 24 * 3600;

    fn usage(origin: ClientOrigin, last_used_at: Option<i64>, live_grants: u64) -> ClientUsage {
        ClientUsage {
            client: ClientRecord {
                client_id: "c".into(),
                secret_hash: None,
                metadata_json: "{}".into(),
                created_at: T0,
                origin,
                introspection: None,
            },
            last_used_at,
            live_grants,
        }
    }

    #[test]
    fn a_client_that_never_obtained_a_token_goes_after_a_day() {
        let p = ReapPolicy::default();
        let u = usage(ClientOrigin::Registered, None, 0);
        assert_eq!(p.reason(&u, T0 + DAY), None, "exactly a day: not yet");
        assert_eq!(p.reason(&u, T0 + DAY + 1), Some(ReapReason::Tokenless));
        let used = usage(ClientOrigin::Registered, Some(T0 + 10), 0);
        assert_eq!(p.reason(&used, T0 + DAY + 1), None, "it obtained a token");
    }

    #[test]
    fn an_idle_client_goes_after_ninety_days_without_a_live_grant() {
        let p = ReapPolicy::default();
        let last = T0 + 5 * DAY;
        let idle = usage(ClientOrigin::Registered, Some(last), 0);
        assert_eq!(p.reason(&idle, last + 90 * DAY), None);
        assert_eq!(p.reason(&idle, last + 90 * DAY + 1), Some(ReapReason::Idle));
        let live = usage(ClientOrigin::Registered, Some(last), 1);
        assert_eq!(
            p.reason(&live, last + 900 * DAY),
            None,
            "a live grant keeps it"
        );
    }

    #[test]
    fn admin_made_clients_are_never_reaped_and_metadata_document_rows_are() {
        let p = ReapPolicy::default();
        let far = T0 + 1000 * DAY;
        assert_eq!(p.reason(&usage(ClientOrigin::Admin, None, 0), far), None);
        assert_eq!(
            p.reason(&usage(ClientOrigin::Admin, Some(T0), 0), far),
            None
        );
        assert_eq!(
            p.reason(&usage(ClientOrigin::MetadataDocument, None, 0), far),
            Some(ReapReason::Tokenless)
        );
    }

    #[test]
    fn zero_turns_a_rule_off() {
        let never_used = usage(ClientOrigin::Registered, None, 0);
        let far = T0 + 1000 * DAY;
        let idle_only = ReapPolicy {
            tokenless_after: 0,
            ..ReapPolicy::default()
        };
        assert_eq!(
            idle_only.reason(&never_used, T0 + 2 * DAY),
            None,
            "the tokenless rule is off"
        );
        assert_eq!(
            idle_only.reason(&never_used, far),
            Some(ReapReason::Idle),
            "a never-used client is idle since its registration"
        );
        let off = ReapPolicy {
            tokenless_after: 0,
            idle_after: 0,
        };
        assert!(off.is_off());
        assert_eq!(off.reason(&never_used, far), None);
        assert_eq!(
            off.cutoffs(far),
            ReapCutoffs {
                now: far,
                tokenless_before: None,
                idle_before: None
            }
        );
        assert_eq!(off.period(3600), None);
    }

    #[test]
    fn the_period_follows_the_shorter_rule() {
        assert_eq!(ReapPolicy::default().period(3600), Some(3600));
        let short = ReapPolicy {
            tokenless_after: 2,
            idle_after: 300,
        };
        assert_eq!(short.period(3600), Some(1));
        let minutes = ReapPolicy {
            tokenless_after: 0,
            idle_after: 600,
        };
        assert_eq!(minutes.period(3600), Some(60));
    }
}
