//! The harness: a real berth server with access control on (token auth,
//! service `127.0.0.1:<port>`, issuer `berth`, 300 s tokens) over a fresh data
//! directory; principals made through the identity store; tokens asked of
//! `/token` as a client asks; and requests carrying them.
//!
//! The metadata is the embedded SQLite database, or, when
//! `BERTH_TEST_DATABASE_URL` names a PostgreSQL cluster (`.ci/postgres`), a
//! fresh database of the test's own on it, dropped after the test. The blobs
//! are in the data directory; a test that opts in
//! ([`TestApp::start_with_s3_if_set`]) has them in S3 when
//! `BERTH_TEST_S3_ENDPOINT` names a server (`.ci/s3`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use berth_core::digest::Digest;
use berth_core::media_type;
use berth_core::name::RepositoryName;
use berth_registry::identity::password::hash_password;
use berth_registry::identity::secret::generate_pat;
use berth_registry::identity::{NewPat, Organization, Role, User};
use berth_registry::meta::scratch::ScratchDatabase;
use berth_registry::meta::url::DatabaseUrl;
use berth_registry::store::S3Settings;
use berth_registry::{BlobStoreConfig, Config, Registry};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;

/// The header every `/v2` response carries, errors included.
pub const API_VERSION: &str = "docker-distribution-api-version";

/// The administrator's password in every test app.
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// Token lifetime of the test apps (the `Config::new` default).
pub const LIFETIME: u64 = 300;

/// A running registry with access control on, over its own data directory.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`, also the registry's public URL.
    pub base: String,
    /// The `service` of challenges and tokens: `127.0.0.1:<port>`.
    pub service: String,
    /// The registry the server runs (a clone sharing its stores), for setting
    /// up what the HTTP API cannot: users, organisations, visibility.
    pub registry: Registry,
    client: reqwest::Client,
    _shutdown: oneshot::Sender<()>,
    // Dropped after the server is told to stop: the database last.
    dir: TempDir,
    database: Option<ScratchDatabase>,
}

impl TestApp {
    /// A registry with the defaults of `Config::new` and an `admin`.
    pub async fn start() -> Self {
        Self::start_with(|config| {
            assert!(config.access_control, "access control is on by default");
            assert_eq!(config.issuer, "berth");
            assert_eq!(config.token_lifetime, Duration::from_secs(LIFETIME));
        })
        .await
    }

