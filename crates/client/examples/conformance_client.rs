//! The client under test for the MCP conformance suite (`interop/client-conformance.sh`).
//!
//! Usage: `conformance_client [--client-metadata-url URL] SERVER_URL` (the suite appends the server URL). It
//! connects with the library's [`McpClient`] (initialize, tools/list), calls every listed tool with arguments
//! made from its input schema, and exits 0 on success. The browser step is a headless GET of the authorization
//! URL whose redirects are followed to the loopback callback, as a browser that auto-approves would. Pre-registered
//! credentials, when the suite provides them in `MCP_CONFORMANCE_CONTEXT` (`client_id`, `client_secret`), are used
//! like `--client-id`. The scenario name is never looked at. Credentials live in a fresh temporary
//! `PORTCULLIS_HOME` per run.

#![allow(clippy::print_stderr)]

use portcullis_client::auth::Authenticator;
use portcullis_client::browser::Opener;
use portcullis_client::cache::Store;
use portcullis_client::mcp::McpClient;
use portcullis_client::secret::ClientSecret;
use portcullis_client::LoginOptions;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("conformance client: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut metadata_url = None;
    let mut server = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "--client-metadata-url" {
            metadata_url = it.next();
        } else {
            server = Some(a);
        }
    }
    let server =
        server.ok_or("usage: conformance_client [--client-metadata-url URL] SERVER_URL")?;
    let context: Value = std::env::var("MCP_CONFORMANCE_CONTEXT")
        .ok()
        .and_then(|c| serde_json::from_str(&c).ok())
        .unwrap_or(Value::Null);
    let home = tempfile::tempdir()?;
    let opener = Opener::Custom(Arc::new(|url: &url::Url| {
        let url = url.clone();
        tokio::spawn(async move {
            // Follows redirects (the mock authorization endpoint redirects straight to our loopback callback).
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build();
            if let Ok(http) = http {
                if let Err(e) = http.get(url).send().await {
                    eprintln!("headless browser: {e}");
                }
            }
        });
        Ok(())
    }));
    let opts = LoginOptions {
        client_id: context
            .get("client_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        client_secret: context
            .get("client_secret")
            .and_then(Value::as_str)
            .map(ClientSecret::new),
        client_metadata_url: metadata_url,
        opener,
        callback_timeout: Duration::from_secs(20),
        ..LoginOptions::default()
    };
    let url = portcullis_client::discovery::parse_server_url(&server)?;
    let auth = Authenticator::new(
        portcullis_client::http_client()?,
        Store::open(Some(home.path().to_owned()))?,
        url,
        opts,
    );
    let client = McpClient::new(Arc::new(auth));
    client.connect().await?;
    let tools = client.list_tools().await?;
    for tool in &tools {
        let Some(name) = tool.get("name").and_then(Value::as_str) else {
            continue;
        };
        let args = sample_arguments(tool.get("inputSchema").unwrap_or(&Value::Null));
        let result = client.call_tool(name, args).await?;
        eprintln!("called {name}: {result}");
    }
    client.close().await;
    Ok(())
}

/// Arguments for a tool from its JSON Schema: every declared property gets a value of its type.
fn sample_arguments(schema: &Value) -> Value {
    let mut out = Map::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (i, (k, p)) in props.iter().enumerate() {
            let v = match p.get("type").and_then(Value::as_str) {
                Some("number") | Some("integer") => json!(i + 1),
                Some("boolean") => json!(true),
                Some("array") => json!([]),
                Some("object") => json!({}),
                _ => json!("test"),
            };
            out.insert(k.clone(), v);
        }
    }
    Value::Object(out)
}
