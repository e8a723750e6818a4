//! Pull-through cache: namespaces whose repositories are another registry's,
//! fetched on the first pull and served locally after.
//!
//! A repository `<proxy>/<rest>` stands for `<rest>` on the proxy's upstream
//! ([`settings::ProxySettings::upstream_name`]). What a pull finds missing is
//! fetched through berth-client (challenges, scopes, token refresh, each
//! registry's dialect) and stored like pushed content, marked as cached
//! (`MetaStore::put_cached_manifest`: an image's layers are fetched when a
//! client asks for them, not with the manifest). The rules:
//!
//! - **Manifests** ([`manifests`]): by digest, fetched once and kept (a digest
//!   names fixed bytes). By tag, served locally while the tag's last upstream
//!   answer is younger than `tag_ttl`; after that one `HEAD` upstream checks
//!   it, and only a moved tag fetches the manifest again. One request per
//!   tag or digest goes upstream at a time; others wait for its answer.
//! - **Blobs** ([`blobs`]): one upstream fetch per digest however many
//!   clients ask at once (a *flight*): the bytes go to a spool file that
//!   every asking client reads as it grows, so the first byte reaches them
//!   as soon as it arrives. The digest is checked over the whole stream;
//!   only then are the bytes committed to the blob store and linked into
//!   the repository (a mismatch leaves nothing behind). A blob the store
//!   already holds is linked after one `HEAD` upstream confirms the
//!   repository has it: holding the bytes is not proof that this repository
//!   may serve them.
//! - **Upstream trouble** ([`UpstreamFailure`]): a tag whose check fails
//!   (network, 5xx, 429) is served from the last good answer, with a log
//!   line; a miss answers 429 `TOOMANYREQUESTS` passing on the upstream's
//!   `Retry-After`, or 503 naming the upstream.
//! - **Access** (`policy::allowed_actions`, facts from
//!   `Registry::repository_facts`): pull for the proxy's `access`, delete for
//!   administrators (to purge a bad cache entry), push for nobody.
//!
//! Cached content is ordinary content to the garbage collector and to
//! retention policies (`[[retention]]` with `unpulled_days` purges what
//! nobody pulled).

pub mod blobs;
pub mod manifests;
pub mod settings;
pub mod tags;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use berth_client::auth::TransportOptions;
use berth_client::client::{ClientError, RegistryClient};
use berth_client::credentials::Credential;
use berth_core::digest::Digest;
use berth_core::name::RepositoryName;
use berth_core::oci_error::ErrorCode;

use crate::error::RegistryError;
use crate::events::Actor;
pub use settings::{Access, ProxySettings, ProxyText};

/// The subject of the changes a cache fill makes (events, logs): no user,
/// robot or CI job's subject has a `:` but a job's `trust:` prefix.
pub const PROXY_ACTOR: &str = "berth:proxy";

/// The actor of a cache fill caused by the request `cause`.
pub fn actor(cause: &Actor) -> Actor {
    Actor {
        subject: Some(PROXY_ACTOR.to_owned()),
        request_id: cause.request_id.clone(),
    }
}

/// The proxy namespaces of this registry: those of the configuration
/// (fixed for the process) and those stored through the admin API (put in
/// force by [`run_refresh`] on every node).
pub struct Proxies {
    configured: Vec<ProxySettings>,
    spool: PathBuf,
    spool_ready: Mutex<bool>,
    current: RwLock<Arc<Vec<Arc<Proxy>>>>,
}

/// Where a proxy namespace was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The configuration file or a flag: changed by a restart.
    Config,
    /// The admin API (`/api/v1/proxies`): stored in the database.
    Api,
}

impl Source {
    /// The word the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Api => "api",
        }
    }
}

/// A repository of a proxy namespace: the proxy and the upstream name.
#[derive(Clone)]
pub struct Target {
    /// The proxy namespace.
    pub proxy: Arc<Proxy>,
    /// The repository on the upstream registry.
    pub upstream: RepositoryName,
}

