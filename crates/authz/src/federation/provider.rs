//! Upstream identity providers as configured: [`ProviderName`], [`ProviderKind`], [`Preset`] and
//! [`ProviderConfig`], the `[[identity_providers]]` TOML table after its preset is applied and every key checked.
//!
//! [`ProviderSettings`] is the raw table as deserialized from the TOML file (unknown keys refused; the field
//! names are the TOML keys). The server's settings layer reads `client_secret_file` /
//! `PORTCULLIS_IDP_<NAME>_CLIENT_SECRET` itself, puts the value in `client_secret` (a [`Secret`] from the
//! start), and calls [`ProviderSettings::into_config`] once, at load.

use super::error::FederationError;
use super::preset::{github, Preset};
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// A provider's name: `[a-z0-9-]{1,32}`. It is part of the callback URL (`<issuer>/idp/<name>/callback`) and
/// of the environment variable holding the client secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProviderName(String);

impl ProviderName {
    /// Parses a name: 1 to 32 characters of `[a-z0-9-]`.
    pub fn parse(name: &str) -> Result<Self, FederationError> {
        let ok = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(FederationError::Config {
                key: "identity_providers.name".into(),
                reason: format!("{name:?} must be 1 to 32 characters of a-z, 0-9 and '-'"),
            });
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The environment variable that may hold this provider's client secret:
    /// `PORTCULLIS_IDP_<NAME>_CLIENT_SECRET`, the name upper-cased with `-` as `_`.
    pub fn client_secret_env(&self) -> String {
        format!(
            "PORTCULLIS_IDP_{}_CLIENT_SECRET",
            self.0.to_ascii_uppercase().replace('-', "_")
        )
    }
}

impl fmt::Display for ProviderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ProviderName {
    type Error = FederationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ProviderName> for String {
    fn from(n: ProviderName) -> Self {
        n.0
    }
}

/// What protocol the provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProviderKind {
    /// OpenID Connect: endpoints and keys from discovery, identity from a signed ID token.
    #[serde(rename = "oidc")]
    Oidc,
    /// Plain OAuth 2.0: configured endpoints, identity from the userinfo endpoint.
    #[serde(rename = "oauth2")]
    OAuth2,
}

/// How Portcullis authenticates to the provider's token endpoint (OpenID Connect Core §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// HTTP Basic (RFC 6749 §2.3.1); the default.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body (RFC 6749 §2.3.1).
    ClientSecretPost,
    /// A JWT signed with Portcullis's own key (RFC 7523 §2.2, OpenID Connect Core §9).
    PrivateKeyJwt,
}

