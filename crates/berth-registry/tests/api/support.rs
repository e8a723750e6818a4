//! The harness: a real berth server on `127.0.0.1:0` over a fresh data
//! directory, a client that checks what every `/v2` response must carry, and
//! builders for the OCI image-spec JSON the tests push.
//!
//! The metadata is the embedded SQLite database, or, when
//! `BERTH_TEST_DATABASE_URL` names a PostgreSQL cluster (`.ci/postgres`), a
//! fresh database of the test's own on it, dropped after the test.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use berth_core::digest::Digest;
use berth_core::media_type;
use berth_registry::meta::scratch::ScratchDatabase;
use berth_registry::meta::url::DatabaseUrl;
use berth_registry::store::S3Settings;
use berth_registry::{BlobStoreConfig, Config, Registry};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The header every `/v2` response carries, errors included.
pub const API_VERSION: &str = "docker-distribution-api-version";

/// A running registry over its own data directory.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`, also the registry's public URL.
    pub base: String,
    addr: SocketAddr,
    client: reqwest::Client,
    dir: Option<TempDir>,
    dir_path: std::path::PathBuf,
    database: Option<ScratchDatabase>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

/// The PostgreSQL databases of stopped servers, by data directory: a server
/// started again on the directory finds its metadata there.
static PARKED: Mutex<Option<HashMap<PathBuf, ScratchDatabase>>> = Mutex::new(None);

/// The test database of data directory `dir`: the one a stopped server left,
/// or a new one; `None` on SQLite.
pub async fn database_for(dir: &std::path::Path) -> Option<ScratchDatabase> {
    let parked = PARKED
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .remove(dir);
    match parked {
        Some(database) => Some(database),
        None => ScratchDatabase::from_env().await.unwrap(),
    }
}

impl TestApp {
    /// A registry over a fresh, empty data directory.
    pub async fn start() -> Self {
        Self::start_in(tempfile::tempdir().unwrap()).await
    }

