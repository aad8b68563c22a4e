//! The harness's smoke test: the test IdP does what the federation tests will rely on, driven by a plain client
//! (this file) instead of Portcullis.

use super::{jwt_parts, IdpClient, IdpConfig, TestIdp, ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE};
use crate::support::{browser, enc, http, pkce, Pkce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Read as _;
use std::time::{Duration, Instant};

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const CLIENT: &str = "portcullis";
const SECRET: &str = "portcullis idp secret";

/// The authorization request (OIDC Core §3.1.2.1 with RFC 7636 §4.3; a nonce only with `openid`, which
/// oidc-provider insists on).
fn authorize_url(meta: &Value, client_id: &str, scope: &str, state: &str, pkce: &Pkce) -> String {
    let nonce = if scope.split(' ').any(|s| s == "openid") {
        format!("&nonce=n-{state}")
    } else {
        String::new()
    };
    format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&scope={}&state={state}{nonce}\
         &code_challenge={}&code_challenge_method=S256",
        meta["authorization_endpoint"].as_str().unwrap(),
        enc(client_id),
        enc(REDIRECT),
        enc(scope),
        pkce.challenge
    )
}

fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// POST to the token endpoint with client_secret_basic (RFC 6749 §2.3.1); the status and the JSON body.
async fn token(meta: &Value, client_id: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = http()
        .post(meta["token_endpoint"].as_str().unwrap())
        .basic_auth(client_id, Some(SECRET))
        .form(form)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

async fn userinfo(meta: &Value, access: &str) -> (StatusCode, Value) {
    let resp = http()
        .get(meta["userinfo_endpoint"].as_str().unwrap())
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Signs in through the IdP's pages: the code and its PKCE verifier.
async fn authorize(idp: &TestIdp, meta: &Value, client_id: &str, scope: &str) -> (String, String) {
    let pkce = pkce();
    let state = pkce.verifier[..16].to_owned();
    let url = authorize_url(meta, client_id, scope, &state, &pkce);
    let location = idp
        .login_and_consent(&browser(), &url, "carol@example.com")
        .await;
    assert!(location.starts_with(REDIRECT), "{location}");
    let q = query(&location);
    assert_eq!(q.get("state"), Some(&state), "{location}");
    assert_eq!(
        q.get("iss").map(String::as_str),
        Some(idp.issuer()),
        "RFC 9207"
    );
    let code = q
        .get("code")
        .unwrap_or_else(|| panic!("no code: {location}"));
    (code.clone(), pkce.verifier)
}

/// Signs in through the IdP's pages and exchanges the code: the token response.
async fn code_flow(idp: &TestIdp, meta: &Value, client_id: &str, scope: &str) -> Value {
    let (code, verifier) = authorize(idp, meta, client_id, scope).await;
    let (status, body) = token(
        meta,
        client_id,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}\n{}", idp.log());
    body
}

/// A P-256 key from 32 random bytes, and its public JWK (RFC 7518 §6.2.1) with `kid` "client-key".
fn client_key() -> (SigningKey, Value) {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    let key = SigningKey::from_slice(&bytes).unwrap();
    let point = key.verifying_key().to_encoded_point(false);
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": "client-key", "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
        "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
    });
    (key, jwk)
}

