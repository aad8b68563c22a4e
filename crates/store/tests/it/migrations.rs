//! Upgrades: a database written by an older Portcullis, migrated by `open`, keeps what it promised. Migration
//! 0003 (refresh families on the grant row) must keep every live refresh token working; after 0005 (identity
//! claims) the rows of password logins written before it name their user; 0007 (client reaping) classifies the
//! clients stored before it; after 0009 (consent per resource) an earlier approval is for no resource but still
//! counts as the user having approved the client.

use portcullis_authz::secret::TokenHash;
use portcullis_authz::store::{ClientOrigin, DisplayIdentity};
use portcullis_store::{open, StoreOptions};
use sqlx::migrate::Migrator;

/// The rows an older version wrote: a grant with one rotated and one live refresh token (legacy tokens are
/// plain random strings, stored by hash).
const LEGACY_ROWS: &[&str] = &[
    "INSERT INTO clients (client_id, metadata, created_at) VALUES ('c1', '{}', 1)",
    "INSERT INTO users (id, username, password_hash, created_at) VALUES ('u1', 'alice', 'x', 1)",
    "INSERT INTO grants (id, client_id, user_id, scope, resource, created_at, expires_at) \
     VALUES ('g1', 'c1', 'u1', 'mcp:tools', 'http://x/mcp', 1, 1000)",
    "INSERT INTO sessions (id_hash, user_id, csrf_key, created_at, expires_at) \
     VALUES ('legacy-session', 'u1', 'k', 1, 1000)",
    "INSERT INTO authorization_codes (code_hash, client_id, user_id, redirect_uri, code_challenge, scope, \
     resource, created_at, expires_at) VALUES ('legacy-code', 'c1', 'u1', '', 'ch', 'mcp:tools', 'http://x/mcp', 1, 60)",
    // For 0007: a metadata document's row, a client a user approved (its grant purged since), an unused one.
    "INSERT INTO clients (client_id, metadata, created_at) VALUES ('https://app.example/c.json', '{}', 1)",
    "INSERT INTO clients (client_id, metadata, created_at) VALUES ('c2', '{}', 1)",
    "INSERT INTO consents (user_id, client_id, scope, updated_at) VALUES ('u1', 'c2', 'mcp:tools', 7)",
    "INSERT INTO clients (client_id, metadata, created_at) VALUES ('c3', '{}', 1)",
];

fn legacy_tokens() -> [String; 2] {
    [
        format!(
            "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at, used_at) \
             VALUES ('{}', 'g1', 1, 500, 2)",
            TokenHash::of("legacy-rotated").as_str()
        ),
        format!(
            "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) \
             VALUES ('{}', 'g1', 2, 600)",
            TokenHash::of("legacy-live").as_str()
        ),
    ]
}

/// `all` without the migrations from 0003 on.
fn before_families(all: Migrator) -> Migrator {
    let mut m = all;
    m.migrations = m
        .migrations
        .iter()
        .filter(|m| m.version < 3)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    m
}

async fn check_migrated(url: &str, options: &StoreOptions) {
    let s = open(url, options).await.unwrap();
    let (family, grant) = s
        .refresh_family(&TokenHash::of("legacy-live"))
        .await
        .unwrap()
        .expect("the live legacy token names its family");
    assert_eq!(grant.id, "g1");
    // A legacy token is its own handle and secret (see `portcullis_authz::token::refresh`).
    assert_eq!(family.token_hash, TokenHash::of("legacy-live"));
    assert_eq!((family.issued_at, family.expires_at), (2, 600));
    // 0006: no retired token is kept for it (a grace period starts with its first rotation).
    assert_eq!(family.previous, None);
    assert!(s
        .refresh_family(&TokenHash::of("legacy-rotated"))
        .await
        .unwrap()
        .is_none());
    // 0005: what a password login wrote before it reads back with the user name to show.
    let alice = DisplayIdentity::password_user("alice");
    assert_eq!(grant.identity, alice);
    let session = s
        .session(&TokenHash::from_stored("legacy-session".into()), 2)
        .await
        .unwrap()
        .expect("the session survives");
    assert_eq!(session.identity, alice);
    let code = s
        .code(&TokenHash::from_stored("legacy-code".into()))
        .await
        .unwrap()
        .expect("the code survives");
    assert_eq!(code.identity, alice);
    // 0007: a URL client id is a metadata document's row, every other was registered; the last use comes from
    // the grant (its live token's issue time), else from a user's approval, else there is none.
    let usage: Vec<(String, ClientOrigin, Option<i64>)> = (s.client_usage(2).await.unwrap())
        .into_iter()
        .map(|u| (u.client.client_id, u.client.origin, u.last_used_at))
        .collect();
    let registered = ClientOrigin::Registered;
    assert_eq!(
        usage,
        [
            ("c1".to_owned(), registered, Some(2)),
            ("c2".to_owned(), registered, Some(7)),
            ("c3".to_owned(), registered, None),
            (
                "https://app.example/c.json".to_owned(),
                ClientOrigin::MetadataDocument,
                None
            ),
        ]
    );
    // 0009: the approval stored before it names no resource, so the user is asked again for each one.
    assert!(s.has_consented("u1", "c2").await.unwrap());
    assert_eq!(s.consent("u1", "c2", "http://x/mcp").await.unwrap(), None);
}

#[tokio::test]
async fn sqlite_live_legacy_refresh_tokens_survive_0003() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    before_families(sqlx::migrate!("./migrations/sqlite"))
        .run(&pool)
        .await
        .unwrap();
    for sql in LEGACY_ROWS
        .iter()
        .copied()
        .chain(legacy_tokens().iter().map(String::as_str))
    {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;
    check_migrated(&url, &StoreOptions::default()).await;
}

#[tokio::test]
async fn postgres_live_legacy_refresh_tokens_survive_0003() {
    let Some(base) = crate::postgres_url() else {
        eprintln!("note: TEST_POSTGRES_URL is not set; the PostgreSQL migration test did not run");
        return;
    };
    let schema = crate::PgSchema::create(&base).await;
    let pool = sqlx::PgPool::connect(&schema.url()).await.unwrap();
    before_families(sqlx::migrate!("./migrations/postgres"))
        .run(&pool)
        .await
        .unwrap();
    for sql in LEGACY_ROWS
        .iter()
        .copied()
        .chain(legacy_tokens().iter().map(String::as_str))
    {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;
    check_migrated(&schema.url(), &crate::pg_options()).await;
    drop(schema);
}
