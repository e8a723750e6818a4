//! Moving an embedded registry (a data directory: SQLite metadata and
//! filesystem blobs) to another home: PostgreSQL, S3, both, or another data
//! directory, as `berth serve` would open them. `berth migrate` runs it.
//!
//! The source may be serving while it runs: everything is read from a
//! snapshot of its metadata (`meta::snapshot`, one instant of the registry)
//! and from its blob files, which a recorded blob never loses. What the
//! source accepts after the snapshot is not copied; a second run copies it.
//!
//! The order keeps the target sound at every step, and a second run ends
//! with the same result as one uninterrupted run:
//!
//! 1. The snapshot, into a private temporary directory.
//! 2. Whose the target is: empty, or an earlier migration of this source
//!    (its signing keys have the source's root certificate, which never
//!    changes). Anything else is refused before anything is written
//!    ([`MigrateError::OtherRegistry`]), and so is a target a server runs on
//!    ([`MigrateError::InUse`]): a node's sweep removes blobs whose records
//!    are not there yet.
//! 3. The signing keys: into the target database (PostgreSQL, where
//!    `auth/key_sync.rs` keeps them for every node) or the target's `keys/`
//!    (SQLite). Tokens the source issued verify on the target.
//! 4. On a target an earlier run wrote to: its rows that are no longer the
//!    source's (deleted since) are removed (`meta/transfer.rs`).
//! 5. The identities (users, organisations, memberships, robots, tokens,
//!    revocation records), with their ids and hashes as stored.
//! 6. The blobs, `jobs` at a time: one the target store holds already with
//!    the same size is skipped (its key is its digest, and both stores
//!    verify a digest before committing a blob); the others are streamed
//!    from the source file through the target's upload path, hashed as they
//!    go, and committed only when the digest matches. A blob whose file is
//!    not its digest is reported, and the run goes on with the others.
//! 7. The content rows (repositories, blob records and links, manifests,
//!    references, tags), only when every blob is in the target: no row
//!    names a blob the target does not hold.
//! 8. The identity sequences, moved past every copied id (after 5 and 7).
//!
//! Upload sessions are not copied (their bytes are staging files of the
//! source): a client resuming one against the target starts it again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_core::digest::{Digest, Digester};
use berth_core::endpoint::UploadId;
use futures_util::{StreamExt, TryStreamExt};

use crate::auth::keys::{self, KeyError};
use crate::config::BlobStoreConfig;
use crate::meta::MetaError;
use crate::meta::db::{Db, Engine};
use crate::meta::keys_sql::{self, KeyFiles};
use crate::meta::snapshot::{self, Snapshot, SnapshotCounts};
use crate::meta::transfer::{self, IDENTITY_TABLES, Mode, TABLES, TableCount, TransferError};
use crate::meta::url::DatabaseUrl;
use crate::store::{BlobCopy, BlobStore, FsStore, S3Store, StoreError};
use crate::{DATABASE_FILE, KEYS_DIR};

/// Blob records read from the snapshot at a time.
const PAGE: u32 = 1000;
/// Target stores asked at once whether they hold a blob, while planning.
const STATS_AT_ONCE: usize = 16;
/// Prefix of the private directory the snapshot is taken into.
const WORK_PREFIX: &str = ".berth-migrate-";

/// Where the registry goes: what `berth serve` would be given.
#[derive(Debug, Clone)]
pub struct MigrateTarget {
    /// The target's data directory: needed for filesystem blobs and for
    /// SQLite metadata (its `berth.db` and `keys/`).
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL; `None` is SQLite in `data_dir`.
    pub database_url: Option<DatabaseUrl>,
    /// The blob store.
    pub blob_store: BlobStoreConfig,
}

/// How the migration runs.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// Blobs copied at once.
    pub jobs: usize,
    /// Only look: count what would be copied, change nothing in the target.
    pub dry_run: bool,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        Self {
            jobs: 4,
            dry_run: false,
        }
    }
}

/// What a migration reports while it runs.
#[derive(Debug, Clone)]
pub enum MigrateEvent {
    /// The rows of a table are copied (or, dry, compared).
    TableDone {
        /// The table.
        table: &'static str,
        /// What happened to its rows.
        count: TableCount,
    },
    /// The blobs are compared with the target store.
    Planned {
        /// Blobs the target holds already.
        present: u64,
        /// Blobs to copy.
        to_copy: u64,
        /// Their total size.
        bytes_to_copy: u64,
    },
    /// A blob's copy progressed.
    Blob(BlobCopy),
    /// A blob could not be copied; the run goes on with the others.
    BlobFailed {
        /// The blob.
        digest: Digest,
        /// Why.
        reason: String,
    },
}

