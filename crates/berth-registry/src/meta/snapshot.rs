//! A transactionally consistent copy of the SQLite metadata, taken while the
//! server writes to it: what `berth backup` starts from.
//!
//! `VACUUM INTO` reads the live database in one read transaction (in WAL
//! mode a reader sees the last commit before it started and never blocks the
//! server's writers) and writes a compact, self-contained copy. The copy is
//! then made into a backup:
//! - upload sessions are dropped: their staging bytes are being written
//!   while the copy is taken and are not part of a backup, so a session in
//!   the copy would name bytes the copy does not hold (and count against the
//!   upload caps until it expired); a client resuming against a restored
//!   server is told the session is unknown and starts again;
//! - blob records no repository links and no manifest names are dropped, so
//!   that the copy's blob records name exactly the blob files the backup
//!   holds;
//! - the journal mode is set to rollback (`DELETE`): the copy is one file,
//!   with no `-wal` beside it; `berth serve` switches it to WAL on start.
//!
//! Everything read afterwards (the blobs to copy) comes from the copy, never
//! from the live database: the backup is exactly one instant of the registry.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use berth_core::digest::Digest;
use futures_util::Stream;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};

use super::MetaError;

/// Tables a berth metadata database has in every schema version.
const BERTH_TABLES: [&str; 5] = [
    "repositories",
    "blobs",
    "repository_blobs",
    "manifest_references",
    "uploads",
];

/// The blobs a snapshot references: linked into a repository, or named by a
/// manifest (config, layers).
const REFERENCED: &str = "SELECT digest FROM repository_blobs
                           UNION SELECT child_digest FROM manifest_references WHERE NOT is_manifest";

/// What a snapshot holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotCounts {
    /// Repositories.
    pub repositories: u64,
    /// Manifests (indexes included), over all repositories.
    pub manifests: u64,
    /// Tags, over all repositories.
    pub tags: u64,
    /// Distinct blobs referenced.
    pub blobs: u64,
    /// Their total size in bytes.
    pub blob_bytes: u64,
    /// Upload sessions that were open in the live database (dropped from the copy).
    pub uploads_dropped: u64,
}

/// An open copy of the metadata database.
#[derive(Debug)]
pub struct Snapshot {
    pool: SqlitePool,
    path: PathBuf,
    counts: SnapshotCounts,
}

/// Options for a connection to an existing database file (never created).
fn options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(30))
}

