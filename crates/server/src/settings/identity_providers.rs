//! Federation settings (docs/federation.md): the top-level keys `password_login`, `link_by_verified_email` and
//! `vault_key_file`, and the `[[identity_providers]]` tables.
//!
//! Each table deserializes straight into `authz`'s [`ProviderSettings`] (its field names are the TOML keys;
//! unknown keys are refused). At load [`identity_providers`] checks what only the settings layer knows (unique
//! names, the client secret from exactly one source, `scope_from_groups` within the scope catalogue) and calls
//! [`ProviderSettings::into_config`], which applies the preset and checks every other key, so
//! [`FederationSettings::providers`] holds checked [`ProviderConfig`]s.

use super::error::SettingsError;
use portcullis_authz::federation::{
    ClientAuthMethod, FederationError, ProviderConfig, ProviderName, ProviderSettings,
};
use portcullis_authz::secret::Secret;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

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
    /// `[[identity_providers]]`, in file order, presets applied and checked.
    pub providers: Vec<ProviderConfig>,
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
    pub fn provider(&self, name: &str) -> Option<&ProviderConfig> {
        self.providers.iter().find(|p| p.name.as_str() == name)
    }
}

/// Checks every `[[identity_providers]]` table and builds its [`ProviderConfig`]. `scopes` is the scope catalogue
/// `scope_from_groups` may grant from; `env` looks environment variables up (the process environment outside
/// tests).
pub fn identity_providers(
    tables: Vec<ProviderSettings>,
    scopes: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<ProviderConfig>, SettingsError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(tables.len());
    for mut t in tables {
        let name = ProviderName::parse(&t.name).map_err(idp_error)?;
        if !seen.insert(name.clone()) {
            return Err(SettingsError::DuplicateIdp(t.name));
        }
        t.client_secret = client_secret(&name, &mut t, env)?;
        let config = t.into_config().map_err(idp_error)?;
        check_group_scopes(&config, scopes)?;
        out.push(config);
    }
    Ok(out)
}

/// `authz`'s refusal of a table, which names the key (`identity_providers[corp].issuer`).
fn idp_error(e: FederationError) -> SettingsError {
    match e {
        FederationError::Config { key, reason } => SettingsError::IdpConfig { key, reason },
        other => SettingsError::IdpConfig {
            key: "identity_providers".into(),
            reason: other.to_string(),
        },
    }
}

/// The federation settings: `password_login` must leave somebody a way to sign in.
pub fn federation(
    password_login: bool,
    link_by_verified_email: bool,
    vault_key_file: Option<PathBuf>,
    providers: Vec<ProviderConfig>,
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

/// The client secret from exactly one of `client_secret`, `client_secret_file` and the environment variable
/// `PORTCULLIS_IDP_<NAME>_CLIENT_SECRET`; none at all is refused by `into_config` unless the method is
/// `private_key_jwt` (which signs an assertion instead, and so takes no secret from any source).
fn client_secret(
    name: &ProviderName,
    t: &mut ProviderSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, SettingsError> {
    let env_name = name.client_secret_env();
    let inline = t.client_secret.take();
    let from_env = env(&env_name).filter(|v| !v.is_empty()).map(Secret::new);
    let mut found = Vec::new();
    if inline.is_some() {
        found.push("client_secret".to_owned());
    }
    if t.client_secret_file.is_some() {
        found.push("client_secret_file".to_owned());
    }
    if from_env.is_some() {
        found.push(env_name.clone());
    }
    let private_key_jwt = t.token_endpoint_auth_method == Some(ClientAuthMethod::PrivateKeyJwt);
    if found.len() > 1 || (private_key_jwt && !found.is_empty()) {
        return Err(SettingsError::IdpSecretSources {
            provider: t.name.clone(),
            found: found.join(", "),
            env: env_name,
            private_key_jwt,
        });
    }
    match &t.client_secret_file {
        Some(path) => read_secret_file(&t.name, path).map(Some),
        None => Ok(inline.or(from_env)),
    }
}

/// The file's text without the trailing line break editors and `echo` add.
fn read_secret_file(provider: &str, path: &Path) -> Result<Secret, SettingsError> {
    let mut text = std::fs::read_to_string(path).map_err(|e| SettingsError::IdpSecretFile {
        provider: provider.to_owned(),
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    text.truncate(text.trim_end_matches(['\r', '\n']).len());
    Ok(Secret::new(text))
}

/// Each group's scopes must be in the catalogue (the sign-in could never grant others).
fn check_group_scopes(config: &ProviderConfig, catalogue: &[String]) -> Result<(), SettingsError> {
    for (group, list) in &config.scope_from_groups {
        if let Some(scope) = list.iter().find(|s| !catalogue.contains(s)) {
            return Err(SettingsError::IdpGroupScope {
                provider: config.name.to_string(),
                group: group.clone(),
                scope: scope.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
