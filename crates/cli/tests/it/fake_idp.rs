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

mod keys;
#[cfg(test)]
mod tests;

pub use keys::Alg;

use axum::body::Bytes;
use axum::extract::{RawQuery, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use keys::KeySet;
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

fn router(shared: Arc<Shared>) -> Router {
    let p = shared.config.issuer_path.clone();
    Router::new()
        .route(
            &format!("{p}/.well-known/openid-configuration"),
            get(discovery),
        )
        .route(&format!("{p}/jwks"), get(jwks))
        .route(&format!("{p}/authorize"), get(authorize))
        .route(&format!("{p}/token"), post(token))
        .route(&format!("{p}/userinfo"), get(userinfo).post(userinfo))
        .layer(middleware::from_fn_with_state(shared.clone(), slow))
        .with_state(shared)
}

/// [`Mode::Slow`] and [`Mode::SlowOn`].
async fn slow(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let delay = match shared.lock().behaviour.mode.clone() {
        Mode::Slow(d) => Some(d),
        Mode::SlowOn(suffix, d) if request.uri().path().ends_with(&suffix) => Some(d),
        _ => None,
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    next.run(request).await
}

/// OIDC Discovery §3 metadata, RFC 8414 §2 names.
async fn discovery(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let mut inner = shared.lock();
    inner.received.discovery += 1;
    let b = &inner.behaviour;
    let base = &shared.issuer;
    let mut doc = json!({
        "issuer": b.discovery_issuer.clone().unwrap_or_else(|| base.clone()),
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", TOKEN_EXCHANGE],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "scopes_supported": ["openid", "email", "profile", "groups", "offline_access"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "email", "email_verified",
                             "preferred_username", "name", "groups"],
        "authorization_response_iss_parameter_supported": b.advertise_iss,
    });
    let obj = doc.as_object_mut().unwrap();
    for (k, v) in &b.discovery_patch {
        if v.is_null() {
            obj.remove(k);
        } else {
            obj.insert(k.clone(), v.clone());
        }
    }
    Json(doc)
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let mut inner = shared.lock();
    inner.received.jwks += 1;
    Json(
        inner
            .behaviour
            .jwks_override
            .clone()
            .unwrap_or_else(|| inner.keys.jwks()),
    )
}

/// RFC 6749 §4.1.1 / OIDC Core §3.1.2.1 in, §4.1.2 (+ RFC 9207 `iss`) or §4.1.2.1 out, without any page.
async fn authorize(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let params = parse_form(query.unwrap_or_default().as_bytes());
    let mut inner = shared.lock();
    inner.received.authorize.push(params.clone());
    let cfg = &shared.config;
    if field(&params, "client_id") != Some(cfg.client_id.as_str()) {
        return (StatusCode::BAD_REQUEST, "unknown client_id").into_response();
    }
    let Some(redirect_uri) = field(&params, "redirect_uri") else {
        return (StatusCode::BAD_REQUEST, "no redirect_uri").into_response();
    };
    if !cfg.redirect_uris.is_empty() && !cfg.redirect_uris.iter().any(|u| u == redirect_uri) {
        return (StatusCode::BAD_REQUEST, "unregistered redirect_uri").into_response();
    }
    let Ok(mut target) = url::Url::parse(redirect_uri) else {
        return (StatusCode::BAD_REQUEST, "bad redirect_uri").into_response();
    };
    let b = inner.behaviour.clone();
    let challenge = field(&params, "code_challenge");
    let method = field(&params, "code_challenge_method");
    let outcome = if let Some(error) = &b.authorize_error {
        Err(error.clone())
    } else if field(&params, "response_type") != Some("code") {
        Err("unsupported_response_type".to_owned())
    } else if challenge.is_none() || method != Some("S256") {
        Err("invalid_request".to_owned())
    } else {
        let code = random_token("code");
        let grant = CodeGrant {
            redirect_uri: redirect_uri.to_owned(),
            challenge: challenge.unwrap_or_default().to_owned(),
            nonce: field(&params, "nonce").map(str::to_owned),
            scope: field(&params, "scope").map(str::to_owned),
        };
        inner.codes.insert(code.clone(), grant);
        Ok(code)
    };
    {
        let mut q = target.query_pairs_mut();
        match &outcome {
            Ok(code) => q.append_pair("code", code),
            Err(error) => q.append_pair("error", error),
        };
        match (&b.state, field(&params, "state")) {
            (StateParam::Same, Some(state)) => {
                q.append_pair("state", state);
            }
            (StateParam::Other(other), _) => {
                q.append_pair("state", other);
            }
            _ => {}
        }
        match &b.iss {
            IssParam::Correct => {
                q.append_pair("iss", &shared.issuer);
            }
            IssParam::Other(other) => {
                q.append_pair("iss", other);
            }
            IssParam::Absent => {}
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
}

/// RFC 6749 §3.2: the grants, after client authentication.
async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&body);
    let request = TokenRequest {
        form: form.clone(),
        authorization: header_str(&headers, header::AUTHORIZATION),
        content_type: header_str(&headers, header::CONTENT_TYPE),
    };
    let mut inner = shared.lock();
    inner.received.token.push(request.clone());
    if let Err(response) = authenticate(&shared.config, &request) {
        return *response;
    }
    match field(&form, "grant_type") {
        Some("authorization_code") => code_grant(&shared, &mut inner, &form),
        Some("refresh_token") => refresh_grant(&shared, &mut inner, &form),
        Some(TOKEN_EXCHANGE) => exchange_grant(&mut inner, &form),
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
}

/// RFC 6749 §2.3.1 and OIDC Core §9: only the configured method is accepted, and only one method at a time.
fn authenticate(cfg: &FakeIdpConfig, request: &TokenRequest) -> Result<(), Box<Response>> {
    let form_id = request.field("client_id");
    let form_secret = request.field("client_secret");
    let ok = match cfg.client_auth {
        ClientAuth::ClientSecretBasic => {
            form_secret.is_none()
                && form_id.is_none_or(|id| id == cfg.client_id)
                && request.basic_credentials()
                    == Some((cfg.client_id.clone(), cfg.client_secret.clone()))
        }
        ClientAuth::ClientSecretPost => {
            request.authorization.is_none()
                && form_id == Some(cfg.client_id.as_str())
                && form_secret == Some(cfg.client_secret.as_str())
        }
        ClientAuth::None => {
            request.authorization.is_none()
                && form_secret.is_none()
                && form_id == Some(cfg.client_id.as_str())
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Box::new(oauth_error(StatusCode::UNAUTHORIZED, "invalid_client")))
    }
}

/// RFC 6749 §4.1.3 with RFC 7636 §4.6, answered per OIDC Core §3.1.3.3.
fn code_grant(shared: &Shared, inner: &mut Inner, form: &[(String, String)]) -> Response {
    if let Some(error) = inner.behaviour.token_error.clone() {
        return oauth_error(StatusCode::BAD_REQUEST, &error);
    }
    let Some(grant) = field(form, "code").and_then(|c| inner.codes.remove(c)) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let verifier = field(form, "code_verifier").unwrap_or_default();
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if field(form, "redirect_uri") != Some(grant.redirect_uri.as_str())
        || computed != grant.challenge
    {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let openid = grant
        .scope
        .as_deref()
        .is_some_and(|s| s.split(' ').any(|s| s == "openid"));
    let id_token = if openid {
        id_token(
            shared,
            inner,
            grant.nonce.as_deref(),
            &inner.behaviour.id_token,
        )
    } else {
        None
    };
    let with_refresh = inner.behaviour.issue_refresh_token;
    tokens(inner, grant.scope, id_token, with_refresh)
}

/// RFC 6749 §6, rotating; OIDC Core §12.2 ID token (no nonce), with the same misbehaviour.
fn refresh_grant(shared: &Shared, inner: &mut Inner, form: &[(String, String)]) -> Response {
    if let Some(error) = inner.behaviour.refresh_error.clone() {
        return oauth_error(StatusCode::BAD_REQUEST, &error);
    }
    let Some(scope) = field(form, "refresh_token").and_then(|t| inner.refresh_tokens.remove(t))
    else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let id_token = if scope.split(' ').any(|s| s == "openid") {
        id_token(shared, inner, None, &inner.behaviour.id_token)
    } else {
        None
    };
    tokens(inner, Some(scope), id_token, true)
}

/// RFC 8693 §2: an opaque access token for the `audience`, from an access token of this IdP.
fn exchange_grant(inner: &mut Inner, form: &[(String, String)]) -> Response {
    if let Some(error) = inner.behaviour.exchange_error.clone() {
        return oauth_error(StatusCode::BAD_REQUEST, &error);
    }
    if field(form, "subject_token_type") != Some(ACCESS_TOKEN_TYPE) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let Some(scope) =
        field(form, "subject_token").and_then(|t| inner.access_tokens.get(t).cloned())
    else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let Some(audience) = field(form, "audience") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_target");
    };
    let access_token = random_token(&format!("xchg-{audience}"));
    inner
        .access_tokens
        .insert(access_token.clone(), scope.clone());
    no_store(json!({
        "access_token": access_token,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": inner.behaviour.access_token_ttl,
        "scope": scope,
    }))
}

/// A successful token response (RFC 6749 §5.1) with new opaque tokens.
fn tokens(
    inner: &mut Inner,
    scope: Option<String>,
    id_token: Option<String>,
    with_refresh: bool,
) -> Response {
    let scope = scope.unwrap_or_default();
    let access_token = random_token("at");
    inner
        .access_tokens
        .insert(access_token.clone(), scope.clone());
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": inner.behaviour.access_token_ttl,
        "scope": scope,
    });
    if with_refresh {
        let refresh_token = random_token("rt");
        inner.refresh_tokens.insert(refresh_token.clone(), scope);
        body["refresh_token"] = json!(refresh_token);
    }
    if let Some(id_token) = id_token {
        body["id_token"] = json!(id_token);
    }
    no_store(body)
}

