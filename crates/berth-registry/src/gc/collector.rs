//! The garbage collector: runs inside the server, on a schedule
//! ([`run_schedule`], `GcConfig::interval`) and on demand ([`collect`]:
//! `POST /api/v1/gc`, `berth admin gc run`), while pushes, pulls and deletes
//! go on; on several nodes at once.
//!
//! One collection:
//! 1. writes the pull times noted in memory (`gc/pulls.rs`);
//! 2. applies the retention policies (`gc/retention.rs`): each expired tag
//!    is removed in a transaction holding its repository, only if it still
//!    points where it pointed when the policy read it;
//! 3. reviews the queue (`meta/gc_sql.rs`): rows due are claimed a batch at
//!    a time (`SKIP LOCKED` on PostgreSQL, so nodes share the work), each
//!    batch reviewed in one transaction holding the writers' locks, which
//!    checks again that nothing refers to each row, removes it, and queues
//!    what it referred to, until no row is due. Bytes are deleted last, while their digest is locked and no record
//!    names them, and their transaction commits only after the deletion
//!    succeeded: a crash anywhere leaves a row the next collection finishes.
//!
//! A dry run does the same in one transaction that it rolls back, deleting
//! no bytes: what it reports is what a collection at that moment removes.
//! On SQLite the dry run holds writes back while it runs; on PostgreSQL it
//! waits at most a few seconds for a row a push holds, then stops with an
//! error rather than hold the push.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use berth_core::digest::Digest;
use berth_core::name::RepositoryName;
use berth_core::tag::Tag;
use serde::Serialize;

use super::retention::policy_for;
use crate::Registry;
use crate::clock::now_unix;
use crate::config::GcConfig;
use crate::error::RegistryError;
use crate::events::{Actor, Change};
use crate::meta::MetaError;
use crate::meta::events_sql;
use crate::meta::gc_sql::{Decision, Delays, GcSql, Kind, Removed, Review, TagFacts};
use crate::metrics::GcCounts;

/// Rows claimed, and reviewed in one transaction, at a time.
const BATCH: u32 = 64;
/// While requests are being answered, the collector rests this many times
/// as long as each batch took: it works at most a quarter of the time, and
/// pushes (which on SQLite wait for its transactions) and pulls (which share
/// the cores) keep most of the server. Idle, it goes at full speed.
const REST_FACTOR: u32 = 3;
/// How long a claim holds other collectors off a row: a batch is reviewed
/// within a second or so of its claim, and a collector that dies (kill -9,
/// a node lost) leaves its rows to the others, or to itself restarted, after
/// this. A batch slower than this is at worst reviewed by another collector
/// too: each review finds the rows by its own claim's token, so only one of
/// them acts.
const CLAIM_SECS: i64 = 10;
/// Entries a report lists per section (the counts and bytes cover all).
pub const LISTED: usize = 1000;
/// A collection stops after this long (or this many failed reviews); the
/// next one continues where it stopped.
const MAX_RUN: Duration = Duration::from_secs(15 * 60);
const MAX_FAILURES: usize = 100;

/// The delays and rules reviews apply, from the configuration.
pub fn delays(config: &GcConfig) -> Delays {
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    Delays {
        blobs: secs(config.delay),
        untagged: config.untagged_delay.map(secs),
        keep_referrers: config.keep_referrers,
    }
}

/// The collector's state on this node.
#[derive(Debug, Default)]
pub struct GcState {
    /// Pulls noted since the last write.
    pub pulls: super::pulls::PullTimes,
    /// Held by the collection running on this node (one at a time).
    running: tokio::sync::Mutex<()>,
}

/// One removed (or, in a dry run, removable) object.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Entry {
    /// Its repository (tags, manifests, links).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The tag (retention).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The digest of the manifest or blob.
    pub digest: String,
    /// Bytes: an image's (a tag), a manifest's, a blob's.
    pub bytes: u64,
}

/// The objects of one kind a collection removed.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Section {
    /// How many.
    pub count: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The first [`LISTED`] of them.
    pub items: Vec<Entry>,
}

impl Section {
    fn add(&mut self, entry: Entry) {
        self.count += 1;
        self.bytes = self.bytes.saturating_add(entry.bytes);
        if self.items.len() < LISTED {
            self.items.push(entry);
        }
    }
}

