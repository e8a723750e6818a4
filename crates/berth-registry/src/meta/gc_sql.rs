//! The collector's queries (`gc/collector.rs`): the review queue, the check
//! and removal of each reviewed row, the facts retention policies read, pull
//! times, and usage with namespace quotas. One SQL text per query for both
//! engines, through `meta/db.rs`.
//!
//! How nothing referenced is ever lost:
//! - every write that can take away something's last reference queues it
//!   (`gc_reviews`, the schema's comment has the kinds) in its own
//!   transaction, so a crash cannot lose a candidate;
//! - a review runs in one write transaction holding the locks the writers
//!   that could add a reference hold (the repository for links and
//!   manifests; the blob's digest for blob records and bytes), checks again
//!   that nothing refers to the row, removes it and queues what it referred to;
//! - bytes go last, in their own review, while the digest is locked and no
//!   blob record names it; an upload records its blob only while the same
//!   lock is held and its bytes are checked present (`meta/sql.rs`
//!   `finish_upload`), so a blob record never names bytes that are gone.

use berth_core::digest::Digest;
use berth_core::name::RepositoryName;

use super::MetaError;
use super::db::{Db, Engine, Executor, Lock, Tx, query, query_as, query_scalar};

/// What a review row is about (`gc_reviews.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A repository's link to a blob.
    Link,
    /// A manifest of a repository.
    Manifest,
    /// A blob record.
    Blob,
    /// A blob's bytes whose record is gone.
    Bytes,
}

impl Kind {
    /// The name stored in `gc_reviews.kind` and shown in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Link => "link",
            Self::Manifest => "manifest",
            Self::Blob => "blob",
            Self::Bytes => "bytes",
        }
    }
}

/// How long a row waits in the queue before it is reviewed, and what the
/// review keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delays {
    /// Seconds a blob link or blob record stays unreferenced before it goes.
    pub blobs: i64,
    /// Seconds a manifest stays untagged and unreferenced before it goes;
    /// `None` keeps untagged manifests.
    pub untagged: Option<i64>,
    /// Whether a referrer whose subject is gone stays (otherwise it goes
    /// with its subject, after the untagged delay).
    pub keep_referrers: bool,
}

impl Delays {
    /// The latest `queued_at` of a row of `kind` due at `now`.
    fn due_bound(&self, kind: Kind, now: i64) -> i64 {
        let (blobs, manifests) = self.due_bounds(now);
        match kind {
            Kind::Link | Kind::Blob => blobs,
            Kind::Manifest => manifests,
            Kind::Bytes => i64::MAX,
        }
    }

    /// The latest `queued_at` due for links and blobs, and for manifests.
    fn due_bounds(&self, now: i64) -> (i64, i64) {
        let untagged = self
            .untagged
            .map_or(i64::MIN, |delay| now.saturating_sub(delay));
        (now.saturating_sub(self.blobs), untagged)
    }
}

/// One row of the review queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// What it is about.
    pub kind: Kind,
    /// Its repository (0 for blobs and bytes).
    pub repository_id: i64,
    /// The digest of the blob or manifest.
    pub digest: String,
    /// Since when it may be unreferenced (unix seconds).
    pub queued_at: i64,
    /// The claim it was taken under (`gc_reviews.claimed_by`): a token of
    /// one claim, so that the batch reviews find its rows and no other.
    pub claim: i64,
}

/// What a review removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// What it was.
    pub kind: Kind,
    /// Its repository's name, for links and manifests.
    pub repository: Option<String>,
    /// The digest.
    pub digest: String,
    /// Bytes: the blob's size (links, blob records, bytes) or the
    /// manifest's length.
    pub bytes: u64,
}

/// How a review ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The row was gone, or queued again since it was claimed: nothing done.
    Skipped,
    /// Something still refers to it: the row is dropped, the object stays.
    Kept,
    /// Removed (for [`Kind::Bytes`]: the caller removes the bytes before it
    /// commits, while the digest is locked).
    Removed(Removed),
}

/// A tag as retention policies see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFacts {
    /// The tag.
    pub name: String,
    /// The manifest it points at.
    pub digest: String,
    /// When it was last pushed (moved to its manifest), unix seconds.
    pub pushed_at: i64,
    /// When its manifest was last pulled, unix seconds; `None`: never seen.
    pub pulled_at: Option<i64>,
}

/// Bytes held by a repository or a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// The repository or namespace.
    pub name: String,
    /// Bytes of the distinct blobs it links.
    pub bytes: u64,
    /// How many distinct blobs.
    pub blobs: u64,
}

