//! [`IdpSettings`]: the limits and cache lifetimes of the identity-provider adapter, and its monotonic
//! [`Ticker`] (injected so tests can jump past a cache lifetime or a refetch interval without sleeping).

use portcullis_authz::clock::{Clock, SystemClock};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest time to establish a connection (TCP and TLS).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest time for a whole call: connect, request, response head and body.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body read (discovery documents and key sets are a few KiB; userinfo may carry groups).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// How long a discovery document or key set is used before it is fetched again.
pub const CACHE_TTL: Duration = Duration::from_secs(3600);
/// How long past [`CACHE_TTL`] a discovery document or key set is still served while the provider is down.
pub const STALE_LIMIT: Duration = Duration::from_secs(24 * 3600);
/// Least time between two fetches of a key set forced by an unknown `kid` (a flood of tokens with forged
/// `kid`s cannot make Portcullis hammer the provider); also how long a failed fetch is not retried while a
/// stale copy is being served.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// A monotonic clock.
pub trait Ticker: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Instant;
}

/// The system's monotonic clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemTicker;

impl Ticker for SystemTicker {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug)]
pub struct ManualTicker {
    start: Instant,
    offset_ms: AtomicU64,
}

impl Default for ManualTicker {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            offset_ms: AtomicU64::new(0),
        }
    }
}

impl ManualTicker {
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Ticker for ManualTicker {
    fn now(&self) -> Instant {
        self.start + Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }
}

/// The adapter's limits. [`Default`] gives the production values (the constants of this module).
#[derive(Clone)]
pub struct IdpSettings {
    /// [`CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// [`REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// [`MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
    /// [`CACHE_TTL`] for discovery documents.
    pub metadata_ttl: Duration,
    /// [`CACHE_TTL`] for key sets.
    pub jwks_ttl: Duration,
    /// [`STALE_LIMIT`].
    pub stale_limit: Duration,
    /// [`MIN_REFETCH_INTERVAL`].
    pub min_refetch_interval: Duration,
    /// Where cache ages are read from.
    pub ticker: Arc<dyn Ticker>,
    /// Wall-clock time (Unix seconds) for token expiry, ID token validation and client assertions.
    pub clock: Arc<dyn Clock>,
    /// The GitHub REST API base (`https://api.github.com`; tests point it at a local server).
    pub github_api: String,
}

impl Default for IdpSettings {
    fn default() -> Self {
        Self {
            connect_timeout: CONNECT_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            max_body_bytes: MAX_BODY_BYTES,
            metadata_ttl: CACHE_TTL,
            jwks_ttl: CACHE_TTL,
            stale_limit: STALE_LIMIT,
            min_refetch_interval: MIN_REFETCH_INTERVAL,
            ticker: Arc::new(SystemTicker),
            clock: Arc::new(SystemClock),
            github_api: "https://api.github.com".to_owned(),
        }
    }
}

impl fmt::Debug for IdpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdpSettings")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("metadata_ttl", &self.metadata_ttl)
            .field("jwks_ttl", &self.jwks_ttl)
            .field("stale_limit", &self.stale_limit)
            .field("min_refetch_interval", &self.min_refetch_interval)
            .field("github_api", &self.github_api)
            .finish_non_exhaustive()
    }
}
