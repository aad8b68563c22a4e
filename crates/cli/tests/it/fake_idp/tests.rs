//! The fake IdP itself: its discovery document, a valid code flow whose ID token verifies with its JWKS, and that
//! each misbehaviour really is what its name says.

use super::endpoints::now;
use super::*;
use crate::support::{browser, http, param, pkce, Pkce};
use axum::http::{header, StatusCode};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::signature::{self as sig, RsaPublicKeyComponents, UnparsedPublicKey};

fn b64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

/// Whether `jwt` carries a valid signature by the key of its `kid` in `jwks` (RS256 or ES256 only).
fn verifies(jwks: &Value, jwt: &str) -> bool {
    let (input, signature) = jwt.rsplit_once('.').unwrap();
    let (header, _) = crate::idp::jwt_parts(jwt);
    let Some(key) = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
    else {
        return false;
    };
    let signature = b64(signature);
    match (header["alg"].as_str(), key["kty"].as_str()) {
        (Some("RS256"), Some("RSA")) => {
            let n = b64(key["n"].as_str().unwrap());
            let e = b64(key["e"].as_str().unwrap());
            RsaPublicKeyComponents { n, e }
                .verify(
                    &sig::RSA_PKCS1_2048_8192_SHA256,
                    input.as_bytes(),
                    &signature,
                )
                .is_ok()
        }
        (Some("ES256"), Some("EC")) => {
            let mut point = vec![4u8];
            point.extend(b64(key["x"].as_str().unwrap()));
            point.extend(b64(key["y"].as_str().unwrap()));
            UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point)
                .verify(input.as_bytes(), &signature)
                .is_ok()
        }
        _ => false,
    }
}

const REDIRECT: &str = "http://127.0.0.1:9/idp/fake/callback";

/// Runs `/authorize` and returns the redirect's Location.
async fn authorize(idp: &FakeIdp, pkce: &Pkce, extra: &str) -> String {
    let url = format!(
        "{}?response_type=code&client_id={FAKE_CLIENT_ID}&redirect_uri={}&scope=openid%20email&state=st4te\
         &nonce=n0nce&code_challenge={}&code_challenge_method=S256{extra}",
        idp.url("/authorize"),
        crate::support::enc(REDIRECT),
        pkce.challenge
    );
    let resp = browser().get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    resp.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}

/// `client_secret_basic` as RFC 6749 §2.3.1 says: each part form-encoded, then base64.
fn basic() -> String {
    let enc = crate::support::enc;
    let raw = format!("{}:{}", enc(FAKE_CLIENT_ID), enc(FAKE_CLIENT_SECRET));
    format!("Basic {}", STANDARD.encode(raw))
}

async fn token(idp: &FakeIdp, authorization: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = http()
        .post(idp.url("/token"))
        .header(header::AUTHORIZATION, authorization)
        .form(form)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

async fn exchange_code(idp: &FakeIdp, code: &str, verifier: &str) -> (StatusCode, Value) {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ];
    token(idp, &basic(), &form).await
}

