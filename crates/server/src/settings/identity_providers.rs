//! Federation settings (docs/federation.md): the top-level keys `password_login`, `link_by_verified_email` and
//! `vault_key_file`, and the `[[identity_providers]]` tables, each checked at load into an
//! [`IdentityProviderSettings`] with its client secret read from exactly one source.
//!
//! Nothing here knows what a preset means: a preset's endpoints and quirks are applied where the provider
//! configuration is built (`portcullis_authz::federation`). These are the raw values, checked only as far as a
//! value can be checked on its own (OpenID Connect Discovery 1.0 §4.3 / RFC 8414 §2: issuers are https URLs
//! without query or fragment; http is accepted on loopback for development).

use super::error::SettingsError;
use portcullis_authz::secret::Secret;
use portcullis_proto::Scope;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest provider name (it is part of the callback URL and of an environment variable name).
pub const MAX_PROVIDER_NAME: usize = 32;

/// One `[[identity_providers]]` table as written. Unknown keys are an error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityProviderFile {
    pub name: String,
    pub display_name: Option<String>,
    pub issuer: Option<String>,
    pub client_id: String,
    /// Redacted when printed ([`Secret`]).
    pub client_secret: Option<SecretText>,
    pub client_secret_file: Option<PathBuf>,
    pub scopes: Option<Vec<String>>,
    pub kind: Option<ProviderKindSetting>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
    pub subject_field: Option<String>,
    pub username_field: Option<String>,
    pub email_field: Option<String>,
    pub preset: Option<PresetSetting>,
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    #[serde(default)]
    pub allowed_groups: Vec<String>,
    #[serde(default)]
    pub scope_from_groups: BTreeMap<String, Vec<String>>,
    pub token_endpoint_auth_method: Option<TokenEndpointAuthMethod>,
    pub groups_claim: Option<String>,
}

/// A secret read from the TOML file; `Debug` prints `[redacted]`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct SecretText(String);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `kind`: how the provider tells who the user is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKindSetting {
    /// OpenID Connect: discovery, ID token (the default).
    Oidc,
    /// Plain OAuth 2.0: declared endpoints, the user from the userinfo endpoint.
    #[serde(rename = "oauth2")]
    OAuth2,
}

/// `preset`: a well-known provider whose endpoints and quirks Portcullis knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresetSetting {
    Google,
    Microsoft,
    #[serde(rename = "github")]
    GitHub,
    Okta,
    Auth0,
    Keycloak,
}

impl PresetSetting {
    /// The name as written in the file (`"github"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Google => "google",
            Self::Microsoft => "microsoft",
            Self::GitHub => "github",
            Self::Okta => "okta",
            Self::Auth0 => "auth0",
            Self::Keycloak => "keycloak",
        }
    }

    /// The sign-in button's name when `display_name` is not set (the same as
    /// `portcullis_authz::federation::Preset::display_name`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Google => "Google",
            Self::Microsoft => "Microsoft",
            Self::GitHub => "GitHub",
            Self::Okta => "Okta",
            Self::Auth0 => "Auth0",
            Self::Keycloak => "Keycloak",
        }
    }

    /// Whether the preset has an issuer (or endpoints) of its own, so `issuer` may be left out: Google, GitHub,
    /// and Microsoft (the multi-tenant `common` issuer).
    fn has_own_issuer(self) -> bool {
        matches!(self, Self::Google | Self::GitHub | Self::Microsoft)
    }
}

/// `token_endpoint_auth_method` (OpenID Connect Core §9; RFC 7523 for `private_key_jwt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenEndpointAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
}

