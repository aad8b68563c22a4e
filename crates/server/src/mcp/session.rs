//! Legacy (2025-03-26 to 2025-11-25) Streamable HTTP sessions, stateless: the session id is a random value
//! bound by hash to the caller's subject and client, so any instance can check it and a session opened by one
//! user is refused with another user's token. MCP 2026-07-28 has no sessions: modern requests neither get nor
//! need one.

use crate::state::AppState;
use portcullis_guard::VerifiedToken;
use portcullis_proto::b64;
use sha2::{Digest, Sha256};

fn session_mac(p: &VerifiedToken, nonce: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"portcullis mcp session v1\0");
    h.update(p.claims.sub.as_bytes());
    h.update([0]);
    h.update(p.claims.client_id.as_bytes());
    h.update([0]);
    h.update(nonce.as_bytes());
    b64::encode(&h.finalize()[..16])
}

/// A new session id for the caller (answering `initialize`).
pub(crate) fn new_session_id(s: &AppState, p: &VerifiedToken) -> String {
    let mut nonce = [0u8; 16];
    s.authz.core().rng().fill(&mut nonce);
    let nonce = b64::encode(nonce);
    let mac = session_mac(p, &nonce);
    format!("{nonce}.{mac}")
}

/// Whether `id` is a session id minted for this caller.
pub(crate) fn belongs_to(id: &str, p: &VerifiedToken) -> bool {
    id.split_once('.').is_some_and(|(nonce, mac)| {
        nonce.len() == 22 && portcullis_authz::csrf::equal(&session_mac(p, nonce), mac)
    })
}
