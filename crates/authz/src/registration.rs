//! Dynamic Client Registration policy (RFC 7591 §2, §3.2; security notes "Registration").
//!
//! Only the authorization code grant (with refresh) exists here, so a client must register at least one
//! redirect URI, `response_types` can only be `code`, and implicit or password grants are refused. Private-use
//! redirect schemes are accepted when reverse-domain (RFC 8252 §7.1) or listed in
//! [`RegistrationPolicy::redirect_schemes`]; `application_type` (OpenID Connect Registration 1.0 §2) is
//! inferred when absent and must fit the redirect URIs when present.

use crate::access_token::Audience;
use crate::config::LocalhostRedirects;
use crate::display_text;
use crate::error::AuthzError;
use crate::secret::TokenHash;
use crate::store::ClientRecord;
use portcullis_proto::redirect_uri::Kind;
use portcullis_proto::registration::ClientMetadata;
use portcullis_proto::{PrivateUseSchemes, RedirectUri, Scope};

/// Most redirect URIs one client may register.
pub const MAX_REDIRECT_URIS: usize = 10;
/// Longest `client_name`.
pub const MAX_NAME_LEN: usize = 200;
/// Longest display URI.
pub const MAX_URI_LEN: usize = 2000;

pub use portcullis_proto::registration::AuthMethod;

/// What the registration rules depend on in a deployment; the same for dynamic registration and Client ID
/// Metadata Documents.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrationPolicy {
    /// The scopes a registration may ask for (the catalogue and `offline_access`).
    pub supported_scopes: Scope,
    /// Private-use redirect schemes accepted besides reverse-domain ones (`allowed_redirect_schemes`).
    pub redirect_schemes: PrivateUseSchemes,
    /// What to do with `http://localhost` redirect URIs (`localhost_redirect_uris`; RFC 8252 §8.3).
    pub localhost: LocalhostRedirects,
}

/// A registered client, parsed from storage.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredClient {
    /// The client identifier.
    pub client_id: String,
    /// Redirect URIs.
    pub redirect_uris: Vec<RedirectUri>,
    /// Token endpoint authentication.
    pub auth_method: AuthMethod,
    /// Whether `refresh_token` is among its grant types.
    pub may_refresh: bool,
    /// Secret hash, for confidential clients.
    pub secret_hash: Option<TokenHash>,
    /// Registration time.
    pub created_at: i64,
    /// The registered metadata.
    pub metadata: ClientMetadata,
    /// `Some` for a resource server's introspection credential (`crate::introspection`): which audiences it
    /// serves. Such a client has no redirect URI and no grant type, so it can never obtain a token.
    pub introspection: Option<IntrospectionAudiences>,
}

impl RegisteredClient {
    /// Parses a stored record.
    pub fn from_record(record: &ClientRecord) -> Result<Self, AuthzError> {
        let corrupt =
            || AuthzError::Internal(format!("stored client {} is unreadable", record.client_id));
        let metadata: ClientMetadata =
            serde_json::from_str(&record.metadata_json).map_err(|_| corrupt())?;
        let redirect_uris = metadata
            .redirect_uris
            .iter()
            .map(|u| RedirectUri::parse_registered(u))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| corrupt())?;
        let auth_method = metadata
            .token_endpoint_auth_method
            .as_deref()
            .and_then(AuthMethod::parse)
            .ok_or_else(corrupt)?;
        let may_refresh = metadata
            .grant_types
            .as_ref()
            .is_some_and(|g| g.iter().any(|g| g == "refresh_token"));
        Ok(Self {
            client_id: record.client_id.clone(),
            redirect_uris,
            auth_method,
            may_refresh,
            secret_hash: record.secret_hash.clone(),
            created_at: record.created_at,
            metadata,
            introspection: record
                .introspection
                .as_deref()
                .map(IntrospectionAudiences::from_stored),
        })
    }

    /// The display name (unverified: chosen by whoever registered the client).
    pub fn name(&self) -> &str {
        self.metadata
            .client_name
            .as_deref()
            .unwrap_or("Unnamed client")
    }

    /// The registered redirect URI that `requested` matches (RFC 8252 §7.3 for loopback ports).
    pub fn redirect_uri_matching(&self, requested: &str) -> Option<&RedirectUri> {
        self.redirect_uris.iter().find(|r| r.matches(requested))
    }
}

