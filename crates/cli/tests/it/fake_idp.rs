//! A misbehaving OpenID Provider for the federation negative tests (issue 13): an axum server on 127.0.0.1:0 in
//! the test process, on its own thread and runtime (so a test that blocks, e.g. on a child process, does not
//! stall it), that answers at once and does exactly the wrong thing it is told to.
//!
//! The real, well-behaved IdP is `crate::idp::TestIdp` (node-oidc-provider); use it for the positive flows and
//! this one where a test needs a broken ID token, a mix-up, an error, a slow or a dead IdP (see
//! `interop/idp/README.md`, "The fake IdP").
//!
//! Endpoints (under the issuer, which may have a path, [`FakeIdpConfig::issuer_path`]):
//! - `/.well-known/openid-configuration` (OIDC Discovery §4): `issuer` is the IdP's own URL unless
//!   [`Behaviour::discovery_issuer`] says otherwise (the mix-up test), then [`Behaviour::discovery_patch`];
//! - `/jwks`: the current RS256 and ES256 keys (and old ones kept by [`FakeIdp::rotate_keys`]);
//! - `/authorize`: no pages: a 302 at once to the `redirect_uri` with `code`, `state` and `iss` (RFC 9207), or the
//!   error of [`Behaviour::authorize_error`]; PKCE S256 required (RFC 7636);
//! - `/token`: authorization code (client authentication, single-use code, same `redirect_uri`, PKCE verifier
//!   against the challenge), refresh (rotating) and token exchange (RFC 8693); the ID token is built per
//!   [`Misbehaviour`]; access and refresh tokens are opaque;
//! - `/userinfo` (OIDC Core §5.3): the account's claims for a Bearer access token it issued.
//!
//! Every request is recorded ([`FakeIdp::received`]) so tests can assert what Portcullis sent.
//!
//! ```ignore
//! let idp = FakeIdp::start(FakeIdpConfig::default());
//! idp.update(|b| b.id_token = Misbehaviour::AlgNone);
//! // … Portcullis configured with issuer = idp.issuer(), client FAKE_CLIENT_ID / FAKE_CLIENT_SECRET …
//! assert_eq!(idp.received().token[0].field("code_verifier"), Some(verifier));
//! idp.set_mode(Mode::Down);   // connections refused from now on; Mode::Up listens again on the same port
//! ```

#![allow(dead_code, unreachable_pub)]

mod endpoints;
mod keys;
#[cfg(test)]
mod tests;

pub use keys::Alg;

use endpoints::{basic_credentials, field, id_token, router};
use keys::KeySet;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The client id the fake IdP knows by default.
pub const FAKE_CLIENT_ID: &str = "portcullis";
/// Its secret: with a space, `+`, `/`, `:` and `%` so that a client that skips the form-encoding of
/// `client_secret_basic` (RFC 6749 §2.3.1) fails.
pub const FAKE_CLIENT_SECRET: &str = "fake secret +/:%";
/// The default subject.
pub const FAKE_SUBJECT: &str = "fake-user-1";
/// RFC 8693 §2.1.
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3.
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// How the client authenticates at the token endpoint (OIDC Core §9); the fake accepts only this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    #[default]
    ClientSecretBasic,
    ClientSecretPost,
    /// A public client: `client_id` in the form, no secret.
    None,
}

/// What is fixed when the fake starts.
#[derive(Debug, Clone)]
pub struct FakeIdpConfig {
    pub client_id: String,
    pub client_secret: String,
    pub client_auth: ClientAuth,
    /// Accepted redirect URIs; empty: any (the port of Portcullis is often not known before the IdP starts).
    pub redirect_uris: Vec<String>,
    /// A path after `http://127.0.0.1:PORT` in the issuer, e.g. `/tenant/v2` (empty: none). Every endpoint
    /// lives under it, discovery at `<issuer>/.well-known/openid-configuration` (OIDC Discovery §4).
    pub issuer_path: String,
}

impl Default for FakeIdpConfig {
    fn default() -> Self {
        Self {
            client_id: FAKE_CLIENT_ID.to_owned(),
            client_secret: FAKE_CLIENT_SECRET.to_owned(),
            client_auth: ClientAuth::ClientSecretBasic,
            redirect_uris: Vec::new(),
            issuer_path: String::new(),
        }
    }
}

