//! PostgreSQL-only checks: several instances on one database, a database that is down, slow, or drops its
//! connections. Each needs `TEST_POSTGRES_URL` except the unreachable-server check.

use crate::{pg_options, postgres_url, PgSchema};
use portcullis_authz::secret::TokenHash;
use portcullis_authz::store::*;
use portcullis_store::{open, StoreOptions};
use sqlx::{Connection, PgConnection};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NOW: i64 = 1_700_000_000;

macro_rules! require_postgres {
    () => {
        match postgres_url() {
            Some(base) => base,
            None => {
                eprintln!("note: TEST_POSTGRES_URL is not set; PostgreSQL-only check not run");
                return;
            }
        }
    };
}

async fn seed(s: &dyn Storage, code: &str) {
    s.insert_client(&ClientRecord {
        client_id: "c1".into(),
        secret_hash: None,
        metadata_json: "{}".into(),
        created_at: NOW,
        origin: ClientOrigin::Registered,
        introspection: None,
    })
    .await
    .unwrap();
    s.insert_user(&UserRecord {
        id: "u1".into(),
        username: "alice".into(),
        password_hash: "$argon2id$x".into(),
        created_at: NOW,
    })
    .await
    .unwrap();
    s.insert_code(&CodeRecord {
        code_hash: TokenHash::of(code),
        client_id: "c1".into(),
        user_id: "u1".into(),
        redirect_uri: "http://localhost/cb".into(),
        code_challenge: "ch".into(),
        scope: "mcp:tools".into(),
        resource: "http://x/mcp".into(),
        created_at: NOW,
        expires_at: NOW + 60,
        used_at: None,
        grant_id: None,
        identity: DisplayIdentity::password_user("alice"),
    })
    .await
    .unwrap();
}

fn grant(id: &str) -> GrantRecord {
    GrantRecord {
        id: id.into(),
        client_id: "c1".into(),
        user_id: "u1".into(),
        scope: "mcp:tools".into(),
        resource: "http://x/mcp".into(),
        created_at: NOW,
        expires_at: NOW + 1000,
        revoked_at: None,
        identity: DisplayIdentity::password_user("alice"),
    }
}

/// Four instances start at once on an empty schema: migrations apply once (advisory lock), all end with the same
/// single active key, a code raced across two of them is redeemed once, and a revocation made by one shows up
/// in another's feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_start_together() {
    let base = require_postgres!();
    let schema = PgSchema::create(&base).await;
    let url = schema.url();
    let mut starts = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        starts.push(tokio::spawn(async move {
            let store = open(&url, &pg_options()).await.unwrap();
            let rng = portcullis_authz::OsRandom;
            let ring = portcullis_authz::keys::load_or_create(store.as_ref(), &rng, NOW)
                .await
                .unwrap();
            (store, ring.active_kid().to_owned())
        }));
    }
    let mut instances: Vec<Arc<dyn Storage>> = Vec::new();
    let mut kids = Vec::new();
    for s in starts {
        let (store, kid) = s.await.unwrap();
        instances.push(store);
        kids.push(kid);
    }
    kids.dedup();
    assert_eq!(kids.len(), 1, "every instance signs with the same key");
    let (a, b) = (instances[0].clone(), instances[1].clone());
    assert_eq!(a.signing_keys(NOW).await.unwrap().len(), 1);

    seed(a.as_ref(), "code").await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            s.redeem_code(&TokenHash::of("code"), NOW, &grant(&format!("g{i}")), None)
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        if t.await.unwrap() == Transition::Won {
            won += 1;
        }
    }
    assert_eq!(won, 1, "exactly one redemption across instances");

    let gid = a
        .revoke_grant_of_code(&TokenHash::of("code"), NOW, NOW + 100)
        .await
        .unwrap()
        .unwrap();
    let feed = b.revocations_since(0, NOW).await.unwrap();
    assert_eq!(feed.len(), 1);
    assert_eq!(
        (feed[0].kind, feed[0].value.as_str()),
        (RevokedKind::Grant, gid.as_str())
    );
    drop((a, b, instances));
    drop(schema);
}

/// Nothing listens on the port: `open` reports `Unavailable` (503 upstream), within the acquire timeout.
#[tokio::test]
async fn unreachable_server_is_unavailable() {
    let options = StoreOptions {
        acquire_timeout_ms: 2000,
        ..StoreOptions::default()
    };
    let started = Instant::now();
    let err = open("postgres://postgres:hunter2@127.0.0.1:1/test", &options)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains("hunter2"));
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A statement stuck behind a lock is cancelled by the statement timeout and reported as `Unavailable`; once
/// the lock is gone the same call succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_database_is_unavailable_then_recovers() {
    let base = require_postgres!();
    let schema = PgSchema::create(&base).await;
    let options = StoreOptions {
        statement_timeout_ms: 300,
        ..pg_options()
    };
    let store = open(&schema.url(), &options).await.unwrap();
    seed(store.as_ref(), "slow").await;

    let mut blocker = PgConnection::connect(&schema.url()).await.unwrap();
    let mut tx = blocker.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM authorization_codes FOR UPDATE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let started = Instant::now();
    let err = store
        .redeem_code(&TokenHash::of("slow"), NOW, &grant("g"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    tx.rollback().await.unwrap();
    blocker.close().await.unwrap();

    assert_eq!(
        store
            .redeem_code(&TokenHash::of("slow"), NOW, &grant("g"), None)
            .await
            .unwrap(),
        Transition::Won
    );
    drop(store);
    drop(schema);
}

/// The server drops every connection of the pool (a restart or failover): the next calls succeed without
/// reopening the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_after_connections_are_terminated() {
    let base = require_postgres!();
    let schema = PgSchema::create(&base).await;
    let store = open(&schema.url_named(), &pg_options()).await.unwrap();
    seed(store.as_ref(), "code").await;
    store.ping().await.unwrap();

    let mut admin = PgConnection::connect(&base).await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1) t",
    )
    .bind(schema.name())
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(killed >= 1);
    admin.close().await.unwrap();

    store.ping().await.unwrap();
    assert_eq!(
        store
            .redeem_code(&TokenHash::of("code"), NOW, &grant("g"), None)
            .await
            .unwrap(),
        Transition::Won
    );
    assert!(store.client("c1").await.unwrap().is_some());
    drop(store);
    drop(schema);
}

/// The same races under SERIALIZABLE (what CockroachDB always runs): the losers now fail with serialization
/// errors (40001), which the store retries, so every caller still gets `Won` or `AlreadyUsed`, never an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serializable_isolation_is_retried() {
    let base = require_postgres!();
    for check in 0..3 {
        let schema = PgSchema::create(&base).await;
        let mut url = url::Url::parse(&schema.url()).unwrap();
        url.query_pairs_mut()
            .append_pair("options", "-c default_transaction_isolation=serializable");
        let store = open(url.as_str(), &pg_options()).await.unwrap();
        match check {
            0 => crate::contract::code_single_use_under_concurrency(store).await,
            1 => crate::contract::refresh_rotation_under_concurrency(store).await,
            _ => crate::contract::keys_first_start_race(store).await,
        }
        drop(schema);
    }
}
