//! Group commit for the SQLite writer: one OS thread owns the only write connection and runs every operation
//! queued while it was busy inside ONE transaction, so they share one `COMMIT` and one fsync
//! (`synchronous=FULL` stays; durability is unchanged: nobody is answered before the commit is on disk).
//!
//! An operation is a synchronous closure over the connection, run on the writer thread with cached prepared
//! statements (no round trip per statement: the only thread hops are the request in and the answer out).
//! Operations that write with more than one statement run inside their own `SAVEPOINT`
//! ([`Undo::Savepoint`]): if one fails, `ROLLBACK TO` undoes exactly its changes and the others in the batch
//! still commit. An operation whose only write is a single statement needs none ([`Undo::Statement`]): SQLite
//! undoes a failed statement by itself and the transaction goes on. Conditional single-use updates
//! (`… WHERE used_at IS NULL`) keep their meaning because the operations of a batch run one after another on
//! the one connection: the second redemption of a code sees the first one's `used_at` and matches no row.
//!
//! Batching: the thread takes the first queued operation and everything queued behind it (up to
//! [`MAX_BATCH`]). When the previous batch held more than one operation and started less than
//! [`COMMIT_INTERVAL`] ago, writes are arriving concurrently: the thread first sleeps until that interval has
//! passed, so a batch gathers about a millisecond of writes (PostgreSQL's `commit_delay` idea). While it sleeps,
//! callers queue without waking it (no futex wake, no context switch per write), which on a busy core is what
//! the request threads need most; and a commit's fixed cost (the WAL frames of shared pages, the fsync, the
//! wake-ups) is shared by more operations. A lone writer (previous batch of one, or an idle server) is
//! committed at once, so a sequential client never waits for the interval.
//!
//! Measured on the refresh benchmark (2 cores, server pinned to one): batches of ~3 rotations without the
//! interval, ~17 with it, and the same or better throughput; 2 ms left the core idle (BENCHMARKS.md).

use crate::error::map_sqlite;
use portcullis_authz::store::StoreError;
use rusqlite::Connection;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Most operations committed together.
pub(crate) const MAX_BATCH: usize = 256;
/// Under concurrent writes, the shortest time from one batch's start to the next one's (see the module doc).
const COMMIT_INTERVAL: Duration = Duration::from_millis(1);

/// How an operation's changes are undone if it fails while the rest of its batch commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Undo {
    /// The operation writes with at most one statement (any number of reads before it): a failing statement
    /// leaves no change, so no savepoint is needed.
    Statement,
    /// The operation writes with several statements: it runs in its own `SAVEPOINT`.
    Savepoint,
}

/// One queued operation, type-erased: runs on the writer thread, answers after the batch's fate is known.
trait Job: Send {
    fn undo(&self) -> Undo;
    /// Runs the operation; returns whether it succeeded (if not, its changes must be undone).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller: the operation's own result if the batch committed, else the commit's error.
    fn finish(self: Box<Self>, committed: Result<(), &StoreError>);
}

