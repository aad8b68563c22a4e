#![allow(clippy::unwrap_used)]
use super::*;
use crate::federation::testing::{jwks_of, oidc_config, oidc_metadata, pending, TestKey};
use serde_json::json;

const NOW: i64 = 1_000;

fn claims(p: &PendingLogin) -> Value {
    json!({
        "iss": "https://idp.example", "sub": "u-1", "aud": "portcullis",
        "exp": NOW + 300, "iat": NOW, "nonce": p.nonce.expose(),
        "email": "carol@example.com", "email_verified": true, "preferred_username": "carol",
        "name": "Carol", "groups": ["staff", "mcp-users"]
    })
}

fn es256() -> (TestKey, JwkSet) {
    let k = TestKey::ec("ES256");
    let set = jwks_of(&[k.jwk(Some("k1"))]);
    (k, set)
}

fn verify(token: &str, jwks: &JwkSet, p: &PendingLogin) -> Result<IdTokenClaims, FederationError> {
    verify_id_token(token, &oidc_config(), &oidc_metadata(), jwks, p, NOW)
}

fn header(alg: &str, kid: Option<&str>) -> Value {
    let mut h = json!({"alg": alg, "typ": "JWT"});
    if let Some(kid) = kid {
        h["kid"] = kid.into();
    }
    h
}

#[test]
fn accepts_a_good_token_and_types_its_claims() {
    let p = pending();
    let (k, set) = es256();
    let t = k.sign("ES256", &header("ES256", Some("k1")), &claims(&p));
    let c = verify(&t, &set, &p).unwrap();
    assert_eq!(c.sub, "u-1");
    assert_eq!(c.aud, ["portcullis"]);
    assert_eq!(c.email.as_deref(), Some("carol@example.com"));
    assert!(c.email_verified);
    assert_eq!(c.preferred_username.as_deref(), Some("carol"));
    assert_eq!(c.groups, Some(vec!["staff".into(), "mcp-users".into()]));
    assert_eq!(c.raw["name"], "Carol");
}

#[test]
fn every_allowed_algorithm_verifies() {
    let p = pending();
    let rsa = TestKey::rsa();
    for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
        let set = jwks_of(&[rsa.jwk(Some("r"))]);
        let t = rsa.sign(alg, &header(alg, Some("r")), &claims(&p));
        let mut meta = oidc_metadata();
        meta.id_token_signing_alg_values_supported = vec![alg.into()];
        verify_id_token(&t, &oidc_config(), &meta, &set, &p, NOW).unwrap();
    }
    let ec384 = TestKey::ec("ES384");
    let t = ec384.sign("ES384", &header("ES384", None), &claims(&p));
    verify(&t, &jwks_of(&[ec384.jwk(None)]), &p).unwrap();
    // No kid and exactly one key that fits: fine.
    let ed = TestKey::ed(1);
    let t = ed.sign("EdDSA", &header("EdDSA", None), &claims(&p));
    verify(&t, &jwks_of(&[ed.jwk(None), TestKey::rsa().jwk(None)]), &p).unwrap();
    // RFC 9864's fully-specified name.
    let t = ed.sign("Ed25519", &header("Ed25519", None), &claims(&p));
    let mut meta = oidc_metadata();
    meta.id_token_signing_alg_values_supported = vec!["Ed25519".into()];
    verify_id_token(
        &t,
        &oidc_config(),
        &meta,
        &jwks_of(&[ed.jwk(None)]),
        &p,
        NOW,
    )
    .unwrap();
}

