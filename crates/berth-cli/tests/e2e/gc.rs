//! The garbage collector with the real binary: collections every 100 ms
//! under pushes and deletes (on two nodes sharing a PostgreSQL database
//! when `BERTH_TEST_DATABASE_URL` is set), and kill -9 in the middle of
//! collections. Each ends with every tag pulled completely and the store
//! holding exactly the blobs the manifests still there name.
//!
//! Access control stays on: the admin API (`POST /api/v1/gc`, `GET
//! /api/v1/usage`) always authenticates its caller (`http/admin/mod.rs`,
//! `Caller`) and answers only an administrator, and `berth serve` creates
//! the first administrator only with access control on. The load runs as
//! that administrator too, with a token per node.
//!
//! Backends: SQLite and the data directory by default; PostgreSQL with
//! `BERTH_TEST_DATABASE_URL` (`.ci/postgres`); blobs in S3 with
//! `BERTH_TEST_S3_ENDPOINT` (`.ci/s3`) under a prefix of the test's own,
//! listed with the S3 API (moto answers unsigned requests) to count what
//! is stored.

mod check;
mod load;
mod workers;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use berth_core::digest::Digest;
use berth_registry::meta::scratch::ScratchDatabase;
use reqwest::Method;
use serde_json::Value;

use self::check::{Difference, Present, matches_ledger, pull_everything};
use self::load::{Client, Node, Rng, push_image};
use self::workers::{Shared, push_bases, push_tagged};
use crate::support::{ADMIN_PASSWORD, Server, random_bytes};

/// The collector's delays at 0: anything unreferenced goes at the next
/// collection, `interval` seconds apart.
fn collecting(interval: &str) -> [&str; 6] {
    [
        "--gc-delay-secs",
        "0",
        "--gc-untagged-delay-secs",
        "0",
        "--gc-interval-secs",
        interval,
    ]
}

/// Where the nodes keep metadata and blobs, from the environment.
struct Backend {
    data: tempfile::TempDir,
    database: Option<ScratchDatabase>,
    s3: Option<S3>,
}

/// A prefix of the test's own in the S3 bucket of `.ci/s3`.
struct S3 {
    endpoint: String,
    bucket: String,
    prefix: String,
}

impl Backend {
    fn from_env(test: &str) -> Self {
        let database = runtime().block_on(ScratchDatabase::from_env()).unwrap();
        let s3 = std::env::var("BERTH_TEST_S3_ENDPOINT")
            .ok()
            .map(|endpoint| S3 {
                endpoint,
                bucket: std::env::var("BERTH_TEST_S3_BUCKET")
                    .unwrap_or_else(|_| "berth-test".into()),
                prefix: format!("gc-{test}-{}-{}", std::process::id(), nanos()),
            });
        Self {
            data: tempfile::tempdir().unwrap(),
            database,
            s3,
        }
    }

