//! The fake IdP's endpoints (see the parent module for what each does) and the ID tokens it makes.

use super::keys;
use super::{
    ClientAuth, CodeGrant, FakeIdpConfig, Inner, IssParam, Misbehaviour, Mode, Shared, StateParam,
    TokenRequest, ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE,
};
use axum::body::Bytes;
use axum::extract::{RawQuery, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub(super) fn router(shared: Arc<Shared>) -> Router {
    let p = shared.config.issuer_path.clone();
    Router::new()
        .route(
            &format!("{p}/.well-known/openid-configuration"),
            get(discovery),
        )
        .route(&format!("{p}/jwks"), get(jwks))
        .route(&format!("{p}/authorize"), get(authorize))
        .route(&format!("{p}/token"), post(token))
        .route(&format!("{p}/userinfo"), get(userinfo).post(userinfo))
        .layer(middleware::from_fn_with_state(shared.clone(), slow))
        .with_state(shared)
}

/// [`Mode::Slow`] and [`Mode::SlowOn`].
async fn slow(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let delay = match shared.lock().behaviour.mode.clone() {
        Mode::Slow(d) => Some(d),
        Mode::SlowOn(suffix, d) if request.uri().path().ends_with(&suffix) => Some(d),
        _ => None,
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    next.run(request).await
}

/// OIDC Discovery §3 metadata, RFC 8414 §2 names.
async fn discovery(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let mut inner = shared.lock();
    inner.received.discovery += 1;
    let b = &inner.behaviour;
    let base = &shared.issuer;
    let mut doc = json!({
        "issuer": b.discovery_issuer.clone().unwrap_or_else(|| base.clone()),
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", TOKEN_EXCHANGE],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "scopes_supported": ["openid", "email", "profile", "groups", "offline_access"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "email", "email_verified",
                             "preferred_username", "name", "groups"],
        "authorization_response_iss_parameter_supported": b.advertise_iss,
    });
    let obj = doc.as_object_mut().unwrap();
    for (k, v) in &b.discovery_patch {
        if v.is_null() {
            obj.remove(k);
        } else {
            obj.insert(k.clone(), v.clone());
        }
    }
    Json(doc)
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let mut inner = shared.lock();
    inner.received.jwks += 1;
    Json(
        inner
            .behaviour
            .jwks_override
            .clone()
            .unwrap_or_else(|| inner.keys.jwks()),
    )
}

/// RFC 6749 §4.1.1 / OIDC Core §3.1.2.1 in, §4.1.2 (+ RFC 9207 `iss`) or §4.1.2.1 out, without any page.
async fn authorize(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let params = parse_form(query.unwrap_or_default().as_bytes());
    let mut inner = shared.lock();
    inner.received.authorize.push(params.clone());
    let cfg = &shared.config;
    if field(&params, "client_id") != Some(cfg.client_id.as_str()) {
        return (StatusCode::BAD_REQUEST, "unknown client_id").into_response();
    }
    let Some(redirect_uri) = field(&params, "redirect_uri") else {
        return (StatusCode::BAD_REQUEST, "no redirect_uri").into_response();
    };
    if !cfg.redirect_uris.is_empty() && !cfg.redirect_uris.iter().any(|u| u == redirect_uri) {
        return (StatusCode::BAD_REQUEST, "unregistered redirect_uri").into_response();
    }
    let Ok(mut target) = url::Url::parse(redirect_uri) else {
        return (StatusCode::BAD_REQUEST, "bad redirect_uri").into_response();
    };
    let b = inner.behaviour.clone();
    let challenge = field(&params, "code_challenge");
    let method = field(&params, "code_challenge_method");
    let outcome = if let Some(error) = &b.authorize_error {
        Err(error.clone())
    } else if field(&params, "response_type") != Some("code") {
        Err("unsupported_response_type".to_owned())
    } else if challenge.is_none() || method != Some("S256") {
        Err("invalid_request".to_owned())
    } else {
        let code = random_token("code");
        let grant = CodeGrant {
            redirect_uri: redirect_uri.to_owned(),
            challenge: challenge.unwrap_or_default().to_owned(),
            nonce: field(&params, "nonce").map(str::to_owned),
            scope: field(&params, "scope").map(str::to_owned),
        };
        inner.codes.insert(code.clone(), grant);
        Ok(code)
    };
    {
        let mut q = target.query_pairs_mut();
        match &outcome {
            Ok(code) => q.append_pair("code", code),
            Err(error) => q.append_pair("error", error),
        };
        match (&b.state, field(&params, "state")) {
            (StateParam::Same, Some(state)) => {
                q.append_pair("state", state);
            }
            (StateParam::Other(other), _) => {
                q.append_pair("state", other);
            }
            _ => {}
        }
        match &b.iss {
            IssParam::Correct => {
                q.append_pair("iss", &shared.issuer);
            }
            IssParam::Other(other) => {
                q.append_pair("iss", other);
            }
            IssParam::Absent => {}
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
}

/// RFC 6749 §3.2: the grants, after client authentication.
async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&body);
    let request = TokenRequest {
        form: form.clone(),
        authorization: header_str(&headers, header::AUTHORIZATION),
        content_type: header_str(&headers, header::CONTENT_TYPE),
    };
    let mut inner = shared.lock();
    inner.received.token.push(request.clone());
    if let Err(response) = authenticate(&shared.config, &request) {
        return *response;
    }
    match field(&form, "grant_type") {
        Some("authorization_code") => code_grant(&shared, &mut inner, &form),
        Some("refresh_token") => refresh_grant(&shared, &mut inner, &form),
        Some(TOKEN_EXCHANGE) => exchange_grant(&mut inner, &form),
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
}

/// RFC 6749 §2.3.1 and OIDC Core §9: only the configured method is accepted, and only one method at a time.
fn authenticate(cfg: &FakeIdpConfig, request: &TokenRequest) -> Result<(), Box<Response>> {
    let form_id = request.field("client_id");
    let form_secret = request.field("client_secret");
    let ok = match cfg.client_auth {
        ClientAuth::ClientSecretBasic => {
            form_secret.is_none()
                && form_id.is_none_or(|id| id == cfg.client_id)
                && request.basic_credentials()
                    == Some((cfg.client_id.clone(), cfg.client_secret.clone()))
        }
        ClientAuth::ClientSecretPost => {
            request.authorization.is_none()
                && form_id == Some(cfg.client_id.as_str())
                && form_secret == Some(cfg.client_secret.as_str())
        }
        ClientAuth::None => {
            request.authorization.is_none()
                && form_secret.is_none()
                && form_id == Some(cfg.client_id.as_str())
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Box::new(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        )))
    }
}

/// RFC 6749 §4.1.3 with RFC 7636 §4.6, answered per OIDC Core §3.1.3.3.
fn code_grant(shared: &Shared, inner: &mut Inner, form: &[(String, String)]) -> Response {
    if let Some(error) = inner.behaviour.token_error.clone() {
        return oauth_error(StatusCode::BAD_REQUEST, &error);
    }
    let Some(grant) = field(form, "code").and_then(|c| inner.codes.remove(c)) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let verifier = field(form, "code_verifier").unwrap_or_default();
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if field(form, "redirect_uri") != Some(grant.redirect_uri.as_str())
        || computed != grant.challenge
    {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let openid = grant
        .scope
        .as_deref()
        .is_some_and(|s| s.split(' ').any(|s| s == "openid"));
    let id_token = if openid {
        id_token(
            shared,
            inner,
            grant.nonce.as_deref(),
            &inner.behaviour.id_token,
        )
    } else {
        None
    };
    let with_refresh = inner.behaviour.issue_refresh_token;
    tokens(inner, grant.scope, id_token, with_refresh)
}

/// RFC 6749 §6, rotating; OIDC Core §12.2 ID token (no nonce), with the same misbehaviour.
fn refresh_grant(shared: &Shared, inner: &mut Inner, form: &[(String, String)]) -> Response {
    if let Some(error) = inner.behaviour.refresh_error.clone() {
        return oauth_error(StatusCode::BAD_REQUEST, &error);
    }
    let Some(scope) = field(form, "refresh_token").and_then(|t| inner.refresh_tokens.remove(t))
    else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let id_token = if scope.split(' ').any(|s| s == "openid") {
        id_token(shared, inner, None, &inner.behaviour.id_token)
    } else {
        None
    };
    tokens(inner, Some(scope), id_token, true)
}

/// RFC 8693 §2: an opaque access token for the `audience`, from an access token of this IdP.
fn exchange_grant(inner: &mut Inner, form: &[(String, String)]) -> Response {
    if let Some(error) = inner.behaviour.exchange_error.clone() {
        return oauth_error(StatusCode::BAD_REQUEST, &error);
    }
    if field(form, "subject_token_type") != Some(ACCESS_TOKEN_TYPE) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let Some(scope) =
        field(form, "subject_token").and_then(|t| inner.access_tokens.get(t).cloned())
    else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let Some(audience) = field(form, "audience") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_target");
    };
    let access_token = random_token(&format!("xchg-{audience}"));
    inner
        .access_tokens
        .insert(access_token.clone(), scope.clone());
    no_store(json!({
        "access_token": access_token,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": inner.behaviour.access_token_ttl,
        "scope": scope,
    }))
}

/// A successful token response (RFC 6749 §5.1) with new opaque tokens.
fn tokens(
    inner: &mut Inner,
    scope: Option<String>,
    id_token: Option<String>,
    with_refresh: bool,
) -> Response {
    let scope = scope.unwrap_or_default();
    let access_token = random_token("at");
    inner
        .access_tokens
        .insert(access_token.clone(), scope.clone());
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": inner.behaviour.access_token_ttl,
        "scope": scope,
    });
    if with_refresh {
        let refresh_token = random_token("rt");
        inner.refresh_tokens.insert(refresh_token.clone(), scope);
        body["refresh_token"] = json!(refresh_token);
    }
    if let Some(id_token) = id_token {
        body["id_token"] = json!(id_token);
    }
    no_store(body)
}

