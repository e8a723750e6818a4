//! The data directory's disk: a reserve of space kept for deletes, and what
//! the server does while the disk is full.
//!
//! A full disk must not lock the way out: a DELETE of a manifest, tag or blob
//! link is a write for SQLite too (WAL frames, then a checkpoint into the
//! database file), and on a disk with no free block it fails like any push.
//! So the registry keeps `<data>/reserve`, a file of [`Config::disk_reserve_bytes`]
//! written at start: when a delete finds the disk full, the reserve is given
//! back and the delete retried in the space it leaves. From then on writes
//! that store something (pushes, uploads) are refused before they start
//! (507), so that they cannot eat the freed space, until the reserve can be
//! written again: tried by a write request at most every [`RETRY`], and by
//! the sweep (`gc`) every minute.
//!
//! A full disk is logged at most once per [`LOG_EVERY`], with the number of
//! failed requests since the last line, not once per request.
//!
//! [`Config::disk_reserve_bytes`]: crate::Config::disk_reserve_bytes

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The reserve's file name under the data directory.
pub const RESERVE_FILE: &str = "reserve";
/// How long after a full disk was seen writes are refused without trying.
pub const RETRY: Duration = Duration::from_secs(5);
/// At most one log line about a full disk per this long.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// Whether an I/O error means the disk (or the user's quota) is full.
pub fn is_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// The reserve and the full-disk state of one data directory.
#[derive(Debug)]
pub struct DiskSpace {
    dir: PathBuf,
    /// `None` when no reserve is kept (size 0).
    reserve: Option<PathBuf>,
    size: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Whether the reserve file is in place, whole.
    held: bool,
    /// When a write last found the disk full.
    full_at: Option<Instant>,
    /// When the reserve was last tried.
    tried_at: Option<Instant>,
    /// When the full disk was last logged.
    logged_at: Option<Instant>,
    /// Failed requests not logged yet.
    unlogged: u64,
}

impl DiskSpace {
    /// Takes the reserve of `size` bytes under `dir` (0: none). A disk too
    /// full for it is not an error: the registry starts, refusing writes
    /// until the reserve can be written.
    pub fn open(dir: &Path, size: u64) -> Self {
        let reserve = (size > 0).then(|| dir.join(RESERVE_FILE));
        let space = Self {
            dir: dir.to_owned(),
            reserve,
            size,
            state: Mutex::default(),
        };
        let held = match &space.reserve {
            Some(path) => match write_reserve(path, size) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(
                        file = %path.display(),
                        bytes = size,
                        error = %e,
                        "cannot write the disk reserve; pushes are refused (507) until it fits: free space on the disk holding the data directory"
                    );
                    false
                }
            },
            None => true,
        };
        space.lock().held = held;
        space
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that a request failed on a full disk: writes wait [`RETRY`]
    /// before trying again. Logged at most once per [`LOG_EVERY`].
    pub fn note_full(&self, cause: &str) -> bool {
        self.record(Some(cause))
    }

    /// Records that a write was refused without trying (the disk was full a
    /// moment ago, or its reserve is given back). Logged as [`Self::note_full`].
    pub fn note_refused(&self) -> bool {
        self.record(None)
    }

    /// Counts a failed request; logs (and returns `true`) when the last line
    /// is older than [`LOG_EVERY`].
    fn record(&self, cause: Option<&str>) -> bool {
        let now = Instant::now();
        let mut state = self.lock();
        if cause.is_some() {
            state.full_at = Some(now);
        }
        state.unlogged += 1;
        if state
            .logged_at
            .is_some_and(|at| now.duration_since(at) < LOG_EVERY)
        {
            return false;
        }
        let failed = std::mem::take(&mut state.unlogged);
        state.logged_at = Some(now);
        let held = state.held;
        drop(state);
        tracing::error!(
            dir = %self.dir.display(),
            failed_requests = failed,
            cause = cause.unwrap_or("refused: the disk was full moments ago"),
            reserve_held = held,
            "the disk holding the data directory is full: pushes answer 507 Insufficient Storage, pulls and deletes still work; free space (delete unused images, or grow the disk)"
        );
        true
    }

    /// Whether a request that stores something may try: no full disk seen in
    /// the last [`RETRY`], and the reserve in place (written again here,
    /// at most once per [`RETRY`], when a delete had given it back).
    pub async fn admit_write(&self) -> bool {
        let now = Instant::now();
        {
            let mut state = self.lock();
            if state
                .full_at
                .is_some_and(|at| now.duration_since(at) < RETRY)
            {
                return false;
            }
            if state.held {
                return true;
            }
            if state
                .tried_at
                .is_some_and(|at| now.duration_since(at) < RETRY)
            {
                return false;
            }
            state.tried_at = Some(now);
        }
        self.restore().await
    }

    /// Writes the reserve again if it was given back; whether it is in place.
    pub async fn restore(&self) -> bool {
        let Some(path) = self.reserve.clone() else {
            return true;
        };
        if self.lock().held {
            return true;
        }
        let size = self.size;
        let written = tokio::task::spawn_blocking(move || write_reserve(&path, size))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e.to_string())));
        let mut state = self.lock();
        match written {
            Ok(()) => {
                if !state.held {
                    state.held = true;
                    state.full_at = None;
                    tracing::info!(
                        dir = %self.dir.display(),
                        bytes = size,
                        "disk space is back: the reserve is written again and pushes are accepted"
                    );
                }
                true
            }
            Err(e) => {
                if !is_full(&e) {
                    tracing::warn!(error = %e, "cannot write the disk reserve");
                }
                false
            }
        }
    }

    /// Gives the reserve back to the filesystem, so that a delete can proceed
    /// on a full disk; `false` when there was none to give.
    pub async fn release(&self) -> bool {
        let Some(path) = self.reserve.clone() else {
            return false;
        };
        {
            let mut state = self.lock();
            if !state.held {
                return false;
            }
            state.held = false;
            state.full_at = Some(Instant::now());
        }
        let removed = tokio::task::spawn_blocking(move || fs::remove_file(path))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e.to_string())));
        match removed {
            Ok(()) => {
                tracing::warn!(
                    dir = %self.dir.display(),
                    bytes = self.size,
                    "the disk is full: the reserve is given back so that deletes can proceed; pushes are refused until space is freed"
                );
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(e) => {
                tracing::error!(error = %e, "cannot remove the disk reserve");
                false
            }
        }
    }
}

