#![allow(clippy::unwrap_used)]
use super::*;
use crate::federation::testing::{oidc_config, pending};
use crate::testing::SeqRandom;
use serde_json::json;

fn parse(status: u16, body: &Value) -> Result<UpstreamTokens, FederationError> {
    UpstreamTokens::from_response(status, body.to_string().as_bytes(), 1_000)
}

#[test]
fn parses_a_token_response() {
    let t = parse(
        200,
        &json!({"access_token": "at", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "rt",
                "scope": "openid email", "id_token": "h.p.s"}),
    )
    .unwrap();
    assert_eq!(t.access_token.expose(), "at");
    assert_eq!(t.refresh_token.as_ref().unwrap().expose(), "rt");
    assert_eq!(t.expires_at, Some(4_600));
    assert_eq!(t.scope.as_deref(), Some("openid email"));
    assert!(t.expires_within(4_550, 60) && !t.expires_within(4_500, 60));
    let debug = format!("{t:?}");
    assert!(
        !debug.contains("at\"") && !debug.contains("rt") && !debug.contains("h.p.s"),
        "{debug}"
    );
    // The vault payload round-trips.
    let sealed = serde_json::to_vec(&t).unwrap();
    assert_eq!(
        serde_json::from_slice::<UpstreamTokens>(&sealed).unwrap(),
        t
    );
    // expires_in as a string; no refresh token; GitHub's lower-case bearer.
    let t = parse(
        200,
        &json!({"access_token": "at", "token_type": "bearer", "expires_in": "60"}),
    )
    .unwrap();
    assert_eq!(
        (t.expires_at, t.refresh_token.is_none()),
        (Some(1_060), true)
    );
    let old = parse(
        200,
        &json!({"access_token": "a0", "token_type": "Bearer", "refresh_token": "r0"}),
    )
    .unwrap();
    assert_eq!(t.refreshed_from(&old).refresh_token.unwrap().expose(), "r0");
}

#[test]
fn errors_are_upstream_errors_whatever_the_status() {
    for status in [400, 401, 200] {
        let e = parse(
            status,
            &json!({"error": "invalid_grant", "error_description": "revoked"}),
        )
        .unwrap_err();
        assert!(e.is_invalid_grant(), "{status}");
        assert_eq!(
            e,
            FederationError::Upstream {
                code: "invalid_grant".into(),
                description: Some("revoked".into())
            }
        );
    }
    let e = parse(200, &json!({"error": "bad_verification_code"})).unwrap_err();
    assert!(!e.is_invalid_grant());
}

#[test]
fn unusable_responses_say_why() {
    let form =
        UpstreamTokens::from_response(200, b"access_token=gho_x&scope=&token_type=bearer", 0)
            .unwrap_err();
    assert!(
        matches!(&form, FederationError::TokenResponse(m) if m.contains("Accept: application/json"))
    );
    assert!(!form.to_string().contains("gho_x"));
    for (status, body) in [
        (200, json!({"token_type": "Bearer"})),
        (200, json!({"access_token": "", "token_type": "Bearer"})),
        (200, json!({"access_token": "a"})),
        (500, json!({"access_token": "a", "token_type": "Bearer"})),
        (200, json!(["a"])),
    ] {
        let e = parse(status, &body).unwrap_err();
        assert!(matches!(e, FederationError::TokenResponse(_)), "{body}");
    }
    assert!(matches!(
        UpstreamTokens::from_response(502, b"<html>Bad gateway</html>", 0),
        Err(FederationError::TokenResponse(_))
    ));
}

fn get<'a>(form: &'a Form, k: &str) -> Option<&'a str> {
    form.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str())
}

#[test]
fn request_forms() {
    let p = pending();
    let f = authorization_code_form(&Secret::new("c"), "https://as/cb", &p);
    assert_eq!(get(&f, "grant_type"), Some("authorization_code"));
    assert_eq!(get(&f, "code"), Some("c"));
    assert_eq!(get(&f, "redirect_uri"), Some("https://as/cb"));
    assert_eq!(get(&f, "code_verifier"), Some(p.verifier.expose()));
    let f = refresh_form(&Secret::new("rt"));
    assert_eq!(
        (get(&f, "grant_type"), get(&f, "refresh_token")),
        (Some("refresh_token"), Some("rt"))
    );
    let f = token_exchange_form(&Secret::new("at"), Some("https://api.example"), None, None);
    assert_eq!(get(&f, "grant_type"), Some(TOKEN_EXCHANGE_GRANT));
    assert_eq!(get(&f, "subject_token"), Some("at"));
    assert_eq!(get(&f, "subject_token_type"), Some(ACCESS_TOKEN_TYPE));
    assert_eq!(get(&f, "audience"), Some("https://api.example"));
    assert_eq!(get(&f, "requested_token_type"), None);
    let f = on_behalf_of_form(&Secret::new("at"), "api://x/.default");
    assert_eq!(get(&f, "grant_type"), Some(JWT_BEARER_GRANT));
    assert_eq!(get(&f, "requested_token_use"), Some("on_behalf_of"));
    assert_eq!(get(&f, "resource"), None);
}

#[test]
fn client_authentication_methods() {
    let rng = SeqRandom::default();
    let mut c = oidc_config();
    c.client_id = "my client".into();
    c.client_secret = Some(Secret::new("p@ss:word"));
    let ClientAuthentication::Basic(h) =
        client_authentication(&c, "https://idp/token", &rng, 0).unwrap()
    else {
        panic!()
    };
    // RFC 6749 §2.3.1: form-urlencoded before base64.
    assert_eq!(
        decode_basic(h.expose()).unwrap(),
        ("my client".into(), "p@ss:word".into())
    );
    assert!(h
        .expose()
        .starts_with("Basic bXkrY2xpZW50OnAlNDBzcyUzQXdvcmQ"));
    c.token_endpoint_auth_method = ClientAuthMethod::ClientSecretPost;
    let ClientAuthentication::Post(f) =
        client_authentication(&c, "https://idp/token", &rng, 0).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (get(&f, "client_id"), get(&f, "client_secret")),
        (Some("my client"), Some("p@ss:word"))
    );
    c.token_endpoint_auth_method = ClientAuthMethod::PrivateKeyJwt;
    let ClientAuthentication::Assertion(claims) =
        client_authentication(&c, "https://idp/token", &rng, 100).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (claims.iss.as_str(), claims.sub.as_str()),
        ("my client", "my client")
    );
    assert_eq!(claims.aud, "https://idp/token");
    assert_eq!((claims.iat, claims.exp), (100, 160));
    let ClientAuthentication::Assertion(again) =
        client_authentication(&c, "https://idp/token", &rng, 100).unwrap()
    else {
        panic!()
    };
    assert_ne!(claims.jti, again.jti);
    // Signed with the key ring's active ES256 key; verifiable with its published key.
    let record = crate::keys::generate(&rng, 0);
    let ring = KeyRing::from_records(&[record]).unwrap();
    let jws = sign_client_assertion(&ring, &claims);
    let u = jwt::decode(&jws).unwrap();
    assert_eq!(u.header.kid, ring.active_kid());
    let payload = u
        .verify(ring.verifying_key(ring.active_kid()).unwrap())
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<ClientAssertionClaims>(&payload).unwrap(),
        claims
    );
    let f = assertion_form("my client", jws);
    assert_eq!(get(&f, "client_assertion_type"), Some(JWT_BEARER_ASSERTION));
}
