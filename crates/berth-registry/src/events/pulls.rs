//! Pull events, sampled and written in batches: a pull changes nothing, so
//! it has no transaction to join, and a write per pull would cost the read
//! path its speed. A pull some endpoint samples is queued in memory (at most
//! [`MAX_QUEUED`]; beyond that pull events are dropped and counted) and the
//! queue is written in one transaction every [`FLUSH_INTERVAL`] and at
//! shutdown. Unlike the events of changes, a pull event queued when the
//! process is killed is lost.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use berth_core::digest::Digest;
use berth_core::name::RepositoryName;
use berth_core::tag::Tag;

use super::{Action, Actor, Change, Event, Webhooks};

/// How often queued pull events are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// The most pull events waiting to be written.
pub const MAX_QUEUED: usize = 10_000;

/// A pull event waiting to be written, with the endpoints that sampled it.
#[derive(Debug, Clone)]
pub struct QueuedPull {
    /// The event.
    pub event: Event,
    /// The endpoints it goes to.
    pub endpoints: Vec<String>,
}

/// Pull events not yet written.
#[derive(Debug, Default)]
pub struct PullEvents {
    queue: Mutex<Vec<QueuedPull>>,
    /// Pull events dropped on a full queue.
    dropped: AtomicU64,
    /// Draws for sampling: a random key and a counter.
    dice: Dice,
}

impl PullEvents {
    /// Notes a pull of `digest` (by `tag`, if any) from `repository`: queued
    /// for each endpoint that wants pulls of it and samples this one.
    #[allow(clippy::too_many_arguments)]
    pub fn note(
        &self,
        webhooks: &Webhooks,
        source: &str,
        repository: &RepositoryName,
        digest: &Digest,
        tag: Option<&Tag>,
        actor: &Actor,
        now: i64,
    ) {
        let endpoints: Vec<String> = webhooks
            .endpoints()
            .iter()
            .filter(|e| e.wants(repository.as_str(), Action::Pull))
            .filter(|e| self.dice.roll() < e.pull_sample)
            .map(|e| e.name.clone())
            .collect();
        if endpoints.is_empty() {
            return;
        }
        let Ok(mut queue) = self.queue.lock() else {
            return;
        };
        if queue.len() >= MAX_QUEUED {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let change = Change::ManifestPulled { digest, tag };
        let event = Event::new(source, repository, &change, actor, now);
        queue.push(QueuedPull { event, endpoints });
    }

    /// Takes every queued pull event, to be written.
    pub fn take(&self) -> Vec<QueuedPull> {
        match self.queue.lock() {
            Ok(mut queue) => std::mem::take(&mut *queue),
            Err(_) => Vec::new(),
        }
    }

    /// Puts back what a failed write took, as far as the queue has room.
    pub fn put_back(&self, pulls: Vec<QueuedPull>) {
        let Ok(mut queue) = self.queue.lock() else {
            return;
        };
        let room = MAX_QUEUED.saturating_sub(queue.len());
        let lost = pulls.len().saturating_sub(room);
        queue.extend(pulls.into_iter().take(room));
        self.dropped.fetch_add(lost as u64, Ordering::Relaxed);
    }

    /// Pull events dropped so far on a full queue.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Uniform draws in [0, 1) without a system call or a lock per draw: a
/// counter hashed with a key drawn once per process (SipHash).
#[derive(Debug, Default)]
pub struct Dice {
    key: RandomState,
    counter: AtomicU64,
}

impl Dice {
    /// The next draw.
    pub fn roll(&self) -> f64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // The top 53 bits, as a double's mantissa holds.
        (self.key.hash_one(n) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Endpoint, EndpointText};

    fn webhooks(sample: f64) -> Webhooks {
        let text = EndpointText {
            name: Some("p".to_owned()),
            url: Some("http://127.0.0.1:9/".to_owned()),
            secret: Some("0123456789abcdef".to_owned()),
            actions: Some(vec!["pull".to_owned()]),
            pull_sample: Some(sample),
            ..EndpointText::default()
        };
        Webhooks::new(vec![
            Endpoint::parse(&text).unwrap_or_else(|e| panic!("{e}")),
        ])
    }

    #[test]
    fn dice_are_uniform_enough() {
        let dice = Dice::default();
        let n = 100_000;
        let below: usize = (0..n).filter(|_| dice.roll() < 0.1).count();
        assert!((9_000..11_000).contains(&below), "{below}");
        assert!((0..n).map(|_| dice.roll()).all(|x| (0.0..1.0).contains(&x)));
    }

    #[test]
    fn pulls_are_sampled_and_the_queue_is_bounded() {
        let name = RepositoryName::parse("a/b").unwrap_or_else(|e| panic!("{e}"));
        let digest = Digest::sha256_of(b"m");
        let pulls = PullEvents::default();
        let none = webhooks(0.0);
        pulls.note(&none, "http://h", &name, &digest, None, &Actor::system(), 0);
        assert!(pulls.take().is_empty());
        let all = webhooks(1.0);
        for _ in 0..MAX_QUEUED + 5 {
            pulls.note(&all, "http://h", &name, &digest, None, &Actor::system(), 0);
        }
        assert_eq!(pulls.dropped(), 5);
        let taken = pulls.take();
        assert_eq!(taken.len(), MAX_QUEUED);
        assert_eq!(taken[0].endpoints, ["p"]);
        assert_eq!(taken[0].event.event_type, "berth.manifest.pulled");
        pulls.put_back(taken);
        assert_eq!(pulls.take().len(), MAX_QUEUED);
    }
}
