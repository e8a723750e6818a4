//! `berth serve`: settings from flags, `BERTH_*` variables and a TOML file
//! (in that order of precedence), resolved before any I/O; then the server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use berth_registry::config::{GcConfig, OidcConfig};
use berth_registry::events::{EndpointText, Webhooks};
use berth_registry::gc::retention::{Policy, PolicyText};
use berth_registry::meta::url::DatabaseUrl;
use berth_registry::proxy::ProxyText;
use berth_registry::server::proxy::TrustedProxies;
use berth_registry::server::tls::CertStore;
use berth_registry::store::S3Settings;
use berth_registry::trust::OidcIssuer;
use berth_registry::{BlobStoreConfig, Config, Registry};
use clap::Args;
use serde::Deserialize;

use crate::logging::{self, LogFormat};

/// How long in-flight requests may run after SIGINT/SIGTERM before the process exits.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Run the registry.
///
/// Every option can also be set by the `BERTH_*` variable named with it, or
/// by a key of the same name (`listen`, `data_dir`, ...) in the TOML file given
/// with `--config`. Flags win over variables, variables over the file.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:5000].
    #[arg(long, env = "BERTH_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,

    /// Directory for blobs, the SQLite database and keys [default: ./berth-data].
    #[arg(long, env = "BERTH_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// PostgreSQL database for the metadata, shared by every node of a
    /// cluster: postgres://USER@HOST[:PORT]/DATABASE [default: the embedded
    /// SQLite database <data-dir>/berth.db].
    ///
    /// Several `berth serve` processes on one database (and one blob store)
    /// serve the same registry behind any load balancer: the signing keys,
    /// sessions and revocations live in the database. Give a password in
    /// BERTH_DATABASE_URL or PGPASSWORD, never in this flag (a command line
    /// is visible to every local user).
    #[arg(long, env = "BERTH_DATABASE_URL", value_name = "URL")]
    database_url: Option<DatabaseUrl>,

    /// Connections this node opens to PostgreSQL at most [default: 16].
    ///
    /// Every node's pool counts against PostgreSQL's `max_connections` (100
    /// by default): nodes x this must stay under it, with room for `psql`
    /// and backups. Where PostgreSQL shares the nodes' cores, fewer are
    /// faster (4 on two cores). Unused with SQLite.
    #[arg(long, env = "BERTH_DATABASE_MAX_CONNECTIONS", value_name = "N")]
    database_max_connections: Option<u32>,

    /// Base URL clients reach the registry at, used in `Location` headers and
    /// the token realm [default: http://<listen address>].
    ///
    /// Set it when the registry sits behind a proxy or a DNS name, e.g.
    /// `https://registry.example.com`.
    #[arg(long, env = "BERTH_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,

    /// TOML file with any of these settings, keys named as the flags with `_`
    /// for `-` (listen, data_dir, database_url, database_max_connections, public_url, upload_ttl_secs, delete_enabled,
    /// max_manifest_bytes, log_format, access_control, service, issuer,
    /// token_lifetime_secs, new_repositories_public, ui, insecure_http,
    /// header_read_timeout_secs, idle_timeout_secs, body_timeout_secs,
    /// max_connections, tls_cert, tls_key, max_uploads_per_user,
    /// max_uploads_per_repository, disk_reserve_bytes, trusted_proxies,
    /// blob_store, s3_endpoint, s3_region, s3_path_style, s3_redirect,
    /// gc_delay_secs, gc_untagged_delay_secs, gc_keep_untagged,
    /// gc_keep_referrers, gc_interval_secs, oidc_issuer (a list),
    /// oidc_allow_loopback_issuers, oidc_max_token_age_secs,
    /// oidc_jwks_refresh_secs), `[[retention]]` tables: the retention
    /// policies, and `[[webhook]]` tables: where events go (deploy/berth.toml
    /// and the README show them).
    #[arg(long, env = "BERTH_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Seconds an unfinished upload may sit idle before it is removed [default: 86400].
    #[arg(long, env = "BERTH_UPLOAD_TTL_SECS", value_name = "SECS")]
    upload_ttl_secs: Option<u64>,

    /// Whether clients may delete manifests, tags and blobs [default: true].
    ///
    /// When false, DELETE answers 405 UNSUPPORTED with a message saying so.
    #[arg(long, env = "BERTH_DELETE_ENABLED", value_name = "BOOL")]
    delete_enabled: Option<bool>,

    /// Largest manifest accepted, in bytes [default: 4194304].
    #[arg(long, env = "BERTH_MAX_MANIFEST_BYTES", value_name = "BYTES")]
    max_manifest_bytes: Option<usize>,

    /// Log format on stderr [default: text].
    #[arg(long, env = "BERTH_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,

    /// Whether requests need tokens from the built-in token service [default: true].
    ///
    /// `false` runs an open registry where anyone may push, pull and delete:
    /// for throwaway local use only.
    #[arg(long, env = "BERTH_ACCESS_CONTROL", value_name = "BOOL")]
    access_control: Option<bool>,

    /// The `service` name in challenges and tokens [default: host[:port] of the public URL].
    #[arg(long, env = "BERTH_SERVICE", value_name = "NAME")]
    service: Option<String>,

    /// The `iss` of issued tokens; registries that trust berth's tokens must
    /// be configured with the same value [default: berth].
    #[arg(long, env = "BERTH_ISSUER", value_name = "NAME")]
    issuer: Option<String>,

    /// Lifetime of issued tokens in seconds (`expires_in`), at least 60 [default: 300].
    #[arg(long, env = "BERTH_TOKEN_LIFETIME_SECS", value_name = "SECS")]
    token_lifetime_secs: Option<u64>,

    /// Whether repositories are public when their first push creates them [default: false].
    #[arg(long, env = "BERTH_NEW_REPOSITORIES_PUBLIC", value_name = "BOOL")]
    new_repositories_public: Option<bool>,

    /// Whether the web interface is served at `/` and under `/ui/`
    /// [default: true]: repositories, tags and manifests to browse, and a
    /// signed-in user's tokens, password and organisations. `--ui false`
    /// leaves only the registry, token and admin APIs.
    #[arg(long, env = "BERTH_UI", value_name = "BOOL")]
    ui: Option<bool>,

    /// A pull-through cache namespace, NAME=URL (repeatable): pulls of
    /// `NAME/<repository>` fetch `<repository>` from the registry at URL on
    /// the first pull and serve it from here after, e.g.
    /// `--proxy hub=https://registry-1.docker.io` (then
    /// `docker pull <this registry>/hub/library/alpine:3`; on Docker Hub
    /// `hub/alpine` means `library/alpine` too) or
    /// `--proxy ghcr=https://ghcr.io`.
    ///
    /// Signed-in users may pull through it; nobody pushes into it. Public
    /// access, an upstream account and the tag TTL are set in the TOML
    /// file's `[[proxy]]` tables (deploy/berth.toml shows them). Also
    /// `BERTH_PROXY`, comma-separated.
    #[arg(
        long,
        env = "BERTH_PROXY",
        value_name = "NAME=URL",
        value_delimiter = ','
    )]
    proxy: Vec<String>,

    /// Allow serving the token endpoint over plain HTTP on a non-loopback
    /// address [default: false]. Passwords would cross the network in clear
    /// text: put a TLS proxy in front and set --public-url to its https URL.
    #[arg(long, env = "BERTH_INSECURE_HTTP", value_name = "BOOL")]
    insecure_http: Option<bool>,

    /// Seconds a client has from the first byte of a request to the end of
    /// its headers [default: 10].
    ///
    /// A header sent a byte at a time is cut at this bound however it trickles.
    #[arg(long, env = "BERTH_HEADER_READ_TIMEOUT_SECS", value_name = "SECS")]
    header_read_timeout_secs: Option<u64>,

    /// Seconds a connection may wait for its next request before it is
    /// closed [default: 60].
    #[arg(long, env = "BERTH_IDLE_TIMEOUT_SECS", value_name = "SECS")]
    idle_timeout_secs: Option<u64>,

    /// Seconds a request body may send nothing, or a client may take nothing
    /// of a response, before the connection is closed [default: 60].
    ///
    /// Only a stall counts: a slow upload that keeps moving (a 1 GiB push at
    /// 1 MB/s) never trips it. An interrupted upload stays resumable.
    #[arg(long, env = "BERTH_BODY_TIMEOUT_SECS", value_name = "SECS")]
    body_timeout_secs: Option<u64>,

    /// Most connections served at once [default: from the open-file limit].
    ///
    /// At start berth raises its open-file limit (RLIMIT_NOFILE) to the hard
    /// limit and, unless this is set, serves at most (limit - 64) / 2
    /// connections (a connection may also hold a blob file open). Past the
    /// cap, a new connection closes the one that has waited longest without
    /// a request; when all are answering requests, it is refused.
    #[arg(long, env = "BERTH_MAX_CONNECTIONS", value_name = "N")]
    max_connections: Option<usize>,

    /// Serve HTTPS with this PEM certificate chain (the server's certificate
    /// first, then intermediates); needs --tls-key.
    ///
    /// TLS 1.3 and 1.2, HTTP/2 and HTTP/1.1 by ALPN. The files are read again
    /// on SIGHUP and when they change on disk: a renewed certificate is served
    /// to new connections without a restart, open connections are kept.
    /// With TLS the public URL defaults to https://<listen address>.
    #[arg(
        long,
        env = "BERTH_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "BERTH_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,

    /// Open upload sessions one user may hold, over all repositories; 0 for
    /// no cap [default: 100].
    ///
    /// Past it, a new upload answers 429 TOOMANYREQUESTS saying how many are
    /// open and how to finish or cancel them.
    #[arg(long, env = "BERTH_MAX_UPLOADS_PER_USER", value_name = "N")]
    max_uploads_per_user: Option<u32>,

    /// Open upload sessions one repository may hold, whoever opened them; 0
    /// for no cap [default: 1000].
    #[arg(long, env = "BERTH_MAX_UPLOADS_PER_REPOSITORY", value_name = "N")]
    max_uploads_per_repository: Option<u32>,

    /// Bytes kept allocated in <data-dir>/reserve and given back when the
    /// disk is full, so that deletes still work and free space; 0 for none
    /// [default: 16777216].
    #[arg(long, env = "BERTH_DISK_RESERVE_BYTES", value_name = "BYTES")]
    disk_reserve_bytes: Option<u64>,

    /// Reverse proxies (addresses or CIDR blocks, comma-separated) whose
    /// `Forwarded` or `X-Forwarded-For` header names the client [default:
    /// none].
    ///
    /// Only then is the client address of a request (for the token
    /// service's failure limits and audit lines) taken from those headers,
    /// read from the right past these proxies; from anyone else the headers
    /// are ignored, so that no client can choose its own address. Generated
    /// URLs always come from --public-url. Example: 10.0.0.0/8,127.0.0.1
    #[arg(long, env = "BERTH_TRUSTED_PROXIES", value_name = "CIDR,...")]
    trusted_proxies: Option<String>,

    #[command(flatten)]
    store: BlobStoreArgs,

    /// Answer blob downloads with a redirect (307) to a presigned S3 URL
    /// valid for 5 minutes, instead of streaming them through berth
    /// [default: false].
    ///
    /// Clients then fetch layers from S3 directly; they must reach the
    /// bucket's endpoint. No client credential goes to S3: the URL carries
    /// its own signature, and clients drop `Authorization` on a redirect to
    /// another host.
    #[arg(long, env = "BERTH_S3_REDIRECT", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    s3_redirect: Option<bool>,

    /// Seconds a blob stays unreferenced before the garbage collector
    /// reclaims it [default: 86400].
    ///
    /// A push uploads its layers before the manifest naming them, and a
    /// client that found a blob present may push a manifest naming it
    /// later: both must fit in the delay. 0 is for tests.
    #[arg(long, env = "BERTH_GC_DELAY_SECS", value_name = "SECS")]
    gc_delay_secs: Option<u64>,

    /// Seconds a manifest stays untagged (and unreferenced: no index, no
    /// artifact naming it) before it is collected [default: 86400].
    #[arg(long, env = "BERTH_GC_UNTAGGED_DELAY_SECS", value_name = "SECS")]
    gc_untagged_delay_secs: Option<u64>,

    /// Keep untagged manifests: only tags removed by hand or by a retention
    /// policy, and blobs, are then reclaimed [default: false].
    #[arg(long, env = "BERTH_GC_KEEP_UNTAGGED", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    gc_keep_untagged: Option<bool>,

    /// Keep referrers (signatures, SBOMs) whose subject manifest is gone
    /// [default: false: they go with it].
    #[arg(long, env = "BERTH_GC_KEEP_REFERRERS", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    gc_keep_referrers: Option<bool>,

    /// Seconds between garbage collections (decimals allowed, e.g. 0.5); 0
    /// collects only on demand (`berth admin gc run`) [default: 600].
    #[arg(long, env = "BERTH_GC_INTERVAL_SECS", value_name = "SECS")]
    gc_interval_secs: Option<f64>,

    /// An OpenID Connect issuer whose ID tokens trust rules may accept
    /// (workload identity: `berth trust add`), as `[KIND=]URL`; repeat for
    /// several [default: github=https://token.actions.githubusercontent.com
    /// and gitlab=https://gitlab.com].
    ///
    /// KIND is `github` (GitHub Actions, or GitHub Enterprise Server's
    /// `https://HOST/_services/token`), `gitlab` (a self-managed GitLab's
    /// URL) or `generic`: rules of a known kind have their claim names
    /// checked. Giving any replaces the defaults; `none` trusts no issuer.
    /// The issuer's keys are fetched from its discovery document when its
    /// first token arrives. Comma-separated in BERTH_OIDC_ISSUERS.
    #[arg(
        long = "oidc-issuer",
        env = "BERTH_OIDC_ISSUERS",
        value_name = "[KIND=]URL",
        value_delimiter = ','
    )]
    oidc_issuers: Vec<String>,

    /// Allow `http://` issuers on loopback addresses (tests only: an
    /// issuer's keys must otherwise come over TLS) [default: false].
    #[arg(long, env = "BERTH_OIDC_ALLOW_LOOPBACK_ISSUERS", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    oidc_allow_loopback_issuers: Option<bool>,

    /// Seconds after its `iat` an ID token stops being accepted, whatever
    /// its `exp` [default: 3600].
    #[arg(long, env = "BERTH_OIDC_MAX_TOKEN_AGE_SECS", value_name = "SECS")]
    oidc_max_token_age_secs: Option<u64>,

    /// Least seconds between two fetches of an issuer's keys caused by a
    /// token signed with a key berth does not hold [default: 60].
    #[arg(long, env = "BERTH_OIDC_JWKS_REFRESH_SECS", value_name = "SECS")]
    oidc_jwks_refresh_secs: Option<u64>,
}