async fn get_json(url: &str) -> Value {
    http().get(url).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn discovery_document_names_its_endpoints_under_its_issuer() {
    let idp = FakeIdp::start(FakeIdpConfig {
        issuer_path: "/tenant/v2".to_owned(),
        ..FakeIdpConfig::default()
    });
    assert!(idp.issuer().starts_with("http://127.0.0.1:") && idp.issuer().ends_with("/tenant/v2"));
    let doc = get_json(&idp.url("/.well-known/openid-configuration")).await;
    assert_eq!(doc["issuer"], idp.issuer());
    for (member, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/jwks"),
    ] {
        assert_eq!(doc[member], idp.url(path), "{member}");
    }
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(doc["response_types_supported"], json!(["code"]));

    idp.update(|b| {
        b.discovery_issuer = Some("https://other.example".to_owned());
        b.discovery_patch.insert("jwks_uri".to_owned(), Value::Null);
        b.advertise_iss = false;
    });
    let doc = get_json(&idp.url("/.well-known/openid-configuration")).await;
    assert_eq!(doc["issuer"], "https://other.example");
    assert!(doc.get("jwks_uri").is_none());
    assert_eq!(doc["authorization_response_iss_parameter_supported"], false);
    assert_eq!(idp.received().discovery, 2);
}

#[tokio::test]
async fn valid_code_flow_verifies_with_the_jwks_and_is_recorded() {
    let idp = FakeIdp::start(FakeIdpConfig::default());
    let pkce = pkce();
    let location = authorize(&idp, &pkce, "").await;
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(param(&location, "state").as_deref(), Some("st4te"));
    assert_eq!(param(&location, "iss").as_deref(), Some(idp.issuer()));
    let code = param(&location, "code").unwrap();

    // A wrong verifier burns nothing but fails; the right one works once.
    let wrong = crate::support::pkce().verifier;
    assert_eq!(
        exchange_code(&idp, &code, &wrong).await.1["error"],
        "invalid_grant"
    );
    let code = param(&authorize(&idp, &pkce, "").await, "code").unwrap();
    let (status, body) = exchange_code(&idp, &code, &pkce.verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        exchange_code(&idp, &code, &pkce.verifier).await.1["error"],
        "invalid_grant"
    );

    let id_token = body["id_token"].as_str().unwrap();
    let jwks = get_json(&idp.url("/jwks")).await;
    assert!(verifies(&jwks, id_token));
    let (header, claims) = crate::idp::jwt_parts(id_token);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["iss"], idp.issuer());
    assert_eq!(claims["aud"], FAKE_CLIENT_ID);
    assert_eq!(claims["sub"], FAKE_SUBJECT);
    assert_eq!(claims["nonce"], "n0nce");
    assert_eq!(claims["email"], "fake@example.com");

    let received = idp.received();
    assert_eq!(received.authorize_param("nonce"), Some("n0nce"));
    let last = received.token.last().unwrap();
    assert_eq!(last.field("code_verifier"), Some(pkce.verifier.as_str()));
    let secret = (FAKE_CLIENT_ID.to_owned(), FAKE_CLIENT_SECRET.to_owned());
    assert_eq!(last.basic_credentials(), Some(secret));

    let at = body["access_token"].as_str().unwrap();
    let info: Value = http()
        .get(idp.url("/userinfo"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], FAKE_SUBJECT);
    assert_eq!(info["email_verified"], true);

    // Refresh rotates; the old refresh token is then refused; refresh_error answers as told.
    let rt = body["refresh_token"].as_str().unwrap();
    let refresh = [("grant_type", "refresh_token"), ("refresh_token", rt)];
    let (status, refreshed) = token(&idp, &basic(), &refresh).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(refreshed["refresh_token"], rt);
    assert!(verifies(&jwks, refreshed["id_token"].as_str().unwrap()));
    assert_eq!(
        token(&idp, &basic(), &refresh).await.1["error"],
        "invalid_grant"
    );
    let rt2 = refreshed["refresh_token"].as_str().unwrap();
    idp.update(|b| b.refresh_error = Some("invalid_grant".to_owned()));
    let refresh = [("grant_type", "refresh_token"), ("refresh_token", rt2)];
    assert_eq!(
        token(&idp, &basic(), &refresh).await,
        (StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}))
    );
}

#[tokio::test]
async fn client_secret_basic_without_form_encoding_is_refused() {
    let idp = FakeIdp::start(FakeIdpConfig::default());
    let pkce = pkce();
    let code = param(&authorize(&idp, &pkce, "").await, "code").unwrap();
    // What reqwest's basic_auth (and many clients) send: the raw secret.
    let raw = format!(
        "Basic {}",
        STANDARD.encode(format!("{FAKE_CLIENT_ID}:{FAKE_CLIENT_SECRET}"))
    );
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", pkce.verifier.as_str()),
    ];
    let (status, body) = token(&idp, &raw, &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
}

#[tokio::test]
async fn es256_id_tokens_verify_and_rotation_changes_the_kid() {
    let idp = FakeIdp::start(FakeIdpConfig::default());
    idp.update(|b| b.signing_alg = Alg::ES256);
    let token = idp.id_token(Some("n"), &Misbehaviour::None).unwrap();
    assert!(verifies(&idp.jwks(), &token));
    assert_eq!(crate::idp::jwt_parts(&token).0["alg"], "ES256");
    let old_jwks = idp.jwks();
    let kids = idp.rotate_keys(false);
    let token = idp.id_token(Some("n"), &Misbehaviour::None).unwrap();
    assert_eq!(crate::idp::jwt_parts(&token).0["kid"], kids[1]);
    assert!(verifies(&get_json(&idp.url("/jwks")).await, &token));
    assert!(!verifies(&old_jwks, &token));
    idp.update(|b| b.signing_alg = Alg::RS256);
    let token = idp.id_token(None, &Misbehaviour::None).unwrap();
    assert!(verifies(&idp.jwks(), &token));
}

