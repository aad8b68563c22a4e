//! Test support: an in-memory store, deterministic randomness, and helpers for the flows.

#![allow(clippy::unwrap_used)]

use crate::clock::FixedClock;
use crate::config::AuthzConfig;
use crate::random::Random;
use crate::registration::RegisteredClient;
use crate::secret::TokenHash;
use crate::service::Authz;
use crate::store::*;
use async_trait::async_trait;
use portcullis_proto::{AuthorizationCode, AuthorizationCodeRequest, CodeVerifier};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// RFC 7636 Appendix B.
pub(crate) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub(crate) const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// Deterministic bytes: a counter stretched through SHA-256.
#[derive(Default)]
pub(crate) struct SeqRandom(AtomicU64);

impl Random for SeqRandom {
    fn fill(&self, buf: &mut [u8]) {
        use sha2::{Digest, Sha256};
        for chunk in buf.chunks_mut(32) {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            let d = Sha256::digest(n.to_le_bytes());
            chunk.copy_from_slice(&d[..chunk.len()]);
        }
    }
}

#[derive(Default)]
struct Inner {
    clients: HashMap<String, ClientRecord>,
    users: HashMap<String, UserRecord>,
    sessions: HashMap<String, SessionRecord>,
    consents: HashMap<(String, String, String), String>,
    codes: HashMap<String, CodeRecord>,
    grants: HashMap<String, GrantRecord>,
    /// family key -> (family, grant id)
    families: HashMap<String, (RefreshFamily, String)>,
    keys: Vec<SigningKeyRecord>,
    revocations: Vec<RevocationRecord>,
    /// (key, window start) -> (count, expires_at)
    rate_limits: HashMap<(String, i64), (u32, i64)>,
    /// (provider, subject) -> identity
    identities: HashMap<(String, String), IdentityRecord>,
    /// state hash -> pending upstream sign-in
    upstream_states: HashMap<String, UpstreamStateRecord>,
    /// (user id, provider) -> sealed upstream tokens
    upstream_tokens: HashMap<(String, String), UpstreamTokenRecord>,
}

/// An in-memory [`Storage`] with the same transition semantics as the SQL stores. Every method is one
/// storage operation (one lock of the state), counted in `operations`.
#[derive(Default)]
pub(crate) struct MemStore {
    inner: Mutex<Inner>,
    operations: AtomicU64,
    /// When set, `code` answers codes as they were before their redemption: what a redemption that loses the
    /// race read.
    stale_code_reads: std::sync::atomic::AtomicBool,
}

impl MemStore {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        self.operations.fetch_add(1, Ordering::SeqCst);
        f(&mut self.inner.lock().unwrap())
    }

    /// From now on, `code` answers every code as unused (a concurrent redemption's view before the winner's
    /// commit), so the next redemption of a used code loses the race in `redeem_code`.
    pub(crate) fn read_codes_as_before_redemption(&self) {
        self.stale_code_reads.store(true, Ordering::SeqCst);
    }

    /// How many storage operations ran so far.
    pub(crate) fn operations(&self) -> u64 {
        self.operations.load(Ordering::SeqCst)
    }
}

/// Revokes a live grant and logs its revocation (one step of an operation: the caller holds the state).
fn revoke_in(i: &mut Inner, id: &str, now: i64, exp: i64) -> bool {
    let Some(g) = i.grants.get_mut(id) else {
        return false;
    };
    if g.revoked_at.is_some() {
        return false;
    }
    g.revoked_at = Some(now);
    let seq = i.revocations.len() as i64 + 1;
    i.revocations.push(RevocationRecord {
        seq,
        kind: RevokedKind::Grant,
        value: id.into(),
        expires_at: exp,
    });
    true
}