/// What the ID token of the token endpoint gets wrong (OIDC Core §3.1.3.7 lists the checks these break).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Misbehaviour {
    /// A valid ID token.
    #[default]
    None,
    /// The `kid` of the published key, the signature of an unpublished one (§3.1.3.7 step 6).
    SignedByOtherKey,
    /// Signed by an unpublished key under a `kid` the JWKS does not have (a refetch finds nothing either).
    UnknownKid,
    /// `alg: none`, empty signature (RFC 7518 §3.6).
    AlgNone,
    /// HS256 keyed with the client secret, `kid` of the published key (algorithm confusion).
    Hs256WithClientSecret,
    /// Validly signed, then the payload is changed (`sub` of someone else) without signing again.
    TamperedPayload,
    /// `aud` is another client (step 3).
    WrongAudience,
    /// `exp` ten minutes ago (step 9).
    Expired,
    /// `iat` an hour ahead (step 10: too far from now).
    IatInFuture,
    /// A `nonce` other than the one of the authorization request (step 11).
    WrongNonce,
    /// No `nonce` although the request had one (step 11).
    MissingNonce,
    /// `iss` is not the issuer (step 2).
    WrongIssuer,
    /// `aud` is `[client_id, "another-audience"]` and there is no `azp` (step 3/4).
    MissingAzpWithSeveralAud,
    /// `aud` has several entries and `azp` is not the client (step 5).
    WrongAzp,
    /// No `sub` (§2: required).
    MissingSub,
    /// The token response has no `id_token` at all (§3.1.3.3: required for `openid`).
    NoIdToken,
    /// `id_token` is not a JWS.
    Garbage,
}

/// The `iss` authorization response parameter (RFC 9207 §2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IssParam {
    #[default]
    Correct,
    Absent,
    Other(String),
}

/// The `state` echoed to the redirect URI (RFC 6749 §4.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StateParam {
    #[default]
    Same,
    Absent,
    Other(String),
}

/// Whether and how the fake answers at all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Up,
    /// Every response waits this long first.
    Slow(Duration),
    /// Responses on paths ending with `.0` wait `.1` first (e.g. `("/jwks", …)`).
    SlowOn(String, Duration),
    /// The listener is closed: connections are refused. Up again (same port) on the next other mode.
    Down,
}

/// What the fake does wrong now; change it with [`FakeIdp::update`] at any time.
#[derive(Debug, Clone)]
pub struct Behaviour {
    pub id_token: Misbehaviour,
    pub signing_alg: Alg,
    /// The account: `sub` and the claims of ID tokens and userinfo.
    pub subject: String,
    /// Claims put in ID tokens and userinfo (after the standard ones, so they may override them, e.g. `aud`).
    pub claims: Map<String, Value>,
    pub iss: IssParam,
    pub state: StateParam,
    /// Whether discovery says `authorization_response_iss_parameter_supported` (RFC 9207 §3).
    pub advertise_iss: bool,
    /// `/authorize` redirects with this `error` (e.g. `access_denied`, `login_required`) instead of a code.
    pub authorize_error: Option<String>,
    /// The discovery document's `issuer` (the mix-up test; OIDC Discovery §4.3); `None`: the real one.
    pub discovery_issuer: Option<String>,
    /// Merged into the discovery document last (`null` removes a member).
    pub discovery_patch: Map<String, Value>,
    /// Served instead of the JWK Set.
    pub jwks_override: Option<Value>,
    /// The authorization code grant answers 400 with this `error` (e.g. `invalid_grant`).
    pub token_error: Option<String>,
    /// The refresh grant answers 400 with this `error` (e.g. `invalid_grant`: the user was deprovisioned).
    pub refresh_error: Option<String>,
    /// The token exchange grant answers 400 with this `error`.
    pub exchange_error: Option<String>,
    /// Refresh tokens in the code grant's answer.
    pub issue_refresh_token: bool,
    /// `expires_in` of access tokens.
    pub access_token_ttl: u64,
    /// Userinfo answers this status (e.g. 401, 500) with an OAuth error body instead of the claims.
    pub userinfo_status: Option<u16>,
    /// Userinfo's `sub` (OIDC Core §5.3.2: must equal the ID token's).
    pub userinfo_sub: Option<String>,
    pub mode: Mode,
}

