//! Every refusal of the federation settings, by variant, and each source of a client secret.

use super::*;
use crate::settings::{
    FileSettings, Overrides, Settings, UpstreamTokenHeader, UpstreamTokenMode,
    UpstreamTokenSettings,
};
use portcullis_authz::federation::{Preset, ProviderKind};

const CORP: &str = "[[identity_providers]]\nname = \"corp\"\ndisplay_name = \"Corp SSO\"\n\
                    issuer = \"https://login.example.com\"\nclient_id = \"portcullis\"\n";

fn no_env(_: &str) -> Option<String> {
    None
}

fn load_with(
    text: &str,
    flags: Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, SettingsError> {
    let file: FileSettings = toml::from_str(text).map_err(|e| SettingsError::InvalidFile {
        path: "test".into(),
        reason: e.to_string(),
    })?;
    Settings::layered_with_env(flags, file, env)
}

fn load(text: &str) -> Result<Settings, SettingsError> {
    load_with(text, Overrides::default(), &no_env)
}

fn err(text: &str) -> SettingsError {
    load(text).expect_err(text)
}

/// The key an `authz` refusal of a table names (`identity_providers[corp].issuer`).
fn refused_key(e: SettingsError) -> String {
    match e {
        SettingsError::IdpConfig { key, .. } => key,
        other => panic!("not a refused table: {other:?}"),
    }
}

#[test]
fn a_provider_with_an_inline_secret() {
    let s = load(&format!(
        "{CORP}client_secret = \"hunter2\"\nscopes = [\"openid\", \"email\"]\n\
         allowed_domains = [\"Example.COM\"]\nallowed_groups = [\"mcp-users\"]\n\
         scope_from_groups = {{ \"mcp-admins\" = [\"mcp:admin\"] }}\ngroups_claim = \"groups\"\n\
         token_endpoint_auth_method = \"client_secret_post\"\n"
    ))
    .unwrap();
    let f = &s.federation;
    assert!(f.password_login && !f.link_by_verified_email);
    assert_eq!(f.vault_key_file, None);
    let p = f.provider("corp").unwrap();
    assert_eq!(p.display_name, "Corp SSO");
    assert_eq!(p.issuer.as_deref(), Some("https://login.example.com"));
    assert_eq!(p.client_secret.as_ref().unwrap().expose(), "hunter2");
    assert_eq!(p.scopes, ["openid", "email"]);
    assert_eq!(p.kind, ProviderKind::Oidc);
    assert_eq!(p.allowed_domains, ["example.com"]);
    assert_eq!(p.scope_from_groups["mcp-admins"], ["mcp:admin"]);
    assert_eq!(
        p.token_endpoint_auth_method,
        ClientAuthMethod::ClientSecretPost
    );
    assert_eq!(s.sign_in().providers[0].display_name, "Corp SSO");
    assert_eq!(s.sign_in().providers[0].preset, None);
}

#[test]
fn secrets_never_reach_debug_output() {
    let text = format!("{CORP}client_secret = \"hunter2\"\n");
    let file: FileSettings = toml::from_str(&text).unwrap();
    let printed = format!("{file:?}");
    assert!(
        !printed.contains("hunter2") && printed.contains("[redacted]"),
        "{printed}"
    );
    let s = load(&text).unwrap();
    let printed = format!("{s:?}");
    assert!(
        !printed.contains("hunter2") && printed.contains("[redacted]"),
        "{printed}"
    );
}

#[test]
fn the_display_name_defaults_to_the_presets_label_else_the_name() {
    let s = load(
        "[[identity_providers]]\nname = \"g\"\npreset = \"google\"\nclient_id = \"c\"\nclient_secret = \"s\"\n",
    )
    .unwrap();
    let p = &s.federation.providers[0];
    assert_eq!(p.display_name, "Google");
    assert_eq!(p.preset, Some(Preset::Google));
    assert_eq!(
        p.issuer.as_deref(),
        Some("https://accounts.google.com"),
        "google fixes its issuer"
    );
    assert_eq!(
        p.token_endpoint_auth_method,
        ClientAuthMethod::ClientSecretBasic
    );
    assert_eq!(s.sign_in().providers[0].preset, Some(Preset::Google));
    let plain = load(
        "[[identity_providers]]\nname = \"corp\"\nissuer = \"https://i.example\"\nclient_id = \"c\"\nclient_secret = \"s\"\n",
    )
    .unwrap();
    assert_eq!(plain.federation.providers[0].display_name, "corp");
    let gh = load(
        "[[identity_providers]]\nname = \"gh\"\npreset = \"github\"\nclient_id = \"c\"\nclient_secret = \"s\"\n",
    )
    .unwrap();
    let p = &gh.federation.providers[0];
    assert_eq!(
        (p.kind, p.display_name.as_str()),
        (ProviderKind::OAuth2, "GitHub")
    );
    assert_eq!(
        p.token_endpoint_auth_method,
        ClientAuthMethod::ClientSecretPost,
        "the preset's quirks are applied at load"
    );
}

#[test]
fn the_secret_from_the_environment() {
    let text =
        "[[identity_providers]]\nname = \"corp-sso\"\nissuer = \"https://login.example.com\"\n\
                client_id = \"c\"\n";
    assert_eq!(
        ProviderName::parse("corp-sso").unwrap().client_secret_env(),
        "PORTCULLIS_IDP_CORP_SSO_CLIENT_SECRET"
    );
    let env = |name: &str| {
        (name == "PORTCULLIS_IDP_CORP_SSO_CLIENT_SECRET").then(|| "from-env".to_owned())
    };
    let s = load_with(text, Overrides::default(), &env).unwrap();
    assert_eq!(
        s.federation.providers[0]
            .client_secret
            .as_ref()
            .unwrap()
            .expose(),
        "from-env"
    );
    let empty = |_: &str| Some(String::new());
    assert_eq!(
        refused_key(load_with(text, Overrides::default(), &empty).unwrap_err()),
        "identity_providers[corp-sso].client_secret",
        "an empty variable is no secret"
    );
}

#[test]
fn the_secret_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corp.secret");
    std::fs::write(&path, "from-file\n").unwrap();
    let text = format!(
        "{CORP}client_secret_file = {:?}\n",
        path.display().to_string()
    );
    let s = load(&text).unwrap();
    assert_eq!(
        s.federation.providers[0]
            .client_secret
            .as_ref()
            .unwrap()
            .expose(),
        "from-file",
        "the trailing newline is not part of the secret"
    );
    let missing = dir.path().join("absent.secret");
    let text = format!(
        "{CORP}client_secret_file = {:?}\n",
        missing.display().to_string()
    );
    match err(&text) {
        SettingsError::IdpSecretFile { provider, path, .. } => {
            assert_eq!(provider, "corp");
            assert_eq!(path, missing.display().to_string());
        }
        other => panic!("{other:?}"),
    }
    let message = err(&text).to_string();
    assert!(
        message.contains("client_secret_file") && message.contains("absent.secret"),
        "{message}"
    );
}