/// What a collection did (or, dry, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// Tags removed by retention policies (bytes: the image's).
    pub tags: Section,
    /// Manifests collected (untagged and unreferenced).
    pub manifests: Section,
    /// Repository links to blobs removed (no manifest of the repository names the blob).
    pub links: Section,
    /// Blob records removed (no repository links them).
    pub blobs: Section,
    /// Blobs whose bytes were deleted, and how many bytes: the space reclaimed.
    pub reclaimed: Section,
    /// Reviews that found a reference and kept their object.
    pub kept: u64,
    /// Reviews that failed (each retried by a later collection).
    pub errors: Vec<String>,
    /// Whether it stopped before the queue was done (time or failures).
    pub incomplete: bool,
    /// Rows left in the review queue, due later.
    pub queue_length: u64,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
}

impl Report {
    fn record(&mut self, decision: Decision) {
        match decision {
            Decision::Skipped => {}
            Decision::Kept => self.kept += 1,
            Decision::Removed(Removed {
                kind,
                repository,
                digest,
                bytes,
            }) => {
                let entry = Entry {
                    repository,
                    tag: None,
                    digest,
                    bytes,
                };
                match kind {
                    Kind::Link => self.links.add(entry),
                    Kind::Manifest => self.manifests.add(entry),
                    Kind::Blob => self.blobs.add(entry),
                    Kind::Bytes => self.reclaimed.add(entry),
                }
            }
        }
    }

    fn counts(&self) -> GcCounts {
        GcCounts {
            tags: self.tags.count,
            manifests: self.manifests.count,
            links: self.links.count,
            blobs: self.blobs.count,
            bytes_objects: self.reclaimed.count,
            bytes: self.reclaimed.bytes,
        }
    }
}

/// A tag a retention policy removes, with what removing it needs.
struct Expired {
    repository_id: i64,
    repository: RepositoryName,
    tag: TagFacts,
    bytes: u64,
}

/// Runs one collection now (dry: changes nothing) and reports it; waits for
/// a collection already running on this node to end first.
pub async fn collect(r: &Registry, dry_run: bool) -> Result<Report, RegistryError> {
    let _running = r.gc.running.lock().await;
    let started = Instant::now();
    let sql = GcSql::new(r.db.clone());
    let delays = delays(&r.config.gc);
    let now = now_unix();
    let mut report = Report {
        dry_run,
        ..Report::default()
    };
    let outcome = async {
        r.gc.pulls.flush(&sql, now).await?;
        let expired = retention_plan(r, &sql, now).await?;
        if dry_run {
            dry_run_in_one_transaction(&sql, expired, now, &delays, &mut report).await
        } else {
            apply_retention(r, &sql, expired, now, &mut report).await?;
            review_queue(r, &sql, &delays, started, &mut report).await
        }
    }
    .await;
    report.queue_length = sql.queue_length().await.unwrap_or(0);
    report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if !dry_run {
        r.metrics.record_gc(
            outcome.is_ok() && !report.incomplete,
            report.counts(),
            started.elapsed(),
            report.queue_length,
        );
    }
    tracing::info!(
        target: "berth::audit",
        dry_run,
        tags = report.tags.count,
        manifests = report.manifests.count,
        links = report.links.count,
        blobs = report.blobs.count,
        bytes_reclaimed = report.reclaimed.bytes,
        kept = report.kept,
        errors = report.errors.len(),
        incomplete = report.incomplete,
        queue_length = report.queue_length,
        duration_ms = report.duration_ms,
        "gc: collection {}",
        if outcome.is_ok() { "done" } else { "failed" }
    );
    outcome?;
    Ok(report)
}

