//! The credential cache: one JSON file per MCP server (`servers/<hash>.json`) and one per authorization server
//! registration (`clients/<hash>.json`) under `$PORTCULLIS_HOME` (default: the platform config directory +
//! `portcullis`). Files are mode 0600 in a 0700 directory, written to a temporary file and renamed into place, so
//! a reader never sees half a file. [`Store::lock`] takes an exclusive lock per server, held around refresh and
//! login, so two processes (two bridges) never spend the same refresh token: the holder re-reads the file after
//! taking the lock.

use crate::registration::Registration;
use crate::secret::{AccessToken, RefreshToken};
use crate::{Error, Result};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Seconds before `expires_at` at which a token counts as expired, for clock skew and request latency.
pub const EXPIRY_MARGIN_SECS: u64 = 30;

/// What is remembered about one MCP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerEntry {
    /// The MCP server URL, as the user gave it (after parsing).
    pub server: String,
    /// The RFC 8707 `resource` used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The issuer of the tokens.
    pub issuer: String,
    /// The token endpoint, for refresh without rediscovery.
    pub token_endpoint: String,
    /// The revocation endpoint, when advertised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// The access token.
    pub access_token: AccessToken,
    /// The refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<RefreshToken>,
    /// When the access token expires, seconds since the epoch (`None`: unknown, valid until a 401).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// The granted scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// When the tokens were obtained.
    pub obtained_at: u64,
}

impl ServerEntry {
    /// Whether the access token can still be used at `now`.
    pub fn is_fresh(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|e| now + EXPIRY_MARGIN_SECS < e)
    }
}

/// The cache directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// An exclusive lock on one server's entry; released when dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

fn hash_name(key: &str) -> String {
    let d = Sha256::digest(key.as_bytes());
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// The store at `root`, or at `$PORTCULLIS_HOME`, or at the platform config dir + `portcullis`.
    pub fn open(root: Option<PathBuf>) -> Result<Self> {
        let root = match root {
            Some(r) => r,
            None => match std::env::var_os("PORTCULLIS_HOME").filter(|v| !v.is_empty()) {
                Some(h) => PathBuf::from(h),
                None => dirs::config_dir()
                    .ok_or_else(|| Error::Cache {
                        path: "<config dir>".into(),
                        reason: "no home or config directory is known".into(),
                    })?
                    .join("portcullis"),
            },
        };
        Ok(Self { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, sub: &str) -> Result<PathBuf> {
        let d = self.root.join(sub);
        create_private_dir(&self.root)?;
        create_private_dir(&d)?;
        Ok(d)
    }

    fn server_path(&self, server: &str, ext: &str) -> Result<PathBuf> {
        Ok(self
            .dir("servers")?
            .join(format!("{}.{ext}", hash_name(server))))
    }

    fn client_path(&self, issuer: &str) -> Result<PathBuf> {
        Ok(self
            .dir("clients")?
            .join(format!("{}.json", hash_name(issuer))))
    }

    /// The entry for `server`, if any.
    pub fn server(&self, server: &str) -> Result<Option<ServerEntry>> {
        let entry: Option<ServerEntry> = read_json(&self.server_path(server, "json")?)?;
        Ok(entry.filter(|e| e.server == server))
    }

    /// Saves an entry.
    pub fn save_server(&self, entry: &ServerEntry) -> Result<()> {
        write_json(&self.server_path(&entry.server, "json")?, entry)
    }

    /// Forgets a server. Returns whether there was an entry.
    pub fn remove_server(&self, server: &str) -> Result<bool> {
        remove(&self.server_path(server, "json")?)
    }

    /// Every server entry.
    pub fn servers(&self) -> Result<Vec<ServerEntry>> {
        let dir = self.dir("servers")?;
        let mut out = Vec::new();
        for item in fs::read_dir(&dir).map_err(|e| Error::cache(&dir, e))? {
            let path = item.map_err(|e| Error::cache(&dir, e))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                if let Some(entry) = read_json::<ServerEntry>(&path)? {
                    out.push(entry);
                }
            }
        }
        out.sort_by(|a, b| a.server.cmp(&b.server));
        Ok(out)
    }

    /// The registration for `issuer`; a file whose issuer differs (a hash collision or tampering) is ignored.
    pub fn registration(&self, issuer: &str) -> Result<Option<Registration>> {
        let reg: Option<Registration> = read_json(&self.client_path(issuer)?)?;
        Ok(reg.filter(|r| r.issuer == issuer))
    }

    /// Saves a registration under its issuer.
    pub fn save_registration(&self, reg: &Registration) -> Result<()> {
        write_json(&self.client_path(&reg.issuer)?, reg)
    }

    /// Forgets the registration for `issuer`.
    pub fn remove_registration(&self, issuer: &str) -> Result<bool> {
        remove(&self.client_path(issuer)?)
    }

    /// Takes the exclusive lock for `server`, waiting for another process that holds it.
    pub async fn lock(&self, server: &str) -> Result<Lock> {
        let path = self.server_path(server, "lock")?;
        tokio::task::spawn_blocking(move || {
            let file = private_options()
                .read(true)
                .write(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| Error::cache(&path, e))?;
            fs4::fs_std::FileExt::lock_exclusive(&file).map_err(|e| Error::cache(&path, e))?;
            Ok(Lock { _file: file })
        })
        .await
        .map_err(|e| Error::Cache {
            path: server.to_owned(),
            reason: e.to_string(),
        })?
    }
}

fn create_private_dir(d: &Path) -> Result<()> {
    if d.is_dir() {
        return Ok(());
    }
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(d).map_err(|e| Error::cache(d, e))
}

fn private_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::cache(path, format!("corrupt file ({e}); delete it"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::cache(path, e)),
    }
}

