//! end-4a/4b, end-5, end-6, end-11, end-13, end-14: blob uploads.
//!
//! An upload session is a row in the metadata store (offset, saved hash state,
//! staging location) plus a staging file in the blob store, so any process can
//! take its next request. Bytes are hashed while they stream; a blob becomes
//! visible (linked into the repository) only after its digest was verified and
//! its bytes moved, durable, to their content address.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_core::digest::{Algorithm, Digest, Digester};
use berth_core::endpoint::{Mount, UploadId};
use berth_core::name::RepositoryName;
use berth_core::oci_error::ErrorCode;
use futures_util::StreamExt;

use super::manifests::DOCKER_CONTENT_DIGEST;
use super::{body_stream, query_param, set_header};
use crate::clock::now_unix;
use crate::error::RegistryError;
use crate::meta::{Actor, MetaError, UploadLimits, UploadOwner, UploadSession};
use crate::store::{Appended, StoreError};
use crate::{BusyUploads, Registry};

/// `Retry-After` (seconds) of a 429 for too many open sessions: sessions of
/// a working client close within seconds, and the expiry sweep runs every minute.
const UPLOAD_LIMIT_RETRY_AFTER: u64 = 60;

/// `Docker-Upload-UUID`: the session id, as distribution sends it.
const UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");

/// distribution-spec "Pushing blobs": `POST /v2/<name>/blobs/uploads/`.
///
/// - `?mount=<digest>&from=<repo>`: 201 when the blob is linked in `from`
///   (now linked here too), otherwise a new session (202);
/// - `?digest=<digest>` with the blob as body: monolithic upload, 201;
/// - otherwise: a new session, 202 with its `Location`.
#[allow(clippy::too_many_arguments)]
pub async fn start_upload(
    r: &Registry,
    name: &RepositoryName,
    subject: Option<&str>,
    mount: Option<&Mount>,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
    actor: &Actor,
) -> Result<Response, RegistryError> {
    if let Some(Mount {
        digest,
        from: Some(from),
    }) = mount
        && let Some(size) = r.meta.linked_blob(from, digest).await?
        && crate::usage::check_quota(r, name, Some(digest), size)
            .await
            .is_ok()
        && r.meta
            .mount_blob(name, digest, Some(from), actor)
            .await?
            .is_some()
    {
        return Ok(blob_created(r, name, digest));
    }
    let Some(digest) = query_param(query, "digest") else {
        let session = new_session(r, name, subject).await?;
        return Ok(session_response(r, &session, StatusCode::ACCEPTED));
    };
    // The request's own faults before a session exists; any refusal after
    // (a quota, a digest mismatch) discards the session below: the client
    // of a monolithic push gets no `Location` to cancel one.
    let digest = parse_digest_param(&digest)?;
    let declared = declared_length(headers)?;
    let session = new_session(r, name, subject).await?;
    let id = session.id.clone();
    let _busy = UploadLock::acquire(r, &id).await?;
    let pushed = async {
        let session = append(
            r,
            session,
            body,
            declared.unwrap_or(u64::MAX),
            declared,
            Some(&digest),
        )
        .await?;
        finish(r, name, session, &digest).await
    }
    .await;
    if pushed.is_err() {
        // Nobody can resume it: its bytes and its place under the caps go.
        discard_session(r, name, &id).await;
    }
    pushed
}

/// Removes an upload session and its bytes, if still there (a monolithic
/// push that failed); a failure here is logged, the sweep expires it later.
async fn discard_session(r: &Registry, name: &RepositoryName, id: &UploadId) {
    let removed = async {
        if let Some(session) = r.meta.get_upload(name, id).await? {
            r.blobs.abort(&session.staging).await?;
            r.meta.delete_upload(id).await?;
        }
        Ok::<(), RegistryError>(())
    };
    if let Err(e) = removed.await {
        tracing::warn!(upload = %id, error = %e, "removing a failed monolithic upload's session failed; it expires with the upload TTL");
    }
}

/// end-13: `GET <location>`: 204 with the bytes received so far in `Range`.
pub async fn get_upload(
    r: &Registry,
    name: &RepositoryName,
    id: &UploadId,
) -> Result<Response, RegistryError> {
    // A request still writing to the session (its client may be gone, the
    // server not yet aware) is let finish, so that the offset reported
    // includes what it stored.
    drop(UploadLock::acquire(r, id).await?);
    let session = find_session(r, name, id).await?;
    Ok(session_response(r, &session, StatusCode::NO_CONTENT))
}