#[async_trait]
impl ClientStore for MemStore {
    async fn insert_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        self.with(|i| i.clients.insert(c.client_id.clone(), c.clone()));
        Ok(())
    }
    async fn client(&self, id: &str) -> Result<Option<ClientRecord>, StoreError> {
        Ok(self.with(|i| i.clients.get(id).cloned()))
    }
    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        Ok(self.with(|i| i.clients.values().cloned().collect()))
    }
    async fn delete_client(&self, id: &str, _now: i64, _exp: i64) -> Result<bool, StoreError> {
        Ok(self.with(|i| i.clients.remove(id).is_some()))
    }
    async fn client_usage(&self, now: i64) -> Result<Vec<ClientUsage>, StoreError> {
        Ok(self.with(|i| {
            let mut all: Vec<ClientUsage> =
                i.clients.values().map(|c| usage_in(i, c, now)).collect();
            all.sort_by(|a, b| {
                (a.client.created_at, &a.client.client_id)
                    .cmp(&(b.client.created_at, &b.client.client_id))
            });
            all
        }))
    }
    async fn reap_clients(
        &self,
        cutoffs: &ReapCutoffs,
        after: &str,
        limit: u32,
        exp: i64,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self.with(|i| {
            let mut ids: Vec<String> = (i.clients.values())
                .filter(|c| c.client_id.as_str() > after)
                .filter(|c| cutoffs.reason(&usage_in(i, c, cutoffs.now)).is_some())
                .map(|c| c.client_id.clone())
                .collect();
            ids.sort();
            ids.truncate(limit as usize);
            for id in &ids {
                let grants: Vec<String> = (i.grants.values())
                    .filter(|g| g.client_id == *id)
                    .map(|g| g.id.clone())
                    .collect();
                for g in &grants {
                    revoke_in(i, g, cutoffs.now, exp);
                    i.grants.remove(g);
                }
                i.families.retain(|_, (_, g)| !grants.contains(g));
                i.codes.retain(|_, c| c.client_id != *id);
                i.consents.retain(|(_, c, _), _| c != id);
                i.clients.remove(id);
            }
            ids
        }))
    }
}

/// The usage of `c` at `now`, from the grants and refresh families held.
fn usage_in(i: &Inner, c: &ClientRecord, now: i64) -> ClientUsage {
    let mut last_used_at = None;
    let mut live_grants = 0;
    for g in i.grants.values().filter(|g| g.client_id == c.client_id) {
        let family = i
            .families
            .values()
            .find(|(_, id)| *id == g.id)
            .map(|(f, _)| f);
        let used = family.map_or(g.created_at, |f| f.issued_at.max(g.created_at));
        last_used_at = last_used_at.max(Some(used));
        let live = g.revoked_at.is_none()
            && g.expires_at > now
            && family.is_none_or(|f| f.expires_at > now);
        live_grants += u64::from(live);
    }
    ClientUsage {
        client: c.clone(),
        last_used_at,
        live_grants,
    }
}

#[async_trait]
impl UserStore for MemStore {
    async fn insert_user(&self, u: &UserRecord) -> Result<(), StoreError> {
        self.with(|i| {
            if i.users.contains_key(&u.username) {
                return Err(StoreError::Conflict("user".into()));
            }
            i.users.insert(u.username.clone(), u.clone());
            Ok(())
        })
    }
    async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(self.with(|i| i.users.get(name).cloned()))
    }
    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        Ok(self.with(|i| i.users.values().cloned().collect()))
    }
    async fn delete_user(&self, name: &str, _now: i64, _exp: i64) -> Result<bool, StoreError> {
        Ok(self.with(|i| {
            let Some(u) = i.users.remove(name) else {
                return false;
            };
            i.identities.retain(|_, id| id.user_id != u.id);
            i.upstream_tokens.retain(|(user, _), _| *user != u.id);
            true
        }))
    }
    async fn set_password(&self, name: &str, hash: &str) -> Result<bool, StoreError> {
        Ok(self.with(|i| match i.users.get_mut(name) {
            Some(u) => {
                u.password_hash = hash.into();
                true
            }
            None => false,
        }))
    }
    async fn count_users(&self) -> Result<i64, StoreError> {
        Ok(self.with(|i| i.users.len() as i64))
    }
}