impl Target {
    /// The refusal of `action` (beyond pull) on `name`, a repository of
    /// this proxy: 403 `DENIED` saying whose content it is.
    pub fn refusal(
        &self,
        name: &RepositoryName,
        action: &berth_core::scope::Action,
    ) -> RegistryError {
        let what = match action {
            berth_core::scope::Action::Delete => {
                "only an administrator deletes from it (to purge a cached copy)"
            }
            _ => "nothing is pushed into it; push to a namespace of your own",
        };
        RegistryError::spec(
            ErrorCode::Denied,
            format!(
                "{name} is in the pull-through cache `{}` of {}: its content comes from there, and {what}",
                self.proxy.settings.name,
                self.proxy.settings.origin()
            ),
        )
    }
}

/// Every few seconds, puts the namespaces stored in the database in force
/// (another node's `POST /api/v1/proxies` reaches this one within that).
pub async fn run_refresh(r: crate::Registry) {
    let mut seen: Option<Vec<ProxyText>> = None;
    loop {
        match crate::meta::proxies_sql::list(&r.db).await {
            Ok(stored) if seen.as_ref() != Some(&stored) => {
                r.proxies.set_stored(&stored);
                seen = Some(stored);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reading the stored proxy namespaces failed"),
        }
        tokio::time::sleep(REFRESH).await;
    }
}

/// How often [`run_refresh`] reads the stored namespaces.
pub const REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

/// Why the proxies could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The upstream client could not be built (a TLS setting).
    #[error("proxy {name}: cannot set up the upstream client: {source}")]
    Client {
        /// The proxy.
        name: String,
        /// Why.
        #[source]
        source: Box<ClientError>,
    },
    /// The spool directory.
    #[error("cannot prepare the proxy spool directory {path}: {source}")]
    Spool {
        /// The directory.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl Proxies {
    /// The namespaces of the configuration (`settings`), spooling blobs in
    /// flight under `spool` (emptied before the first use: what a previous
    /// process left is of no use). Stored ones join with [`Proxies::set_stored`].
    pub fn new(settings: &[ProxySettings], spool: PathBuf) -> Result<Proxies, ProxyError> {
        let proxies = Proxies {
            configured: settings.to_vec(),
            spool,
            spool_ready: Mutex::new(false),
            current: RwLock::default(),
        };
        let list = settings
            .iter()
            .map(|settings| proxies.build(settings, Source::Config))
            .collect::<Result<Vec<_>, _>>()?;
        *proxies.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(list);
        Ok(proxies)
    }

    /// A proxy at work for `settings` (the spool made ready first).
    fn build(&self, settings: &ProxySettings, source: Source) -> Result<Arc<Proxy>, ProxyError> {
        self.prepare_spool()?;
        let credential =
            settings
                .credential
                .as_ref()
                .map(|(username, password)| Credential::Basic {
                    username: username.clone(),
                    password: password.expose().to_owned(),
                });
        let options = TransportOptions {
            insecure: Some(settings.insecure),
            user_agent: Some(format!(
                "berth/{} (pull-through cache)",
                env!("CARGO_PKG_VERSION")
            )),
            ..TransportOptions::default()
        };
        let client = RegistryClient::new(settings.upstream.clone(), credential, options).map_err(
            |source| ProxyError::Client {
                name: settings.name.clone(),
                source: Box::new(source),
            },
        )?;
        Ok(Arc::new(Proxy {
            settings: settings.clone(),
            source,
            client,
            spool: self.spool.clone(),
            fresh: Mutex::default(),
            locks: Mutex::default(),
            flights: Mutex::default(),
            counters: Counters::default(),
        }))
    }

    /// Empties (or makes) the spool directory, once per process.
    fn prepare_spool(&self) -> Result<(), ProxyError> {
        let mut ready = self.spool_ready.lock().unwrap_or_else(|e| e.into_inner());
        if *ready {
            return Ok(());
        }
        let spool_error = |source| ProxyError::Spool {
            path: self.spool.display().to_string(),
            source,
        };
        match std::fs::remove_dir_all(&self.spool) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(spool_error(e)),
        }
        std::fs::create_dir_all(&self.spool).map_err(spool_error)?;
        *ready = true;
        Ok(())
    }

    /// Puts the stored namespaces (the admin API's) in force beside the
    /// configured ones: a namespace whose settings did not change keeps its
    /// state (fetches under way, tags' freshness, counters). A stored one
    /// that no longer parses (its password file gone) or takes a configured
    /// name is left out, with a log line.
    pub fn set_stored(&self, stored: &[ProxyText]) {
        let before = self.list();
        let mut list: Vec<Arc<Proxy>> = before
            .iter()
            .filter(|p| p.source == Source::Config)
            .cloned()
            .collect();
        for text in stored {
            let settings = match ProxySettings::parse(text) {
                Ok(settings) => settings,
                Err(e) => {
                    tracing::warn!(error = %e, "a stored proxy namespace is left out");
                    continue;
                }
            };
            if self.configured.iter().any(|c| c.name == settings.name) {
                tracing::warn!(
                    proxy = settings.name.as_str(),
                    "a stored proxy namespace has the name of a configured one, which stands"
                );
                continue;
            }
            let kept = before
                .iter()
                .find(|p| p.source == Source::Api && p.settings == settings)
                .cloned();
            match kept.map_or_else(|| self.build(&settings, Source::Api), Ok) {
                Ok(proxy) => list.push(proxy),
                Err(e) => tracing::warn!(error = %e, "a stored proxy namespace is left out"),
            }
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(list);
    }

    /// Whether no proxy namespace is in force.
    pub fn is_empty(&self) -> bool {
        self.list().is_empty()
    }

    /// The proxy namespaces in force: the configured ones, then the stored ones.
    pub fn list(&self) -> Arc<Vec<Arc<Proxy>>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether `name` is a namespace of the configuration file or flags.
    pub fn is_configured(&self, name: &str) -> bool {
        self.configured.iter().any(|p| p.name == name)
    }

    /// The proxy namespace `name` is under, with the upstream repository;
    /// `None` for a repository of no proxy.
    pub fn find(&self, name: &RepositoryName) -> Option<Target> {
        let list = self.current.read().unwrap_or_else(|e| e.into_inner());
        let proxy = list.iter().find(|p| name.namespace() == p.settings.name)?;
        Some(Target {
            proxy: proxy.clone(),
            upstream: proxy.settings.upstream_name(name)?,
        })
    }

    /// What policy knows of a repository of a proxy namespace (`None` for
    /// any other): it exists, pulled through or not, as the proxy's access says.
    pub fn facts(&self, name: &RepositoryName) -> Option<crate::policy::RepositoryFacts> {
        self.find(name)
            .map(|target| crate::policy::RepositoryFacts {
                public: target.proxy.settings.access == Access::Public,
                proxied: true,
            })
    }

    /// The proxies' counters in the Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        let list = self.list();
        if list.is_empty() {
            return;
        }
        let families: [Family; 3] = [
            (
                "berth_proxy_manifests_total",
                "Manifest requests of proxy namespaces, by how they were answered: hit (local, fresh), revalidated (a HEAD upstream confirmed the tag), fetched (from upstream), stale (upstream failed; the last good answer served).",
                "result",
                |c| {
                    [
                        ("hit", load(&c.manifest_hits)),
                        ("revalidated", load(&c.manifest_revalidated)),
                        ("fetched", load(&c.manifest_fetched)),
                        ("stale", load(&c.manifest_stale)),
                    ]
                },
            ),
            (
                "berth_proxy_blobs_total",
                "Blob requests of proxy namespaces, by how they were answered: hit (local), linked (held already; a HEAD upstream confirmed the repository has it), fetched (started an upstream fetch), joined (read a fetch already under way).",
                "result",
                |c| {
                    [
                        ("hit", load(&c.blob_hits)),
                        ("linked", load(&c.blob_linked)),
                        ("fetched", load(&c.blob_fetched)),
                        ("joined", load(&c.blob_joined)),
                    ]
                },
            ),
            (
                "berth_proxy_upstream_errors_total",
                "Upstream requests of proxy namespaces that failed, by kind.",
                "kind",
                |c| {
                    [
                        ("not_found", load(&c.errors_not_found)),
                        ("rate_limited", load(&c.errors_rate_limited)),
                        ("unavailable", load(&c.errors_unavailable)),
                        ("digest_mismatch", load(&c.errors_digest)),
                    ]
                },
            ),
        ];
        for (family, help, label, values) in families {
            let _ = writeln!(out, "# HELP {family} {help}");
            let _ = writeln!(out, "# TYPE {family} counter");
            for proxy in list.iter() {
                for (value, n) in values(&proxy.counters) {
                    let _ = writeln!(
                        out,
                        "{family}{{proxy=\"{}\",{label}=\"{value}\"}} {n}",
                        proxy.settings.name
                    );
                }
            }
        }
        out.push_str("# HELP berth_proxy_fetched_bytes_total Bytes fetched from upstream registries (blobs and manifests).\n");
        out.push_str("# TYPE berth_proxy_fetched_bytes_total counter\n");
        for proxy in list.iter() {
            let _ = writeln!(
                out,
                "berth_proxy_fetched_bytes_total{{proxy=\"{}\"}} {}",
                proxy.settings.name,
                load(&proxy.counters.bytes_fetched)
            );
        }
    }
}