/// The audiences a resource server's introspection credential serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntrospectionAudiences {
    /// Every audience of this issuer (made without `--resource`).
    Any,
    /// These resource identifiers (RFC 8707), exactly as the tokens' `aud` carries them.
    Only(Vec<String>),
}

impl IntrospectionAudiences {
    /// From the stored list ([`crate::store::ClientRecord::introspection`]): empty is [`Self::Any`].
    pub fn from_stored(resources: &[String]) -> Self {
        if resources.is_empty() {
            Self::Any
        } else {
            Self::Only(resources.to_vec())
        }
    }

    /// The list to store: empty for [`Self::Any`].
    pub fn to_stored(&self) -> Vec<String> {
        match self {
            Self::Any => Vec::new(),
            Self::Only(r) => r.clone(),
        }
    }

    /// Whether a token for `aud` is one this resource server serves.
    pub fn serves(&self, aud: &Audience) -> bool {
        match self {
            Self::Any => true,
            Self::Only(resources) => resources.iter().any(|r| aud.contains(r)),
        }
    }
}

fn invalid(msg: impl Into<String>) -> AuthzError {
    AuthzError::InvalidClientMetadata(msg.into())
}

/// Text shown to people: 1 to `max` characters, none of them a control, an invisible or a bidirectional
/// formatting character ([`display_text`]; Unicode TR36, CVE-2021-42574).
fn no_controls(field: &str, value: &str, max: usize) -> Result<(), AuthzError> {
    if value.is_empty() || value.chars().count() > max {
        return Err(invalid(format!("{field} must be 1 to {max} characters")));
    }
    if let Some(c) = display_text::first_hidden(value) {
        return Err(invalid(format!(
            "{field} contains {}: control characters and invisible or bidirectional formatting characters \
             (Unicode general categories Cc and Cf) are not allowed",
            display_text::code_point(c)
        )));
    }
    Ok(())
}

fn https_uri(field: &str, value: &Option<String>) -> Result<(), AuthzError> {
    if let Some(v) = value {
        let ok = v.len() <= MAX_URI_LEN
            && v.bytes().all(|b| (0x21..=0x7e).contains(&b))
            && url::Url::parse(v).is_ok_and(|u| {
                u.scheme() == "https" && u.host().is_some() && u.username().is_empty()
            });
        if !ok {
            return Err(invalid(format!("{field} must be an https URL")));
        }
    }
    Ok(())
}

/// Applies the registration rules to submitted metadata, returning the metadata to store and echo.
pub fn check_metadata(
    mut meta: ClientMetadata,
    policy: &RegistrationPolicy,
) -> Result<ClientMetadata, AuthzError> {
    let redirect_uris = check_redirect_uris(&meta.redirect_uris, &policy.redirect_schemes)?;
    if policy.localhost == LocalhostRedirects::Refuse {
        if let Some(u) = redirect_uris.iter().find(|u| u.names_localhost()) {
            return Err(AuthzError::InvalidRedirectUri(format!(
                "{u}: use a loopback IP literal such as http://127.0.0.1:PORT/ or http://[::1]:PORT/ instead of \
                 localhost (RFC 8252 §8.3); this server refuses localhost redirect URIs"
            )));
        }
    }
    meta.application_type =
        Some(application_type(meta.application_type.as_deref(), &redirect_uris)?.into());
    meta.token_endpoint_auth_method = Some(auth_method(&meta)?.as_str().into());
    meta.grant_types = Some(grant_types(meta.grant_types.take())?);
    meta.response_types = Some(response_types(meta.response_types.take())?);
    check_display_fields(&meta)?;
    if let Some(scope) = &meta.scope {
        meta.scope = supported_scope(scope, &policy.supported_scopes)?;
    }
    check_other_fields(&meta)?;
    // RFC 7591 §2: metadata the server does not understand is ignored, and not echoed.
    meta.extra.clear();
    Ok(meta)
}