impl Usage {
    /// (name, bytes, blobs) as the usage queries select them.
    fn from_row((name, bytes, blobs): (String, i64, i64)) -> Self {
        Self {
            name,
            bytes: to_u64(bytes),
            blobs: to_u64(blobs),
        }
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Queues `digest` (of `kind`, in repository `repository_id`, 0 for blobs)
/// as unreferenced since `now`; a row already queued starts waiting again
/// and loses its claim (a review in progress leaves it for the next).
pub(super) async fn queue(
    tx: &mut Tx,
    kind: Kind,
    repository_id: i64,
    digest: &str,
    now: i64,
    size: u64,
) -> Result<(), sqlx::Error> {
    query(
        "INSERT INTO gc_reviews (kind, repository_id, digest, queued_at, size)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (kind, repository_id, digest)
         DO UPDATE SET queued_at = excluded.queued_at, claimed_until = 0, claimed_by = 0,
                       size = excluded.size",
    )
    .bind(kind.as_str())
    .bind(repository_id)
    .bind(digest)
    .bind(now)
    .bind(to_i64(size))
    .execute(tx)
    .await
    .map(|_| ())
}

/// Queues `rows` of `kind` (repository id, digest, since when, size) in one
/// statement, in key order (two writers queueing the same rows never wait on
/// each other in a circle).
async fn queue_many(
    tx: &mut Tx,
    kind: Kind,
    rows: &[(i64, &str, i64, u64)],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut rows = rows.to_vec();
    rows.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    rows.dedup_by(|a, b| (a.0, a.1) == (b.0, b.1));
    let values = (0..rows.len())
        .map(|i| {
            let n = i * 4;
            format!("($1, ${}, ${}, ${}, ${})", n + 2, n + 3, n + 4, n + 5)
        })
        .collect::<Vec<_>>()
        .join(", ");
    // Safe: the dynamic part is only numbered placeholders.
    let mut q = query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO gc_reviews (kind, repository_id, digest, queued_at, size) VALUES {values}
         ON CONFLICT (kind, repository_id, digest)
         DO UPDATE SET queued_at = excluded.queued_at, claimed_until = 0, claimed_by = 0,
                       size = excluded.size"
    )))
    .bind(kind.as_str());
    for (repository_id, digest, queued_at, size) in rows {
        q = q
            .bind(repository_id)
            .bind(digest.to_owned())
            .bind(queued_at)
            .bind(to_i64(size));
    }
    q.execute(tx).await.map(|_| ())
}

/// A token for one claim: random, never 0 (the value of an unclaimed row).
fn claim_token() -> i64 {
    let (high, _) = uuid::Uuid::new_v4().as_u64_pair();
    i64::from_ne_bytes(high.to_ne_bytes()) | 1
}

/// Queues what manifest `digest` of repository `repository_id` refers to
/// (its blob links, its index children) and its referrers: about to lose it.
pub(super) async fn queue_references(
    tx: &mut Tx,
    repository_id: i64,
    digest: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    query(
        "INSERT INTO gc_reviews (kind, repository_id, digest, queued_at)
         SELECT CASE WHEN is_manifest THEN 'manifest' ELSE 'link' END, repository_id, child_digest, $3
           FROM manifest_references WHERE repository_id = $1 AND manifest_digest = $2
          ORDER BY 1, 3
         ON CONFLICT (kind, repository_id, digest)
         DO UPDATE SET queued_at = excluded.queued_at, claimed_until = 0, claimed_by = 0",
    )
    .bind(repository_id)
    .bind(digest)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    query(
        "INSERT INTO gc_reviews (kind, repository_id, digest, queued_at)
         SELECT 'manifest', repository_id, digest, $3
           FROM manifests WHERE repository_id = $1 AND subject = $2
          ORDER BY digest
         ON CONFLICT (kind, repository_id, digest)
         DO UPDATE SET queued_at = excluded.queued_at, claimed_until = 0, claimed_by = 0",
    )
    .bind(repository_id)
    .bind(digest)
    .bind(now)
    .execute(tx)
    .await
    .map(|_| ())
}

