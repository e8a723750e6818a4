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
//!
//! An upload cut off by the network is continued, not restarted: the
//! session's status (`GET <location>`) tells how many bytes the registry
//! kept (berth keeps what arrived; others keep whole chunks), and the rest
//! goes in `PATCH` chunks from there, the source reopened at that byte. With
//! [`UploadOptions::resume_dir`], the session's `Location` is also kept in a
//! file until the blob is in, so that the next run (after a crash or a
//! Ctrl-C) continues it too.

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

/// Opens a blob's bytes from the byte at the given offset; called again
/// when an upload must restart or continue (a chunked retry after the
/// monolithic `PUT` was refused, an upload continued after a cut).
pub type OpenBlob = Arc<
    dyn Fn(
            u64,
        )
            -> std::pin::Pin<Box<dyn Future<Output = Result<ByteStream, std::io::Error>> + Send>>
        + Send
        + Sync,
>;

/// Cuts in a row, with no byte kept by the registry between them, before an
/// upload gives up (its session stays, for a later run to continue).
pub const MAX_CUTS_WITHOUT_PROGRESS: u32 = 5;

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
        let open: OpenBlob = Arc::new(move |offset| {
            let from = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let bytes = bytes.slice(from..);
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
    /// A directory where the `Location` of each unfinished upload session is
    /// kept (one small file per registry, repository and digest) until its
    /// blob is in, so that another run continues it (default: none).
    pub resume_dir: Option<std::path::PathBuf>,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            monolithic: true,
            chunk_size: 8 * 1024 * 1024,
            assumed_rate: 8 * 1024 * 1024,
            resume_dir: None,
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
    /// The connection was cut after the registry kept some bytes: continue
    /// in chunks from there on the same session.
    Continue(Session, u64),
    /// Any other failure: stop.
    Failed(ClientError),
}

/// Whether a transport error is the network's (a cut, a reset, a timeout),
/// after which an upload session may hold some of the bytes sent.
fn network_cut(error: &AuthError) -> bool {
    matches!(error, AuthError::Http { source, .. }
        if source.is_request() || source.is_body() || source.is_timeout() || source.is_connect())
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
    /// (monolithic first, chunked as the fallback), continuing a session a
    /// previous run left when [`UploadOptions::resume_dir`] names one.
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
        let saved = options
            .resume_dir
            .as_deref()
            .map(|dir| SavedSession::new(dir, self.registry(), repo, &blob.digest));
        if let Some(saved) = &saved
            && let Some(location) = saved.load()
        {
            match self.upload_status(&operation, &location).await {
                Some((session, offset)) => {
                    tracing::info!(%repo, digest = %blob.digest, offset, "continuing the upload a previous run left");
                    let result = self
                        .put_chunked(&operation, session, blob, options, progress, &what, offset)
                        .await;
                    return finish_saved(saved, result);
                }
                None => saved.forget(),
            }
        }
        let result = self
            .upload_new(
                repo,
                &operation,
                blob,
                options,
                progress,
                &what,
                saved.as_ref(),
            )
            .await;
        match &saved {
            Some(saved) => finish_saved(saved, result),
            None => result,
        }
    }

    /// Opens a session and uploads through it: monolithic first (unless
    /// told otherwise), chunked on a refusal, continued after a cut.
    #[expect(clippy::too_many_arguments, reason = "the upload's whole context")]
    async fn upload_new(
        &self,
        repo: &RepositoryName,
        operation: &Operation,
        blob: &BlobUpload,
        options: &UploadOptions,
        progress: Option<OnProgress>,
        what: &str,
        saved: Option<&SavedSession>,
    ) -> Result<Pushed, ClientError> {
        let session = match self.open_session(repo, blob, operation, what).await? {
            Ok(session) => session,
            Err(pushed) => return Ok(pushed),
        };
        if let Some(saved) = saved {
            saved.save(&session.location);
        }
        if !options.monolithic {
            return self
                .put_chunked(operation, session, blob, options, progress, what, 0)
                .await;
        }
        match self
            .put_whole(operation, session, blob, options, progress.clone(), what)
            .await
        {
            Ok(()) => Ok(Pushed::Monolithic),
            Err(MonolithicRefused::Failed(e)) => Err(e),
            Err(MonolithicRefused::Continue(session, offset)) => {
                tracing::info!(%repo, digest = %blob.digest, offset, "upload cut off; continuing in chunks from what the registry kept");
                self.put_chunked(operation, session, blob, options, progress, what, offset)
                    .await
            }
            Err(MonolithicRefused::Fallback(reason)) => {
                tracing::info!(%repo, digest = %blob.digest, %reason, "single PUT refused; uploading in chunks");
                let reopened = BlobUpload {
                    mount_from: None,
                    ..blob.clone()
                };
                let session = match self.open_session(repo, &reopened, operation, what).await? {
                    Ok(session) => session,
                    Err(pushed) => return Ok(pushed),
                };
                if let Some(saved) = saved {
                    saved.save(&session.location);
                }
                self.put_chunked(operation, session, blob, options, progress, what, 0)
                    .await
            }
        }
    }

    /// `GET <location>`: the session (its current `Location`) and how many
    /// bytes the registry holds of it; `None` when the session is gone or
    /// the registry cannot tell.
    async fn upload_status(&self, operation: &Operation, location: &Url) -> Option<(Session, u64)> {
        let request = Request::new(Method::GET, location.clone());
        let response = match self.transport.send(operation, &request).await {
            Ok(Reply::Success(response)) if response.status() == StatusCode::NO_CONTENT => response,
            Ok(_) => return None,
            Err(e) => {
                tracing::debug!(error = %e, "asking an upload's status failed");
                return None;
            }
        };
        // `Range: 0-<last byte>`; distribution answers `0-0` for none.
        let end: Option<u64> = response
            .headers()
            .get(reqwest::header::RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().trim_start_matches("bytes=").split_once('-'))
            .and_then(|(_, end)| end.trim().parse().ok());
        let offset = end.map_or(0, |end| if end == 0 { 0 } else { end + 1 });
        let location = self
            .location(&response, location, "upload status")
            .unwrap_or_else(|_| location.clone());
        let min_chunk = response
            .headers()
            .get(CHUNK_MIN_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        Some((
            Session {
                location,
                min_chunk,
            },
            offset,
        ))
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
        // A POST cut off by the network is sent again: at worst the registry
        // holds an extra empty session, which it expires.
        let mut retries = 0;
        let reply = loop {
            match self.transport.send(operation, &request).await {
                Err(e) if network_cut(&e) && retries < crate::auth::NETWORK_RETRIES => {
                    retries += 1;
                    tracing::debug!(error = %e, "opening an upload cut off; again");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                reply => break reply?,
            }
        };
        let response = match reply {
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
            Box::pin(async move { Ok(counted(open(0).await?, 0, progress)) })
        });
        let request = Request::new(Method::PUT, url)
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            )
            .stream(blob.size, stream_open);
        let reply = match self.transport.send(operation, &request).await {
            Ok(reply) => reply,
            // The connection was cut while the body went out: the network,
            // or a proxy's body limit. Continue from what the registry kept;
            // when it kept nothing, go chunked from the start.
            Err(e) if network_cut(&e) => {
                if let Some((session, offset)) =
                    self.upload_status(operation, &session.location).await
                    && offset > 0
                {
                    return Err(MonolithicRefused::Continue(session, offset));
                }
                self.cancel(operation, &session.location).await;
                return Err(MonolithicRefused::Fallback(e.to_string()));
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

    /// The chunked upload from byte `start` (what the session holds
    /// already): `PATCH` chunks, then the closing `PUT`. A chunk cut off by
    /// the network is followed by a status request, and the upload goes on
    /// from the byte the registry reports, the source reopened there.
    #[expect(clippy::too_many_arguments, reason = "the upload's whole context")]
    async fn put_chunked(
        &self,
        operation: &Operation,
        session: Session,
        blob: &BlobUpload,
        options: &UploadOptions,
        progress: Option<OnProgress>,
        what: &str,
        start: u64,
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
        let mut sent = start;
        let mut stream = self.open_at(blob, sent, what).await?;
        if let Some(progress) = &progress {
            progress(sent);
        }
        let mut chunks: u64 = 0;
        let mut cuts_without_progress = 0u32;
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
            let cause: ClientError = match self.transport.send(operation, &request).await {
                Ok(Reply::Success(response)) => {
                    location = self.location(&response, &location, what)?;
                    sent = end + 1;
                    chunks += 1;
                    if let Some(progress) = &progress {
                        progress(sent);
                    }
                    continue;
                }
                // The session is not where this client thought (another
                // request of it was still being written, or kept less).
                Ok(Reply::Failure(f)) if f.status == StatusCode::RANGE_NOT_SATISFIABLE => {
                    ClientError::from_failure(format!("{what} (chunk {sent}-{end})"), &f)
                }
                Ok(Reply::Failure(f)) => {
                    self.cancel(operation, &location).await;
                    return Err(ClientError::from_failure(
                        format!("{what} (chunk {sent}-{end})"),
                        &f,
                    ));
                }
                Err(e) if network_cut(&e) => e.into(),
                Err(e) => return Err(e.into()),
            };
            // Where does the session stand? Continue from there.
            let status = self.upload_status(operation, &location).await;
            let Some((session, kept)) = status.filter(|(_, kept)| *kept <= end + 1) else {
                return Err(cause);
            };
            if kept > sent {
                cuts_without_progress = 0;
            } else {
                cuts_without_progress += 1;
            }
            if cuts_without_progress >= MAX_CUTS_WITHOUT_PROGRESS {
                return Err(cause);
            }
            tracing::info!(digest = %blob.digest, kept, %cause, "chunk interrupted; continuing from what the registry kept");
            tokio::time::sleep(std::time::Duration::from_millis(
                200 * u64::from(cuts_without_progress),
            ))
            .await;
            location = session.location;
            sent = kept;
            pending.clear();
            ended = false;
            stream = self.open_at(blob, sent, what).await?;
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
        // The transport sends a closing PUT cut off by the network again; if
        // the first one had gone through, the session is gone (404) and the
        // blob is in: ask for it before calling that a failure.
        let failure = match self.transport.send(operation, &request).await {
            Ok(Reply::Success(response)) => {
                check_created(&response, &blob.digest, what)?;
                return Ok(Pushed::Chunked { chunks });
            }
            Ok(Reply::Failure(f)) if f.status == StatusCode::NOT_FOUND => {
                ClientError::from_failure(what, &f)
            }
            Ok(Reply::Failure(f)) => return Err(ClientError::from_failure(what, &f)),
            Err(e) if network_cut(&e) => e.into(),
            Err(e) => return Err(e.into()),
        };
        if let Operation::Push(repo, _) = operation
            && self.blob_size(repo, &blob.digest, operation).await? == Some(blob.size)
        {
            return Ok(Pushed::Chunked { chunks });
        }
        Err(failure)
    }

    /// The blob's bytes from byte `offset` on.
    async fn open_at(
        &self,
        blob: &BlobUpload,
        offset: u64,
        what: &str,
    ) -> Result<ByteStream, ClientError> {
        (blob.open)(offset).await.map_err(|source| {
            ClientError::from(AuthError::Source {
                url: what.to_owned(),
                source,
            })
        })
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

/// `stream` (the bytes from `start` on), telling `progress` the running
/// byte count.
fn counted(stream: ByteStream, start: u64, progress: Option<OnProgress>) -> ByteStream {
    let Some(progress) = progress else {
        return stream;
    };
    progress(start);
    let mut total = start;
    Box::pin(stream.map(move |item| {
        if let Ok(bytes) = &item {
            total += bytes.len() as u64;
            progress(total);
        }
        item
    }))
}

/// The end of an upload that may have left a saved session: a blob that is
/// in, or a failure other than a cut, needs it no more.
fn finish_saved(
    saved: &SavedSession,
    result: Result<Pushed, ClientError>,
) -> Result<Pushed, ClientError> {
    match &result {
        Err(ClientError::Auth(e)) if network_cut(e) => {}
        _ => saved.forget(),
    }
    result
}

/// The `Location` of an unfinished upload session, kept in a file of
/// [`UploadOptions::resume_dir`] named after a SHA-256 of the registry,
/// repository and digest (mode 0600: a `Location` may carry state a
/// registry signs). Best effort: a file that cannot be written only means
/// the next run starts over.
struct SavedSession {
    path: std::path::PathBuf,
}

impl SavedSession {
    fn new(
        dir: &std::path::Path,
        registry: &berth_core::reference::Registry,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Self {
        let key = Digest::sha256_of(format!("{registry}\n{repo}\n{digest}").as_bytes());
        Self {
            path: dir.join(format!("{}.url", key.hex())),
        }
    }

    fn load(&self) -> Option<Url> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        Url::parse(text.trim()).ok()
    }

    fn save(&self, location: &Url) {
        let write = || -> std::io::Result<()> {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&self.path)?;
            std::io::Write::write_all(&mut file, location.as_str().as_bytes())
        };
        if let Err(e) = write() {
            tracing::debug!(path = %self.path.display(), error = %e, "cannot keep the upload session for a later run");
        }
    }

    fn forget(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