/// end-5: `PATCH <location>`: appends a chunk. With `Content-Range: a-b`, `a`
/// must be the current offset (416 otherwise) and the body exactly `b-a+1` bytes.
pub async fn patch_upload(
    r: &Registry,
    name: &RepositoryName,
    id: &UploadId,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, RegistryError> {
    let _busy = UploadLock::acquire(r, id).await?;
    let session = find_session(r, name, id).await?;
    let exact = chunk_length(&session, headers)?;
    let session = append(r, session, body, exact.unwrap_or(u64::MAX), exact, None).await?;
    Ok(session_response(r, &session, StatusCode::ACCEPTED))
}

/// end-6: `PUT <location>?digest=<digest>`, optionally with a last chunk:
/// verifies the digest, makes the blob visible, 201.
pub async fn put_upload(
    r: &Registry,
    name: &RepositoryName,
    id: &UploadId,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, RegistryError> {
    let digest = query_param(query, "digest").ok_or_else(|| {
        RegistryError::spec(
            ErrorCode::DigestInvalid,
            "closing an upload needs the blob's digest: PUT <location>?digest=sha256:<hex>",
        )
    })?;
    let digest = parse_digest_param(&digest)?;
    let _busy = UploadLock::acquire(r, id).await?;
    let mut session = find_session(r, name, id).await?;
    let length = declared_length(headers)?;
    // A PUT without a body (no Content-Length, no chunked encoding) closes the
    // upload as it is; appending nothing would still need the staging file.
    let empty = http_body::Body::size_hint(&body).exact() == Some(0);
    if length != Some(0) && !empty {
        let exact = chunk_length(&session, headers)?;
        session = append(
            r,
            session,
            body,
            exact.unwrap_or(u64::MAX),
            exact,
            Some(&digest),
        )
        .await?;
    }
    finish(r, name, session, &digest).await
}

/// end-14: `DELETE <location>`: cancels the session and discards its bytes.
pub async fn cancel_upload(
    r: &Registry,
    name: &RepositoryName,
    id: &UploadId,
) -> Result<Response, RegistryError> {
    let _busy = UploadLock::acquire(r, id).await?;
    let session = find_session(r, name, id).await?;
    r.blobs.abort(&session.staging).await?;
    super::freeing_reserve(r, || async { Ok(r.meta.delete_upload(&session.id).await?) }).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The exact length of the chunk a PATCH or closing PUT carries: with
/// `Content-Range: a-b`, `a` must be the current offset (416 otherwise) and a
/// `Content-Length` must say `b-a+1` (400 `SIZE_INVALID` otherwise). `None`
/// when neither header announces a length.
fn chunk_length(
    session: &UploadSession,
    headers: &HeaderMap,
) -> Result<Option<u64>, RegistryError> {
    let expected = match headers.get(header::CONTENT_RANGE) {
        Some(value) => {
            let (start, end) = parse_content_range(value.to_str().unwrap_or(""))?;
            if start != session.offset {
                return Err(range_error(
                    session,
                    format!(
                        "chunk starts at byte {start} but the upload has {} bytes; send the next chunk from byte {}",
                        session.offset, session.offset
                    ),
                ));
            }
            Some(end - start + 1)
        }
        None => None,
    };
    let length = declared_length(headers)?;
    if let (Some(expected), Some(length)) = (expected, length)
        && expected != length
    {
        return Err(RegistryError::spec(
            ErrorCode::SizeInvalid,
            format!("Content-Range covers {expected} bytes but Content-Length says {length}"),
        ));
    }
    Ok(expected.or(length))
}

/// Opens a session for `subject` (the token's, if any), within the caps on
/// open sessions per user and per repository (429 `TOOMANYREQUESTS` beyond).
async fn new_session(
    r: &Registry,
    name: &RepositoryName,
    subject: Option<&str>,
) -> Result<UploadSession, RegistryError> {
    let id = UploadId::parse(&uuid::Uuid::new_v4().simple().to_string())
        .map_err(|e| RegistryError::spec(ErrorCode::BlobUploadInvalid, e.to_string()))?;
    let staging = r.blobs.begin_upload(&id).await?;
    let now = now_unix();
    let session = UploadSession {
        id,
        repository: name.clone(),
        subject: subject.map(str::to_owned),
        offset: 0,
        hash_state: Digester::new(Algorithm::Sha256).save_state(),
        staging,
        created_at: now,
        updated_at: now,
    };
    let limits = UploadLimits {
        per_subject: r.config.max_uploads_per_user,
        per_repository: r.config.max_uploads_per_repository,
    };
    if let Err(e) = r.meta.create_upload(&session, limits).await {
        // No session will ever name this staging location.
        if let Err(abort) = r.blobs.abort(&session.staging).await {
            tracing::warn!(error = %abort, "could not remove the staging file of a refused upload");
        }
        return Err(match e {
            MetaError::UploadLimit { owner, open, limit } => {
                too_many_sessions(r, &owner, open, limit)
            }
            e => e.into(),
        });
    }
    Ok(session)
}

/// 429 for a session beyond a cap: how many are open, and how to close some.
fn too_many_sessions(r: &Registry, owner: &UploadOwner, open: u64, limit: u32) -> RegistryError {
    let ttl = r.config.upload_ttl.as_secs();
    RegistryError::LimitReached {
        message: format!(
            "{owner} has {open} blob upload sessions open and this registry allows {limit}; \
             finish one (PUT <location>?digest=<digest>) or cancel it (DELETE <location>), \
             or wait: a session idle for {ttl} s expires"
        ),
        retry_after_secs: UPLOAD_LIMIT_RETRY_AFTER,
    }
}

async fn find_session(
    r: &Registry,
    name: &RepositoryName,
    id: &UploadId,
) -> Result<UploadSession, RegistryError> {
    r.meta
        .get_upload(name, id)
        .await?
        .ok_or_else(|| upload_unknown(id))
}

/// Streams `body` onto the session and records the new offset and hash state.
/// With `exact`, the body must be exactly that many bytes.
///
/// Progress is recorded as the body streams (the store's checkpoints), and
/// what was stored before a body failed is recorded too: a client cut off
/// mid-body (or a server killed) continues from the offset `GET <location>`
/// reports instead of from the start.
async fn append(
    r: &Registry,
    session: UploadSession,
    body: Body,
    limit: u64,
    exact: Option<u64>,
    digest: Option<&Digest>,
) -> Result<UploadSession, RegistryError> {
    if let Some(length) = exact {
        // The size is known before a byte is stored: refused now, not after
        // (a blob the namespace holds already, when the digest is known, adds nothing).
        crate::usage::check_quota(
            r,
            &session.repository,
            digest,
            session.offset.saturating_add(length),
        )
        .await?;
    }
    let digester = Digester::restore_state(&session.hash_state)
        .map_err(|e| RegistryError::Meta(crate::meta::MetaError::Corrupt(e.to_string())))?;
    let (checkpoints, mut checkpoint_rx) = tokio::sync::mpsc::unbounded_channel();
    let stored = r.blobs.append(
        &session.staging,
        session.offset,
        digester,
        body_stream(body),
        limit,
        Some(checkpoints),
    );
    // Checkpoints are recorded while the body streams; the recorder ends when
    // the append drops its sender.
    let recorder = async {
        let mut recorded = Ok(session.offset);
        while let Some(checkpoint) = checkpoint_rx.recv().await {
            if let Ok(at) = recorded {
                recorded = record(r, &session, at, &checkpoint)
                    .await
                    .map(|()| checkpoint.offset);
            }
        }
        recorded
    };
    let (stored, recorded) = tokio::join!(stored, recorder);
    let recorded = recorded?;
    let appended = match stored {
        Ok(appended) => appended,
        Err(StoreError::Interrupted { progress, cause }) => {
            record(r, &session, recorded, &progress).await?;
            return Err(StoreError::Body(cause).into());
        }
        Err(StoreError::NotFound) => return Err(upload_unknown(&session.id)),
        Err(StoreError::TooLarge { .. }) => {
            return Err(RegistryError::spec(
                ErrorCode::SizeInvalid,
                format!("the body is longer than the {limit} bytes its headers announced"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let received = appended.offset - session.offset;
    if let Some(exact) = exact
        && received != exact
    {
        record(r, &session, recorded, &appended).await?;
        return Err(RegistryError::spec(
            ErrorCode::SizeInvalid,
            format!("the headers announced {exact} bytes but the body had {received}"),
        ));
    }
    record(r, &session, recorded, &appended).await?;
    Ok(UploadSession {
        offset: appended.offset,
        hash_state: appended.digester.save_state(),
        staging: appended.staging.unwrap_or(session.staging),
        updated_at: now_unix(),
        ..session
    })
}

/// Records that `session` (whose offset in the store is `from`) now holds
/// `appended.offset` bytes with `appended`'s hash state.
async fn record(
    r: &Registry,
    session: &UploadSession,
    from: u64,
    appended: &Appended,
) -> Result<(), RegistryError> {
    if appended.offset == from {
        return Ok(());
    }
    let advanced = r
        .meta
        .advance_upload(
            &session.id,
            from,
            appended.offset,
            &appended.digester.save_state(),
            appended.staging.as_deref(),
            now_unix(),
        )
        .await?;
    if advanced {
        Ok(())
    } else {
        Err(upload_unknown(&session.id))
    }
}

/// Verifies the digest, moves the bytes to their content address, links the
/// blob into the repository, and closes the session.
async fn finish(
    r: &Registry,
    name: &RepositoryName,
    session: UploadSession,
    digest: &Digest,
) -> Result<Response, RegistryError> {
    let digester = Digester::restore_state(&session.hash_state)
        .map_err(|e| RegistryError::Meta(crate::meta::MetaError::Corrupt(e.to_string())))?;
    let actual = if digester.algorithm() == digest.algorithm() {
        digester.finalize()
    } else {
        rehash(r, &session, digest.algorithm()).await?
    };
    if &actual != digest {
        r.blobs.abort(&session.staging).await?;
        r.meta.delete_upload(&session.id).await?;
        return Err(RegistryError::spec(
            ErrorCode::DigestInvalid,
            format!(
                "the uploaded {} bytes have digest {actual}, not {digest}; the upload was discarded, push the blob again",
                session.offset
            ),
        ));
    }
    // A body streamed without a length is counted here, before the blob
    // is linked; the upload is discarded when it does not fit.
    if let Err(e) = crate::usage::check_quota(r, name, Some(digest), session.offset).await {
        r.blobs.abort(&session.staging).await?;
        r.meta.delete_upload(&session.id).await?;
        return Err(e);
    }
    match r.blobs.commit(&session.staging, digest).await {
        Ok(()) => {}
        // The staging file is gone and no blob holds the bytes: a crash or a
        // concurrent close got here first and nothing can be recovered.
        Err(StoreError::NotFound) => {
            r.meta.delete_upload(&session.id).await?;
            return Err(upload_unknown(&session.id));
        }
        Err(e) => return Err(e.into()),
    }
    // Linking the blob and closing the session is one transaction, so a crash
    // leaves either an open session or a linked blob, never half of each.
    let present = Box::pin(async {
        r.blobs
            .stat(digest)
            .await
            .map(|size| size.is_some())
            .map_err(|e| e.to_string())
    });
    match r
        .meta
        .finish_upload(&session.id, name, digest, session.offset, present)
        .await
    {
        Ok(()) => Ok(blob_created(r, name, digest)),
        // The collector reclaimed the bytes the commit placed: the staging
        // is spent, so the session ends and the client uploads again.
        Err(e @ MetaError::BytesGone(_)) => {
            r.meta.delete_upload(&session.id).await?;
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Hashes a staging file again with another algorithm (a client closing a
/// chunked upload with a sha512 digest; sessions hash sha256 as they go).
async fn rehash(
    r: &Registry,
    session: &UploadSession,
    algorithm: Algorithm,
) -> Result<Digest, RegistryError> {
    let mut reader = r
        .blobs
        .read_staging(&session.staging, session.offset)
        .await?;
    let mut digester = Digester::new(algorithm);
    while let Some(chunk) = reader.stream.next().await {
        digester.update(&chunk.map_err(StoreError::Io)?);
    }
    Ok(digester.finalize())
}

fn blob_created(r: &Registry, name: &RepositoryName, digest: &Digest) -> Response {
    let mut response = StatusCode::CREATED.into_response();
    set_header(
        &mut response,
        header::LOCATION,
        &format!("{}/v2/{name}/blobs/{digest}", r.config.public_url),
    );
    set_header(&mut response, DOCKER_CONTENT_DIGEST, &digest.to_string());
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, header::HeaderValue::from(0));
    response
}

fn session_response(r: &Registry, session: &UploadSession, status: StatusCode) -> Response {
    let mut response = status.into_response();
    set_header(
        &mut response,
        header::LOCATION,
        &format!(
            "{}/v2/{}/blobs/uploads/{}",
            r.config.public_url, session.repository, session.id
        ),
    );
    set_header(&mut response, header::RANGE, &range_value(session.offset));
    set_header(&mut response, UPLOAD_UUID, session.id.as_str());
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, header::HeaderValue::from(0));
    response
}

/// `Range: 0-<last byte>` (no `bytes=`), `0-0` for an empty upload as
/// distribution sends it.
fn range_value(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

fn range_error(session: &UploadSession, message: String) -> RegistryError {
    RegistryError::Spec {
        code: ErrorCode::RangeInvalid,
        message,
        detail: Some(
            serde_json::json!({ "range": range_value(session.offset), "offset": session.offset }),
        ),
    }
}

fn upload_unknown(id: &UploadId) -> RegistryError {
    RegistryError::spec(
        ErrorCode::BlobUploadUnknown,
        format!(
            "upload {id} is not in progress (finished, cancelled or expired); start a new one with POST /v2/<name>/blobs/uploads/"
        ),
    )
}

fn parse_digest_param(value: &str) -> Result<Digest, RegistryError> {
    Digest::parse(value).map_err(|e| RegistryError::spec(ErrorCode::DigestInvalid, e.to_string()))
}

/// `Content-Range: <start>-<end>` (also with a `bytes ` prefix), inclusive.
fn parse_content_range(value: &str) -> Result<(u64, u64), RegistryError> {
    let bad = || {
        RegistryError::spec(
            ErrorCode::RangeInvalid,
            format!("Content-Range {value:?} is not <start>-<end> with start <= end"),
        )
    };
    let spec = value.trim();
    let spec = spec.strip_prefix("bytes ").unwrap_or(spec);
    let spec = spec.split('/').next().unwrap_or(spec);
    let (start, end) = spec.split_once('-').ok_or_else(bad)?;
    let start: u64 = start.trim().parse().map_err(|_| bad())?;
    let end: u64 = end.trim().parse().map_err(|_| bad())?;
    if start > end {
        return Err(bad());
    }
    Ok((start, end))
}

fn declared_length(headers: &HeaderMap) -> Result<Option<u64>, RegistryError> {
    match headers.get(header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| {
                RegistryError::spec(ErrorCode::SizeInvalid, "Content-Length is not a number")
            }),
    }
}

/// How long a request waits for another one writing to the same session.
const UPLOAD_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// One request at a time per upload session within this process: two
/// concurrent PATCHes on one session would interleave their bytes in one
/// staging file. A request that finds the session busy waits for up to
/// [`UPLOAD_LOCK_WAIT`]: the usual case is a client continuing an upload
/// whose previous request was cut off, before the server noticed the cut.
/// Past that it gets 416 and retries from the offset in `Range`.
struct UploadLock {
    busy: BusyUploads,
    id: UploadId,
}

impl UploadLock {
    async fn acquire(r: &Registry, id: &UploadId) -> Result<Self, RegistryError> {
        let started = std::time::Instant::now();
        loop {
            {
                let mut busy = r.busy_uploads.lock().unwrap_or_else(|p| p.into_inner());
                if busy.insert(id.clone()) {
                    return Ok(Self {
                        busy: r.busy_uploads.clone(),
                        id: id.clone(),
                    });
                }
            }
            if started.elapsed() >= UPLOAD_LOCK_WAIT {
                return Err(RegistryError::spec(
                    ErrorCode::RangeInvalid,
                    format!("another request is writing to upload {id}; send chunks one at a time"),
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

impl Drop for UploadLock {
    fn drop(&mut self) {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        busy.remove(&self.id);
    }
}
