//! Writing to a registry: blob existence, cross-repository mount, blob
//! upload, manifest `PUT`, blob `DELETE` (PROTOCOL.md section 6).
//!
//! A blob upload opens a session with `POST` (asking to mount when a source
//! repository is named), then:
//!
//! 1. monolithic: one `PUT <location>?digest=` carrying the whole blob as a
//!    stream with its `Content-Length` (never buffered);
//! 2. chunked, when the registry refuses the single `PUT` (413 from a proxy's
//!    body limit, 400/405/411/501, a connection cut mid-body) or when asked:
//!    `PATCH` chunks of at least the registry's `OCI-Chunk-Min-Length` with
//!    `Content-Range`, following each answer's `Location`, then
//!    `PUT <location>?digest=` without a body.
//!
//! Before each request that carries bytes, the token is checked against the
//! time that request is expected to take ([`Transport::token_for_duration`]),
//! so a token never runs out mid-layer; a registry that checks a token at the
//! start of a request (all do) then never sees an expired one.

use std::sync::Arc;

use berth_core::{Digest, ErrorCode, RepositoryName, TagOrDigest};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode, Url};

use super::{ClientError, RegistryClient, digest_of, header_digest};
use crate::auth::{AuthError, ByteStream, Operation, Reply, Request};

/// The header a registry names its smallest accepted chunk in.
const CHUNK_MIN_LENGTH: &str = "oci-chunk-min-length";
/// Chunks larger than this are refused (a registry asking for more is
/// misbehaving; chunks are held in memory).
const MAX_CHUNK: u64 = 256 * 1024 * 1024;

/// Opens a blob's bytes from the first one; called again when an upload must
/// restart (a chunked retry after the monolithic `PUT` was refused).
pub type OpenBlob = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<ByteStream, std::io::Error>> + Send>>
        + Send
        + Sync,
>;

/// Told the number of bytes of a blob sent so far (it starts again from 0
/// when an upload restarts).
pub type OnProgress = Arc<dyn Fn(u64) + Send + Sync>;

/// A blob to upload.
#[derive(Clone)]
pub struct BlobUpload {
    /// Its digest; the registry verifies the bytes against it.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Opens its bytes.
    pub open: OpenBlob,
    /// A repository of the same registry that may hold the blob: it is then
    /// mounted instead of uploaded.
    pub mount_from: Option<RepositoryName>,
}

impl std::fmt::Debug for BlobUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobUpload")
            .field("digest", &self.digest)
            .field("size", &self.size)
            .field("mount_from", &self.mount_from)
            .finish_non_exhaustive()
    }
}

