//! [`Authz`]: the authorization server's logic with its injected clock, randomness, storage and keys.

use crate::client_id_metadata::ClientMetadataResolver;
use crate::clock::Clock;
use crate::config::AuthzConfig;
use crate::error::AuthzError;
use crate::keys::{self, KeyError, KeyRing};
use crate::random::Random;
use crate::registration::RegisteredClient;
use crate::registrations::Registrations;
use crate::store::Storage;
use portcullis_proto::registration::{ClientInformation, ClientMetadata};
use std::sync::{Arc, RwLock};

/// The authorization server. Cheap to share behind an `Arc`.
pub struct Authz {
    pub(crate) store: Arc<dyn Storage>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rng: Arc<dyn Random>,
    pub(crate) config: AuthzConfig,
    keys: RwLock<Arc<KeyRing>>,
    /// Client registration, lookup and the client cache.
    pub(crate) registrations: Registrations,
}

impl std::fmt::Debug for Authz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authz")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

impl Authz {
    /// Builds the service, loading (or on first start, creating) the signing key.
    pub async fn new(
        store: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn Random>,
        config: AuthzConfig,
    ) -> Result<Self, KeyError> {
        let ring = keys::load_or_create(store.as_ref(), rng.as_ref(), clock.now()).await?;
        let registrations = Registrations::new(
            store.clone(),
            clock.clone(),
            rng.clone(),
            config.supported_scopes(),
        );
        Ok(Self {
            store,
            clock,
            rng,
            config,
            keys: RwLock::new(Arc::new(ring)),
            registrations,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AuthzConfig {
        &self.config
    }

    /// The storage.
    pub fn store(&self) -> &Arc<dyn Storage> {
        &self.store
    }

    /// The current time from the injected clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The injected randomness.
    pub fn rng(&self) -> &dyn Random {
        self.rng.as_ref()
    }

    /// The current key ring.
    pub fn keys(&self) -> Arc<KeyRing> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc; the value is still whole.
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads the keys from storage (after a rotation by the CLI or another instance).
    pub async fn reload_keys(&self) -> Result<(), KeyError> {
        let ring = keys::load_or_create(self.store.as_ref(), self.rng.as_ref(), self.now()).await?;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ring);
        Ok(())
    }

    /// Rotates the signing key; the old key stays published for the access token lifetime plus a minute.
    pub async fn rotate_keys(&self) -> Result<String, KeyError> {
        let kid = keys::rotate(
            self.store.as_ref(),
            self.rng.as_ref(),
            self.now(),
            self.config.access_token_ttl + 60,
        )
        .await?;
        self.reload_keys().await?;
        Ok(kid)
    }
}

/// The registration operations on [`Authz`], delegating to its [`Registrations`].
impl Authz {
    /// The registration service.
    pub fn registrations(&self) -> &Registrations {
        &self.registrations
    }

    /// Installs the resolver for Client ID Metadata Documents; without one, URL client ids are unknown and
    /// support is not advertised.
    pub fn with_client_metadata_resolver(
        mut self,
        resolver: Arc<dyn ClientMetadataResolver>,
    ) -> Self {
        self.registrations.set_client_metadata_resolver(resolver);
        self
    }

    /// See [`Registrations::supports_client_metadata_documents`].
    pub fn supports_client_metadata_documents(&self) -> bool {
        self.registrations.supports_client_metadata_documents()
    }

    /// See [`Registrations::register`].
    pub async fn register(&self, meta: ClientMetadata) -> Result<ClientInformation, AuthzError> {
        self.registrations.register(meta).await
    }

    /// See [`Registrations::client`].
    pub async fn client(&self, client_id: &str) -> Result<Option<RegisteredClient>, AuthzError> {
        self.registrations.client(client_id).await
    }
}
