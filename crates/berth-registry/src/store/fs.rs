//! The filesystem blob store, the embedded default.
//!
//! Layout under the data directory:
//!
//! ```text
//! blobs/<algorithm>/<first two hex>/<hex>   one file per digest, never rewritten
//! uploads/<upload id>                       staging files of unfinished uploads
//! ```
//!
//! Writes go to the staging file from a blocking thread that hashes and writes
//! while the async side keeps receiving, through a small bounded channel, so
//! memory per upload stays constant whatever the blob's size. The thread
//! writes the body's chunks as they come, without a buffer of its own: a
//! 256 KiB buffer per upload was a third of the peak memory of 100
//! concurrent uploads (BENCHMARKS.md) and bought no throughput: the body's
//! chunks average 128 KiB on a loopback push of 1 GiB (`strace -e write`). A staging file is
//! fsynced before an append is acknowledged, and renamed to its content address
//! (then the directory fsynced) only after the digest was verified.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use berth_core::digest::{Digest, Digester};
use berth_core::endpoint::UploadId;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncSeekExt;
use tokio::sync::mpsc;
use tokio_util::io::ReaderStream;

use super::{Appended, BlobReader, BlobStore, ByteRange, ByteStream, StoreError};

/// Chunks in flight between the request body and the writing thread.
const CHANNEL_DEPTH: usize = 4;
/// Read size when serving blobs.
const IO_BUFFER: usize = 256 * 1024;

/// The filesystem blob store.
#[derive(Debug, Clone)]
pub struct FsStore {
    blobs: PathBuf,
    uploads: PathBuf,
}

impl FsStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let blobs = root.join("blobs");
        let uploads = root.join("uploads");
        fs::create_dir_all(&blobs)?;
        fs::create_dir_all(&uploads)?;
        Ok(Self { blobs, uploads })
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.blobs
            .join(digest.algorithm().as_str())
            .join(hex.get(..2).unwrap_or("00"))
            .join(hex)
    }

    /// The staging path for a name this store handed out (an upload id).
    fn staging_path(&self, staging: &str) -> Result<PathBuf, StoreError> {
        // Names come from `begin_upload`; re-check so that a corrupt database
        // row can never point outside the uploads directory.
        UploadId::parse(staging).map_err(|_| StoreError::NotFound)?;
        Ok(self.uploads.join(staging))
    }
}

#[async_trait]
impl BlobStore for FsStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        match tokio::fs::metadata(self.blob_path(digest)).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn open(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<BlobReader, StoreError> {
        let mut file = match tokio::fs::File::open(self.blob_path(digest)).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let total = file.metadata().await?.len();
        let (start, len) = match range {
            Some(r) => (r.start, r.len()),
            None => (0, total),
        };
        if start > 0 {
            file.seek(SeekFrom::Start(start)).await?;
        }
        let reader = tokio::io::AsyncReadExt::take(file, len);
        Ok(BlobReader {
            len,
            stream: Box::pin(ReaderStream::with_capacity(reader, IO_BUFFER)),
        })
    }

    async fn delete(&self, digest: &Digest) -> Result<(), StoreError> {
        match tokio::fs::remove_file(self.blob_path(digest)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn begin_upload(&self, id: &UploadId) -> Result<String, StoreError> {
        let path = self.staging_path(id.as_str())?;
        tokio::task::spawn_blocking(move || {
            File::create(&path)?.sync_all()?;
            sync_dir(path.parent())
        })
        .await
        .map_err(join_error)??;
        Ok(id.as_str().to_owned())
    }

    async fn append(
        &self,
        staging: &str,
        offset: u64,
        digester: Digester,
        mut body: ByteStream,
        limit: u64,
    ) -> Result<Appended, StoreError> {
        let path = self.staging_path(staging)?;
        let (tx, rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
        let writer =
            tokio::task::spawn_blocking(move || write_staging(&path, offset, digester, rx));

        let mut received: u64 = 0;
        let mut failure = None;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    failure = Some(StoreError::Body(e));
                    break;
                }
            };
            received += chunk.len() as u64;
            if received > limit {
                failure = Some(StoreError::TooLarge { limit });
                break;
            }
            if tx.send(chunk).await.is_err() {
                // The writer stopped early: its own error says why.
                break;
            }
        }
        drop(tx);
        let written = writer.await.map_err(join_error)?;
        if let Some(failure) = failure {
            return Err(failure);
        }
        written
    }

    async fn commit(&self, staging: &str, digest: &Digest) -> Result<(), StoreError> {
        let from = self.staging_path(staging)?;
        let to = self.blob_path(digest);
        tokio::task::spawn_blocking(move || {
            let dir = to.parent();
            if let Some(dir) = dir {
                fs::create_dir_all(dir)?;
            }
            if to.exists() {
                // One copy per digest: the stored one is already verified.
                remove_if_present(&from)?;
                return Ok(());
            }
            match fs::rename(&from, &to) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::NotFound),
                other => other?,
            }
            sync_dir(dir)?;
            sync_dir(from.parent())
        })
        .await
        .map_err(join_error)?
    }

    async fn read_staging(&self, staging: &str, len: u64) -> Result<BlobReader, StoreError> {
        let file = match tokio::fs::File::open(self.staging_path(staging)?).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let reader = tokio::io::AsyncReadExt::take(file, len);
        Ok(BlobReader {
            len,
            stream: Box::pin(ReaderStream::with_capacity(reader, IO_BUFFER)),
        })
    }

    async fn abort(&self, staging: &str) -> Result<(), StoreError> {
        let path = self.staging_path(staging)?;
        tokio::task::spawn_blocking(move || remove_if_present(&path))
            .await
            .map_err(join_error)?
    }
}

/// The writing thread of an append: truncate to `offset`, then hash and write
/// every chunk, then fsync.
fn write_staging(
    path: &Path,
    offset: u64,
    mut digester: Digester,
    mut rx: mpsc::Receiver<Bytes>,
) -> Result<Appended, StoreError> {
    let mut file = match OpenOptions::new().write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::NotFound),
        Err(e) => return Err(e.into()),
    };
    file.set_len(offset)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut end = offset;
    while let Some(chunk) = rx.blocking_recv() {
        digester.update(&chunk);
        file.write_all(&chunk)?;
        end += chunk.len() as u64;
    }
    file.sync_data()?;
    Ok(Appended {
        offset: end,
        digester,
    })
}

fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Makes a rename or a new file in `dir` durable.
fn sync_dir(dir: Option<&Path>) -> Result<(), StoreError> {
    if let Some(dir) = dir {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn join_error(e: tokio::task::JoinError) -> StoreError {
    StoreError::Io(io::Error::other(format!("blob store worker failed: {e}")))
}
