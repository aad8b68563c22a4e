//! The admin commands: `user`, `keys`, `clients`. They open the database directly (the server may be running:
//! SQLite serialises writers, and the server re-reads keys periodically).

use crate::db::{open_store, DbArgs};
use anyhow::{bail, Context};
use clap::Subcommand;
use portcullis_authz::registration::RegisteredClient;
use portcullis_authz::{Authz, AuthzConfig, OsRandom, SystemClock};
use portcullis_server::settings::{DatabaseSettings, FileSettings};
use std::io::Read as _;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add {
        /// User name (letters, digits, . _ @ + -).
        name: String,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List users.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Remove a user and revoke their grants.
    Remove {
        /// User name.
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Change a user's password (read from standard input) and end their sessions.
    Passwd {
        /// User name.
        name: String,
        /// Read the password from standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Make a new signing key active; the old one stays published until its tokens have expired.
    Rotate {
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClientsCommand {
    /// List registered clients.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Remove a client and revoke everything issued to it.
    Remove {
        /// Client id.
        id: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

async fn authz(db: &DbArgs) -> anyhow::Result<Authz> {
    let file = FileSettings::load(db.config.as_deref())?;
    let store = open_store(&DatabaseSettings::layered(&db.overrides(Some(1)), &file)).await?;
    let mut config = AuthzConfig::new("http://127.0.0.1", "http://127.0.0.1/mcp");
    if let Some(ttl) = file.access_token_ttl {
        config.access_token_ttl = ttl;
    }
    Authz::new(store, Arc::new(SystemClock), Arc::new(OsRandom), config)
        .await
        .context("cannot load the signing keys")
}

fn read_password() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut text)
        .context("cannot read the password from standard input")?;
    let password = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text)
        .to_owned();
    if password.is_empty() {
        bail!("no password on standard input (try: printf %s 'secret' | portcullis user add NAME --password-stdin)");
    }
    Ok(password)
}

fn when(ts: i64) -> String {
    format!("{ts} (unix time)")
}

pub(crate) async fn user(cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add { name, db, .. } => {
            let password = read_password()?;
            let a = authz(&db).await?;
            a.sessions()
                .add_user(&name, &password)
                .await
                .map_err(|e| anyhow::anyhow!(e.description()))?;
            println!("added user {name}");
        }
        UserCommand::List { db } => {
            let a = authz(&db).await?;
            let users = a.core().store().list_users().await?;
            if users.is_empty() {
                println!("no users (add one with: portcullis user add NAME --password-stdin)");
            }
            for u in users {
                println!("{}\t{}\tcreated {}", u.username, u.id, when(u.created_at));
            }
        }
        UserCommand::Remove { name, db } => {
            let a = authz(&db).await?;
            if !a
                .sessions()
                .remove_user(&name)
                .await
                .map_err(|e| anyhow::anyhow!(e.description()))?
            {
                bail!("no user named {name}");
            }
            println!("removed user {name}; their grants are revoked");
        }
        UserCommand::Passwd { name, db, .. } => {
            let password = read_password()?;
            let a = authz(&db).await?;
            if !a
                .sessions()
                .set_password(&name, &password)
                .await
                .map_err(|e| anyhow::anyhow!(e.description()))?
            {
                bail!("no user named {name}");
            }
            println!("changed the password of {name}; their sessions are ended");
        }
    }
    Ok(())
}

pub(crate) async fn keys(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Rotate { db } => {
            let a = authz(&db).await?;
            let kid = a.keys().rotate().await?;
            println!("new active signing key {kid}; the previous key stays published until its tokens expire");
        }
    }
    Ok(())
}

pub(crate) async fn clients(cmd: ClientsCommand) -> anyhow::Result<()> {
    match cmd {
        ClientsCommand::List { db } => {
            let a = authz(&db).await?;
            let clients = a.core().store().list_clients().await?;
            if clients.is_empty() {
                println!("no registered clients");
            }
            for c in clients {
                let parsed = RegisteredClient::from_record(&c)
                    .map_err(|e| anyhow::anyhow!(e.description()))?;
                let uris: Vec<&str> = parsed.redirect_uris.iter().map(|u| u.as_str()).collect();
                println!(
                    "{}\t{}\t{}\t{}",
                    c.client_id,
                    parsed.name(),
                    parsed.auth_method.as_str(),
                    uris.join(" ")
                );
            }
        }
        ClientsCommand::Remove { id, db } => {
            let a = authz(&db).await?;
            if !a
                .registrations()
                .remove_client(&id)
                .await
                .map_err(|e| anyhow::anyhow!(e.description()))?
            {
                bail!("no client with id {id}");
            }
            println!("removed client {id}; everything issued to it is revoked");
        }
    }
    Ok(())
}
