//! The assembly of a running server: [`Settings`] → listener, issuer and checked [`ServerConfig`]
//! ([`Server::bind`]), then, given the storage the caller opened, [`Routes`] → [`Authz`] → [`AppState`] → serving
//! until a shutdown signal and a bounded drain ([`Server::run`]). The binary is the composition root for the
//! storage adapter: it opens the store between the two steps, so a bad configuration never touches a database.

use crate::config::{parse_issuer, ConfigError, ServerConfig};
use crate::outbound::cimd::HttpResolver;
use crate::routes::Routes;
use crate::settings::Settings;
use crate::state::AppState;
use portcullis_authz::{Authz, Storage, SystemClock, ThreadRandom};
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A bound, configured server that has not started serving.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    config: ServerConfig,
    external_resources: Vec<String>,
    drain: Duration,
}

/// Why the server did not start, or stopped with an error. The messages are the binary's error output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {reason}")]
    Listen { address: String, reason: String },
    /// The bound socket's address could not be read, or serving failed.
    #[error("{0}")]
    Io(String),
    /// The issuer or another checked value was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The signing key ring could not be loaded or created.
    #[error("cannot load or create the signing key: {0}")]
    SigningKey(String),
}

impl Server {
    /// Binds `settings.listen`, resolves the issuer (default `http://<bound address>`) and builds and checks the
    /// server configuration. Nothing is opened but the socket.
    pub async fn bind(settings: Settings) -> Result<Self, StartError> {
        let listener =
            TcpListener::bind(&settings.listen)
                .await
                .map_err(|e| StartError::Listen {
                    address: settings.listen.clone(),
                    reason: e.to_string(),
                })?;
        let mut addr = listener
            .local_addr()
            .map_err(|e| StartError::Io(e.to_string()))?;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let issuer_text = settings
            .issuer
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let config = settings.server_config(parse_issuer(&issuer_text)?);
        if !config.cimd_allow_hosts.is_empty() {
            tracing::warn!(hosts = ?config.cimd_allow_hosts, "--cimd-allow-host: the SSRF guard is off for these hosts (testing only)");
        }
        config.check()?;
        Ok(Self {
            listener,
            addr,
            config,
            external_resources: settings.external_resources,
            drain: settings.drain_timeout,
        })
    }

    /// The bound address (loopback in place of an unspecified one).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Builds the authorization server over `store` and serves until SIGTERM or Ctrl-C, then drains.
    pub async fn run(self, store: Arc<dyn Storage>) -> Result<(), StartError> {
        let routes = Routes::new(&self.config.issuer, &self.config.mcp_path);
        let authz = self.authz(store.clone(), &routes).await?;
        if store.count_users().await.unwrap_or(0) == 0 {
            tracing::warn!("no users yet: add one with `portcullis user add NAME --password-stdin` (same --database)");
            eprintln!("No users exist yet, so nobody can sign in. Add one with:\n  portcullis user add alice --password-stdin\n(use the same --database as this server)");
        }
        let state = AppState::new(self.config, routes, Arc::new(authz));
        announce(&state, self.addr, &self.external_resources);
        serve_until_drained(self.listener, state, self.drain).await?;
        tracing::info!("shut down");
        Ok(())
    }

    /// The authorization-server logic: the configuration for `routes` plus the external resources, the system
    /// clock, the thread-local CSPRNG and the HTTP resolver of Client ID Metadata Documents.
    async fn authz(&self, store: Arc<dyn Storage>, routes: &Routes) -> Result<Authz, StartError> {
        let mut authz_config = self.config.authz_config(&routes.issuer, &routes.mcp_url);
        for r in &self.external_resources {
            if !authz_config.resources.contains(r) {
                authz_config.resources.push(r.clone());
            }
        }
        Authz::with_client_metadata_resolver(
            store,
            Arc::new(SystemClock),
            Arc::new(ThreadRandom),
            authz_config,
            Some(Arc::new(HttpResolver::new(
                self.config.cimd_allow_hosts.clone(),
            ))),
        )
        .await
        .map_err(|e| StartError::SigningKey(error_chain(&e)))
    }
}

/// An error and its sources as one line, `: `-separated (what the binary prints for any error).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Logs the start and prints the lines scripts (and the integration tests) read: the address, the issuer, the
/// MCP endpoint, the external resources, the gateways and the redirect URI to register at each identity provider.
fn announce(state: &AppState, addr: SocketAddr, external: &[String]) {
    let routes = &state.routes;
    tracing::info!(issuer = %routes.issuer, mcp = %routes.mcp_url, %addr, "portcullis serving");
    println!("listening on http://{addr}");
    println!("issuer {}", routes.issuer);
    println!("mcp endpoint {}", routes.mcp_url);
    for r in external {
        println!("external resource {r}");
    }
    if let Some(g) = &state.config.upstream {
        println!("gateway upstream {}", g.upstream);
    }
    for r in &state.config.gateway_routes {
        println!(
            "gateway route {} upstream {}",
            routes.url(&r.path),
            r.gateway.upstream
        );
    }
    for p in &state.config.sign_in.providers {
        println!(
            "identity provider {} ({}): register this redirect URI at {}: {}",
            p.name,
            p.display_name,
            p.name,
            routes.idp_callback_url(&p.name)
        );
    }
    std::io::stdout().flush().ok();
}

/// Serves until a shutdown signal, then drains: no new connections, in-flight requests and streams may finish
/// within `drain`; whatever is still open then is closed (returning drops the runtime and its connections).
async fn serve_until_drained(
    listener: TcpListener,
    state: Arc<AppState>,
    drain: Duration,
) -> Result<(), StartError> {
    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown_signal().await;
        let _ = signalled.send(());
    };
    let server = crate::serve(listener, state, shutdown);
    let deadline = async move {
        match on_signal.await {
            Ok(()) => tokio::time::sleep(drain).await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        result = server => result.map_err(|e| StartError::Io(e.to_string()))?,
        () = deadline => {
            tracing::warn!(drain_ms = drain.as_millis() as u64, "drain timeout reached; closing the connections still open");
        }
    }
    Ok(())
}

/// SIGTERM (Unix) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; draining in-flight requests");
}
