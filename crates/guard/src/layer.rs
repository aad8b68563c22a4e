//! The tower middleware: [`GuardLayer`] wraps any `Service<http::Request<B>>` whose response body is an
//! `http_body::Body<Data = Bytes>` (an axum `Router`, rmcp's `StreamableHttpService`, a hyper service) in a
//! [`GuardService`] that admits every request through an [`Admit`] (for [`Guard`]: [`Guard::authenticate`]):
//! refused requests get the refusal's response and never reach the inner service; accepted ones carry the
//! verified token in their extensions ([`VerifiedToken`] for a [`Guard`]). Responses are
//! `http::Response<axum::body::Body>`.

use crate::guard::{Guard, VerifiedToken};
use axum::body::{Body, HttpBody};
use axum::BoxError;
use bytes::Bytes;
use http::{Extensions, HeaderMap, Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// What [`GuardService`] asks of the protected resource it fronts: admit a request (putting what handlers
/// read into its extensions), or the response refusing it. [`Guard`] is one; `portcullis serve` has one per
/// protected resource (the MCP endpoint, each gateway route) over the same [`crate::BearerCheck`].
pub trait Admit: Clone + Send + Sync + 'static {
    /// Authenticates a request from its `headers`; on success inserts the verified token into `extensions`.
    fn admit<'a>(
        &'a self,
        headers: &'a HeaderMap,
        extensions: &'a mut Extensions,
    ) -> impl Future<Output = Result<(), Response<Body>>> + Send + 'a;
}

impl Guard {
    /// The tower layer: wrap any `Service<http::Request<B>>` (an axum `Router`, rmcp's
    /// `StreamableHttpService`, …) with it.
    pub fn layer(&self) -> GuardLayer {
        GuardLayer::new(self.clone())
    }
}

impl Admit for Guard {
    /// Inserts a [`VerifiedToken`] (the type external servers read).
    async fn admit(
        &self,
        headers: &HeaderMap,
        extensions: &mut Extensions,
    ) -> Result<(), Response<Body>> {
        match self.authenticate(headers).await {
            Ok(token) => {
                extensions.insert::<VerifiedToken>(VerifiedToken::clone(&token));
                Ok(())
            }
            Err(refusal) => {
                tracing::debug!(%refusal, "request refused");
                Err(self.refusal_response(&refusal))
            }
        }
    }
}

/// Adds the guard in front of a service.
#[derive(Debug, Clone)]
pub struct GuardLayer<G = Guard> {
    guard: G,
}

impl<G> GuardLayer<G> {
    /// A layer for `guard`.
    pub fn new(guard: G) -> Self {
        Self { guard }
    }
}

impl<S, G: Clone> tower::Layer<S> for GuardLayer<G> {
    type Service = GuardService<S, G>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            inner,
            guard: self.guard.clone(),
        }
    }
}

/// A service behind the guard.
#[derive(Debug, Clone)]
pub struct GuardService<S, G = Guard> {
    inner: S,
    guard: G,
}

