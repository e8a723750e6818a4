//! The delivery worker, one per node: claims chains whose head is due
//! (`meta/events_sql.rs`), `POST`s each head to its endpoint, records the
//! outcome, and goes on down the chain while it is delivering.
//!
//! - At most [`CONCURRENCY`] chains at once per node; one chain's
//!   deliveries (a repository's changes, or its pulls) to one endpoint one
//!   at a time, in order. A chain's task gives its place back after
//!   [`CHAIN_SHARE`] of work, so a long backlog does not starve the others.
//! - A node claims only chains of the endpoints its settings name (every
//!   node should have the same `[[webhook]]` tables); the others' stay
//!   pending for the nodes that have them.
//! - Leases and retry times are each node's wall clock: nodes need their
//!   clocks synchronised (NTP) to within [`LEASE_MARGIN`].
//! - A claim is a lease of the endpoint's timeout plus [`LEASE_MARGIN`]: a
//!   node that dies mid-attempt leaves it to lapse, and the chain is
//!   attempted again by whichever node claims it next (at least once). On
//!   the embedded database, the only process resumes every chain at once
//!   when it starts (`EventsSql::resume_after_restart`).
//! - A 2xx delivers. Anything else (another status, a redirect, a timeout,
//!   a refused connection) is retried after the endpoint's backoff (or the
//!   receiver's `Retry-After`, up to the longest delay), and after the last
//!   retry the delivery is marked failed and the chain moves on.
//! - Sampled pull events are written every second; delivered and failed
//!   records are pruned every ten minutes (`meta/events_sql.rs` keeps them a
//!   day and thirty days).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use tokio::task::JoinSet;

use super::endpoint::Endpoint;
use super::pulls::{Dice, FLUSH_INTERVAL};
use super::{CLOUDEVENTS_JSON, Events, signature};
use crate::Registry;
use crate::clock::{now_unix, now_unix_ms};
use crate::meta::events_sql::{Claimed, EventsSql, Outcome};
use crate::metrics::DeliveryResult;

/// Chains attempted at once by one node.
pub const CONCURRENCY: usize = 32;
/// How long past an endpoint's timeout a claim lasts.
pub const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// How often the worker looks for due chains when nothing wakes it.
pub const POLL: Duration = Duration::from_millis(250);
/// How long one task may go down one chain before it gives its place back.
pub const CHAIN_SHARE: Duration = Duration::from_secs(5);
/// How often old records are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// How often the backlog gauges are read.
const BACKLOG_EVERY: Duration = Duration::from_secs(10);
/// The most of a refusal's body kept as its error.
const ERROR_BODY_BYTES: usize = 200;
/// The header that numbers an attempt (1 for the first).
pub const ATTEMPT_HEADER: &str = "berth-delivery-attempt";

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A claim's lease for `endpoint`, in milliseconds.
fn lease_ms(endpoint: &Endpoint) -> i64 {
    millis(endpoint.timeout + LEASE_MARGIN)
}

/// What each chain's task needs.
struct Worker {
    events: Arc<Events>,
    sql: EventsSql,
    client: reqwest::Client,
    dice: Dice,
}