#[async_trait]
impl SessionStore for MemStore {
    async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        self.with(|i| i.sessions.insert(s.id_hash.as_str().into(), s.clone()));
        Ok(())
    }
    async fn session(&self, h: &TokenHash, now: i64) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.with(|i| {
            i.sessions
                .get(h.as_str())
                .filter(|s| s.expires_at > now)
                .cloned()
        }))
    }
    async fn delete_session(&self, h: &TokenHash) -> Result<(), StoreError> {
        self.with(|i| i.sessions.remove(h.as_str()));
        Ok(())
    }
    async fn consent(&self, u: &str, c: &str, r: &str) -> Result<Option<String>, StoreError> {
        Ok(self.with(|i| i.consents.get(&(u.into(), c.into(), r.into())).cloned()))
    }
    async fn has_consented(&self, u: &str, c: &str) -> Result<bool, StoreError> {
        Ok(self.with(|i| i.consents.keys().any(|(cu, cc, _)| cu == u && cc == c)))
    }
    async fn save_consent(
        &self,
        u: &str,
        c: &str,
        r: &str,
        scope: &str,
        _now: i64,
    ) -> Result<(), StoreError> {
        self.with(|i| {
            i.consents
                .insert((u.into(), c.into(), r.into()), scope.into())
        });
        Ok(())
    }
}

#[async_trait]
impl GrantStore for MemStore {
    async fn insert_code(&self, c: &CodeRecord) -> Result<(), StoreError> {
        self.with(|i| i.codes.insert(c.code_hash.as_str().into(), c.clone()));
        Ok(())
    }
    async fn code(&self, h: &TokenHash) -> Result<Option<CodeRecord>, StoreError> {
        let mut code = self.with(|i| i.codes.get(h.as_str()).cloned());
        if self.stale_code_reads.load(Ordering::SeqCst) {
            if let Some(c) = &mut code {
                c.used_at = None;
                c.grant_id = None;
            }
        }
        Ok(code)
    }
    async fn redeem_code(
        &self,
        h: &TokenHash,
        now: i64,
        g: &GrantRecord,
        r: Option<&RefreshFamily>,
    ) -> Result<Transition, StoreError> {
        Ok(self.with(|i| {
            let Some(code) = i.codes.get_mut(h.as_str()) else {
                return Transition::AlreadyUsed;
            };
            if code.used_at.is_some() {
                return Transition::AlreadyUsed;
            }
            code.used_at = Some(now);
            code.grant_id = Some(g.id.clone());
            i.grants.insert(g.id.clone(), g.clone());
            if let Some(r) = r {
                i.families
                    .insert(r.key.as_str().into(), (r.clone(), g.id.clone()));
            }
            Transition::Won
        }))
    }
    async fn revoke_grant_of_code(
        &self,
        h: &TokenHash,
        now: i64,
        exp: i64,
    ) -> Result<Option<String>, StoreError> {
        let gid = self.with(|i| i.codes.get(h.as_str()).and_then(|c| c.grant_id.clone()));
        if let Some(g) = &gid {
            self.revoke_grant(g, now, exp).await?;
        }
        Ok(gid)
    }
    async fn refresh_family(
        &self,
        key: &TokenHash,
    ) -> Result<Option<(RefreshFamily, GrantRecord)>, StoreError> {
        Ok(self.with(|i| {
            let (f, gid) = i.families.get(key.as_str())?;
            Some((f.clone(), i.grants.get(gid)?.clone()))
        }))
    }
    async fn rotate_refresh(
        &self,
        key: &TokenHash,
        decide: RotationDecider,
        reuse: ReuseRevocation,
    ) -> Result<Result<Rotation, RefreshError>, StoreError> {
        Ok(self.with(|i| {
            let Some((family, gid)) = i.families.get(key.as_str()).cloned() else {
                return Err(RefreshError::Unknown);
            };
            let grant = i.grants.get(&gid).cloned().ok_or(RefreshError::Unknown)?;
            match decide(&family, &grant) {
                Ok(d) => {
                    // A replay writes nothing; a rotation rewrites the family in place.
                    if let RotationStep::Rotate(u) = &d.step {
                        let live = &mut i
                            .families
                            .get_mut(key.as_str())
                            .ok_or(RefreshError::Unknown)?
                            .0;
                        live.token_hash = u.token_hash.clone();
                        live.issued_at = u.issued_at;
                        live.expires_at = u.expires_at;
                        live.previous.clone_from(&u.previous);
                    }
                    Ok(Rotation::of(grant, d))
                }
                Err(e) => {
                    if e.revokes_family() {
                        revoke_in(i, &gid, reuse.now, reuse.expires_at);
                    }
                    Err(e)
                }
            }
        }))
    }
    async fn revoke_grant(&self, id: &str, now: i64, exp: i64) -> Result<bool, StoreError> {
        Ok(self.with(|i| revoke_in(i, id, now, exp)))
    }
    async fn revoke_access_token(&self, jti: &str, exp: i64) -> Result<(), StoreError> {
        self.with(|i| {
            let seq = i.revocations.len() as i64 + 1;
            i.revocations.push(RevocationRecord {
                seq,
                kind: RevokedKind::AccessToken,
                value: jti.into(),
                expires_at: exp,
            });
        });
        Ok(())
    }
    async fn revocations_since(
        &self,
        after: i64,
        now: i64,
    ) -> Result<Vec<RevocationRecord>, StoreError> {
        Ok(self.with(|i| {
            i.revocations
                .iter()
                .filter(|r| r.seq > after && r.expires_at > now)
                .cloned()
                .collect()
        }))
    }
    async fn grant(&self, id: &str) -> Result<Option<GrantRecord>, StoreError> {
        Ok(self.with(|i| i.grants.get(id).cloned()))
    }
    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        Ok(self.with(|i| {
            let before = i.rate_limits.len() + i.upstream_states.len();
            i.rate_limits.retain(|_, (_, exp)| *exp >= now);
            i.upstream_states.retain(|_, st| st.expires_at >= now);
            (before - i.rate_limits.len() - i.upstream_states.len()) as u64
        }))
    }
}

