//! A whole sign-in recorded against the test IdP (interop/idp: node-oidc-provider 9.13.3, RS256 ID tokens) on
//! 2026-12-03 and replayed through every step of this module: the discovery document, the callback with its
//! RFC 9207 `iss`, the token response, the ID token (its real RSA signature), userinfo, identity and policy.
//! The request was made with `state=st1`, `nonce=n1` and the RFC 7636 Appendix B verifier.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::secret::Secret;

const ISSUER: &str = "http://127.0.0.1:37681";
/// The ID token's `iat`.
const NOW: i64 = 1_796_279_099;

fn config() -> ProviderConfig {
    let mut s = testing::oidc_settings();
    s.issuer = Some(ISSUER.into());
    s.scopes = Some(vec![
        "openid".into(),
        "email".into(),
        "profile".into(),
        "groups".into(),
    ]);
    s.allowed_domains = vec!["example.com".into()];
    s.allowed_groups = vec!["eng".into()];
    s.scope_from_groups
        .insert("eng".into(), vec!["mcp:write".into()]);
    s.into_config().unwrap()
}

fn pending(state: &str, nonce: &str) -> PendingLogin {
    PendingLogin {
        provider: ProviderName::parse("corp").unwrap(),
        state: Secret::new(state),
        nonce: Secret::new(nonce),
        verifier: Secret::new(crate::testing::VERIFIER),
        created_at: NOW - 10,
        authorize_query: String::new(),
    }
}

#[test]
fn recorded_sign_in_replays() {
    let config = config();
    let meta = ProviderMetadata::from_discovery(
        &config,
        include_bytes!("testdata/recorded/discovery.json"),
    )
    .unwrap();
    let jwks = JwkSet::parse(include_bytes!("testdata/recorded/jwks.json")).unwrap();
    let p = pending("st1", "n1");
    let callback = Callback::parse(include_str!("testdata/recorded/callback.txt").trim()).unwrap();
    let code = check_callback(&callback, &p, &meta).unwrap();
    assert_eq!(code.expose(), "ut3Qknq1poH2m2IS2EgBpjSvN3dg1rJmrma5svRLxbx");
    let tokens =
        UpstreamTokens::from_response(200, include_bytes!("testdata/recorded/token.json"), NOW)
            .unwrap();
    assert_eq!(tokens.expires_at, Some(NOW + 3600));
    let id_token = tokens.id_token.as_deref().unwrap();
    let claims = verify_id_token(id_token, &config, &meta, &jwks, &p, NOW).unwrap();
    assert_eq!(claims.sub, "carol");
    let identity = ExternalIdentity::from_id_token(
        &config,
        &claims,
        Some(include_bytes!("testdata/recorded/userinfo.json")),
    )
    .unwrap();
    assert_eq!(identity.username.as_deref(), Some("carol"));
    assert_eq!(
        (identity.email.as_deref(), identity.email_verified),
        (Some("carol@example.com"), true)
    );
    assert_eq!(check_policy(&config, &identity).unwrap(), ["mcp:write"]);
}

#[test]
fn recorded_sign_in_refuses_what_it_should() {
    let config = config();
    let meta = ProviderMetadata::from_discovery(
        &config,
        include_bytes!("testdata/recorded/discovery.json"),
    )
    .unwrap();
    let jwks = JwkSet::parse(include_bytes!("testdata/recorded/jwks.json")).unwrap();
    let callback = Callback::parse(include_str!("testdata/recorded/callback.txt").trim()).unwrap();
    // Another browser's sign-in.
    assert_eq!(
        check_callback(&callback, &pending("st2", "n1"), &meta).unwrap_err(),
        FederationError::StateMismatch
    );
    let tokens =
        UpstreamTokens::from_response(200, include_bytes!("testdata/recorded/token.json"), NOW)
            .unwrap();
    let id_token = tokens.id_token.as_deref().unwrap();
    // Replayed into another sign-in (other nonce), too late, or to another client.
    let other = pending("st1", "n2");
    assert_eq!(
        verify_id_token(id_token, &config, &meta, &jwks, &other, NOW).unwrap_err(),
        FederationError::NonceMismatch
    );
    let p = pending("st1", "n1");
    assert_eq!(
        verify_id_token(
            id_token,
            &config,
            &meta,
            &jwks,
            &p,
            NOW + 3600 + id_token::LEEWAY
        )
        .unwrap_err(),
        FederationError::Expired
    );
    let mut someone_else = config.clone();
    someone_else.client_id = "other-client".into();
    assert!(matches!(
        verify_id_token(id_token, &someone_else, &meta, &jwks, &p, NOW).unwrap_err(),
        FederationError::InvalidClaim { claim: "aud", .. }
    ));
    // The IdP rotated its keys: the recorded kid is unknown to the new set.
    let rotated = testing::jwks_of(&[testing::TestKey::rsa().jwk(Some("rsa-new"))]);
    assert_eq!(
        verify_id_token(id_token, &config, &meta, &rotated, &p, NOW).unwrap_err(),
        FederationError::UnknownKey
    );
    // Userinfo about someone else.
    assert!(matches!(
        ExternalIdentity::from_id_token(
            &config,
            &verify_id_token(id_token, &config, &meta, &jwks, &p, NOW).unwrap(),
            Some(br#"{"sub":"mallory"}"#)
        ),
        Err(FederationError::Userinfo(_))
    ));
}