/// Bytes an unprivileged writer may still use on the filesystem holding `dir`.
fn available(dir: &Path) -> io::Result<u64> {
    let stat = rustix::fs::statvfs(dir)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Writes `size` bytes to `path` (unless a file of that size is there), and
/// makes them durable; on failure, no partial file is left. Only when twice
/// `size` is free: writing the reserve must never be what fills the disk
/// under a push in flight.
fn write_reserve(path: &Path, size: u64) -> io::Result<()> {
    if fs::metadata(path).is_ok_and(|m| m.len() == size) {
        return Ok(());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let free = available(dir)?;
    if free < size.saturating_mul(2) {
        return Err(io::Error::new(
            io::ErrorKind::StorageFull,
            format!("{free} bytes free, the reserve needs {size} with as much to spare"),
        ));
    }
    let tmp = path.with_extension("partial");
    let written = (|| {
        let mut file = File::create(&tmp)?;
        // Not zeros: a compressing or deduplicating filesystem would store
        // those in no space at all, and the reserve would hold nothing.
        let mut block = vec![0u8; 1 << 20];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let bytes = state.to_le_bytes();
            chunk.copy_from_slice(bytes.get(..chunk.len()).unwrap_or(&bytes));
        }
        let mut left = size;
        while left > 0 {
            let n = usize::try_from(left.min(block.len() as u64)).unwrap_or(block.len());
            file.write_all(block.get(..n).unwrap_or(&block))?;
            left -= n as u64;
        }
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_reserve_is_written_released_and_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let space = DiskSpace::open(dir.path(), 3 << 20);
        let reserve = dir.path().join(RESERVE_FILE);
        assert_eq!(fs::metadata(&reserve).unwrap().len(), 3 << 20);
        assert!(space.admit_write().await);

        assert!(space.release().await);
        assert!(!reserve.exists());
        // Given back: writes wait, and the reserve is not given twice.
        assert!(!space.admit_write().await);
        assert!(!space.release().await);

        assert!(space.restore().await);
        assert_eq!(fs::metadata(&reserve).unwrap().len(), 3 << 20);
        assert!(space.admit_write().await);
        assert!(!dir.path().join("reserve.partial").exists());
    }

    /// A full disk fails every write for a while: one log line a minute, not
    /// one per request.
    #[test]
    fn a_full_disk_is_logged_once_per_minute() {
        let dir = tempfile::tempdir().unwrap();
        let space = DiskSpace::open(dir.path(), 0);
        assert!(space.note_full("first"));
        for _ in 0..100 {
            assert!(!space.note_full("again"));
            assert!(!space.note_refused());
        }
        assert_eq!(space.lock().unlogged, 200);
        space.lock().logged_at = Instant::now().checked_sub(LOG_EVERY);
        assert!(space.note_refused());
        assert_eq!(space.lock().unlogged, 0);
    }

    #[tokio::test]
    async fn no_reserve_admits_writes_and_has_nothing_to_give() {
        let dir = tempfile::tempdir().unwrap();
        let space = DiskSpace::open(dir.path(), 0);
        assert!(!dir.path().join(RESERVE_FILE).exists());
        assert!(space.admit_write().await);
        assert!(!space.release().await);
        assert!(space.note_full("test"));
        assert!(!space.admit_write().await, "a full disk was just seen");
    }
}