impl Default for Behaviour {
    /// A valid provider: RS256, subject [`FAKE_SUBJECT`] with a verified `fake@example.com`, preferred_username
    /// `fake`, groups `eng`.
    fn default() -> Self {
        let claims = json!({
            "email": "fake@example.com",
            "email_verified": true,
            "preferred_username": "fake",
            "name": "Fake User",
            "groups": ["eng"],
        });
        Self {
            id_token: Misbehaviour::None,
            signing_alg: Alg::RS256,
            subject: FAKE_SUBJECT.to_owned(),
            claims: claims.as_object().cloned().unwrap_or_default(),
            iss: IssParam::Correct,
            state: StateParam::Same,
            advertise_iss: true,
            authorize_error: None,
            discovery_issuer: None,
            discovery_patch: Map::new(),
            jwks_override: None,
            token_error: None,
            refresh_error: None,
            exchange_error: None,
            issue_refresh_token: true,
            access_token_ttl: 3600,
            userinfo_status: None,
            userinfo_sub: None,
            mode: Mode::Up,
        }
    }
}

/// One request to the token endpoint, as received.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The form fields, decoded, in order.
    pub form: Vec<(String, String)>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    pub content_type: Option<String>,
}

impl TokenRequest {
    /// The first value of form field `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        field(&self.form, name)
    }

    /// `client_secret_basic` credentials, decoded as RFC 6749 §2.3.1 says (base64, then form-decoding of each).
    pub fn basic_credentials(&self) -> Option<(String, String)> {
        basic_credentials(self.authorization.as_deref()?)
    }
}

/// Everything the fake received so far.
#[derive(Debug, Clone, Default)]
pub struct Received {
    pub discovery: usize,
    pub jwks: usize,
    /// The query parameters of each authorization request.
    pub authorize: Vec<Vec<(String, String)>>,
    pub token: Vec<TokenRequest>,
    /// The `Authorization` header of each userinfo request.
    pub userinfo: Vec<Option<String>>,
}

impl Received {
    /// Parameter `name` of the last authorization request.
    pub fn authorize_param(&self, name: &str) -> Option<&str> {
        field(self.authorize.last()?, name)
    }
}

/// An authorization code's binding.
struct CodeGrant {
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    scope: Option<String>,
}

struct Inner {
    behaviour: Behaviour,
    keys: KeySet,
    codes: HashMap<String, CodeGrant>,
    access_tokens: HashMap<String, String>,
    refresh_tokens: HashMap<String, String>,
    received: Received,
}

struct Shared {
    config: FakeIdpConfig,
    issuer: String,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A listening server: stop it and wait for its listener to be dropped.
struct Listening {
    stop: tokio::sync::oneshot::Sender<()>,
    closed: mpsc::Receiver<()>,
}

/// The running fake IdP; stopped on drop.
pub struct FakeIdp {
    shared: Arc<Shared>,
    addr: SocketAddr,
    rt: tokio::runtime::Handle,
    rt_stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    listening: Mutex<Option<Listening>>,
}

impl Drop for FakeIdp {
    fn drop(&mut self) {
        self.stop_listening(false);
        if let Some(stop) = self.rt_stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl FakeIdp {
    /// Starts the fake on 127.0.0.1:0 with a valid [`Behaviour`].
    pub fn start(config: FakeIdpConfig) -> Self {
        let (handle_tx, handle_rx) = mpsc::channel();
        let (rt_stop, rt_stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            handle_tx.send(rt.handle().clone()).unwrap();
            let _ = rt.block_on(rt_stopped);
            rt.shutdown_timeout(Duration::from_secs(1));
        });
        let rt = handle_rx.recv().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = format!("http://{addr}{}", config.issuer_path);
        let inner = Inner {
            behaviour: Behaviour::default(),
            keys: KeySet::new(),
            codes: HashMap::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            received: Received::default(),
        };
        let shared = Arc::new(Shared {
            config,
            issuer,
            inner: Mutex::new(inner),
        });
        let idp = Self {
            shared,
            addr,
            rt,
            rt_stop: Some(rt_stop),
            thread: Some(thread),
            listening: Mutex::new(None),
        };
        idp.listen(listener);
        idp
    }

    /// The issuer, `http://127.0.0.1:PORT[issuer_path]` (no trailing slash).
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// An absolute URL under the issuer (`path` like `/token`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.shared.issuer)
    }

