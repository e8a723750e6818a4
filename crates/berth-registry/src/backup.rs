//! A consistent copy of the embedded default's data directory, taken while
//! the server runs on it and pushes go on: `berth backup --data-dir DATA DIR`.
//! Restore is `berth serve --data-dir DIR`.
//!
//! The order makes the copy one instant of the registry, and keeps `DIR` a
//! restorable backup at every moment, even when a run is cut off:
//!
//! 1. The metadata: `VACUUM INTO` `DIR/berth.db.partial`, a transactionally
//!    consistent snapshot (`meta::snapshot`); upload sessions are left out.
//! 2. Every blob that snapshot references, read from the snapshot, never the
//!    live database. A blob is committed to the store (fsynced and renamed)
//!    before its record, so every blob the snapshot names is in `DATA`, and
//!    nothing removes a recorded blob's bytes. Blobs already in `DIR` (same
//!    digest, same size) are not copied again; a copy is verified against
//!    its digest as it streams and made durable before it is renamed into
//!    place (`store::mirror`).
//! 3. The signing keys (`keys/`, modes kept): copied to `keys.partial`,
//!    checked unchanged in `DATA` after the copy (a rotation during the copy
//!    means a retry), then swapped in.
//! 4. The snapshot is fsynced and renamed over `DIR/berth.db`: the previous
//!    backup's database stays in place until every blob of the new one is
//!    there. A backup whose database a server has open (someone serves the
//!    backup directory) is refused, at the start and before this rename.
//! 5. Blob files of `DIR` the new database does not name (deleted since the
//!    previous backup) are removed, so `DIR` stays the size of the registry.
//!
//! Nothing else of `DATA` is needed to start a server: `uploads/` and the
//! disk reserve are created empty at start. The TOML settings and TLS files
//! live outside the data directory and are backed up with the system's files.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_core::digest::Digest;
use futures_util::{StreamExt, TryStreamExt};

use crate::meta::MetaError;
use crate::meta::snapshot::{self, Snapshot, SnapshotCounts};
use crate::store::mirror::{MirrorError, Mirrored};
use crate::store::{BlobCopy, BlobStore, FsStore, StoreError};
use crate::{DATABASE_FILE, KEYS_DIR};

/// Blobs read from the snapshot at a time.
const PAGE: u32 = 1000;
/// Attempts at copying the keys while they keep changing.
const KEY_ATTEMPTS: usize = 5;
/// Suffix of what a backup writes before it is complete.
const PARTIAL: &str = "partial";
/// Suffix of the previous keys while the new ones are swapped in.
const OLD: &str = "old";

/// Names a backup directory may hold besides the backup's own files: what a
/// server started on it writes, and a file system's own directory.
const ALSO_ALLOWED: [&str; 5] = [
    "uploads",
    "reserve",
    "berth.db-wal",
    "berth.db-shm",
    "lost+found",
];

/// How the backup runs.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// Blobs copied at once.
    pub jobs: usize,
}

impl Default for BackupOptions {
    fn default() -> Self {
        Self { jobs: 4 }
    }
}

/// What a backup reports while it runs.
#[derive(Debug, Clone)]
pub enum BackupEvent {
    /// The snapshot is taken and compared with the backup directory.
    Planned {
        /// What the snapshot holds.
        counts: SnapshotCounts,
        /// Blobs the backup directory holds already.
        present: u64,
        /// Blobs to copy.
        to_copy: u64,
        /// Their total size.
        bytes_to_copy: u64,
    },
    /// A blob's copy progressed.
    Blob(BlobCopy),
}

/// Receives [`BackupEvent`]s (from several threads at once).
pub type OnBackupEvent = Arc<dyn Fn(&BackupEvent) + Send + Sync>;

/// What a backup did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupReport {
    /// What the snapshot holds.
    pub counts: SnapshotCounts,
    /// Blobs copied.
    pub blobs_copied: u64,
    /// Blobs the backup directory held already.
    pub blobs_present: u64,
    /// Bytes copied.
    pub bytes_copied: u64,
    /// Blob files removed from the backup directory (no longer in the registry).
    pub blobs_removed: u64,
    /// Whether signing keys were copied (a registry without access control may have none).
    pub keys_copied: bool,
}