/// Where blobs are kept: the flags `serve` and `migrate` share (keys of
/// the same names in the TOML file).
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct BlobStoreArgs {
    /// Where blobs are kept: `fs` (under --data-dir) or an S3 bucket,
    /// `s3://BUCKET[/PREFIX]` [default: fs].
    ///
    /// With S3, several berth nodes can share the bucket (uploads resume on
    /// any node). Credentials come from AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (or the instance's
    /// role); the region from --s3-region or AWS_REGION. The metadata
    /// database stays under --data-dir.
    #[arg(long, env = "BERTH_BLOB_STORE", value_name = "fs|s3://BUCKET[/PREFIX]")]
    blob_store: Option<String>,

    /// URL of an S3-compatible service (MinIO, Ceph, moto, ...) [default:
    /// AWS's endpoint for the region]. `http://` is allowed.
    #[arg(long, env = "BERTH_S3_ENDPOINT", value_name = "URL")]
    s3_endpoint: Option<String>,

    /// Region S3 requests are signed for [default: AWS_REGION, else us-east-1].
    #[arg(long, env = "BERTH_S3_REGION", value_name = "REGION")]
    s3_region: Option<String>,

    /// Path-style S3 URLs (ENDPOINT/BUCKET/KEY), as most S3-compatible
    /// services need, instead of BUCKET.ENDPOINT/KEY [default: false].
    #[arg(long, env = "BERTH_S3_PATH_STYLE", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    s3_path_style: Option<bool>,
}

