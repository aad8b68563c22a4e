#![allow(clippy::unwrap_used)]
use super::*;
use crate::federation::testing::oidc_settings;

fn key_of(r: Result<ProviderConfig, FederationError>) -> String {
    match r.unwrap_err() {
        FederationError::Config { key, .. } => key,
        other => panic!("{other:?}"),
    }
}

type Case = (&'static str, Box<dyn Fn(&mut ProviderSettings)>);

#[test]
fn names() {
    for ok in ["corp", "a", "google-2", &"x".repeat(32)] {
        assert_eq!(ProviderName::parse(ok).unwrap().as_str(), ok);
    }
    for bad in ["", "Corp", "a_b", "a b", "é", &"x".repeat(33)] {
        assert!(ProviderName::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        ProviderName::parse("my-corp").unwrap().client_secret_env(),
        "PORTCULLIS_IDP_MY_CORP_CLIENT_SECRET"
    );
    let n: ProviderName = serde_json::from_str("\"corp\"").unwrap();
    assert_eq!(n.to_string(), "corp");
    assert!(serde_json::from_str::<ProviderName>("\"CORP\"").is_err());
}

#[test]
fn oidc_defaults() {
    let c = oidc_settings().into_config().unwrap();
    assert_eq!(c.kind, ProviderKind::Oidc);
    assert_eq!(c.display_name, "Corp SSO");
    assert_eq!(c.scopes, ["openid", "email", "profile"]);
    assert_eq!(
        c.token_endpoint_auth_method,
        ClientAuthMethod::ClientSecretBasic
    );
    assert_eq!(
        (c.subject_field.as_str(), c.username_field.as_str()),
        ("sub", "preferred_username")
    );
    assert_eq!(
        (c.email_field.as_str(), c.groups_claim.as_str()),
        ("email", "groups")
    );
    assert_eq!(format!("{:?}", c.client_secret), "Some([redacted])");
}

#[test]
fn presets_fill_in() {
    let g = ProviderSettings {
        name: "google".into(),
        preset: Some(Preset::Google),
        client_id: "id".into(),
        client_secret: Some("s".into()),
        allowed_domains: vec![" Example.COM ".into()],
        ..ProviderSettings::default()
    };
    let c = g.into_config().unwrap();
    assert_eq!(c.issuer.as_deref(), Some("https://accounts.google.com"));
    assert_eq!(c.display_name, "Google");
    assert_eq!(c.allowed_domains, ["example.com"]);
    let gh = ProviderSettings {
        name: "gh".into(),
        preset: Some(Preset::GitHub),
        client_id: "id".into(),
        client_secret: Some("s".into()),
        ..ProviderSettings::default()
    }
    .into_config()
    .unwrap();
    assert_eq!(gh.kind, ProviderKind::OAuth2);
    assert_eq!(
        gh.token_endpoint.as_deref(),
        Some("https://github.com/login/oauth/access_token")
    );
    assert_eq!(
        gh.emails_endpoint.as_deref(),
        Some("https://api.github.com/user/emails")
    );
    assert_eq!(
        (gh.subject_field.as_str(), gh.username_field.as_str()),
        ("id", "login")
    );
    assert_eq!(gh.scopes, ["read:user", "user:email"]);
    assert_eq!(
        gh.token_endpoint_auth_method,
        ClientAuthMethod::ClientSecretPost
    );
    assert_eq!(gh.issuer, None);
    let ms = ProviderSettings {
        name: "entra".into(),
        preset: Some(Preset::Microsoft),
        client_id: "id".into(),
        client_secret: Some("s".into()),
        ..ProviderSettings::default()
    }
    .into_config()
    .unwrap();
    assert_eq!(
        ms.issuer.as_deref(),
        Some("https://login.microsoftonline.com/common/v2.0")
    );
    // Okta needs its issuer.
    let okta = ProviderSettings {
        name: "okta".into(),
        preset: Some(Preset::Okta),
        client_id: "id".into(),
        client_secret: Some("s".into()),
        ..ProviderSettings::default()
    };
    assert_eq!(
        key_of(okta.into_config()),
        "identity_providers[okta].issuer"
    );
}

#[test]
fn toml_shaped_input() {
    let s: ProviderSettings = serde_json::from_value(serde_json::json!({
        "name": "corp", "issuer": "https://idp.example", "client_id": "c", "client_secret": "s",
        "preset": "keycloak", "token_endpoint_auth_method": "client_secret_post",
        "scope_from_groups": {"mcp-admins": ["mcp:admin"]}
    }))
    .unwrap();
    let c = s.into_config().unwrap();
    assert_eq!(c.preset, Some(Preset::Keycloak));
    assert_eq!(
        c.token_endpoint_auth_method,
        ClientAuthMethod::ClientSecretPost
    );
    assert!(
        serde_json::from_value::<ProviderSettings>(serde_json::json!({
            "name": "corp", "client_id": "c", "isuer": "typo"
        }))
        .is_err()
    );
}

#[test]
fn validation_names_the_key() {
    let cases: Vec<Case> = vec![
        ("name", Box::new(|s| s.name = "Bad Name".into())),
        (
            "issuer",
            Box::new(|s| s.issuer = Some("http://idp.example".into())),
        ),
        (
            "issuer",
            Box::new(|s| s.issuer = Some("https://idp.example?x=1".into())),
        ),
        ("issuer", Box::new(|s| s.issuer = None)),
        ("client_id", Box::new(|s| s.client_id = String::new())),
        ("client_secret", Box::new(|s| s.client_secret = None)),
        (
            "scopes",
            Box::new(|s| s.scopes = Some(vec!["email".into()])),
        ),
        (
            "scopes",
            Box::new(|s| s.scopes = Some(vec!["openid".into(), "a b".into()])),
        ),
        (
            "token_endpoint",
            Box::new(|s| s.token_endpoint = Some("https://idp.example/t".into())),
        ),
        (
            "display_name",
            Box::new(|s| s.display_name = Some(" ".into())),
        ),
        (
            "allowed_domains",
            Box::new(|s| s.allowed_domains = vec!["@example.com".into()]),
        ),
        (
            "scope_from_groups",
            Box::new(|s| {
                s.scope_from_groups.insert("g".into(), vec!["".into()]);
            }),
        ),
        (
            "groups_claim",
            Box::new(|s| {
                s.preset = Some(Preset::Auth0);
                s.allowed_groups = vec!["staff".into()];
            }),
        ),
        (
            "issuer",
            Box::new(|s| s.issuer = Some("https://:pw@idp.example".into())),
        ),
        (
            "display_name",
            Box::new(|s| s.display_name = Some("Corp\nSSO".into())),
        ),
        ("client_id", Box::new(|s| s.client_id = " ".into())),
        (
            "client_secret",
            Box::new(|s| s.client_secret = Some(" ".into())),
        ),
        (
            "allowed_domains",
            Box::new(|s| s.allowed_domains = vec!["*.example.com".into()]),
        ),
        (
            "allowed_domains",
            Box::new(|s| s.allowed_domains = vec![".example.com".into()]),
        ),
        (
            "allowed_groups",
            Box::new(|s| s.allowed_groups = vec![" ".into()]),
        ),
        (
            "scope_from_groups",
            Box::new(|s| {
                s.scope_from_groups
                    .insert(" ".into(), vec!["mcp:admin".into()]);
            }),
        ),
        (
            "email_field",
            Box::new(|s| s.email_field = Some(" ".into())),
        ),
    ];
    for (key, change) in cases {
        let mut s = oidc_settings();
        change(&mut s);
        let got = key_of(s.into_config());
        assert!(got.ends_with(key), "{key}: {got}");
    }
    // private_key_jwt needs no secret; http on loopback is fine.
    let mut s = oidc_settings();
    s.client_secret = None;
    s.token_endpoint_auth_method = Some(ClientAuthMethod::PrivateKeyJwt);
    s.issuer = Some("http://127.0.0.1:4000".into());
    s.into_config().unwrap();
}

#[test]
fn oauth2_kind_needs_its_endpoints() {
    let mut s = oidc_settings();
    s.kind = Some(ProviderKind::OAuth2);
    s.issuer = None;
    s.scopes = Some(vec!["profile".into()]);
    assert_eq!(
        key_of(s.clone().into_config()),
        "identity_providers[corp].authorization_endpoint"
    );
    s.authorization_endpoint = Some("https://as.example/authorize".into());
    s.token_endpoint = Some("https://as.example/token".into());
    s.userinfo_endpoint = Some("ftp://as.example/me".into());
    assert_eq!(
        key_of(s.clone().into_config()),
        "identity_providers[corp].userinfo_endpoint"
    );
    s.userinfo_endpoint = Some("https://as.example/me".into());
    let c = s.into_config().unwrap();
    assert_eq!(c.kind, ProviderKind::OAuth2);
}
