//! Where the upstream token vault's keys come from, and re-encrypting what they sealed: the one place `serve`
//! and `portcullis vault rotate-key` load them (the cipher itself is `portcullis_authz::vault`).
//!
//! Sources, in order: the `vault_key_file` setting (a file of key text: one base64url key per line, the first
//! active); else `PORTCULLIS_VAULT_KEY` (the same text; keys may also be separated by commas); else, on SQLite,
//! `<database directory>/vault.key`, generated on first use with mode 0600 and a warning. Setting both the
//! file and the variable is an error (which one would rotate-key rewrite?). PostgreSQL has no database
//! directory: there a key must be given.

use portcullis_authz::random::{OsRandom, Random};
use portcullis_authz::store::{Reseal, SealedRowKey, SealedTable, Storage, StoreError};
use portcullis_authz::vault::{Vault, VaultError, VaultKey};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The environment variable that may hold the key text.
pub const VAULT_KEY_ENV: &str = "PORTCULLIS_VAULT_KEY";
/// The name of the generated key file in the SQLite database's directory.
pub const GENERATED_KEY_FILE: &str = "vault.key";

/// Why the vault keys could not be loaded or stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultKeyError {
    /// Both a key file and the environment variable are set.
    #[error("both vault_key_file and {VAULT_KEY_ENV} are set; set only one")]
    BothSet,
    /// The key file cannot be read.
    #[error("vault_key_file {path}: cannot read it: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        error: std::io::Error,
    },
    /// The key file (or a temporary file next to it) cannot be written.
    #[error("vault key file {path}: cannot write it: {error}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        error: std::io::Error,
    },
    /// The key text is malformed (`origin` names the file or the variable).
    #[error("{origin}: {error}")]
    Parse {
        /// `vault_key_file <path>` or the variable's name.
        origin: String,
        /// What is wrong.
        error: VaultError,
    },
    /// No key was given and none can be generated (PostgreSQL, or the key file is not to be created).
    #[error("no vault key: set vault_key_file or {VAULT_KEY_ENV}{hint}")]
    NoKey {
        /// More about why.
        hint: String,
    },
    /// Sealing a re-encrypted value failed.
    #[error("re-encrypting the vault: {0}")]
    Seal(VaultError),
    /// Re-encrypting failed in the database.
    #[error("re-encrypting the vault: {0}")]
    Store(#[from] StoreError),
}

/// Where the keys were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A key file: `vault_key_file`, or the default file in the SQLite database's directory.
    File(PathBuf),
    /// The environment variable [`VAULT_KEY_ENV`].
    Env,
    /// A key file generated just now (first start).
    Generated(PathBuf),
}

/// The vault and where its keys came from.
#[derive(Debug)]
pub struct LoadedVault {
    /// The keys.
    pub vault: Vault,
    /// Their source.
    pub source: KeySource,
}

/// Loads the vault keys from `key_file`, else the key text `env_text`, else the SQLite database's
/// [`GENERATED_KEY_FILE`] (created when `create` and missing). See the module documentation.
pub fn load(
    key_file: Option<&Path>,
    env_text: Option<&str>,
    database_url: &str,
    create: bool,
) -> Result<LoadedVault, VaultKeyError> {
    let env_text = env_text.filter(|t| !t.trim().is_empty());
    match (key_file, env_text) {
        (Some(_), Some(_)) => Err(VaultKeyError::BothSet),
        (Some(path), None) => Ok(LoadedVault {
            vault: read_key_file(path)?,
            source: KeySource::File(path.to_owned()),
        }),
        (None, Some(text)) => Ok(LoadedVault {
            vault: parse(&text.replace(',', "\n"), VAULT_KEY_ENV)?,
            source: KeySource::Env,
        }),
        (None, None) => load_default(database_url, create),
    }
}

/// [`load`] with the key text read from [`VAULT_KEY_ENV`].
pub fn load_with_env(
    key_file: Option<&Path>,
    database_url: &str,
    create: bool,
) -> Result<LoadedVault, VaultKeyError> {
    let env = std::env::var(VAULT_KEY_ENV).ok();
    load(key_file, env.as_deref(), database_url, create)
}

fn parse(text: &str, origin: &str) -> Result<Vault, VaultKeyError> {
    Vault::from_text(text).map_err(|error| VaultKeyError::Parse {
        origin: origin.to_owned(),
        error,
    })
}

