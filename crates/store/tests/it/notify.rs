//! The revocation feed's push channel (`GrantStore::listen_revocations`): none on SQLite; on PostgreSQL a
//! `LISTEN` connection that hears every revocation write with its sequence number, and reports its own loss.
//! The PostgreSQL check uses a database of its own: notices go to every listener of a database, whatever the
//! schema, so the shared test database would mix other tests' notices in.

use crate::{pg_options, postgres_url};
use portcullis_authz::secret::TokenHash;
use portcullis_authz::store::*;
use portcullis_store::open;
use sqlx::{Connection, PgConnection};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const NOW: i64 = 1_700_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_has_no_push_channel() {
    let (store, _dir) = crate::sqlite().await;
    assert!(store.listen_revocations().await.unwrap().is_none());
}

/// The next notice, within 10 s.
async fn next(listener: &mut Box<dyn RevocationListener>) -> Result<Option<i64>, StoreError> {
    tokio::time::timeout(Duration::from_secs(10), listener.next())
        .await
        .expect("no notice within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pushes_each_revocation_and_reports_a_lost_listener() {
    let Some(base) = postgres_url() else {
        eprintln!("note: TEST_POSTGRES_URL is not set; PostgreSQL-only check not run");
        return;
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("pc_notify_{}_{nanos}", std::process::id());
    let mut admin = PgConnection::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(&format!("/{name}"));
    // Runs the checks on a task, then drops the database even when one failed.
    let outcome = tokio::spawn(checks(base.clone(), url.to_string(), name.clone())).await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn checks(base: String, url: String, database: String) {
    let s = open(&url, &pg_options()).await.unwrap();
    let mut listener = s
        .listen_revocations()
        .await
        .unwrap()
        .expect("PostgreSQL has a push channel");

    // Each kind of revocation write notifies, naming the newest sequence number of the feed.
    s.revoke_access_token("jti-1", NOW + 60).await.unwrap();
    let feed = s.revocations_since(0, NOW).await.unwrap();
    assert_eq!(next(&mut listener).await.unwrap(), Some(feed[0].seq));
    crate::contract::seed_code(s.as_ref(), "code").await;
    let redeemed = s
        .redeem_code(
            &TokenHash::of("code"),
            NOW,
            &crate::contract::grant("g1"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(redeemed, Transition::Won);
    assert!(s.revoke_grant("g1", NOW, NOW + 60).await.unwrap());
    let feed = s.revocations_since(feed[0].seq, NOW).await.unwrap();
    assert_eq!(feed.len(), 1);
    assert_eq!(next(&mut listener).await.unwrap(), Some(feed[0].seq));
    // A revocation that changes nothing (the grant is already revoked) writes no entry and so no notice: the
    // next notice is the next real revocation's.
    assert!(!s.revoke_grant("g1", NOW, NOW + 60).await.unwrap());
    s.revoke_access_token("jti-2", NOW + 60).await.unwrap();
    let newest = feed[0].seq + 1;
    assert_eq!(next(&mut listener).await.unwrap(), Some(newest));

    // The listening connection, told apart by its `application_name`, terminated: the listener says so.
    let mut admin = PgConnection::connect(&base).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND application_name = 'portcullis-revocations'",
    )
    .bind(&database)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, [true]);
    assert!(matches!(
        next(&mut listener).await,
        Err(StoreError::Unavailable(_))
    ));
    // A new one hears the writes again.
    let mut listener = s.listen_revocations().await.unwrap().unwrap();
    s.revoke_access_token("jti-3", NOW + 60).await.unwrap();
    assert_eq!(next(&mut listener).await.unwrap(), Some(newest + 1));
}
