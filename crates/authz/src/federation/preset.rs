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
}