impl Snapshot {
    /// Copies the live database at `live` to `to` (which must not exist) with
    /// `VACUUM INTO`, and turns the copy into a backup (see the module doc).
    ///
    /// The live database is opened without migrating it and only read.
    pub async fn take(live: &Path, to: &Path) -> Result<Self, MetaError> {
        let source = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options(live))
            .await?;
        let taken = async {
            check_berth_schema(&source).await?;
            // The target is a bound parameter: SQLite evaluates the
            // expression after INTO, so no quoting of the path is needed.
            sqlx::query("VACUUM INTO $1")
                .bind(to.to_string_lossy().into_owned())
                .execute(&source)
                .await?;
            Ok::<_, MetaError>(())
        }
        .await;
        source.close().await;
        taken?;
        let mut snapshot = Self::open(to).await?;
        snapshot.counts.uploads_dropped = snapshot.make_backup().await?;
        snapshot.counts = SnapshotCounts {
            uploads_dropped: snapshot.counts.uploads_dropped,
            ..snapshot.read_counts().await?
        };
        Ok(snapshot)
    }

    /// Opens an existing copy (a backup's `berth.db`), to read it.
    pub async fn open(path: &Path) -> Result<Self, MetaError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options(path))
            .await?;
        check_berth_schema(&pool).await?;
        Ok(Self {
            pool,
            path: path.to_owned(),
            counts: SnapshotCounts::default(),
        })
    }

    /// What the snapshot holds (after [`Snapshot::take`]).
    pub fn counts(&self) -> SnapshotCounts {
        self.counts
    }

    /// Drops upload sessions and unreferenced blob records, and sets the
    /// rollback journal; the number of sessions dropped.
    async fn make_backup(&self) -> Result<u64, MetaError> {
        let mut tx = self.pool.begin().await?;
        let uploads = sqlx::query("DELETE FROM uploads")
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM blobs WHERE digest NOT IN ({REFERENCED})"
        )))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        sqlx::query("PRAGMA journal_mode = DELETE")
            .execute(&self.pool)
            .await?;
        Ok(uploads)
    }

    async fn read_counts(&self) -> Result<SnapshotCounts, MetaError> {
        let count = |sql: &'static str| async move {
            let n: i64 = sqlx::query_scalar(sql).fetch_one(&self.pool).await?;
            Ok::<_, MetaError>(u64::try_from(n).unwrap_or(0))
        };
        let row = sqlx::query("SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM blobs")
            .fetch_one(&self.pool)
            .await?;
        let (blobs, bytes): (i64, i64) = (row.try_get("n")?, row.try_get("bytes")?);
        Ok(SnapshotCounts {
            repositories: count("SELECT count(*) FROM repositories").await?,
            manifests: count("SELECT count(*) FROM manifests").await?,
            tags: count("SELECT count(*) FROM tags").await?,
            blobs: u64::try_from(blobs).unwrap_or(0),
            blob_bytes: u64::try_from(bytes).unwrap_or(0),
            uploads_dropped: 0,
        })
    }

    /// Up to `limit` referenced blobs, with their sizes, whose digests sort
    /// after `after`, in digest order.
    pub async fn blobs_after(
        &self,
        after: Option<&Digest>,
        limit: u32,
    ) -> Result<Vec<(Digest, u64)>, MetaError> {
        // Every blob record of the copy is referenced (`make_backup`).
        let rows = sqlx::query(
            "SELECT digest, size FROM blobs WHERE digest > $1 ORDER BY digest LIMIT $2",
        )
        .bind(after.map(ToString::to_string).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let digest: String = row.try_get("digest")?;
                let size: i64 = row.try_get("size")?;
                let digest =
                    Digest::from_str(&digest).map_err(|e| MetaError::Corrupt(e.to_string()))?;
                Ok((digest, u64::try_from(size).unwrap_or(0)))
            })
            .collect()
    }

    /// Every referenced blob with its size, in digest order, `page` at a
    /// time: [`Snapshot::blobs_after`] followed to the end.
    pub fn blob_pages(
        &self,
        page: u32,
    ) -> impl Stream<Item = Result<Vec<(Digest, u64)>, MetaError>> + '_ {
        futures_util::stream::try_unfold(None::<Digest>, move |after| async move {
            let blobs = self.blobs_after(after.as_ref(), page).await?;
            let next = blobs.last().map(|(digest, _)| Some(digest.clone()));
            Ok(next.map(|next| (blobs, next)))
        })
    }

    /// Whether the snapshot references the blob `digest` (every blob record
    /// of a copy is referenced).
    pub async fn references_blob(&self, digest: &Digest) -> Result<bool, MetaError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    /// Closes the copy and makes its file durable.
    pub async fn close(self) -> Result<(), MetaError> {
        self.pool.close().await;
        let path = self.path;
        tokio::task::spawn_blocking(move || std::fs::File::open(&path)?.sync_all())
            .await
            .map_err(|e| MetaError::Corrupt(format!("fsync worker failed: {e}")))?
            .map_err(|e| MetaError::Database(sqlx::Error::Io(e)))?;
        Ok(())
    }
}