/// One identity provider, checked: the name is valid, the URLs are https (or http on loopback), the client
/// secret came from exactly one source. Endpoints and claims left `None` are the preset's or discovery's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityProviderSettings {
    /// `[a-z0-9-]{1,32}`: part of the callback URL `<issuer>/idp/<name>/callback`.
    pub name: String,
    /// What the sign-in page shows ("Continue with …"); default: the preset's label ("Google"), else the name.
    pub display_name: String,
    pub issuer: Option<String>,
    pub client_id: String,
    /// From `client_secret`, `client_secret_file` or `PORTCULLIS_IDP_<NAME>_CLIENT_SECRET`; `None` only with
    /// `token_endpoint_auth_method = "private_key_jwt"`.
    pub client_secret: Option<Secret>,
    /// `None`: the preset's scopes, else `openid email profile` for OpenID Connect.
    pub scopes: Option<Vec<String>>,
    /// `None`: the preset's kind, else OpenID Connect.
    pub kind: Option<ProviderKindSetting>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
    pub subject_field: Option<String>,
    pub username_field: Option<String>,
    pub email_field: Option<String>,
    pub preset: Option<PresetSetting>,
    /// Lower-cased domains; a user needs a verified email in one of them (empty: any).
    pub allowed_domains: Vec<String>,
    /// A user needs one of these groups (empty: any).
    pub allowed_groups: Vec<String>,
    /// Group name → scopes granted to its members (each scope in the catalogue).
    pub scope_from_groups: BTreeMap<String, Vec<String>>,
    pub token_endpoint_auth_method: Option<TokenEndpointAuthMethod>,
    pub groups_claim: Option<String>,
}

/// The federation settings as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederationSettings {
    /// Whether the sign-in page offers the password form (default true).
    pub password_login: bool,
    /// Link a first sign-in to the local user with the same verified email (default false; docs/federation.md
    /// "Linking" explains the takeover risk).
    pub link_by_verified_email: bool,
    /// The vault key file; `None`: `PORTCULLIS_VAULT_KEY`, else generated beside the database.
    pub vault_key_file: Option<PathBuf>,
    /// `[[identity_providers]]`, in file order.
    pub providers: Vec<IdentityProviderSettings>,
}

impl Default for FederationSettings {
    fn default() -> Self {
        Self {
            password_login: true,
            link_by_verified_email: false,
            vault_key_file: None,
            providers: Vec::new(),
        }
    }
}

impl FederationSettings {
    /// The provider called `name`.
    pub fn provider(&self, name: &str) -> Option<&IdentityProviderSettings> {
        self.providers.iter().find(|p| p.name == name)
    }
}

/// The environment variable that may hold a provider's client secret: `PORTCULLIS_IDP_<NAME>_CLIENT_SECRET`,
/// the name upper-cased with `-` as `_`.
pub fn client_secret_env(name: &str) -> String {
    format!(
        "PORTCULLIS_IDP_{}_CLIENT_SECRET",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

/// Checks every `[[identity_providers]]` table. `scopes` is the scope catalogue `scope_from_groups` may grant
/// from; `env` looks environment variables up (the process environment outside tests).
pub fn identity_providers(
    tables: &[IdentityProviderFile],
    scopes: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<IdentityProviderSettings>, SettingsError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        check_name(&t.name)?;
        if !seen.insert(t.name.as_str()) {
            return Err(SettingsError::DuplicateIdp(t.name.clone()));
        }
        out.push(provider(t, scopes, env)?);
    }
    Ok(out)
}

/// The federation settings: `password_login` must leave somebody a way to sign in.
pub fn federation(
    password_login: bool,
    link_by_verified_email: bool,
    vault_key_file: Option<PathBuf>,
    providers: Vec<IdentityProviderSettings>,
) -> Result<FederationSettings, SettingsError> {
    if !password_login && providers.is_empty() {
        return Err(SettingsError::NobodyCanSignIn);
    }
    Ok(FederationSettings {
        password_login,
        link_by_verified_email,
        vault_key_file,
        providers,
    })
}

fn check_name(name: &str) -> Result<(), SettingsError> {
    let ok = (1..=MAX_PROVIDER_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SettingsError::IdpName(name.to_owned()))
    }
}

