//! Storage traits, one per aggregate, and the records they hold. `portcullis-store` implements them on SQLite
//! (and PostgreSQL); tests in this crate use an in-memory implementation.
//!
//! Every method is one transaction: when it returns `Ok`, the change is durable. Single-use transitions (code
//! redemption, refresh rotation) are conditional updates so that exactly one of many concurrent callers wins.

mod federation;

pub use crate::client_reaping::ReapCutoffs;
use crate::secret::{Secret, TokenHash};
pub use crate::token::error::RefreshError;
use async_trait::async_trait;
pub use federation::{
    FederationStore, IdentityRecord, Reseal, SealedRow, SealedRowKey, SealedTable,
    UpstreamStateRecord, UpstreamTokenRecord,
};
use portcullis_proto::Scope;
use std::fmt;

/// Why storage failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database cannot be reached or timed out; the caller answers 503 `temporarily_unavailable`.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A unique constraint was hit (e.g. a user name that exists).
    #[error("already exists: {0}")]
    Conflict(String),
    /// Stored data could not be read back.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// Anything else.
    #[error("storage error: {0}")]
    Other(String),
}

/// A registered client, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRecord {
    /// The client identifier.
    pub client_id: String,
    /// Hash of the client secret, for confidential clients.
    pub secret_hash: Option<TokenHash>,
    /// The registered metadata as echoed to the client (JSON object text).
    pub metadata_json: String,
    /// Registration time.
    pub created_at: i64,
    /// Who stored it: only clients stored by unauthenticated parties are ever reaped
    /// ([`crate::client_reaping`]).
    pub origin: ClientOrigin,
    /// For an introspection credential made by the admin (`portcullis clients add NAME --introspection`,
    /// storage migration 0008): the audiences whose tokens it may introspect, empty for every audience of this
    /// issuer. `None` for every other client, which may introspect only the tokens issued to it.
    pub introspection: Option<Vec<String>>,
}

/// How a client came to be stored (migration 0007; rows stored before it are classified there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientOrigin {
    /// Open dynamic registration at `POST /register` (RFC 7591 §3), by anyone: reapable.
    Registered,
    /// The row of a URL `client_id` whose Client ID Metadata Document was resolved (the document stays the
    /// authority, and the row is stored again at its next use): reapable.
    MetadataDocument,
    /// Made by an administrator with the `portcullis` command: never reaped.
    Admin,
}