    fn describe(&self) -> &'static str {
        match (&self.database, &self.s3) {
            (None, None) => "SQLite, blobs in the data directory",
            (None, Some(_)) => "SQLite, blobs in S3",
            (Some(_), None) => "PostgreSQL, blobs in the data directory",
            (Some(_), Some(_)) => "PostgreSQL, blobs in S3",
        }
    }

    /// Two nodes on PostgreSQL (one database, one data directory, one
    /// bucket); SQLite is one node's.
    fn nodes(&self) -> usize {
        if self.database.is_some() { 2 } else { 1 }
    }

    /// `berth serve` on this backend with `extra` arguments.
    fn start(&self, extra: &[&str]) -> Server {
        let mut args: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        if let Some(database) = &self.database {
            args.extend(["--database-url".into(), database.url().expose().to_owned()]);
        }
        if let Some(s3) = &self.s3 {
            args.extend([
                "--blob-store".into(),
                format!("s3://{}/{}", s3.bucket, s3.prefix),
                "--s3-endpoint".into(),
                s3.endpoint.clone(),
                "--s3-path-style".into(),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Server::start_with(self.data.path(), &args)
    }

    /// The blobs stored, with their sizes in bytes: the files under
    /// `<data>/blobs/<alg>/<xx>/<hex>`, or the objects under
    /// `<prefix>/blobs/<alg>/<hex>`. Anything else there is a failure.
    fn stored(&self) -> Result<BTreeMap<Digest, u64>, String> {
        match &self.s3 {
            None => stored_files(&self.data.path().join("blobs")),
            Some(s3) => s3.stored(),
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn nanos() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn stored_files(blobs: &Path) -> Result<BTreeMap<Digest, u64>, String> {
    let mut stored = BTreeMap::new();
    let entries = |dir: &Path| -> Result<Vec<std::fs::DirEntry>, String> {
        std::fs::read_dir(dir)
            .and_then(Iterator::collect)
            .map_err(|e| format!("{}: {e}", dir.display()))
    };
    for alg in entries(blobs)? {
        for shard in entries(&alg.path())? {
            for file in entries(&shard.path())? {
                let path = file.path();
                let (alg, shard, hex) = (
                    alg.file_name().to_string_lossy().into_owned(),
                    shard.file_name().to_string_lossy().into_owned(),
                    file.file_name().to_string_lossy().into_owned(),
                );
                let digest: Digest = format!("{alg}:{hex}")
                    .parse()
                    .ok()
                    .filter(|_| hex.starts_with(&shard))
                    .ok_or_else(|| format!("{} is no blob of the layout", path.display()))?;
                let len = file.metadata().map_err(|e| e.to_string())?.len();
                stored.insert(digest, len);
            }
        }
    }
    Ok(stored)
}

impl S3 {
    /// `ListObjectsV2` of `<prefix>/blobs/`, page by page.
    fn stored(&self) -> Result<BTreeMap<Digest, u64>, String> {
        let http = reqwest::blocking::Client::new();
        let under = format!("{}/blobs/", self.prefix);
        let mut stored = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("list-type", "2".to_owned()), ("prefix", under.clone())];
            if let Some(token) = &token {
                query.push(("continuation-token", token.clone()));
            }
            // moto answers a listing 500 now and then while the collectors
            // delete objects beside it (its in-memory bucket changing under
            // the listing): asked again, it answers.
            let mut attempts = 0;
            let r = loop {
                let r = http
                    .get(format!("{}/{}", self.endpoint, self.bucket))
                    .query(&query)
                    .send()
                    .map_err(|e| format!("listing S3: {e}"))?;
                attempts += 1;
                if r.status().is_server_error() && attempts < 5 {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    continue;
                }
                break r;
            };
            if r.status() != 200 {
                return Err(load::unexpected("listing S3", r));
            }
            let xml = r.text().map_err(|e| e.to_string())?;
            for object in xml.split("<Contents>").skip(1) {
                let key = element(object, "Key").ok_or("an object without a key")?;
                let size = element(object, "Size").and_then(|s| s.parse().ok());
                let digest = key
                    .strip_prefix(&under)
                    .and_then(|rest| rest.split_once('/'))
                    .and_then(|(alg, hex)| format!("{alg}:{hex}").parse::<Digest>().ok());
                match (digest, size) {
                    (Some(digest), Some(size)) => stored.insert(digest, size),
                    _ => return Err(format!("S3 object {key} is no blob of the layout")),
                };
            }
            token = element(&xml, "NextContinuationToken").map(str::to_owned);
            if element(&xml, "IsTruncated") != Some("true") || token.is_none() {
                return Ok(stored);
            }
        }
    }
}

/// The text of the first `<name>` element in `xml`.
fn element<'x>(xml: &'x str, name: &str) -> Option<&'x str> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(&xml[start..end])
}

/// `method /api/v1/<path>` as the administrator; the JSON answer, which
/// must be 200.
fn admin_api(node: &Node, method: Method, path: &str) -> Result<Value, String> {
    let r = reqwest::blocking::Client::new()
        .request(method.clone(), format!("{}/api/v1/{path}", node.base))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .timeout(Duration::from_secs(120))
        .send()
        .map_err(|e| format!("{method} /api/v1/{path}: {e}"))?;
    if r.status() != 200 {
        return Err(load::unexpected(&format!("{method} /api/v1/{path}"), r));
    }
    r.json().map_err(|e| e.to_string())
}

/// One collection on `node` through the API: its report, which must name
/// no failed review.
fn collect(node: &Node) -> Result<Value, String> {
    let report = admin_api(node, Method::POST, "gc")?;
    let errors = report["errors"].as_array().map_or(0, Vec::len);
    if errors > 0 || report["incomplete"] != false {
        return Err(format!("the collection failed reviews: {report}"));
    }
    Ok(report)
}

/// Runs collections on `node` until the store holds exactly the blobs
/// `present` names and the review queue is empty, for `patience` at most
/// (another node's collection may still hold rows it claimed, the sweep may
/// still be reconciling); what it stores then. A blob named but not stored
/// fails at once: that is a loss, not a delay.
fn settle(
    backend: &Backend,
    node: &Node,
    present: &Present,
    patience: Duration,
) -> Result<BTreeMap<Digest, u64>, String> {
    let deadline = Instant::now() + patience;
    loop {
        let report = collect(node)?;
        let stored = backend.stored()?;
        let difference = Difference::of(present, &stored);
        if !difference.lost.is_empty() {
            return Err(format!(
                "{} blobs named by manifests there are not stored, among them {}",
                difference.lost.len(),
                some(&difference.lost)
            ));
        }
        let queue = report["queue_length"].as_u64();
        if difference.is_empty() && queue == Some(0) {
            return Ok(stored);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} s of collections leave {} blobs no manifest names (among them {}) and \
                 {queue:?} rows in the review queue; the last collection's report: {report}",
                patience.as_secs(),
                difference.left.len(),
                some(&difference.left)
            ));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The first few of `digests`, for a message.
fn some(digests: &[Digest]) -> String {
    let first: Vec<String> = digests.iter().take(5).map(ToString::to_string).collect();
    first.join(", ")
}

/// After the load: every tag pulls completely and is the ledger's; a
/// collection leaves exactly the blobs named, their bytes those stored,
/// the usage API agreeing and the queue empty; and everything still pulls.
fn check_settled(backend: &Backend, nodes: &[Node], repos: &[String], shared: &Shared) {
    let mut c = Client::new(nodes, repos, nanos());
    let present = pull_everything(&mut c).unwrap();
    matches_ledger(&shared.ledger(), &present).unwrap();
    let stored = settle(backend, &nodes[0], &present, Duration::from_secs(30)).unwrap();
    let on_disk: u64 = stored.values().sum();
    assert_eq!(
        on_disk,
        present.bytes(),
        "bytes stored are the bytes of the blobs named"
    );
    let usage = admin_api(&nodes[0], Method::GET, "usage").unwrap();
    assert_eq!(usage["stored"]["blobs"], stored.len(), "{usage}");
    assert_eq!(usage["stored"]["bytes"], on_disk, "{usage}");
    assert_eq!(usage["gc_queue_length"], 0, "{usage}");
    let again = pull_everything(&mut c).unwrap();
    assert_eq!(again.tags, present.tags, "the tags after the collections");
    assert_eq!(
        again.blobs, present.blobs,
        "the blobs after the collections"
    );
    eprintln!(
        "settled: {} tags, {} blobs of {} bytes stored, each named",
        present.tags.len(),
        stored.len(),
        on_disk
    );
}

/// The server lines that say something failed (at `warn` or above).
fn trouble(servers: &[&Server]) -> Vec<String> {
    servers
        .iter()
        .flat_map(|s| s.log())
        .filter(|line| line.contains("WARN") || line.contains("ERROR"))
        .collect()
}

/// Four pushers and two deleters for `BERTH_GC_STRESS_SECS` (60) seconds
/// while every node collects every 100 ms with no delay: the pushers retry
/// only what the collector reclaimed under them (counted), nothing else
/// fails; then every tag pulls completely and is the ledger's, and a
/// collection leaves exactly the blobs the manifests there name. On
/// PostgreSQL two nodes share the database, the data directory or bucket,
/// the load and the collections.
#[test]
fn collections_every_100_ms_under_load_keep_every_tag_and_leave_no_garbage() {
    let secs: u64 = std::env::var("BERTH_GC_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let backend = Backend::from_env("stress");
    let repos: Vec<String> = (0..4).map(|i| format!("gc/r{i}")).collect();
    let seed = nanos();
    let shared = Arc::new(Shared::new());
    // The base images go up before the collector runs: with no delay it
    // would take each of their blobs before the next is up.
    let mut quiet = backend.start(&["--gc-interval-secs", "0"]);
    push_bases(&mut Client::new(&[Node::of(&quiet)], &repos, seed), &shared).unwrap();
    quiet.terminate();
    let servers: Vec<Server> = (0..backend.nodes())
        .map(|_| backend.start(&collecting("0.1")))
        .collect();
    let nodes: Vec<Node> = servers.iter().map(Node::of).collect();
    eprintln!(
        "gc stress: {} node(s), {}, {secs} s, seed {seed}",
        nodes.len(),
        backend.describe()
    );

    let mut threads = Vec::new();
    for worker in 0..4 {
        let (c, shared) = (
            Client::new(&nodes, &repos, seed ^ worker as u64),
            shared.clone(),
        );
        threads.push(std::thread::spawn(move || {
            workers::pusher(c, &shared, worker)
        }));
    }
    for worker in 0..2 {
        let c = Client::new(&nodes, &repos, seed ^ (0x100 + worker as u64));
        let shared = shared.clone();
        threads.push(std::thread::spawn(move || {
            workers::deleter(c, &shared, worker, 8)
        }));
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) && !shared.stopped() {
        std::thread::sleep(Duration::from_millis(100));
    }
    shared.stop.store(true, Ordering::SeqCst);
    for thread in threads {
        thread.join().unwrap();
    }
    let summary = shared.counters.summary();
    eprintln!("gc stress: {summary}");
    let failures = shared.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "the load failed (seed {seed}; {summary}):\n{}",
        failures.join("\n")
    );

    check_settled(&backend, &nodes, &repos, &shared);
    let servers: Vec<&Server> = servers.iter().collect();
    let trouble = trouble(&servers);
    assert!(
        trouble.is_empty(),
        "the servers logged failures:\n{}",
        trouble.join("\n")
    );
    let left_open = shared.counters.sessions_left_open.load(Ordering::Relaxed);
    assert_eq!(
        left_open, 0,
        "upload sessions answered BLOB_UPLOAD_UNKNOWN (bytes reclaimed) are still open: they \
         count against the caps of open sessions until they expire"
    );
}

const KILLS: u64 = 20;

/// A registry with tagged images (the ledger) and a few hundred
/// unreferenced blobs and untagged manifests, killed with SIGKILL at a
/// random instant within the first 400 ms of each of 20 starts that
/// collect every 50 ms with no delay (and on demand in every other start;
/// more garbage added between some of them, and uploaded while it dies in
/// others). Then every tagged image pulls completely, and a collection
/// leaves exactly the blobs the tagged images name and an empty review
/// queue.
///
/// What a killed collector leaves waits as long as it would have in a
/// real crash, and is made to have waited: files no record names are aged
/// past the sweep's minute, and the rows it had claimed (held for
/// `CLAIM_SECS`, 300 s, against other collectors) are released after each
/// kill, so that each start resumes every review the last one cut. The
/// claims alone are pinned by
/// [`a_restarted_node_reviews_at_once_what_its_killed_collector_claimed`].
#[test]
fn kill_9_during_collections_loses_nothing_and_the_next_collection_finishes() {
    let backend = Backend::from_env("kill");
    let repos: Vec<String> = (0..3).map(|i| format!("gc/k{i}")).collect();
    let seed = nanos();
    eprintln!("gc kill: {}, seed {seed}", backend.describe());
    let started = Instant::now();
    let shared = Shared::new();
    let mut rng = Rng::new(seed);
    let quiet = ["--gc-interval-secs", "0"];

    let mut server = backend.start(&quiet);
    let node = Node::of(&server);
    let mut c = Client::new(std::slice::from_ref(&node), &repos, seed);
    for i in 0..24 {
        let repo = repos[i % repos.len()].clone();
        assert!(push_tagged(&mut c, &shared, &repo, &format!("t{i}"), &format!("t{i}")).unwrap());
    }
    add_garbage(&node, &repos, &shared, 300, seed);
    server.terminate();
    eprintln!("gc kill: filled in {} s", started.elapsed().as_secs());

    let mut logged = Vec::new();
    let mut claimed = 0;
    for round in 0..KILLS {
        if round % 7 == 6 {
            let mut server = backend.start(&quiet);
            let node = Node::of(&server);
            let mut c = Client::new(std::slice::from_ref(&node), &repos, seed ^ round);
            let present = pull_everything(&mut c).unwrap();
            matches_ledger(&shared.ledger(), &present).unwrap();
            add_garbage(&node, &repos, &shared, 48, seed ^ round);
            server.terminate();
        }
        let mut server = backend.start(&collecting("0.05"));
        let node = Node::of(&server);
        let mut helpers = Vec::new();
        if round % 2 == 0 {
            let node = node.clone();
            helpers.push(std::thread::spawn(move || while collect(&node).is_ok() {}));
        }
        // Uploads cut by the kill leave blob files no record names, which
        // only the sweep reclaims, once older than a minute: the files are
        // aged below. S3 objects cannot be aged, so on S3 nothing uploads
        // while the server dies.
        if round % 3 == 1 && backend.s3.is_none() {
            let mut c = Client::new(std::slice::from_ref(&node), &repos, seed ^ (round << 8));
            helpers.push(std::thread::spawn(move || upload_until_gone(&mut c)));
        }
        std::thread::sleep(Duration::from_millis(rng.below(400) as u64));
        server.kill();
        for helper in helpers {
            helper.join().unwrap();
        }
        logged.extend(trouble(&[&server]));
        claimed += expire_claims(&backend);
    }
    eprintln!(
        "gc kill: {KILLS} kills in {} s; they left {claimed} rows claimed",
        started.elapsed().as_secs()
    );

    if backend.s3.is_none() {
        let aged =
            aged(&backend.data.path().join("blobs")) + aged(&backend.data.path().join("uploads"));
        eprintln!("gc kill: {aged} files aged by two hours");
    }
    let server = backend.start(&collecting("0"));
    check_settled(&backend, &[Node::of(&server)], &repos, &shared);
    logged.extend(trouble(&[&server]));
    assert!(
        logged.is_empty(),
        "the servers logged failures:\n{}",
        logged.join("\n")
    );
}

/// Regression: a collector killed in the middle of a collection kept the
/// rows it had claimed from every other collector for `CLAIM_SECS` (300
/// s), its restarted node's included: on SQLite, where no other node can
/// be, its garbage stayed for five minutes after a restart, and `POST
/// /api/v1/gc` reported a queue it could not review. The restarted node's
/// collection reviews them at once.
#[test]
fn a_restarted_node_reviews_at_once_what_its_killed_collector_claimed() {
    let backend = Backend::from_env("claims");
    let repos: Vec<String> = (0..3).map(|i| format!("gc/c{i}")).collect();
    let shared = Shared::new();
    let mut server = backend.start(&["--gc-interval-secs", "0"]);
    let node = Node::of(&server);
    let mut c = Client::new(std::slice::from_ref(&node), &repos, nanos());
    assert!(push_tagged(&mut c, &shared, "gc/c0", "kept", "kept").unwrap());
    add_garbage(&node, &repos, &shared, 120, nanos());
    server.terminate();

    // A collection on demand, killed once it has claimed its rows and
    // reviewed a few.
    let mut server = backend.start(&collecting("0"));
    let node = Node::of(&server);
    let queued = queue_length(&node);
    let cut = {
        let node = node.clone();
        std::thread::spawn(move || collect(&node))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while queue_length(&node) + 20 > queued {
        assert!(Instant::now() < deadline, "the collection does not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill();
    assert!(cut.join().unwrap().is_err(), "the collection was cut");

    let server = backend.start(&collecting("0"));
    let node = Node::of(&server);
    let mut c = Client::new(std::slice::from_ref(&node), &repos, nanos());
    let present = pull_everything(&mut c).unwrap();
    matches_ledger(&shared.ledger(), &present).unwrap();
    let settled = settle(&backend, &node, &present, Duration::from_secs(20));
    drop(server);
    if let Err(e) = settled {
        // Whether the claims are what holds it back: released, the rows go.
        let claimed = expire_claims(&backend);
        let server = backend.start(&collecting("0"));
        let released = settle(
            &backend,
            &Node::of(&server),
            &present,
            Duration::from_secs(20),
        );
        panic!(
            "the collections of a restarted node leave what the killed one had claimed: {e}; \
             {claimed} rows were still claimed by it; once released, {}",
            match released {
                Ok(_) => "the next collection takes everything unreferenced".to_owned(),
                Err(e) => format!("still: {e}"),
            }
        );
    }
}

/// Rows in the review queue, due or not (`GET /api/v1/usage`).
fn queue_length(node: &Node) -> u64 {
    admin_api(node, Method::GET, "usage").unwrap()["gc_queue_length"]
        .as_u64()
        .unwrap()
}

/// Expires every claim on rows of the review queue, as if the collectors
/// holding them had stopped long ago; how many there were. No server may
/// run on the database.
fn expire_claims(backend: &Backend) -> u64 {
    use berth_registry::meta::db::{Db, query};
    runtime().block_on(async {
        let db = match &backend.database {
            Some(database) => Db::connect_postgres(database.url().expose()).await,
            None => Db::open_sqlite(&backend.data.path().join(berth_registry::DATABASE_FILE)).await,
        }
        .unwrap();
        let expired = query("UPDATE gc_reviews SET claimed_until = 0 WHERE claimed_until > 0")
            .execute(&db)
            .await
            .unwrap();
        db.close().await;
        expired
    })
}

/// Garbage, pushed through `node` by four clients at once: `n` blobs no
/// manifest names, `n / 6` manifests pushed by digest and never tagged,
/// and `n / 12` images tagged and untagged again (their children and
/// referrers with them).
fn add_garbage(node: &Node, repos: &[String], shared: &Shared, n: usize, seed: u64) {
    std::thread::scope(|scope| {
        for worker in 0..4 {
            scope.spawn(move || {
                let mut c = Client::new(std::slice::from_ref(node), repos, seed ^ worker);
                garbage(&mut c, shared, n / 4);
            });
        }
    });
}

fn garbage(c: &mut Client, shared: &Shared, n: usize) {
    let repos = c.repos.clone();
    for i in 0..n {
        let repo = &repos[c.rng.below(repos.len())];
        let bytes = random_bytes(100 + c.rng.below(4000), c.rng.next());
        let digest = Digest::sha256_of(&bytes);
        let r = c
            .send(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
                |b| b.body(bytes),
            )
            .unwrap();
        assert_eq!(r.status(), 201, "garbage blob {i}");
    }
    for i in 0..n / 6 {
        let repo = &repos[c.rng.below(repos.len())];
        let id = format!("g{}-{i}", c.rng.next());
        let mut image = shared.pool.image(repo, "unused", &id, &mut c.rng);
        image.tag = image.root.digest.to_string();
        push_image(c, &image, &shared.counters).unwrap();
    }
    for i in 0..n / 12 {
        let repo = &repos[c.rng.below(repos.len())];
        let id = format!("u{}-{i}", c.rng.next());
        let tag = format!("untagged-{}", c.rng.next());
        let image = shared.pool.image(repo, &tag, &id, &mut c.rng);
        push_image(c, &image, &shared.counters).unwrap();
        let r = c
            .send(
                Method::DELETE,
                &format!("/v2/{repo}/manifests/{tag}"),
                |b| b,
            )
            .unwrap();
        assert_eq!(r.status(), 202);
    }
}

/// Uploads blobs no manifest names until the server is gone.
fn upload_until_gone(c: &mut Client) {
    loop {
        let repo = c.repos[c.rng.below(c.repos.len())].clone();
        let bytes = random_bytes(100 + c.rng.below(200_000), c.rng.next());
        let digest = Digest::sha256_of(&bytes);
        let path = format!("/v2/{repo}/blobs/uploads/?digest={digest}");
        if c.send(Method::POST, &path, |b| b.body(bytes)).is_err() {
            return;
        }
    }
}

/// Makes every file under `dir` look last written two hours ago; how many.
fn aged(dir: &Path) -> usize {
    let old = SystemTime::now() - Duration::from_secs(7200);
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            count += aged(&path);
        } else {
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(old)
                .unwrap();
            count += 1;
        }
    }
    count
}
