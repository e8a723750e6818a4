//! `berth backup`: a backup taken while clients push is one consistent
//! instant of the registry, a server started on it serves every image its
//! metadata names, and a second backup into the same directory copies only
//! what is new.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_core::digest::Digest;
use reqwest::blocking::Client;

use crate::support::{Cli, Server, random_bytes};

/// Threads pushing at once.
const PUSHERS: u64 = 4;

/// Pushes images to one repository with a token of its own.
struct Pusher {
    client: Client,
    base: String,
    repo: String,
    token: String,
}

impl Pusher {
    fn new(server: &Server, repo: &str) -> Self {
        Self {
            client: Client::new(),
            base: server.url(""),
            repo: repo.to_owned(),
            token: server.admin_token(&format!("repository:{repo}:pull,push")),
        }
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http") {
            location.to_owned()
        } else {
            format!("{}{location}", self.base)
        }
    }

    /// Opens an upload session; its `Location`.
    fn open_upload(&self) -> Result<String, String> {
        let response = self
            .client
            .post(format!("{}/v2/{}/blobs/uploads/", self.base, self.repo))
            .bearer_auth(&self.token)
            .send()
            .map_err(|e| e.to_string())?;
        if response.status() != 202 {
            return Err(format!("POST upload: {}", response.status()));
        }
        let location = response.headers()["location"].to_str().unwrap();
        Ok(self.absolute(location))
    }

    /// A blob in one request (`POST ?digest=`).
    fn monolithic(&self, bytes: &[u8]) -> Result<Digest, String> {
        let digest = Digest::sha256_of(bytes);
        let response = self
            .client
            .post(format!(
                "{}/v2/{}/blobs/uploads/?digest={digest}",
                self.base, self.repo
            ))
            .bearer_auth(&self.token)
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .map_err(|e| e.to_string())?;
        match response.status().as_u16() {
            201 => Ok(digest),
            status => Err(format!("monolithic upload: {status}")),
        }
    }

    /// A blob in two PATCHes and a PUT, so that sessions are open while
    /// the backup runs.
    fn chunked(&self, bytes: &[u8]) -> Result<Digest, String> {
        let digest = Digest::sha256_of(bytes);
        let mut location = self.open_upload()?;
        let half = bytes.len() / 2;
        for (start, part) in [(0, &bytes[..half]), (half, &bytes[half..])] {
            let response = self
                .client
                .patch(&location)
                .bearer_auth(&self.token)
                .header("content-type", "application/octet-stream")
                .header(
                    "content-range",
                    format!("{start}-{}", start + part.len() - 1),
                )
                .body(part.to_vec())
                .send()
                .map_err(|e| e.to_string())?;
            if response.status() != 202 {
                return Err(format!("PATCH: {}", response.status()));
            }
            location = self.absolute(response.headers()["location"].to_str().unwrap());
        }
        let separator = if location.contains('?') { '&' } else { '?' };
        let response = self
            .client
            .put(format!("{location}{separator}digest={digest}"))
            .bearer_auth(&self.token)
            .send()
            .map_err(|e| e.to_string())?;
        match response.status().as_u16() {
            201 => Ok(digest),
            status => Err(format!("closing PUT: {status}")),
        }
    }

    /// An image of a config and one layer of `layer_size` random bytes,
    /// tagged `tag`.
    fn push_image(&self, tag: &str, layer_size: usize, seed: u64) -> Result<(), String> {
        let layer = random_bytes(layer_size, seed);
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"seed":{seed}}}"#
        );
        let config_digest = self.monolithic(config.as_bytes())?;
        let layer_digest = self.chunked(&layer)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest.to_string(),
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest.to_string(),
                "size": layer.len(),
            }],
        })
        .to_string();
        let response = self
            .client
            .put(format!("{}/v2/{}/manifests/{tag}", self.base, self.repo))
            .bearer_auth(&self.token)
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest)
            .send()
            .map_err(|e| e.to_string())?;
        match response.status().as_u16() {
            201 => Ok(()),
            status => Err(format!("manifest PUT: {status}")),
        }
    }
}