    /// A registry over a fresh data directory, with settings changed by `configure`.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Self {
        Self::open(tempfile::tempdir().unwrap(), configure).await
    }

    /// A registry over `dir`, which may hold the data of a previous run.
    pub async fn start_in(dir: TempDir) -> Self {
        Self::open(dir, |_| {}).await
    }

    /// A registry over `dir`, with settings changed by `configure`.
    pub async fn start_in_with(dir: TempDir, configure: impl FnOnce(&mut Config)) -> Self {
        Self::open(dir, configure).await
    }

    async fn open(dir: TempDir, configure: impl FnOnce(&mut Config)) -> Self {
        let path = dir.path().to_owned();
        let database = database_for(&path).await;
        let url = database.as_ref().map(|d| d.url().clone());
        Self::open_at(Some(dir), path, database, url, configure).await
    }

    /// A server over `dir_path` (owning `dir` and `database` when given,
    /// which then go with it) on the metadata at `database_url`.
    async fn open_at(
        dir: Option<TempDir>,
        dir_path: std::path::PathBuf,
        database: Option<ScratchDatabase>,
        database_url: Option<DatabaseUrl>,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let mut config = Config::new(base.clone());
        // This suite tests the data plane: an open registry. Access control
        // has its own suite (tests/auth).
        config.access_control = false;
        // The blob store is S3 when the suite runs under `.ci/s3`.
        if let Some(s3) = S3Settings::for_test_dir(&dir_path) {
            config.blob_store = BlobStoreConfig::S3(s3);
        }
        configure(&mut config);
        config.database_url = database_url;
        let registry = Registry::open(&dir_path, config).await.unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(berth_registry::serve(listener, registry, async move {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            base,
            addr,
            client,
            dir,
            dir_path,
            database,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Stops the server (graceful shutdown) and hands back its data directory.
    pub async fn stop(mut self) -> TempDir {
        // Idle keep-alive connections would hold the graceful shutdown open.
        self.client = reqwest::Client::new();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .expect("the server stops within 10 s")
                .unwrap()
                .unwrap();
        }
        let dir = self.dir.take().unwrap();
        if let Some(database) = self.database.take() {
            PARKED
                .lock()
                .unwrap()
                .get_or_insert_with(HashMap::new)
                .insert(dir.path().to_owned(), database);
        }
        dir
    }

    /// The PostgreSQL database the server runs on; `None` on SQLite.
    pub fn database_url(&self) -> Option<DatabaseUrl> {
        self.database.as_ref().map(|d| d.url().clone())
    }

    /// The data directory the server runs on.
    pub fn path(&self) -> &std::path::Path {
        self.dir_path.as_path()
    }

    /// A second server over the same data directory, metadata and blob
    /// store, as another node of a cluster: what one node records, the
    /// other reads.
    /// Dropping it stops it.
    pub async fn start_beside(&self, configure: impl FnOnce(&mut Config)) -> Self {
        Self::open_at(
            None,
            self.dir_path.clone(),
            None,
            self.database_url(),
            configure,
        )
        .await
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An absolute URL for `path` (`/v2/...`); absolute URLs are kept as given.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// A request to `path` (or to an absolute URL such as a `Location`).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// Sends a request and checks the API version header every `/v2` answer carries.
    #[track_caller]
    pub fn send(&self, request: RequestBuilder) -> impl Future<Output = Resp> + '_ {
        let caller = std::panic::Location::caller();
        async move {
            let response = request.send().await.unwrap();
            let resp = Resp {
                status: response.status().as_u16(),
                headers: response.headers().clone(),
                body: response.bytes().await.unwrap().to_vec(),
            };
            resp.check_api_version(caller);
            resp
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.request(Method::GET, path)).await
    }

    /// `HEAD path`.
    pub async fn head(&self, path: &str) -> Resp {
        self.send(self.request(Method::HEAD, path)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Resp {
        self.send(self.request(Method::DELETE, path)).await
    }

    /// `POST path` with `body` (as `application/octet-stream`).
    pub async fn post(&self, path: &str, body: &[u8]) -> Resp {
        self.send(
            self.request(Method::POST, path)
                .header("content-type", "application/octet-stream")
                .body(body.to_vec()),
        )
        .await
    }

    /// Pushes `bytes` to `name` in one request (`POST ?digest=`); asserts 201.
    pub async fn push_blob(&self, name: &str, bytes: &[u8]) -> Digest {
        let digest = Digest::sha256_of(bytes);
        let resp = self
            .post(&format!("/v2/{name}/blobs/uploads/?digest={digest}"), bytes)
            .await;
        assert_eq!(resp.status, 201, "pushing a blob: {}", resp.text());
        digest
    }

    /// Starts an upload session on `name`; asserts 202 and returns its `Location`.
    pub async fn start_upload(&self, name: &str) -> String {
        let resp = self.post(&format!("/v2/{name}/blobs/uploads/"), b"").await;
        assert_eq!(resp.status, 202, "starting an upload: {}", resp.text());
        resp.header("location").unwrap().to_owned()
    }

    /// `PATCH location` with `chunk` as bytes `start..` (`Content-Range`, `Content-Length`).
    pub async fn patch_chunk(&self, location: &str, start: u64, chunk: &[u8]) -> Resp {
        let end = start + chunk.len() as u64 - 1;
        self.send(
            self.request(Method::PATCH, location)
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{start}-{end}"))
                .body(chunk.to_vec()),
        )
        .await
    }

    /// `PUT location?digest=<digest>` with `body` (possibly empty) as the last chunk.
    pub async fn close_upload(&self, location: &str, digest: &Digest, body: &[u8]) -> Resp {
        self.send(
            self.request(
                Method::PUT,
                &with_query(location, &format!("digest={digest}")),
            )
            .header("content-type", "application/octet-stream")
            .body(body.to_vec()),
        )
        .await
    }

    /// `PUT /v2/<name>/manifests/<reference>` with `body` as `content_type`.
    pub async fn put_manifest(
        &self,
        name: &str,
        reference: &str,
        content_type: &str,
        body: &[u8],
    ) -> Resp {
        self.send(
            self.request(Method::PUT, &format!("/v2/{name}/manifests/{reference}"))
                .header("content-type", content_type)
                .body(body.to_vec()),
        )
        .await
    }

    /// Pushes a manifest whose `mediaType` names its content type; asserts 201.
    pub async fn push_manifest(&self, name: &str, reference: &str, manifest: &Value) -> Digest {
        let body = to_bytes(manifest);
        let content_type = manifest["mediaType"].as_str().unwrap();
        let resp = self
            .put_manifest(name, reference, content_type, &body)
            .await;
        assert_eq!(resp.status, 201, "pushing a manifest: {}", resp.text());
        let digest = Digest::sha256_of(&body);
        assert_eq!(
            resp.header("docker-content-digest"),
            Some(&*digest.to_string())
        );
        digest
    }

    /// Pushes the empty config and one random layer, then an image manifest
    /// over them under `reference`; returns the manifest.
    pub async fn push_image(&self, name: &str, reference: &str) -> Pushed {
        let layer = random_bytes(64);
        self.push_blob(name, EMPTY_CONFIG).await;
        let layer_digest = self.push_blob(name, &layer).await;
        let manifest = image_manifest(&[layer_descriptor(&layer)]);
        let digest = self.push_manifest(name, reference, &manifest).await;
        Pushed {
            bytes: to_bytes(&manifest),
            digest,
            layer: layer_digest,
        }
    }

    /// Sends `method raw_path` over a plain TCP connection, so that the path
    /// reaches the server byte for byte (HTTP clients normalise `..` and `%2e%2e`).
    pub async fn raw(&self, method: &str, raw_path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut request = format!(
            "{method} {raw_path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        self.raw_bytes(request.as_bytes()).await
    }

    /// Writes `request` verbatim on a new connection and reads the answer
    /// until the server closes it (the request must say `Connection: close`;
    /// no half-close: hyper drops a connection whose client half-closed).
    pub async fn raw_bytes(&self, request: &[u8]) -> Resp {
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
            .await
            .expect("the server answers a raw request within 10 s")
            .unwrap();
        let resp = parse_raw_response(&answer);
        resp.check_api_version(std::panic::Location::caller());
        resp
    }
}

/// Whether the suite runs with its blobs on S3 (under `.ci/s3`).
pub fn blobs_on_s3() -> bool {
    std::env::var_os("BERTH_TEST_S3_ENDPOINT").is_some()
}

/// A manifest pushed by [`TestApp::push_image`].
pub struct Pushed {
    /// Its exact bytes.
    pub bytes: Vec<u8>,
    /// Their digest.
    pub digest: Digest,
    /// The digest of its one layer.
    pub layer: Digest,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Resp {
    /// The one value of header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut values = self.headers.get_all(name).iter();
        let value = values.next()?;
        assert!(values.next().is_none(), "header {name} is sent twice");
        Some(value.to_str().unwrap())
    }

    /// The body as text (for assertion messages).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// Asserts an OCI error answer: this status, a JSON body
    /// `{"errors":[{"code","message",..}]}` with exactly this one code and a
    /// message; returns the message.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "status; body: {}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "an error body is JSON"
        );
        let body = self.json();
        let errors = body["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "one error: {body}");
        assert_eq!(errors[0]["code"], code, "error code: {body}");
        let message = errors[0]["message"].as_str().unwrap();
        assert!(!message.is_empty(), "a message a person can act on: {body}");
        message.to_owned()
    }

    fn check_api_version(&self, caller: &std::panic::Location<'_>) {
        assert_eq!(
            self.header(API_VERSION),
            Some("registry/2.0"),
            "every /v2 response carries Docker-Distribution-API-Version (status {}, request at {caller})",
            self.status
        );
    }
}

/// The empty config blob `{}` (image-spec "Guidance for an Empty Descriptor").
pub const EMPTY_CONFIG: &[u8] = b"{}";

/// The descriptor of [`EMPTY_CONFIG`].
pub fn empty_descriptor() -> Value {
    descriptor(media_type::OCI_EMPTY, EMPTY_CONFIG)
}

/// A descriptor of `bytes` with `media_type`.
pub fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({
        "mediaType": media_type,
        "digest": Digest::sha256_of(bytes).to_string(),
        "size": bytes.len(),
    })
}

/// A layer descriptor (`application/vnd.oci.image.layer.v1.tar`) of `bytes`.
pub fn layer_descriptor(bytes: &[u8]) -> Value {
    descriptor(media_type::OCI_LAYER_TAR, bytes)
}

/// An OCI image manifest over the empty config and `layers`.
pub fn image_manifest(layers: &[Value]) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_IMAGE_MANIFEST,
        "config": empty_descriptor(),
        "layers": layers,
    })
}

