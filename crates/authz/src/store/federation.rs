//! Storage of federation: who a user is at an upstream identity provider ([`IdentityRecord`], keyed by
//! `(provider, subject)`: OpenID Connect Core §5.7, the `sub` is unique only within its issuer, and is the only
//! stable key), the pending state of an upstream sign-in ([`UpstreamStateRecord`], single use), and the user's
//! sealed tokens at the provider ([`UpstreamTokenRecord`], the vault; see `crate::vault`).
//!
//! Nothing secret is stored in the clear: the state is stored as its hash, and everything else secret (the
//! nonce, the PKCE verifier, the upstream tokens) only sealed by the vault, beside the id of the key that
//! sealed it.

use super::{StoreError, UserRecord};
use crate::secret::TokenHash;
use crate::vault::{self, KeyId};
use async_trait::async_trait;
use std::fmt;

/// A user's identity at an upstream provider. A user has at most one identity per provider.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityRecord {
    /// The provider's configured name (`[[identity_providers]] name`).
    pub provider: String,
    /// The provider's stable subject identifier (`sub`, or GitHub's numeric user id).
    pub subject: String,
    /// The local user.
    pub user_id: String,
    /// The email the provider last reported.
    pub email: Option<String>,
    /// Whether the provider said it verified that email.
    pub email_verified: bool,
    /// The user name the provider last reported (`preferred_username`, GitHub `login`).
    pub username: Option<String>,
    /// The groups the provider last reported.
    pub groups: Vec<String>,
    /// When the identity was created or linked.
    pub created_at: i64,
    /// The last sign-in through it.
    pub last_login_at: i64,
}

/// The pending state of an upstream sign-in (state, nonce, PKCE verifier, the original authorization request),
/// sealed; found by the hash of the `state` sent to the provider, and taken exactly once.
#[derive(Clone, PartialEq)]
pub struct UpstreamStateRecord {
    /// Hash of the `state` value.
    pub state_hash: TokenHash,
    /// The provider the sign-in went to.
    pub provider: String,
    /// The vault key that sealed `sealed`.
    pub key_id: KeyId,
    /// The sealed pending login (AAD `crate::vault::upstream_state_aad`).
    pub sealed: Vec<u8>,
    /// When it stops being accepted.
    pub expires_at: i64,
}

/// A user's tokens at a provider, sealed (AAD `crate::vault::upstream_token_aad`), with the lease that
/// allows one refresh at a time across instances.
#[derive(Clone, PartialEq)]
pub struct UpstreamTokenRecord {
    /// The local user.
    pub user_id: String,
    /// The provider.
    pub provider: String,
    /// The vault key that sealed `sealed`.
    pub key_id: KeyId,
    /// The sealed tokens.
    pub sealed: Vec<u8>,
    /// When the upstream access token expires, if the provider said.
    pub expires_at: Option<i64>,
    /// Until when one caller holds the refresh lease (0 or past: nobody).
    pub refreshing_until: i64,
    /// When the tokens were last stored.
    pub updated_at: i64,
}

impl fmt::Debug for UpstreamStateRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamStateRecord")
            .field("provider", &self.provider)
            .field("key_id", &self.key_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for UpstreamTokenRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTokenRecord")
            .field("user_id", &self.user_id)
            .field("provider", &self.provider)
            .field("key_id", &self.key_id)
            .field("expires_at", &self.expires_at)
            .field("refreshing_until", &self.refreshing_until)
            .field("updated_at", &self.updated_at)
            .finish_non_exhaustive()
    }
}

/// The tables that hold sealed values (for key rotation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedTable {
    /// [`UpstreamTokenRecord`]s.
    UpstreamTokens,
    /// [`UpstreamStateRecord`]s.
    UpstreamStates,
}

/// Which row a sealed value belongs to; rows are listed in this order within a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealedRowKey {
    /// A user's tokens at a provider.
    UpstreamToken {
        /// The local user.
        user_id: String,
        /// The provider.
        provider: String,
    },
    /// A pending upstream sign-in.
    UpstreamState {
        /// Hash of its `state`.
        state_hash: TokenHash,
    },
}

