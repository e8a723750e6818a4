//! The blob store: content-addressed bytes, and the staging area uploads write to.
//!
//! Rule of this layer: it moves bytes and knows nothing of repositories, tags or
//! HTTP. Which repository may read a blob is the metadata store's business
//! (`meta`); the blob store keeps one copy per digest.
//!
//! An upload writes to a staging location through [`BlobStore::append`], which
//! hashes while it writes; [`BlobStore::commit`] makes the bytes durable and
//! moves them to their content address only after the caller verified the
//! digest. A crash at any instant leaves either no blob or a whole, verified one,
//! and possibly bytes no metadata names (a staging file whose session was never
//! recorded, a blob committed but not yet recorded): the sweep (`gc`) lists
//! those with [`BlobStore::list_staging`] and [`BlobStore::list_blobs`] and
//! removes the ones old enough that no request can still be writing them.
//!
//! Two stores: [`FsStore`] (the data directory, the embedded default) and
//! [`S3Store`] (an S3 bucket, for several nodes). An upload's staging
//! location is a name the store hands out and the metadata store records
//! with the session's offset and hash state; a store whose staging moves as
//! bytes arrive (S3: multipart part ids and a tail object) returns the new
//! name with each [`Appended`], recorded in the same step as the offset.

pub mod fs;
pub mod mirror;
pub mod s3;
pub mod space;

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use berth_core::digest::{Digest, Digester};
use berth_core::endpoint::UploadId;
use bytes::Bytes;
use futures_util::Stream;

pub use fs::FsStore;
pub use s3::{S3Settings, S3Store};

/// A stream of body chunks, as a request delivers them.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send>>;

/// What can go wrong in the blob store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The blob or staging file is not there.
    #[error("not found in the blob store")]
    NotFound,
    /// The request body failed or ended early while streaming.
    #[error("request body failed: {0}")]
    Body(io::Error),
    /// The request body failed or ended early after `progress.offset` bytes
    /// of the upload were durably stored: the upload can continue from there.
    #[error("request body failed after {} bytes were stored: {cause}", progress.offset)]
    Interrupted {
        /// What was stored, durable, before the body failed (boxed: a
        /// digest state is large and every error carries this enum).
        progress: Box<Appended>,
        /// Why the body failed.
        cause: io::Error,
    },
    /// The body carried more bytes than the upload allows.
    #[error("body exceeds the {limit}-byte limit for this request")]
    TooLarge {
        /// The limit that was exceeded.
        limit: u64,
    },
    /// The disk (or object store) failed.
    #[error("blob store I/O error: {0}")]
    Io(#[from] io::Error),
}

impl StoreError {
    /// Whether the failure is a full disk (or quota).
    pub fn is_disk_full(&self) -> bool {
        match self {
            Self::Io(e) => space::is_full(e),
            _ => false,
        }
    }
}

/// Progress of one blob copied from one store to another, as `berth
/// backup` and `berth migrate` report it to their caller.
#[derive(Debug, Clone)]
pub enum BlobCopy {
    /// The copy started.
    Started {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// Bytes of it copied so far.
    Progress {
        /// The blob.
        digest: Digest,
        /// Bytes copied.
        moved: u64,
    },
    /// Copied and verified.
    Done {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
    },
}

/// An inclusive byte range `start..=end` of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
}

impl ByteRange {
    /// The number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Always false: a range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// An open blob: its bytes as a stream and how many there are.
pub struct BlobReader {
    /// Number of bytes the stream yields.
    pub len: u64,
    /// The bytes.
    pub stream: ByteStream,
}

/// Where an append reports checkpoints as its bytes become durable, so that
/// an upload cut off (or a process killed) mid-body continues from the last
/// one instead of from its start.
pub type Checkpoints = tokio::sync::mpsc::UnboundedSender<Appended>;

/// The result of appending a body to an upload, or a checkpoint of one.
#[derive(Debug, Clone)]
pub struct Appended {
    /// The upload's length after the append.
    pub offset: u64,
    /// The hash state after the append.
    pub digester: Digester,
    /// The staging location's new name, when the append changed it (S3:
    /// the parts uploaded and the tail object); `None` when it is unchanged.
    /// Recorded with the offset, it names exactly the bytes up to it.
    pub staging: Option<String>,
}

impl Appended {
    /// How an append ends: with `self`, or, when the body failed with
    /// `failure`, with [`StoreError::Interrupted`] carrying `self` (what
    /// was stored, durable, before the failure).
    pub fn or_interrupted(self, failure: Option<io::Error>) -> Result<Self, StoreError> {
        match failure {
            Some(cause) => Err(StoreError::Interrupted {
                progress: Box::new(self),
                cause,
            }),
            None => Ok(self),
        }
    }
}

/// The blob store.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// The size of a stored blob, or `None`.
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StoreError>;