    /// A registry with the defaults changed by `configure`.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = ScratchDatabase::from_env().await.unwrap();
        let app = Self::launch(dir, database, configure).await;
        assert_eq!(format!("http://{}", app.service), app.base);
        app
    }

    /// [`Self::start_with`], with the blobs in S3 when the suite runs under
    /// `.ci/s3` (`BERTH_TEST_S3_ENDPOINT`), under a prefix of this test's own.
    pub async fn start_with_s3_if_set(configure: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let s3 = S3Settings::for_test_dir(dir.path());
        let database = ScratchDatabase::from_env().await.unwrap();
        Self::launch(dir, database, |config| {
            if let Some(s3) = s3 {
                config.blob_store = BlobStoreConfig::S3(s3);
            }
            configure(config);
        })
        .await
    }

    /// A registry on the embedded SQLite database whatever
    /// `BERTH_TEST_DATABASE_URL` says: what `berth migrate` copies from.
    pub async fn start_embedded() -> Self {
        Self::launch(tempfile::tempdir().unwrap(), None, |_| {}).await
    }

    /// A registry on `dir` and `database` (when given), which may hold a
    /// registry already (a migration's target), with the defaults changed
    /// by `configure`; `admin` is created only on a registry without users.
    pub async fn launch(
        dir: TempDir,
        database: Option<ScratchDatabase>,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let mut config = Config::new(base.clone());
        configure(&mut config);
        let service = config.service.clone();
        config.database_url = database.as_ref().map(|d| d.url().clone());
        let registry = Registry::open(dir.path(), config).await.unwrap();
        registry
            .bootstrap_admin(Some(ADMIN_PASSWORD.to_owned()))
            .await
            .unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        // The server task ends with the test's runtime.
        tokio::spawn(berth_registry::serve(
            listener,
            registry.clone(),
            async move {
                let _ = rx.await;
            },
        ));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            base,
            service,
            registry,
            client,
            _shutdown: tx,
            dir,
            database,
        }
    }

    // ----- principals -----

    /// Creates the user `name` with password [`password_of`]`(name)`.
    pub async fn user(&self, name: &str) -> User {
        let password = password_of(name);
        let hash = tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .unwrap()
            .unwrap();
        self.registry
            .identity
            .create_user(name, Some(&hash), false)
            .await
            .unwrap()
    }

    /// Creates the organisation `name` owned by `owner`.
    pub async fn org(&self, name: &str, owner: &User) -> Organization {
        self.registry
            .identity
            .create_org(name, owner.id)
            .await
            .unwrap()
    }

    /// Makes `user` a member of `org` with `role`.
    pub async fn member(&self, org: &Organization, user: &User, role: Role) {
        self.registry
            .identity
            .set_member(org.id, user.id, role)
            .await
            .unwrap();
    }

    /// Creates the robot account `name` of `org`.
    pub async fn robot(&self, org: &Organization, name: &str) -> User {
        self.registry
            .identity
            .create_robot(org.id, name)
            .await
            .unwrap()
    }

    /// A personal access token of `user` named `name`, carrying `actions`
    /// (`pull,push`), limited to `repositories` (none: all), expiring
    /// `expires_in` seconds from now (the store refuses a past expiry).
    pub async fn pat(
        &self,
        user: &User,
        name: &str,
        actions: &str,
        repositories: &[&str],
        expires_in: i64,
    ) -> String {
        let (secret, secret_hash) = generate_pat().unwrap();
        self.registry
            .identity
            .create_pat(&NewPat {
                user: user.id,
                name: name.to_owned(),
                secret_hash,
                actions: actions.parse().unwrap(),
                repositories: repositories.iter().map(|r| (*r).to_owned()).collect(),
                expires_at: now() + expires_in,
            })
            .await
            .unwrap();
        secret.expose().to_owned()
    }

    /// Makes repository `name` public or private (it must exist).
    pub async fn set_public(&self, name: &str, public: bool) {
        let name = RepositoryName::parse(name).unwrap();
        assert!(
            self.registry
                .meta
                .set_repository_public(&name, public)
                .await
                .unwrap(),
            "{name} exists"
        );
    }

    // ----- tokens -----

    /// `GET /token?<query>` with optional Basic credentials.
    pub async fn token_get(&self, basic: Option<(&str, &str)>, query: &str) -> Resp {
        let mut request = self.request(Method::GET, &format!("/token?{query}"));
        if let Some((user, password)) = basic {
            request = request.header("authorization", basic_header(user, password));
        }
        self.send(request).await
    }

    /// `POST /token` with a form body (already encoded).
    pub async fn token_post(&self, form: &str) -> Resp {
        self.send(
            self.request(Method::POST, "/token")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.to_owned()),
        )
        .await
    }

    /// `POST /token` with a form body, sent from the local address `from`
    /// (every 127.0.0.0/8 address reaches the server): another client.
    pub async fn token_post_from(&self, from: std::net::IpAddr, form: &str) -> Resp {
        let client = reqwest::Client::builder()
            .local_address(from)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let request = client
            .post(self.url("/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_owned());
        self.send(request).await
    }

    /// A client whose requests leave from the local address `from` (every
    /// 127.0.0.0/8 address reaches the server): another client.
    pub fn client_from(&self, from: std::net::IpAddr) -> reqwest::Client {
        reqwest::Client::builder()
            .local_address(from)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    /// `GET /token?<query>` with optional Basic credentials, sent with `client`
    /// (see [`Self::client_from`]).
    pub async fn token_get_with(
        &self,
        client: &reqwest::Client,
        basic: Option<(&str, &str)>,
        query: &str,
    ) -> Resp {
        let mut request = client.get(self.url(&format!("/token?{query}")));
        if let Some((user, password)) = basic {
            request = request.header("authorization", basic_header(user, password));
        }
        self.send(request).await
    }

    /// The `GET /token` query for `scopes`, with this registry's `service`.
    pub fn token_query(&self, scopes: &[&str]) -> String {
        let mut query = format!("service={}", encode(&self.service));
        for scope in scopes {
            query.push_str(&format!("&scope={}", encode(scope)));
        }
        query
    }

    /// A token for `scopes` (asserts 200), with optional Basic credentials.
    pub async fn token(&self, basic: Option<(&str, &str)>, scopes: &[&str]) -> String {
        let resp = self.token_get(basic, &self.token_query(scopes)).await;
        assert_eq!(resp.status, 200, "token for {scopes:?}: {}", resp.text());
        resp.json()["token"].as_str().unwrap().to_owned()
    }

    /// An anonymous token for `scopes`.
    pub async fn anonymous_token(&self, scopes: &[&str]) -> String {
        self.token(None, scopes).await
    }

    /// A token for user `name` (password [`password_of`]) for `scopes`.
    pub async fn user_token(&self, name: &str, scopes: &[&str]) -> String {
        let password = if name == berth_registry::ADMIN_USER {
            ADMIN_PASSWORD.to_owned()
        } else {
            password_of(name)
        };
        self.token(Some((name, &password)), scopes).await
    }

    // ----- requests -----

    /// An absolute URL for `path`; absolute URLs are kept as given.
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

    /// A request carrying `Authorization: Bearer <token>` when `token` is given.
    pub fn bearer(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self.request(method, path);
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request; a `/v2` answer must carry the API version header.
    #[track_caller]
    pub fn send(&self, request: RequestBuilder) -> impl Future<Output = Resp> + '_ {
        let caller = std::panic::Location::caller();
        async move {
            let (client, request) = request.build_split();
            let request = request.unwrap();
            let v2 = request.url().path().starts_with("/v2");
            let response = client.execute(request).await.unwrap();
            let resp = Resp {
                status: response.status().as_u16(),
                headers: response.headers().clone(),
                body: response.bytes().await.unwrap().to_vec(),
            };
            if v2 {
                assert_eq!(
                    resp.header(API_VERSION),
                    Some("registry/2.0"),
                    "every /v2 response carries Docker-Distribution-API-Version (status {}, request at {caller})",
                    resp.status
                );
            }
            resp
        }
    }

    /// `GET path` with an optional bearer token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.send(self.bearer(Method::GET, path, token)).await
    }

    /// `HEAD path` with an optional bearer token.
    pub async fn head(&self, path: &str, token: Option<&str>) -> Resp {
        self.send(self.bearer(Method::HEAD, path, token)).await
    }

    /// `DELETE path` with an optional bearer token.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.send(self.bearer(Method::DELETE, path, token)).await
    }

    /// `POST path` with `body` as `application/octet-stream`.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &[u8]) -> Resp {
        self.send(
            self.bearer(Method::POST, path, token)
                .header("content-type", "application/octet-stream")
                .body(body.to_vec()),
        )
        .await
    }

    /// `PUT /v2/<name>/manifests/<reference>` with `manifest` as its media type.
    pub async fn put_manifest(
        &self,
        name: &str,
        reference: &str,
        token: Option<&str>,
        manifest: &Value,
    ) -> Resp {
        self.send(
            self.bearer(
                Method::PUT,
                &format!("/v2/{name}/manifests/{reference}"),
                token,
            )
            .header("content-type", manifest["mediaType"].as_str().unwrap())
            .body(to_bytes(manifest)),
        )
        .await
    }

    /// Pushes `bytes` to `name` in one request; asserts 201.
    pub async fn push_blob(&self, name: &str, token: &str, bytes: &[u8]) -> Digest {
        let digest = Digest::sha256_of(bytes);
        let resp = self
            .post(
                &format!("/v2/{name}/blobs/uploads/?digest={digest}"),
                Some(token),
                bytes,
            )
            .await;
        assert_eq!(
            resp.status,
            201,
            "pushing a blob to {name}: {}",
            resp.text()
        );
        digest
    }

    /// Pushes the empty config, one random layer and an image manifest over
    /// them to `name:reference` with `token`; asserts every step.
    pub async fn push_image(&self, name: &str, reference: &str, token: &str) -> Pushed {
        let layer = random_bytes(64);
        self.push_blob(name, token, EMPTY_CONFIG).await;
        let layer_digest = self.push_blob(name, token, &layer).await;
        let manifest = image_manifest(&[layer_descriptor(&layer)]);
        let resp = self
            .put_manifest(name, reference, Some(token), &manifest)
            .await;
        assert_eq!(
            resp.status,
            201,
            "pushing {name}:{reference}: {}",
            resp.text()
        );
        Pushed {
            digest: Digest::sha256_of(&to_bytes(&manifest)),
            layer: layer_digest,
        }
    }

    /// Pushes an image to `name:reference` as the owner of its namespace
    /// (the administrator, who may push anywhere).
    pub async fn seed_image(&self, name: &str, reference: &str) -> Pushed {
        let scope = format!("repository:{name}:pull,push");
        let token = self.user_token(berth_registry::ADMIN_USER, &[&scope]).await;
        self.push_image(name, reference, &token).await
    }

    /// A call of the admin API (`/api/v1/...`) as the administrator, with a
    /// JSON body when given (`Content-Type: application/json`).
    pub async fn admin_api(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let mut request = self
            .request(method, path)
            .header("authorization", basic_header("admin", ADMIN_PASSWORD));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(to_bytes(&body));
        }
        self.send(request).await
    }

    /// A call of the API (`/api/v1/...`) with `authorization` (a header
    /// value: [`basic_header`], or `Bearer <refresh token>`), with a JSON
    /// body when given.
    pub async fn api_with(
        &self,
        method: Method,
        path: &str,
        authorization: &str,
        body: Option<Value>,
    ) -> Resp {
        let mut request = self
            .request(method, path)
            .header("authorization", authorization);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(to_bytes(&body));
        }
        self.send(request).await
    }

    /// A call of the API as user `name` with their password ([`password_of`]).
    pub async fn api_as(
        &self,
        name: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        let password = password_of(name);
        self.api_with(method, path, &basic_header(name, &password), body)
            .await
    }

    /// A refresh token for user `name` (the OAuth2 password grant with
    /// `access_type=offline`, as `berth login` asks).
    pub async fn refresh_token(&self, name: &str, password: &str) -> String {
        let form = format!(
            "grant_type=password&username={}&password={}&service={}&access_type=offline&client_id=test",
            encode(name),
            encode(password),
            encode(&self.service)
        );
        let resp = self.token_post(&form).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        resp.json()["refresh_token"].as_str().unwrap().to_owned()
    }

    /// The data directory the server runs on (another registry may open it:
    /// a second node sharing the database, or the same one after a restart).
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Whether the blob store holds the bytes of `digest`, as the store
    /// answers; on the filesystem, its file under `<data>/blobs/` must agree.
    pub async fn blob_stored(&self, digest: &Digest) -> bool {
        let stored = self.registry.blobs.stat(digest).await.unwrap().is_some();
        if matches!(self.registry.config.blob_store, BlobStoreConfig::DataDir) {
            let hex = digest.hex();
            let file = self
                .dir
                .path()
                .join("blobs")
                .join(digest.algorithm().as_str())
                .join(&hex[..2])
                .join(hex);
            assert_eq!(
                file.exists(),
                stored,
                "{} and the store agree",
                file.display()
            );
        }
        stored
    }

    /// Records in the database that the manifest `digest` of `name` was
    /// last pulled `age` seconds ago (as the pulls a collection writes down).
    pub async fn pulled_ago(&self, name: &str, digest: &Digest, age: i64) {
        let done = berth_registry::meta::db::query(
            "UPDATE manifests SET pulled_at = $1
              WHERE digest = $2 AND repository_id = (SELECT id FROM repositories WHERE name = $3)",
        )
        .bind(now() - age)
        .bind(digest.to_string())
        .bind(name)
        .execute(&self.registry.db)
        .await
        .unwrap();
        assert_eq!(done, 1, "manifest {digest} of {name}");
    }

    /// The PostgreSQL database the server runs on; `None` on SQLite.
    pub fn database_url(&self) -> Option<DatabaseUrl> {
        self.database.as_ref().map(|d| d.url().clone())
    }

    /// Another registry on the same data: a second node sharing the
    /// database (and the blob directory), or the same node after a restart.
    pub async fn open_node(&self, mut config: Config) -> Registry {
        config.database_url = self.database_url();
        Registry::open(self.data_dir(), config).await.unwrap()
    }

    /// `Bearer realm="<base>/token",service="<service>"` and, when given,
    /// `scope` and `error`: the exact challenge berth must send.
    pub fn challenge(&self, scope: Option<&str>, error: Option<&str>) -> String {
        let mut c = format!(
            r#"Bearer realm="{}/token",service="{}""#,
            self.base, self.service
        );
        if let Some(scope) = scope {
            c.push_str(&format!(r#",scope="{scope}""#));
        }
        if let Some(error) = error {
            c.push_str(&format!(r#",error="{error}""#));
        }
        c
    }

    /// The PEM private key of the active signing key, read from the data
    /// directory, and its `kid`: what a forger who stole it would have.
    pub fn signing_key(&self) -> (String, Vec<u8>) {
        let keys = self
            .registry
            .keys
            .as_ref()
            .expect("access control on: signing keys loaded");
        let kid = keys.active_kid();
        let pem = std::fs::read(
            self.dir
                .path()
                .join("keys/signing")
                .join(format!("{kid}.key.pem")),
        )
        .unwrap();
        (kid, pem)
    }
}

/// The password every test user `name` gets.
/// The administrator's token for pull, push and delete on `repositories`.
pub async fn admin_token(app: &TestApp, repositories: &[&str]) -> String {
    let scopes: Vec<String> = repositories
        .iter()
        .map(|r| format!("repository:{r}:pull,push,delete"))
        .collect();
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    app.user_token(berth_registry::ADMIN_USER, &scopes).await
}

pub fn password_of(name: &str) -> String {
    format!("{name}-correct-horse")
}

/// `Basic base64(user:password)`.
pub fn basic_header(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// Percent-encodes a query or form value.
pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The decoded claims of a JWT (no verification: what the test reads).
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The `access` claim of a JWT.
pub fn access(token: &str) -> Value {
    claims(token)["access"].clone()
}

/// One `access` entry: `{"type":"repository","name",...,"actions":[...]}`.
pub fn repo_access(name: &str, actions: &[&str]) -> Value {
    json!({"type": "repository", "name": name, "actions": actions})
}

/// An image pushed by [`TestApp::push_image`].
pub struct Pushed {
    /// The manifest's digest.
    pub digest: Digest,
    /// The digest of its one layer.
    pub layer: Digest,
}

/// A response, read whole.
#[derive(Debug, Clone)]
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
        Some(value.to_str().expect("berth sends ASCII header values"))
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

    /// Asserts an OCI error answer: this status, a JSON body with exactly
    /// this one code and a message; returns the message.
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

    /// Asserts a 401 UNAUTHORIZED with exactly this `WWW-Authenticate`.
    #[track_caller]
    pub fn assert_unauthorized(&self, challenge: &str) {
        self.assert_error(401, "UNAUTHORIZED");
        assert_eq!(self.header("www-authenticate"), Some(challenge));
    }
}

/// The empty config blob `{}`.
pub const EMPTY_CONFIG: &[u8] = b"{}";

/// An OCI image manifest over the empty config and `layers`.
pub fn image_manifest(layers: &[Value]) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_IMAGE_MANIFEST,
        "config": {
            "mediaType": media_type::OCI_EMPTY,
            "digest": Digest::sha256_of(EMPTY_CONFIG).to_string(),
            "size": EMPTY_CONFIG.len(),
        },
        "layers": layers,
    })
}

/// A layer descriptor of `bytes`.
pub fn layer_descriptor(bytes: &[u8]) -> Value {
    json!({
        "mediaType": media_type::OCI_LAYER_TAR,
        "digest": Digest::sha256_of(bytes).to_string(),
        "size": bytes.len(),
    })
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