struct TypedJob<T, F> {
    undo: Undo,
    op: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send,
{
    fn undo(&self) -> Undo {
        self.undo
    }

    fn run(&mut self, conn: &Connection) -> bool {
        let Some(op) = self.op.take() else {
            return false;
        };
        let r = op(conn).map_err(map_sqlite);
        let ok = r.is_ok();
        self.result = Some(r);
        ok
    }

    fn finish(self: Box<Self>, committed: Result<(), &StoreError>) {
        let answer = match committed {
            Ok(()) => self
                .result
                .unwrap_or_else(|| Err(StoreError::Other("operation did not run".into()))),
            Err(e) => Err(e.clone()),
        };
        // The caller may have gone away (request cancelled): nothing to tell it then.
        let _ = self.reply.send(answer);
    }
}

/// The handle callers use; cloning it is cheap. The writer thread ends when every handle is dropped.
///
/// The queue is unbounded: sending never blocks a Tokio worker, and every queued operation belongs to a
/// request that is waiting for it, so the number of concurrent requests bounds it.
#[derive(Debug, Clone)]
pub(crate) struct GroupCommit {
    tx: mpsc::Sender<Box<dyn Job>>,
    stopped: Arc<AtomicBool>,
    /// Operations queued so far (one relaxed add each), for tests that count storage operations.
    operations: Arc<AtomicU64>,
}

/// Marks the writer stopped when its thread ends, even by a panic.
struct StopFlag(Arc<AtomicBool>);

impl Drop for StopFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

impl GroupCommit {
    /// Starts the writer thread, which owns `conn` (opened with `synchronous=FULL`).
    pub(crate) fn start(conn: Connection) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel();
        let stopped = Arc::new(AtomicBool::new(false));
        let flag = StopFlag(stopped.clone());
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                let _flag = flag;
                writer(conn, rx);
            })
            .map_err(|e| {
                StoreError::Other(format!("cannot start the SQLite writer thread: {e}"))
            })?;
        Ok(Self {
            tx,
            stopped,
            operations: Arc::new(AtomicU64::new(0)),
        })
    }

    /// How many operations were queued to the writer so far.
    pub(crate) fn operations(&self) -> u64 {
        self.operations.load(Ordering::Relaxed)
    }

    /// Whether the writer thread has ended (it only does if it panicked): writes then fail `Unavailable`.
    pub(crate) fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Runs `op` in the next batch; answers after that batch's `COMMIT` has returned (fsync done). `undo`
    /// must be [`Undo::Savepoint`] unless `op` writes with at most one statement.
    pub(crate) async fn run<T, F>(&self, undo: Undo, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.operations.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let job = Box::new(TypedJob {
            undo,
            op: Some(op),
            result: None,
            reply,
        });
        let gone = || StoreError::Unavailable("the SQLite writer has stopped".into());
        self.tx.send(job).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

fn writer(conn: Connection, rx: mpsc::Receiver<Box<dyn Job>>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    let mut last_start = Instant::now();
    let mut last_len = 0;
    while let Ok(first) = rx.recv() {
        batch.push(first);
        let since = last_start.elapsed();
        if last_len > 1 && since < COMMIT_INTERVAL {
            std::thread::sleep(COMMIT_INTERVAL - since);
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        last_start = Instant::now();
        last_len = batch.len();
        run_batch(&conn, &mut batch);
    }
}

fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(drop)
        .map_err(map_sqlite)
}

/// Runs and commits one batch, answering every job (the vector is drained on every path).
fn run_batch(conn: &Connection, batch: &mut Vec<Box<dyn Job>>) {
    // IMMEDIATE takes the write lock up front (another process, e.g. `portcullis user add`, may write too).
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        return fail_all(conn, batch, &e);
    }
    for job in batch.iter_mut() {
        if let Err(e) = run_one(conn, job.as_mut()) {
            return fail_all(conn, batch, &e);
        }
    }
    if let Err(e) = exec(conn, "COMMIT") {
        return fail_all(conn, batch, &e);
    }
    for job in batch.drain(..) {
        job.finish(Ok(()));
    }
}

/// One operation, in its savepoint if it needs one. `Err` means the transaction itself is no longer usable
/// (a savepoint statement failed, or SQLite rolled the whole transaction back, e.g. on a full disk).
fn run_one(conn: &Connection, job: &mut dyn Job) -> Result<(), StoreError> {
    let savepoint = job.undo() == Undo::Savepoint;
    if savepoint {
        exec(conn, "SAVEPOINT op")?;
    }
    let ok = job.run(conn);
    if conn.is_autocommit() {
        return Err(StoreError::Unavailable(
            "SQLite rolled the transaction back".into(),
        ));
    }
    if savepoint {
        if !ok {
            exec(conn, "ROLLBACK TO op")?;
        }
        exec(conn, "RELEASE op")?;
    }
    Ok(())
}

