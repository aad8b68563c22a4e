//! The bearer-token guard of the MCP endpoint and the gateway routes (RFC 6750 §2.1, §3; RFC 9068 §4; RFC 9728
//! §5.1; MCP authorization "Token Handling"): the one check of `portcullis_guard::BearerCheck` (token only from
//! the `Authorization` header; signature, `typ`, `iss`, `aud` (this resource), `exp`/`nbf`; revocation on
//! every request; verified tokens cached by hash until their `exp`), answered per resource here. Failures answer 401 with
//! `WWW-Authenticate: Bearer resource_metadata="…", scope="…"` (plus `error="invalid_token"` when a token was
//! sent); missing scope answers 403 `insufficient_scope` naming the scope needed.

use crate::error::{bearer_error, json_error};
use crate::state::AppState;
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::Response;
use portcullis_guard::{Admit, GuardLayer, Refusal, VerifiedToken};
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
            default_scope: &s.authz.core().config().default_scope,
        }
    }
}

/// The challenge for resource `r`.
pub fn challenge_for(s: &AppState, r: Resource<'_>) -> BearerChallenge {
    BearerChallenge {
        resource_metadata: Some(s.routes.url(r.metadata_path)),
        scope: Some(r.default_scope.to_string()),
        ..Default::default()
    }
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

/// A protected resource of this server, owned, for [`ResourceGuard`] (a gateway route's).
#[derive(Debug, Clone)]
pub struct OwnedResource {
    /// The resource identifier.
    pub url: String,
    /// Path of its RFC 9728 document on this origin.
    pub metadata_path: String,
    /// Named in the `scope` of a 401 challenge.
    pub default_scope: Scope,
}

/// The guard of one protected resource of this server, for [`portcullis_guard::GuardLayer`]: admits a
/// request with [`authenticate_for`], putting an `Arc<VerifiedToken>` into its extensions (handlers read
/// `Extension<Arc<VerifiedToken>>`; one reference-count increment per request), or answers the resource's own
/// 401/403.
#[derive(Debug, Clone)]
pub struct ResourceGuard {
    state: Arc<AppState>,
    /// `None`: the MCP endpoint ([`Resource::mcp`]).
    route: Option<Arc<OwnedResource>>,
}

impl ResourceGuard {
    /// The guard of the MCP endpoint (built-in server or `--upstream`).
    pub fn mcp(state: Arc<AppState>) -> Self {
        Self { state, route: None }
    }

    /// The guard of a gateway route's resource.
    pub fn route(state: Arc<AppState>, r: Resource<'_>) -> Self {
        let route = OwnedResource {
            url: r.url.to_owned(),
            metadata_path: r.metadata_path.to_owned(),
            default_scope: r.default_scope.clone(),
        };
        Self {
            state,
            route: Some(Arc::new(route)),
        }
    }

    /// The layer putting this guard in front of a route's handlers.
    pub fn layer(self) -> GuardLayer<Self> {
        GuardLayer::new(self)
    }

    /// The resource guarded.
    pub fn resource(&self) -> Resource<'_> {
        match &self.route {
            Some(r) => Resource {
                url: &r.url,
                metadata_path: &r.metadata_path,
                default_scope: &r.default_scope,
            },
            None => Resource::mcp(&self.state),
        }
    }
}

impl Admit for ResourceGuard {
    async fn admit(
        &self,
        headers: &HeaderMap,
        extensions: &mut Extensions,
    ) -> Result<(), Response> {
        let token = authenticate_for(&self.state, self.resource(), headers).await?;
        extensions.insert(token);
        Ok(())
    }
}

/// Authenticates a request to resource `r` with the one bearer check ([`AppState::bearer`]): a token whose
/// audience is another resource is refused (RFC 8707 §2, RFC 9068 §4), cached or not.
pub async fn authenticate_for(
    s: &AppState,
    r: Resource<'_>,
    headers: &HeaderMap,
) -> Result<Arc<VerifiedToken>, Response> {
    s.bearer
        .check(headers, r.url, s.authz.core().now())
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
        let now = s.authz.core().now();
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
            preferred_username: None,
            email: None,
            idp: None,
            idp_name: None,
        };
        let mut json = serde_json::to_value(claims).unwrap();
        json["sid"] = serde_json::json!(grant);
        let ring = s.authz.keys().ring();
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
        let ok = authenticate_for(&s, Resource::mcp(&s), &headers)
            .await
            .unwrap();
        assert_eq!(ok.claims.grant_id.as_deref(), Some("grant-1"));
        assert_eq!(s.bearer.cached_tokens(), 1);
        s.revocations
            .insert_revoked_grant("grant-1", s.authz.core().now() + 600);
        // Refused on the cache hit, with the exact challenge of a revoked token.
        let refused = authenticate_for(&s, Resource::mcp(&s), &headers)
            .await
            .unwrap_err();
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
