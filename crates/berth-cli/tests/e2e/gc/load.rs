//! The load the collector tests put on the registry: images pushed as a
//! client pushes them (layers drawn from a small shared pool, so that
//! repositories and tags share blobs; indexes over two children pushed by
//! digest; referrers whose `subject` is an image just pushed), deletions of
//! tags, manifests and blobs (`workers.rs`, with the ledger of what is
//! tagged).
//!
//! With the collector's delays at 0 a blob a pusher uploaded (or found with
//! `HEAD`) may be reclaimed before the manifest naming it arrives. The
//! registry then answers the manifest `PUT` with 400 `MANIFEST_BLOB_UNKNOWN`,
//! or an upload's closing `PUT` with 404 `BLOB_UPLOAD_UNKNOWN` naming the
//! garbage collector; the pusher uploads again and retries, as a client
//! would, and counts it ([`Counters`]). Every other answer is a failure.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use berth_core::digest::Digest;
use reqwest::Method;
use reqwest::blocking::{RequestBuilder, Response};
use serde_json::{Value, json};

use crate::support::{ADMIN_PASSWORD, Server, random_bytes};

pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const EMPTY: &str = "application/vnd.oci.empty.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// Attempts at one image, or one blob, before the pusher gives up: the
/// collector reclaiming the same thing that many times in a row is a
/// livelock, not a race.
const ATTEMPTS: usize = 100;

/// xorshift64*: the load is drawn from a seed the test prints.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// A node as its clients reach it.
#[derive(Debug, Clone)]
pub struct Node {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The token service's name for it (the audience of its tokens).
    pub service: String,
}

impl Node {
    pub fn of(server: &Server) -> Self {
        Self {
            base: server.url(""),
            service: server.addr.clone(),
        }
    }
}

/// A client of the registry as `admin`, with a token per node for the
/// test's repositories, each request sent to a node drawn at random.
pub struct Client {
    http: reqwest::blocking::Client,
    nodes: Vec<Node>,
    tokens: Vec<Option<(Instant, String)>>,
    scope: String,
    /// The repositories it pushes to and deletes from.
    pub repos: Vec<String>,
    pub rng: Rng,
}

impl Client {
    pub fn new(nodes: &[Node], repos: &[String], seed: u64) -> Self {
        let mut scope: Vec<String> = repos
            .iter()
            .map(|r| format!("repository:{r}:pull,push,delete"))
            .collect();
        scope.push("registry:catalog:*".to_owned());
        Self {
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            nodes: nodes.to_vec(),
            tokens: vec![None; nodes.len()],
            scope: scope.join(" "),
            repos: repos.to_vec(),
            rng: Rng::new(seed),
        }
    }

    /// Another client with the same tokens, drawing from a seed of this one's.
    fn fork(&mut self) -> Self {
        Self {
            http: self.http.clone(),
            nodes: self.nodes.clone(),
            tokens: self.tokens.clone(),
            scope: self.scope.clone(),
            repos: self.repos.clone(),
            rng: Rng::new(self.rng.next()),
        }
    }

    /// A token of node `i`, fetched again after two minutes (they live five).
    fn token(&mut self, i: usize) -> Result<String, String> {
        if let Some((at, token)) = &self.tokens[i]
            && at.elapsed() < Duration::from_secs(120)
        {
            return Ok(token.clone());
        }
        let node = &self.nodes[i];
        let response = self
            .http
            .get(format!("{}/token", node.base))
            .query(&[("service", node.service.as_str()), ("scope", &self.scope)])
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .map_err(|e| format!("token request to {}: {e}", node.base))?;
        if response.status() != 200 {
            return Err(unexpected("GET /token", response));
        }
        let body: Value = response.json().map_err(|e| format!("token JSON: {e}"))?;
        let token = body["token"].as_str().ok_or("no token field")?.to_owned();
        self.tokens[i] = Some((Instant::now(), token.clone()));
        Ok(token)
    }

