//! The `authorization_code` grant (RFC 6749 §4.1.3, OAuth 2.1 §4.1.3, RFC 7636 §4.5–4.6, RFC 8707 §2.2).
//!
//! A code is single-use: the redemption is one conditional update, so of many concurrent redemptions exactly one
//! wins. A failed redemption (wrong verifier, wrong client) consumes and revokes nothing.
//!
//! A used code presented again revokes the grant its first redemption created (RFC 6749 §4.1.2, RFC 9700
//! §4.5.1) only when the request proves possession: the code's client, redirect URI, PKCE verifier and resource
//! ([`check_binding`]). A replay that proves nothing — a code copied from a log or a referrer, without the
//! verifier that never left the client — is refused and revokes nothing, so it cannot sign the user out. The
//! same rule holds for a redemption that loses the race to another one.

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
        let record = self
            .core
            .store
            .code(&hash)
            .await?
            .ok_or(AuthorizationCodeError::Unknown)?;
        if record.used_at.is_some() {
            return Err(self.replayed(&record, client, &req, &hash, now).await);
        }
        if now >= record.expires_at {
            return Err(AuthorizationCodeError::Expired.into());
        }
        check_binding(&record, client, &req)?;
        let grant = self.grant_for(&record, now);
        let refresh = match self.redeem(&hash, now, client, &grant).await? {
            Redemption::Won(refresh) => refresh,
            // Another redemption won between the read above and this one: a replay like any other.
            Redemption::Lost => return Err(self.replayed(&record, client, &req, &hash, now).await),
        };
        let access = self.access_token_for(&grant, &grant.scope);
        Ok(self.token_response(access, refresh, &grant.scope))
    }

    /// A used code presented again (or a redemption that lost the race). With proof of possession
    /// ([`check_binding`] passes) it is reuse: the grant of the first redemption is revoked (RFC 6749 §4.1.2,
    /// RFC 9700 §4.5.1). Without, it is refused and nothing is revoked: PKCE exists so that a code seen by
    /// someone else is useless to them, and that must include using it to sign the user out.
    async fn replayed(
        &self,
        record: &CodeRecord,
        client: &RegisteredClient,
        req: &AuthorizationCodeRequest,
        hash: &TokenHash,
        now: i64,
    ) -> TokenError {
        if check_binding(record, client, req).is_err() {
            return AuthorizationCodeError::AlreadyUsed.into();
        }
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

    /// Marks the code used and stores `grant` with its refresh family in one conditional step.
    async fn redeem(
        &self,
        hash: &TokenHash,
        now: i64,
        client: &RegisteredClient,
        grant: &GrantRecord,
    ) -> Result<Redemption, TokenError> {
        let (refresh, family) = match client.may_refresh {
            true => {
                let (token, family) = self.new_refresh_family(now, grant.expires_at);
                (Some(token), Some(family))
            }
            false => (None, None),
        };
        Ok(
            match self
                .core
                .store
                .redeem_code(hash, now, grant, family.as_ref())
                .await?
            {
                Transition::Won => Redemption::Won(refresh),
                Transition::AlreadyUsed => Redemption::Lost,
            },
        )
    }
}

/// How a redemption's conditional step went.
enum Redemption {
    /// This request redeemed the code; the first refresh token, if the client may refresh.
    Won(Option<String>),
    /// Another redemption won the race.
    Lost,
}

