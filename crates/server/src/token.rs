//! `POST /token` (RFC 6749 §3.2, §4.1.3, §6; OAuth 2.1 §3.2): form-encoded POST only, client authentication,
//! then the grant. Every response carries `Cache-Control: no-store` (RFC 6749 §5.1).

use crate::client_auth::{authenticated, ClientRequest};
use crate::error::{EndpointError, OAuthError};
use crate::federation::upstream_tokens::UpstreamTokenError;
use crate::guesses::limited;
use crate::state::AppState;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, Extensions, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use portcullis_authz::registration::RegisteredClient;
use portcullis_authz::token::TokenError;
use portcullis_authz::AuthzError;
use portcullis_proto::token::TokenResponse;
use portcullis_proto::{ErrorCode, TokenRequest};
use std::sync::Arc;

/// Whether a failure counts against the caller's address: guesses of codes, refresh tokens and client
/// credentials (security notes, "Brute force"; issue: abuse limits on token requests).
fn counts_as_guess(e: &EndpointError) -> bool {
    matches!(e.code(), ErrorCode::InvalidGrant | ErrorCode::InvalidClient)
}

/// Issues tokens.
pub async fn token(
    State(s): State<Arc<AppState>>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let is_guess = |e: &OAuthError| counts_as_guess(&e.error);
    limited(
        &s,
        &extensions,
        "token",
        is_guess,
        issue(&s, &headers, body),
    )
    .await
}

/// Reads the form, authenticates the client, parses the request and runs its grant.
async fn issue(
    s: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    let ClientRequest {
        form,
        client,
        basic,
    } = match authenticated(s, headers, body, false).await {
        Ok(r) => r,
        Err(early) => return early,
    };
    // Parsed after client authentication, so an unauthenticated caller learns nothing about its request.
    let mut refresh = false;
    let issued = match TokenRequest::parse(form.pairs()) {
        Ok(req) => {
            refresh = matches!(req, TokenRequest::RefreshToken(_));
            s.authz.tokens().token(&client, req).await
        }
        Err(e) => Err(TokenError::from(e)),
    };
    match issued {
        Ok(resp) => {
            if refresh && s.upstream_tokens.is_some() {
                upstream_still_honours(s, &client, &resp)
                    .await
                    .map_err(|e| OAuthError::new(e, basic))?;
            }
            let mut r = axum::Json(resp).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r.headers_mut()
                .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            Ok(r)
        }
        Err(error) => {
            if error.code() == ErrorCode::InvalidGrant {
                // A replay may have revoked a grant: let this instance's MCP endpoint know at once.
                s.revocations.sync_soon();
            }
            Err(OAuthError::new(error, basic))
        }
    }
}

/// The user id and identity provider of an access token this process just minted, when the user signed in
/// through a provider (`idp` claim, minted from `GrantRecord::identity`).
fn federated_user(access_token: &str) -> Option<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Claims {
        sub: String,
        #[serde(default)]
        idp: Option<String>,
    }
    // Our own token, signed a moment ago in this process: its payload is read without checking the signature.
    let payload = access_token.split('.').nth(1)?;
    let bytes = portcullis_proto::b64::decode(payload)?;
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    Some((claims.sub, claims.idp?))
}

/// Deprovisioning reaches MCP clients (issue 13 §1; docs/federation.md, SECURITY.md): after a refresh of a grant
/// whose user signed in through an identity provider, the user's refresh token is refreshed at that provider
/// (unless that happened within a minute). The provider refusing it (`invalid_grant`: the user was removed or
/// their session revoked there), or the user no longer having tokens there, revokes the grant, whose new tokens
/// never leave: `invalid_grant`. The provider unreachable or failing: the refresh proceeds, with a warning (a
/// deliberate availability choice: an outage of the provider does not log everyone out).
///
/// Run after the rotation rather than before, because only the rotation reads the grant: a refresh of a
/// password user costs nothing more than decoding the payload of the token just minted.
async fn upstream_still_honours(
    s: &AppState,
    client: &RegisteredClient,
    resp: &TokenResponse,
) -> Result<(), AuthzError> {
    let (Some(source), Some((user, provider))) = (
        s.upstream_tokens.as_ref(),
        federated_user(&resp.access_token),
    ) else {
        return Ok(());
    };
    match source.verify(&user, &provider).await {
        Ok(()) => Ok(()),
        Err(
            e @ (UpstreamTokenError::Revoked { .. }
            | UpstreamTokenError::Missing { .. }
            | UpstreamTokenError::NotRefreshable { .. }),
        ) => {
            tracing::info!(%provider, code = e.code(), client_id = %client.client_id, "the identity provider no longer honours the user: grant revoked");
            if let Some(rt) = &resp.refresh_token {
                // The new refresh token names the family: revoking it revokes the grant and its access tokens.
                s.authz.revoker().revoke(client, rt, None).await?;
            }
            s.revocations.sync_soon();
            let display = source.display_name(&provider);
            Err(AuthzError::InvalidGrant(format!(
                "{display} no longer accepts this user's sign-in; sign in again through {display}"
            )))
        }
        Err(e) => {
            tracing::warn!(%provider, code = e.code(), error = %e, "cannot check the user at the identity provider; the refresh proceeds");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &serde_json::Value) -> String {
        format!(
            "eyJhbGciOiJFUzI1NiJ9.{}.c2ln",
            portcullis_proto::b64::encode(payload.to_string())
        )
    }

    #[test]
    fn only_tokens_of_federated_users_are_checked() {
        let carol = jwt(&serde_json::json!({"sub": "u1", "idp": "corp", "aud": "x"}));
        assert_eq!(
            federated_user(&carol),
            Some(("u1".to_owned(), "corp".to_owned()))
        );
        let alice = jwt(&serde_json::json!({"sub": "u2", "preferred_username": "alice"}));
        assert_eq!(federated_user(&alice), None);
        for junk in ["", "a.b.c", "onlyonepart", "x.!!!.y"] {
            assert_eq!(federated_user(junk), None, "{junk}");
        }
    }
}