impl BlobStoreArgs {
    /// These settings, each where given, else `file`'s.
    pub(crate) fn or(self, file: Self) -> Self {
        Self {
            blob_store: self.blob_store.or(file.blob_store),
            s3_endpoint: self.s3_endpoint.or(file.s3_endpoint),
            s3_region: self.s3_region.or(file.s3_region),
            s3_path_style: self.s3_path_style.or(file.s3_path_style),
        }
    }
}

/// The TOML file: the same settings, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<DatabaseUrl>,
    database_max_connections: Option<u32>,
    public_url: Option<String>,
    upload_ttl_secs: Option<u64>,
    delete_enabled: Option<bool>,
    max_manifest_bytes: Option<usize>,
    log_format: Option<LogFormat>,
    access_control: Option<bool>,
    service: Option<String>,
    issuer: Option<String>,
    token_lifetime_secs: Option<u64>,
    new_repositories_public: Option<bool>,
    ui: Option<bool>,
    insecure_http: Option<bool>,
    header_read_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    body_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    max_uploads_per_user: Option<u32>,
    max_uploads_per_repository: Option<u32>,
    disk_reserve_bytes: Option<u64>,
    trusted_proxies: Option<String>,
    blob_store: Option<String>,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_path_style: Option<bool>,
    s3_redirect: Option<bool>,
    gc_delay_secs: Option<u64>,
    gc_untagged_delay_secs: Option<u64>,
    gc_keep_untagged: Option<bool>,
    gc_keep_referrers: Option<bool>,
    gc_interval_secs: Option<f64>,
    oidc_issuer: Option<Vec<String>>,
    oidc_allow_loopback_issuers: Option<bool>,
    oidc_max_token_age_secs: Option<u64>,
    oidc_jwks_refresh_secs: Option<u64>,
    /// Retention policies (`[[retention]]`), the first matching a repository governing it.
    #[serde(default)]
    retention: Vec<PolicyText>,
    /// Webhook endpoints (`[[webhook]]`) that events go to.
    #[serde(default)]
    webhook: Vec<EndpointText>,
    /// Pull-through cache namespaces (`[[proxy]]`).
    #[serde(default)]
    proxy: Vec<ProxyText>,
}

