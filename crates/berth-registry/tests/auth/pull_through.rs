//! The pull-through cache as its clients and its upstream see it.
//!
//! The upstream is a fixture in the test process (axum on `127.0.0.1:0`)
//! that answers as Docker Hub and GHCR do: every `/v2` request without a
//! valid bearer token gets a challenge naming a token service on another
//! port ("realm on another host") and GHCR's placeholder scope; its tokens
//! come without `expires_in` and are good for a scripted number of requests;
//! it counts every request by method and path, and is scripted to be down,
//! rate limited, corrupt, slow, or to move a tag. One test has another berth
//! as the upstream: a private repository the cache signs in for.
//!
//! What the tests assert is what a client and an operator depend on: exact
//! statuses, headers and error codes, the bytes, the requests the upstream
//! saw (how many, with which scopes), what the cache keeps, and the counters
//! at `/metrics`. Nothing asserts how long anything took: what happens in
//! the background is polled for up to a deadline, and the one check that
//! needs a request to land within a one-second TTL is made only when it
//! provably did.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use berth_core::digest::{Digest, Digester};
use berth_core::media_type;
use berth_core::name::RepositoryName;
use berth_registry::gc::retention::{Policy, PolicyText};
use berth_registry::proxy::{ProxySettings, ProxyText};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::events::{eventually, metric};
use crate::support::{
    ADMIN_PASSWORD, EMPTY_CONFIG, Resp, TestApp, admin_token, basic_header, image_manifest,
    layer_descriptor, random_bytes, to_bytes,
};

/// The proxy namespace of the cache under test.
const PROXY: &str = "up";
/// The upstream repository the tests pull.
const REPO: &str = "acme/app";
/// That repository through the cache.
const CACHED: &str = "up/acme/app";
/// The upstream's `service`, in its challenges.
const SERVICE: &str = "fixture";
/// The scope GHCR's challenges name whatever was asked for.
const PLACEHOLDER_SCOPE: &str = "repository:user/image:pull";
/// The bytes of each chunk of a slow blob answer.
const SLOW_CHUNK: usize = 1 << 20;
/// `Docker-Content-Digest`.
const DOCKER_CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");

// ----- the upstream -----

/// A repository of the upstream.
#[derive(Default)]
struct Repo {
    tags: HashMap<String, Digest>,
    /// Media type and bytes, by digest.
    manifests: HashMap<Digest, (String, Bytes)>,
    blobs: HashMap<Digest, Bytes>,
}

/// One request the upstream registry got, and the status it answered.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    range: Option<String>,
    status: u16,
}

/// One request the upstream token service got.
#[derive(Debug, Clone)]
struct TokenAsk {
    /// Every scope asked for.
    scopes: Vec<String>,
    /// The `Authorization` header sent.
    authorization: Option<String>,
}

/// What the upstream holds, how it behaves, and what it saw.
#[derive(Default)]
struct Script {
    repos: HashMap<String, Repo>,
    /// Every `/v2` request answers 503.
    down: bool,
    /// Every `/v2` request answers 429 with `Retry-After: 42`.
    rate_limited: bool,
    /// Blobs are served with one byte flipped (the length right).
    corrupt_blob: bool,
    /// Manifests asked for by digest are served with bytes of another digest.
    wrong_manifest_digest: bool,
    /// Blobs are sent in chunks with pauses, held after the first chunk
    /// while the blob gate is closed.
    slow: bool,
    /// How many registry requests a new token is good for (`None`: any).
    token_uses: Option<u32>,
    /// The Basic credentials the token service requires (`None`: any).
    credentials: Option<(String, String)>,
    /// Tokens issued, with the requests each has left.
    tokens: HashMap<String, Option<u32>>,
    seen: Vec<Seen>,
    token_asks: Vec<TokenAsk>,
}

struct Shared {
    script: Mutex<Script>,
    /// The token service's URL.
    realm: String,
    /// Open: slow blobs go on past their first chunk.
    blob_gate: watch::Sender<bool>,
    /// Open: manifest `HEAD`s are answered (closed, they wait).
    head_gate: watch::Sender<bool>,
}

/// A registry like Docker Hub or GHCR: the registry on one port, its token
/// service on another; both end with the test's runtime.
struct Upstream {
    /// `http://127.0.0.1:<port>`, the registry.
    url: String,
    shared: Arc<Shared>,
}

/// A test image: the empty config, one layer, an OCI manifest over them.
struct Image {
    manifest: Vec<u8>,
    digest: Digest,
    layer: Vec<u8>,
}

impl Image {
    fn layer_digest(&self) -> Digest {
        Digest::sha256_of(&self.layer)
    }
}

/// The digest of [`EMPTY_CONFIG`].
fn config_digest() -> Digest {
    Digest::sha256_of(EMPTY_CONFIG)
}

impl Upstream {
    async fn start() -> Self {
        let registry = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tokens = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shared = Arc::new(Shared {
            script: Mutex::default(),
            realm: format!("http://{}/token", tokens.local_addr().unwrap()),
            blob_gate: watch::channel(true).0,
            head_gate: watch::channel(true).0,
        });
        let url = format!("http://{}", registry.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(serve_registry)
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(registry, app).await;
        });
        let app = axum::Router::new()
            .fallback(serve_token)
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(tokens, app).await;
        });
        Self { url, shared }
    }

    /// The script, to change or read.
    fn script(&self) -> MutexGuard<'_, Script> {
        self.shared.script.lock().unwrap()
    }

    /// Stores a blob in `repo`; its digest.
    fn put_blob(&self, repo: &str, bytes: impl Into<Bytes>) -> Digest {
        let bytes = bytes.into();
        let digest = Digest::sha256_of(&bytes);
        let mut script = self.script();
        let repo = script.repos.entry(repo.to_owned()).or_default();
        repo.blobs.insert(digest.clone(), bytes);
        digest
    }

    /// Stores an image in `repo` under `tag` (moved when it named another),
    /// its layer `layer_len` random bytes.
    fn push_image(&self, repo: &str, tag: &str, layer_len: usize) -> Image {
        let layer = random_bytes(layer_len);
        self.put_blob(repo, EMPTY_CONFIG);
        self.put_blob(repo, layer.clone());
        let manifest = to_bytes(&image_manifest(&[layer_descriptor(&layer)]));
        let digest = Digest::sha256_of(&manifest);
        let mut script = self.script();
        let stored = script.repos.entry(repo.to_owned()).or_default();
        stored.manifests.insert(
            digest.clone(),
            (
                media_type::OCI_IMAGE_MANIFEST.to_owned(),
                Bytes::from(manifest.clone()),
            ),
        );
        stored.tags.insert(tag.to_owned(), digest.clone());
        Image {
            manifest,
            digest,
            layer,
        }
    }

    /// Every registry request so far.
    fn seen(&self) -> Vec<Seen> {
        self.script().seen.clone()
    }

    /// The `method` requests on `path` that got past the token check (its
    /// 401 challenges are not counted).
    fn served(&self, method: &Method, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == *method && s.path == path && s.status != 401)
            .count()
    }

    /// The `method` requests on `path` of any answer, challenges included.
    fn requests(&self, method: &Method, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == *method && s.path == path)
            .count()
    }

    /// The `GET`s of manifests of `repo` (by tag or digest) past the token check.
    fn manifest_gets(&self, repo: &str) -> usize {
        let prefix = format!("/v2/{repo}/manifests/");
        self.seen()
            .iter()
            .filter(|s| s.method == Method::GET && s.path.starts_with(&prefix) && s.status != 401)
            .count()
    }

    /// Registry requests and token requests so far, of any kind.
    fn activity(&self) -> (usize, usize) {
        let script = self.script();
        (script.seen.len(), script.token_asks.len())
    }

    /// Every token request so far.
    fn token_asks(&self) -> Vec<TokenAsk> {
        self.script().token_asks.clone()
    }

    fn hold_blobs(&self) {
        self.shared.blob_gate.send_replace(false);
    }

    fn release_blobs(&self) {
        self.shared.blob_gate.send_replace(true);
    }

    fn hold_heads(&self) {
        self.shared.head_gate.send_replace(false);
    }

    fn release_heads(&self) {
        self.shared.head_gate.send_replace(true);
    }
}

