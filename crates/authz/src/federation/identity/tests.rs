#![allow(clippy::unwrap_used)]
use super::*;
use crate::federation::provider::ProviderSettings;
use crate::federation::testing::oidc_config;
use serde_json::json;

fn claims(extra: Value) -> IdTokenClaims {
    let mut raw = json!({"iss": "https://idp.example", "sub": "u-1", "aud": "portcullis", "exp": 2, "iat": 1});
    raw.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let raw = raw.as_object().unwrap().clone();
    let s = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_owned);
    IdTokenClaims {
        iss: s("iss").unwrap(),
        sub: s("sub").unwrap(),
        aud: vec!["portcullis".into()],
        exp: 2,
        iat: 1,
        email: s("email"),
        email_verified: verified(&raw, "email_verified"),
        preferred_username: s("preferred_username"),
        name: s("name"),
        groups: groups(&raw, "groups").unwrap(),
        hd: s("hd"),
        tid: s("tid"),
        raw,
    }
}

fn preset(p: Preset, domains: &[&str]) -> ProviderConfig {
    ProviderSettings {
        name: p.as_str().into(),
        preset: Some(p),
        client_id: "id".into(),
        client_secret: Some("s".into()),
        allowed_domains: domains.iter().map(|d| (*d).to_owned()).collect(),
        ..ProviderSettings::default()
    }
    .into_config()
    .unwrap()
}

#[test]
fn from_id_token_alone_and_with_userinfo() {
    let config = oidc_config();
    let c = claims(
        json!({"email": "Carol@Example.com", "email_verified": true, "preferred_username": "carol",
                          "groups": ["staff"]}),
    );
    let id = ExternalIdentity::from_id_token(&config, &c, None).unwrap();
    assert_eq!(id.provider.as_str(), "corp");
    assert_eq!(id.subject, "u-1");
    assert_eq!(id.username.as_deref(), Some("carol"));
    assert!(id.email_verified);
    assert_eq!(id.email_domain().as_deref(), Some("example.com"));
    assert_eq!(id.groups, ["staff"]);
    // The ID token has no email: the userinfo's, with its own verification flag.
    let c = claims(json!({}));
    let info = json!({"sub": "u-1", "email": "c@example.com", "email_verified": false, "groups": ["g"],
                      "preferred_username": "cc"});
    let id =
        ExternalIdentity::from_id_token(&config, &c, Some(info.to_string().as_bytes())).unwrap();
    assert_eq!(
        (id.email.as_deref(), id.email_verified),
        (Some("c@example.com"), false)
    );
    assert_eq!(
        (id.username.as_deref(), id.groups.as_slice()),
        (Some("cc"), ["g".to_owned()].as_slice())
    );
    // OpenID Connect Core §5.3.2: another user's userinfo is refused.
    let other = json!({"sub": "u-2", "email": "mallory@example.com", "email_verified": true});
    assert!(matches!(
        ExternalIdentity::from_id_token(&config, &c, Some(other.to_string().as_bytes())),
        Err(FederationError::Userinfo(_))
    ));
    assert!(ExternalIdentity::from_id_token(&config, &c, Some(b"[]")).is_err());
}

#[test]
fn entra_verified_domain_claim() {
    let ms = preset(Preset::Microsoft, &[]);
    let c = claims(json!({"email": "a@contoso.com"}));
    assert!(
        !ExternalIdentity::from_id_token(&ms, &c, None)
            .unwrap()
            .email_verified
    );
    let c = claims(json!({"email": "a@contoso.com", "xms_edov": true}));
    assert!(
        ExternalIdentity::from_id_token(&ms, &c, None)
            .unwrap()
            .email_verified
    );
    // Only Entra's claim means that.
    assert!(
        !ExternalIdentity::from_id_token(&oidc_config(), &c, None)
            .unwrap()
            .email_verified
    );
}

