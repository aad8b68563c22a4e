//! Token introspection (RFC 7662 §2): whether a token is active, and what it says, for the resource servers
//! that cannot verify JWTs or must see a revocation at once.
//!
//! Who may ask about what (RFC 7662 §2.1: "the endpoint MUST also require some form of authorization"; §4: an
//! open endpoint would let anyone probe for tokens):
//! - a confidential client, about the tokens issued to it (its `client_id`);
//! - a resource server's introspection credential, made by the admin (`portcullis clients add NAME
//!   --introspection [--resource URL …]`), about the access tokens whose audience it serves
//!   ([`IntrospectionAudiences`]); never about refresh tokens, which no resource server ever sees;
//! - a public client, about nothing: it is not authenticated (`invalid_client`).
//!
//! Anything the caller may not see is answered exactly like an unknown token: `{"active": false}` (§2.2), so
//! the endpoint tells a caller nothing about other clients' tokens.
//!
//! Active means, for an access token: signed by one of our keys, `typ` `at+jwt`, our `iss`, within `iat`/`nbf`
//! and `exp`, its `jti` not revoked, and its grant still in storage and not revoked — the grant is read from the
//! database on every call, so a revocation on any instance is seen at once (a JWT-only resource server sees it
//! only at `exp`). For a refresh token: its family's live token (not a rotated one), grant not revoked,
//! neither the token's idle expiry nor the grant's end passed.

use crate::access_token::{self, AccessClaims, Audience};
use crate::error::AuthzError;
use crate::jwt;
use crate::keys::Keys;
pub use crate::registration::IntrospectionAudiences;
use crate::registration::{AuthMethod, RegisteredClient};
use crate::secret::TokenHash;
use crate::shared::Core;
use crate::token::refresh;
use portcullis_proto::introspection::{IntrospectionResponse, OneOrMany};
use portcullis_proto::registration::ClientMetadata;
use std::sync::Arc;

/// The metadata stored for an introspection credential named `name`: HTTP Basic, no redirect URI, no grant or
/// response type. `name` follows the registration rule for `client_name`; each resource is an absolute http(s)
/// URL without a fragment (RFC 8707 §2).
pub fn introspection_metadata(
    name: &str,
    audiences: &IntrospectionAudiences,
) -> Result<ClientMetadata, AuthzError> {
    let bad = |m: String| AuthzError::InvalidClientMetadata(m);
    if name.trim().is_empty()
        || name.chars().count() > crate::registration::MAX_NAME_LEN
        || crate::display_text::first_hidden(name).is_some()
    {
        return Err(bad(format!(
            "the name must be 1 to {} characters without control, invisible or bidirectional formatting characters",
            crate::registration::MAX_NAME_LEN
        )));
    }
    for r in audiences.to_stored() {
        let ok = url::Url::parse(&r).is_ok_and(|u| {
            matches!(u.scheme(), "https" | "http") && u.host().is_some() && u.fragment().is_none()
        });
        if !ok {
            return Err(bad(format!(
                "resource {r:?} must be an absolute http(s) URL without a fragment"
            )));
        }
    }
    Ok(ClientMetadata {
        client_name: Some(name.to_owned()),
        token_endpoint_auth_method: Some(AuthMethod::ClientSecretBasic.as_str().into()),
        grant_types: Some(Vec::new()),
        response_types: Some(Vec::new()),
        ..ClientMetadata::default()
    })
}