impl BlobUpload {
    /// A blob held in memory.
    pub fn from_bytes(bytes: Bytes) -> Self {
        let digest = Digest::sha256_of(&bytes);
        let size = bytes.len() as u64;
        let open: OpenBlob = Arc::new(move || {
            let bytes = bytes.clone();
            Box::pin(async move {
                let stream: ByteStream = Box::pin(futures_util::stream::iter([Ok(bytes)]));
                Ok(stream)
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

/// How blobs are uploaded.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// Try one `PUT` of the whole blob first (default); `false` uploads in
    /// chunks from the start.
    pub monolithic: bool,
    /// The chunk size of a chunked upload (default 8 MiB, held in memory while
    /// it is sent: `jobs` of them at most in a copy), raised to the
    /// registry's `OCI-Chunk-Min-Length`.
    pub chunk_size: u64,
    /// The slowest rate a request is assumed to move bytes at, in bytes per
    /// second (default 8 MiB/s): with the size, it gives the time a token
    /// must stay valid for.
    pub assumed_rate: u64,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            monolithic: true,
            chunk_size: 8 * 1024 * 1024,
            assumed_rate: 8 * 1024 * 1024,
        }
    }
}

/// How a blob reached the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// The repository held it already.
    Existed,
    /// Mounted from the source repository (no bytes sent).
    Mounted,
    /// Sent in one `PUT`.
    Monolithic,
    /// Sent in `PATCH` chunks.
    Chunked {
        /// The number of chunks.
        chunks: u64,
    },
}

/// An open upload session.
struct Session {
    location: Url,
    min_chunk: Option<u64>,
}

/// Why the monolithic `PUT` did not finish the upload.
enum MonolithicRefused {
    /// The registry refused a single `PUT` of this size: go chunked.
    Fallback(String),
    /// Any other failure: stop.
    Failed(ClientError),
}

impl RegistryClient {
    /// `HEAD` a blob: its size when the repository holds it.
    pub async fn blob_size(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        operation: &Operation,
    ) -> Result<Option<u64>, ClientError> {
        let what = format!("blob {repo}@{digest}");
        let url = self.transport.url(&format!("/v2/{repo}/blobs/{digest}"))?;
        match self
            .transport
            .send(operation, &Request::new(Method::HEAD, url))
            .await?
        {
            Reply::Success(response) => Ok(Some(
                response
                    .headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            Reply::Failure(f) if f.status == StatusCode::NOT_FOUND => Ok(None),
            Reply::Failure(f) => Err(ClientError::from_failure(what, &f)),
        }
    }

    /// Puts `blob` into `repo`: skipped when the repository holds it,
    /// mounted when [`BlobUpload::mount_from`] holds it, else uploaded
    /// (monolithic first, chunked as the fallback).
    pub async fn push_blob(
        &self,
        repo: &RepositoryName,
        blob: &BlobUpload,
        options: &UploadOptions,
        progress: Option<OnProgress>,
    ) -> Result<Pushed, ClientError> {
        let operation = Operation::Push(repo.clone(), blob.mount_from.clone());
        if self
            .blob_size(repo, &blob.digest, &operation)
            .await?
            .is_some()
        {
            return Ok(Pushed::Existed);
        }
        let what = format!("upload of blob {repo}@{}", blob.digest);
        let session = match self.open_session(repo, blob, &operation, &what).await? {
            Ok(session) => session,
            Err(pushed) => return Ok(pushed),
        };
        if options.monolithic {
            match self
                .put_whole(&operation, session, blob, options, progress.clone(), &what)
                .await
            {
                Ok(()) => return Ok(Pushed::Monolithic),
                Err(MonolithicRefused::Failed(e)) => return Err(e),
                Err(MonolithicRefused::Fallback(reason)) => {
                    tracing::info!(%repo, digest = %blob.digest, %reason, "single PUT refused; uploading in chunks");
                }
            }
            let reopened = BlobUpload {
                mount_from: None,
                ..blob.clone()
            };
            let session = match self
                .open_session(repo, &reopened, &operation, &what)
                .await?
            {
                Ok(session) => session,
                Err(pushed) => return Ok(pushed),
            };
            return self
                .put_chunked(&operation, session, blob, options, progress, &what)
                .await;
        }
        self.put_chunked(&operation, session, blob, options, progress, &what)
            .await
    }

    /// `POST` a new session (a mount when asked): `Err(Mounted)` when the
    /// mount succeeded and nothing is left to send.
    async fn open_session(
        &self,
        repo: &RepositoryName,
        blob: &BlobUpload,
        operation: &Operation,
        what: &str,
    ) -> Result<Result<Session, Pushed>, ClientError> {
        let path = match &blob.mount_from {
            Some(source) => format!(
                "/v2/{repo}/blobs/uploads/?mount={}&from={source}",
                blob.digest
            ),
            None => format!("/v2/{repo}/blobs/uploads/"),
        };
        let url = self.transport.url(&path)?;
        let request = Request::new(Method::POST, url).header(CONTENT_LENGTH, HeaderValue::from(0));
        let response = match self.transport.send(operation, &request).await? {
            Reply::Success(response) => response,
            Reply::Failure(f) => return Err(ClientError::from_failure(what, &f)),
        };
        if response.status() == StatusCode::CREATED && blob.mount_from.is_some() {
            return Ok(Err(Pushed::Mounted));
        }
        if response.status() != StatusCode::ACCEPTED {
            return Err(ClientError::BadResponse {
                what: what.to_owned(),
                reason: format!(
                    "opening an upload answered {} instead of 202 Accepted",
                    response.status()
                ),
            });
        }
        let min_chunk = response
            .headers()
            .get(CHUNK_MIN_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let location = self.location(&response, response.url(), what)?;
        Ok(Ok(Session {
            location,
            min_chunk,
        }))
    }

    /// The `Location` of an upload answer, resolved against `base`.
    fn location(
        &self,
        response: &reqwest::Response,
        base: &Url,
        what: &str,
    ) -> Result<Url, ClientError> {
        let bad = |reason: String| ClientError::BadResponse {
            what: what.to_owned(),
            reason,
        };
        let text = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| bad("no Location header on an upload answer".to_owned()))?;
        base.join(text)
            .map_err(|e| bad(format!("bad Location `{text}`: {e}")))
    }

    /// Makes the token last the time `bytes` take at the assumed rate.
    async fn token_for_bytes(
        &self,
        operation: &Operation,
        bytes: u64,
        options: &UploadOptions,
    ) -> Result<(), ClientError> {
        let secs = bytes.div_ceil(options.assumed_rate.max(1));
        self.transport.token_for_duration(operation, secs).await?;
        Ok(())
    }

    /// The monolithic `PUT`.
    async fn put_whole(
        &self,
        operation: &Operation,
        session: Session,
        blob: &BlobUpload,
        options: &UploadOptions,
        progress: Option<OnProgress>,
        what: &str,
    ) -> Result<(), MonolithicRefused> {
        let url = with_digest(session.location.clone(), &blob.digest);
        self.token_for_bytes(operation, blob.size, options)
            .await
            .map_err(MonolithicRefused::Failed)?;
        let open = blob.open.clone();
        let stream_open: crate::auth::OpenStream = Arc::new(move || {
            let open = open.clone();
            let progress = progress.clone();
            Box::pin(async move { Ok(counted(open().await?, progress)) })
        });
        let request = Request::new(Method::PUT, url)
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            )
            .stream(blob.size, stream_open);
        let reply = match self.transport.send(operation, &request).await {
            Ok(reply) => reply,
            // The connection was cut while the body went out: a proxy's
            // body limit does this.
            Err(AuthError::Http { source, .. }) if source.is_request() || source.is_body() => {
                self.cancel(operation, &session.location).await;
                return Err(MonolithicRefused::Fallback(source.to_string()));
            }
            Err(e) => return Err(MonolithicRefused::Failed(e.into())),
        };
        match reply {
            Reply::Success(response) => {
                check_created(&response, &blob.digest, what).map_err(MonolithicRefused::Failed)
            }
            Reply::Failure(f) => {
                // The bytes themselves were wrong: chunks would not help.
                let bad_content = f.error_body().is_some_and(|b| {
                    b.errors.iter().any(|e| {
                        matches!(e.code, ErrorCode::DigestInvalid | ErrorCode::SizeInvalid)
                    })
                });
                let refuses_single =
                    matches!(f.status.as_u16(), 400 | 405 | 411 | 413 | 501) && !bad_content;
                self.cancel(operation, &session.location).await;
                if refuses_single {
                    Err(MonolithicRefused::Fallback(f.message()))
                } else {
                    Err(MonolithicRefused::Failed(ClientError::from_failure(
                        what, &f,
                    )))
                }
            }
        }
    }

    /// The chunked upload: `PATCH` chunks, then the closing `PUT`.
    async fn put_chunked(
        &self,
        operation: &Operation,
        session: Session,
        blob: &BlobUpload,
        options: &UploadOptions,
        progress: Option<OnProgress>,
        what: &str,
    ) -> Result<Pushed, ClientError> {
        let chunk_size = options
            .chunk_size
            .max(session.min_chunk.unwrap_or(0))
            .max(1);
        if chunk_size > MAX_CHUNK {
            self.cancel(operation, &session.location).await;
            return Err(ClientError::BadResponse {
                what: what.to_owned(),
                reason: format!(
                    "the registry asks for chunks of at least {chunk_size} bytes (OCI-Chunk-Min-Length), more than the {MAX_CHUNK} this client holds in memory"
                ),
            });
        }
        let mut location = session.location;
        let mut stream = (blob.open)().await.map_err(|source| {
            ClientError::from(AuthError::Source {
                url: what.to_owned(),
                source,
            })
        })?;
        if let Some(progress) = &progress {
            progress(0);
        }
        let mut sent: u64 = 0;
        let mut chunks: u64 = 0;
        let mut pending = BytesMut::new();
        let mut ended = false;
        loop {
            // Fill one chunk; the last may be shorter.
            while !ended && (pending.len() as u64) < chunk_size {
                match stream.next().await {
                    Some(Ok(bytes)) => pending.extend_from_slice(&bytes),
                    Some(Err(source)) => {
                        self.cancel(operation, &location).await;
                        return Err(AuthError::Source {
                            url: what.to_owned(),
                            source,
                        }
                        .into());
                    }
                    None => ended = true,
                }
            }
            if pending.is_empty() {
                break;
            }
            let take = pending
                .len()
                .min(usize::try_from(chunk_size).unwrap_or(usize::MAX));
            let chunk: Bytes = pending.split_to(take).freeze();
            let end = sent + chunk.len() as u64 - 1;
            self.token_for_bytes(operation, chunk.len() as u64, options)
                .await?;
            let range = HeaderValue::from_str(&format!("{sent}-{end}")).map_err(|_| {
                ClientError::BadResponse {
                    what: what.to_owned(),
                    reason: "a chunk range cannot be written".to_owned(),
                }
            })?;
            let request = Request::new(Method::PATCH, location.clone())
                .header(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                )
                .header(CONTENT_RANGE, range)
                .body(chunk);
            let response = match self.transport.send(operation, &request).await? {
                Reply::Success(response) => response,
                Reply::Failure(f) => {
                    self.cancel(operation, &location).await;
                    return Err(ClientError::from_failure(
                        format!("{what} (chunk {sent}-{end})"),
                        &f,
                    ));
                }
            };
            location = self.location(&response, &location, what)?;
            sent = end + 1;
            chunks += 1;
            if let Some(progress) = &progress {
                progress(sent);
            }
        }
        if sent != blob.size {
            self.cancel(operation, &location).await;
            return Err(ClientError::BadResponse {
                what: what.to_owned(),
                reason: format!("the source gave {sent} bytes, expected {}", blob.size),
            });
        }
        let request = Request::new(Method::PUT, with_digest(location, &blob.digest))
            .header(CONTENT_LENGTH, HeaderValue::from(0));
        match self.transport.send(operation, &request).await? {
            Reply::Success(response) => check_created(&response, &blob.digest, what)?,
            Reply::Failure(f) => return Err(ClientError::from_failure(what, &f)),
        }
        Ok(Pushed::Chunked { chunks })
    }

    /// Ends an upload session that will not be finished (best effort: the
    /// registry expires it anyway).
    async fn cancel(&self, operation: &Operation, location: &Url) {
        let request = Request::new(Method::DELETE, location.clone());
        if let Err(e) = self.transport.send(operation, &request).await {
            tracing::debug!(error = %e, "cancelling an upload session failed");
        }
    }

    /// `PUT` a manifest under `reference` (a tag, or its digest): the digest
    /// of the bytes, checked against the registry's `Docker-Content-Digest`.
    pub async fn put_manifest(
        &self,
        repo: &RepositoryName,
        reference: &TagOrDigest,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest, ClientError> {
        let what = format!("put manifest {repo}:{reference}");
        let digest = digest_of(&what, &bytes, reference.digest())?;
        let content_type =
            HeaderValue::from_str(media_type).map_err(|_| ClientError::BadResponse {
                what: what.clone(),
                reason: format!("`{media_type}` cannot be a Content-Type"),
            })?;
        let url = self
            .transport
            .url(&format!("/v2/{repo}/manifests/{reference}"))?;
        let request = Request::new(Method::PUT, url)
            .header(CONTENT_TYPE, content_type)
            .body(bytes);
        let operation = Operation::Push(repo.clone(), None);
        match self.transport.send(&operation, &request).await? {
            Reply::Success(response) => {
                check_created(&response, &digest, &what)?;
                Ok(digest)
            }
            Reply::Failure(f) => Err(ClientError::from_failure(what, &f)),
        }
    }

    /// `DELETE` a blob. [`ClientError::DeleteUnsupported`] where the registry
    /// does not delete through the API.
    pub async fn delete_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<(), ClientError> {
        self.delete(
            repo,
            &format!("/v2/{repo}/blobs/{digest}"),
            format!("delete blob {repo}@{digest}"),
        )
        .await
    }
}

/// `location` with `digest=<digest>` added to its query.
fn with_digest(mut location: Url, digest: &Digest) -> Url {
    location
        .query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    location
}

/// A `201 Created` whose `Docker-Content-Digest`, when sent, is `digest`.
fn check_created(
    response: &reqwest::Response,
    digest: &Digest,
    what: &str,
) -> Result<(), ClientError> {
    if response.status() != StatusCode::CREATED {
        return Err(ClientError::BadResponse {
            what: what.to_owned(),
            reason: format!("answered {} instead of 201 Created", response.status()),
        });
    }
    if let Some(announced) = header_digest(response.headers(), what)?
        && announced.algorithm() == digest.algorithm()
        && announced != *digest
    {
        return Err(ClientError::DigestMismatch {
            what: what.to_owned(),
            expected: digest.clone(),
            actual: announced,
        });
    }
    Ok(())
}

/// `stream`, telling `progress` the running byte count.
fn counted(stream: ByteStream, progress: Option<OnProgress>) -> ByteStream {
    let Some(progress) = progress else {
        return stream;
    };
    progress(0);
    let mut total = 0u64;
    Box::pin(stream.map(move |item| {
        if let Ok(bytes) = &item {
            total += bytes.len() as u64;
            progress(total);
        }
        item
    }))
}