/// Why a backup failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The source is not a data directory of `berth serve`.
    #[error(
        "{} is not a berth data directory ({reason}); give the directory `berth serve --data-dir` uses",
        path.display()
    )]
    NotADataDir {
        /// The directory given.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// The destination holds files that are not a backup's.
    #[error(
        "{} is not empty and not a berth backup (it holds `{name}`); back up into an empty directory or into a previous backup",
        path.display()
    )]
    NotABackup {
        /// The directory given.
        path: PathBuf,
        /// One of the names that do not belong.
        name: String,
    },
    /// Source and destination are the same directory.
    #[error(
        "{} is the data directory itself; back up into another directory",
        path.display()
    )]
    SameDirectory {
        /// The directory.
        path: PathBuf,
    },
    /// A server runs on the destination.
    #[error(
        "{} is in use: a server has its database open; stop that server, or back up into another directory",
        path.display()
    )]
    InUse {
        /// The directory.
        path: PathBuf,
    },
    /// The metadata snapshot failed.
    #[error("cannot take a snapshot of {}: {source}", path.display())]
    Snapshot {
        /// The live database.
        path: PathBuf,
        /// Why.
        #[source]
        source: MetaError,
    },
    /// Reading the snapshot, or the backup's database, failed.
    #[error("cannot read the metadata copy {}: {source}", path.display())]
    Copy {
        /// The copy.
        path: PathBuf,
        /// Why.
        #[source]
        source: MetaError,
    },
    /// A blob named by the snapshot is not in the data directory.
    #[error(
        "{0}; it was removed after the snapshot was taken, or the data directory is damaged: run the backup again, and if this repeats, check the data directory"
    )]
    BlobMissing(#[source] MirrorError),
    /// A blob of the data directory does not hash to its digest.
    #[error(
        "{0}; the registry serves corrupt content: restore that blob from an earlier backup, or delete the manifests that name it"
    )]
    BlobDamaged(#[source] MirrorError),
    /// A blob could not be copied.
    #[error("{0}; check that the backup directory is writable and has space")]
    BlobIo(#[source] MirrorError),
    /// The blob store of either side failed.
    #[error("blob store of {}: {source}", path.display())]
    Store {
        /// The data or backup directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The signing keys changed during every attempt at copying them.
    #[error(
        "the signing keys in {} changed during each of {KEY_ATTEMPTS} copies (a key rotation going on?); run the backup again",
        path.display()
    )]
    KeysChanging {
        /// The keys directory.
        path: PathBuf,
    },
    /// A file or directory operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A worker thread failed (a bug).
    #[error("a backup worker failed: {0}")]
    Worker(String),
}

