//! Optional token introspection (RFC 7662) for immediate revocation: after a token passed the JWT check, the
//! guard asks the issuer's introspection endpoint whether it is still active, so a token revoked at the issuer
//! (`portcullis logout`, `clients remove`, refresh-token reuse) is refused within [`IntrospectionConfig`]'s
//! cache lifetime instead of at its `exp`.
//!
//! The guard authenticates with an introspection credential the issuer's admin made
//! (`portcullis clients add NAME --introspection --resource <this resource>`), with HTTP Basic
//! (RFC 6749 §2.3.1: id and secret form-urlencoded first). Bounded on every side:
//! - answers (active or not) are cached per token (its SHA-256, never the token) for `cache_ttl` seconds
//!   (default 5, at most 60) and never past the token's `exp`, in a bounded cache;
//! - at most `max_in_flight` requests at once (default 16); a request waits for a slot no longer than the HTTP
//!   timeout, and each request is bounded by that timeout (`GuardConfig::with_http_timeout`, default 5 s);
//! - the answer is read up to 64 KiB.
//!
//! Only JWT-valid tokens reach the endpoint, so a stream of junk tokens causes no outbound call. When the
//! endpoint cannot answer, the guard fails closed: 503 with `Retry-After` (an unreachable issuer cannot say a
//! token is not revoked).

use crate::cache::TokenCache;
use crate::error::ConfigError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use portcullis_proto::introspection::IntrospectionResponse;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use url::Url;

/// Default seconds an introspection answer is reused.
pub const DEFAULT_CACHE_TTL: i64 = 5;
/// Default number of introspection requests in flight at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 16;
/// Largest answer read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Answers kept.
const CACHE_CAPACITY: usize = 10_000;

/// Where and how to introspect. The secret's `Debug` is redacted.
#[derive(Clone)]
pub struct IntrospectionConfig {
    pub(crate) endpoint: Url,
    pub(crate) client_id: String,
    client_secret: String,
    pub(crate) cache_ttl: i64,
    pub(crate) max_in_flight: usize,
}

impl std::fmt::Debug for IntrospectionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionConfig")
            .field("endpoint", &self.endpoint.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("cache_ttl", &self.cache_ttl)
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}

impl IntrospectionConfig {
    /// `endpoint`: the issuer's `introspection_endpoint` (Portcullis: `<issuer>/introspect`); the credential
    /// from `portcullis clients add NAME --introspection`.
    pub fn new(endpoint: &str, client_id: &str, client_secret: &str) -> Result<Self, ConfigError> {
        let endpoint = crate::urls::parse_url("introspection_endpoint", endpoint, true)?;
        if client_id.is_empty() || client_secret.is_empty() {
            return Err(ConfigError::Range(
                "the introspection client id and secret must not be empty",
            ));
        }
        Ok(Self {
            endpoint,
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            cache_ttl: DEFAULT_CACHE_TTL,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        })
    }

    /// The credential from the environment: the client id from `PORTCULLIS_GUARD_CLIENT_ID`, the secret from
    /// `PORTCULLIS_GUARD_CLIENT_SECRET` or, better, the file named by `PORTCULLIS_GUARD_CLIENT_SECRET_FILE`
    /// (a trailing newline is dropped).
    pub fn from_env(endpoint: &str) -> Result<Self, ConfigError> {
        let missing = |what| ConfigError::Range(what);
        let id = std::env::var("PORTCULLIS_GUARD_CLIENT_ID")
            .map_err(|_| missing("PORTCULLIS_GUARD_CLIENT_ID is not set"))?;
        let secret = match std::env::var("PORTCULLIS_GUARD_CLIENT_SECRET_FILE") {
            Ok(path) => std::fs::read_to_string(path)
                .map_err(|_| missing("cannot read PORTCULLIS_GUARD_CLIENT_SECRET_FILE"))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
            Err(_) => std::env::var("PORTCULLIS_GUARD_CLIENT_SECRET").map_err(|_| {
                missing("set PORTCULLIS_GUARD_CLIENT_SECRET_FILE or PORTCULLIS_GUARD_CLIENT_SECRET")
            })?,
        };
        Self::new(endpoint, &id, &secret)
    }

    /// Seconds an answer is reused (0–60; default 5): the longest a revoked token keeps working here.
    pub fn with_cache_ttl(mut self, secs: i64) -> Result<Self, ConfigError> {
        if !(0..=60).contains(&secs) {
            return Err(ConfigError::Range(
                "introspection cache_ttl must be 0 to 60 seconds",
            ));
        }
        self.cache_ttl = secs;
        Ok(self)
    }