/// OIDC Core §5.3: the claims for an access token this IdP issued (and still knows).
async fn userinfo(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let authorization = header_str(&headers, header::AUTHORIZATION);
    let mut inner = shared.lock();
    inner.received.userinfo.push(authorization.clone());
    let b = inner.behaviour.clone();
    if let Some(status) = b.userinfo_status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return oauth_error(status, "invalid_token");
    }
    let known = authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .is_some_and(|t| inner.access_tokens.contains_key(t));
    if !known {
        let challenge = "Bearer error=\"invalid_token\"";
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge)],
        )
            .into_response();
    }
    let mut claims = b.claims.clone();
    claims.insert("sub".to_owned(), json!(b.userinfo_sub.unwrap_or(b.subject)));
    Json(Value::Object(claims)).into_response()
}

/// The ID token (OIDC Core §2) for the current behaviour's account, broken as `m` says.
fn id_token(
    shared: &Shared,
    inner: &Inner,
    nonce: Option<&str>,
    m: &Misbehaviour,
) -> Option<String> {
    let b = &inner.behaviour;
    let client_id = shared.config.client_id.as_str();
    let now = now();
    let mut claims = json!({
        "iss": shared.issuer, "sub": b.subject, "aud": client_id,
        "iat": now, "exp": now + 600, "auth_time": now,
    });
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(nonce);
    }
    obj_mut(&mut claims).extend(b.claims.clone());
    match m {
        Misbehaviour::WrongAudience => claims["aud"] = json!("another-client"),
        Misbehaviour::Expired => {
            claims["iat"] = json!(now - 1200);
            claims["exp"] = json!(now - 600);
        }
        Misbehaviour::IatInFuture => {
            claims["iat"] = json!(now + 3600);
            claims["exp"] = json!(now + 7200);
        }
        Misbehaviour::WrongNonce => claims["nonce"] = json!("not-the-nonce"),
        Misbehaviour::MissingNonce => {
            obj_mut(&mut claims).remove("nonce");
        }
        Misbehaviour::WrongIssuer => claims["iss"] = json!("https://idp.attacker.example"),
        Misbehaviour::MissingAzpWithSeveralAud => {
            claims["aud"] = json!([client_id, "another-audience"]);
            obj_mut(&mut claims).remove("azp");
        }
        Misbehaviour::WrongAzp => {
            claims["aud"] = json!([client_id, "another-audience"]);
            claims["azp"] = json!("another-audience");
        }
        Misbehaviour::MissingSub => {
            obj_mut(&mut claims).remove("sub");
        }
        Misbehaviour::NoIdToken => return None,
        Misbehaviour::Garbage => return Some("this-is-not-a-jwt".to_owned()),
        _ => {}
    }
    Some(sign(shared, inner, &claims, m))
}