/// The upstream registry: records the request, answers what the script says.
async fn serve_registry(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().to_owned();
    let (response, manifest_head) = {
        let mut script = shared.script.lock().unwrap();
        let (response, manifest_head) = answer(&mut script, &shared, &method, &path, &headers);
        script.seen.push(Seen {
            method,
            path,
            range: header_text(&headers, &RANGE),
            status: response.status().as_u16(),
        });
        (response, manifest_head)
    };
    if manifest_head {
        let _ = shared.head_gate.subscribe().wait_for(|open| *open).await;
    }
    response
}

/// The answer to a registry request, and whether it is a manifest `HEAD`
/// (held while the head gate is closed).
fn answer(
    script: &mut Script,
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> (Response, bool) {
    if script.down {
        return (oci_error(503, "UNAVAILABLE", "the upstream is down"), false);
    }
    if script.rate_limited {
        let mut response = oci_error(429, "TOOMANYREQUESTS", "pull rate limit reached");
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("42"));
        return (response, false);
    }
    let token = header_text(headers, &AUTHORIZATION)
        .and_then(|value| value.strip_prefix("Bearer ").map(str::to_owned));
    let admitted = match token.and_then(|token| script.tokens.get_mut(&token)) {
        Some(None) => true,
        Some(Some(left)) if *left > 0 => {
            *left -= 1;
            true
        }
        _ => false,
    };
    if !admitted {
        let mut response = oci_error(401, "UNAUTHORIZED", "authentication required");
        let challenge = format!(
            r#"Bearer realm="{}",service="{SERVICE}",scope="{PLACEHOLDER_SCOPE}""#,
            shared.realm
        );
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_str(&challenge).unwrap());
        return (response, false);
    }
    let head = *method == Method::HEAD;
    let Some(rest) = path.strip_prefix("/v2/") else {
        return (oci_error(404, "NOT_FOUND", "no such endpoint"), false);
    };
    if rest.is_empty() {
        return (Response::new(Body::from("{}")), false);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        // Every tag on one page, in no particular order.
        let Some(repo) = script.repos.get(name) else {
            return (oci_error(404, "NAME_UNKNOWN", "repository unknown"), false);
        };
        let tags: Vec<&String> = repo.tags.keys().collect();
        let body = json!({"name": name, "tags": tags}).to_string();
        return (Response::new(Body::from(body)), false);
    }
    if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        let by_digest = Digest::parse(reference).ok();
        let repo = script.repos.get(name);
        let digest = by_digest
            .clone()
            .or_else(|| repo.and_then(|r| r.tags.get(reference).cloned()));
        let found = digest
            .as_ref()
            .and_then(|d| repo.and_then(|r| r.manifests.get(d)))
            .cloned();
        let (Some(digest), Some((media_type, mut bytes))) = (digest, found) else {
            return (oci_error(404, "MANIFEST_UNKNOWN", "manifest unknown"), head);
        };
        if by_digest.is_some() && script.wrong_manifest_digest {
            let mut other = bytes.to_vec();
            other.push(b'\n');
            bytes = Bytes::from(other);
        }
        let len = bytes.len();
        let body = if head {
            Body::empty()
        } else {
            Body::from(bytes)
        };
        let response = content(StatusCode::OK, &media_type, &digest, len, body);
        return (response, head);
    }
    if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
        let found = Digest::parse(digest)
            .ok()
            .and_then(|d| script.repos.get(name)?.blobs.get(&d).cloned());
        let (Ok(digest), Some(mut bytes)) = (Digest::parse(digest), found) else {
            return (oci_error(404, "BLOB_UNKNOWN", "blob unknown"), false);
        };
        let size = bytes.len();
        if head {
            let response = content(
                StatusCode::OK,
                "application/octet-stream",
                &digest,
                size,
                Body::empty(),
            );
            return (response, false);
        }
        if script.corrupt_blob {
            let mut flipped = bytes.to_vec();
            flipped[size / 2] ^= 0xff;
            bytes = Bytes::from(flipped);
        }
        // berth-client resumes a cut download with `Range: bytes=<n>-`.
        let start = header_text(headers, &RANGE)
            .and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok())
            .filter(|start: &usize| *start < size);
        let (status, bytes) = match start {
            Some(start) => (StatusCode::PARTIAL_CONTENT, bytes.slice(start..)),
            None => (StatusCode::OK, bytes),
        };
        let len = bytes.len();
        let body = if script.slow {
            slow_body(bytes, shared.blob_gate.subscribe())
        } else {
            Body::from(bytes)
        };
        let mut response = content(status, "application/octet-stream", &digest, len, body);
        if let Some(start) = start {
            response.headers_mut().insert(
                CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes {start}-{}/{size}", size - 1)).unwrap(),
            );
        }
        return (response, false);
    }
    (oci_error(404, "NOT_FOUND", "no such endpoint"), false)
}

