#![allow(clippy::unwrap_used)]
use super::*;
use crate::federation::testing::{discovery_json, oidc_config};
use crate::federation::ProviderSettings;

fn parse(
    config: &ProviderConfig,
    doc: &serde_json::Value,
) -> Result<ProviderMetadata, FederationError> {
    ProviderMetadata::from_discovery(config, doc.to_string().as_bytes())
}

fn field_of(r: Result<ProviderMetadata, FederationError>) -> String {
    match r.unwrap_err() {
        FederationError::Metadata { field, .. } => field,
        other => panic!("{other:?}"),
    }
}

type Case = (&'static str, Box<dyn Fn(&mut serde_json::Value)>);

#[test]
fn discovery_url_per_oidc_discovery_4_1() {
    assert_eq!(
        discovery_url("https://a.example"),
        "https://a.example/.well-known/openid-configuration"
    );
    assert_eq!(
        discovery_url("https://a.example/realms/x/"),
        "https://a.example/realms/x/.well-known/openid-configuration"
    );
}

#[test]
fn parses_a_good_document() {
    let m = parse(&oidc_config(), &discovery_json()).unwrap();
    assert_eq!(m.issuer.as_deref(), Some("https://idp.example"));
    assert_eq!(m.token_endpoint, "https://idp.example/token");
    assert_eq!(m.jwks_uri.as_deref(), Some("https://idp.example/jwks"));
    assert!(!m.authorization_response_iss_parameter_supported);
    assert!(m.signs_with("ES256") && !m.signs_with("RS512"));
    assert_eq!(m.offers_token_exchange(), Some(false));
    let mut doc = discovery_json();
    doc.as_object_mut()
        .unwrap()
        .remove("id_token_signing_alg_values_supported");
    doc["authorization_response_iss_parameter_supported"] = true.into();
    let m = parse(&oidc_config(), &doc).unwrap();
    assert_eq!(m.id_token_signing_alg_values_supported, ["RS256"]);
    assert!(m.authorization_response_iss_parameter_supported);
}

#[test]
fn refuses_bad_documents() {
    let config = oidc_config();
    let cases: Vec<Case> = vec![
        (
            "issuer",
            Box::new(|d| d["issuer"] = "https://idp.example/".into()),
        ),
        (
            "issuer",
            Box::new(|d| d["issuer"] = "https://evil.example".into()),
        ),
        (
            "response_types_supported",
            Box::new(|d| d["response_types_supported"] = serde_json::json!(["id_token"])),
        ),
        (
            "code_challenge_methods_supported",
            Box::new(|d| d["code_challenge_methods_supported"] = serde_json::json!(["plain"])),
        ),
        (
            "token_endpoint",
            Box::new(|d| d["token_endpoint"] = "http://idp.example/token".into()),
        ),
        (
            "token_endpoint",
            Box::new(|d| {
                d.as_object_mut().unwrap().remove("token_endpoint");
            }),
        ),
        (
            "jwks_uri",
            Box::new(|d| {
                d.as_object_mut().unwrap().remove("jwks_uri");
            }),
        ),
        (
            "token_endpoint_auth_methods_supported",
            Box::new(|d| {
                d["token_endpoint_auth_methods_supported"] = serde_json::json!(["private_key_jwt"])
            }),
        ),
        ("document", Box::new(|d| *d = serde_json::json!([1]))),
    ];
    for (field, change) in cases {
        let mut doc = discovery_json();
        change(&mut doc);
        assert_eq!(field_of(parse(&config, &doc)), field);
    }
    assert_eq!(
        field_of(ProviderMetadata::from_discovery(
            &config,
            &vec![b' '; MAX_METADATA_BYTES + 1]
        )),
        "document"
    );
}

fn entra(issuer: &str) -> ProviderConfig {
    ProviderSettings {
        name: "entra".into(),
        preset: Some(Preset::Microsoft),
        issuer: Some(issuer.into()),
        client_id: "id".into(),
        client_secret: Some("s".into()),
        ..ProviderSettings::default()
    }
    .into_config()
    .unwrap()
}

#[test]
fn entra_multi_tenant_template() {
    let mut doc = discovery_json();
    doc["issuer"] = "https://login.microsoftonline.com/{tenantid}/v2.0".into();
    let m = parse(
        &entra("https://login.microsoftonline.com/common/v2.0"),
        &doc,
    )
    .unwrap();
    assert!(m.issuer_matches(
        "https://login.microsoftonline.com/abc-123/v2.0",
        Some("abc-123")
    ));
    assert!(!m.issuer_matches(
        "https://login.microsoftonline.com/abc-123/v2.0",
        Some("other")
    ));
    assert!(m.issuer_matches("https://login.microsoftonline.com/abc-123/v2.0", None));
    assert!(!m.issuer_matches("https://login.microsoftonline.com/a/b/v2.0", None));
    assert!(!m.issuer_matches("https://evil.example/abc/v2.0", None));
    // Only for the Microsoft preset, and only in the tenant segment.
    assert_eq!(field_of(parse(&oidc_config(), &doc)), "issuer");
    doc["issuer"] = "https://login.microsoftonline.com/{tenantid}/v1.0".into();
    assert_eq!(
        field_of(parse(
            &entra("https://login.microsoftonline.com/common/v2.0"),
            &doc
        )),
        "issuer"
    );
}

#[test]
fn oauth2_metadata_from_config() {
    let gh = ProviderSettings {
        name: "gh".into(),
        preset: Some(Preset::GitHub),
        client_id: "id".into(),
        client_secret: Some("s".into()),
        ..ProviderSettings::default()
    }
    .into_config()
    .unwrap();
    let m = ProviderMetadata::from_config(&gh).unwrap();
    assert_eq!(
        m.authorization_endpoint,
        crate::federation::preset::github::AUTHORIZE
    );
    assert_eq!(
        m.emails_endpoint.as_deref(),
        Some(crate::federation::preset::github::EMAILS)
    );
    assert!(!m.issuer_matches("https://github.com", None));
    assert!(matches!(
        ProviderMetadata::from_config(&oidc_config()),
        Err(FederationError::Config { .. })
    ));
}

/// The discovery document and key set of the test IdP (interop/idp, node-oidc-provider 9.13.3), as served.
#[test]
fn node_oidc_provider_golden() {
    let mut s = crate::federation::testing::oidc_settings();
    s.issuer = Some("http://127.0.0.1:32815".into());
    let config = s.into_config().unwrap();
    let m = ProviderMetadata::from_discovery(
        &config,
        include_bytes!("../testdata/oidc-provider-discovery.json"),
    )
    .unwrap();
    assert!(m.authorization_response_iss_parameter_supported);
    assert_eq!(m.offers_token_exchange(), Some(true));
    assert_eq!(
        m.id_token_signing_alg_values_supported,
        ["PS256", "RS256", "ES256"]
    );
    assert_eq!(
        m.revocation_endpoint.as_deref(),
        Some("http://127.0.0.1:32815/token/revocation")
    );
    let jwks =
        crate::federation::JwkSet::parse(include_bytes!("../testdata/oidc-provider-jwks.json"))
            .unwrap();
    assert_eq!(jwks.keys.len(), 2);
    assert!(jwks
        .candidates(Some("ec-a1dfd46b28aa18f5"), "ES256")
        .is_some_and(|k| k.len() == 1));
    assert!(jwks
        .candidates(Some("rsa-72e25b6e0be64ad6"), "RS256")
        .is_some_and(|k| k.len() == 1));
}
