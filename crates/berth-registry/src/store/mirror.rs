//! Copying blobs from one filesystem store into another, as `berth backup`
//! does: incremental, verified, durable.
//!
//! - A blob the target holds already (same digest file, same size) is not
//!   copied again. Blob files are never rewritten once in place (a digest
//!   names one content), so a file of the right size is the blob; a full
//!   re-hash of the target is what a restore test is for.
//! - A copy streams through a fixed buffer, hashing as it goes; the bytes
//!   must hash to the digest and number the size the metadata states, or the
//!   copy is discarded and the blob named as damaged.
//! - A copy is written to `<hex>.partial` beside its place, fsynced, renamed,
//!   and the directory fsynced: a backup cut off at any instant holds whole,
//!   verified blobs only, plus `.partial` files the next run removes
//!   ([`FsStore::remove_partials`]).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use berth_core::digest::{Digest, Digester};

use super::FsStore;

/// Suffix of a blob file being copied in.
const PARTIAL: &str = "partial";
/// Bytes read and written at a time.
const BUFFER: usize = 1024 * 1024;

/// How a blob reached the target store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mirrored {
    /// Its bytes were copied and verified.
    Copied,
    /// The target held it already.
    Present,
}

/// Why a blob could not be copied.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// The source store does not hold the blob.
    #[error("blob {digest} is missing from {}", path.display())]
    Missing {
        /// The blob.
        digest: Digest,
        /// Where it should be.
        path: PathBuf,
    },
    /// The source's bytes are not the blob the metadata names.
    #[error(
        "blob file {} is damaged: it holds {actual_size} bytes hashing to {actual}, not the \
         {size} bytes of {digest} the metadata names",
        path.display()
    )]
    Damaged {
        /// The blob as named.
        digest: Digest,
        /// Its size as recorded.
        size: u64,
        /// The file.
        path: PathBuf,
        /// What the file hashes to.
        actual: Digest,
        /// How many bytes it holds.
        actual_size: u64,
    },
    /// Reading, writing or renaming failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// `read`, `write`, `create`, `rename`, ...
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> MirrorError + use<> {
    let path = path.to_owned();
    move |source| MirrorError::Io {
        action,
        path,
        source,
    }
}

impl FsStore {
    /// Whether this store holds `digest` as a file of `size` bytes.
    pub fn holds(&self, digest: &Digest, size: u64) -> bool {
        fs::metadata(self.blob_path(digest)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// Copies blob `digest` of `size` bytes from this store into `to`, unless
    /// `to` holds it already; `progress` is told the bytes copied so far
    /// after each buffer. Blocking: call it off the async threads.
    pub fn copy_blob_to(
        &self,
        to: &FsStore,
        digest: &Digest,
        size: u64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Mirrored, MirrorError> {
        if to.holds(digest, size) {
            return Ok(Mirrored::Present);
        }
        let source = self.blob_path(digest);
        let mut input = match File::open(&source) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(MirrorError::Missing {
                    digest: digest.clone(),
                    path: source,
                });
            }
            Err(e) => return Err(io_error("open", &source)(e)),
        };
        let target = to.blob_path(digest);
        let dir = target
            .parent()
            .map_or_else(|| to.blobs.clone(), Path::to_path_buf);
        fs::create_dir_all(&dir).map_err(io_error("create", &dir))?;
        let partial = dir.join(format!("{}.{PARTIAL}", digest.hex()));
        let copied = copy_verified(&mut input, &source, &partial, digest, size, progress);
        if let Err(e) = copied {
            let _ = fs::remove_file(&partial);
            return Err(e);
        }
        fs::rename(&partial, &target).map_err(io_error("rename", &partial))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error("fsync", &dir))?;
        Ok(Mirrored::Copied)
    }

    /// Removes the `.partial` files an interrupted copy left; how many.
    pub fn remove_partials(&self) -> Result<u64, MirrorError> {
        let mut removed = 0;
        for algorithm in sub_dirs(&self.blobs)? {
            for shard in sub_dirs(&algorithm)? {
                let entries = fs::read_dir(&shard).map_err(io_error("list", &shard))?;
                for entry in entries {
                    let path = entry.map_err(io_error("list", &shard))?.path();
                    if path.extension().is_some_and(|e| e == PARTIAL) {
                        match fs::remove_file(&path) {
                            Ok(()) => removed += 1,
                            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                            Err(e) => return Err(io_error("remove", &path)(e)),
                        }
                    }
                }
            }
        }
        Ok(removed)
    }
}

