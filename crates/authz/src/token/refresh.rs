//! The `refresh_token` grant (RFC 6749 §6, OAuth 2.1 §4.3) with rotation and reuse detection (RFC 9700
//! §4.14.2, OAuth 2.1 §4.3.1): every use returns a new refresh token and retires the old one in one single-use
//! step; a retired token presented again revokes the whole family (grant).
//!
//! A refresh token is `HANDLE.SECRET`, both random (128 and 256 bits). The handle names the family and stays
//! the same for its life; the secret is new at every rotation. The store keeps the family on the grant's own
//! row, the hashes of the handle and of the live secret ([`RefreshFamily`]), rewritten in place: a rotation
//! reads and changes that one row in one transaction (on SQLite, one trip to the storage writer). A
//! token that carries a family's handle but not its live secret can only be a retired token of that family (the
//! handle is never shown anywhere else), so the reuse of any earlier token is caught without keeping them.
//!
//! **Grace period** (`AuthzConfig::refresh_grace_period`, default 30 s; 0 = strict). Strict rotation punishes
//! honest clients: a retry after a lost response, or two refreshes racing (two tabs, two egress addresses),
//! present the just-retired token and would revoke the family. So the row also keeps the token the last
//! rotation retired (its hash, and the live secret sealed under it: `token::successor`). Presented again by its
//! client within the grace period after that rotation, it is answered with a fresh access token and *the same*
//! live refresh token the first answer carried, with no write, so every racer ends holding the one live token.
//! Older generations, and the retired token after the window, are reuse as before (`token::rotation` decides).
//! The trade-off against RFC 9700 §4.14.2 is in SECURITY.md: a thief who replays a stolen token inside the
//! window shares the family with the client instead of revoking it, until the first divergence after the
//! window, which does.

use super::rotation::RefreshAttempt;
use super::successor;
use super::{TokenError, Tokens};
use crate::random;
use crate::registration::RegisteredClient;
use crate::secret::{Secret, TokenHash};
use crate::store::{PreviousToken, RefreshError, RefreshFamily, ReuseRevocation};
use portcullis_proto::b64;
use portcullis_proto::token::TokenResponse;
use portcullis_proto::RefreshTokenRequest;

/// The handle and secret parts of a presented refresh token. A token without a dot predates families
/// (storage migration 0003 keyed each live one by its own hash): it is both its handle and its secret.
fn split(token: &str) -> (&str, &str) {
    token.split_once('.').unwrap_or((token, token))
}

/// The handle of a refresh token: what names its family.
pub(crate) fn handle_of(token: &str) -> &str {
    split(token).0
}

/// The secret part of a refresh token: which of its family's tokens it is.
pub(crate) fn secret_of(token: &str) -> &str {
    split(token).1
}

/// A family's token: its handle and a secret.
fn family_token(handle: &str, secret: &Secret) -> String {
    let mut t = String::with_capacity(handle.len() + 1 + secret.expose().len());
    t.push_str(handle);
    t.push('.');
    t.push_str(secret.expose());
    t
}

impl Tokens {
    /// A new refresh-token family for a grant ending at `grant_expires_at`: its first token and what is stored.
    pub(crate) fn new_refresh_family(
        &self,
        now: i64,
        grant_expires_at: i64,
    ) -> (String, RefreshFamily) {
        let handle = random::id(self.core.rng());
        let secret = random::token(self.core.rng());
        let family = RefreshFamily {
            key: TokenHash::of(&handle),
            token_hash: secret.hash(),
            issued_at: now,
            expires_at: (now + self.core.config.refresh_idle_ttl).min(grant_expires_at),
            previous: None,
        };
        (family_token(&handle, &secret), family)
    }