    /// Sends `method path` (a `/v2/...` path, a query allowed) to a node
    /// drawn at random, `build` adding headers and a body.
    pub fn send(
        &mut self,
        method: Method,
        path: &str,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, String> {
        let i = self.rng.below(self.nodes.len());
        let token = self.token(i)?;
        let url = format!("{}{path}", self.nodes[i].base);
        build(self.http.request(method.clone(), &url).bearer_auth(token))
            .send()
            .map_err(|e| format!("{method} {url}: {e}"))
    }
}

/// A failure's words: the request, the status and the body.
pub fn unexpected(what: &str, response: Response) -> String {
    let status = response.status();
    let body = response.text().unwrap_or_default();
    format!("{what}: unexpected {status}: {body}")
}

/// The first error of an OCI error body.
pub struct OciError {
    pub code: String,
    pub message: String,
    /// `detail.digest`: what a manifest names that is not there.
    pub digest: Option<String>,
}

impl OciError {
    pub fn of(body: &str) -> Self {
        let value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let error = &value["errors"][0];
        let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
        Self {
            code: text(&error["code"]),
            message: text(&error["message"]),
            digest: error["detail"]["digest"].as_str().map(str::to_owned),
        }
    }
}

/// A blob and its bytes.
#[derive(Debug, Clone)]
pub struct Blob {
    pub digest: Digest,
    pub bytes: Arc<[u8]>,
}

impl Blob {
    pub fn of(bytes: Vec<u8>) -> Self {
        Self {
            digest: Digest::sha256_of(&bytes),
            bytes: bytes.into(),
        }
    }

    fn descriptor(&self, media_type: &str) -> Value {
        json!({"mediaType": media_type, "digest": self.digest.to_string(), "size": self.bytes.len()})
    }
}

/// A manifest or index, and the blobs it names itself.
#[derive(Debug, Clone)]
pub struct Doc {
    pub digest: Digest,
    pub media_type: &'static str,
    pub bytes: Vec<u8>,
    pub blobs: Vec<Blob>,
}

impl Doc {
    fn new(media_type: &'static str, value: &Value, blobs: Vec<Blob>) -> Self {
        let bytes = value.to_string().into_bytes();
        Self {
            digest: Digest::sha256_of(&bytes),
            media_type,
            bytes,
            blobs,
        }
    }

    fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest.to_string(), "size": self.bytes.len()})
    }
}

/// One tagged image as a pusher pushes it: the children of an index first
/// (by digest), the root by tag, then a referrer of the root (by digest).
#[derive(Debug, Clone)]
pub struct Image {
    pub repo: String,
    pub tag: String,
    pub root: Doc,
    pub children: Vec<Doc>,
    pub referrer: Option<Doc>,
    /// The blobs of the pool, which other images name too.
    pooled: BTreeSet<Digest>,
}

impl Image {
    /// Every blob the image refers to, its children's and referrer's included.
    pub fn blobs(&self) -> BTreeSet<Digest> {
        std::iter::once(&self.root)
            .chain(&self.children)
            .chain(&self.referrer)
            .flat_map(|doc| doc.blobs.iter().map(|b| b.digest.clone()))
            .collect()
    }

    pub fn key(&self) -> (String, String) {
        (self.repo.clone(), self.tag.clone())
    }
}

/// The tag of the base image of each repository, which no deleter touches.
pub const BASE: &str = "base";

/// The blobs images draw from: layers, the configs of index children, the
/// empty config of referrers. Repositories and tags share them.
///
/// Most are pinned: a base image in each repository (`<repo>:base`,
/// [`Pool::base`]) names them, as base images do in a real registry. The
/// others are loose: deleters delete their links, and the collector takes
/// their bytes once no repository links them. Without base images a push
/// on a slow store (S3 through moto, two nodes on two cores) never ends
/// while the collector runs every 100 ms with no delay: each blob a retry
/// pushes again takes longer than the collector takes to reclaim the
/// others. So what an image alone names, which a retry must push again,
/// is one config or signature per manifest, and now and then a loose layer.
pub struct Pool {
    pinned: Vec<Blob>,
    loose: Vec<Blob>,
    configs: Vec<Blob>,
    empty: Blob,
}

impl Pool {
    pub fn new() -> Self {
        let layer = |i: u64| {
            Blob::of(random_bytes(
                512 + (i as usize * 37_171) % 96_000,
                0xb10b + i,
            ))
        };
        let configs = ["amd64", "arm64"]
            .iter()
            .map(|arch| Blob::of(config(arch, "pool").into_bytes()))
            .collect();
        Self {
            pinned: (0..12).map(layer).collect(),
            loose: (12..18).map(layer).collect(),
            configs,
            empty: Blob::of(b"{}".to_vec()),
        }
    }