#[test]
fn google_workspace_domain_is_checked_with_hd() {
    let g = preset(Preset::Google, &["example.com"]);
    let personal = claims(json!({"email": "a@example.com", "email_verified": true}));
    assert!(matches!(
        ExternalIdentity::from_id_token(&g, &personal, None),
        Err(FederationError::EmailNotVerified(_))
    ));
    let other = claims(json!({"email": "a@other.org", "email_verified": true, "hd": "other.org"}));
    assert_eq!(
        ExternalIdentity::from_id_token(&g, &other, None).unwrap_err(),
        FederationError::DomainNotAllowed {
            domain: "other.org".into()
        }
    );
    let ok = claims(json!({"email": "a@example.com", "email_verified": true, "hd": "example.com"}));
    assert!(ExternalIdentity::from_id_token(&g, &ok, None).is_ok());
    // Without allowed_domains, personal accounts are fine.
    assert!(ExternalIdentity::from_id_token(&preset(Preset::Google, &[]), &personal, None).is_ok());
}

#[test]
fn github_identity() {
    let gh = preset(Preset::GitHub, &[]);
    let user = json!({"id": 583231, "login": "octocat", "email": "public@example.com"});
    let emails = json!([
        {"email": "old@example.com", "primary": false, "verified": true},
        {"email": "octo@example.com", "primary": true, "verified": true}
    ]);
    let id = ExternalIdentity::from_userinfo(
        &gh,
        user.to_string().as_bytes(),
        Some(emails.to_string().as_bytes()),
    )
    .unwrap();
    assert_eq!(id.subject, "583231");
    assert_eq!(id.username.as_deref(), Some("octocat"));
    assert_eq!(
        (id.email.as_deref(), id.email_verified),
        (Some("octo@example.com"), true)
    );
    // An unverified primary address is no address; the public profile email is never used.
    let unverified = json!([{"email": "octo@example.com", "primary": true, "verified": false}]);
    let id = ExternalIdentity::from_userinfo(
        &gh,
        user.to_string().as_bytes(),
        Some(unverified.to_string().as_bytes()),
    )
    .unwrap();
    assert_eq!((id.email, id.email_verified), (None, false));
    let id = ExternalIdentity::from_userinfo(&gh, user.to_string().as_bytes(), None).unwrap();
    assert_eq!(id.email, None);
    assert!(
        ExternalIdentity::from_userinfo(&gh, user.to_string().as_bytes(), Some(b"{}")).is_err()
    );
}

#[test]
fn generic_oauth2_identity() {
    let mut config = oidc_config();
    config.subject_field = "uid".into();
    config.username_field = "name".into();
    config.email_field = "mail".into();
    let info =
        json!({"uid": "x-9", "name": "dave", "mail": "d@example.com", "email_verified": true});
    let id = ExternalIdentity::from_userinfo(&config, info.to_string().as_bytes(), None).unwrap();
    assert_eq!(
        (id.subject.as_str(), id.username.as_deref()),
        ("x-9", Some("dave"))
    );
    assert!(id.email_verified);
    for bad in [
        json!({"uid": 1.5}),
        json!({"uid": ""}),
        json!({"uid": {"a": 1}}),
        json!({}),
    ] {
        assert!(matches!(
            ExternalIdentity::from_userinfo(&config, bad.to_string().as_bytes(), None),
            Err(FederationError::Userinfo(_))
        ));
    }
}

#[test]
fn keycloak_group_paths() {
    let mut s = crate::federation::testing::oidc_settings();
    s.preset = Some(Preset::Keycloak);
    s.allowed_groups = vec!["/mcp-users".into()];
    s.scope_from_groups
        .insert("/mcp-admins".into(), vec!["mcp:admin".into()]);
    let kc = s.into_config().unwrap();
    assert_eq!(kc.allowed_groups, ["mcp-users"]);
    assert!(kc.scope_from_groups.contains_key("mcp-admins"));
    let c = claims(json!({"groups": ["/mcp-users", "/mcp-admins", "/a/b"]}));
    let id = ExternalIdentity::from_id_token(&kc, &c, None).unwrap();
    assert_eq!(id.groups, ["mcp-users", "mcp-admins", "a/b"]);
    assert_eq!(
        crate::federation::check_policy(&kc, &id).unwrap(),
        ["mcp:admin"]
    );
    // Other providers keep group names as sent.
    let id = ExternalIdentity::from_id_token(&oidc_config(), &c, None).unwrap();
    assert_eq!(id.groups[0], "/mcp-users");
}
