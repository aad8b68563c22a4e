//! The client commands of `portcullis`: `login`, `tools`, `call`, `token`, `logout`, `bridge`, `status`. Each one
//! is a thin layer over `portcullis_client`; every failure is a one- or two-sentence message and a non-zero exit.

use anyhow::{bail, Context};
use portcullis_client::auth::Authenticator;
use portcullis_client::browser::Opener;
use portcullis_client::cache::{ServerEntry, Store};
use portcullis_client::identity::TokenIdentity;
use portcullis_client::input::{InputProvider, Preset};
use portcullis_client::mcp::McpClient;
use portcullis_client::secret::ClientSecret;
use portcullis_client::{bridge, discovery, LoginOptions};
use portcullis_proto::Scope;
use serde_json::Value;
use std::io::Read;
use std::sync::Arc;

use crate::input_prompt::TerminalPrompt;

/// Client commands, flattened into the top-level command enum.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ClientCommand {
    /// Log in to an OAuth-protected MCP server: discovery, registration, browser login, token cache.
    Login {
        /// The MCP server URL (e.g. https://mcp.example.com/mcp).
        url: String,
        /// Scopes to request (space-separated); default: what the server asks for.
        #[arg(long)]
        scope: Option<String>,
        /// A client_id registered beforehand with the authorization server.
        #[arg(long)]
        client_id: Option<String>,
        /// Read the pre-registered client's secret from stdin.
        #[arg(long, requires = "client_id")]
        client_secret_stdin: bool,
        /// An https URL of this client's Client ID Metadata Document, used when the server supports them.
        #[arg(long)]
        client_metadata_url: Option<String>,
        /// A fixed port for the loopback callback (default: the registered one, else random).
        #[arg(long)]
        callback_port: Option<u16>,
        /// Print the authorization URL instead of opening a browser.
        #[arg(long)]
        no_browser: bool,
    },
    /// List the tools of an MCP server (logging in if needed).
    Tools {
        /// The MCP server URL.
        url: String,
        /// Print the tools as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Call a tool and print its result as JSON.
    Call {
        /// The MCP server URL.
        url: String,
        /// The tool name.
        tool: String,
        /// The arguments, a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
        /// Answers to the server's input requests (MCP 2026-07-28), a JSON object keyed as the server keys them,
        /// e.g. '{"confirm": {"action": "accept", "content": {"confirmed": true}}}'; others are asked on the
        /// terminal when there is one.
        #[arg(long)]
        input_responses: Option<String>,
    },
    /// Print a valid access token for the server (refreshing it if needed), for scripts.
    Token {
        /// The MCP server URL.
        url: String,
    },
    /// Revoke the tokens at the server (RFC 7009) and forget them.
    Logout {
        /// The MCP server URL.
        url: String,
    },
    /// Bridge stdio to a remote MCP server, for stdio-only MCP clients; logs go to stderr.
    Bridge {
        /// The MCP server URL.
        url: String,
    },
    /// Show the servers we hold credentials for.
    Status,
}

/// Runs a client command.
pub(crate) async fn run(cmd: ClientCommand) -> anyhow::Result<()> {
    let store = Store::open(None)?;
    match cmd {
        ClientCommand::Login {
            url,
            scope,
            client_id,
            client_secret_stdin,
            client_metadata_url,
            callback_port,
            no_browser,
        } => {
            let client_secret = read_client_secret(client_secret_stdin)?;
            let scope = scope
                .map(|s| Scope::parse(&s))
                .transpose()
                .context("--scope must be space-separated scope tokens")?;
            if let Some(u) = &client_metadata_url {
                portcullis_client::url_check::safe_url("--client-metadata-url", u)?;
            }
            let opts = LoginOptions {
                scope,
                client_id,
                client_secret,
                client_metadata_url,
                callback_port,
                opener: if no_browser {
                    Opener::PrintOnly
                } else {
                    Opener::System
                },
                ..LoginOptions::default()
            };
            let auth = authenticator(store, &url, opts)?;
            let entry = auth.login().await?;
            print_login(&entry);
        }
        ClientCommand::Tools { url, json } => {
            let client = connect(store, &url).await?;
            let tools = client.list_tools().await?;
            client.close().await;
            if json {
                println!("{}", serde_json::to_string_pretty(&tools)?);
            } else {
                print_tools(&tools);
            }
        }
        ClientCommand::Call {
            url,
            tool,
            args,
            input_responses,
        } => {
            let inputs = input_provider(input_responses.as_deref())?;
            call(store, &url, &tool, &args, inputs).await?;
        }
        ClientCommand::Token { url } => {
            let auth = authenticator(store, &url, LoginOptions::default())?;
            let token = auth.token().await?;
            println!("{}", token.expose());
        }
        ClientCommand::Logout { url } => {
            logout(store, &url).await?;
        }
        ClientCommand::Bridge { url } => {
            let auth = Arc::new(authenticator(store, &url, LoginOptions::default())?);
            let client = Arc::new(McpClient::new(auth));
            let stdin = tokio::io::BufReader::new(tokio::io::stdin());
            bridge::run(client, stdin, tokio::io::stdout()).await?;
        }
        ClientCommand::Status => {
            status(&store)?;
        }
    }
    Ok(())
}

/// `--client-secret-stdin`: the secret piped in, without its trailing newline.
fn read_client_secret(from_stdin: bool) -> anyhow::Result<Option<ClientSecret>> {
    if !from_stdin {
        return Ok(None);
    }
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("could not read the client secret from stdin")?;
    let s = s.trim_end_matches(['\r', '\n']).to_owned();
    if s.is_empty() {
        bail!("--client-secret-stdin was given but stdin was empty; pipe the secret in, e.g. `echo -n SECRET | portcullis login …`");
    }
    Ok(Some(ClientSecret::new(s)))
}

