//! The outbox of events (`events/`): written inside the changes'
//! transactions, claimed chain by chain by the delivery workers of every
//! node, listed and redelivered by administrators.
//!
//! Tables (migration `20261203000006_events.sql`): `events` (the documents),
//! `event_deliveries` (one per event and endpoint: its state and last
//! attempt), `event_chains` (per endpoint and chain with something
//! pending: the first pending event, and when it may be attempted). A chain
//! is a repository's changes, or its sampled pulls (the repository and
//! ` pull`): pulls never hold up pushes, nor pushes pulls.
//!
//! Why a chain row: deliveries of one chain to one endpoint go in order, so
//! only a chain's head may be attempted; finding heads among thousands of
//! pending deliveries (a receiver down for an hour) would scan them, while
//! the chains are one row per busy repository. A delivery is
//! recorded and a chain's last delivery finished under the chain row's lock
//! (the `INSERT .. ON CONFLICT DO UPDATE` of [`record`] and the first
//! `UPDATE` of [`EventsSql::finish`]), so a new delivery never lands in a
//! chain that its finisher is deleting.

use super::MetaError;
use super::db::{Db, Tx, query, query_as, query_scalar};
use crate::events::Event;
use crate::events::pulls::QueuedPull;

/// How long a delivered event's record is kept (for `events list`).
pub const KEEP_DELIVERED_SECS: i64 = 24 * 3600;
/// How long a failed delivery is kept for a redelivery on demand.
pub const KEEP_FAILED_SECS: i64 = 30 * 24 * 3600;
/// The most deliveries one redelivery request moves back to pending.
pub const MAX_REDELIVER: usize = 10_000;
/// Rows removed per transaction when old records are pruned.
const PRUNE_BATCH: i64 = 2_000;

/// A delivery's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// To be attempted (or being attempted).
    Pending,
    /// A 2xx came back.
    Delivered,
    /// Every attempt failed; redelivered on demand.
    Failed,
}

