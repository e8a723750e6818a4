//! berth's server: the OCI distribution API on one listener, guarded by a gate
//! that the token service fills in.
//!
//! Layers, each with one rule (see `docs/ARCHITECTURE.md`):
//! - [`http`]: routes and handlers; knows nothing of SQL or files.
//! - [`auth`]: the gate every `/v2` request passes.
//! - [`meta`]: all SQL; knows nothing of HTTP.
//! - [`store`]: blob bytes; knows nothing of names or tags.

pub mod auth;
pub mod backup;
pub mod clock;
pub mod config;
pub mod error;
pub mod events;
pub mod gc;
pub mod http;
pub mod identity;
pub mod manifest;
pub mod meta;
pub mod metrics;
pub mod migrate;
pub mod policy;
pub mod proxy;
pub mod server;
pub mod store;
pub mod trust;
pub mod ui;
pub mod usage;

use std::collections::HashSet;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};

use berth_core::endpoint::UploadId;

pub use config::{BlobStoreConfig, Config};
pub use error::RegistryError;

use crate::auth::authenticate::Authenticator;
use crate::auth::jwt::TokenIssuer;
use crate::auth::keys::{KeyError, KeyStore};
use crate::auth::revocation::Revocations;
use crate::identity::{IdentityError, IdentityStore};
use crate::meta::cache::CachedMeta;
use crate::meta::db::{Db, Engine};
use crate::meta::{MetaError, MetaStore, SqlMeta};
use crate::store::space::DiskSpace;
use crate::store::{BlobStore, FsStore, S3Store, StoreError};