impl ClientOrigin {
    /// The stored form (column `clients.origin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "dynamic",
            Self::MetadataDocument => "metadata_document",
            Self::Admin => "admin",
        }
    }

    /// Reads the stored form; `None` for a value this version does not know.
    pub fn from_stored(text: &str) -> Option<Self> {
        match text {
            "dynamic" => Some(Self::Registered),
            "metadata_document" => Some(Self::MetadataDocument),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// A client with how it was used, derived from its grants so that issuing and refreshing tokens write nothing
/// new (`portcullis clients list`, and the reaping rule).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientUsage {
    /// The client.
    pub client: ClientRecord,
    /// Its last use: the newest code exchange (grant creation) or refresh (family issue time) among its grants,
    /// and of the grants already purged (kept on the client row when they are deleted). `None`: it never obtained
    /// a token.
    pub last_used_at: Option<i64>,
    /// Its live grants: neither revoked nor expired (nor their refresh token idle-expired).
    pub live_grants: u64,
}

/// An end user who can log in.
#[derive(Clone, PartialEq)]
pub struct UserRecord {
    /// Stable identifier (the token `sub`).
    pub id: String,
    /// Login name.
    pub username: String,
    /// argon2id PHC string; "" for a user without a password (created at a first sign-in through an identity
    /// provider), who can never sign in with a password.
    pub password_hash: String,
    /// Creation time.
    pub created_at: i64,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Who a user is, for display: carried from the login session to the authorization code, its grant and every
/// access token minted from that grant (claims `preferred_username`, `email`, `idp`: OpenID Connect Core §5.1
/// names them; RFC 9068 §2.2.3.1 lets access tokens carry identity claims). Informational only: authorization
/// decisions use the user id (`sub`), never these.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisplayIdentity {
    /// The name to show (OpenID Connect Core §5.1 `preferred_username`): the login name of a password user, the
    /// identity provider's user name for a federated one. Empty when unknown (the claim is then omitted).
    pub preferred_username: String,
    /// The user's email address, and only one the identity provider said it verified (OpenID Connect Core §5.1
    /// `email` with `email_verified: true`, or GitHub's verified primary address); never an unverified one.
    pub email: Option<String>,
    /// The name of the upstream identity provider the user signed in through (`[[identity_providers]] name`);
    /// `None` for a password login.
    pub idp: Option<String>,
}

impl DisplayIdentity {
    /// The identity of a user who logged in with a password: their login name, no email, no provider.
    pub fn password_user(username: &str) -> Self {
        Self {
            preferred_username: username.to_owned(),
            email: None,
            idp: None,
        }
    }
}

/// A browser login session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// Hash of the session cookie value.
    pub id_hash: TokenHash,
    /// The logged-in user.
    pub user_id: String,
    /// The user's login name, for display.
    pub username: String,
    /// Who signed in, as the tokens of this session's grants will say (a session opened before storage
    /// migration 0005 reads back with the login name as `preferred_username`).
    pub identity: DisplayIdentity,
    /// Key for this session's CSRF tokens.
    pub csrf_key: Secret,
    /// Login time.
    pub created_at: i64,
    /// End of the session.
    pub expires_at: i64,
}

/// An authorization code, bound to everything the token request must repeat (RFC 6749 §4.1.3, RFC 7636 §4.6,
/// RFC 8707 §2.2).
#[derive(Debug, Clone, PartialEq)]
pub struct CodeRecord {
    /// Hash of the code.
    pub code_hash: TokenHash,
    /// The client it was issued to.
    pub client_id: String,
    /// The user who approved it.
    pub user_id: String,
    /// The `redirect_uri` of the authorization request, exactly as sent.
    pub redirect_uri: String,
    /// The S256 `code_challenge`.
    pub code_challenge: String,
    /// The granted scope.
    pub scope: String,
    /// The audience of the tokens.
    pub resource: String,
    /// Issue time.
    pub created_at: i64,
    /// Expiry.
    pub expires_at: i64,
    /// When it was redeemed (`None` while unused).
    pub used_at: Option<i64>,
    /// The grant its redemption created.
    pub grant_id: Option<String>,
    /// Who approved it, copied from the session to the grant.
    pub identity: DisplayIdentity,
}

/// A grant: one user's authorization of one client, the family of every refresh token rotated from it.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantRecord {
    /// Identifier (the access token's `sid` claim).
    pub id: String,
    /// The client.
    pub client_id: String,
    /// The user.
    pub user_id: String,
    /// The granted scope.
    pub scope: String,
    /// The audience.
    pub resource: String,
    /// Start of the grant.
    pub created_at: i64,
    /// Absolute end: no refresh token of the family outlives it.
    pub expires_at: i64,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// Who the grant's access tokens name (claims `preferred_username`, `email`, `idp`), fixed at code
    /// exchange; read with the grant at every refresh, so no extra storage read.
    pub identity: DisplayIdentity,
}

