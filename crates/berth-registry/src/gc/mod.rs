//! Garbage collection: what the registry removes on its own, in one sweep
//! that runs when the server starts and then every [`SWEEP_INTERVAL`].
//!
//! - Upload sessions untouched for longer than `upload_ttl`, with their
//!   staging bytes.
//! - What a crash (kill -9, power loss) leaves behind, reconciled against the
//!   metadata: staging files no session names (the file is created just
//!   before its session is recorded) and blob files no blob record names
//!   (bytes are committed just before the blob is recorded). Only files last
//!   written more than one [`SWEEP_INTERVAL`] ago are removed: a session is
//!   recorded, and a committed blob recorded, within milliseconds of their
//!   files being written, and a commit marks the bytes it relies on as
//!   written now (`store`), so an upload in progress or a blob being committed
//!   is never touched. Blobs are checked [`BLOB_BATCH`] per sweep, resuming
//!   where the last sweep stopped, so a large store costs little each minute.
//! - The disk reserve (`store::space`) is written again once space returns.
//!
//! What nothing references any more (blobs, links, untagged manifests, tags
//! retention policies expire) is the collector's (`collector.rs`), which this
//! sweep does not touch.

pub mod collector;
pub mod pulls;
pub mod retention;

use std::time::{Duration, SystemTime};

use berth_core::digest::Digest;

use crate::Registry;
use crate::error::RegistryError;
use crate::meta::gc_sql::GcSql;

/// How often the sweep runs; also the least age of a file the reconciliation removes.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Sessions removed per batch.
const BATCH: u32 = 500;
/// Staging files looked at per sweep.
const STAGING_BATCH: usize = 10_000;
/// Blob files looked at per sweep.
pub const BLOB_BATCH: usize = 1_000;

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

/// What one reconciliation removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    /// Staging files no upload session named.
    pub staging_files: u64,
    /// Blob files no blob record named.
    pub blob_files: u64,
}

/// Where the reconciliation of blob files resumes.
#[derive(Debug, Default, Clone)]
pub struct BlobCursor(Option<Digest>);

/// Removes staging files no upload session names, last written before
/// `staging_before`, and (up to `blob_batch`, from `cursor` on) blob files no
/// record names, last written before `blobs_before`.
pub async fn reconcile(
    r: &Registry,
    staging_before: SystemTime,
    blobs_before: SystemTime,
    cursor: &mut BlobCursor,
    blob_batch: usize,
) -> Result<Reconciled, RegistryError> {
    let mut done = Reconciled::default();
    for (staging, modified) in r.blobs.list_staging(STAGING_BATCH).await? {
        if modified < staging_before && !r.meta.staging_in_use(&staging).await? {
            r.blobs.abort(&staging).await?;
            tracing::debug!(staging, "removed a staging file no upload session names");
            done.staging_files += 1;
        }
    }
    let blobs = r.blobs.list_blobs(cursor.0.as_ref(), blob_batch).await?;
    // A short page ends the pass: the next one starts over.
    cursor.0 = if blobs.len() < blob_batch {
        None
    } else {
        blobs.last().map(|(digest, _)| digest.clone())
    };
    for (digest, modified) in blobs {
        if modified < blobs_before
            && r.meta.blob_size(&digest).await?.is_none()
            && remove_unrecorded(r, &digest, blobs_before).await?
        {
            tracing::debug!(%digest, "removed a blob file no blob record names");
            done.blob_files += 1;
        }
    }
    Ok(done)
}

/// Removes a blob file no record names, unless written since `before`:
/// checked and removed while the digest is locked, so that an upload
/// recording the blob meanwhile (which checks its bytes under the same lock)
/// either comes first and keeps them or finds them gone and says so.
async fn remove_unrecorded(
    r: &Registry,
    digest: &Digest,
    before: SystemTime,
) -> Result<bool, RegistryError> {
    let sql = GcSql::new(r.db.clone());
    let mut tx = sql.begin_blob(digest).await?;
    if GcSql::blob_recorded_in(&mut tx, digest).await? {
        return Ok(false);
    }
    let removed = r.blobs.remove_blob_unless_newer(digest, before).await?;
    tx.commit().await.map_err(crate::meta::MetaError::from)?;
    Ok(removed)
}

/// One sweep: expiry, reconciliation, the disk reserve.
async fn sweep(r: &Registry, cursor: &mut BlobCursor) {
    let now = crate::clock::now_unix();
    match expire_uploads(r, now).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "expired stale upload sessions"),
        Err(e) => {
            tracing::warn!(error = %e, "upload expiry sweep failed; retrying next interval")
        }
    }
    // Staging files are recorded within milliseconds of their creation: one
    // interval is old enough. Blob files no record names are reclaimed once
    // as old as the collector's delay (and never younger than one interval).
    let ago = |age: Duration| {
        SystemTime::now()
            .checked_sub(age)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    };
    let blobs_age = r.config.gc.delay.max(SWEEP_INTERVAL);
    match reconcile(r, ago(SWEEP_INTERVAL), ago(blobs_age), cursor, BLOB_BATCH).await {
        Ok(Reconciled {
            staging_files: 0,
            blob_files: 0,
        }) => {}
        Ok(done) => tracing::info!(
            staging_files = done.staging_files,
            blob_files = done.blob_files,
            "removed files a crash left behind (no metadata names them)"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "reconciliation of stored files failed; retrying next interval")
        }
    }
    r.disk.restore().await;
}

/// Runs the sweep at once (reconciling what a crash left), then every
/// [`SWEEP_INTERVAL`], forever.
pub async fn run_sweep(r: Registry) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    let mut cursor = BlobCursor::default();
    loop {
        tick.tick().await;
        sweep(&r, &mut cursor).await;
    }
}