/// The tags the retention policies remove now, repository by repository.
async fn retention_plan(
    r: &Registry,
    sql: &GcSql,
    now: i64,
) -> Result<Vec<Expired>, RegistryError> {
    let policies = &r.config.gc.retention;
    let mut expired = Vec::new();
    if policies.is_empty() {
        return Ok(expired);
    }
    let mut after = String::new();
    loop {
        let page = sql.repositories(&after, BATCH).await?;
        let Some((_, last)) = page.last() else {
            return Ok(expired);
        };
        after = last.clone();
        for (id, name) in page {
            let Some(policy) = policy_for(policies, &name) else {
                continue;
            };
            let repository =
                RepositoryName::parse(&name).map_err(|e| MetaError::Corrupt(e.to_string()))?;
            let tags = sql.tag_facts(id).await?;
            for tag in policy.expired(&tags, now) {
                expired.push(Expired {
                    repository_id: id,
                    repository: repository.clone(),
                    bytes: sql.image_bytes(id, &tag.digest).await?,
                    tag: tag.clone(),
                });
            }
        }
    }
}

fn tag_entry(e: &Expired) -> Entry {
    Entry {
        repository: Some(e.repository.to_string()),
        tag: Some(e.tag.name.clone()),
        digest: e.tag.digest.clone(),
        bytes: e.bytes,
    }
}

/// Removes the expired tags, each in a transaction of its repository.
async fn apply_retention(
    r: &Registry,
    sql: &GcSql,
    expired: Vec<Expired>,
    now: i64,
    report: &mut Report,
) -> Result<(), RegistryError> {
    let actor = Actor::retention();
    for e in expired {
        let mut tx = sql.begin_repository(&e.repository).await?;
        if GcSql::remove_tag_in(&mut tx, e.repository_id, &e.tag, now).await? {
            // The tag's event, in the transaction that removes it.
            let (Ok(tag), Ok(digest)) = (Tag::parse(&e.tag.name), Digest::parse(&e.tag.digest))
            else {
                return Err(MetaError::Corrupt(format!(
                    "tag {:?} of {} names {:?}",
                    e.tag.name, e.repository, e.tag.digest
                ))
                .into());
            };
            let change = Change::TagDeleted {
                tag: &tag,
                digest: &digest,
            };
            let wrote = match r.events.route(&e.repository, &change, &actor, now) {
                Some(routed) => {
                    events_sql::record(&mut tx, &[routed]).await?;
                    1
                }
                None => 0,
            };
            tx.notify_changed(e.repository.as_str())
                .await
                .map_err(MetaError::from)?;
            tx.commit().await.map_err(MetaError::from)?;
            r.events.committed(wrote);
            r.meta.forget_cached(&e.repository);
            tracing::info!(
                target: "berth::audit",
                repository = %e.repository,
                tag = %e.tag.name,
                digest = %e.tag.digest,
                "gc: tag removed by retention policy"
            );
            report.tags.add(tag_entry(&e));
        }
    }
    Ok(())
}

/// Reviews every due row, a claimed batch at a time.
async fn review_queue(
    r: &Registry,
    sql: &GcSql,
    delays: &Delays,
    started: Instant,
    report: &mut Report,
) -> Result<(), RegistryError> {
    loop {
        if started.elapsed() > MAX_RUN || report.errors.len() >= MAX_FAILURES {
            report.incomplete = true;
            return Ok(());
        }
        let answered = r.metrics.requests_answered();
        let batch_started = Instant::now();
        let now = now_unix();
        let claimed = sql
            .claim(now, delays, now.saturating_add(CLAIM_SECS), BATCH)
            .await?;
        if claimed.is_empty() {
            return Ok(());
        }
        let items = with_names(&r.db, claimed).await?;
        match review_claimed(r, sql, &items, delays).await {
            Ok(decisions) => decisions.into_iter().for_each(|d| report.record(d)),
            // The batch rolled back: each row again on its own, so that only
            // the failing one waits (its claim lapses) for a later run.
            Err(_) => {
                for item in &items {
                    match review_claimed(r, sql, std::slice::from_ref(item), delays).await {
                        Ok(decisions) => decisions.into_iter().for_each(|d| report.record(d)),
                        Err(e) => {
                            let (item, _) = item;
                            tracing::warn!(
                                kind = item.kind.as_str(),
                                digest = %item.digest,
                                error = %e,
                                "gc: review failed; a later collection retries it"
                            );
                            report.errors.push(format!(
                                "{} {}: {e}",
                                item.kind.as_str(),
                                item.digest
                            ));
                        }
                    }
                }
            }
        }
        let rest = rest_after(&r.metrics, answered, batch_started);
        if !rest.is_zero() {
            tokio::time::sleep(rest).await;
        }
    }
}

