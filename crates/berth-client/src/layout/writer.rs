//! [`BlobWriter`]: one blob streamed into a layout, visible under its name
//! only once complete, verified and durable.
//!
//! The bytes go to a temporary file directly in `blobs/` (a dot name, unique
//! per process and writer, created exclusively, so parallel writers never
//! share one), are hashed as they are written, and on commit are checked
//! against the digest, fsynced and renamed to `blobs/<alg>/<hex>`. A rename
//! within one directory tree is atomic: readers see no blob or the whole blob.
//! A writer dropped before commit, or whose bytes have another digest, removes
//! its temporary file.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use berth_core::{Digest, Digester};
use tokio::fs;
use tokio::io::AsyncWriteExt;

use super::LayoutError;

/// Distinguishes the temporary files of the writers of one process.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// How many names are tried when a temporary file name is taken (by a file
/// a crashed process with the same pid left behind).
const TEMP_ATTEMPTS: u32 = 8;

/// Streams one blob into the layout: into a temporary file of its own in
/// `blobs/`, hashed as written; [`BlobWriter::commit`] checks the digest,
/// fsyncs and renames the file to `blobs/<alg>/<hex>`. Dropped without a
/// commit, the writer removes its temporary file.
#[derive(Debug)]
pub struct BlobWriter {
    file: fs::File,
    temp: TempFile,
    target: PathBuf,
    expected: Digest,
    digester: Digester,
}

impl BlobWriter {
    /// A writer of the blob `expected`, to end at `target`, with its
    /// temporary file in `blobs`.
    pub(super) async fn create(
        blobs: &Path,
        target: PathBuf,
        expected: Digest,
    ) -> Result<Self, LayoutError> {
        fs::create_dir_all(blobs)
            .await
            .map_err(LayoutError::io("create", blobs))?;
        let short = expected.hex().get(..16).unwrap_or(expected.hex());
        let mut attempt = 0;
        loop {
            let n = NEXT_TEMP.fetch_add(1, Ordering::Relaxed);
            let path = blobs.join(format!(".{short}.{}.{n}.partial", std::process::id()));
            let opened = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .await;
            match opened {
                Ok(file) => {
                    return Ok(Self {
                        file,
                        temp: TempFile { path, armed: true },
                        target,
                        digester: Digester::new(expected.algorithm()),
                        expected,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < TEMP_ATTEMPTS => {
                    attempt += 1;
                }
                Err(source) => return Err(LayoutError::io("create", &path)(source)),
            }
        }
    }

    /// Appends `chunk`.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), LayoutError> {
        self.file
            .write_all(chunk)
            .await
            .map_err(LayoutError::io("write", &self.temp.path))?;
        self.digester.update(chunk);
        Ok(())
    }

    /// How many bytes have been written.
    pub fn written(&self) -> u64 {
        self.digester.bytes_hashed()
    }

    /// Checks the bytes against the digest, makes them durable and puts them
    /// in place; returns their count. [`LayoutError::DigestMismatch`] when
    /// they have another digest; the temporary file is removed on any error.
    pub async fn commit(self) -> Result<u64, LayoutError> {
        let Self {
            mut file,
            temp,
            target,
            expected,
            digester,
        } = self;
        file.flush()
            .await
            .map_err(LayoutError::io("write", &temp.path))?;
        file.sync_all()
            .await
            .map_err(LayoutError::io("sync", &temp.path))?;
        drop(file);
        let size = digester.bytes_hashed();
        let actual = digester.finalize();
        if actual != expected {
            return Err(LayoutError::DigestMismatch {
                path: target,
                expected,
                actual,
            });
        }
        let dir = target.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)
            .await
            .map_err(LayoutError::io("create", dir))?;
        fs::rename(&temp.path, &target)
            .await
            .map_err(LayoutError::io("rename a blob into", &target))?;
        temp.disarm();
        // Makes the rename durable; the blob is complete either way.
        if let Ok(dir) = fs::File::open(dir).await {
            let _ = dir.sync_all().await;
        }
        Ok(size)
    }
}

/// A temporary file removed when dropped, unless disarmed.
#[derive(Debug)]
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    /// The file has been renamed into place: nothing to remove.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a partial blob");
        }
    }
}