/// `bytes` in chunks with a pause after each: the first at once (the
/// answer has begun), the rest once the blob gate is open.
fn slow_body(bytes: Bytes, gate: watch::Receiver<bool>) -> Body {
    let chunks =
        futures_util::stream::unfold((bytes, 0usize, gate), |(bytes, at, mut gate)| async move {
            if at >= bytes.len() {
                return None;
            }
            if at > 0 {
                let _ = gate.wait_for(|open| *open).await;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let end = (at + SLOW_CHUNK).min(bytes.len());
            let chunk = bytes.slice(at..end);
            Some((Ok::<_, std::io::Error>(chunk), (bytes, end, gate)))
        });
    Body::from_stream(chunks)
}

/// The upstream token service: records the request; with credentials
/// scripted, refuses any other; answers a fresh opaque token without
/// `expires_in`, as GHCR does.
async fn serve_token(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    let query = uri.query().unwrap_or_default();
    let scopes: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == "scope")
        .flat_map(|(_, value)| value.split(' ').map(str::to_owned).collect::<Vec<String>>())
        .collect();
    let authorization = header_text(&headers, &AUTHORIZATION);
    let mut script = shared.script.lock().unwrap();
    script.token_asks.push(TokenAsk {
        scopes,
        authorization: authorization.clone(),
    });
    if let Some((user, password)) = &script.credentials
        && authorization.as_deref() != Some(basic_header(user, password).as_str())
    {
        return oci_error(401, "UNAUTHORIZED", "wrong credentials");
    }
    let token = hex::encode(random_bytes(16));
    let uses = script.token_uses;
    script.tokens.insert(token.clone(), uses);
    let mut response = Response::new(Body::from(to_bytes(&json!({ "token": token }))));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn header_text(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// An OCI error answer.
fn oci_error(status: u16, code: &str, message: &str) -> Response {
    let body = json!({"errors": [{"code": code, "message": message}]});
    let mut response = Response::new(Body::from(to_bytes(&body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A manifest or blob answer with the headers clients read.
fn content(
    status: StatusCode,
    media_type: &str,
    digest: &Digest,
    len: usize,
    body: Body,
) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_str(media_type).unwrap());
    headers.insert(
        DOCKER_CONTENT_DIGEST,
        HeaderValue::from_str(&digest.to_string()).unwrap(),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    response
}

// ----- the cache -----

/// The proxy namespace `name` of the registry at `url`, changed by `set`.
fn proxy(name: &str, url: &str, set: impl FnOnce(&mut ProxyText)) -> ProxySettings {
    let mut text = ProxyText {
        name: Some(name.to_owned()),
        url: Some(url.to_owned()),
        ..ProxyText::default()
    };
    set(&mut text);
    ProxySettings::parse(&text).unwrap()
}

/// A registry with these proxy namespaces.
async fn cache_of(proxies: Vec<ProxySettings>) -> TestApp {
    TestApp::start_with_s3_if_set(move |config| config.proxies = proxies).await
}

/// A registry whose namespace [`PROXY`] caches `upstream`, changed by `set`.
async fn cache(upstream: &Upstream, set: impl FnOnce(&mut ProxyText)) -> TestApp {
    cache_of(vec![proxy(PROXY, &upstream.url, set)]).await
}

fn manifest_path(name: &str, reference: &str) -> String {
    format!("/v2/{name}/manifests/{reference}")
}

fn blob_path(name: &str, digest: &Digest) -> String {
    format!("/v2/{name}/blobs/{digest}")
}

/// `berth_proxy_manifests_total` of [`PROXY`] for `result`.
fn manifests(result: &str) -> String {
    format!(r#"berth_proxy_manifests_total{{proxy="{PROXY}",result="{result}"}}"#)
}

/// `berth_proxy_blobs_total` of [`PROXY`] for `result`.
fn blobs(result: &str) -> String {
    format!(r#"berth_proxy_blobs_total{{proxy="{PROXY}",result="{result}"}}"#)
}

/// `berth_proxy_upstream_errors_total` of [`PROXY`] for `kind`.
fn upstream_errors(kind: &str) -> String {
    format!(r#"berth_proxy_upstream_errors_total{{proxy="{PROXY}",kind="{kind}"}}"#)
}

/// An image manifest answer: 200, these exact bytes, their type, digest
/// and length.
#[track_caller]
fn assert_manifest(resp: &Resp, bytes: &[u8], digest: &Digest) {
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("content-type"),
        Some(media_type::OCI_IMAGE_MANIFEST)
    );
    assert_eq!(
        resp.header("docker-content-digest"),
        Some(digest.to_string().as_str())
    );
    assert_eq!(
        resp.header("content-length"),
        Some(bytes.len().to_string().as_str())
    );
    assert!(resp.body == bytes, "the manifest's bytes: {}", resp.text());
}

/// A blob answer: 200, these exact bytes, their digest and length.
#[track_caller]
fn assert_blob(resp: &Resp, bytes: &[u8]) {
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        resp.header("docker-content-digest"),
        Some(Digest::sha256_of(bytes).to_string().as_str())
    );
    assert_eq!(
        resp.header("content-length"),
        Some(bytes.len().to_string().as_str())
    );
    assert!(resp.body == bytes, "the blob's {} bytes", bytes.len());
}

/// Asserts 503 `UNAVAILABLE` with `Retry-After: 30`.
#[track_caller]
fn assert_unavailable(resp: &Resp) {
    resp.assert_error(503, "UNAVAILABLE");
    assert_eq!(resp.header("retry-after"), Some("30"));
}

/// Pulls `image` as `name:tag` through `cache` as a client does (the
/// manifest by tag, its config, its layer) and asserts each answer whole.
async fn pull(cache: &TestApp, token: &str, name: &str, tag: &str, image: &Image) {
    let resp = cache.get(&manifest_path(name, tag), Some(token)).await;
    assert_manifest(&resp, &image.manifest, &image.digest);
    let resp = cache
        .get(&blob_path(name, &config_digest()), Some(token))
        .await;
    assert_blob(&resp, EMPTY_CONFIG);
    let resp = cache
        .get(&blob_path(name, &image.layer_digest()), Some(token))
        .await;
    assert_blob(&resp, &image.layer);
}

/// Waits until `digest` is linked in the repository `name` (a flight links
/// its blob after the last byte went out).
async fn wait_linked(app: &TestApp, name: &str, digest: &Digest) {
    let name = RepositoryName::parse(name).unwrap();
    let name = &name;
    eventually(&format!("{digest} linked in {name}"), || async move {
        match app.registry.meta.linked_blob(name, digest).await.unwrap() {
            Some(_) => Ok(()),
            None => Err("not linked".to_owned()),
        }
    })
    .await;
}

/// A blob answer read as a stream, hashed as it arrives (never held).
struct Streamed {
    status: u16,
    digest_header: Option<String>,
    length_header: Option<String>,
    /// Bytes read.
    read: u64,
    /// The digest of the bytes read, or why the body failed.
    body: Result<Digest, String>,
}

/// `GET url` with `token`, the body hashed as it streams.
async fn stream(client: reqwest::Client, url: String, token: String) -> Streamed {
    let mut response = client.get(url).bearer_auth(token).send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let status = response.status().as_u16();
    let digest_header = header("docker-content-digest");
    let length_header = header("content-length");
    let mut digester = Digester::new(berth_core::digest::Algorithm::Sha256);
    let mut read = 0u64;
    let body = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                read += chunk.len() as u64;
                digester.update(&chunk);
            }
            Ok(None) => break Ok(digester.finalize()),
            Err(e) => break Err(e.to_string()),
        }
    };
    Streamed {
        status,
        digest_header,
        length_header,
        read,
        body,
    }
}

/// A client for long downloads (the harness's has a 30 s timeout).
fn long_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap()
}

// ----- the tests -----

/// A cold pull through the cache of a private repository on another berth
/// (the cache signs in upstream as its administrator): the manifest by tag
/// and both blobs arrive byte for byte with the `Content-Type`,
/// `Docker-Content-Digest` and `Content-Length` a client checks; the same
/// pull again is answered from the cache (`hit` rises, `fetched` does not).
#[tokio::test]
async fn a_private_image_of_another_berth_is_pulled_cold_then_served_warm() {
    let upstream = TestApp::start().await;
    let pushed = upstream.seed_image(REPO, "v1").await;
    // Private upstream: nobody without credentials sees it.
    let resp = upstream.get(&manifest_path(REPO, "v1"), None).await;
    assert_eq!(resp.status, 401, "{}", resp.text());
    // What the upstream serves, to compare with.
    let up_token = admin_token(&upstream, &[REPO]).await;
    let manifest = upstream
        .get(&manifest_path(REPO, "v1"), Some(&up_token))
        .await;
    assert_manifest(&manifest, &manifest.body, &pushed.digest);
    let layer = upstream
        .get(&blob_path(REPO, &pushed.layer), Some(&up_token))
        .await;
    assert_eq!(layer.status, 200);

    let cache = cache_of(vec![proxy(PROXY, &upstream.base, |p| {
        p.username = Some("admin".into());
        p.password = Some(ADMIN_PASSWORD.into());
    })])
    .await;
    let token = admin_token(&cache, &[CACHED]).await;
    let image = Image {
        manifest: manifest.body.clone(),
        digest: pushed.digest.clone(),
        layer: layer.body.clone(),
    };
    assert_eq!(image.layer_digest(), pushed.layer);

    pull(&cache, &token, CACHED, "v1", &image).await;
    assert_eq!(metric(&cache, &manifests("fetched")).await, 1);
    assert_eq!(metric(&cache, &blobs("fetched")).await, 2);
    assert_eq!(metric(&cache, &manifests("hit")).await, 0);
    assert_eq!(metric(&cache, &blobs("hit")).await, 0);
    wait_linked(&cache, CACHED, &config_digest()).await;
    wait_linked(&cache, CACHED, &pushed.layer).await;
    assert!(cache.blob_stored(&pushed.layer).await);

    pull(&cache, &token, CACHED, "v1", &image).await;
    assert_eq!(metric(&cache, &manifests("hit")).await, 1);
    assert_eq!(metric(&cache, &blobs("hit")).await, 2);
    assert_eq!(metric(&cache, &manifests("fetched")).await, 1);
    assert_eq!(metric(&cache, &blobs("fetched")).await, 2);
}

/// Against the fixture: a cold pull asks the upstream for the tag once
/// (`HEAD`), `GET`s the manifest once and each blob once (no blob `HEAD`);
/// a warm pull within the TTL sends the upstream nothing at all, neither
/// registry nor token requests.
#[tokio::test]
async fn a_cold_pull_asks_upstream_once_per_object_and_a_warm_pull_not_at_all() {
    let up = Upstream::start().await;
    let image = up.push_image(REPO, "v1", 1024);
    let cache = cache(&up, |_| {}).await;
    let token = admin_token(&cache, &[CACHED]).await;

    pull(&cache, &token, CACHED, "v1", &image).await;
    let config = blob_path(REPO, &config_digest());
    let layer = blob_path(REPO, &image.layer_digest());
    assert_eq!(up.served(&Method::HEAD, &manifest_path(REPO, "v1")), 1);
    assert_eq!(up.manifest_gets(REPO), 1);
    assert_eq!(
        up.served(
            &Method::GET,
            &manifest_path(REPO, &image.digest.to_string())
        ),
        1
    );
    assert_eq!(up.served(&Method::GET, &config), 1);
    assert_eq!(up.served(&Method::GET, &layer), 1);
    assert_eq!(up.requests(&Method::HEAD, &config), 0);
    assert_eq!(up.requests(&Method::HEAD, &layer), 0);
    wait_linked(&cache, CACHED, &config_digest()).await;
    wait_linked(&cache, CACHED, &image.layer_digest()).await;

    let before = up.activity();
    pull(&cache, &token, CACHED, "v1", &image).await;
    assert_eq!(up.activity(), before, "{:#?}", up.seen());
    assert_eq!(metric(&cache, &manifests("hit")).await, 1);
    assert_eq!(metric(&cache, &blobs("hit")).await, 2);
}

/// Twenty clients pulling one cold blob at once (200 MB, sent slowly and
/// held after its first chunk until all twenty are on it) all get every
/// byte with the right digest, read from one flight: the upstream answered
/// exactly one `GET` of it without `Range` (berth-client's ranged resumes
/// of a cut download aside). The blob is then stored and linked: the next
/// `GET` is a `hit`. Each client's stream is hashed as it arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_pulls_of_a_large_blob_share_one_upstream_fetch() {
    const CLIENTS: u64 = 20;
    let size: usize = 200 << 20;
    let up = Upstream::start().await;
    let digest = up.put_blob(REPO, random_bytes(size));
    up.script().slow = true;
    up.hold_blobs();
    let cache = cache(&up, |_| {}).await;
    let token = admin_token(&cache, &[CACHED]).await;
    let url = cache.url(&blob_path(CACHED, &digest));
    let client = long_client();

    let pulls: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(stream(client.clone(), url.clone(), token.clone())))
        .collect();
    // Every client is on the flight before the upstream sends more than
    // its first chunk.
    eventually(&format!("{CLIENTS} clients on one flight"), || async {
        let fetched = metric(&cache, &blobs("fetched")).await;
        let joined = metric(&cache, &blobs("joined")).await;
        if fetched + joined == CLIENTS {
            Ok((fetched, joined))
        } else {
            Err(format!("fetched {fetched}, joined {joined}"))
        }
    })
    .await;
    assert_eq!(metric(&cache, &blobs("fetched")).await, 1);
    assert_eq!(metric(&cache, &blobs("joined")).await, CLIENTS - 1);
    up.release_blobs();

    for pull in pulls {
        let got = pull.await.unwrap();
        assert_eq!(got.status, 200);
        assert_eq!(got.digest_header, Some(digest.to_string()));
        assert_eq!(got.length_header, Some(size.to_string()));
        assert_eq!(got.read, size as u64);
        assert_eq!(got.body, Ok(digest.clone()));
    }
    let path = blob_path(REPO, &digest);
    let whole_gets = up
        .seen()
        .iter()
        .filter(|s| {
            s.method == Method::GET && s.path == path && s.status != 401 && s.range.is_none()
        })
        .count();
    assert_eq!(whole_gets, 1, "{:#?}", up.seen());

    wait_linked(&cache, CACHED, &digest).await;
    assert!(cache.blob_stored(&digest).await);
    let again = stream(client, url, token).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, Ok(digest.clone()));
    assert_eq!(metric(&cache, &blobs("hit")).await, 1);
    assert_eq!(metric(&cache, &blobs("fetched")).await, 1);
}

