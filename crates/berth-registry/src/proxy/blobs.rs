//! Blobs of proxy namespaces: one upstream fetch per digest (a flight),
//! read by every client that asks while it runs, verified, then stored.
//!
//! A flight keeps the latest few MiB it received in memory ([`RECENT`]) and
//! hands every byte to a writer thread that appends it to a spool file; it
//! publishes how far it received and how far the spool is written. Each
//! client's answer is a [`tail`]: from memory while it keeps up (the same
//! `Bytes`, no copy), from the spool (`pread` on a descriptor opened at the
//! start) when it fell behind, waiting for more bytes rather than ending at
//! the current end. Memory per flight is bounded, whatever the blob's size.
//! The fetch paces itself on the leading client ([`Pace`]): it runs at most
//! [`AHEAD`] in front of it, so that client is served from memory and the
//! upstream sends at the rate a direct pull would take, until the last
//! client leaves or the leader stalls; then it runs at the upstream's rate.
//! When the upstream's stream ends, its digest has been checked by
//! berth-client over every byte; only then is the flight marked done
//! (clients finish their answers) and the spool handed to the blob store
//! (`BlobStore::adopt`: moved into place on the filesystem store), linked
//! into the repository, and the flight removed. A failure before the first
//! byte answers every waiting client with the upstream's answer; after it,
//! their answers are cut (the client's own digest check or length fails,
//! never a silently short blob).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use berth_client::auth::Operation;
use berth_core::digest::Digest;
use berth_core::name::RepositoryName;
use berth_core::oci_error::ErrorCode;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::{Notify, mpsc, watch};

use super::{Proxy, Target, UpstreamFailure, bump};
use crate::Registry;
use crate::error::RegistryError;
use crate::http::blobs::{blob_response, requested_range};
use crate::store::ByteStream;

/// The most one client's read of the spool takes.
const CHUNK: usize = 256 * 1024;
/// The latest bytes a flight keeps in memory for the clients that keep up.
const RECENT: usize = 4 * 1024 * 1024;
/// The least the spool writer hands to one `write`: one call per MiB
/// rather than one per network read (about 16 KiB). A reader behind memory
/// waits for the next write; the bytes not written yet are in memory
/// ([`RECENT`] being larger than this plus the fetch's lead, [`AHEAD`]).
const SPOOL_WRITE: usize = 1024 * 1024;
/// How far the fetch may run ahead of the leading client's answer: the
/// leader always finds its bytes in memory, and the upstream sends at the
/// rate the fastest client takes them, as it would without the cache.
const AHEAD: u64 = (RECENT / 2) as u64;
/// How long the fetch waits for a leading client that stopped reading
/// before it goes on at the upstream's rate for the rest of the blob: no
/// client holds the cache's copy back for longer.
const STALL: std::time::Duration = std::time::Duration::from_secs(1);
/// Chunks received and not yet written to the spool before the fetch waits
/// for the disk.
const WRITE_QUEUE: usize = 64;

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
    /// The spool file (removed when the last reader and the fetch are done,
    /// unless the blob store took it).
    path: PathBuf,
    /// The spool, open for reading from the upstream's answer on (readers
    /// use `pread`: no shared offset; the file may be renamed meanwhile).
    spool: OnceLock<Arc<std::fs::File>>,
    /// The latest bytes received.
    recent: Mutex<Recent>,
    /// How far the fetch got.
    progress: watch::Sender<Progress>,
    /// How far the clients' answers got.
    pace: Pace,
}

/// The clients' answers of a flight, as the fetch paces itself on them.
#[derive(Default)]
struct Pace {
    /// Answers reading the flight.
    readers: AtomicUsize,
    /// The furthest offset an answer has sent.
    lead: AtomicU64,
    /// Signalled when an answer moves on or ends.
    moved: Notify,
}

impl Pace {
    /// Waits while the leading answer is more than [`AHEAD`] behind
    /// `received` (when some client reads); `false` once it stalled for
    /// [`STALL`]: then the fetch stops pacing.
    async fn wait(&self, received: u64) -> bool {
        loop {
            let moved = self.moved.notified();
            if self.readers.load(Ordering::Acquire) == 0
                || received <= self.lead.load(Ordering::Acquire).saturating_add(AHEAD)
            {
                return true;
            }
            if tokio::time::timeout(STALL, moved).await.is_err() {
                return false;
            }
        }
    }