    /// Opens a blob, whole or one range of it.
    async fn open(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<BlobReader, StoreError>;

    /// Removes a blob's bytes. Missing blobs are not an error.
    async fn delete(&self, digest: &Digest) -> Result<(), StoreError>;

    /// Whether the store answers (for `/readyz`): cheap, touches no blob.
    async fn ready(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// A short-lived URL the client may fetch a stored blob from directly
    /// (an HTTP redirect), when the store is set to hand those out; `None`
    /// when the registry streams the blob itself.
    async fn redirect(&self, digest: &Digest) -> Result<Option<String>, StoreError> {
        let _ = digest;
        Ok(None)
    }

    /// Creates an empty staging location for an upload; returns its name.
    async fn begin_upload(&self, id: &UploadId) -> Result<String, StoreError>;

    /// Writes `body` at `offset` (discarding anything the staging location held
    /// beyond it, such as the remains of a failed request), hashing as it goes,
    /// and makes the bytes durable before returning. At most `limit` bytes are
    /// accepted.
    ///
    /// While the body streams, durable checkpoints (offset and hash state at
    /// that offset) go to `checkpoints` every few seconds or tens of MiB. A
    /// body that fails midway ends in [`StoreError::Interrupted`] carrying
    /// what was stored up to the failure.
    async fn append(
        &self,
        staging: &str,
        offset: u64,
        digester: Digester,
        body: ByteStream,
        limit: u64,
        checkpoints: Option<Checkpoints>,
    ) -> Result<Appended, StoreError>;

    /// Moves verified bytes from staging to their content address (keeping the
    /// existing copy when the blob is already stored).
    async fn commit(&self, staging: &str, digest: &Digest) -> Result<(), StoreError>;

    /// Takes a local file whose bytes the caller verified to be `digest`
    /// (`size` bytes) as that blob, as [`BlobStore::commit`] does a
    /// staging location (the pull-through cache's spool). The default copies
    /// it through the upload path, hashed again ([`adopt_by_upload`]); the
    /// filesystem store moves it into place when it is on the same
    /// filesystem. The file may be left where it was, for the caller to
    /// remove.
    async fn adopt(&self, path: &Path, digest: &Digest, size: u64) -> Result<(), StoreError> {
        adopt_by_upload(self, path, digest, size).await
    }

    /// Reads the first `len` bytes of a staging location back.
    async fn read_staging(&self, staging: &str, len: u64) -> Result<BlobReader, StoreError>;

    /// Discards a staging location. Missing ones are not an error.
    async fn abort(&self, staging: &str) -> Result<(), StoreError>;

    /// Up to `limit` staging locations, each with when it was last written,
    /// named by the id of the upload session they belong to (what
    /// `MetaStore::staging_in_use` looks up); [`BlobStore::abort`] takes
    /// such a name as well as a session's recorded staging.
    async fn list_staging(&self, limit: usize) -> Result<Vec<(String, SystemTime)>, StoreError>;

    /// Up to `limit` stored blobs whose digests sort (as text) after `after`,
    /// in that order, each with when its bytes were last committed.
    async fn list_blobs(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, SystemTime)>, StoreError>;

    /// Removes a blob's bytes unless they were committed at or after
    /// `before`; whether they were removed. Safe against a concurrent
    /// [`BlobStore::commit`] of the same digest: a commit marks the bytes it
    /// keeps or puts in place as committed now, and either that mark is seen
    /// here or the commit finds the bytes gone and puts its own in place.
    async fn remove_blob_unless_newer(
        &self,
        digest: &Digest,
        before: SystemTime,
    ) -> Result<bool, StoreError>;
}

/// [`BlobStore::adopt`] through the upload path: a staging location, the
/// file appended (hashed), the digest and length checked, committed.
pub async fn adopt_by_upload<S: BlobStore + ?Sized>(
    store: &S,
    path: &Path,
    digest: &Digest,
    size: u64,
) -> Result<(), StoreError> {
    let id = UploadId::parse(&uuid::Uuid::new_v4().simple().to_string())
        .map_err(|e| StoreError::Io(io::Error::other(format!("upload id: {e}"))))?;
    let staging = store.begin_upload(&id).await?;
    let file = tokio::fs::File::open(path).await?;
    let body: ByteStream = Box::pin(tokio_util::io::ReaderStream::with_capacity(
        file,
        256 * 1024,
    ));
    let appended = match store
        .append(
            &staging,
            0,
            Digester::new(digest.algorithm()),
            body,
            size,
            None,
        )
        .await
    {
        Ok(appended) => appended,
        Err(e) => {
            let _ = store.abort(&staging).await;
            return Err(e);
        }
    };
    let staging = appended.staging.clone().unwrap_or(staging);
    let got = appended.digester.finalize();
    if appended.offset != size || got != *digest {
        let _ = store.abort(&staging).await;
        return Err(StoreError::Io(io::Error::other(format!(
            "{} changed on disk: {} bytes hashing to {got}, not {digest}",
            path.display(),
            appended.offset
        ))));
    }
    store.commit(&staging, digest).await
}
