//! Background jobs of a running server: revocation sync (polled, and pushed by other instances), signing-key
//! reload, purge of expired rows, reaping of dead registrations (`portcullis_authz::client_reaping`).

use crate::state::AppState;
use std::sync::Arc;
use std::time::Duration;

/// Handles of the running jobs.
#[derive(Debug)]
pub struct Jobs(Vec<tokio::task::JoinHandle<()>>);

impl Jobs {
    /// Stops every job.
    pub fn abort(&self) {
        for j in &self.0 {
            j.abort();
        }
    }
}

/// Starts the jobs.
pub fn spawn(s: Arc<AppState>) -> Jobs {
    let a = s.clone();
    let revocations = tokio::spawn(async move {
        let period = Duration::from_millis(a.config.revocation_sync_ms.max(50));
        loop {
            if let Err(e) = a
                .revocations
                .sync(a.authz.core().store().as_ref(), a.authz.core().now())
                .await
            {
                tracing::warn!(error = %e, "revocation sync failed");
            }
            a.revocations.wait(period).await;
        }
    });
    // Other instances' revocations, pushed (PostgreSQL); ends at once on SQLite. The polls above stay the
    // fallback: they run whether or not the push channel is up.
    let push = tokio::spawn(crate::revocation_push::follow(
        s.authz.core().store().clone(),
        s.revocations.clone(),
        Duration::from_millis(s.config.revocation_sync_ms.max(50)),
    ));
    let b = s.clone();
    let keys = tokio::spawn(async move {
        let period = Duration::from_secs(b.config.key_reload_secs.max(1));
        loop {
            tokio::time::sleep(period).await;
            if let Err(e) = b.authz.keys().reload().await {
                tracing::warn!(error = %e, "signing key reload failed");
            }
        }
    });
    let mut jobs = vec![revocations, push, keys];
    if let Some(period) = (s.config.client_reaping).period(s.config.purge_interval_secs) {
        jobs.push(tokio::spawn(reap(s.clone(), Duration::from_secs(period))));
    }
    let c = s;
    let purge = tokio::spawn(async move {
        let period = Duration::from_secs(c.config.purge_interval_secs.max(1));
        loop {
            tokio::time::sleep(period).await;
            match c
                .authz
                .core()
                .store()
                .purge_expired(c.authz.core().now())
                .await
            {
                Ok(n) if n > 0 => tracing::info!(rows = n, "purged expired rows"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purge failed"),
            }
        }
    });
    jobs.push(purge);
    Jobs(jobs)
}

/// Every `period`: deletes the registrations the policy reaps. Every instance runs it; on PostgreSQL they skip
/// each other's locked rows, so two instances never wait on each other.
async fn reap(s: Arc<AppState>, period: Duration) {
    loop {
        tokio::time::sleep(period).await;
        match s.authz.registrations().reap(&s.config.client_reaping).await {
            Ok(ids) if !ids.is_empty() => {
                // Their grants were revoked: this instance's MCP endpoint refuses their tokens at once.
                s.revocations.sync_soon();
                tracing::info!(clients = ids.len(), "reaped dead client registrations");
                for id in &ids {
                    tracing::debug!(client_id = %id, "reaped client");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reaping client registrations failed"),
        }
    }
}