/// At least one and at most [`MAX_REDIRECT_URIS`] redirect URIs, each valid for registration (RFC 7591 §2,
/// RFC 8252 §7), private-use schemes reverse-domain or in `schemes`.
fn check_redirect_uris(
    uris: &[String],
    schemes: &PrivateUseSchemes,
) -> Result<Vec<RedirectUri>, AuthzError> {
    if uris.is_empty() {
        return Err(AuthzError::InvalidRedirectUri(
            "at least one redirect_uri is required".into(),
        ));
    }
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(AuthzError::InvalidRedirectUri(format!(
            "at most {MAX_REDIRECT_URIS} redirect_uris are allowed"
        )));
    }
    uris.iter()
        .map(|uri| {
            RedirectUri::parse_allowing(uri, schemes)
                .map_err(|e| AuthzError::InvalidRedirectUri(e.to_string()))
        })
        .collect()
}

/// `application_type` (OpenID Connect Dynamic Client Registration 1.0 §2), `native` or `web`. Absent: inferred
/// from the redirect URIs (`web` when every one is https on a host that is not loopback, else `native`).
/// Present: it must fit them. Native clients redirect to a private-use scheme or a loopback host, so an https
/// URI elsewhere conflicts; web clients redirect to the web, so a private-use scheme conflicts. The refusal
/// names the first conflicting URI.
fn application_type(
    declared: Option<&str>,
    uris: &[RedirectUri],
) -> Result<&'static str, AuthzError> {
    let on_the_web = |u: &&RedirectUri| u.kind() == Kind::Https && !u.is_loopback_host();
    let conflict = |t: &str, u: &RedirectUri, why: &str| {
        invalid(format!(
            "application_type {t} conflicts with redirect URI {u}: {why} (OpenID Connect Registration §2)"
        ))
    };
    match declared {
        None if uris.iter().all(|u| on_the_web(&u)) => Ok("web"),
        None => Ok("native"),
        Some("native") => match uris.iter().find(on_the_web) {
            Some(u) => Err(conflict(
                "native",
                u,
                "a native client redirects to a private-use scheme or a loopback address, not an https URL",
            )),
            None => Ok("native"),
        },
        Some("web") => match uris.iter().find(|u| u.kind() == Kind::PrivateUse) {
            Some(u) => Err(conflict(
                "web",
                u,
                "a web client redirects to https URLs, not a private-use scheme",
            )),
            None => Ok("web"),
        },
        Some(_) => Err(invalid("application_type must be native or web")),
    }
}

/// The token endpoint authentication method; RFC 7591 §2: the default is `client_secret_basic`.
fn auth_method(meta: &ClientMetadata) -> Result<AuthMethod, AuthzError> {
    let method = meta
        .token_endpoint_auth_method
        .as_deref()
        .unwrap_or("client_secret_basic");
    AuthMethod::parse(method).ok_or_else(|| {
        invalid(
            "token_endpoint_auth_method must be none, client_secret_basic or client_secret_post",
        )
    })
}

/// The grant types in canonical order: `authorization_code` (required; the default), then `refresh_token`.
fn grant_types(requested: Option<Vec<String>>) -> Result<Vec<String>, AuthzError> {
    let grants = requested.unwrap_or_else(|| vec!["authorization_code".into()]);
    for g in &grants {
        if g != "authorization_code" && g != "refresh_token" {
            return Err(invalid(format!(
                "grant type {g:?} is not supported (only authorization_code and refresh_token)"
            )));
        }
    }
    if !grants.iter().any(|g| g == "authorization_code") {
        return Err(invalid("grant_types must include authorization_code"));
    }
    let mut grants_sorted: Vec<String> = vec!["authorization_code".into()];
    if grants.iter().any(|g| g == "refresh_token") {
        grants_sorted.push("refresh_token".into());
    }
    Ok(grants_sorted)
}

/// The response types: only `["code"]` (the default).
fn response_types(requested: Option<Vec<String>>) -> Result<Vec<String>, AuthzError> {
    let responses = requested.unwrap_or_else(|| vec!["code".into()]);
    if responses.is_empty() || responses.iter().any(|r| r != "code") {
        return Err(invalid("response_types must be [\"code\"]"));
    }
    Ok(vec!["code".into()])
}

/// What the consent page shows: the client name (one line, bounded) and https URIs.
fn check_display_fields(meta: &ClientMetadata) -> Result<(), AuthzError> {
    if let Some(name) = &meta.client_name {
        no_controls("client_name", name, MAX_NAME_LEN)?;
    }
    https_uri("client_uri", &meta.client_uri)?;
    https_uri("logo_uri", &meta.logo_uri)?;
    https_uri("tos_uri", &meta.tos_uri)?;
    https_uri("policy_uri", &meta.policy_uri)
}