#[test]
fn exactly_one_secret_source() {
    let none = err(CORP);
    assert!(
        none.to_string()
            .contains("client_secret_file, or PORTCULLIS_IDP_CORP_CLIENT_SECRET"),
        "{none}"
    );
    assert_eq!(refused_key(none), "identity_providers[corp].client_secret");
    let env = |_: &str| Some("x".to_owned());
    let both = load_with(
        &format!("{CORP}client_secret = \"s\"\n"),
        Overrides::default(),
        &env,
    );
    assert_eq!(
        both.unwrap_err(),
        SettingsError::IdpSecretSources {
            provider: "corp".into(),
            found: "client_secret, PORTCULLIS_IDP_CORP_CLIENT_SECRET".into(),
            env: "PORTCULLIS_IDP_CORP_CLIENT_SECRET".into(),
            private_key_jwt: false,
        }
    );
    let message = err(&format!(
        "{CORP}client_secret = \"s\"\nclient_secret_file = \"/x\"\n"
    ))
    .to_string();
    assert!(
        message.contains("client_secret, client_secret_file and PORTCULLIS_IDP_CORP_CLIENT_SECRET"),
        "{message}"
    );
    assert!(matches!(
        err(&format!(
            "{CORP}client_secret = \"s\"\nclient_secret_file = \"/x\"\n"
        )),
        SettingsError::IdpSecretSources { .. }
    ));
    let jwt = format!("{CORP}token_endpoint_auth_method = \"private_key_jwt\"\n");
    assert_eq!(
        load(&jwt).unwrap().federation.providers[0].client_secret,
        None
    );
    assert!(matches!(
        err(&format!("{jwt}client_secret = \"s\"\n")),
        SettingsError::IdpSecretSources {
            private_key_jwt: true,
            ..
        }
    ));
    assert_eq!(
        refused_key(err(&format!("{CORP}client_secret = \" \"\n"))),
        "identity_providers[corp].client_secret"
    );
}