    /// What base images name.
    fn pinned(&self) -> impl Iterator<Item = &Blob> {
        self.pinned
            .iter()
            .chain(&self.configs)
            .chain(std::iter::once(&self.empty))
    }

    /// Every blob of the pool.
    pub fn digests(&self) -> BTreeSet<Digest> {
        self.pinned()
            .chain(&self.loose)
            .map(|b| b.digest.clone())
            .collect()
    }

    /// `<repo>:base`: a manifest naming every pinned blob.
    pub fn base(&self, repo: &str) -> Image {
        let layers: Vec<Blob> = self.pinned().cloned().collect();
        let value = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": self.configs[0].descriptor(CONFIG),
            "layers": layers.iter().map(|l| l.descriptor(LAYER)).collect::<Vec<_>>(),
        });
        Image {
            repo: repo.to_owned(),
            tag: BASE.to_owned(),
            root: Doc::new(MANIFEST, &value, layers),
            children: Vec::new(),
            referrer: None,
            pooled: self.digests(),
        }
    }

    /// An image manifest (`id` makes it unique): one to three pinned
    /// layers, and a config of its own or, now and then, a pinned config
    /// and a loose layer; a child of an index names only pinned blobs.
    fn manifest(&self, id: &str, arch: &str, child: bool, rng: &mut Rng) -> Doc {
        let loose = !child && rng.percent(30);
        let config = match (arch, child || loose) {
            ("amd64", true) => self.configs[0].clone(),
            (_, true) => self.configs[1].clone(),
            (_, false) => Blob::of(config(arch, id).into_bytes()),
        };
        let mut layers: Vec<Blob> = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let layer = &self.pinned[rng.below(self.pinned.len())];
            if !layers.iter().any(|l| l.digest == layer.digest) {
                layers.push(layer.clone());
            }
        }
        if loose {
            layers.push(self.loose[rng.below(self.loose.len())].clone());
        }
        let value = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": config.descriptor(CONFIG),
            "layers": layers.iter().map(|l| l.descriptor(LAYER)).collect::<Vec<_>>(),
            "annotations": {"org.example.id": id},
        });
        Doc::new(
            MANIFEST,
            &value,
            std::iter::once(config).chain(layers).collect(),
        )
    }

    /// A signature-like artifact whose subject is `subject`.
    fn referrer(&self, id: &str, subject: &Doc) -> Doc {
        let signature = Blob::of(format!("signature of {} ({id})", subject.digest).into_bytes());
        let value = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "artifactType": "application/vnd.example.signature",
            "config": self.empty.descriptor(EMPTY),
            "layers": [signature.descriptor("application/vnd.example.signature")],
            "subject": subject.descriptor(),
            "annotations": {"org.example.id": id},
        });
        Doc::new(MANIFEST, &value, vec![self.empty.clone(), signature])
    }

    /// An image for `repo:tag`: a single manifest (half the time), an index
    /// over two children, or a manifest with a referrer.
    pub fn image(&self, repo: &str, tag: &str, id: &str, rng: &mut Rng) -> Image {
        let (root, children, referrer) = match rng.below(4) {
            0 => {
                let children = vec![
                    self.manifest(&format!("{id}-amd64"), "amd64", true, rng),
                    self.manifest(&format!("{id}-arm64"), "arm64", true, rng),
                ];
                let manifests: Vec<Value> = children
                    .iter()
                    .zip(["amd64", "arm64"])
                    .map(|(child, arch)| {
                        let mut d = child.descriptor();
                        d["platform"] = json!({"os": "linux", "architecture": arch});
                        d
                    })
                    .collect();
                let value = json!({
                    "schemaVersion": 2,
                    "mediaType": INDEX,
                    "manifests": manifests,
                    "annotations": {"org.example.id": id},
                });
                (Doc::new(INDEX, &value, Vec::new()), children, None)
            }
            1 => {
                let root = self.manifest(id, "amd64", false, rng);
                let referrer = self.referrer(id, &root);
                (root, Vec::new(), Some(referrer))
            }
            _ => (self.manifest(id, "amd64", false, rng), Vec::new(), None),
        };
        Image {
            repo: repo.to_owned(),
            tag: tag.to_owned(),
            root,
            children,
            referrer,
            pooled: self.digests(),
        }
    }
}