/// Everything `serve` needs, resolved.
#[derive(Debug)]
struct Settings {
    listen: SocketAddr,
    data_dir: PathBuf,
    log_format: LogFormat,
    config: Config,
    /// Whether the service name was given (else it follows the public URL).
    service_given: bool,
    /// The connection cap, when given (else derived from the fd limit).
    max_connections: Option<usize>,
    /// The certificate and key, read and checked.
    tls: Option<Arc<CertStore>>,
    /// Said at start: S3 settings ignored for the filesystem store.
    store_note: Option<String>,
}

/// The garbage collector's settings: flags, else the file's keys.
fn gc_config(args: &ServeArgs, file: &FileConfig) -> anyhow::Result<GcConfig> {
    let mut gc = GcConfig::default();
    if let Some(secs) = args.gc_delay_secs.or(file.gc_delay_secs) {
        gc.delay = Duration::from_secs(secs);
    }
    if let Some(secs) = args.gc_untagged_delay_secs.or(file.gc_untagged_delay_secs) {
        gc.untagged_delay = Some(Duration::from_secs(secs));
    }
    if args.gc_keep_untagged.or(file.gc_keep_untagged) == Some(true) {
        gc.untagged_delay = None;
    }
    if let Some(keep) = args.gc_keep_referrers.or(file.gc_keep_referrers) {
        gc.keep_referrers = keep;
    }
    if let Some(secs) = args.gc_interval_secs.or(file.gc_interval_secs) {
        gc.interval = match secs {
            0.0 => None,
            s if s.is_finite() && s >= 0.01 => Some(Duration::from_secs_f64(s)),
            s => bail!(
                "gc interval {s} s: give 0 (on demand only) or at least 0.01 seconds, e.g. 600"
            ),
        };
    }
    gc.retention = file
        .retention
        .iter()
        .map(Policy::parse)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(gc)
}