/// Whether a database (a previous backup's) is free: no other connection
/// has it open. When it is, its write-ahead log, if any, is folded into it
/// and it is left in rollback mode, so that no stale `-wal` file remains
/// beside it to be applied to a file renamed over it.
///
/// SQLite changes a database's journal mode only under an exclusive lock: a
/// server running on it makes the change fail (busy) or not happen (the
/// mode stays `wal`). Returns `Ok(false)` then.
pub async fn is_free(path: &Path) -> Result<bool, MetaError> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options(path).busy_timeout(Duration::from_secs(1)))
        .await?;
    let mode: Result<String, sqlx::Error> = sqlx::query_scalar("PRAGMA journal_mode = DELETE")
        .fetch_one(&pool)
        .await;
    pool.close().await;
    match mode {
        Ok(mode) => Ok(mode.eq_ignore_ascii_case("delete")),
        Err(sqlx::Error::Database(e))
            if e.code()
                .and_then(|code| code.parse::<i64>().ok())
                .is_some_and(|code| matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED)) =>
        {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// SQLite's primary result codes for a database another connection holds.
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;

/// Fails unless the database has berth's tables (a file of another program,
/// or an empty database SQLite would happily open).
async fn check_berth_schema(pool: &SqlitePool) -> Result<(), MetaError> {
    let mut missing = Vec::new();
    for table in BERTH_TABLES {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1")
                .bind(table)
                .fetch_optional(pool)
                .await?;
        if found.is_none() {
            missing.push(table);
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(MetaError::Corrupt(format!(
            "not a berth metadata database (no table {})",
            missing.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use berth_core::endpoint::UploadId;
    use berth_core::name::RepositoryName;

    use super::*;
    use crate::meta::{MetaStore, SqlMeta, UploadLimits, UploadSession};

    /// A copy taken from a database with a linked blob, an unlinked blob
    /// record and an open upload session keeps the first, drops the other
    /// two, and is a single file in rollback mode.
    #[tokio::test]
    async fn the_copy_names_referenced_blobs_only_and_no_upload_session() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("berth.db");
        let meta = SqlMeta::open(&live).await.unwrap();
        let repo = RepositoryName::parse("acme/app").unwrap();
        let kept = Digest::sha256_of(b"kept");
        let gone = Digest::sha256_of(b"gone");
        meta.link_blob(&repo, &kept, 4).await.unwrap();
        meta.link_blob(&repo, &gone, 4).await.unwrap();
        meta.unlink_blob(&repo, &gone, &crate::events::Actor::system())
            .await
            .unwrap();
        let session = UploadSession {
            id: UploadId::parse("0123456789abcdef0123456789abcdef").unwrap(),
            repository: repo.clone(),
            subject: None,
            offset: 0,
            hash_state: Vec::new(),
            staging: "0123456789abcdef0123456789abcdef".into(),
            created_at: 0,
            updated_at: 0,
        };
        meta.create_upload(&session, UploadLimits::default())
            .await
            .unwrap();

        let copy = dir.path().join("copy.db");
        let snapshot = Snapshot::take(&live, &copy).await.unwrap();
        let counts = snapshot.counts();
        assert_eq!(
            (counts.repositories, counts.blobs, counts.blob_bytes),
            (1, 1, 4)
        );
        assert_eq!(counts.uploads_dropped, 1);
        assert_eq!(
            snapshot.blobs_after(None, 10).await.unwrap(),
            vec![(kept.clone(), 4)]
        );
        let pages: Vec<_> = futures_util::TryStreamExt::try_collect(snapshot.blob_pages(1))
            .await
            .unwrap();
        assert_eq!(pages, vec![vec![(kept.clone(), 4)]]);
        assert!(snapshot.references_blob(&kept).await.unwrap());
        assert!(!snapshot.references_blob(&gone).await.unwrap());
        snapshot.close().await.unwrap();
        assert!(!dir.path().join("copy.db-wal").exists());

        // The live database still has all of it.
        assert_eq!(meta.blob_size(&gone).await.unwrap(), Some(4));
        assert!(meta.staging_in_use(&session.staging).await.unwrap());
    }

    /// A database a server has open is not free; once it is closed it is,
    /// and its write-ahead log is gone.
    #[tokio::test]
    async fn a_database_open_in_a_server_is_not_free() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.db");
        let meta = SqlMeta::open(&path).await.unwrap();
        let repo = RepositoryName::parse("acme/app").unwrap();
        meta.link_blob(&repo, &Digest::sha256_of(b"x"), 1)
            .await
            .unwrap();
        assert!(dir.path().join("berth.db-wal").exists());
        assert!(!is_free(&path).await.unwrap());
        meta.db().sqlite().unwrap().close().await;
        assert!(is_free(&path).await.unwrap());
        assert!(!dir.path().join("berth.db-wal").exists());
        let reopened = Snapshot::open(&path).await.unwrap();
        assert_eq!(reopened.blobs_after(None, 10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_database_of_another_program_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        let pool = SqlitePoolOptions::new()
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true),
            )
            .await
            .unwrap();
        sqlx::query("CREATE TABLE notes (x TEXT)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let error = Snapshot::take(&path, &dir.path().join("copy.db"))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a berth metadata database"), "{error}");
        assert!(!dir.path().join("copy.db").exists());
    }
}