/// Who is asking, once authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller<'a> {
    /// A confidential client: sees the tokens issued to it.
    Client(&'a str),
    /// An introspection credential: sees the access tokens of the audiences it serves.
    ResourceServer(&'a IntrospectionAudiences),
}

impl<'a> Caller<'a> {
    /// The caller an authenticated client is; a public client is refused (RFC 7662 §2.1: callers
    /// authenticate; a `client_id` alone proves nothing).
    fn of(client: &'a RegisteredClient) -> Result<Self, AuthzError> {
        if client.auth_method == AuthMethod::None {
            return Err(AuthzError::InvalidClient(
                "introspection requires a confidential client (client_secret_basic or client_secret_post)"
                    .into(),
            ));
        }
        Ok(match &client.introspection {
            Some(audiences) => Self::ResourceServer(audiences),
            None => Self::Client(&client.client_id),
        })
    }
}

/// Whether `client` may call the introspection endpoint at all (a confidential client); checked before the
/// request is read, so an unauthenticated caller learns nothing about it.
pub fn check_caller(client: &RegisteredClient) -> Result<(), AuthzError> {
    Caller::of(client).map(drop)
}

/// The introspection service. Built by [`crate::Authz::new`]; reached with [`crate::Authz::introspector`].
#[derive(Debug)]
pub struct Introspector {
    core: Arc<Core>,
    keys: Arc<Keys>,
}

impl Introspector {
    /// The service over the shared dependencies, recognising access tokens signed with `keys`.
    pub fn new(core: Arc<Core>, keys: Arc<Keys>) -> Self {
        Self { core, keys }
    }

    /// Introspects `token` for `caller` (RFC 7662 §2.1, §2.2). `jti_revoked` says whether an access token's
    /// `jti` was revoked on its own (RFC 7009; the server's revocation set, synced from storage just before);
    /// a grant's revocation is read from storage here. The `token_type_hint` is not needed: an access token
    /// is a JWT (two dots) and a refresh token is not, so the search covers every type either way (§2.1).
    pub async fn introspect(
        &self,
        caller: &RegisteredClient,
        token: &str,
        jti_revoked: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<IntrospectionResponse, AuthzError> {
        let caller = Caller::of(caller)?;
        if token.is_empty() || token.len() > jwt::MAX_TOKEN_LEN {
            return Ok(IntrospectionResponse::inactive());
        }
        let looks_like_jwt = token.bytes().filter(|&b| b == b'.').count() == 2;
        let answer = if looks_like_jwt {
            self.access_token(caller, token, jti_revoked).await?
        } else {
            self.refresh_token(caller, token).await?
        };
        Ok(answer.unwrap_or_else(IntrospectionResponse::inactive))
    }

    /// An access token: signature, `typ`, `iss`, time window, visibility, `jti` and grant (see the module doc).
    async fn access_token(
        &self,
        caller: Caller<'_>,
        token: &str,
        jti_revoked: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Option<IntrospectionResponse>, AuthzError> {
        let now = self.core.now();
        let Some(claims) = self.signed_claims(token) else {
            return Ok(None);
        };
        let limit = now.saturating_add(access_token::LEEWAY);
        let in_window =
            now < claims.exp && claims.iat <= limit && claims.nbf.is_none_or(|nbf| nbf <= limit);
        let visible = match caller {
            Caller::Client(id) => claims.client_id == id,
            Caller::ResourceServer(audiences) => audiences.serves(&claims.aud),
        };
        if claims.iss != self.core.config.issuer || !in_window || !visible {
            return Ok(None);
        }
        if jti_revoked(&claims.jti) {
            return Ok(None);
        }
        if let Some(grant_id) = &claims.grant_id {
            let live = self
                .core
                .store
                .grant(grant_id)
                .await?
                .is_some_and(|g| g.revoked_at.is_none() && g.client_id == claims.client_id);
            if !live {
                return Ok(None);
            }
        }
        Ok(Some(access_response(claims)))
    }

    /// The claims of a token signed with one of our keys and typed `at+jwt`; `None` for anything else.
    fn signed_claims(&self, token: &str) -> Option<AccessClaims> {
        let unverified = jwt::decode(token).ok()?;
        access_token::check_typ(&unverified.header.typ).ok()?;
        let ring = self.keys.ring();
        let key = ring.verifying_key(&unverified.header.kid)?;
        let payload = unverified.verify(key).ok()?;
        serde_json::from_slice(&payload).ok()
    }

    /// A refresh token: the live token of its family, grant live, not expired, and the caller's own.
    async fn refresh_token(
        &self,
        caller: Caller<'_>,
        token: &str,
    ) -> Result<Option<IntrospectionResponse>, AuthzError> {
        // Refresh tokens are the client's alone: a resource server never sees one (module doc).
        let Caller::Client(client_id) = caller else {
            return Ok(None);
        };
        let key = TokenHash::of(refresh::handle_of(token));
        let Some((family, grant)) = self.core.store.refresh_family(&key).await? else {
            return Ok(None);
        };
        let now = self.core.now();
        let active = grant.client_id == client_id
            && grant.revoked_at.is_none()
            && family
                .token_hash
                .ct_eq(&TokenHash::of(refresh::secret_of(token)))
            && now < family.expires_at
            && now < grant.expires_at;
        if !active {
            return Ok(None);
        }
        let username = grant.identity.preferred_username;
        Ok(Some(IntrospectionResponse {
            active: true,
            scope: Some(grant.scope),
            client_id: Some(grant.client_id),
            username: (!username.is_empty()).then_some(username),
            exp: Some(family.expires_at.min(grant.expires_at)),
            iat: Some(family.issued_at),
            sub: Some(grant.user_id),
            aud: Some(OneOrMany::One(grant.resource)),
            iss: Some(self.core.config.issuer.clone()),
            ..IntrospectionResponse::default()
        }))
    }
}

/// The §2.2 members of an active access token, from its claims.
fn access_response(c: AccessClaims) -> IntrospectionResponse {
    IntrospectionResponse {
        active: true,
        scope: c.scope,
        client_id: Some(c.client_id),
        username: c.preferred_username,
        token_type: Some("Bearer".into()),
        exp: Some(c.exp),
        iat: Some(c.iat),
        nbf: c.nbf,
        sub: Some(c.sub),
        aud: Some(match c.aud {
            Audience::One(a) => OneOrMany::One(a),
            Audience::Many(v) => OneOrMany::Many(v),
        }),
        iss: Some(c.iss),
        jti: Some(c.jti),
    }
}

#[cfg(test)]
mod tests;
