//! Crash safety: concurrent pushers, SIGKILL at random instants, restart, and
//! check that nothing acknowledged was lost and nothing visible is corrupt.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_core::digest::Digest;
use reqwest::blocking::Client;

use crate::support::{Server, random_bytes};

const KILLS: u64 = 20;
const WORKERS: u64 = 3;

/// What the server acknowledged before it died.
#[derive(Default)]
struct Ledger {
    /// Blobs answered 201: (repository, digest).
    blobs: Vec<(String, Digest)>,
    /// Manifests answered 201: (repository, tag, digest).
    manifests: Vec<(String, String, Digest)>,
    /// Uploads whose last PATCH answered 202: (repository, location, whole blob, bytes acknowledged).
    open_uploads: Vec<(String, String, Vec<u8>, usize)>,
}

/// Twenty times: three clients push blobs (monolithic and chunked) and
/// manifests while the server is SIGKILLed at a random instant; after a
/// restart every acknowledged blob and manifest is there and re-hashes to its
/// digest, every tag points at a manifest whose references all exist, and every
/// upload that had answered 202 either continues to a verified blob or fails
/// cleanly with BLOB_UPLOAD_UNKNOWN.
#[test]
fn sigkill_at_random_instants_loses_nothing_acknowledged() {
    let data = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("crash test seed: {seed}");
    for round in 0..KILLS {
        let mut server = Server::start_with(data.path(), &["--access-control", "false"]);
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (base, ledger, stop) = (server.url(""), ledger.clone(), stop.clone());
                std::thread::spawn(move || {
                    push_until_error(&base, w, seed ^ (round << 8) ^ w, &ledger, &stop)
                })
            })
            .collect();
        let wait = 80 + (random_bytes(2, seed ^ round)[0] as u64) * 2;
        std::thread::sleep(Duration::from_millis(wait));
        server.kill();
        stop.store(true, Ordering::SeqCst);
        for worker in workers {
            worker.join().unwrap();
        }

        let server = Server::start_with(data.path(), &["--access-control", "false"]);
        verify(&server, &mut ledger.lock().unwrap());
    }
    // What the kills may have left: staging files no session names, blob
    // files no record names. Made to look two hours old, every file is one
    // the sweep at start may remove if no metadata names it: nothing
    // acknowledged may go.
    let blobs_before = aged_files(&data.path().join("blobs"));
    let staging_before = aged_files(&data.path().join("uploads"));
    // Files no record names are reclaimed once as old as the collector's
    // delay: an hour here, less than the files' two.
    let server = Server::start_with(
        data.path(),
        &["--access-control", "false", "--gc-delay-secs", "3600"],
    );
    // Then every file left is named by metadata: a staging file is a live
    // session of one of the pushers' repositories, a blob file a blob linked
    // in one of them.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let orphans = unnamed_files(&server, data.path());
        if orphans.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "30 s after start, files no metadata names are still there: {orphans:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    verify(&server, &mut ledger.lock().unwrap());
    eprintln!(
        "sweep after {KILLS} kills: blob files {blobs_before} -> {}, staging files {staging_before} -> {}",
        count_files(&data.path().join("blobs")),
        count_files(&data.path().join("uploads")),
    );

    let ledger = ledger.lock().unwrap();
    assert!(
        ledger.blobs.len() > KILLS as usize && !ledger.manifests.is_empty(),
        "the pushers made progress between kills ({} blobs, {} manifests)",
        ledger.blobs.len(),
        ledger.manifests.len()
    );
}

/// Makes every file under `dir` look last written two hours ago; how many.
fn aged_files(dir: &std::path::Path) -> usize {
    let old = std::time::SystemTime::now() - Duration::from_secs(7200);
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            count += aged_files(&path);
        } else {
            std::fs::File::open(&path)
                .unwrap()
                .set_modified(old)
                .unwrap();
            count += 1;
        }
    }
    count
}