/// Writes `value` to a fresh 0600 temporary file beside `path`, syncs it, and renames it over `path`.
fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::cache(path, e))?;
    let tmp = path.with_extension(format!(
        "tmp.{}.{:x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = private_options().write(true).create_new(true).open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::cache(path, e)
    })
}

fn remove(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::cache(path, e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::token::AuthMethod;

    fn entry(server: &str) -> ServerEntry {
        ServerEntry {
            server: server.into(),
            resource: Some(server.into()),
            issuer: "https://as".into(),
            token_endpoint: "https://as/token".into(),
            revocation_endpoint: None,
            access_token: AccessToken::new("at"),
            refresh_token: Some(RefreshToken::new("rt")),
            expires_at: Some(1000),
            scope: Some("a".into()),
            obtained_at: 0,
        }
    }

    #[test]
    fn round_trip_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(Some(dir.path().join("home"))).unwrap();
        store.save_server(&entry("https://mcp/a")).unwrap();
        assert_eq!(
            store.server("https://mcp/a").unwrap(),
            Some(entry("https://mcp/a"))
        );
        assert_eq!(store.server("https://mcp/b").unwrap(), None);
        assert_eq!(store.servers().unwrap().len(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let f = store.server_path("https://mcp/a", "json").unwrap();
            assert_eq!(
                fs::metadata(&f).unwrap().permissions().mode() & 0o777,
                0o600
            );
            assert_eq!(
                fs::metadata(store.root()).unwrap().permissions().mode() & 0o777,
                0o700
            );
        }
        let no_tmp = fs::read_dir(store.dir("servers").unwrap())
            .unwrap()
            .all(|e| !e.unwrap().file_name().to_string_lossy().contains("tmp"));
        assert!(no_tmp);
        assert!(store.remove_server("https://mcp/a").unwrap());
        assert!(!store.remove_server("https://mcp/a").unwrap());
    }

    #[test]
    fn registrations_are_bound_to_their_issuer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(Some(dir.path().to_owned())).unwrap();
        let reg = Registration {
            issuer: "https://as1".into(),
            client_id: "c".into(),
            client_secret: None,
            auth_method: AuthMethod::None,
            redirect_uri: Some("http://127.0.0.1:5/callback".into()),
            kind: crate::registration::Kind::Dynamic,
            secret_expires_at: None,
        };
        store.save_registration(&reg).unwrap();
        assert_eq!(
            store.registration("https://as1").unwrap(),
            Some(reg.clone())
        );
        assert_eq!(store.registration("https://as2").unwrap(), None);
        // A file planted under another issuer's name is not used for it.
        fs::copy(
            store.client_path("https://as1").unwrap(),
            store.client_path("https://as2").unwrap(),
        )
        .unwrap();
        assert_eq!(store.registration("https://as2").unwrap(), None);
    }

    #[test]
    fn freshness_has_a_margin() {
        let e = entry("x");
        assert!(e.is_fresh(900));
        assert!(!e.is_fresh(980));
        assert!(ServerEntry {
            expires_at: None,
            ..e
        }
        .is_fresh(u64::MAX - 100));
    }

    #[tokio::test]
    async fn lock_is_exclusive_between_handles() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(Some(dir.path().to_owned())).unwrap();
        let held = store.lock("s").await.unwrap();
        let s2 = store.clone();
        let waiter = tokio::spawn(async move { s2.lock("s").await.map(|_| ()) });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!waiter.is_finished());
        drop(held);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
