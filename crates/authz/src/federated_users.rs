//! [`FederatedUsers`]: which local user a sign-in through an upstream identity provider is (issue 13,
//! docs/federation.md "Users and linking"). No I/O of its own: storage, clock and randomness come from [`Core`].
//!
//! An [`ExternalIdentity`] is keyed by `(provider, subject)` only (OpenID Connect Core §5.7: `sub` is the one
//! stable identifier, unique within its issuer; an email address can change hands and is never a key by itself).
//! A sign-in finds, in order:
//! 1. the user already holding the identity (what the provider reports now is stored: email, user name, groups,
//!    last sign-in);
//! 2. only with `link_by_verified_email = true`, and only for an email the provider says it verified: the local
//!    user whose *verified* email matches. Users have no email column; a user's verified emails are the ones
//!    their linked identities' providers verified, so the match is made against the stored identities (an
//!    identity at another provider with `email_verified` and the same address, compared case-insensitively). A
//!    password-only user has no verified email and is never linked this way (link them with
//!    `portcullis user link`). Several users with that address: no link (ambiguous), a new user instead;
//! 3. else a new user (just-in-time provisioning) without a password, named after the provider's user name,
//!    else the email's local part, else the subject, made unique with a `-2`, `-3`, … suffix.
//!
//! Two first sign-ins of one identity racing (two tabs, two instances): the store creates user and identity in
//! one transaction and answers `Conflict` to the loser, which reads the winner's identity again.

use crate::error::AuthzError;
use crate::federation::ExternalIdentity;
use crate::random;
use crate::shared::Core;
use crate::store::{IdentityRecord, StoreError, UserRecord};
use crate::users::{check_username, MAX_USERNAME_LEN};
use std::sync::Arc;

/// How many user names are tried (`name`, `name-2`, … ) before a random suffix.
const NAME_ATTEMPTS: usize = 20;

/// The outcome of a sign-in: the user, and how they were found.
#[derive(Debug, Clone, PartialEq)]
pub struct FederatedUser {
    /// The local user.
    pub user: UserRecord,
    /// How the user was found.
    pub via: SignInVia,
}

/// How a sign-in found its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInVia {
    /// The identity was known.
    Identity,
    /// The identity was linked now to the user with the same verified email (`link_by_verified_email`).
    VerifiedEmail,
    /// A new user was created for the identity.
    Created,
}

/// The service mapping upstream identities to local users.
#[derive(Debug, Clone)]
pub struct FederatedUsers {
    core: Arc<Core>,
}

impl FederatedUsers {
    /// The service over the shared dependencies.
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// The local user signing in as `identity` (see the module documentation for the order of the rules).
    pub async fn sign_in(
        &self,
        identity: &ExternalIdentity,
        link_by_verified_email: bool,
    ) -> Result<FederatedUser, AuthzError> {
        if let Some(user) = self.known(identity).await? {
            return Ok(FederatedUser {
                user,
                via: SignInVia::Identity,
            });
        }
        if link_by_verified_email {
            if let Some(user) = self.link_by_email(identity).await? {
                return Ok(FederatedUser {
                    user,
                    via: SignInVia::VerifiedEmail,
                });
            }
        }
        self.create(identity).await
    }

    /// The identity's record as it should be stored now, for `user_id`.
    fn record(&self, identity: &ExternalIdentity, user_id: &str, now: i64) -> IdentityRecord {
        IdentityRecord {
            provider: identity.provider.as_str().to_owned(),
            subject: identity.subject.clone(),
            user_id: user_id.to_owned(),
            email: identity.email.clone(),
            email_verified: identity.email_verified,
            username: identity.username.clone(),
            groups: identity.groups.clone(),
            created_at: now,
            last_login_at: now,
        }
    }

    /// The user holding the identity, after storing what the provider reports now.
    async fn known(&self, identity: &ExternalIdentity) -> Result<Option<UserRecord>, AuthzError> {
        let store = &self.core.store;
        let provider = identity.provider.as_str();
        let Some(existing) = store.identity(provider, &identity.subject).await? else {
            return Ok(None);
        };
        let mut current = self.record(identity, &existing.user_id, self.core.now());
        current.created_at = existing.created_at;
        store.touch_identity(&current).await?;
        match store.user_by_id(&existing.user_id).await? {
            Some(user) => Ok(Some(user)),
            // Deleting a user deletes their identities; a dangling one is a storage fault.
            None => Err(AuthzError::Internal(format!(
                "the identity at {provider} belongs to no user"
            ))),
        }
    }

