//! [`Runtime`]: what the sign-in through identity providers (and the gateway's upstream tokens) needs at run
//! time, built once at start by [`Runtime::start`] when `[[identity_providers]]` exist.
//!
//! The providers come checked from the settings (each table became an `authz` [`ProviderConfig`] at load,
//! presets applied). At start each OpenID Connect provider's discovery document is fetched and checked (OpenID Connect Discovery 1.0 §4): an
//! issuer that cannot be reached, or a document without the authorization code flow, stops the start with an
//! error naming `identity_providers[<name>]`. Later the [`IdpClient`]'s cache refreshes the metadata (1 h,
//! served stale while the provider is down).

use crate::limits::CountedLimiter;
use crate::outbound::idp::{AssertionSigner, IdpClient, IdpError, IdpSettings};
use crate::settings::FederationSettings;
use crate::vault_key::{self, VaultKeyError};
use portcullis_authz::federation::tokens::sign_client_assertion;
use portcullis_authz::federation::{gated_scopes, ProviderConfig, ProviderMetadata};
use portcullis_authz::vault::Vault;
use portcullis_authz::Authz;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

/// Why federation could not start. The message is the binary's error output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// A provider's metadata was refused; `key` names `identity_providers[<name>]`.
    #[error("{key}: {reason}")]
    Provider {
        /// `identity_providers[<name>]` or one of its keys.
        key: String,
        /// Why, in words.
        reason: String,
    },
    /// The vault keys could not be loaded (`vault_key_file`, `PORTCULLIS_VAULT_KEY`).
    #[error(transparent)]
    VaultKey(#[from] VaultKeyError),
    /// The HTTP client could not be built.
    #[error("cannot build the identity-provider HTTP client: {0}")]
    Client(String),
}

/// One configured provider: its checked configuration. Its metadata is [`Runtime::metadata`].
#[derive(Debug, Clone)]
pub struct Provider {
    /// The configuration, presets applied.
    pub config: ProviderConfig,
}

/// Federation at run time; `None` in [`crate::AppState::federation`] when no provider is configured.
pub struct Runtime {
    providers: Vec<Provider>,
    idp: IdpClient,
    vault: Vault,
    link_by_verified_email: bool,
    gated: BTreeSet<String>,
    start_per_ip: CountedLimiter,
}

/// Sign-ins started per client address per [`START_WINDOW_SECS`] (each stores a pending sign-in row).
pub const STARTS_PER_IP: u32 = 300;
/// The window of [`STARTS_PER_IP`].
pub const START_WINDOW_SECS: i64 = 600;

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field(
                "providers",
                &self
                    .providers
                    .iter()
                    .map(|p| p.config.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("vault", &self.vault)
            .field("link_by_verified_email", &self.link_by_verified_email)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Assembles a runtime from parts already checked (tests, and [`Runtime::start`]). No I/O.
    pub fn new(
        providers: Vec<ProviderConfig>,
        idp: IdpClient,
        vault: Vault,
        link_by_verified_email: bool,
    ) -> Self {
        let gated = gated_scopes(providers.iter());
        Self {
            providers: providers
                .into_iter()
                .map(|config| Provider { config })
                .collect(),
            idp,
            vault,
            link_by_verified_email,
            gated,
            start_per_ip: CountedLimiter::new("idp-start-ip", STARTS_PER_IP, START_WINDOW_SECS),
        }
    }

    /// Builds the runtime for `settings` (`None` when no provider is configured): the providers' configurations
    /// (checked at load), the vault (keys from `vault_key_file`, `PORTCULLIS_VAULT_KEY`, or generated beside the
    /// SQLite database at `database_url`), the HTTP client (signing `private_key_jwt` assertions with `authz`'s
    /// key ring), then each provider's metadata, fetched now so a bad provider stops the start.
    pub async fn start(
        settings: &FederationSettings,
        database_url: &str,
        authz: &Authz,
    ) -> Result<Option<Arc<Self>>, RuntimeError> {
        if settings.providers.is_empty() {
            return Ok(None);
        }
        let configs = settings.providers.clone();
        let keys = authz.keys().clone();
        let signer: Arc<AssertionSigner> =
            Arc::new(move |claims| sign_client_assertion(&keys.ring(), claims));
        let idp = IdpClient::new(IdpSettings::default(), Some(signer))
            .map_err(|e| RuntimeError::Client(e.to_string()))?;
        // Discovery first: a bad provider stops the start before a vault key file is generated.
        for config in &configs {
            idp.metadata(config)
                .await
                .map_err(|e| RuntimeError::Provider {
                    key: format!("identity_providers[{}]", config.name.as_str()),
                    reason: format!("discovery failed: {e}"),
                })?;
        }
        let loaded =
            vault_key::load_with_env(settings.vault_key_file.as_deref(), database_url, true)?;
        let runtime = Self::new(configs, idp, loaded.vault, settings.link_by_verified_email);
        Ok(Some(Arc::new(runtime)))
    }

    /// The provider called `name`.
    pub fn provider(&self, name: &str) -> Option<&ProviderConfig> {
        self.providers
            .iter()
            .map(|p| &p.config)
            .find(|c| c.name.as_str() == name)
    }

    /// Every provider, in configuration order.
    pub fn providers(&self) -> impl Iterator<Item = &ProviderConfig> {
        self.providers.iter().map(|p| &p.config)
    }

    /// The provider's metadata: discovered and cached by the [`IdpClient`] (refreshed hourly, served stale
    /// while the provider is down), or the configured endpoints of a plain OAuth 2.0 provider.
    pub async fn metadata(&self, cfg: &ProviderConfig) -> Result<Arc<ProviderMetadata>, IdpError> {
        self.idp.metadata(cfg).await
    }

    /// The HTTP client for the providers.
    pub fn idp(&self) -> &IdpClient {
        &self.idp
    }

    /// The vault sealing pending sign-ins and upstream tokens.
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// `link_by_verified_email`.
    pub fn link_by_verified_email(&self) -> bool {
        self.link_by_verified_email
    }

    /// Sign-ins started per client address ([`STARTS_PER_IP`] per [`START_WINDOW_SECS`], counted in the
    /// database): each start stores a row, so an address cannot fill the table.
    pub fn start_limiter(&self) -> &CountedLimiter {
        &self.start_per_ip
    }

    /// The scopes only `scope_from_groups` grants ([`gated_scopes`]).
    pub fn gated_scopes(&self) -> &BTreeSet<String> {
        &self.gated
    }
}
