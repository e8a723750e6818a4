//! Pull times for retention policies, without a database write per pull: a
//! `GET` of a manifest notes (repository, digest, minute) in memory, at most
//! once per manifest and minute, and the notes are written in one
//! transaction every [`FLUSH_INTERVAL`] (and before every collection).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::Duration;

use berth_core::digest::Digest;
use berth_core::name::RepositoryName;

use crate::meta::MetaError;
use crate::meta::gc_sql::GcSql;

/// How often noted pulls are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// Pulls noted since the last flush.
#[derive(Debug, Default)]
pub struct PullTimes {
    hasher: RandomState,
    /// By hash of (repository, digest): the last minute written or noted,
    /// and the pull waiting to be written.
    noted: Mutex<HashMap<u64, Noted>>,
}

#[derive(Debug)]
struct Noted {
    /// The minute (unix seconds / 60) of the last pull noted.
    minute: i64,
    /// The pull not yet written: (repository, digest, unix seconds).
    pending: Option<(String, String, i64)>,
}

impl PullTimes {
    /// Notes a pull of `digest` in `repository` at `now` (unix seconds):
    /// nothing to do when one was noted this minute.
    pub fn note(&self, repository: &RepositoryName, digest: &Digest, now: i64) {
        let key = self.hasher.hash_one((repository.as_str(), digest));
        let minute = now.div_euclid(60);
        let Ok(mut noted) = self.noted.lock() else {
            return;
        };
        match noted.get_mut(&key) {
            Some(entry) if entry.minute >= minute => {}
            Some(entry) => {
                entry.minute = minute;
                entry.pending = Some((repository.to_string(), digest.to_string(), now));
            }
            None => {
                noted.insert(
                    key,
                    Noted {
                        minute,
                        pending: Some((repository.to_string(), digest.to_string(), now)),
                    },
                );
            }
        }
    }

    /// Writes the pulls noted since the last flush; forgets manifests not
    /// pulled for a minute (the map holds what was pulled lately).
    pub async fn flush(&self, sql: &GcSql, now: i64) -> Result<(), MetaError> {
        let pending: Vec<(String, String, i64)> = {
            let Ok(mut noted) = self.noted.lock() else {
                return Ok(());
            };
            let current = now.div_euclid(60);
            let pending = noted
                .values_mut()
                .filter_map(|n| n.pending.take())
                .collect();
            noted.retain(|_, n| n.minute >= current - 1);
            pending
        };
        sql.record_pulls(&pending).await
    }
}

/// Writes noted pulls every [`FLUSH_INTERVAL`], forever.
pub async fn run_flush(r: crate::Registry) {
    let sql = GcSql::new(r.db.clone());
    let mut tick = tokio::time::interval(FLUSH_INTERVAL);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = r.gc.pulls.flush(&sql, crate::clock::now_unix()).await {
            tracing::warn!(error = %e, "writing pull times failed; retrying next minute");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_is_noted_once_a_minute() {
        let pulls = PullTimes::default();
        let repo = RepositoryName::parse("a/b").unwrap();
        let digest = Digest::sha256_of(b"m");
        pulls.note(&repo, &digest, 120);
        pulls.note(&repo, &digest, 150);
        let pending = |p: &PullTimes| {
            p.noted
                .lock()
                .unwrap()
                .values()
                .filter_map(|n| n.pending.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(pending(&pulls), [("a/b".into(), digest.to_string(), 120)]);
        pulls.note(&repo, &digest, 185);
        assert_eq!(pending(&pulls), [("a/b".into(), digest.to_string(), 185)]);
    }
}
