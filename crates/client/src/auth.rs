//! The [`Authenticator`]: a valid access token for one MCP server on demand. It uses the cache when the token
//! is fresh, refreshes it when it has expired (under the cache lock, re-reading the cache first so that a token
//! another process just refreshed is used instead of spending the refresh token twice), and otherwise runs the
//! whole flow: discovery → registration → PKCE authorization in the browser → loopback callback → code exchange.

use crate::authorize::{choose_scope, AuthorizationRequest, RequestParams};
use crate::browser::Opener;
use crate::cache::{ServerEntry, Store};
use crate::callback::{port_of, CallbackListener};
use crate::discovery::{discover, Discovered};
use crate::registration::{self, Kind, Registration};
use crate::secret::{AccessToken, ClientSecret};
use crate::token::{self, Tokens};
use crate::url_check::safe_url;
use crate::{Error, Result};
use portcullis_proto::www_authenticate::BearerChallenge;
use portcullis_proto::Scope;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// The source of the current time (seconds since the epoch), injectable so tests can jump past expiry.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// How logins are made.
#[derive(Debug, Clone)]
pub struct LoginOptions {
    /// An explicit scope (`--scope`), overriding the server's suggestions.
    pub scope: Option<Scope>,
    /// A pre-registered `client_id`.
    pub client_id: Option<String>,
    /// Its secret.
    pub client_secret: Option<ClientSecret>,
    /// A Client ID Metadata Document URL, used when the server supports them.
    pub client_metadata_url: Option<String>,
    /// A fixed callback port.
    pub callback_port: Option<u16>,
    /// How the browser is opened.
    pub opener: Opener,
    /// How long to wait for the browser to come back.
    pub callback_timeout: Duration,
    /// Whether a login may be started when needed (false: fail with "not logged in").
    pub interactive: bool,
}

impl Default for LoginOptions {
    fn default() -> Self {
        Self {
            scope: None,
            client_id: None,
            client_secret: None,
            client_metadata_url: None,
            callback_port: None,
            opener: Opener::System,
            callback_timeout: Duration::from_secs(300),
            interactive: true,
        }
    }
}

/// Tokens for one MCP server.
pub struct Authenticator {
    http: reqwest::Client,
    store: Store,
    server: Url,
    key: String,
    opts: LoginOptions,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("server", &self.key)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator for `server`, caching in `store`.
    pub fn new(http: reqwest::Client, store: Store, server: Url, opts: LoginOptions) -> Self {
        let key = server.to_string();
        Self {
            http,
            store,
            server,
            key,
            opts,
            clock: Arc::new(SystemClock),
        }
    }

    /// Replaces the clock (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The MCP server URL.
    pub fn server(&self) -> &Url {
        &self.server
    }

    /// The HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The cache.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The cached entry, as stored.
    pub fn cached(&self) -> Result<Option<ServerEntry>> {
        self.store.server(&self.key)
    }

    /// The current token without starting a login: the cached one if fresh, else a refreshed one; `None` when
    /// there is no usable token.
    pub async fn current(&self) -> Result<Option<AccessToken>> {
        let now = self.clock.now();
        match self.cached()? {
            None => return Ok(None),
            Some(e) if e.is_fresh(now) => return Ok(Some(e.access_token)),
            Some(_) => {}
        }
        let _lock = self.store.lock(&self.key).await?;
        let Some(entry) = self.cached()? else {
            return Ok(None);
        };
        if entry.is_fresh(self.clock.now()) {
            return Ok(Some(entry.access_token));
        }
        match self.refresh_locked(&entry).await {
            Ok(e) => Ok(Some(e.access_token)),
            Err(e) => {
                tracing::info!("the stored token could not be refreshed: {e}");
                Ok(None)
            }
        }
    }

    /// A usable token, logging in if there is none.
    pub async fn token(&self) -> Result<AccessToken> {
        if let Some(t) = self.current().await? {
            return Ok(t);
        }
        let _lock = self.store.lock(&self.key).await?;
        if let Some(e) = self.cached()?.filter(|e| e.is_fresh(self.clock.now())) {
            return Ok(e.access_token);
        }
        Ok(self.login_locked(None, None).await?.access_token)
    }

