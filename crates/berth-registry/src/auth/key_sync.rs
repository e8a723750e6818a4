//! One set of signing keys for every node sharing PostgreSQL: a token minted
//! by one node verifies on every other, and a rotation or retirement reaches
//! them all within [`REFRESH_INTERVAL`].
//!
//! The shared database is the truth: the files of the keys directory
//! (`auth/keys.rs`) are stored as rows with a generation (`meta/keys_sql.rs`),
//! and each node's `<data-dir>/keys` is a copy it loads from.
//! - [`open`]: the first node on an empty database puts its keys (created, or
//!   those of the embedded registry it was) into it; every later start copies
//!   the stored ones into its directory first.
//! - [`change`]: a rotation or retirement holds the keys lock, brings the
//!   directory up to the stored generation, changes it, and stores it whole
//!   with the next generation before it commits. Two nodes rotating at once
//!   take turns; neither loses the other's key.
//! - [`run_refresh`]: every second each node reads the generation (one
//!   indexed read) and, when it moved, copies the files and reloads.
//!
//! - [`refresh_for_unknown_kid`]: a token naming a key this node does not
//!   know makes the gate copy the keys at once (rate-limited), so a token
//!   minted right after a rotation elsewhere verifies on its first request.
//!
//! The root
//! CA never changes after the first start; a database holding another root
//! than the one loaded is logged as an error and needs a restart.
//!
//! On SQLite (one process) the directory is the only copy and nothing here
//! touches the database.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::keys::{self, KeyError, KeyStore};
use crate::Registry;
use crate::meta::db::{Db, Engine};
use crate::meta::keys_sql;

/// How often a node checks whether the shared keys changed.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// Runs blocking key-file work off the async threads.
async fn blocking<T: Send + 'static, E: From<KeyError> + Send + 'static>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        E::from(KeyError::Generate {
            what: "key (the worker thread failed)",
            reason: e.to_string(),
        })
    })?
}

/// Opens the keys of the registry on `db`, their files under `dir`.
pub async fn open(db: &Db, dir: &Path) -> Result<KeyStore, KeyError> {
    let dir = dir.to_path_buf();
    if db.engine() == Engine::Sqlite {
        return blocking(move || KeyStore::open(&dir)).await;
    }
    let mut tx = keys_sql::begin(db).await?;
    let (generation, files) = keys_sql::read(&mut tx).await?;
    if files.is_empty() {
        let (store, files) = blocking(move || {
            let store = KeyStore::open(&dir)?;
            let files = keys::read_files(&dir)?;
            Ok::<_, KeyError>((store, files))
        })
        .await?;
        let generation = keys_sql::replace(&mut tx, &files).await?;
        tx.commit().await.map_err(crate::meta::MetaError::from)?;
        store.set_synced(generation);
        tracing::info!(generation, "token keys stored in the shared database");
        return Ok(store);
    }
    let store = blocking(move || {
        keys::write_files(&dir, &files)?;
        KeyStore::open(&dir)
    })
    .await?;
    store.set_synced(generation);
    Ok(store)
}

/// Changes the keys with `op` (a rotation, a retirement), for every node.
pub async fn change<T, E>(
    db: &Db,
    store: &Arc<KeyStore>,
    op: impl FnOnce(&KeyStore) -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<KeyError> + Send + 'static,
{
    if db.engine() == Engine::Sqlite {
        let store = Arc::clone(store);
        return blocking(move || op(&store)).await;
    }
    let _local = store.sync_lock().lock().await;
    let mut tx = keys_sql::begin(db).await.map_err(KeyError::from)?;
    let (generation, files) = keys_sql::read(&mut tx).await.map_err(KeyError::from)?;
    let changing = Arc::clone(store);
    let (result, files) = blocking(move || {
        if generation != changing.synced() {
            keys::write_files(changing.dir(), &files)?;
            changing.reload()?;
        }
        let result = op(&changing)?;
        let files = keys::read_files(changing.dir())?;
        Ok::<_, E>((result, files))
    })
    .await?;
    let generation = keys_sql::replace(&mut tx, &files)
        .await
        .map_err(KeyError::from)?;
    tx.commit()
        .await
        .map_err(|e| KeyError::from(crate::meta::MetaError::from(e)))?;
    store.set_synced(generation);
    Ok(result)
}

/// Copies the shared keys here when another node changed them.
async fn refresh(db: &Db, store: &Arc<KeyStore>) -> Result<(), KeyError> {
    if keys_sql::generation(db).await? == store.synced() {
        return Ok(());
    }
    let _local = store.sync_lock().lock().await;
    let (generation, files) = keys_sql::read(db).await?;
    if generation == store.synced() {
        return Ok(());
    }
    if !store.same_root(&files) {
        tracing::error!(
            "the shared database holds another token root certificate than this node loaded; \
             restart this node to take it"
        );
        return Ok(());
    }
    let changing = Arc::clone(store);
    blocking(move || {
        keys::write_files(changing.dir(), &files)?;
        changing.reload()
    })
    .await?;
    store.set_synced(generation);
    Ok(())
}

/// Shortest time between two lookups for an unknown `kid`, per node: a flood
/// of forged tokens costs the database at most this many reads a second.
const UNKNOWN_KID_LOOKUP_GAP_MS: u64 = 100;

/// A token names a key this node does not have: perhaps one another node
/// created since the last refresh. Copies the shared keys now (at most once
/// per [`UNKNOWN_KID_LOOKUP_GAP_MS`]) and says whether they changed, so the
/// caller verifies again: a token minted on another node right after a
/// rotation verifies here on its first request.
pub async fn refresh_for_unknown_kid(r: &Registry) -> bool {
    let Some(store) = &r.keys else {
        return false;
    };
    if r.db.engine() != Engine::Postgres
        || !store.may_look_up_unknown_kid(UNKNOWN_KID_LOOKUP_GAP_MS)
    {
        return false;
    }
    let before = store.synced();
    match refresh(&r.db, store).await {
        Ok(()) => store.synced() != before,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the shared token keys for an unknown kid");
            false
        }
    }
}

/// Keeps this node's keys in step with the shared database until the
/// process ends (PostgreSQL and access control only).
pub async fn run_refresh(r: Registry) {
    let Some(store) = r.keys.clone() else {
        return;
    };
    if r.db.engine() != Engine::Postgres {
        return;
    }
    let mut tick = tokio::time::interval(REFRESH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut outage = super::Outage::default();
    loop {
        tick.tick().await;
        outage.note(refresh(&r.db, &store).await, "the shared token keys");
    }
}