#[tokio::test]
async fn each_misbehaviour_breaks_what_it_says() {
    let idp = FakeIdp::start(FakeIdpConfig::default());
    let jwks = idp.jwks();
    let make = |m: Misbehaviour| idp.id_token(Some("n0nce"), &m);
    let parts = |t: &str| crate::idp::jwt_parts(t);
    let current_kid = jwks["keys"][0]["kid"].clone();

    let none = make(Misbehaviour::AlgNone).unwrap();
    assert_eq!(parts(&none).0["alg"], "none");
    assert!(none.ends_with('.') && none.split('.').count() == 3);

    let other = make(Misbehaviour::SignedByOtherKey).unwrap();
    assert_eq!(parts(&other).0["kid"], current_kid);
    assert!(!verifies(&jwks, &other));
    let unknown = make(Misbehaviour::UnknownKid).unwrap();
    assert!(!verifies(&jwks, &unknown) && parts(&unknown).0["kid"] == "unknown-kid");
    let hs = make(Misbehaviour::Hs256WithClientSecret).unwrap();
    assert_eq!(parts(&hs).0["alg"], "HS256");
    let tampered = make(Misbehaviour::TamperedPayload).unwrap();
    assert!(!verifies(&jwks, &tampered) && parts(&tampered).1["sub"] == "someone-else");

    // The claim-level ones are validly signed.
    let claims = |m: Misbehaviour| {
        let t = make(m).unwrap();
        assert!(verifies(&jwks, &t));
        parts(&t).1
    };
    assert_eq!(claims(Misbehaviour::WrongAudience)["aud"], "another-client");
    assert!(claims(Misbehaviour::Expired)["exp"].as_i64().unwrap() < now());
    assert!(claims(Misbehaviour::IatInFuture)["iat"].as_i64().unwrap() > now() + 1800);
    assert_eq!(claims(Misbehaviour::WrongNonce)["nonce"], "not-the-nonce");
    assert!(claims(Misbehaviour::MissingNonce).get("nonce").is_none());
    assert_ne!(claims(Misbehaviour::WrongIssuer)["iss"], idp.issuer());
    let c = claims(Misbehaviour::MissingAzpWithSeveralAud);
    assert!(c["aud"].as_array().unwrap().len() == 2 && c.get("azp").is_none());
    assert_eq!(claims(Misbehaviour::WrongAzp)["azp"], "another-audience");
    assert!(claims(Misbehaviour::MissingSub).get("sub").is_none());
    assert_eq!(claims(Misbehaviour::None)["nonce"], "n0nce");
    assert!(make(Misbehaviour::NoIdToken).is_none());
    assert_eq!(make(Misbehaviour::Garbage).unwrap().split('.').count(), 1);
}

#[tokio::test]
async fn authorize_answers_errors_and_iss_variants() {
    let idp = FakeIdp::start(FakeIdpConfig::default());
    let pkce = pkce();
    idp.update(|b| b.iss = IssParam::Absent);
    assert_eq!(param(&authorize(&idp, &pkce, "").await, "iss"), None);
    idp.update(|b| {
        b.iss = IssParam::Other("https://other.example".to_owned());
        b.state = StateParam::Other("forged".to_owned());
    });
    let location = authorize(&idp, &pkce, "").await;
    assert_eq!(
        param(&location, "iss").as_deref(),
        Some("https://other.example")
    );
    assert_eq!(param(&location, "state").as_deref(), Some("forged"));
    idp.update(|b| {
        b.authorize_error = Some("login_required".to_owned());
        b.iss = IssParam::Correct;
        b.state = StateParam::Same;
    });
    let location = authorize(&idp, &pkce, "").await;
    assert_eq!(param(&location, "error").as_deref(), Some("login_required"));
    assert_eq!(param(&location, "code"), None);
    assert_eq!(param(&location, "state").as_deref(), Some("st4te"));
}

#[tokio::test]
async fn down_refuses_connections_and_up_listens_again_on_the_same_port() {
    let idp = FakeIdp::start(FakeIdpConfig::default());
    let url = idp.url("/.well-known/openid-configuration");
    idp.set_mode(Mode::Down);
    let err = http().get(&url).send().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    idp.set_mode(Mode::Slow(Duration::from_millis(300)));
    let started = std::time::Instant::now();
    assert_eq!(get_json(&url).await["issuer"], idp.issuer());
    assert!(started.elapsed() >= Duration::from_millis(300));
    idp.set_mode(Mode::SlowOn("/jwks".to_owned(), Duration::from_secs(30)));
    let started = std::time::Instant::now();
    get_json(&url).await;
    assert!(started.elapsed() < Duration::from_secs(5));
}