/// The refresh-token family of a grant (RFC 9700 §4.14.2), stored with the grant and rewritten in place on
/// every rotation: one row per grant however often it is refreshed.
///
/// A refresh token is `HANDLE.SECRET` (see `token::refresh`). The handle is fixed for the family's life and
/// appears nowhere but in its refresh tokens; the secret changes with every rotation. Only hashes are stored:
/// `key` (of the handle) finds the family, `token_hash` (of the current secret) says which token is live. A
/// token with the family's handle but another secret is therefore a retired token of this family, so the reuse
/// of any earlier token is detected although none of them is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshFamily {
    /// Hash of the family's handle.
    pub key: TokenHash,
    /// Hash of the live token's secret part.
    pub token_hash: TokenHash,
    /// When the live token was issued: the time of the last rotation, where the grace period starts.
    pub issued_at: i64,
    /// Idle expiry of the live token.
    pub expires_at: i64,
    /// The token the last rotation retired, while a grace period may still honour it (`None` before the first
    /// rotation, and after rotations made with no grace period; only rotations write it, so a new family given
    /// to `redeem_code` has none).
    pub previous: Option<PreviousToken>,
}

/// The token a rotation retired, kept so a retry within the grace period gets the same successor
/// (`token::successor`): its hash and the live token sealed under it. Neither is usable without the retired
/// token itself.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviousToken {
    /// Hash of the retired token's secret part.
    pub hash: TokenHash,
    /// The live token's secret, sealed under the retired one (32 bytes).
    pub sealed_successor: Vec<u8>,
}

/// The next live token of a family, as decided by a [`RotationDecider`].
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshUpdate {
    /// Hash of the new token's secret part.
    pub token_hash: TokenHash,
    /// Issue time.
    pub issued_at: i64,
    /// Idle expiry.
    pub expires_at: i64,
    /// The token this rotation retires, with the new one sealed under it; `None` with no grace period.
    pub previous: Option<PreviousToken>,
}

/// What a refresh does to the family, as a [`RotationDecider`] decided it.
#[derive(Debug, Clone, PartialEq)]
pub enum RotationStep {
    /// The presented token is live: store the update (the single-use step).
    Rotate(RefreshUpdate),
    /// The presented token is the one the last rotation retired, presented again within the grace period by
    /// its client: write nothing (and revoke nothing); the answer carries this successor, the family's live
    /// token, opened from the row (RFC 9700 §4.14.2 rotation with a grace period; see `token::refresh`).
    Replay(Secret),
}

/// What a [`RotationDecider`] decided when it allows the refresh: what happens to the family and the scope the
/// new access token carries.
#[derive(Debug, Clone, PartialEq)]
pub struct RotationDecision {
    /// Rotate (write) or replay (no write).
    pub step: RotationStep,
    /// The scope granted by this refresh (RFC 6749 §6: the grant's, or a narrower one asked for).
    pub scope: Scope,
}

/// Decides a rotation from the family and its grant as they are inside the rotation's storage operation: the
/// new live token, a replay (no write), or why not. A refusal for which [`RefreshError::revokes_family`] holds makes the store revoke
/// the grant in that same operation. It must be a pure function of its arguments (and what it captured): a
/// backend may call it again when it retries.
pub type RotationDecider = Box<
    dyn Fn(&RefreshFamily, &GrantRecord) -> Result<RotationDecision, RefreshError> + Send + Sync,
>;

/// A committed rotation, or a replay: the grant it refreshed and the scope decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotation {
    /// The grant, as read before the rotation.
    pub grant: GrantRecord,
    /// The scope of the new access token.
    pub scope: Scope,
    /// For a [`RotationStep::Replay`], the live token's secret to answer with; `None` after a rotation (the
    /// caller knows the token it chose).
    pub replayed: Option<Secret>,
}

impl Rotation {
    /// The outcome of `decision` on `grant` once the store has carried it out.
    pub fn of(grant: GrantRecord, decision: RotationDecision) -> Self {
        let replayed = match decision.step {
            RotationStep::Rotate(_) => None,
            RotationStep::Replay(s) => Some(s),
        };
        Self {
            grant,
            scope: decision.scope,
            replayed,
        }
    }
}

/// When a reuse detected by a rotation revokes its grant: the time, and how long its revocation entry lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReuseRevocation {
    /// The revocation time (`revoked_at`).
    pub now: i64,
    /// The end of the revocation entry's life.
    pub expires_at: i64,
}

