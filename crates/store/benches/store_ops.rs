//! Per-operation benchmark of the storage hot paths, through the storage traits (so it measures any backend
//! the same way): client registration and lookup, code issue and redemption, refresh rotation, revocation.
//!
//! Each operation is timed at concurrency 1 and 64 (tasks on a 2-worker Tokio runtime, like the server on two
//! cores) against a temporary SQLite file (WAL, `synchronous=FULL`: every write is fsynced before it returns).
//! Output: µs per operation (wall time / operations), operations per second, p50/p99 latency, and the
//! process's CPU time (user + system, all threads, from `/proc/self/stat`) per operation — the number that
//! does not depend on how fast this machine's disk answers an fsync.
//!
//! Run: `cargo bench -p portcullis-store --bench store_ops` (`-- <filter>` runs the operations whose name
//! contains `<filter>`; `STORE_BENCH_OPS=n` sets the operations per task, default 200 at concurrency 64).
//! `STORE_BENCH_URL=postgres://…` runs it on PostgreSQL instead.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use portcullis_authz::secret::TokenHash;
use portcullis_authz::store::{
    ClientOrigin, ClientRecord, CodeRecord, DisplayIdentity, GrantRecord, PreviousToken,
    RefreshError, RefreshFamily, RefreshUpdate, ReuseRevocation, RotationDecision, RotationStep,
    Storage, Transition, UserRecord,
};
use portcullis_proto::Scope;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NOW: i64 = 1_800_000_000;

fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn client(id: &str) -> ClientRecord {
    ClientRecord {
        client_id: id.to_owned(),
        secret_hash: None,
        metadata_json: r#"{"client_name":"bench","redirect_uris":["http://localhost:8080/callback"],"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"none"}"#.to_owned(),
        created_at: NOW,
        origin: ClientOrigin::Registered,
        introspection: None,
    }
}

fn code(client_id: &str, hash: &TokenHash) -> CodeRecord {
    CodeRecord {
        code_hash: hash.clone(),
        client_id: client_id.to_owned(),
        user_id: "bench-user".into(),
        redirect_uri: "http://localhost:8080/callback".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        scope: "mcp:tools".into(),
        resource: "https://mcp.example/mcp".into(),
        created_at: NOW,
        expires_at: NOW + 60,
        used_at: None,
        grant_id: None,
        identity: DisplayIdentity::password_user("bench-user"),
    }
}

fn grant(client_id: &str) -> GrantRecord {
    GrantRecord {
        id: unique("g"),
        client_id: client_id.to_owned(),
        user_id: "bench-user".into(),
        scope: "mcp:tools".into(),
        resource: "https://mcp.example/mcp".into(),
        created_at: NOW,
        expires_at: NOW + 86_400,
        revoked_at: None,
        identity: DisplayIdentity::password_user("bench-user"),
    }
}

/// A new refresh family (its handle's hash is the key).
fn refresh() -> RefreshFamily {
    RefreshFamily {
        key: TokenHash::of(&unique("handle")),
        token_hash: TokenHash::of(&unique("rt")),
        issued_at: NOW,
        expires_at: NOW + 3600,
        previous: None,
    }
}

/// A live grant of `client_id` with its refresh family (made by redeeming a fresh code), and the family's key.
async fn live_grant(s: &dyn Storage, client_id: &str) -> (GrantRecord, TokenHash) {
    let h = TokenHash::of(&unique("code"));
    s.insert_code(&code(client_id, &h)).await.unwrap();
    let g = grant(client_id);
    let r = refresh();
    assert_eq!(
        s.redeem_code(&h, NOW, &g, Some(&r)).await.unwrap(),
        Transition::Won
    );
    (g, r.key)
}

#[derive(Clone, Copy, Debug)]
enum Op {
    /// `insert_client` (dynamic registration's write).
    InsertClient,
    /// `client` by id (every token request's client authentication).
    ClientLookup,
    /// `insert_code` (consent's write).
    InsertCode,
    /// `code` + `redeem_code` (the authorization_code grant's storage work).
    RedeemCode,
    /// `rotate_refresh` (the refresh grant's storage work: read, decide and update in one operation).
    Rotate,
    /// `refresh_family` + `revoke_grant` of a live grant (revocation of a refresh token).
    RevokeLive,
    /// `refresh_family` of an already-revoked grant (what revoking it again costs).
    RevokeAgain,
}

impl Op {
    const ALL: [Op; 7] = [
        Op::InsertClient,
        Op::ClientLookup,
        Op::InsertCode,
        Op::RedeemCode,
        Op::Rotate,
        Op::RevokeLive,
        Op::RevokeAgain,
    ];

    fn name(self) -> &'static str {
        match self {
            Op::InsertClient => "insert_client",
            Op::ClientLookup => "client_lookup",
            Op::InsertCode => "insert_code",
            Op::RedeemCode => "code+redeem_code",
            Op::Rotate => "rotate_refresh",
            Op::RevokeLive => "refresh_family+revoke_grant",
            Op::RevokeAgain => "revoke_already_revoked",
        }
    }
}

/// What one task needs prepared before the clock starts.
enum Prepared {
    None,
    Codes(Vec<TokenHash>),
    Chain(TokenHash),
    Refresh(Vec<TokenHash>),
}

