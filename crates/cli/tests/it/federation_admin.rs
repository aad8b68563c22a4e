//! The federation admin commands: `user link` / `unlink` / `list` with identities at identity providers, and
//! `vault rotate-key` (key file and `PORTCULLIS_VAULT_KEY`), run as the real binary on a SQLite database that
//! the test also opens through the store.

use crate::support::{add_user, bin, PASSWORD};
use portcullis_authz::random::OsRandom;
use portcullis_authz::secret::TokenHash;
use portcullis_authz::store::*;
use portcullis_authz::vault::{self, Vault, VaultError};
use portcullis_server::vault_key::{self, KeySource, VAULT_KEY_ENV};
use portcullis_store::StoreOptions;
use std::process::{Command, Output};
use std::sync::Arc;

const NOW: i64 = 1_700_000_000;
const TOKEN: &[u8] =
    br#"{"access_token":"upstream-access-token","refresh_token":"upstream-refresh"}"#;
const PENDING: &[u8] = b"nonce + PKCE verifier of a pending sign-in";

/// Runs `portcullis ARGS` without any vault key in its environment unless `env_key` is given.
fn run(args: &[&str], env_key: Option<&str>) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args).env_remove(VAULT_KEY_ENV);
    if let Some(key) = env_key {
        cmd.env(VAULT_KEY_ENV, key);
    }
    cmd.output().unwrap()
}

fn ok(args: &[&str], env_key: Option<&str>) -> String {
    let out = run(args, env_key);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{args:?} failed: {stdout}{stderr}");
    stdout
}

fn fails(args: &[&str]) -> String {
    let out = run(args, None);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn store(db: &str) -> Arc<dyn Storage> {
    portcullis_store::open(db, &StoreOptions::default())
        .await
        .unwrap()
}

fn fresh_db() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("portcullis.db").display());
    (dir, db)
}

/// The line of `user list` for `name`.
fn line_of<'a>(list: &'a str, name: &str) -> &'a str {
    list.lines()
        .find(|l| l.split('\t').next() == Some(name))
        .unwrap_or_else(|| panic!("no line for {name} in:\n{list}"))
}

#[tokio::test]
async fn link_unlink_and_list_identities() {
    let (_dir, db) = fresh_db();
    add_user(&db, "alice", PASSWORD);
    add_user(&db, "bob", PASSWORD);
    let carol = UserRecord {
        id: "u-carol".into(),
        username: "carol".into(),
        password_hash: String::new(),
        created_at: NOW,
    };
    let corp = IdentityRecord {
        provider: "corp".into(),
        subject: "1234".into(),
        user_id: carol.id.clone(),
        email: Some("carol@example.com".into()),
        email_verified: true,
        username: Some("carol".into()),
        groups: vec![],
        created_at: NOW,
        last_login_at: NOW,
    };
    store(&db)
        .await
        .create_user_with_identity(&carol, &corp)
        .await
        .unwrap();
    let d = ["--database", db.as_str()];
    let linked = ok(
        &[
            &[
                "user",
                "link",
                "alice",
                "--idp",
                "corp",
                "--subject",
                "S-alice",
            ][..],
            &d,
        ]
        .concat(),
        None,
    );
    assert!(
        linked.contains("linked alice to corp subject S-alice"),
        "{linked}"
    );
    for (args, why) in [
        (
            vec![
                "user",
                "link",
                "bob",
                "--idp",
                "corp",
                "--subject",
                "S-alice",
            ],
            "corp subject S-alice is already linked to user alice",
        ),
        (
            vec!["user", "link", "bob", "--idp", "corp", "--subject", "1234"],
            "already linked to user carol",
        ),
        (
            vec!["user", "link", "nobody", "--idp", "corp", "--subject", "X"],
            "no user named nobody",
        ),
        (
            vec![
                "user",
                "link",
                "alice",
                "--idp",
                "corp",
                "--subject",
                "other",
            ],
            "alice is already linked to corp subject S-alice",
        ),
        (
            vec![
                "user",
                "link",
                "alice",
                "--idp",
                "Corp_SSO",
                "--subject",
                "x",
            ],
            "a provider name is 1 to 32 of a-z, 0-9 and -",
        ),
        (
            vec!["user", "unlink", "bob", "--idp", "corp"],
            "bob is not linked to corp",
        ),
    ] {
        let mut args = args;
        args.extend(d);
        let err = fails(&args);
        assert!(err.contains(why), "{args:?}: {err}");
    }

    let list = ok(&[&["user", "list"][..], &d].concat(), None);
    let carol_line = line_of(&list, "carol");
    assert!(
        carol_line.contains("(corp: 1234, carol@example.com)"),
        "{carol_line}"
    );
    assert!(carol_line.contains("no password"), "{carol_line}");
    assert!(
        line_of(&list, "alice").contains("(corp: S-alice)"),
        "{list}"
    );
    assert!(!line_of(&list, "bob").contains("corp"), "{list}");

    let out = ok(
        &[&["user", "unlink", "alice", "--idp", "corp"][..], &d].concat(),
        None,
    );
    assert!(out.contains("unlinked alice from corp"), "{out}");
    let list = ok(&[&["user", "list"][..], &d].concat(), None);
    assert!(!line_of(&list, "alice").contains("corp"), "{list}");
    // The identity is free again.
    ok(
        &[
            &[
                "user",
                "link",
                "bob",
                "--idp",
                "corp",
                "--subject",
                "S-alice",
            ][..],
            &d,
        ]
        .concat(),
        None,
    );
    let list = ok(&[&["user", "list"][..], &d].concat(), None);
    assert!(line_of(&list, "bob").contains("(corp: S-alice)"), "{list}");
}

