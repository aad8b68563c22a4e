//! An MCP server built on `rmcp`, protected by `portcullis-guard`.
//!
//! ```sh
//! portcullis serve --resource http://127.0.0.1:3000/mcp          # the authorization server, on :8080
//! cargo run -p rmcp-protected -- --issuer http://127.0.0.1:8080   # this server, on :3000
//! portcullis login http://127.0.0.1:3000/mcp && portcullis call http://127.0.0.1:3000/mcp whoami
//! ```
//!
//! The lines that protect the server are marked `// guard:`; everything else is a plain rmcp server.

use axum::http::request::Parts;
use clap::Parser;
use portcullis_guard::{Guard, GuardConfig, VerifiedToken};
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{schemars, tool, tool_handler, tool_router, ErrorData, ServerHandler};
use std::io::Write as _;

/// An rmcp MCP server whose endpoint needs a Portcullis access token.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: String,
    /// The Portcullis issuer URL (the `issuer` line `portcullis serve` prints).
    #[arg(long)]
    issuer: String,
    /// This server's resource identifier: the MCP endpoint URL clients use (default http://<listen>/mcp).
    /// Portcullis must know it: `portcullis serve --resource <URL>`.
    #[arg(long)]
    resource: Option<String>,
    /// The scope every request needs.
    #[arg(long, default_value = "mcp:tools")]
    scope: String,
}

/// The tools.
#[derive(Debug, Clone)]
struct Tools {
    tool_router: rmcp::handler::server::router::tool::ToolRouter<Self>,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    /// The text to send back.
    message: String,
}

#[tool_router]
impl Tools {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Who is calling: the subject, client and scope of the access token")]
    async fn whoami(
        &self,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        // guard: the verified token is in the request's extensions.
        let token = parts
            .extensions
            .get::<VerifiedToken>()
            .ok_or_else(|| ErrorData::internal_error("no verified token", None))?;
        Ok(CallToolResult::structured(serde_json::json!({
            "sub": token.claims.sub,
            "client_id": token.claims.client_id,
            "scope": token.scope.to_string(),
        })))
    }

    #[tool(description = "Echo a message back")]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        args.message
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let addr = listener.local_addr()?;
    let resource = args
        .resource
        .unwrap_or_else(|| format!("http://{addr}/mcp"));
    let resource_url = url::Url::parse(&resource)?;

    // guard: who issues tokens, which resource this is, which scope every request needs.
    let config = GuardConfig::new(&args.issuer, &resource)?
        .require_scope(&args.scope)?
        .with_resource_name("rmcp-protected example");
    let guard = Guard::new(config)?;

    // A stateless rmcp server (no sessions to bind to users), answering JSON.
    let mut mcp_config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true);
    if let Some(host) = resource_url.host_str() {
        mcp_config.allowed_hosts.push(host.to_owned());
    }
    let mcp = StreamableHttpService::new(
        || Ok(Tools::new()),
        LocalSessionManager::default().into(),
        mcp_config,
    );
    let app = axum::Router::new()
        .route_service(resource_url.path(), mcp)
        .layer(guard.layer()) // guard: 401/403 before rmcp sees the request
        .merge(guard.metadata_router()); // guard: the RFC 9728 metadata document

    println!("listening on http://{addr}");
    println!("resource {resource}");
    std::io::stdout().flush()?;
    axum::serve(listener, app).await?;
    Ok(())
}
