//! `portcullis`: OAuth 2.1 for the Model Context Protocol in one binary. This file only parses arguments and
//! calls the crates: `serve` runs the authorization server and protected MCP endpoint; `user`, `keys` and
//! `clients` administer the database; the client commands (`login`, `tools`, `call`, `token`, `logout`,
//! `bridge`, `status`) live in [`client_cmd`].

mod admin;
mod client_cmd;
mod settings;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use portcullis_authz::{Authz, SystemClock, ThreadRandom};
use portcullis_server::config::parse_issuer;
use portcullis_server::routes::Routes;
use portcullis_server::{AppState, ServerConfig};
use portcullis_store::StoreOptions;
use settings::{pick, FileSettings, DEFAULT_DATABASE, DEFAULT_LISTEN};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// OAuth 2.1 for the Model Context Protocol: authorization server, protected MCP endpoint and client.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the authorization server and the protected MCP endpoint.
    Serve(Box<ServeArgs>),
    /// Manage the users who can sign in.
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(admin::KeysCommand),
    /// Manage registered clients.
    #[command(subcommand)]
    Clients(admin::ClientsCommand),
    #[command(flatten)]
    Client(client_cmd::ClientCommand),
}

/// Where the database is: shared by `serve` and the admin commands.
#[derive(Debug, Clone, Args)]
pub(crate) struct DbArgs {
    /// Database URL: sqlite://PATH (default sqlite://portcullis.db).
    #[arg(long, env = "PORTCULLIS_DATABASE")]
    pub(crate) database: Option<String>,
    /// TOML configuration file.
    #[arg(long, env = "PORTCULLIS_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// How long a request waits for a database connection (including connecting) before it is answered
    /// 503 temporarily_unavailable, in milliseconds (default 3000).
    #[arg(long, env = "PORTCULLIS_DB_ACQUIRE_TIMEOUT_MS")]
    pub(crate) db_acquire_timeout_ms: Option<u64>,
    /// PostgreSQL: the server cancels statements running longer than this, in milliseconds (default 5000;
    /// 0 keeps the server's setting).
    #[arg(long, env = "PORTCULLIS_DB_STATEMENT_TIMEOUT_MS")]
    pub(crate) db_statement_timeout_ms: Option<u64>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Address to listen on; port 0 picks a free port (default 127.0.0.1:8080).
    #[arg(long, env = "PORTCULLIS_LISTEN")]
    listen: Option<String>,
    /// Issuer URL, as clients see it (default http://<listen address>).
    #[arg(long, env = "PORTCULLIS_ISSUER")]
    issuer: Option<String>,
    /// Path of the MCP endpoint (default <issuer path>/mcp).
    #[arg(long, env = "PORTCULLIS_MCP_PATH")]
    mcp_path: Option<String>,
    /// Access token lifetime in seconds (default 3600).
    #[arg(long, env = "PORTCULLIS_ACCESS_TOKEN_TTL")]
    access_token_ttl: Option<i64>,
    /// Refresh token idle lifetime in seconds (default 30 days).
    #[arg(long, env = "PORTCULLIS_REFRESH_IDLE_TTL")]
    refresh_idle_ttl: Option<i64>,
    /// Refresh token absolute lifetime in seconds (default 90 days).
    #[arg(long, env = "PORTCULLIS_REFRESH_ABSOLUTE_TTL")]
    refresh_absolute_ttl: Option<i64>,
    /// Login session lifetime in seconds (default 12 hours).
    #[arg(long, env = "PORTCULLIS_SESSION_TTL")]
    session_ttl: Option<i64>,
    /// How often revocations are read from the database, in milliseconds (default 1000).
    #[arg(long, env = "PORTCULLIS_REVOCATION_SYNC_MS")]
    revocation_sync_ms: Option<u64>,
    /// Client registrations accepted per client address per hour; 0 = unlimited (default 100).
    #[arg(long, env = "PORTCULLIS_REGISTER_PER_IP_PER_HOUR")]
    register_per_ip_per_hour: Option<u32>,
    /// Failed token requests (invalid_grant / invalid_client) per client address per 5 minutes before 429;
    /// 0 = unlimited (default 600).
    #[arg(long, env = "PORTCULLIS_TOKEN_FAILURES_PER_IP")]
    token_failures_per_ip: Option<u32>,
    /// Database reader connections (default 4).
    #[arg(long, env = "PORTCULLIS_DB_MAX_CONNECTIONS")]
    db_max_connections: Option<u32>,
    /// Log format: text or json (default text). Log level from RUST_LOG (default info).
    #[arg(long, env = "PORTCULLIS_LOG_FORMAT")]
    log_format: Option<String>,
    /// Gateway mode: forward the MCP endpoint to this upstream MCP server (Streamable HTTP URL, e.g.
    /// http://127.0.0.1:3000/mcp) instead of the built-in one. See docs/gateway.md.
    #[arg(long, env = "PORTCULLIS_UPSTREAM")]
    upstream: Option<String>,
    /// Gateway mode: milliseconds to wait for the upstream's response head (default 30000); event streams may stay
    /// open longer.
    #[arg(long, env = "PORTCULLIS_UPSTREAM_TIMEOUT_MS")]
    upstream_timeout_ms: Option<u64>,
    /// Gateway mode: end an upstream event stream that answers a POST once it has sent nothing for this many
    /// milliseconds (default 300000; 0: never). The GET stream is exempt.
    #[arg(long, env = "PORTCULLIS_UPSTREAM_STREAM_IDLE_TIMEOUT_MS")]
    upstream_stream_idle_timeout_ms: Option<u64>,
    /// Gateway mode: scope a tool needs, as NAME=SCOPE (repeatable); a tools/call without it gets 403.
    #[arg(long = "tool-scope", value_name = "NAME=SCOPE")]
    tool_scope: Vec<String>,
    /// Gateway mode: also send the upstream X-Portcullis-Identity, a 60-second ES256 JWT (typ
    /// portcullis-identity+jwt) naming the caller, verifiable with this server's JWKS. See docs/gateway.md.
    #[arg(long, env = "PORTCULLIS_UPSTREAM_IDENTITY_JWT")]
    upstream_identity_jwt: bool,
    /// Gateway mode: remove from tools/list answers the tools whose --tool-scope the caller's token lacks.
    #[arg(long, env = "PORTCULLIS_HIDE_UNAUTHORIZED_TOOLS")]
    hide_unauthorized_tools: bool,
    /// An external protected resource that verifies tokens itself (e.g. an MCP server using portcullis-guard),
    /// as its URL: clients may ask for tokens with it as the audience through the RFC 8707 `resource` parameter
    /// (repeatable; https, or http on loopback).
    #[arg(long = "resource", value_name = "URL")]
    resource: Vec<String>,
    /// On SIGTERM or Ctrl-C: stop accepting, let in-flight requests and streams finish for at most this many
    /// milliseconds, then close what is left (default 30000).
    #[arg(long, env = "PORTCULLIS_DRAIN_TIMEOUT_MS")]
    drain_timeout_ms: Option<u64>,
    /// For testing only: fetch Client ID Metadata Documents from HOST:PORT without the SSRF address check and
    /// over plain http (repeatable; e.g. a loopback document server in a test). Never use in production.
    #[arg(long = "cimd-allow-host", value_name = "HOST:PORT")]
    cimd_allow_host: Vec<String>,
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Opens the store named by the flags/file.
pub(crate) async fn open_store(
    db: &DbArgs,
    file: &FileSettings,
    max_connections: Option<u32>,
) -> anyhow::Result<Arc<dyn portcullis_authz::Storage>> {
    let url = pick(
        db.database.clone(),
        file.database.clone(),
        DEFAULT_DATABASE.to_owned(),
    );
    let defaults = StoreOptions::default();
    let options = StoreOptions {
        max_connections: pick(max_connections, file.db_max_connections, 4),
        acquire_timeout_ms: pick(
            db.db_acquire_timeout_ms,
            file.db_acquire_timeout_ms,
            defaults.acquire_timeout_ms,
        ),
        statement_timeout_ms: pick(
            db.db_statement_timeout_ms,
            file.db_statement_timeout_ms,
            defaults.statement_timeout_ms,
        ),
    };
    portcullis_store::open(&url, &options)
        .await
        .with_context(|| {
            format!(
                "cannot open database {}",
                portcullis_store::redact_url(&url)
            )
        })
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let file = FileSettings::load(args.db.config.as_deref())?;
    let log_format = pick(
        args.log_format.clone(),
        file.log_format.clone(),
        "text".into(),
    );
    settings::check_log_format(&log_format)?;
    init_logging(&log_format);
    let listen = pick(args.listen, file.listen.clone(), DEFAULT_LISTEN.into());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let mut addr = listener.local_addr()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let issuer_text = pick(args.issuer, file.issuer.clone(), format!("http://{addr}"));
    let issuer = parse_issuer(&issuer_text)?;
    let mut config = ServerConfig::new(issuer.clone());
    if let Some(p) = args.mcp_path.or(file.mcp_path.clone()) {
        config.mcp_path = p;
    }
    config.access_token_ttl = pick(
        args.access_token_ttl,
        file.access_token_ttl,
        config.access_token_ttl,
    );
    config.refresh_idle_ttl = pick(
        args.refresh_idle_ttl,
        file.refresh_idle_ttl,
        config.refresh_idle_ttl,
    );
    config.refresh_absolute_ttl = pick(
        args.refresh_absolute_ttl,
        file.refresh_absolute_ttl,
        config.refresh_absolute_ttl,
    );
    config.session_ttl = pick(args.session_ttl, file.session_ttl, config.session_ttl);
    config.revocation_sync_ms = pick(
        args.revocation_sync_ms,
        file.revocation_sync_ms,
        config.revocation_sync_ms,
    );
    config.register_per_ip_per_hour = pick(
        args.register_per_ip_per_hour,
        file.register_per_ip_per_hour,
        config.register_per_ip_per_hour,
    );
    config.token_failures_per_ip = pick(
        args.token_failures_per_ip,
        file.token_failures_per_ip,
        config.token_failures_per_ip,
    );
    config.upstream = settings::gateway_config(
        args.upstream,
        args.upstream_timeout_ms,
        args.upstream_stream_idle_timeout_ms,
        &args.tool_scope,
        file.gateway.as_ref(),
    )?;
    config.gateway_routes = settings::gateway_routes(file.gateway.as_ref())?;
    settings::gateway_options(
        config.upstream.as_mut(),
        config
            .gateway_routes
            .iter_mut()
            .map(|r| &mut r.gateway)
            .collect(),
        args.upstream_identity_jwt,
        args.hide_unauthorized_tools,
        file.gateway.as_ref(),
    )?;
    config.cimd_allow_hosts = args.cimd_allow_host.clone();
    if !config.cimd_allow_hosts.is_empty() {
        tracing::warn!(hosts = ?config.cimd_allow_hosts, "--cimd-allow-host: the SSRF guard is off for these hosts (testing only)");
    }
    if let Some(entries) = &file.scopes {
        let (catalogue, default_scope) = settings::scope_catalogue(entries)?;
        config.scopes = catalogue;
        config.default_scope = default_scope;
    }
    config.check()?;
    let store = open_store(&args.db, &file, args.db_max_connections).await?;
    let routes = Routes::new(&issuer, &config.mcp_path);
    let mut authz_config = config.authz_config(&routes.issuer, &routes.mcp_url);
    let external = settings::external_resources(&args.resource, file.resources.as_deref())?;
    for r in &external {
        if !authz_config.resources.contains(r) {
            authz_config.resources.push(r.clone());
        }
    }
    let authz = Authz::new(
        store.clone(),
        Arc::new(SystemClock),
        Arc::new(ThreadRandom),
        authz_config,
    )
    .await
    .context("cannot load or create the signing key")?
    .with_client_metadata_resolver(Arc::new(portcullis_server::cimd::HttpResolver::new(
        config.cimd_allow_hosts.clone(),
    )));
    if store.count_users().await.unwrap_or(0) == 0 {
        tracing::warn!("no users yet: add one with `portcullis user add NAME --password-stdin` (same --database)");
        eprintln!("No users exist yet, so nobody can sign in. Add one with:\n  portcullis user add alice --password-stdin\n(use the same --database as this server)");
    }
    let state = AppState::new(config, routes.clone(), Arc::new(authz));
    tracing::info!(issuer = %routes.issuer, mcp = %routes.mcp_url, %addr, "portcullis serving");
    println!("listening on http://{addr}");
    println!("issuer {}", routes.issuer);
    println!("mcp endpoint {}", routes.mcp_url);
    for r in &external {
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
    std::io::stdout().flush().ok();
    let drain = std::time::Duration::from_millis(pick(
        args.drain_timeout_ms,
        file.drain_timeout_ms,
        DEFAULT_DRAIN_TIMEOUT_MS,
    ));
    serve_until_drained(listener, state, drain).await?;
    tracing::info!("shut down");
    Ok(())
}

/// Default bound of the graceful drain, milliseconds.
const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 30_000;

/// Serves until a shutdown signal, then drains: no new connections, in-flight requests and streams may finish
/// within `drain`; whatever is still open then is closed (returning drops the runtime and its connections).
async fn serve_until_drained(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    drain: std::time::Duration,
) -> anyhow::Result<()> {
    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown_signal().await;
        let _ = signalled.send(());
    };
    let server = portcullis_server::serve(listener, state, shutdown);
    let deadline = async move {
        match on_signal.await {
            Ok(()) => tokio::time::sleep(drain).await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        result = server => result?,
        () = deadline => {
            tracing::warn!(drain_ms = drain.as_millis() as u64, "drain timeout reached; closing the connections still open");
        }
    }
    Ok(())
}

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

/// The error chain as one line: "cannot open database …: unable to open database file".
fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::User(cmd) => admin::user(cmd).await,
        Command::Keys(cmd) => admin::keys(cmd).await,
        Command::Clients(cmd) => admin::clients(cmd).await,
        Command::Client(cmd) => client_cmd::run(cmd).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}
