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

use super::MetaStore;
use super::db::CHANGES_CHANNEL;
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
