//! The cap on event streams per caller (SECURITY.md, "Gateway streams"): every stream the gateway passes
//! through (the `GET` stream, a `POST` answered with events) holds an upstream connection for as long as it is
//! open, so one caller must not hold hundreds. A caller is the token's user and client (`sub`, `client_id`):
//! a refreshed token, or a new grant of the same client, shares the count. Each [`Gateway`](super::upstream)
//! counts its own streams; a slot is released when its stream ends, whichever side ends it ([`StreamSlot`] is
//! dropped with the response body). Beyond the cap: 429 (`upstream::too_many_streams`).

use portcullis_guard::VerifiedToken;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// A caller: the token's `sub` and `client_id`.
type Caller = (String, String);

/// Open streams per caller, of one gateway. Callers with none are not kept.
#[derive(Debug, Default)]
pub struct StreamCounts {
    open: Mutex<HashMap<Caller, u32>>,
}

/// One open stream of one caller; dropping it frees the slot.
#[derive(Debug)]
pub struct StreamSlot {
    /// `None`: not counted (no limit configured).
    held: Option<(Arc<StreamCounts>, Caller)>,
}

impl StreamCounts {
    /// A slot for `p` if it holds fewer than `limit` streams (0: no limit, always a slot, not counted); the
    /// check and the count are one step, so parallel requests never get more than `limit`.
    pub fn acquire(self: &Arc<Self>, p: &VerifiedToken, limit: u32) -> Option<StreamSlot> {
        if limit == 0 {
            return Some(StreamSlot { held: None });
        }
        let caller = (p.claims.sub.clone(), p.claims.client_id.clone());
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(caller.clone()).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            held: Some((self.clone(), caller)),
        })
    }

    /// Whether `p` already holds `limit` streams (0: never): a `POST` is refused before the upstream sees it.
    pub fn is_full(&self, p: &VerifiedToken, limit: u32) -> bool {
        if limit == 0 {
            return false;
        }
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        // A lookup by borrowed parts would need a second map type; callers at the cap are rare.
        let caller = (p.claims.sub.clone(), p.claims.client_id.clone());
        open.get(&caller).is_some_and(|n| *n >= limit)
    }

    /// Streams `p` holds open.
    pub fn open(&self, p: &VerifiedToken) -> u32 {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let caller = (p.claims.sub.clone(), p.claims.client_id.clone());
        open.get(&caller).copied().unwrap_or(0)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let Some((counts, caller)) = self.held.take() else {
            return;
        };
        let mut open = counts.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&caller) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&caller);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_user_and_client_and_freed_on_drop() {
        let counts = Arc::new(StreamCounts::default());
        let alice = crate::guard::test_principal("alice", "c1", "mcp:tools");
        let alice_other_client = crate::guard::test_principal("alice", "c2", "mcp:tools");
        let first = counts.acquire(&alice, 2).expect("first");
        let second = counts.acquire(&alice, 2).expect("second");
        assert!(counts.acquire(&alice, 2).is_none(), "the third is refused");
        assert!(counts.is_full(&alice, 2));
        assert!(!counts.is_full(&alice_other_client, 2));
        let other = counts
            .acquire(&alice_other_client, 2)
            .expect("another client");
        drop(first);
        assert_eq!(counts.open(&alice), 1);
        let again = counts
            .acquire(&alice, 2)
            .expect("a slot again after one closed");
        drop((second, again, other));
        assert_eq!(counts.open(&alice), 0);
        assert!(
            counts.open.lock().unwrap().is_empty(),
            "callers with no stream are not kept"
        );
    }

    #[test]
    fn zero_means_no_limit() {
        let counts = Arc::new(StreamCounts::default());
        let p = crate::guard::test_principal("alice", "c1", "mcp:tools");
        let slots: Vec<_> = (0..100).map(|_| counts.acquire(&p, 0)).collect();
        assert!(slots.iter().all(Option::is_some));
        assert!(!counts.is_full(&p, 0));
        assert_eq!(counts.open(&p), 0, "not counted");
    }
}