    /// After the server answered 401 to `failed`: use a token another process obtained meanwhile, else refresh
    /// (when `allow_refresh`), else log in again.
    pub async fn after_unauthorized(
        &self,
        failed: Option<&AccessToken>,
        challenge: Option<BearerChallenge>,
        allow_refresh: bool,
    ) -> Result<AccessToken> {
        let _lock = self.store.lock(&self.key).await?;
        let entry = self.cached()?;
        if let Some(e) = &entry {
            if Some(&e.access_token) != failed && e.is_fresh(self.clock.now()) {
                return Ok(e.access_token.clone());
            }
            if allow_refresh && failed.is_some() && e.refresh_token.is_some() {
                match self.refresh_locked(e).await {
                    Ok(e) => return Ok(e.access_token),
                    Err(err) => tracing::info!("refresh failed, logging in again: {err}"),
                }
            }
        }
        Ok(self.login_locked(challenge, None).await?.access_token)
    }

    /// Step-up after 403 `insufficient_scope`: authorize again with the union of the granted scopes and the
    /// challenge's `scope`.
    pub async fn step_up(&self, challenge: BearerChallenge) -> Result<AccessToken> {
        let _lock = self.store.lock(&self.key).await?;
        let previous = self
            .cached()?
            .and_then(|e| e.scope)
            .and_then(|s| Scope::parse(&s).ok());
        Ok(self
            .login_locked(Some(challenge), previous)
            .await?
            .access_token)
    }

    /// The whole login flow, starting with an unauthenticated request to read the server's challenge.
    pub async fn login(&self) -> Result<ServerEntry> {
        let _lock = self.store.lock(&self.key).await?;
        let challenge = self.probe().await?;
        self.login_locked(challenge, None).await
    }

    /// Revokes the tokens (RFC 7009) where the server has a revocation endpoint, then forgets them. Returns
    /// whether anything was stored.
    pub async fn logout(&self) -> Result<bool> {
        let _lock = self.store.lock(&self.key).await?;
        let Some(entry) = self.cached()? else {
            return Ok(false);
        };
        if let (Some(ep), Some(reg)) = (
            &entry.revocation_endpoint,
            self.store.registration(&entry.issuer)?,
        ) {
            let ep = safe_url("revocation_endpoint", ep)?;
            let mut tokens = vec![];
            if let Some(rt) = &entry.refresh_token {
                tokens.push((rt.expose(), "refresh_token"));
            }
            tokens.push((entry.access_token.expose(), "access_token"));
            for (t, hint) in tokens {
                if let Err(e) = token::revoke(&self.http, &ep, &reg.client_auth(), t, hint).await {
                    eprintln!("warning: could not revoke the {hint} at the server ({e}); forgetting it locally anyway");
                }
            }
        }
        self.store.remove_server(&self.key)
    }

    /// The server's challenge from unauthenticated requests ([`crate::probe`]).
    async fn probe(&self) -> Result<Option<BearerChallenge>> {
        crate::probe::challenge(&self.http, &self.server).await
    }

    async fn login_locked(
        &self,
        challenge: Option<BearerChallenge>,
        previous: Option<Scope>,
    ) -> Result<ServerEntry> {
        if !self.opts.interactive {
            return Err(Error::NotLoggedIn {
                server: self.key.clone(),
            });
        }
        let d = discover(&self.http, &self.server, challenge.as_ref()).await?;
        let challenge_scope = challenge
            .as_ref()
            .and_then(|c| c.scope.as_deref())
            .and_then(|s| Scope::parse(s).ok())
            .filter(|s| !s.is_empty());
        let scope = choose_scope(
            self.opts.scope.as_ref(),
            challenge_scope.as_ref(),
            d.resource_metadata.as_ref(),
            &d.metadata,
            previous.as_ref(),
        );
        match self.authorize(&d, scope.as_ref()).await {
            Err(e) if e.is_invalid_client() => {
                // RFC 6749 §5.2: the server no longer knows this client; drop the registration and register once more.
                self.store.remove_registration(&d.issuer)?;
                if self.opts.client_id.is_some() {
                    return Err(e);
                }
                // Printed, not logged: the CLI's client commands install no log subscriber.
                eprintln!(
                    "warning: the authorization server {} no longer knows the stored client; registering again.",
                    d.issuer
                );
                self.authorize(&d, scope.as_ref()).await
            }
            other => other,
        }
    }