#[test]
fn refuses_none_hmac_and_unadvertised_algorithms() {
    let p = pending();
    let (k, set) = es256();
    let good = k.sign("ES256", &header("ES256", Some("k1")), &claims(&p));
    let (_, rest) = good.split_once('.').unwrap();
    for alg in ["none", "HS256", "HS512", "ES512"] {
        let h = b64::encode(header(alg, Some("k1")).to_string());
        assert_eq!(
            verify(&format!("{h}.{rest}"), &set, &p).unwrap_err(),
            FederationError::UnsupportedAlgorithm(alg.into())
        );
    }
    let unsigned = format!(
        "{}.{}.",
        b64::encode(header("none", None).to_string()),
        b64::encode(claims(&p).to_string())
    );
    assert!(matches!(
        verify(&unsigned, &set, &p).unwrap_err(),
        FederationError::UnsupportedAlgorithm(_)
    ));
    // RS512 is allowed by Portcullis but not advertised by this provider.
    let rsa = TestKey::rsa();
    let t = rsa.sign("RS512", &header("RS512", None), &claims(&p));
    assert_eq!(
        verify(&t, &jwks_of(&[rsa.jwk(None)]), &p).unwrap_err(),
        FederationError::UnsupportedAlgorithm("RS512".into())
    );
}

#[test]
fn key_selection() {
    let p = pending();
    let (k, set) = es256();
    let other = TestKey::ec("ES256");
    // Unknown kid: the caller refetches.
    let t = k.sign("ES256", &header("ES256", Some("k2")), &claims(&p));
    assert_eq!(
        verify(&t, &set, &p).unwrap_err(),
        FederationError::UnknownKey
    );
    // Signed by another key under the published kid.
    let t = other.sign("ES256", &header("ES256", Some("k1")), &claims(&p));
    assert_eq!(
        verify(&t, &set, &p).unwrap_err(),
        FederationError::BadSignature
    );
    // No kid and two keys that fit.
    let two = jwks_of(&[k.jwk(Some("k1")), other.jwk(Some("k2"))]);
    let t = k.sign("ES256", &header("ES256", None), &claims(&p));
    assert!(matches!(
        verify(&t, &two, &p).unwrap_err(),
        FederationError::MalformedToken(_)
    ));
    // A kid whose key is of another type.
    let t = k.sign("ES256", &header("EdDSA", Some("k1")), &claims(&p));
    assert_eq!(
        verify(&t, &set, &p).unwrap_err(),
        FederationError::BadSignature
    );
    // Payload changed after signing.
    let t = k.sign("ES256", &header("ES256", Some("k1")), &claims(&p));
    let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
    let mut c = claims(&p);
    c["sub"] = "admin".into();
    parts[1] = b64::encode(c.to_string());
    assert_eq!(
        verify(&parts.join("."), &set, &p).unwrap_err(),
        FederationError::BadSignature
    );
}

#[test]
fn refuses_malformed_tokens() {
    let p = pending();
    let (k, set) = es256();
    let mut h = header("ES256", Some("k1"));
    h["crit"] = json!(["exp"]);
    let crit = k.sign("ES256", &h, &claims(&p));
    let mut h = header("ES256", Some("k1"));
    h["typ"] = "at+jwt".into();
    let at = k.sign("ES256", &h, &claims(&p));
    for bad in [crit.as_str(), at.as_str(), "a.b.c.d.e", "a.b", "", "!.!.!"] {
        assert!(
            matches!(
                verify(bad, &set, &p).unwrap_err(),
                FederationError::MalformedToken(_)
            ),
            "{bad}"
        );
    }
    let array = k.sign("ES256", &header("ES256", Some("k1")), &json!([1]));
    assert!(matches!(
        verify(&array, &set, &p).unwrap_err(),
        FederationError::MalformedToken(_)
    ));
}

fn with(p: &PendingLogin, f: impl FnOnce(&mut Value)) -> Result<IdTokenClaims, FederationError> {
    let (k, set) = es256();
    let mut c = claims(p);
    f(&mut c);
    verify(&k.sign("ES256", &header("ES256", Some("k1")), &c), &set, p)
}

fn claim_err(r: Result<IdTokenClaims, FederationError>) -> &'static str {
    match r.unwrap_err() {
        FederationError::InvalidClaim { claim, .. } => claim,
        other => panic!("{other:?}"),
    }
}

