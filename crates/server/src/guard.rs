//! The bearer-token guard of the MCP endpoint and the gateway routes (RFC 6750 §2.1, §3; RFC 9068 §4; RFC 9728
//! §5.1; MCP authorization "Token Handling"): the one check of `portcullis_guard::BearerCheck` (token only from
//! the `Authorization` header; signature, `typ`, `iss`, `aud` (this resource), `exp`/`nbf`; revocation on
//! every request; verified tokens cached by hash until their `exp`), answered per resource here. Failures answer 401 with
//! `WWW-Authenticate: Bearer resource_metadata="…", scope="…"` (plus `error="invalid_token"` when a token was
//! sent); missing scope answers 403 `insufficient_scope` naming the scope needed.

use crate::error::{bearer_error, json_error};
use crate::state::AppState;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use portcullis_guard::{Refusal, VerifiedToken};
use portcullis_proto::www_authenticate::BearerChallenge;
use portcullis_proto::{ErrorCode, Scope};
use std::sync::Arc;

/// A verified token for unit tests: an access token's claims for `sub` and `client_id` with `scope`, from a fixed
/// test issuer (the gateway modules' tests share it).
#[cfg(test)]
pub(crate) fn test_principal(sub: &str, client_id: &str, scope: &str) -> VerifiedToken {
    let claims: portcullis_authz::access_token::AccessClaims = serde_json::from_value(serde_json::json!({
        "iss": "http://127.0.0.1:1", "sub": sub, "aud": "http://127.0.0.1:1/mcp", "client_id": client_id,
        "exp": 2, "iat": 1, "jti": "j", "scope": scope
    }))
    .expect("claims");
    VerifiedToken::new(claims)
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

/// Authenticates a request to the MCP endpoint.
pub async fn authenticate(
    s: &AppState,
    headers: &HeaderMap,
) -> Result<Arc<VerifiedToken>, Response> {
    authenticate_for(s, Resource::mcp(s), headers).await
}

/// Authenticates a request to resource `r` with the one bearer check ([`AppState::bearer`]): a token whose
/// audience is another resource is refused (RFC 8707 §2, RFC 9068 §4), cached or not.
pub async fn authenticate_for(
    s: &AppState,
    r: Resource<'_>,
    headers: &HeaderMap,
) -> Result<Arc<VerifiedToken>, Response> {
    s.bearer
        .check(headers, r.url, s.authz.now())
        .await
        .map_err(|refusal| refusal_for(s, r, &refusal))
}

/// The answer to `refusal` at resource `r`.
pub fn refusal_for(s: &AppState, r: Resource<'_>, refusal: &Refusal) -> Response {
    match refusal {
        Refusal::MissingToken => unauthorized_for(s, r, None),
        Refusal::InsufficientScope(needed) => insufficient_scope_for(s, r, needed),
        Refusal::KeysUnavailable(e) => {
            // The local key ring always holds the signing key; kept for completeness.
            tracing::warn!(error = %e, "refusing a request: no keys");
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the authorization server's keys are unavailable; try again shortly",
            )
        }
        other => unauthorized_for(s, r, Some(&other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::{parse_issuer, ServerConfig};
    use crate::routes::Routes;
    use axum::http::header;
    use portcullis_authz::access_token::{AccessClaims, Audience, TYP};
    use portcullis_authz::clock::SystemClock;
    use portcullis_authz::jwt;
    use portcullis_authz::random::OsRandom;
    use portcullis_authz::Authz;

    async fn state() -> (tempfile::TempDir, Arc<AppState>) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let store = portcullis_store::open(&url, &Default::default())
            .await
            .unwrap();
        let issuer = parse_issuer("http://127.0.0.1:8080").unwrap();
        let config = ServerConfig::new(issuer.clone());
        let routes = Routes::new(&issuer, &config.mcp_path);
        let authz = Authz::new(
            store,
            Arc::new(SystemClock),
            Arc::new(OsRandom),
            config.authz_config(&routes.issuer, &routes.mcp_url),
        )
        .await
        .unwrap();
        (dir, AppState::new(config, routes, Arc::new(authz)))
    }

    /// A token as minted before the `sid` → `grant_id` rename: the grant id only under `sid`.
    fn old_sid_token(s: &AppState, grant: &str) -> String {
        let now = s.authz.now();
        let claims = AccessClaims {
            iss: s.routes.issuer.clone(),
            sub: "alice".into(),
            aud: Audience::One(s.routes.mcp_url.clone()),
            client_id: "c".into(),
            scope: Some("mcp:tools".into()),
            exp: now + 600,
            iat: now,
            nbf: None,
            jti: "j-old".into(),
            grant_id: None,
        };
        let mut json = serde_json::to_value(claims).unwrap();
        json["sid"] = serde_json::json!(grant);
        let ring = s.authz.keys();
        jwt::sign(
            ring.signing_key(),
            ring.active_kid(),
            TYP,
            json.to_string().as_bytes(),
        )
    }

    #[tokio::test]
    async fn a_token_with_the_old_sid_claim_is_refused_once_its_grant_is_revoked() {
        let (_dir, s) = state().await;
        let mut headers = HeaderMap::new();
        let token = old_sid_token(&s, "grant-1");
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        let ok = authenticate(&s, &headers).await.unwrap();
        assert_eq!(ok.claims.grant_id.as_deref(), Some("grant-1"));
        assert_eq!(s.bearer.cached_tokens(), 1);
        s.revocations
            .insert_revoked_grant("grant-1", s.authz.now() + 600);
        // Refused on the cache hit, with the exact challenge of a revoked token.
        let refused = authenticate(&s, &headers).await.unwrap_err();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        let challenge = refused.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap();
        assert!(
            challenge.contains(r#"error="invalid_token", error_description="token was revoked""#),
            "{challenge}"
        );
    }
}