/// Signs the claims, or forges the signature as `m` says.
fn sign(shared: &Shared, inner: &Inner, claims: &Value, m: &Misbehaviour) -> String {
    let alg = inner.behaviour.signing_alg;
    let key = inner.keys.current(alg);
    match m {
        Misbehaviour::SignedByOtherKey => keys::jws(inner.keys.other(alg), key.kid(), claims),
        Misbehaviour::UnknownKid => keys::jws(inner.keys.other(alg), "unknown-kid", claims),
        Misbehaviour::AlgNone => keys::unsecured(claims),
        Misbehaviour::Hs256WithClientSecret => {
            keys::hs256(&shared.config.client_secret, Some(key.kid()), claims)
        }
        Misbehaviour::TamperedPayload => {
            let jws = keys::jws(key, key.kid(), claims);
            let mut parts: Vec<&str> = jws.split('.').collect();
            let mut forged = claims.clone();
            forged["sub"] = json!("someone-else");
            let payload = URL_SAFE_NO_PAD.encode(forged.to_string());
            parts[1] = &payload;
            parts.join(".")
        }
        _ => keys::jws(key, key.kid(), claims),
    }
}

fn obj_mut(v: &mut Value) -> &mut Map<String, Value> {
    v.as_object_mut().unwrap()
}

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    i64::try_from(secs).unwrap()
}

/// `<prefix>-<32 random bytes, base64url>`.
fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    format!("{prefix}-{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// An OAuth error response (RFC 6749 §5.2).
fn oauth_error(status: StatusCode, error: &str) -> Response {
    let mut response = no_store(json!({ "error": error }));
    *response.status_mut() = status;
    if status == StatusCode::UNAUTHORIZED {
        let challenge = format!("Basic realm=\"fake\", error=\"{error}\"");
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge.parse().unwrap());
    }
    response
}

/// JSON with `Cache-Control: no-store` (RFC 6749 §5.1).
fn no_store(body: Value) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn parse_form(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `Basic base64(form-encode(id) ":" form-encode(secret))` back to `(id, secret)` (RFC 6749 §2.3.1).
fn basic_credentials(authorization: &str) -> Option<(String, String)> {
    let (scheme, b64) = authorization.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id), form_decode(secret)))
}

/// application/x-www-form-urlencoded decoding of one value: `+` is a space, `%XX` a byte, anything else itself.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (other, _) => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
