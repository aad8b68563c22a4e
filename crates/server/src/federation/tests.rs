#![allow(clippy::unwrap_used)]
use super::pages::Failure;
use super::runtime::{provider_config, RuntimeError};
use crate::outbound::idp::IdpError;
use crate::settings::{IdentityProviderSettings, PresetSetting, ProviderKindSetting};
use axum::http::StatusCode;
use portcullis_authz::federation::{ClientAuthMethod, FederationError, Preset, ProviderKind};
use portcullis_authz::secret::Secret;
use std::collections::BTreeMap;

fn settings(name: &str) -> IdentityProviderSettings {
    IdentityProviderSettings {
        name: name.into(),
        display_name: "Corp SSO".into(),
        issuer: Some("https://idp.example.com".into()),
        client_id: "portcullis".into(),
        client_secret: Some(Secret::new("s3cret".to_owned())),
        scopes: None,
        kind: None,
        authorization_endpoint: None,
        token_endpoint: None,
        userinfo_endpoint: None,
        subject_field: None,
        username_field: None,
        email_field: None,
        preset: None,
        allowed_domains: vec!["example.com".into()],
        allowed_groups: vec![],
        scope_from_groups: BTreeMap::from([("admins".to_owned(), vec!["mcp:admin".to_owned()])]),
        token_endpoint_auth_method: None,
        groups_claim: None,
    }
}

#[test]
fn settings_become_the_authz_configuration() {
    let c = provider_config(&settings("corp")).unwrap();
    assert_eq!(c.name.as_str(), "corp");
    assert_eq!(c.display_name, "Corp SSO");
    assert_eq!(c.kind, ProviderKind::Oidc);
    assert_eq!(c.client_secret.as_ref().unwrap().expose(), "s3cret");
    assert_eq!(
        c.token_endpoint_auth_method,
        ClientAuthMethod::ClientSecretBasic
    );
    assert_eq!(c.scope_from_groups["admins"], vec!["mcp:admin".to_string()]);

    let mut gh = settings("gh");
    gh.preset = Some(PresetSetting::GitHub);
    gh.issuer = None;
    gh.display_name = "GitHub".into();
    let c = provider_config(&gh).unwrap();
    assert_eq!(c.preset, Some(Preset::GitHub));
    assert_eq!(c.kind, ProviderKind::OAuth2);
    assert_eq!(
        c.token_endpoint_auth_method,
        ClientAuthMethod::ClientSecretPost
    );
}

#[test]
fn a_bad_provider_is_named_in_the_error() {
    let mut s = settings("corp");
    s.kind = Some(ProviderKindSetting::OAuth2);
    s.issuer = None;
    let e = provider_config(&s).unwrap_err();
    let RuntimeError::Provider { key, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(key.starts_with("identity_providers[corp]"), "{key}");
}

#[test]
fn failures_have_the_status_the_user_needs() {
    let f = |e: FederationError| Failure::from_federation(&e, "Corp SSO").status;
    assert_eq!(
        f(FederationError::AccessDenied { description: None }),
        StatusCode::FORBIDDEN
    );
    assert_eq!(f(FederationError::GroupNotAllowed), StatusCode::FORBIDDEN);
    assert_eq!(f(FederationError::NonceMismatch), StatusCode::BAD_REQUEST);
    assert_eq!(f(FederationError::MissingIssuer), StatusCode::BAD_REQUEST);
    assert_eq!(
        f(FederationError::TokenResponse("x".into())),
        StatusCode::BAD_GATEWAY
    );
    let busy = FederationError::Upstream {
        code: "temporarily_unavailable".into(),
        description: None,
    };
    assert_eq!(f(busy), StatusCode::SERVICE_UNAVAILABLE);
    let i = |e: IdpError| Failure::from_idp(&e, "Corp SSO").status;
    assert_eq!(
        i(IdpError::Timeout { host: "h".into() }),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        i(IdpError::Unreachable { host: "h".into() }),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        i(IdpError::Validation(FederationError::BadSignature)),
        StatusCode::BAD_REQUEST
    );
    let refused = IdpError::Upstream {
        error: "invalid_grant".into(),
        description: None,
    };
    assert_eq!(i(refused), StatusCode::BAD_GATEWAY);
    let policy = Failure::from_federation(
        &FederationError::DomainNotAllowed {
            domain: "evil.example".into(),
        },
        "Corp SSO",
    );
    assert!(
        policy.message.contains("evil.example"),
        "{}",
        policy.message
    );
}