    /// Requests in flight at once (1–1024; default 16).
    pub fn with_max_in_flight(mut self, n: usize) -> Result<Self, ConfigError> {
        if !(1..=1024).contains(&n) {
            return Err(ConfigError::Range(
                "introspection max_in_flight must be 1 to 1024",
            ));
        }
        self.max_in_flight = n;
        Ok(self)
    }

    /// `Authorization: Basic` with the id and secret form-urlencoded first (RFC 6749 §2.3.1).
    fn authorization(&self) -> String {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let pair = format!("{}:{}", enc(&self.client_id), enc(&self.client_secret));
        format!("Basic {}", STANDARD.encode(pair))
    }
}

/// Why the endpoint could not say whether a token is active.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntrospectionError {
    /// Too many requests in flight for longer than the timeout.
    #[error("too many introspection requests in flight")]
    Busy,
    /// Connecting, sending or reading failed (includes timeouts).
    #[error("introspection request failed: {0}")]
    Http(String),
    /// Not 200 (401: the credential is wrong).
    #[error("the introspection endpoint answered HTTP {0}")]
    Status(u16),
    /// Not an RFC 7662 §2.2 answer, or larger than the limit.
    #[error("the introspection endpoint's answer is not an RFC 7662 response")]
    Document,
}

/// The introspection client: configuration, HTTP client, answer cache, in-flight bound. Cheap to share.
pub struct Introspector {
    config: IntrospectionConfig,
    http: reqwest::Client,
    timeout: Duration,
    cache: TokenCache<bool>,
    slots: Arc<Semaphore>,
}