/// Nothing of the batch was committed: every caller gets the error.
fn fail_all(conn: &Connection, batch: &mut Vec<Box<dyn Job>>, e: &StoreError) {
    if !conn.is_autocommit() {
        let _ = exec(conn, "ROLLBACK");
    }
    tracing::warn!(error = %e, ops = batch.len(), "SQLite group commit failed");
    for job in batch.drain(..) {
        job.finish(Err(e));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rusqlite::params;

    fn open(dir: &tempfile::TempDir) -> (GroupCommit, Connection) {
        let path = dir.path().join("g.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE t (v INTEGER PRIMARY KEY, used INTEGER);",
        )
        .unwrap();
        conn.busy_timeout(std::time::Duration::from_millis(100))
            .unwrap();
        (
            GroupCommit::start(conn).unwrap(),
            Connection::open(&path).unwrap(),
        )
    }

    /// Two statements: a failing second one must undo the first (savepoint).
    fn insert_two(c: &Connection, v: i64) -> rusqlite::Result<u64> {
        c.prepare_cached("INSERT INTO t (v) VALUES (?)")?
            .execute([v + 1000])?;
        Ok(c.prepare_cached("INSERT INTO t (v) VALUES (?)")?
            .execute([v])? as u64)
    }

    fn count(c: &Connection) -> i64 {
        c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_op_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (g, check) = open(&dir);
        g.run(Undo::Savepoint, |c| insert_two(c, 7)).await.unwrap();
        let mut tasks = Vec::new();
        for v in 0..50 {
            let g = g.clone();
            // v = 7 collides with the row inserted above.
            tasks.push(tokio::spawn(async move {
                (v, g.run(Undo::Savepoint, move |c| insert_two(c, v)).await)
            }));
        }
        for t in tasks {
            let (v, r) = t.await.unwrap();
            if v == 7 {
                assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
            } else {
                assert_eq!(r, Ok(1), "op {v}");
            }
        }
        // 2 rows from the first op, 2 from each of the 49 others; the failed one left nothing (not even 1007).
        assert_eq!(count(&check), 2 + 49 * 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_single_statement_op_needs_no_savepoint() {
        let dir = tempfile::tempdir().unwrap();
        let (g, check) = open(&dir);
        let one = |v: i64| {
            move |c: &Connection| -> rusqlite::Result<usize> {
                c.prepare_cached("INSERT INTO t (v) VALUES (?)")?
                    .execute([v])
            }
        };
        g.run(Undo::Statement, one(3)).await.unwrap();
        let mut tasks = Vec::new();
        for v in 0..40 {
            let g = g.clone();
            tasks.push(tokio::spawn(async move {
                (v, g.run(Undo::Statement, one(v)).await)
            }));
        }
        for t in tasks {
            let (v, r) = t.await.unwrap();
            if v == 3 {
                assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
            } else {
                assert_eq!(r, Ok(1), "op {v}");
            }
        }
        assert_eq!(count(&check), 40);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conditional_update_has_one_winner_within_a_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (g, check) = open(&dir);
        check.execute("INSERT INTO t (v) VALUES (1)", []).unwrap();
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let g = g.clone();
            tasks.push(tokio::spawn(async move {
                g.run(Undo::Statement, |c| {
                    c.prepare_cached("UPDATE t SET used = 1 WHERE v = 1 AND used IS NULL")?
                        .execute(params![])
                })
                .await
            }));
        }
        let mut won = 0;
        for t in tasks {
            won += t.await.unwrap().unwrap();
        }
        assert_eq!(won, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answered_only_after_commit_and_visible_to_other_connections() {
        let dir = tempfile::tempdir().unwrap();
        let (g, check) = open(&dir);
        for v in 0..20 {
            g.run(Undo::Statement, move |c| {
                c.prepare_cached("INSERT INTO t (v) VALUES (?)")?
                    .execute([v])
            })
            .await
            .unwrap();
            // Another connection sees the row as soon as the caller is answered: it was committed.
            assert_eq!(count(&check), v + 1);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_whose_commit_fails_answers_everyone_with_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let (g, check) = open(&dir);
        // Another connection holds the write lock: BEGIN IMMEDIATE fails once the busy timeout passes.
        check.execute_batch("BEGIN IMMEDIATE").unwrap();
        let r = g
            .run(Undo::Statement, |c| {
                c.prepare_cached("INSERT INTO t (v) VALUES (1)")?
                    .execute([])
            })
            .await;
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
        check.execute_batch("ROLLBACK").unwrap();
        assert_eq!(count(&check), 0);
        // The writer goes on afterwards.
        g.run(Undo::Statement, |c| {
            c.prepare_cached("INSERT INTO t (v) VALUES (2)")?
                .execute([])
        })
        .await
        .unwrap();
        assert_eq!(count(&check), 1);
    }
}
