//! Garbage collection: what the registry removes on its own.
//!
//! Today: upload sessions untouched for longer than `upload_ttl`, with their
//! staging bytes. (Unreferenced blobs come later; deletes only unlink.)

use std::time::Duration;

use crate::Registry;
use crate::error::RegistryError;

/// How often the expiry sweep runs.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Sessions removed per batch.
const BATCH: u32 = 500;

/// Removes every upload session untouched since `now - ttl`; returns how many.
pub async fn expire_uploads(r: &Registry, now: i64) -> Result<u64, RegistryError> {
    let ttl = i64::try_from(r.config.upload_ttl.as_secs()).unwrap_or(i64::MAX);
    let before = now.saturating_sub(ttl);
    let mut removed = 0;
    loop {
        let stale = r.meta.stale_uploads(before, BATCH).await?;
        let batch = stale.len();
        for session in stale {
            r.blobs.abort(&session.staging).await?;
            r.meta.delete_upload(&session.id).await?;
            removed += 1;
        }
        if batch < BATCH as usize {
            return Ok(removed);
        }
    }
}

/// Runs [`expire_uploads`] every [`SWEEP_INTERVAL`], forever.
pub async fn run_upload_expiry(r: Registry) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tick.tick().await;
        let now = crate::clock::now_unix();
        match expire_uploads(&r, now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "expired stale upload sessions"),
            Err(e) => {
                tracing::warn!(error = %e, "upload expiry sweep failed; retrying next interval")
            }
        }
    }
}
