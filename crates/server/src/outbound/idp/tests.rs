//! [`IdpClient`] against a fake identity provider: an axum server on `127.0.0.1:0` inside each test, counting
//! hits per path and recording what the token endpoint receives.
#![allow(clippy::unwrap_used)]

use super::settings::ManualTicker;
use super::*;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use portcullis_authz::clock::FixedClock;
use portcullis_authz::federation::tokens::{decode_basic, JWT_BEARER_ASSERTION};
use portcullis_authz::federation::{ClientAuthMethod, ProviderName, ProviderSettings};
use portcullis_authz::jwt;
use portcullis_authz::keys::{self, KeyRing};
use portcullis_authz::random::OsRandom;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const NOW: i64 = 1_800_000_000;
const CLIENT_ID: &str = "my client:1";
const CLIENT_SECRET: &str = "s3cr:t/+ é";

/// A request the fake provider received: its headers and form fields.
type Seen = (HeaderMap, Vec<(String, String)>);

/// What the fake provider serves and has seen.
#[derive(Default)]
struct Idp {
    base: Mutex<String>,
    hits: Mutex<HashMap<String, usize>>,
    down: AtomicBool,
    delay_ms: AtomicU64,
    jwks: Mutex<String>,
    token_reply: Mutex<(u16, String)>,
    seen: Mutex<Vec<Seen>>,
}

impl Idp {
    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    fn base(&self) -> String {
        self.base.lock().unwrap().clone()
    }

    fn discovery(&self, issuer: &str) -> String {
        let b = self.base();
        serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{b}/authorize"),
            "token_endpoint": format!("{b}/token"),
            "userinfo_endpoint": format!("{b}/userinfo"),
            "jwks_uri": format!("{b}/jwks"),
            "revocation_endpoint": format!("{b}/revoke"),
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["ES256", "RS256"],
            "token_endpoint_auth_methods_supported":
                ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        })
        .to_string()
    }
}

fn json(status: u16, body: String) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body,
    )
        .into_response()
}

