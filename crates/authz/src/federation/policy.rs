//! Who may sign in through a provider, and what they are entitled to: `allowed_domains` (verified email
//! domains only; for Google the Workspace `hd` is checked when the identity is built, see
//! [`super::identity`]), `allowed_groups` (one match), and `scope_from_groups`
//! (scopes a group entitles its members to; such scopes are *gated*: nobody else gets them).

use super::error::FederationError;
use super::identity::ExternalIdentity;
use super::provider::ProviderConfig;
use std::collections::BTreeSet;

/// Checks the identity against the provider's policy; returns the gated scopes the user's groups entitle them
/// to (sorted, no duplicates). The error says why in words the sign-in page can show.
pub fn check_policy(
    config: &ProviderConfig,
    identity: &ExternalIdentity,
) -> Result<Vec<String>, FederationError> {
    if !config.allowed_domains.is_empty() {
        let Some(domain) = identity.email_domain() else {
            return Err(FederationError::EmailNotVerified(format!(
                "{} did not give an email address, and only some email domains are allowed here",
                config.display_name
            )));
        };
        if !identity.email_verified {
            return Err(FederationError::EmailNotVerified(format!(
                "{} has not verified your email address, and only verified addresses of some domains are \
                 allowed here",
                config.display_name
            )));
        }
        if !config.allowed_domains.contains(&domain) {
            return Err(FederationError::DomainNotAllowed { domain });
        }
    }
    if !config.allowed_groups.is_empty()
        && !identity
            .groups
            .iter()
            .any(|g| config.allowed_groups.contains(g))
    {
        return Err(FederationError::GroupNotAllowed);
    }
    let entitled: BTreeSet<&String> = config
        .scope_from_groups
        .iter()
        .filter(|(group, _)| identity.groups.contains(group))
        .flat_map(|(_, scopes)| scopes)
        .collect();
    Ok(entitled.into_iter().cloned().collect())
}

/// The scopes that need an entitlement: every scope some provider's `scope_from_groups` hands out. A user
/// signing in any other way (password, another provider) never gets them.
pub fn gated_scopes<'a>(
    providers: impl IntoIterator<Item = &'a ProviderConfig>,
) -> BTreeSet<String> {
    providers
        .into_iter()
        .flat_map(|p| p.scope_from_groups.values().flatten().cloned())
        .collect()
}

#[cfg(test)]
mod tests;