#[test]
fn claims_are_checked() {
    let p = pending();
    assert!(matches!(
        with(&p, |c| c["iss"] = "https://other.example".into()).unwrap_err(),
        FederationError::IssuerMismatch { .. }
    ));
    assert_eq!(
        claim_err(with(&p, |c| c["aud"] = "someone-else".into())),
        "aud"
    );
    assert_eq!(
        claim_err(with(&p, |c| c["aud"] = json!(["portcullis", "x"]))),
        "azp"
    );
    with(&p, |c| {
        c["aud"] = json!(["portcullis", "x"]);
        c["azp"] = "portcullis".into();
    })
    .unwrap();
    assert_eq!(claim_err(with(&p, |c| c["azp"] = "x".into())), "azp");
    assert_eq!(
        with(&p, |c| c["exp"] = (NOW - LEEWAY).into()).unwrap_err(),
        FederationError::Expired
    );
    with(&p, |c| c["exp"] = (NOW - LEEWAY + 1).into()).unwrap();
    assert_eq!(
        claim_err(with(&p, |c| c["iat"] = (NOW + LEEWAY + 1).into())),
        "iat"
    );
    assert_eq!(
        claim_err(with(&p, |c| c["iat"] = (NOW - MAX_AGE - 1).into())),
        "iat"
    );
    assert_eq!(
        with(&p, |c| c["nonce"] = "other".into()).unwrap_err(),
        FederationError::NonceMismatch
    );
    assert_eq!(
        with(&p, |c| {
            c.as_object_mut().unwrap().remove("nonce");
        })
        .unwrap_err(),
        FederationError::NonceMismatch
    );
    for missing in ["sub", "exp", "iat", "aud"] {
        assert_eq!(
            claim_err(with(&p, |c| {
                c.as_object_mut().unwrap().remove(missing);
            })),
            missing
        );
    }
    assert_eq!(claim_err(with(&p, |c| c["groups"] = json!([1]))), "groups");
    let c = with(&p, |c| c["email_verified"] = "true".into()).unwrap();
    assert!(c.email_verified);
}

#[test]
fn entra_issuer_is_pinned_by_tid() {
    let p = pending();
    let (k, set) = es256();
    let mut meta = oidc_metadata();
    meta.issuer = Some("https://login.microsoftonline.com/{tenantid}/v2.0".into());
    let tid = "9122040d-6c67-4c5b-b112-36a304b66dad";
    let mut c = claims(&p);
    c["iss"] = format!("https://login.microsoftonline.com/{tid}/v2.0").into();
    c["tid"] = tid.into();
    let t = k.sign("ES256", &header("ES256", Some("k1")), &c);
    let ok = verify_id_token(&t, &oidc_config(), &meta, &set, &p, NOW).unwrap();
    assert_eq!(ok.tid.as_deref(), Some(tid));
    c["tid"] = "another-tenant".into();
    let t = k.sign("ES256", &header("ES256", Some("k1")), &c);
    assert!(matches!(
        verify_id_token(&t, &oidc_config(), &meta, &set, &p, NOW).unwrap_err(),
        FederationError::IssuerMismatch { .. }
    ));
}

#[test]
fn refreshed_tokens_need_the_same_subject_but_no_nonce() {
    let p = pending();
    let (k, set) = es256();
    let mut c = claims(&p);
    c.as_object_mut().unwrap().remove("nonce");
    let t = k.sign("ES256", &header("ES256", Some("k1")), &c);
    let (config, meta) = (oidc_config(), oidc_metadata());
    verify_refreshed_id_token(&t, &config, &meta, &set, "u-1", NOW).unwrap();
    assert_eq!(
        claim_err(verify_refreshed_id_token(
            &t, &config, &meta, &set, "u-2", NOW
        )),
        "sub"
    );
}

proptest::proptest! {
    /// Whatever arrives, parsing and validation answer with an error, never a panic.
    #[test]
    fn arbitrary_input_never_panics(token in "[A-Za-z0-9_.-]{0,300}", body in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let p = pending();
        let (_, set) = es256();
        proptest::prop_assert!(verify(&token, &set, &p).is_err());
        let _ = JwkSet::parse(&body);
        let _ = crate::federation::Callback::parse(&String::from_utf8_lossy(&body));
        let _ = crate::federation::UpstreamTokens::from_response(200, &body, 0);
        let _ = ProviderMetadata::from_discovery(&oidc_config(), &body);
    }
}
