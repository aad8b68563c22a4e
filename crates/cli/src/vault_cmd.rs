//! `portcullis vault rotate-key`: a new key for the upstream token vault, and every sealed row re-encrypted
//! under it (`portcullis_server::vault_key` does the work).

use crate::db::{open_store, DbArgs};
use anyhow::Context;
use clap::Subcommand;
use portcullis_authz::random::OsRandom;
use portcullis_authz::vault::{Vault, VaultKey};
use portcullis_server::settings::{DatabaseSettings, FileSettings};
use portcullis_server::vault_key::{self, KeySource, ResealReport, VAULT_KEY_ENV};
use std::path::{Path, PathBuf};

/// Rows re-encrypted per database transaction.
const BATCH: u32 = 100;

#[derive(Debug, Subcommand)]
pub(crate) enum VaultCommand {
    /// Make a new vault key active and re-encrypt every stored upstream token and pending sign-in under it.
    ///
    /// With a key file (vault_key_file, --vault-key-file, or the vault.key generated beside a SQLite database):
    /// writes the new key first and the old ones after it, re-encrypts in batches, then rewrites the file with
    /// only the new key. Servers keep the keys they loaded at start: stop them first, or restart them right
    /// after (a row a server seals in between under the old key cannot be read after its restart; that user
    /// signs in again).
    ///
    /// With PORTCULLIS_VAULT_KEY, Portcullis cannot store the key: this prints a new key and the three steps
    /// (put it first in PORTCULLIS_VAULT_KEY, keeping the old keys after it, and restart; run
    /// `portcullis vault rotate-key --reseal`; drop the old keys and restart).
    #[command(name = "rotate-key", verbatim_doc_comment)]
    RotateKey {
        /// No new key: re-encrypt every row under the active (first) key, then drop the older keys from the key
        /// file if nothing needs them. Finishes a rotation (PORTCULLIS_VAULT_KEY, or an interrupted one).
        #[arg(long)]
        reseal: bool,
        /// The vault key file (default: vault_key_file from the configuration, else vault.key beside the
        /// SQLite database).
        #[arg(long, value_name = "PATH", env = "PORTCULLIS_VAULT_KEY_FILE")]
        vault_key_file: Option<PathBuf>,
        #[command(flatten)]
        db: DbArgs,
    },
}

pub(crate) async fn run(cmd: VaultCommand) -> anyhow::Result<()> {
    match cmd {
        VaultCommand::RotateKey {
            reseal,
            vault_key_file,
            db,
        } => rotate_key(reseal, vault_key_file.as_deref(), &db).await,
    }
}

async fn rotate_key(reseal_only: bool, key_file: Option<&Path>, db: &DbArgs) -> anyhow::Result<()> {
    let file = FileSettings::load(db.config.as_deref())?;
    let database = DatabaseSettings::layered(&db.overrides(Some(1)), &file);
    let key_file = key_file.or(file.vault_key_file.as_deref());
    let loaded = vault_key::load_with_env(key_file, &database.url, false)
        .context("cannot load the vault keys")?;
    let path = match loaded.source {
        KeySource::Env if !reseal_only => {
            print_env_steps(&loaded.vault);
            return Ok(());
        }
        KeySource::Env => None,
        KeySource::File(path) | KeySource::Generated(path) => Some(path),
    };
    let vault = match &path {
        Some(path) if !reseal_only => {
            let vault = loaded.vault.rotated(VaultKey::generate(&OsRandom));
            vault_key::write_key_file(path, &vault)?;
            println!(
                "new vault key {} written to {} (the old keys stay after it until every row is re-encrypted)",
                vault.active_id(),
                path.display()
            );
            vault
        }
        _ => loaded.vault,
    };
    let store = open_store(&database).await?;
    let report = vault_key::reseal_all(store.as_ref(), &vault, &OsRandom, BATCH).await?;
    print_report(&report, &vault);
    finish(path.as_deref(), vault, &report)
}

/// Drops the old keys from the key file when nothing needs them any more, or says why not.
fn finish(path: Option<&Path>, vault: Vault, report: &ResealReport) -> anyhow::Result<()> {
    let active = vault.active_id().clone();
    let old = vault.keys().count() - 1;
    match path {
        Some(path) if report.complete() => {
            if old > 0 {
                vault_key::write_key_file(path, &vault.only_active())?;
            }
            println!("{} now holds only the key {active}", path.display());
        }
        Some(path) => println!(
            "{} rows changed while they were re-encrypted (a server is running): the old keys stay in {}; \
             run `portcullis vault rotate-key --reseal` again",
            report.changed,
            path.display()
        ),
        None if report.complete() => println!(
            "every readable row is under the key {active}: set {VAULT_KEY_ENV} to that key alone and restart \
             the servers"
        ),
        None => println!(
            "{} rows changed while they were re-encrypted: keep the old keys in {VAULT_KEY_ENV} and run \
             `portcullis vault rotate-key --reseal` again",
            report.changed
        ),
    }
    Ok(())
}

fn print_report(r: &ResealReport, vault: &Vault) {
    println!(
        "re-encrypted under {}: {} upstream token rows, {} pending sign-ins ({} rows were already under it)",
        vault.active_id(),
        r.tokens,
        r.states,
        r.current
    );
    if r.unreadable > 0 {
        println!(
            "warning: {} rows open with none of the keys (sealed with a key no longer held, or damaged); they \
             are left as they are, and those users sign in again",
            r.unreadable
        );
    }
}

/// `PORTCULLIS_VAULT_KEY` holds the keys: Portcullis cannot write them, so it hands over a new key and the steps.
fn print_env_steps(current: &Vault) {
    let new = VaultKey::generate(&OsRandom);
    let mut value = vec![new.to_text().expose().to_owned()];
    value.extend(current.keys().map(|k| k.to_text().expose().to_owned()));
    println!(
        "{VAULT_KEY_ENV} is set, so Portcullis does not store the vault key and cannot rotate it by itself.\n\
         A new key was generated (id {id}); nothing was changed yet. To rotate:\n\
         1. On every instance set {VAULT_KEY_ENV} to the new key followed by the current ones, and restart:\n\
         \x20  {VAULT_KEY_ENV}={value}\n\
         2. With that value set, run: portcullis vault rotate-key --reseal\n\
         \x20  (re-encrypts every stored upstream token and pending sign-in under the new key)\n\
         3. Set {VAULT_KEY_ENV}={new} alone on every instance and restart.",
        id = new.id(),
        value = value.join(","),
        new = new.to_text().expose(),
    );
}