#[async_trait]
impl KeyStore for MemStore {
    async fn signing_keys(&self, now: i64) -> Result<Vec<SigningKeyRecord>, StoreError> {
        Ok(self.with(|i| {
            i.keys
                .iter()
                .filter(|k| k.active || k.publish_until.is_some_and(|t| t > now))
                .cloned()
                .collect()
        }))
    }
    async fn insert_first_key(&self, key: &SigningKeyRecord) -> Result<bool, StoreError> {
        Ok(self.with(|i| {
            if i.keys.iter().any(|k| k.active) {
                return false;
            }
            i.keys.push(key.clone());
            true
        }))
    }
    async fn rotate_key(&self, key: &SigningKeyRecord, until: i64) -> Result<(), StoreError> {
        self.with(|i| {
            for k in i.keys.iter_mut().filter(|k| k.active) {
                k.active = false;
                k.publish_until = Some(until);
            }
            i.keys.push(key.clone());
        });
        Ok(())
    }
}

#[async_trait]
impl HealthStore for MemStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl RateLimitStore for MemStore {
    async fn hit(&self, key: &str, window_start: i64, expires_at: i64) -> Result<u32, StoreError> {
        Ok(self.with(|i| {
            let e = i
                .rate_limits
                .entry((key.to_owned(), window_start))
                .or_insert((0, expires_at));
            e.0 += 1;
            e.0
        }))
    }
    async fn hits(&self, key: &str, window_start: i64) -> Result<u32, StoreError> {
        Ok(self.with(|i| {
            i.rate_limits
                .get(&(key.to_owned(), window_start))
                .map_or(0, |e| e.0)
        }))
    }
    async fn clear_hits(&self, key: &str) -> Result<(), StoreError> {
        self.with(|i| i.rate_limits.retain(|(k, _), _| k != key));
        Ok(())
    }
    async fn reserve_hit(
        &self,
        key: &str,
        window_start: i64,
        expires_at: i64,
        limit: u32,
    ) -> Result<Option<u32>, StoreError> {
        Ok(self.with(|i| {
            let e = i
                .rate_limits
                .entry((key.to_owned(), window_start))
                .or_insert((0, expires_at));
            (e.0 < limit).then(|| {
                e.0 += 1;
                e.0
            })
        }))
    }
    async fn release_hit(&self, key: &str, window_start: i64) -> Result<(), StoreError> {
        self.with(|i| {
            if let Some(e) = i.rate_limits.get_mut(&(key.to_owned(), window_start)) {
                e.0 = e.0.saturating_sub(1);
            }
        });
        Ok(())
    }
}