/// Receives [`MigrateEvent`]s (from several tasks at once).
pub type OnMigrateEvent = Arc<dyn Fn(&MigrateEvent) + Send + Sync>;

/// What the signing keys came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysOutcome {
    /// The source has none (access control was never on).
    None,
    /// Copied into the target (dry: would be).
    Copied,
    /// The target held the same keys.
    Present,
}

/// What a migration did (or, dry, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    /// What the snapshot holds.
    pub counts: SnapshotCounts,
    /// Each table's rows, in copy order (the content tables' counts stay
    /// at what the source holds when blobs failed: they were not copied).
    pub tables: Vec<(&'static str, TableCount)>,
    /// Blobs copied (dry: to copy).
    pub blobs_copied: u64,
    /// Blobs the target held already.
    pub blobs_present: u64,
    /// Bytes copied (dry: to copy).
    pub bytes_copied: u64,
    /// Blobs that could not be copied, with why; the content rows are not
    /// copied while there are any.
    pub failures: Vec<(Digest, String)>,
    /// The signing keys.
    pub keys: KeysOutcome,
    /// Whether everything is in the target (false after failures, and in a dry run).
    pub complete: bool,
}

impl MigrateReport {
    /// The rows of `table`.
    pub fn table(&self, table: &str) -> TableCount {
        self.tables
            .iter()
            .find(|(name, _)| *name == table)
            .map(|(_, c)| *c)
            .unwrap_or_default()
    }

    fn set(&mut self, table: &'static str, update: impl FnOnce(&mut TableCount)) {
        if let Some((_, count)) = self.tables.iter_mut().find(|(name, _)| *name == table) {
            update(count);
        }
    }
}

/// Why a migration failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The source is not a data directory of `berth serve`.
    #[error(
        "{} is not a berth data directory ({reason}); give the directory the embedded \
         registry's `berth serve --data-dir` uses",
        path.display()
    )]
    NotADataDir {
        /// The directory given.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// The target needs a data directory and has none.
    #[error("the target needs a data directory ({why}); give it with --data-dir, or move {what}")]
    NoTargetDir {
        /// What needs it.
        why: &'static str,
        /// What else would do.
        what: &'static str,
    },
    /// The target's SQLite database would be the source's.
    #[error(
        "{} is the source itself; give the target another data directory, or a PostgreSQL \
         database with --database-url",
        path.display()
    )]
    SameDirectory {
        /// The directory.
        path: PathBuf,
    },
    /// The snapshot of the source failed.
    #[error("cannot take a snapshot of {}: {source}", path.display())]
    Snapshot {
        /// The source database.
        path: PathBuf,
        /// Why.
        #[source]
        source: MetaError,
    },
    /// Reading the snapshot failed.
    #[error(
        "cannot read the snapshot of the source: {0}; use a `berth migrate` at least as new as \
         the `berth serve` of the source"
    )]
    Source(#[source] MetaError),
    /// The target database could not be opened or read.
    #[error(
        "cannot use the target database: {0}; check --database-url (or --data-dir) and that the \
         database answers"
    )]
    TargetDatabase(#[source] MetaError),
    /// A server runs on the target.
    #[error(
        "{what}; stop it first: the target must not be served until `berth migrate` has \
         finished (a node's sweep removes blobs whose records are not copied yet)"
    )]
    InUse {
        /// What runs there.
        what: String,
    },
    /// The target holds another registry's data.
    #[error(
        "the target already holds another registry's data ({why}); migrate into an empty \
         database and blob store (one no `berth serve` has started on), or into the target of \
         an earlier migration of this source"
    )]
    OtherRegistry {
        /// What shows it.
        why: String,
    },
    /// Copying the rows of a table failed.
    #[error("cannot copy the rows of {table}: {source}")]
    Rows {
        /// The table.
        table: &'static str,
        /// Why.
        #[source]
        source: TransferError,
    },
    /// The source's or target's signing keys could not be read or written.
    #[error("token signing keys: {0}")]
    Keys(#[from] KeyError),
    /// A blob store could not be opened or answered with an error.
    #[error("{which} blob store: {source}")]
    Store {
        /// `source` or `target`.
        which: &'static str,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// A file operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A worker task failed (a bug).
    #[error(
        "a migration worker failed: {0}; this is a bug: report it, then run the migration again \
         (what was copied is kept)"
    )]
    Worker(String),
}

