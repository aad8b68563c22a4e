//! Group commit for the SQLite writer: one task owns the write path for the hot operations and runs every
//! operation queued while it was busy inside ONE transaction, so they share one `COMMIT` and one fsync
//! (`synchronous=FULL` stays; durability is unchanged: nobody is answered before the commit is on disk).
//!
//! Each operation runs inside its own `SAVEPOINT`: if it fails, `ROLLBACK TO` undoes exactly its changes and
//! the others in the batch still commit. Conditional single-use updates (`… WHERE used_at IS NULL`) keep
//! their meaning because the operations of a batch run one after another on the one connection: the second
//! redemption of a code sees the first one's `used_at` and matches no row.
//!
//! Batching is adaptive, with no timer: the task takes the first queued operation, yields once so that
//! requests already in flight can enqueue theirs, then drains whatever is queued (up to [`MAX_BATCH`]). An
//! idle server therefore commits a lone write at once; a loaded one amortizes one fsync over many writes.

use crate::error::map;
use portcullis_authz::store::StoreError;
use sqlx::sqlite::SqlitePool;
use sqlx::SqliteConnection;
use std::future::Future;
use std::pin::Pin;
use tokio::sync::{mpsc, oneshot};

/// Most operations committed together.
pub(crate) const MAX_BATCH: usize = 256;
/// Operations waiting for the writer before callers wait to enqueue (back-pressure).
const QUEUE: usize = 4096;

/// What an operation returns: a count (rows affected, or 1/0 for "won"/"lost").
pub(crate) type OpResult = Result<u64, sqlx::Error>;
type OpFuture<'c> = Pin<Box<dyn Future<Output = OpResult> + Send + 'c>>;
/// One write operation: statements run on the writer connection inside the batch's transaction.
pub(crate) type Op = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> OpFuture<'c> + Send>;

/// Boxes a closure as an [`Op`] (the helper pins down the higher-ranked lifetime for type inference).
pub(crate) fn op<F>(f: F) -> Op
where
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> OpFuture<'c> + Send + 'static,
{
    Box::new(f)
}

struct Job {
    op: Op,
    reply: Reply,
}

/// The handle callers use; cloning it is cheap. The writer task ends when every handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct GroupCommit {
    tx: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the writer task on the current Tokio runtime, writing through `pool` (one connection).
    pub(crate) fn start(pool: SqlitePool) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(pool, rx));
        Self { tx }
    }

    /// Runs `op` in the next batch; answers after that batch's `COMMIT` has returned (fsync done).
    pub(crate) async fn run(&self, op: Op) -> Result<u64, StoreError> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Unavailable("the SQLite writer has stopped".into());
        self.tx.send(Job { op, reply }).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn writer(pool: SqlitePool, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        // Let requests that are already running reach the queue, then take everything that is there.
        tokio::task::yield_now().await;
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&pool, &mut batch).await;
    }
}

/// Runs and commits one batch, answering every job (the vector is drained on every path).
async fn run_batch(pool: &SqlitePool, batch: &mut Vec<Job>) {
    let (ops, replies): (Vec<Op>, Vec<_>) = batch.drain(..).map(|j| (j.op, j.reply)).unzip();
    let mut conn = match pool.acquire().await {
        Ok(c) => c,
        Err(e) => return fail_all(replies, &map(e)),
    };
    // IMMEDIATE takes the write lock up front (another process, e.g. `portcullis user add`, may write too).
    if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
        return fail_all(replies, &map(e));
    }
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        match run_one(&mut conn, op).await {
            Ok(r) => results.push(r),
            Err(e) => {
                // The savepoint statements themselves failed: the transaction is unusable.
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                return fail_all(replies, &map(e));
            }
        }
    }
    if let Err(e) = sqlx::query("COMMIT").execute(&mut *conn).await {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        return fail_all(replies, &map(e));
    }
    for (reply, result) in replies.into_iter().zip(results) {
        let _ = reply.send(result);
    }
}

/// One operation inside its savepoint. The outer `Err` means the savepoint statements failed; the inner
/// result is the operation's own outcome (its changes undone if it failed).
async fn run_one(
    conn: &mut SqliteConnection,
    op: Op,
) -> Result<Result<u64, StoreError>, sqlx::Error> {
    sqlx::query("SAVEPOINT op").execute(&mut *conn).await?;
    match op(conn).await {
        Ok(n) => {
            sqlx::query("RELEASE op").execute(&mut *conn).await?;
            Ok(Ok(n))
        }
        Err(e) => {
            sqlx::query("ROLLBACK TO op").execute(&mut *conn).await?;
            sqlx::query("RELEASE op").execute(&mut *conn).await?;
            Ok(Err(map(e)))
        }
    }
}

type Reply = oneshot::Sender<Result<u64, StoreError>>;

/// Nothing of the batch was committed: every caller gets the error.
fn fail_all(replies: Vec<Reply>, e: &StoreError) {
    tracing::warn!(error = %e, ops = replies.len(), "SQLite group commit failed");
    for reply in replies {
        let _ = reply.send(Err(e.clone()));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteSynchronous};

    async fn pool(dir: &tempfile::TempDir) -> SqlitePool {
        let connect = SqliteConnectOptions::new()
            .filename(dir.path().join("g.db"))
            .create_if_missing(true)
            .synchronous(SqliteSynchronous::Full);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(connect)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (v INTEGER PRIMARY KEY, used INTEGER)")
            .execute(&pool)
            .await
            .unwrap();
        pool
    }

    fn insert(v: i64) -> Op {
        op(move |c| {
            Box::pin(async move {
                // Two statements: a failing second one must undo the first (savepoint).
                sqlx::query("INSERT INTO t (v) VALUES (?)")
                    .bind(v + 1000)
                    .execute(&mut *c)
                    .await?;
                Ok(sqlx::query("INSERT INTO t (v) VALUES (?)")
                    .bind(v)
                    .execute(&mut *c)
                    .await?
                    .rows_affected())
            })
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_op_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir).await;
        let g = GroupCommit::start(pool.clone());
        g.run(insert(7)).await.unwrap();
        let mut tasks = Vec::new();
        for v in 0..50 {
            let g = g.clone();
            // v = 7 collides with the row inserted above.
            tasks.push(tokio::spawn(async move { (v, g.run(insert(v)).await) }));
        }
        for t in tasks {
            let (v, r) = t.await.unwrap();
            if v == 7 {
                assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
            } else {
                assert_eq!(r, Ok(1), "op {v}");
            }
        }
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&pool)
            .await
            .unwrap();
        // 2 rows from the first op, 2 from each of the 49 others; the failed one left nothing (not even 1007).
        assert_eq!(n, 2 + 49 * 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conditional_update_has_one_winner_within_a_batch() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir).await;
        sqlx::query("INSERT INTO t (v) VALUES (1)")
            .execute(&pool)
            .await
            .unwrap();
        let g = GroupCommit::start(pool);
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let g = g.clone();
            tasks.push(tokio::spawn(async move {
                g.run(op(|c| {
                    Box::pin(async move {
                        Ok(
                            sqlx::query("UPDATE t SET used = 1 WHERE v = 1 AND used IS NULL")
                                .execute(c)
                                .await?
                                .rows_affected(),
                        )
                    })
                }))
                .await
            }));
        }
        let mut won = 0;
        for t in tasks {
            won += t.await.unwrap().unwrap();
        }
        assert_eq!(won, 1);
    }
}
