//! Blobs to and from local files, for callers that hold no stream or buffer
//! types of their own (the `berth blob` commands).
//!
//! - [`BlobUpload::from_file`]: an upload whose bytes are read from a path,
//!   reopened for each attempt, in pieces of [`FILE_CHUNK`] bytes: a blob of
//!   any size is never held in memory.
//! - [`BlobStream::next_chunk`]: the next verified piece of a downloaded blob,
//!   so that it can be written out as it arrives.

use std::path::PathBuf;
use std::sync::Arc;

use berth_core::Digest;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

use crate::auth::ByteStream;
use crate::client::{BlobStream, BlobUpload, ClientError, OpenBlob};

/// The size of the pieces a file is read in.
pub const FILE_CHUNK: usize = 256 * 1024;

/// At most `len` bytes of `file`, read in pieces of [`FILE_CHUNK`].
pub(crate) fn file_stream(file: tokio::fs::File, len: u64) -> ByteStream {
    Box::pin(tokio_util::io::ReaderStream::with_capacity(
        file.take(len),
        FILE_CHUNK,
    ))
}

impl BlobUpload {
    /// The blob in the file at `path`: `size` bytes whose digest is `digest`
    /// (the caller hashed it). Each attempt reopens the file and reads at
    /// most `size` bytes; a file that shrank since is caught by the upload's
    /// length check, one whose bytes changed by the registry's digest check.
    pub fn from_file(path: PathBuf, digest: Digest, size: u64) -> Self {
        let path = Arc::new(path);
        let open: OpenBlob = Arc::new(move |offset| {
            let path = path.clone();
            Box::pin(async move {
                let mut file = tokio::fs::File::open(path.as_ref()).await?;
                if offset > 0 {
                    tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::Start(offset))
                        .await?;
                }
                Ok(file_stream(file, size.saturating_sub(offset)))
            })
        });
        Self {
            digest,
            size,
            open,
            mount_from: None,
        }
    }
}

impl BlobStream {
    /// The next piece of the blob; `None` at its end. The last item is the
    /// [`ClientError::DigestMismatch`] instead of the end when the bytes do
    /// not have the digest asked for: whatever was written must then be
    /// discarded.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, ClientError>> {
        self.next().await
    }
}
