//! The `refresh_token` grant (RFC 6749 §6, OAuth 2.1 §4.3) with rotation and reuse detection (RFC 9700
//! §4.14.2): every use returns a new refresh token and retires the old one in one conditional update; a retired
//! token presented again revokes the whole family (grant), as does losing a concurrent race for the same token.

use super::TokenRequest;
use crate::error::AuthzError;
use crate::random;
use crate::registration::RegisteredClient;
use crate::service::Authz;
use crate::store::{RefreshRecord, Transition};
use portcullis_proto::token::TokenResponse;
use portcullis_proto::Scope;

impl Authz {
    /// Refreshes: a new access token and a new refresh token.
    pub async fn refresh(
        &self,
        client: &RegisteredClient,
        req: TokenRequest,
    ) -> Result<TokenResponse, AuthzError> {
        let grant_err = |m: &str| AuthzError::InvalidGrant(m.into());
        let token = req
            .refresh_token
            .ok_or_else(|| AuthzError::InvalidRequest("refresh_token is required".into()))?;
        if !client.may_refresh {
            return Err(AuthzError::UnauthorizedClient(
                "this client did not register the refresh_token grant".into(),
            ));
        }
        let now = self.now();
        let hash = token.hash();
        let (record, grant) = self
            .store
            .refresh_token(&hash)
            .await?
            .ok_or_else(|| grant_err("the refresh token is invalid"))?;
        if grant.client_id != client.client_id {
            return Err(grant_err("the refresh token was issued to another client"));
        }
        if grant.revoked_at.is_some() {
            return Err(grant_err("the refresh token was revoked"));
        }
        if record.used_at.is_some() {
            self.revoke_grant_now(&grant.id).await?;
            return Err(grant_err(
                "the refresh token was already used; the grant is revoked",
            ));
        }
        if now >= record.expires_at || now >= grant.expires_at {
            return Err(grant_err("the refresh token expired"));
        }
        let granted = Scope::parse(&grant.scope).unwrap_or_default();
        let scope = match &req.scope {
            None => granted,
            Some(s) => {
                let asked = Scope::parse(s).map_err(|e| AuthzError::InvalidScope(e.to_string()))?;
                if !granted.includes(&asked) {
                    return Err(AuthzError::InvalidScope(
                        "scope exceeds the scope originally granted".into(),
                    ));
                }
                asked
            }
        };
        if let Some(r) = &req.resource {
            if *r != grant.resource {
                return Err(AuthzError::InvalidTarget(
                    "resource differs from the original grant".into(),
                ));
            }
        }
        let next = random::token(self.rng.as_ref());
        let next_record = RefreshRecord {
            token_hash: next.hash(),
            grant_id: grant.id.clone(),
            created_at: now,
            expires_at: (now + self.config.refresh_idle_ttl).min(grant.expires_at),
            used_at: None,
        };
        match self.store.rotate_refresh(&hash, now, &next_record).await? {
            Transition::Won => {}
            Transition::AlreadyUsed => {
                self.revoke_grant_now(&grant.id).await?;
                return Err(grant_err(
                    "the refresh token was already used; the grant is revoked",
                ));
            }
        }
        let scope = scope.to_string();
        let access = self.access_token_for(&grant, &scope);
        Ok(self.token_response(access, Some(next.expose().to_owned()), &scope))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::AuthzError;
    use crate::secret::Secret;
    use crate::testing::{authz_with_clock, code_for, register_public, token_req, VERIFIER};
    use crate::token::TokenRequest;

    fn refresh_req(rt: &str) -> TokenRequest {
        TokenRequest {
            grant_type: Some("refresh_token".into()),
            refresh_token: Some(Secret::new(rt)),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn rotation_and_reuse_detection() {
        let (a, _clock) = authz_with_clock().await;
        let c = register_public(&a).await;
        let client = a.client(&c).await.unwrap().unwrap();
        let code = code_for(&a, &c).await;
        let first = a
            .exchange_code(&client, token_req(&code, VERIFIER))
            .await
            .unwrap();
        let rt1 = first.refresh_token.unwrap();
        let second = a.token(&client, refresh_req(&rt1)).await.unwrap();
        let rt2 = second.refresh_token.unwrap();
        assert_ne!(rt1, rt2);
        // Replaying rt1 revokes the family: rt2 dies too.
        assert!(matches!(
            a.token(&client, refresh_req(&rt1)).await.unwrap_err(),
            AuthzError::InvalidGrant(_)
        ));
        assert_eq!(
            a.token(&client, refresh_req(&rt2)).await.unwrap_err(),
            AuthzError::InvalidGrant("the refresh token was revoked".into())
        );
    }

    /// RFC 9700 §4.14.2: of concurrent refreshes with one token exactly one gets tokens; the losers count as
    /// reuse and revoke the family, so the winner's new refresh token is dead too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_refreshes_one_winner_then_family_revoked() {
        let (a, _clock) = authz_with_clock().await;
        let c = register_public(&a).await;
        let client = a.client(&c).await.unwrap().unwrap();
        let code = code_for(&a, &c).await;
        let rt = a
            .exchange_code(&client, token_req(&code, VERIFIER))
            .await
            .unwrap()
            .refresh_token
            .unwrap();
        let a = std::sync::Arc::new(a);
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (a, client, rt) = (a.clone(), client.clone(), rt.clone());
            tasks.push(tokio::spawn(async move {
                a.token(&client, refresh_req(&rt)).await
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(resp) => winners.push(resp.refresh_token.unwrap()),
                Err(e) => assert!(matches!(e, AuthzError::InvalidGrant(_)), "{e:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one refresh wins");
        assert_eq!(
            a.token(&client, refresh_req(&winners[0]))
                .await
                .unwrap_err(),
            AuthzError::InvalidGrant("the refresh token was revoked".into())
        );
    }

    #[tokio::test]
    async fn bound_to_client_no_widening_and_idle_expiry() {
        let (a, clock) = authz_with_clock().await;
        let c = register_public(&a).await;
        let client = a.client(&c).await.unwrap().unwrap();
        let other = a.client(&register_public(&a).await).await.unwrap().unwrap();
        let code = code_for(&a, &c).await;
        let rt = a
            .exchange_code(&client, token_req(&code, VERIFIER))
            .await
            .unwrap()
            .refresh_token
            .unwrap();
        assert!(matches!(
            a.token(&other, refresh_req(&rt)).await.unwrap_err(),
            AuthzError::InvalidGrant(_)
        ));
        let mut wide = refresh_req(&rt);
        wide.scope = Some("mcp:tools mcp:admin".into());
        assert!(matches!(
            a.token(&client, wide).await.unwrap_err(),
            AuthzError::InvalidScope(_)
        ));
        clock.advance(a.config().refresh_idle_ttl);
        assert_eq!(
            a.token(&client, refresh_req(&rt)).await.unwrap_err(),
            AuthzError::InvalidGrant("the refresh token expired".into())
        );
    }
}