/// Workload identity's settings: flags, else the file's keys.
fn oidc_config(args: &ServeArgs, file: &FileConfig) -> anyhow::Result<OidcConfig> {
    let mut oidc = OidcConfig::default();
    if let Some(allow) = args
        .oidc_allow_loopback_issuers
        .or(file.oidc_allow_loopback_issuers)
    {
        oidc.allow_loopback = allow;
    }
    let issuers = if args.oidc_issuers.is_empty() {
        file.oidc_issuer.clone()
    } else {
        Some(args.oidc_issuers.clone())
    };
    if let Some(issuers) = issuers {
        oidc.issuers = issuers
            .iter()
            .map(|i| i.trim())
            .filter(|i| !i.is_empty() && *i != "none")
            .map(|i| {
                OidcIssuer::parse(i, oidc.allow_loopback)
                    .map_err(|e| anyhow::anyhow!("--oidc-issuer: {e}"))
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(secs) = args
        .oidc_max_token_age_secs
        .or(file.oidc_max_token_age_secs)
    {
        if secs == 0 {
            bail!("--oidc-max-token-age-secs 0 would refuse every ID token: give e.g. 3600");
        }
        oidc.max_token_age = Duration::from_secs(secs);
    }
    if let Some(secs) = args.oidc_jwks_refresh_secs.or(file.oidc_jwks_refresh_secs) {
        oidc.jwks_refresh = Duration::from_secs(secs);
    }
    Ok(oidc)
}

/// The TOML file at `path`.
fn read_config(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str::<FileConfig>(&text)
        .with_context(|| format!("config file {} is not valid", path.display()))
}

/// Where a registry keeps its data, as a `serve` TOML file says: what
/// `berth migrate --config` takes from the nodes' file.
#[derive(Debug, Default)]
pub(crate) struct StorageSettings {
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) database_url: Option<DatabaseUrl>,
    pub(crate) store: BlobStoreArgs,
}

/// The storage settings of the TOML file at `path` (every other key is
/// checked as `serve` checks it, and ignored).
pub(crate) fn storage_settings(path: &Path) -> anyhow::Result<StorageSettings> {
    let file = read_config(path)?;
    Ok(StorageSettings {
        data_dir: file.data_dir,
        database_url: file.database_url,
        store: BlobStoreArgs {
            blob_store: file.blob_store,
            s3_endpoint: file.s3_endpoint,
            s3_region: file.s3_region,
            s3_path_style: file.s3_path_style,
        },
    })
}

/// Refuses a database URL with a password given as a flag (`--database-url`
/// rather than `BERTH_DATABASE_URL`, which clap reads into the same value).
pub(crate) fn refuse_password_flag(url: Option<&DatabaseUrl>) -> anyhow::Result<()> {
    if let Some(url) = url
        && url.has_password()
        && std::env::var("BERTH_DATABASE_URL").ok().as_deref() != Some(url.expose())
    {
        bail!(
            "--database-url {url} carries a password, which every local user could read in the \
             process list; give the URL in BERTH_DATABASE_URL, or the password in PGPASSWORD"
        );
    }
    Ok(())
}

fn resolve(args: ServeArgs) -> anyhow::Result<Settings> {
    let file = match &args.config {
        Some(path) => read_config(path)?,
        None => FileConfig::default(),
    };
    let gc = gc_config(&args, &file)?;
    let oidc = oidc_config(&args, &file)?;
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5000)));
    let public_url = args.public_url.or(file.public_url);
    if let Some(url) = &public_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        bail!("public URL {url:?} must start with http:// or https://");
    }
    // The URL is settled once the listener is bound (port 0 picks a port).
    let mut config = Config::new(public_url.clone().unwrap_or_default());
    if let Some(secs) = args.upload_ttl_secs.or(file.upload_ttl_secs) {
        config.upload_ttl = Duration::from_secs(secs);
    }
    if let Some(enabled) = args.delete_enabled.or(file.delete_enabled) {
        config.delete_enabled = enabled;
    }
    if let Some(bytes) = args.max_manifest_bytes.or(file.max_manifest_bytes) {
        config.max_manifest_bytes = bytes;
    }
    if let Some(on) = args.access_control.or(file.access_control) {
        config.access_control = on;
    }
    let service_given = args.service.is_some() || file.service.is_some();
    if let Some(service) = args.service.or(file.service) {
        config.service = service;
    }
    if let Some(issuer) = args.issuer.or(file.issuer) {
        config.issuer = issuer;
    }
    if let Some(secs) = args.token_lifetime_secs.or(file.token_lifetime_secs) {
        if secs < 60 {
            bail!(
                "token lifetime {secs} s is below the 60 s minimum clients assume; use 60 or more"
            );
        }
        config.token_lifetime = Duration::from_secs(secs);
    }
    if let Some(public) = args
        .new_repositories_public
        .or(file.new_repositories_public)
    {
        config.new_repositories_public = public;
    }
    if let Some(ui) = args.ui.or(file.ui) {
        config.ui = ui;
    }
    // The file's tables first, then the flags' (a flag naming a table's
    // namespace is refused as a duplicate).
    let mut proxies = file.proxy.clone();
    for flag in &args.proxy {
        proxies
            .push(berth_registry::proxy::settings::parse_flag(flag).map_err(anyhow::Error::msg)?);
    }
    config.proxies =
        berth_registry::proxy::settings::parse_all(&proxies).map_err(anyhow::Error::msg)?;
    config.webhooks = Webhooks::new(
        berth_registry::events::endpoint::parse_all(&file.webhook)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let limits = &mut config.limits;
    for (value, slot, name) in [
        (
            args.header_read_timeout_secs
                .or(file.header_read_timeout_secs),
            &mut limits.header_read_timeout,
            "header read timeout",
        ),
        (
            args.idle_timeout_secs.or(file.idle_timeout_secs),
            &mut limits.idle_timeout,
            "idle timeout",
        ),
        (
            args.body_timeout_secs.or(file.body_timeout_secs),
            &mut limits.body_timeout,
            "body timeout",
        ),
    ] {
        if let Some(secs) = value {
            if secs == 0 {
                bail!("the {name} must be at least 1 second");
            }
            *slot = Duration::from_secs(secs);
        }
    }
    if let Some(n) = args.max_uploads_per_user.or(file.max_uploads_per_user) {
        config.max_uploads_per_user = n;
    }
    if let Some(n) = args
        .max_uploads_per_repository
        .or(file.max_uploads_per_repository)
    {
        config.max_uploads_per_repository = n;
    }
    if let Some(bytes) = args.disk_reserve_bytes.or(file.disk_reserve_bytes) {
        config.disk_reserve_bytes = bytes;
    }
    refuse_password_flag(args.database_url.as_ref())?;
    config.database_url = args.database_url.or(file.database_url);
    if let Some(n) = args
        .database_max_connections
        .or(file.database_max_connections)
    {
        if n == 0 {
            bail!(
                "database_max_connections must be at least 1 (a node needs a connection to PostgreSQL)"
            );
        }
        config.database_max_connections = n;
    }
    config.gc = gc;
    config.oidc = oidc;
    if let Some(list) = args.trusted_proxies.or(file.trusted_proxies) {
        config.trusted_proxies =
            TrustedProxies::parse(&list).map_err(|e| anyhow::anyhow!("--trusted-proxies: {e}"))?;
    }
    let file_store = BlobStoreArgs {
        blob_store: file.blob_store,
        s3_endpoint: file.s3_endpoint,
        s3_region: file.s3_region,
        s3_path_style: file.s3_path_style,
    };
    let (store, store_note) = blob_store(
        args.store.or(file_store),
        args.s3_redirect.or(file.s3_redirect),
    )?;
    config.blob_store = store;
    let max_connections = args.max_connections.or(file.max_connections);
    if max_connections == Some(0) {
        bail!("--max-connections must be at least 1");
    }
    let tls = match (
        args.tls_cert.or(file.tls_cert),
        args.tls_key.or(file.tls_key),
    ) {
        (Some(cert), Some(key)) => Some(Arc::new(CertStore::open(&cert, &key)?)),
        (None, None) => None,
        (Some(_), None) => bail!("--tls-cert needs --tls-key: give the certificate's private key"),
        (None, Some(_)) => bail!("--tls-key needs --tls-cert: give the certificate chain"),
    };
    let insecure_http = args.insecure_http.or(file.insecure_http).unwrap_or(false);
    if config.access_control
        && tls.is_none()
        && !insecure_http
        && !listen.ip().is_loopback()
        && public_url
            .as_deref()
            .is_none_or(|u| u.starts_with("http://"))
    {
        bail!(
            "refusing to serve the token endpoint over plain HTTP on {listen}: passwords would cross the network in clear text. \
             Serve TLS with --tls-cert FILE --tls-key FILE, or put a TLS proxy in front and set --public-url https://..., \
             or pass --insecure-http true"
        );
    }
    Ok(Settings {
        listen,
        data_dir: args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("berth-data")),
        log_format: args.log_format.or(file.log_format).unwrap_or_default(),
        config,
        service_given,
        max_connections,
        tls,
        store_note,
    })
}