#[test]
fn names_are_checked() {
    let with_name = |name: &str| {
        format!(
            "[[identity_providers]]\nname = {name:?}\nissuer = \"https://i.example\"\nclient_id = \"c\"\n\
             client_secret = \"s\"\n"
        )
    };
    for bad in ["", "Corp", "corp_sso", "corp sso", "cörp", &"a".repeat(33)] {
        assert_eq!(
            refused_key(err(&with_name(bad))),
            "identity_providers.name",
            "{bad}"
        );
    }
    assert!(load(&with_name(&"a".repeat(32))).is_ok());
    assert!(load(&with_name("corp-2")).is_ok());
    assert_eq!(
        err(&format!("{}{}", with_name("corp"), with_name("corp"))),
        SettingsError::DuplicateIdp("corp".into())
    );
}

#[test]
fn the_oauth2_kind_needs_its_endpoints() {
    let base = "[[identity_providers]]\nname = \"plain\"\nkind = \"oauth2\"\nclient_id = \"c\"\nclient_secret = \"s\"\n";
    assert_eq!(
        refused_key(err(base)),
        "identity_providers[plain].authorization_endpoint"
    );
    assert_eq!(
        err(&format!(
            "{base}authorization_endpoint = \"https://a.example/authorize\"\ntoken_endpoint = \"https://a.example/token\"\n"
        )),
        SettingsError::IdpConfig {
            key: "identity_providers[plain].userinfo_endpoint".into(),
            reason: "is required with kind = \"oauth2\"".into()
        }
    );
    let full = format!(
        "{base}authorization_endpoint = \"https://a.example/authorize\"\ntoken_endpoint = \"https://a.example/token\"\n\
         userinfo_endpoint = \"https://a.example/user\"\nsubject_field = \"id\"\nusername_field = \"login\"\n\
         email_field = \"email\"\n"
    );
    let s = load(&full).unwrap();
    let p = &s.federation.providers[0];
    assert_eq!(p.kind, ProviderKind::OAuth2);
    assert_eq!(p.subject_field, "id");
    assert_eq!(
        p.issuer, None,
        "an OAuth 2.0 server need not have an issuer"
    );
    let github = "[[identity_providers]]\nname = \"gh\"\npreset = \"github\"\nclient_id = \"c\"\nclient_secret = \"s\"\n";
    assert!(load(github).is_ok(), "the preset declares the endpoints");
    assert_eq!(
        refused_key(err(&format!(
            "{base}authorization_endpoint = \"http://a.example/authorize\"\n"
        ))),
        "identity_providers[plain].authorization_endpoint"
    );
    assert_eq!(
        refused_key(err(
            &full.replace("subject_field = \"id\"", "subject_field = \"\"")
        )),
        "identity_providers[plain].subject_field"
    );
}

#[test]
fn issuers_are_https_unless_loopback() {
    let with_issuer = |issuer: &str| {
        format!(
            "[[identity_providers]]\nname = \"corp\"\nissuer = {issuer:?}\nclient_id = \"c\"\nclient_secret = \"s\"\n"
        )
    };
    for bad in [
        "http://login.example.com",
        "https://login.example.com/?tenant=1",
        "https://login.example.com/#f",
        "https://u:p@login.example.com",
        "login.example.com",
    ] {
        let e = err(&with_issuer(bad));
        assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        assert_eq!(refused_key(e), "identity_providers[corp].issuer", "{bad}");
    }
    for good in [
        "https://login.example.com",
        "https://tenant.auth0.example/",
        "https://login.microsoftonline.com/organizations/v2.0",
        "http://127.0.0.1:4000",
        "http://localhost:4000/realms/test",
        "http://[::1]:4000",
    ] {
        assert!(load(&with_issuer(good)).is_ok(), "{good}");
    }
    assert_eq!(
        refused_key(err(
            "[[identity_providers]]\nname = \"corp\"\nclient_id = \"c\"\nclient_secret = \"s\"\n"
        )),
        "identity_providers[corp].issuer"
    );
    assert!(
        load("[[identity_providers]]\nname = \"ms\"\npreset = \"microsoft\"\nclient_id = \"c\"\nclient_secret = \"s\"\n").is_ok(),
        "Entra's multi-tenant issuer by default"
    );
    assert_eq!(
        refused_key(err(
            "[[identity_providers]]\nname = \"kc\"\npreset = \"keycloak\"\nclient_id = \"c\"\nclient_secret = \"s\"\n"
        )),
        "identity_providers[kc].issuer",
        "Keycloak's realm is the issuer"
    );
}

