//! [`ExternalIdentity`]: who the provider says the user is, from a validated ID token (and optionally the
//! userinfo response, OpenID Connect Core §5.3) or, for a plain OAuth 2.0 provider, from its userinfo JSON
//! through the configured `subject_field` / `username_field` / `email_field` (GitHub: `id`, `login`, and the
//! verified primary address of `/user/emails`).

use super::error::FederationError;
use super::id_token::{groups, verified, IdTokenClaims};
use super::preset::Preset;
use super::provider::{group_name, ProviderConfig, ProviderName};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Largest userinfo (or `/user/emails`) response accepted.
pub const MAX_USERINFO_BYTES: usize = 256 * 1024;

/// A user as an upstream provider identifies them. `(provider, subject)` is the stable key; the email is
/// never a key on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalIdentity {
    /// The provider.
    pub provider: ProviderName,
    /// The provider's stable identifier for the user (`sub`; GitHub's numeric `id` as a string).
    pub subject: String,
    /// A username (`preferred_username`, GitHub's `login`), if any. Not unique across providers, not verified.
    pub username: Option<String>,
    /// An email address, if any.
    pub email: Option<String>,
    /// Whether the provider says it verified `email`.
    pub email_verified: bool,
    /// The user's groups, from the configured groups claim.
    pub groups: Vec<String>,
}

fn object(body: &[u8], what: &str) -> Result<Map<String, Value>, FederationError> {
    if body.len() > MAX_USERINFO_BYTES {
        return Err(FederationError::Userinfo(format!(
            "{what} is larger than 256 KiB"
        )));
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(FederationError::Userinfo(format!(
            "{what} is not a JSON object"
        ))),
    }
}

fn text(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl ExternalIdentity {
    /// The identity of an OpenID Connect sign-in. A userinfo response, when fetched, must be about the same
    /// user (`sub` equal, OpenID Connect Core §5.3.2); it fills what the ID token left out. Email and its
    /// verification always come from the same source. Entra marks a verified domain with `xms_edov`
    /// (an optional claim) rather than `email_verified`. Google with `allowed_domains`: the Workspace
    /// domain `hd` must be one of them.
    pub fn from_id_token(
        config: &ProviderConfig,
        claims: &IdTokenClaims,
        userinfo: Option<&[u8]>,
    ) -> Result<Self, FederationError> {
        check_google_hosted_domain(config, claims)?;
        let info = userinfo
            .map(|b| object(b, "the userinfo response"))
            .transpose()?;
        if let Some(info) = &info {
            if text(info, "sub").as_deref() != Some(claims.sub.as_str()) {
                return Err(FederationError::Userinfo(
                    "its sub differs from the ID token's".into(),
                ));
            }
        }
        let entra_verified =
            config.preset == Some(Preset::Microsoft) && verified(&claims.raw, "xms_edov");
        let (email, email_verified) = match (&claims.email, &info) {
            (Some(e), _) => (Some(e.clone()), claims.email_verified || entra_verified),
            (None, Some(info)) => (text(info, "email"), verified(info, "email_verified")),
            (None, None) => (None, false),
        };
        let username = claims
            .preferred_username
            .clone()
            .or_else(|| info.as_ref().and_then(|i| text(i, "preferred_username")));
        let groups = match (&claims.groups, &info) {
            (Some(g), _) => g.clone(),
            (None, Some(info)) => groups(info, &config.groups_claim)?.unwrap_or_default(),
            (None, None) => Vec::new(),
        };
        let groups = groups
            .iter()
            .map(|g| group_name(config.preset, g))
            .collect();
        Ok(Self {
            provider: config.name.clone(),
            subject: claims.sub.clone(),
            username,
            email_verified: email.is_some() && email_verified,
            email,
            groups,
        })
    }

    /// The identity of a plain OAuth 2.0 sign-in, from the userinfo JSON: the subject from `subject_field`
    /// (a string, or an integer such as GitHub's `id`, stringified), the username from `username_field`, the
    /// email from `email_field` with `email_verified` (GitHub: from `emails`, the `/user/emails` array, its
    /// primary verified address only; the profile's public email is ignored).
    pub fn from_userinfo(
        config: &ProviderConfig,
        userinfo: &[u8],
        emails: Option<&[u8]>,
    ) -> Result<Self, FederationError> {
        let info = object(userinfo, "the userinfo response")?;
        let subject = match info.get(&config.subject_field) {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 255 => s.clone(),
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
            _ => {
                return Err(FederationError::Userinfo(format!(
                    "no usable {} (subject_field) member",
                    config.subject_field
                )))
            }
        };
        let (email, email_verified) = if config.preset == Some(Preset::GitHub) {
            (
                emails.map(github_primary_email).transpose()?.flatten(),
                true,
            )
        } else {
            (
                text(&info, &config.email_field),
                verified(&info, "email_verified"),
            )
        };
        Ok(Self {
            provider: config.name.clone(),
            subject,
            username: text(&info, &config.username_field),
            email_verified: email.is_some() && email_verified,
            email,
            groups: groups(&info, &config.groups_claim)?
                .unwrap_or_default()
                .iter()
                .map(|g| group_name(config.preset, g))
                .collect(),
        })
    }

    /// The domain of the email, lower-cased, if it has one.
    pub fn email_domain(&self) -> Option<String> {
        let email = self.email.as_deref()?;
        let (_, domain) = email.rsplit_once('@')?;
        (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
    }
}

/// Google: with `allowed_domains` set, the account must be managed by one of them (`hd`, the Workspace
/// domain). A consumer Google account can hold a verified address at any domain, and outlives the Workspace
/// account it was made with, so the email alone proves nothing about the organisation.
fn check_google_hosted_domain(
    config: &ProviderConfig,
    claims: &IdTokenClaims,
) -> Result<(), FederationError> {
    if config.preset != Some(Preset::Google) || config.allowed_domains.is_empty() {
        return Ok(());
    }
    match claims.hd.as_deref().map(str::to_ascii_lowercase) {
        Some(hd) if config.allowed_domains.contains(&hd) => Ok(()),
        Some(hd) => Err(FederationError::DomainNotAllowed { domain: hd }),
        None => Err(FederationError::EmailNotVerified(
            "this is a personal Google account; sign in with your organisation's Google Workspace account"
                .into(),
        )),
    }
}

/// GitHub's `/user/emails`: `[{"email", "primary", "verified", "visibility"}]`; the primary address when
/// GitHub has verified it.
fn github_primary_email(body: &[u8]) -> Result<Option<String>, FederationError> {
    if body.len() > MAX_USERINFO_BYTES {
        return Err(FederationError::Userinfo(
            "the email list is larger than 256 KiB".into(),
        ));
    }
    let Ok(Value::Array(list)) = serde_json::from_slice::<Value>(body) else {
        return Err(FederationError::Userinfo(
            "the email list is not a JSON array".into(),
        ));
    };
    let is_true = |v: &Value, k: &str| v.get(k).and_then(Value::as_bool) == Some(true);
    Ok(list
        .iter()
        .find(|e| is_true(e, "primary") && is_true(e, "verified"))
        .and_then(|e| e.get("email").and_then(Value::as_str))
        .map(str::to_owned))
}

#[cfg(test)]
mod tests;
