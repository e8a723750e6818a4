//! The S3 blob store: blobs in a bucket of S3 or an S3-compatible service,
//! shared by any number of registry nodes.
//!
//! Layout under the configured prefix:
//!
//! ```text
//! blobs/<algorithm>/<hex>        one object per digest, its name its digest
//! uploads/<id>/tail-<uuid>       bytes of an upload short of a full part
//! uploads/<id>/blob              the upload's multipart target (assembled at commit)
//! marks/<algorithm>/<hex>        "committed again": a commit found the blob stored
//! reclaiming/<algorithm>/<hex>   a blob the sweep is removing (for a moment)
//! ```
//!
//! An upload is an S3 multipart upload whose state (its id, the parts' ids,
//! the tail object) is the session's staging location in the metadata
//! store ([`staging`]), recorded with the offset and hash state, so any node
//! takes the next chunk. S3 refuses parts under 5 MiB but the last one, so
//! the bytes after the last full part wait in a tail object (rewritten under
//! a new name by each append, read back by the next) until a part is full.
//! An append holds the part being filled and at most
//! [`PARTS_IN_FLIGHT`] part being sent (the body streams on while the last
//! full part goes to S3): memory per upload is bounded by two parts whatever
//! the blob's size. (Measured with a 1 GiB push to moto: two parts in
//! flight sent about 20 % faster but put the server's peak RSS at 54-63 MiB,
//! too near the 64 MiB budget, against 44-48 MiB with one; copying the
//! chunks into one buffer per part raised the peak to 68-71 MiB, the
//! allocator keeping freed 8 MiB buffers per thread.)
//!
//! Commit, after the caller verified the digest: the multipart upload is
//! completed at `uploads/<id>/blob` (the tail sent as its last part), then
//! copied server-side to `blobs/...` (`CopyObject` up to 5 GiB,
//! `UploadPartCopy` ranges beyond: no byte comes back through the node),
//! then the upload's objects are removed. Each step can be repeated after a
//! crash: a completed upload is found by its object's size.

mod presigned;
pub mod staging;

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use berth_core::digest::{Digest, Digester};
use berth_core::endpoint::UploadId;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, Checksum};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};
use reqwest::Method;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use self::staging::{MAX_PARTS, Staging, Tail, part_size, parts_len};
use super::fs::{Piece, hash_chunks};
use super::{Appended, BlobReader, BlobStore, ByteRange, ByteStream, Checkpoints, StoreError};

/// Parts sent at once by one append, beside the one being filled.
pub const PARTS_IN_FLIGHT: usize = 1;
/// Body chunks queued for the hashing thread.
const HASH_QUEUE: usize = 8;
/// An append records a checkpoint at a part boundary this many bytes...
const CHECKPOINT_BYTES: u64 = 64 * 1024 * 1024;
/// ...or this long after its last one.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);
/// S3's largest single `CopyObject`.
pub const MAX_COPY_OBJECT: u64 = 5 * 1024 * 1024 * 1024;
/// The range of one `UploadPartCopy` when a copy is larger than that.
const COPY_PART: u64 = 1024 * 1024 * 1024;
/// How long a redirect to a presigned blob URL stays valid.
const REDIRECT_FOR: Duration = Duration::from_secs(300);

/// Where the S3 store keeps blobs and how it reaches them.
#[derive(Clone)]
pub struct S3Settings {
    /// The bucket.
    pub bucket: String,
    /// A key prefix inside it (no leading or trailing `/`), possibly empty.
    pub prefix: String,
    /// The service's URL, for S3-compatible services (`http://` allowed);
    /// AWS's regional endpoint when `None`.
    pub endpoint: Option<String>,
    /// The region requests are signed for; `AWS_REGION` or `us-east-1` when `None`.
    pub region: Option<String>,
    /// Path-style URLs (`endpoint/bucket/key`), as MinIO and most
    /// S3-compatible services need, instead of `bucket.endpoint/key`.
    pub path_style: bool,
    /// Answer blob GETs with a 307 to a short-lived presigned URL instead of
    /// streaming the bytes through the registry.
    pub redirect: bool,
    /// An access key and secret; `None` reads `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` (or the instance's role).
    pub credentials: Option<(String, String)>,
    /// Objects up to this size are copied with one `CopyObject`, larger
    /// ones in `UploadPartCopy` ranges of at most this size (S3 allows
    /// 5 GiB; lower only to exercise the ranged copy).
    pub max_copy_object: u64,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("redirect", &self.redirect)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .field("max_copy_object", &self.max_copy_object)
            .finish()
    }
}