#[test]
fn nobody_could_sign_in() {
    assert_eq!(
        err("password_login = false\n"),
        SettingsError::NobodyCanSignIn
    );
    let sso_only = format!("password_login = false\n{CORP}client_secret = \"s\"\n");
    let s = load(&sso_only).unwrap();
    assert!(!s.federation.password_login && !s.sign_in().password_login);
    let flag_off = Overrides {
        password_login: Some(false),
        ..Overrides::default()
    };
    assert_eq!(
        load_with("", flag_off.clone(), &no_env).unwrap_err(),
        SettingsError::NobodyCanSignIn,
        "PORTCULLIS_PASSWORD_LOGIN=false over the default"
    );
    let flag_on = Overrides {
        password_login: Some(true),
        ..Overrides::default()
    };
    assert!(
        load_with("password_login = false\n", flag_on, &no_env)
            .unwrap()
            .federation
            .password_login,
        "the flag over the file"
    );
}

#[test]
fn vault_key_file_and_linking() {
    let s = load("vault_key_file = \"/etc/portcullis/vault.key\"\nlink_by_verified_email = true\n")
        .unwrap();
    assert_eq!(
        s.federation.vault_key_file.as_deref(),
        Some(Path::new("/etc/portcullis/vault.key"))
    );
    assert!(s.federation.link_by_verified_email);
    let flags = Overrides {
        vault_key_file: Some("/run/secrets/vault.key".into()),
        ..Overrides::default()
    };
    let s = load_with(
        "vault_key_file = \"/etc/portcullis/vault.key\"\n",
        flags,
        &no_env,
    )
    .unwrap();
    assert_eq!(
        s.federation.vault_key_file.as_deref(),
        Some(Path::new("/run/secrets/vault.key")),
        "PORTCULLIS_VAULT_KEY_FILE over the file"
    );
}

#[test]
fn unknown_keys_and_values_are_refused() {
    for bad in [
        format!("{CORP}client_secret = \"s\"\ncolour = \"blue\"\n"),
        format!("{CORP}client_secret = \"s\"\nkind = \"saml\"\n"),
        format!("{CORP}client_secret = \"s\"\npreset = \"facebook\"\n"),
        format!("{CORP}client_secret = \"s\"\ntoken_endpoint_auth_method = \"tls_client_auth\"\n"),
        "passwd_login = false\n".to_owned(),
        "[gateway]\nupstream_token_mode = \"magic\"\n".to_owned(),
    ] {
        assert!(
            matches!(err(&bad), SettingsError::InvalidFile { .. }),
            "{bad}"
        );
    }
}

#[test]
fn provider_values_are_checked() {
    let value = |extra: &str| err(&format!("{CORP}client_secret = \"s\"\n{extra}"));
    assert_eq!(
        refused_key(value("allowed_domains = [\"@example.com\"]\n")),
        "identity_providers[corp].allowed_domains"
    );
    assert_eq!(
        refused_key(value("allowed_groups = [\"\"]\n")),
        "identity_providers[corp].allowed_groups"
    );
    assert_eq!(
        refused_key(value("scope_from_groups = { \"\" = [\"mcp:admin\"] }\n")),
        "identity_providers[corp].scope_from_groups"
    );
    assert_eq!(
        refused_key(value("scopes = [\"open id\"]\n")),
        "identity_providers[corp].scopes"
    );
    assert_eq!(
        refused_key(value("groups_claim = \" \"\n")),
        "identity_providers[corp].groups_claim"
    );
    let no_display = "[[identity_providers]]\nname = \"corp\"\ndisplay_name = \" \"\n\
                      issuer = \"https://login.example.com\"\nclient_id = \"c\"\nclient_secret = \"s\"\n";
    assert_eq!(
        refused_key(err(no_display)),
        "identity_providers[corp].display_name"
    );
    assert_eq!(
        value("scope_from_groups = { admins = [\"files:admin\"] }\n"),
        SettingsError::IdpGroupScope {
            provider: "corp".into(),
            group: "admins".into(),
            scope: "files:admin".into()
        }
    );
    let catalogue = format!(
        "[[scopes]]\nname = \"files:admin\"\ndescription = \"Administer files\"\ndefault = true\n\
         {CORP}client_secret = \"s\"\nscope_from_groups = {{ admins = [\"files:admin\"] }}\n"
    );
    assert!(load(&catalogue).is_ok(), "the configured catalogue decides");
}

const GATEWAY: &str = "[gateway]\nupstream = \"https://mcp.vendor.example/mcp\"\n";