/// A signing key.
#[derive(Clone, PartialEq)]
pub struct SigningKeyRecord {
    /// Key id (RFC 7638 thumbprint).
    pub kid: String,
    /// JWS algorithm.
    pub alg: String,
    /// Private key bytes.
    pub private_key: Vec<u8>,
    /// Public JWK (JSON object text).
    pub public_jwk: String,
    /// Creation time.
    pub created_at: i64,
    /// Whether new tokens are signed with it (exactly one key is active).
    pub active: bool,
    /// Once retired: when it may leave the JWKS (all tokens it signed have expired).
    pub publish_until: Option<i64>,
}

impl fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("active", &self.active)
            .field("publish_until", &self.publish_until)
            .finish_non_exhaustive()
    }
}

/// What a revocation entry revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokedKind {
    /// One access token, by `jti`.
    AccessToken,
    /// Every token of a grant, by grant id (`sid`).
    Grant,
}

/// A revocation the MCP endpoint must honour until `expires_at` (after which the tokens it names have expired
/// anyway).
#[derive(Debug, Clone, PartialEq)]
pub struct RevocationRecord {
    /// Monotonic sequence number, for incremental sync.
    pub seq: i64,
    /// What is revoked.
    pub kind: RevokedKind,
    /// The `jti` or grant id.
    pub value: String,
    /// When the entry can be forgotten.
    pub expires_at: i64,
}

/// A push channel for the revocation feed ([`GrantStore::listen_revocations`]): one connection per instance.
#[async_trait]
pub trait RevocationListener: Send {
    /// Waits for the next notice that the feed has grown: `Some(seq)` when the writer named the newest sequence
    /// number it appended (a hint only, never trusted beyond skipping a read that `seq` shows is not needed),
    /// `None` when it did not. Notices that arrived together are coalesced into one. An error means the
    /// channel is lost (notices may have been missed): drop the listener, read the feed, listen again.
    async fn next(&mut self) -> Result<Option<i64>, StoreError>;
}

/// Outcome of a conditional single-use transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// This caller won: the transition happened and its successor rows are committed.
    Won,
    /// Someone already used it (replay or a lost race).
    AlreadyUsed,
}

/// Registered clients.
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Stores a new client.
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError>;
    /// Reads a client.
    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError>;
    /// Every client, oldest first.
    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError>;
    /// Deletes a client and everything issued to it; its live grants get revocation entries that live until
    /// `revocation_expires_at`, so their access tokens stop working too. Returns whether it existed.
    async fn delete_client(
        &self,
        client_id: &str,
        now: i64,
        revocation_expires_at: i64,
    ) -> Result<bool, StoreError>;
    /// Every client with its usage at `now`, oldest first.
    async fn client_usage(&self, now: i64) -> Result<Vec<ClientUsage>, StoreError>;
    /// Deletes up to `limit` clients that `cutoffs` reap ([`crate::client_reaping`]; the same rule as
    /// [`crate::client_reaping::ReapPolicy::reason`]), the smallest client ids above `after` first, as
    /// [`ClientStore::delete_client`] does (grants not yet revoked get revocation entries living until
    /// `revocation_expires_at`; consents, codes and grants go). One short transaction that decides on what is
    /// committed when it runs: a client that obtains a grant meanwhile is kept. Returns the deleted ids, in order.
    async fn reap_clients(
        &self,
        cutoffs: &ReapCutoffs,
        after: &str,
        limit: u32,
        revocation_expires_at: i64,
    ) -> Result<Vec<String>, StoreError>;
}

/// End users.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Stores a new user; `Conflict` if the name is taken.
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError>;
    /// Reads a user by login name.
    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Every user, by name.
    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError>;
    /// Deletes a user, their sessions, consents and grants (revoked as in [`ClientStore::delete_client`]),
    /// their identities at upstream providers and their upstream tokens. Returns whether they existed.
    async fn delete_user(
        &self,
        username: &str,
        now: i64,
        revocation_expires_at: i64,
    ) -> Result<bool, StoreError>;
    /// Replaces a user's password hash and ends their sessions. Returns whether they existed.
    async fn set_password(&self, username: &str, password_hash: &str) -> Result<bool, StoreError>;
    /// How many users exist.
    async fn count_users(&self) -> Result<i64, StoreError>;
}

