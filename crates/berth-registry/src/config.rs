//! What an operator can set about the registry (the CLI fills it from flags,
//! `BERTH_*` variables and the TOML file).

use std::time::Duration;

use crate::meta::url::DatabaseUrl;
use crate::server::Limits;
use crate::server::proxy::TrustedProxies;
use crate::store::S3Settings;

/// The shortest token lifetime berth issues: clients assume 60 s when told
/// less (Docker token spec), so less would only cause surprise expiries.
pub const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// The registry's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The base URL clients reach this registry at (`Location` headers, token realm).
    pub public_url: String,
    /// Upload sessions untouched this long are expired and their bytes removed.
    pub upload_ttl: Duration,
    /// The largest manifest accepted, in bytes (413 above it).
    pub max_manifest_bytes: usize,
    /// Whether DELETE of manifests, tags and blobs is allowed (405 otherwise).
    pub delete_enabled: bool,
    /// The largest page `n` allows on `_catalog` and tag lists.
    pub max_page: u32,
    /// Whether requests need tokens (the default). `false` runs an open
    /// registry with no access control, for local development only.
    pub access_control: bool,
    /// The `service` of challenges and tokens (`aud` of the JWTs).
    pub service: String,
    /// The `iss` of the JWTs.
    pub issuer: String,
    /// How long issued tokens live (`expires_in`); never below 60 s.
    pub token_lifetime: Duration,
    /// Whether repositories are public when their first push creates them.
    pub new_repositories_public: bool,
    /// Connection timeouts and the connection cap.
    pub limits: Limits,
    /// Proxies whose `Forwarded` / `X-Forwarded-For` name the client (for
    /// rate limits and audit lines); none by default.
    pub trusted_proxies: TrustedProxies,
    /// Open upload sessions one user (a token's subject) may hold over all
    /// repositories; 0 is no cap. Without access control there is no user and
    /// only [`Config::max_uploads_per_repository`] applies.
    pub max_uploads_per_user: u32,
    /// Open upload sessions one repository may hold, whoever opened them; 0 is no cap.
    pub max_uploads_per_repository: u32,
    /// Bytes kept allocated in `<data>/reserve` and given back only when the
    /// disk is full, so that deletes (which SQLite must log) still work and
    /// free space; 0 keeps no reserve.
    pub disk_reserve_bytes: u64,
    /// Where the metadata lives: `None` for the embedded SQLite database
    /// under the data directory (the default), or a PostgreSQL database that
    /// several nodes share.
    pub database_url: Option<DatabaseUrl>,
    /// Connections this node opens to PostgreSQL at most (its pool). Every
    /// node's pool counts against the server's `max_connections` (100 by
    /// default); on a machine whose cores PostgreSQL shares, fewer are
    /// faster (BENCHMARKS.md, cluster). Unused with SQLite.
    pub database_max_connections: u32,
    /// Where blob bytes are kept: the data directory (the default) or S3.
    pub blob_store: BlobStoreConfig,
    /// The garbage collector: delays, schedule, retention policies.
    pub gc: GcConfig,
    /// Workload identity: the OpenID Connect issuers whose ID tokens trust
    /// rules may accept, and how they are verified (`trust/`).
    pub oidc: OidcConfig,
    /// Whether the web interface is served at `/` and under `/ui/` (`ui/`).
    pub ui: bool,
    /// Webhook endpoints that events go to (`events/`); none by default.
    pub webhooks: crate::events::Webhooks,
    /// Pull-through cache namespaces (`proxy/`); none by default.
    pub proxies: Vec<crate::proxy::ProxySettings>,
}

/// Workload identity's settings (`trust/`).
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The issuers trust rules may name; tokens of no other issuer are
    /// looked at (their keys are never fetched). Default: GitHub Actions and
    /// gitlab.com.
    pub issuers: Vec<crate::trust::OidcIssuer>,
    /// Whether `http://` issuers on a loopback address are allowed (tests);
    /// otherwise every issuer is `https://`.
    pub allow_loopback: bool,
    /// An ID token issued (`iat`) longer ago is refused, whatever its `exp`.
    pub max_token_age: Duration,
    /// The least time between two fetches of an issuer's keys caused by an
    /// unknown `kid` (a token signed by a key the cache does not hold).
    pub jwks_refresh: Duration,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            issuers: crate::trust::OidcIssuer::defaults(),
            allow_loopback: false,
            max_token_age: Duration::from_secs(60 * 60),
            jwks_refresh: Duration::from_secs(60),
        }
    }
}