/// Counts the hit, then answers 503 when down, after the configured delay.
async fn gate(idp: &Idp, path: &str) -> Option<Response> {
    *idp.hits.lock().unwrap().entry(path.to_owned()).or_default() += 1;
    let delay = idp.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    idp.down
        .load(Ordering::SeqCst)
        .then(|| json(503, r#"{"error":"temporarily_unavailable"}"#.into()))
}

async fn discovery(State(idp): State<Arc<Idp>>) -> Response {
    if let Some(r) = gate(&idp, "/.well-known/openid-configuration").await {
        return r;
    }
    json(200, idp.discovery(&idp.base()))
}

async fn jwks(State(idp): State<Arc<Idp>>) -> Response {
    if let Some(r) = gate(&idp, "/jwks").await {
        return r;
    }
    let body = idp.jwks.lock().unwrap().clone();
    json(200, body)
}

async fn token(State(idp): State<Arc<Idp>>, req: Request) -> Response {
    if let Some(r) = gate(&idp, "/token").await {
        return r;
    }
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap();
    let form = form_urlencoded::parse(&body).into_owned().collect();
    idp.seen.lock().unwrap().push((headers, form));
    let (status, body) = idp.token_reply.lock().unwrap().clone();
    json(status, body)
}

async fn revoke(State(idp): State<Arc<Idp>>, req: Request) -> Response {
    gate(&idp, "/revoke").await;
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap();
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let refused = form
        .iter()
        .any(|(k, v)| k == "token_type_hint" && v == "id_token");
    idp.seen.lock().unwrap().push((headers, form));
    if refused {
        return json(400, r#"{"error":"unsupported_token_type"}"#.into());
    }
    StatusCode::OK.into_response()
}

async fn userinfo(State(idp): State<Arc<Idp>>, headers: HeaderMap) -> Response {
    gate(&idp, "/userinfo").await;
    idp.seen.lock().unwrap().push((headers.clone(), Vec::new()));
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        Some("Bearer good") => json(200, r#"{"sub":"u1","email":"u1@example.com"}"#.into()),
        Some("Bearer jwt") => ([("content-type", "application/jwt")], "a.b.c").into_response(),
        _ => (
            StatusCode::UNAUTHORIZED,
            [(
                "www-authenticate",
                r#"Bearer error="invalid_token", error_description="expired""#,
            )],
        )
            .into_response(),
    }
}

async fn emails(State(idp): State<Arc<Idp>>, headers: HeaderMap) -> Response {
    gate(&idp, "/user/emails").await;
    idp.seen.lock().unwrap().push((headers, Vec::new()));
    json(
        200,
        r#"[{"email":"a@example.com","primary":true,"verified":true}]"#.into(),
    )
}

/// A JSON document of `len` bytes, streamed (no `Content-Length`) when `chunked`.
fn big(len: usize, chunked: bool) -> Response {
    let doc = format!(r#"{{"pad":"{}"}}"#, "x".repeat(len));
    if !chunked {
        return json(200, doc);
    }
    let chunks: Vec<Result<String, std::io::Error>> = doc
        .as_bytes()
        .chunks(8192)
        .map(|c| Ok(String::from_utf8(c.to_vec()).unwrap()))
        .collect();
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap()
}

/// Starts the fake provider; its issuer is `http://127.0.0.1:<port>`.
async fn start() -> Arc<Idp> {
    let idp = Arc::new(Idp::default());
    *idp.token_reply.lock().unwrap() = (
        200,
        r#"{"access_token":"at-1","token_type":"Bearer","expires_in":300,"refresh_token":"rt-1"}"#
            .into(),
    );
    let redirect =
        |to: &'static str| move || async move { (StatusCode::FOUND, [("location", to)]) };
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/token", post(token))
        .route("/userinfo", get(userinfo))
        .route("/revoke", post(revoke))
        .route("/user/emails", get(emails))
        .route(
            "/moved/.well-known/openid-configuration",
            get(redirect("/.well-known/openid-configuration")),
        )
        .route(
            "/big/.well-known/openid-configuration",
            get(|| async { big(300 * 1024, true) }),
        )
        .route(
            "/declared/.well-known/openid-configuration",
            get(|| async { big(300 * 1024, false) }),
        )
        .route(
            "/.well-known/oauth-authorization-server/as",
            get(|State(idp): State<Arc<Idp>>| async move {
                json(200, idp.discovery(&format!("{}/as", idp.base())))
            }),
        )
        .route(
            "/html/.well-known/openid-configuration",
            get(|| async { ([("content-type", "text/html")], "<html></html>") }),
        )
        .with_state(idp.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    *idp.base.lock().unwrap() = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    idp
}

fn client(ticker: &Arc<ManualTicker>, timeout: Duration) -> IdpClient {
    let ring = Arc::new(ring());
    let signer: Arc<AssertionSigner> = Arc::new(move |claims: &ClientAssertionClaims| {
        portcullis_authz::federation::tokens::sign_client_assertion(&ring, claims)
    });
    let settings = IdpSettings {
        request_timeout: timeout,
        ticker: ticker.clone(),
        clock: Arc::new(FixedClock::new(NOW)),
        ..IdpSettings::default()
    };
    IdpClient::new(settings, Some(signer)).unwrap()
}

fn config(name: &str, issuer: &str, method: ClientAuthMethod) -> ProviderConfig {
    ProviderSettings {
        name: name.into(),
        issuer: Some(issuer.into()),
        client_id: CLIENT_ID.into(),
        client_secret: Some(CLIENT_SECRET.into()),
        token_endpoint_auth_method: Some(method),
        ..ProviderSettings::default()
    }
    .into_config()
    .unwrap()
}

fn ring() -> KeyRing {
    KeyRing::from_records(&[keys::generate(&OsRandom, NOW)]).unwrap()
}

async fn setup() -> (Arc<Idp>, Arc<ManualTicker>, IdpClient, ProviderConfig) {
    let idp = start().await;
    let ticker = Arc::new(ManualTicker::default());
    let c = client(&ticker, Duration::from_secs(5));
    let cfg = config("corp", &idp.base(), ClientAuthMethod::ClientSecretBasic);
    (idp, ticker, c, cfg)
}

const DISCOVERY: &str = "/.well-known/openid-configuration";

#[tokio::test]
async fn discovery_is_cached_for_an_hour() {
    let (idp, ticker, c, cfg) = setup().await;
    let first = c.metadata(&cfg).await.unwrap();
    assert_eq!(first.token_endpoint, format!("{}/token", idp.base()));
    let second = c.metadata(&cfg).await.unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(idp.hits(DISCOVERY), 1, "the second call does not fetch");
    ticker.advance(Duration::from_secs(3601));
    c.metadata(&cfg).await.unwrap();
    assert_eq!(idp.hits(DISCOVERY), 2, "fetched again after an hour");
}

#[tokio::test]
async fn concurrent_misses_are_coalesced() {
    let (idp, _ticker, c, cfg) = setup().await;
    idp.delay_ms.store(200, Ordering::SeqCst);
    let calls = (0..10).map(|_| {
        let (c, cfg) = (c.clone(), cfg.clone());
        tokio::spawn(async move { c.metadata(&cfg).await })
    });
    for call in futures_util::future::join_all(calls).await {
        call.unwrap().unwrap();
    }
    assert_eq!(idp.hits(DISCOVERY), 1);
}

#[tokio::test]
async fn a_fetch_completes_when_its_caller_goes_away() {
    let (idp, _ticker, c, cfg) = setup().await;
    idp.delay_ms.store(200, Ordering::SeqCst);
    let abandoned = tokio::time::timeout(Duration::from_millis(50), c.metadata(&cfg)).await;
    assert!(abandoned.is_err(), "the caller gave up");
    tokio::time::sleep(Duration::from_millis(400)).await;
    idp.delay_ms.store(0, Ordering::SeqCst);
    c.metadata(&cfg).await.unwrap();
    assert_eq!(
        idp.hits(DISCOVERY),
        1,
        "the abandoned fetch finished and was cached"
    );
}

#[tokio::test]
async fn stale_metadata_is_served_while_the_provider_is_down() {
    let (idp, ticker, c, cfg) = setup().await;
    let fresh = c.metadata(&cfg).await.unwrap();
    idp.down.store(true, Ordering::SeqCst);
    ticker.advance(Duration::from_secs(3601));
    let stale = c.metadata(&cfg).await.unwrap();
    assert!(Arc::ptr_eq(&fresh, &stale));
    assert_eq!(idp.hits(DISCOVERY), 2, "it tried");
    c.metadata(&cfg).await.unwrap();
    assert_eq!(idp.hits(DISCOVERY), 2, "no retry within 30 s of a failure");
    ticker.advance(Duration::from_secs(24 * 3600));
    let err = c.metadata(&cfg).await.unwrap_err();
    assert_eq!(
        err,
        IdpError::BadResponse {
            status: 503,
            reason: "unexpected status".into()
        }
    );
    assert!(err.is_unavailable());
    idp.down.store(false, Ordering::SeqCst);
    ticker.advance(Duration::from_secs(31));
    assert!(
        !Arc::ptr_eq(&c.metadata(&cfg).await.unwrap(), &fresh),
        "recovered"
    );
}

#[tokio::test]
async fn unreachable_and_slow_providers() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let ticker = Arc::new(ManualTicker::default());
    let c = client(&ticker, Duration::from_millis(300));
    let cfg = config(
        "gone",
        &format!("http://127.0.0.1:{port}"),
        ClientAuthMethod::ClientSecretBasic,
    );
    let err = c.metadata(&cfg).await.unwrap_err();
    assert!(matches!(err, IdpError::Unreachable { .. }), "{err:?}");
    assert!(err.is_unavailable());

    let idp = start().await;
    idp.delay_ms.store(3000, Ordering::SeqCst);
    let cfg = config("slow", &idp.base(), ClientAuthMethod::ClientSecretBasic);
    let started = Instant::now();
    let err = c.metadata(&cfg).await.unwrap_err();
    assert!(matches!(err, IdpError::Timeout { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (idp, _ticker, c, _) = setup().await;
    let cfg = config(
        "moved",
        &format!("{}/moved", idp.base()),
        ClientAuthMethod::ClientSecretBasic,
    );
    let err = c.metadata(&cfg).await.unwrap_err();
    assert!(
        matches!(err, IdpError::BadResponse { status: 302, .. }),
        "{err:?}"
    );
    assert_eq!(
        idp.hits(DISCOVERY),
        0,
        "the redirect's target was never fetched"
    );
}

#[tokio::test]
async fn rfc_8414_metadata_when_openid_configuration_is_404() {
    let (idp, _ticker, c, _) = setup().await;
    let cfg = config(
        "as",
        &format!("{}/as", idp.base()),
        ClientAuthMethod::ClientSecretBasic,
    );
    let md = c.metadata(&cfg).await.unwrap();
    assert_eq!(
        md.issuer.as_deref(),
        Some(format!("{}/as", idp.base()).as_str())
    );
    assert_eq!(
        oauth_metadata_url("https://idp.example/tenant/"),
        Some("https://idp.example/.well-known/oauth-authorization-server/tenant".into())
    );
}

#[tokio::test]
async fn bodies_are_capped_and_must_be_json() {
    let (idp, _ticker, c, _) = setup().await;
    for path in ["big", "declared"] {
        let cfg = config(
            path,
            &format!("{}/{path}", idp.base()),
            ClientAuthMethod::ClientSecretBasic,
        );
        assert_eq!(
            c.metadata(&cfg).await.unwrap_err(),
            IdpError::TooLarge { limit: 256 * 1024 },
            "{path}"
        );
    }
    let cfg = config(
        "html",
        &format!("{}/html", idp.base()),
        ClientAuthMethod::ClientSecretBasic,
    );
    assert!(matches!(
        c.metadata(&cfg).await.unwrap_err(),
        IdpError::BadResponse { status: 200, .. }
    ));
}

#[tokio::test]
async fn http_is_refused_off_loopback() {
    let ticker = Arc::new(ManualTicker::default());
    let c = client(&ticker, Duration::from_secs(1));
    let mut md = ProviderMetadata::from_config(
        &ProviderSettings {
            name: "plain".into(),
            kind: Some(ProviderKind::OAuth2),
            authorization_endpoint: Some("https://idp.example/authorize".into()),
            token_endpoint: Some("https://idp.example/token".into()),
            userinfo_endpoint: Some("https://idp.example/userinfo".into()),
            client_id: "c".into(),
            client_secret: Some("s".into()),
            ..ProviderSettings::default()
        }
        .into_config()
        .unwrap(),
    )
    .unwrap();
    md.userinfo_endpoint = Some("http://idp.example/userinfo".into());
    let err = c.userinfo(&md, &Secret::new("good")).await.unwrap_err();
    assert!(matches!(err, IdpError::Insecure { .. }), "{err:?}");
}

/// An ID token signed by `ring` for the fake provider.
fn id_token(idp: &Idp, ring: &KeyRing, kid: Option<&str>, nonce: &str) -> String {
    let claims = serde_json::json!({
        "iss": idp.base(), "sub": "u1", "aud": CLIENT_ID, "exp": NOW + 300, "iat": NOW, "nonce": nonce,
    });
    let kid = kid.unwrap_or(ring.active_kid());
    jwt::sign(
        ring.signing_key(),
        kid,
        "JWT",
        claims.to_string().as_bytes(),
    )
}

#[tokio::test]
async fn unknown_kid_refetches_the_key_set_at_most_every_30_s() {
    let (idp, ticker, c, cfg) = setup().await;
    let (a, b) = (ring(), ring());
    *idp.jwks.lock().unwrap() = a.jwks_json().to_owned();
    let md = c.metadata(&cfg).await.unwrap();
    let pending = PendingLogin::new(ProviderName::parse("corp").unwrap(), &OsRandom, NOW);
    let nonce = pending.nonce.expose();

    let claims = c
        .validate_id_token(&id_token(&idp, &a, None, nonce), &cfg, &md, &pending)
        .await
        .unwrap();
    assert_eq!(claims.sub, "u1");
    assert_eq!(idp.hits("/jwks"), 1);

    // The provider rotates to key b just after that fetch: the unknown kid is looked up at once.
    *idp.jwks.lock().unwrap() = b.jwks_json().to_owned();
    let signed_by_b = id_token(&idp, &b, None, nonce);
    c.validate_id_token(&signed_by_b, &cfg, &md, &pending)
        .await
        .unwrap();
    assert_eq!(idp.hits("/jwks"), 2, "one refetch for the unknown kid");

    // Within 30 s of that forced refetch, another unknown kid is not looked up.
    let err = c
        .validate_id_token(&id_token(&idp, &a, None, nonce), &cfg, &md, &pending)
        .await;
    assert_eq!(
        err.unwrap_err(),
        IdpError::Validation(FederationError::UnknownKey)
    );
    assert_eq!(idp.hits("/jwks"), 2);

    // A flood of forged kids: one refetch per 30 s at most.
    ticker.advance(Duration::from_secs(31));
    for i in 0..20 {
        let forged = id_token(&idp, &b, Some(&format!("forged-{i}")), nonce);
        let err = c.validate_id_token(&forged, &cfg, &md, &pending).await;
        assert_eq!(
            err.unwrap_err(),
            IdpError::Validation(FederationError::UnknownKey)
        );
    }
    assert_eq!(idp.hits("/jwks"), 3);
}

#[tokio::test]
async fn basic_authentication_encodes_special_characters() {
    let (idp, _ticker, c, cfg) = setup().await;
    let md = c.metadata(&cfg).await.unwrap();
    let tokens = c.refresh(&cfg, &md, &Secret::new("rt-0")).await.unwrap();
    assert_eq!(tokens.access_token.expose(), "at-1");
    assert_eq!(tokens.expires_at, Some(NOW + 300));
    let seen = idp.seen.lock().unwrap();
    let (headers, form) = &seen[0];
    let auth = headers["authorization"].to_str().unwrap();
    assert_eq!(
        decode_basic(auth),
        Some((CLIENT_ID.to_owned(), CLIENT_SECRET.to_owned()))
    );
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth.strip_prefix("Basic ").unwrap())
        .unwrap();
    // RFC 6749 §2.3.1 / Appendix B: form-urlencoded before base64.
    assert_eq!(raw, b"my+client%3A1:s3cr%3At%2F%2B+%C3%A9");
    assert_eq!(headers["accept"], "application/json");
    assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
    assert_eq!(
        form,
        &vec![
            ("grant_type".to_owned(), "refresh_token".to_owned()),
            ("refresh_token".to_owned(), "rt-0".to_owned())
        ]
    );
}

#[tokio::test]
async fn invalid_grant_is_surfaced_as_such() {
    let (idp, _ticker, c, cfg) = setup().await;
    let md = c.metadata(&cfg).await.unwrap();
    *idp.token_reply.lock().unwrap() = (
        400,
        r#"{"error":"invalid_grant","error_description":"session revoked"}"#.into(),
    );
    let err = c
        .refresh(&cfg, &md, &Secret::new("rt-0"))
        .await
        .unwrap_err();
    assert!(err.is_invalid_grant());
    assert_eq!(
        err,
        IdpError::Upstream {
            error: "invalid_grant".into(),
            description: Some("session revoked".into())
        }
    );
    assert!(!err.to_string().contains("rt-0"));
    // A provider quoting the refused token does not get it into our errors or logs.
    *idp.token_reply.lock().unwrap() = (
        400,
        r#"{"error":"invalid_grant","error_description":"refresh token rt-secret-0123456789 is revoked"}"#.into(),
    );
    let err = c
        .refresh(&cfg, &md, &Secret::new("rt-secret-0123456789"))
        .await
        .unwrap_err();
    assert!(err.is_invalid_grant());
    assert_eq!(
        err,
        IdpError::Upstream {
            error: "invalid_grant".into(),
            description: Some("[redacted]".into())
        }
    );
    *idp.token_reply.lock().unwrap() = (401, r#"{"error":"invalid_client"}"#.into());
    let err = c
        .refresh(&cfg, &md, &Secret::new("rt-0"))
        .await
        .unwrap_err();
    assert!(!err.is_invalid_grant());
    assert_eq!(err.code(), "idp_error");
}

#[tokio::test]
async fn token_exchange_sends_the_rfc_8693_fields() {
    let (idp, _ticker, c, _) = setup().await;
    let cfg = config("corp", &idp.base(), ClientAuthMethod::ClientSecretPost);
    let md = c.metadata(&cfg).await.unwrap();
    *idp.token_reply.lock().unwrap() = (
        200,
        r#"{"access_token":"x-1","token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}"#.into(),
    );
    let tokens = c
        .token_exchange(
            &cfg,
            &md,
            &Secret::new("subject-at"),
            Some("https://mcp.vendor.example"),
        )
        .await
        .unwrap();
    assert_eq!(tokens.access_token.expose(), "x-1");
    let seen = idp.seen.lock().unwrap();
    let (headers, form) = &seen[0];
    assert!(headers.get("authorization").is_none());
    let form: HashMap<_, _> = form.iter().cloned().collect();
    assert_eq!(
        form["grant_type"],
        "urn:ietf:params:oauth:grant-type:token-exchange"
    );
    assert_eq!(form["subject_token"], "subject-at");
    assert_eq!(
        form["subject_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(form["audience"], "https://mcp.vendor.example");
    assert_eq!(form["client_id"], CLIENT_ID);
    assert_eq!(form["client_secret"], CLIENT_SECRET);
}

#[tokio::test]
async fn code_exchange_with_private_key_jwt() {
    let (idp, _ticker, c, _) = setup().await;
    let cfg = config("corp", &idp.base(), ClientAuthMethod::PrivateKeyJwt);
    let md = c.metadata(&cfg).await.unwrap();
    let pending = PendingLogin::new(ProviderName::parse("corp").unwrap(), &OsRandom, NOW);
    let tokens = c
        .exchange_code(
            &cfg,
            &md,
            &Secret::new("code-1"),
            &pending,
            "https://as.example/idp/corp/callback",
        )
        .await
        .unwrap();
    assert_eq!(tokens.refresh_token.as_ref().unwrap().expose(), "rt-1");
    let seen = idp.seen.lock().unwrap();
    let form: HashMap<_, _> = seen[0].1.iter().cloned().collect();
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["code"], "code-1");
    assert_eq!(form["code_verifier"], pending.verifier.expose());
    assert_eq!(form["client_assertion_type"], JWT_BEARER_ASSERTION);
    let assertion = jwt::decode(&form["client_assertion"]).unwrap();
    assert_eq!(assertion.header.alg, "ES256");
    assert!(!form.contains_key("client_secret"));
}

#[tokio::test]
async fn userinfo_and_github_emails() {
    let (idp, _ticker, c, cfg) = setup().await;
    let md = c.metadata(&cfg).await.unwrap();
    let info = c.userinfo(&md, &Secret::new("good")).await.unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info).unwrap();
    assert_eq!(info["sub"], "u1");
    assert_eq!(
        c.userinfo(&md, &Secret::new("stale")).await.unwrap_err(),
        IdpError::Upstream {
            error: "invalid_token".into(),
            description: Some("expired".into())
        }
    );
    assert!(matches!(
        c.userinfo(&md, &Secret::new("jwt")).await.unwrap_err(),
        IdpError::BadResponse { .. }
    ));
    let mut gh = (*md).clone();
    gh.emails_endpoint = Some(format!("{}/user/emails", idp.base()));
    let emails = c.github_emails(&gh, &Secret::new("good")).await.unwrap();
    assert!(String::from_utf8(emails).unwrap().contains("a@example.com"));
    let seen = idp.seen.lock().unwrap();
    let (headers, _) = seen.last().unwrap();
    assert_eq!(headers["accept"], "application/vnd.github+json");
    assert_eq!(headers["authorization"], "Bearer good");
    assert!(headers["user-agent"]
        .to_str()
        .unwrap()
        .starts_with("portcullis/"));
}

#[tokio::test]
async fn revocation_at_the_provider() {
    let (idp, _ticker, c, cfg) = setup().await;
    let md = c.metadata(&cfg).await.unwrap();
    let revoked = c
        .revoke(&cfg, &md, &Secret::new("rt-9"), Some("refresh_token"))
        .await;
    assert_eq!(revoked, Ok(true), "an empty 200 is success");
    {
        let seen = idp.seen.lock().unwrap();
        let (headers, form) = &seen[0];
        assert!(decode_basic(headers["authorization"].to_str().unwrap()).is_some());
        let form: HashMap<_, _> = form.iter().cloned().collect();
        assert_eq!(form["token"], "rt-9");
        assert_eq!(form["token_type_hint"], "refresh_token");
    }
    assert_eq!(
        c.revoke(&cfg, &md, &Secret::new("rt-9"), Some("id_token"))
            .await,
        Err(IdpError::Upstream {
            error: "unsupported_token_type".into(),
            description: None
        })
    );
    let mut without = (*md).clone();
    without.revocation_endpoint = None;
    assert_eq!(
        c.revoke(&cfg, &without, &Secret::new("rt-9"), None).await,
        Ok(false)
    );
}
