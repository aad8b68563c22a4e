//! The `authorization_code` grant (RFC 6749 §4.1.3, OAuth 2.1 §4.1.3, RFC 7636 §4.5–4.6, RFC 8707 §2.2).
//!
//! A code is single-use: the redemption is one conditional update, so of many concurrent redemptions exactly one
//! wins. A code presented again is treated as stolen: `invalid_grant`, and the grant its first redemption
//! created is revoked (RFC 6749 §4.1.2, RFC 9700 §4.5.1). A failed redemption (wrong verifier, wrong client)
//! consumes and revokes nothing.

use super::TokenRequest;
use crate::error::AuthzError;
use crate::random;
use crate::registration::RegisteredClient;
use crate::service::Authz;
use crate::store::{GrantRecord, Transition};
use portcullis_proto::token::TokenResponse;
use portcullis_proto::{CodeChallenge, CodeVerifier};

impl Authz {
    /// Exchanges a code for tokens.
    pub async fn exchange_code(
        &self,
        client: &RegisteredClient,
        req: TokenRequest,
    ) -> Result<TokenResponse, AuthzError> {
        let grant_err = |m: &str| AuthzError::InvalidGrant(m.into());
        let code = req
            .code
            .ok_or_else(|| AuthzError::InvalidRequest("code is required".into()))?;
        let verifier = req
            .code_verifier
            .ok_or_else(|| grant_err("code_verifier is required (PKCE)"))?;
        let verifier = CodeVerifier::parse(verifier.expose())
            .map_err(|e| grant_err(&format!("code_verifier {e}")))?;
        let now = self.now();
        let hash = code.hash();
        let record = self
            .store
            .code(&hash)
            .await?
            .ok_or_else(|| grant_err("the authorization code is invalid"))?;
        if record.used_at.is_some() {
            self.store
                .revoke_grant_of_code(&hash, now, now + self.config.access_token_ttl + 60)
                .await?;
            return Err(grant_err(
                "the authorization code was already used; tokens issued from it are revoked",
            ));
        }
        if now >= record.expires_at {
            return Err(grant_err("the authorization code expired"));
        }
        if record.client_id != client.client_id {
            return Err(grant_err(
                "the authorization code was issued to another client",
            ));
        }
        let redirect_ok = match (&req.redirect_uri, record.redirect_uri.is_empty()) {
            (Some(sent), false) => *sent == record.redirect_uri,
            (None, false) => false,
            (Some(sent), true) => {
                client.redirect_uris.len() == 1 && client.redirect_uris[0].as_str() == sent
            }
            (None, true) => true,
        };
        if !redirect_ok {
            return Err(grant_err(
                "redirect_uri does not match the authorization request",
            ));
        }
        let challenge = CodeChallenge::parse(&record.code_challenge, Some("S256"))
            .map_err(|_| AuthzError::Internal("stored code challenge unreadable".into()))?;
        if !challenge.verify(&verifier) {
            return Err(grant_err("code_verifier does not match the code_challenge"));
        }
        if let Some(r) = &req.resource {
            if *r != record.resource {
                return Err(AuthzError::InvalidTarget(
                    "resource differs from the authorization request".into(),
                ));
            }
        }
        let grant = GrantRecord {
            id: random::ordered_id(self.rng.as_ref(), self.clock.now_millis()),
            client_id: record.client_id.clone(),
            user_id: record.user_id.clone(),
            scope: record.scope.clone(),
            resource: record.resource.clone(),
            created_at: now,
            expires_at: now + self.config.refresh_absolute_ttl,
            revoked_at: None,
        };
        let (refresh, family) = match client.may_refresh {
            true => {
                let (token, family) = self.new_refresh_family(now, grant.expires_at);
                (Some(token), Some(family))
            }
            false => (None, None),
        };
        match self
            .store
            .redeem_code(&hash, now, &grant, family.as_ref())
            .await?
        {
            Transition::Won => {}
            Transition::AlreadyUsed => {
                // Lost a race with another redemption of the same code: that is reuse too.
                self.store
                    .revoke_grant_of_code(&hash, now, now + self.config.access_token_ttl + 60)
                    .await?;
                return Err(grant_err(
                    "the authorization code was already used; tokens issued from it are revoked",
                ));
            }
        }
        let access = self.access_token_for(&grant, &grant.scope);
        Ok(self.token_response(access, refresh, &grant.scope))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::AuthzError;
    use crate::testing::{authz_with_clock, code_for, register_public, token_req, VERIFIER};

    #[tokio::test]
    async fn exchange_then_reuse_revokes() {
        let (a, _clock) = authz_with_clock().await;
        let c = register_public(&a).await;
        let client = a.client(&c).await.unwrap().unwrap();
        let code = code_for(&a, &c).await;
        let resp = a
            .exchange_code(&client, token_req(&code, VERIFIER))
            .await
            .unwrap();
        assert_eq!(resp.token_type, "Bearer");
        assert_eq!(resp.scope.as_deref(), Some("mcp:tools"));
        let rt = resp.refresh_token.clone().unwrap();
        let again = a
            .exchange_code(&client, token_req(&code, VERIFIER))
            .await
            .unwrap_err();
        assert!(matches!(again, AuthzError::InvalidGrant(_)));
        // The refresh token from the first exchange is now dead.
        let r = crate::token::TokenRequest {
            grant_type: Some("refresh_token".into()),
            refresh_token: Some(crate::secret::Secret::new(rt)),
            ..Default::default()
        };
        assert_eq!(
            a.token(&client, r).await.unwrap_err(),
            crate::token::TokenError::Refresh(crate::store::RefreshError::Revoked)
        );
    }

    #[tokio::test]
    async fn wrong_verifier_consumes_nothing() {
        let (a, _clock) = authz_with_clock().await;
        let c = register_public(&a).await;
        let client = a.client(&c).await.unwrap().unwrap();
        let code = code_for(&a, &c).await;
        let wrong = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj";
        assert_eq!(
            a.exchange_code(&client, token_req(&code, wrong))
                .await
                .unwrap_err(),
            AuthzError::InvalidGrant("code_verifier does not match the code_challenge".into())
        );
        let mut missing = token_req(&code, VERIFIER);
        missing.code_verifier = None;
        assert!(matches!(
            a.exchange_code(&client, missing).await.unwrap_err(),
            AuthzError::InvalidGrant(_)
        ));
        assert!(a
            .exchange_code(&client, token_req(&code, VERIFIER))
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn bound_to_redirect_client_resource_and_expiry() {
        let (a, clock) = authz_with_clock().await;
        let c = register_public(&a).await;
        let other = register_public(&a).await;
        let client = a.client(&c).await.unwrap().unwrap();
        let other = a.client(&other).await.unwrap().unwrap();
        let code = code_for(&a, &c).await;
        let mut r = token_req(&code, VERIFIER);
        r.redirect_uri = Some("http://localhost:8080/other".into());
        assert!(matches!(
            a.exchange_code(&client, r).await.unwrap_err(),
            AuthzError::InvalidGrant(_)
        ));
        assert!(matches!(
            a.exchange_code(&other, token_req(&code, VERIFIER))
                .await
                .unwrap_err(),
            AuthzError::InvalidGrant(_)
        ));
        let mut r = token_req(&code, VERIFIER);
        r.resource = Some("https://elsewhere/mcp".into());
        assert!(matches!(
            a.exchange_code(&client, r).await.unwrap_err(),
            AuthzError::InvalidTarget(_)
        ));
        clock.advance(60);
        assert_eq!(
            a.exchange_code(&client, token_req(&code, VERIFIER))
                .await
                .unwrap_err(),
            AuthzError::InvalidGrant("the authorization code expired".into())
        );
    }
}