/// Whether `user_id` may take `identity` (not linked elsewhere, no other identity of the user at the provider).
fn identity_free(i: &Inner, id: &IdentityRecord) -> bool {
    !i.identities
        .contains_key(&(id.provider.clone(), id.subject.clone()))
        && !i
            .identities
            .values()
            .any(|o| o.user_id == id.user_id && o.provider == id.provider)
}

fn sealed_row_of_token(t: &UpstreamTokenRecord) -> SealedRow {
    SealedRow {
        key: SealedRowKey::UpstreamToken {
            user_id: t.user_id.clone(),
            provider: t.provider.clone(),
        },
        key_id: t.key_id.clone(),
        sealed: t.sealed.clone(),
    }
}

fn sealed_row_of_state(st: &UpstreamStateRecord) -> SealedRow {
    SealedRow {
        key: SealedRowKey::UpstreamState {
            state_hash: st.state_hash.clone(),
        },
        key_id: st.key_id.clone(),
        sealed: st.sealed.clone(),
    }
}

/// The sort key of a sealed row within its table.
fn sealed_order(k: &SealedRowKey) -> (String, String) {
    match k {
        SealedRowKey::UpstreamToken { user_id, provider } => (user_id.clone(), provider.clone()),
        SealedRowKey::UpstreamState { state_hash } => {
            (state_hash.as_str().to_owned(), String::new())
        }
    }
}

