//! The refresh grace period (`--refresh-grace-period`, default 30 s; RFC 9700 §4.14.2 rotation made race-safe)
//! against the real binary: a retry after a lost response gets the same successor; 50 concurrent refreshes of
//! one token, on one SQLite instance and split across two PostgreSQL instances, all get 200 with one and the
//! same successor and leave the family alive; a replay after the window, or of an older generation, revokes
//! the family; a `kill -9` between the first answer and the retry loses nothing that was answered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::instances;
use crate::support::*;
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

/// The refresh token of a 200 answer.
fn refresh_token_of(status: StatusCode, body: &Value) -> String {
    assert_eq!(status, StatusCode::OK, "{body}");
    body["refresh_token"].as_str().unwrap().to_owned()
}

fn assert_invalid_grant(status: StatusCode, body: &Value) {
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
}

#[tokio::test]
async fn a_retry_after_a_lost_response_gets_the_same_successor() {
    let s = start();
    let t = grant(&s, "").await;
    let (status, first) = refresh(&s, &t.client_id, &t.refresh).await;
    let rt2 = refresh_token_of(status, &first);
    // The client never saw `first` and retries with the token it has.
    let (status, retry) = refresh(&s, &t.client_id, &t.refresh).await;
    assert_eq!(refresh_token_of(status, &retry), rt2, "the same successor");
    let access = retry["access_token"].as_str().unwrap();
    assert_ne!(
        Some(access),
        first["access_token"].as_str(),
        "a fresh access token"
    );
    assert_eq!(mcp_status(&s, access).await, StatusCode::OK);
    // Another client presenting it is refused, and revokes nothing.
    let other = register_public(&s).await;
    let (status, body) = refresh(&s, &other, &t.refresh).await;
    assert_invalid_grant(status, &body);
    // The family is whole: the successor rotates as usual.
    let (status, third) = refresh(&s, &t.client_id, &rt2).await;
    let rt3 = refresh_token_of(status, &third);
    assert_ne!(rt3, rt2);
    assert_eq!(mcp_status(&s, access).await, StatusCode::OK);
}

/// The first token is two generations old once its successor has rotated: presenting it, even within the
/// window, is reuse and revokes the family (its newest refresh and access tokens die).
#[tokio::test]
async fn a_replay_of_an_older_generation_revokes_the_family() {
    let s = start();
    let t = grant(&s, "").await;
    let (status, body) = refresh(&s, &t.client_id, &t.refresh).await;
    let rt2 = refresh_token_of(status, &body);
    let (status, body) = refresh(&s, &t.client_id, &rt2).await;
    let rt3 = refresh_token_of(status, &body);
    let at3 = body["access_token"].as_str().unwrap().to_owned();
    let (status, body) = refresh(&s, &t.client_id, &t.refresh).await;
    assert_invalid_grant(status, &body);
    let (status, body) = refresh(&s, &t.client_id, &rt3).await;
    assert_invalid_grant(status, &body);
    assert!(
        refused_within(&s, &at3, Duration::from_secs(3)).await,
        "the family's access token still works after a reuse"
    );
}

/// With a 1-second window: the rotated token presented 2 s later is reuse and revokes the family.
#[tokio::test]
async fn a_replay_after_the_window_revokes_the_family() {
    let s = start_with(&["--refresh-grace-period", "1"]);
    let t = grant(&s, "").await;
    let (status, body) = refresh(&s, &t.client_id, &t.refresh).await;
    let rt2 = refresh_token_of(status, &body);
    let at2 = body["access_token"].as_str().unwrap().to_owned();
    // Times are whole seconds: two of them put the retry past `rotation + 1` whatever the rounding.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = refresh(&s, &t.client_id, &t.refresh).await;
    assert_invalid_grant(status, &body);
    let (status, body) = refresh(&s, &t.client_id, &rt2).await;
    assert_invalid_grant(status, &body);
    assert!(
        refused_within(&s, &at2, Duration::from_secs(3)).await,
        "the family's access token still works after a late replay"
    );
}

