//! Revocation records on the metadata database
//! (`migrations/sqlite/20261202000001_revocations.sql`, and the same table in
//! `migrations/postgres/`; what they mean: `auth/revocation.rs`).
//!
//! A record is written by `record` inside the transaction of the change it
//! follows from (a user deleted, a token revoked, a repository made private),
//! so that the change and its record commit together; after the commit the
//! store counts the write (`SqlMeta::revocations_written`) so that this
//! process reloads its view before the next token is checked or issued.
//!
//! Records must become visible in the order of their numbers: a reader that
//! saw record `n` must never later find a record numbered below `n`. SQLite
//! has one writer, so that holds by itself; on PostgreSQL, where a sequence
//! hands out numbers in the order of the inserts, not of the commits, the
//! writer takes [`Lock::Revocations`] before its insert and keeps it until it
//! has committed, so the next number goes to a transaction that begins its
//! insert after the previous one committed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use super::db::{Lock, Tx, query};
use super::{MetaError, SqlMeta};
use crate::auth::revocation::{Revocation, RevocationStore, RevocationTarget};
use crate::clock::now_unix;

/// Writes a record of `target`, kept `keep_secs` from now, in the caller's
/// transaction.
pub(crate) async fn record(
    tx: &mut Tx,
    target: &RevocationTarget,
    keep_secs: i64,
) -> Result<(), sqlx::Error> {
    let (kind, target) = target.to_stored();
    tx.lock(Lock::Revocations).await?;
    let now = now_unix();
    query("INSERT INTO revocations (kind, target, created_at, keep_until) VALUES ($1, $2, $3, $4)")
        .bind(kind)
        .bind(target)
        .bind(now)
        .bind(now.saturating_add(keep_secs))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

impl SqlMeta {
    /// Counts a committed transaction that wrote revocation records.
    pub(crate) fn revocations_written(&self) {
        self.revocation_writes.fetch_add(1, Ordering::AcqRel);
    }
}

#[async_trait]
impl RevocationStore for SqlMeta {
    async fn revocations_after(&self, id: i64) -> Result<Vec<Revocation>, MetaError> {
        let rows =
            query("SELECT id, kind, target, keep_until FROM revocations WHERE id > $1 ORDER BY id")
                .bind(id)
                .fetch_all(self.db())
                .await?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get("kind")?;
                let target: String = row.try_get("target")?;
                let target = RevocationTarget::from_stored(&kind, &target).ok_or_else(|| {
                    MetaError::Corrupt(format!("revocation record `{kind}` `{target}`"))
                })?;
                Ok(Revocation {
                    id: row.try_get("id")?,
                    target,
                    keep_until: row.try_get("keep_until")?,
                })
            })
            .collect()
    }

    async fn prune_revocations(&self, now: i64) -> Result<u64, MetaError> {
        let done = query("DELETE FROM revocations WHERE keep_until < $1")
            .bind(now)
            .execute(self.db())
            .await?;
        Ok(done)
    }

    fn local_writes(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.revocation_writes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_are_numbered_in_order_and_pruned_when_kept_long_enough() {
        let s = SqlMeta::in_memory().await.unwrap();
        let writes = s.local_writes();
        let mut tx = s.db().begin().await.unwrap();
        record(&mut tx, &RevocationTarget::Pat(7), 100)
            .await
            .unwrap();
        record(&mut tx, &RevocationTarget::Subject("alice".into()), -10)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        s.revocations_written();
        assert_eq!(writes.load(Ordering::Acquire), 1);

        let all = s.revocations_after(0).await.unwrap();
        let targets: Vec<_> = all.iter().map(|r| r.target.clone()).collect();
        assert_eq!(
            targets,
            [
                RevocationTarget::Pat(7),
                RevocationTarget::Subject("alice".into())
            ]
        );
        assert!(all[0].id < all[1].id);
        assert_eq!(s.revocations_after(all[0].id).await.unwrap().len(), 1);

        assert_eq!(s.prune_revocations(now_unix()).await.unwrap(), 1);
        assert_eq!(s.revocations_after(0).await.unwrap().len(), 1);
        // Numbers are never reused, even after the newest row was pruned.
        let last = all[1].id;
        let mut tx = s.db().begin().await.unwrap();
        record(&mut tx, &RevocationTarget::Repository("a/b".into()), 100)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let after = s.revocations_after(last).await.unwrap();
        assert_eq!(after.len(), 1);
        assert!(after[0].id > last);
    }
}
