//! The admin commands: `user` (with `link`/`unlink` of identities at upstream identity providers), `keys`,
//! `clients`. They open the database directly (the server may be running:
//! SQLite serialises writers, and the server re-reads keys periodically).

use crate::client_list::{self, ListedClient};
use crate::db::{open_store, DbArgs};
use anyhow::{bail, Context};
use clap::Subcommand;
use portcullis_authz::introspection::IntrospectionAudiences;
use portcullis_authz::store::{IdentityRecord, StoreError, UserRecord};
use portcullis_authz::{Authz, AuthzConfig, OsRandom, SystemClock};
use portcullis_server::settings::{DatabaseSettings, FileSettings};
use std::collections::HashMap;
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
    /// List users, with their identities at identity providers.
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
    /// Link an existing user to their account at an identity provider: signing in there as SUBJECT then signs
    /// in as this user.
    Link {
        /// User name.
        name: String,
        /// The identity provider's name (`name` of its [[identity_providers]] table).
        #[arg(long, value_name = "PROVIDER")]
        idp: String,
        /// The user's stable subject identifier at the provider (the ID token's `sub`; GitHub: the numeric user
        /// id).
        #[arg(long)]
        subject: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Remove a user's link to an identity provider (and their stored tokens there).
    Unlink {
        /// User name.
        name: String,
        /// The identity provider's name.
        #[arg(long, value_name = "PROVIDER")]
        idp: String,
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
    /// List stored clients: id, name, origin (dynamic registration, metadata document or admin), when
    /// registered, when last used (code exchange or refresh; "never": no token yet), live grants, redirect hosts.
    List {
        /// One JSON array (unix times; names whole; full redirect URIs) instead of the table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Add a client made by the admin: a resource server's introspection credential (RFC 7662), for
    /// POST <issuer>/introspect. It authenticates with HTTP Basic and can never obtain a token itself.
    Add {
        /// A name for it (shown by `clients list`), e.g. the resource server's.
        name: String,
        /// Make an introspection credential (required: the only kind `clients add` makes).
        #[arg(long, required = true)]
        introspection: bool,
        /// A resource (the tokens' audience, e.g. https://mcp.example.com/mcp) whose access tokens it may
        /// introspect; repeat for several. Without it: the access tokens of every audience of this issuer.
        #[arg(long = "resource", value_name = "URL", requires = "introspection")]
        resources: Vec<String>,
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
        UserCommand::List { db } => list_users(&db).await?,
        UserCommand::Link {
            name,
            idp,
            subject,
            db,
        } => link(&name, &idp, &subject, &db).await?,
        UserCommand::Unlink { name, idp, db } => {
            let a = authz(&db).await?;
            let user = user_named(&a, &name).await?;
            if !a.core().store().unlink_identity(&user.id, &idp).await? {
                bail!("{name} is not linked to {idp}");
            }
            println!("unlinked {name} from {idp}; their stored {idp} tokens are deleted");
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

async fn user_named(a: &Authz, name: &str) -> anyhow::Result<UserRecord> {
    a.core()
        .store()
        .user_by_name(name)
        .await?
        .with_context(|| format!("no user named {name}"))
}

/// One line per user: name, id, creation, whether they have a password, and each identity as
/// `(provider: subject, email)`.
async fn list_users(db: &DbArgs) -> anyhow::Result<()> {
    let a = authz(db).await?;
    let store = a.core().store();
    let users = store.list_users().await?;
    if users.is_empty() {
        println!("no users (add one with: portcullis user add NAME --password-stdin)");
    }
    let mut identities: HashMap<String, Vec<IdentityRecord>> = HashMap::new();
    for i in store.list_identities().await? {
        identities.entry(i.user_id.clone()).or_default().push(i);
    }
    for u in users {
        let mut line = format!("{}\t{}\tcreated {}", u.username, u.id, when(u.created_at));
        if u.password_hash.is_empty() {
            line.push_str("\tno password");
        }
        for i in identities.get(&u.id).into_iter().flatten() {
            match &i.email {
                Some(email) => {
                    line.push_str(&format!("\t({}: {}, {email})", i.provider, i.subject))
                }
                None => line.push_str(&format!("\t({}: {})", i.provider, i.subject)),
            }
        }
        println!("{line}");
    }
    Ok(())
}

/// `user link NAME --idp P --subject S`: refuses, naming the reason, when the user does not exist, the identity
/// belongs to someone else, or the user is linked to another subject at that provider.
async fn link(name: &str, idp: &str, subject: &str, db: &DbArgs) -> anyhow::Result<()> {
    let valid_name = !idp.is_empty()
        && idp.len() <= 32
        && idp
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid_name {
        bail!("--idp {idp:?}: a provider name is 1 to 32 of a-z, 0-9 and -");
    }
    if subject.is_empty() || subject.len() > 255 {
        bail!("--subject must be 1 to 255 bytes");
    }
    let a = authz(db).await?;
    let store = a.core().store();
    let user = user_named(&a, name).await?;
    if let Some(taken) = store.identity(idp, subject).await? {
        if taken.user_id == user.id {
            println!("{name} is already linked to {idp} subject {subject}");
            return Ok(());
        }
        let owner = store
            .user_by_id(&taken.user_id)
            .await?
            .map_or(taken.user_id, |u| u.username);
        bail!(
            "{idp} subject {subject} is already linked to user {owner} \
             (unlink it first: portcullis user unlink {owner} --idp {idp})"
        );
    }
    if let Some(other) = store
        .identities_of(&user.id)
        .await?
        .into_iter()
        .find(|i| i.provider == idp)
    {
        bail!(
            "{name} is already linked to {idp} subject {} (unlink it first: portcullis user unlink {name} --idp {idp})",
            other.subject
        );
    }
    let now = a.core().now();
    let identity = IdentityRecord {
        provider: idp.to_owned(),
        subject: subject.to_owned(),
        user_id: user.id,
        email: None,
        email_verified: false,
        username: None,
        groups: vec![],
        created_at: now,
        last_login_at: 0,
    };
    match store.link_identity(&identity).await {
        Ok(()) => println!("linked {name} to {idp} subject {subject}"),
        Err(StoreError::Conflict(_)) => {
            bail!("{idp} subject {subject} was linked by someone else meanwhile; see: portcullis user list")
        }
        Err(e) => return Err(e.into()),
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
        ClientsCommand::List { json, db } => {
            let a = authz(&db).await?;
            let usage = a.core().store().client_usage(a.core().now()).await?;
            let clients: Vec<ListedClient> = usage.iter().map(ListedClient::new).collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&clients)?);
            } else if clients.is_empty() {
                println!("no registered clients");
            } else {
                print!("{}", client_list::table(&clients));
            }
        }
        ClientsCommand::Add {
            name,
            resources,
            db,
            ..
        } => add_introspection_credential(&name, resources, &db).await?,
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

/// `clients add NAME --introspection [--resource URL ...]`: prints the client id and the secret (shown once).
async fn add_introspection_credential(
    name: &str,
    resources: Vec<String>,
    db: &DbArgs,
) -> anyhow::Result<()> {
    let aud = IntrospectionAudiences::from_stored(&resources);
    let a = authz(db).await?;
    let (client_id, secret) = a
        .registrations()
        .add_introspection_credential(name, &aud)
        .await
        .map_err(|e| anyhow::anyhow!(e.description()))?;
    println!("added introspection credential {name}");
    println!("client_id: {client_id}");
    println!("client_secret: {}", secret.expose());
    println!(
        "(the secret is shown only now; authenticate to POST <issuer>/introspect with HTTP Basic)"
    );
    match aud {
        IntrospectionAudiences::Any => println!(
            "it may introspect the access tokens of EVERY audience of this issuer \
             (limit it with --resource URL, once per audience)"
        ),
        IntrospectionAudiences::Only(r) => {
            println!("it may introspect the access tokens for: {}", r.join(" "))
        }
    }
    Ok(())
}
