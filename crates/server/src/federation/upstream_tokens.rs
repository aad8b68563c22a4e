//! [`UpstreamTokenSource`]: a user's tokens at an upstream identity provider, as the gateway sends them
//! upstream and as the refresh grant checks them (issue 13 §1 "deprovisioning", §3 "the upstream token vault";
//! docs/federation.md).
//!
//! - The tokens are stored sealed by the vault ([`seal_record`], AAD `upstream-token\0<user>\0<provider>`),
//!   one row per user and provider, written by the sign-in callback ([`UpstreamTokenSource::store`]).
//! - An access token that expires within [`REFRESH_MARGIN`] is refreshed first (RFC 6749 §6): one refresh in
//!   flight per (user, provider) — in this process by single flight, across instances by the store's lease
//!   (`lease_upstream_refresh`, a compare-and-set held [`LEASE_SECONDS`]). A caller that loses the lease polls
//!   the row (at most [`WAIT_LIMIT`], with backoff) until the winner stores the new tokens. A refresh answer
//!   without a refresh token keeps the old one (`UpstreamTokens::refreshed_from`).
//! - Opened tokens are cached in memory ([`CACHE_CAPACITY`] entries) until [`REFRESH_MARGIN`] before they
//!   expire, so a gateway call does not read the database; RFC 8693 exchanged tokens likewise, per audience.
//! - The provider answering `invalid_grant` to a refresh deletes the row: the user no longer has tokens there
//!   (deprovisioned, or their session revoked at the provider) until they sign in through it again.
//!
//! No token ever reaches a log line, an error or a `Debug` output.

mod cache;
mod error;
#[cfg(test)]
mod tests;

use crate::federation::Runtime;
use crate::outbound::idp::IdpError;
use cache::{Bounded, Flights};
pub use error::UpstreamTokenError;
use portcullis_authz::federation::{Preset, ProviderConfig, UpstreamTokens};
use portcullis_authz::random::Random;
use portcullis_authz::secret::Secret;
use portcullis_authz::store::UpstreamTokenRecord;
use portcullis_authz::vault::{self, Vault, VaultError};
use portcullis_authz::Authz;
use std::sync::Arc;
use std::time::Duration;

/// Seconds before its expiry an upstream access token is refreshed (and leaves the cache).
pub const REFRESH_MARGIN: i64 = 60;
/// How long a refresh lease is held (seconds): the longest an instance that died mid-refresh blocks the others.
pub const LEASE_SECONDS: i64 = 30;
/// The refresh grant does not check again at the provider tokens refreshed (or stored) this recently (seconds).
pub const VERIFY_INTERVAL: i64 = 60;
/// Entries of each in-memory cache.
pub const CACHE_CAPACITY: usize = 10_000;
/// The longest a caller waits for another instance's refresh.
pub const WAIT_LIMIT: Duration = Duration::from_secs(5);
/// Exchanged tokens whose lifetime the provider did not state are kept this long (seconds).
const EXCHANGED_DEFAULT_TTL: i64 = 300;

/// Seals `tokens` for `user_id` at `provider` into the row the store keeps (lease free).
pub fn seal_record(
    vault: &Vault,
    user_id: &str,
    provider: &str,
    tokens: &UpstreamTokens,
    rng: &dyn Random,
    now: i64,
) -> Result<UpstreamTokenRecord, VaultError> {
    let mut plain = serde_json::to_vec(tokens).map_err(|_| VaultError::Corrupt)?;
    let sealed = vault.seal(&plain, &vault::upstream_token_aad(user_id, provider), rng);
    plain.iter_mut().for_each(|b| *b = 0);
    let (key_id, sealed) = sealed?;
    Ok(UpstreamTokenRecord {
        user_id: user_id.to_owned(),
        provider: provider.to_owned(),
        key_id,
        sealed,
        expires_at: tokens.expires_at,
        refreshing_until: 0,
        updated_at: now,
    })
}

/// Opens a row sealed by [`seal_record`] (checking that it belongs to its user and provider).
pub fn open_record(vault: &Vault, rec: &UpstreamTokenRecord) -> Result<UpstreamTokens, VaultError> {
    let aad = vault::upstream_token_aad(&rec.user_id, &rec.provider);
    let plain = vault.open(&rec.key_id, &rec.sealed, &aad)?;
    serde_json::from_slice(&plain).map_err(|_| VaultError::Corrupt)
}

/// Why the tokens are loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Purpose {
    /// To send the access token: refreshed when it expires within [`REFRESH_MARGIN`].
    Use,
    /// The refresh grant's deprovisioning check: refreshed unless stored within [`VERIFY_INTERVAL`].
    Verify,
}