/// An image configuration naming `id`.
fn config(arch: &str, id: &str) -> String {
    json!({
        "architecture": arch,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"Labels": {"id": id}},
    })
    .to_string()
}

/// What the load did, and how often the collector made a pusher retry.
#[derive(Debug, Default)]
pub struct Counters {
    pub images: AtomicU64,
    /// Manifest `PUT`s answered `MANIFEST_BLOB_UNKNOWN`: what they named
    /// pushed again, and the `PUT` retried.
    pub manifest_retries: AtomicU64,
    /// Uploads closed with `BLOB_UPLOAD_UNKNOWN` (bytes reclaimed): uploaded again.
    pub upload_retries: AtomicU64,
    /// Of those, sessions still open afterwards (their `GET` answers 204).
    pub sessions_left_open: AtomicU64,
    /// Mounts answered 202 (the source's link was gone): uploaded instead.
    pub mount_fallbacks: AtomicU64,
    pub tag_deletes: AtomicU64,
    pub manifest_deletes: AtomicU64,
    pub blob_deletes: AtomicU64,
    /// Blob deletions answered `BLOB_UNKNOWN`: the repository had no link.
    pub blob_deletes_unknown: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn summary(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{} images pushed; retries: {} manifest PUTs (MANIFEST_BLOB_UNKNOWN), {} uploads \
             (BLOB_UPLOAD_UNKNOWN, {} of their sessions left open); {} mounts fell back to an \
             upload; deleted: {} tags, {} manifests, {} blob links ({} more not linked)",
            get(&self.images),
            get(&self.manifest_retries),
            get(&self.upload_retries),
            get(&self.sessions_left_open),
            get(&self.mount_fallbacks),
            get(&self.tag_deletes),
            get(&self.manifest_deletes),
            get(&self.blob_deletes),
            get(&self.blob_deletes_unknown),
        )
    }
}

enum Step {
    Done,
    /// What it uploaded was reclaimed before the upload closed: upload again.
    Reclaimed,
}

/// Pushes `image` until it is all there: every blob first (the layers of
/// the pool before the blobs of this image alone), then the children of an
/// index by digest, the root by tag, and its referrer by digest, each
/// `PUT` right after the other.
///
/// With no delay, the collector takes whatever nothing names yet within
/// one interval (100 ms): an upload not yet named by a manifest, a child
/// not yet named by its index. A push that did everything again after
/// each loss, or pushed each child with its blobs before the next, would
/// take longer than that and never end; so what is named only by this
/// image goes up last, the manifests together, and a retry pushes again
/// only what the answer names.
pub fn push_image(c: &mut Client, image: &Image, n: &Counters) -> Result<(), String> {
    let repo = &image.repo;
    let docs = image
        .children
        .iter()
        .chain(std::iter::once(&image.root))
        .chain(&image.referrer);
    let mut seen = BTreeSet::new();
    let mut blobs: Vec<&Blob> = docs
        .flat_map(|doc| doc.blobs.iter().rev())
        .filter(|blob| seen.insert(&blob.digest))
        .collect();
    blobs.sort_by_key(|blob| !image.pooled.contains(&blob.digest));
    for blob in blobs {
        ensure_blob(c, repo, blob, true, n)?;
    }
    let again = Again {
        children: &image.children,
    };
    put_children(c, repo, &image.children, n)?;
    put_manifest(c, repo, &image.root, &image.tag, &again, n)?;
    if let Some(referrer) = &image.referrer {
        put_manifest(c, repo, referrer, &referrer.digest.to_string(), &again, n)?;
    }
    Counters::add(&n.images);
    Ok(())
}

