//! The bearer-token guard of the MCP endpoint (RFC 6750 §2.1, §3; RFC 9068 §4; RFC 9728 §5.1; MCP
//! authorization "Token Handling"): the token only from the `Authorization` header, verified for signature,
//! `typ`, `iss`, `aud` (this resource), `exp`/`nbf`, and revocation. Verified tokens are cached by hash until
//! their `exp` ([`crate::token_cache`]); revocation is checked on every request. Failures answer 401 with
//! `WWW-Authenticate: Bearer resource_metadata="…", scope="…"` (plus `error="invalid_token"` when a token was
//! sent); missing scope answers 403 `insufficient_scope` naming the scope needed.

use crate::error::bearer_error;
use crate::state::AppState;
use crate::token_cache::TokenCache;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use portcullis_authz::access_token::{self, AccessClaims, TokenError};
use portcullis_authz::jwt::JwsError;
use portcullis_proto::www_authenticate::BearerChallenge;
use portcullis_proto::{ErrorCode, Scope};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token's claims.
    pub claims: AccessClaims,
    /// Its scope, parsed.
    pub scope: Scope,
}

/// A principal for unit tests: an access token's claims for `sub` and `client_id` with `scope`, from a fixed
/// test issuer (the gateway modules' tests share it).
#[cfg(test)]
pub(crate) fn test_principal(sub: &str, client_id: &str, scope: &str) -> Principal {
    let claims: AccessClaims = serde_json::from_value(serde_json::json!({
        "iss": "http://127.0.0.1:1", "sub": sub, "aud": "http://127.0.0.1:1/mcp", "client_id": client_id,
        "exp": 2, "iat": 1, "jti": "j", "scope": scope
    }))
    .expect("claims");
    Principal {
        claims,
        scope: Scope::parse(scope).expect("scope"),
    }
}

/// The protected resource a request is for (RFC 9728 §1): the audience its tokens carry (RFC 8707), the path
/// of its metadata document and the scope its challenges name. The MCP endpoint is [`Resource::mcp`]; each
/// gateway route is one more.
#[derive(Debug, Clone, Copy)]
pub struct Resource<'a> {
    /// The resource identifier.
    pub url: &'a str,
    /// Path of its RFC 9728 document on this origin.
    pub metadata_path: &'a str,
    /// Named in the `scope` of a 401 challenge (RFC 9728 §5.1, MCP "Scope Selection Strategy").
    pub default_scope: &'a Scope,
}

impl<'a> Resource<'a> {
    /// The MCP endpoint (built-in server or `--upstream`).
    pub fn mcp(s: &'a AppState) -> Self {
        Self {
            url: &s.routes.mcp_url,
            metadata_path: &s.routes.prm,
            default_scope: &s.authz.config().default_scope,
        }
    }
}

/// The challenge for this resource.
pub fn challenge(s: &AppState) -> BearerChallenge {
    challenge_for(s, Resource::mcp(s))
}

/// The challenge for resource `r`.
pub fn challenge_for(s: &AppState, r: Resource<'_>) -> BearerChallenge {
    BearerChallenge {
        resource_metadata: Some(s.routes.url(r.metadata_path)),
        scope: Some(r.default_scope.to_string()),
        ..Default::default()
    }
}

/// 401 for a missing or bad token.
pub fn unauthorized(s: &AppState, error: Option<&str>) -> Response {
    unauthorized_for(s, Resource::mcp(s), error)
}

/// 401 for a missing or bad token at resource `r`.
pub fn unauthorized_for(s: &AppState, r: Resource<'_>, error: Option<&str>) -> Response {
    let mut c = challenge_for(s, r);
    let description = match error {
        Some(desc) => {
            c = c.with_error(ErrorCode::InvalidToken, desc);
            desc
        }
        None => "a bearer access token is required",
    };
    bearer_error(StatusCode::UNAUTHORIZED, &c, description)
}

