//! Health endpoints for load balancers and orchestrators, unauthenticated and
//! cheap (not part of the OCI spec):
//! - `GET /healthz`: the process is alive and serving; touches nothing.
//! - `GET /readyz`: this node can serve requests: the metadata database
//!   answers one round trip and the blob store answers its own check
//!   (`BlobStore::ready`), both within [`CHECK_TIMEOUT`], checked side by side.
//!
//! Both answer JSON. A failed readiness check answers 503 naming the checks
//! that failed (`{"status":"unavailable","failed":["database"]}`); the cause
//! goes to the log only, as an unauthenticated caller has no business
//! reading database errors.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::router::AppState;

/// How long each readiness check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`: 200 `{"status":"alive"}` while the process serves.
pub async fn get_healthz() -> Response {
    Json(json!({ "status": "alive" })).into_response()
}

/// `GET /readyz`: 200 `{"status":"ready"}` when the database and the blob
/// store answer; else 503 with the failed checks.
pub async fn get_readyz(State(app): State<AppState>) -> Response {
    let r = &app.registry;
    let (database, blob_store) = tokio::join!(
        check("database", r.meta.ready()),
        check("blob_store", r.blobs.ready()),
    );
    let failed: Vec<&str> = [database, blob_store].into_iter().flatten().collect();
    if failed.is_empty() {
        return Json(json!({ "status": "ready" })).into_response();
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "status": "unavailable", "failed": failed })),
    )
        .into_response()
}

/// Runs one check: `None` when it passed, else its name (the cause logged).
async fn check<E: std::fmt::Display>(
    name: &'static str,
    probe: impl Future<Output = Result<(), E>>,
) -> Option<&'static str> {
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            tracing::warn!(check = name, error = %e, "readiness check failed");
            Some(name)
        }
        Err(_) => {
            tracing::warn!(
                check = name,
                timeout_secs = CHECK_TIMEOUT.as_secs(),
                "readiness check did not answer in time"
            );
            Some(name)
        }
    }
}