impl SealedRowKey {
    /// The additional authenticated data the row's value is sealed with.
    pub fn aad(&self) -> Vec<u8> {
        match self {
            Self::UpstreamToken { user_id, provider } => {
                vault::upstream_token_aad(user_id, provider)
            }
            Self::UpstreamState { state_hash } => vault::upstream_state_aad(state_hash),
        }
    }
}

/// One sealed value as stored, for key rotation.
#[derive(Clone, PartialEq)]
pub struct SealedRow {
    /// Its row.
    pub key: SealedRowKey,
    /// The key that sealed it.
    pub key_id: KeyId,
    /// The sealed bytes.
    pub sealed: Vec<u8>,
}

impl fmt::Debug for SealedRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedRow")
            .field("key", &self.key)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A sealed value re-encrypted under another key, replacing `row` only if the row still holds exactly what
/// was read (so a concurrent write is never overwritten with older data).
#[derive(Debug, Clone, PartialEq)]
pub struct Reseal {
    /// The row as it was read.
    pub row: SealedRow,
    /// The new key id.
    pub key_id: KeyId,
    /// The value sealed under it.
    pub sealed: Vec<u8>,
}

/// Identities at upstream providers, pending upstream sign-ins and the upstream token vault.
#[async_trait]
pub trait FederationStore: Send + Sync {
    /// The identity `(provider, subject)`.
    async fn identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<IdentityRecord>, StoreError>;
    /// A user's identities, by provider.
    async fn identities_of(&self, user_id: &str) -> Result<Vec<IdentityRecord>, StoreError>;
    /// Every identity, by user id then provider.
    async fn list_identities(&self) -> Result<Vec<IdentityRecord>, StoreError>;
    /// In one transaction: creates `user` (JIT provisioning; `password_hash` "" for a user without a password)
    /// and its `identity`. `Conflict` (and nothing stored) if the user name or the identity is taken.
    async fn create_user_with_identity(
        &self,
        user: &UserRecord,
        identity: &IdentityRecord,
    ) -> Result<(), StoreError>;
    /// Links an identity to an existing user. `Conflict` if `(provider, subject)` is linked already, or the user
    /// already has an identity at that provider; `Other` if the user does not exist.
    async fn link_identity(&self, identity: &IdentityRecord) -> Result<(), StoreError>;
    /// Removes a user's identity at `provider` and their upstream tokens there. Returns whether it existed.
    async fn unlink_identity(&self, user_id: &str, provider: &str) -> Result<bool, StoreError>;
    /// Updates what the provider reported at a sign-in (email, its verification, user name, groups,
    /// `last_login_at`) of the identity `(identity.provider, identity.subject)`. Returns whether it exists.
    async fn touch_identity(&self, identity: &IdentityRecord) -> Result<bool, StoreError>;
    /// A user by id.
    async fn user_by_id(&self, user_id: &str) -> Result<Option<UserRecord>, StoreError>;

    /// Stores a pending upstream sign-in.
    async fn insert_upstream_state(&self, state: &UpstreamStateRecord) -> Result<(), StoreError>;
    /// Takes (deletes and returns) the pending sign-in for `state_hash` if it has not expired at `now`: one
    /// conditional delete, so of concurrent callers exactly one gets it. Expired rows are never returned.
    async fn take_upstream_state(
        &self,
        state_hash: &TokenHash,
        now: i64,
    ) -> Result<Option<UpstreamStateRecord>, StoreError>;