/// One table, checked (its name already is).
fn provider(
    t: &IdentityProviderFile,
    scopes: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<IdentityProviderSettings, SettingsError> {
    let name = t.name.as_str();
    let value = |key: &'static str, reason: &str| SettingsError::IdpValue {
        provider: name.to_owned(),
        key,
        reason: reason.to_owned(),
    };
    let display_name = (t.display_name.clone())
        .or_else(|| t.preset.map(|p| p.label().to_owned()))
        .unwrap_or_else(|| name.to_owned());
    if display_name.trim().is_empty() || display_name.chars().any(char::is_control) {
        return Err(value("display_name", "must be one non-empty line"));
    }
    if t.client_id.trim().is_empty() {
        return Err(value("client_id", "must not be empty"));
    }
    check_urls(t)?;
    let client_secret = client_secret(t, env)?;
    if t.scopes
        .as_ref()
        .is_some_and(|s| Scope::from_tokens(s).is_err())
    {
        return Err(value("scopes", "each entry must be one scope token"));
    }
    if t.allowed_groups.iter().any(|g| g.trim().is_empty()) {
        return Err(value("allowed_groups", "must not list an empty group"));
    }
    if t.scope_from_groups.keys().any(|g| g.trim().is_empty()) {
        return Err(value("scope_from_groups", "must not name an empty group"));
    }
    for (key, field) in [
        ("subject_field", &t.subject_field),
        ("username_field", &t.username_field),
        ("email_field", &t.email_field),
        ("groups_claim", &t.groups_claim),
    ] {
        if field.as_deref().is_some_and(|f| f.trim().is_empty()) {
            return Err(value(key, "must not be empty"));
        }
    }
    Ok(IdentityProviderSettings {
        name: name.to_owned(),
        display_name,
        issuer: t.issuer.clone(),
        client_id: t.client_id.clone(),
        client_secret,
        scopes: t.scopes.clone(),
        kind: t.kind,
        authorization_endpoint: t.authorization_endpoint.clone(),
        token_endpoint: t.token_endpoint.clone(),
        userinfo_endpoint: t.userinfo_endpoint.clone(),
        subject_field: t.subject_field.clone(),
        username_field: t.username_field.clone(),
        email_field: t.email_field.clone(),
        preset: t.preset,
        allowed_domains: allowed_domains(name, &t.allowed_domains)?,
        allowed_groups: t.allowed_groups.clone(),
        scope_from_groups: scope_from_groups(name, &t.scope_from_groups, scopes)?,
        token_endpoint_auth_method: t.token_endpoint_auth_method,
        groups_claim: t.groups_claim.clone(),
    })
}

/// The issuer and the declared endpoints: each an https URL (http on loopback) without fragment or user info;
/// the issuer also without query. Required: the issuer unless the kind is `oauth2` or the preset fixes it; the
/// three endpoints for the `oauth2` kind without a preset.
fn check_urls(t: &IdentityProviderFile) -> Result<(), SettingsError> {
    let missing = |key: &'static str| SettingsError::IdpMissing {
        provider: t.name.clone(),
        key,
    };
    let oauth2 = t.kind == Some(ProviderKindSetting::OAuth2);
    match &t.issuer {
        Some(issuer) => check_url(&t.name, "issuer", issuer, true)?,
        None if oauth2 || t.preset.is_some_and(PresetSetting::has_own_issuer) => {}
        None => return Err(missing("issuer")),
    }
    for (key, value) in [
        ("authorization_endpoint", &t.authorization_endpoint),
        ("token_endpoint", &t.token_endpoint),
        ("userinfo_endpoint", &t.userinfo_endpoint),
    ] {
        match value {
            Some(url) => check_url(&t.name, key, url, false)?,
            None if oauth2 && t.preset.is_none() => return Err(missing(key)),
            None => {}
        }
    }
    Ok(())
}