impl std::fmt::Debug for Introspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspector")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Introspector {
    /// A client for `config`, each request bounded by `timeout`.
    pub fn new(config: IntrospectionConfig, timeout: Duration) -> Result<Self, ConfigError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("portcullis-guard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::Http(e.to_string()))?;
        Ok(Self {
            slots: Arc::new(Semaphore::new(config.max_in_flight)),
            config,
            http,
            timeout,
            cache: TokenCache::new(CACHE_CAPACITY),
        })
    }

    /// Whether `token` (already JWT-verified, expiring at `exp`) is active at the issuer, from the cache when
    /// asked within `cache_ttl` seconds.
    pub async fn active(
        &self,
        token: &str,
        exp: i64,
        now: i64,
    ) -> Result<bool, IntrospectionError> {
        let key = TokenCache::<bool>::key(token);
        if let Some(active) = self.cache.get(&key, now) {
            return Ok(active);
        }
        let active = self.ask(token).await?;
        if self.config.cache_ttl > 0 {
            let until = now.saturating_add(self.config.cache_ttl).min(exp);
            self.cache.insert(key, until, active, now);
        }
        Ok(active)
    }

    /// One request (RFC 7662 §2.1), bounded in number and time.
    async fn ask(&self, token: &str) -> Result<bool, IntrospectionError> {
        let _slot = tokio::time::timeout(self.timeout, self.slots.acquire())
            .await
            .map_err(|_| IntrospectionError::Busy)?
            .map_err(|_| IntrospectionError::Busy)?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .append_pair("token_type_hint", "access_token")
            .finish();
        let http_err = |e: reqwest::Error| IntrospectionError::Http(e.to_string());
        let mut resp = self
            .http
            .post(self.config.endpoint.clone())
            .header(http::header::AUTHORIZATION, self.config.authorization())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(http_err)?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(IntrospectionError::Status(resp.status().as_u16()));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(http_err)? {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(IntrospectionError::Document);
            }
            bytes.extend_from_slice(&chunk);
        }
        let answer: IntrospectionResponse =
            serde_json::from_slice(&bytes).map_err(|_| IntrospectionError::Document)?;
        Ok(answer.active)
    }

    /// Number of cached answers.
    pub fn cached_answers(&self) -> usize {
        self.cache.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};

    /// A fake introspection endpoint: counts calls, answers `active` (or `status` when not 200), and
    /// refuses any other `Authorization` than `expected`.
    #[derive(Default)]
    struct Fake {
        calls: AtomicUsize,
        active: AtomicBool,
        status: AtomicU16,
        expected: String,
        last_form: std::sync::Mutex<String>,
    }

    async fn handle(
        State(f): State<Arc<Fake>>,
        h: HeaderMap,
        body: String,
    ) -> (StatusCode, String) {
        f.calls.fetch_add(1, Ordering::SeqCst);
        *f.last_form.lock().unwrap() = body;
        if h.get("authorization").and_then(|v| v.to_str().ok()) != Some(f.expected.as_str()) {
            return (
                StatusCode::UNAUTHORIZED,
                r#"{"error":"invalid_client"}"#.into(),
            );
        }
        let status =
            StatusCode::from_u16(f.status.load(Ordering::SeqCst)).unwrap_or(StatusCode::OK);
        let active = f.active.load(Ordering::SeqCst);
        (status, format!(r#"{{"active":{active}}}"#))
    }

    async fn fake(secret: &str) -> (Arc<Fake>, IntrospectionConfig) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/introspect", listener.local_addr().unwrap());
        let config = IntrospectionConfig::new(&url, "rs", secret).unwrap();
        let f = Arc::new(Fake {
            expected: IntrospectionConfig::new(&url, "rs", "right")
                .unwrap()
                .authorization(),
            status: AtomicU16::new(200),
            active: AtomicBool::new(true),
            ..Fake::default()
        });
        let app = axum::Router::new()
            .route("/introspect", axum::routing::post(handle))
            .with_state(f.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (f, config)
    }

    #[tokio::test]
    async fn answers_are_cached_for_the_ttl_and_never_past_exp() {
        let (f, config) = fake("right").await;
        let i =
            Introspector::new(config.with_cache_ttl(10).unwrap(), Duration::from_secs(5)).unwrap();
        assert_eq!(i.active("t1", 1_000, 100).await, Ok(true));
        assert!(f.last_form.lock().unwrap().contains("token=t1"));
        f.active.store(false, Ordering::SeqCst);
        // Within the TTL: the cached answer, no call.
        assert_eq!(i.active("t1", 1_000, 109).await, Ok(true));
        assert_eq!(f.calls.load(Ordering::SeqCst), 1);
        // At the TTL: asked again, and the revocation is seen.
        assert_eq!(i.active("t1", 1_000, 110).await, Ok(false));
        assert_eq!(f.calls.load(Ordering::SeqCst), 2);
        // Never cached past the token's exp.
        f.active.store(true, Ordering::SeqCst);
        assert_eq!(i.active("t2", 102, 100).await, Ok(true));
        f.active.store(false, Ordering::SeqCst);
        assert_eq!(i.active("t2", 102, 102).await, Ok(false));
        assert_eq!(f.calls.load(Ordering::SeqCst), 4);
        assert_eq!(
            i.cached_answers(),
            1,
            "t1 only: an answer at the token's exp is not kept"
        );
    }

    #[tokio::test]
    async fn failures_are_errors_never_an_answer_and_are_not_cached() {
        let (f, config) = fake("wrong").await;
        let i = Introspector::new(config, Duration::from_secs(5)).unwrap();
        assert_eq!(
            i.active("t", 1_000, 100).await,
            Err(IntrospectionError::Status(401))
        );
        let (f2, config) = fake("right").await;
        let i = Introspector::new(config, Duration::from_secs(5)).unwrap();
        f2.status.store(500, Ordering::SeqCst);
        assert_eq!(
            i.active("t", 1_000, 100).await,
            Err(IntrospectionError::Status(500))
        );
        f2.status.store(200, Ordering::SeqCst);
        assert_eq!(
            i.active("t", 1_000, 100).await,
            Ok(true),
            "the failure was not cached"
        );
        assert_eq!(
            f.calls.load(Ordering::SeqCst) + f2.calls.load(Ordering::SeqCst),
            3
        );
    }

    #[test]
    fn settings_are_checked_and_the_secret_is_redacted() {
        let c = IntrospectionConfig::new("https://as.example/introspect", "rs", "s:e/c r").unwrap();
        assert!(!format!("{c:?}").contains("s:e/c r"));
        // RFC 6749 §2.3.1: each part form-urlencoded, then base64.
        assert_eq!(
            c.authorization(),
            format!("Basic {}", STANDARD.encode("rs:s%3Ae%2Fc+r"))
        );
        assert!(IntrospectionConfig::new("http://as.example/introspect", "rs", "s").is_err());
        assert!(IntrospectionConfig::new("https://as.example/introspect", "", "s").is_err());
        assert!(IntrospectionConfig::new("https://as.example/introspect", "rs", "").is_err());
        assert!(c.clone().with_cache_ttl(61).is_err());
        assert!(c.clone().with_cache_ttl(-1).is_err());
        assert!(c.clone().with_max_in_flight(0).is_err());
        assert_eq!(c.with_cache_ttl(0).unwrap().cache_ttl, 0);
    }
}