/// An image a pusher saw acknowledged, and when.
struct Acked {
    repo: String,
    tag: String,
    at: Instant,
}

/// Every image the server on `server` lists (catalog, then tags), each
/// manifest and blob fetched and re-hashed; the `repo:tag` of each.
fn pull_everything(server: &Server) -> Vec<String> {
    let client = Client::new();
    let catalog = server.get_json("/v2/_catalog?n=1000", "registry:catalog:*");
    let mut images = Vec::new();
    for repo in catalog["repositories"].as_array().unwrap() {
        let repo = repo.as_str().unwrap();
        let token = server.admin_token(&format!("repository:{repo}:pull"));
        let get = |path: String| {
            let response = client
                .get(server.url(&path))
                .bearer_auth(&token)
                .header("accept", "application/vnd.oci.image.manifest.v1+json")
                .send()
                .unwrap();
            assert_eq!(response.status(), 200, "GET {path}");
            let header = response
                .headers()
                .get("docker-content-digest")
                .map(|v| v.to_str().unwrap().to_owned());
            (header, response.bytes().unwrap().to_vec())
        };
        let (_, tags) = get(format!("/v2/{repo}/tags/list?n=1000"));
        let tags: serde_json::Value = serde_json::from_slice(&tags).unwrap();
        for tag in tags["tags"].as_array().unwrap() {
            let tag = tag.as_str().unwrap();
            let (digest, manifest) = get(format!("/v2/{repo}/manifests/{tag}"));
            assert_eq!(
                digest.as_deref(),
                Some(Digest::sha256_of(&manifest).to_string().as_str()),
                "{repo}:{tag}: the manifest re-hashes to its digest"
            );
            let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
            let layers = manifest["layers"].as_array().unwrap();
            for descriptor in std::iter::once(&manifest["config"]).chain(layers) {
                let digest = descriptor["digest"].as_str().unwrap();
                let (_, blob) = get(format!("/v2/{repo}/blobs/{digest}"));
                assert_eq!(
                    Digest::sha256_of(&blob).to_string(),
                    digest,
                    "{repo}:{tag}: blob re-hashes"
                );
                assert_eq!(blob.len() as u64, descriptor["size"].as_u64().unwrap());
            }
            images.push(format!("{repo}:{tag}"));
        }
    }
    images
}

fn backup_json(cli: &Cli, data: &Path, dir: &Path) -> serde_json::Value {
    cli.ok_json(
        &[
            "backup",
            "--data-dir",
            data.to_str().unwrap(),
            dir.to_str().unwrap(),
            "--output",
            "json",
        ],
        b"",
    )
}