/// The garbage collector's settings (`gc/`).
#[derive(Debug, Clone)]
pub struct GcConfig {
    /// How long a blob (or a repository's link to one) stays unreferenced
    /// before it is reclaimed: a push uploads its blobs before the manifest
    /// that names them, and a client may `HEAD` a blob and push a manifest
    /// naming it later. Default 24 h; 0 for tests.
    pub delay: Duration,
    /// How long a manifest stays untagged (and unreferenced) before it is
    /// collected; `None` keeps untagged manifests. Default 24 h.
    pub untagged_delay: Option<Duration>,
    /// Whether a referrer (a signature, an SBOM) stays when its subject
    /// goes; by default it goes with it.
    pub keep_referrers: bool,
    /// How often the collector runs on its own; `None`: only on demand
    /// (`berth admin gc run`, `POST /api/v1/gc`). Default 10 minutes.
    pub interval: Option<Duration>,
    /// Retention policies, the first matching a repository governing it.
    pub retention: Vec<crate::gc::retention::Policy>,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            delay: Duration::from_secs(24 * 60 * 60),
            untagged_delay: Some(Duration::from_secs(24 * 60 * 60)),
            keep_referrers: false,
            interval: Some(Duration::from_secs(10 * 60)),
            retention: Vec::new(),
        }
    }
}

/// Where blob bytes are kept.
#[derive(Debug, Clone, Default)]
pub enum BlobStoreConfig {
    /// `<data>/blobs` and `<data>/uploads` (`store::FsStore`).
    #[default]
    DataDir,
    /// An S3 bucket (`store::S3Store`), shared by every node.
    S3(S3Settings),
}

impl Config {
    /// Defaults for a registry reachable at `public_url`: token auth on, the
    /// service named after the URL's host, private repositories.
    pub fn new(public_url: impl Into<String>) -> Self {
        let public_url = public_url.into().trim_end_matches('/').to_owned();
        let service = service_of(&public_url);
        Self {
            upload_ttl: Duration::from_secs(24 * 60 * 60),
            max_manifest_bytes: 4 * 1024 * 1024,
            delete_enabled: true,
            max_page: 1000,
            access_control: true,
            issuer: "berth".to_owned(),
            service,
            token_lifetime: Duration::from_secs(300),
            new_repositories_public: false,
            limits: Limits::default(),
            trusted_proxies: TrustedProxies::default(),
            // A pushing client holds one session per blob in flight: docker
            // pushes 5 layers at once by default, containerd and skopeo a
            // few more. 100 is ten times the busiest client plus room for the
            // sessions aborted pushes leave until they expire.
            max_uploads_per_user: 100,
            // Ten users' worth on one repository (a CI fleet pushing to
            // one repository at once), while still bounding what an open
            // registry, which has no users to count, lets one client hold.
            max_uploads_per_repository: 1000,
            // Enough for SQLite to log many deletes and checkpoint (its WAL
            // checkpoints at 1,000 pages, 4 MiB) on an otherwise full disk.
            disk_reserve_bytes: 16 * 1024 * 1024,
            blob_store: BlobStoreConfig::DataDir,
            database_url: None,
            database_max_connections: crate::meta::db::PG_MAX_CONNECTIONS,
            gc: GcConfig::default(),
            oidc: OidcConfig::default(),
            ui: true,
            webhooks: crate::events::Webhooks::default(),
            proxies: Vec::new(),
            public_url,
        }
    }

    /// The token lifetime actually issued (at least [`MIN_TOKEN_LIFETIME`]).
    pub fn effective_token_lifetime(&self) -> Duration {
        self.token_lifetime.max(MIN_TOKEN_LIFETIME)
    }

    /// The token endpoint clients are sent to: `<public-url>/token`.
    pub fn realm(&self) -> String {
        format!("{}/token", self.public_url)
    }
}

/// `host[:port]` of a URL, the conventional `service` name (GHCR: `ghcr.io`).
fn service_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = rest.split('/').next().unwrap_or(rest);
    if host.is_empty() {
        "berth".to_owned()
    } else {
        host.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_defaults_to_the_public_host() {
        assert_eq!(
            Config::new("https://registry.example.com/").service,
            "registry.example.com"
        );
        assert_eq!(
            Config::new("http://127.0.0.1:5000").service,
            "127.0.0.1:5000"
        );
        assert_eq!(Config::new("").service, "berth");
        assert_eq!(Config::new("http://r:1").realm(), "http://r:1/token");
    }
}
