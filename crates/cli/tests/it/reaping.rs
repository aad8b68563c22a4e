//! Dead registrations: `portcullis clients list` after a real flow, and the running server deleting the clients
//! that never obtained a token or went idle without a live grant (short `--tokenless-client-ttl` and
//! `--idle-client-ttl`), never an administrator's client. On SQLite always, on PostgreSQL when
//! `TEST_POSTGRES_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::instances::*;
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// `portcullis clients list --database DB [extra]`: its standard output.
fn clients_list(database: &str, extra: &[&str]) -> String {
    let out = Command::new(bin())
        .args(["clients", "list", "--database", database])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "clients list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `clients list --json`, by client id.
fn listed(database: &str) -> std::collections::BTreeMap<String, Value> {
    let all: Vec<Value> = serde_json::from_str(&clients_list(database, &["--json"])).unwrap();
    all.into_iter()
        .map(|c| (c["client_id"].as_str().unwrap().to_owned(), c))
        .collect()
}

/// The table's cells of the line that starts with `client_id` (cells are separated by two or more spaces).
fn row(table: &str, client_id: &str) -> Vec<String> {
    let line = table
        .lines()
        .find(|l| l.starts_with(client_id))
        .unwrap_or_else(|| panic!("no line for {client_id}:\n{table}"));
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Registers a client, signs in, approves and redeems the code: the client id and the token response.
async fn client_with_tokens(base: &str) -> (String, Value) {
    let client_id = register(base).await;
    let (verifier, challenge) = pkce();
    let code = browser_flow(base, base, base, &client_id, &challenge).await;
    let (status, body, _) = redeem(&http(false), base, base, &client_id, &code, &verifier)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    (client_id, body)
}

/// RFC 7009 revocation of a refresh token by its public client.
async fn revoke(base: &str, client_id: &str, refresh_token: &str) {
    let status = http(false)
        .post(format!("{base}/revoke"))
        .form(&[("token", refresh_token), ("client_id", client_id)])
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

/// Runs `sql` on `database` (SQLite or PostgreSQL), as an older or other tool would have written it.
async fn execute(database: &str, sql: &str) {
    use sqlx::Connection as _;
    if database.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(database).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
        c.close().await.unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(database).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
        c.close().await.unwrap();
    }
}

async fn clients_list_shows_usage(database: &str) {
    add_user(database);
    let s = Server::start(database, free_port(), &[]);
    let before = unix_now();
    let (used, tokens) = client_with_tokens(&s.base).await;
    let unused = register(&s.base).await;
    let after = unix_now();

    let table = clients_list(database, &[]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header.iter().map(|h| h.trim()).collect::<Vec<_>>(),
        [
            "CLIENT ID",
            "NAME",
            "ORIGIN",
            "CREATED",
            "LAST USED",
            "LIVE GRANTS",
            "REDIRECT HOSTS"
        ],
        "{table}"
    );
    let used_row = row(&table, &used);
    assert_eq!(used_row.len(), 7, "{table}");
    assert_eq!(used_row[1], "multi-instance test (unverified)", "{table}");
    assert_eq!(used_row[2], "dynamic");
    assert!(
        used_row[3].ends_with('Z') && used_row[3].len() == 20,
        "{table}"
    );
    assert_ne!(used_row[4], "never", "{table}");
    assert_eq!(
        (used_row[5].as_str(), used_row[6].as_str()),
        ("1", "127.0.0.1"),
        "{table}"
    );
    let unused_row = row(&table, &unused);
    assert_eq!(
        unused_row[4..],
        ["never".to_owned(), "0".to_owned(), "127.0.0.1".to_owned()],
        "{table}"
    );

    let json = listed(database);
    let u = &json[&used];
    let created = u["created_at"].as_i64().unwrap();
    let last = u["last_used_at"].as_i64().unwrap();
    assert!(before <= created && created <= last && last <= after, "{u}");
    assert_eq!(u["live_grants"], 1);
    assert_eq!(u["name"], "multi-instance test");
    assert_eq!(u["name_unverified"], true);
    assert_eq!(u["origin"], "dynamic");
    assert_eq!(u["redirect_hosts"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(u["redirect_uris"], serde_json::json!([REDIRECT_URI]));
    assert_eq!(json[&unused]["last_used_at"], Value::Null);

    // A refresh is a use; a revocation leaves no live grant but the last use stays.
    std::thread::sleep(Duration::from_millis(1100));
    let (status, refreshed, _) = refresh(
        &http(false),
        &s.base,
        &used,
        tokens["refresh_token"].as_str().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{refreshed}");
    let last_refresh = listed(database)[&used]["last_used_at"].as_i64().unwrap();
    assert!(last_refresh > last, "the refresh counts as a use");
    revoke(&s.base, &used, refreshed["refresh_token"].as_str().unwrap()).await;
    let u = &listed(database)[&used];
    assert_eq!(
        (u["live_grants"].as_i64(), u["last_used_at"].as_i64()),
        (Some(0), Some(last_refresh))
    );
}

/// How long the test runs the reaper with: a client that obtained no token goes after 2 s, an idle one 6 s
/// after its last use.
const TOKENLESS_TTL: i64 = 2;
const IDLE_TTL: i64 = 6;

async fn the_server_reaps_dead_registrations(database: &str) {
    add_user(database);
    let (tokenless_ttl, idle_ttl) = (TOKENLESS_TTL.to_string(), IDLE_TTL.to_string());
    let s = Server::start(
        database,
        free_port(),
        &[
            "--tokenless-client-ttl",
            &tokenless_ttl,
            "--idle-client-ttl",
            &idle_ttl,
        ],
    );
    // An administrator's client from long ago, never used: never reaped.
    execute(
        database,
        "INSERT INTO clients (client_id, metadata, created_at, origin) VALUES ('admin-made', \
         '{\"redirect_uris\":[\"http://127.0.0.1:9/callback\"],\"token_endpoint_auth_method\":\"none\"}', 1, 'admin')",
    )
    .await;
    let (live, live_tokens) = client_with_tokens(&s.base).await;
    let (idle, idle_tokens) = client_with_tokens(&s.base).await;
    revoke(
        &s.base,
        &idle,
        idle_tokens["refresh_token"].as_str().unwrap(),
    )
    .await;
    let tokenless = register(&s.base).await;
    let start = listed(database);
    let tokenless_created = start[&tokenless]["created_at"].as_i64().unwrap();
    let idle_last_use = start[&idle]["last_used_at"].as_i64().unwrap();

    // Watch the list: each client must go, and not before its time (the server reaps once a second here).
    let (mut tokenless_gone, mut idle_gone) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while (tokenless_gone.is_none() || idle_gone.is_none()) && Instant::now() < deadline {
        let now = listed(database);
        let seen_at = unix_now();
        if tokenless_gone.is_none() && !now.contains_key(&tokenless) {
            tokenless_gone = Some(seen_at);
        }
        if idle_gone.is_none() && !now.contains_key(&idle) {
            idle_gone = Some(seen_at);
        }
        assert!(
            now.contains_key(&live),
            "a client with a live grant is never reaped"
        );
        assert!(
            now.contains_key("admin-made"),
            "an administrator's client is never reaped"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let tokenless_gone =
        tokenless_gone.expect("the client that never obtained a token was not reaped");
    let idle_gone = idle_gone.expect("the idle client without a live grant was not reaped");
    assert!(
        tokenless_gone >= tokenless_created + TOKENLESS_TTL,
        "reaped too early"
    );
    assert!(
        idle_gone >= idle_last_use + IDLE_TTL,
        "the idle client was reaped too early"
    );

    // The client with a live grant keeps working.
    let access = live_tokens["access_token"].as_str().unwrap();
    assert_eq!(mcp_status(&http(false), &s.base, access).await, 200);
    let (status, body, _) = refresh(
        &http(false),
        &s.base,
        &live,
        live_tokens["refresh_token"].as_str().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    // The reaped ones are gone: their ids are unknown at the token endpoint.
    let (status, body, _) = refresh(
        &http(false),
        &s.base,
        &idle,
        idle_tokens["refresh_token"].as_str().unwrap(),
    )
    .await
    .unwrap();
    assert!(status == 400 || status == 401, "{status} {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_list_after_a_real_flow_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("p.db").display());
    clients_list_shows_usage(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_list_after_a_real_flow_on_postgres() {
    let Some(admin) = postgres_url("clients_list_after_a_real_flow_on_postgres") else {
        return;
    };
    let db = TempDb::create(&admin).await;
    clients_list_shows_usage(&db.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_reaps_dead_registrations_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("p.db").display());
    the_server_reaps_dead_registrations(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_reaps_dead_registrations_on_postgres() {
    let Some(admin) = postgres_url("the_server_reaps_dead_registrations_on_postgres") else {
        return;
    };
    let db = TempDb::create(&admin).await;
    the_server_reaps_dead_registrations(&db.url).await;
}
