//! Token revocation (RFC 7009 §2). The endpoint answers 200 whether or not the token was known (§2.2), and a
//! client can only revoke its own tokens: another client's token is left alone, silently, so the endpoint
//! cannot be used to probe for tokens.

use crate::access_token::{AccessClaims, TokenError};
use crate::error::AuthzError;
use crate::jwt;
use crate::registration::RegisteredClient;
use crate::secret::TokenHash;
use crate::service::Authz;
use portcullis_proto::token::TokenTypeHint;

impl Authz {
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
        if let Some((_, grant)) = self.store.refresh_family(&key).await? {
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
        if claims.client_id == client.client_id && claims.exp > self.now() {
            self.store
                .revoke_access_token(&claims.jti, claims.exp)
                .await?;
        }
        Ok(true)
    }

    /// Verifies a token's signature with our keys, without audience or expiry checks (revocation only needs to
    /// know the token is ours and whose it is).
    fn read_own_access_token(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let ring = self.keys();
        let u = jwt::decode(token)?;
        let key = ring
            .verifying_key(&u.header.kid)
            .ok_or(jwt::JwsError::UnknownKey)?;
        let payload = u.verify(key)?;
        let claims: AccessClaims =
            serde_json::from_slice(&payload).map_err(|_| TokenError::Claims)?;
        if claims.iss != self.config.issuer {
            return Err(TokenError::Issuer);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::RevokedKind;
    use crate::testing::{authz_with_clock, code_for, register_public, token_req, VERIFIER};

    #[tokio::test]
    async fn refresh_revokes_grant_access_revokes_jti_other_client_untouched() {
        let (a, _clock) = authz_with_clock().await;
        let c = register_public(&a).await;
        let client = a.client(&c).await.unwrap().unwrap();
        let other = a.client(&register_public(&a).await).await.unwrap().unwrap();
        let resp = a
            .exchange_code(&client, token_req(&code_for(&a, &c).await, VERIFIER))
            .await
            .unwrap();
        let rt = resp.refresh_token.unwrap();
        a.revoke(&other, &rt, None).await.unwrap();
        a.revoke(&other, &resp.access_token, None).await.unwrap();
        assert!(
            a.store
                .revocations_since(0, a.now())
                .await
                .unwrap()
                .is_empty(),
            "another client's revocation does nothing"
        );
        a.revoke(&client, &resp.access_token, None).await.unwrap();
        let revs = a.store.revocations_since(0, a.now()).await.unwrap();
        assert_eq!(revs.len(), 1);
        assert_eq!(revs[0].kind, RevokedKind::AccessToken);
        a.revoke(&client, &rt, None).await.unwrap();
        let revs = a.store.revocations_since(0, a.now()).await.unwrap();
        assert_eq!(revs[1].kind, RevokedKind::Grant);
        // Revoking it again is answered the same and adds nothing.
        a.revoke(&client, &rt, None).await.unwrap();
        assert_eq!(
            a.store.revocations_since(0, a.now()).await.unwrap().len(),
            2
        );
        a.revoke(&client, "unknown-token", None).await.unwrap();
    }
}
