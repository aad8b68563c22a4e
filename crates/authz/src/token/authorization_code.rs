//! The `authorization_code` grant (RFC 6749 §4.1.3, OAuth 2.1 §4.1.3, RFC 7636 §4.5–4.6, RFC 8707 §2.2).
//!
//! A code is single-use: the redemption is one conditional update, so of many concurrent redemptions exactly one
//! wins. A code presented again is treated as stolen: `invalid_grant`, and the grant its first redemption
//! created is revoked (RFC 6749 §4.1.2, RFC 9700 §4.5.1). A failed redemption (wrong verifier, wrong client)
//! consumes and revokes nothing.

use super::error::AuthorizationCodeError;
use super::{TokenError, Tokens};
use crate::error::AuthzError;
use crate::random;
use crate::registration::RegisteredClient;
use crate::secret::TokenHash;
use crate::store::{CodeRecord, GrantRecord, Transition};
use portcullis_proto::token::TokenResponse;
use portcullis_proto::{AuthorizationCodeRequest, CodeChallenge};

impl Tokens {
    /// Exchanges a code for tokens: check the code against the request, then redeem it (single-use), then
    /// issue the tokens.
    pub async fn exchange_code(
        &self,
        client: &RegisteredClient,
        req: AuthorizationCodeRequest,
    ) -> Result<TokenResponse, TokenError> {
        let now = self.core.now();
        let hash = TokenHash::of(req.code.expose());
        let record = self.redeemable_code(&hash, now).await?;
        check_binding(&record, client, &req)?;
        let grant = self.grant_for(&record, now);
        let refresh = self.redeem(&hash, now, client, &grant).await?;
        let access = self.access_token_for(&grant, &grant.scope);
        Ok(self.token_response(access, refresh, &grant.scope))
    }

    /// The stored code if it may still be redeemed. A used one is reuse: the grant of its first redemption is
    /// revoked (RFC 6749 §4.1.2, RFC 9700 §4.5.1).
    async fn redeemable_code(&self, hash: &TokenHash, now: i64) -> Result<CodeRecord, TokenError> {
        let record = self
            .core
            .store
            .code(hash)
            .await?
            .ok_or(AuthorizationCodeError::Unknown)?;
        if record.used_at.is_some() {
            return Err(self.code_reused(hash, now).await);
        }
        if now >= record.expires_at {
            return Err(AuthorizationCodeError::Expired.into());
        }
        Ok(record)
    }

    /// Revokes what a reused code produced; the refusal to answer with.
    async fn code_reused(&self, hash: &TokenHash, now: i64) -> TokenError {
        let exp = self.core.revocation_expiry(now);
        match self.core.store.revoke_grant_of_code(hash, now, exp).await {
            Ok(_) => AuthorizationCodeError::Reused.into(),
            Err(e) => e.into(),
        }
    }

    /// The grant a redemption of `record` creates.
    fn grant_for(&self, record: &CodeRecord, now: i64) -> GrantRecord {
        GrantRecord {
            id: random::ordered_id(self.core.rng(), self.core.clock.now_millis()),
            client_id: record.client_id.clone(),
            user_id: record.user_id.clone(),
            scope: record.scope.clone(),
            resource: record.resource.clone(),
            created_at: now,
            expires_at: now + self.core.config.refresh_absolute_ttl,
            revoked_at: None,
            identity: record.identity.clone(),
        }
    }

    /// Marks the code used and stores `grant` with its refresh family in one conditional step; the first
    /// refresh token, if the client may refresh. Losing the race to another redemption is reuse too.
    async fn redeem(
        &self,
        hash: &TokenHash,
        now: i64,
        client: &RegisteredClient,
        grant: &GrantRecord,
    ) -> Result<Option<String>, TokenError> {
        let (refresh, family) = match client.may_refresh {
            true => {
                let (token, family) = self.new_refresh_family(now, grant.expires_at);
                (Some(token), Some(family))
            }
            false => (None, None),
        };
        match self
            .core
            .store
            .redeem_code(hash, now, grant, family.as_ref())
            .await?
        {
            Transition::Won => Ok(refresh),
            Transition::AlreadyUsed => Err(self.code_reused(hash, now).await),
        }
    }
}