#[async_trait]
impl FederationStore for MemStore {
    async fn identity(&self, p: &str, s: &str) -> Result<Option<IdentityRecord>, StoreError> {
        Ok(self.with(|i| i.identities.get(&(p.into(), s.into())).cloned()))
    }
    async fn identities_of(&self, user_id: &str) -> Result<Vec<IdentityRecord>, StoreError> {
        let mut v: Vec<_> = self.with(|i| {
            i.identities
                .values()
                .filter(|id| id.user_id == user_id)
                .cloned()
                .collect()
        });
        v.sort_by(|a, b| a.provider.cmp(&b.provider));
        Ok(v)
    }
    async fn list_identities(&self) -> Result<Vec<IdentityRecord>, StoreError> {
        let mut v: Vec<_> = self.with(|i| i.identities.values().cloned().collect());
        v.sort_by(|a, b| (&a.user_id, &a.provider).cmp(&(&b.user_id, &b.provider)));
        Ok(v)
    }
    async fn create_user_with_identity(
        &self,
        u: &UserRecord,
        id: &IdentityRecord,
    ) -> Result<(), StoreError> {
        self.with(|i| {
            if i.users.contains_key(&u.username) || !identity_free(i, id) {
                return Err(StoreError::Conflict("user or identity".into()));
            }
            i.users.insert(u.username.clone(), u.clone());
            i.identities
                .insert((id.provider.clone(), id.subject.clone()), id.clone());
            Ok(())
        })
    }
    async fn link_identity(&self, id: &IdentityRecord) -> Result<(), StoreError> {
        self.with(|i| {
            if !i.users.values().any(|u| u.id == id.user_id) {
                return Err(StoreError::Other("no such user".into()));
            }
            if !identity_free(i, id) {
                return Err(StoreError::Conflict("identity".into()));
            }
            i.identities
                .insert((id.provider.clone(), id.subject.clone()), id.clone());
            Ok(())
        })
    }
    async fn unlink_identity(&self, user_id: &str, provider: &str) -> Result<bool, StoreError> {
        Ok(self.with(|i| {
            let before = i.identities.len();
            i.identities
                .retain(|_, id| !(id.user_id == user_id && id.provider == provider));
            i.upstream_tokens
                .remove(&(user_id.to_owned(), provider.to_owned()));
            i.identities.len() < before
        }))
    }
    async fn touch_identity(&self, id: &IdentityRecord) -> Result<bool, StoreError> {
        Ok(self.with(|i| {
            match i
                .identities
                .get_mut(&(id.provider.clone(), id.subject.clone()))
            {
                Some(stored) => {
                    stored.email = id.email.clone();
                    stored.email_verified = id.email_verified;
                    stored.username = id.username.clone();
                    stored.groups = id.groups.clone();
                    stored.last_login_at = id.last_login_at;
                    true
                }
                None => false,
            }
        }))
    }
    async fn user_by_id(&self, user_id: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(self.with(|i| i.users.values().find(|u| u.id == user_id).cloned()))
    }
    async fn insert_upstream_state(&self, st: &UpstreamStateRecord) -> Result<(), StoreError> {
        self.with(|i| {
            let key = st.state_hash.as_str().to_owned();
            if i.upstream_states.contains_key(&key) {
                return Err(StoreError::Conflict("state".into()));
            }
            i.upstream_states.insert(key, st.clone());
            Ok(())
        })
    }
    async fn take_upstream_state(
        &self,
        h: &TokenHash,
        now: i64,
    ) -> Result<Option<UpstreamStateRecord>, StoreError> {
        Ok(self.with(|i| {
            let live = i
                .upstream_states
                .get(h.as_str())
                .is_some_and(|st| st.expires_at > now);
            if live {
                i.upstream_states.remove(h.as_str())
            } else {
                None
            }
        }))
    }
    async fn put_upstream_tokens(&self, t: &UpstreamTokenRecord) -> Result<(), StoreError> {
        self.with(|i| {
            let mut t = t.clone();
            t.refreshing_until = 0;
            i.upstream_tokens
                .insert((t.user_id.clone(), t.provider.clone()), t);
        });
        Ok(())
    }
    async fn upstream_tokens(
        &self,
        user_id: &str,
        provider: &str,
    ) -> Result<Option<UpstreamTokenRecord>, StoreError> {
        Ok(self.with(|i| {
            i.upstream_tokens
                .get(&(user_id.to_owned(), provider.to_owned()))
                .cloned()
        }))
    }
    async fn lease_upstream_refresh(
        &self,
        user_id: &str,
        provider: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|i| {
            match i
                .upstream_tokens
                .get_mut(&(user_id.to_owned(), provider.to_owned()))
            {
                Some(t) if t.refreshing_until <= now => {
                    t.refreshing_until = until;
                    true
                }
                _ => false,
            }
        }))
    }
    async fn delete_upstream_tokens(
        &self,
        user_id: &str,
        provider: &str,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|i| {
            i.upstream_tokens
                .remove(&(user_id.to_owned(), provider.to_owned()))
                .is_some()
        }))
    }
    async fn sealed_rows(
        &self,
        table: SealedTable,
        after: Option<&SealedRowKey>,
        limit: u32,
    ) -> Result<Vec<SealedRow>, StoreError> {
        let mut rows: Vec<SealedRow> = self.with(|i| match table {
            SealedTable::UpstreamTokens => i
                .upstream_tokens
                .values()
                .map(sealed_row_of_token)
                .collect(),
            SealedTable::UpstreamStates => i
                .upstream_states
                .values()
                .map(sealed_row_of_state)
                .collect(),
        });
        rows.sort_by_key(|r| sealed_order(&r.key));
        let after = after.map(sealed_order);
        Ok(rows
            .into_iter()
            .filter(|r| after.as_ref().is_none_or(|a| sealed_order(&r.key) > *a))
            .take(limit as usize)
            .collect())
    }
    async fn reseal(&self, batch: &[Reseal]) -> Result<u64, StoreError> {
        Ok(self.with(|i| {
            let mut n = 0;
            for r in batch {
                let (key_id, sealed) = match &r.row.key {
                    SealedRowKey::UpstreamToken { user_id, provider } => {
                        match i
                            .upstream_tokens
                            .get_mut(&(user_id.clone(), provider.clone()))
                        {
                            Some(t) => (&mut t.key_id, &mut t.sealed),
                            None => continue,
                        }
                    }
                    SealedRowKey::UpstreamState { state_hash } => {
                        match i.upstream_states.get_mut(state_hash.as_str()) {
                            Some(st) => (&mut st.key_id, &mut st.sealed),
                            None => continue,
                        }
                    }
                };
                if *key_id == r.row.key_id && *sealed == r.row.sealed {
                    *key_id = r.key_id.clone();
                    *sealed = r.sealed.clone();
                    n += 1;
                }
            }
            n
        }))
    }
}