fn read_key_file(path: &Path) -> Result<Vault, VaultKeyError> {
    let text = std::fs::read_to_string(path).map_err(|error| VaultKeyError::Read {
        path: path.to_owned(),
        error,
    })?;
    warn_if_readable_by_others(path);
    parse(&text, &format!("vault_key_file {}", path.display()))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the vault key file is readable by other users; chmod 600 it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// The default key file of a SQLite database URL: `vault.key` in the database file's directory. `None` for
/// other databases.
pub fn default_key_file(database_url: &str) -> Option<PathBuf> {
    let lower = database_url.to_ascii_lowercase();
    let rest = if lower.starts_with("sqlite://") {
        &database_url["sqlite://".len()..]
    } else if lower.starts_with("sqlite:") {
        &database_url["sqlite:".len()..]
    } else {
        return None;
    };
    let file = rest.split('?').next().unwrap_or_default();
    if file.is_empty() || file.contains(":memory:") {
        return None;
    }
    let dir = Path::new(file)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Some(dir.join(GENERATED_KEY_FILE))
}

fn load_default(database_url: &str, create: bool) -> Result<LoadedVault, VaultKeyError> {
    let Some(path) = default_key_file(database_url) else {
        return Err(VaultKeyError::NoKey {
            hint: " (the database is not a SQLite file, so no key file can be generated beside it)"
                .into(),
        });
    };
    if path.exists() {
        return Ok(LoadedVault {
            vault: read_key_file(&path)?,
            source: KeySource::File(path),
        });
    }
    if !create {
        return Err(VaultKeyError::NoKey {
            hint: format!(" (and {} does not exist yet)", path.display()),
        });
    }
    let vault = Vault::new(VaultKey::generate(&OsRandom), vec![]);
    if !create_new_key_file(&path, &vault)? {
        // Another process created it first: use theirs.
        return Ok(LoadedVault {
            vault: read_key_file(&path)?,
            source: KeySource::File(path),
        });
    }
    tracing::warn!(
        path = %path.display(),
        "generated a new vault key for the upstream tokens; back this file up (without it the stored upstream \
         tokens cannot be read) or set vault_key_file / {VAULT_KEY_ENV}"
    );
    Ok(LoadedVault {
        vault,
        source: KeySource::Generated(path),
    })
}

/// Writes the key text into a new temporary file (mode 0600) beside `path` and syncs it.
fn write_temp(path: &Path, vault: &Vault) -> Result<PathBuf, VaultKeyError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let write_err = |error| VaultKeyError::Write {
        path: tmp.clone(),
        error,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(write_err)?;
    file.write_all(vault.to_text().expose().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(write_err)?;
    Ok(tmp)
}

/// Creates `path` with the key text unless it exists (atomically: a hard link of a complete temporary file).
/// Returns whether this call created it.
fn create_new_key_file(path: &Path, vault: &Vault) -> Result<bool, VaultKeyError> {
    let tmp = write_temp(path, vault)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(path);
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(error) => Err(VaultKeyError::Write {
            path: path.to_owned(),
            error,
        }),
    }
}

/// Replaces the key file atomically (a complete temporary file renamed over it), mode 0600.
pub fn write_key_file(path: &Path, vault: &Vault) -> Result<(), VaultKeyError> {
    let tmp = write_temp(path, vault)?;
    std::fs::rename(&tmp, path).map_err(|error| {
        let _ = std::fs::remove_file(&tmp);
        VaultKeyError::Write {
            path: path.to_owned(),
            error,
        }
    })?;
    sync_dir(path);
    Ok(())
}

/// Makes a rename or link in `path`'s directory durable (best effort: not every platform can open a directory).
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// What [`reseal_all`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// Upstream token rows re-encrypted under the active key.
    pub tokens: u64,
    /// Pending upstream sign-ins re-encrypted.
    pub states: u64,
    /// Rows already under the active key.
    pub current: u64,
    /// Rows that changed while they were re-encrypted (written by a running server): left as they are.
    pub changed: u64,
    /// Rows that no key of the vault opens (sealed with a key no longer held, or damaged): left as they are.
    pub unreadable: u64,
}

impl ResealReport {
    /// Whether every row the vault could open is now under the active key, so the older keys are no longer
    /// needed (unreadable rows stay unreadable with or without them).
    pub fn complete(&self) -> bool {
        self.changed == 0
    }
}