/// The blob store named by `--blob-store` and the `--s3-*` settings, and a
/// note to print when S3 settings were given for the filesystem store (they
/// are ignored rather than refused, so that one config file can carry a
/// cluster's S3 settings while a node runs on its disk).
pub(crate) fn blob_store(
    args: BlobStoreArgs,
    redirect: Option<bool>,
) -> anyhow::Result<(BlobStoreConfig, Option<String>)> {
    let BlobStoreArgs {
        blob_store: store,
        s3_endpoint: endpoint,
        s3_region: region,
        s3_path_style: path_style,
    } = args;
    let store = store.filter(|s| s != "fs");
    let Some(url) = store else {
        let given: Vec<&str> = [
            ("s3_endpoint", endpoint.is_some()),
            ("s3_region", region.is_some()),
            ("s3_path_style", path_style.is_some()),
            ("s3_redirect", redirect.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        let note = (!given.is_empty()).then(|| {
            format!(
                "{} ignored: blobs are on the filesystem; set blob_store (--blob-store) to s3://BUCKET[/PREFIX] to use S3",
                given.join(", ")
            )
        });
        return Ok((BlobStoreConfig::DataDir, note));
    };
    let mut settings =
        S3Settings::from_url(&url).map_err(|e| anyhow::anyhow!("--blob-store: {e}"))?;
    if let Some(endpoint) = endpoint {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            bail!("--s3-endpoint {endpoint:?} must start with http:// or https://");
        }
        settings.endpoint = Some(endpoint);
    }
    settings.region = region;
    settings.path_style = path_style.unwrap_or(false);
    settings.redirect = redirect.unwrap_or(false);
    Ok((BlobStoreConfig::S3(settings), None))
}

/// Runs `berth serve` to completion.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = resolve(args)?;
    logging::init(settings.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(settings))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let listener = match tokio::net::TcpListener::bind(settings.listen).await {
        Ok(listener) => listener,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "cannot listen on {}: the address is already in use (another berth or registry?); \
             stop it, or choose another address with --listen, e.g. --listen 127.0.0.1:5001",
            settings.listen
        ),
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "cannot listen on {}; choose another address with --listen",
                    settings.listen
                )
            });
        }
    };
    let local = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let mut config = settings.config;
    config.limits.max_connections = match settings.max_connections {
        Some(n) => n,
        None => berth_registry::server::Limits::max_connections_for(raise_fd_limit()),
    };
    if config.public_url.is_empty() {
        // Settled now that the port is known; the service follows unless set.
        let scheme = if settings.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let derived = berth_registry::Config::new(format!("{scheme}://{local}"));
        if !settings.service_given {
            config.service = derived.service;
        }
        config.public_url = derived.public_url;
    }
    let public_url = config.public_url.clone();
    let what = match &config.blob_store {
        BlobStoreConfig::S3(s3) => format!(
            "cannot open the data directory {} with blobs in S3 bucket {:?}",
            settings.data_dir.display(),
            s3.bucket
        ),
        BlobStoreConfig::DataDir => format!(
            "cannot open the data directory {}",
            settings.data_dir.display()
        ),
    };
    let database = config.database_url.clone();
    let registry = Registry::open(&settings.data_dir, config)
        .await
        .context(what)?;
    let host = public_url
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    eprintln!(
        "berth {} listening on {}://{local}",
        env!("CARGO_PKG_VERSION"),
        if settings.tls.is_some() {
            "https"
        } else {
            "http"
        }
    );
    eprintln!("  data:       {}", settings.data_dir.display());
    if let BlobStoreConfig::S3(s3) = &registry.config.blob_store {
        eprintln!(
            "  blobs:      s3://{}/{}{}",
            s3.bucket,
            s3.prefix,
            s3.endpoint
                .as_deref()
                .map(|e| format!(" at {e}"))
                .unwrap_or_default()
        );
    }
    if let Some(note) = &settings.store_note {
        eprintln!("  note:       {note}");
    }
    if let Some(url) = &database {
        eprintln!("  metadata:   {url} (PostgreSQL, shared by every node on it)");
    }
    eprintln!("  public URL: {public_url}");
    if registry.config.ui {
        eprintln!("  web:        {public_url}/ (repositories; sign in for your tokens)");
    }
    for proxy in &registry.config.proxies {
        let owner = registry
            .identity
            .namespace_owner(&proxy.name)
            .await
            .context("cannot read the namespaces' owners")?;
        let whose = match owner {
            Some(berth_registry::identity::NamespaceOwner::User(_)) => "a user's",
            Some(berth_registry::identity::NamespaceOwner::Org(_)) => "an organisation's",
            None => continue,
        };
        bail!(
            "proxy {}: the namespace {} is {whose}; a pull-through cache needs a namespace of its own: rename the proxy",
            proxy.name,
            proxy.name
        );
    }
    for proxy in &registry.config.proxies {
        let account = match &proxy.credential {
            Some((user, _)) => format!(" as {user}"),
            None => String::new(),
        };
        eprintln!(
            "  proxy:      {}/... -> {}{account} ({} pulls, tags checked every {} s)",
            proxy.name,
            proxy.origin(),
            proxy.access.as_str(),
            proxy.tag_ttl.as_secs()
        );
    }
    for endpoint in registry.config.webhooks.endpoints() {
        let actions: Vec<&str> = endpoint.actions.iter().map(|a| a.as_str()).collect();
        let scope = if endpoint.repositories.is_empty() {
            "every repository".to_owned()
        } else {
            endpoint.repositories.join(", ")
        };
        // The origin only: a path may carry a token (chat webhooks do).
        eprintln!(
            "  webhook:    {} -> {}/... ({} of {scope})",
            endpoint.name,
            endpoint.url.origin().ascii_serialization(),
            actions.join(", ")
        );
    }
    if registry.config.access_control {
        let password = std::env::var("BERTH_ADMIN_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty());
        if let Some(generated) = registry
            .bootstrap_admin(password)
            .await
            .context("cannot create the first administrator")?
        {
            eprintln!(
                "  first start: created user `admin` with password {generated}\n              (shown once; set BERTH_ADMIN_PASSWORD to choose it)"
            );
        }
        eprintln!("  try, in another terminal (as admin, who owns {host}/admin/...):");
        eprintln!("              berth login {host} -u admin");
        eprintln!("              berth push {host}/admin/hello:1.0 README.md");
        eprintln!("              berth pull {host}/admin/hello:1.0 ./hello");
    } else {
        eprintln!("  WARNING: access control is off: anyone may push, pull and delete");
        eprintln!("  try, in another terminal:");
        eprintln!("              berth push {host}/me/hello:1.0 README.md");
    }
    tokio::spawn(reload_on_hangup(settings.tls.clone()));
    crate::notify::ready(&format!(
        "listening on {}://{local}",
        if settings.tls.is_some() {
            "https"
        } else {
            "http"
        }
    ));
    berth_registry::serve_tls(listener, registry, settings.tls, shutdown_signal())
        .await
        .context("server failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// Reads the certificate files again at every SIGHUP. Without TLS a SIGHUP
/// is taken and ignored. The handler is in place when this returns, before
/// readiness is announced: the default action of SIGHUP ends the process,
/// and `systemctl reload` sends one.
fn reload_on_hangup(tls: Option<Arc<CertStore>>) -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    async move {
        #[cfg(unix)]
        {
            let mut hangups = match hangups {
                Ok(hangups) => hangups,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGHUP; certificate renewals are still picked up from the files");
                    return;
                }
            };
            while hangups.recv().await.is_some() {
                let Some(tls) = &tls else {
                    tracing::info!("SIGHUP: nothing to reload (no TLS certificate is served)");
                    continue;
                };
                if let Err(e) = tls.reload() {
                    tracing::warn!(error = %e, "SIGHUP: cannot reload the TLS certificate; still serving the previous one");
                }
            }
        }
        #[cfg(not(unix))]
        let _ = tls;
    }
}

/// Raises the soft open-file limit to the hard limit and returns the limit
/// in force (each connection costs a descriptor, a download one more).
fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// Completes on SIGINT or SIGTERM; then gives in-flight requests
/// [`DRAIN_TIMEOUT`] before the process exits regardless. Unfinished uploads
/// stay resumable: their state is in the metadata store.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        () = terminate => {}
    }
    tracing::info!(
        "shutting down: no new connections; in-flight requests have {}s to finish (Ctrl-C again to stop now)",
        DRAIN_TIMEOUT.as_secs()
    );
    tokio::spawn(async {
        tokio::select! {
            () = tokio::time::sleep(DRAIN_TIMEOUT) => {
                tracing::warn!("in-flight requests did not finish in time; exiting");
            }
            _ = tokio::signal::ctrl_c() => {
                tracing::warn!("stopped at once: unfinished uploads stay resumable");
                // 128 + SIGINT, as a shell reports a process stopped by Ctrl-C.
                std::process::exit(130);
            }
        }
        std::process::exit(1);
    });
}