fn target_db(e: impl Into<MetaError>) -> MigrateError {
    MigrateError::TargetDatabase(e.into())
}

fn rows(table: &'static str) -> impl FnOnce(TransferError) -> MigrateError {
    move |source| MigrateError::Rows { table, source }
}

fn target_store(source: StoreError) -> MigrateError {
    MigrateError::Store {
        which: "target",
        source,
    }
}

/// Copies the embedded registry in `source` into `target` (see the module doc).
pub async fn migrate(
    source: &Path,
    target: &MigrateTarget,
    options: &MigrateOptions,
    on_event: Option<OnMigrateEvent>,
) -> Result<MigrateReport, MigrateError> {
    let emit: OnMigrateEvent = on_event.unwrap_or_else(|| Arc::new(|_: &MigrateEvent| {}));
    check_source(source)?;
    check_target(source, target)?;

    // 1. The snapshot, in a private directory beside the target's data (it
    // holds password hashes), else in the system's temporary directory.
    let work = work_dir(target, options.dry_run)?;
    let copy = work.path().join(DATABASE_FILE);
    let live = source.join(DATABASE_FILE);
    let taken = Snapshot::take(&live, &copy)
        .await
        .map_err(|source| MigrateError::Snapshot { path: live, source })?;
    let counts = taken.counts();
    taken.close().await.map_err(MigrateError::Source)?;
    // Opened as a database of this version: an older source's copy is
    // brought up to date first.
    let snap = Db::open_sqlite(&copy).await.map_err(MigrateError::Source)?;
    let blobs = match Snapshot::open(&copy).await {
        Ok(blobs) => blobs,
        Err(e) => {
            snap.close().await;
            return Err(MigrateError::Source(e));
        }
    };
    let run = Run {
        source,
        target,
        options,
        snap: &snap,
        blobs: &blobs,
        emit,
    };
    let result = run.go(counts).await;
    snap.close().await;
    // Closing only fsyncs the copy, which goes with the directory.
    let _ = blobs.close().await;
    result
}

/// One migration's state, shared by its steps.
struct Run<'a> {
    source: &'a Path,
    target: &'a MigrateTarget,
    options: &'a MigrateOptions,
    /// The snapshot, as a database (the rows).
    snap: &'a Db,
    /// The snapshot, for its blobs.
    blobs: &'a Snapshot,
    emit: OnMigrateEvent,
}

/// Whose the target is (step 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// Nothing in it.
    Empty,
    /// An earlier migration of this source: its rows may be pruned.
    Ours,
    /// Rows but no keys, from a source without keys: each row is compared.
    Unproven,
}