    /// Credentials and a bound callback listener (the port is the registration's when it has one), and whether
    /// the credentials are a dynamic registration stored by an earlier login (which the server may have forgotten).
    async fn registration(
        &self,
        d: &Discovered,
        scope: Option<&Scope>,
    ) -> Result<(Registration, CallbackListener, bool)> {
        if let Some(id) = &self.opts.client_id {
            let reg = registration::pre_registered(d, id, self.opts.client_secret.clone());
            self.store.save_registration(&reg)?;
            return Ok((
                reg,
                CallbackListener::bind(self.opts.callback_port).await?,
                false,
            ));
        }
        if let Some(reg) = self
            .store
            .registration(&d.issuer)?
            .filter(|r| !r.expired(self.clock.now()))
        {
            let port = reg
                .redirect_uri
                .as_deref()
                .and_then(port_of)
                .or(self.opts.callback_port);
            match CallbackListener::bind(port).await {
                Ok(l) => {
                    let stored_dynamic = reg.kind == Kind::Dynamic;
                    return Ok((reg, l, stored_dynamic));
                }
                Err(e) if reg.kind == Kind::Dynamic && d.endpoints.registration.is_some() => {
                    eprintln!("warning: {e} Registering a new client with another port.");
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(reg) = self
            .opts
            .client_metadata_url
            .as_deref()
            .and_then(|u| registration::metadata_document(d, u))
        {
            self.store.save_registration(&reg)?;
            return Ok((
                reg,
                CallbackListener::bind(self.opts.callback_port).await?,
                false,
            ));
        }
        let listener = CallbackListener::bind(self.opts.callback_port).await?;
        let reg = registration::register(&self.http, d, &listener.redirect_uri(), scope).await?;
        self.store.save_registration(&reg)?;
        Ok((reg, listener, false))
    }

    /// Before sending the browser with a stored dynamic registration, asks the authorization endpoint itself
    /// (one GET, redirects not followed) whether it still knows the client: RFC 6749 §4.1.2.1 has it answer an
    /// invalid `client_id` directly instead of redirecting, which the user would see in the browser while this
    /// client waited for a callback that never comes. A 400/401 naming `invalid_client` means the server has
    /// forgotten the registration (a restarted in-memory server, a removed client); anything else, including a
    /// failure to ask, lets the login go on as usual.
    async fn check_client_known(&self, url: &Url, issuer: &str, client_id: &str) -> Result<()> {
        // The same check the browser opener makes: nothing unsafe is requested either.
        let url = safe_url("authorization URL", url.as_str())?;
        let resp = match self
            .http
            .get(url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(
                    "could not check the stored client at the authorization endpoint: {e}"
                );
                return Ok(());
            }
        };
        if !matches!(resp.status().as_u16(), 400 | 401) {
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        if body.contains("invalid_client") {
            return Err(Error::UnknownClient {
                issuer: issuer.to_owned(),
                client_id: client_id.to_owned(),
            });
        }
        Ok(())
    }

    async fn authorize(&self, d: &Discovered, scope: Option<&Scope>) -> Result<ServerEntry> {
        let (reg, listener, stored_dynamic) = self.registration(d, scope).await?;
        let redirect_uri = listener.redirect_uri();
        let params = RequestParams {
            endpoint: &d.endpoints.authorization,
            issuer: &d.issuer,
            iss_required: d.metadata.authorization_response_iss_parameter_supported == Some(true),
            client_id: &reg.client_id,
            redirect_uri: &redirect_uri,
            scope,
            resource: d.resource.as_deref(),
        };
        let request = AuthorizationRequest::new(&params, &mut rand::rngs::OsRng);
        if stored_dynamic {
            self.check_client_known(&request.url, &d.issuer, &reg.client_id)
                .await?;
        }
        // The listener is bound already; only now is the browser sent to the authorization server.
        let waiting = tokio::spawn(listener.wait(self.opts.callback_timeout));
        self.opts.opener.open(&request.url)?;
        let response = waiting.await.map_err(|e| Error::Browser {
            reason: e.to_string(),
        })??;
        let code = request.verify(&response)?;
        let tokens = token::exchange_code(
            &self.http,
            &d.endpoints.token,
            &reg.client_auth(),
            &code,
            &request.verifier,
            &request.redirect_uri,
            d.resource.as_deref(),
        )
        .await?;
        let entry = self.entry(d, tokens, scope);
        self.store.save_server(&entry)?;
        Ok(entry)
    }

    fn entry(&self, d: &Discovered, t: Tokens, requested: Option<&Scope>) -> ServerEntry {
        let now = self.clock.now();
        ServerEntry {
            server: self.key.clone(),
            resource: d.resource.clone(),
            issuer: d.issuer.clone(),
            token_endpoint: d.endpoints.token.to_string(),
            revocation_endpoint: d.endpoints.revocation.as_ref().map(ToString::to_string),
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            expires_at: t.expires_in.map(|s| now.saturating_add(s)),
            scope: t.scope.or_else(|| requested.map(ToString::to_string)),
            obtained_at: now,
        }
    }

    /// Refreshes `entry` (the caller holds the lock). On `invalid_client` the stale registration is dropped.
    async fn refresh_locked(&self, entry: &ServerEntry) -> Result<ServerEntry> {
        let rt = entry
            .refresh_token
            .as_ref()
            .ok_or_else(|| Error::NotLoggedIn {
                server: self.key.clone(),
            })?;
        let reg = self
            .store
            .registration(&entry.issuer)?
            .ok_or_else(|| Error::NotLoggedIn {
                server: self.key.clone(),
            })?;
        let endpoint = safe_url("token_endpoint", &entry.token_endpoint)?;
        let t = match token::refresh(
            &self.http,
            &endpoint,
            &reg.client_auth(),
            rt,
            entry.resource.as_deref(),
        )
        .await
        {
            Ok(t) => t,
            Err(e) => {
                if e.is_invalid_client() {
                    self.store.remove_registration(&entry.issuer)?;
                }
                if matches!(&e, Error::TokenEndpoint { error, .. } if error == "invalid_grant") {
                    // The refresh token is spent or revoked; keep the entry but without it.
                    let mut stale = entry.clone();
                    stale.refresh_token = None;
                    self.store.save_server(&stale)?;
                }
                return Err(e);
            }
        };
        let now = self.clock.now();
        let new = ServerEntry {
            access_token: t.access_token,
            // RFC 6749 §6: the server may keep the refresh token; then the old one stays valid.
            refresh_token: t.refresh_token.or_else(|| entry.refresh_token.clone()),
            expires_at: t.expires_in.map(|s| now.saturating_add(s)),
            scope: t.scope.or_else(|| entry.scope.clone()),
            obtained_at: now,
            ..entry.clone()
        };
        self.store.save_server(&new)?;
        tracing::debug!("refreshed the access token");
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::mock::{MockServer, Resp};
    use serde_json::json;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    struct ManualClock(AtomicU64);
    impl Clock for ManualClock {
        fn now(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    /// An MCP server that is its own authorization server. `/token` refuses `client_id=c1` with `invalid_client`
    /// when `stale_c1` is set; each registration gets the next id (c1, c2, …).
    async fn server(stale_c1: bool) -> MockServer {
        server_forgetting(stale_c1, Arc::new(AtomicBool::new(false))).await
    }

    /// [`server`], whose authorization endpoint answers `client_id=c1` with a 400 `invalid_client` page once
    /// `forgot_c1` is set (as after a restart of a server that keeps registrations in memory).
    async fn server_forgetting(stale_c1: bool, forgot_c1: Arc<AtomicBool>) -> MockServer {
        let registrations = Arc::new(AtomicU64::new(0));
        MockServer::start(move |req, base| {
            let path = req.path.split('?').next().unwrap_or("");
            match (req.method.as_str(), path) {
                ("GET", "/authorize") => {
                    if forgot_c1.load(Ordering::SeqCst) && req.path.contains("client_id=c1&") {
                        Resp::json(400, json!({"error": "invalid_client", "error_description": "Invalid client_id"}))
                    } else {
                        Resp::status(200)
                    }
                }
                ("POST", "/mcp") => {
                    if req.header("authorization").is_some_and(|a| a.starts_with("Bearer at-")) {
                        Resp::json(200, json!({"jsonrpc": "2.0", "id": 1, "result": {}}))
                    } else {
                        Resp::json(401, json!({"error": "invalid_token"})).with_header(
                            "www-authenticate",
                            &format!("Bearer resource_metadata=\"{base}/.well-known/oauth-protected-resource/mcp\", scope=\"mcp:read\""),
                        )
                    }
                }
                ("GET", "/.well-known/oauth-protected-resource/mcp") => {
                    Resp::json(200, json!({"resource": format!("{base}/mcp"), "authorization_servers": [base]}))
                }
                ("GET", "/.well-known/oauth-authorization-server") => Resp::json(
                    200,
                    json!({"issuer": base, "authorization_endpoint": format!("{base}/authorize"), "token_endpoint": format!("{base}/token"),
                           "registration_endpoint": format!("{base}/register"), "response_types_supported": ["code"],
                           "code_challenge_methods_supported": ["S256"], "authorization_response_iss_parameter_supported": true}),
                ),
                ("POST", "/register") => {
                    let n = registrations.fetch_add(1, Ordering::SeqCst) + 1;
                    let mut v: serde_json::Value = serde_json::from_str(&req.body).unwrap();
                    v["client_id"] = json!(format!("c{n}"));
                    Resp::json(201, v)
                }
                ("POST", "/token") => {
                    let form: std::collections::HashMap<String, String> = req.form().into_iter().collect();
                    if stale_c1 && form.get("client_id").map(String::as_str) == Some("c1") {
                        return Resp::json(401, json!({"error": "invalid_client"}));
                    }
                    match form["grant_type"].as_str() {
                        "authorization_code" => Resp::json(
                            200,
                            json!({"access_token": "at-1", "token_type": "Bearer", "expires_in": 60, "refresh_token": "rt-1", "scope": "mcp:read"}),
                        ),
                        _ => Resp::json(200, json!({"access_token": "at-2", "token_type": "Bearer", "expires_in": 60, "refresh_token": "rt-2"})),
                    }
                }
                _ => Resp::status(404),
            }
        })
        .await
    }

    /// A browser that approves at once: it sends the redirect the authorization server would send.
    fn approving_browser(issuer: String, opened: Arc<AtomicU64>) -> Opener {
        Opener::Custom(Arc::new(move |url: &Url| {
            opened.fetch_add(1, Ordering::SeqCst);
            let q: std::collections::HashMap<String, String> =
                url.query_pairs().into_owned().collect();
            let mut cb = Url::parse(&q["redirect_uri"]).unwrap();
            cb.query_pairs_mut()
                .append_pair("code", "the-code")
                .append_pair("state", &q["state"])
                .append_pair("iss", &issuer);
            tokio::spawn(async move { reqwest::get(cb).await.map(|_| ()) });
            Ok(())
        }))
    }

    fn authenticator(
        srv: &MockServer,
        home: &std::path::Path,
        opened: Arc<AtomicU64>,
        clock: Arc<ManualClock>,
    ) -> Authenticator {
        let opts = LoginOptions {
            opener: approving_browser(srv.base.clone(), opened),
            ..LoginOptions::default()
        };
        let server = Url::parse(&format!("{}/mcp", srv.base)).unwrap();
        Authenticator::new(
            crate::http_client().unwrap(),
            Store::open(Some(home.to_owned())).unwrap(),
            server,
            opts,
        )
        .with_clock(clock)
    }

    #[tokio::test]
    async fn login_then_silent_refresh_after_expiry() {
        let srv = server(false).await;
        let home = tempfile::tempdir().unwrap();
        let opened = Arc::new(AtomicU64::new(0));
        let clock = Arc::new(ManualClock(AtomicU64::new(1_000)));
        let auth = authenticator(&srv, home.path(), opened.clone(), clock.clone());
        assert_eq!(auth.current().await.unwrap(), None);
        assert_eq!(auth.token().await.unwrap().expose(), "at-1");
        assert_eq!(auth.token().await.unwrap().expose(), "at-1");
        let entry = auth.cached().unwrap().unwrap();
        assert_eq!(entry.expires_at, Some(1_060));
        assert_eq!(entry.scope.as_deref(), Some("mcp:read"));
        // Past expiry: refreshed without a browser.
        clock.0.store(1_100, Ordering::SeqCst);
        assert_eq!(auth.token().await.unwrap().expose(), "at-2");
        assert_eq!(opened.load(Ordering::SeqCst), 1);
        let entry = auth.cached().unwrap().unwrap();
        assert_eq!(entry.refresh_token.unwrap().expose(), "rt-2");
        assert_eq!(entry.scope.as_deref(), Some("mcp:read"));
        let token_forms: Vec<std::collections::HashMap<String, String>> = srv
            .requests()
            .iter()
            .filter(|r| r.path == "/token")
            .map(|r| r.form().into_iter().collect())
            .collect();
        let resource = format!("{}/mcp", srv.base);
        assert_eq!(token_forms[0]["grant_type"], "authorization_code");
        assert_eq!(token_forms[0]["resource"], resource);
        assert_eq!(token_forms[1]["grant_type"], "refresh_token");
        assert_eq!(token_forms[1]["refresh_token"], "rt-1");
        assert_eq!(token_forms[1]["resource"], resource);
        // Logout forgets the tokens; a non-interactive authenticator then refuses to log in.
        assert!(auth.logout().await.unwrap());
        assert_eq!(auth.cached().unwrap(), None);
    }

    #[tokio::test]
    async fn stale_client_is_dropped_and_registered_again_once() {
        let srv = server(true).await;
        let home = tempfile::tempdir().unwrap();
        let opened = Arc::new(AtomicU64::new(0));
        let auth = authenticator(
            &srv,
            home.path(),
            opened.clone(),
            Arc::new(ManualClock(AtomicU64::new(5))),
        );
        let entry = auth.login().await.unwrap();
        assert_eq!(entry.access_token.expose(), "at-1");
        assert_eq!(opened.load(Ordering::SeqCst), 2);
        assert_eq!(
            auth.store()
                .registration(&srv.base)
                .unwrap()
                .unwrap()
                .client_id,
            "c2"
        );
        let registrations = srv
            .requests()
            .iter()
            .filter(|r| r.path == "/register")
            .count();
        assert_eq!(registrations, 2);
    }

    #[tokio::test]
    async fn forgotten_client_is_noticed_before_the_browser_opens() {
        let forgot = Arc::new(AtomicBool::new(false));
        let srv = server_forgetting(false, forgot.clone()).await;
        let home = tempfile::tempdir().unwrap();
        let opened = Arc::new(AtomicU64::new(0));
        let auth = authenticator(
            &srv,
            home.path(),
            opened.clone(),
            Arc::new(ManualClock(AtomicU64::new(5))),
        );
        auth.login().await.unwrap();
        auth.logout().await.unwrap();
        // A stored registration the server still knows is used as is.
        auth.login().await.unwrap();
        assert_eq!(opened.load(Ordering::SeqCst), 2);
        auth.logout().await.unwrap();
        forgot.store(true, Ordering::SeqCst);
        // Now it has forgotten c1: no browser is sent to a dead end; the client registers again at once.
        auth.login().await.unwrap();
        assert_eq!(opened.load(Ordering::SeqCst), 3);
        let reg = auth.store().registration(&srv.base).unwrap().unwrap();
        assert_eq!(reg.client_id, "c2");
        let reqs = srv.requests();
        assert_eq!(reqs.iter().filter(|r| r.path == "/register").count(), 2);
        assert_eq!(
            reqs.iter()
                .filter(|r| r.path.starts_with("/authorize"))
                .count(),
            2,
            "only stored registrations are checked"
        );
    }

    #[tokio::test]
    async fn registration_port_is_reused() {
        let srv = server(false).await;
        let home = tempfile::tempdir().unwrap();
        let auth = authenticator(
            &srv,
            home.path(),
            Arc::new(AtomicU64::new(0)),
            Arc::new(ManualClock(AtomicU64::new(5))),
        );
        auth.login().await.unwrap();
        let first = auth
            .store()
            .registration(&srv.base)
            .unwrap()
            .unwrap()
            .redirect_uri
            .unwrap();
        auth.logout().await.unwrap();
        auth.login().await.unwrap();
        let authorize_redirects: Vec<String> = srv
            .requests()
            .iter()
            .filter(|r| r.path == "/register")
            .map(|r| {
                serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["redirect_uris"][0]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(authorize_redirects, vec![first.clone()]);
        assert_eq!(
            auth.store()
                .registration(&srv.base)
                .unwrap()
                .unwrap()
                .redirect_uri
                .unwrap(),
            first
        );
    }

    #[tokio::test]
    async fn not_interactive_means_not_logged_in() {
        let srv = server(false).await;
        let home = tempfile::tempdir().unwrap();
        let server = Url::parse(&format!("{}/mcp", srv.base)).unwrap();
        let opts = LoginOptions {
            interactive: false,
            ..LoginOptions::default()
        };
        let auth = Authenticator::new(
            crate::http_client().unwrap(),
            Store::open(Some(home.path().to_owned())).unwrap(),
            server,
            opts,
        );
        assert!(matches!(auth.token().await, Err(Error::NotLoggedIn { .. })));
    }

    /// SEP-2352: the server moves from the authorization server at the root to one at `/as2`. The client registers
    /// again there and never presents the first server's client there.
    #[tokio::test]
    async fn a_new_authorization_server_gets_a_new_registration() {
        let moved = Arc::new(AtomicBool::new(false));
        let m = moved.clone();
        let srv = MockServer::start(move |req, base| {
            let path = req.path.split('?').next().unwrap_or("");
            let (prefix, rest) = match path.strip_prefix("/as2") {
                Some(r) => ("/as2", r),
                None => ("", path),
            };
            match (req.method.as_str(), path) {
                ("GET", "/.well-known/oauth-protected-resource/mcp") => {
                    let auth_server = if m.load(Ordering::SeqCst) { format!("{base}/as2") } else { base.to_owned() };
                    return Resp::json(200, json!({"resource": format!("{base}/mcp"), "authorization_servers": [auth_server]}));
                }
                ("GET", "/.well-known/oauth-authorization-server" | "/.well-known/oauth-authorization-server/as2") => {
                    let issuer = if path.ends_with("/as2") { format!("{base}/as2") } else { base.to_owned() };
                    return Resp::json(200, json!({"issuer": issuer, "authorization_endpoint": format!("{issuer}/authorize"),
                        "token_endpoint": format!("{issuer}/token"), "registration_endpoint": format!("{issuer}/register"),
                        "response_types_supported": ["code"], "code_challenge_methods_supported": ["S256"]}));
                }
                _ => {}
            }
            match (req.method.as_str(), rest) {
                ("POST", "/register") => {
                    let mut v: serde_json::Value = serde_json::from_str(&req.body).unwrap();
                    v["client_id"] = json!(if prefix.is_empty() { "c-as1" } else { "c-as2" });
                    Resp::json(201, v)
                }
                ("POST", "/token") => Resp::json(200, json!({"access_token": format!("at{prefix}"), "token_type": "Bearer", "expires_in": 60})),
                _ => Resp::status(404),
            }
        })
        .await;
        let home = tempfile::tempdir().unwrap();
        let browser = Opener::Custom(Arc::new(|url: &Url| {
            let q: std::collections::HashMap<String, String> =
                url.query_pairs().into_owned().collect();
            let mut cb = Url::parse(&q["redirect_uri"]).unwrap();
            cb.query_pairs_mut()
                .append_pair("code", "c")
                .append_pair("state", &q["state"]);
            tokio::spawn(async move { reqwest::get(cb).await.map(|_| ()) });
            Ok(())
        }));
        let auth = Authenticator::new(
            crate::http_client().unwrap(),
            Store::open(Some(home.path().to_owned())).unwrap(),
            Url::parse(&format!("{}/mcp", srv.base)).unwrap(),
            LoginOptions {
                opener: browser,
                ..LoginOptions::default()
            },
        );
        let first = auth.token().await.unwrap();
        assert_eq!(first.expose(), "at");
        moved.store(true, Ordering::SeqCst);
        let second = auth
            .after_unauthorized(Some(&first), None, false)
            .await
            .unwrap();
        assert_eq!(second.expose(), "at/as2");
        let as2 = format!("{}/as2", srv.base);
        assert_eq!(
            auth.store().registration(&as2).unwrap().unwrap().client_id,
            "c-as2"
        );
        assert_eq!(auth.cached().unwrap().unwrap().issuer, as2);
        // The first server's registration stays with it, and its client id never reached the second.
        assert_eq!(
            auth.store()
                .registration(&srv.base)
                .unwrap()
                .unwrap()
                .client_id,
            "c-as1"
        );
        let leaked = srv
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/as2"))
            .any(|r| r.path.contains("c-as1") || r.body.contains("c-as1"));
        assert!(!leaked);
    }
}
