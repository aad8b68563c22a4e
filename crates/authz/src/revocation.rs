//! Token revocation (RFC 7009 §2). The endpoint answers 200 whether or not the token was known (§2.2), and a
//! client can only revoke its own tokens: another client's token is left alone, silently, so the endpoint
//! cannot be used to probe for tokens.
//!
//! [`Revoker`] is the revocation service, over the shared [`Core`] and the [`Keys`] that tell our access tokens
//! apart (named so as not to be taken for the server's revocation set, `revocations::Revocations`).

use crate::access_token::{AccessClaims, TokenError};
use crate::error::AuthzError;
use crate::jwt;
use crate::keys::Keys;
use crate::registration::RegisteredClient;
use crate::secret::TokenHash;
use crate::shared::Core;
use portcullis_proto::token::TokenTypeHint;
use std::sync::Arc;

/// The revocation service. Built by [`crate::Authz::new`]; reached with [`crate::Authz::revoker`].
#[derive(Debug)]
pub struct Revoker {
    core: Arc<Core>,
    keys: Arc<Keys>,
}

impl Revoker {
    /// The service over the shared dependencies, recognising tokens signed with `keys`.
    pub fn new(core: Arc<Core>, keys: Arc<Keys>) -> Self {
        Self { core, keys }
    }

    /// Revokes `token` for `client`. A refresh token revokes its whole grant, including the grant's access tokens
    /// (RFC 7009 §2.1 SHOULD); an access token revokes just itself.
    pub async fn revoke(
        &self,
        client: &RegisteredClient,
        token: &str,
        hint: Option<TokenTypeHint>,
    ) -> Result<(), AuthzError> {
        if token.is_empty() || token.len() > jwt::MAX_TOKEN_LEN {
            return Ok(());
        }
        let looks_like_jwt = token.bytes().filter(|&b| b == b'.').count() == 2;
        let try_access_first = looks_like_jwt || hint == Some(TokenTypeHint::AccessToken);
        if try_access_first && self.revoke_access(client, token).await? {
            return Ok(());
        }
        // Any token of a family, live or retired, names it (see `token::refresh`).
        let key = TokenHash::of(crate::token::refresh::handle_of(token));
        if let Some((_, grant)) = self.core.store.refresh_family(&key).await? {
            // A grant that is already revoked needs no write: revoking it again changes nothing (§2.2: the
            // answer is 200 either way).
            if grant.client_id == client.client_id && grant.revoked_at.is_none() {
                self.revoke_grant_now(&grant.id).await?;
            }
        }
        Ok(())
    }

    async fn revoke_access(
        &self,
        client: &RegisteredClient,
        token: &str,
    ) -> Result<bool, AuthzError> {
        let claims = match self.read_own_access_token(token) {
            Ok(c) => c,
            Err(_) => return Ok(false),
        };
        if claims.client_id == client.client_id && claims.exp > self.core.now() {
            self.core
                .store
                .revoke_access_token(&claims.jti, claims.exp)
                .await?;
        }
        Ok(true)
    }

    /// Verifies a token's signature with our keys, without audience or expiry checks (revocation only needs to
    /// know the token is ours and whose it is).
    fn read_own_access_token(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let ring = self.keys.ring();
        let u = jwt::decode(token)?;
        let key = ring
            .verifying_key(&u.header.kid)
            .ok_or(jwt::JwsError::UnknownKey)?;
        let payload = u.verify(key)?;
        let claims: AccessClaims =
            serde_json::from_slice(&payload).map_err(|_| TokenError::Claims)?;
        if claims.iss != self.core.config.issuer {
            return Err(TokenError::Issuer);
        }
        Ok(claims)
    }

    /// Revokes a grant and its access tokens; the revocation entry lives as long as an access token can.
    async fn revoke_grant_now(&self, grant_id: &str) -> Result<(), AuthzError> {
        let now = self.core.now();
        self.core
            .store
            .revoke_grant(grant_id, now, self.core.revocation_expiry(now))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::RevokedKind;
    use crate::testing::{
        authz_with_clock, code_for, public_client, register_public, revocations, token_req,
        VERIFIER,
    };

    #[tokio::test]
    async fn refresh_revokes_grant_access_revokes_jti_other_client_untouched() {
        let (a, _clock) = authz_with_clock().await;
        let c = register_public(&a).await;
        let client = a.registrations().client(&c).await.unwrap().unwrap();
        let other = public_client(&a).await;
        let resp = a
            .tokens()
            .exchange_code(&client, token_req(&code_for(&a, &c).await, VERIFIER))
            .await
            .unwrap();
        let rt = resp.refresh_token.unwrap();
        a.revoker().revoke(&other, &rt, None).await.unwrap();
        a.revoker()
            .revoke(&other, &resp.access_token, None)
            .await
            .unwrap();
        assert!(
            revocations(&a).await.is_empty(),
            "another client's revocation does nothing"
        );
        a.revoker()
            .revoke(&client, &resp.access_token, None)
            .await
            .unwrap();
        let revs = revocations(&a).await;
        assert_eq!(revs.len(), 1);
        assert_eq!(revs[0].kind, RevokedKind::AccessToken);
        a.revoker().revoke(&client, &rt, None).await.unwrap();
        let revs = revocations(&a).await;
        assert_eq!(revs[1].kind, RevokedKind::Grant);
        // Revoking it again is answered the same and adds nothing.
        a.revoker().revoke(&client, &rt, None).await.unwrap();
        assert_eq!(revocations(&a).await.len(), 2);
        a.revoker()
            .revoke(&client, "unknown-token", None)
            .await
            .unwrap();
    }
}
