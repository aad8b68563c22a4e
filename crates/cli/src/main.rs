//! `portcullis`: OAuth 2.1 for the Model Context Protocol in one binary. This file only parses arguments and
//! calls the crates: `serve` runs the authorization server and protected MCP endpoint; `user`, `keys`,
//! `clients` and `vault` ([`vault_cmd`]) administer the database; the client commands (`login`, `tools`,
//! `call`, `token`, `logout`, `bridge`, `status`) live in [`client_cmd`].

mod admin;
mod client_cmd;
mod client_list;
mod db;
mod input_prompt;
mod vault_cmd;

use clap::{Args, Parser, Subcommand};
use db::{open_store, DbArgs};
use portcullis_server::assembly::Server;
use portcullis_server::settings::{LogFormat, Overrides, Settings};
use std::process::ExitCode;

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
    /// Manage the key of the upstream token vault.
    #[command(subcommand)]
    Vault(vault_cmd::VaultCommand),
    #[command(flatten)]
    Client(client_cmd::ClientCommand),
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
    /// Seconds after a refresh-token rotation during which the rotated token, presented again by its client
    /// (a retry after a lost response, a concurrent refresh), gets the same new refresh token instead of
    /// revoking the grant; 0 = strict rotation (default 30, at most 300). See SECURITY.md.
    #[arg(long, env = "PORTCULLIS_REFRESH_GRACE_PERIOD", value_name = "SECONDS")]
    refresh_grace_period: Option<i64>,
    /// Login session lifetime in seconds (default 12 hours).
    #[arg(long, env = "PORTCULLIS_SESSION_TTL")]
    session_ttl: Option<i64>,
    /// How often revocations are read from the database, in milliseconds (default 1000). On PostgreSQL other
    /// instances' revocations are pushed too (LISTEN/NOTIFY); this is the bound while that connection is down.
    #[arg(long, env = "PORTCULLIS_REVOCATION_SYNC_MS")]
    revocation_sync_ms: Option<u64>,
    /// Client registrations accepted per client address per hour; 0 = unlimited (default 100).
    #[arg(long, env = "PORTCULLIS_REGISTER_PER_IP_PER_HOUR")]
    register_per_ip_per_hour: Option<u32>,
    /// Failed token requests (invalid_grant / invalid_client) per client address per 5 minutes before 429;
    /// 0 = unlimited (default 600).
    #[arg(long, env = "PORTCULLIS_TOKEN_FAILURES_PER_IP")]
    token_failures_per_ip: Option<u32>,
    /// Password checks (argon2id, 19 MiB of memory each) run at once at most; beyond them and a short queue,
    /// sign-ins get 503 with Retry-After (default: the CPU cores, at least 2; 1 to 256).
    #[arg(long, env = "PORTCULLIS_PASSWORD_HASH_CONCURRENCY", value_name = "N")]
    password_hash_concurrency: Option<u32>,
    /// Delete a client registered by anyone (open registration, or a Client ID Metadata Document's row) that
    /// obtained no token within this many seconds of registering; 0 = never (default 86400, a day). Clients
    /// made by an administrator are never deleted.
    #[arg(long, env = "PORTCULLIS_TOKENLESS_CLIENT_TTL", value_name = "SECONDS")]
    tokenless_client_ttl: Option<i64>,
    /// Delete such a client when it has no live grant and was last used (code exchange or refresh) this many
    /// seconds ago; 0 = never (default 7776000, 90 days).
    #[arg(long, env = "PORTCULLIS_IDLE_CLIENT_TTL", value_name = "SECONDS")]
    idle_client_ttl: Option<i64>,
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
    /// Most client connections open at once; one more is accepted and closed at once (default: half the open-file
    /// limit less 128, at most 4096; 448 under the common 1024). See SECURITY.md.
    #[arg(long, env = "PORTCULLIS_MAX_CONNECTIONS")]
    max_connections: Option<u32>,
    /// Milliseconds a client has to send a request's whole header section, counted from the connection's start
    /// or the end of the previous response (so also the longest idle keep-alive); then the connection is closed
    /// (default 10000).
    #[arg(long, env = "PORTCULLIS_HEADER_READ_TIMEOUT_MS")]
    header_read_timeout_ms: Option<u64>,
    /// Gateway mode: event streams (GET streams, POST answers streamed as events) one user may hold open at once
    /// through one client, per gateway; one more gets 429 (default 8; 0: no limit).
    #[arg(long, env = "PORTCULLIS_GATEWAY_STREAMS_PER_CALLER")]
    gateway_streams_per_caller: Option<u32>,
    /// For testing only: fetch Client ID Metadata Documents from HOST:PORT without the SSRF address check and
    /// over plain http (repeatable; e.g. a loopback document server in a test). Never use in production.
    #[arg(long = "cimd-allow-host", value_name = "HOST:PORT")]
    cimd_allow_host: Vec<String>,
    /// Offer the password form on the sign-in page (default true); false: sign-in only through the
    /// [[identity_providers]] of the config file. See docs/federation.md.
    #[arg(long, env = "PORTCULLIS_PASSWORD_LOGIN", value_name = "true|false")]
    password_login: Option<bool>,
    /// The upstream token vault's key file (default: PORTCULLIS_VAULT_KEY, else vault.key beside the SQLite
    /// database, generated on first start). See docs/federation.md.
    #[arg(long, env = "PORTCULLIS_VAULT_KEY_FILE", value_name = "FILE")]
    vault_key_file: Option<std::path::PathBuf>,
    /// Private-use redirect URI schemes clients may register besides reverse-domain ones (RFC 8252 §7.1),
    /// comma-separated; replaces the default list (cursor,claude); "" allows none.
    #[arg(
        long,
        env = "PORTCULLIS_ALLOWED_REDIRECT_SCHEMES",
        value_delimiter = ',',
        value_name = "SCHEME,..."
    )]
    allowed_redirect_schemes: Option<Vec<String>>,
    /// What registration does with http://localhost redirect URIs: allow, warn (log a warning; the default) or
    /// refuse (RFC 8252 §8.3 recommends http://127.0.0.1 or http://[::1]).
    #[arg(
        long,
        env = "PORTCULLIS_LOCALHOST_REDIRECT_URIS",
        value_name = "allow|warn|refuse"
    )]
    localhost_redirect_uris: Option<String>,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

