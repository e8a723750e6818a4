//! Change notices between nodes sharing PostgreSQL: every write to a
//! repository sends its name on [`CHANGES_CHANNEL`] at commit
//! (`db::Tx::notify_changed`), and [`run_listener`], one named task per node,
//! drops what this node cached of that repository (`meta/cache.rs`).
//!
//! Notices are not queued for a listener that is away: when the listening
//! connection is lost, everything cached is dropped once it listens again,
//! so no notice sent in between is missed. SQLite has one process and no
//! notices: the task returns at once.

use std::time::Duration;

use berth_core::name::RepositoryName;
use sqlx::postgres::{PgListener, PgPool};

use super::db::{CHANGES_CHANNEL, Db, Engine, query_scalar};
use super::{MetaError, MetaStore};
use crate::Registry;

/// How long the listener waits before it connects again after a failure.
const RETRY: Duration = Duration::from_secs(1);

/// Listens for change notices until the process ends (PostgreSQL only).
pub async fn run_listener(r: Registry) {
    let Some(pool) = r.db.postgres().cloned() else {
        return;
    };
    let mut failing = false;
    loop {
        match listen(&pool, r.meta.as_ref(), &mut failing).await {
            Ok(()) => tracing::warn!("change notices: connection lost; listening again"),
            // Once per outage, not once a second.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "change notices: cannot listen; cached answers are dropped and read again until it works");
            }
            Err(_) => {}
        }
        r.meta.forget_all_cached();
        tokio::time::sleep(RETRY).await;
    }
}

/// How many other sessions listen for change notices on the database of
/// `db`: `berth serve` nodes running on it (each keeps one such connection
/// open while it runs). 0 on SQLite. PostgreSQL shows the last statement of
/// a session only to its own role and to monitoring roles: nodes connected
/// as another role are not seen.
pub async fn listening_nodes(db: &Db) -> Result<u64, MetaError> {
    if db.engine() != Engine::Postgres {
        return Ok(0);
    }
    let n: i64 = query_scalar(
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()
            AND query LIKE 'LISTEN %' AND strpos(query, $1) > 0",
    )
    .bind(CHANGES_CHANNEL)
    .fetch_one(db)
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// One listening connection: returns when it is lost.
async fn listen(
    pool: &PgPool,
    meta: &dyn MetaStore,
    failing: &mut bool,
) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.eager_reconnect(false);
    listener.listen(CHANGES_CHANNEL).await?;
    // What was cached before this connection listened may have missed a notice.
    meta.forget_all_cached();
    if *failing {
        *failing = false;
        tracing::info!("change notices: listening again");
    }
    while let Some(notice) = listener.try_recv().await? {
        match RepositoryName::parse(notice.payload()) {
            Ok(name) => meta.forget_cached(&name),
            Err(e) => {
                tracing::warn!(payload = notice.payload(), error = %e, "change notices: not a repository name; ignored")
            }
        }
    }
    Ok(())
}
