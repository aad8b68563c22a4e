//! Presets: what each well-known provider needs filled in, and its quirks.
//!
//! - Google: issuer `https://accounts.google.com`; `hd` (the Workspace domain) is sent when exactly one domain
//!   is allowed and checked whenever `allowed_domains` is set (a consumer account may hold a verified address at
//!   any domain, and outlives the Workspace account it was made from).
//! - Microsoft (Entra ID): multi-tenant issuer (`…/common/v2.0`, `…/organizations/v2.0`) whose discovery document
//!   says `https://login.microsoftonline.com/{tenantid}/v2.0`; an ID token's `iss` is checked by substituting
//!   its `tid` claim. Entra refuses `resource` together with scopes, so `resource` is never sent upstream.
//! - GitHub: plain OAuth 2.0; the subject is the numeric `id`, the username `login`, the email the verified
//!   primary one from `/user/emails`.
//! - Okta, Auth0, Keycloak: OpenID Connect by discovery (issuer required); groups in `groups` (Auth0: a
//!   namespaced custom claim that `groups_claim` must name).

use super::provider::ProviderKind;
use serde::{Deserialize, Serialize};

/// A well-known provider whose endpoints and quirks Portcullis knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Google (accounts and Workspace).
    Google,
    /// Microsoft Entra ID (and personal Microsoft accounts through `common`).
    Microsoft,
    /// GitHub (OAuth 2.0 apps and GitHub Apps).
    #[serde(rename = "github")]
    GitHub,
    /// Okta.
    Okta,
    /// Auth0.
    Auth0,
    /// Keycloak.
    Keycloak,
}

/// GitHub's endpoints (docs.github.com, "Authorizing OAuth apps").
pub mod github {
    /// The authorization endpoint.
    pub const AUTHORIZE: &str = "https://github.com/login/oauth/authorize";
    /// The token endpoint.
    pub const TOKEN: &str = "https://github.com/login/oauth/access_token";
    /// The user endpoint (userinfo).
    pub const USER: &str = "https://api.github.com/user";
    /// The user's email addresses.
    pub const EMAILS: &str = "https://api.github.com/user/emails";
}

/// Entra ID's multi-tenant issuer as its discovery documents write it.
pub const ENTRA_TENANT_TEMPLATE: &str = "{tenantid}";

/// What a preset fills in when the table leaves it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PresetDefaults {
    pub(crate) kind: Option<ProviderKind>,
    pub(crate) issuer: Option<&'static str>,
    pub(crate) authorization_endpoint: Option<&'static str>,
    pub(crate) token_endpoint: Option<&'static str>,
    pub(crate) userinfo_endpoint: Option<&'static str>,
    pub(crate) emails_endpoint: Option<&'static str>,
    pub(crate) subject_field: Option<&'static str>,
    pub(crate) username_field: Option<&'static str>,
    pub(crate) scopes: &'static [&'static str],
}

const OIDC_SCOPES: &[&str] = &["openid", "email", "profile"];

impl Preset {
    /// The name shown on the sign-in button when `display_name` is not set.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::Google => "Google",
            Self::Microsoft => "Microsoft",
            Self::GitHub => "GitHub",
            Self::Okta => "Okta",
            Self::Auth0 => "Auth0",
            Self::Keycloak => "Keycloak",
        }
    }

    /// The preset's TOML name (`preset = "…"`), also usable as an icon name.
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

    /// What the preset fills in.
    pub(crate) fn defaults(self) -> PresetDefaults {
        let oidc = PresetDefaults {
            kind: Some(ProviderKind::Oidc),
            scopes: OIDC_SCOPES,
            ..PresetDefaults::default()
        };
        match self {
            Self::Google => PresetDefaults {
                issuer: Some("https://accounts.google.com"),
                ..oidc
            },
            Self::Microsoft => PresetDefaults {
                issuer: Some("https://login.microsoftonline.com/common/v2.0"),
                ..oidc
            },
            Self::GitHub => PresetDefaults {
                kind: Some(ProviderKind::OAuth2),
                authorization_endpoint: Some(github::AUTHORIZE),
                token_endpoint: Some(github::TOKEN),
                userinfo_endpoint: Some(github::USER),
                emails_endpoint: Some(github::EMAILS),
                subject_field: Some("id"),
                username_field: Some("login"),
                scopes: &["read:user", "user:email"],
                ..PresetDefaults::default()
            },
            Self::Okta | Self::Auth0 | Self::Keycloak => oidc,
        }
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
        }
    }
}