/// Queues every blob repository `repository_id` links (its deletion takes
/// the links away) and drops the rows of its links and manifests.
pub(super) async fn queue_repository_blobs(
    tx: &mut Tx,
    repository_id: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    query(
        "INSERT INTO gc_reviews (kind, repository_id, digest, queued_at)
         SELECT 'blob', 0, digest, $2 FROM repository_blobs WHERE repository_id = $1
          ORDER BY digest
         ON CONFLICT (kind, repository_id, digest)
         DO UPDATE SET queued_at = excluded.queued_at, claimed_until = 0, claimed_by = 0",
    )
    .bind(repository_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    query("DELETE FROM gc_reviews WHERE repository_id = $1")
        .bind(repository_id)
        .execute(tx)
        .await
        .map(|_| ())
}

/// The collector's view of the metadata database.
#[derive(Debug, Clone)]
pub struct GcSql {
    db: Db,
}

impl GcSql {
    /// On an open database.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Claims up to `limit` rows due at `now` that no other collector holds,
    /// until `claim_until`, in a transaction of its own (see
    /// [`GcSql::claim_in`]).
    pub async fn claim(
        &self,
        now: i64,
        delays: &Delays,
        claim_until: i64,
        limit: u32,
    ) -> Result<Vec<Review>, MetaError> {
        let mut tx = self.db.begin_write(&[]).await?;
        let claimed = Self::claim_in(&mut tx, now, delays, claim_until, limit).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// Claims in `tx` up to `limit` rows due at `now` that no other
    /// collector holds (or whose claim lapsed), until `claim_until`, under a
    /// new token; oldest first and of one kind: manifests first, then links,
    /// blob records and bytes, the order in which a removal queues the next
    /// (so one collection carries an image through to its bytes). A dry run
    /// claims in its own transaction, rolled back with it.
    pub async fn claim_in(
        tx: &mut Tx,
        now: i64,
        delays: &Delays,
        claim_until: i64,
        limit: u32,
    ) -> Result<Vec<Review>, MetaError> {
        let (blobs_due, manifests_due) = delays.due_bounds(now);
        let token = claim_token();
        // One range of the index (kind, queued_at) per kind.
        let sql = format!(
            "UPDATE gc_reviews SET claimed_until = $1, claimed_by = $6
              WHERE (kind, repository_id, digest) IN (
                    SELECT kind, repository_id, digest FROM gc_reviews
                     WHERE kind = $2 AND queued_at <= $3 AND claimed_until < $4
                     ORDER BY queued_at LIMIT $5 {})
             RETURNING repository_id, digest, queued_at",
            tx.engine().skip_locked()
        );
        for (kind, due) in [
            (Kind::Manifest, manifests_due),
            (Kind::Link, blobs_due),
            (Kind::Blob, blobs_due),
            (Kind::Bytes, i64::MAX),
        ] {
            // Safe: the dynamic part is a fixed clause of the engine.
            let rows: Vec<(i64, String, i64)> = query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(claim_until)
                .bind(kind.as_str())
                .bind(due)
                .bind(now)
                .bind(i64::from(limit))
                .bind(token)
                .fetch_all(&mut *tx)
                .await?;
            if rows.is_empty() {
                continue;
            }
            let mut claimed: Vec<Review> = rows
                .into_iter()
                .map(|(repository_id, digest, queued_at)| Review {
                    kind,
                    repository_id,
                    digest,
                    queued_at,
                    claim: token,
                })
                .collect();
            // RETURNING gives no order: a repository's rows together.
            claimed.sort_by(|a, b| (a.repository_id, &a.digest).cmp(&(b.repository_id, &b.digest)));
            return Ok(claimed);
        }
        Ok(Vec::new())
    }

    /// Reviews a claimed batch (`items`, one kind, one claim) in `tx` (from
    /// [`GcSql::begin_reviews`], or a dry run's): links, blob records and
    /// bytes each in a few statements for the whole batch, manifests one by
    /// one (`review_manifest_row`). Every row of the claim still claimed and
    /// due is dropped from the queue; what it referred to is queued.
    pub async fn review_batch(
        tx: &mut Tx,
        items: &[(Review, Option<RepositoryName>)],
        now: i64,
        delays: &Delays,
    ) -> Result<Vec<Decision>, MetaError> {
        let Some((first, _)) = items.first() else {
            return Ok(Vec::new());
        };
        let (kind, token) = (first.kind, first.claim);
        let due = delays.due_bound(kind, now);
        let mut decisions = Vec::with_capacity(items.len());
        match kind {
            Kind::Manifest => {
                for (item, repository) in items {
                    decisions.push(
                        review_manifest_row(tx, item, repository.as_ref(), now, delays).await?,
                    );
                }
                return Ok(decisions);
            }
            Kind::Link => {
                // Links no manifest of their repository names; with their
                // blob's size, for the report.
                let removed: Vec<(i64, String, Option<i64>)> = query_as(
                    "DELETE FROM repository_blobs
                      WHERE (repository_id, digest) IN (
                            SELECT q.repository_id, q.digest FROM gc_reviews q
                             WHERE q.claimed_by = $1 AND q.kind = 'link' AND q.queued_at <= $2
                               AND NOT EXISTS (SELECT 1 FROM manifest_references r
                                                WHERE r.repository_id = q.repository_id
                                                  AND r.child_digest = q.digest
                                                  AND NOT r.is_manifest))
                     RETURNING repository_id, digest,
                               (SELECT b.size FROM blobs b WHERE b.digest = repository_blobs.digest)",
                )
                .bind(token)
                .bind(due)
                .fetch_all(&mut *tx)
                .await?;
                // Their blobs may have lost their last link: unreferenced
                // here for the delay already, their reviews are due at once.
                let blob_due = delays.due_bound(Kind::Blob, now);
                let blobs: Vec<(i64, &str, i64, u64)> = removed
                    .iter()
                    .map(|(_, digest, _)| (0, digest.as_str(), blob_due, 0))
                    .collect();
                queue_many(tx, Kind::Blob, &blobs).await?;
                let name_of = |id: i64| {
                    items
                        .iter()
                        .find(|(item, _)| item.repository_id == id)
                        .and_then(|(_, name)| name.clone())
                };
                let mut changed: Vec<String> = Vec::new();
                for (repository_id, digest, size) in removed {
                    let repository = name_of(repository_id).map(|n| n.to_string());
                    if let Some(name) = &repository
                        && !changed.contains(name)
                    {
                        changed.push(name.clone());
                    }
                    decisions.push(Decision::Removed(Removed {
                        kind,
                        repository,
                        digest,
                        bytes: size.map_or(0, to_u64),
                    }));
                }
                for name in changed {
                    tx.notify_changed(&name).await?;
                }
            }
            Kind::Blob => {
                // Blob records no repository links.
                let removed: Vec<(String, i64)> = query_as(
                    "DELETE FROM blobs
                      WHERE digest IN (
                            SELECT q.digest FROM gc_reviews q
                             WHERE q.claimed_by = $1 AND q.kind = 'blob' AND q.queued_at <= $2
                               AND NOT EXISTS (SELECT 1 FROM repository_blobs rb
                                                WHERE rb.digest = q.digest))
                     RETURNING digest, size",
                )
                .bind(token)
                .bind(due)
                .fetch_all(&mut *tx)
                .await?;
                let bytes: Vec<(i64, &str, i64, u64)> = removed
                    .iter()
                    .map(|(digest, size)| (0, digest.as_str(), now, to_u64(*size)))
                    .collect();
                queue_many(tx, Kind::Bytes, &bytes).await?;
                for (digest, size) in removed {
                    decisions.push(Decision::Removed(Removed {
                        kind,
                        repository: None,
                        digest,
                        bytes: to_u64(size),
                    }));
                }
            }
            Kind::Bytes => {
                // Bytes no record names (again): the caller deletes them
                // before this transaction commits.
                let removed: Vec<(String, i64)> = query_as(
                    "DELETE FROM gc_reviews
                      WHERE claimed_by = $1 AND kind = 'bytes'
                        AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = gc_reviews.digest)
                     RETURNING digest, size",
                )
                .bind(token)
                .fetch_all(&mut *tx)
                .await?;
                for (digest, size) in removed {
                    decisions.push(Decision::Removed(Removed {
                        kind,
                        repository: None,
                        digest,
                        bytes: to_u64(size),
                    }));
                }
            }
        }
        // The rest of the claim, reviewed: kept.
        let dropped =
            query("DELETE FROM gc_reviews WHERE claimed_by = $1 AND kind = $2 AND queued_at <= $3")
                .bind(token)
                .bind(kind.as_str())
                .bind(due)
                .execute(&mut *tx)
                .await?;
        let removed_rows = if kind == Kind::Bytes {
            0
        } else {
            decisions.len() as u64
        };
        for _ in removed_rows..dropped {
            decisions.push(Decision::Kept);
        }
        Ok(decisions)
    }

    /// The repository a row of a link or manifest belongs to (`None`: it
    /// was deleted since).
    pub async fn repository_name<'c>(
        on: impl Executor<'c>,
        id: i64,
    ) -> Result<Option<RepositoryName>, MetaError> {
        let name: Option<String> = query_scalar("SELECT name FROM repositories WHERE id = $1")
            .bind(id)
            .fetch_optional(on)
            .await?;
        name.map(|n| RepositoryName::parse(&n).map_err(|e| MetaError::Corrupt(e.to_string())))
            .transpose()
    }

    /// Begins the transaction reviews of `items` run in, holding what the
    /// writers that could add a reference to them hold: the repository (links
    /// and manifests; with its name, `None` when it is gone) and the digest
    /// (links, blob records, bytes); taken in one order, like every writer's.
    pub async fn begin_reviews(
        &self,
        items: &[(&Review, Option<RepositoryName>)],
    ) -> Result<Tx, MetaError> {
        let mut locks = Vec::new();
        for (item, repository) in items {
            if let Some(name) = repository {
                locks.push(Lock::Repository {
                    name: name.as_str(),
                    namespace: name.namespace(),
                });
            }
            if item.kind != Kind::Manifest {
                locks.push(Lock::Blob(&item.digest));
            }
        }
        Ok(self.db.begin_write(&locks).await?)
    }

    /// Begins a transaction holding every write back (SQLite) or none
    /// (PostgreSQL, whose waits it gives up after a few seconds rather than
    /// hold a push): a dry run, which runs the real reviews and rolls back.
    pub async fn begin_dry_run(&self) -> Result<Tx, MetaError> {
        let mut tx = self.db.begin_write(&[]).await?;
        if tx.engine() == Engine::Postgres {
            query("SET LOCAL lock_timeout = '5s'")
                .execute(&mut tx)
                .await?;
        }
        Ok(tx)
    }

    /// Begins a transaction holding repository `name` (a retention removal).
    pub async fn begin_repository(&self, name: &RepositoryName) -> Result<Tx, MetaError> {
        Ok(self
            .db
            .begin_write(&[Lock::Repository {
                name: name.as_str(),
                namespace: name.namespace(),
            }])
            .await?)
    }

    /// Begins a transaction holding `digest`: the removal of bytes no record
    /// names (the reconciliation of what a crash left).
    pub async fn begin_blob(&self, digest: &Digest) -> Result<Tx, MetaError> {
        Ok(self
            .db
            .begin_write(&[Lock::Blob(&digest.to_string())])
            .await?)
    }

    /// Whether a blob record names `digest`, read in `tx`.
    pub async fn blob_recorded_in(tx: &mut Tx, digest: &Digest) -> Result<bool, MetaError> {
        let found: Option<i64> = query_scalar("SELECT size FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_optional(tx)
            .await?;
        Ok(found.is_some())
    }

    /// Rows in the queue, due or not.
    pub async fn queue_length(&self) -> Result<u64, MetaError> {
        let n: i64 = query_scalar("SELECT count(*) FROM gc_reviews")
            .fetch_one(&self.db)
            .await?;
        Ok(to_u64(n))
    }

    /// Repositories after `after` in byte order, at most `limit`: (id, name).
    pub async fn repositories(
        &self,
        after: &str,
        limit: u32,
    ) -> Result<Vec<(i64, String)>, MetaError> {
        Ok(
            query_as("SELECT id, name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2")
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.db)
                .await?,
        )
    }

    /// The tags of a repository with their push and pull times.
    pub async fn tag_facts(&self, repository_id: i64) -> Result<Vec<TagFacts>, MetaError> {
        let rows: Vec<(String, String, i64, Option<i64>)> = query_as(
            "SELECT t.name, t.manifest_digest, t.updated_at, m.pulled_at
               FROM tags t JOIN manifests m
                 ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest
              WHERE t.repository_id = $1 ORDER BY t.name",
        )
        .bind(repository_id)
        .fetch_all(&self.db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, digest, pushed_at, pulled_at)| TagFacts {
                name,
                digest,
                pushed_at,
                pulled_at,
            })
            .collect())
    }

    /// The bytes of an image: the manifest, the blobs it names, and for an
    /// index its children and their blobs (each distinct blob once).
    pub async fn image_bytes(&self, repository_id: i64, digest: &str) -> Result<u64, MetaError> {
        let bytes: i64 = query_scalar(
            "SELECT CAST(
                 COALESCE((SELECT sum(length(m.content)) FROM manifests m
                            WHERE m.repository_id = $1
                              AND (m.digest = $2 OR m.digest IN (
                                   SELECT child_digest FROM manifest_references
                                    WHERE repository_id = $1 AND manifest_digest = $2 AND is_manifest))), 0)
               + COALESCE((SELECT sum(b.size) FROM blobs b WHERE b.digest IN (
                     SELECT r.child_digest FROM manifest_references r
                      WHERE r.repository_id = $1 AND NOT r.is_manifest
                        AND (r.manifest_digest = $2 OR r.manifest_digest IN (
                             SELECT child_digest FROM manifest_references
                              WHERE repository_id = $1 AND manifest_digest = $2 AND is_manifest)))), 0)
             AS BIGINT)",
        )
        .bind(repository_id)
        .bind(digest)
        .fetch_one(&self.db)
        .await?;
        Ok(to_u64(bytes))
    }

    /// Removes tag `tag` of repository `repository_id` in `tx` if it still
    /// points at `digest` since `pushed_at` (a push meanwhile keeps it), and
    /// queues the manifest; whether it was removed.
    pub async fn remove_tag_in(
        tx: &mut Tx,
        repository_id: i64,
        tag: &TagFacts,
        now: i64,
    ) -> Result<bool, MetaError> {
        let done = query(
            "DELETE FROM tags
              WHERE repository_id = $1 AND name = $2 AND manifest_digest = $3 AND updated_at = $4",
        )
        .bind(repository_id)
        .bind(&tag.name)
        .bind(&tag.digest)
        .bind(tag.pushed_at)
        .execute(&mut *tx)
        .await?;
        if done == 0 {
            return Ok(false);
        }
        queue(tx, Kind::Manifest, repository_id, &tag.digest, now, 0).await?;
        Ok(true)
    }

    /// Records pull times: (repository, manifest digest, unix seconds); a
    /// later time already recorded stays.
    pub async fn record_pulls(&self, pulls: &[(String, String, i64)]) -> Result<(), MetaError> {
        if pulls.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin_write(&[]).await?;
        for (repository, digest, at) in pulls {
            query(
                "UPDATE manifests SET pulled_at = $3
                  WHERE repository_id = (SELECT id FROM repositories WHERE name = $1)
                    AND digest = $2 AND (pulled_at IS NULL OR pulled_at < $3)",
            )
            .bind(repository)
            .bind(digest)
            .bind(*at)
            .execute(&mut tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Bytes of the distinct blobs the repositories of `namespace` link.
    pub async fn namespace_usage(&self, namespace: &str) -> Result<u64, MetaError> {
        let bytes: i64 = query_scalar(
            "SELECT CAST(COALESCE(sum(b.size), 0) AS BIGINT) FROM blobs b
              WHERE b.digest IN (SELECT rb.digest FROM repository_blobs rb
                                   JOIN repositories r ON r.id = rb.repository_id
                                  WHERE r.namespace = $1)",
        )
        .bind(namespace)
        .fetch_one(&self.db)
        .await?;
        Ok(to_u64(bytes))
    }

    /// Whether a repository of `namespace` links `digest`.
    pub async fn namespace_links(
        &self,
        namespace: &str,
        digest: &Digest,
    ) -> Result<bool, MetaError> {
        let found: Option<i64> = query_scalar(
            "SELECT rb.repository_id FROM repository_blobs rb
               JOIN repositories r ON r.id = rb.repository_id
              WHERE r.namespace = $1 AND rb.digest = $2 LIMIT 1",
        )
        .bind(namespace)
        .bind(digest.to_string())
        .fetch_optional(&self.db)
        .await?;
        Ok(found.is_some())
    }

    /// Usage of every namespace holding blobs, in byte order.
    pub async fn usage_by_namespace(&self) -> Result<Vec<Usage>, MetaError> {
        let rows: Vec<(String, i64, i64)> = query_as(
            "SELECT ns, CAST(sum(size) AS BIGINT), count(*) FROM (
                 SELECT DISTINCT r.namespace AS ns, b.digest, b.size
                   FROM repositories r
                   JOIN repository_blobs rb ON rb.repository_id = r.id
                   JOIN blobs b ON b.digest = rb.digest) u
              GROUP BY ns ORDER BY ns",
        )
        .fetch_all(&self.db)
        .await?;
        Ok(rows.into_iter().map(Usage::from_row).collect())
    }

    /// Usage of every repository (of `namespace` when given), in byte order.
    pub async fn usage_by_repository(
        &self,
        namespace: Option<&str>,
    ) -> Result<Vec<Usage>, MetaError> {
        let rows: Vec<(String, i64, i64)> = query_as(
            "SELECT r.name, CAST(COALESCE(sum(b.size), 0) AS BIGINT), count(b.digest)
               FROM repositories r
               LEFT JOIN repository_blobs rb ON rb.repository_id = r.id
               LEFT JOIN blobs b ON b.digest = rb.digest
              WHERE $1 IS NULL OR r.namespace = $1
              GROUP BY r.name ORDER BY r.name",
        )
        .bind(namespace)
        .fetch_all(&self.db)
        .await?;
        Ok(rows.into_iter().map(Usage::from_row).collect())
    }

    /// Every blob record: (count, bytes).
    pub async fn stored(&self) -> Result<(u64, u64), MetaError> {
        let (count, bytes): (i64, i64) =
            query_as("SELECT count(*), CAST(COALESCE(sum(size), 0) AS BIGINT) FROM blobs")
                .fetch_one(&self.db)
                .await?;
        Ok((to_u64(count), to_u64(bytes)))
    }

    /// The quota of `namespace`, in bytes.
    pub async fn quota(&self, namespace: &str) -> Result<Option<u64>, MetaError> {
        let bytes: Option<i64> =
            query_scalar("SELECT bytes FROM namespace_quotas WHERE namespace = $1")
                .bind(namespace)
                .fetch_optional(&self.db)
                .await?;
        Ok(bytes.map(to_u64))
    }

    /// Every quota, by namespace in byte order.
    pub async fn quotas(&self) -> Result<Vec<(String, u64)>, MetaError> {
        let rows: Vec<(String, i64)> =
            query_as("SELECT namespace, bytes FROM namespace_quotas ORDER BY namespace")
                .fetch_all(&self.db)
                .await?;
        Ok(rows.into_iter().map(|(n, b)| (n, to_u64(b))).collect())
    }

    /// Sets the quota of `namespace`.
    pub async fn set_quota(&self, namespace: &str, bytes: u64) -> Result<(), MetaError> {
        query(
            "INSERT INTO namespace_quotas (namespace, bytes) VALUES ($1, $2)
             ON CONFLICT (namespace) DO UPDATE SET bytes = excluded.bytes",
        )
        .bind(namespace)
        .bind(to_i64(bytes))
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// Removes the quota of `namespace`; whether it had one.
    pub async fn remove_quota(&self, namespace: &str) -> Result<bool, MetaError> {
        let done = query("DELETE FROM namespace_quotas WHERE namespace = $1")
            .bind(namespace)
            .execute(&self.db)
            .await?;
        Ok(done > 0)
    }
}

/// Reviews one claimed manifest row: the row goes first, and only as
/// claimed and due (gone, queued again since the claim, or not due, it is
/// left for a later review), then the manifest by [`review_manifest`].
async fn review_manifest_row(
    tx: &mut Tx,
    item: &Review,
    repository: Option<&RepositoryName>,
    now: i64,
    delays: &Delays,
) -> Result<Decision, MetaError> {
    let taken = query(
        "DELETE FROM gc_reviews
          WHERE kind = $1 AND repository_id = $2 AND digest = $3
            AND queued_at <= $4 AND claimed_by = $5",
    )
    .bind(Kind::Manifest.as_str())
    .bind(item.repository_id)
    .bind(&item.digest)
    .bind(delays.due_bound(Kind::Manifest, now))
    .bind(item.claim)
    .execute(&mut *tx)
    .await?;
    if taken == 0 {
        return Ok(Decision::Skipped);
    }
    match repository {
        Some(name) => review_manifest(tx, item, name, now, delays).await,
        // The repository is gone, and its manifests with it.
        None => Ok(Decision::Kept),
    }
}

/// A manifest: kept while tagged, an index child, a referrer of a manifest
/// that is there (or of any, with `keep_referrers`), or the subject of a
/// tagged artifact or index child.
async fn review_manifest(
    tx: &mut Tx,
    item: &Review,
    name: &RepositoryName,
    now: i64,
    delays: &Delays,
) -> Result<Decision, MetaError> {
    let repo = item.repository_id;
    let digest = item.digest.as_str();
    let row: Option<(Option<String>, i64)> = query_as(
        "SELECT subject, CAST(length(content) AS BIGINT) FROM manifests
          WHERE repository_id = $1 AND digest = $2",
    )
    .bind(repo)
    .bind(digest)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((subject, length)) = row else {
        return Ok(Decision::Kept);
    };
    let kept: Option<i64> = query_scalar(
        "SELECT CAST(1 AS BIGINT) WHERE EXISTS (SELECT 1 FROM tags WHERE repository_id = $1 AND manifest_digest = $2)
            OR EXISTS (SELECT 1 FROM manifest_references
                        WHERE repository_id = $1 AND child_digest = $2 AND is_manifest)
            OR EXISTS (SELECT 1 FROM manifests a
                        WHERE a.repository_id = $1 AND a.subject = $2
                          AND (EXISTS (SELECT 1 FROM tags t
                                        WHERE t.repository_id = $1 AND t.manifest_digest = a.digest)
                               OR EXISTS (SELECT 1 FROM manifest_references c
                                           WHERE c.repository_id = $1 AND c.child_digest = a.digest
                                             AND c.is_manifest)))",
    )
    .bind(repo)
    .bind(digest)
    .fetch_optional(&mut *tx)
    .await?;
    if kept.is_some() {
        return Ok(Decision::Kept);
    }
    if let Some(subject) = subject {
        let subject_there: Option<i64> = query_scalar(
            "SELECT repository_id FROM manifests WHERE repository_id = $1 AND digest = $2",
        )
        .bind(repo)
        .bind(&subject)
        .fetch_optional(&mut *tx)
        .await?;
        if subject_there.is_some() {
            // A referrer of a manifest that is there stays. That manifest
            // may have been kept only by this one (the untagged subject of
            // an artifact that just lost its tag): its own review decides,
            // and takes this one with it if it goes.
            queue(tx, Kind::Manifest, repo, &subject, now, 0).await?;
            return Ok(Decision::Kept);
        }
        if delays.keep_referrers {
            return Ok(Decision::Kept);
        }
    }
    queue_references(tx, repo, digest, now).await?;
    for statement in [
        "DELETE FROM manifest_references WHERE repository_id = $1 AND manifest_digest = $2",
        "DELETE FROM manifests WHERE repository_id = $1 AND digest = $2",
    ] {
        query(statement)
            .bind(repo)
            .bind(digest)
            .execute(&mut *tx)
            .await?;
    }
    tx.notify_changed(name.as_str()).await?;
    Ok(Decision::Removed(Removed {
        kind: Kind::Manifest,
        repository: Some(name.to_string()),
        digest: digest.to_owned(),
        bytes: to_u64(length),
    }))
}

#[cfg(test)]
mod tests {
    use berth_core::endpoint::UploadId;

    use super::*;
    use crate::meta::scratch::ScratchDatabase;
    use crate::meta::{MetaStore, SqlMeta, UploadLimits, UploadSession};

    /// A store on the scratch PostgreSQL database when there is one, else
    /// on an SQLite file (the database handle is kept for the test's life).
    async fn store() -> (Option<ScratchDatabase>, tempfile::TempDir, SqlMeta) {
        let dir = tempfile::tempdir().unwrap();
        let database = ScratchDatabase::from_env().await.unwrap();
        let meta = match &database {
            Some(d) => SqlMeta::open_postgres(d.url().expose()).await.unwrap(),
            None => SqlMeta::open(&dir.path().join("berth.db")).await.unwrap(),
        };
        (database, dir, meta)
    }

    fn name(s: &str) -> RepositoryName {
        RepositoryName::parse(s).unwrap()
    }

    const DELAYS: Delays = Delays {
        blobs: 0,
        untagged: Some(0),
        keep_referrers: false,
    };

    async fn queued(meta: &SqlMeta) -> Vec<(String, i64, String, i64)> {
        query_as("SELECT kind, repository_id, digest, claimed_until FROM gc_reviews ORDER BY kind, digest")
            .fetch_all(meta.db())
            .await
            .unwrap()
    }

    /// Two collectors claiming at once take different rows, and a row
    /// claimed is not claimed again until its claim lapses.
    #[tokio::test]
    async fn claims_do_not_overlap_and_lapse() {
        let (_database, _dir, meta) = store().await;
        let repo = name("a/b");
        for i in 0..10u8 {
            meta.link_blob(&repo, &Digest::sha256_of(&[i]), 1)
                .await
                .unwrap();
        }
        let sql = GcSql::new(meta.db().clone());
        let now = crate::clock::now_unix();
        let (first, second) = tokio::join!(
            sql.claim(now, &DELAYS, now + 300, 6),
            sql.claim(now, &DELAYS, now + 300, 6)
        );
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(first.len() + second.len(), 10, "{first:?} {second:?}");
        assert!(first.iter().all(|a| !second.contains(a)));
        assert!(
            sql.claim(now, &DELAYS, now + 300, 6)
                .await
                .unwrap()
                .is_empty()
        );
        // Five minutes on, a crashed collector's claims lapse.
        assert_eq!(
            sql.claim(now + 301, &DELAYS, now + 601, 20)
                .await
                .unwrap()
                .len(),
            10
        );
    }

    /// A row queued again while its review was pending (another unlink of
    /// the blob, say) is left for the next review, not dropped with the
    /// decision made on the older state.
    #[tokio::test]
    async fn a_row_queued_again_after_its_claim_outlives_the_review() {
        let (_database, _dir, meta) = store().await;
        let repo = name("a/b");
        let digest = Digest::sha256_of(b"x");
        meta.link_blob(&repo, &digest, 1).await.unwrap();
        let sql = GcSql::new(meta.db().clone());
        let now = crate::clock::now_unix();
        let claimed = sql.claim(now, &DELAYS, now + 300, 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        // Queued again: linked once more.
        meta.link_blob(&repo, &digest, 1).await.unwrap();
        let item = &claimed[0];
        let mut tx = sql
            .begin_reviews(&[(item, Some(repo.clone()))])
            .await
            .unwrap();
        let decisions =
            GcSql::review_batch(&mut tx, &[(item.clone(), Some(repo.clone()))], now, &DELAYS)
                .await
                .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            decisions,
            [],
            "nothing reviewed: the row is no longer this claim's"
        );
        assert_eq!(meta.linked_blob(&repo, &digest).await.unwrap(), Some(1));
        assert_eq!(
            queued(&meta).await.len(),
            1,
            "the row waits for the next review"
        );
    }

    /// An upload whose bytes the collector removed after they were stored
    /// is refused at its close, and nothing is recorded: no blob record ever
    /// names bytes that are gone.
    #[tokio::test]
    async fn an_upload_whose_bytes_are_gone_records_nothing() {
        let (_database, _dir, meta) = store().await;
        let repo = name("a/b");
        let id = UploadId::parse("0123456789abcdef0123456789abcdef").unwrap();
        let session = UploadSession {
            id: id.clone(),
            repository: repo.clone(),
            subject: None,
            offset: 0,
            hash_state: Vec::new(),
            staging: id.as_str().to_owned(),
            created_at: 0,
            updated_at: 0,
        };
        meta.create_upload(&session, UploadLimits::default())
            .await
            .unwrap();
        let digest = Digest::sha256_of(b"gone");
        let result = meta
            .finish_upload(&id, &repo, &digest, 4, Box::pin(async { Ok(false) }))
            .await;
        assert!(
            matches!(&result, Err(MetaError::BytesGone(d)) if *d == digest),
            "{result:?}"
        );
        assert_eq!(meta.blob_size(&digest).await.unwrap(), None);
        assert!(meta.get_upload(&repo, &id).await.unwrap().is_some());
        let said = MetaError::BytesGone(digest.clone()).to_string();
        assert_eq!(
            said,
            format!(
                "the bytes of {digest} were reclaimed by the garbage collector while the upload finished; upload the blob again"
            )
        );
    }

    /// Unlinked everywhere, a blob goes in three reviews: its link (no
    /// manifest names it), its record (no repository links it), its bytes;
    /// a blob linked elsewhere keeps its record.
    #[tokio::test]
    async fn an_unreferenced_blob_goes_link_then_record_then_bytes() {
        let (_database, _dir, meta) = store().await;
        let (a, b) = (name("a/one"), name("a/two"));
        let shared = Digest::sha256_of(b"shared");
        let alone = Digest::sha256_of(b"alone");
        meta.link_blob(&a, &shared, 6).await.unwrap();
        meta.link_blob(&b, &shared, 6).await.unwrap();
        meta.link_blob(&a, &alone, 5).await.unwrap();
        let sql = GcSql::new(meta.db().clone());
        let mut removed = Vec::new();
        loop {
            let now = crate::clock::now_unix();
            let claimed = sql.claim(now, &DELAYS, now + 300, 100).await.unwrap();
            if claimed.is_empty() {
                break;
            }
            let mut items = Vec::new();
            for item in claimed {
                let repository = GcSql::repository_name(meta.db(), item.repository_id)
                    .await
                    .unwrap();
                items.push((item, repository));
            }
            let locked: Vec<_> = items.iter().map(|(i, n)| (i, n.clone())).collect();
            let mut tx = sql.begin_reviews(&locked).await.unwrap();
            for decision in GcSql::review_batch(&mut tx, &items, now, &DELAYS)
                .await
                .unwrap()
            {
                if let Decision::Removed(r) = decision {
                    removed.push((r.kind, r.digest, r.bytes));
                }
            }
            tx.commit().await.unwrap();
        }
        removed.sort();
        let mut expected = vec![
            (Kind::Link, shared.to_string(), 6),
            (Kind::Link, shared.to_string(), 6),
            (Kind::Link, alone.to_string(), 5),
            (Kind::Blob, shared.to_string(), 6),
            (Kind::Blob, alone.to_string(), 5),
            (Kind::Bytes, shared.to_string(), 6),
            (Kind::Bytes, alone.to_string(), 5),
        ];
        expected.sort();
        assert_eq!(removed, expected);
        assert!(queued(&meta).await.is_empty());
    }
}