/// 403 for a token without `needed`.
pub fn insufficient_scope(s: &AppState, needed: &Scope) -> Response {
    insufficient_scope_for(s, Resource::mcp(s), needed)
}

/// 403 for a token without `needed` at resource `r`.
pub fn insufficient_scope_for(s: &AppState, r: Resource<'_>, needed: &Scope) -> Response {
    let mut c = challenge_for(s, r).with_error(
        ErrorCode::InsufficientScope,
        format!("this request needs scope {needed}"),
    );
    c.scope = Some(needed.to_string());
    bearer_error(
        StatusCode::FORBIDDEN,
        &c,
        &format!("this request needs scope {needed}"),
    )
}

static LAST_KEY_RELOAD: AtomicI64 = AtomicI64::new(0);

/// Authenticates a request to the MCP endpoint.
pub async fn authenticate(s: &AppState, headers: &HeaderMap) -> Result<Arc<Principal>, Response> {
    authenticate_for(s, Resource::mcp(s), headers).await
}

/// Authenticates a request to resource `r`: a token whose audience is another resource is refused (RFC 8707
/// §2, RFC 9068 §4), cached or not.
pub async fn authenticate_for(
    s: &AppState,
    r: Resource<'_>,
    headers: &HeaderMap,
) -> Result<Arc<Principal>, Response> {
    let unauthorized = |s: &AppState, e: Option<&str>| unauthorized_for(s, r, e);
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(if headers.contains_key(header::AUTHORIZATION) {
            unauthorized(s, Some("send exactly one Authorization header"))
        } else {
            unauthorized(s, None)
        });
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .and_then(|(scheme, t)| scheme.eq_ignore_ascii_case("bearer").then(|| t.trim()));
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(unauthorized(s, None));
    };
    let now = s.authz.now();
    // Verified-token cache (see `token_cache`): a hit skips the signature check but never the revocation check.
    let key = TokenCache::<Arc<Principal>>::key(token);
    let principal = match s.token_cache.get(&key, now) {
        // The cache is shared by every resource of this server: the audience is checked on every hit.
        Some(p) if !p.claims.aud.contains(r.url) => {
            return Err(unauthorized(s, Some(&TokenError::Audience.to_string())));
        }
        Some(p) => p,
        None => {
            let claims = verify(s, r, token, now).await?;
            let scope = Scope::parse(claims.scope.as_deref().unwrap_or("")).unwrap_or_default();
            let p = Arc::new(Principal { claims, scope });
            s.token_cache.insert(key, p.claims.exp, p.clone(), now);
            p
        }
    };
    if s.revocations
        .is_revoked(&principal.claims.jti, principal.claims.sid.as_deref())
    {
        return Err(unauthorized(s, Some(&TokenError::Revoked.to_string())));
    }
    Ok(principal)
}

/// Full verification of a token not in the cache (RFC 9068 §4), reloading the key ring at most every 10 s
/// when the `kid` is unknown.
async fn verify(
    s: &AppState,
    r: Resource<'_>,
    token: &str,
    now: i64,
) -> Result<AccessClaims, Response> {
    let (issuer, resource) = (&s.routes.issuer, r.url);
    let mut result = access_token::verify(&s.authz.keys(), token, issuer, resource, now);
    if matches!(result, Err(TokenError::Jws(JwsError::UnknownKey))) {
        // Maybe a key rotated by another instance: reload, at most once every 10 s.
        let last = LAST_KEY_RELOAD.load(Ordering::Relaxed);
        if now - last >= 10
            && LAST_KEY_RELOAD
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            if let Err(e) = s.authz.reload_keys().await {
                tracing::warn!(error = %e, "key reload failed");
            }
            result = access_token::verify(&s.authz.keys(), token, issuer, resource, now);
        }
    }
    result.map_err(|e| unauthorized_for(s, r, Some(&e.to_string())))
}