impl S3Settings {
    /// Settings for `s3://bucket[/prefix]`, the rest at their defaults.
    pub fn from_url(url: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            format!("blob store {url:?} is not s3://bucket[/prefix] (nor \"fs\")")
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            return Err(format!(
                "{bucket:?} in {url:?} is not an S3 bucket name (3-63 lower-case letters, digits, '-' and '.')"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
            && !prefix.is_empty()
        {
            return Err(format!(
                "the prefix {prefix:?} in {url:?} has an empty, '.' or '..' segment"
            ));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            endpoint: None,
            region: None,
            path_style: false,
            redirect: false,
            credentials: None,
            max_copy_object: MAX_COPY_OBJECT,
        })
    }
}

impl S3Settings {
    /// Settings for the test suites, or `None` when they run on the
    /// filesystem: the S3 server `.ci/s3` started (`BERTH_TEST_S3_ENDPOINT`,
    /// `BERTH_TEST_S3_BUCKET`, credentials in the usual `AWS_*` variables),
    /// path-style, keys under a prefix named after the test's data directory
    /// `dir`, so that a server started again on the directory (or a second
    /// node beside it) finds the same blobs and every test has its own.
    pub fn for_test_dir(dir: &std::path::Path) -> Option<Self> {
        let endpoint = std::env::var("BERTH_TEST_S3_ENDPOINT").ok()?;
        let bucket =
            std::env::var("BERTH_TEST_S3_BUCKET").unwrap_or_else(|_| "berth-test".to_owned());
        let name: String = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let mut settings = Self::from_url(&format!("s3://{bucket}/test-{name}")).ok()?;
        settings.endpoint = Some(endpoint);
        settings.path_style = true;
        Some(settings)
    }
}

/// The S3 blob store.
#[derive(Debug, Clone)]
pub struct S3Store {
    s3: Arc<AmazonS3>,
    http: reqwest::Client,
    bucket: String,
    /// `""` or `"<prefix>/"`.
    prefix: String,
    redirect: bool,
    max_copy_object: u64,
}

/// An `object_store` failure as a store error: a missing object is
/// [`StoreError::NotFound`], the rest I/O errors naming the cause.
fn s3_error(e: object_store::Error) -> StoreError {
    match e {
        object_store::Error::NotFound { .. } => StoreError::NotFound,
        e => StoreError::Io(io::Error::other(format!("S3: {e}"))),
    }
}

fn join_error(e: tokio::task::JoinError) -> StoreError {
    StoreError::Io(io::Error::other(format!("S3 upload task failed: {e}")))
}

/// `Ok(None)` for a missing object.
fn found<T>(result: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

impl S3Store {
    /// A store over `settings`; checks nothing yet (see [`BlobStore::ready`]).
    pub fn open(settings: &S3Settings) -> Result<Self, StoreError> {
        let allow_http = settings
            .endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        // No deadline on a whole request: a blob streams to a slow client for
        // as long as it takes. A connection that goes quiet is cut instead.
        let client = ClientOptions::new()
            .with_timeout_disabled()
            .with_connect_timeout(Duration::from_secs(5))
            .with_read_timeout(Duration::from_secs(120))
            .with_allow_http(allow_http);
        // Every part carries its SHA-256, and the completion lists them: S3
        // refuses to assemble a part another request replaced since its id
        // was recorded (an ETag, an MD5, alone would accept a colliding one).
        let mut builder = AmazonS3Builder::from_env()
            .with_client_options(client)
            .with_checksum_algorithm(Checksum::SHA256)
            .with_bucket_name(&settings.bucket)
            .with_virtual_hosted_style_request(!settings.path_style);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &settings.region {
            builder = builder.with_region(region);
        }
        if let Some((key, secret)) = &settings.credentials {
            builder = builder
                .with_access_key_id(key)
                .with_secret_access_key(secret);
        }
        let s3 = builder.build().map_err(s3_error)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| StoreError::Io(io::Error::other(format!("HTTP client: {e}"))))?;
        Ok(Self {
            s3: Arc::new(s3),
            http,
            bucket: settings.bucket.clone(),
            prefix: if settings.prefix.is_empty() {
                String::new()
            } else {
                format!("{}/", settings.prefix)
            },
            redirect: settings.redirect,
            max_copy_object: settings.max_copy_object.max(5 * 1024 * 1024),
        })
    }

    fn key(&self, rest: &str) -> Path {
        Path::from(format!("{}{rest}", self.prefix))
    }

    fn blob_key(&self, digest: &Digest) -> Path {
        self.key(&format!(
            "blobs/{}/{}",
            digest.algorithm().as_str(),
            digest.hex()
        ))
    }

    fn mark_key(&self, digest: &Digest) -> Path {
        self.key(&format!(
            "marks/{}/{}",
            digest.algorithm().as_str(),
            digest.hex()
        ))
    }

    fn reclaiming_key(&self, digest: &Digest) -> Path {
        self.key(&format!(
            "reclaiming/{}/{}",
            digest.algorithm().as_str(),
            digest.hex()
        ))
    }

    fn upload_key(&self, id: &str, name: &str) -> Path {
        self.key(&format!("uploads/{id}/{name}"))
    }

    /// The size and last-modified time of an object, or `None`.
    async fn head(&self, path: &Path) -> Result<Option<(u64, SystemTime)>, StoreError> {
        found(self.s3.head(path).await.map_err(s3_error))
            .map(|m| m.map(|m| (m.size, SystemTime::from(m.last_modified))))
    }

    async fn delete_if_present(&self, path: &Path) -> Result<(), StoreError> {
        found(self.s3.delete(path).await.map_err(s3_error)).map(|_| ())
    }

    /// A whole (small) object in memory.
    async fn get_all(&self, path: &Path) -> Result<Bytes, StoreError> {
        let got = self.s3.get(path).await.map_err(s3_error)?;
        got.bytes().await.map_err(s3_error)
    }

    async fn stream(
        &self,
        path: &Path,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<BlobReader, StoreError> {
        let options = GetOptions {
            range: range.clone().map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let got = self.s3.get_opts(path, options).await.map_err(s3_error)?;
        let len = match range {
            Some(r) => r.end - r.start,
            None => got.meta.size,
        };
        let stream = got
            .into_stream()
            .map_err(|e| io::Error::other(format!("S3: {e}")));
        Ok(BlobReader {
            len,
            stream: Box::pin(stream),
        })
    }

    /// Copies an object server-side: `CopyObject`, or for an object larger
    /// than one may be, a multipart upload of `UploadPartCopy` ranges.
    async fn copy(&self, from: &Path, to: &Path, size: u64) -> Result<(), StoreError> {
        if size <= self.max_copy_object {
            return self.s3.copy(from, to).await.map_err(s3_error);
        }
        let range = self.max_copy_object.min(COPY_PART);
        let upload = self.s3.create_multipart(to).await.map_err(s3_error)?;
        let copied = async {
            let mut parts = Vec::new();
            let mut start = 0;
            while start < size {
                let end = (start + range).min(size) - 1;
                let e_tag = presigned::upload_part_copy(
                    &self.s3,
                    &self.http,
                    &self.bucket,
                    from,
                    to,
                    &upload,
                    parts.len() + 1,
                    (start, end),
                )
                .await?;
                parts.push(PartId { content_id: e_tag });
                start = end + 1;
            }
            self.s3
                .complete_multipart(to, &upload, parts)
                .await
                .map_err(s3_error)
        }
        .await;
        if copied.is_err()
            && let Err(e) = self.s3.abort_multipart(to, &upload).await
        {
            tracing::warn!(error = %e, "could not abort the multipart upload of a failed copy");
        }
        copied.map(|_| ())
    }

    /// Where the bytes of a finished upload are, as one object: the tail
    /// object when there is no multipart upload, else the multipart upload
    /// completed (its tail sent as the last part) at `uploads/<id>/blob`.
    /// `None` for an empty upload. Safe to repeat: an upload already
    /// completed is found by its object's size.
    async fn assemble(&self, state: &Staging) -> Result<Option<(Path, u64)>, StoreError> {
        let size = state.len();
        let Some(mpu) = state.mpu.as_ref().filter(|_| !state.parts.is_empty()) else {
            return Ok(state
                .tail
                .as_ref()
                .map(|t| (self.upload_key(&state.id, &t.key), t.len)));
        };
        let target = self.upload_key(&state.id, "blob");
        if let Some((len, _)) = self.head(&target).await?
            && len == size
        {
            return Ok(Some((target, size)));
        }
        let mut parts: Vec<PartId> = state
            .parts
            .iter()
            .map(|p| PartId {
                content_id: p.clone(),
            })
            .collect();
        if let Some(tail) = &state.tail {
            let bytes = self.get_all(&self.upload_key(&state.id, &tail.key)).await?;
            let part = self
                .s3
                .put_part(&target, mpu, parts.len(), PutPayload::from(bytes))
                .await
                .map_err(s3_error)?;
            parts.push(part);
        }
        match self.s3.complete_multipart(&target, mpu, parts).await {
            Ok(_) => Ok(Some((target, size))),
            // Completed already, by a request that died before it could
            // record the blob: the object is there.
            Err(e) => match self.head(&target).await? {
                Some((len, _)) if len == size => Ok(Some((target, size))),
                _ => Err(s3_error(e)),
            },
        }
    }

    /// Removes every object of upload `id` and aborts its multipart uploads
    /// (the one recorded, `mpu`, and any a request started but never recorded).
    async fn discard(&self, id: &str, mpu: Option<&str>) -> Result<(), StoreError> {
        let dir = self.key(&format!("uploads/{id}"));
        let target = self.upload_key(id, "blob");
        let mut pending: Vec<String> = mpu.map(str::to_owned).into_iter().collect();
        let listed =
            presigned::list_multipart_uploads(&self.s3, &self.http, &format!("{dir}/"), usize::MAX)
                .await?;
        pending.extend(listed.into_iter().map(|u| u.upload_id));
        pending.sort();
        pending.dedup();
        for upload in pending {
            // A completed or aborted one is gone: nothing to do.
            found(
                self.s3
                    .abort_multipart(&target, &upload)
                    .await
                    .map_err(s3_error),
            )?;
        }
        let objects = self
            .s3
            .list(Some(&dir))
            .map_ok(|meta| meta.location)
            .boxed();
        let removed: Vec<_> = self.s3.delete_stream(objects).collect().await;
        for result in removed {
            found(result.map_err(s3_error))?;
        }
        Ok(())
    }

    /// Puts back (or drops) what a sweep cut short left under `reclaiming/`.
    async fn restore_reclaimed(&self) -> Result<(), StoreError> {
        let dir = self.key("reclaiming");
        let leftovers: Vec<_> = self
            .s3
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(s3_error)?;
        for meta in leftovers {
            let Some(digest) = self.digest_of(&meta.location, "reclaiming/") else {
                continue;
            };
            let blob = self.blob_key(&digest);
            if self.head(&blob).await?.is_none() {
                self.copy(&meta.location, &blob, meta.size).await?;
            }
            self.delete_if_present(&meta.location).await?;
        }
        Ok(())
    }

    /// The digest an object under `<prefix><dir><algorithm>/<hex>` stands for.
    fn digest_of(&self, location: &Path, dir: &str) -> Option<Digest> {
        let rest = location
            .as_ref()
            .strip_prefix(&self.prefix)?
            .strip_prefix(dir)?;
        let (algorithm, hex) = rest.split_once('/')?;
        Digest::parse(&format!("{algorithm}:{hex}")).ok()
    }

    /// The upload id an object or multipart key under `uploads/<id>/` belongs to.
    fn upload_of(&self, key: &str) -> Option<String> {
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix("uploads/")?;
        let (id, _) = rest.split_once('/')?;
        UploadId::parse(id).ok().map(|_| id.to_owned())
    }
}

/// An upload's part being sent, with the mark its hash state comes at.
struct Sending {
    mark: u64,
    task: JoinHandle<Result<PartId, object_store::Error>>,
}

#[async_trait]
impl BlobStore for S3Store {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        Ok(self
            .head(&self.blob_key(digest))
            .await?
            .map(|(size, _)| size))
    }

    async fn open(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<BlobReader, StoreError> {
        self.stream(&self.blob_key(digest), range.map(|r| r.start..r.end + 1))
            .await
    }

    async fn delete(&self, digest: &Digest) -> Result<(), StoreError> {
        self.delete_if_present(&self.blob_key(digest)).await?;
        self.delete_if_present(&self.mark_key(digest)).await
    }

    async fn ready(&self) -> Result<(), StoreError> {
        // HEAD of the bucket: answers whether it exists and the credentials
        // reach it, without reading or listing anything.
        presigned::send(
            &self.s3,
            &self.http,
            Method::HEAD,
            &Path::from(""),
            &[],
            &[],
            "checking the bucket",
        )
        .await
        .map(|_| ())
        .map_err(|e| match e {
            StoreError::NotFound => StoreError::Io(io::Error::other(format!(
                "S3 bucket {:?} does not exist; create it, or name another with --blob-store s3://BUCKET[/PREFIX]",
                self.bucket
            ))),
            StoreError::Io(e) => StoreError::Io(io::Error::other(format!(
                "{e}; check --s3-endpoint, --s3-region, --s3-path-style and the credentials \
                 in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            ))),
            e => e,
        })
    }

    async fn redirect(&self, digest: &Digest) -> Result<Option<String>, StoreError> {
        if !self.redirect {
            return Ok(None);
        }
        let url = self
            .s3
            .signed_url(Method::GET, &self.blob_key(digest), REDIRECT_FOR)
            .await
            .map_err(s3_error)?;
        Ok(Some(url.to_string()))
    }

    async fn begin_upload(&self, id: &UploadId) -> Result<String, StoreError> {
        // Nothing is stored yet: the multipart upload starts with the first
        // full part, the tail object with the first bytes.
        Ok(Staging::new(id).to_text())
    }

    async fn append(
        &self,
        staging: &str,
        offset: u64,
        digester: Digester,
        mut body: ByteStream,
        limit: u64,
        checkpoints: Option<Checkpoints>,
    ) -> Result<Appended, StoreError> {
        let start = Staging::parse(staging)?;
        if start.len() != offset {
            return Err(StoreError::Io(io::Error::other(format!(
                "recorded S3 staging state holds {} bytes but the session {offset}",
                start.len()
            ))));
        }
        let id = start.id.clone();
        let target = self.upload_key(&id, "blob");
        if let Some(old) = &start.superseded
            && let Err(e) = self.delete_if_present(&self.upload_key(&id, old)).await
        {
            // Garbage either way: the commit or the sweep removes it.
            tracing::warn!(error = %e, upload = id, "could not remove a superseded tail object");
        }
        let replaced = start.tail.as_ref().map(|t| t.key.clone());
        let most = parts_len(MAX_PARTS).saturating_sub(offset);
        let limit = limit.min(most);

        // The part being filled starts with the tail stored so far (hashed
        // already: it goes to the part, not to the hasher).
        let mut filling: Vec<Bytes> = Vec::new();
        let mut filled: u64 = 0;
        if let Some(tail) = &start.tail {
            let bytes = self.get_all(&self.upload_key(&id, &tail.key)).await?;
            if bytes.len() as u64 != tail.len {
                return Err(StoreError::Io(io::Error::other(format!(
                    "S3 tail object of upload {id} holds {} bytes, {} recorded",
                    bytes.len(),
                    tail.len
                ))));
            }
            filled = tail.len;
            filling.push(bytes);
        }

        let (to_hasher, hasher_rx) = mpsc::channel::<Piece>(HASH_QUEUE);
        let (states_tx, mut states) = mpsc::unbounded_channel::<(u64, Digester)>();
        let hasher =
            tokio::task::spawn_blocking(move || hash_chunks(digester, hasher_rx, Some(states_tx)));

        let mut mpu = start.mpu.clone();
        let mut parts = start.parts.clone();
        let mut sending: std::collections::VecDeque<Sending> = Default::default();
        let mut next_part = parts.len();
        let mut received: u64 = 0;
        let mut failure = None;
        let mut last_checkpoint = (offset, Instant::now());

        // Takes the parts that finished sending, oldest first (all of them
        // when `all`, else waiting only while too many are in flight), and
        // records a checkpoint at a part boundary when one is due.
        macro_rules! settle {
            ($all:expr) => {
                while let Some(front) = sending.front() {
                    if !$all && !front.task.is_finished() && sending.len() <= PARTS_IN_FLIGHT {
                        break;
                    }
                    let Some(part) = sending.pop_front() else {
                        break;
                    };
                    let sent = part.task.await.map_err(join_error)?.map_err(s3_error)?;
                    parts.push(sent.content_id);
                    let state = loop {
                        match states.recv().await {
                            Some((mark, state)) if mark == part.mark => break Some(state),
                            Some(_) => continue,
                            None => break None,
                        }
                    };
                    let at = parts_len(parts.len());
                    if let (Some(out), Some(state)) = (&checkpoints, state)
                        && (at - last_checkpoint.0 >= CHECKPOINT_BYTES
                            || last_checkpoint.1.elapsed() >= CHECKPOINT_INTERVAL)
                    {
                        let stored = Staging {
                            id: start.id.clone(),
                            mpu: mpu.clone(),
                            parts: parts.clone(),
                            tail: None,
                            superseded: replaced.clone(),
                        };
                        let _ = out.send(Appended {
                            offset: at,
                            digester: state,
                            staging: Some(stored.to_text()),
                        });
                        last_checkpoint = (at, Instant::now());
                    }
                }
            };
        }

        while let Some(chunk) = body.next().await {
            let mut chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            received += chunk.len() as u64;
            if received > limit {
                drop(to_hasher);
                for part in sending {
                    part.task.abort();
                }
                let _ = hasher.await;
                return Err(StoreError::TooLarge { limit });
            }
            while !chunk.is_empty() {
                let room = part_size(next_part) - filled;
                let take = usize::try_from(room).unwrap_or(usize::MAX).min(chunk.len());
                let piece = chunk.split_to(take);
                filled += piece.len() as u64;
                if to_hasher.send(Piece::Chunk(piece.clone())).await.is_err() {
                    break;
                }
                filling.push(piece);
                if filled < part_size(next_part) {
                    continue;
                }
                // A full part: its hash state is marked, and it is sent
                // while the body goes on streaming.
                let mark = next_part as u64 + 1;
                if to_hasher.send(Piece::Mark(mark)).await.is_err() {
                    break;
                }
                let upload = match &mpu {
                    Some(upload) => upload.clone(),
                    None => {
                        let upload = self.s3.create_multipart(&target).await.map_err(s3_error)?;
                        mpu = Some(upload.clone());
                        upload
                    }
                };
                let payload: PutPayload = std::mem::take(&mut filling).into_iter().collect();
                let (s3, target, index) = (self.s3.clone(), target.clone(), next_part);
                let task =
                    tokio::spawn(
                        async move { s3.put_part(&target, &upload, index, payload).await },
                    );
                sending.push_back(Sending { mark, task });
                next_part += 1;
                filled = 0;
                settle!(false);
            }
        }
        drop(to_hasher);
        settle!(true);
        let digester = hasher.await.map_err(join_error)?;
        if received == 0 {
            let appended = Appended {
                offset,
                digester,
                staging: None,
            };
            return appended.or_interrupted(failure);
        }
        // The bytes after the last part go to a new tail object: the one a
        // recorded state names is never overwritten.
        let tail = if filled == 0 {
            None
        } else {
            let key = format!("tail-{}", uuid::Uuid::new_v4().simple());
            let payload: PutPayload = filling.into_iter().collect();
            self.s3
                .put(&self.upload_key(&id, &key), payload)
                .await
                .map_err(s3_error)?;
            Some(Tail { key, len: filled })
        };
        let state = Staging {
            id,
            mpu,
            parts,
            tail,
            superseded: replaced,
        };
        let appended = Appended {
            offset: offset + received,
            digester,
            staging: Some(state.to_text()),
        };
        debug_assert_eq!(state.len(), appended.offset);
        appended.or_interrupted(failure)
    }

    async fn commit(&self, staging: &str, digest: &Digest) -> Result<(), StoreError> {
        let state = Staging::parse(staging)?;
        let blob = self.blob_key(digest);
        if self.head(&blob).await?.is_some() {
            // One copy per digest: the stored one is verified. Marked as
            // committed now, then looked at again: a sweep that removed it
            // before seeing the mark restores it, one that removes it
            // after leaves this commit to find it gone and copy its own.
            self.s3
                .put(&self.mark_key(digest), PutPayload::default())
                .await
                .map_err(s3_error)?;
            if self.head(&blob).await?.is_some() {
                self.discard(&state.id, state.mpu.as_deref()).await?;
                return Ok(());
            }
        }
        match self.assemble(&state).await? {
            Some((source, size)) => self.copy(&source, &blob, size).await?,
            None => {
                self.s3
                    .put(&blob, PutPayload::default())
                    .await
                    .map_err(s3_error)?;
            }
        }
        // The blob is in place: what is left of the upload is garbage, and
        // the sweep removes it if this fails.
        if let Err(e) = self.discard(&state.id, state.mpu.as_deref()).await {
            tracing::warn!(error = %e, upload = state.id, "could not remove a committed upload's objects");
        }
        Ok(())
    }

    async fn read_staging(&self, staging: &str, len: u64) -> Result<BlobReader, StoreError> {
        let state = Staging::parse(staging)?;
        match self.assemble(&state).await? {
            Some((source, size)) => self.stream(&source, Some(0..len.min(size))).await,
            None => Ok(BlobReader {
                len: 0,
                stream: Box::pin(futures_util::stream::empty()),
            }),
        }
    }

    async fn abort(&self, staging: &str) -> Result<(), StoreError> {
        let id = Staging::id_of(staging)?;
        let mpu = if staging.starts_with('{') {
            Staging::parse(staging)?.mpu
        } else {
            None
        };
        self.discard(&id, mpu.as_deref()).await
    }

    async fn list_staging(&self, limit: usize) -> Result<Vec<(String, SystemTime)>, StoreError> {
        let mut found: std::collections::BTreeMap<String, SystemTime> = Default::default();
        let mut objects = self.s3.list(Some(&self.key("uploads")));
        while let Some(meta) = objects.next().await {
            let meta = meta.map_err(s3_error)?;
            let Some(id) = self.upload_of(meta.location.as_ref()) else {
                continue;
            };
            if found.len() >= limit && !found.contains_key(&id) {
                break;
            }
            let modified = SystemTime::from(meta.last_modified);
            let newest = found.entry(id).or_insert(modified);
            *newest = (*newest).max(modified);
        }
        let pending = presigned::list_multipart_uploads(
            &self.s3,
            &self.http,
            &format!("{}uploads/", self.prefix),
            limit,
        )
        .await?;
        for upload in pending {
            let Some(id) = self.upload_of(&upload.key) else {
                continue;
            };
            if found.len() >= limit && !found.contains_key(&id) {
                break;
            }
            let newest = found.entry(id).or_insert(upload.initiated);
            *newest = (*newest).max(upload.initiated);
        }
        Ok(found.into_iter().take(limit).collect())
    }

    async fn list_blobs(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, SystemTime)>, StoreError> {
        if after.is_none() {
            self.restore_reclaimed().await?;
        }
        let dir = self.key("blobs");
        let mut listing = match after {
            Some(digest) => self.s3.list_with_offset(Some(&dir), &self.blob_key(digest)),
            None => self.s3.list(Some(&dir)),
        };
        let mut found = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(s3_error)?;
            if let Some(digest) = self.digest_of(&meta.location, "blobs/") {
                found.push((digest, SystemTime::from(meta.last_modified)));
                if found.len() >= limit {
                    break;
                }
            }
        }
        Ok(found)
    }

    async fn remove_blob_unless_newer(
        &self,
        digest: &Digest,
        before: SystemTime,
    ) -> Result<bool, StoreError> {
        let blob = self.blob_key(digest);
        let mark = self.mark_key(digest);
        let marked_since = |m: Option<(u64, SystemTime)>| m.is_some_and(|(_, at)| at >= before);
        if marked_since(self.head(&mark).await?) {
            return Ok(false);
        }
        let Some((size, modified)) = self.head(&blob).await? else {
            return Ok(false);
        };
        if modified >= before {
            return Ok(false);
        }
        // S3 has no rename: the bytes are copied aside before the blob goes,
        // so that a commit that saw the blob (and marked it) between the
        // check above and the delete gets it back.
        let aside = self.reclaiming_key(digest);
        self.copy(&blob, &aside, size).await?;
        self.delete_if_present(&blob).await?;
        if marked_since(self.head(&mark).await?) {
            if self.head(&blob).await?.is_none() {
                self.copy(&aside, &blob, size).await?;
            }
            self.delete_if_present(&aside).await?;
            return Ok(false);
        }
        self.delete_if_present(&aside).await?;
        self.delete_if_present(&mark).await?;
        Ok(true)
    }
}