type Loaded = Result<Arc<UpstreamTokens>, UpstreamTokenError>;
type UserProvider = (String, String);
type UserProviderAudience = (String, String, String);
type Exchanged = Result<Arc<Secret>, UpstreamTokenError>;

/// The users' upstream tokens (see the module documentation). One per server, in [`crate::AppState`].
pub struct UpstreamTokenSource {
    runtime: Arc<Runtime>,
    authz: Arc<Authz>,
    tokens: Bounded<UserProvider, Arc<UpstreamTokens>>,
    exchanged: Bounded<UserProviderAudience, Arc<Secret>>,
    flights: Arc<Flights<(String, String, Purpose), Loaded>>,
    exchanges: Arc<Flights<UserProviderAudience, Exchanged>>,
    wait_limit: Duration,
}

impl std::fmt::Debug for UpstreamTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTokenSource")
            .finish_non_exhaustive()
    }
}

impl UpstreamTokenSource {
    /// The source over `runtime`'s providers, vault and HTTP client, and `authz`'s store and clock.
    pub fn new(runtime: Arc<Runtime>, authz: Arc<Authz>) -> Self {
        Self {
            runtime,
            authz,
            tokens: Bounded::new(CACHE_CAPACITY),
            exchanged: Bounded::new(CACHE_CAPACITY),
            flights: Arc::default(),
            exchanges: Arc::default(),
            wait_limit: WAIT_LIMIT,
        }
    }

    fn now(&self) -> i64 {
        self.authz.core().now()
    }

    fn provider(&self, name: &str) -> Result<&ProviderConfig, UpstreamTokenError> {
        self.runtime
            .provider(name)
            .ok_or_else(|| UpstreamTokenError::UnknownProvider(name.to_owned()))
    }

    /// The name people know the provider by (`display_name`), for messages.
    pub fn display_name(&self, provider: &str) -> String {
        self.runtime
            .provider(provider)
            .map_or_else(|| provider.to_owned(), |c| c.display_name.clone())
    }

    /// Seals and stores the tokens a sign-in through `provider` just obtained (replacing older ones, releasing
    /// any lease), and caches them.
    pub async fn store(
        &self,
        user_id: &str,
        provider: &str,
        tokens: &UpstreamTokens,
    ) -> Result<(), UpstreamTokenError> {
        let now = self.now();
        let rec = seal_record(
            self.runtime.vault(),
            user_id,
            provider,
            tokens,
            self.authz.core().rng(),
            now,
        )
        .map_err(|e| UpstreamTokenError::Vault(e.to_string()))?;
        self.forget(user_id, provider);
        self.authz
            .core()
            .store()
            .put_upstream_tokens(&rec)
            .await
            .map_err(store_error)?;
        self.remember(user_id, provider, tokens.clone());
        Ok(())
    }

    /// Drops what is cached for the user at the provider (this instance only).
    pub fn forget(&self, user_id: &str, provider: &str) {
        self.tokens
            .remove(&(user_id.to_owned(), provider.to_owned()));
    }

    /// Whether the user has tokens at `provider` that can be used now or refreshed (no call to the provider):
    /// what `/authorize` asks before reusing a session for a resource that needs them.
    pub async fn usable(&self, user_id: &str, provider: &str) -> Result<bool, UpstreamTokenError> {
        let now = self.now();
        if self
            .tokens
            .get(&(user_id.to_owned(), provider.to_owned()), now)
            .is_some()
        {
            return Ok(true);
        }
        let store = self.authz.core().store();
        let Some(row) = store
            .upstream_tokens(user_id, provider)
            .await
            .map_err(store_error)?
        else {
            return Ok(false);
        };
        match open_record(self.runtime.vault(), &row) {
            Ok(t) => Ok(t.refresh_token.is_some() || t.expires_at.is_none_or(|at| at > now)),
            Err(_) => Ok(false),
        }
    }

    /// Whether the user has tokens stored at `provider` at all (cached, or a row).
    pub async fn has_tokens(
        &self,
        user_id: &str,
        provider: &str,
    ) -> Result<bool, UpstreamTokenError> {
        let key = (user_id.to_owned(), provider.to_owned());
        if self.tokens.get(&key, self.now()).is_some() {
            return Ok(true);
        }
        let store = self.authz.core().store();
        let row = store.upstream_tokens(user_id, provider).await;
        Ok(row.map_err(store_error)?.is_some())
    }

