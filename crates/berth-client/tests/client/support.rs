//! The harness: berth's own server in-process (token auth on, a fresh data
//! directory, an `admin`), images pushed with plain reqwest and an admin
//! token, and the token counter read from berth's metrics; the pieces tests
//! build images and clients from (random bytes, descriptors, manifests,
//! credentials, a transport that records its events); plus a tiny recorder
//! for the quirk fixtures.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use berth_client::auth::{Event, Observer, TransportOptions};
use berth_client::client::{ClientError, RegistryClient};
use berth_client::credentials::Credential;
use berth_core::reference::Registry;
use berth_core::{Digest, RepositoryName, media_type};
use berth_registry::store::S3Settings;
use berth_registry::{BlobStoreConfig, Config};
use bytes::Bytes;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;

/// The administrator's password.
pub const ADMIN_PASSWORD: &str = "admin-password-for-client-tests";

/// A running berth.
pub struct Berth {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The registry as the client names it (`127.0.0.1:<port>`).
    pub host: Registry,
    /// The server's registry (shares its stores and metrics).
    pub registry: berth_registry::Registry,
    http: reqwest::Client,
    _shutdown: oneshot::Sender<()>,
    _dir: TempDir,
    // The metadata on PostgreSQL when `BERTH_TEST_DATABASE_URL` names a
    // cluster: a database of this server's own, dropped last.
    _database: Option<berth_registry::meta::scratch::ScratchDatabase>,
}

impl Berth {
    /// berth with `Config::new` defaults changed by `configure`.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        Self::start_on(listener, addr, configure).await
    }

    /// berth serving on `listener`, reached by clients at `public` (another
    /// address, such as a proxy's, in front of it).
    pub async fn start_on(
        listener: tokio::net::TcpListener,
        public: SocketAddr,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let addr = public;
        let base = format!("http://{addr}");
        let mut config = Config::new(base.clone());
        // The blob store is S3 when the suite runs under `.ci/s3`.
        if let Some(s3) = S3Settings::for_test_dir(dir.path()) {
            config.blob_store = BlobStoreConfig::S3(s3);
        }
        configure(&mut config);
        let database = berth_registry::meta::scratch::ScratchDatabase::from_env()
            .await
            .unwrap();
        config.database_url = database.as_ref().map(|d| d.url().clone());
        let registry = berth_registry::Registry::open(dir.path(), config)
            .await
            .unwrap();
        registry
            .bootstrap_admin(Some(ADMIN_PASSWORD.to_owned()))
            .await
            .unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(berth_registry::serve(
            listener,
            registry.clone(),
            async move {
                let _ = rx.await;
            },
        ));
        Self {
            host: Registry::parse(&addr.to_string()).unwrap(),
            base,
            registry,
            http: reqwest::Client::new(),
            _shutdown: tx,
            _dir: dir,
            _database: database,
        }
    }

    /// berth with its defaults.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Tokens issued so far (`berth_tokens_issued_total`).
    pub fn tokens_issued(&self) -> u64 {
        let text = self.registry.metrics.render();
        text.lines()
            .find_map(|l| l.strip_prefix("berth_tokens_issued_total "))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// A client with `credential`.
    pub fn client(&self, credential: Option<Credential>) -> RegistryClient {
        self.client_with(credential, TransportOptions::default())
    }

    /// A client with `credential` and `options`.
    pub fn client_with(
        &self,
        credential: Option<Credential>,
        options: TransportOptions,
    ) -> RegistryClient {
        RegistryClient::new(self.host.clone(), credential, options).unwrap()
    }

    /// Creates user `name` with password `<name>-password`.
    pub async fn user(&self, name: &str) -> Credential {
        let password = format!("{name}-password");
        let p = password.clone();
        let hash = tokio::task::spawn_blocking(move || {
            berth_registry::identity::password::hash_password(&p)
        })
        .await
        .unwrap()
        .unwrap();
        self.registry
            .identity
            .create_user(name, Some(&hash), false)
            .await
            .unwrap();
        user_password(name, &password)
    }

    /// Makes `name` public.
    pub async fn set_public(&self, name: &str) {
        let name = RepositoryName::parse(name).unwrap();
        assert!(
            self.registry
                .meta
                .set_repository_public(&name, true)
                .await
                .unwrap()
        );
    }

    async fn admin_token(&self, name: &str) -> String {
        let url = format!(
            "{}/token?service={}&scope=repository:{name}:pull,push",
            self.base, self.host
        );
        let response = self
            .http
            .get(url)
            .basic_auth(berth_registry::ADMIN_USER, Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json_value().await;
        body["token"].as_str().unwrap().to_owned()
    }

    async fn push_blob(&self, name: &str, token: &str, bytes: &[u8]) -> Digest {
        let digest = Digest::sha256_of(bytes);
        let response = self
            .http
            .post(format!(
                "{}/v2/{name}/blobs/uploads/?digest={digest}",
                self.base
            ))
            .bearer_auth(token)
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "push blob to {name}");
        digest
    }

    /// Pushes an image (empty config, one layer `layer`) as `name:tag`.
    pub async fn push_image(&self, name: &str, tag: &str, layer: &[u8]) -> Image {
        let token = self.admin_token(name).await;
        let config = b"{}";
        let config_digest = self.push_blob(name, &token, config).await;
        let layer_digest = self.push_blob(name, &token, layer).await;
        let manifest = image_manifest(
            media_type::OCI_IMAGE_MANIFEST,
            descriptor(media_type::OCI_EMPTY, &config_digest, config.len()),
            &[descriptor(
                media_type::OCI_LAYER_TAR,
                &layer_digest,
                layer.len(),
            )],
        );
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let response = self
            .http
            .put(format!("{}/v2/{name}/manifests/{tag}", self.base))
            .bearer_auth(&token)
            .header("content-type", media_type::OCI_IMAGE_MANIFEST)
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "push manifest {name}:{tag}");
        Image {
            digest: Digest::sha256_of(&bytes),
            manifest: bytes,
            layer: layer_digest,
        }
    }
}