fn count_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            if path.is_dir() { count_files(&path) } else { 1 }
        })
        .sum()
}

/// Files under `data` that no metadata names, as the API shows it: staging
/// files that are no live session, and blob files linked in no pushers'
/// repository.
fn unnamed_files(server: &Server, data: &std::path::Path) -> Vec<std::path::PathBuf> {
    let c = Client::new();
    let repos: Vec<String> = (0..WORKERS).map(|w| format!("crash/w{w}")).collect();
    // GET for an upload's status (it has no HEAD), HEAD for a blob.
    let named = |method: reqwest::Method, path: String, ok: u16| {
        repos.iter().any(|repo| {
            c.request(method.clone(), server.url(&path.replace("{repo}", repo)))
                .send()
                .unwrap()
                .status()
                == ok
        })
    };
    let mut unnamed = Vec::new();
    for entry in std::fs::read_dir(data.join("uploads")).unwrap() {
        let path = entry.unwrap().path();
        let id = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !named(
            reqwest::Method::GET,
            format!("/v2/{{repo}}/blobs/uploads/{id}"),
            204,
        ) {
            unnamed.push(path);
        }
    }
    for shard in std::fs::read_dir(data.join("blobs/sha256")).unwrap() {
        for entry in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            let path = entry.unwrap().path();
            let hex = path.file_name().unwrap().to_str().unwrap().to_owned();
            if !named(
                reqwest::Method::HEAD,
                format!("/v2/{{repo}}/blobs/sha256:{hex}"),
                200,
            ) {
                unnamed.push(path);
            }
        }
    }
    unnamed
}

/// One pushing client: loops over monolithic blobs, chunked blobs and
/// manifests until a request fails (the server died) or `stop` is set.
fn push_until_error(base: &str, worker: u64, seed: u64, ledger: &Mutex<Ledger>, stop: &AtomicBool) {
    let client = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let repo = format!("crash/w{worker}");
    let mut mine: Vec<Digest> = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let size = 1024 + (random_bytes(4, seed ^ n)[0] as usize) * 4096;
        let data = random_bytes(size, seed.wrapping_add(n * 7919));
        let digest = Digest::sha256_of(&data);
        let outcome = match n % 3 {
            0 => push_monolithic(&client, base, &repo, &data, &digest),
            1 => push_chunked(&client, base, &repo, &data, &digest, ledger),
            _ => push_manifest(
                &client,
                base,
                &repo,
                &mine,
                &format!("t{seed:x}-{n}"),
                ledger,
            ),
        };
        match outcome {
            Ok(Some(blob)) => {
                ledger
                    .lock()
                    .unwrap()
                    .blobs
                    .push((repo.clone(), blob.clone()));
                mine.push(blob);
            }
            Ok(None) => {}
            Err(()) => {
                eprintln!("worker {worker} stopped after {n} steps");
                return;
            }
        }
    }
}

fn push_monolithic(
    c: &Client,
    base: &str,
    repo: &str,
    data: &[u8],
    d: &Digest,
) -> Result<Option<Digest>, ()> {
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"))
        .body(data.to_vec())
        .send()
        .map_err(|e| eprintln!("monolithic: {e}"))?;
    assert_eq!(r.status(), 201, "monolithic push");
    Ok(Some(d.clone()))
}

