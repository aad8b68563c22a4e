//! [`Authz`]: the bundle of the authorization server's services, built once over the shared [`Core`] (storage,
//! clock, randomness, configuration) and handed out one by one. It has no capabilities of its own: registering
//! is [`Authz::registrations`], the authorization endpoint [`Authz::authorizations`], the token endpoint
//! [`Authz::tokens`], revocation [`Authz::revoker`], introspection [`Authz::introspector`], logins and accounts [`Authz::sessions`], the signing keys
//! [`Authz::keys`].

use crate::authorizations::Authorizations;
use crate::client_id_metadata::ClientMetadataResolver;
use crate::clock::Clock;
use crate::config::AuthzConfig;
use crate::introspection::Introspector;
use crate::keys::{KeyError, Keys};
use crate::random::Random;
use crate::registrations::Registrations;
use crate::revocation::Revoker;
use crate::session::Sessions;
use crate::shared::Core;
use crate::store::Storage;
use crate::token::Tokens;
use std::sync::Arc;

/// The authorization server's services. Cheap to share behind an `Arc`; each service is an `Arc` too, so a part
/// of the server can hold just the one it needs.
pub struct Authz {
    core: Arc<Core>,
    keys: Arc<Keys>,
    registrations: Arc<Registrations>,
    authorizations: Arc<Authorizations>,
    tokens: Arc<Tokens>,
    revoker: Arc<Revoker>,
    introspector: Arc<Introspector>,
    sessions: Arc<Sessions>,
}

impl std::fmt::Debug for Authz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authz")
            .field("issuer", &self.core.config.issuer)
            .finish_non_exhaustive()
    }
}

impl Authz {
    /// Builds the services, loading (or on first start, creating) the signing key. URL client ids are unknown
    /// (no Client ID Metadata Document resolver; see [`Authz::with_client_metadata_resolver`]).
    pub async fn new(
        store: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn Random>,
        config: AuthzConfig,
    ) -> Result<Self, KeyError> {
        Self::with_client_metadata_resolver(store, clock, rng, config, None).await
    }

    /// Builds the services as [`Authz::new`] does, with `resolver` fetching Client ID Metadata Documents; without
    /// one, URL client ids are unknown and support is not advertised.
    pub async fn with_client_metadata_resolver(
        store: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn Random>,
        config: AuthzConfig,
        resolver: Option<Arc<dyn ClientMetadataResolver>>,
    ) -> Result<Self, KeyError> {
        let core = Arc::new(Core::new(store, clock, rng, config));
        let registrations = Arc::new(Registrations::new(core.clone(), resolver));
        let keys = Arc::new(Keys::load(core.clone()).await?);
        Ok(Self {
            authorizations: Arc::new(Authorizations::new(core.clone(), registrations.clone())),
            tokens: Arc::new(Tokens::new(core.clone(), keys.clone())),
            revoker: Arc::new(Revoker::new(core.clone(), keys.clone())),
            introspector: Arc::new(Introspector::new(core.clone(), keys.clone())),
            sessions: Arc::new(Sessions::new(core.clone())),
            registrations,
            keys,
            core,
        })
    }

    /// The shared dependencies: configuration, storage, clock, randomness.
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// The signing keys: the current ring, reload, rotation.
    pub fn keys(&self) -> &Arc<Keys> {
        &self.keys
    }

    /// Client registration, lookup and authentication.
    pub fn registrations(&self) -> &Arc<Registrations> {
        &self.registrations
    }

    /// The authorization endpoint: requests, consent, codes.
    pub fn authorizations(&self) -> &Arc<Authorizations> {
        &self.authorizations
    }

    /// The token endpoint: the grants and access tokens.
    pub fn tokens(&self) -> &Arc<Tokens> {
        &self.tokens
    }

    /// Token revocation (RFC 7009).
    pub fn revoker(&self) -> &Arc<Revoker> {
        &self.revoker
    }

    /// Token introspection (RFC 7662).
    pub fn introspector(&self) -> &Arc<Introspector> {
        &self.introspector
    }

    /// Login sessions, users and passwords.
    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }
}