/// Writes one upstream token row and one pending sign-in, sealed by `vault`.
async fn seal_rows(db: &str, vault: &Vault) {
    let s = store(db).await;
    s.insert_user(&UserRecord {
        id: "u1".into(),
        username: "carol".into(),
        password_hash: String::new(),
        created_at: NOW,
    })
    .await
    .unwrap();
    let (key_id, sealed) = vault
        .seal(TOKEN, &vault::upstream_token_aad("u1", "corp"), &OsRandom)
        .unwrap();
    s.put_upstream_tokens(&UpstreamTokenRecord {
        user_id: "u1".into(),
        provider: "corp".into(),
        key_id,
        sealed,
        expires_at: Some(NOW + 3600),
        refreshing_until: 0,
        updated_at: NOW,
    })
    .await
    .unwrap();
    let state_hash = TokenHash::of("state-1");
    let (key_id, sealed) = vault
        .seal(PENDING, &vault::upstream_state_aad(&state_hash), &OsRandom)
        .unwrap();
    s.insert_upstream_state(&UpstreamStateRecord {
        state_hash,
        provider: "corp".into(),
        key_id,
        sealed,
        expires_at: i64::MAX,
    })
    .await
    .unwrap();
}

/// Reads both rows back and opens them with `vault`; returns the key ids they are stored under.
async fn open_rows(db: &str, vault: &Vault) -> Result<(), VaultError> {
    let s = store(db).await;
    let t = s.upstream_tokens("u1", "corp").await.unwrap().unwrap();
    let plain = vault.open(
        &t.key_id,
        &t.sealed,
        &vault::upstream_token_aad("u1", "corp"),
    )?;
    assert_eq!(plain.as_slice(), TOKEN);
    let rows = s
        .sealed_rows(SealedTable::UpstreamStates, None, 10)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let plain = vault.open(&rows[0].key_id, &rows[0].sealed, &rows[0].key.aad())?;
    assert_eq!(plain.as_slice(), PENDING);
    Ok(())
}

#[tokio::test]
async fn rotate_key_with_a_key_file_reencrypts_every_row() {
    let (dir, db) = fresh_db();
    let first = vault_key::load(None, None, &db, true).unwrap();
    let path = dir.path().join(vault_key::GENERATED_KEY_FILE);
    assert_eq!(first.source, KeySource::Generated(path.clone()));
    let old = first.vault;
    seal_rows(&db, &old).await;

    let out = ok(&["vault", "rotate-key", "--database", &db], None);
    assert!(
        out.contains("1 upstream token rows, 1 pending sign-ins"),
        "{out}"
    );
    assert!(out.contains("now holds only the key"), "{out}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 1, "only the new key is left: {text}");
    let new = Vault::from_text(&text).unwrap();
    assert_ne!(new.active_id(), old.active_id());
    assert!(out.contains(new.active_id().as_str()), "{out}");
    // The new key alone opens every row; the old key alone opens none.
    open_rows(&db, &new).await.unwrap();
    assert!(matches!(
        open_rows(&db, &old).await,
        Err(VaultError::UnknownKey(_))
    ));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Nothing left to do: a reseal changes nothing.
    let out = ok(
        &["vault", "rotate-key", "--reseal", "--database", &db],
        None,
    );
    assert!(
        out.contains("0 upstream token rows, 0 pending sign-ins (2 rows were already under it)"),
        "{out}"
    );
}

#[tokio::test]
async fn rotate_key_with_the_environment_variable_hands_over_the_steps() {
    let (dir, db) = fresh_db();
    let old_text = vault::VaultKey::generate(&OsRandom).to_text();
    let old = Vault::from_text(old_text.expose()).unwrap();
    seal_rows(&db, &old).await;

    let out = ok(
        &["vault", "rotate-key", "--database", &db],
        Some(old_text.expose()),
    );
    assert!(out.contains("nothing was changed yet"), "{out}");
    open_rows(&db, &old).await.unwrap();
    let value = out
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{VAULT_KEY_ENV}=")))
        .unwrap_or_else(|| panic!("no new value in: {out}"));
    assert!(
        value.ends_with(&format!(",{}", old_text.expose())),
        "{value}"
    );
    let new_text = value.split(',').next().unwrap();

    let out = ok(
        &["vault", "rotate-key", "--reseal", "--database", &db],
        Some(value),
    );
    assert!(
        out.contains("1 upstream token rows, 1 pending sign-ins"),
        "{out}"
    );
    assert!(out.contains("to that key alone"), "{out}");
    open_rows(&db, &Vault::from_text(new_text).unwrap())
        .await
        .unwrap();
    // No key file was written: the keys live in the environment only.
    assert!(!dir.path().join(vault_key::GENERATED_KEY_FILE).exists());
    let err = fails(&["vault", "rotate-key", "--database", &db]);
    assert!(err.contains("no vault key"), "{err}");
}
