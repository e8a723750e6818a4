//! [`MetaStore`] on SQL: SQLite (the embedded default) or PostgreSQL (several
//! nodes sharing one database), through the adapter in `meta/db.rs`.
//!
//! Every query is written once, in the SQL both engines understand; the
//! adapter binds and decodes for the engine at hand and owns what differs
//! (opening, migrations, how a write transaction keeps its checks true, change
//! notices). A write transaction names what it must hold ([`Lock`]): on
//! SQLite the one writer holds everything, on PostgreSQL the named advisory
//! locks serialise exactly the writers that could race (two pushes to one
//! repository, a push and the deletion of its namespace, two upload sessions
//! counted against one cap).
//!
//! Commits are durable before a push is acknowledged (SQLite
//! `synchronous=FULL`; PostgreSQL's default `synchronous_commit`).

use crate::clock::now_unix;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_trait::async_trait;
use berth_core::digest::Digest;
use berth_core::endpoint::UploadId;
use berth_core::name::RepositoryName;
use berth_core::reference::TagOrDigest;
use berth_core::tag::Tag;

use super::db::{Db, Lock, Row, Tx, query, query_as, query_scalar};
use super::events_sql;
use super::gc_sql::{self, Kind};
use super::revocation_sql::record;
use super::{
    Actor, BytesPresent, CatalogFilter, DeletedRepository, DescriptorRef, Manifest, MetaError,
    MetaStore, NameRange, NewManifest, Referrer, RepositoryInfo, UploadLimits, UploadOwner,
    UploadSession,
};
use crate::auth::revocation::{self, RevocationTarget};
use crate::events::{Change, Events};

/// The token lifetime assumed until [`SqlMeta::with_token_lifetime`] says
/// otherwise (the `Config::new` default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// The metadata store on SQL.
#[derive(Debug, Clone)]
pub struct SqlMeta {
    db: Db,
    new_repositories_public: bool,
    /// Incremented after each commit that wrote revocation records.
    pub(super) revocation_writes: Arc<AtomicU64>,
    /// How long a revocation record is kept (`revocation::keep_secs`).
    pub(super) revocation_keep_secs: i64,
    /// Where changes' events go (nowhere unless [`SqlMeta::with_events`]).
    pub(super) events: Arc<Events>,
}

impl SqlMeta {
    /// The database, for the other stores on it (identities, keys) and for
    /// what only one engine does (snapshots, change notices).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// A store on an open database.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            new_repositories_public: false,
            revocation_writes: Arc::default(),
            revocation_keep_secs: revocation::keep_secs(DEFAULT_TOKEN_LIFETIME),
            events: Arc::new(Events::disabled()),
        }
    }

    /// Opens (creating if needed) the SQLite database at `path` and migrates its schema.
    pub async fn open(path: &Path) -> Result<Self, MetaError> {
        Ok(Self::new(Db::open_sqlite(path).await?))
    }

    /// Connects to the PostgreSQL database `url` and migrates its schema.
    pub async fn open_postgres(url: &str) -> Result<Self, MetaError> {
        Ok(Self::new(Db::open_postgres(url).await?))
    }

    /// [`SqlMeta::open_postgres`] with a pool of at most `max_connections`.
    pub async fn open_postgres_with(url: &str, max_connections: u32) -> Result<Self, MetaError> {
        Ok(Self::new(
            Db::open_postgres_with(url, max_connections).await?,
        ))
    }

    /// Sets how long the tokens this registry issues live, which is how long
    /// a revocation record must be kept.
    pub fn with_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.revocation_keep_secs = revocation::keep_secs(lifetime);
        self
    }

    /// Sets the visibility repositories get when their first push creates them.
    pub fn with_new_repositories_public(mut self, public: bool) -> Self {
        self.new_repositories_public = public;
        self
    }

    /// Sets where the events of changes go.
    pub fn with_events(mut self, events: Arc<Events>) -> Self {
        self.events = events;
        self
    }

    /// Writes the event of `change` to `name` by `by` inside `tx`, when some
    /// endpoint wants it; how many it wrote (0 or 1), for `Events::committed`
    /// after the commit.
    async fn emit(
        &self,
        tx: &mut Tx,
        name: &RepositoryName,
        change: Change<'_>,
        by: &Actor,
    ) -> Result<u64, MetaError> {
        let Some((event, endpoints)) = self.events.route(name, &change, by, now_unix()) else {
            return Ok(0);
        };
        events_sql::record(tx, &[(event, endpoints)]).await?;
        Ok(1)
    }

    /// Writes a `berth.repository.deleted` event for each of `names` inside
    /// `tx` (a namespace deleted with its owner); how many were written, for
    /// `Events::committed` after the commit.
    pub(super) async fn emit_repositories_deleted(
        &self,
        tx: &mut Tx,
        names: &[String],
        by: &Actor,
    ) -> Result<u64, sqlx::Error> {
        let now = now_unix();
        let mut events = Vec::new();
        for name in names {
            let name = RepositoryName::parse(name)
                .map_err(|e| sqlx::Error::Protocol(format!("a stored repository name: {e}")))?;
            if let Some(routed) = self
                .events
                .route(&name, &Change::RepositoryDeleted, by, now)
            {
                events.push(routed);
            }
        }
        // All in one call: their chains locked in one order.
        match events_sql::record(tx, &events).await {
            Ok(()) => Ok(events.len() as u64),
            Err(MetaError::Database(e)) => Err(e),
            Err(other) => Err(sqlx::Error::Protocol(other.to_string())),
        }
    }

    /// An in-memory SQLite database, for tests.
    pub async fn in_memory() -> Result<Self, MetaError> {
        Ok(Self::new(Db::sqlite_in_memory().await?))
    }
}

