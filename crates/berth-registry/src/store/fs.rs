//! The filesystem blob store, the embedded default.
//!
//! Layout under the data directory:
//!
//! ```text
//! blobs/<algorithm>/<first two hex>/<hex>   one file per digest, never rewritten
//!                                           (its mtime: when it was last committed)
//! blobs/.../<hex>.reclaiming                a file the sweep is removing (for a moment)
//! uploads/<upload id>                       staging files of unfinished uploads
//! reserve                                   the disk reserve (`store::space`)
//! ```
//!
//! Writes go to the staging file from a blocking thread, and the hash is
//! computed on a second one, while the async side keeps receiving, through
//! small bounded channels, so memory per upload stays constant whatever the
//! blob's size. The writer writes the body's chunks as they come, without a
//! buffer of its own: dropping a 256 KiB buffer per upload took the peak of
//! 100 concurrent 10 MiB uploads from 125-182 to 76-105 MiB here, and bought
//! no throughput: the body's chunks average 128 KiB on a loopback push of
//! 1 GiB (`strace -e write`). A staging file is
//! fsynced before an append is acknowledged, and renamed to its content address
//! (then the directory fsynced) only after the digest was verified.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;
use berth_core::digest::{Digest, Digester};
use berth_core::endpoint::UploadId;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncSeekExt;
use tokio::sync::mpsc;
use tokio_util::io::ReaderStream;

use super::{Appended, BlobReader, BlobStore, ByteRange, ByteStream, Checkpoints, StoreError};

/// Chunks in flight between the request body and the writing thread.
const CHANNEL_DEPTH: usize = 4;
/// Read size when serving blobs.
const IO_BUFFER: usize = 256 * 1024;
/// Bytes written between two early writebacks (and checkpoints) of a large upload.
const WRITEBACK_EVERY: u64 = 64 * 1024 * 1024;
/// A slow upload is checkpointed at least this often...
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// ...once this much arrived since its last checkpoint.
const CHECKPOINT_MIN_BYTES: u64 = 1024 * 1024;

/// The filesystem blob store.
#[derive(Debug, Clone)]
pub struct FsStore {
    pub(super) blobs: PathBuf,
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

    pub(super) fn blob_path(&self, digest: &Digest) -> PathBuf {
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

    /// Both directories are there and are directories: a lost mount or a
    /// removed data directory fails it.
    async fn ready(&self) -> Result<(), StoreError> {
        for dir in [&self.blobs, &self.uploads] {
            let meta = tokio::fs::metadata(dir).await?;
            if !meta.is_dir() {
                return Err(StoreError::Io(io::Error::other(format!(
                    "{} is not a directory",
                    dir.display()
                ))));
            }
        }
        Ok(())
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
        checkpoints: Option<Checkpoints>,
    ) -> Result<Appended, StoreError> {
        let path = self.staging_path(staging)?;
        // Writing and hashing run on two threads, each fed every chunk (a
        // shared `Bytes`, not a copy), so a large push is bound by the slower
        // of the two instead of their sum. A mark between two chunks asks the
        // writer to make everything before it durable (in the background,
        // while it goes on writing) and the hasher for its state there.
        let (to_writer, writer_rx) = mpsc::channel::<Piece>(CHANNEL_DEPTH);
        let (to_hasher, hasher_rx) = mpsc::channel::<Piece>(CHANNEL_DEPTH);
        let reports = checkpoints.map(|out| CheckpointPairing::spawn(offset, out));
        let (durable_tx, hashed_tx) = match &reports {
            Some(p) => (Some(p.durable.clone()), Some(p.hashed.clone())),
            None => (None, None),
        };
        let writer = tokio::task::spawn_blocking(move || {
            write_staging(&path, offset, writer_rx, durable_tx)
        });
        let hasher =
            tokio::task::spawn_blocking(move || hash_chunks(digester, hasher_rx, hashed_tx));

        let mut received: u64 = 0;
        let mut marks = Marks::new(reports.is_some());
        let mut failure = None;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            received += chunk.len() as u64;
            if received > limit {
                drop(to_writer);
                drop(to_hasher);
                let _ = writer.await;
                let _ = hasher.await;
                if let Some(reports) = reports {
                    reports.finish().await;
                }
                return Err(StoreError::TooLarge { limit });
            }
            let len = chunk.len() as u64;
            if to_hasher.send(Piece::Chunk(chunk.clone())).await.is_err()
                || to_writer.send(Piece::Chunk(chunk)).await.is_err()
            {
                // A thread stopped early: its own error says why.
                break;
            }
            if let Some(mark) = marks.after(len)
                && (to_hasher.send(Piece::Mark(mark)).await.is_err()
                    || to_writer.send(Piece::Mark(mark)).await.is_err())
            {
                break;
            }
        }
        drop(to_writer);
        drop(to_hasher);
        let written = writer.await.map_err(join_error)?;
        let digester = hasher.await.map_err(join_error)?;
        if let Some(reports) = reports {
            reports.finish().await;
        }
        let appended = Appended {
            offset: written?,
            digester,
            staging: None,
        };
        // Every chunk received went to both threads: the file and the hash
        // agree, and the writer made them durable.
        appended.or_interrupted(failure)
    }