/// The code is bound to its client, redirect URI, PKCE challenge and resource (RFC 6749 §4.1.3, RFC 7636
/// §4.6, RFC 8707 §2.2). A failure consumes nothing; for a used code, passing is the proof of possession that
/// lets a replay revoke.
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
    use crate::registration::RegisteredClient;
    use crate::service::Authz;
    use crate::testing::{
        authz_on, authz_with_clock, code_for, register_public, revocations, token_req, MemStore,
        VERIFIER,
    };
    use crate::token::error::AuthorizationCodeError as E;
    use crate::token::TokenError;
    use std::sync::Arc;

    const WRONG_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj";

    /// Refreshes with `rt`; the next refresh token.
    async fn refresh(a: &Authz, client: &RegisteredClient, rt: &str) -> Result<String, TokenError> {
        let r =
            portcullis_proto::TokenRequest::RefreshToken(portcullis_proto::RefreshTokenRequest {
                refresh_token: portcullis_proto::RefreshToken::new(rt.to_owned()),
                scope: None,
                resource: None,
            });
        let resp = a.tokens().token(client, r).await?;
        Ok(resp.refresh_token.unwrap())
    }

    /// RFC 6749 §4.1.2, RFC 9700 §4.5.1: only a replay that proves possession revokes. A wrong verifier, another
    /// client, another redirect URI or another resource is refused with `invalid_grant` and revokes nothing; the
    /// right client with the right verifier then revokes.
    #[tokio::test]
    async fn a_replay_that_proves_nothing_revokes_nothing() {
        let (a, _clock) = authz_with_clock().await;
        let c = register_public(&a).await;
        let client = a.registrations().client(&c).await.unwrap().unwrap();
        let other = register_public(&a).await;
        let other = a.registrations().client(&other).await.unwrap().unwrap();
        let code = code_for(&a, &c).await;
        let resp = a
            .tokens()
            .exchange_code(&client, token_req(&code, VERIFIER))
            .await
            .unwrap();
        let mut rt = resp.refresh_token.unwrap();

        let mut wrong_redirect = token_req(&code, VERIFIER);
        wrong_redirect.redirect_uri = Some("http://localhost:8080/other".into());
        let mut wrong_resource = token_req(&code, VERIFIER);
        wrong_resource.resource = Some(portcullis_proto::ResourceIndicator::new(
            "https://elsewhere/mcp",
        ));
        for (who, req) in [
            (&client, token_req(&code, WRONG_VERIFIER)),
            (&other, token_req(&code, VERIFIER)),
            (&client, wrong_redirect),
            (&client, wrong_resource),
        ] {
            let e = a.tokens().exchange_code(who, req).await.unwrap_err();
            assert_eq!(e, TokenError::AuthorizationCode(E::AlreadyUsed));
            assert_eq!(e.code(), portcullis_proto::ErrorCode::InvalidGrant);
            // The tokens of the first redemption keep working.
            rt = refresh(&a, &client, &rt).await.unwrap();
        }
        assert!(revocations(&a).await.is_empty(), "nothing revoked");

        assert_eq!(
            a.tokens()
                .exchange_code(&client, token_req(&code, VERIFIER))
                .await
                .unwrap_err(),
            TokenError::AuthorizationCode(E::Reused)
        );
        assert_eq!(
            refresh(&a, &client, &rt).await.unwrap_err(),
            TokenError::Refresh(crate::store::RefreshError::Revoked)
        );
        assert_eq!(revocations(&a).await.len(), 1);
    }

    /// A redemption that read the code before another one redeemed it loses the conditional update; it proved
    /// possession (the binding was checked), so it revokes, like a replay with proof.
    #[tokio::test]
    async fn a_lost_race_with_proof_revokes() {
        let store = Arc::new(MemStore::default());
        let (a, _clock) = authz_on(store.clone()).await;
        let c = register_public(&a).await;
        let client = a.registrations().client(&c).await.unwrap().unwrap();
        let code = code_for(&a, &c).await;
        let rt = a
            .tokens()
            .exchange_code(&client, token_req(&code, VERIFIER))
            .await
            .unwrap()
            .refresh_token
            .unwrap();
        store.read_codes_as_before_redemption();
        // A loser without the verifier never reaches the update: refused, nothing revoked.
        assert_eq!(
            a.tokens()
                .exchange_code(&client, token_req(&code, WRONG_VERIFIER))
                .await
                .unwrap_err(),
            TokenError::AuthorizationCode(E::VerifierMismatch)
        );
        let rt = refresh(&a, &client, &rt).await.unwrap();
        assert_eq!(
            a.tokens()
                .exchange_code(&client, token_req(&code, VERIFIER))
                .await
                .unwrap_err(),
            TokenError::AuthorizationCode(E::Reused)
        );
        assert_eq!(
            refresh(&a, &client, &rt).await.unwrap_err(),
            TokenError::Refresh(crate::store::RefreshError::Revoked)
        );
    }

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
        assert_eq!(
            a.tokens()
                .exchange_code(&client, token_req(&code, WRONG_VERIFIER))
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