/// How long to rest after a batch begun at `batch_started`, when the server
/// had answered `answered` requests: none if it answered none meanwhile.
fn rest_after(
    metrics: &crate::metrics::Metrics,
    answered: u64,
    batch_started: Instant,
) -> Duration {
    if metrics.requests_answered() == answered {
        return Duration::ZERO;
    }
    batch_started.elapsed() * REST_FACTOR
}

/// The claimed rows with their repositories' names (links and manifests;
/// `None` for a repository deleted since).
async fn with_names(
    on: &crate::meta::db::Db,
    claimed: Vec<Review>,
) -> Result<Vec<(Review, Option<RepositoryName>)>, RegistryError> {
    let mut names: HashMap<i64, Option<RepositoryName>> = HashMap::new();
    let mut items = Vec::with_capacity(claimed.len());
    for item in claimed {
        let name = match item.kind {
            Kind::Link | Kind::Manifest => match names.get(&item.repository_id) {
                Some(name) => name.clone(),
                None => {
                    let name = GcSql::repository_name(on, item.repository_id).await?;
                    names.insert(item.repository_id, name.clone());
                    name
                }
            },
            Kind::Blob | Kind::Bytes => None,
        };
        items.push((item, name));
    }
    Ok(items)
}

/// Reviews claimed rows in one transaction holding what their reviews need
/// (one commit, one disk flush, for the lot); bytes are deleted before it
/// commits, while their digests are locked. A failure rolls the lot back.
async fn review_claimed(
    r: &Registry,
    sql: &GcSql,
    items: &[(Review, Option<RepositoryName>)],
    delays: &Delays,
) -> Result<Vec<Decision>, RegistryError> {
    let locked: Vec<(&Review, Option<RepositoryName>)> = items
        .iter()
        .map(|(item, name)| (item, name.clone()))
        .collect();
    let mut tx = sql.begin_reviews(&locked).await?;
    let decisions = GcSql::review_batch(&mut tx, items, now_unix(), delays).await?;
    for decision in &decisions {
        if let Decision::Removed(removed) = decision
            && removed.kind == Kind::Bytes
        {
            let digest =
                Digest::parse(&removed.digest).map_err(|e| MetaError::Corrupt(e.to_string()))?;
            r.blobs.delete(&digest).await?;
        }
    }
    tx.commit().await.map_err(MetaError::from)?;
    for decision in &decisions {
        if let Decision::Removed(Removed {
            repository: Some(name),
            ..
        }) = decision
            && let Ok(name) = RepositoryName::parse(name)
        {
            r.meta.forget_cached(&name);
        }
    }
    Ok(decisions)
}

/// The dry run: retention and every due review in one transaction, rolled back.
async fn dry_run_in_one_transaction(
    sql: &GcSql,
    expired: Vec<Expired>,
    now: i64,
    delays: &Delays,
    report: &mut Report,
) -> Result<(), RegistryError> {
    let mut tx = sql.begin_dry_run().await?;
    for e in &expired {
        if GcSql::remove_tag_in(&mut tx, e.repository_id, &e.tag, now).await? {
            report.tags.add(tag_entry(e));
        }
    }
    loop {
        let claimed =
            GcSql::claim_in(&mut tx, now, delays, now.saturating_add(CLAIM_SECS), BATCH).await?;
        if claimed.is_empty() {
            break;
        }
        let mut items = Vec::with_capacity(claimed.len());
        for item in claimed {
            let name = match item.kind {
                Kind::Link | Kind::Manifest => {
                    GcSql::repository_name(&mut tx, item.repository_id).await?
                }
                Kind::Blob | Kind::Bytes => None,
            };
            items.push((item, name));
        }
        for decision in GcSql::review_batch(&mut tx, &items, now, delays).await? {
            report.record(decision);
        }
    }
    // Dropped uncommitted: rolled back.
    drop(tx);
    Ok(())
}

/// Runs a collection every `GcConfig::interval`, forever (nothing when
/// collections run on demand only).
pub async fn run_schedule(r: Registry) {
    let Some(interval) = r.config.gc.interval else {
        return;
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = collect(&r, false).await {
            tracing::warn!(error = %e, "gc: scheduled collection failed; the next one continues");
        }
    }
}
