//! berth's server: the OCI distribution API on one listener, guarded by a gate
//! that the token service fills in.
//!
//! Layers, each with one rule (see `docs/ARCHITECTURE.md`):
//! - [`http`]: routes and handlers; knows nothing of SQL or files.
//! - [`auth`]: the gate every `/v2` request passes.
//! - [`meta`]: all SQL; knows nothing of HTTP.
//! - [`store`]: blob bytes; knows nothing of names or tags.

pub mod auth;
pub mod config;
pub mod error;
pub mod gc;
pub mod http;
pub mod manifest;
pub mod meta;
pub mod store;

use std::collections::HashSet;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};

use berth_core::endpoint::UploadId;

pub use config::Config;
pub use error::RegistryError;

use crate::meta::{MetaError, MetaStore, SqliteMeta};
use crate::store::{BlobStore, FsStore, StoreError};

/// Everything a request handler needs: settings and the two stores.
#[derive(Clone)]
pub struct Registry {
    /// Settings.
    pub config: Arc<Config>,
    /// Metadata (names, tags, links, sessions).
    pub meta: Arc<dyn MetaStore>,
    /// Blob bytes.
    pub blobs: Arc<dyn BlobStore>,
    /// Upload sessions a request of this process is writing to right now.
    pub busy_uploads: BusyUploads,
}

/// The set of upload sessions being written to, shared by the handlers.
pub type BusyUploads = Arc<Mutex<HashSet<UploadId>>>;

/// Why the registry could not open its data.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The metadata database.
    #[error("cannot open the metadata database: {0}")]
    Meta(#[from] MetaError),
    /// The blob directory.
    #[error("cannot open the blob store: {0}")]
    Store(#[from] StoreError),
}

impl Registry {
    /// Opens the embedded default under `data_dir`: blobs on the filesystem,
    /// metadata in `berth.db` (SQLite).
    pub async fn open_embedded(data_dir: &Path, config: Config) -> Result<Self, OpenError> {
        std::fs::create_dir_all(data_dir).map_err(StoreError::Io)?;
        let blobs = FsStore::open(data_dir)?;
        let meta = SqliteMeta::open(&data_dir.join("berth.db")).await?;
        Ok(Self {
            config: Arc::new(config),
            meta: Arc::new(meta),
            blobs: Arc::new(blobs),
            busy_uploads: BusyUploads::default(),
        })
    }
}

/// Serves the registry on `listener` until `shutdown` completes, then lets
/// in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sweeper = tokio::spawn(gc::run_upload_expiry(registry.clone()));
    let app = http::router(registry);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    sweeper.abort();
    served
}