    /// The user's access token at `provider`, refreshed first when it expires within [`REFRESH_MARGIN`].
    pub async fn access_token(
        self: &Arc<Self>,
        user_id: &str,
        provider: &str,
    ) -> Result<Arc<UpstreamTokens>, UpstreamTokenError> {
        let key = (user_id.to_owned(), provider.to_owned());
        if let Some(t) = self.tokens.get(&key, self.now()) {
            return Ok(t);
        }
        self.load(key, Purpose::Use).await
    }

    /// The refresh grant's deprovisioning check (issue 13 §1): refreshes the user's tokens at `provider` unless
    /// that happened within [`VERIFY_INTERVAL`]. `Revoked` or `Missing`: the provider no longer honours the
    /// user; `Unavailable`: it could not tell.
    pub async fn verify(
        self: &Arc<Self>,
        user_id: &str,
        provider: &str,
    ) -> Result<(), UpstreamTokenError> {
        let key = (user_id.to_owned(), provider.to_owned());
        self.load(key, Purpose::Verify).await.map(|_| ())
    }

    /// A token for `audience` obtained by RFC 8693 token exchange at `provider` with the user's access token
    /// as `subject_token` (§2.1), or for the Microsoft preset by Entra's on-behalf-of flow (`audience` as its
    /// `scope`); cached per (user, provider, audience) until [`REFRESH_MARGIN`] before it
    /// expires; concurrent misses share one exchange. An `invalid_grant` answer counts as `Revoked`.
    pub async fn exchanged_token(
        self: &Arc<Self>,
        user_id: &str,
        provider: &str,
        audience: &str,
    ) -> Result<Arc<Secret>, UpstreamTokenError> {
        let key = (user_id.to_owned(), provider.to_owned(), audience.to_owned());
        if let Some(t) = self.exchanged.get(&key, self.now()) {
            return Ok(t);
        }
        let me = Arc::clone(self);
        let panicked = Err(UpstreamTokenError::Unavailable {
            provider: provider.to_owned(),
            code: "internal",
        });
        self.exchanges
            .run(
                key.clone(),
                move || async move { me.exchange_now(key).await },
                panicked,
            )
            .await
    }