/// A counter family: name, help, label, and each label value's count.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Counters) -> [(&'static str, u64); 4],
);

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// One proxy namespace at work: its upstream client, what it knows of tags'
/// freshness, the fetches under way, its counters.
pub struct Proxy {
    /// The settings.
    pub settings: ProxySettings,
    /// Where they were set.
    pub source: Source,
    /// The upstream client (one connection pool and token cache).
    client: RegistryClient,
    /// Where blobs in flight are spooled.
    spool: PathBuf,
    /// When each cached tag (`<repository>:<tag>`) was last confirmed upstream.
    fresh: Mutex<HashMap<String, Instant>>,
    /// One upstream manifest request per tag or digest at a time.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Blob fetches under way, by digest.
    flights: Mutex<HashMap<Digest, Arc<blobs::Flight>>>,
    /// What `/metrics` shows.
    pub counters: Counters,
}

/// A proxy's counters.
#[derive(Default)]
pub struct Counters {
    manifest_hits: AtomicU64,
    manifest_revalidated: AtomicU64,
    manifest_fetched: AtomicU64,
    manifest_stale: AtomicU64,
    blob_hits: AtomicU64,
    blob_linked: AtomicU64,
    blob_fetched: AtomicU64,
    blob_joined: AtomicU64,
    errors_not_found: AtomicU64,
    errors_rate_limited: AtomicU64,
    errors_unavailable: AtomicU64,
    errors_digest: AtomicU64,
    /// Bytes fetched from the upstream.
    pub bytes_fetched: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Proxy {
    /// The lock that lets one request per `key` ask upstream at a time.
    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if locks.len() > 10_000 {
            // Entries no request holds any more.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        locks.entry(key.to_owned()).or_default().clone()
    }

    /// Whether a tag's last upstream answer is younger than the TTL.
    fn is_fresh(&self, key: &str) -> bool {
        let fresh = self.fresh.lock().unwrap_or_else(|e| e.into_inner());
        fresh
            .get(key)
            .is_some_and(|at| at.elapsed() < self.settings.tag_ttl)
    }

    /// Notes that upstream just confirmed a tag.
    fn confirm(&self, key: String) {
        let mut fresh = self.fresh.lock().unwrap_or_else(|e| e.into_inner());
        if fresh.len() > 100_000 {
            let ttl = self.settings.tag_ttl;
            fresh.retain(|_, at| at.elapsed() < ttl);
        }
        fresh.insert(key, Instant::now());
    }

    /// Counts a blob request served from the cache.
    pub fn note_blob_hit(&self) {
        bump(&self.counters.blob_hits);
    }

    /// Records a failed upstream request.
    fn count_failure(&self, failure: &UpstreamFailure) {
        let c = &self.counters;
        bump(match failure {
            UpstreamFailure::NotFound(_) => &c.errors_not_found,
            UpstreamFailure::RateLimited { .. } => &c.errors_rate_limited,
            UpstreamFailure::Unavailable(_) => &c.errors_unavailable,
            UpstreamFailure::DigestMismatch(_) => &c.errors_digest,
        });
    }
}

/// How an upstream request failed, as the cache answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// The upstream has no such thing, or will not show it to the cache's
    /// account (Docker Hub answers a missing repository 401).
    NotFound(String),
    /// 429: the upstream's rate limit, with its `Retry-After` in seconds.
    RateLimited {
        /// What the upstream said.
        message: String,
        /// `Retry-After`, when sent.
        retry_after: Option<u64>,
    },
    /// Unreachable, a 5xx, or an answer that breaks the protocol.
    Unavailable(String),
    /// Bytes whose digest is not the one named.
    DigestMismatch(String),
}