#[test]
fn the_gateway_sends_the_users_upstream_token() {
    let s = load(&format!(
        "{GATEWAY}upstream_token_from = \"corp\"\n\
         [[gateway.routes]]\npath = \"/github/mcp\"\nupstream = \"https://api.github.example/mcp\"\n\
         upstream_token_from = \"corp\"\nupstream_token_header = \"X-Upstream-Token\"\n\
         [[gateway.routes]]\npath = \"/jira/mcp\"\nupstream = \"https://jira.example/mcp\"\n\
         upstream_token_from = \"corp\"\nupstream_token_mode = \"exchange\"\nupstream_audience = \"jira\"\n\
         [[gateway.routes]]\npath = \"/files/mcp\"\nupstream = \"https://files.example/mcp\"\n\
         {CORP}client_secret = \"s\"\n"
    ))
    .unwrap();
    assert_eq!(
        s.gateway_upstream_token,
        Some(UpstreamTokenSettings {
            provider: "corp".into(),
            header: UpstreamTokenHeader::AuthorizationBearer,
            mode: UpstreamTokenMode::Stored,
        })
    );
    let github = &s.route_upstream_tokens["/github/mcp"];
    assert_eq!(
        github.header,
        UpstreamTokenHeader::Named(http::HeaderName::from_static("x-upstream-token"))
    );
    assert_eq!(
        s.route_upstream_tokens["/jira/mcp"].mode,
        UpstreamTokenMode::Exchange {
            audience: "jira".into()
        }
    );
    assert!(
        !s.route_upstream_tokens.contains_key("/files/mcp"),
        "routes do not inherit [gateway]'s upstream token"
    );
}

#[test]
fn upstream_token_refusals() {
    let corp = format!("{CORP}client_secret = \"s\"\n");
    let gw = |extra: &str| err(&format!("{GATEWAY}{extra}{corp}"));
    assert_eq!(
        gw("upstream_token_from = \"github\"\n"),
        SettingsError::UpstreamTokenProvider {
            table: "[gateway]".into(),
            name: "github".into()
        }
    );
    assert_eq!(
        gw("upstream_token_from = \"corp\"\nupstream_token_mode = \"exchange\"\n"),
        SettingsError::UpstreamAudienceMissing {
            table: "[gateway]".into()
        }
    );
    assert_eq!(
        gw("upstream_token_from = \"corp\"\nupstream_audience = \"x\"\n"),
        SettingsError::UpstreamTokenKey {
            table: "[gateway]".into(),
            key: "upstream_audience",
            needs: "upstream_token_mode = \"exchange\""
        }
    );
    assert_eq!(
        gw("upstream_token_header = \"X-Token\"\n"),
        SettingsError::UpstreamTokenKey {
            table: "[gateway]".into(),
            key: "upstream_token_header",
            needs: "upstream_token_from"
        }
    );
    for bad in [
        "X Token",
        "",
        "Host",
        "Content-Length",
        "X-Portcullis-Identity",
        "Mcp-Session-Id",
    ] {
        assert_eq!(
            gw(&format!(
                "upstream_token_from = \"corp\"\nupstream_token_header = {bad:?}\n"
            )),
            SettingsError::UpstreamTokenHeader {
                table: "[gateway]".into(),
                value: bad.into()
            },
            "{bad}"
        );
    }
    assert_eq!(
        err(&format!(
            "[gateway]\nupstream_token_from = \"corp\"\n{corp}"
        )),
        SettingsError::UpstreamTokenKey {
            table: "[gateway]".into(),
            key: "upstream_token_from",
            needs: "upstream (gateway mode)"
        }
    );
    assert_eq!(
        err(&format!(
            "[[gateway.routes]]\npath = \"/a/mcp\"\nupstream = \"https://a.example/mcp\"\n\
             upstream_token_from = \"nope\"\n{corp}"
        )),
        SettingsError::UpstreamTokenProvider {
            table: "[[gateway.routes]] /a/mcp".into(),
            name: "nope".into()
        }
    );
    let flags = Overrides {
        upstream: Some("https://mcp.vendor.example/mcp".into()),
        ..Overrides::default()
    };
    assert!(
        load_with(
            &format!("[gateway]\nupstream_token_from = \"corp\"\n{corp}"),
            flags,
            &no_env
        )
        .is_ok(),
        "--upstream is gateway mode too"
    );
    let explicit = load(&format!(
        "{GATEWAY}upstream_token_from = \"corp\"\nupstream_token_header = \"authorization\"\n{corp}"
    ))
    .unwrap();
    assert_eq!(
        explicit.gateway_upstream_token.unwrap().header,
        UpstreamTokenHeader::AuthorizationBearer
    );
}