/// An image pushed by [`Berth::push_image`].
pub struct Image {
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's bytes.
    pub manifest: Vec<u8>,
    /// The layer's digest.
    pub layer: Digest,
}

/// The admin's credential.
pub fn admin() -> Credential {
    user_password(berth_registry::ADMIN_USER, ADMIN_PASSWORD)
}

/// A user name and password, as `berth login --store-password` keeps them.
pub fn user_password(username: &str, password: &str) -> Credential {
    Credential::Basic {
        username: username.to_owned(),
        password: password.to_owned(),
    }
}

/// Transport options whose observer records every event: the options, and
/// the events seen so far.
pub fn recording() -> (TransportOptions, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let options = TransportOptions {
        observer: Some(Observer::new(move |e: &Event| {
            sink.lock().unwrap().push(e.clone());
        })),
        ..TransportOptions::default()
    };
    (options, events)
}

/// Asserts that `err` is the typed refusal of a `DELETE` (a 405), carrying
/// the registry's `UNSUPPORTED`.
pub fn assert_delete_unsupported(err: &ClientError) {
    match err {
        ClientError::DeleteUnsupported { registry_hint, .. } => {
            assert!(registry_hint.contains("UNSUPPORTED"), "{registry_hint}");
        }
        other => panic!("expected DeleteUnsupported, got {other:?}"),
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), so no test depends on an RNG crate.
pub fn random_bytes(len: usize, seed: u64) -> Bytes {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// The descriptor of `size` bytes with `digest`, as `media_type`.
pub fn descriptor(media_type: &str, digest: &Digest, size: usize) -> Value {
    json!({
        "mediaType": media_type,
        "digest": digest.to_string(),
        "size": size,
    })
}

/// An image manifest of `manifest_type` (OCI's or Docker's) naming the
/// descriptors `config` and `layers`.
pub fn image_manifest(manifest_type: &str, config: Value, layers: &[Value]) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": config,
        "layers": layers,
    })
}

