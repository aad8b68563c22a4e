//! Liveness and readiness probes.

use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// `GET /livez`: the process serves requests.
pub async fn livez() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// `GET /readyz`: the database answers.
pub async fn readyz(State(s): State<Arc<AppState>>) -> Response {
    match s.authz.core().store().ping().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", "5")],
                "database unavailable\n",
            )
                .into_response()
        }
    }
}