/// Runs the delivery worker until the task is aborted; returns at once
/// when no endpoint is configured.
pub async fn run(registry: Registry) {
    let events = registry.events.clone();
    if events.webhooks.is_empty() {
        return;
    }
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "the webhook client could not be built; events stay pending");
            return;
        }
    };
    let worker = Arc::new(Worker {
        events: events.clone(),
        sql: EventsSql::new(registry.db.clone()),
        client,
        dice: Dice::default(),
    });
    match worker.sql.resume_after_restart(now_unix_ms()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(chains = n, "resuming event deliveries left by the last run"),
        Err(e) => {
            tracing::warn!(error = %e, "resuming event deliveries failed; they resume as their leases lapse")
        }
    }
    let endpoint_names: Vec<&str> = events
        .webhooks
        .endpoints()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    let mut chains = JoinSet::new();
    let mut last_flush = Instant::now();
    let mut last_prune: Option<Instant> = None;
    let mut last_backlog: Option<Instant> = None;
    let mut last_error: Option<Instant> = None;
    loop {
        // Chains whose tasks ended make room for more.
        while chains.try_join_next().is_some() {}
        if last_flush.elapsed() >= FLUSH_INTERVAL {
            last_flush = Instant::now();
            flush_pulls_with(&events, &worker.sql).await;
        }
        let room = CONCURRENCY.saturating_sub(chains.len());
        if room > 0 {
            let lease = |name: &str| events.webhooks.endpoint(name).map(|e| lease_ms(e));
            match worker
                .sql
                .claim(now_unix_ms(), room as u32, &endpoint_names, &lease)
                .await
            {
                Ok(claimed) => {
                    for claim in claimed {
                        let worker = worker.clone();
                        chains.spawn(async move { worker.deliver_chain(claim).await });
                    }
                }
                Err(e) => {
                    // Once a minute at most: a database outage would repeat it every poll.
                    if last_error.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                        last_error = Some(Instant::now());
                        tracing::warn!(error = %e, "claiming events to deliver failed; trying again");
                    }
                }
            }
        }
        if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(Instant::now());
            if let Err(e) = worker.sql.prune(now_unix()).await {
                tracing::warn!(error = %e, "pruning old event records failed");
            }
        }
        if last_backlog.is_none_or(|t| t.elapsed() >= BACKLOG_EVERY) {
            last_backlog = Some(Instant::now());
            if let Ok((pending, failed)) = worker.sql.backlog().await {
                events
                    .metrics
                    .event_backlog(pending, failed, events.pulls.dropped());
            }
        }
        tokio::select! {
            Some(_) = chains.join_next(), if !chains.is_empty() => {}
            () = events.woken() => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Writes what is queued of sampled pulls, at shutdown (after the worker
/// is stopped: see [`Events::flushing`]).
pub async fn flush_pulls(registry: &Registry) {
    if registry.events.webhooks.is_empty() {
        return;
    }
    let sql = EventsSql::new(registry.db.clone());
    flush_pulls_with(&registry.events, &sql).await;
}

async fn flush_pulls_with(events: &Events, sql: &EventsSql) {
    // Held while the queue is taken and written: a shutdown that takes it
    // before stopping the worker never stops a write half done.
    let _flushing = events.flushing.lock().await;
    let pulls = events.pulls.take();
    if pulls.is_empty() {
        return;
    }
    match sql.write_pulls(&pulls).await {
        Ok(()) => events.committed(pulls.len() as u64),
        Err(e) => {
            tracing::warn!(error = %e, count = pulls.len(), "writing pull events failed; kept for the next try");
            events.pulls.put_back(pulls);
        }
    }
}

impl Worker {
    /// Delivers a claimed head, then the chain's next heads while they are
    /// due, until an attempt is to be retried later, the chain is empty, or
    /// the task has had its [`CHAIN_SHARE`] (the next head is given back,
    /// due at once).
    async fn deliver_chain(&self, mut claim: Claimed) {
        let started = Instant::now();
        loop {
            if started.elapsed() >= CHAIN_SHARE {
                if let Err(e) = self.sql.release(&claim, now_unix_ms()).await {
                    tracing::debug!(error = %e, "giving a chain back failed; its lease lapses");
                }
                return;
            }
            let Some(endpoint) = self.events.webhooks.endpoint(&claim.endpoint).cloned() else {
                return;
            };
            let started = Instant::now();
            let outcome = self.attempt(&endpoint, &claim).await;
            let result = match &outcome {
                Outcome::Delivered { .. } => DeliveryResult::Delivered,
                Outcome::Retry { .. } => DeliveryResult::Retried,
                Outcome::Failed { .. } => DeliveryResult::Failed,
            };
            self.events
                .metrics
                .record_delivery(result, started.elapsed());
            log_outcome(&claim, &outcome);
            let next = self
                .sql
                .finish(
                    &claim,
                    &outcome,
                    now_unix(),
                    now_unix_ms(),
                    lease_ms(&endpoint),
                )
                .await;
            match next {
                Ok(Some(next)) => claim = next,
                Ok(None) => return,
                Err(e) => {
                    // The lease lapses and the chain is attempted again.
                    tracing::warn!(error = %e, endpoint = %claim.endpoint, event = claim.event,
                        "recording a delivery's outcome failed; it will be attempted again");
                    return;
                }
            }
        }
    }

    /// One attempt, and what comes of it.
    async fn attempt(&self, endpoint: &Endpoint, claim: &Claimed) -> Outcome {
        let attempt = claim.attempts.saturating_add(1);
        let body = claim.document.clone().into_bytes();
        let sent_at = now_unix();
        let signature = signature::sign(endpoint.secret.expose(), sent_at, &body);
        let response = self
            .client
            .post(endpoint.url.clone())
            .timeout(endpoint.timeout)
            .header(CONTENT_TYPE, HeaderValue::from_static(CLOUDEVENTS_JSON))
            .header(signature::HEADER, signature)
            .header(ATTEMPT_HEADER, attempt.to_string())
            .body(body)
            .send()
            .await;
        let (status, error, retry_after) = match response {
            Ok(response) if response.status().is_success() => {
                return Outcome::Delivered {
                    status: response.status().as_u16(),
                };
            }
            Ok(response) => {
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(retry_after);
                let body = read_some(response).await;
                let error = if body.is_empty() {
                    format!("HTTP {status}")
                } else {
                    format!("HTTP {status}: {body}")
                };
                (Some(status.as_u16()), error, retry_after)
            }
            Err(e) if e.is_timeout() => (
                None,
                format!("no answer within {} s", endpoint.timeout.as_secs_f64()),
                None,
            ),
            Err(e) => (None, describe(e), None),
        };
        if attempt > endpoint.retries {
            return Outcome::Failed { status, error };
        }
        let backoff = endpoint.backoff(attempt, self.dice.roll());
        let delay = retry_after.map_or(backoff, |asked| asked.min(endpoint.retry_max).max(backoff));
        Outcome::Retry {
            status,
            error,
            at_ms: now_unix_ms().saturating_add(millis(delay)),
        }
    }
}

/// A `Retry-After` value (RFC 9110 section 10.2.3): seconds, or an HTTP
/// date (how long until then; a date past is no delay).
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The first bytes of a refusal's body, as one printable line.
async fn read_some(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(ERROR_BODY_BYTES);
    String::from_utf8_lossy(&bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// A transport error with its causes, as one line.
/// Without the URL, which may carry a token in its path (the endpoint's
/// name says which it was).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let words = cause.to_string();
        if !text.contains(&words) {
            text.push_str(": ");
            text.push_str(&words);
        }
        source = cause.source();
    }
    text
}

fn log_outcome(claim: &Claimed, outcome: &Outcome) {
    match outcome {
        Outcome::Delivered { status } => tracing::debug!(
            endpoint = %claim.endpoint, event = claim.event, id = %claim.event_id,
            r#type = %claim.event_type, status, "event delivered"
        ),
        Outcome::Retry { error, at_ms, .. } => tracing::info!(
            endpoint = %claim.endpoint, event = claim.event, id = %claim.event_id,
            attempt = claim.attempts + 1, error = %error,
            retry_in_ms = at_ms.saturating_sub(now_unix_ms()),
            "event delivery refused; retrying"
        ),
        Outcome::Failed { error, .. } => tracing::warn!(
            endpoint = %claim.endpoint, event = claim.event, id = %claim.event_id,
            chain = %claim.chain, attempts = claim.attempts + 1, error = %error,
            "event delivery failed after its last retry; `berth admin events redeliver` sends it again"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        assert_eq!(retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = std::time::SystemTime::now() + Duration::from_secs(600);
        let delay = retry_after(&httpdate::fmt_http_date(later)).unwrap_or_default();
        assert!(delay > Duration::from_secs(590) && delay <= Duration::from_secs(600));
        assert_eq!(retry_after("soon"), None);
    }
}