/// The code is bound to its client, redirect URI, PKCE challenge and resource (RFC 6749 §4.1.3, RFC 7636
/// §4.6, RFC 8707 §2.2). A failure consumes nothing.
fn check_binding(
    record: &CodeRecord,
    client: &RegisteredClient,
    req: &AuthorizationCodeRequest,
) -> Result<(), TokenError> {
    if record.client_id != client.client_id {
        return Err(AuthorizationCodeError::OtherClient.into());
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
        return Err(AuthorizationCodeError::RedirectUriMismatch.into());
    }
    let challenge = CodeChallenge::parse(&record.code_challenge, Some("S256"))
        .map_err(|_| AuthzError::Internal("stored code challenge unreadable".into()))?;
    if !challenge.verify(&req.code_verifier) {
        return Err(AuthorizationCodeError::VerifierMismatch.into());
    }
    if let Some(r) = &req.resource {
        if r.as_str() != record.resource {
            return Err(AuthorizationCodeError::OtherResource.into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::testing::{authz_with_clock, code_for, register_public, token_req, VERIFIER};
    use crate::token::error::AuthorizationCodeError as E;
    use crate::token::TokenError;

    #[tokio::test]
    async fn exchange_then_reuse_revokes() {
        let (a, _clock) = authz_with_clock().await;
        let c = register_public(&a).await;
        let client = a.registrations().client(&c).await.unwrap().unwrap();
        let code = code_for(&a, &c).await;
        let resp = a
            .tokens()
            .exchange_code(&client, token_req(&code, VERIFIER))
            .await
            .unwrap();
        assert_eq!(resp.token_type, "Bearer");
        assert_eq!(resp.scope.as_deref(), Some("mcp:tools"));
        let rt = resp.refresh_token.clone().unwrap();
        let again = a
            .tokens()
            .exchange_code(&client, token_req(&code, VERIFIER))
            .await
            .unwrap_err();
        assert_eq!(again, TokenError::AuthorizationCode(E::Reused));
        // The refresh token from the first exchange is now dead.
        let r =
            portcullis_proto::TokenRequest::RefreshToken(portcullis_proto::RefreshTokenRequest {
                refresh_token: portcullis_proto::RefreshToken::new(rt),
                scope: None,
                resource: None,
            });
        assert_eq!(
            a.tokens().token(&client, r).await.unwrap_err(),
            crate::token::TokenError::Refresh(crate::store::RefreshError::Revoked)
        );
    }

    #[tokio::test]
    async fn wrong_verifier_consumes_nothing() {
        let (a, _clock) = authz_with_clock().await;
        let c = register_public(&a).await;
        let client = a.registrations().client(&c).await.unwrap().unwrap();
        let code = code_for(&a, &c).await;
        let wrong = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj";
        assert_eq!(
            a.tokens()
                .exchange_code(&client, token_req(&code, wrong))
                .await
                .unwrap_err(),
            TokenError::AuthorizationCode(E::VerifierMismatch)
        );
        // A missing verifier is refused by the parser, as invalid_grant, before the code is looked at.
        let missing = portcullis_proto::TokenRequest::parse([
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
        ])
        .unwrap_err();
        assert_eq!(
            missing,
            portcullis_proto::TokenRequestError::MissingCodeVerifier
        );
        assert_eq!(missing.code(), portcullis_proto::ErrorCode::InvalidGrant);
        assert!(a
            .tokens()
            .exchange_code(&client, token_req(&code, VERIFIER))
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn bound_to_redirect_client_resource_and_expiry() {
        let (a, clock) = authz_with_clock().await;
        let c = register_public(&a).await;
        let other = register_public(&a).await;
        let client = a.registrations().client(&c).await.unwrap().unwrap();
        let other = a.registrations().client(&other).await.unwrap().unwrap();
        let code = code_for(&a, &c).await;
        let mut r = token_req(&code, VERIFIER);
        r.redirect_uri = Some("http://localhost:8080/other".into());
        assert_eq!(
            a.tokens().exchange_code(&client, r).await.unwrap_err(),
            TokenError::AuthorizationCode(E::RedirectUriMismatch)
        );
        assert_eq!(
            a.tokens()
                .exchange_code(&other, token_req(&code, VERIFIER))
                .await
                .unwrap_err(),
            TokenError::AuthorizationCode(E::OtherClient)
        );
        let mut r = token_req(&code, VERIFIER);
        r.resource = Some(portcullis_proto::ResourceIndicator::new(
            "https://elsewhere/mcp",
        ));
        assert_eq!(
            a.tokens().exchange_code(&client, r).await.unwrap_err(),
            TokenError::AuthorizationCode(E::OtherResource)
        );
        clock.advance(60);
        assert_eq!(
            a.tokens()
                .exchange_code(&client, token_req(&code, VERIFIER))
                .await
                .unwrap_err(),
            TokenError::AuthorizationCode(E::Expired)
        );
    }
}