async fn prepare(s: &dyn Storage, op: Op, client_id: &str, n: usize) -> Prepared {
    match op {
        Op::InsertClient | Op::ClientLookup | Op::InsertCode => Prepared::None,
        Op::RedeemCode => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let h = TokenHash::of(&unique("code"));
                s.insert_code(&code(client_id, &h)).await.unwrap();
                v.push(h);
            }
            Prepared::Codes(v)
        }
        Op::Rotate => Prepared::Chain(live_grant(s, client_id).await.1),
        Op::RevokeLive | Op::RevokeAgain => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let (g, rt) = live_grant(s, client_id).await;
                if matches!(op, Op::RevokeAgain) {
                    s.revoke_grant(&g.id, NOW, NOW + 3600).await.unwrap();
                }
                v.push(rt);
            }
            Prepared::Refresh(v)
        }
    }
}

async fn run_task(
    s: Arc<dyn Storage>,
    op: Op,
    client_id: String,
    mut p: Prepared,
    n: usize,
) -> Vec<Duration> {
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        match (&mut p, op) {
            (_, Op::InsertClient) => s.insert_client(&client(&unique("c"))).await.unwrap(),
            (_, Op::ClientLookup) => {
                assert!(s.client(&client_id).await.unwrap().is_some());
            }
            (_, Op::InsertCode) => {
                s.insert_code(&code(&client_id, &TokenHash::of(&unique("code"))))
                    .await
                    .unwrap();
            }
            (Prepared::Codes(v), Op::RedeemCode) => {
                let h = &v[i];
                let c = s.code(h).await.unwrap().unwrap();
                assert!(c.used_at.is_none());
                let g = grant(&client_id);
                let r = refresh();
                let won = s.redeem_code(h, NOW, &g, Some(&r)).await.unwrap();
                assert_eq!(won, Transition::Won);
            }
            (Prepared::Chain(key), Op::Rotate) => {
                let next = TokenHash::of(&unique("rt"));
                let out = s
                    .rotate_refresh(
                        key,
                        Box::new(move |_, g| {
                            if g.revoked_at.is_some() {
                                return Err(RefreshError::Revoked);
                            }
                            // As with the default grace period: the retired token and the sealed
                            // successor are written too.
                            Ok(RotationDecision {
                                step: RotationStep::Rotate(RefreshUpdate {
                                    token_hash: next.clone(),
                                    issued_at: NOW,
                                    expires_at: NOW + 3600,
                                    previous: Some(PreviousToken {
                                        hash: next.clone(),
                                        sealed_successor: vec![0x5a; 32],
                                    }),
                                }),
                                scope: Scope::default(),
                            })
                        }),
                        ReuseRevocation {
                            now: NOW,
                            expires_at: NOW + 3600,
                        },
                    )
                    .await
                    .unwrap();
                assert!(out.is_ok());
            }
            (Prepared::Refresh(v), Op::RevokeLive) => {
                let (_, g) = s.refresh_family(&v[i]).await.unwrap().unwrap();
                assert!(s.revoke_grant(&g.id, NOW, NOW + 3600).await.unwrap());
            }
            (Prepared::Refresh(v), Op::RevokeAgain) => {
                // What `Revoker::revoke` does for a refresh token whose grant is already revoked.
                let (_, g) = s.refresh_family(&v[i]).await.unwrap().unwrap();
                assert!(g.revoked_at.is_some());
            }
            _ => unreachable!("prepared data matches the operation"),
        }
        lat.push(t.elapsed());
    }
    lat
}

/// CPU time (user + system) of this process so far, µs; `None` where `/proc` is not there.
fn cpu_us() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces): utime is the 12th, stime
    // the 13th, in clock ticks (100 per second on Linux).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10_000.0)
}

async fn measure(s: &Arc<dyn Storage>, op: Op, concurrency: usize, per_task: usize) {
    let client_id = unique("bench-client");
    s.insert_client(&client(&client_id)).await.unwrap();
    let mut prepared = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        prepared.push(prepare(s.as_ref(), op, &client_id, per_task).await);
    }
    let cpu_start = cpu_us();
    let start = Instant::now();
    let tasks: Vec<_> = prepared
        .into_iter()
        .map(|p| tokio::spawn(run_task(s.clone(), op, client_id.clone(), p, per_task)))
        .collect();
    let mut lat = Vec::with_capacity(concurrency * per_task);
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let wall = start.elapsed();
    let cpu = match (cpu_start, cpu_us()) {
        (Some(a), Some(b)) => format!("{:>6.1}", (b - a) / (concurrency * per_task) as f64),
        _ => "     -".to_owned(),
    };
    lat.sort_unstable();
    let n = lat.len();
    let pct = |p: f64| lat[((n as f64 * p) as usize).min(n - 1)].as_secs_f64() * 1e6;
    println!(
        "{:<30} c={:<3} {:>9.1} µs/op {:>8.0} ops/s  p50 {:>7.0} µs  p99 {:>7.0} µs  CPU {cpu} µs/op  (n={n})",
        op.name(),
        concurrency,
        wall.as_secs_f64() * 1e6 / n as f64,
        n as f64 / wall.as_secs_f64(),
        pct(0.50),
        pct(0.99),
    );
}

fn main() {
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    let per_task_64: usize = std::env::var("STORE_BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = std::env::var("STORE_BENCH_URL")
            .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("bench.db").display()));
        let s = portcullis_store::open(&url, &portcullis_store::StoreOptions::default())
            .await
            .unwrap();
        s.insert_user(&UserRecord {
            id: "bench-user".into(),
            username: unique("bench"),
            password_hash: "$argon2id$unused".into(),
            created_at: NOW,
        })
        .await
        .unwrap();
        for op in Op::ALL {
            if !op.name().contains(&filter) {
                continue;
            }
            measure(&s, op, 1, 500).await;
            measure(&s, op, 64, per_task_64).await;
        }
    });
}