fn check_url(
    provider: &str,
    key: &'static str,
    text: &str,
    issuer: bool,
) -> Result<(), SettingsError> {
    let err = || SettingsError::IdpUrl {
        provider: provider.to_owned(),
        key,
        value: text.to_owned(),
    };
    let url = url::Url::parse(text).map_err(|_| err())?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(err()),
    };
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    if !scheme_ok
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
        || (issuer && url.query().is_some())
    {
        return Err(err());
    }
    Ok(())
}

/// The client secret from exactly one of `client_secret`, `client_secret_file` and the environment variable;
/// none at all only for `private_key_jwt` (which signs an assertion instead).
fn client_secret(
    t: &IdentityProviderFile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, SettingsError> {
    enum Source<'a> {
        Inline(&'a str),
        File(&'a Path),
        Env(String),
    }
    let env_name = client_secret_env(&t.name);
    let mut sources: Vec<(String, Source<'_>)> = Vec::new();
    if let Some(SecretText(s)) = &t.client_secret {
        sources.push(("client_secret".into(), Source::Inline(s)));
    }
    if let Some(path) = &t.client_secret_file {
        sources.push(("client_secret_file".into(), Source::File(path)));
    }
    if let Some(s) = env(&env_name).filter(|v| !v.is_empty()) {
        sources.push((env_name.clone(), Source::Env(s)));
    }
    let private_key_jwt =
        t.token_endpoint_auth_method == Some(TokenEndpointAuthMethod::PrivateKeyJwt);
    let secret = match (sources.as_slice(), private_key_jwt) {
        ([], true) => return Ok(None),
        ([], false) => {
            return Err(SettingsError::IdpNoSecret {
                provider: t.name.clone(),
                env: env_name,
            })
        }
        ([(_, source)], false) => match source {
            Source::Inline(s) => (*s).to_owned(),
            Source::File(path) => read_secret_file(&t.name, path)?,
            Source::Env(s) => s.clone(),
        },
        _ => {
            let found: Vec<&str> = sources.iter().map(|(k, _)| k.as_str()).collect();
            return Err(SettingsError::IdpSecretSources {
                provider: t.name.clone(),
                found: found.join(", "),
                env: env_name,
                private_key_jwt,
            });
        }
    };
    if secret.trim().is_empty() {
        return Err(SettingsError::IdpValue {
            provider: t.name.clone(),
            key: "client_secret",
            reason: "is empty".into(),
        });
    }
    Ok(Some(Secret::new(secret)))
}

/// The file's text without the trailing line break editors and `echo` add.
fn read_secret_file(provider: &str, path: &Path) -> Result<String, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|e| SettingsError::IdpSecretFile {
        provider: provider.to_owned(),
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

/// Domains as DNS names, lower-cased (`example.com`, never `@example.com` or `*.example.com`).
fn allowed_domains(provider: &str, list: &[String]) -> Result<Vec<String>, SettingsError> {
    list.iter()
        .map(|d| {
            let d = d.trim().to_ascii_lowercase();
            let ok = !d.is_empty()
                && !d.starts_with(['.', '-'])
                && d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            ok.then_some(d).ok_or_else(|| SettingsError::IdpValue {
                provider: provider.to_owned(),
                key: "allowed_domains",
                reason: "each entry must be a domain name such as example.com".into(),
            })
        })
        .collect()
}

/// Each group's scopes must be scope tokens of the catalogue (the sign-in could never grant others).
fn scope_from_groups(
    provider: &str,
    map: &BTreeMap<String, Vec<String>>,
    catalogue: &[String],
) -> Result<BTreeMap<String, Vec<String>>, SettingsError> {
    for (group, list) in map {
        if let Some(scope) = list.iter().find(|s| !catalogue.contains(s)) {
            return Err(SettingsError::IdpGroupScope {
                provider: provider.to_owned(),
                group: group.clone(),
                scope: scope.clone(),
            });
        }
    }
    Ok(map.clone())
}

#[cfg(test)]
mod tests;