impl UpstreamFailure {
    /// The failure of a berth-client operation.
    pub fn of(error: &ClientError) -> UpstreamFailure {
        match error {
            ClientError::NotFound { message, .. }
            | ClientError::Unauthorized { message, .. }
            | ClientError::Denied { message, .. } => UpstreamFailure::NotFound(message.clone()),
            ClientError::TooManyRequests {
                message,
                retry_after,
                ..
            } => UpstreamFailure::RateLimited {
                message: message.clone(),
                retry_after: *retry_after,
            },
            ClientError::DigestMismatch { .. } => {
                UpstreamFailure::DigestMismatch(error.to_string())
            }
            other => UpstreamFailure::Unavailable(other.to_string()),
        }
    }

    /// Whether the upstream answered that the thing is not there (as
    /// opposed to not answering): cached content is not served over it.
    pub fn is_not_found(&self) -> bool {
        matches!(self, UpstreamFailure::NotFound(_))
    }

    /// The answer to a client whose request could not be served from the
    /// cache: `what` is `manifest <ref>` or `blob <digest>`, `code` the
    /// not-found code of that kind.
    pub fn to_error(
        &self,
        proxy: &ProxySettings,
        name: &RepositoryName,
        what: &str,
        code: ErrorCode,
    ) -> RegistryError {
        let origin = proxy.origin();
        match self {
            UpstreamFailure::NotFound(_) => RegistryError::spec(
                code,
                format!(
                    "{what} is not in {name}: {origin} has no such {what_kind} (or does not show it to the cache's account); check the name",
                    what_kind = what.split(' ').next().unwrap_or("content"),
                ),
            ),
            UpstreamFailure::RateLimited { retry_after, .. } => RegistryError::LimitReached {
                message: format!(
                    "{what} of {name} is not cached yet, and {origin} is rate limiting this cache; retry later"
                ),
                retry_after_secs: retry_after.unwrap_or(60),
            },
            UpstreamFailure::Unavailable(cause) => RegistryError::UpstreamUnavailable {
                message: format!(
                    "{what} of {name} is not cached yet, and {origin} cannot be reached ({cause}); retry later"
                ),
            },
            UpstreamFailure::DigestMismatch(cause) => RegistryError::UpstreamUnavailable {
                message: format!(
                    "{what} of {name}: {origin} sent content that does not match its digest ({cause}); nothing was cached, retry later"
                ),
            },
        }
    }
}