/// Commits a write to repository `name`, telling the other nodes when it
/// changed something (`did`); returns `did`.
async fn changed(mut tx: Tx, name: &RepositoryName, did: bool) -> Result<bool, MetaError> {
    if did {
        tx.notify_changed(name.as_str()).await?;
    }
    tx.commit().await?;
    Ok(did)
}

/// What a write to repository `name` holds.
fn repository_lock(name: &RepositoryName) -> Lock<'_> {
    Lock::Repository {
        name: name.as_str(),
        namespace: name.namespace(),
    }
}

/// A string above every repository name (names are ASCII below U+007F).
const NAMES_END: &str = "\u{7f}";

/// The least string above every string that starts with `prefix` (its last
/// byte below 0x7f incremented, what follows it dropped); `None` when there is
/// none (every string qualifies). Repository names are ASCII, so the result is
/// a valid string.
fn prefix_end(prefix: &str) -> Option<String> {
    let bytes = prefix.as_bytes();
    let at = bytes.iter().rposition(|&b| b < 0x7f)?;
    let mut end = bytes[..at].to_vec();
    end.push(bytes[at] + 1);
    String::from_utf8(end).ok()
}

fn parse_digest(s: &str) -> Result<Digest, MetaError> {
    Digest::parse(s).map_err(|e| MetaError::Corrupt(e.to_string()))
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The id of a repository, created when missing, inside a transaction.
async fn repository_id(
    tx: &mut Tx,
    name: &RepositoryName,
    public_if_new: bool,
) -> Result<i64, MetaError> {
    query(
        "INSERT INTO repositories (name, namespace, public, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name.as_str())
    .bind(name.namespace())
    .bind(public_if_new)
    .bind(now_unix())
    .execute(&mut *tx)
    .await?;
    let id: i64 = query_scalar("SELECT id FROM repositories WHERE name = $1")
        .bind(name.as_str())
        .fetch_one(&mut *tx)
        .await?;
    Ok(id)
}

/// What a write that links blob `digest` into repository `name` holds: the
/// repository, and the digest (the collector removes bytes only while no
/// record names them, holding it too).
fn link_locks<'a>(name: &'a RepositoryName, digest: &'a str) -> [Lock<'a>; 2] {
    [repository_lock(name), Lock::Blob(digest)]
}

/// Records a blob (if new) and links it into a repository (created if new);
/// the link is queued for review: a blob no manifest of the repository names
/// within the delay goes.
async fn link_blob_in(
    tx: &mut Tx,
    name: &RepositoryName,
    digest: &Digest,
    size: u64,
    public_if_new: bool,
) -> Result<(), MetaError> {
    let repo = repository_id(&mut *tx, name, public_if_new).await?;
    let digest = digest.to_string();
    gc_sql::queue(&mut *tx, Kind::Link, repo, &digest, now_unix(), 0).await?;
    query(
        "INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (digest) DO NOTHING",
    )
    .bind(&digest)
    .bind(to_i64(size))
    .bind(now_unix())
    .execute(&mut *tx)
    .await?;
    query(
        "INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (repository_id, digest) DO NOTHING",
    )
    .bind(repo)
    .bind(&digest)
    .bind(now_unix())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A descriptor's target must be there (`size` is `None` when it is not)
/// with the size the descriptor states.
fn check_reference(descriptor: &DescriptorRef, size: Option<i64>) -> Result<(), MetaError> {
    let Some(actual) = size.map(to_u64) else {
        return Err(MetaError::MissingReference(descriptor.digest.clone()));
    };
    if actual != descriptor.size {
        return Err(MetaError::SizeMismatch {
            field: descriptor.field.clone(),
            digest: descriptor.digest.clone(),
            stated: descriptor.size,
            actual,
        });
    }
    Ok(())
}

fn upload_from_row(row: &Row) -> Result<UploadSession, MetaError> {
    let id: String = row.try_get("id")?;
    let repository: String = row.try_get("repository")?;
    Ok(UploadSession {
        id: UploadId::parse(&id).map_err(|e| MetaError::Corrupt(e.to_string()))?,
        repository: RepositoryName::parse(&repository)
            .map_err(|e| MetaError::Corrupt(e.to_string()))?,
        subject: row.try_get("subject")?,
        offset: to_u64(row.try_get("byte_offset")?),
        hash_state: row.try_get("hash_state")?,
        staging: row.try_get("staging")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

#[async_trait]
impl MetaStore for SqlMeta {
    async fn ready(&self) -> Result<(), MetaError> {
        Ok(self.db.ping().await?)
    }

    async fn list_repositories(
        &self,
        range: NameRange<'_>,
        limit: u32,
        filter: &CatalogFilter,
    ) -> Result<Vec<String>, MetaError> {
        // One lower bound and, for a prefix, one upper bound on `name`: a
        // range of its index, walked in order until `limit` names qualify.
        let after = range.after.unwrap_or("");
        let (lower, inclusive) = match range.prefix {
            Some(prefix) if prefix > after => (prefix, true),
            _ => (after, false),
        };
        // Names are ASCII: every one sorts below U+007F.
        let upper = range
            .prefix
            .and_then(prefix_end)
            .unwrap_or_else(|| NAMES_END.to_owned());
        let mut sql = format!(
            "SELECT name FROM repositories WHERE name {} $1 AND name < $3",
            if inclusive { ">=" } else { ">" }
        );
        if let CatalogFilter::Visible { namespaces } = filter {
            // `$4, $5, ...`: one placeholder per namespace (a caller belongs
            // to a handful of organisations, so the list stays short).
            let placeholders = (0..namespaces.len())
                .map(|i| format!("${}", i + 4))
                .collect::<Vec<_>>()
                .join(", ");
            if namespaces.is_empty() {
                sql.push_str(" AND public");
            } else {
                sql.push_str(&format!(" AND (public OR namespace IN ({placeholders}))"));
            }
        }
        sql.push_str(" ORDER BY name LIMIT $2");
        // Safe: the dynamic part is only fixed text and numbered placeholders.
        let mut query = query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(lower)
            .bind(i64::from(limit))
            .bind(upper);
        if let CatalogFilter::Visible { namespaces } = filter {
            for namespace in namespaces {
                query = query.bind(namespace);
            }
        }
        Ok(query.fetch_all(&self.db).await?)
    }

    async fn repository_info(
        &self,
        name: &RepositoryName,
    ) -> Result<Option<RepositoryInfo>, MetaError> {
        let public: Option<bool> = query_scalar("SELECT public FROM repositories WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&self.db)
            .await?;
        Ok(public.map(|public| RepositoryInfo { public }))
    }

    async fn list_repository_visibility(
        &self,
        after: Option<&str>,
        limit: u32,
        namespaces: Option<&[String]>,
    ) -> Result<Vec<(String, bool)>, MetaError> {
        let mut sql = "SELECT name, public FROM repositories WHERE name > $1".to_owned();
        if let Some(namespaces) = namespaces {
            if namespaces.is_empty() {
                return Ok(Vec::new());
            }
            // `$3, $4, ...`: one placeholder per namespace (a handful).
            let placeholders = (0..namespaces.len())
                .map(|i| format!("${}", i + 3))
                .collect::<Vec<_>>()
                .join(", ");
            sql.push_str(&format!(" AND namespace IN ({placeholders})"));
        }
        sql.push_str(" ORDER BY name LIMIT $2");
        // Safe: the dynamic part is only fixed text and numbered placeholders.
        let mut query = query_as::<(String, bool)>(sqlx::AssertSqlSafe(sql))
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit));
        for namespace in namespaces.unwrap_or_default() {
            query = query.bind(namespace);
        }
        Ok(query.fetch_all(&self.db).await?)
    }

    async fn delete_repository(
        &self,
        name: &RepositoryName,
        by: &Actor,
    ) -> Result<Option<DeletedRepository>, MetaError> {
        let mut tx = self.db.begin_write(&[repository_lock(name)]).await?;
        let id: Option<i64> = query_scalar("SELECT id FROM repositories WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&mut tx)
            .await?;
        let Some(id) = id else {
            return Ok(None);
        };
        let staging: Vec<String> =
            query_scalar("SELECT staging FROM uploads WHERE repository = $1")
                .bind(name.as_str())
                .fetch_all(&mut tx)
                .await?;
        // Its blobs may have lost their last link.
        gc_sql::queue_repository_blobs(&mut tx, id, now_unix()).await?;
        // Explicit, not left to ON DELETE CASCADE: correct even where foreign
        // keys are not enforced. Blob rows and bytes stay: other repositories
        // may link them.
        for table in [
            "tags",
            "manifest_references",
            "manifests",
            "repository_blobs",
        ] {
            query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE repository_id = $1"
            )))
            .bind(id)
            .execute(&mut tx)
            .await?;
        }
        query("DELETE FROM uploads WHERE repository = $1")
            .bind(name.as_str())
            .execute(&mut tx)
            .await?;
        query("DELETE FROM repositories WHERE id = $1")
            .bind(id)
            .execute(&mut tx)
            .await?;
        // Everyone's tokens on it end, and a later repository of the same
        // name starts afresh.
        let target = RevocationTarget::Repository(name.as_str().to_owned());
        record(&mut tx, &target, self.revocation_keep_secs).await?;
        let wrote = self
            .emit(&mut tx, name, Change::RepositoryDeleted, by)
            .await?;
        tx.notify_changed(name.as_str()).await?;
        tx.commit().await?;
        self.revocations_written();
        self.events.committed(wrote);
        Ok(Some(DeletedRepository { staging }))
    }

    async fn set_repository_public(
        &self,
        name: &RepositoryName,
        public: bool,
    ) -> Result<bool, MetaError> {
        let mut tx = self.db.begin_write(&[repository_lock(name)]).await?;
        let done = query("UPDATE repositories SET public = $2 WHERE name = $1")
            .bind(name.as_str())
            .bind(public)
            .execute(&mut tx)
            .await?;
        let found = done > 0;
        // Tokens granted pull while it was public must not outlive the change.
        let revokes = found && !public;
        if revokes {
            let target = RevocationTarget::Repository(name.as_str().to_owned());
            record(&mut tx, &target, self.revocation_keep_secs).await?;
        }
        if found {
            tx.notify_changed(name.as_str()).await?;
        }
        tx.commit().await?;
        if revokes {
            self.revocations_written();
        }
        Ok(found)
    }

    async fn repository_exists(&self, name: &RepositoryName) -> Result<bool, MetaError> {
        let found: Option<i64> = query_scalar("SELECT id FROM repositories WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&self.db)
            .await?;
        Ok(found.is_some())
    }

    async fn linked_blob(
        &self,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>, MetaError> {
        let size: Option<i64> = query_scalar(
            "SELECT b.size FROM repositories r
               JOIN repository_blobs rb ON rb.repository_id = r.id
               JOIN blobs b ON b.digest = rb.digest
              WHERE r.name = $1 AND rb.digest = $2",
        )
        .bind(name.as_str())
        .bind(digest.to_string())
        .fetch_optional(&self.db)
        .await?;
        Ok(size.map(to_u64))
    }

    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, MetaError> {
        let size: Option<i64> = query_scalar("SELECT size FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_optional(&self.db)
            .await?;
        Ok(size.map(to_u64))
    }

    async fn link_blob(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        size: u64,
    ) -> Result<(), MetaError> {
        let digest_text = digest.to_string();
        let mut tx = self.db.begin_write(&link_locks(name, &digest_text)).await?;
        link_blob_in(&mut tx, name, digest, size, self.new_repositories_public).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn mount_blob(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        from: Option<&RepositoryName>,
        by: &Actor,
    ) -> Result<Option<u64>, MetaError> {
        let digest_text = digest.to_string();
        let mut tx = self.db.begin_write(&link_locks(name, &digest_text)).await?;
        // A record under the digest's lock: its bytes are stored.
        let size: Option<i64> = query_scalar("SELECT size FROM blobs WHERE digest = $1")
            .bind(&digest_text)
            .fetch_optional(&mut tx)
            .await?;
        let Some(size) = size.map(to_u64) else {
            return Ok(None);
        };
        link_blob_in(&mut tx, name, digest, size, self.new_repositories_public).await?;
        let change = Change::BlobMounted { digest, size, from };
        let wrote = self.emit(&mut tx, name, change, by).await?;
        tx.commit().await?;
        self.events.committed(wrote);
        Ok(Some(size))
    }

    async fn finish_upload(
        &self,
        id: &UploadId,
        name: &RepositoryName,
        digest: &Digest,
        size: u64,
        present: BytesPresent<'_>,
    ) -> Result<(), MetaError> {
        let digest_text = digest.to_string();
        let mut tx = self.db.begin_write(&link_locks(name, &digest_text)).await?;
        // Checked while the digest is locked: the collector cannot remove
        // the bytes between this check and the record.
        if !present.await.map_err(MetaError::BytesCheck)? {
            return Err(MetaError::BytesGone(digest.clone()));
        }
        link_blob_in(&mut tx, name, digest, size, self.new_repositories_public).await?;
        query("DELETE FROM uploads WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn unlink_blob(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        by: &Actor,
    ) -> Result<bool, MetaError> {
        let digest_text = digest.to_string();
        let mut tx = self.db.begin_write(&link_locks(name, &digest_text)).await?;
        let done = query(
            "DELETE FROM repository_blobs
              WHERE digest = $2
                AND repository_id = (SELECT id FROM repositories WHERE name = $1)",
        )
        .bind(name.as_str())
        .bind(&digest_text)
        .execute(&mut tx)
        .await?;
        let mut wrote = 0;
        if done > 0 {
            gc_sql::queue(&mut tx, Kind::Blob, 0, &digest_text, now_unix(), 0).await?;
            wrote = self
                .emit(&mut tx, name, Change::BlobDeleted { digest }, by)
                .await?;
        }
        let did = changed(tx, name, done > 0).await?;
        self.events.committed(wrote);
        Ok(did)
    }

    async fn put_manifest(
        &self,
        name: &RepositoryName,
        new: &NewManifest,
        tag: Option<&Tag>,
        by: &Actor,
    ) -> Result<(), MetaError> {
        self.store_manifest(name, new, tag, by, Origin::Pushed)
            .await
    }

    async fn put_cached_manifest(
        &self,
        name: &RepositoryName,
        new: &NewManifest,
        tag: Option<&Tag>,
        public: bool,
        by: &Actor,
    ) -> Result<(), MetaError> {
        self.store_manifest(name, new, tag, by, Origin::Cached { public })
            .await
    }

    async fn get_manifest(
        &self,
        name: &RepositoryName,
        reference: &TagOrDigest,
    ) -> Result<Option<Manifest>, MetaError> {
        let row = match reference {
            TagOrDigest::Digest(digest) => {
                query(
                    "SELECT m.digest, m.media_type, m.content FROM manifests m
                       JOIN repositories r ON r.id = m.repository_id
                      WHERE r.name = $1 AND m.digest = $2",
                )
                .bind(name.as_str())
                .bind(digest.to_string())
                .fetch_optional(&self.db)
                .await?
            }
            TagOrDigest::Tag(tag) => {
                query(
                    "SELECT m.digest, m.media_type, m.content FROM tags t
                       JOIN repositories r ON r.id = t.repository_id
                       JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest
                      WHERE r.name = $1 AND t.name = $2",
                )
                .bind(name.as_str())
                .bind(tag.as_str())
                .fetch_optional(&self.db)
                .await?
            }
        };
        let Some(row) = row else {
            return Ok(None);
        };
        let digest: String = row.try_get("digest")?;
        let content: Vec<u8> = row.try_get("content")?;
        Ok(Some(Manifest {
            digest: parse_digest(&digest)?,
            media_type: row.try_get("media_type")?,
            content: content.into(),
        }))
    }

    async fn delete_manifest(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        by: &Actor,
    ) -> Result<bool, MetaError> {
        let mut tx = self.db.begin_write(&[repository_lock(name)]).await?;
        let repo: Option<i64> = query_scalar("SELECT id FROM repositories WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&mut tx)
            .await?;
        let Some(repo) = repo else {
            return Ok(false);
        };
        let digest_text = digest.to_string();
        // What it names and its referrers may have lost their last reference.
        gc_sql::queue_references(&mut tx, repo, &digest_text, now_unix()).await?;
        // Explicit, not left to ON DELETE CASCADE: correct even where foreign
        // keys are not enforced.
        for statement in [
            "DELETE FROM tags WHERE repository_id = $1 AND manifest_digest = $2",
            "DELETE FROM manifest_references WHERE repository_id = $1 AND manifest_digest = $2",
        ] {
            query(statement)
                .bind(repo)
                .bind(&digest_text)
                .execute(&mut tx)
                .await?;
        }
        let done = query("DELETE FROM manifests WHERE repository_id = $1 AND digest = $2")
            .bind(repo)
            .bind(&digest_text)
            .execute(&mut tx)
            .await?;
        if done == 0 {
            // Nothing was there: nothing queued either.
            return Ok(false);
        }
        let wrote = self
            .emit(&mut tx, name, Change::ManifestDeleted { digest }, by)
            .await?;
        changed(tx, name, true).await?;
        self.events.committed(wrote);
        Ok(true)
    }

    async fn delete_tag(
        &self,
        name: &RepositoryName,
        tag: &Tag,
        by: &Actor,
    ) -> Result<bool, MetaError> {
        let mut tx = self.db.begin_write(&[repository_lock(name)]).await?;
        let row: Option<(i64, String)> = query_as(
            "SELECT t.repository_id, t.manifest_digest FROM tags t
               JOIN repositories r ON r.id = t.repository_id
              WHERE r.name = $1 AND t.name = $2",
        )
        .bind(name.as_str())
        .bind(tag.as_str())
        .fetch_optional(&mut tx)
        .await?;
        let Some((repo, digest)) = row else {
            return Ok(false);
        };
        query("DELETE FROM tags WHERE repository_id = $1 AND name = $2")
            .bind(repo)
            .bind(tag.as_str())
            .execute(&mut tx)
            .await?;
        // Its manifest may be left untagged.
        gc_sql::queue(&mut tx, Kind::Manifest, repo, &digest, now_unix(), 0).await?;
        let digest = parse_digest(&digest)?;
        let wrote = self
            .emit(
                &mut tx,
                name,
                Change::TagDeleted {
                    tag,
                    digest: &digest,
                },
                by,
            )
            .await?;
        changed(tx, name, true).await?;
        self.events.committed(wrote);
        Ok(true)
    }

    async fn list_tags(
        &self,
        name: &RepositoryName,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Option<Vec<String>>, MetaError> {
        let repo: Option<i64> = query_scalar("SELECT id FROM repositories WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&self.db)
            .await?;
        let Some(repo) = repo else {
            return Ok(None);
        };
        let tags = query_scalar(
            "SELECT name FROM tags WHERE repository_id = $1 AND name > $2 ORDER BY name LIMIT $3",
        )
        .bind(repo)
        .bind(last.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.db)
        .await?;
        Ok(Some(tags))
    }

    async fn referrers(
        &self,
        name: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>, MetaError> {
        let rows = query(
            "SELECT m.digest, m.media_type, CAST(length(m.content) AS BIGINT) AS size, m.artifact_type, m.annotations
               FROM manifests m JOIN repositories r ON r.id = m.repository_id
              WHERE r.name = $1 AND m.subject = $2 AND ($3 IS NULL OR m.artifact_type = $3)
              ORDER BY m.digest",
        )
        .bind(name.as_str())
        .bind(subject.to_string())
        .bind(artifact_type)
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|row| {
                let digest: String = row.try_get("digest")?;
                Ok(Referrer {
                    digest: parse_digest(&digest)?,
                    media_type: row.try_get("media_type")?,
                    size: to_u64(row.try_get("size")?),
                    artifact_type: row.try_get("artifact_type")?,
                    annotations: row.try_get("annotations")?,
                })
            })
            .collect()
    }

    async fn create_upload(
        &self,
        s: &UploadSession,
        limits: UploadLimits,
    ) -> Result<(), MetaError> {
        // One statement counts and inserts, under the locks of the owners
        // counted (SQLite: its one writer), so concurrent starts, on this node
        // or another, cannot overshoot a cap.
        let repository_owner = format!("repository:{}", s.repository);
        let subject_owner = s
            .subject
            .as_ref()
            .map(|subject| format!("subject:{subject}"));
        let mut locks = Vec::new();
        if limits.per_repository > 0 {
            locks.push(Lock::Uploads(&repository_owner));
        }
        if let Some(owner) = subject_owner.as_deref().filter(|_| limits.per_subject > 0) {
            locks.push(Lock::Uploads(owner));
        }
        let mut tx = self.db.begin_write(&locks).await?;
        let done = query(
            "INSERT INTO uploads (id, repository, subject, byte_offset, hash_state, staging, created_at, updated_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8
              WHERE ($9 = 0 OR (SELECT count(*) FROM uploads WHERE repository = $2) < $9)
                AND ($3 IS NULL OR $10 = 0 OR (SELECT count(*) FROM uploads WHERE subject = $3) < $10)",
        )
        .bind(s.id.as_str())
        .bind(s.repository.as_str())
        .bind(s.subject.as_deref())
        .bind(to_i64(s.offset))
        .bind(&s.hash_state)
        .bind(&s.staging)
        .bind(s.created_at)
        .bind(s.updated_at)
        .bind(i64::from(limits.per_repository))
        .bind(i64::from(limits.per_subject))
        .execute(&mut tx)
        .await?;
        if done > 0 {
            tx.commit().await?;
            return Ok(());
        }
        // Refused: say which cap, with the count as it is now.
        if let Some(subject) = &s.subject
            && limits.per_subject > 0
        {
            let open: i64 = query_scalar("SELECT count(*) FROM uploads WHERE subject = $1")
                .bind(subject)
                .fetch_one(&mut tx)
                .await?;
            if open >= i64::from(limits.per_subject) {
                return Err(MetaError::UploadLimit {
                    owner: UploadOwner::Subject(subject.clone()),
                    open: to_u64(open),
                    limit: limits.per_subject,
                });
            }
        }
        let open: i64 = query_scalar("SELECT count(*) FROM uploads WHERE repository = $1")
            .bind(s.repository.as_str())
            .fetch_one(&mut tx)
            .await?;
        Err(MetaError::UploadLimit {
            owner: UploadOwner::Repository(s.repository.clone()),
            open: to_u64(open),
            limit: limits.per_repository,
        })
    }

    async fn staging_in_use(&self, staging: &str) -> Result<bool, MetaError> {
        let found: Option<i64> = query_scalar("SELECT byte_offset FROM uploads WHERE id = $1")
            .bind(staging)
            .fetch_optional(&self.db)
            .await?;
        Ok(found.is_some())
    }

    async fn get_upload(
        &self,
        name: &RepositoryName,
        id: &UploadId,
    ) -> Result<Option<UploadSession>, MetaError> {
        let row = query("SELECT * FROM uploads WHERE id = $1 AND repository = $2")
            .bind(id.as_str())
            .bind(name.as_str())
            .fetch_optional(&self.db)
            .await?;
        row.as_ref().map(upload_from_row).transpose()
    }

    async fn advance_upload(
        &self,
        id: &UploadId,
        expected_offset: u64,
        offset: u64,
        hash_state: &[u8],
        staging: Option<&str>,
        now: i64,
    ) -> Result<bool, MetaError> {
        let _turn = self.db.write_turn().await?;
        let done = query(
            "UPDATE uploads SET byte_offset = $3, hash_state = $4, updated_at = $5,
                    staging = COALESCE($6, staging)
              WHERE id = $1 AND byte_offset = $2",
        )
        .bind(id.as_str())
        .bind(to_i64(expected_offset))
        .bind(to_i64(offset))
        .bind(hash_state)
        .bind(now)
        .bind(staging)
        .execute(&self.db)
        .await?;
        Ok(done > 0)
    }

    async fn delete_upload(&self, id: &UploadId) -> Result<bool, MetaError> {
        let _turn = self.db.write_turn().await?;
        let done = query("DELETE FROM uploads WHERE id = $1")
            .bind(id.as_str())
            .execute(&self.db)
            .await?;
        Ok(done > 0)
    }

    async fn stale_uploads(
        &self,
        before: i64,
        limit: u32,
    ) -> Result<Vec<UploadSession>, MetaError> {
        let rows =
            query("SELECT * FROM uploads WHERE updated_at < $1 ORDER BY updated_at LIMIT $2")
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(&self.db)
                .await?;
        rows.iter().map(upload_from_row).collect()
    }
}

/// Where a stored manifest comes from.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// A client pushed it.
    Pushed,
    /// A pull-through cache fetched it from upstream; a repository it
    /// creates is public when `public`.
    Cached {
        /// The proxy namespace's access is public.
        public: bool,
    },
}

impl SqlMeta {
    /// `put_manifest` and `put_cached_manifest`: a pushed manifest's
    /// references must be in the repository; a cached one's are fetched
    /// when a client asks for them.
    async fn store_manifest(
        &self,
        name: &RepositoryName,
        new: &NewManifest,
        tag: Option<&Tag>,
        by: &Actor,
        origin: Origin,
    ) -> Result<(), MetaError> {
        let mut tx = self.db.begin_write(&[repository_lock(name)]).await?;
        let public_if_new = match origin {
            Origin::Pushed => self.new_repositories_public,
            Origin::Cached { public } => public,
        };
        let repo = repository_id(&mut tx, name, public_if_new).await?;
        let checked: &[DescriptorRef] = match origin {
            Origin::Pushed => &new.blobs,
            Origin::Cached { .. } => &[],
        };
        for blob in checked {
            let size: Option<i64> = query_scalar(
                "SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
                  WHERE rb.repository_id = $1 AND rb.digest = $2",
            )
            .bind(repo)
            .bind(blob.digest.to_string())
            .fetch_optional(&mut tx)
            .await?;
            check_reference(blob, size)?;
        }
        let checked: &[DescriptorRef] = match origin {
            Origin::Pushed => &new.children,
            Origin::Cached { .. } => &[],
        };
        for child in checked {
            let size: Option<i64> = query_scalar(
                "SELECT CAST(length(content) AS BIGINT) FROM manifests WHERE repository_id = $1 AND digest = $2",
            )
            .bind(repo)
            .bind(child.digest.to_string())
            .fetch_optional(&mut tx)
            .await?;
            check_reference(child, size)?;
        }
        let digest = new.manifest.digest.to_string();
        let inserted = query(
            "INSERT INTO manifests
                 (repository_id, digest, media_type, content, subject, artifact_type, annotations, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (repository_id, digest) DO NOTHING",
        )
        .bind(repo)
        .bind(&digest)
        .bind(&new.manifest.media_type)
        .bind(new.manifest.content.as_ref())
        .bind(new.subject.as_ref().map(ToString::to_string))
        .bind(new.artifact_type.as_deref())
        .bind(new.annotations.as_deref())
        .bind(now_unix())
        .execute(&mut tx)
        .await?;
        if inserted > 0 {
            let children = new
                .blobs
                .iter()
                .map(|d| (&d.digest, false))
                .chain(new.children.iter().map(|d| (&d.digest, true)));
            for (child, is_manifest) in children {
                query(
                    "INSERT INTO manifest_references (repository_id, manifest_digest, child_digest, is_manifest)
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(repo)
                .bind(&digest)
                .bind(child.to_string())
                .bind(is_manifest)
                .execute(&mut tx)
                .await?;
            }
        }
        let now = now_unix();
        if let Some(tag) = tag {
            // The manifest the tag leaves may be left untagged.
            let before: Option<String> = query_scalar(
                "SELECT manifest_digest FROM tags WHERE repository_id = $1 AND name = $2",
            )
            .bind(repo)
            .bind(tag.as_str())
            .fetch_optional(&mut tx)
            .await?;
            if let Some(before) = before.filter(|before| *before != digest) {
                gc_sql::queue(&mut tx, Kind::Manifest, repo, &before, now, 0).await?;
            }
            query(
                "INSERT INTO tags (repository_id, name, manifest_digest, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (repository_id, name)
                 DO UPDATE SET manifest_digest = excluded.manifest_digest, updated_at = excluded.updated_at",
            )
            .bind(repo)
            .bind(tag.as_str())
            .bind(&digest)
            .bind(now)
            .execute(&mut tx)
            .await?;
        } else {
            // Pushed by digest: untagged until a tag or an index names it.
            gc_sql::queue(&mut tx, Kind::Manifest, repo, &digest, now, 0).await?;
        }
        let change = Change::ManifestPushed {
            digest: &new.manifest.digest,
            media_type: &new.manifest.media_type,
            size: new.manifest.content.len() as u64,
            tag,
        };
        let wrote = self.emit(&mut tx, name, change, by).await?;
        // Other nodes drop what they cached of the repository (a tag moved).
        changed(tx, name, true).await?;
        self.events.committed(wrote);
        Ok(())
    }
}