/// Of 50 answers (status, body): asserts each is 200 and returns the one successor they all carry.
fn one_successor(answers: Vec<(u16, Value)>) -> String {
    let mut successors = BTreeSet::new();
    for (status, body) in &answers {
        assert_eq!(*status, 200, "a concurrent refresh was refused: {body}");
        successors.insert(body["refresh_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(answers.len(), 50);
    assert_eq!(
        successors.len(),
        1,
        "one and the same successor: {successors:?}"
    );
    successors.pop_first().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_refreshes_on_one_sqlite_instance_share_one_successor() {
    let s = start();
    let t = grant(&s, "").await;
    let answers = join_all((0..50).map(|_| async {
        let (status, body) = refresh(&s, &t.client_id, &t.refresh).await;
        (status.as_u16(), body)
    }))
    .await;
    let successor = one_successor(answers);
    let (status, body) = refresh(&s, &t.client_id, &successor).await;
    let next = refresh_token_of(status, &body);
    assert_ne!(next, successor);
    assert_eq!(
        mcp_status(&s, &t.access).await,
        StatusCode::OK,
        "the family is alive"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_refreshes_across_two_postgres_instances_share_one_successor() {
    let Some(admin) = instances::postgres_url("refresh grace across instances") else {
        return;
    };
    let db = instances::TempDb::create(&admin).await;
    instances::add_user(&db.url);
    let (p1, p2) = (instances::free_port(), instances::free_port());
    let issuer = format!("http://127.0.0.1:{p1}");
    let extra = ["--issuer", issuer.as_str()];
    let a = instances::Server::start(&db.url, p1, &extra);
    let b = instances::Server::start(&db.url, p2, &extra);
    let http = instances::http(false);
    let t = instances::full_flow(&issuer, &a.base).await;
    let answers = join_all((0..50).map(|i| {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let (http, t) = (&http, &t);
        async move {
            let (status, body, _) = instances::refresh(http, base, &t.client_id, &t.refresh)
                .await
                .unwrap();
            (status, body)
        }
    }))
    .await;
    let successor = one_successor(answers);
    // The family is alive on both instances: the successor rotates at B, and its successor at A.
    let (status, body, _) = instances::refresh(&http, &b.base, &t.client_id, &successor)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let next = body["refresh_token"].as_str().unwrap();
    let (status, body, _) = instances::refresh(&http, &a.base, &t.client_id, next)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(instances::mcp_status(&http, &a.base, &t.access).await, 200);
}

/// The server answers a rotation, dies (`kill -9`) before the client's retry, and restarts on the same
/// database: the retry gets the successor that was answered, and that successor works.
async fn kill_9_between_answer_and_retry(database: &str) {
    instances::add_user(database);
    let port = instances::free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let args = ["--issuer", issuer.as_str()];
    let server = instances::Server::start(database, port, &args);
    let http = instances::http(false);
    let t = instances::full_flow(&issuer, &server.base).await;
    let (status, body, _) = instances::refresh(&http, &server.base, &t.client_id, &t.refresh)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let acknowledged = body["refresh_token"].as_str().unwrap().to_owned();
    server.kill9();

    let server = instances::Server::start(database, port, &args);
    let (status, body, _) = instances::refresh(&http, &server.base, &t.client_id, &t.refresh)
        .await
        .unwrap();
    assert_eq!(status, 200, "the retry after the restart: {body}");
    assert_eq!(body["refresh_token"].as_str(), Some(acknowledged.as_str()));
    let (status, body, _) = instances::refresh(&http, &server.base, &t.client_id, &acknowledged)
        .await
        .unwrap();
    assert_eq!(
        status, 200,
        "the acknowledged successor after the restart: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_between_answer_and_retry_loses_nothing_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("portcullis.db").display());
    kill_9_between_answer_and_retry(&database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_between_answer_and_retry_loses_nothing_on_postgres() {
    let Some(admin) = instances::postgres_url("kill -9 between answer and retry") else {
        return;
    };
    let db = instances::TempDb::create(&admin).await;
    kill_9_between_answer_and_retry(&db.url).await;
}