/// Login sessions and remembered consent.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session.
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError>;
    /// Reads a live session (not expired at `now`).
    async fn session(
        &self,
        id_hash: &TokenHash,
        now: i64,
    ) -> Result<Option<SessionRecord>, StoreError>;
    /// Ends a session.
    async fn delete_session(&self, id_hash: &TokenHash) -> Result<(), StoreError>;
    /// The scope a user has approved for a client at a protected resource (RFC 8707 §2), if any.
    async fn consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
    ) -> Result<Option<String>, StoreError>;
    /// Whether the user has ever approved the client, for any resource (the authorization endpoint redirects
    /// errors only to such clients; RFC 9700 §4.11.2).
    async fn has_consented(&self, user_id: &str, client_id: &str) -> Result<bool, StoreError>;
    /// Records (replaces) a user's approval of a scope for a client at a resource.
    async fn save_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
        scope: &str,
        now: i64,
    ) -> Result<(), StoreError>;
}

/// Codes, grants, refresh tokens and revocations.
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Stores a new authorization code.
    async fn insert_code(&self, code: &CodeRecord) -> Result<(), StoreError>;
    /// Reads a code (used or not).
    async fn code(&self, code_hash: &TokenHash) -> Result<Option<CodeRecord>, StoreError>;
    /// In one transaction: marks the code used if it is unused, and if so creates `grant` with its refresh-token
    /// family (none when the client may not refresh).
    async fn redeem_code(
        &self,
        code_hash: &TokenHash,
        now: i64,
        grant: &GrantRecord,
        refresh: Option<&RefreshFamily>,
    ) -> Result<Transition, StoreError>;
    /// Revokes the grant a code's redemption created, if any (code reuse, RFC 6749 §4.1.2). Returns the grant id.
    async fn revoke_grant_of_code(
        &self,
        code_hash: &TokenHash,
        now: i64,
        revocation_expires_at: i64,
    ) -> Result<Option<String>, StoreError>;
    /// Reads the refresh-token family whose handle hashes to `key`, and its grant.
    async fn refresh_family(
        &self,
        key: &TokenHash,
    ) -> Result<Option<(RefreshFamily, GrantRecord)>, StoreError>;
    /// In one transaction, the single-use step of a refresh (OAuth 2.1 §4.3.1): reads the family for `key` and
    /// its grant, asks `decide` once, and stores the update it returns ([`RotationStep::Rotate`]; a
    /// [`RotationStep::Replay`] writes nothing and revokes nothing); when it refuses with a reason that
    /// [revokes the family](RefreshError::revokes_family), revokes the grant and logs its revocation (as
    /// [`GrantStore::revoke_grant`] with `reuse`) in the same operation. Concurrent rotations of one family run
    /// one after another, each deciding on what the previous one committed, so of many callers presenting the
    /// same token exactly one sees it live (and the others see it as the retired token, which the decision
    /// may replay within the grace period). [`RefreshError::Unknown`] when no family has this key.
    async fn rotate_refresh(
        &self,
        key: &TokenHash,
        decide: RotationDecider,
        reuse: ReuseRevocation,
    ) -> Result<Result<Rotation, RefreshError>, StoreError>;
    /// Revokes a grant (every refresh token of the family, and its access tokens through a revocation entry
    /// that lives until `revocation_expires_at`). Returns whether the grant existed and was live.
    async fn revoke_grant(
        &self,
        grant_id: &str,
        now: i64,
        revocation_expires_at: i64,
    ) -> Result<bool, StoreError>;
    /// Records the revocation of one access token.
    async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<(), StoreError>;
    /// Revocations with a sequence number above `after` that have not expired at `now`, in order.
    async fn revocations_since(
        &self,
        after: i64,
        now: i64,
    ) -> Result<Vec<RevocationRecord>, StoreError>;
    /// Opens a push channel for the revocation feed: a listener told when another writer (any instance) has
    /// appended to it, so followers need not wait for their next [`GrantStore::revocations_since`] poll. `None`
    /// when the backend has nothing to push (the default; SQLite serves one instance, whose own revocations
    /// sync at once). The feed stays the source of truth: a notice only says when to read it again.
    async fn listen_revocations(&self) -> Result<Option<Box<dyn RevocationListener>>, StoreError> {
        Ok(None)
    }
    /// Reads a grant.
    async fn grant(&self, grant_id: &str) -> Result<Option<GrantRecord>, StoreError>;
    /// Deletes expired codes, refresh tokens, grants, sessions, revocation entries, rate-limit windows and
    /// pending upstream sign-ins, and retired keys past their publication. Before expired grants go, each
    /// client's last use among them is kept on the client ([`ClientUsage::last_used_at`]). Returns rows
    /// removed. (Dead registrations are [reaped](ClientStore::reap_clients) apart.)
    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError>;
}