impl ServeArgs {
    /// The flags and `PORTCULLIS_*` variables (clap reads both) as the top settings layer.
    fn into_overrides(self) -> Overrides {
        Overrides {
            database: self.db.overrides(self.db_max_connections),
            config: self.db.config,
            listen: self.listen,
            issuer: self.issuer,
            mcp_path: self.mcp_path,
            access_token_ttl: self.access_token_ttl,
            refresh_idle_ttl: self.refresh_idle_ttl,
            refresh_absolute_ttl: self.refresh_absolute_ttl,
            refresh_grace_period: self.refresh_grace_period,
            session_ttl: self.session_ttl,
            revocation_sync_ms: self.revocation_sync_ms,
            register_per_ip_per_hour: self.register_per_ip_per_hour,
            token_failures_per_ip: self.token_failures_per_ip,
            password_hash_concurrency: self.password_hash_concurrency,
            tokenless_client_ttl: self.tokenless_client_ttl,
            idle_client_ttl: self.idle_client_ttl,
            log_format: self.log_format,
            drain_timeout_ms: self.drain_timeout_ms,
            max_connections: self.max_connections,
            header_read_timeout_ms: self.header_read_timeout_ms,
            gateway_streams_per_caller: self.gateway_streams_per_caller,
            upstream: self.upstream,
            upstream_timeout_ms: self.upstream_timeout_ms,
            upstream_stream_idle_timeout_ms: self.upstream_stream_idle_timeout_ms,
            tool_scopes: self.tool_scope,
            upstream_identity_jwt: self.upstream_identity_jwt,
            hide_unauthorized_tools: self.hide_unauthorized_tools,
            resources: self.resource,
            cimd_allow_hosts: self.cimd_allow_host,
            password_login: self.password_login,
            vault_key_file: self.vault_key_file,
            allowed_redirect_schemes: self.allowed_redirect_schemes,
            localhost_redirect_uris: self.localhost_redirect_uris,
        }
    }
}

/// `portcullis serve`: settings (file → environment → flags), then the server binds and checks its
/// configuration, then the store is opened and the server runs until shutdown.
async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::load(args.into_overrides())?;
    init_logging(settings.log_format);
    let database = settings.database.clone();
    let server = Server::bind(settings).await?;
    let store = open_store(&database).await?;
    server.run(store).await?;
    Ok(())
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
        Command::Vault(cmd) => vault_cmd::run(cmd).await,
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