impl<S, G, B, RB> tower::Service<Request<B>> for GuardService<S, G>
where
    S: tower::Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    G: Admit,
    B: Send + 'static,
    RB: HttpBody<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The clone is fresh (not necessarily ready); the ready one goes into the future (tower's
        // "clone and swap" pattern), so a service that reserves capacity in poll_ready is honoured.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            if let Err(refused) = guard.admit(&parts.headers, &mut parts.extensions).await {
                return Ok(refused);
            }
            let resp = inner.call(Request::from_parts(parts, body)).await?;
            Ok(resp.map(Body::new))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GuardConfig;
    use crate::testing::Issuer;
    use axum::routing::post;
    use axum::{Extension, Router};
    use http::{header, StatusCode};
    use portcullis_authz::access_token::AccessClaims;
    use portcullis_authz::clock::FixedClock;
    use std::sync::Arc;
    use tower::ServiceExt;

    const RS: &str = "http://127.0.0.1:9/mcp";
    const PRM: &str = "http://127.0.0.1:9/.well-known/oauth-protected-resource/mcp";

    struct Fixture {
        issuer: Issuer,
        clock: Arc<FixedClock>,
        guard: Guard,
        app: Router,
    }

    async fn fixture() -> Fixture {
        let issuer = Issuer::start().await;
        let clock = Arc::new(FixedClock::new(1000));
        let config = GuardConfig::new(&issuer.issuer, RS)
            .unwrap()
            .require_scope("mcp:tools")
            .unwrap()
            .with_clock(clock.clone());
        let guard = Guard::new(config).unwrap();
        let app = Router::new()
            .route(
                "/mcp",
                post(|Extension(t): Extension<VerifiedToken>| async move { t.claims.sub }),
            )
            .layer(guard.layer())
            .merge(guard.metadata_router());
        Fixture {
            issuer,
            clock,
            guard,
            app,
        }
    }

    struct Answer {
        status: StatusCode,
        challenge: Option<String>,
        body: String,
        headers: http::HeaderMap,
    }

    async fn call(app: &Router, auth: &[&str]) -> Answer {
        let mut req = Request::post("/mcp");
        for a in auth {
            req = req.header(header::AUTHORIZATION, *a);
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let challenge = headers
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        Answer {
            status,
            challenge,
            body: String::from_utf8(body.to_vec()).unwrap(),
            headers,
        }
    }

    fn bearer(t: &str) -> String {
        format!("Bearer {t}")
    }

    fn token(f: &Fixture, edit: impl FnOnce(&mut AccessClaims)) -> String {
        let mut c = f.issuer.claims(RS, "mcp:tools", 1000);
        edit(&mut c);
        f.issuer.mint(0, &c)
    }

    #[tokio::test]
    async fn valid_token_reaches_the_handler_with_its_claims() {
        let f = fixture().await;
        let a = call(&f.app, &[&bearer(&token(&f, |_| {}))]).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(a.body, "user-1");
        // Scheme is case-insensitive (RFC 6750 §2.1 / RFC 9110 §11.1).
        let a = call(&f.app, &[&format!("bEaReR {}", token(&f, |_| {}))]).await;
        assert_eq!(a.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn every_refusal_has_its_exact_status_and_challenge() {
        let f = fixture().await;
        let no_token = format!(r#"Bearer scope="mcp:tools", resource_metadata="{PRM}""#);
        // No token, a Basic header, an empty bearer: 401 without error (RFC 6750 §3.1).
        for auth in [&[][..], &["Basic dXNlcjpwYXNz"][..], &["Bearer "][..]] {
            let a = call(&f.app, auth).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{auth:?}");
            assert_eq!(a.challenge.as_deref(), Some(no_token.as_str()), "{auth:?}");
            assert_eq!(a.headers[header::CACHE_CONTROL], "no-store");
            let body: serde_json::Value = serde_json::from_str(&a.body).unwrap();
            assert_eq!(body["error"], "invalid_token");
        }
        let invalid = |desc: &str| {
            format!(
                r#"Bearer error="invalid_token", error_description="{desc}", scope="mcp:tools", resource_metadata="{PRM}""#
            )
        };
        let cases = [
            (
                token(&f, |c| {
                    c.aud = portcullis_authz::access_token::Audience::One(
                        "http://127.0.0.1:9/other".into(),
                    )
                }),
                "token is not for this resource (aud)",
            ),
            (
                token(&f, |c| c.iss = "http://127.0.0.1:1".into()),
                "token was issued by another issuer",
            ),
            (token(&f, |c| c.exp = 990), "token expired"),
            (token(&f, |c| c.nbf = Some(1100)), "token is not yet valid"),
            ("garbage".to_owned(), "malformed token"),
        ];
        for (t, desc) in cases {
            let a = call(&f.app, &[&bearer(&t)]).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{desc}");
            assert_eq!(a.challenge.as_deref(), Some(invalid(desc).as_str()));
            let body: serde_json::Value = serde_json::from_str(&a.body).unwrap();
            assert_eq!(body["error"], "invalid_token");
            assert_eq!(body["error_description"], desc);
        }
        // Two Authorization headers.
        let t = bearer(&token(&f, |_| {}));
        let a = call(&f.app, &[&t, &t]).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            a.challenge.as_deref(),
            Some(invalid("send exactly one Authorization header").as_str())
        );
        // A valid token without the scope: 403 naming the scope needed.
        let a = call(
            &f.app,
            &[&bearer(&token(&f, |c| c.scope = Some("other".into())))],
        )
        .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        assert_eq!(
            a.challenge.as_deref(),
            Some(format!(r#"Bearer error="insufficient_scope", error_description="this request needs scope mcp:tools", scope="mcp:tools", resource_metadata="{PRM}""#).as_str())
        );
        let body: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(body["error"], "insufficient_scope");
        let a = call(&f.app, &[&bearer(&token(&f, |c| c.scope = None))]).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn a_token_in_the_query_is_ignored() {
        let f = fixture().await;
        let t = token(&f, |_| {});
        let req = Request::post(format!("/mcp?access_token={t}"))
            .body(Body::empty())
            .unwrap();
        let resp = f.app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(!resp.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("error="));
    }

    #[tokio::test]
    async fn key_rotation_unknown_kid_and_the_rate_limit() {
        let f = fixture().await;
        assert_eq!(
            call(&f.app, &[&bearer(&token(&f, |_| {}))]).await.status,
            StatusCode::OK
        );
        assert_eq!(f.issuer.hits("/jwks.json"), 1);
        // Rotation at the issuer: a token signed with the new key is accepted after one refetch.
        f.issuer.rotate();
        f.clock.advance(20);
        let mut c = f.issuer.claims(RS, "mcp:tools", 1020);
        c.jti = "j2".into();
        let new = f.issuer.mint(1, &c);
        assert_eq!(call(&f.app, &[&bearer(&new)]).await.status, StatusCode::OK);
        assert_eq!(f.issuer.hits("/jwks.json"), 2);
        // Forged kids: 401, and no fetch within the interval.
        let forged = new.replacen(
            new.split('.').next().unwrap(),
            &portcullis_proto::b64::encode(r#"{"alg":"ES256","typ":"at+jwt","kid":"nope"}"#),
            1,
        );
        for _ in 0..5 {
            let a = call(&f.app, &[&bearer(&forged)]).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED);
            assert!(a
                .challenge
                .unwrap()
                .contains(r#"error_description="unknown key id""#));
        }
        assert_eq!(f.issuer.hits("/jwks.json"), 2);
    }

    #[tokio::test]
    async fn cache_honours_exp_and_key_removal() {
        let f = fixture().await;
        let t = bearer(&token(&f, |c| c.exp = 1100));
        assert_eq!(call(&f.app, &[&t]).await.status, StatusCode::OK);
        assert_eq!(f.guard.cached_tokens(), 1);
        assert_eq!(call(&f.app, &[&t]).await.status, StatusCode::OK);
        assert_eq!(f.issuer.hits("/jwks.json"), 1);
        let long = bearer(&token(&f, |c| {
            c.exp = 5000;
            c.jti = "long".into();
        }));
        assert_eq!(call(&f.app, &[&long]).await.status, StatusCode::OK);
        assert_eq!(f.guard.cached_tokens(), 2);
        // The issuer stops publishing the key; once the set is refetched (max_age) the cached token fails.
        f.issuer.rotate();
        f.issuer.drop_key(0);
        f.clock.advance(crate::config::DEFAULT_MAX_AGE);
        let a = call(&f.app, &[&long]).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
        assert_eq!(f.issuer.hits("/jwks.json"), 2);
        // Expiry: the first token is past exp+leeway now.
        assert_eq!(call(&f.app, &[&t]).await.status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn no_keys_answers_503_and_the_metadata_is_served() {
        let f = fixture().await;
        f.issuer.set_failing(true);
        let a = call(&f.app, &[&bearer(&token(&f, |_| {}))]).await;
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(a.headers[header::RETRY_AFTER], "5");
        assert!(a.challenge.is_none());
        let resp = f
            .app
            .clone()
            .oneshot(
                Request::get("/.well-known/oauth-protected-resource/mcp")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(doc["resource"], RS);
        assert_eq!(
            doc["authorization_servers"],
            serde_json::json!([f.issuer.issuer])
        );
        assert_eq!(doc["scopes_supported"], serde_json::json!(["mcp:tools"]));
        assert_eq!(
            doc["bearer_methods_supported"],
            serde_json::json!(["header"])
        );
    }
}