    /// Refreshes: a new access token and a new refresh token, or (within the grace period, for the token the
    /// last rotation retired) the family's live one again. The store decides once and, on reuse, revokes the
    /// family in the same operation.
    pub async fn refresh(
        &self,
        client: &RegisteredClient,
        req: RefreshTokenRequest,
    ) -> Result<TokenResponse, TokenError> {
        if !client.may_refresh {
            return Err(RefreshError::NotRegistered.into());
        }
        let (handle, secret) = split(req.refresh_token.expose());
        let key = TokenHash::of(handle);
        let presented = Secret::new(secret);
        let presented_hash = presented.hash();
        let next_bytes = random::token_bytes(self.core.rng());
        let next = Secret::new(b64::encode(next_bytes));
        let now = self.core.now();
        let grace_period = self.core.config.refresh_grace_period;
        // The seal costs one HMAC; made here, not in the store's writer, and only with a grace period.
        let previous = (grace_period > 0).then(|| PreviousToken {
            hash: presented_hash.clone(),
            sealed_successor: successor::seal(&presented, &key, &next_bytes),
        });
        let attempt = RefreshAttempt {
            client_id: client.client_id.clone(),
            presented,
            presented_hash,
            scope: req.scope,
            resource: req.resource,
            now,
            idle_ttl: self.core.config.refresh_idle_ttl,
            grace_period,
            next: next.hash(),
            previous,
        };
        let reuse = ReuseRevocation {
            now,
            expires_at: self.core.revocation_expiry(now),
        };
        let rotation = self
            .core
            .store
            .rotate_refresh(&key, Box::new(move |f, g| attempt.decide(f, g)), reuse)
            .await??;
        let scope = rotation.scope.to_string();
        let access = self.access_token_for(&rotation.grant, &scope);
        let refresh_secret = rotation.replayed.unwrap_or(next);
        Ok(self.token_response(access, Some(family_token(handle, &refresh_secret)), &scope))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::RefreshError;
    use crate::testing::{
        authz_with_clock, code_for, public_client, register_public, revocations, token_req,
        VERIFIER,
    };
    use crate::token::TokenError;
    use portcullis_proto::TokenRequest;
    use portcullis_proto::{RefreshToken, RefreshTokenRequest, Scope};

    /// A public client and the refresh token of its first code exchange.
    async fn first_refresh_token(
        a: &crate::service::Authz,
    ) -> (
        std::sync::Arc<crate::registration::RegisteredClient>,
        String,
    ) {
        let c = register_public(a).await;
        let client = a.registrations().client(&c).await.unwrap().unwrap();
        let code = code_for(a, &c).await;
        let rt = a
            .tokens()
            .exchange_code(&client, token_req(&code, VERIFIER))
            .await
            .unwrap()
            .refresh_token
            .unwrap();
        (std::sync::Arc::new(client), rt)
    }

    /// Presents refresh token `rt` as `client`.
    async fn refresh(
        a: &crate::service::Authz,
        client: &crate::registration::RegisteredClient,
        rt: &str,
    ) -> Result<portcullis_proto::token::TokenResponse, TokenError> {
        a.tokens().token(client, refresh_req(rt)).await
    }

    fn refresh_req(rt: &str) -> TokenRequest {
        TokenRequest::RefreshToken(refresh_params(rt))
    }

    fn refresh_params(rt: &str) -> RefreshTokenRequest {
        RefreshTokenRequest {
            refresh_token: RefreshToken::new(rt),
            scope: None,
            resource: None,
        }
    }

    #[tokio::test]
    async fn rotation_and_reuse_detection() {
        let (a, clock) = authz_with_clock().await;
        let c = register_public(&a).await;
        let client = a.registrations().client(&c).await.unwrap().unwrap();
        let code = code_for(&a, &c).await;
        let first = a
            .tokens()
            .exchange_code(&client, token_req(&code, VERIFIER))
            .await
            .unwrap();
        let rt1 = first.refresh_token.unwrap();
        let second = refresh(&a, &client, &rt1).await.unwrap();
        let rt2 = second.refresh_token.unwrap();
        assert_ne!(rt1, rt2);
        // Replaying rt1 once the grace period is over revokes the family: rt2 dies too.
        clock.advance(a.core().config().refresh_grace_period);
        assert_eq!(
            refresh(&a, &client, &rt1).await.unwrap_err(),
            TokenError::Refresh(RefreshError::Reused)
        );
        assert_eq!(
            refresh(&a, &client, &rt2).await.unwrap_err(),
            TokenError::Refresh(RefreshError::Revoked)
        );
    }

    /// RFC 9700 §4.14.2 with a grace period: a retry of the rotated token within it (a lost response) gets a
    /// fresh access token and the same successor, with no write; the successor then rotates as usual.
    #[tokio::test]
    async fn a_retry_within_the_grace_period_gets_the_same_successor() {
        let store = std::sync::Arc::new(crate::testing::MemStore::default());
        let (a, clock) = crate::testing::authz_on(store.clone()).await;
        let (client, rt1) = first_refresh_token(&a).await;
        let first = refresh(&a, &client, &rt1).await.unwrap();
        clock.advance(a.core().config().refresh_grace_period - 1);
        let before = store.operations();
        let retry = refresh(&a, &client, &rt1).await.unwrap();
        assert_eq!(store.operations() - before, 1, "one storage operation");
        assert_eq!(
            retry.refresh_token, first.refresh_token,
            "the same successor"
        );
        assert_ne!(
            retry.access_token, first.access_token,
            "a fresh access token"
        );
        let (_, grant) = a
            .core()
            .store()
            .refresh_family(&crate::secret::TokenHash::of(
                rt1.split_once('.').unwrap().0,
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(grant.revoked_at, None);
        assert!(revocations(&a).await.is_empty(), "nothing revoked");
        let rt2 = retry.refresh_token.unwrap();
        let rt3 = refresh(&a, &client, &rt2).await.unwrap().refresh_token;
        assert!(rt3.is_some_and(|rt3| rt3 != rt2));
    }

    /// With the grace period off (0), rotation is strict: the first retry is reuse.
    #[tokio::test]
    async fn no_grace_period_means_strict_rotation() {
        let (a, _clock) = crate::testing::authz_with_config(|c| c.refresh_grace_period = 0).await;
        let (client, rt1) = first_refresh_token(&a).await;
        let rt2 = refresh(&a, &client, &rt1)
            .await
            .unwrap()
            .refresh_token
            .unwrap();
        assert_eq!(
            refresh(&a, &client, &rt1).await.unwrap_err(),
            TokenError::Refresh(RefreshError::Reused)
        );
        assert_eq!(
            refresh(&a, &client, &rt2).await.unwrap_err(),
            TokenError::Refresh(RefreshError::Revoked)
        );
    }

    /// The claims of an access token the test issuer minted.
    fn claims_of(a: &crate::service::Authz, at: &str) -> crate::access_token::AccessClaims {
        let config = a.core().config();
        crate::access_token::verify(
            &a.keys().ring(),
            at,
            &config.issuer,
            config.default_resource(),
            a.core().now(),
        )
        .unwrap()
    }

    /// RFC 9068 §2.2.3.1: the identity claims minted at code exchange come back on every refresh, read from
    /// the grant row the rotation reads anyway.
    #[tokio::test]
    async fn refresh_keeps_the_identity_claims() {
        let store = std::sync::Arc::new(crate::testing::MemStore::default());
        let (a, _clock) = crate::testing::authz_on(store.clone()).await;
        let c = register_public(&a).await;
        let client = a.registrations().client(&c).await.unwrap().unwrap();
        let code = code_for(&a, &c).await;
        let first = a
            .tokens()
            .exchange_code(&client, token_req(&code, VERIFIER))
            .await
            .unwrap();
        let who = |at: &str| {
            let c = claims_of(&a, at);
            (c.preferred_username, c.email, c.idp)
        };
        let carol = (
            Some("carol".to_owned()),
            Some("carol@example.com".to_owned()),
            Some("corp".to_owned()),
        );
        assert_eq!(who(&first.access_token), carol);
        let ops = store.operations();
        let second = refresh(&a, &client, &first.refresh_token.unwrap())
            .await
            .unwrap();
        assert_eq!(store.operations() - ops, 1, "one storage operation");
        assert_eq!(who(&second.access_token), carol);
        let third = refresh(&a, &client, &second.refresh_token.unwrap())
            .await
            .unwrap();
        assert_eq!(who(&third.access_token), carol);
    }

    /// Reuse of a token retired several rotations ago is caught too: it carries the family's handle.
    #[tokio::test]
    async fn reuse_of_an_old_generation_revokes_the_family() {
        let (a, _clock) = authz_with_clock().await;
        let (client, rt1) = first_refresh_token(&a).await;
        let (handle, _) = rt1.split_once('.').unwrap();
        let rt2 = refresh(&a, &client, &rt1)
            .await
            .unwrap()
            .refresh_token
            .unwrap();
        let rt3 = refresh(&a, &client, &rt2)
            .await
            .unwrap()
            .refresh_token
            .unwrap();
        assert!(
            rt2.starts_with(handle) && rt3.starts_with(handle),
            "the handle is kept"
        );
        assert_eq!(
            refresh(&a, &client, &rt1).await.unwrap_err(),
            TokenError::Refresh(RefreshError::Reused)
        );
        assert_eq!(
            refresh(&a, &client, &rt3).await.unwrap_err(),
            TokenError::Refresh(RefreshError::Revoked)
        );
    }

    /// An unknown handle is just invalid: it names no family, so nothing is revoked.
    #[tokio::test]
    async fn unknown_handle_is_invalid_and_revokes_nothing() {
        let (a, _clock) = authz_with_clock().await;
        let (client, rt) = first_refresh_token(&a).await;
        let (_, secret) = rt.split_once('.').unwrap();
        for forged in [
            format!("AAAAAAAAAAAAAAAAAAAAAA.{secret}"),
            secret.to_owned(),
            String::new(),
        ] {
            assert_eq!(
                refresh(&a, &client, &forged).await.unwrap_err(),
                TokenError::Refresh(RefreshError::Unknown),
                "{forged}"
            );
        }
        assert!(
            refresh(&a, &client, &rt).await.is_ok(),
            "the family is still live"
        );
    }

    /// A token issued before families (no dot; storage migration 0003 keyed its family by its own hash) is
    /// its own handle and secret: it refreshes, and its successors keep it as their handle.
    #[tokio::test]
    async fn a_legacy_token_refreshes_into_its_family() {
        let (a, _clock) = authz_with_clock().await;
        let c = register_public(&a).await;
        let client = a.registrations().client(&c).await.unwrap().unwrap();
        let code = code_for(&a, &c).await;
        let now = a.core().now();
        let grant = crate::store::GrantRecord {
            id: "g-legacy".into(),
            client_id: c.clone(),
            user_id: "u".into(),
            scope: "mcp:tools".into(),
            resource: a.core().config().default_resource().to_owned(),
            created_at: now,
            expires_at: now + 3600,
            revoked_at: None,
            identity: Default::default(),
        };
        let legacy = "bGVnYWN5LXJlZnJlc2gtdG9rZW4tMzItYnl0ZXMtbG9uZw";
        let family = crate::store::RefreshFamily {
            key: crate::secret::TokenHash::of(legacy),
            token_hash: crate::secret::TokenHash::of(legacy),
            issued_at: now,
            expires_at: now + 600,
            previous: None,
        };
        a.core()
            .store()
            .redeem_code(
                &crate::secret::TokenHash::of(&code),
                now,
                &grant,
                Some(&family),
            )
            .await
            .unwrap();
        let next = refresh(&a, &client, legacy)
            .await
            .unwrap()
            .refresh_token
            .unwrap();
        assert!(next.starts_with(&format!("{legacy}.")), "{next}");
        assert!(refresh(&a, &client, &next).await.is_ok());
        assert_eq!(
            refresh(&a, &client, legacy).await.unwrap_err(),
            TokenError::Refresh(RefreshError::Reused)
        );
    }

    /// Concurrent refreshes with one token: one rotates, the others find it retired within the grace period,
    /// so every one gets the same successor and the family stays whole.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_refreshes_all_get_the_one_successor() {
        let (a, _clock) = authz_with_clock().await;
        let (client, rt) = first_refresh_token(&a).await;
        let a = std::sync::Arc::new(a);
        let answers = concurrent_refreshes(a.clone(), &client, &rt).await;
        let successors: std::collections::BTreeSet<_> = answers
            .into_iter()
            .map(|r| r.unwrap().refresh_token.unwrap())
            .collect();
        assert_eq!(successors.len(), 1, "one and the same successor");
        let successor = successors.first().unwrap();
        assert!(refresh(&a, &client, successor).await.is_ok());
    }

    /// Strict rotation (RFC 9700 §4.14.2, grace period 0): of concurrent refreshes with one token exactly one
    /// gets tokens; the losers count as reuse and revoke the family, so the winner's new refresh token is dead.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn strict_concurrent_refreshes_one_winner_then_family_revoked() {
        let (a, _clock) = crate::testing::authz_with_config(|c| c.refresh_grace_period = 0).await;
        let (client, rt) = first_refresh_token(&a).await;
        let a = std::sync::Arc::new(a);
        let mut winners = Vec::new();
        for answer in concurrent_refreshes(a.clone(), &client, &rt).await {
            match answer {
                Ok(resp) => winners.push(resp.refresh_token.unwrap()),
                // The first loser finds reuse and revokes; the ones after it find the grant revoked.
                Err(e) => assert!(
                    matches!(
                        e,
                        TokenError::Refresh(RefreshError::Reused | RefreshError::Revoked)
                    ),
                    "{e:?}"
                ),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one refresh wins");
        assert_eq!(
            refresh(&a, &client, &winners[0]).await.unwrap_err(),
            TokenError::Refresh(RefreshError::Revoked)
        );
    }

    /// 16 refreshes of `rt` at once.
    async fn concurrent_refreshes(
        a: std::sync::Arc<crate::service::Authz>,
        client: &std::sync::Arc<crate::registration::RegisteredClient>,
        rt: &str,
    ) -> Vec<Result<portcullis_proto::token::TokenResponse, TokenError>> {
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (a, client, rt) = (a.clone(), client.clone(), rt.to_owned());
            tasks.push(tokio::spawn(async move { refresh(&a, &client, &rt).await }));
        }
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap());
        }
        answers
    }