    /// `link_by_verified_email`: links the identity to the one user whose verified email (as another provider
    /// verified it) is the identity's verified email.
    async fn link_by_email(
        &self,
        identity: &ExternalIdentity,
    ) -> Result<Option<UserRecord>, AuthzError> {
        let Some(email) = identity
            .email
            .as_deref()
            .filter(|_| identity.email_verified)
        else {
            return Ok(None);
        };
        let store = &self.core.store;
        let mut owners: Vec<String> = store
            .list_identities()
            .await?
            .into_iter()
            .filter(|r| r.email_verified)
            .filter(|r| {
                r.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
            })
            .map(|r| r.user_id)
            .collect();
        owners.sort();
        owners.dedup();
        let [user_id] = owners.as_slice() else {
            return Ok(None);
        };
        let Some(user) = store.user_by_id(user_id).await? else {
            return Ok(None);
        };
        let record = self.record(identity, &user.id, self.core.now());
        match store.link_identity(&record).await {
            Ok(()) => Ok(Some(user)),
            // The user already has an identity at this provider (another subject), or a racing sign-in linked
            // this one first: the known identity wins, else no link.
            Err(StoreError::Conflict(_)) => self.known(identity).await,
            Err(e) => Err(e.into()),
        }
    }

    /// Just-in-time provisioning: a new user without a password and its identity, in one transaction.
    async fn create(&self, identity: &ExternalIdentity) -> Result<FederatedUser, AuthzError> {
        let store = &self.core.store;
        let base = base_username(identity);
        for attempt in 0..=NAME_ATTEMPTS {
            let username = match attempt {
                0 => base.clone(),
                n if n < NAME_ATTEMPTS => with_suffix(&base, &(n + 1).to_string()),
                _ => with_suffix(&base, &random::id(self.core.rng())[..8]),
            };
            let now = self.core.now();
            let user = UserRecord {
                id: random::id(self.core.rng()),
                username,
                password_hash: String::new(),
                created_at: now,
            };
            let record = self.record(identity, &user.id, now);
            match store.create_user_with_identity(&user, &record).await {
                Ok(()) => {
                    return Ok(FederatedUser {
                        user,
                        via: SignInVia::Created,
                    })
                }
                Err(StoreError::Conflict(_)) => {
                    // Either a racing first sign-in created the identity (use its user), or the name is taken.
                    if let Some(user) = self.known(identity).await? {
                        return Ok(FederatedUser {
                            user,
                            via: SignInVia::Identity,
                        });
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(AuthzError::Internal(
            "no free user name for a new federated user".into(),
        ))
    }
}

/// The user name a new user starts from: the provider's user name, else the email's local part, else the
/// subject; reduced to the characters user names allow (others become `-`), at most 48 characters (room for a
/// suffix). Never empty: `user` when nothing is left.
pub fn base_username(identity: &ExternalIdentity) -> String {
    let local_part = identity.email.as_deref().and_then(|e| e.split('@').next());
    let candidates = [
        identity.username.as_deref(),
        local_part,
        Some(identity.subject.as_str()),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(clean)
        .find(|c| !c.is_empty())
        .unwrap_or_else(|| "user".to_owned())
}

/// `name` in the user-name alphabet: other characters become `-`, leading/trailing `-`/`.` trimmed, at most
/// 48 characters.
fn clean(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._@+-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches(|c| c == '-' || c == '.');
    let short: String = trimmed.chars().take(MAX_USERNAME_LEN - 16).collect();
    short.trim_end_matches(['-', '.']).to_owned()
}

fn with_suffix(base: &str, suffix: &str) -> String {
    let name = format!("{base}-{suffix}");
    debug_assert!(check_username(&name).is_ok());
    name
}

#[cfg(test)]
mod tests;
