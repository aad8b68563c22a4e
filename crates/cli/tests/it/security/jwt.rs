//! Forged access tokens at the MCP endpoint: every one is a 401. Rules: security notes "Access tokens and the
//! MCP endpoint"; RFC 8725 §2.1–2.3, §3.1 (fixed algorithm, no `none`, no algorithm confusion), RFC 9068 §2.1
//! (`typ` `at+jwt`) and §4 (validation), RFC 6750 §2.1 and §5.3 (bearer in the header, not the query string),
//! RFC 7519 §4.1.4–4.1.5; incident: jsonwebtoken CVE-2026-25537 (time claims as strings).
//!
//! The server's own signing key is read from its database so that each forgery differs from a valid token in
//! exactly one way (a token signed with the real key and correct claims is the positive control).

use crate::support::{self, jwt_part, mcp_post, Server, TOOLS_LIST};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use portcullis_authz::keys::KeyRing;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The running server's key ring, read from its database.
async fn ring(s: &Server) -> KeyRing {
    let store = portcullis_store::open(&s.db, &portcullis_store::StoreOptions::default())
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    KeyRing::from_records(&store.signing_keys(now).await.unwrap()).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.payload.signature` with an ES256 signature by `key`.
fn es256(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig: Signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&sig.to_bytes()))
}

/// HMAC-SHA256 (RFC 2104), for the algorithm-confusion forgery.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let ih = Sha256::digest([&inner[..], msg].concat());
    Sha256::digest([&outer[..], &ih[..]].concat()).to_vec()
}

/// A server, a valid token's header and claims, and the ring.
struct Setup {
    s: Server,
    header: Value,
    claims: Value,
    ring: KeyRing,
}

async fn setup() -> Setup {
    let s = support::start();
    let t = support::grant(&s, "&state=x&scope=mcp%3Atools").await;
    assert_eq!(support::mcp_status(&s, &t.access).await, StatusCode::OK);
    let ring = ring(&s).await;
    Setup {
        header: jwt_part(&t.access, 0),
        claims: jwt_part(&t.access, 1),
        ring,
        s,
    }
}

impl Setup {
    fn sign(&self, header: &Value, claims: &Value) -> String {
        es256(self.ring.signing_key().as_p256(), header, claims)
    }

    async fn refused(&self, what: &str, token: &str) {
        let p = mcp_post(&self.s.mcp_here(), Some(token), TOOLS_LIST).await;
        assert_eq!(
            p.status,
            StatusCode::UNAUTHORIZED,
            "{what} was accepted: {}",
            p.body
        );
        let challenge = support::www_authenticate(&p);
        assert!(challenge.starts_with("Bearer"), "{what}: {challenge}");
        super::assert_no_leak(what, &p.body);
    }

    fn with_claim(&self, name: &str, value: Value) -> Value {
        let mut c = self.claims.clone();
        c[name] = value;
        c
    }

    fn with_header(&self, name: &str, value: Value) -> Value {
        let mut h = self.header.clone();
        h[name] = value;
        h
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Positive control: a token re-signed with the server's key and unchanged claims is accepted, so every
/// refusal below is caused by the one thing each forgery changes.
#[tokio::test]
async fn control_resigned_valid_token_is_accepted() {
    let t = setup().await;
    let token = t.sign(&t.header, &t.claims);
    assert_eq!(support::mcp_status(&t.s, &token).await, StatusCode::OK);
}

/// Rule: `alg: none` (any spelling, with or without a signature) is a 401 (RFC 8725 §3.1; RFC 7518 §3.6).
#[tokio::test]
async fn alg_none_is_refused() {
    let t = setup().await;
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = b64(t.with_header("alg", json!(alg)).to_string().as_bytes());
        let c = b64(t.claims.to_string().as_bytes());
        t.refused(&format!("alg {alg}, no signature"), &format!("{h}.{c}."))
            .await;
        t.refused(&format!("alg {alg}, no third part"), &format!("{h}.{c}"))
            .await;
        let real = t.sign(&t.header, &t.claims);
        let sig = real.rsplit('.').next().unwrap();
        t.refused(
            &format!("alg {alg}, real signature"),
            &format!("{h}.{c}.{sig}"),
        )
        .await;
    }
}

/// Rule: no algorithm confusion — an HS256 token whose HMAC key is the public JWK (its JSON, its `x`, the
/// JWKS document) is a 401 (RFC 8725 §2.1, §3.1).
#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let t = setup().await;
    let jwks = t.ring.jwks_json().to_owned();
    let doc: Value = serde_json::from_str(&jwks).unwrap();
    let jwk = doc["keys"][0].clone();
    let mut secrets: Vec<Vec<u8>> = vec![jwks.into_bytes(), jwk.to_string().into_bytes()];
    for coord in ["x", "y"] {
        let text = jwk[coord].as_str().unwrap();
        secrets.push(text.as_bytes().to_vec());
        secrets.push(URL_SAFE_NO_PAD.decode(text).unwrap());
    }
    let h = b64(t.with_header("alg", json!("HS256")).to_string().as_bytes());
    let c = b64(t.claims.to_string().as_bytes());
    for secret in secrets {
        let input = format!("{h}.{c}");
        let sig = b64(&hmac_sha256(&secret, input.as_bytes()));
        t.refused("HS256 with public key material", &format!("{input}.{sig}"))
            .await;
    }
}

/// Rule: an unknown `kid`, or the real `kid` with another key's signature, is a 401 (RFC 8725 §3.1; security
/// notes "Access tokens").
#[tokio::test]
async fn unknown_kid_and_foreign_key_are_refused() {
    let t = setup().await;
    let other = SigningKey::from_slice(&[42u8; 32]).unwrap();
    t.refused(
        "unknown kid",
        &es256(
            &other,
            &t.with_header("kid", json!("attacker-key")),
            &t.claims,
        ),
    )
    .await;
    t.refused(
        "real kid, attacker's key",
        &es256(&other, &t.header, &t.claims),
    )
    .await;
    t.refused(
        "real key, unknown kid",
        &t.sign(&t.with_header("kid", json!("attacker-key")), &t.claims),
    )
    .await;
    t.refused(
        "kid path traversal",
        &t.sign(&t.with_header("kid", json!("../../../dev/null")), &t.claims),
    )
    .await;
    t.refused(
        "kid SQL",
        &t.sign(&t.with_header("kid", json!("' OR 1=1 --")), &t.claims),
    )
    .await;
}

/// Rule: headers that carry or point at keys (`jwk`, `jku`, `x5u`, `x5c`) or `crit` are refused, even on a
/// token correctly signed by the server's key (RFC 8725 §3.10; RFC 7515 §4.1.3–4.1.6, §4.1.11).
#[tokio::test]
async fn key_carrying_headers_are_refused() {
    let t = setup().await;
    let jwk: Value = serde_json::from_str::<Value>(t.ring.jwks_json()).unwrap()["keys"][0].clone();
    for (name, value) in [
        ("jwk", jwk),
        ("jku", json!("https://evil.example/jwks.json")),
        ("x5u", json!("https://evil.example/cert.pem")),
        ("x5c", json!(["MIIB"])),
        ("crit", json!(["exp"])),
    ] {
        t.refused(
            &format!("header {name}"),
            &t.sign(&t.with_header(name, value), &t.claims),
        )
        .await;
    }
}

/// Rule: time claims must be numbers — a string-typed `exp`, `nbf` or `iat` is a 401 (jsonwebtoken
/// CVE-2026-25537; RFC 7519 §2 NumericDate).
#[tokio::test]
async fn string_typed_time_claims_are_refused() {
    let t = setup().await;
    let exp = t.claims["exp"].as_i64().unwrap();
    t.refused(
        "string exp",
        &t.sign(&t.header, &t.with_claim("exp", json!(exp.to_string()))),
    )
    .await;
    t.refused(
        "far-future string exp",
        &t.sign(&t.header, &t.with_claim("exp", json!("99999999999"))),
    )
    .await;
    t.refused(
        "float exp",
        &t.sign(&t.header, &t.with_claim("exp", json!(1e300))),
    )
    .await;
    t.refused(
        "null exp",
        &t.sign(&t.header, &t.with_claim("exp", Value::Null)),
    )
    .await;
    t.refused(
        "string nbf",
        &t.sign(&t.header, &t.with_claim("nbf", json!("0"))),
    )
    .await;
    t.refused(
        "string iat",
        &t.sign(&t.header, &t.with_claim("iat", json!("0"))),
    )
    .await;
    let mut no_exp = t.claims.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    t.refused("no exp", &t.sign(&t.header, &no_exp)).await;
}

/// Rule: `typ` must be `at+jwt` (RFC 9068 §2.1, §4; RFC 8725 §3.11) — an ID-token-shaped `JWT` or a missing
/// `typ` is a 401.
#[tokio::test]
async fn wrong_typ_is_refused() {
    let t = setup().await;
    for typ in [
        json!("JWT"),
        json!("jwt"),
        json!("dpop+jwt"),
        json!(""),
        Value::Null,
    ] {
        t.refused(
            &format!("typ {typ}"),
            &t.sign(&t.with_header("typ", typ.clone()), &t.claims),
        )
        .await;
    }
    let mut h = t.header.clone();
    h.as_object_mut().unwrap().remove("typ");
    t.refused("no typ", &t.sign(&h, &t.claims)).await;
}

/// Rule: expired and not-yet-valid tokens are a 401 (RFC 9068 §4; RFC 7519 §4.1.4, §4.1.5).
#[tokio::test]
async fn expired_and_not_yet_valid_are_refused() {
    let t = setup().await;
    let now = now();
    t.refused(
        "expired",
        &t.sign(&t.header, &t.with_claim("exp", json!(now - 120))),
    )
    .await;
    t.refused(
        "nbf in the future",
        &t.sign(&t.header, &t.with_claim("nbf", json!(now + 3600))),
    )
    .await;
    t.refused(
        "iat in the future",
        &t.sign(&t.header, &t.with_claim("iat", json!(now + 3600))),
    )
    .await;
}

/// Rule: wrong `iss` or `aud` is a 401 (RFC 9068 §4; RFC 8707 audience; security notes "Access tokens").
#[tokio::test]
async fn wrong_issuer_or_audience_is_refused() {
    let t = setup().await;
    let iss = t.claims["iss"].as_str().unwrap().to_owned();
    let aud = t.s.mcp.clone();
    for bad in [
        json!("https://evil.example"),
        json!(format!("{iss}/")),
        json!(iss.to_uppercase()),
        Value::Null,
    ] {
        t.refused(
            &format!("iss {bad}"),
            &t.sign(&t.header, &t.with_claim("iss", bad.clone())),
        )
        .await;
    }
    for bad in [
        json!("https://evil.example/mcp"),
        json!(format!("{aud}/")),
        json!([]),
        json!(["https://evil.example/mcp"]),
        json!(iss),
    ] {
        t.refused(
            &format!("aud {bad}"),
            &t.sign(&t.header, &t.with_claim("aud", bad.clone())),
        )
        .await;
    }
}

/// Rule: the bearer token is accepted only in the `Authorization` header — not in the query string or a form
/// body (security notes "Access tokens"; RFC 6750 §5.3, OAuth 2.1 §5.2), and only with the `Bearer` scheme.
#[tokio::test]
async fn token_outside_the_authorization_header_is_refused() {
    let t = setup().await;
    let token = t.sign(&t.header, &t.claims);
    let url = format!("{}?access_token={}", t.s.mcp_here(), token);
    let p = mcp_post(&url, None, TOOLS_LIST).await;
    assert_eq!(
        p.status,
        StatusCode::UNAUTHORIZED,
        "query-string token accepted: {}",
        p.body
    );
    let resp = support::http()
        .post(t.s.mcp_here())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("access_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "form-body token accepted"
    );
    for auth in [
        format!("Basic {token}"),
        format!("Token {token}"),
        token.clone(),
        format!("Bearer  {token} x"),
    ] {
        let resp = support::http()
            .post(t.s.mcp_here())
            .header("content-type", "application/json")
            .header("authorization", auth.clone())
            .body(TOOLS_LIST)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::UNAUTHORIZED,
            "Authorization {auth:.20}… accepted"
        );
    }
    // Truncated, padded and doubled tokens.
    for bad in [
        &token[..token.len() - 2],
        &format!("{token}=="),
        &format!("{token}.{token}"),
        "",
    ] {
        t.refused("mangled token", bad).await;
    }
}