/// Streams `input` into a new file at `partial`, hashing; checks size and
/// digest; fsyncs.
fn copy_verified(
    input: &mut File,
    source: &Path,
    partial: &Path,
    digest: &Digest,
    size: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<(), MirrorError> {
    let mut output = File::create(partial).map_err(io_error("create", partial))?;
    let mut digester = Digester::new(digest.algorithm());
    let mut buffer = vec![0u8; BUFFER];
    let mut copied: u64 = 0;
    loop {
        let n = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error("read", source)(e)),
        };
        let chunk = &buffer[..n];
        digester.update(chunk);
        output
            .write_all(chunk)
            .map_err(io_error("write", partial))?;
        copied += n as u64;
        progress(copied);
    }
    let actual = digester.finalize();
    if copied != size || actual != *digest {
        return Err(MirrorError::Damaged {
            digest: digest.clone(),
            size,
            path: source.to_owned(),
            actual,
            actual_size: copied,
        });
    }
    output.sync_all().map_err(io_error("fsync", partial))
}

/// The directories directly under `dir` (none when `dir` is missing).
fn sub_dirs(dir: &Path) -> Result<Vec<PathBuf>, MirrorError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("list", dir)(e)),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error("list", dir))?;
        if entry.file_type().map_err(io_error("list", dir))?.is_dir() {
            dirs.push(entry.path());
        }
    }
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use berth_core::endpoint::UploadId;
    use bytes::Bytes;

    use super::*;
    use crate::store::{BlobStore, ByteStream};

    async fn stored(store: &FsStore, bytes: &'static [u8]) -> Digest {
        let id = UploadId::parse(&format!("{:032x}", bytes.len())).unwrap();
        let staging = store.begin_upload(&id).await.unwrap();
        let body: ByteStream =
            Box::pin(futures_util::stream::iter([Ok(Bytes::from_static(bytes))]));
        let digester = Digester::new(berth_core::digest::Algorithm::Sha256);
        store
            .append(&staging, 0, digester, body, u64::MAX, None)
            .await
            .unwrap();
        let digest = Digest::sha256_of(bytes);
        store.commit(&staging, &digest).await.unwrap();
        digest
    }

    #[tokio::test]
    async fn a_blob_is_copied_once_then_found_present() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (from, to) = (
            FsStore::open(a.path()).unwrap(),
            FsStore::open(b.path()).unwrap(),
        );
        let digest = stored(&from, b"twelve bytes").await;
        let mut seen = Vec::new();
        let how = from
            .copy_blob_to(&to, &digest, 12, &mut |n| seen.push(n))
            .unwrap();
        assert_eq!(how, Mirrored::Copied);
        assert_eq!(seen.last(), Some(&12));
        assert_eq!(fs::read(to.blob_path(&digest)).unwrap(), b"twelve bytes");
        let how = from.copy_blob_to(&to, &digest, 12, &mut |_| {}).unwrap();
        assert_eq!(how, Mirrored::Present);
    }

    /// A source file whose bytes are not the blob is refused, and nothing is
    /// left in the target.
    #[tokio::test]
    async fn a_damaged_source_is_refused_and_leaves_nothing() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (from, to) = (
            FsStore::open(a.path()).unwrap(),
            FsStore::open(b.path()).unwrap(),
        );
        let digest = stored(&from, b"twelve bytes").await;
        fs::write(from.blob_path(&digest), b"twelve bytez").unwrap();
        let error = from
            .copy_blob_to(&to, &digest, 12, &mut |_| {})
            .unwrap_err();
        assert!(
            matches!(
                error,
                MirrorError::Damaged {
                    actual_size: 12,
                    ..
                }
            ),
            "{error}"
        );
        let shard = to.blob_path(&digest);
        let shard = shard.parent().unwrap();
        assert_eq!(fs::read_dir(shard).unwrap().count(), 0);
        let missing = Digest::sha256_of(b"never stored");
        assert!(matches!(
            from.copy_blob_to(&to, &missing, 1, &mut |_| {}),
            Err(MirrorError::Missing { .. })
        ));
    }

    #[tokio::test]
    async fn partial_files_are_removed() {
        let a = tempfile::tempdir().unwrap();
        let store = FsStore::open(a.path()).unwrap();
        let digest = stored(&store, b"kept").await;
        let dir = store.blob_path(&digest).parent().unwrap().to_owned();
        fs::write(dir.join(format!("{}.{PARTIAL}", "ab".repeat(32))), b"x").unwrap();
        assert_eq!(store.remove_partials().unwrap(), 1);
        assert_eq!(store.remove_partials().unwrap(), 0);
        assert!(store.holds(&digest, 4));
    }
}