/// Signing keys.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Every key that is active or still published at `now`.
    async fn signing_keys(&self, now: i64) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Stores `key` as the active key if no key is active (first start). Returns whether it was stored.
    async fn insert_first_key(&self, key: &SigningKeyRecord) -> Result<bool, StoreError>;
    /// In one transaction: retires the active key (published until `retire_publish_until`) and makes `key`
    /// the active one.
    async fn rotate_key(
        &self,
        key: &SigningKeyRecord,
        retire_publish_until: i64,
    ) -> Result<(), StoreError>;
}

/// Health of the storage backend.
#[async_trait]
pub trait HealthStore: Send + Sync {
    /// A cheap round trip to the database.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Event counters in fixed windows, shared by every instance on the database: the login throttle (OWASP
/// Authentication Cheat Sheet, "Login Throttling") holds across instances behind a load balancer.
#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Adds one event to `key`'s window that starts at `window_start` and returns the window's count
    /// including it. Concurrent hits are all counted (one atomic upsert). `expires_at` is when the window's
    /// row may be purged.
    async fn hit(&self, key: &str, window_start: i64, expires_at: i64) -> Result<u32, StoreError>;
    /// The count of `key`'s window that starts at `window_start` (0 when there is none).
    async fn hits(&self, key: &str, window_start: i64) -> Result<u32, StoreError>;
    /// Forgets every window of `key`.
    async fn clear_hits(&self, key: &str) -> Result<(), StoreError>;
    /// Adds one event to `key`'s window only if the window holds fewer than `limit`, in one atomic conditional
    /// upsert: the count including it, or `None` (nothing added) when the window is full. Parallel callers on
    /// any instance never get more than `limit` places between them (a reservation taken before the work).
    async fn reserve_hit(
        &self,
        key: &str,
        window_start: i64,
        expires_at: i64,
        limit: u32,
    ) -> Result<Option<u32>, StoreError>;
    /// Takes back one event of `key`'s window that starts at `window_start` (counted by
    /// [`RateLimitStore::hit`] or [`RateLimitStore::reserve_hit`] for an attempt that was not made or whose
    /// outcome does not count); never below zero, nothing when the window is gone.
    async fn release_hit(&self, key: &str, window_start: i64) -> Result<(), StoreError>;
}

/// Everything the server needs from storage.
pub trait Storage:
    ClientStore
    + UserStore
    + SessionStore
    + GrantStore
    + KeyStore
    + HealthStore
    + RateLimitStore
    + FederationStore
    + 'static
{
}

impl<
        T: ClientStore
            + UserStore
            + SessionStore
            + GrantStore
            + KeyStore
            + HealthStore
            + RateLimitStore
            + FederationStore
            + 'static,
    > Storage for T
{
}