impl From<MirrorError> for BackupError {
    fn from(e: MirrorError) -> Self {
        match e {
            MirrorError::Missing { .. } => Self::BlobMissing(e),
            MirrorError::Damaged { .. } => Self::BlobDamaged(e),
            MirrorError::Io { .. } => Self::BlobIo(e),
        }
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BackupError + use<> {
    let path = path.to_owned();
    move |source| BackupError::Io {
        action,
        path,
        source,
    }
}

/// Backs up the data directory `data` into `dest` (see the module doc).
pub async fn backup(
    data: &Path,
    dest: &Path,
    options: &BackupOptions,
    on_event: Option<OnBackupEvent>,
) -> Result<BackupReport, BackupError> {
    let emit = move |event: BackupEvent| {
        if let Some(on_event) = &on_event {
            on_event(&event);
        }
    };
    check_data_dir(data)?;
    prepare_destination(data, dest)?;
    let db = dest.join(DATABASE_FILE);
    check_free(&db).await?;
    let from = FsStore::open(data).map_err(|source| BackupError::Store {
        path: data.to_owned(),
        source,
    })?;
    let to = FsStore::open(dest).map_err(|source| BackupError::Store {
        path: dest.to_owned(),
        source,
    })?;
    to.remove_partials()?;

    // 1. The metadata.
    let partial_db = dest.join(format!("{DATABASE_FILE}.{PARTIAL}"));
    remove_file_if_present(&partial_db)?;
    remove_file_if_present(&dest.join(format!("{DATABASE_FILE}.{PARTIAL}-journal")))?;
    // The database holds password and token hashes: readable by its owner
    // only from the start. `VACUUM INTO` accepts an empty file as target,
    // and SQLite gives its journal the database file's mode.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial_db)
        .map_err(io_error("create", &partial_db))?;
    let live_db = data.join(DATABASE_FILE);
    let snapshot = Snapshot::take(&live_db, &partial_db)
        .await
        .map_err(|source| BackupError::Snapshot {
            path: live_db.clone(),
            source,
        })?;
    let copy_error = |source| BackupError::Copy {
        path: partial_db.clone(),
        source,
    };
    let mut report = BackupReport {
        counts: snapshot.counts(),
        ..BackupReport::default()
    };

    // 2. The blobs: what is there already, then the copies.
    let (mut to_copy, mut bytes_to_copy) = (0, 0);
    {
        let mut pages = std::pin::pin!(snapshot.blob_pages(PAGE));
        while let Some(page) = pages.try_next().await.map_err(copy_error)? {
            for (digest, size) in page {
                if to.holds(&digest, size) {
                    report.blobs_present += 1;
                } else {
                    to_copy += 1;
                    bytes_to_copy += size;
                }
            }
        }
    }
    emit(BackupEvent::Planned {
        counts: report.counts,
        present: report.blobs_present,
        to_copy,
        bytes_to_copy,
    });
    let emit = Arc::new(emit);
    {
        let mut pages = std::pin::pin!(snapshot.blob_pages(PAGE));
        while let Some(page) = pages.try_next().await.map_err(copy_error)? {
            let missing = page
                .into_iter()
                .filter(|(digest, size)| !to.holds(digest, *size));
            let mut copies = futures_util::stream::iter(missing)
                .map(|(digest, size)| {
                    let (from, to, emit) = (from.clone(), to.clone(), emit.clone());
                    tokio::task::spawn_blocking(move || {
                        emit(BackupEvent::Blob(BlobCopy::Started {
                            digest: digest.clone(),
                            size,
                        }));
                        let how = from.copy_blob_to(&to, &digest, size, &mut |moved| {
                            emit(BackupEvent::Blob(BlobCopy::Progress {
                                digest: digest.clone(),
                                moved,
                            }));
                        })?;
                        emit(BackupEvent::Blob(BlobCopy::Done {
                            digest: digest.clone(),
                            size,
                        }));
                        Ok::<_, MirrorError>((how, size))
                    })
                })
                .buffer_unordered(options.jobs.max(1));
            while let Some(done) = copies.next().await {
                match done.map_err(|e| BackupError::Worker(e.to_string()))?? {
                    (Mirrored::Copied, size) => {
                        report.blobs_copied += 1;
                        report.bytes_copied += size;
                    }
                    (Mirrored::Present, _) => report.blobs_present += 1,
                }
            }
        }
    }

    // 3. The keys.
    let (keys_from, keys_to) = (data.join(KEYS_DIR), dest.join(KEYS_DIR));
    report.keys_copied = tokio::task::spawn_blocking(move || copy_keys(&keys_from, &keys_to))
        .await
        .map_err(|e| BackupError::Worker(e.to_string()))??;

    // 4. The database, last.
    snapshot.close().await.map_err(copy_error)?;
    check_free(&db).await?;
    fs::rename(&partial_db, &db).map_err(io_error("rename", &partial_db))?;
    sync_dir(dest)?;

    // 5. Blobs no longer in the registry.
    let placed = Snapshot::open(&db)
        .await
        .map_err(|source| BackupError::Copy {
            path: db.clone(),
            source,
        })?;
    report.blobs_removed = prune(&to, &placed, dest).await?;
    placed
        .close()
        .await
        .map_err(|source| BackupError::Copy { path: db, source })?;
    Ok(report)
}

/// The backup's database `db`, if there is one, must not be open in a
/// server; its write-ahead log is folded in (`snapshot::is_free`).
async fn check_free(db: &Path) -> Result<(), BackupError> {
    if !db.exists() {
        return Ok(());
    }
    let free = snapshot::is_free(db)
        .await
        .map_err(|source| BackupError::Copy {
            path: db.to_owned(),
            source,
        })?;
    if free {
        return Ok(());
    }
    Err(BackupError::InUse {
        path: db.parent().unwrap_or(db).to_owned(),
    })
}

/// `data` must be a directory with a database file.
fn check_data_dir(data: &Path) -> Result<(), BackupError> {
    match crate::not_a_data_dir(data).map_err(io_error("read", data))? {
        None => Ok(()),
        Some(reason) => Err(BackupError::NotADataDir {
            path: data.to_owned(),
            reason,
        }),
    }
}

/// `dest` must be missing, empty, or a previous backup not in use; it is
/// created, and keys left mid-swap by a cut-off run are put back.
fn prepare_destination(data: &Path, dest: &Path) -> Result<(), BackupError> {
    let same = fs::canonicalize(data)
        .ok()
        .zip(fs::canonicalize(dest).ok())
        .is_some_and(|(a, b)| a == b);
    if same {
        return Err(BackupError::SameDirectory {
            path: dest.to_owned(),
        });
    }
    match fs::read_dir(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Private: the backup holds password hashes and signing keys.
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dest)
                .map_err(io_error("create", dest))?;
            return Ok(());
        }
        Err(e) => return Err(io_error("read", dest)(e)),
        Ok(entries) => {
            let own = [
                DATABASE_FILE.to_owned(),
                format!("{DATABASE_FILE}.{PARTIAL}"),
                format!("{DATABASE_FILE}.{PARTIAL}-journal"),
                "blobs".to_owned(),
                KEYS_DIR.to_owned(),
                format!("{KEYS_DIR}.{PARTIAL}"),
                format!("{KEYS_DIR}.{OLD}"),
            ];
            for entry in entries {
                let name = entry
                    .map_err(io_error("read", dest))?
                    .file_name()
                    .to_string_lossy()
                    .into_owned();
                if !own.contains(&name) && !ALSO_ALLOWED.contains(&name.as_str()) {
                    return Err(BackupError::NotABackup {
                        path: dest.to_owned(),
                        name,
                    });
                }
            }
        }
    }
    let (keys, old) = (dest.join(KEYS_DIR), dest.join(format!("{KEYS_DIR}.{OLD}")));
    if !keys.exists() && old.exists() {
        fs::rename(&old, &keys).map_err(io_error("rename", &old))?;
    }
    Ok(())
}