impl Run<'_> {
    async fn go(&self, counts: SnapshotCounts) -> Result<MigrateReport, MigrateError> {
        let from = FsStore::open(self.source).map_err(|source| MigrateError::Store {
            which: "source",
            source,
        })?;
        let to = open_target_store(self.target, self.options.dry_run).await?;
        let source_keys = read_source_keys(self.source).await?;
        let db = if self.options.dry_run {
            self.look_at_target_db().await?
        } else {
            Some(self.open_target_db().await?)
        };
        let result = self
            .steps(counts, db.as_ref(), source_keys, &from, to)
            .await;
        if let Some(db) = &db {
            db.close().await;
        }
        result
    }

    async fn steps(
        &self,
        counts: SnapshotCounts,
        db: Option<&Db>,
        source_keys: Option<KeyFiles>,
        from: &FsStore,
        to: Option<Arc<dyn BlobStore>>,
    ) -> Result<MigrateReport, MigrateError> {
        let mode = if self.options.dry_run {
            Mode::Compare
        } else {
            Mode::Copy
        };
        let mut report = MigrateReport {
            counts,
            tables: Vec::new(),
            blobs_copied: 0,
            blobs_present: 0,
            bytes_copied: 0,
            failures: Vec::new(),
            keys: KeysOutcome::None,
            complete: false,
        };
        for table in &TABLES {
            let total = transfer::count_rows(self.snap, table)
                .await
                .map_err(MigrateError::Source)?;
            report.tables.push((
                table.name,
                TableCount {
                    total,
                    ..TableCount::default()
                },
            ));
        }

        // 2. Whose the target is; 3. the keys.
        let target_keys = self.target_keys(db).await?;
        let target_rows = match db {
            Some(db) => count_all(db).await?,
            None => 0,
        };
        let claim = claim(source_keys.as_ref(), &target_keys, target_rows)?;
        if let Some(files) = &source_keys {
            report.keys = match (mode, db) {
                (Mode::Copy, Some(db)) => self.copy_keys(db, files).await?,
                _ if target_keys == *files => KeysOutcome::Present,
                _ => KeysOutcome::Copied,
            };
        }

        // 4. What is no longer the source's; 5. the identities.
        let Some(db) = db else {
            // A dry run on a target no berth has set up: all of it is to copy.
            for (_, count) in &mut report.tables {
                count.copied = count.total;
            }
            self.plan_blobs(to.as_deref(), &mut report).await?;
            return Ok(report);
        };
        if claim == Claim::Ours {
            for table in TABLES.iter().rev() {
                let removed = transfer::prune_table(self.snap, db, table, mode)
                    .await
                    .map_err(rows(table.name))?;
                report.set(table.name, |count| count.removed = removed);
            }
        }
        let pruned = claim == Claim::Ours;
        self.copy_tables(db, &TABLES[..IDENTITY_TABLES], mode, pruned, &mut report)
            .await?;

        // 6. The blobs.
        match (mode, to) {
            (Mode::Copy, Some(to)) => {
                self.copy_blobs(from, to, &mut report).await?;
                if !report.failures.is_empty() {
                    return Ok(report);
                }
            }
            (_, to) => self.plan_blobs(to.as_deref(), &mut report).await?,
        }

        // 7. The content; 8. the sequences.
        self.copy_tables(db, &TABLES[IDENTITY_TABLES..], mode, pruned, &mut report)
            .await?;
        report.complete = mode == Mode::Copy;
        Ok(report)
    }

    /// Copies (or compares) `tables` in order, then moves the identity
    /// sequences past what they hold (steps 5 and 7, each with 8).
    async fn copy_tables(
        &self,
        db: &Db,
        tables: &'static [transfer::Table],
        mode: Mode,
        pruned: bool,
        report: &mut MigrateReport,
    ) -> Result<(), MigrateError> {
        for table in tables {
            let mut count = transfer::copy_table(self.snap, db, table, mode, pruned)
                .await
                .map_err(rows(table.name))?;
            count.removed = report.table(table.name).removed;
            (self.emit)(&MigrateEvent::TableDone {
                table: table.name,
                count,
            });
            report.set(table.name, |c| *c = count);
        }
        if mode == Mode::Copy {
            transfer::continue_identities(self.snap, db)
                .await
                .map_err(rows("the identity sequences"))?;
        }
        Ok(())
    }

    /// Opens (creating and migrating its schema) the target database,
    /// refused while a server runs on it.
    async fn open_target_db(&self) -> Result<Db, MigrateError> {
        match (&self.target.database_url, &self.target.data_dir) {
            (Some(url), _) => {
                let db = Db::open_postgres(url.expose()).await.map_err(target_db)?;
                let nodes = crate::meta::notify::listening_nodes(&db).await;
                let nodes = match nodes {
                    Ok(n) => n,
                    Err(e) => {
                        db.close().await;
                        return Err(target_db(e));
                    }
                };
                if nodes > 0 {
                    db.close().await;
                    return Err(MigrateError::InUse {
                        what: format!(
                            "{nodes} `berth serve` node{} run{} on the target database {url}",
                            if nodes == 1 { "" } else { "s" },
                            if nodes == 1 { "s" } else { "" },
                        ),
                    });
                }
                Ok(db)
            }
            (None, Some(dir)) => {
                let path = dir.join(DATABASE_FILE);
                if path.exists() && !snapshot::is_free(&path).await.map_err(target_db)? {
                    return Err(MigrateError::InUse {
                        what: format!("a `berth serve` has {} open", path.display()),
                    });
                }
                Db::open_sqlite(&path).await.map_err(target_db)
            }
            (None, None) => Err(no_metadata_dir()),
        }
    }

    /// The target database for a dry run, read-only and as it is; `None`
    /// when there is none yet, or no berth set it up.
    async fn look_at_target_db(&self) -> Result<Option<Db>, MigrateError> {
        let db = match (&self.target.database_url, &self.target.data_dir) {
            (Some(url), _) => Db::connect_postgres(url.expose())
                .await
                .map_err(target_db)?,
            (None, Some(dir)) if dir.join(DATABASE_FILE).exists() => {
                Db::open_sqlite_read_only(&dir.join(DATABASE_FILE))
                    .await
                    .map_err(target_db)?
            }
            (None, _) => return Ok(None),
        };
        // Every table of a berth database, the keys' too on PostgreSQL.
        let mut names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        if db.engine() == Engine::Postgres {
            names.push("key_files");
        }
        for name in names {
            if !db.has_table(name).await.map_err(target_db)? {
                db.close().await;
                return Ok(None);
            }
        }
        Ok(Some(db))
    }

    /// The signing keys the target holds (none yet: empty): in the
    /// database on PostgreSQL, in the data directory on SQLite.
    async fn target_keys(&self, db: Option<&Db>) -> Result<KeyFiles, MigrateError> {
        if self.target.database_url.is_some() {
            return match db {
                Some(db) => Ok(keys_sql::read(db).await.map_err(target_db)?.1),
                None => Ok(KeyFiles::new()),
            };
        }
        match &self.target.data_dir {
            Some(dir) => read_key_dir(dir.join(KEYS_DIR)).await,
            None => Ok(KeyFiles::new()),
        }
    }

    /// Puts the source's keys `files` into the target (step 3).
    async fn copy_keys(&self, db: &Db, files: &KeyFiles) -> Result<KeysOutcome, MigrateError> {
        if db.engine() == Engine::Postgres {
            let mut tx = keys_sql::begin(db).await.map_err(target_db)?;
            let (_, held) = keys_sql::read(&mut tx).await.map_err(target_db)?;
            if held == *files {
                return Ok(KeysOutcome::Present);
            }
            keys_sql::replace(&mut tx, files).await.map_err(target_db)?;
            tx.commit().await.map_err(target_db)?;
            return Ok(KeysOutcome::Copied);
        }
        let dir = self
            .target
            .data_dir
            .as_ref()
            .ok_or_else(no_metadata_dir)?
            .join(KEYS_DIR);
        if read_key_dir(dir.clone()).await? == *files {
            return Ok(KeysOutcome::Present);
        }
        let files = files.clone();
        blocking(move || keys::write_files(&dir, &files)).await?;
        Ok(KeysOutcome::Copied)
    }

    /// Counts the blobs the target store holds and lacks (a dry run's step 6).
    async fn plan_blobs(
        &self,
        to: Option<&dyn BlobStore>,
        report: &mut MigrateReport,
    ) -> Result<(), MigrateError> {
        let (present, to_copy, bytes) = self.compare_blobs(to).await?;
        report.blobs_present = present;
        report.blobs_copied = to_copy;
        report.bytes_copied = bytes;
        Ok(())
    }

    /// How many blobs of the snapshot the target store (none: an empty one)
    /// holds, how many it lacks, and their size.
    async fn compare_blobs(
        &self,
        to: Option<&dyn BlobStore>,
    ) -> Result<(u64, u64, u64), MigrateError> {
        let (mut present, mut missing, mut bytes) = (0, 0, 0);
        let mut pages = std::pin::pin!(self.blobs.blob_pages(PAGE));
        while let Some(page) = pages.try_next().await.map_err(MigrateError::Source)? {
            let mut held = futures_util::stream::iter(page)
                .map(|(digest, size)| async move {
                    let held = match to {
                        Some(to) => holds(to, &digest, size).await,
                        None => Ok(false),
                    };
                    (held, size)
                })
                .buffer_unordered(STATS_AT_ONCE);
            while let Some((held, size)) = held.next().await {
                if held? {
                    present += 1;
                } else {
                    missing += 1;
                    bytes += size;
                }
            }
        }
        Ok((present, missing, bytes))
    }

    /// Step 6: every blob the target lacks, copied and verified.
    async fn copy_blobs(
        &self,
        from: &FsStore,
        to: Arc<dyn BlobStore>,
        report: &mut MigrateReport,
    ) -> Result<(), MigrateError> {
        let (present, to_copy, bytes_to_copy) = self.compare_blobs(Some(&*to)).await?;
        (self.emit)(&MigrateEvent::Planned {
            present,
            to_copy,
            bytes_to_copy,
        });
        let mut pages = std::pin::pin!(self.blobs.blob_pages(PAGE));
        while let Some(page) = pages.try_next().await.map_err(MigrateError::Source)? {
            let mut copies = futures_util::stream::iter(page)
                .map(|(digest, size)| {
                    let to = Arc::clone(&to);
                    async move {
                        let outcome = match holds(&*to, &digest, size).await {
                            Ok(true) => Ok(Copied::Present),
                            Ok(false) => copy_blob(from, &*to, &digest, size, &self.emit).await,
                            Err(e) => Err(e.to_string()),
                        };
                        (digest, size, outcome)
                    }
                })
                .buffer_unordered(self.options.jobs.max(1));
            while let Some((digest, size, outcome)) = copies.next().await {
                match outcome {
                    Ok(Copied::Present) => report.blobs_present += 1,
                    Ok(Copied::Copied) => {
                        report.blobs_copied += 1;
                        report.bytes_copied += size;
                        (self.emit)(&MigrateEvent::Blob(BlobCopy::Done { digest, size }));
                    }
                    Err(reason) => {
                        (self.emit)(&MigrateEvent::BlobFailed {
                            digest: digest.clone(),
                            reason: reason.clone(),
                        });
                        report.failures.push((digest, reason));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whose the target is, from the source's keys, the target's, and how many
/// rows the target holds (see [`Claim`]).
fn claim(
    source_keys: Option<&KeyFiles>,
    target_keys: &KeyFiles,
    target_rows: u64,
) -> Result<Claim, MigrateError> {
    if !target_keys.is_empty() {
        let theirs = keys::root_certificate(target_keys);
        let ours = source_keys.and_then(|k| keys::root_certificate(k));
        if theirs.is_some() && theirs == ours {
            return Ok(Claim::Ours);
        }
        return Err(MigrateError::OtherRegistry {
            why: "its token signing keys have another root certificate than the source's".into(),
        });
    }
    match (target_rows, source_keys) {
        (0, _) => Ok(Claim::Empty),
        (_, Some(_)) => Err(MigrateError::OtherRegistry {
            why: format!(
                "it holds {target_rows} rows of metadata but not the source's signing keys"
            ),
        }),
        (_, None) => Ok(Claim::Unproven),
    }
}

/// Rows in every table of [`TABLES`].
async fn count_all(db: &Db) -> Result<u64, MigrateError> {
    let mut total = 0;
    for table in &TABLES {
        total += transfer::count_rows(db, table).await.map_err(target_db)?;
    }
    Ok(total)
}

fn no_metadata_dir() -> MigrateError {
    MigrateError::NoTargetDir {
        why: "the metadata stays in SQLite",
        what: "the metadata to PostgreSQL with --database-url",
    }
}

fn no_blob_dir() -> MigrateError {
    MigrateError::NoTargetDir {
        why: "the blobs stay on the filesystem",
        what: "the blobs to S3 with --blob-store s3://BUCKET",
    }
}

/// `source` must be a directory with a metadata database.
fn check_source(source: &Path) -> Result<(), MigrateError> {
    let problem = crate::not_a_data_dir(source).map_err(|e| MigrateError::Io {
        action: "read",
        path: source.to_owned(),
        source: e,
    })?;
    match problem {
        None => Ok(()),
        Some(reason) => Err(MigrateError::NotADataDir {
            path: source.to_owned(),
            reason,
        }),
    }
}

/// The target must say where each part goes, and its SQLite database must
/// not be the source's. (The source's directory may hold the target's
/// filesystem blobs: moving only the metadata to PostgreSQL.)
fn check_target(source: &Path, target: &MigrateTarget) -> Result<(), MigrateError> {
    let Some(dir) = &target.data_dir else {
        if target.database_url.is_none() {
            return Err(no_metadata_dir());
        }
        if matches!(target.blob_store, BlobStoreConfig::DataDir) {
            return Err(no_blob_dir());
        }
        return Ok(());
    };
    let same = std::fs::canonicalize(source)
        .ok()
        .zip(std::fs::canonicalize(dir).ok())
        .is_some_and(|(a, b)| a == b);
    if same && target.database_url.is_none() {
        return Err(MigrateError::SameDirectory { path: dir.clone() });
    }
    Ok(())
}

/// A new private directory (0700) for the snapshot: in the target's data
/// directory (created) when there is one and the run writes to it, else in
/// the system's temporary directory. Directories left there by a run that
/// was killed are removed first.
fn work_dir(target: &MigrateTarget, dry_run: bool) -> Result<tempfile::TempDir, MigrateError> {
    let io = |action, path: &Path| {
        let path = path.to_owned();
        move |source| MigrateError::Io {
            action,
            path,
            source,
        }
    };
    let parent = match &target.data_dir {
        Some(dir) if !dry_run => {
            std::fs::create_dir_all(dir).map_err(io("create", dir))?;
            let entries = std::fs::read_dir(dir).map_err(io("read", dir))?;
            for entry in entries {
                let entry = entry.map_err(io("read", dir))?;
                if entry.file_name().to_string_lossy().starts_with(WORK_PREFIX) {
                    std::fs::remove_dir_all(entry.path()).map_err(io("remove", &entry.path()))?;
                }
            }
            dir.clone()
        }
        _ => std::env::temp_dir(),
    };
    tempfile::Builder::new()
        .prefix(WORK_PREFIX)
        .tempdir_in(&parent)
        .map_err(io("create a temporary directory in", &parent))
}

/// The target's blob store, checked to answer; `None` for a dry run on a
/// data directory without blobs yet (opening it would create its folders).
async fn open_target_store(
    target: &MigrateTarget,
    dry_run: bool,
) -> Result<Option<Arc<dyn BlobStore>>, MigrateError> {
    Ok(Some(match &target.blob_store {
        BlobStoreConfig::S3(settings) => {
            let store = S3Store::open(settings).map_err(target_store)?;
            store.ready().await.map_err(target_store)?;
            Arc::new(store)
        }
        BlobStoreConfig::DataDir => {
            let dir = target.data_dir.as_ref().ok_or_else(no_blob_dir)?;
            if dry_run && !dir.join("blobs").is_dir() {
                return Ok(None);
            }
            Arc::new(FsStore::open(dir).map_err(target_store)?)
        }
    }))
}

/// The source's signing keys; `None` when it has none.
async fn read_source_keys(source: &Path) -> Result<Option<KeyFiles>, MigrateError> {
    let files = read_key_dir(source.join(KEYS_DIR)).await?;
    Ok((!files.is_empty()).then_some(files))
}

/// The key files of the directory `dir`; none when it does not exist.
async fn read_key_dir(dir: PathBuf) -> Result<KeyFiles, MigrateError> {
    blocking(move || {
        if dir.exists() {
            keys::read_files(&dir)
        } else {
            Ok(KeyFiles::new())
        }
    })
    .await
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, KeyError> + Send + 'static,
) -> Result<T, MigrateError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| MigrateError::Worker(e.to_string()))?
        .map_err(MigrateError::from)
}

/// Whether the target store holds the blob (its key is the digest, which
/// the store verified before committing it; the size is checked too).
async fn holds(to: &dyn BlobStore, digest: &Digest, size: u64) -> Result<bool, MigrateError> {
    match to.stat(digest).await {
        Ok(found) => Ok(found == Some(size)),
        Err(StoreError::NotFound) => Ok(false),
        Err(e) => Err(target_store(e)),
    }
}

/// What became of one blob of the copy pass.
enum Copied {
    /// The target held it.
    Present,
    /// Copied and verified.
    Copied,
}

/// Streams one blob from the source file into the target through its
/// upload path, hashing as it goes; commits it only when it is its digest.
/// A failure is a reason, for the report.
async fn copy_blob(
    from: &FsStore,
    to: &dyn BlobStore,
    digest: &Digest,
    size: u64,
    emit: &OnMigrateEvent,
) -> Result<Copied, String> {
    let reader = match from.open(digest, None).await {
        Ok(reader) => reader,
        Err(StoreError::NotFound) => {
            return Err(
                "the source has no file for it (removed since the snapshot?); run again".to_owned(),
            );
        }
        Err(e) => return Err(format!("cannot read it from the source: {e}")),
    };
    if reader.len != size {
        return Err(format!(
            "its file in the source has {} bytes, its record says {size}; the source's copy is \
             damaged: restore the file from a backup, then run again",
            reader.len
        ));
    }
    emit(&MigrateEvent::Blob(BlobCopy::Started {
        digest: digest.clone(),
        size,
    }));
    let id = uuid::Uuid::new_v4().simple().to_string();
    let id = UploadId::parse(&id).map_err(|e| format!("upload id: {e}"))?;
    let staging = to
        .begin_upload(&id)
        .await
        .map_err(|e| format!("cannot start writing it to the target: {e}"))?;
    let stream = {
        let (digest, emit) = (digest.clone(), Arc::clone(emit));
        let mut moved = 0;
        reader.stream.inspect(move |chunk| {
            if let Ok(chunk) = chunk {
                moved += chunk.len() as u64;
                emit(&MigrateEvent::Blob(BlobCopy::Progress {
                    digest: digest.clone(),
                    moved,
                }));
            }
        })
    };
    let appended = to
        .append(
            &staging,
            0,
            Digester::new(digest.algorithm()),
            Box::pin(stream),
            size,
            None,
        )
        .await;
    let (staging, failure) = match appended {
        Ok(appended) => {
            let staging = appended.staging.clone().unwrap_or(staging);
            let got = appended.digester.finalize();
            if appended.offset == size && got == *digest {
                return match to.commit(&staging, digest).await {
                    Ok(()) => Ok(Copied::Copied),
                    Err(e) => Err(format!("cannot commit it in the target: {e}")),
                };
            }
            let failure = format!(
                "its file in the source is not its content ({} bytes hashing to {got}); the \
                 source's copy is damaged: restore the file from a backup, then run again",
                appended.offset
            );
            (staging, failure)
        }
        Err(e) => (staging, format!("cannot write it to the target: {e}")),
    };
    match to.abort(&staging).await {
        Ok(()) => Err(failure),
        Err(e) => Err(format!(
            "{failure} (and its partial copy could not be removed: {e}; a node's sweep removes it)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(root: &str) -> KeyFiles {
        vec![
            ("active".to_owned(), b"kid".to_vec()),
            ("root.crt.pem".to_owned(), root.as_bytes().to_vec()),
        ]
    }

    #[test]
    fn the_target_is_empty_ours_or_refused() {
        let ours = files("root A");
        assert_eq!(
            claim(Some(&ours), &KeyFiles::new(), 0).unwrap(),
            Claim::Empty
        );
        assert_eq!(claim(None, &KeyFiles::new(), 0).unwrap(), Claim::Empty);
        // An earlier run: the same root, whatever the signing keys are now.
        let mut rotated = files("root A");
        rotated[0].1 = b"another kid".to_vec();
        assert_eq!(claim(Some(&ours), &rotated, 9).unwrap(), Claim::Ours);
        // Another registry's keys, or data without the source's keys.
        for refused in [
            claim(Some(&ours), &files("root B"), 9),
            claim(None, &files("root B"), 0),
            claim(Some(&ours), &KeyFiles::new(), 3),
        ] {
            assert!(
                matches!(refused, Err(MigrateError::OtherRegistry { .. })),
                "{refused:?}"
            );
        }
        // A source that never had keys cannot prove a target its own.
        assert_eq!(claim(None, &KeyFiles::new(), 3).unwrap(), Claim::Unproven);
    }

    #[test]
    fn a_target_must_say_where_each_part_goes() {
        let dir = tempfile::tempdir().unwrap();
        let url: DatabaseUrl = "postgres://u@h/db".parse().unwrap();
        let nowhere = MigrateTarget {
            data_dir: None,
            database_url: None,
            blob_store: BlobStoreConfig::DataDir,
        };
        assert!(matches!(
            check_target(dir.path(), &nowhere),
            Err(MigrateError::NoTargetDir { .. })
        ));
        let blobs_nowhere = MigrateTarget {
            database_url: Some(url.clone()),
            ..nowhere.clone()
        };
        assert!(matches!(
            check_target(dir.path(), &blobs_nowhere),
            Err(MigrateError::NoTargetDir { .. })
        ));
        let itself = MigrateTarget {
            data_dir: Some(dir.path().to_owned()),
            ..nowhere.clone()
        };
        assert!(matches!(
            check_target(dir.path(), &itself),
            Err(MigrateError::SameDirectory { .. })
        ));
        // The metadata to PostgreSQL, the blobs staying where they are.
        let metadata_only = MigrateTarget {
            database_url: Some(url),
            ..itself
        };
        assert!(check_target(dir.path(), &metadata_only).is_ok());
    }
}