    /// An answer sent its bytes up to `offset`.
    fn reached(&self, offset: u64) {
        self.lead.fetch_max(offset, Ordering::AcqRel);
        self.moved.notify_one();
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        // Readers hold the flight until their answer ends; nobody needs
        // the file any more.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The latest chunks received, from offset `start` on, at most [`RECENT`]
/// bytes (more only while one chunk is larger).
#[derive(Default)]
struct Recent {
    start: u64,
    len: usize,
    chunks: VecDeque<Bytes>,
}

impl Flight {
    /// Keeps `chunk`, received at the end, dropping the oldest beyond [`RECENT`].
    fn remember(&self, chunk: Bytes) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.len += chunk.len();
        recent.chunks.push_back(chunk);
        while recent.len > RECENT && recent.chunks.len() > 1 {
            if let Some(old) = recent.chunks.pop_front() {
                recent.len -= old.len();
                recent.start += old.len() as u64;
            }
        }
    }

    /// Up to `max` bytes from `offset`, when they are still in memory.
    fn recent_at(&self, offset: u64, max: u64) -> Option<Bytes> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let mut at = recent.start;
        if offset < at {
            return None;
        }
        for chunk in &recent.chunks {
            let end = at + chunk.len() as u64;
            if offset < end {
                let from = usize::try_from(offset - at).ok()?;
                let to = usize::try_from((end - at).min(offset - at + max)).ok()?;
                return Some(chunk.slice(from..to));
            }
            at = end;
        }
        None
    }
}