/// Removes blob files of `to` that `placed` does not name; how many.
async fn prune(to: &FsStore, placed: &Snapshot, dest: &Path) -> Result<u64, BackupError> {
    let store_error = |source| BackupError::Store {
        path: dest.to_owned(),
        source,
    };
    let mut removed = 0;
    let mut after: Option<Digest> = None;
    loop {
        let page = to
            .list_blobs(after.as_ref(), PAGE as usize)
            .await
            .map_err(store_error)?;
        let Some((last, _)) = page.last() else {
            return Ok(removed);
        };
        after = Some(last.clone());
        for (digest, _) in page {
            let named =
                placed
                    .references_blob(&digest)
                    .await
                    .map_err(|source| BackupError::Copy {
                        path: dest.join(DATABASE_FILE),
                        source,
                    })?;
            if !named {
                to.delete(&digest).await.map_err(store_error)?;
                removed += 1;
            }
        }
    }
}

/// A file or directory of the keys tree, as compared before and after a copy.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    path: PathBuf,
    is_dir: bool,
    len: u64,
    mode: u32,
    modified_ns: i128,
}

/// Copies the keys directory `from` to `to` (modes kept), retrying while it
/// changes; whether there were keys to copy.
fn copy_keys(from: &Path, to: &Path) -> Result<bool, BackupError> {
    if !from.is_dir() {
        return Ok(false);
    }
    let partial = to.with_file_name(format!("{KEYS_DIR}.{PARTIAL}"));
    for _ in 0..KEY_ATTEMPTS {
        remove_dir_if_present(&partial)?;
        let before = tree(from)?;
        copy_tree(from, &partial, &before)?;
        if tree(from)? != before {
            continue;
        }
        let old = to.with_file_name(format!("{KEYS_DIR}.{OLD}"));
        remove_dir_if_present(&old)?;
        if to.exists() {
            fs::rename(to, &old).map_err(io_error("rename", to))?;
        }
        fs::rename(&partial, to).map_err(io_error("rename", &partial))?;
        if let Some(parent) = to.parent() {
            sync_dir(parent)?;
        }
        remove_dir_if_present(&old)?;
        return Ok(true);
    }
    Err(BackupError::KeysChanging {
        path: from.to_owned(),
    })
}