/// A tag's upstream answer stands for its TTL (1 s here): a request within
/// it sends nothing upstream; after it exactly one `HEAD` checks the tag
/// (`revalidated`), however many clients ask at once (ten, while that
/// `HEAD` is held, get its answer: no `HEAD` storm); a tag moved upstream
/// is served at its new digest after the TTL, its manifest fetched once.
#[tokio::test]
async fn a_tag_is_checked_with_one_head_after_its_ttl_and_followed_when_moved() {
    const TTL: Duration = Duration::from_secs(1);
    // Past the TTL of an answer confirmed before `at`.
    let past_ttl = |at: Instant| tokio::time::sleep_until(at + TTL + Duration::from_millis(100));
    let up = Upstream::start().await;
    let image = up.push_image(REPO, "v1", 64);
    let cache = cache(&up, |p| p.tag_ttl_secs = Some(1)).await;
    let token = admin_token(&cache, &[CACHED]).await;
    let tag = manifest_path(CACHED, "v1");
    let heads = || up.served(&Method::HEAD, &manifest_path(REPO, "v1"));

    let asked = Instant::now();
    let resp = cache.get(&tag, Some(&token)).await;
    assert_manifest(&resp, &image.manifest, &image.digest);
    assert_eq!((heads(), up.manifest_gets(REPO)), (1, 1));

    // Within the TTL: from the cache. The tag was confirmed after `asked`;
    // only when this request is provably within a second of that is the
    // absence of upstream requests asserted (a stalled machine may take
    // longer, and then a HEAD is right).
    let before = up.activity();
    let hits = metric(&cache, &manifests("hit")).await;
    let resp = cache.get(&tag, Some(&token)).await;
    let within = asked.elapsed() < TTL;
    assert_manifest(&resp, &image.manifest, &image.digest);
    if within {
        assert_eq!(up.activity(), before, "{:#?}", up.seen());
        assert_eq!(metric(&cache, &manifests("hit")).await, hits + 1);
    } else {
        eprintln!(
            "the second request came over 1 s after the first; its upstream check is not asserted"
        );
    }

    // After it: one HEAD, no GET (the digest did not move).
    past_ttl(Instant::now()).await;
    let (heads_before, gets_before) = (heads(), up.manifest_gets(REPO));
    let revalidated = metric(&cache, &manifests("revalidated")).await;
    let resp = cache.get(&tag, Some(&token)).await;
    assert_manifest(&resp, &image.manifest, &image.digest);
    assert_eq!(heads(), heads_before + 1);
    assert_eq!(up.manifest_gets(REPO), gets_before);
    assert_eq!(
        metric(&cache, &manifests("revalidated")).await,
        revalidated + 1
    );

    // Ten at once after the TTL: the upstream holds the first HEAD until
    // the others have had time to queue behind it; one HEAD in all.
    past_ttl(Instant::now()).await;
    let (heads_before, gets_before) = (heads(), up.manifest_gets(REPO));
    let revalidated = metric(&cache, &manifests("revalidated")).await;
    let hits = metric(&cache, &manifests("hit")).await;
    up.hold_heads();
    let clients = futures_util::future::join_all((0..10).map(|_| cache.get(&tag, Some(&token))));
    let release = async {
        eventually("the tag's HEAD upstream", || async {
            if heads() > heads_before {
                Ok(())
            } else {
                Err("no HEAD yet".to_owned())
            }
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        up.release_heads();
    };
    let (answers, ()) = futures_util::future::join(clients, release).await;
    for resp in &answers {
        assert_manifest(resp, &image.manifest, &image.digest);
    }
    assert_eq!(heads(), heads_before + 1, "{:#?}", up.seen());
    assert_eq!(up.manifest_gets(REPO), gets_before);
    assert_eq!(
        metric(&cache, &manifests("revalidated")).await,
        revalidated + 1
    );
    assert_eq!(metric(&cache, &manifests("hit")).await, hits + 9);

    // Moved upstream: after the TTL, the new digest, its manifest fetched once.
    let moved = up.push_image(REPO, "v1", 64);
    past_ttl(Instant::now()).await;
    let (heads_before, gets_before) = (heads(), up.manifest_gets(REPO));
    let resp = cache.get(&tag, Some(&token)).await;
    assert_manifest(&resp, &moved.manifest, &moved.digest);
    assert_eq!(heads(), heads_before + 1);
    assert_eq!(up.manifest_gets(REPO), gets_before + 1);
    assert_eq!(
        up.served(
            &Method::GET,
            &manifest_path(REPO, &moved.digest.to_string())
        ),
        1
    );
    assert_eq!(metric(&cache, &manifests("fetched")).await, 2);
    // The old digest stays cached: served without asking upstream.
    let before = up.activity();
    let resp = cache
        .get(
            &manifest_path(CACHED, &image.digest.to_string()),
            Some(&token),
        )
        .await;
    assert_manifest(&resp, &image.manifest, &image.digest);
    assert_eq!(up.activity(), before);
}

/// An upstream that answers 503 (TTL 0: every tag request checks): a cached
/// tag is still served, same bytes and digest, counted `stale`; a cached
/// manifest by digest needs no upstream; an uncached tag and an uncached
/// blob answer 503 `UNAVAILABLE` with `Retry-After: 30`.
#[tokio::test]
async fn an_upstream_down_serves_cached_tags_stale_and_answers_misses_503() {
    let up = Upstream::start().await;
    let image = up.push_image(REPO, "v1", 64);
    let other = up.push_image(REPO, "v2", 64);
    let cache = cache(&up, |p| p.tag_ttl_secs = Some(0)).await;
    let token = admin_token(&cache, &[CACHED]).await;
    let resp = cache.get(&manifest_path(CACHED, "v1"), Some(&token)).await;
    assert_manifest(&resp, &image.manifest, &image.digest);

    up.script().down = true;
    let resp = cache.get(&manifest_path(CACHED, "v1"), Some(&token)).await;
    assert_manifest(&resp, &image.manifest, &image.digest);
    assert_eq!(metric(&cache, &manifests("stale")).await, 1);
    let resp = cache
        .get(
            &manifest_path(CACHED, &image.digest.to_string()),
            Some(&token),
        )
        .await;
    assert_manifest(&resp, &image.manifest, &image.digest);

    let resp = cache.get(&manifest_path(CACHED, "v2"), Some(&token)).await;
    assert_unavailable(&resp);
    let resp = cache
        .get(&blob_path(CACHED, &other.layer_digest()), Some(&token))
        .await;
    assert_unavailable(&resp);
    // The stale tag's HEAD, the missing tag's HEAD, the blob's GET.
    eventually("three upstream failures counted", || async {
        match metric(&cache, &upstream_errors("unavailable")).await {
            3 => Ok(()),
            n => Err(format!("{n}")),
        }
    })
    .await;
    assert!(!cache.blob_stored(&other.layer_digest()).await);
}

/// An upstream rate limiting the cache (429, `Retry-After: 42`): a miss
/// answers 429 `TOOMANYREQUESTS` passing on `Retry-After: 42`, for a
/// manifest and for a blob; a cached tag is still served.
#[tokio::test]
async fn an_upstream_rate_limit_is_passed_on_for_misses_only() {
    let up = Upstream::start().await;
    let image = up.push_image(REPO, "v1", 64);
    let cache = cache(&up, |p| p.tag_ttl_secs = Some(0)).await;
    let token = admin_token(&cache, &[CACHED]).await;
    let resp = cache.get(&manifest_path(CACHED, "v1"), Some(&token)).await;
    assert_manifest(&resp, &image.manifest, &image.digest);

    up.script().rate_limited = true;
    let resp = cache.get(&manifest_path(CACHED, "v2"), Some(&token)).await;
    resp.assert_error(429, "TOOMANYREQUESTS");
    assert_eq!(resp.header("retry-after"), Some("42"));
    let resp = cache
        .get(&blob_path(CACHED, &image.layer_digest()), Some(&token))
        .await;
    resp.assert_error(429, "TOOMANYREQUESTS");
    assert_eq!(resp.header("retry-after"), Some("42"));

    let resp = cache.get(&manifest_path(CACHED, "v1"), Some(&token)).await;
    assert_manifest(&resp, &image.manifest, &image.digest);
    assert_eq!(metric(&cache, &manifests("stale")).await, 1);
    eventually("three rate-limited answers counted", || async {
        match metric(&cache, &upstream_errors("rate_limited")).await {
            3 => Ok(()),
            n => Err(format!("{n}")),
        }
    })
    .await;
}

/// Bytes that do not match their digest are never passed off as the blob
/// nor kept: a client reading a corrupt blob to its end gets an error or
/// bytes of another digest, never the right digest with a success; nothing
/// is stored or linked (`digest_mismatch` counted), and once the upstream
/// serves the right bytes the next request fetches again and succeeds. A
/// manifest by digest whose bytes do not match answers 503 and is not
/// cached.
#[tokio::test]
async fn content_that_does_not_match_its_digest_is_refused_and_not_kept() {
    let up = Upstream::start().await;
    let image = up.push_image(REPO, "v1", 64 * 1024);
    let cache = cache(&up, |_| {}).await;
    let token = admin_token(&cache, &[CACHED]).await;
    let layer = image.layer_digest();
    let path = blob_path(CACHED, &layer);

    up.script().corrupt_blob = true;
    let got = stream(long_client(), cache.url(&path), token.clone()).await;
    assert!(
        got.body.as_ref() != Ok(&layer),
        "a corrupt blob read as the right one: status {}",
        got.status
    );
    eventually("the mismatch counted", || async {
        match metric(&cache, &upstream_errors("digest_mismatch")).await {
            1 => Ok(()),
            n => Err(format!("{n}")),
        }
    })
    .await;
    assert!(!cache.blob_stored(&layer).await);
    let name = RepositoryName::parse(CACHED).unwrap();
    assert_eq!(
        cache
            .registry
            .meta
            .linked_blob(&name, &layer)
            .await
            .unwrap(),
        None
    );

    up.script().corrupt_blob = false;
    let resp = cache.get(&path, Some(&token)).await;
    assert_blob(&resp, &image.layer);
    assert_eq!(up.served(&Method::GET, &blob_path(REPO, &layer)), 2);
    assert_eq!(metric(&cache, &blobs("fetched")).await, 2);
    wait_linked(&cache, CACHED, &layer).await;
    assert!(cache.blob_stored(&layer).await);

    // A manifest by digest.
    let by_digest = manifest_path(CACHED, &image.digest.to_string());
    up.script().wrong_manifest_digest = true;
    let resp = cache.get(&by_digest, Some(&token)).await;
    assert_unavailable(&resp);
    assert_eq!(metric(&cache, &upstream_errors("digest_mismatch")).await, 2);
    let reference = berth_core::reference::TagOrDigest::Digest(image.digest.clone());
    assert!(
        cache
            .registry
            .meta
            .get_manifest(&name, &reference)
            .await
            .unwrap()
            .is_none()
    );
    up.script().wrong_manifest_digest = false;
    let resp = cache.get(&by_digest, Some(&token)).await;
    assert_manifest(&resp, &image.manifest, &image.digest);
    assert_eq!(
        up.served(
            &Method::GET,
            &manifest_path(REPO, &image.digest.to_string())
        ),
        2
    );
}

/// Upstream tokens that run out mid-pull (good for two requests, sent
/// without `expires_in`, from a token service on another port that requires
/// the cache's credentials): the pull of a manifest and two blobs succeeds,
/// the cache asked for more than one token, each with its credentials and
/// for `repository:acme/app:pull`, never for the challenge's placeholder
/// scope.
#[tokio::test]
async fn tokens_that_run_out_mid_pull_are_renewed_for_the_right_scope() {
    let up = Upstream::start().await;
    {
        let mut script = up.script();
        script.token_uses = Some(2);
        script.credentials = Some(("cacher".to_owned(), "cacher-secret".to_owned()));
    }
    let image = up.push_image(REPO, "v1", 4096);
    let cache = cache(&up, |p| {
        p.username = Some("cacher".into());
        p.password = Some("cacher-secret".into());
    })
    .await;
    let token = admin_token(&cache, &[CACHED]).await;

    pull(&cache, &token, CACHED, "v1", &image).await;
    let asks = up.token_asks();
    assert!(asks.len() > 1, "{asks:#?}");
    let basic = basic_header("cacher", "cacher-secret");
    for ask in &asks {
        assert_eq!(ask.scopes, [format!("repository:{REPO}:pull")], "{asks:#?}");
        assert_eq!(ask.authorization.as_deref(), Some(basic.as_str()));
    }
    // Refused tokens, after the first challenge.
    let challenges = up.seen().iter().filter(|s| s.status == 401).count();
    assert!(challenges > 1, "{:#?}", up.seen());
}

/// Who may do what in a proxy namespace: nobody pushes, the administrator
/// included (403 `DENIED` naming the pull-through cache, for a blob upload
/// and a manifest `PUT`, and the upstream hears nothing); anonymous pulls
/// of an `authenticated` namespace get a Bearer challenge (without a token)
/// or `insufficient_scope` (with an anonymous one); a `public` namespace
/// serves anonymous pulls; any signed-in user pulls through an
/// `authenticated` one.
#[tokio::test]
async fn a_proxy_namespace_is_pull_only_by_its_access() {
    let up = Upstream::start().await;
    let image = up.push_image(REPO, "v1", 64);
    let cache = cache_of(vec![
        proxy(PROXY, &up.url, |_| {}),
        proxy("pub", &up.url, |p| p.access = Some("public".into())),
    ])
    .await;

    let admin = cache
        .user_token(
            berth_registry::ADMIN_USER,
            &[&format!("repository:{CACHED}:pull,push")],
        )
        .await;
    let resp = cache
        .post(&format!("/v2/{CACHED}/blobs/uploads/"), Some(&admin), b"")
        .await;
    let message = resp.assert_error(403, "DENIED");
    assert!(message.contains("pull-through cache"), "{message}");
    let manifest = image_manifest(&[layer_descriptor(&image.layer)]);
    let resp = cache
        .put_manifest(CACHED, "v1", Some(&admin), &manifest)
        .await;
    let message = resp.assert_error(403, "DENIED");
    assert!(message.contains("pull-through cache"), "{message}");
    assert_eq!(up.activity(), (0, 0));

    let tag = manifest_path(CACHED, "v1");
    let scope = format!("repository:{CACHED}:pull");
    let resp = cache.get(&tag, None).await;
    resp.assert_unauthorized(&cache.challenge(Some(&scope), None));
    let anonymous = cache.anonymous_token(&[&scope]).await;
    let resp = cache.get(&tag, Some(&anonymous)).await;
    resp.assert_unauthorized(&cache.challenge(Some(&scope), Some("insufficient_scope")));
    assert_eq!(up.activity(), (0, 0));

    let anonymous = cache
        .anonymous_token(&["repository:pub/acme/app:pull"])
        .await;
    let resp = cache
        .get(&manifest_path("pub/acme/app", "v1"), Some(&anonymous))
        .await;
    assert_manifest(&resp, &image.manifest, &image.digest);

    cache.user("alice").await;
    let alice = cache.user_token("alice", &[&scope]).await;
    let resp = cache.get(&tag, Some(&alice)).await;
    assert_manifest(&resp, &image.manifest, &image.digest);
}

/// Holding a blob is no licence to serve it: a blob pushed into a private
/// local repository, asked for by digest under the proxy namespace, is 404
/// `BLOB_UNKNOWN` while the upstream repository does not have it (the
/// upstream was asked with a `HEAD`, never a `GET`); once the upstream has
/// it, it is served from the store, counted `linked`, again after one
/// `HEAD` and no `GET`.
#[tokio::test]
async fn a_blob_held_locally_is_served_only_when_the_upstream_repository_has_it() {
    let up = Upstream::start().await;
    up.push_image(REPO, "v1", 64);
    let cache = cache(&up, |_| {}).await;
    let secret = random_bytes(512);
    let admin = admin_token(&cache, &["admin/secret"]).await;
    let digest = cache.push_blob("admin/secret", &admin, &secret).await;
    cache.user("alice").await;
    let alice = cache
        .user_token("alice", &[&format!("repository:{CACHED}:pull")])
        .await;
    let path = blob_path(CACHED, &digest);
    let upstream_path = blob_path(REPO, &digest);

    let resp = cache.get(&path, Some(&alice)).await;
    resp.assert_error(404, "BLOB_UNKNOWN");
    assert_eq!(up.served(&Method::HEAD, &upstream_path), 1);
    assert_eq!(up.requests(&Method::GET, &upstream_path), 0);

    up.put_blob(REPO, secret.clone());
    let resp = cache.get(&path, Some(&alice)).await;
    assert_blob(&resp, &secret);
    assert_eq!(up.served(&Method::HEAD, &upstream_path), 2);
    assert_eq!(up.requests(&Method::GET, &upstream_path), 0);
    assert_eq!(metric(&cache, &blobs("linked")).await, 1);
    assert_eq!(metric(&cache, &blobs("fetched")).await, 0);
}

/// `HEAD` of an uncached blob answers the upstream's size and the digest
/// after one `HEAD` upstream, without fetching it; a `Range` on a cold blob
/// answers 206 with exactly those bytes from the flight that fetches it.
#[tokio::test]
async fn head_and_ranges_on_cold_blobs() {
    let up = Upstream::start().await;
    let blob = random_bytes(4096);
    let digest = up.put_blob(REPO, blob.clone());
    let cache = cache(&up, |_| {}).await;
    let token = admin_token(&cache, &[CACHED]).await;
    let path = blob_path(CACHED, &digest);
    let upstream_path = blob_path(REPO, &digest);

    let resp = cache.head(&path, Some(&token)).await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(resp.header("content-length"), Some("4096"));
    assert_eq!(
        resp.header("docker-content-digest"),
        Some(digest.to_string().as_str())
    );
    assert!(resp.body.is_empty());
    assert_eq!(up.served(&Method::HEAD, &upstream_path), 1);
    assert_eq!(up.requests(&Method::GET, &upstream_path), 0);
    assert!(!cache.blob_stored(&digest).await);

    let resp = cache
        .send(
            cache
                .bearer(Method::GET, &path, Some(&token))
                .header("range", "bytes=10-19"),
        )
        .await;
    assert_eq!(resp.status, 206, "{}", resp.text());
    assert_eq!(resp.header("content-range"), Some("bytes 10-19/4096"));
    assert_eq!(
        resp.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(resp.header("content-length"), Some("10"));
    assert_eq!(
        resp.header("docker-content-digest"),
        Some(digest.to_string().as_str())
    );
    assert_eq!(resp.body, blob[10..20]);
    assert_eq!(up.served(&Method::GET, &upstream_path), 1);
    wait_linked(&cache, CACHED, &digest).await;
    assert!(cache.blob_stored(&digest).await);
}

/// `/metrics` has the four families, each series labelled with the proxy,
/// counting a pull exactly: one manifest and two blobs fetched, their bytes,
/// and a tag the upstream does not have (404 `MANIFEST_UNKNOWN`) as
/// `not_found`.
#[tokio::test]
async fn metrics_count_a_pull_by_proxy() {
    let up = Upstream::start().await;
    let image = up.push_image(REPO, "v1", 2048);
    let cache = cache(&up, |_| {}).await;
    let token = admin_token(&cache, &[CACHED]).await;
    pull(&cache, &token, CACHED, "v1", &image).await;
    let resp = cache
        .get(&manifest_path(CACHED, "missing"), Some(&token))
        .await;
    resp.assert_error(404, "MANIFEST_UNKNOWN");
    wait_linked(&cache, CACHED, &image.layer_digest()).await;

    let text = cache.get("/metrics", None).await.text();
    for family in [
        "berth_proxy_manifests_total",
        "berth_proxy_blobs_total",
        "berth_proxy_upstream_errors_total",
        "berth_proxy_fetched_bytes_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} counter\n")),
            "{family}:\n{text}"
        );
    }
    let expected = [
        (manifests("hit"), 0),
        (manifests("revalidated"), 0),
        (manifests("fetched"), 1),
        (manifests("stale"), 0),
        (blobs("hit"), 0),
        (blobs("linked"), 0),
        (blobs("fetched"), 2),
        (blobs("joined"), 0),
        (upstream_errors("not_found"), 1),
        (upstream_errors("rate_limited"), 0),
        (upstream_errors("unavailable"), 0),
        (upstream_errors("digest_mismatch"), 0),
        (
            format!(r#"berth_proxy_fetched_bytes_total{{proxy="{PROXY}"}}"#),
            (image.manifest.len() + EMPTY_CONFIG.len() + image.layer.len()) as u64,
        ),
    ];
    for (series, value) in expected {
        assert_eq!(metric(&cache, &series).await, value, "{series}");
    }
}

/// Cached content is ordinary content to retention and the collector: with
/// a policy keeping what was pulled within 30 days, a cached tag last
/// pulled 31 days ago goes, with its manifest and the blobs only it used,
/// while a tag pulled now stays. A later pull of the collected tag fetches
/// it from the upstream again.
#[tokio::test]
async fn retention_collects_cached_tags_nobody_pulled_and_the_next_pull_fetches_them_again() {
    let up = Upstream::start().await;
    let old = up.push_image(REPO, "old", 2048);
    let new = up.push_image(REPO, "new", 1024);
    let policy = Policy::parse(&PolicyText {
        repositories: format!("{PROXY}/**"),
        keep_pulled_within: Some("30d".into()),
        ..PolicyText::default()
    })
    .unwrap();
    let proxies = vec![proxy(PROXY, &up.url, |_| {})];
    let cache = TestApp::start_with_s3_if_set(move |config| {
        config.proxies = proxies;
        config.gc.interval = None;
        config.gc.delay = Duration::ZERO;
        config.gc.untagged_delay = Some(Duration::ZERO);
        config.gc.retention = vec![policy];
    })
    .await;
    let token = admin_token(&cache, &[CACHED]).await;
    pull(&cache, &token, CACHED, "old", &old).await;
    pull(&cache, &token, CACHED, "new", &new).await;
    for digest in [old.layer_digest(), new.layer_digest(), config_digest()] {
        wait_linked(&cache, CACHED, &digest).await;
    }
    // Both were pulled just now: a collection keeps them (and writes down
    // the pulls it had in memory).
    let resp = cache.admin_api(Method::POST, "/api/v1/gc", None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["tags"]["count"], 0, "{}", resp.text());
    cache.pulled_ago(CACHED, &old.digest, 31 * 24 * 3600).await;

    let resp = cache.admin_api(Method::POST, "/api/v1/gc", None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let report = resp.json();
    assert_eq!(report["errors"], json!([]), "{report}");
    let removed_tags: Vec<(String, String)> = report["tags"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["repository"].to_string(), t["tag"].to_string()))
        .collect();
    assert_eq!(
        removed_tags,
        [(format!("\"{CACHED}\""), "\"old\"".to_owned())],
        "{report}"
    );
    let reclaimed: Vec<String> = report["reclaimed"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reclaimed, [old.layer_digest().to_string()], "{report}");
    assert!(!cache.blob_stored(&old.layer_digest()).await);
    assert!(cache.blob_stored(&new.layer_digest()).await);
    assert!(cache.blob_stored(&config_digest()).await, "`new` uses it");
    let cached = RepositoryName::parse(CACHED).unwrap();
    let cached_tags = cache.registry.meta.list_tags(&cached, None, 100).await;
    assert_eq!(cached_tags.unwrap(), Some(vec!["new".to_owned()]));

    let layer = blob_path(REPO, &old.layer_digest());
    let fetched = up.served(&Method::GET, &layer);
    pull(&cache, &token, CACHED, "old", &old).await;
    assert_eq!(
        up.served(&Method::GET, &layer),
        fetched + 1,
        "fetched again"
    );
}

/// The tag list of a proxied repository is the upstream's (not only the
/// tags pulled so far), in byte order and paged here with `n`, `last` and
/// `Link`; a repository the upstream lacks is 404 `NAME_UNKNOWN`. With the
/// upstream down, the tags cached here answer, and a repository with none
/// cached answers 503.
#[tokio::test]
async fn the_tag_list_is_the_upstreams_and_the_cached_one_while_the_upstream_is_down() {
    let up = Upstream::start().await;
    let v1 = up.push_image(REPO, "v1", 512);
    up.push_image(REPO, "v2", 512);
    up.push_image(REPO, "v10", 512);
    up.push_image("acme/other", "latest", 512);
    let cache = cache(&up, |_| {}).await;
    let token = admin_token(&cache, &[CACHED, "up/acme/other", "up/acme/none"]).await;
    let list = |path: String| {
        let (cache, token) = (&cache, &token);
        async move { cache.get(&path, Some(token)).await }
    };

    let all = list(format!("/v2/{CACHED}/tags/list")).await;
    assert_eq!(all.status, 200, "{}", all.text());
    assert_eq!(
        all.json(),
        json!({"name": CACHED, "tags": ["v1", "v10", "v2"]})
    );
    assert_eq!(all.header("link"), None);
    let first = list(format!("/v2/{CACHED}/tags/list?n=2")).await;
    assert_eq!(first.json()["tags"], json!(["v1", "v10"]));
    assert_eq!(
        first.header("link"),
        Some(format!("</v2/{CACHED}/tags/list?n=2&last=v10>; rel=\"next\"").as_str())
    );
    let rest = list(format!("/v2/{CACHED}/tags/list?n=2&last=v10")).await;
    assert_eq!(rest.json()["tags"], json!(["v2"]));
    list("/v2/up/acme/none/tags/list".to_owned())
        .await
        .assert_error(404, "NAME_UNKNOWN");

    pull(&cache, &token, CACHED, "v1", &v1).await;
    up.script().down = true;
    let stale = list(format!("/v2/{CACHED}/tags/list")).await;
    assert_eq!(stale.status, 200, "{}", stale.text());
    assert_eq!(stale.json(), json!({"name": CACHED, "tags": ["v1"]}));
    assert_unavailable(&list("/v2/up/acme/other/tags/list".to_owned()).await);
}
