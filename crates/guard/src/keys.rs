//! [`KeySource`]: where the verifying keys of access tokens come from (RFC 9068 §4 step 5, RFC 7515 §4.1.4
//! `kid`). Two implementations exist: [`crate::JwksClient`] (the issuer's JWKS fetched over HTTP, for a
//! resource server outside the issuer) and the local key ring of `portcullis serve` (in `portcullis-server`).
//! Each keeps its own rule for reloading on an unknown `kid`, rate-limited, so forged `kid`s cannot turn the
//! check into a request amplifier.

use crate::error::JwksError;
use crate::jwks::JwksClient;
use async_trait::async_trait;
pub use p256::ecdsa::VerifyingKey;

/// A source of ES256 verifying keys, looked up by `kid`.
#[async_trait]
pub trait KeySource: Send + Sync + 'static {
    /// The key named `kid`, reloading or refetching at most as often as the source's rate limit allows when
    /// `kid` is unknown. `Ok(None)`: the issuer does not publish `kid` (as far as we may ask now). `Err`: no
    /// keys are held at all and none could be obtained (the guard answers 503).
    async fn key(&self, kid: &str) -> Result<Option<VerifyingKey>, JwksError>;

    /// Whether a token verified earlier with `kid` may still be served from the verified-token cache: `false`
    /// once the issuer stopped publishing the key. A source whose keys outlive every token they signed (the
    /// local key ring keeps a public key until its last token expired) answers `true`.
    async fn is_current(&self, kid: &str) -> bool;

    /// Whether every key stays published until every token it signed has expired (the local key ring:
    /// `portcullis_authz::keys` keeps a retired public key for the access-token lifetime). Then a cached
    /// verification never needs its key re-checked and [`KeySource::is_current`] is not asked.
    fn keys_outlive_tokens(&self) -> bool {
        false
    }
}

#[async_trait]
impl KeySource for JwksClient {
    async fn key(&self, kid: &str) -> Result<Option<VerifyingKey>, JwksError> {
        JwksClient::key(self, kid).await
    }

    /// Asked through [`JwksClient::key`], so a stale set is refreshed on cache hits too (`max_age`).
    async fn is_current(&self, kid: &str) -> bool {
        matches!(JwksClient::key(self, kid).await, Ok(Some(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GuardConfig;
    use crate::testing::Issuer;
    use portcullis_authz::clock::FixedClock;
    use std::sync::Arc;

    fn source(issuer: &Issuer, clock: &Arc<FixedClock>) -> Arc<dyn KeySource> {
        let config = GuardConfig::new(&issuer.issuer, "http://127.0.0.1:1/mcp")
            .unwrap()
            .with_clock(clock.clone());
        Arc::new(JwksClient::new(&config).unwrap())
    }

    #[tokio::test]
    async fn jwks_known_kid_unknown_kid_and_the_rate_limit() {
        let issuer = Issuer::start().await;
        let clock = Arc::new(FixedClock::new(1000));
        let keys = source(&issuer, &clock);
        assert!(keys.key(&issuer.kid(0)).await.unwrap().is_some());
        assert!(keys.is_current(&issuer.kid(0)).await);
        assert_eq!(issuer.hits("/jwks.json"), 1);
        // Unknown kid within the interval: no refetch, no key.
        assert_eq!(keys.key("nope").await.unwrap(), None);
        assert!(!keys.is_current("nope").await);
        assert_eq!(issuer.hits("/jwks.json"), 1);
        // After a rotation and the interval: one refetch finds the new key.
        issuer.rotate();
        clock.advance(crate::config::DEFAULT_UNKNOWN_KID_INTERVAL);
        assert!(keys.key(&issuer.kid(1)).await.unwrap().is_some());
        assert_eq!(issuer.hits("/jwks.json"), 2);
        assert_eq!(keys.key("nope").await.unwrap(), None);
        assert_eq!(issuer.hits("/jwks.json"), 2);
    }

    #[tokio::test]
    async fn jwks_removed_key_is_no_longer_current() {
        let issuer = Issuer::start().await;
        let clock = Arc::new(FixedClock::new(1000));
        let keys = source(&issuer, &clock);
        assert!(keys.is_current(&issuer.kid(0)).await);
        issuer.rotate();
        issuer.drop_key(0);
        clock.advance(crate::config::DEFAULT_MAX_AGE);
        assert!(!keys.is_current(&issuer.kid(0)).await);
        assert!(keys.is_current(&issuer.kid(1)).await);
    }

    #[tokio::test]
    async fn jwks_keys_unavailable() {
        let issuer = Issuer::start().await;
        issuer.set_failing(true);
        let clock = Arc::new(FixedClock::new(1000));
        let keys = source(&issuer, &clock);
        assert!(keys.key(&issuer.kid(0)).await.is_err());
        assert!(!keys.is_current(&issuer.kid(0)).await);
    }
}