/// Re-encrypts every sealed row that is not under the vault's active key, `batch` rows per transaction. A
/// row is replaced only if it still holds what was read, so a concurrent write is never lost.
pub async fn reseal_all(
    store: &dyn Storage,
    vault: &Vault,
    rng: &dyn Random,
    batch: u32,
) -> Result<ResealReport, VaultKeyError> {
    let mut report = ResealReport::default();
    for table in [SealedTable::UpstreamTokens, SealedTable::UpstreamStates] {
        let mut after: Option<SealedRowKey> = None;
        loop {
            let rows = store.sealed_rows(table, after.as_ref(), batch).await?;
            let Some(last) = rows.last() else { break };
            after = Some(last.key.clone());
            let mut work = Vec::new();
            for row in rows {
                if &row.key_id == vault.active_id() {
                    report.current += 1;
                    continue;
                }
                let aad = row.key.aad();
                let Ok(plain) = vault.open(&row.key_id, &row.sealed, &aad) else {
                    report.unreadable += 1;
                    continue;
                };
                let (key_id, sealed) =
                    vault.seal(&plain, &aad, rng).map_err(VaultKeyError::Seal)?;
                work.push(Reseal {
                    row,
                    key_id,
                    sealed,
                });
            }
            let done = store.reseal(&work).await?;
            report.changed += (work.len() as u64).saturating_sub(done);
            match table {
                SealedTable::UpstreamTokens => report.tokens += done,
                SealedTable::UpstreamStates => report.states += done,
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key_text(n: u8) -> String {
        VaultKey::from_bytes([n; 32]).to_text().expose().to_owned()
    }

    #[test]
    fn default_key_file_is_beside_the_sqlite_database() {
        for (url, want) in [
            ("sqlite://portcullis.db", Some("./vault.key")),
            ("sqlite:portcullis.db?mode=rwc", Some("./vault.key")),
            (
                "sqlite:///var/lib/p/db.sqlite",
                Some("/var/lib/p/vault.key"),
            ),
            ("sqlite://data/p.db", Some("data/vault.key")),
            ("sqlite::memory:", None),
            ("postgres://u@h/db", None),
        ] {
            assert_eq!(default_key_file(url), want.map(PathBuf::from), "{url}");
        }
    }

    #[test]
    fn sources_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        let file = dir.path().join("keys");
        std::fs::write(&file, format!("{}\n{}\n", key_text(1), key_text(2))).unwrap();

        let from_file = load(Some(&file), None, &url, true).unwrap();
        assert_eq!(from_file.source, KeySource::File(file.clone()));
        assert_eq!(from_file.vault.keys().count(), 2);
        let env = format!("{},{}", key_text(3), key_text(1));
        let from_env = load(None, Some(&env), &url, true).unwrap();
        assert_eq!(from_env.source, KeySource::Env);
        assert_eq!(
            from_env.vault.active_id(),
            VaultKey::from_bytes([3; 32]).id()
        );
        assert!(matches!(
            load(Some(&file), Some(&env), &url, true),
            Err(VaultKeyError::BothSet)
        ));
        assert!(matches!(
            load(None, Some("nope"), &url, true),
            Err(VaultKeyError::Parse {
                error: VaultError::BadKeyText { line: 1 },
                ..
            })
        ));
        assert!(matches!(
            load(Some(&dir.path().join("missing")), None, &url, true),
            Err(VaultKeyError::Read { .. })
        ));
        assert!(matches!(
            load(None, None, "postgres://u@h/db", true),
            Err(VaultKeyError::NoKey { .. })
        ));
        assert!(matches!(
            load(None, None, &url, false),
            Err(VaultKeyError::NoKey { .. })
        ));
    }

    #[test]
    fn the_default_key_is_generated_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        let path = dir.path().join(GENERATED_KEY_FILE);
        let first = load(None, None, &url, true).unwrap();
        assert_eq!(first.source, KeySource::Generated(path.clone()));
        let again = load(None, None, &url, true).unwrap();
        assert_eq!(again.source, KeySource::File(path.clone()));
        assert_eq!(again.vault.active_id(), first.vault.active_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Only the key file is left in the directory (no temporary file).
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(GENERATED_KEY_FILE)]);
    }

    #[test]
    fn write_key_file_replaces_the_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let two = Vault::from_text(&format!("{}\n{}", key_text(4), key_text(5))).unwrap();
        write_key_file(&path, &two).unwrap();
        let back = read_key_file(&path).unwrap();
        assert_eq!(back.keys().count(), 2);
        let one = Vault::from_text(&key_text(4)).unwrap();
        write_key_file(&path, &one).unwrap();
        assert_eq!(read_key_file(&path).unwrap().keys().count(), 1);
    }
}
