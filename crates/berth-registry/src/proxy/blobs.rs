//! Blobs of proxy namespaces: one upstream fetch per digest (a flight),
//! read by every client that asks while it runs, verified, then stored.
//!
//! A flight writes the upstream's bytes to a spool file and publishes how far
//! it got; each client's answer is a [`tail`] of that file, which waits for
//! more bytes rather than ending at the current end. Memory per client is one
//! read buffer, whatever the blob's size. When the upstream's stream ends,
//! its digest has been checked by berth-client over every byte; only then is
//! the flight marked done (clients finish their answers) and the spool copied
//! into the blob store through the upload path (hashed again there), linked
//! into the repository, and the flight removed. A failure before the first
//! byte answers every waiting client with the upstream's answer; after it,
//! their answers are cut (the client's own digest check or length fails,
//! never a silently short blob).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use berth_client::auth::Operation;
use berth_core::digest::{Digest, Digester};
use berth_core::endpoint::UploadId;
use berth_core::name::RepositoryName;
use berth_core::oci_error::ErrorCode;
use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::watch;

use super::{Proxy, Target, UpstreamFailure, bump};
use crate::Registry;
use crate::error::RegistryError;
use crate::http::blobs::{blob_response, requested_range};
use crate::store::ByteStream;

/// Bytes gathered from upstream before they are written to the spool (or
/// fewer, when the upstream pauses), and the most one client read takes.
const CHUNK: usize = 256 * 1024;

/// What a miss in a proxy namespace came to.
pub enum Miss {
    /// The blob is now linked in the repository, with this size: serve it
    /// as any local blob.
    Linked(u64),
    /// The answer (a flight's bytes, or the upstream's size for `HEAD`).
    Served(Response),
}

/// One upstream fetch of a blob, shared by every client asking for it.
pub struct Flight {
    /// The spool file (removed when the last reader and the fetch are done).
    path: PathBuf,
    /// How far the fetch got.
    progress: watch::Sender<Progress>,
}