/// Every entry under `root`, relative to it, in a stable order.
fn tree(root: &Path) -> Result<Vec<Entry>, BackupError> {
    let mut entries = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let dir = root.join(&relative);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .map_err(io_error("read", &dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_error("read", &dir))?;
        names.sort();
        for name in names {
            let path = relative.join(&name);
            let meta = fs::symlink_metadata(root.join(&path)).map_err(io_error("read", &dir))?;
            if meta.is_dir() {
                pending.push(path.clone());
            } else if !meta.is_file() {
                continue;
            }
            entries.push(Entry {
                path,
                is_dir: meta.is_dir(),
                len: meta.len(),
                mode: meta.permissions().mode(),
                modified_ns: i128::from(meta.mtime()) * 1_000_000_000
                    + i128::from(meta.mtime_nsec()),
            });
        }
    }
    Ok(entries)
}

/// Copies the `entries` of `from` into a new directory `to`, with their modes,
/// each file fsynced, then each directory.
fn copy_tree(from: &Path, to: &Path, entries: &[Entry]) -> Result<(), BackupError> {
    let root_mode = fs::metadata(from)
        .map_err(io_error("read", from))?
        .permissions()
        .mode();
    // Private from its creation: nothing copied is readable by others on
    // the way, whatever the umask.
    DirBuilder::new()
        .mode(0o700)
        .create(to)
        .map_err(io_error("create", to))?;
    let mut dirs = vec![(to.to_owned(), root_mode)];
    for entry in entries {
        let (source, target) = (from.join(&entry.path), to.join(&entry.path));
        if entry.is_dir {
            DirBuilder::new()
                .mode(0o700)
                .create(&target)
                .map_err(io_error("create", &target))?;
            dirs.push((target, entry.mode));
            continue;
        }
        // `fs::copy` creates the file with the source's permission bits.
        fs::copy(&source, &target).map_err(io_error("copy", &source))?;
        fs::set_permissions(&target, fs::Permissions::from_mode(entry.mode))
            .map_err(io_error("set the mode of", &target))?;
        File::open(&target)
            .and_then(|f| f.sync_all())
            .map_err(io_error("fsync", &target))?;
    }
    for (dir, mode) in dirs.iter().rev() {
        fs::set_permissions(dir, fs::Permissions::from_mode(*mode))
            .map_err(io_error("set the mode of", dir))?;
        sync_dir(dir)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("fsync", dir))
}

fn remove_file_if_present(path: &Path) -> Result<(), BackupError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("remove", path)(e)),
        _ => Ok(()),
    }
}

fn remove_dir_if_present(path: &Path) -> Result<(), BackupError> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("remove", path)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_copied_with_their_modes() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("data/keys");
        crate::auth::keys::KeyStore::open(&keys).unwrap();
        let dest = dir.path().join("backup/keys");
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        assert!(copy_keys(&keys, &dest).unwrap());
        let (a, b) = (tree(&keys).unwrap(), tree(&dest).unwrap());
        let shape = |t: &[Entry]| {
            t.iter()
                .map(|e| (e.path.clone(), e.is_dir, e.len, e.mode & 0o777))
                .collect::<Vec<_>>()
        };
        assert_eq!(shape(&a), shape(&b));
        assert!(b.iter().all(|e| e.mode & 0o077 == 0), "{b:?}");
        assert_eq!(
            fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // Again over the first copy: replaced, nothing left beside it.
        assert!(copy_keys(&keys, &dest).unwrap());
        let mut names: Vec<_> = fs::read_dir(dest.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["keys"]);
        // No keys: nothing to copy.
        assert!(!copy_keys(&dir.path().join("none"), &dest).unwrap());
    }

    #[test]
    fn the_destination_must_be_empty_or_a_backup() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir_all(&data).unwrap();
        let dest = dir.path().join("dest");
        prepare_destination(&data, &dest).unwrap();
        fs::create_dir_all(dest.join("blobs")).unwrap();
        fs::write(dest.join(DATABASE_FILE), b"").unwrap();
        prepare_destination(&data, &dest).unwrap();
        fs::write(dest.join("notes.txt"), b"").unwrap();
        assert!(matches!(
            prepare_destination(&data, &dest),
            Err(BackupError::NotABackup { name, .. }) if name == "notes.txt"
        ));
        assert!(matches!(
            prepare_destination(&data, &data),
            Err(BackupError::SameDirectory { .. })
        ));
    }
}