    #[tokio::test]
    async fn bound_to_client_no_widening_and_idle_expiry() {
        let (a, clock) = authz_with_clock().await;
        let (client, rt) = first_refresh_token(&a).await;
        let other = public_client(&a).await;
        assert_eq!(
            refresh(&a, &other, &rt).await.unwrap_err(),
            TokenError::Refresh(RefreshError::OtherClient)
        );
        let mut wide = refresh_params(&rt);
        wide.scope = Some(Scope::parse("mcp:tools mcp:admin").unwrap());
        assert_eq!(
            a.tokens()
                .token(&client, TokenRequest::RefreshToken(wide))
                .await
                .unwrap_err(),
            TokenError::Refresh(RefreshError::ScopeWidened)
        );
        clock.advance(a.core().config().refresh_idle_ttl);
        assert_eq!(
            refresh(&a, &client, &rt).await.unwrap_err(),
            TokenError::Refresh(RefreshError::Expired)
        );
    }

    /// A reuse detected by the rotation revokes the family (grant and revocation-log entry) in the rotation's
    /// own storage operation: one operation for the whole refusal.
    #[tokio::test]
    async fn reuse_revokes_the_family_in_one_storage_operation() {
        let store = std::sync::Arc::new(crate::testing::MemStore::default());
        let (a, clock) = crate::testing::authz_on(store.clone()).await;
        let (client, rt1) = first_refresh_token(&a).await;
        let rt2 = refresh(&a, &client, &rt1)
            .await
            .unwrap()
            .refresh_token
            .unwrap();
        clock.advance(a.core().config().refresh_grace_period);
        let logged = revocations(&a).await.len();
        let before = store.operations();
        assert_eq!(
            refresh(&a, &client, &rt1).await.unwrap_err(),
            TokenError::Refresh(RefreshError::Reused)
        );
        assert_eq!(store.operations() - before, 1, "one storage operation");
        let log = revocations(&a).await;
        assert_eq!(log.len(), logged + 1);
        assert_eq!(log.last().unwrap().kind, crate::store::RevokedKind::Grant);
        assert_eq!(
            refresh(&a, &client, &rt2).await.unwrap_err(),
            TokenError::Refresh(RefreshError::Revoked)
        );
    }
}