/// OIDC Core §5.3: the claims for an access token this IdP issued (and still knows).
async fn userinfo(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let authorization = header_str(&headers, header::AUTHORIZATION);
    let mut inner = shared.lock();
    inner.received.userinfo.push(authorization.clone());
    let b = inner.behaviour.clone();
    if let Some(status) = b.userinfo_status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return oauth_error(status, "invalid_token");
    }
    let known = authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .is_some_and(|t| inner.access_tokens.contains_key(t));
    if !known {
        let challenge = "Bearer error=\"invalid_token\"";
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge)],
        )
            .into_response();
    }
    let mut claims = b.claims.clone();
    claims.insert("sub".to_owned(), json!(b.userinfo_sub.unwrap_or(b.subject)));
    Json(Value::Object(claims)).into_response()
}

/// The ID token (OIDC Core §2) for the current behaviour's account, broken as `m` says.
pub(super) fn id_token(
    shared: &Shared,
    inner: &Inner,
    nonce: Option<&str>,
    m: &Misbehaviour,
) -> Option<String> {
    let b = &inner.behaviour;
    let client_id = shared.config.client_id.as_str();
    let now = now();
    let mut claims = json!({
        "iss": shared.issuer, "sub": b.subject, "aud": client_id,
        "iat": now, "exp": now + 600, "auth_time": now,
    });
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(nonce);
    }
    obj_mut(&mut claims).extend(b.claims.clone());
    match m {
        Misbehaviour::WrongAudience => claims["aud"] = json!("another-client"),
        Misbehaviour::Expired => {
            claims["iat"] = json!(now - 1200);
            claims["exp"] = json!(now - 600);
        }
        Misbehaviour::IatInFuture => {
            claims["iat"] = json!(now + 3600);
            claims["exp"] = json!(now + 7200);
        }
        Misbehaviour::WrongNonce => claims["nonce"] = json!("not-the-nonce"),
        Misbehaviour::MissingNonce => {
            obj_mut(&mut claims).remove("nonce");
        }
        Misbehaviour::WrongIssuer => claims["iss"] = json!("https://idp.attacker.example"),
        Misbehaviour::MissingAzpWithSeveralAud => {
            claims["aud"] = json!([client_id, "another-audience"]);
            obj_mut(&mut claims).remove("azp");
        }
        Misbehaviour::WrongAzp => {
            claims["aud"] = json!([client_id, "another-audience"]);
            claims["azp"] = json!("another-audience");
        }
        Misbehaviour::MissingSub => {
            obj_mut(&mut claims).remove("sub");
        }
        Misbehaviour::NoIdToken => return None,
        Misbehaviour::Garbage => return Some("this-is-not-a-jwt".to_owned()),
        _ => {}
    }
    Some(sign(shared, inner, &claims, m))
}