/// `name` as a repository name.
pub fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

trait JsonValue {
    async fn json_value(self) -> Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        serde_json::from_slice(&self.bytes().await.unwrap()).unwrap()
    }
}

// ----- quirk fixtures -----

/// One request a fixture saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Which server (`registry`, `token`, `storage`).
    pub server: &'static str,
    /// The method.
    pub method: String,
    /// The path.
    pub path: String,
    /// The decoded query pairs.
    pub query: Vec<(String, String)>,
    /// The decoded form body pairs (POST).
    pub form: Vec<(String, String)>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
}

impl Seen {
    /// Every value of query parameter `name`.
    pub fn params(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Every request the fixtures of one test saw.
#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl Recorder {
    /// Records a request.
    pub fn record(
        &self,
        server: &'static str,
        method: &axum::http::Method,
        uri: &axum::http::Uri,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Seen {
        let url = reqwest::Url::parse(&format!("http://fixture{uri}")).unwrap();
        let pairs = |url: &reqwest::Url| {
            url.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect::<Vec<_>>()
        };
        let form_url =
            reqwest::Url::parse(&format!("http://f/?{}", String::from_utf8_lossy(body))).unwrap();
        let seen = Seen {
            server,
            method: method.to_string(),
            path: url.path().to_owned(),
            query: pairs(&url),
            form: pairs(&form_url),
            authorization: headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned()),
        };
        self.0.lock().unwrap().push(seen.clone());
        seen
    }

    /// The requests `server` saw.
    pub fn of(&self, server: &str) -> Vec<Seen> {
        let all = self.0.lock().unwrap();
        all.iter().filter(|s| s.server == server).cloned().collect()
    }
}

/// Serves the router `make` builds (given its own address) on
/// `127.0.0.1:0` for the rest of the test.
pub async fn serve(make: impl FnOnce(SocketAddr) -> axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = make(addr);
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// A fixture registry that answers every request itself.
pub trait Responder: Send + Sync + 'static {
    /// The answer to one request; `addr` is the fixture's own address.
    fn handle(
        &self,
        addr: SocketAddr,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response;
}

/// Serves `fixture` on `127.0.0.1:0` for the rest of the test, every
/// request to its [`Responder::handle`], bodies of any size.
pub async fn serve_fixture(fixture: Arc<impl Responder>) -> SocketAddr {
    serve(move |addr| {
        axum::Router::new()
            .fallback(
                move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                    let fixture = fixture.clone();
                    async move { fixture.handle(addr, &method, &uri, &headers, &body) }
                },
            )
            .layer(DefaultBodyLimit::disable())
    })
    .await
}

/// A response with `status`, `headers` and `body`.
pub fn respond(
    status: u16,
    headers: &[(&str, &str)],
    body: impl Into<axum::body::Body>,
) -> axum::response::Response {
    let mut builder = axum::response::Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body.into()).unwrap()
}

/// An OCI error response.
pub fn oci_error(
    status: u16,
    code: &str,
    message: &str,
    extra: &[(&str, &str)],
) -> axum::response::Response {
    let body = format!(r#"{{"errors":[{{"code":"{code}","message":"{message}"}}]}}"#);
    let mut headers = vec![("content-type", "application/json")];
    headers.extend_from_slice(extra);
    respond(status, &headers, body)
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// A client for the fixture at `addr`.
pub fn fixture_client(
    addr: SocketAddr,
    credential: Option<Credential>,
    options: TransportOptions,
) -> RegistryClient {
    RegistryClient::new(
        Registry::parse(&addr.to_string()).unwrap(),
        credential,
        options,
    )
    .unwrap()
}
