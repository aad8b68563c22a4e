//! Revocations pushed to this instance: follows the store's push channel for the revocation feed
//! (`GrantStore::listen_revocations`; on PostgreSQL one `LISTEN` connection per instance) and wakes the
//! [`Revocations`](crate::revocations::Revocations) sync when another instance has revoked something.
//!
//! The feed stays the source of truth and polling (`revocation_sync_ms`) keeps running beside this, so a lost or
//! duplicated notice costs at most one poll interval or one read. When the channel is lost the follower says so
//! once, reads the feed at once (notices may have been missed), and reconnects with [`Backoff`]; once it is
//! listening again it reads the feed once more (anything committed before the `LISTEN` took effect). Notices
//! never queue up reads: they only wake the one background sync, whose wake-up holds at most one pending
//! permit, so a burst of notices costs at most one read in flight and one after it.

use crate::revocations::Revocations;
use portcullis_authz::store::{RevocationListener, Storage, StoreError};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the follower asks of the revocation set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Read the feed: the channel was just opened or lost, so notices may have been missed.
    CatchUp,
    /// A notice, with the newest sequence number it names (if any).
    Notice(Option<i64>),
}

/// Reconnection delays: doubling from `first` up to `cap`, back to `first` once connected.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    first: Duration,
    cap: Duration,
    next: Duration,
}

impl Default for Backoff {
    /// 100 ms, 200 ms, … up to 5 s: a restarted database is listened to again within about 5 s, and meanwhile
    /// the polls keep the bound of `revocation_sync_ms`.
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(5))
    }
}

impl Backoff {
    pub(crate) fn new(first: Duration, cap: Duration) -> Self {
        Self {
            first,
            cap,
            next: first,
        }
    }

    /// The delay before the next attempt.
    fn delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.cap);
        delay
    }

    fn reset(&mut self) {
        self.next = self.first;
    }
}

/// Follows the store's push channel for as long as the server runs; returns at once when the backend has none
/// (SQLite). `poll` is only for the log lines.
pub async fn follow(store: Arc<dyn Storage>, revocations: Arc<Revocations>, poll: Duration) {
    let connect = || {
        let store = store.clone();
        async move { store.listen_revocations().await }
    };
    let wake = |w| match w {
        Wake::CatchUp => revocations.sync_soon(),
        Wake::Notice(seq) => revocations.notice(seq),
    };
    run(connect, wake, Backoff::default(), poll).await;
}

/// The follower, over any connector (tests script one).
pub(crate) async fn run<C, F>(
    mut connect: C,
    wake: impl Fn(Wake),
    mut backoff: Backoff,
    poll: Duration,
) where
    C: FnMut() -> F,
    F: Future<Output = Result<Option<Box<dyn RevocationListener>>, StoreError>>,
{
    let poll_ms = poll.as_millis();
    // Since when pushes have been unavailable (for the log lines); `None` while listening or before the start.
    let mut down_since: Option<Instant> = None;
    loop {
        match connect().await {
            Ok(None) => return,
            Ok(Some(listener)) => {
                match down_since.take() {
                    Some(since) => tracing::warn!(
                        after_ms = since.elapsed().as_millis(),
                        "revocation push restored"
                    ),
                    None => tracing::info!("listening for revocations from other instances"),
                }
                backoff.reset();
                let e = listen(listener, &wake).await;
                tracing::warn!(error = %e, "revocation push lost: polling every {poll_ms} ms until it is back");
                down_since = Some(Instant::now());
                wake(Wake::CatchUp);
            }
            Err(e) if down_since.is_none() => {
                tracing::warn!(error = %e, "revocation push unavailable: polling every {poll_ms} ms until it is back");
                down_since = Some(Instant::now());
            }
            Err(e) => tracing::debug!(error = %e, "revocation push still unavailable"),
        }
        tokio::time::sleep(backoff.delay()).await;
    }
}

/// Reads the feed once (what committed before the `LISTEN`), then turns notices into wake-ups until the
/// channel is lost; returns why.
async fn listen(mut listener: Box<dyn RevocationListener>, wake: &impl Fn(Wake)) -> StoreError {
    wake(Wake::CatchUp);
    loop {
        match listener.next().await {
            Ok(seq) => wake(Wake::Notice(seq)),
            Err(e) => return e,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    /// A listener that replays a script of notices, then reports the channel lost.
    struct Scripted(VecDeque<Option<i64>>);

    #[async_trait::async_trait]
    impl RevocationListener for Scripted {
        async fn next(&mut self) -> Result<Option<i64>, StoreError> {
            self.0
                .pop_front()
                .ok_or_else(|| StoreError::Unavailable("lost".into()))
        }
    }

    type Connected = Result<Option<Box<dyn RevocationListener>>, StoreError>;

    fn listener(notices: &[Option<i64>]) -> Connected {
        Ok(Some(Box::new(Scripted(notices.iter().copied().collect()))))
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_starts_over_once_connected() {
        let ms = Duration::from_millis;
        let mut b = Backoff::default();
        let delays: Vec<_> = (0..8).map(|_| b.delay()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000].map(ms));
        b.reset();
        assert_eq!(b.delay(), ms(100));
    }

    /// Every opened channel is followed by a catch-up read, notices pass through with their hints, a lost
    /// channel is read after at once and reconnected, a failed connection is retried, and a backend without
    /// a channel ends the follower.
    #[tokio::test]
    async fn reads_after_every_connect_and_loss_and_reconnects() {
        let script = Mutex::new(VecDeque::from([
            listener(&[Some(3), None]),
            Err(StoreError::Unavailable("refused".into())),
            Err(StoreError::Unavailable("refused".into())),
            listener(&[Some(7)]),
            Ok(None),
        ]));
        let connects = Mutex::new(0);
        let connect = || {
            *connects.lock().unwrap() += 1;
            let next = script.lock().unwrap().pop_front().unwrap();
            async move { next }
        };
        let wakes = Mutex::new(Vec::new());
        let tiny = Backoff::new(Duration::from_millis(1), Duration::from_millis(2));
        run(
            connect,
            |w| wakes.lock().unwrap().push(w),
            tiny,
            Duration::from_secs(1),
        )
        .await;
        use Wake::*;
        assert_eq!(
            wakes.into_inner().unwrap(),
            [
                CatchUp,
                Notice(Some(3)),
                Notice(None),
                CatchUp,
                CatchUp,
                Notice(Some(7)),
                CatchUp
            ]
        );
        assert_eq!(connects.into_inner().unwrap(), 5);
    }
}
