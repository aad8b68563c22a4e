//! Crash consistency on both backends: a load of registrations and refresh-token rotations against
//! `portcullis serve`, `kill -9` in the middle, a restart on the same database, and then every 2xx answer must
//! still hold (the registered client exists; the newest refresh token each chain received works, the one before
//! it is dead). A family has one live token by construction: it is one row, rewritten by each rotation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::instances::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the load runs before the kill.
const LOAD: Duration = Duration::from_millis(1500);
/// Refresh chains (one grant each) rotated during the load.
const CHAINS: usize = 6;
/// Concurrent registration loops.
const REGISTRARS: usize = 3;

/// One rotation chain as the client saw it.
#[derive(Default)]
struct Chain {
    client_id: String,
    /// Tokens that were answered with 200, oldest first; the last one is the newest.
    tokens: Vec<String>,
    /// The last request got no answer (it was in flight at the kill): the newest token may or may not have
    /// been rotated by it.
    in_flight: bool,
}

async fn crash_and_check(database: &str) {
    add_user(database);
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let args = ["--issuer", &issuer, "--register-per-ip-per-hour", "0"];
    let server = Server::start(database, port, &args);
    let base = server.base.clone();
    let chains: Vec<Arc<Mutex<Chain>>> = {
        let mut v = Vec::new();
        for _ in 0..CHAINS {
            let t = full_flow(&issuer, &base).await;
            v.push(Arc::new(Mutex::new(Chain {
                client_id: t.client_id,
                tokens: vec![t.refresh],
                in_flight: false,
            })));
        }
        v
    };
    let registered = Arc::new(Mutex::new(Vec::<String>::new()));

    // Half of the chains stop just before the kill, so some chains are certainly settled; the others and the
    // registrations are running when it comes.
    let pause = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (mut load, mut settling) = (Vec::new(), Vec::new());
    for (i, chain) in chains.iter().enumerate() {
        let (chain, base, pause) = (chain.clone(), base.clone(), pause.clone());
        let task = tokio::spawn(async move {
            // A new connection per request: a refused connection then means the request was never sent.
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            loop {
                if i % 2 == 0 && pause.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let (client_id, current) = {
                    let c = chain.lock().unwrap();
                    (c.client_id.clone(), c.tokens.last().unwrap().clone())
                };
                match refresh(&http, &base, &client_id, &current).await {
                    Ok((200, body, _)) => chain
                        .lock()
                        .unwrap()
                        .tokens
                        .push(body["refresh_token"].as_str().unwrap().to_owned()),
                    Ok((status, body, _)) => panic!("refresh answered {status} {body}"),
                    // The server is gone. Unless the connection was refused, the request may have reached it.
                    Err(e) => {
                        chain.lock().unwrap().in_flight = !e.is_connect();
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        if i % 2 == 0 {
            settling.push(task);
        } else {
            load.push(task);
        }
    }
    for _ in 0..REGISTRARS {
        let (registered, base) = (registered.clone(), base.clone());
        load.push(tokio::spawn(async move {
            let http = http(false);
            loop {
                match try_register(&http, &base).await {
                    Ok((201, body)) => registered
                        .lock()
                        .unwrap()
                        .push(body["client_id"].as_str().unwrap().to_owned()),
                    Ok((status, body)) => panic!("register answered {status} {body}"),
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(LOAD).await;
    pause.store(true, std::sync::atomic::Ordering::SeqCst);
    for task in settling {
        task.await.expect("a load task failed");
    }
    server.kill9();
    for task in load {
        task.await.expect("a load task failed before the kill");
    }

    let server = Server::start(database, port, &args);
    let http = http(false);
    let registered = registered.lock().unwrap().clone();
    assert!(
        registered.len() > 10,
        "too little load: {} registrations",
        registered.len()
    );
    let (_, challenge) = pkce();
    for client_id in &registered {
        let query = authorize_query(&issuer, client_id, &challenge);
        let resp = http
            .get(format!("{}/authorize?{query}", server.base))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let page = resp.text().await.unwrap();
        assert!(
            status == 200 && page.contains("name=\"password\""),
            "client {client_id} got 201 before the crash but is gone: {status}\n{page}"
        );
    }
    let rotations: usize = chains
        .iter()
        .map(|c| c.lock().unwrap().tokens.len() - 1)
        .sum();
    assert!(rotations > CHAINS, "too little load: {rotations} rotations");
    eprintln!(
        "crash test on {}: {} registrations and {rotations} rotations answered before the kill",
        database.split(':').next().unwrap_or_default(),
        registered.len()
    );
    let mut checked = 0;
    for chain in &chains {
        let (client_id, tokens, in_flight) = {
            let c = chain.lock().unwrap();
            (c.client_id.clone(), c.tokens.clone(), c.in_flight)
        };
        let newest = tokens.last().unwrap();
        let (status, body, _) = refresh(&http, &server.base, &client_id, newest)
            .await
            .unwrap();
        if in_flight {
            // Rotated by the unanswered request (then, within the grace period, it gets that rotation's
            // successor; after it, it is reuse) or not (then it works): either is right.
            assert!(
                status == 200 || body["error"] == "invalid_grant",
                "{status} {body}"
            );
        } else {
            assert_eq!(
                status, 200,
                "the newest refresh token of a chain is dead: {body}"
            );
            checked += 1;
        }
        if let Some(previous) = tokens.len().checked_sub(2).map(|i| &tokens[i]) {
            // A rotated token is dead (and presenting it revokes the family).
            let (status, body, _) = refresh(&http, &server.base, &client_id, previous)
                .await
                .unwrap();
            assert_eq!(
                (status, body["error"].as_str()),
                (400, Some("invalid_grant")),
                "{body}"
            );
        }
    }
    assert!(
        checked > 0,
        "every chain was in flight at the kill; nothing checked"
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_loses_no_answered_write_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("portcullis.db").display());
    crash_and_check(&database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_loses_no_answered_write_on_postgres() {
    let Some(admin) = postgres_url("kill_9_loses_no_answered_write_on_postgres") else {
        return;
    };
    let db = TempDb::create(&admin).await;
    crash_and_check(&db.url).await;
}
