#![allow(clippy::unwrap_used)]
use super::*;
use crate::federation::provider::ProviderName;
use crate::federation::testing::oidc_config;

fn identity(email: Option<&str>, verified: bool, groups: &[&str]) -> ExternalIdentity {
    ExternalIdentity {
        provider: ProviderName::parse("corp").unwrap(),
        subject: "u".into(),
        username: None,
        email: email.map(str::to_owned),
        email_verified: verified,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

#[test]
fn open_provider_allows_everyone() {
    assert_eq!(
        check_policy(&oidc_config(), &identity(None, false, &[])).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn allowed_domains_need_a_verified_email() {
    let mut c = oidc_config();
    c.allowed_domains = vec!["example.com".into()];
    check_policy(&c, &identity(Some("carol@EXAMPLE.com"), true, &[])).unwrap();
    let e = check_policy(&c, &identity(Some("eve@other.org"), true, &[])).unwrap_err();
    assert_eq!(
        e,
        FederationError::DomainNotAllowed {
            domain: "other.org".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "your email domain other.org is not allowed here"
    );
    let e = check_policy(&c, &identity(Some("carol@example.com"), false, &[])).unwrap_err();
    assert!(
        matches!(&e, FederationError::EmailNotVerified(m) if m.contains("Corp SSO has not verified"))
    );
    assert!(matches!(
        check_policy(&c, &identity(None, false, &[])),
        Err(FederationError::EmailNotVerified(_))
    ));
    // Subdomains are other domains.
    assert!(check_policy(&c, &identity(Some("a@evil.example.com"), true, &[])).is_err());
}

#[test]
fn groups_allow_and_entitle() {
    let mut c = oidc_config();
    c.allowed_groups = vec!["mcp-users".into(), "mcp-admins".into()];
    c.scope_from_groups.insert(
        "mcp-admins".into(),
        vec!["mcp:admin".into(), "mcp:write".into()],
    );
    c.scope_from_groups
        .insert("writers".into(), vec!["mcp:write".into()]);
    assert_eq!(
        check_policy(&c, &identity(None, false, &["staff"])).unwrap_err(),
        FederationError::GroupNotAllowed
    );
    assert!(check_policy(&c, &identity(None, false, &["mcp-users"]))
        .unwrap()
        .is_empty());
    assert_eq!(
        check_policy(&c, &identity(None, false, &["mcp-admins", "writers"])).unwrap(),
        ["mcp:admin", "mcp:write"]
    );
    let mut other = oidc_config();
    other
        .scope_from_groups
        .insert("ops".into(), vec!["ops:read".into()]);
    let gated: Vec<String> = gated_scopes([&c, &other]).into_iter().collect();
    assert_eq!(gated, ["mcp:admin", "mcp:write", "ops:read"]);
}