/// The requested scope narrowed to the supported ones; unknown scopes are dropped (RFC 7591 §2: the server may
/// replace the requested value), nothing left is `None`.
fn supported_scope(scope: &str, supported: &Scope) -> Result<Option<String>, AuthzError> {
    let parsed = Scope::parse(scope).map_err(|_| invalid("scope is not a valid scope string"))?;
    let kept = parsed.intersection(supported);
    Ok(if kept.is_empty() {
        None
    } else {
        Some(kept.to_string())
    })
}

/// Contacts and software fields: bounded, one line each.
fn check_other_fields(meta: &ClientMetadata) -> Result<(), AuthzError> {
    if let Some(contacts) = &meta.contacts {
        if contacts.len() > 10 {
            return Err(invalid("at most 10 contacts are allowed"));
        }
        for c in contacts {
            no_controls("contacts", c, 320)?;
        }
    }
    for (field, v) in [
        ("software_id", &meta.software_id),
        ("software_version", &meta.software_version),
    ] {
        if let Some(v) = v {
            no_controls(field, v, 200)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::authz;

    fn seed_meta() -> ClientMetadata {
        serde_json::from_str(
            r#"{"client_name":"My MCP Client","redirect_uris":["http://localhost:8080/callback"],
                "grant_types":["authorization_code","refresh_token"],"response_types":["code"],
                "token_endpoint_auth_method":"none"}"#,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn registers_a_public_client() {
        let a = authz().await;
        let info = a.registrations().register(seed_meta()).await.unwrap();
        assert!(info.client_secret.is_none());
        assert_eq!(info.metadata.client_name.as_deref(), Some("My MCP Client"));
        let c = a
            .registrations()
            .client(&info.client_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.auth_method, AuthMethod::None);
        assert!(c.may_refresh);
    }

    #[tokio::test]
    async fn confidential_by_default_with_hashed_secret() {
        let a = authz().await;
        let mut m = seed_meta();
        m.token_endpoint_auth_method = None;
        let info = a.registrations().register(m).await.unwrap();
        let secret = info.client_secret.unwrap();
        assert_eq!(info.client_secret_expires_at, Some(0));
        let c = a
            .registrations()
            .client(&info.client_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.auth_method, AuthMethod::ClientSecretBasic);
        assert_eq!(c.secret_hash, Some(TokenHash::of(&secret)));
    }

    fn policy() -> RegistrationPolicy {
        RegistrationPolicy {
            supported_scopes: Scope::parse("mcp:tools").unwrap(),
            redirect_schemes: PrivateUseSchemes::mcp_clients(),
            localhost: crate::config::LocalhostRedirects::Warn,
        }
    }

    fn with_uris(
        uris: &[&str],
        application_type: Option<&str>,
    ) -> Result<ClientMetadata, AuthzError> {
        let mut m = seed_meta();
        m.redirect_uris = uris.iter().map(|u| (*u).to_owned()).collect();
        m.application_type = application_type.map(Into::into);
        check_metadata(m, &policy())
    }

    const CURSOR: &str = "cursor://anysphere.cursor-mcp/oauth/callback";

    /// `localhost_redirect_uris`: the name `localhost` is accepted under allow and warn, refused under refuse
    /// (RFC 8252 §8.3); loopback IP literals always pass.
    #[test]
    fn localhost_redirect_uris_follow_the_policy() {
        let with = |localhost, uri: &str| {
            let mut m = seed_meta();
            m.redirect_uris = vec![uri.to_owned()];
            let p = RegistrationPolicy {
                localhost,
                ..policy()
            };
            check_metadata(m, &p)
        };
        let name = "http://localhost:8787/callback";
        for ok in [LocalhostRedirects::Allow, LocalhostRedirects::Warn] {
            assert!(with(ok, name).is_ok());
        }
        let e = with(LocalhostRedirects::Refuse, name).unwrap_err();
        assert!(
            matches!(&e, AuthzError::InvalidRedirectUri(d) if d.contains("127.0.0.1") && d.contains("8252")),
            "{e:?}"
        );
        for literal in [
            "http://127.0.0.1:8787/callback",
            "http://[::1]:8787/callback",
        ] {
            assert!(
                with(LocalhostRedirects::Refuse, literal).is_ok(),
                "{literal}"
            );
        }
    }

    /// Cursor's redirect URI registers with the default list; an unlisted scheme is refused by name; the
    /// reverse-domain rule holds without any list.
    #[test]
    fn private_use_schemes_follow_the_list() {
        let m = with_uris(&[CURSOR, "http://localhost:8787/callback"], None).unwrap();
        assert_eq!(m.redirect_uris[0], CURSOR);
        let e = with_uris(&["windsurf://codeium.windsurf/cb"], None).unwrap_err();
        assert!(
            matches!(&e, AuthzError::InvalidRedirectUri(d) if d.contains("\"windsurf\" is not allowed")),
            "{e:?}"
        );
        let none = RegistrationPolicy {
            redirect_schemes: PrivateUseSchemes::none(),
            ..policy()
        };
        let cursor = ClientMetadata {
            redirect_uris: vec![CURSOR.into()],
            ..seed_meta()
        };
        assert!(matches!(
            check_metadata(cursor, &none),
            Err(AuthzError::InvalidRedirectUri(_))
        ));
        let reverse = ClientMetadata {
            redirect_uris: vec!["com.example.app:/oauth".into()],
            ..seed_meta()
        };
        assert!(check_metadata(reverse, &none).is_ok());
    }

    /// OpenID Connect Registration §2: absent, `application_type` is inferred and echoed.
    #[test]
    fn application_type_is_inferred() {
        let t = |uris: &[&str]| with_uris(uris, None).unwrap().application_type.unwrap();
        assert_eq!(t(&["https://app.example.com/cb"]), "web");
        assert_eq!(
            t(&["https://app.example.com/cb", "https://www.example.com/cb"]),
            "web"
        );
        assert_eq!(t(&["http://127.0.0.1/cb"]), "native");
        assert_eq!(t(&["https://localhost:8443/cb"]), "native");
        assert_eq!(t(&[CURSOR]), "native");
        assert_eq!(t(&["com.example.app:/cb"]), "native");
        assert_eq!(
            t(&[
                "https://app.example.com/cb",
                "http://localhost:8080/callback"
            ]),
            "native"
        );
    }

    /// Declared types that fit are kept; conflicts are `invalid_client_metadata` naming the URI.
    #[test]
    fn application_type_conflicts_name_the_uri() {
        let ok = |uris: &[&str], t: &str| {
            assert_eq!(
                with_uris(uris, Some(t))
                    .unwrap()
                    .application_type
                    .as_deref(),
                Some(t)
            )
        };
        ok(
            &["http://127.0.0.1/cb", CURSOR, "https://localhost/cb"],
            "native",
        );
        ok(&["https://app.example.com/cb"], "web");
        ok(
            &["https://app.example.com/cb", "http://localhost:3000/cb"],
            "web",
        );

        let refused = |uris: &[&str], t: &str| match with_uris(uris, Some(t)).unwrap_err() {
            AuthzError::InvalidClientMetadata(d) => d,
            e => panic!("{e:?}"),
        };
        let d = refused(
            &[
                "http://127.0.0.1/cb",
                "https://www.cursor.com/agents/mcp/oauth/callback",
            ],
            "native",
        );
        assert!(
            d.starts_with("application_type native conflicts with redirect URI https://www.cursor.com/agents/mcp/oauth/callback:"),
            "{d}"
        );
        let d = refused(&["https://app.example.com/cb", CURSOR], "web");
        assert!(
            d.starts_with(&format!(
                "application_type web conflicts with redirect URI {CURSOR}:"
            )),
            "{d}"
        );
        let d = refused(
            &["https://app.example.com/cb", "com.example.app:/cb"],
            "web",
        );
        assert!(d.contains("com.example.app:/cb"), "{d}");
        for other in ["Native", "desktop", ""] {
            assert_eq!(
                refused(&["https://app.example.com/cb"], other),
                "application_type must be native or web"
            );
        }
        assert_eq!(
            AuthzError::InvalidClientMetadata(d).code(),
            portcullis_proto::ErrorCode::InvalidClientMetadata
        );
    }

    #[tokio::test]
    async fn the_registration_response_echoes_the_type() {
        let a = authz().await;
        let mut m = seed_meta();
        m.redirect_uris = vec![CURSOR.into()];
        let info = a.registrations().register(m).await.unwrap();
        assert_eq!(info.metadata.application_type.as_deref(), Some("native"));
        let c = a
            .registrations()
            .client(&info.client_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.redirect_uris[0].as_str(), CURSOR);
        assert_eq!(c.metadata.application_type.as_deref(), Some("native"));
    }

    #[test]
    fn refusals_carry_the_rfc7591_code() {
        let with = |f: &dyn Fn(&mut ClientMetadata)| {
            let mut m = seed_meta();
            f(&mut m);
            check_metadata(m, &policy()).unwrap_err()
        };
        assert!(matches!(
            with(&|m| m.redirect_uris.clear()),
            AuthzError::InvalidRedirectUri(_)
        ));
        assert!(matches!(
            with(&|m| m.redirect_uris = vec!["javascript:alert(1)".into()]),
            AuthzError::InvalidRedirectUri(_)
        ));
        assert!(matches!(
            with(&|m| m.redirect_uris = vec!["http://evil.com/cb".into()]),
            AuthzError::InvalidRedirectUri(_)
        ));
        assert!(matches!(
            with(&|m| m.redirect_uris = vec!["https://a.com/cb".into(); 11]),
            AuthzError::InvalidRedirectUri(_)
        ));
        assert!(matches!(
            with(&|m| m.grant_types = Some(vec!["implicit".into()])),
            AuthzError::InvalidClientMetadata(_)
        ));
        assert!(matches!(
            with(&|m| m.grant_types = Some(vec!["password".into()])),
            AuthzError::InvalidClientMetadata(_)
        ));
        assert!(matches!(
            with(&|m| m.response_types = Some(vec!["token".into()])),
            AuthzError::InvalidClientMetadata(_)
        ));
        assert!(matches!(
            with(&|m| m.token_endpoint_auth_method = Some("private_key_jwt".into())),
            AuthzError::InvalidClientMetadata(_)
        ));
        assert!(matches!(
            with(&|m| m.logo_uri = Some("http://a.com/x.png".into())),
            AuthzError::InvalidClientMetadata(_)
        ));
        assert!(matches!(
            with(&|m| m.client_uri = Some("javascript:alert(1)".into())),
            AuthzError::InvalidClientMetadata(_)
        ));
        assert!(matches!(
            with(&|m| m.client_name = Some("a\u{0}b".into())),
            AuthzError::InvalidClientMetadata(_)
        ));
        assert!(matches!(
            with(&|m| m.client_name = Some("x".repeat(201))),
            AuthzError::InvalidClientMetadata(_)
        ));
    }

    #[test]
    fn hidden_characters_in_shown_fields_are_refused_by_code_point() {
        let refusal = |f: &dyn Fn(&mut ClientMetadata)| {
            let mut m = seed_meta();
            f(&mut m);
            match check_metadata(m, &policy()) {
                Err(AuthzError::InvalidClientMetadata(d)) => d,
                other => panic!("{other:?}"),
            }
        };
        for (c, named) in [
            ('\u{202E}', "U+202E"),
            ('\u{2066}', "U+2066"),
            ('\u{200B}', "U+200B"),
            ('\u{FEFF}', "U+FEFF"),
            ('\u{AD}', "U+00AD"),
        ] {
            let d = refusal(&|m| m.client_name = Some(format!("Safe{c} client")));
            assert!(d.contains("client_name") && d.contains(named), "{d}");
        }
        let d = refusal(&|m| m.contacts = Some(vec!["a\u{202E}@example.com".into()]));
        assert!(d.contains("contacts"), "{d}");
        let d = refusal(&|m| m.software_version = Some("1.0\u{200F}".into()));
        assert!(d.contains("software_version"), "{d}");
        // Names in other scripts stay accepted.
        let mut m = seed_meta();
        m.client_name = Some("عميل MCP 客户端".into());
        assert!(check_metadata(m, &policy()).is_ok());
    }

    #[test]
    fn unknown_scopes_and_members_are_dropped() {
        let mut m = seed_meta();
        m.scope = Some("mcp:tools read:jira-work".into());
        m.extra.insert("evil".into(), serde_json::json!(1));
        let out = check_metadata(m, &policy()).unwrap();
        assert_eq!(out.scope.as_deref(), Some("mcp:tools"));
        assert!(out.extra.is_empty());
    }
}