impl State {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Delivered => "delivered",
            State::Failed => "failed",
        }
    }

    /// Parses the stored text (and the API's `state` parameter).
    pub fn parse(text: &str) -> Option<State> {
        [State::Pending, State::Delivered, State::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// Writes events, each with a pending delivery to each of its endpoints,
/// inside the transaction of the change they describe (several: a namespace
/// deleted with its repositories).
pub async fn record(tx: &mut Tx, events: &[(Event, Vec<&str>)]) -> Result<(), MetaError> {
    let mut deliveries = Vec::new();
    for (event, endpoints) in events {
        let id = insert_event(tx, event).await?;
        for endpoint in endpoints {
            deliveries.push(NewDelivery {
                endpoint,
                chain: &event.chain,
                event: id,
                repository: &event.repository,
                time: event.time,
            });
        }
    }
    add_deliveries(tx, &mut deliveries).await
}

/// Inserts an event; its number.
async fn insert_event(tx: &mut Tx, event: &Event) -> Result<i64, MetaError> {
    let id: i64 = query_scalar(
        "INSERT INTO events (event_id, repository, type, subject, document, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(event.id.as_str())
    .bind(event.repository.as_str())
    .bind(event.event_type)
    .bind(event.subject.as_str())
    .bind(event.document.as_str())
    .bind(event.time)
    .fetch_one(&mut *tx)
    .await?;
    Ok(id)
}

/// A delivery to insert. Ordered by (endpoint, chain) first: the order in
/// which chain rows are locked.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct NewDelivery<'a> {
    endpoint: &'a str,
    chain: &'a str,
    event: i64,
    repository: &'a str,
    time: i64,
}

/// Inserts pending deliveries, each joining its chain. Chains are locked in
/// (endpoint, chain) order, as every writer of several chains does
/// ([`EventsSql::claim`], [`EventsSql::redeliver`]), so that two of them
/// never wait on each other in a circle (PostgreSQL would abort one: a push
/// could fail).
async fn add_deliveries(tx: &mut Tx, deliveries: &mut [NewDelivery<'_>]) -> Result<(), MetaError> {
    deliveries.sort_unstable();
    for d in deliveries.iter() {
        query(
            "INSERT INTO event_deliveries
                    (event, endpoint, repository, chain, state, attempts, updated_at)
             VALUES ($1, $2, $3, $4, 'pending', 0, $5)",
        )
        .bind(d.event)
        .bind(d.endpoint)
        .bind(d.repository)
        .bind(d.chain)
        .bind(d.time)
        .execute(&mut *tx)
        .await?;
        join_chain(
            tx,
            d.endpoint,
            d.chain,
            d.event,
            d.time.saturating_mul(1000),
        )
        .await?;
    }
    Ok(())
}

/// Makes `event` the head of its chain if the chain is new or its head is
/// later; an existing chain keeps its due time (an attempt may be under way).
async fn join_chain(
    tx: &mut Tx,
    endpoint: &str,
    chain: &str,
    event: i64,
    due_at_ms: i64,
) -> Result<(), MetaError> {
    query(
        "INSERT INTO event_chains (endpoint, chain, head, due_at_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT (endpoint, chain) DO UPDATE
            SET head = CASE WHEN excluded.head < event_chains.head
                            THEN excluded.head ELSE event_chains.head END",
    )
    .bind(endpoint)
    .bind(chain)
    .bind(event)
    .bind(due_at_ms)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A chain's head, claimed for an attempt until `lease_until_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The event's number.
    pub event: i64,
    /// The endpoint's name.
    pub endpoint: String,
    /// The chain: the repository, or the repository and ` pull`.
    pub chain: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// The CloudEvents `id`.
    pub event_id: String,
    /// The CloudEvents `type`.
    pub event_type: String,
    /// The document to send.
    pub document: String,
    /// Until when this node holds the chain (unix milliseconds).
    pub lease_until_ms: i64,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx: the chain moves on.
    Delivered {
        /// The status.
        status: u16,
    },
    /// Refused or unreachable; attempted again at `at_ms`.
    Retry {
        /// The status, when an answer came.
        status: Option<u16>,
        /// What went wrong.
        error: String,
        /// When to try again (unix milliseconds).
        at_ms: i64,
    },
    /// Refused or unreachable on the last attempt allowed: the chain moves on.
    Failed {
        /// The status, when an answer came.
        status: Option<u16>,
        /// What went wrong.
        error: String,
    },
}

/// A delivery as an administrator lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRecord {
    /// The event's number (what `redeliver` takes).
    pub event: i64,
    /// The CloudEvents `id`.
    pub id: String,
    /// The CloudEvents `type`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The CloudEvents `subject`.
    pub subject: String,
    /// The repository.
    pub repository: String,
    /// The endpoint's name.
    pub endpoint: String,
    /// Its state.
    pub state: State,
    /// Attempts made.
    pub attempts: u32,
    /// The status of the last answer, if one came.
    pub last_status: Option<u16>,
    /// What went wrong last, if anything.
    pub last_error: Option<String>,
    /// Unix seconds of the change.
    pub created_at: i64,
    /// Unix seconds of the last attempt (or of the change).
    pub updated_at: i64,
    /// For a chain's pending head: when it is attempted next (unix milliseconds).
    pub next_attempt_ms: Option<i64>,
}

/// Which deliveries a listing shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this state.
    pub state: Option<State>,
    /// Only this endpoint.
    pub endpoint: Option<String>,
    /// Only this repository.
    pub repository: Option<String>,
    /// Only deliveries after this one in the listing's order (event
    /// descending, then endpoint): the last of the previous page.
    pub after: Option<(i64, String)>,
}

/// Which deliveries a redelivery moves back to pending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redeliver {
    /// These events (every endpoint's delivery of each, or `endpoint`'s);
    /// empty: every failed delivery (of `endpoint`, when given).
    pub events: Vec<i64>,
    /// Only this endpoint's deliveries.
    pub endpoint: Option<String>,
}

type ListRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
    i64,
    i64,
    Option<i64>,
);

/// The outbox's queries on the metadata database.
#[derive(Debug, Clone)]
pub struct EventsSql {
    db: Db,
}

