//! The connection layer under the router: the accept loop, a cap on open connections and the HTTP/1 header
//! read timeout (SECURITY.md, "Slow clients"). `axum::serve` sets neither, so a client that never finishes its
//! header section held a descriptor for as long as it liked, and about a thousand of them exhausted a
//! 1,024-descriptor limit.
//!
//! - [`ConnectionLimits`]: `max_connections` and `header_read_timeout_ms`, and their defaults.
//! - [`serve`]: accepts until shutdown. Beyond the cap a connection is accepted and closed at once: the accept
//!   loop never waits for a slot, so it keeps the backlog drained and answers again as soon as one frees.
//!   Each connection is served by hyper's HTTP/1 with `header_read_timeout` (a connection whose request head
//!   is not complete in time is closed without an answer). hyper starts that timer whenever it waits for a
//!   request head, on a new connection and after each response, so the same timeout closes idle keep-alive
//!   connections; a request being answered (an event stream included) is never cut by it.
//!
//! Per request this adds nothing to what `axum::serve` did (the `ConnectInfo` extension, the router call)
//! except hyper's own head-read timer; per connection, one semaphore permit.

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt as _;

/// Default longest wait for a request's header section (and longest idle keep-alive), milliseconds.
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// The default connection cap never exceeds this, whatever the descriptor limit.
pub const DEFAULT_MAX_CONNECTIONS_CEILING: u32 = 4096;
/// Descriptors the default leaves to everything but client connections: database, log, key and vault files,
/// outbound clients (identity providers, metadata documents).
pub const DESCRIPTOR_HEADROOM: u64 = 128;
/// The default is never below this, however low the descriptor limit.
const DEFAULT_MAX_CONNECTIONS_FLOOR: u32 = 16;
/// The largest `max_connections` accepted.
pub const MAX_CONNECTIONS_LIMIT: u32 = 1_000_000;

/// The limits of client connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most client connections open at once; a connection beyond it is accepted and closed at once.
    pub max_connections: u32,
    /// Longest wait for a request's whole header section, from the connection's start or from the end of the
    /// previous response (so also the longest idle keep-alive); then the connection is closed.
    pub header_read_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: default_max_connections(descriptor_limit()),
            header_read_timeout: Duration::from_millis(DEFAULT_HEADER_READ_TIMEOUT_MS),
        }
    }
}

/// The default cap for a soft descriptor limit of `limit` (`None`: unknown or unlimited): half of what the
/// [`DESCRIPTOR_HEADROOM`] leaves (a gateway request holds an upstream connection besides the client's), at
/// most [`DEFAULT_MAX_CONNECTIONS_CEILING`], at least 16. With the common 1,024: 448.
pub fn default_max_connections(limit: Option<u64>) -> u32 {
    let Some(limit) = limit else {
        return DEFAULT_MAX_CONNECTIONS_CEILING;
    };
    let half = limit.saturating_sub(DESCRIPTOR_HEADROOM) / 2;
    u32::try_from(half).unwrap_or(u32::MAX).clamp(
        DEFAULT_MAX_CONNECTIONS_FLOOR,
        DEFAULT_MAX_CONNECTIONS_CEILING,
    )
}

/// The process's soft limit of open descriptors (`RLIMIT_NOFILE`), if it has one.
#[cfg(unix)]
pub fn descriptor_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// The process's soft limit of open descriptors: unknown here.
#[cfg(not(unix))]
pub fn descriptor_limit() -> Option<u64> {
    None
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes; then stops accepting, lets every
/// open connection finish (hyper's graceful shutdown: an idle one closes at once, a busy one after its
/// response) and returns when all have. The caller bounds that wait.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let http = Arc::new(http);
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    // Dropping the sender tells every connection to shut down gracefully.
    let (stop, stopping) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    let mut refusals = Refusals::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                accept_failed(&e).await;
                continue;
            }
        };
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let conn = connection(stream, peer, router.clone(), http.clone(), stopping.clone());
                tokio::spawn(async move {
                    conn.await;
                    drop(slot);
                });
            }
            // Closed at once (dropped): the descriptor is free again before the next accept.
            Err(_) => refusals.note(limits.max_connections),
        }
    }
    drop(listener);
    drop(stopping);
    drop(stop);
    // Every connection holds one permit until it ends, and none is taken any more: all of them back means
    // every connection has finished.
    let _ = slots.acquire_many(limits.max_connections).await;
}

/// One connection: HTTP/1 with the header read timeout, the peer address as axum's `ConnectInfo`, graceful
/// shutdown when `stopping` says so.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    http: Arc<http1::Builder>,
    mut stopping: watch::Receiver<()>,
) {
    // What `into_make_service_with_connect_info` did: the address as a request extension.
    let service = router.map_request(move |mut req: axum::http::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    });
    let mut conn = pin!(http
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
        .with_upgrades());
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = stopping.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // A header read timeout, a reset, a malformed request: the connection's own business.
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// An accept error: a connection that went away before it was accepted is skipped; anything else (out of
/// descriptors, say) is logged and the loop pauses briefly instead of spinning.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Connections closed at the cap, logged at most once a second with the count since the last line.
#[derive(Default)]
struct Refusals {
    count: u64,
    logged: Option<Instant>,
}

impl Refusals {
    fn note(&mut self, max_connections: u32) {
        self.count += 1;
        if self
            .logged
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            tracing::warn!(
                refused = self.count,
                max_connections,
                "connection limit reached; closing new connections"
            );
            self.count = 0;
            self.logged = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_cap_follows_the_descriptor_limit() {
        assert_eq!(default_max_connections(Some(1024)), 448);
        assert_eq!(default_max_connections(Some(65_536)), 4096);
        assert_eq!(default_max_connections(None), 4096);
        assert_eq!(default_max_connections(Some(u64::MAX)), 4096);
        assert_eq!(default_max_connections(Some(256)), 64);
        assert_eq!(default_max_connections(Some(100)), 16, "the floor");
        assert_eq!(default_max_connections(Some(0)), 16);
    }
}