impl ClientAuthMethod {
    /// The registered name (OAuth Token Endpoint Authentication Methods registry).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// The raw `[[identity_providers]]` table: what the TOML file says, before the preset fills the gaps.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// `name`.
    pub name: String,
    /// `display_name`.
    pub display_name: Option<String>,
    /// `preset`.
    pub preset: Option<Preset>,
    /// `kind` (`oidc` unless the preset says otherwise).
    pub kind: Option<ProviderKind>,
    /// `issuer`.
    pub issuer: Option<String>,
    /// `authorization_endpoint` (kind `oauth2`).
    pub authorization_endpoint: Option<String>,
    /// `token_endpoint` (kind `oauth2`).
    pub token_endpoint: Option<String>,
    /// `userinfo_endpoint` (kind `oauth2`).
    pub userinfo_endpoint: Option<String>,
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`; the settings layer puts the file's or environment's value here. Read straight into a
    /// [`Secret`] (redacted in `Debug`), moved into [`ProviderConfig::client_secret`] by `into_config`.
    #[serde(default, with = "super::serde_secret::option")]
    pub client_secret: Option<Secret>,
    /// `client_secret_file`; read by the settings layer, ignored by [`ProviderSettings::into_config`].
    pub client_secret_file: Option<PathBuf>,
    /// `token_endpoint_auth_method`.
    pub token_endpoint_auth_method: Option<ClientAuthMethod>,
    /// `scopes`.
    pub scopes: Option<Vec<String>>,
    /// `subject_field` (kind `oauth2`).
    pub subject_field: Option<String>,
    /// `username_field` (kind `oauth2`).
    pub username_field: Option<String>,
    /// `email_field` (kind `oauth2`).
    pub email_field: Option<String>,
    /// `groups_claim`.
    pub groups_claim: Option<String>,
    /// `allowed_domains`.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// `allowed_groups`.
    #[serde(default)]
    pub allowed_groups: Vec<String>,
    /// `scope_from_groups`.
    #[serde(default)]
    pub scope_from_groups: BTreeMap<String, Vec<String>>,
}

impl fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("name", &self.name)
            .field("preset", &self.preset)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("client_secret_file", &self.client_secret_file)
            .finish_non_exhaustive()
    }
}

/// A provider, ready to use: every default filled in and every key checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    /// The name (callback URL path segment).
    pub name: ProviderName,
    /// What the sign-in page shows: "Continue with <display_name>".
    pub display_name: String,
    /// The preset applied, if any (its quirks are applied at each step).
    pub preset: Option<Preset>,
    /// OpenID Connect or plain OAuth 2.0.
    pub kind: ProviderKind,
    /// The issuer identifier: required for OpenID Connect (discovery is at
    /// `<issuer>/.well-known/openid-configuration`); optional for OAuth 2.0 (then RFC 9207 `iss` is not checked).
    pub issuer: Option<String>,
    /// The authorization endpoint (kind `oauth2`; discovered for OpenID Connect).
    pub authorization_endpoint: Option<String>,
    /// The token endpoint (kind `oauth2`).
    pub token_endpoint: Option<String>,
    /// The userinfo endpoint (kind `oauth2`).
    pub userinfo_endpoint: Option<String>,
    /// GitHub's `/user/emails` (the verified primary email); set by the GitHub preset only.
    pub emails_endpoint: Option<String>,
    /// The client id registered at the provider.
    pub client_id: String,
    /// The client secret (not needed with `private_key_jwt`).
    pub client_secret: Option<Secret>,
    /// Token endpoint authentication.
    pub token_endpoint_auth_method: ClientAuthMethod,
    /// The scopes requested upstream.
    pub scopes: Vec<String>,
    /// Userinfo member holding the stable subject (kind `oauth2`; default `sub`).
    pub subject_field: String,
    /// Userinfo member holding the username (kind `oauth2`; default `preferred_username`).
    pub username_field: String,
    /// Userinfo member holding the email (kind `oauth2`; default `email`).
    pub email_field: String,
    /// The claim holding the user's groups (default `groups`).
    pub groups_claim: String,
    /// Verified email domains allowed to sign in (lower-case); empty: any.
    pub allowed_domains: Vec<String>,
    /// Groups allowed to sign in; empty: any.
    pub allowed_groups: Vec<String>,
    /// Scopes a group entitles its members to.
    pub scope_from_groups: BTreeMap<String, Vec<String>>,
}

/// What a preset fills in when the table leaves it out.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PresetDefaults {
    kind: Option<ProviderKind>,
    issuer: Option<&'static str>,
    authorization_endpoint: Option<&'static str>,
    token_endpoint: Option<&'static str>,
    userinfo_endpoint: Option<&'static str>,
    emails_endpoint: Option<&'static str>,
    subject_field: Option<&'static str>,
    username_field: Option<&'static str>,
    scopes: &'static [&'static str],
    auth_method: Option<ClientAuthMethod>,
}

const OIDC_SCOPES: &[&str] = &["openid", "email", "profile"];

/// What `preset` fills in.
fn preset_defaults(preset: Preset) -> PresetDefaults {
    let oidc = PresetDefaults {
        kind: Some(ProviderKind::Oidc),
        scopes: OIDC_SCOPES,
        ..PresetDefaults::default()
    };
    match preset {
        Preset::Google => PresetDefaults {
            issuer: Some("https://accounts.google.com"),
            ..oidc
        },
        Preset::Microsoft => PresetDefaults {
            issuer: Some("https://login.microsoftonline.com/common/v2.0"),
            ..oidc
        },
        Preset::GitHub => PresetDefaults {
            kind: Some(ProviderKind::OAuth2),
            authorization_endpoint: Some(github::AUTHORIZE),
            token_endpoint: Some(github::TOKEN),
            userinfo_endpoint: Some(github::USER),
            emails_endpoint: Some(github::EMAILS),
            subject_field: Some("id"),
            username_field: Some("login"),
            scopes: &["read:user", "user:email"],
            // GitHub documents client_id and client_secret as form parameters of its token endpoint.
            auth_method: Some(ClientAuthMethod::ClientSecretPost),
            ..PresetDefaults::default()
        },
        Preset::Okta | Preset::Auth0 | Preset::Keycloak => oidc,
    }
}

impl Default for PresetDefaults {
    fn default() -> Self {
        Self {
            kind: None,
            issuer: None,
            authorization_endpoint: None,
            token_endpoint: None,
            userinfo_endpoint: None,
            emails_endpoint: None,
            subject_field: None,
            username_field: None,
            scopes: OIDC_SCOPES,
            auth_method: None,
        }
    }
}

impl ProviderSettings {
    /// Applies the preset, fills the defaults and checks every key ([`ProviderConfig::validate`]).
    pub fn into_config(self) -> Result<ProviderConfig, FederationError> {
        let name = ProviderName::parse(&self.name)?;
        let defaults = self.preset.map(preset_defaults).unwrap_or_default();
        let kind = self.kind.or(defaults.kind).unwrap_or(ProviderKind::Oidc);
        let or = |v: Option<String>, d: Option<&str>| v.or(d.map(str::to_owned));
        let display_name = self
            .display_name
            .or(self.preset.map(|p| p.display_name().to_owned()))
            .unwrap_or_else(|| name.as_str().to_owned());
        let config = ProviderConfig {
            display_name,
            preset: self.preset,
            kind,
            issuer: or(self.issuer, defaults.issuer),
            authorization_endpoint: or(
                self.authorization_endpoint,
                defaults.authorization_endpoint,
            ),
            token_endpoint: or(self.token_endpoint, defaults.token_endpoint),
            userinfo_endpoint: or(self.userinfo_endpoint, defaults.userinfo_endpoint),
            emails_endpoint: defaults.emails_endpoint.map(str::to_owned),
            client_id: self.client_id,
            client_secret: self.client_secret,
            token_endpoint_auth_method: self
                .token_endpoint_auth_method
                .or(defaults.auth_method)
                .unwrap_or_default(),
            scopes: self
                .scopes
                .unwrap_or_else(|| defaults.scopes.iter().map(|s| (*s).to_owned()).collect()),
            subject_field: or(self.subject_field, defaults.subject_field)
                .unwrap_or_else(|| "sub".into()),
            username_field: or(self.username_field, defaults.username_field)
                .unwrap_or_else(|| "preferred_username".into()),
            email_field: self.email_field.unwrap_or_else(|| "email".into()),
            groups_claim: self.groups_claim.unwrap_or_else(|| "groups".into()),
            allowed_domains: self
                .allowed_domains
                .iter()
                .map(|d| d.trim().to_ascii_lowercase())
                .collect(),
            allowed_groups: self
                .allowed_groups
                .iter()
                .map(|g| group_name(self.preset, g))
                .collect(),
            scope_from_groups: self
                .scope_from_groups
                .into_iter()
                .map(|(g, s)| (group_name(self.preset, &g), s))
                .collect(),
            name,
        };
        config.validate()?;
        Ok(config)
    }
}

/// A group as Portcullis compares it. Keycloak's group mapper sends full paths (`/mcp-users`,
/// `/parent/child`) by default; for the Keycloak preset one leading `/` is dropped, on both the configured
/// names and the token's, so `mcp-users` matches either way the mapper is set.
pub(crate) fn group_name(preset: Option<Preset>, group: &str) -> String {
    match preset {
        Some(Preset::Keycloak) => group.strip_prefix('/').unwrap_or(group).to_owned(),
        _ => group.to_owned(),
    }
}

impl ProviderConfig {
    /// Checks every key; the error names the first wrong one.
    pub fn validate(&self) -> Result<(), FederationError> {
        let err =
            |key: &str, reason: &str| FederationError::config(self.name.as_str(), key, reason);
        if self.display_name.trim().is_empty()
            || self.display_name.chars().count() > 64
            || self.display_name.chars().any(char::is_control)
        {
            return Err(err(
                "display_name",
                "must be one line of 1 to 64 characters",
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err(err("client_id", "must not be empty"));
        }
        self.validate_endpoints()?;
        let needs_secret = self.token_endpoint_auth_method != ClientAuthMethod::PrivateKeyJwt;
        if needs_secret
            && self
                .client_secret
                .as_ref()
                .is_none_or(|s| s.expose().trim().is_empty())
        {
            return Err(err(
                "client_secret",
                &format!(
                    "is required with {} (or set client_secret_file, or {})",
                    self.token_endpoint_auth_method.as_str(),
                    self.name.client_secret_env()
                ),
            ));
        }
        if self.scopes.iter().any(|s| !is_scope_token(s)) {
            return Err(err(
                "scopes",
                "each scope must be a non-empty token without spaces",
            ));
        }
        if self.kind == ProviderKind::Oidc && !self.scopes.iter().any(|s| s == "openid") {
            return Err(err("scopes", "OpenID Connect needs the \"openid\" scope"));
        }
        for (key, field) in [
            ("subject_field", &self.subject_field),
            ("username_field", &self.username_field),
            ("email_field", &self.email_field),
            ("groups_claim", &self.groups_claim),
        ] {
            if field.trim().is_empty() {
                return Err(err(key, "must not be empty"));
            }
        }
        self.validate_policy()
    }

    fn validate_endpoints(&self) -> Result<(), FederationError> {
        let name = self.name.as_str();
        if let Some(issuer) = &self.issuer {
            check_url(issuer, true).map_err(|r| FederationError::config(name, "issuer", r))?;
        }
        let endpoints = [
            ("authorization_endpoint", &self.authorization_endpoint),
            ("token_endpoint", &self.token_endpoint),
            ("userinfo_endpoint", &self.userinfo_endpoint),
        ];
        match self.kind {
            ProviderKind::Oidc => {
                if self.issuer.is_none() {
                    return Err(FederationError::config(
                        name,
                        "issuer",
                        "is required for OpenID Connect (endpoints and keys come from its discovery document)",
                    ));
                }
                if let Some((key, _)) = endpoints.iter().find(|(_, v)| v.is_some()) {
                    return Err(FederationError::config(
                        name,
                        key,
                        "is discovered for OpenID Connect; set it only with kind = \"oauth2\"",
                    ));
                }
            }
            ProviderKind::OAuth2 => {
                for (key, value) in endpoints {
                    let Some(value) = value else {
                        return Err(FederationError::config(
                            name,
                            key,
                            "is required with kind = \"oauth2\"",
                        ));
                    };
                    check_url(value, false).map_err(|r| FederationError::config(name, key, r))?;
                }
            }
        }
        Ok(())
    }

    fn validate_policy(&self) -> Result<(), FederationError> {
        let err =
            |key: &str, reason: &str| FederationError::config(self.name.as_str(), key, reason);
        // A DNS name, never `@example.com` or `*.example.com` (into_config has lower-cased and trimmed it).
        let bad_domain = |d: &String| {
            d.is_empty()
                || d.starts_with(['.', '-'])
                || !d
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        };
        if self.allowed_domains.iter().any(bad_domain) {
            return Err(err(
                "allowed_domains",
                "each entry must be a bare domain such as example.com",
            ));
        }
        if self.allowed_groups.iter().any(|g| g.trim().is_empty()) {
            return Err(err("allowed_groups", "entries must not be empty"));
        }
        if self.scope_from_groups.keys().any(|g| g.trim().is_empty()) {
            return Err(err("scope_from_groups", "must not name an empty group"));
        }
        if self
            .scope_from_groups
            .values()
            .flatten()
            .any(|s| !is_scope_token(s))
        {
            return Err(err(
                "scope_from_groups",
                "each scope must be a non-empty token without spaces",
            ));
        }
        let uses_groups = !self.allowed_groups.is_empty() || !self.scope_from_groups.is_empty();
        if uses_groups && self.preset == Some(Preset::Auth0) && self.groups_claim == "groups" {
            return Err(err(
                "groups_claim",
                "Auth0 puts groups in a namespaced custom claim (e.g. \"https://example.com/groups\"); name it",
            ));
        }
        Ok(())
    }

    /// The issuer to compare responses with, if any.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }
}

/// RFC 6749 §3.3 `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
pub(crate) fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// An absolute `https` URL (or `http` on a loopback host, for tests and local providers), without a fragment;
/// `issuer` also refuses a query (OpenID Connect Discovery §3, RFC 8414 §2).
pub(crate) fn check_url(value: &str, issuer: bool) -> Result<(), String> {
    let url = url::Url::parse(value).map_err(|_| format!("{value:?} is not an absolute URL"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(format!(
                "{value:?} must use https (http only on a loopback host)"
            ))
        }
    }
    if url.host().is_none()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(format!(
            "{value:?} must have a host and no fragment or user info"
        ));
    }
    if issuer && url.query().is_some() {
        return Err(format!("{value:?} must not have a query"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