fn push_chunked(
    c: &Client,
    base: &str,
    repo: &str,
    data: &[u8],
    d: &Digest,
    ledger: &Mutex<Ledger>,
) -> Result<Option<Digest>, ()> {
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .map_err(|e| eprintln!("request failed: {e:?}"))?;
    assert_eq!(r.status(), 202);
    let mut location = r.headers()["location"].to_str().unwrap().to_owned();
    let half = data.len() / 2;
    for (start, chunk) in [(0, &data[..half]), (half, &data[half..])] {
        let r = c
            .patch(&location)
            .header(
                "content-range",
                format!("{start}-{}", start + chunk.len() - 1),
            )
            .header("content-type", "application/octet-stream")
            .body(chunk.to_vec())
            .send()
            .map_err(|e| eprintln!("request failed: {e:?}"))?;
        assert_eq!(r.status(), 202, "PATCH {start}");
        location = r.headers()["location"].to_str().unwrap().to_owned();
        let mut ledger = ledger.lock().unwrap();
        ledger.open_uploads.retain(|u| u.1 != location);
        ledger.open_uploads.push((
            repo.to_owned(),
            location.clone(),
            data.to_vec(),
            start + chunk.len(),
        ));
    }
    let r = c
        .put(format!("{location}?digest={d}"))
        .send()
        .map_err(|e| eprintln!("request failed: {e:?}"))?;
    assert_eq!(r.status(), 201, "closing PUT");
    ledger
        .lock()
        .unwrap()
        .open_uploads
        .retain(|u| u.1 != location);
    Ok(Some(d.clone()))
}

fn push_manifest(
    c: &Client,
    base: &str,
    repo: &str,
    mine: &[Digest],
    tag: &str,
    ledger: &Mutex<Ledger>,
) -> Result<Option<Digest>, ()> {
    let Some(layer) = mine.last() else {
        return Ok(None);
    };
    // The empty config must be there too: push it (idempotent) first.
    let config = b"{}";
    let config_digest = Digest::sha256_of(config);
    push_monolithic(c, base, repo, config, &config_digest)?;
    let size = |d: &Digest| {
        c.head(format!("{base}/v2/{repo}/blobs/{d}"))
            .send()
            .map(|r| {
                r.headers()["content-length"]
                    .to_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            })
            .map_err(|e| eprintln!("request failed: {e:?}"))
    };
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config_digest.to_string(), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.to_string(), "size": size(layer)?}],
    })
    .to_string();
    let r = c
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .map_err(|e| eprintln!("request failed: {e:?}"))?;
    assert_eq!(r.status(), 201, "manifest PUT");
    ledger.lock().unwrap().manifests.push((
        repo.to_owned(),
        tag.to_owned(),
        Digest::sha256_of(manifest.as_bytes()),
    ));
    Ok(None)
}

fn verify(server: &Server, ledger: &mut Ledger) {
    let c = Client::new();
    let fetch = |path: &str| c.get(server.url(path)).send().unwrap();
    for (repo, digest) in &ledger.blobs {
        let r = fetch(&format!("/v2/{repo}/blobs/{digest}"));
        assert_eq!(
            r.status(),
            200,
            "acknowledged blob {repo}@{digest} survives"
        );
        assert_eq!(
            &Digest::sha256_of(&r.bytes().unwrap()),
            digest,
            "blob re-hashes"
        );
    }
    for (repo, tag, digest) in &ledger.manifests {
        let r = fetch(&format!("/v2/{repo}/manifests/{tag}"));
        assert_eq!(
            r.status(),
            200,
            "acknowledged manifest {repo}:{tag} survives"
        );
        assert_eq!(&Digest::sha256_of(&r.bytes().unwrap()), digest);
    }
    // Everything visible is whole: every tag's manifest and its references.
    let catalog: serde_json::Value = fetch("/v2/_catalog?n=1000").json().unwrap();
    for repo in catalog["repositories"].as_array().unwrap() {
        let repo = repo.as_str().unwrap();
        let tags: serde_json::Value = fetch(&format!("/v2/{repo}/tags/list?n=1000"))
            .json()
            .unwrap();
        for tag in tags["tags"].as_array().into_iter().flatten() {
            let manifest: serde_json::Value =
                fetch(&format!("/v2/{repo}/manifests/{}", tag.as_str().unwrap()))
                    .json()
                    .unwrap();
            let refs =
                std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().unwrap());
            for descriptor in refs {
                let digest: Digest = descriptor["digest"].as_str().unwrap().parse().unwrap();
                let r = fetch(&format!("/v2/{repo}/blobs/{digest}"));
                assert_eq!(
                    r.status(),
                    200,
                    "{repo}:{tag} refers to {digest}, which must exist"
                );
                assert_eq!(Digest::sha256_of(&r.bytes().unwrap()), digest);
            }
        }
    }
    // Uploads that answered 202 continue from the offset the server reports, or are cleanly unknown.
    for (repo, location, data, acknowledged) in std::mem::take(&mut ledger.open_uploads) {
        // The restarted server listens on another port: keep the path only.
        let path = &location[location.find("/v2/").unwrap()..];
        let location = server.url(path);
        let status = c.get(&location).send().unwrap();
        if status.status() == 404 {
            let body: serde_json::Value = status.json().unwrap();
            assert_eq!(body["errors"][0]["code"], "BLOB_UPLOAD_UNKNOWN");
            continue;
        }
        assert_eq!(status.status(), 204, "upload status of {location}");
        let range = status.headers()["range"].to_str().unwrap();
        let offset: usize = range.trim_start_matches("0-").parse::<usize>().unwrap() + 1;
        assert!(
            offset >= acknowledged,
            "acknowledged bytes of {location} survive ({range})"
        );
        let digest = Digest::sha256_of(&data);
        let mut put = c.put(format!("{location}?digest={digest}"));
        if offset < data.len() {
            put = put
                .header("content-range", format!("{offset}-{}", data.len() - 1))
                .body(data[offset..].to_vec());
        }
        let r = put.send().unwrap();
        let status = r.status();
        assert_eq!(
            status,
            201,
            "the upload {location} continues after the crash (server range {range}, acknowledged {acknowledged} of {}): {}",
            data.len(),
            r.text().unwrap()
        );
        ledger.blobs.push((repo, digest));
    }
}