/// Signs the claims, or forges the signature as `m` says.
fn sign(shared: &Shared, inner: &Inner, claims: &Value, m: &Misbehaviour) -> String {
    let alg = inner.behaviour.signing_alg;
    let key = inner.keys.current(alg);
    match m {
        Misbehaviour::SignedByOtherKey => keys::jws(inner.keys.other(alg), key.kid(), claims),
        Misbehaviour::UnknownKid => keys::jws(inner.keys.other(alg), "unknown-kid", claims),
        Misbehaviour::AlgNone => keys::unsecured(claims),
        Misbehaviour::Hs256WithClientSecret => {
            keys::hs256(&shared.config.client_secret, Some(key.kid()), claims)
        }
        Misbehaviour::TamperedPayload => {
            let jws = keys::jws(key, key.kid(), claims);
            let mut parts: Vec<&str> = jws.split('.').collect();
            let mut forged = claims.clone();
            forged["sub"] = json!("someone-else");
            let payload = URL_SAFE_NO_PAD.encode(forged.to_string());
            parts[1] = &payload;
            parts.join(".")
        }
        _ => keys::jws(key, key.kid(), claims),
    }
}

fn obj_mut(v: &mut Value) -> &mut Map<String, Value> {
    v.as_object_mut().unwrap()
}

pub(super) fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    i64::try_from(secs).unwrap()
}

/// `<prefix>-<32 random bytes, base64url>`.
fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    format!("{prefix}-{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// An OAuth error response (RFC 6749 §5.2).
fn oauth_error(status: StatusCode, error: &str) -> Response {
    let mut response = no_store(json!({ "error": error }));
    *response.status_mut() = status;
    if status == StatusCode::UNAUTHORIZED {
        let challenge = format!("Basic realm=\"fake\", error=\"{error}\"");
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge.parse().unwrap());
    }
    response
}

/// JSON with `Cache-Control: no-store` (RFC 6749 §5.1).
fn no_store(body: Value) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn parse_form(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

pub(super) fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `Basic base64(form-encode(id) ":" form-encode(secret))` back to `(id, secret)` (RFC 6749 §2.3.1).
pub(super) fn basic_credentials(authorization: &str) -> Option<(String, String)> {
    let (scheme, b64) = authorization.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id), form_decode(secret)))
}

/// application/x-www-form-urlencoded decoding of one value: `+` is a space, `%XX` a byte, anything else itself.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (other, _) => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