/// A flight's state, as its readers see it.
#[derive(Debug, Clone, Default)]
struct Progress {
    /// The upstream answered: bytes may follow.
    answered: bool,
    /// The blob's size, when the upstream announced it.
    size: Option<u64>,
    /// Bytes received from the upstream.
    received: u64,
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
    let flight = Arc::new(Flight {
        path,
        spool: OnceLock::new(),
        recent: Mutex::default(),
        progress,
        pace: Pace::default(),
    });
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

/// Streams the blob from upstream into memory and the spool file,
/// publishing progress; its size once every byte is there and verified.
async fn fetch(
    proxy: &Proxy,
    target: &Target,
    digest: &Digest,
    flight: &Arc<Flight>,
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
    let file = std::fs::File::create(&flight.path).map_err(local)?;
    let reader = std::fs::File::open(&flight.path).map_err(local)?;
    let _ = flight.spool.set(Arc::new(reader));
    let (chunks, queued) = mpsc::channel::<Bytes>(WRITE_QUEUE);
    let writer = {
        let flight = flight.clone();
        tokio::task::spawn_blocking(move || write_spool(file, queued, &flight))
    };
    flight.progress.send_modify(|p| {
        p.answered = true;
        p.size = size;
    });
    let mut received = 0u64;
    let mut pacing = true;
    let streamed = async {
        loop {
            if pacing {
                pacing = flight.pace.wait(received).await;
            }
            let Some(chunk) = stream.next().await else {
                break;
            };
            let chunk = chunk.map_err(|e| upstream(&e))?;
            received += chunk.len() as u64;
            proxy
                .counters
                .bytes_fetched
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if size.is_some_and(|size| received > size) {
                return Err(Failure::Upstream(UpstreamFailure::Unavailable(
                    "the upstream sent more bytes than it announced".to_owned(),
                )));
            }
            flight.remember(chunk.clone());
            flight.progress.send_modify(|p| p.received = received);
            if chunks.send(chunk).await.is_err() {
                // The writer stopped: its error says why.
                break;
            }
        }
        Ok(())
    }
    .await;
    drop(chunks);
    let written = writer
        .await
        .map_err(|e| local(io::Error::other(format!("the spool writer failed: {e}"))))?
        .map_err(local)?;
    streamed?;
    if written != received {
        return Err(local(io::Error::other(format!(
            "the spool holds {written} of the {received} bytes received"
        ))));
    }
    flight.progress.send_modify(|p| p.size = Some(written));
    Ok(written)
}

/// The spool's writer thread: appends each chunk as it comes, publishing
/// what is written; the bytes written once the fetch's side closes.
fn write_spool(
    mut file: std::fs::File,
    mut queued: mpsc::Receiver<Bytes>,
    flight: &Flight,
) -> io::Result<u64> {
    let mut written = 0u64;
    let mut buffer: Vec<u8> = Vec::with_capacity(SPOOL_WRITE);
    let mut write = |buffer: &mut Vec<u8>| -> io::Result<()> {
        file.write_all(buffer)?;
        written += buffer.len() as u64;
        buffer.clear();
        // Readers that fell behind memory read the file up to here.
        flight.progress.send_modify(|p| p.written = written);
        Ok(())
    };
    while let Some(chunk) = queued.blocking_recv() {
        buffer.extend_from_slice(&chunk);
        if buffer.len() >= SPOOL_WRITE {
            write(&mut buffer)?;
        }
    }
    if !buffer.is_empty() {
        write(&mut buffer)?;
    }
    Ok(written)
}

/// Hands the verified spool to the blob store and links it into the
/// repository.
async fn keep(
    r: &Registry,
    name: &RepositoryName,
    digest: &Digest,
    flight: &Flight,
    size: u64,
) -> Result<(), RegistryError> {
    r.blobs.adopt(&flight.path, digest, size).await?;
    r.meta.link_blob(name, digest, size).await?;
    Ok(())
}

/// A client's answer: the flight's bytes from `start` to `end` (exclusive;
/// `None`: to the end of the blob), waiting for the fetch where it has not
/// got that far yet. Ends with an error when the flight fails.
fn tail(flight: Arc<Flight>, start: u64, end: Option<u64>) -> ByteStream {
    let progress = flight.progress.subscribe();
    // An answer from `start` on leads from there (a range beyond what
    // was received does not hold the fetch back).
    flight.pace.readers.fetch_add(1, Ordering::AcqRel);
    flight.pace.reached(start);
    let reader = Tail {
        flight,
        progress,
        offset: start,
        end,
        finished: false,
        buffer: BytesMut::new(),
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
    offset: u64,
    end: Option<u64>,
    finished: bool,
    /// Where spool reads land: the same memory again once the answer sent
    /// the previous read's bytes.
    buffer: BytesMut,
}

impl Drop for Tail {
    fn drop(&mut self) {
        let pace = &self.flight.pace;
        pace.readers.fetch_sub(1, Ordering::AcqRel);
        pace.moved.notify_one();
    }
}

impl Tail {
    async fn next(&mut self) -> io::Result<Option<Bytes>> {
        if self.finished {
            return Ok(None);
        }
        loop {
            let now = self.progress.borrow_and_update().clone();
            let end = self.end.or(match now.outcome {
                Some(Ok(())) => Some(now.received),
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
            } else if self.offset < now.received {
                let max = end.map_or(u64::MAX, |end| end - self.offset);
                if let Some(bytes) = self.flight.recent_at(self.offset, max) {
                    self.offset += bytes.len() as u64;
                    self.flight.pace.reached(self.offset);
                    return Ok(Some(bytes));
                }
                if self.offset < now.written {
                    let n = (now.written - self.offset).min(max).min(CHUNK as u64);
                    let bytes = self.read(n).await?;
                    self.flight.pace.reached(self.offset);
                    return Ok(Some(bytes));
                }
                // Out of memory, not on disk yet: the writer is behind.
            } else if let Some(Err(failure)) = &now.outcome {
                return Err(cut(failure));
            }
            if self.progress.changed().await.is_err() {
                return Err(io::Error::other("the blob fetch stopped"));
            }
        }
    }

    /// `n` bytes of the spool from the offset (`pread` off the async threads).
    async fn read(&mut self, n: u64) -> io::Result<Bytes> {
        let spool = self
            .flight
            .spool
            .get()
            .cloned()
            .ok_or_else(|| io::Error::other("the spool is not open"))?;
        let offset = self.offset;
        let n = usize::try_from(n).unwrap_or(CHUNK);
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        buffer.resize(n, 0);
        let (mut buffer, got) = tokio::task::spawn_blocking(move || {
            let got = spool.read_at(&mut buffer, offset);
            (buffer, got)
        })
        .await
        .map_err(io::Error::other)?;
        buffer.truncate(got?);
        let bytes = buffer.split().freeze();
        self.buffer = buffer;
        if bytes.is_empty() {
            return Err(io::Error::other("the spool file ended before its bytes"));
        }
        self.offset += bytes.len() as u64;
        Ok(bytes)
    }
}

fn cut(failure: &Failure) -> io::Error {
    io::Error::other(match failure {
        Failure::Upstream(failure) => format!("the upstream fetch failed: {failure:?}"),
        Failure::Local(cause) => format!("spooling the blob failed: {cause}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flight() -> Flight {
        Flight {
            path: PathBuf::from("/nonexistent/berth-test-spool"),
            spool: OnceLock::new(),
            recent: Mutex::default(),
            progress: watch::channel(Progress::default()).0,
            pace: Pace::default(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_fetch_runs_ahead_freely_while_no_client_reads() {
        let pace = Pace::default();
        assert!(pace.wait(100 * AHEAD).await);
    }

    #[tokio::test(start_paused = true)]
    async fn the_fetch_waits_for_the_leading_client() {
        let pace = Arc::new(Pace::default());
        pace.readers.fetch_add(2, Ordering::AcqRel);
        pace.reached(10);
        assert!(pace.wait(10 + AHEAD).await, "within its lead");
        let waiting = tokio::spawn({
            let pace = pace.clone();
            async move { pace.wait(10 + AHEAD + 1).await }
        });
        tokio::time::sleep(STALL / 2).await;
        assert!(!waiting.is_finished(), "a client is too far behind");
        pace.reached(5); // a slower client moving does not release it
        tokio::time::sleep(STALL / 4).await;
        assert!(!waiting.is_finished());
        pace.reached(11);
        assert!(waiting.await.unwrap(), "the leader moved on: still pacing");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_leader_stops_the_pacing() {
        let pace = Pace::default();
        pace.readers.fetch_add(1, Ordering::AcqRel);
        let started = tokio::time::Instant::now();
        assert!(!pace.wait(AHEAD + 1).await, "the leader stalled");
        assert_eq!(started.elapsed(), STALL);
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_client_leaving_releases_the_fetch() {
        let pace = Arc::new(Pace::default());
        pace.readers.fetch_add(1, Ordering::AcqRel);
        let waiting = tokio::spawn({
            let pace = pace.clone();
            async move { pace.wait(AHEAD + 1).await }
        });
        tokio::time::sleep(STALL / 2).await;
        pace.readers.fetch_sub(1, Ordering::AcqRel);
        pace.moved.notify_one();
        assert!(waiting.await.unwrap());
    }

    #[test]
    fn recent_bytes_are_sliced_from_the_chunk_that_holds_them() {
        let flight = flight();
        flight.remember(Bytes::from_static(b"abcd"));
        flight.remember(Bytes::from_static(b"efgh"));
        assert_eq!(flight.recent_at(0, 100).unwrap(), &b"abcd"[..]);
        assert_eq!(flight.recent_at(2, 100).unwrap(), &b"cd"[..]);
        assert_eq!(flight.recent_at(5, 2).unwrap(), &b"fg"[..]);
        assert!(flight.recent_at(8, 100).is_none(), "not received yet");
    }

    #[test]
    fn memory_keeps_only_the_latest_bytes() {
        let flight = flight();
        let chunk = Bytes::from(vec![7u8; RECENT / 2]);
        for _ in 0..5 {
            flight.remember(chunk.clone());
        }
        let kept = flight.recent.lock().unwrap().len;
        assert!(kept <= RECENT, "{kept}");
        assert!(
            flight.recent_at(0, 1).is_none(),
            "the oldest went to the spool only"
        );
        let last = (5 * RECENT / 2 - 1) as u64;
        assert_eq!(flight.recent_at(last, 10).unwrap().len(), 1);
    }
}