/// `portcullis call`: calls `tool` with the JSON object `args` and prints the result; a result flagged
/// `isError` is an error of the command.
async fn call(
    store: Store,
    url: &str,
    tool: &str,
    args: &str,
    inputs: Option<Arc<dyn InputProvider>>,
) -> anyhow::Result<()> {
    let args: Value = serde_json::from_str(args)
        .context("--args must be a JSON object, e.g. --args '{\"text\":\"hi\"}'")?;
    if !args.is_object() {
        bail!("--args must be a JSON object, e.g. --args '{{\"text\":\"hi\"}}'");
    }
    let client = connect_with(store, url, inputs).await?;
    let result = client.call_tool(tool, args).await;
    client.close().await;
    let result = result?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        bail!("the tool {tool:?} reported an error (see its result above)");
    }
    Ok(())
}

/// `portcullis logout`: revokes and forgets the stored credentials of `url`, without signing in first.
async fn logout(store: Store, url: &str) -> anyhow::Result<()> {
    let auth = authenticator(
        store,
        url,
        LoginOptions {
            interactive: false,
            ..LoginOptions::default()
        },
    )?;
    if auth.logout().await? {
        println!("Logged out of {}.", auth.server());
    } else {
        println!("Not logged in to {}; nothing to do.", auth.server());
    }
    Ok(())
}

/// `portcullis status`: one entry per server with stored credentials.
fn status(store: &Store) -> anyhow::Result<()> {
    let entries = store.servers()?;
    if entries.is_empty() {
        println!("No credentials stored (in {}).", store.root().display());
    }
    for e in entries {
        print_status(&e);
    }
    Ok(())
}

fn authenticator(store: Store, url: &str, opts: LoginOptions) -> anyhow::Result<Authenticator> {
    let server = discovery::parse_server_url(url)?;
    Ok(Authenticator::new(
        portcullis_client::http_client()?,
        store,
        server,
        opts,
    ))
}

async fn connect(store: Store, url: &str) -> anyhow::Result<McpClient> {
    connect_with(store, url, None).await
}

/// A connected client (MCP 2026-07-28 first, `initialize` for older servers) answering input requests with
/// `inputs`.
async fn connect_with(
    store: Store,
    url: &str,
    inputs: Option<Arc<dyn InputProvider>>,
) -> anyhow::Result<McpClient> {
    let mut client = McpClient::new(Arc::new(authenticator(
        store,
        url,
        LoginOptions::default(),
    )?));
    if let Some(i) = inputs {
        client = client.with_inputs(i);
    }
    client.connect().await?;
    Ok(client)
}

/// Who answers input requests: the `--input-responses` object, then the terminal when stdin and stderr are one.
fn input_provider(given: Option<&str>) -> anyhow::Result<Option<Arc<dyn InputProvider>>> {
    use std::io::IsTerminal;
    let terminal: Option<Arc<dyn InputProvider>> = (std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal())
    .then(|| Arc::new(TerminalPrompt) as Arc<dyn InputProvider>);
    let Some(given) = given else {
        return Ok(terminal);
    };
    let answers = match serde_json::from_str::<Value>(given) {
        Ok(Value::Object(m)) => m,
        _ => bail!("--input-responses must be a JSON object keyed by the server's input request keys, e.g. '{{\"confirm\": {{\"action\": \"accept\", \"content\": {{}}}}}}'"),
    };
    Ok(Some(Arc::new(Preset::new(answers, terminal))))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn expiry(e: &ServerEntry) -> String {
    match e.expires_at {
        None => "unknown expiry".into(),
        Some(t) if t <= now() => format!(
            "expired{}",
            if e.refresh_token.is_some() {
                " (will refresh)"
            } else {
                ""
            }
        ),
        Some(t) => format!("expires in {}s", t - now()),
    }
}

/// Who a JWT access token names, for display only (the token is not verified here; the server does that):
/// `carol (carol@example.com via Corp SSO)`, or `alice` for a password user.
fn subject(e: &ServerEntry) -> Option<String> {
    TokenIdentity::unverified(e.access_token.expose()).map(|who| who.to_string())
}

fn print_login(e: &ServerEntry) {
    let who = subject(e).map(|s| format!(" as {s}")).unwrap_or_default();
    println!("Logged in to {}{who}.", e.server);
    println!("  issuer:  {}", e.issuer);
    println!(
        "  scope:   {}",
        e.scope
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("(none)")
    );
    println!(
        "  token:   {}, {}",
        expiry(e),
        if e.refresh_token.is_some() {
            "refreshable"
        } else {
            "no refresh token"
        }
    );
}

fn print_status(e: &ServerEntry) {
    let who = subject(e).map(|s| format!(" as {s}")).unwrap_or_default();
    println!("{}{who}", e.server);
    println!("  issuer: {}", e.issuer);
    println!(
        "  scope:  {}",
        e.scope
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("(none)")
    );
    println!("  token:  {}", expiry(e));
}

fn print_tools(tools: &[Value]) {
    if tools.is_empty() {
        println!("(no tools)");
        return;
    }
    let name = |t: &Value| {
        t.get("name")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    let width = tools
        .iter()
        .map(|t| name(t).len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!("{:width$}  DESCRIPTION", "NAME");
    for t in tools {
        let desc = t
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("");
        let desc: String = desc.chars().take(100).collect();
        println!("{:width$}  {desc}", name(t));
    }
}