/// `PUT`s the children of an index by digest, all at once: each is the
/// collector's from its `PUT` until the index names it, and one after the
/// other they would leave the first longer in its reach.
fn put_children(c: &mut Client, repo: &str, children: &[Doc], n: &Counters) -> Result<(), String> {
    let none = Again { children: &[] };
    std::thread::scope(|scope| {
        let puts: Vec<_> = children
            .iter()
            .map(|child| {
                let (mut c, none) = (c.fork(), &none);
                scope.spawn(move || {
                    put_manifest(&mut c, repo, child, &child.digest.to_string(), none, n)
                })
            })
            .collect();
        puts.into_iter().try_for_each(|put| {
            put.join()
                .unwrap_or_else(|_| Err("a child's push panicked".into()))
        })
    })
}

/// What a push may have to push again besides blobs.
struct Again<'i> {
    /// The children of the image's index.
    children: &'i [Doc],
}

/// `PUT`s `doc` as `reference`; while the answer is `MANIFEST_BLOB_UNKNOWN`
/// (the collector reclaimed a blob or child since it was pushed), pushes
/// again what the answer names (a child, a blob), and retries.
fn put_manifest(
    c: &mut Client,
    repo: &str,
    doc: &Doc,
    reference: &str,
    again: &Again<'_>,
    n: &Counters,
) -> Result<(), String> {
    let what = format!("PUT {repo}/manifests/{reference}");
    for _ in 0..ATTEMPTS {
        let r = c.send(
            Method::PUT,
            &format!("/v2/{repo}/manifests/{reference}"),
            |b| {
                b.header("content-type", doc.media_type)
                    .body(doc.bytes.clone())
            },
        )?;
        match r.status().as_u16() {
            201 => {
                let digest = r
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok());
                if digest != Some(doc.digest.to_string().as_str()) {
                    return Err(format!(
                        "{what}: 201 with digest {digest:?}, not {}",
                        doc.digest
                    ));
                }
                return Ok(());
            }
            400 => {
                let body = r.text().unwrap_or_default();
                let error = OciError::of(&body);
                if error.code != "MANIFEST_BLOB_UNKNOWN" {
                    return Err(format!("{what}: unexpected 400: {body}"));
                }
                Counters::add(&n.manifest_retries);
                let missing = error.digest.as_deref().unwrap_or("");
                if let Some(blob) = doc.blobs.iter().find(|b| b.digest.to_string() == missing) {
                    ensure_blob(c, repo, blob, false, n)?;
                } else if again
                    .children
                    .iter()
                    .any(|d| d.digest.to_string() == missing)
                {
                    put_children(c, repo, again.children, n)?;
                } else {
                    return Err(format!("{what}: names what the manifest does not: {body}"));
                }
            }
            _ => return Err(unexpected(&what, r)),
        }
    }
    Err(format!(
        "{what}: still named reclaimed content after {ATTEMPTS} attempts"
    ))
}

/// Makes `blob` present in `repo`: found with `HEAD` (when `look` allows),
/// mounted from another repository, or uploaded (monolithic `POST`, a
/// session closed by one `PUT`, or two chunks); again while the collector
/// reclaims the bytes before the upload closes.
fn ensure_blob(
    c: &mut Client,
    repo: &str,
    blob: &Blob,
    look: bool,
    n: &Counters,
) -> Result<(), String> {
    for _ in 0..ATTEMPTS {
        if look && c.rng.percent(40) {
            let r = c.send(
                Method::HEAD,
                &format!("/v2/{repo}/blobs/{}", blob.digest),
                |b| b,
            )?;
            match r.status().as_u16() {
                200 => return Ok(()),
                404 => {}
                _ => return Err(unexpected(&format!("HEAD {repo} blob"), r)),
            }
        }
        let others: Vec<String> = c.repos.iter().filter(|r| *r != repo).cloned().collect();
        let step = match c.rng.below(4) {
            0 if !others.is_empty() => {
                let from = &others[c.rng.below(others.len())];
                mount(c, repo, blob, from, n)?
            }
            0 | 1 => monolithic(c, repo, blob, n)?,
            2 => {
                let location = start_session(c, repo)?;
                close(c, &location, blob, 0, n)?
            }
            _ => {
                let location = start_session(c, repo)?;
                let half = blob.bytes.len() / 2;
                let location = patch(c, &location, &blob.bytes[..half])?;
                close(c, &location, blob, half, n)?
            }
        };
        match step {
            Step::Done => return Ok(()),
            Step::Reclaimed => Counters::add(&n.upload_retries),
        }
    }
    Err(format!(
        "{repo}: blob {} still reclaimed after {ATTEMPTS} uploads",
        blob.digest
    ))
}

