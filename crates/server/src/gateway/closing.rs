//! [`StreamCloser`]: ends the gateway's open server-to-client (`GET`) event streams when a graceful shutdown
//! begins. They never end by themselves, and clients reconnect (with `Last-Event-ID`) to another instance.
//! One per server, held by [`crate::AppState`] (no process-global state: two servers in one process, as in
//! tests, shut down independently).

use tokio::sync::watch;

/// The shutdown signal of the gateway's `GET` streams.
#[derive(Debug)]
pub struct StreamCloser(watch::Sender<u64>);

impl Default for StreamCloser {
    fn default() -> Self {
        Self(watch::channel(0).0)
    }
}

impl StreamCloser {
    /// Ends every stream opened so far. Responses to `POST`s, event streams included, are left to complete.
    pub fn close_streams(&self) {
        self.0.send_modify(|generation| *generation += 1);
    }

    /// A receiver that changes at the next [`StreamCloser::close_streams`].
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}