/// An artifact manifest (OCI image manifest with `artifactType`, the empty
/// config and one empty layer) whose `subject` is `subject`.
pub fn artifact_manifest(artifact_type: &str, subject: &Value) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_IMAGE_MANIFEST,
        "artifactType": artifact_type,
        "config": empty_descriptor(),
        "layers": [empty_descriptor()],
        "subject": subject,
    })
}

/// An OCI image index over `manifests` (descriptors).
pub fn image_index(manifests: &[Value]) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_IMAGE_INDEX,
        "manifests": manifests,
    })
}

/// The descriptor of a manifest: its media type, digest and size.
pub fn manifest_descriptor(manifest: &Value) -> Value {
    descriptor(manifest["mediaType"].as_str().unwrap(), &to_bytes(manifest))
}

/// The bytes a test pushes for `value`.
pub fn to_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

/// `len` pseudo-random bytes, different on every call (xorshift64*).
pub fn random_bytes(len: usize) -> Vec<u8> {
    static SEED: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut state = SEED.fetch_add(0x2545_f491_4f6c_dd1d, Ordering::Relaxed) ^ nanos | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `location` with `pair` added to its query.
pub fn with_query(location: &str, pair: &str) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    format!("{location}{separator}{pair}")
}

/// The path (and query) of an absolute URL such as a `Location`.
pub fn path_of(url: &str) -> &str {
    let after_scheme = url.strip_prefix("http://").unwrap_or(url);
    &after_scheme[after_scheme.find('/').unwrap()..]
}

