//! The bounded pool that checks passwords: argon2id allocates 19 MiB and takes tens of milliseconds of CPU per
//! check (OWASP Password Storage Cheat Sheet parameters, [`portcullis_authz::password`]), so an unbounded number
//! of concurrent sign-ins exhausts memory and starves every other request. At most `concurrency` checks run
//! at once, each on one of that many dedicated threads (so memory stays under `concurrency` × 19 MiB however
//! many sign-ins arrive: each thread keeps one argon2 working area, [`Workspace`], instead of allocating one
//! per check, which the allocator retained — 10 checks on 2 threads grew the process by ~170 MiB); a short queue
//! of `QUEUE_PER_THREAD` × `concurrency` waits at most [`MAX_WAIT`]; beyond that a sign-in is refused as
//! [`Busy`] (503 with `Retry-After`, RFC 9110 §15.6.4) without hashing (security notes, "Robustness").

use portcullis_authz::password::{verify_with, Workspace};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Queued checks allowed per checking thread.
const QUEUE_PER_THREAD: usize = 4;
/// Longest a queued check may wait for a thread; after it the sign-in is refused as [`Busy`].
pub const MAX_WAIT: Duration = Duration::from_secs(2);
/// Seconds a refused sign-in is told to wait (`Retry-After`).
pub const RETRY_AFTER_SECS: i64 = 2;

/// The default number of concurrent checks: the CPU cores, at least 2.
pub fn default_concurrency() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    u32::try_from(cores.max(2)).unwrap_or(2)
}

/// No thread or queue place was free in time: the password was not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// One queued check: the password, the stored hash, when it was queued, and where the answer goes.
struct Job {
    password: String,
    hash: String,
    queued: Instant,
    answer: oneshot::Sender<Result<bool, Busy>>,
}

/// The checking threads and their bounded queue. The threads end when this is dropped.
pub struct PasswordChecks {
    queue: SyncSender<Job>,
    concurrency: usize,
}

impl std::fmt::Debug for PasswordChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordChecks")
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl PasswordChecks {
    /// `concurrency` checking threads (at least one).
    pub fn new(concurrency: u32) -> Self {
        let concurrency = usize::try_from(concurrency.max(1)).unwrap_or(1);
        let (queue, jobs) = sync_channel::<Job>(concurrency * QUEUE_PER_THREAD);
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..concurrency {
            let jobs = jobs.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-check-{i}"))
                .spawn(move || work(&jobs));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password-checking thread");
            }
        }
        Self { queue, concurrency }
    }

    /// How many checks may run at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Whether `password` matches the PHC string `hash` ([`portcullis_authz::password::verify`]), or [`Busy`]
    /// when the queue is full or the check waited longer than [`MAX_WAIT`] for a thread.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, Busy> {
        let (answer, answered) = oneshot::channel();
        let job = Job {
            password,
            hash,
            queued: Instant::now(),
            answer,
        };
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => return Err(Busy),
        }
        // A dropped sender means the thread is gone: the password was not checked.
        answered.await.unwrap_or(Err(Busy))
    }
}

/// A checking thread: takes queued jobs until the pool is dropped; a job that waited too long is answered
/// [`Busy`] unchecked (its caller may be gone, and a late answer only adds to the backlog).
fn work(jobs: &Mutex<Receiver<Job>>) {
    let mut memory = Workspace::default();
    loop {
        let job = {
            let jobs = jobs.lock().unwrap_or_else(|e| e.into_inner());
            match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let result = if job.queued.elapsed() > MAX_WAIT || job.answer.is_closed() {
            Err(Busy)
        } else {
            Ok(verify_with(&job.password, &job.hash, &mut memory))
        };
        let _ = job.answer.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checks_passwords_and_refuses_beyond_the_queue() {
        let hash =
            portcullis_authz::password::hash("correct horse", &portcullis_authz::random::OsRandom)
                .unwrap();
        let pool = PasswordChecks::new(1);
        assert_eq!(pool.concurrency(), 1);
        assert_eq!(
            pool.verify("correct horse".into(), hash.clone()).await,
            Ok(true)
        );
        assert_eq!(pool.verify("wrong".into(), hash.clone()).await, Ok(false));
        // One running plus QUEUE_PER_THREAD queued at most: of many at once, some are refused, none fail.
        let pool = Arc::new(pool);
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (pool, hash) = (pool.clone(), hash.clone());
                tokio::spawn(async move { pool.verify("wrong".into(), hash).await })
            })
            .collect();
        let mut busy = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(matched) => assert!(!matched),
                Err(Busy) => busy += 1,
            }
        }
        assert!(busy >= 20 - 2 - QUEUE_PER_THREAD, "{busy} refused");
    }
}