    /// Stores (inserts or replaces) a user's tokens at a provider and releases the refresh lease
    /// (`refreshing_until` is stored as 0 whatever the record says).
    async fn put_upstream_tokens(&self, tokens: &UpstreamTokenRecord) -> Result<(), StoreError>;
    /// A user's tokens at a provider.
    async fn upstream_tokens(
        &self,
        user_id: &str,
        provider: &str,
    ) -> Result<Option<UpstreamTokenRecord>, StoreError>;
    /// Takes the refresh lease of a user's tokens at a provider until `until`, if nobody holds it at `now`
    /// (`refreshing_until <= now`): a compare-and-set, so of concurrent callers (on any instance) exactly one
    /// gets `true`. `false` too when there are no tokens.
    async fn lease_upstream_refresh(
        &self,
        user_id: &str,
        provider: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError>;
    /// Deletes a user's tokens at a provider. Returns whether they existed.
    async fn delete_upstream_tokens(
        &self,
        user_id: &str,
        provider: &str,
    ) -> Result<bool, StoreError>;

    /// Up to `limit` sealed rows of `table` after the row `after` (in the table's order), for key rotation.
    async fn sealed_rows(
        &self,
        table: SealedTable,
        after: Option<&SealedRowKey>,
        limit: u32,
    ) -> Result<Vec<SealedRow>, StoreError>;
    /// In one transaction, replaces each row's sealed value by its re-encryption, where the row still holds
    /// what was read. Returns how many rows were replaced.
    async fn reseal(&self, batch: &[Reseal]) -> Result<u64, StoreError>;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::Storage;
    use super::*;
    use crate::testing::MemStore;

    fn identity(provider: &str, subject: &str, user_id: &str) -> IdentityRecord {
        IdentityRecord {
            provider: provider.into(),
            subject: subject.into(),
            user_id: user_id.into(),
            email: None,
            email_verified: false,
            username: None,
            groups: vec![],
            created_at: 1,
            last_login_at: 1,
        }
    }

    fn user(id: &str, name: &str) -> UserRecord {
        UserRecord {
            id: id.into(),
            username: name.into(),
            password_hash: String::new(),
            created_at: 1,
        }
    }

    fn tokens(sealed: &[u8]) -> UpstreamTokenRecord {
        UpstreamTokenRecord {
            user_id: "u1".into(),
            provider: "corp".into(),
            key_id: KeyId::from_stored("k0".into()),
            sealed: sealed.to_vec(),
            expires_at: None,
            refreshing_until: 99,
            updated_at: 1,
        }
    }

    /// The in-memory store keeps the contract the SQL stores are tested against (store/tests/it/federation.rs).
    #[tokio::test]
    async fn the_in_memory_store_keeps_the_contract() {
        let s = MemStore::default();
        let s: &dyn Storage = &s;
        s.create_user_with_identity(&user("u1", "carol"), &identity("corp", "1", "u1"))
            .await
            .unwrap();
        let taken = s
            .create_user_with_identity(&user("u2", "dave"), &identity("corp", "1", "u2"))
            .await;
        assert!(matches!(taken, Err(StoreError::Conflict(_))));
        assert_eq!(s.user_by_name("dave").await.unwrap(), None);
        let second = s.link_identity(&identity("corp", "2", "u1")).await;
        assert!(matches!(second, Err(StoreError::Conflict(_))));

        let state = UpstreamStateRecord {
            state_hash: TokenHash::of("st"),
            provider: "corp".into(),
            key_id: KeyId::from_stored("k0".into()),
            sealed: vec![1],
            expires_at: 10,
        };
        s.insert_upstream_state(&state).await.unwrap();
        assert_eq!(
            s.take_upstream_state(&state.state_hash, 10).await.unwrap(),
            None
        );
        assert_eq!(
            s.take_upstream_state(&state.state_hash, 9).await.unwrap(),
            Some(state.clone())
        );
        assert_eq!(
            s.take_upstream_state(&state.state_hash, 9).await.unwrap(),
            None
        );

        s.put_upstream_tokens(&tokens(b"a")).await.unwrap();
        assert!(s.lease_upstream_refresh("u1", "corp", 5, 20).await.unwrap());
        assert!(!s
            .lease_upstream_refresh("u1", "corp", 19, 30)
            .await
            .unwrap());
        let rows = s
            .sealed_rows(SealedTable::UpstreamTokens, None, 10)
            .await
            .unwrap();
        s.put_upstream_tokens(&tokens(b"b")).await.unwrap();
        let stale = Reseal {
            row: rows[0].clone(),
            key_id: KeyId::from_stored("k1".into()),
            sealed: b"re".to_vec(),
        };
        assert_eq!(
            s.reseal(&[stale]).await.unwrap(),
            0,
            "the row changed since it was read"
        );
        let now = s.upstream_tokens("u1", "corp").await.unwrap().unwrap();
        assert_eq!(
            (now.sealed.as_slice(), now.refreshing_until),
            (&b"b"[..], 0)
        );

        assert!(s.delete_user("carol", 1, 2).await.unwrap());
        assert_eq!(s.identity("corp", "1").await.unwrap(), None);
        assert_eq!(s.upstream_tokens("u1", "corp").await.unwrap(), None);
    }
}