/// The `/v2/...` part of a `Location`, with `query` appended.
fn path_of(location: &str, query: &str) -> String {
    let path = location.find("/v2/").map_or(location, |at| &location[at..]);
    match (query.is_empty(), path.contains('?')) {
        (true, _) => path.to_owned(),
        (false, true) => format!("{path}&{query}"),
        (false, false) => format!("{path}?{query}"),
    }
}

fn location_of(r: &Response) -> Result<String, String> {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| format!("{} without a Location", r.status()))
}

/// Mounts `blob` from `from`, or uploads it when `from` has it not.
fn mount(
    c: &mut Client,
    repo: &str,
    blob: &Blob,
    from: &str,
    n: &Counters,
) -> Result<Step, String> {
    let r = c.send(
        Method::POST,
        &format!(
            "/v2/{repo}/blobs/uploads/?mount={}&from={from}",
            blob.digest
        ),
        |b| b,
    )?;
    match r.status().as_u16() {
        201 => Ok(Step::Done),
        202 => {
            Counters::add(&n.mount_fallbacks);
            let location = location_of(&r)?;
            close(c, &location, blob, 0, n)
        }
        _ => Err(unexpected(&format!("POST {repo} mount from {from}"), r)),
    }
}

fn monolithic(c: &mut Client, repo: &str, blob: &Blob, n: &Counters) -> Result<Step, String> {
    let r = c.send(
        Method::POST,
        &format!("/v2/{repo}/blobs/uploads/?digest={}", blob.digest),
        |b| {
            b.header("content-type", "application/octet-stream")
                .body(blob.bytes.to_vec())
        },
    )?;
    closed(c, r, &format!("POST {repo} monolithic"), None, n)
}

fn start_session(c: &mut Client, repo: &str) -> Result<String, String> {
    let r = c.send(Method::POST, &format!("/v2/{repo}/blobs/uploads/"), |b| b)?;
    if r.status() != 202 {
        return Err(unexpected(&format!("POST {repo} upload"), r));
    }
    location_of(&r)
}

fn patch(c: &mut Client, location: &str, chunk: &[u8]) -> Result<String, String> {
    let r = c.send(Method::PATCH, &path_of(location, ""), |b| {
        b.header("content-type", "application/octet-stream")
            .header("content-range", format!("0-{}", chunk.len() - 1))
            .body(chunk.to_vec())
    })?;
    if r.status() != 202 {
        return Err(unexpected("PATCH upload", r));
    }
    location_of(&r)
}

/// Closes the session at `location` with the bytes of `blob` from `offset`.
fn close(
    c: &mut Client,
    location: &str,
    blob: &Blob,
    offset: usize,
    n: &Counters,
) -> Result<Step, String> {
    let rest = blob.bytes[offset..].to_vec();
    let r = c.send(
        Method::PUT,
        &path_of(location, &format!("digest={}", blob.digest)),
        |b| {
            b.header("content-type", "application/octet-stream")
                .header(
                    "content-range",
                    format!("{offset}-{}", blob.bytes.len() - 1),
                )
                .body(rest)
        },
    )?;
    closed(c, r, "PUT closing an upload", Some(location), n)
}

/// The answer to a request that closes an upload: 201, or the bytes
/// reclaimed by the collector meanwhile (then whether the session, which
/// the answer calls unknown, is gone).
fn closed(
    c: &mut Client,
    r: Response,
    what: &str,
    location: Option<&str>,
    n: &Counters,
) -> Result<Step, String> {
    match r.status().as_u16() {
        201 => Ok(Step::Done),
        404 => {
            let body = r.text().unwrap_or_default();
            let error = OciError::of(&body);
            if error.code != "BLOB_UPLOAD_UNKNOWN" || !error.message.contains("garbage collector") {
                return Err(format!("{what}: unexpected 404: {body}"));
            }
            if let Some(location) = location {
                let status = c.send(Method::GET, &path_of(location, ""), |b| b)?;
                if status.status() == 204 {
                    Counters::add(&n.sessions_left_open);
                }
            }
            Ok(Step::Reclaimed)
        }
        _ => Err(unexpected(what, r)),
    }
}
