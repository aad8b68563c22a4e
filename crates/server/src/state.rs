//! [`AppState`]: what every handler shares.

use crate::config::ServerConfig;
use crate::federation::upstream_tokens::UpstreamTokenSource;
use crate::federation::Runtime;
use crate::gateway::closing::StreamCloser;
use crate::limits::CountedLimiter;
use crate::local_keys::LocalKeys;
use crate::login_throttle::LoginThrottle;
use crate::metadata::documents;
use crate::password_checks::PasswordChecks;
use crate::revocations::Revocations;
use crate::routes::Routes;
use bytes::Bytes;
use portcullis_authz::access_token::Leeway;
use portcullis_authz::Authz;
use portcullis_guard::BearerCheck;
use std::sync::Arc;

/// Shared state.
pub struct AppState {
    /// The authorization-server logic.
    pub authz: Arc<Authz>,
    /// Routes and advertised URLs.
    pub routes: Routes,
    /// The configuration.
    pub config: ServerConfig,
    /// RFC 8414 metadata, serialized once.
    pub as_metadata: Bytes,
    /// RFC 9728 metadata, serialized once.
    pub prm: Bytes,
    /// Revoked tokens and grants the MCP endpoint and gateway routes refuse.
    pub revocations: Arc<Revocations>,
    /// The bearer check of the MCP endpoint and every gateway route: the local key ring, [`Leeway::ISSUER`],
    /// the revocations above, the verified-token cache.
    pub bearer: BearerCheck,
    /// Ends the gateway's open `GET` event streams when a graceful shutdown begins.
    pub stream_closer: StreamCloser,
    /// Whether cookies get `Secure` and the `__Host-` prefix (https issuer).
    pub secure_cookies: bool,
    /// Failed sign-ins per (account, address) and per address, counted in the database (shared by every
    /// instance), each attempt reserved before its password is checked.
    pub login_throttle: LoginThrottle,
    /// The bounded pool that checks passwords ([`ServerConfig::password_hash_concurrency`]).
    pub password_checks: PasswordChecks,
    /// Registrations per client address per hour ([`ServerConfig::register_per_ip_per_hour`]).
    pub register_per_ip: CountedLimiter,
    /// Failed token requests per client address per 5 minutes ([`ServerConfig::token_failures_per_ip`]).
    pub token_failures_per_ip: CountedLimiter,
    /// Sign-in through identity providers and the upstream token vault; `None` when no provider is configured.
    pub federation: Option<Arc<Runtime>>,
    /// The users' upstream tokens (gateway `upstream_token_from`, the refresh grant's deprovisioning check);
    /// `Some` exactly when [`AppState::federation`] is.
    pub upstream_tokens: Option<Arc<UpstreamTokenSource>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("issuer", &self.routes.issuer)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the state. `authz` must have been configured with [`ServerConfig::authz_config`] for the same
    /// routes.
    pub fn new(config: ServerConfig, routes: Routes, authz: Arc<Authz>) -> Arc<Self> {
        Self::with_federation(config, routes, authz, None)
    }

    /// [`AppState::new`] with federation ([`Runtime::start`]).
    pub fn with_federation(
        config: ServerConfig,
        routes: Routes,
        authz: Arc<Authz>,
        federation: Option<Arc<Runtime>>,
    ) -> Arc<Self> {
        let as_metadata = documents::authorization_server_document(
            &routes,
            authz.core().config(),
            authz.registrations().supports_client_metadata_documents(),
        );
        let prm = documents::protected_resource_document(&routes, authz.core().config());
        let revocations = Arc::new(Revocations::default());
        let bearer = BearerCheck::new(
            routes.issuer.clone(),
            Leeway::ISSUER,
            Arc::new(LocalKeys::new(&authz)),
            portcullis_guard::cache::DEFAULT_CAPACITY,
        )
        .with_revocations(revocations.clone());
        let upstream_tokens = federation
            .as_ref()
            .map(|rt| Arc::new(UpstreamTokenSource::new(rt.clone(), authz.clone())));
        Arc::new(Self {
            secure_cookies: routes.origin.starts_with("https:"),
            authz,
            routes,
            register_per_ip: CountedLimiter::new(
                "register-ip",
                config.register_per_ip_per_hour,
                3600,
            ),
            token_failures_per_ip: CountedLimiter::new(
                "token-failure-ip",
                config.token_failures_per_ip,
                300,
            ),
            password_checks: PasswordChecks::new(config.password_hash_concurrency),
            config,
            as_metadata,
            prm,
            revocations,
            bearer,
            stream_closer: StreamCloser::default(),
            login_throttle: LoginThrottle::default(),
            upstream_tokens,
            federation,
        })
    }
}
