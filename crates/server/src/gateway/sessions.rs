//! Session pinning for gateway mode: which authenticated subject and client opened each `Mcp-Session-Id` the
//! upstream handed out (MCP "Transports", Session Management), so a session id replayed with another user's token
//! is refused with 404 before it reaches the upstream.
//!
//! The table lives in memory: it is correct for one gateway instance. Behind a load balancer, pin clients to an
//! instance (sticky sessions); a gateway restart forgets every session, and clients get 404 and initialize again,
//! which the transport spec tells them to do.

use crate::guard::Principal;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sessions remembered at most; past this, the least recently used one is forgotten.
pub const MAX_SESSIONS: usize = 10_000;
/// A session unused for this long is forgotten when room is needed.
pub const IDLE: Duration = Duration::from_secs(24 * 3600);

/// Who opened a session.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owner {
    sub: String,
    client_id: String,
}

impl Owner {
    fn of(p: &Principal) -> Self {
        Self {
            sub: p.claims.sub.clone(),
            client_id: p.claims.client_id.clone(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    owner: Owner,
    last_used: Instant,
}

/// The upstream handed out a session id that another caller already holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the upstream reused a session id that belongs to another caller")]
pub struct SessionConflict;

/// The session table.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Entry>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A poisoned lock only means another request panicked mid-update; the map is still usable.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `p` may use session `id`: only if this gateway saw the upstream open it for the same subject and
    /// client. Unknown ids are refused too (they may predate a restart), so the client initializes again.
    pub fn allows(&self, id: &str, p: &Principal) -> bool {
        let mut map = self.lock();
        match map.get_mut(id) {
            Some(e) if e.owner == Owner::of(p) => {
                e.last_used = Instant::now();
                true
            }
            _ => false,
        }
    }

    /// Records that the upstream opened (or confirmed) session `id` for `p`.
    pub fn record(&self, id: &str, p: &Principal) -> Result<(), SessionConflict> {
        let owner = Owner::of(p);
        let now = Instant::now();
        let mut map = self.lock();
        if let Some(e) = map.get_mut(id) {
            if e.owner != owner {
                return Err(SessionConflict);
            }
            e.last_used = now;
            return Ok(());
        }
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, e| now.duration_since(e.last_used) < IDLE);
        }
        if map.len() >= MAX_SESSIONS {
            let oldest = map
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        map.insert(
            id.to_owned(),
            Entry {
                owner,
                last_used: now,
            },
        );
        Ok(())
    }

    /// Forgets session `id` (deleted by the client, or unknown to the upstream).
    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// How many sessions are remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_authz::access_token::AccessClaims;
    use portcullis_proto::Scope;

    fn principal(sub: &str, client: &str) -> Principal {
        let claims: AccessClaims = serde_json::from_value(serde_json::json!({
            "iss": "http://127.0.0.1:1", "sub": sub, "aud": "http://127.0.0.1:1/mcp", "client_id": client,
            "exp": 2, "iat": 1, "jti": "j", "scope": "mcp:tools"
        }))
        .expect("claims");
        Principal {
            claims,
            scope: Scope::default(),
        }
    }

    #[test]
    fn sessions_are_pinned_to_subject_and_client() {
        let s = Sessions::default();
        let alice = principal("alice", "c1");
        assert!(!s.allows("sid", &alice), "unknown ids are refused");
        s.record("sid", &alice).expect("record");
        assert!(s.allows("sid", &alice));
        assert!(!s.allows("sid", &principal("bob", "c1")));
        assert!(!s.allows("sid", &principal("alice", "c2")));
        assert_eq!(
            s.record("sid", &principal("bob", "c1")),
            Err(SessionConflict)
        );
        s.forget("sid");
        assert!(!s.allows("sid", &alice));
        assert!(s.is_empty());
    }
}