/// A private_key_jwt client assertion (RFC 7523 §2.2, §3; OIDC Core §9) for `aud`.
fn client_assertion(key: &SigningKey, client_id: &str, aud: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let b64 = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let signed = format!(
        "{}.{}",
        b64(json!({"alg": "ES256", "typ": "JWT", "kid": "client-key"})),
        b64(
            json!({"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + 60,
            "jti": pkce().verifier})
        )
    );
    let sig: Signature = key.sign(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

/// Verifies an ES256 compact JWS (RFC 7515, RFC 7518 §3.4) with the key of its `kid` from `jwks`.
fn verify_es256(jwt: &str, jwks: &Value) -> bool {
    let (header, _) = jwt_parts(jwt);
    assert_eq!(header["alg"], "ES256");
    let Some(jwk) = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
    else {
        return false;
    };
    let coord = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    let point = p256::EncodedPoint::from_affine_coordinates(
        coord("x").as_slice().into(),
        coord("y").as_slice().into(),
        false,
    );
    let key = VerifyingKey::from_encoded_point(&point).unwrap();
    let (signed, sig) = jwt.rsplit_once('.').unwrap();
    let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
    key.verify(signed.as_bytes(), &sig).is_ok()
}

#[tokio::test]
async fn test_idp_code_flow_refresh_rotation_revocation_and_token_exchange() {
    if !TestIdp::available() {
        return;
    }
    let idp = TestIdp::start(IdpConfig::default());
    let meta = idp.metadata().await;
    assert_eq!(meta["issuer"], idp.issuer());
    assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
    assert_eq!(meta["code_challenge_methods_supported"][0], "S256");
    assert!(meta["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&TOKEN_EXCHANGE.into()));

    // Code flow with PKCE: access token, refresh token (no offline_access asked) and an ID token.
    let tokens = code_flow(&idp, &meta, CLIENT, "openid email profile groups").await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().expect("a refresh token");
    let (header, claims) = jwt_parts(tokens["id_token"].as_str().unwrap());
    assert_eq!(header["alg"], "RS256");
    let kids = idp.jwks_kids().await;
    assert!(kids.contains(&header["kid"].as_str().unwrap().to_owned()));
    assert_eq!(claims["iss"], idp.issuer());
    assert_eq!(claims["aud"], CLIENT);
    assert_eq!(claims["sub"], "carol");
    assert!(claims["nonce"].as_str().unwrap().starts_with("n-"));
    assert_eq!(claims["email"], "carol@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["groups"][0], "eng");

    let (status, info) = userinfo(&meta, &access).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["sub"], "carol");
    assert_eq!(info["preferred_username"], "carol");

    // Refresh rotates the refresh token (RFC 6749 §6, OAuth 2.1 §4.3.1).
    let (status, refreshed) = token(
        &meta,
        CLIENT,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    let refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();
    let access = refreshed["access_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh, tokens["refresh_token"].as_str().unwrap());

    // Token exchange (RFC 8693 §2.1): a JWT access token (RFC 9068) for the audience, same subject.
    let audience = "https://upstream.example/mcp";
    let (status, exchanged) = token(
        &meta,
        CLIENT,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", &access),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("audience", audience),
        ],
    )
    .await;
    assert_eq!(status, 200, "{exchanged}\n{}", idp.log());
    assert_eq!(exchanged["issued_token_type"], ACCESS_TOKEN_TYPE);
    let (header, at) = jwt_parts(exchanged["access_token"].as_str().unwrap());
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(at["aud"], audience);
    assert_eq!(at["sub"], "carol");
    assert_eq!(at["iss"], idp.issuer());
    let (status, _) = token(
        &meta,
        CLIENT,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", "not-a-token"),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("audience", audience),
        ],
    )
    .await;
    assert_eq!(status, 400, "an unknown subject token is refused");

    // Key rotation: all new kids; the refresh token from before still works and its ID token has a new kid.
    let rotated = idp.rotate_keys().await;
    let now = idp.jwks_kids().await;
    assert_eq!(now, rotated);
    assert!(now.iter().all(|k| !kids.contains(k)), "{kids:?} -> {now:?}");
    let (status, after) = token(
        &meta,
        CLIENT,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(status, 200, "{after}\n{}", idp.log());
    let (header, _) = jwt_parts(after["id_token"].as_str().unwrap());
    assert!(now.contains(&header["kid"].as_str().unwrap().to_owned()));
    let refresh = after["refresh_token"].as_str().unwrap().to_owned();

    // Delay: every response waits.
    idp.set_delay(400).await;
    let t = Instant::now();
    idp.metadata().await;
    assert!(t.elapsed() >= Duration::from_millis(400));
    idp.set_delay(0).await;

    // Revoking the user: refresh gets invalid_grant (RFC 6749 §5.2), the access token dies at userinfo.
    let access = after["access_token"].as_str().unwrap().to_owned();
    idp.revoke_user("carol").await;
    let (status, err) = token(
        &meta,
        CLIENT,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"], "invalid_grant");
    assert_eq!(userinfo(&meta, &access).await.0, 401);
}

#[tokio::test]
async fn test_idp_es256_plain_oauth2_and_wrong_password() {
    if !TestIdp::available() {
        return;
    }
    let mut es = IdpClient::new("es-client", SECRET, REDIRECT);
    es.id_token_signed_response_alg = Some("ES256".to_owned());
    let mut config = IdpConfig::default();
    config.clients.push(es);
    let idp = TestIdp::start(config);
    let meta = idp.metadata().await;

    // ES256 ID tokens, verifiable with the JWKS.
    let tokens = code_flow(&idp, &meta, "es-client", "openid email").await;
    let jwks: Value = http()
        .get(meta["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(verify_es256(tokens["id_token"].as_str().unwrap(), &jwks));

    // Plain OAuth 2.0 (no openid): tokens but no ID token, and userinfo refuses an access token without openid.
    let plain = code_flow(&idp, &meta, CLIENT, "email profile").await;
    assert!(plain.get("id_token").is_none(), "{plain}");
    assert!(plain["refresh_token"].is_string(), "{plain}");
    let (status, _) = userinfo(&meta, plain["access_token"].as_str().unwrap()).await;
    assert_eq!(
        status, 403,
        "insufficient_scope (RFC 6750 §3.1): userinfo needs openid"
    );

    // A wrong password shows the login form again with an error.
    let pkce = pkce();
    let url = authorize_url(&meta, CLIENT, "openid", "s", &pkce);
    let b = browser();
    let first = b.get(&url).send().await.unwrap();
    let location = first.headers()["location"].to_str().unwrap();
    let login = first.url().join(location).unwrap().to_string();
    let page = b.get(&login).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("id=\"password\""), "{page}");
    let resp = b
        .post(format!("{login}/login"))
        .form(&[("login", "carol"), ("password", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.unwrap().contains("id=\"error\""));
}

#[tokio::test]
async fn test_idp_private_key_jwt_client() {
    if !TestIdp::available() {
        return;
    }
    let (key, jwk) = client_key();
    let mut client = IdpClient::new("pkjwt-client", "", REDIRECT);
    client.token_endpoint_auth_method = "private_key_jwt".to_owned();
    client.jwks = Some(json!({"keys": [jwk]}));
    let mut config = IdpConfig::default();
    config.clients.push(client);
    let idp = TestIdp::start(config);
    let meta = idp.metadata().await;
    let (code, verifier) = authorize(&idp, &meta, "pkjwt-client", "openid email").await;
    let token_endpoint = meta["token_endpoint"].as_str().unwrap();
    let post = |assertion: String| {
        let form = [
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.clone()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("code_verifier", verifier.clone()),
            ("client_id", "pkjwt-client".to_owned()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
            ),
            ("client_assertion", assertion),
        ];
        http().post(token_endpoint).form(&form).send()
    };
    // Signed by another key: invalid_client (RFC 6749 §5.2), and the code is not consumed.
    let (other, _) = client_key();
    let resp = post(client_assertion(&other, "pkjwt-client", idp.issuer()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // The issuer as the audience (RFC 7523bis; oidc-provider also takes the token endpoint).
    let resp = post(client_assertion(&key, "pkjwt-client", idp.issuer()))
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}\n{}", idp.log());
    assert!(
        body["id_token"].is_string() && body["refresh_token"].is_string(),
        "{body}"
    );
}