fn parse_raw_response(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no complete response head in {:?}",
                String::from_utf8_lossy(raw)
            )
        });
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        headers.append(
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            value.trim().parse().unwrap(),
        );
    }
    let rest = &raw[split + 4..];
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
    let body = if chunked {
        decode_chunked(rest)
    } else {
        rest.to_vec()
    };
    Resp {
        status,
        headers,
        body,
    }
}

fn decode_chunked(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = std::str::from_utf8(&raw[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        raw = &raw[line_end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// A small tmpfs mounted on a fresh directory, unmounted when dropped: a real
/// filesystem that a test can fill up. Mounting needs root (the tests run as
/// root in CI); where it is not permitted, [`Tmpfs::mount`] prints why and
/// returns `None`, and the test skips.
pub struct Tmpfs {
    dir: Option<TempDir>,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` bytes, or says why it cannot.
    pub fn mount(bytes: u64) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Self { dir: Some(dir) }),
            Ok(out) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    /// The mount point.
    pub fn path(&self) -> &std::path::Path {
        self.dir.as_ref().unwrap().path()
    }

    /// A fresh directory on the tmpfs, for a registry's data.
    pub fn data_dir(&self) -> TempDir {
        tempfile::tempdir_in(self.path()).unwrap()
    }

    /// Fills the filesystem with `<mount>/filler` until a write fails with
    /// "no space left on device"; returns the filler's path.
    pub fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        for chunk in [1 << 20, 4096, 1] {
            let bytes = vec![0x5a_u8; chunk];
            loop {
                match file.write_all(&bytes) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                    Err(e) => panic!("filling the tmpfs: {e}"),
                }
            }
        }
        let _ = file.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            // Lazily: a server task of the test may still hold files open.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(dir.path())
                .status();
            drop(dir);
        }
    }
}