    async fn commit(&self, staging: &str, digest: &Digest) -> Result<(), StoreError> {
        let from = self.staging_path(staging)?;
        let to = self.blob_path(digest);
        tokio::task::spawn_blocking(move || {
            let dir = to.parent();
            if let Some(dir) = dir {
                fs::create_dir_all(dir)?;
            }
            // Marked as committed now, so that the sweep, which removes only
            // blobs no metadata names and committed before its cutoff, leaves
            // these bytes alone until the caller has recorded them.
            match mark_committed(&to) {
                Ok(()) => {
                    // One copy per digest: the stored one is already verified.
                    remove_if_present(&from)?;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            match mark_committed(&from) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::NotFound),
                other => other?,
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

    async fn adopt(&self, path: &Path, digest: &Digest, size: u64) -> Result<(), StoreError> {
        let from = path.to_owned();
        let to = self.blob_path(digest);
        let moved = tokio::task::spawn_blocking(move || -> Result<bool, StoreError> {
            // Durable before it is named, as an upload's bytes are.
            File::open(&from)?.sync_all()?;
            let dir = to.parent();
            if let Some(dir) = dir {
                fs::create_dir_all(dir)?;
            }
            // As `commit`: the stored copy (already verified) stays, marked
            // committed now so that the sweep leaves it to the caller.
            match mark_committed(&to) {
                Ok(()) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            mark_committed(&from)?;
            match fs::rename(&from, &to) {
                // Another filesystem: copied through the upload path.
                Err(e) if e.kind() == io::ErrorKind::CrossesDevices => return Ok(false),
                other => other?,
            }
            sync_dir(dir)?;
            Ok(true)
        })
        .await
        .map_err(join_error)??;
        if moved {
            Ok(())
        } else {
            super::adopt_by_upload(self, path, digest, size).await
        }
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

    async fn list_staging(&self, limit: usize) -> Result<Vec<(String, SystemTime)>, StoreError> {
        let dir = self.uploads.clone();
        tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            for entry in fs::read_dir(&dir)? {
                if found.len() >= limit {
                    break;
                }
                let entry = entry?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if UploadId::parse(&name).is_err() {
                    continue;
                }
                match entry.metadata().and_then(|m| m.modified()) {
                    Ok(modified) => found.push((name, modified)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(found)
        })
        .await
        .map_err(join_error)?
    }

    async fn list_blobs(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, SystemTime)>, StoreError> {
        let root = self.blobs.clone();
        let after = after.map(ToString::to_string);
        tokio::task::spawn_blocking(move || list_blobs(&root, after.as_deref(), limit))
            .await
            .map_err(join_error)?
    }

    async fn remove_blob_unless_newer(
        &self,
        digest: &Digest,
        before: SystemTime,
    ) -> Result<bool, StoreError> {
        let path = self.blob_path(digest);
        tokio::task::spawn_blocking(move || {
            // Out of the way first: a commit from now on finds no file under
            // the name, and puts its own bytes there.
            let aside = path.with_extension(RECLAIMING);
            match fs::rename(&path, &aside) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                other => other?,
            }
            // A commit that came before the rename marked the bytes: keep them.
            if fs::metadata(&aside)?.modified()? >= before {
                fs::rename(&aside, &path)?;
                return Ok(false);
            }
            fs::remove_file(&aside)?;
            sync_dir(path.parent())?;
            Ok(true)
        })
        .await
        .map_err(join_error)?
    }
}

/// The extension a blob file wears while the sweep decides to remove it.
const RECLAIMING: &str = "reclaiming";

/// Sets a file's modification time to now: "committed now".
fn mark_committed(path: &Path) -> io::Result<()> {
    File::open(path)?.set_modified(SystemTime::now())
}

/// The blob files under `root` whose `<algorithm>:<hex>` sorts after `after`,
/// in that order, at most `limit`. A file left `.reclaiming` by a sweep that
/// was cut short is put back (when no copy took its place) or removed.
fn list_blobs(
    root: &Path,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<(Digest, SystemTime)>, StoreError> {
    let sorted_names = |dir: &Path| -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        match fs::read_dir(dir) {
            Ok(entries) => {
                for entry in entries {
                    if let Some(name) = entry?.file_name().to_str() {
                        names.push(name.to_owned());
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        names.sort();
        Ok(names)
    };
    let mut found = Vec::new();
    for algorithm in sorted_names(root)? {
        let (alg_after, shard_after) = match after.and_then(|a| a.split_once(':')) {
            Some((alg, hex)) => (alg, hex.get(..2)),
            None => ("", None),
        };
        if algorithm.as_str() < alg_after {
            continue;
        }
        let same_algorithm = algorithm == alg_after;
        for shard in sorted_names(&root.join(&algorithm))? {
            if same_algorithm && shard_after.is_some_and(|s| shard.as_str() < s) {
                continue;
            }
            let dir = root.join(&algorithm).join(&shard);
            for name in sorted_names(&dir)? {
                let path = dir.join(&name);
                if let Some(hex) = name.strip_suffix(&format!(".{RECLAIMING}")) {
                    let original = dir.join(hex);
                    if original.exists() {
                        remove_if_present(&path)?;
                    } else {
                        fs::rename(&path, &original)?;
                    }
                    continue;
                }
                let text = format!("{algorithm}:{name}");
                if after.is_some_and(|a| text.as_str() <= a) {
                    continue;
                }
                let Ok(digest) = Digest::parse(&text) else {
                    continue;
                };
                match fs::metadata(&path).and_then(|m| m.modified()) {
                    Ok(modified) => found.push((digest, modified)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                }
                if found.len() >= limit {
                    return Ok(found);
                }
            }
        }
    }
    Ok(found)
}

/// What the async side of an append sends its two threads.
pub(super) enum Piece {
    /// Bytes of the body, in order.
    Chunk(Bytes),
    /// A checkpoint between two chunks, numbered from 1.
    Mark(u64),
}

/// When an append marks a checkpoint: every [`WRITEBACK_EVERY`] bytes (the
/// writer starts writing them back then in any case) and, when checkpoints
/// are wanted, also every [`CHECKPOINT_INTERVAL`] once at least
/// [`CHECKPOINT_MIN_BYTES`] arrived since the last one, so that a slow
/// upload cut off loses seconds, not its start.
struct Marks {
    timed: bool,
    next: u64,
    unmarked: u64,
    since: std::time::Instant,
}

impl Marks {
    fn new(timed: bool) -> Self {
        Self {
            timed,
            next: 1,
            unmarked: 0,
            since: std::time::Instant::now(),
        }
    }

    /// Called after each chunk of `len` bytes: the mark to send now, if any.
    fn after(&mut self, len: u64) -> Option<u64> {
        self.unmarked += len;
        let due = self.unmarked >= WRITEBACK_EVERY
            || (self.timed
                && self.unmarked >= CHECKPOINT_MIN_BYTES
                && self.since.elapsed() >= CHECKPOINT_INTERVAL);
        if !due {
            return None;
        }
        self.unmarked = 0;
        self.since = std::time::Instant::now();
        let mark = self.next;
        self.next += 1;
        Some(mark)
    }
}

/// Pairs the writer's "durable up to byte N at mark k" with the hasher's
/// "state at mark k" into checkpoints, in order, and forwards them.
struct CheckpointPairing {
    durable: mpsc::UnboundedSender<(u64, u64)>,
    hashed: mpsc::UnboundedSender<(u64, Digester)>,
    task: tokio::task::JoinHandle<()>,
}

impl CheckpointPairing {
    fn spawn(start: u64, out: Checkpoints) -> Self {
        let (durable, mut durable_rx) = mpsc::unbounded_channel::<(u64, u64)>();
        let (hashed, mut hashed_rx) = mpsc::unbounded_channel::<(u64, Digester)>();
        let task = tokio::spawn(async move {
            let mut states: std::collections::VecDeque<(u64, Digester)> = Default::default();
            let mut pending: Option<(u64, u64)> = None;
            let mut last = start;
            let (mut durable_open, mut hashed_open) = (true, true);
            while durable_open || hashed_open {
                tokio::select! {
                    report = durable_rx.recv(), if durable_open => match report {
                        Some(report) => pending = Some(report),
                        None => durable_open = false,
                    },
                    state = hashed_rx.recv(), if hashed_open => match state {
                        Some(state) => states.push_back(state),
                        None => hashed_open = false,
                    },
                }
                let Some((mark, offset)) = pending else {
                    continue;
                };
                // Marks the writer skipped (its flushes coalesce) are dropped.
                while states.front().is_some_and(|(m, _)| *m < mark) {
                    states.pop_front();
                }
                if let Some((m, _)) = states.front()
                    && *m == mark
                    && let Some((_, digester)) = states.pop_front()
                {
                    pending = None;
                    if offset > last {
                        last = offset;
                        let _ = out.send(Appended {
                            offset,
                            digester,
                            staging: None,
                        });
                    }
                }
            }
        });
        Self {
            durable,
            hashed,
            task,
        }
    }

    /// Waits until every checkpoint of the append has been forwarded.
    async fn finish(self) {
        drop(self.durable);
        drop(self.hashed);
        let _ = self.task.await;
    }
}

/// The hashing thread of an append: every chunk, and its state at each mark.
pub(super) fn hash_chunks(
    mut digester: Digester,
    mut rx: mpsc::Receiver<Piece>,
    states: Option<mpsc::UnboundedSender<(u64, Digester)>>,
) -> Digester {
    while let Some(piece) = rx.blocking_recv() {
        match piece {
            Piece::Chunk(chunk) => digester.update(&chunk),
            Piece::Mark(mark) => {
                if let Some(states) = &states {
                    let _ = states.send((mark, digester.clone()));
                }
            }
        }
    }
    digester
}

/// The writing thread of an append: truncate to `offset`, write every chunk,
/// then fsync; the new end offset.
///
/// At each mark a helper thread makes what is written so far durable
/// (`fdatasync` on a second handle) while this thread goes on writing, and
/// then reports "durable up to byte N at mark k" on `durable`: the disk works
/// during the upload instead of only after its last byte, the closing fsync
/// has little left to do, and the upload's progress can be recorded. Flushes
/// coalesce: a mark that arrives while one runs is taken by the next.
fn write_staging(
    path: &Path,
    offset: u64,
    mut rx: mpsc::Receiver<Piece>,
    durable: Option<mpsc::UnboundedSender<(u64, u64)>>,
) -> Result<u64, StoreError> {
    let mut file = match OpenOptions::new().write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::NotFound),
        Err(e) => return Err(e.into()),
    };
    file.set_len(offset)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut end = offset;
    // The newest mark not yet taken by the flusher: (mark, bytes before it).
    let latest = std::sync::Mutex::new(None::<(u64, u64)>);
    // The end of the last mark reported durable (a checkpoint the caller
    // may have recorded): a failed append never truncates below it.
    let reported = std::sync::atomic::AtomicU64::new(offset);
    let written = std::thread::scope(|scope| -> Result<(), StoreError> {
        let mut flusher: Option<std::sync::mpsc::SyncSender<()>> = None;
        while let Some(piece) = rx.blocking_recv() {
            match piece {
                Piece::Chunk(chunk) => {
                    file.write_all(&chunk)?;
                    end += chunk.len() as u64;
                }
                Piece::Mark(mark) => {
                    *latest
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((mark, end));
                    if flusher.is_none() {
                        let handle = file.try_clone()?;
                        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
                        let latest = &latest;
                        let reported = &reported;
                        let durable = durable.clone();
                        scope.spawn(move || {
                            for () in rx {
                                let taken = latest
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                                    .take();
                                match handle.sync_data() {
                                    Ok(()) => {
                                        if let (Some(taken), Some(durable)) = (taken, &durable) {
                                            reported.fetch_max(
                                                taken.1,
                                                std::sync::atomic::Ordering::AcqRel,
                                            );
                                            let _ = durable.send(taken);
                                        }
                                    }
                                    // The closing fsync meets the error too.
                                    Err(e) => {
                                        tracing::debug!(error = %e, "early writeback failed");
                                    }
                                }
                            }
                        });
                        flusher = Some(tx);
                    }
                    if let Some(tx) = &flusher {
                        // Full: a flush is about to start and will take this mark.
                        let _ = tx.try_send(());
                    }
                }
            }
        }
        Ok(())
    });
    if let Err(e) = written {
        // Give back what this request wrote (a full disk most of all), but
        // for checkpoints reported durable: the session goes on from the
        // last one recorded, where the next append truncates anyway.
        let _ = file.set_len(reported.load(std::sync::atomic::Ordering::Acquire));
        return Err(e);
    }
    file.sync_data()?;
    Ok(end)
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

#[cfg(test)]
mod tests {
    use berth_core::digest::Algorithm;

    use super::*;

    /// An append larger than [`WRITEBACK_EVERY`] (so the early-writeback
    /// thread runs) in uneven chunks, continued by a second append: the
    /// staging file holds every byte in order, and the hash state equals the
    /// hash of all of them.
    #[tokio::test]
    async fn a_large_append_in_two_parts_keeps_every_byte_and_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let id = UploadId::parse("0123456789abcdef0123456789abcdef").unwrap();
        let staging = store.begin_upload(&id).await.unwrap();
        let total = (WRITEBACK_EVERY + 3 * 1024 * 1024 + 17) as usize;
        let bytes: Vec<u8> = (0..total).map(|i| (i * 31 % 251) as u8).collect();
        let (first, second) = bytes.split_at(total / 3 * 2);
        let stream = |part: &[u8]| -> ByteStream {
            let chunks: Vec<Result<Bytes, io::Error>> = part
                .chunks(200_003)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            Box::pin(futures_util::stream::iter(chunks))
        };
        let appended = store
            .append(
                &staging,
                0,
                Digester::new(Algorithm::Sha256),
                stream(first),
                u64::MAX,
                None,
            )
            .await
            .unwrap();
        assert_eq!(appended.offset, first.len() as u64);
        let appended = store
            .append(
                &staging,
                appended.offset,
                appended.digester,
                stream(second),
                u64::MAX,
                None,
            )
            .await
            .unwrap();
        assert_eq!(appended.offset, total as u64);
        assert_eq!(appended.digester.finalize(), Digest::sha256_of(&bytes));
        let on_disk = std::fs::read(store.staging_path(&staging).unwrap()).unwrap();
        assert!(
            on_disk == bytes,
            "the staging file differs from what was sent"
        );
    }

    /// A body that fails after more than [`WRITEBACK_EVERY`] bytes: the
    /// checkpoints sent meanwhile and the final progress each name an
    /// offset whose bytes are on disk and a hash state of exactly them.
    #[tokio::test]
    async fn a_body_that_fails_midway_reports_checkpoints_and_its_progress() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let id = UploadId::parse("fedcba9876543210fedcba9876543210").unwrap();
        let staging = store.begin_upload(&id).await.unwrap();
        let total = (WRITEBACK_EVERY + 5 * 1024 * 1024 + 3) as usize;
        let bytes: Vec<u8> = (0..total).map(|i| (i * 7 % 253) as u8).collect();
        let mut chunks: Vec<Result<Bytes, io::Error>> = bytes
            .chunks(131_072)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        chunks.push(Err(io::Error::other("connection reset")));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let result = store
            .append(
                &staging,
                0,
                Digester::new(Algorithm::Sha256),
                Box::pin(futures_util::stream::iter(chunks)),
                u64::MAX,
                Some(tx),
            )
            .await;
        let Err(StoreError::Interrupted { progress, .. }) = result else {
            panic!("a failed body ends in Interrupted, got {result:?}");
        };
        assert_eq!(progress.offset, total as u64);
        assert_eq!(progress.digester.finalize(), Digest::sha256_of(&bytes));
        let mut checkpoints = Vec::new();
        while let Ok(checkpoint) = rx.try_recv() {
            checkpoints.push(checkpoint);
        }
        assert!(
            !checkpoints.is_empty(),
            "a checkpoint past {WRITEBACK_EVERY} bytes"
        );
        for checkpoint in checkpoints {
            let at = usize::try_from(checkpoint.offset).unwrap();
            assert!(at >= WRITEBACK_EVERY as usize && at < total);
            assert_eq!(
                checkpoint.digester.finalize(),
                Digest::sha256_of(&bytes[..at]),
                "the state at {at}"
            );
        }
        let on_disk = std::fs::read(store.staging_path(&staging).unwrap()).unwrap();
        assert!(
            on_disk == bytes,
            "every byte received is in the staging file"
        );
    }

    async fn stored(store: &FsStore, id: &str, bytes: &[u8]) -> Digest {
        let id = UploadId::parse(id).unwrap();
        let staging = store.begin_upload(&id).await.unwrap();
        let body: ByteStream = Box::pin(futures_util::stream::iter(vec![Ok::<_, io::Error>(
            Bytes::copy_from_slice(bytes),
        )]));
        store
            .append(
                &staging,
                0,
                Digester::new(Algorithm::Sha256),
                body,
                u64::MAX,
                None,
            )
            .await
            .unwrap();
        // The upload's last write was long ago (a slow client closing it now).
        let old = SystemTime::now() - std::time::Duration::from_secs(7200);
        File::open(store.staging_path(&staging).unwrap())
            .unwrap()
            .set_modified(old)
            .unwrap();
        let digest = Digest::sha256_of(bytes);
        store.commit(&staging, &digest).await.unwrap();
        digest
    }

    fn age(path: &Path) {
        let old = SystemTime::now() - std::time::Duration::from_secs(7200);
        File::open(path).unwrap().set_modified(old).unwrap();
    }

    /// A commit marks the bytes it puts in place, or keeps, as committed
    /// now: the sweep, which removes only blobs committed before its cutoff,
    /// leaves them alone until the caller records them.
    #[tokio::test]
    async fn a_commit_marks_its_bytes_so_that_the_sweep_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let cutoff = SystemTime::now() - std::time::Duration::from_secs(60);

        let digest = stored(&store, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", b"blob one").await;
        assert!(
            !store
                .remove_blob_unless_newer(&digest, cutoff)
                .await
                .unwrap()
        );
        assert_eq!(store.stat(&digest).await.unwrap(), Some(8));

        // An old copy with no record, committed again: kept too.
        age(&store.blob_path(&digest));
        stored(&store, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", b"blob one").await;
        assert!(
            !store
                .remove_blob_unless_newer(&digest, cutoff)
                .await
                .unwrap()
        );
        assert_eq!(store.stat(&digest).await.unwrap(), Some(8));

        // Old and not committed again: removed, without a trace.
        age(&store.blob_path(&digest));
        assert!(
            store
                .remove_blob_unless_newer(&digest, cutoff)
                .await
                .unwrap()
        );
        assert_eq!(store.stat(&digest).await.unwrap(), None);
        let shard = store.blob_path(&digest).parent().unwrap().to_owned();
        assert_eq!(std::fs::read_dir(shard).unwrap().count(), 0);
        assert!(
            !store
                .remove_blob_unless_newer(&digest, cutoff)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn blobs_are_listed_in_digest_order_page_by_page() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let mut all = Vec::new();
        for i in 0..7u8 {
            let id = format!("{i:032}");
            all.push(stored(&store, &id, &[i; 10]).await);
        }
        all.sort_by_key(ToString::to_string);
        let mut listed = Vec::new();
        let mut after = None;
        loop {
            let page = store.list_blobs(after.as_ref(), 3).await.unwrap();
            listed.extend(page.iter().map(|(d, _)| d.clone()));
            if page.len() < 3 {
                break;
            }
            after = page.last().map(|(d, _)| d.clone());
        }
        assert_eq!(listed, all);
        assert!(store.list_staging(10).await.unwrap().is_empty());
    }
}