    /// One exchange (single flight per user, provider and audience), cached.
    async fn exchange_now(self: Arc<Self>, key: UserProviderAudience) -> Exchanged {
        let (user_id, provider, audience) = (key.0.as_str(), key.1.as_str(), key.2.as_str());
        let subject = self.access_token(user_id, provider).await?;
        let cfg = self.provider(provider)?;
        let exchanged = async {
            let md = self.runtime.metadata(cfg).await?;
            let idp = self.runtime.idp();
            if cfg.preset == Some(Preset::Microsoft) {
                // Entra ID has no RFC 8693 endpoint: its on-behalf-of flow, `upstream_audience` as the scope.
                idp.on_behalf_of(cfg, &md, &subject.access_token, audience)
                    .await
            } else {
                idp.token_exchange(cfg, &md, &subject.access_token, Some(audience))
                    .await
            }
        }
        .await;
        let tokens = match exchanged {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(provider, code = e.code(), "upstream token exchange failed");
                return Err(match e {
                    e if e.is_invalid_grant() => UpstreamTokenError::Revoked {
                        provider: provider.to_owned(),
                    },
                    IdpError::Upstream { error, .. } => UpstreamTokenError::Exchange {
                        provider: provider.to_owned(),
                        error,
                    },
                    other => unavailable(provider, &other),
                });
            }
        };
        let now = self.now();
        let until = tokens
            .expires_at
            .map_or(now + EXCHANGED_DEFAULT_TTL, |at| at - REFRESH_MARGIN);
        let token = Arc::new(tokens.access_token);
        self.exchanged.put(key.clone(), token.clone(), until, now);
        Ok(token)
    }

    /// Loads (and refreshes when due) through the single flight of `(user, provider, purpose)`.
    async fn load(self: &Arc<Self>, key: UserProvider, purpose: Purpose) -> Loaded {
        let me = Arc::clone(self);
        let (user, provider) = key.clone();
        let panicked = Err(UpstreamTokenError::Unavailable {
            provider: provider.clone(),
            code: "internal",
        });
        self.flights
            .run(
                (key.0, key.1, purpose),
                move || async move { me.load_now(&user, &provider, purpose).await },
                panicked,
            )
            .await
    }

    /// Reads the row, and refreshes it when `purpose` says it is due: with the lease, or by waiting for the
    /// instance holding it.
    async fn load_now(&self, user: &str, provider: &str, purpose: Purpose) -> Loaded {
        let store = self.authz.core().store();
        let now = self.now();
        let missing = || UpstreamTokenError::Missing {
            provider: provider.to_owned(),
        };
        let row = (store.upstream_tokens(user, provider).await)
            .map_err(store_error)?
            .ok_or_else(missing)?;
        let tokens = self.open(&row)?;
        let due = match purpose {
            Purpose::Use => tokens.expires_within(now, REFRESH_MARGIN),
            Purpose::Verify => {
                tokens.refresh_token.is_some() && row.updated_at <= now - VERIFY_INTERVAL
            }
        };
        if !due {
            return Ok(self.remember(user, provider, tokens));
        }
        if tokens.refresh_token.is_none() {
            return still_valid(tokens, now).ok_or_else(|| UpstreamTokenError::NotRefreshable {
                provider: provider.to_owned(),
            });
        }
        let leased = store
            .lease_upstream_refresh(user, provider, now, now + LEASE_SECONDS)
            .await
            .map_err(store_error)?;
        if !leased {
            return self.wait_for_refresh(row, tokens).await;
        }
        // Another instance may have refreshed (and released its lease) between the read above and this lease:
        // refreshing with the refresh token read before would present a rotated one (the provider may then revoke
        // the whole grant, RFC 9700 §4.14.2). Re-read under the lease.
        let fresh = (store.upstream_tokens(user, provider).await)
            .map_err(store_error)?
            .ok_or_else(missing)?;
        if fresh.sealed == row.sealed {
            return self.refresh_leased(fresh, tokens).await;
        }
        let tokens = self.open(&fresh)?;
        let still_due = match purpose {
            Purpose::Use => tokens.expires_within(now, REFRESH_MARGIN),
            Purpose::Verify => fresh.updated_at <= now - VERIFY_INTERVAL,
        };
        if still_due && tokens.refresh_token.is_some() {
            return self.refresh_leased(fresh, tokens).await;
        }
        // Storing the row as read releases the lease.
        store
            .put_upstream_tokens(&fresh)
            .await
            .map_err(store_error)?;
        Ok(self.remember(user, provider, tokens))
    }

    fn open(&self, row: &UpstreamTokenRecord) -> Result<UpstreamTokens, UpstreamTokenError> {
        open_record(self.runtime.vault(), row).map_err(|e| {
            tracing::error!(provider = %row.provider, error = %e, "cannot open a user's upstream tokens");
            UpstreamTokenError::Vault(e.to_string())
        })
    }

    /// Caches `tokens` until [`REFRESH_MARGIN`] before they expire (a day when the provider did not say).
    fn remember(&self, user: &str, provider: &str, tokens: UpstreamTokens) -> Arc<UpstreamTokens> {
        let now = self.now();
        let until = tokens
            .expires_at
            .map_or(now + 86_400, |at| at - REFRESH_MARGIN);
        let tokens = Arc::new(tokens);
        let key = (user.to_owned(), provider.to_owned());
        self.tokens.put(key, tokens.clone(), until, now);
        tokens
    }

    /// With the lease held: refreshes at the provider and stores the answer (which releases the lease).
    /// `invalid_grant` deletes the row; another failure puts the row back unchanged (releasing the lease) and
    /// still returns the old access token while it is valid.
    async fn refresh_leased(&self, row: UpstreamTokenRecord, old: UpstreamTokens) -> Loaded {
        let store = self.authz.core().store();
        let (user, provider) = (row.user_id.as_str(), row.provider.as_str());
        let refreshed = match (self.provider(provider), &old.refresh_token) {
            (Ok(cfg), Some(rt)) => self.refresh_at(user, cfg, rt).await,
            (Err(e), _) => {
                store.put_upstream_tokens(&row).await.map_err(store_error)?;
                return Err(e);
            }
            (_, None) => Err(IdpError::Upstream {
                error: "invalid_grant".into(),
                description: None,
            }),
        };
        let now = self.now();
        match refreshed {
            Ok(new) => {
                let merged = new.refreshed_from(&old);
                let rec = seal_record(
                    self.runtime.vault(),
                    user,
                    provider,
                    &merged,
                    self.authz.core().rng(),
                    now,
                )
                .map_err(|e| UpstreamTokenError::Vault(e.to_string()))?;
                store.put_upstream_tokens(&rec).await.map_err(store_error)?;
                tracing::debug!(provider, "refreshed a user's upstream tokens");
                Ok(self.remember(user, provider, merged))
            }
            Err(e) if e.is_invalid_grant() => {
                tracing::warn!(provider, "the identity provider refused the user's refresh token (invalid_grant): their upstream tokens are deleted");
                self.forget(user, provider);
                store
                    .delete_upstream_tokens(user, provider)
                    .await
                    .map_err(store_error)?;
                Err(UpstreamTokenError::Revoked {
                    provider: provider.to_owned(),
                })
            }
            Err(e) => {
                tracing::warn!(
                    provider,
                    code = e.code(),
                    "cannot refresh a user's upstream tokens"
                );
                store.put_upstream_tokens(&row).await.map_err(store_error)?;
                still_valid(old, now).ok_or_else(|| unavailable(provider, &e))
            }
        }
    }

    /// The refresh at the provider (RFC 6749 §6). An ID token in the answer must be valid and name the user's
    /// subject (OpenID Connect Core §12.2): one that is not counts as `invalid_grant` (the tokens are not trusted,
    /// the user signs in again); one that cannot be checked now (key set unreachable) is let through with a warning,
    /// since the refresh token may already have rotated.
    async fn refresh_at(
        &self,
        user: &str,
        cfg: &ProviderConfig,
        refresh_token: &Secret,
    ) -> Result<UpstreamTokens, IdpError> {
        let md = self.runtime.metadata(cfg).await?;
        let new = self.runtime.idp().refresh(cfg, &md, refresh_token).await?;
        let Some(id_token) = new.id_token.as_deref() else {
            return Ok(new);
        };
        let provider = cfg.name.as_str();
        let identities = self.authz.core().store().identities_of(user).await;
        let subject = identities.ok().and_then(|ids| {
            ids.into_iter()
                .find(|i| i.provider == provider)
                .map(|i| i.subject)
        });
        let Some(subject) = subject else {
            tracing::warn!(
                provider,
                "no identity to check a refreshed ID token against"
            );
            return Ok(new);
        };
        match (self.runtime.idp())
            .validate_refreshed_id_token(id_token, cfg, &md, &subject)
            .await
        {
            Ok(_) => Ok(new),
            Err(e) if e.is_unavailable() => {
                tracing::warn!(
                    provider,
                    code = e.code(),
                    "cannot check a refreshed ID token now"
                );
                Ok(new)
            }
            Err(e) => {
                tracing::warn!(provider, code = e.code(), "refused a refreshed ID token");
                Err(IdpError::Upstream {
                    error: "invalid_grant".into(),
                    description: Some("the refreshed ID token is not valid for this user".into()),
                })
            }
        }
    }

    /// Another instance holds the lease: polls the row (backoff 50 ms doubling to 1 s, at most the wait
    /// limit) until its sealed value changes (the new tokens), it disappears (`invalid_grant` there), or the
    /// lease is released unchanged (that refresh failed). Then the old token while valid, or `Unavailable`.
    async fn wait_for_refresh(&self, row: UpstreamTokenRecord, old: UpstreamTokens) -> Loaded {
        let store = self.authz.core().store();
        let (user, provider) = (row.user_id.as_str(), row.provider.as_str());
        let deadline = tokio::time::Instant::now() + self.wait_limit;
        let mut pause = Duration::from_millis(50);
        loop {
            tokio::time::sleep(
                pause.min(deadline.saturating_duration_since(tokio::time::Instant::now())),
            )
            .await;
            pause = (pause * 2).min(Duration::from_secs(1));
            let Some(now_row) =
                (store.upstream_tokens(user, provider).await).map_err(store_error)?
            else {
                return Err(UpstreamTokenError::Revoked {
                    provider: provider.to_owned(),
                });
            };
            if now_row.sealed != row.sealed {
                let tokens = self.open(&now_row)?;
                return Ok(self.remember(user, provider, tokens));
            }
            if now_row.refreshing_until <= self.now() || tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        still_valid(old, self.now()).ok_or_else(|| UpstreamTokenError::Unavailable {
            provider: provider.to_owned(),
            code: "refresh_busy",
        })
    }
}

/// `tokens` if their access token has not expired at `now` (uncached: it is about to).
fn still_valid(tokens: UpstreamTokens, now: i64) -> Option<Arc<UpstreamTokens>> {
    tokens
        .expires_at
        .is_none_or(|at| at > now)
        .then(|| Arc::new(tokens))
}

fn unavailable(provider: &str, e: &IdpError) -> UpstreamTokenError {
    UpstreamTokenError::Unavailable {
        provider: provider.to_owned(),
        code: e.code(),
    }
}

fn store_error(e: portcullis_authz::store::StoreError) -> UpstreamTokenError {
    UpstreamTokenError::Store(e.to_string())
}