/// SIGKILL in the middle of a large chunk: what the server had made durable
/// before the kill (its checkpoints, at least every 64 MiB) is kept, and the
/// upload continues from the offset the restarted server reports.
#[test]
fn sigkill_mid_chunk_keeps_the_checkpointed_bytes() {
    use std::io::Write;

    const TOTAL: usize = 160 << 20;
    const SENT: usize = 100 << 20;
    let data = tempfile::tempdir().unwrap();
    let blob = random_bytes(TOTAL, 11);
    let digest = Digest::sha256_of(&blob);
    let client = Client::new();
    let mut server = Server::start_with(data.path(), &["--access-control", "false"]);
    let started = client
        .post(server.url("/v2/e2e/killed/blobs/uploads/"))
        .send()
        .unwrap();
    assert_eq!(started.status(), 202);
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    let path = location[location.find("/v2/").unwrap()..].to_owned();

    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    write!(
        stream,
        "PATCH {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {TOTAL}\r\n\r\n",
        server.addr
    )
    .unwrap();
    stream.write_all(&blob[..SENT]).unwrap();
    // Time for the server to write back and record past the 64 MiB mark.
    std::thread::sleep(Duration::from_secs(2));
    server.kill();
    drop(stream);

    let server = Server::start_with(data.path(), &["--access-control", "false"]);
    let status = client.get(server.url(&path)).send().unwrap();
    assert_eq!(status.status(), 204);
    let range = status.headers()["range"].to_str().unwrap().to_owned();
    let end: usize = range.strip_prefix("0-").unwrap().parse().unwrap();
    let offset = end + 1;
    assert!(
        (64 << 20..=SENT).contains(&offset),
        "the restarted server kept a checkpoint between 64 MiB and the 100 MiB sent: {range}"
    );
    let patched = client
        .patch(server.url(&path))
        .header("content-range", format!("{offset}-{}", TOTAL - 1))
        .body(blob[offset..].to_vec())
        .send()
        .unwrap();
    assert_eq!(patched.status(), 202);
    let closed = client
        .put(format!("{}?digest={digest}", server.url(&path)))
        .send()
        .unwrap();
    assert_eq!(closed.status(), 201, "{}", closed.text().unwrap());
}