impl Drop for Flight {
    fn drop(&mut self) {
        // Readers hold the flight until their answer ends; nobody needs
        // the file any more.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A flight's state, as its readers see it.
#[derive(Debug, Clone, Default)]
struct Progress {
    /// The upstream answered: bytes may follow.
    answered: bool,
    /// The blob's size, when the upstream announced it.
    size: Option<u64>,
    /// Bytes in the spool file, readable.
    written: u64,
    /// `None` while running; then done (every byte verified) or failed.
    outcome: Option<Result<(), Failure>>,
}

/// Why a flight failed.
#[derive(Debug, Clone)]
enum Failure {
    /// The upstream's fault.
    Upstream(UpstreamFailure),
    /// The cache's own (the spool's disk).
    Local(Arc<str>),
}

/// Answers a blob request of a proxy namespace that the repository does not
/// hold: linked after one `HEAD` upstream when the blob store has the bytes
/// already, answered from the upstream's `HEAD` for a `HEAD`, else streamed
/// from a flight (started, or joined when one is under way).
pub async fn miss(
    r: &Registry,
    target: &Target,
    name: &RepositoryName,
    digest: &Digest,
    headers: &HeaderMap,
    head: bool,
) -> Result<Miss, RegistryError> {
    let proxy = &target.proxy;
    let unknown = |failure: &UpstreamFailure| {
        failure.to_error(
            &proxy.settings,
            name,
            &format!("blob {digest}"),
            ErrorCode::BlobUnknown,
        )
    };
    let joinable = {
        let flights = proxy.flights.lock().unwrap_or_else(|e| e.into_inner());
        flights.get(digest).cloned()
    };
    if joinable.is_none() {
        // Holding the bytes is not proof that this repository may serve
        // them: the upstream says whether it has them.
        let held = r.meta.blob_size(digest).await?;
        if held.is_some() || head {
            let upstream = proxy
                .client
                .blob_size(
                    &target.upstream,
                    digest,
                    &Operation::Pull(target.upstream.clone()),
                )
                .await;
            let size = match upstream {
                Ok(Some(size)) => size,
                Ok(None) => {
                    let failure = UpstreamFailure::NotFound("blob unknown".to_owned());
                    proxy.count_failure(&failure);
                    return Err(unknown(&failure));
                }
                Err(e) => {
                    let failure = UpstreamFailure::of(&e);
                    proxy.count_failure(&failure);
                    return Err(unknown(&failure));
                }
            };
            if let Some(held) = held {
                r.meta.link_blob(name, digest, held).await?;
                bump(&proxy.counters.blob_linked);
                return Ok(Miss::Linked(held));
            }
            return Ok(Miss::Served(blob_head(digest, Some(size))));
        }
        if !r.disk.admit_write().await {
            return Err(RegistryError::DiskFull);
        }
    }
    let flight = join_or_start(r, target, name, digest);
    let mut progress = flight.progress.subscribe();
    let answered = loop {
        let now = progress.borrow_and_update().clone();
        if now.answered {
            break now;
        }
        match now.outcome {
            Some(Err(Failure::Upstream(failure))) => return Err(unknown(&failure)),
            Some(Err(Failure::Local(cause))) => {
                return Err(RegistryError::Internal(format!(
                    "caching blob {digest} of {name} failed: {cause}"
                )));
            }
            _ => {}
        }
        if progress.changed().await.is_err() {
            return Err(RegistryError::Internal(
                "a blob fetch ended without an outcome".to_owned(),
            ));
        }
    };
    let size = answered.size;
    if head {
        return Ok(Miss::Served(blob_head(digest, size)));
    }
    let range = match size.map(|size| requested_range(headers, size)) {
        Some(Ok(range)) => range,
        Some(Err(refusal)) => return Ok(Miss::Served(*refusal)),
        None => None,
    };
    let (start, end) = match range {
        Some(range) => (range.start, Some(range.end + 1)),
        None => (0, size),
    };
    let body = Body::from_stream(tail(flight, start, end));
    Ok(Miss::Served(blob_response(body, digest, size, range)))
}

/// The answer to `HEAD` for a blob the upstream has and the cache does not
/// (yet): its size, when known.
fn blob_head(digest: &Digest, size: Option<u64>) -> Response {
    blob_response(Body::empty(), digest, size, None)
}

/// The flight fetching `digest`: the one under way, or a new one.
fn join_or_start(
    r: &Registry,
    target: &Target,
    name: &RepositoryName,
    digest: &Digest,
) -> Arc<Flight> {
    let proxy = &target.proxy;
    let mut flights = proxy.flights.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(flight) = flights.get(digest) {
        bump(&proxy.counters.blob_joined);
        return flight.clone();
    }
    bump(&proxy.counters.blob_fetched);
    let path = proxy.spool.join(format!(
        "{}-{}",
        digest.hex(),
        uuid::Uuid::new_v4().simple()
    ));
    let (progress, _) = watch::channel(Progress::default());
    let flight = Arc::new(Flight { path, progress });
    flights.insert(digest.clone(), flight.clone());
    tokio::spawn(run(
        r.clone(),
        target.clone(),
        name.clone(),
        digest.clone(),
        flight.clone(),
    ));
    flight
}

/// A flight, from the upstream's first byte to the blob linked: runs on its
/// own, so a client that goes away does not stop the others' answers.
async fn run(
    r: Registry,
    target: Target,
    name: RepositoryName,
    digest: Digest,
    flight: Arc<Flight>,
) {
    let proxy = &target.proxy;
    let fetched = fetch(proxy, &target, &digest, &flight).await;
    let outcome = fetched.as_ref().map(|_| ()).map_err(Clone::clone);
    flight.progress.send_modify(|p| p.outcome = Some(outcome));
    match fetched {
        Ok(size) => {
            if let Err(e) = keep(&r, &name, &digest, &flight, size).await {
                tracing::warn!(
                    proxy = proxy.settings.name.as_str(),
                    repository = name.as_str(),
                    %digest,
                    error = %e,
                    "a fetched blob could not be stored; the next pull fetches it again"
                );
            }
        }
        Err(Failure::Upstream(failure)) => {
            proxy.count_failure(&failure);
            tracing::info!(
                proxy = proxy.settings.name.as_str(),
                repository = name.as_str(),
                %digest,
                error = ?failure,
                "upstream blob fetch failed"
            );
        }
        Err(Failure::Local(cause)) => {
            tracing::warn!(
                proxy = proxy.settings.name.as_str(),
                %digest,
                error = %cause,
                "spooling an upstream blob failed"
            );
        }
    }
    let mut flights = proxy.flights.lock().unwrap_or_else(|e| e.into_inner());
    if flights
        .get(&digest)
        .is_some_and(|f| Arc::ptr_eq(f, &flight))
    {
        flights.remove(&digest);
    }
}

/// Streams the blob from upstream into the spool file, publishing progress;
/// its size once every byte is there and verified.
async fn fetch(
    proxy: &Proxy,
    target: &Target,
    digest: &Digest,
    flight: &Flight,
) -> Result<u64, Failure> {
    let local = |e: io::Error| Failure::Local(Arc::from(e.to_string()));
    let upstream =
        |e: &berth_client::client::ClientError| Failure::Upstream(UpstreamFailure::of(e));
    let mut stream = proxy
        .client
        .get_blob(&target.upstream, digest)
        .await
        .map_err(|e| upstream(&e))?;
    let size = stream.size();
    let mut file = tokio::fs::File::create(&flight.path).await.map_err(local)?;
    flight.progress.send_modify(|p| {
        p.answered = true;
        p.size = size;
    });
    let mut buffer = BytesMut::with_capacity(CHUNK);
    let mut written = 0u64;
    loop {
        // Gather what has arrived; write when the buffer is full or the
        // upstream pauses (readers never wait on a half-filled buffer).
        let next = match stream.next().now_or_never() {
            Some(next) => next,
            None => {
                if !buffer.is_empty() {
                    written += write(&mut file, &mut buffer).await.map_err(local)?;
                    flight.progress.send_modify(|p| p.written = written);
                }
                stream.next().await
            }
        };
        match next {
            None => break,
            Some(Err(e)) => return Err(upstream(&e)),
            Some(Ok(chunk)) => {
                proxy
                    .counters
                    .bytes_fetched
                    .fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
                buffer.extend_from_slice(&chunk);
                if size.is_some_and(|size| written + buffer.len() as u64 > size) {
                    return Err(Failure::Upstream(UpstreamFailure::Unavailable(
                        "the upstream sent more bytes than it announced".to_owned(),
                    )));
                }
                if buffer.len() >= CHUNK {
                    written += write(&mut file, &mut buffer).await.map_err(local)?;
                    flight.progress.send_modify(|p| p.written = written);
                }
            }
        }
    }
    written += write(&mut file, &mut buffer).await.map_err(local)?;
    flight.progress.send_modify(|p| {
        p.written = written;
        p.size = Some(written);
    });
    Ok(written)
}

/// Writes the buffer to the spool and empties it; the bytes written. The
/// write has reached the file when this returns (readers may read them).
async fn write(file: &mut tokio::fs::File, buffer: &mut BytesMut) -> io::Result<u64> {
    let n = buffer.len() as u64;
    if n > 0 {
        file.write_all(buffer).await?;
        file.flush().await?;
        buffer.clear();
    }
    Ok(n)
}

/// Copies a verified spool into the blob store (through its upload path,
/// hashed again), links it into the repository.
async fn keep(
    r: &Registry,
    name: &RepositoryName,
    digest: &Digest,
    flight: &Flight,
    size: u64,
) -> Result<(), RegistryError> {
    let id = UploadId::parse(&uuid::Uuid::new_v4().simple().to_string())
        .map_err(|e| RegistryError::Internal(format!("upload id: {e}")))?;
    let staging = r.blobs.begin_upload(&id).await?;
    let file = tokio::fs::File::open(&flight.path)
        .await
        .map_err(crate::store::StoreError::Io)?;
    let body: ByteStream = Box::pin(tokio_util::io::ReaderStream::with_capacity(file, CHUNK));
    let appended = r
        .blobs
        .append(
            &staging,
            0,
            Digester::new(digest.algorithm()),
            body,
            size,
            None,
        )
        .await;
    let appended = match appended {
        Ok(appended) => appended,
        Err(e) => {
            let _ = r.blobs.abort(&staging).await;
            return Err(e.into());
        }
    };
    let staging = appended.staging.clone().unwrap_or(staging);
    let got = appended.digester.finalize();
    if appended.offset != size || got != *digest {
        let _ = r.blobs.abort(&staging).await;
        return Err(RegistryError::Internal(format!(
            "the spool of {digest} changed on disk ({} bytes hashing to {got})",
            appended.offset
        )));
    }
    r.blobs.commit(&staging, digest).await?;
    r.meta.link_blob(name, digest, size).await?;
    Ok(())
}

/// A client's answer: the flight's bytes from `start` to `end` (exclusive;
/// `None`: to the end of the blob), waiting for the fetch where it has not
/// got that far yet. Ends with an error when the flight fails.
fn tail(flight: Arc<Flight>, start: u64, end: Option<u64>) -> ByteStream {
    let progress = flight.progress.subscribe();
    let reader = Tail {
        flight,
        progress,
        file: None,
        offset: start,
        end,
        finished: false,
    };
    Box::pin(futures_util::stream::unfold(
        reader,
        |mut reader| async move {
            match reader.next().await {
                Ok(Some(bytes)) => Some((Ok(bytes), reader)),
                Ok(None) => None,
                Err(e) => {
                    reader.finished = true;
                    Some((Err(e), reader))
                }
            }
        },
    ))
}

struct Tail {
    /// Held so the spool file outlives this answer.
    flight: Arc<Flight>,
    progress: watch::Receiver<Progress>,
    file: Option<tokio::fs::File>,
    offset: u64,
    end: Option<u64>,
    finished: bool,
}

impl Tail {
    async fn next(&mut self) -> io::Result<Option<Bytes>> {
        if self.finished {
            return Ok(None);
        }
        loop {
            let now = self.progress.borrow_and_update().clone();
            let end = self.end.or(match now.outcome {
                Some(Ok(())) => Some(now.written),
                _ => None,
            });
            if end.is_some_and(|end| self.offset >= end) {
                match &now.outcome {
                    Some(Ok(())) => return Ok(None),
                    Some(Err(failure)) => return Err(cut(failure)),
                    // Every byte asked for is sent, but the digest is not
                    // checked yet: the answer ends when it is.
                    None => {}
                }
            } else if self.offset < now.written {
                let available = now.written - self.offset;
                let wanted = end.map_or(available, |end| available.min(end - self.offset));
                let n = usize::try_from(wanted).unwrap_or(CHUNK).min(CHUNK);
                return self.read(n).await.map(Some);
            } else if let Some(Err(failure)) = &now.outcome {
                return Err(cut(failure));
            }
            if self.progress.changed().await.is_err() {
                return Err(io::Error::other("the blob fetch stopped"));
            }
        }
    }

    async fn read(&mut self, n: usize) -> io::Result<Bytes> {
        let offset = self.offset;
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let mut file = tokio::fs::File::open(&self.flight.path).await?;
                file.seek(io::SeekFrom::Start(offset)).await?;
                self.file.insert(file)
            }
        };
        let mut buffer = BytesMut::zeroed(n);
        let got = file.read(&mut buffer).await?;
        if got == 0 {
            return Err(io::Error::other("the spool file ended before its bytes"));
        }
        buffer.truncate(got);
        self.offset += got as u64;
        Ok(buffer.freeze())
    }
}

fn cut(failure: &Failure) -> io::Error {
    io::Error::other(match failure {
        Failure::Upstream(failure) => format!("the upstream fetch failed: {failure:?}"),
        Failure::Local(cause) => format!("spooling the blob failed: {cause}"),
    })
}