/// Everything a request handler needs: settings, the stores, and the token machinery.
#[derive(Clone)]
pub struct Registry {
    /// Settings.
    pub config: Arc<Config>,
    /// Metadata (names, tags, links, sessions).
    pub meta: Arc<dyn MetaStore>,
    /// The metadata database itself: SQLite, or PostgreSQL shared by every
    /// node (for the change listener and the signing keys).
    pub db: Db,
    /// Blob bytes.
    pub blobs: Arc<dyn BlobStore>,
    /// Users, organisations, tokens.
    pub identity: Arc<dyn IdentityStore>,
    /// Credentials to subjects.
    pub authn: Arc<Authenticator>,
    /// The signing keys (`None` when access control is off).
    pub keys: Option<Arc<KeyStore>>,
    /// Issues and verifies tokens (`None` when access control is off).
    pub tokens: Option<Arc<TokenIssuer>>,
    /// Revocations in force: what the gate refuses of tokens already issued.
    pub revocations: Arc<Revocations>,
    /// Upload sessions a request of this process is writing to right now.
    pub busy_uploads: BusyUploads,
    /// The data disk: the space kept for deletes, and the full-disk state.
    pub disk: Arc<DiskSpace>,
    /// Counters served at `/metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// The garbage collector's state on this node (pull times, the running collection).
    pub gc: Arc<gc::collector::GcState>,
    /// Where events go: the webhook endpoints, sampled pulls, the delivery
    /// worker's wake-up.
    pub events: Arc<events::Events>,
    /// The pull-through cache namespaces.
    pub proxies: Arc<proxy::Proxies>,
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
    /// The token signing keys.
    #[error("cannot open the token signing keys: {0}")]
    Keys(#[from] KeyError),
    /// The identity store.
    #[error("cannot set up users: {0}")]
    Identity(#[from] IdentityError),
    /// The pull-through cache namespaces.
    #[error("cannot set up the pull-through cache: {0}")]
    Proxy(#[from] proxy::ProxyError),
}

impl Registry {
    /// Opens the embedded default under `data_dir`: metadata in `berth.db`
    /// (SQLite), signing keys under `keys/`, whatever `config.database_url`
    /// says; blobs where `config.blob_store` says (the filesystem by default).
    pub async fn open_embedded(data_dir: &Path, mut config: Config) -> Result<Self, OpenError> {
        config.database_url = None;
        Self::open(data_dir, config).await
    }

    /// Opens the registry: blobs where `config.blob_store` says (the
    /// filesystem under `data_dir`, or an S3 bucket, checked to answer), and
    /// the metadata where `config.database_url` says: the embedded SQLite
    /// database `berth.db` under `data_dir` (signing keys under `keys/`), or
    /// a PostgreSQL database shared by several nodes.
    pub async fn open(data_dir: &Path, config: Config) -> Result<Self, OpenError> {
        std::fs::create_dir_all(data_dir).map_err(StoreError::Io)?;
        let blobs: Arc<dyn BlobStore> = match &config.blob_store {
            BlobStoreConfig::DataDir => Arc::new(FsStore::open(data_dir)?),
            BlobStoreConfig::S3(settings) => {
                let store = S3Store::open(settings)?;
                store.ready().await?;
                Arc::new(store)
            }
        };
        let meta = match &config.database_url {
            None => SqlMeta::open(&data_dir.join(DATABASE_FILE)).await?,
            Some(url) => {
                SqlMeta::open_postgres_with(url.expose(), config.database_max_connections).await?
            }
        };
        let metrics = Arc::new(metrics::Metrics::default());
        let events = Arc::new(events::Events::new(
            config.webhooks.clone(),
            config.public_url.clone(),
            metrics.clone(),
        ));
        let meta = meta
            .with_new_repositories_public(config.new_repositories_public)
            .with_token_lifetime(config.effective_token_lifetime())
            .with_events(events.clone());
        let revocations = Revocations::load(Arc::new(meta.clone())).await?;
        let (keys, tokens) = if config.access_control {
            let keys = Arc::new(auth::key_sync::open(meta.db(), &data_dir.join(KEYS_DIR)).await?);
            let tokens =
                TokenIssuer::new(keys.clone(), config.issuer.clone(), config.service.clone());
            (Some(keys), Some(Arc::new(tokens)))
        } else {
            (None, None)
        };
        let identity: Arc<dyn IdentityStore> = Arc::new(meta.clone());
        let db = meta.db().clone();
        let other_writers = db.engine() == Engine::Postgres;
        let disk = Arc::new(DiskSpace::open(data_dir, config.disk_reserve_bytes));
        let authn = Arc::new(Authenticator::new(identity.clone(), &config.oidc));
        let proxies = Arc::new(proxy::Proxies::new(
            &config.proxies,
            data_dir.join(PROXY_SPOOL_DIR),
        )?);
        proxies.set_stored(&meta::proxies_sql::list(&db).await?);
        Ok(Self {
            config: Arc::new(config),
            meta: Arc::new(CachedMeta::new(meta).with_other_writers(other_writers)),
            db,
            blobs,
            authn,
            identity,
            keys,
            tokens,
            revocations: Arc::new(revocations),
            busy_uploads: BusyUploads::default(),
            disk,
            metrics,
            gc: Arc::default(),
            events,
            proxies,
        })
    }

    /// What policy needs to know of repository `name`: a repository of a
    /// proxy namespace by the proxy's settings (whether it was pulled
    /// through yet or not), any other by its record (`None`: it does not
    /// exist).
    pub async fn repository_facts(
        &self,
        name: &berth_core::name::RepositoryName,
    ) -> Result<Option<policy::RepositoryFacts>, MetaError> {
        if let Some(facts) = self.proxies.facts(name) {
            return Ok(Some(facts));
        }
        Ok(self
            .meta
            .repository_info(name)
            .await?
            .map(|info| policy::RepositoryFacts {
                public: info.public,
                proxied: false,
            }))
    }

    /// On a registry with no users, creates the administrator `admin` with
    /// `password`, or with a generated one that is returned (to be shown once).
    /// Returns `None` when users already exist.
    pub async fn bootstrap_admin(
        &self,
        password: Option<String>,
    ) -> Result<Option<String>, OpenError> {
        if self.identity.count_users().await? > 0 {
            return Ok(None);
        }
        let generated = password.is_none();
        let password = match password {
            Some(p) => p,
            None => {
                // The random part of a token secret (43 base62 characters,
                // over 256 bits) makes a strong one-time password.
                let (secret, _) = identity::secret::generate_pat()?;
                secret
                    .expose()
                    .trim_start_matches(identity::secret::PAT_PREFIX)
                    .to_owned()
            }
        };
        let hash = {
            let password = password.clone();
            tokio::task::spawn_blocking(move || identity::password::hash_password(&password))
                .await
                .map_err(|e| IdentityError::PasswordHash(e.to_string()))??
        };
        match self
            .identity
            .create_user(ADMIN_USER, Some(&hash), true)
            .await
        {
            Ok(_) => Ok(generated.then_some(password)),
            // Another node sharing the database started at the same moment
            // and created it first: its password stands.
            Err(IdentityError::NameTaken(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// The metadata database's file name under the data directory.
pub const DATABASE_FILE: &str = "berth.db";
/// Where blobs being fetched by the pull-through cache are spooled, under
/// the data directory (emptied at start).
pub const PROXY_SPOOL_DIR: &str = "proxy-spool";
/// The signing keys' directory under the data directory (`auth::keys`).
pub const KEYS_DIR: &str = "keys";

/// Why `dir` is not the data directory of an embedded registry (none, no
/// `berth.db` in it), or `None` when it is one: what `berth backup` and
/// `berth migrate` check their source with.
pub fn not_a_data_dir(dir: &Path) -> std::io::Result<Option<String>> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(Some("no such directory".to_owned()))
        }
        Err(e) => Err(e),
        Ok(m) if !m.is_dir() => Ok(Some("not a directory".to_owned())),
        Ok(_) if !dir.join(DATABASE_FILE).is_file() => {
            Ok(Some(format!("it has no {DATABASE_FILE}")))
        }
        Ok(_) => Ok(None),
    }
}

/// The administrator created on first start.
pub const ADMIN_USER: &str = "admin";

/// Serves the registry on `listener` (plain HTTP) until `shutdown`
/// completes, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_tls(listener, registry, None, shutdown).await
}

/// Serves the registry on `listener`, over TLS with the certificate of
/// `tls` when given, until `shutdown` completes, then lets in-flight requests
/// finish.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    registry: Registry,
    tls: Option<Arc<server::tls::CertStore>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sweeper = tokio::spawn(gc::run_sweep(registry.clone()));
    let collector = tokio::spawn(gc::collector::run_schedule(registry.clone()));
    let pull_times = tokio::spawn(gc::pulls::run_flush(registry.clone()));
    let revocation_refresh = tokio::spawn(auth::revocation::run_refresh(registry.clone()));
    let change_listener = tokio::spawn(meta::notify::run_listener(registry.clone()));
    let key_refresh = tokio::spawn(auth::key_sync::run_refresh(registry.clone()));
    let event_delivery = tokio::spawn(events::delivery::run(registry.clone()));
    let proxy_refresh = tokio::spawn(proxy::run_refresh(registry.clone()));
    let last_flush = registry.clone();
    let served = server::serve(listener, registry, tls, shutdown).await;
    sweeper.abort();
    collector.abort();
    pull_times.abort();
    // Pulls noted since the last write are not lost with the process.
    let sql = meta::gc_sql::GcSql::new(last_flush.db.clone());
    if let Err(e) = last_flush.gc.pulls.flush(&sql, clock::now_unix()).await {
        tracing::warn!(error = %e, "writing pull times at shutdown failed");
    }
    // Deliveries under way stop here; their leases lapse and another
    // attempt (this node restarted, or another) sends them again. Stopped
    // between two writes of queued pulls, then the rest written.
    {
        let _flushing = last_flush.events.flushing.lock().await;
        event_delivery.abort();
    }
    events::delivery::flush_pulls(&last_flush).await;
    revocation_refresh.abort();
    proxy_refresh.abort();
    change_listener.abort();
    key_refresh.abort();
    served
}