    pub fn config(&self) -> &FakeIdpConfig {
        &self.shared.config
    }

    /// Changes the behaviour (takes effect for the next request). Setting `mode` here to or from
    /// [`Mode::Down`] closes or reopens the listener as [`FakeIdp::set_mode`] does.
    pub fn update(&self, f: impl FnOnce(&mut Behaviour)) {
        let mode = {
            let mut inner = self.shared.lock();
            f(&mut inner.behaviour);
            inner.behaviour.mode.clone()
        };
        self.apply_mode(&mode);
    }

    /// The current behaviour.
    pub fn behaviour(&self) -> Behaviour {
        self.shared.lock().behaviour.clone()
    }

    /// [`Mode::Down`]: returns once the listener is closed (connections refused). Any other mode: listening
    /// (again, on the same port).
    pub fn set_mode(&self, mode: Mode) {
        self.update(|b| b.mode = mode);
    }

    /// What the fake received so far.
    pub fn received(&self) -> Received {
        self.shared.lock().received.clone()
    }

    /// New current keys (new kids) for both algorithms; the old ones stay in the JWKS when `keep_old`.
    /// Returns the new kids.
    pub fn rotate_keys(&self, keep_old: bool) -> Vec<String> {
        self.shared.lock().keys.rotate(keep_old)
    }

    /// The current JWK Set (what `/jwks` serves without an override).
    pub fn jwks(&self) -> Value {
        self.shared.lock().keys.jwks()
    }

    /// An ID token as the token endpoint would make it now, for `nonce` and with `misbehaviour`.
    pub fn id_token(&self, nonce: Option<&str>, misbehaviour: &Misbehaviour) -> Option<String> {
        let inner = self.shared.lock();
        id_token(&self.shared, &inner, nonce, misbehaviour)
    }

    /// Forgets every refresh and access token (the next refresh gets `invalid_grant`, userinfo 401).
    pub fn revoke_all(&self) {
        let mut inner = self.shared.lock();
        inner.access_tokens.clear();
        inner.refresh_tokens.clear();
    }

    fn apply_mode(&self, mode: &Mode) {
        let listening = self.lock_listening().is_some();
        match (mode, listening) {
            (Mode::Down, true) => self.stop_listening(true),
            (Mode::Down, false) | (_, true) => {}
            (_, false) => {
                let listener = std::net::TcpListener::bind(self.addr).unwrap_or_else(|e| {
                    panic!("the fake IdP cannot listen on {} again: {e}", self.addr)
                });
                self.listen(listener);
            }
        }
    }

    fn lock_listening(&self) -> MutexGuard<'_, Option<Listening>> {
        self.listening.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn listen(&self, listener: std::net::TcpListener) {
        listener.set_nonblocking(true).unwrap();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (closed_tx, closed) = mpsc::channel();
        let app = router(self.shared.clone());
        let _entered = self.rt.enter();
        let listener = NotifyOnDrop {
            listener: tokio::net::TcpListener::from_std(listener).unwrap(),
            closed: SendOnDrop(closed_tx),
        };
        self.rt.spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                })
                .await;
        });
        *self.lock_listening() = Some(Listening { stop, closed });
    }

    /// Stops accepting connections; with `wait`, returns once the listening socket is closed. Requests in
    /// flight are finished.
    fn stop_listening(&self, wait: bool) {
        let Some(listening) = self.lock_listening().take() else {
            return;
        };
        let _ = listening.stop.send(());
        if wait {
            listening
                .closed
                .recv_timeout(Duration::from_secs(10))
                .expect("the fake IdP's listener did not close within 10 s");
        }
    }
}

/// A listener that says when it is dropped (axum drops it as soon as the shutdown signal arrives).
struct NotifyOnDrop {
    listener: tokio::net::TcpListener,
    /// Declared after `listener`, so dropped (and the message sent) after the socket is closed.
    closed: SendOnDrop,
}

struct SendOnDrop(mpsc::Sender<()>);

impl Drop for SendOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

impl axum::serve::Listener for NotifyOnDrop {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        axum::serve::Listener::accept(&mut self.listener).await
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}