impl EventsSql {
    /// The outbox on `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Writes sampled pull events, each with its deliveries, in one transaction.
    pub async fn write_pulls(&self, pulls: &[QueuedPull]) -> Result<(), MetaError> {
        if pulls.is_empty() {
            return Ok(());
        }
        let events: Vec<(Event, Vec<&str>)> = pulls
            .iter()
            .map(|p| {
                let endpoints = p.endpoints.iter().map(String::as_str).collect();
                (p.event.clone(), endpoints)
            })
            .collect();
        let mut tx = self.db.begin_write(&[]).await?;
        record(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims up to `limit` chains of `endpoints` due at `now_ms`, each until
    /// the lease `lease_ms` gives its endpoint. Candidates are read without a
    /// lock and taken by a compare-and-set on their due time, so two nodes
    /// never take one chain, and an idle poll writes nothing. Chains of other
    /// endpoints (one this node's settings lack) are left to the nodes that
    /// have them, and stay pending.
    pub async fn claim(
        &self,
        now_ms: i64,
        limit: u32,
        endpoints: &[&str],
        lease_ms: &(dyn Fn(&str) -> Option<i64> + Sync),
    ) -> Result<Vec<Claimed>, MetaError> {
        if endpoints.is_empty() {
            return Ok(Vec::new());
        }
        let places: Vec<String> = (0..endpoints.len())
            .map(|i| format!("${}", i + 3))
            .collect();
        let sql = format!(
            "SELECT endpoint, chain, head, due_at_ms FROM event_chains
              WHERE due_at_ms <= $1 AND endpoint IN ({})
              ORDER BY due_at_ms LIMIT $2",
            places.join(", ")
        );
        let mut select = query_as(sqlx::AssertSqlSafe(sql))
            .bind(now_ms)
            .bind(i64::from(limit));
        for endpoint in endpoints {
            select = select.bind(*endpoint);
        }
        let mut due: Vec<(String, String, i64, i64)> = select.fetch_all(&self.db).await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        // Locked in (endpoint, chain) order, as `add_deliveries` does.
        due.sort_unstable();
        let mut tx = self.db.begin_write(&[]).await?;
        let mut claimed = Vec::with_capacity(due.len());
        for (endpoint, chain, head, due_at_ms) in due {
            let Some(lease) = lease_ms(&endpoint) else {
                continue;
            };
            let until = now_ms.saturating_add(lease);
            let taken = query(
                "UPDATE event_chains SET due_at_ms = $5
                  WHERE endpoint = $1 AND chain = $2 AND head = $3 AND due_at_ms = $4",
            )
            .bind(endpoint.as_str())
            .bind(chain.as_str())
            .bind(head)
            .bind(due_at_ms)
            .bind(until)
            .execute(&mut tx)
            .await?;
            if taken == 0 {
                continue;
            }
            match load_claim(&mut tx, &endpoint, &chain, head, until).await? {
                Some(claim) => claimed.push(claim),
                // A head that is no longer pending (edited by hand): the
                // chain moves on rather than being claimed forever.
                None => {
                    advance_chain(&mut tx, &endpoint, &chain, now_ms).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Gives a claimed, not yet attempted head back, due at once (a chain
    /// task that used its share of the worker).
    pub async fn release(&self, claimed: &Claimed, now_ms: i64) -> Result<(), MetaError> {
        let mut tx = self.db.begin_write(&[]).await?;
        query(
            "UPDATE event_chains SET due_at_ms = $4
              WHERE endpoint = $1 AND chain = $2 AND head = $3 AND due_at_ms = $5",
        )
        .bind(claimed.endpoint.as_str())
        .bind(claimed.chain.as_str())
        .bind(claimed.event)
        .bind(now_ms)
        .bind(claimed.lease_until_ms)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records how an attempt of a claimed head ended and moves its chain:
    /// to the retry's time, or (delivered, or failed for good) on to its
    /// next pending event, which is returned claimed for `lease_ms` so the
    /// caller goes on down the chain, or away when none is left.
    pub async fn finish(
        &self,
        claimed: &Claimed,
        outcome: &Outcome,
        now: i64,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<Claimed>, MetaError> {
        let mut tx = self.db.begin_write(&[]).await?;
        // The chain's row lock first: a change recording a delivery into
        // this chain waits for the chain's fate, or this for the delivery.
        query("UPDATE event_chains SET head = head WHERE endpoint = $1 AND chain = $2")
            .bind(claimed.endpoint.as_str())
            .bind(claimed.chain.as_str())
            .execute(&mut tx)
            .await?;
        let (state, status, error) = match outcome {
            Outcome::Delivered { status } => (State::Delivered, Some(*status), None),
            Outcome::Retry { status, error, .. } => (State::Pending, *status, Some(error)),
            Outcome::Failed { status, error } => (State::Failed, *status, Some(error)),
        };
        let updated = query(
            "UPDATE event_deliveries
                SET state = $3, attempts = attempts + 1, last_status = $4, last_error = $5,
                    updated_at = $6
              WHERE endpoint = $1 AND event = $2 AND state = 'pending'",
        )
        .bind(claimed.endpoint.as_str())
        .bind(claimed.event)
        .bind(state.as_str())
        .bind(status.map(i64::from))
        .bind(error.map(String::as_str))
        .bind(now)
        .execute(&mut tx)
        .await?;
        if updated == 0 {
            // Finished already by another node whose lease this one's
            // outlived; the chain is that node's to move.
            return Ok(None);
        }
        let next = match outcome {
            Outcome::Retry { at_ms, .. } => {
                query("UPDATE event_chains SET due_at_ms = $3 WHERE endpoint = $1 AND chain = $2")
                    .bind(claimed.endpoint.as_str())
                    .bind(claimed.chain.as_str())
                    .bind(*at_ms)
                    .execute(&mut tx)
                    .await?;
                None
            }
            Outcome::Delivered { .. } | Outcome::Failed { .. } => {
                let until = now_ms.saturating_add(lease_ms);
                match advance_chain(&mut tx, &claimed.endpoint, &claimed.chain, until).await? {
                    Some(head) => {
                        load_claim(&mut tx, &claimed.endpoint, &claimed.chain, head, until).await?
                    }
                    None => None,
                }
            }
        };
        tx.commit().await?;
        Ok(next)
    }

    /// At the start of the only process on an embedded (SQLite) database:
    /// every chain due now, leases and retry delays alike, since a lease can
    /// only be a dead process's (and a restart is as good a moment as any to
    /// try a refused delivery again); returns how many. On PostgreSQL other
    /// nodes may hold leases: nothing changes, and a dead node's lapse.
    pub async fn resume_after_restart(&self, now_ms: i64) -> Result<u64, MetaError> {
        if self.db.engine() != super::db::Engine::Sqlite {
            return Ok(0);
        }
        let mut tx = self.db.begin_write(&[]).await?;
        let resumed = query("UPDATE event_chains SET due_at_ms = $1 WHERE due_at_ms > $1")
            .bind(now_ms)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(resumed)
    }

    /// Deliveries, newest event first, at most `limit`. Only the filters
    /// given are in the statement, so that each listing reads an index
    /// (`event_deliveries_by_event`, `_by_state`) rather than every row.
    pub async fn list(
        &self,
        filter: &ListFilter,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, MetaError> {
        let given = [
            ("d.state", filter.state.map(State::as_str)),
            ("d.endpoint", filter.endpoint.as_deref()),
            ("d.repository", filter.repository.as_deref()),
        ];
        let mut conditions: Vec<String> = Vec::new();
        let mut args: Vec<&str> = Vec::new();
        for (column, value) in given {
            if let Some(value) = value {
                conditions.push(format!("{column} = ${}", args.len() + 3));
                args.push(value);
            }
        }
        let (after_event, after_endpoint) = match &filter.after {
            Some((event, endpoint)) => (*event, endpoint.as_str()),
            None => (i64::MAX, ""),
        };
        conditions.push(format!(
            "(d.event < $1 OR (d.event = $1 AND d.endpoint > ${}))",
            args.len() + 3
        ));
        let sql = format!(
            "SELECT d.event, e.event_id, e.type, e.subject, d.repository, d.endpoint, d.state,
                    d.attempts, d.last_status, d.last_error, e.created_at, d.updated_at,
                    c.due_at_ms
               FROM event_deliveries d
               JOIN events e ON e.id = d.event
               LEFT JOIN event_chains c
                      ON c.endpoint = d.endpoint AND c.chain = d.chain
                     AND c.head = d.event AND d.state = 'pending'
              WHERE {}
              ORDER BY d.event DESC, d.endpoint
              LIMIT $2",
            conditions.join(" AND ")
        );
        let mut select = query_as::<ListRow>(sqlx::AssertSqlSafe(sql))
            .bind(after_event)
            .bind(i64::from(limit));
        for arg in args {
            select = select.bind(arg);
        }
        let rows = select.bind(after_endpoint).fetch_all(&self.db).await?;
        rows.into_iter()
            .map(|row| {
                let (event, id, event_type, subject, repository, endpoint, state) =
                    (row.0, row.1, row.2, row.3, row.4, row.5, row.6);
                let state = State::parse(&state)
                    .ok_or_else(|| MetaError::Corrupt(format!("delivery state {state:?}")))?;
                Ok(DeliveryRecord {
                    event,
                    id,
                    event_type,
                    subject,
                    repository,
                    endpoint,
                    state,
                    attempts: u32::try_from(row.7).unwrap_or(u32::MAX),
                    last_status: row.8.and_then(|s| u16::try_from(s).ok()),
                    last_error: row.9,
                    created_at: row.10,
                    updated_at: row.11,
                    next_attempt_ms: row.12,
                })
            })
            .collect()
    }

    /// Moves deliveries back to pending, attempts counted afresh: the events
    /// named (any state but pending), or every failed one, at most
    /// [`MAX_REDELIVER`]; returns how many.
    pub async fn redeliver(
        &self,
        which: &Redeliver,
        now: i64,
        now_ms: i64,
    ) -> Result<u64, MetaError> {
        let mut tx = self.db.begin_write(&[]).await?;
        let mut selected: Vec<(String, String, i64)> = Vec::new();
        if which.events.is_empty() {
            selected = query_as(
                "SELECT endpoint, chain, event FROM event_deliveries
                  WHERE state = 'failed' AND ($1 IS NULL OR endpoint = $1)
                  ORDER BY event LIMIT $2",
            )
            .bind(which.endpoint.as_deref())
            .bind(MAX_REDELIVER as i64)
            .fetch_all(&mut tx)
            .await?;
        } else {
            for event in which.events.iter().take(MAX_REDELIVER) {
                let rows: Vec<(String, String, i64)> = query_as(
                    "SELECT endpoint, chain, event FROM event_deliveries
                      WHERE event = $1 AND state <> 'pending' AND ($2 IS NULL OR endpoint = $2)",
                )
                .bind(*event)
                .bind(which.endpoint.as_deref())
                .fetch_all(&mut tx)
                .await?;
                selected.extend(rows);
            }
        }
        // Chains locked in (endpoint, chain) order, as `add_deliveries` does,
        // and each chain before its delivery, as `finish` does.
        selected.sort_unstable();
        let mut moved = 0;
        for (endpoint, chain, event) in &selected {
            join_chain(&mut tx, endpoint, chain, *event, now_ms).await?;
            moved += query(
                "UPDATE event_deliveries
                    SET state = 'pending', attempts = 0, last_status = NULL, last_error = NULL,
                        updated_at = $3
                  WHERE endpoint = $1 AND event = $2 AND state <> 'pending'",
            )
            .bind(endpoint.as_str())
            .bind(*event)
            .bind(now)
            .execute(&mut tx)
            .await?;
        }
        tx.commit().await?;
        Ok(moved)
    }

    /// Removes delivered deliveries older than a day, failed ones older than
    /// thirty days, and events left with no delivery, [`PRUNE_BATCH`] rows a
    /// transaction (the writer is shared with pushes); returns the events
    /// removed.
    pub async fn prune(&self, now: i64) -> Result<u64, MetaError> {
        for (state, keep) in [
            (State::Delivered, KEEP_DELIVERED_SECS),
            (State::Failed, KEEP_FAILED_SECS),
        ] {
            loop {
                let mut tx = self.db.begin_write(&[]).await?;
                let removed = query(
                    "DELETE FROM event_deliveries
                      WHERE state = $1 AND updated_at < $2
                        AND event IN (SELECT event FROM event_deliveries
                                       WHERE state = $1 AND updated_at < $2
                                       ORDER BY event LIMIT $3)",
                )
                .bind(state.as_str())
                .bind(now - keep)
                .bind(PRUNE_BATCH)
                .execute(&mut tx)
                .await?;
                tx.commit().await?;
                if removed < PRUNE_BATCH as u64 {
                    break;
                }
            }
        }
        let mut total = 0;
        loop {
            let mut tx = self.db.begin_write(&[]).await?;
            let removed = query(
                "DELETE FROM events
                  WHERE id IN (SELECT id FROM events e
                                WHERE e.created_at < $1
                                  AND NOT EXISTS (SELECT 1 FROM event_deliveries d
                                                   WHERE d.event = e.id)
                                ORDER BY id LIMIT $2)",
            )
            .bind(now - KEEP_DELIVERED_SECS)
            .bind(PRUNE_BATCH)
            .execute(&mut tx)
            .await?;
            tx.commit().await?;
            total += removed;
            if removed < PRUNE_BATCH as u64 {
                return Ok(total);
            }
        }
    }

    /// Deliveries pending and failed, for the metrics.
    pub async fn backlog(&self) -> Result<(u64, u64), MetaError> {
        let rows: Vec<(String, i64)> = query_as(
            "SELECT state, COUNT(*) FROM event_deliveries
              WHERE state IN ('pending', 'failed') GROUP BY state",
        )
        .fetch_all(&self.db)
        .await?;
        let count = |s: State| {
            rows.iter()
                .find(|(state, _)| state == s.as_str())
                .map_or(0, |(_, n)| u64::try_from(*n).unwrap_or(0))
        };
        Ok((count(State::Pending), count(State::Failed)))
    }
}

/// Moves a chain to its next pending event, due at `due_at_ms` (the
/// caller's lease on it), or removes it when none is left; the next event.
async fn advance_chain(
    tx: &mut Tx,
    endpoint: &str,
    chain: &str,
    due_at_ms: i64,
) -> Result<Option<i64>, MetaError> {
    let next: Option<i64> = query_scalar(
        "SELECT MIN(event) FROM event_deliveries
          WHERE endpoint = $1 AND chain = $2 AND state = 'pending'",
    )
    .bind(endpoint)
    .bind(chain)
    .fetch_one(&mut *tx)
    .await?;
    match next {
        Some(next) => {
            query(
                "UPDATE event_chains SET head = $3, due_at_ms = $4
                  WHERE endpoint = $1 AND chain = $2",
            )
            .bind(endpoint)
            .bind(chain)
            .bind(next)
            .bind(due_at_ms)
            .execute(&mut *tx)
            .await?;
        }
        None => {
            query("DELETE FROM event_chains WHERE endpoint = $1 AND chain = $2")
                .bind(endpoint)
                .bind(chain)
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(next)
}

/// A chain's head with what an attempt sends, claimed until `until`;
/// `None` when the delivery is no longer pending.
async fn load_claim(
    tx: &mut Tx,
    endpoint: &str,
    chain: &str,
    head: i64,
    until: i64,
) -> Result<Option<Claimed>, MetaError> {
    let row: Option<(i64, String, String, String)> = query_as(
        "SELECT d.attempts, e.event_id, e.type, e.document
           FROM event_deliveries d JOIN events e ON e.id = d.event
          WHERE d.endpoint = $1 AND d.event = $2 AND d.state = 'pending'",
    )
    .bind(endpoint)
    .bind(head)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(
        row.map(|(attempts, event_id, event_type, document)| Claimed {
            event: head,
            endpoint: endpoint.to_owned(),
            chain: chain.to_owned(),
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            event_id,
            event_type,
            document,
            lease_until_ms: until,
        }),
    )
}
