//! [`Core`]: the dependencies the services share: storage, clock, randomness and configuration, each injected
//! (no I/O of its own here). Built once by [`crate::Authz::new`] and shared behind an `Arc` by every service that
//! needs it; the signing key ring is the [`crate::keys::Keys`] service's.

use crate::clock::Clock;
use crate::config::AuthzConfig;
use crate::random::Random;
use crate::store::Storage;
use std::sync::Arc;

/// The shared dependencies of the services. Cheap to share behind an `Arc`.
pub struct Core {
    pub(crate) store: Arc<dyn Storage>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rng: Arc<dyn Random>,
    pub(crate) config: AuthzConfig,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

impl Core {
    /// The dependencies, as injected.
    pub fn new(
        store: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn Random>,
        config: AuthzConfig,
    ) -> Self {
        Self {
            store,
            clock,
            rng,
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AuthzConfig {
        &self.config
    }

    /// The storage.
    pub fn store(&self) -> &Arc<dyn Storage> {
        &self.store
    }

    /// The injected clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The current time from the injected clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The injected randomness.
    pub fn rng(&self) -> &dyn Random {
        self.rng.as_ref()
    }

    /// Until when a revocation written now must be kept: as long as an access token issued now can live, plus
    /// a minute.
    pub(crate) fn revocation_expiry(&self, now: i64) -> i64 {
        now + self.config.access_token_ttl + 60
    }
}