/// Four clients push images (distinct blobs; layers in chunked uploads, so
/// sessions are open) for a few seconds while `berth backup` runs. A second
/// server started on the backup serves every image the backup's metadata
/// names (catalog and tags through the API, every manifest and blob fetched
/// and re-hashed): every image acknowledged before the backup started, none
/// acknowledged after it ended; it signs with the same keys and knows no
/// upload session. A second backup into the same directory copies only the
/// blobs pushed since, a third none.
#[test]
fn a_backup_taken_during_pushes_serves_every_image_it_names() {
    let work = tempfile::tempdir().unwrap();
    let (data, dir) = (work.path().join("data"), work.path().join("backup"));
    let server = Server::start(&data);
    let cli = Cli::new(&work.path().join("home"));

    // An abandoned upload: open in the live registry, left out of the backup.
    let abandoned = Pusher::new(&server, "admin/abandoned");
    abandoned.push_image("kept", 4096, 1).unwrap();
    let open_upload = abandoned.open_upload().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<Acked>::new()));
    let pushers: Vec<_> = (0..PUSHERS)
        .map(|w| {
            let pusher = Pusher::new(&server, &format!("admin/pusher{w}"));
            let (stop, acked) = (stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let tag = format!("v{n}");
                    let size = 16 * 1024 + ((w * 7919 + n * 104_729) % (256 * 1024)) as usize;
                    pusher
                        .push_image(&tag, size, (w << 32) | n)
                        .unwrap_or_else(|e| panic!("{}:{tag}: {e}", pusher.repo));
                    acked.lock().unwrap().push(Acked {
                        repo: pusher.repo.clone(),
                        tag,
                        at: Instant::now(),
                    });
                    n += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let backup_started = Instant::now();
    let first = backup_json(&cli, &data, &dir);
    let backup_ended = Instant::now();
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::SeqCst);
    for pusher in pushers {
        pusher.join().unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    eprintln!(
        "backup during pushes: {first}; {} images pushed in all, backup took {:.2} s",
        acked.len(),
        (backup_ended - backup_started).as_secs_f64()
    );
    assert!(
        first["uploadSessionsLeftOut"].as_u64().unwrap() >= 1,
        "{first}"
    );
    assert_eq!(first["keysCopied"], true);
    assert_eq!(
        first["blobs"]["copied"].as_u64().unwrap() + first["blobs"]["existing"].as_u64().unwrap(),
        first["blobs"]["total"].as_u64().unwrap()
    );

    let restored = Server::start(&dir);
    let images = pull_everything(&restored);
    assert_eq!(
        images.len() as u64,
        first["tags"].as_u64().unwrap(),
        "every tag the backup's metadata names is served"
    );
    assert_eq!(images.len() as u64, first["manifests"].as_u64().unwrap());
    assert!(images.contains(&"admin/abandoned:kept".to_owned()));
    for image in &acked {
        let name = format!("{}:{}", image.repo, image.tag);
        if image.at < backup_started {
            assert!(
                images.contains(&name),
                "{name}, acknowledged before the backup, is in it"
            );
        }
        if image.at > backup_ended {
            assert!(
                !images.contains(&name),
                "{name}, acknowledged after the backup, is not in it"
            );
        }
    }
    assert!(
        images.len() > 1 + PUSHERS as usize,
        "the pushers made progress before the backup ({} images)",
        images.len()
    );
    // Same keys: the token service publishes the same signing keys.
    let jwks = |s: &Server| {
        Client::new()
            .get(s.url("/token/jwks.json"))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    assert_eq!(jwks(&restored), jwks(&server));
    // No upload session came along.
    let path = open_upload.split_once("/v2/").unwrap().1;
    let status = Client::new()
        .get(restored.url(&format!("/v2/{path}")))
        .bearer_auth(restored.admin_token("repository:admin/abandoned:pull,push"))
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 404, "the open upload is not in the backup");

    // A server runs on the backup: backing up into it is refused.
    let stderr = cli.fails_with_empty_stdout(
        &[
            "backup",
            "--data-dir",
            data.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
        b"",
    );
    assert!(stderr.contains("is in use"), "{stderr}");
    let mut restored = restored;
    assert!(restored.terminate().success());

    let second = backup_json(&cli, &data, &dir);
    eprintln!("second backup: {second}");
    let total = |v: &serde_json::Value| v["blobs"]["total"].as_u64().unwrap();
    assert_eq!(second["blobs"]["existing"].as_u64().unwrap(), total(&first));
    assert_eq!(
        second["blobs"]["copied"].as_u64().unwrap(),
        total(&second) - total(&first)
    );
    assert!(
        second["blobs"]["copied"].as_u64().unwrap() > 0,
        "images were pushed after the first backup"
    );
    assert_eq!(second["blobs"]["removed"], 0);
    assert_eq!(second["tags"].as_u64().unwrap(), 1 + acked.len() as u64);

    let third = backup_json(&cli, &data, &dir);
    assert_eq!(third["blobs"]["copied"], 0);
    assert_eq!(third["bytesCopied"], 0);
    assert_eq!(third["blobs"]["existing"].as_u64().unwrap(), total(&second));

    let restored = Server::start(&dir);
    assert_eq!(pull_everything(&restored).len(), 1 + acked.len());
}

/// A stopped server's data directory backs up too, and stays as it was (no
/// file left beside its database); `berth pull` against a server on the
/// backup gives back the pushed files. Without a terminal, progress comes
/// as lines.
#[test]
fn a_backup_of_a_stopped_server_restores_its_files() {
    let work = tempfile::tempdir().unwrap();
    let (data, dir) = (work.path().join("data"), work.path().join("backup"));
    let file = work.path().join("notes.bin");
    std::fs::write(&file, random_bytes(300_000, 7)).unwrap();
    let cli = Cli::admin(&work.path().join("home"));
    let mut server = Server::start(&data);
    let reference = format!("{}/admin/notes:1", server.addr);
    cli.ok(&["push", &reference, file.to_str().unwrap()], b"");
    assert!(server.terminate().success());
    let listing = |d: &Path| {
        let mut names: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    let before = listing(&data);

    let out = cli.ok(
        &[
            "backup",
            "--data-dir",
            data.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
        b"",
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stdout.starts_with(&format!(
            "backed up {} to {}: 1 repository, 1 manifest, 2 blobs: 2 copied",
            data.display(),
            dir.display()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("keys copied"), "{stdout}");
    assert!(stderr.contains("backup: snapshot of"), "{stderr}");
    // Password hashes and signing keys: for the owner's eyes only.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("berth.db")), 0o600);
    assert_eq!(mode(&dir.join("keys/root.key.pem")), 0o600);
    assert!(stderr.contains(") copied"), "a line per blob: {stderr}");
    // Nothing was added (SQLite folds a write-ahead log the server left
    // into the database when the backup's connection, the last, closes).
    let after = listing(&data);
    assert!(
        after.iter().all(|name| before.contains(name)),
        "{before:?} -> {after:?}"
    );

    let restored = Server::start(&dir);
    let reference = format!("{}/admin/notes:1", restored.addr);
    let pulled = work.path().join("pulled");
    cli.ok(&["pull", &reference, pulled.to_str().unwrap()], b"");
    assert_eq!(
        std::fs::read(pulled.join("notes.bin")).unwrap(),
        std::fs::read(&file).unwrap()
    );
}

/// A directory that is not a data directory fails in one line saying what
/// to give instead, and nothing is created; nor does a backup go into a
/// directory holding other files.
#[test]
fn backup_of_a_directory_that_is_not_berths_fails_clearly() {
    let work = tempfile::tempdir().unwrap();
    let cli = Cli::new(&work.path().join("home"));
    let (other, dir) = (work.path().join("other"), work.path().join("backup"));
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), b"not a registry").unwrap();
    let stderr = cli.fails_with_empty_stdout(
        &[
            "backup",
            "--data-dir",
            other.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(
        stderr,
        format!(
            "berth: cannot back up {o} to {d}: {o} is not a berth data directory (it has no \
             berth.db); give the directory `berth serve --data-dir` uses\n",
            o = other.display(),
            d = dir.display()
        )
    );
    assert!(!dir.exists());
    assert!(!other.join("berth.db").exists());

    // A real data directory, into a directory of other files.
    let data = work.path().join("data");
    drop(Server::start(&data));
    let stderr = cli.fails_with_empty_stdout(
        &[
            "backup",
            "--data-dir",
            data.to_str().unwrap(),
            other.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(
        stderr,
        format!(
            "berth: cannot back up {d} to {o}: {o} is not empty and not a berth backup (it holds \
             `notes.txt`); back up into an empty directory or into a previous backup\n",
            d = data.display(),
            o = other.display()
        )
    );
}