pub(crate) async fn authz_with_clock() -> (Authz, Arc<FixedClock>) {
    authz_on(Arc::new(MemStore::default())).await
}

/// An [`Authz`] on `store`, with a fixed clock.
pub(crate) async fn authz_on(store: Arc<MemStore>) -> (Authz, Arc<FixedClock>) {
    authz_on_with(store, |_| {}).await
}

/// An [`Authz`] with a fixed clock and the test configuration as `change` leaves it.
pub(crate) async fn authz_with_config(
    change: impl FnOnce(&mut AuthzConfig),
) -> (Authz, Arc<FixedClock>) {
    authz_on_with(Arc::new(MemStore::default()), change).await
}

async fn authz_on_with(
    store: Arc<MemStore>,
    change: impl FnOnce(&mut AuthzConfig),
) -> (Authz, Arc<FixedClock>) {
    let clock = Arc::new(FixedClock::new(1_700_000_000));
    let mut config = AuthzConfig::new("http://127.0.0.1:8080", "http://127.0.0.1:8080/mcp");
    change(&mut config);
    let a = Authz::new(store, clock.clone(), Arc::new(SeqRandom::default()), config)
        .await
        .unwrap();
    (a, clock)
}

/// An [`Authz`] as [`authz`] builds it, resolving URL client ids through `resolver`.
pub(crate) async fn authz_with_resolver(
    resolver: Arc<dyn crate::client_id_metadata::ClientMetadataResolver>,
) -> Authz {
    let config = AuthzConfig::new("http://127.0.0.1:8080", "http://127.0.0.1:8080/mcp");
    Authz::with_client_metadata_resolver(
        Arc::new(MemStore::default()),
        Arc::new(FixedClock::new(1_700_000_000)),
        Arc::new(SeqRandom::default()),
        config,
        Some(resolver),
    )
    .await
    .unwrap()
}

pub(crate) async fn authz() -> Authz {
    authz_with_clock().await.0
}

/// Every revocation-log entry so far.
pub(crate) async fn revocations(a: &Authz) -> Vec<crate::store::RevocationRecord> {
    a.core()
        .store()
        .revocations_since(0, a.core().now())
        .await
        .expect("revocations")
}

/// A newly registered public client, as client authentication finds it.
pub(crate) async fn public_client(a: &Authz) -> RegisteredClient {
    let id = register_public(a).await;
    a.registrations()
        .client(&id)
        .await
        .expect("lookup")
        .expect("registered")
}

pub(crate) async fn register_public(a: &Authz) -> String {
    let meta = serde_json::from_str(
        r#"{"client_name":"Test","redirect_uris":["http://localhost:8080/callback"],
            "grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"none"}"#,
    )
    .unwrap();
    a.registrations().register(meta).await.unwrap().client_id
}

/// The identity [`code_for`] approves with: a user who signed in through an identity provider.
pub(crate) fn carol() -> DisplayIdentity {
    DisplayIdentity {
        preferred_username: "carol".into(),
        email: Some("carol@example.com".into()),
        idp: Some("corp".into()),
    }
}

/// Runs an authorization request for `client_id` approved by user `u1` (shown as [`carol`]); returns the code.
pub(crate) async fn code_for(a: &Authz, client_id: &str) -> String {
    let q = format!(
        "response_type=code&client_id={client_id}&redirect_uri=http%3A%2F%2Flocalhost%3A8080%2Fcallback\
         &code_challenge={CHALLENGE}&code_challenge_method=S256"
    );
    let req = a.authorizations().authorization_request(&q).await.unwrap();
    let loc = a
        .authorizations()
        .approve("u1", &carol(), &req)
        .await
        .unwrap();
    let url = url::Url::parse(&loc).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned()
}

pub(crate) fn token_req(code: &str, verifier: &str) -> AuthorizationCodeRequest {
    AuthorizationCodeRequest {
        code: AuthorizationCode::new(code),
        code_verifier: CodeVerifier::parse(verifier).unwrap(),
        redirect_uri: Some("http://localhost:8080/callback".into()),
        resource: None,
    }
}
