//! `berth copy` as a user runs it: the real binary between real `berth serve`
//! processes and OCI layout directories, with skopeo (Debian) writing and
//! reading the layouts on the other side. Credentials come from
//! `BERTH_USERNAME`/`BERTH_PASSWORD` (both test servers share the admin
//! password).

use std::path::Path;

use berth_core::digest::Digest;
use serde_json::{Value, json};

use crate::support::{
    Cli, Layout, Server, admin_creds, skopeo, skopeo_pull, skopeo_push, write_layout,
};

/// The digest of the manifest bytes `skopeo inspect --raw` gets for `image`.
fn skopeo_raw_digest(image: &str) -> Digest {
    let out = skopeo()
        .args(["inspect", "--raw", "--tls-verify=false", "--creds"])
        .arg(admin_creds())
        .arg(format!("docker://{image}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect --raw {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Digest::sha256_of(&out.stdout)
}

/// The entries of a layout's `index.json`.
fn layout_entries(dir: &Path) -> Vec<Value> {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["manifests"].as_array().unwrap().clone()
}

/// The size of each blob of `layout`, summed.
fn blob_bytes(layout: &Layout) -> u64 {
    layout
        .blobs
        .iter()
        .map(|d| {
            std::fs::metadata(layout.dir.join("blobs/sha256").join(d.hex()))
                .unwrap()
                .len()
        })
        .sum()
}

#[test]
fn skopeo_and_berth_read_each_others_layouts() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let cli = Cli::admin(home.path());
    let server = Server::start(data.path());
    let host = server.addr.as_str();
    let layout = write_layout(&work.path().join("src"), "v1", 512 * 1024, 41);
    skopeo_push(&layout.dir, "v1", &format!("{host}/e2e/a:v1"));

    // berth writes a layout...
    let berth_dir = work.path().join("by-berth");
    cli.ok_text(
        &[
            "copy",
            &format!("{host}/e2e/a:v1"),
            &format!("oci:{}:v1", berth_dir.display()),
        ],
        b"",
    );
    let entries = layout_entries(&berth_dir);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["digest"], layout.manifest.to_string());
    assert_eq!(
        entries[0]["annotations"]["org.opencontainers.image.ref.name"],
        "v1"
    );
    for digest in layout.blobs.iter().chain([&layout.manifest]) {
        let bytes = std::fs::read(berth_dir.join("blobs/sha256").join(digest.hex())).unwrap();
        assert_eq!(Digest::sha256_of(&bytes), *digest);
    }
    // ...that skopeo reads: the same manifest, byte for byte.
    skopeo_push(&berth_dir, "v1", &format!("{host}/e2e/b:v1"));
    let a = skopeo_raw_digest(&format!("{host}/e2e/a:v1"));
    let b = skopeo_raw_digest(&format!("{host}/e2e/b:v1"));
    assert_eq!(a, layout.manifest);
    assert_eq!(b, a);

    // skopeo writes a layout that berth reads.
    let skopeo_dir = work.path().join("by-skopeo");
    skopeo_pull(&format!("{host}/e2e/a:v1"), &skopeo_dir, "v1");
    let out = cli.ok_text(
        &[
            "copy",
            &format!("oci:{}:v1", skopeo_dir.display()),
            &format!("{host}/e2e/c:v1"),
            "-q",
        ],
        b"",
    );
    assert!(out.contains(&layout.manifest.to_string()), "{out}");
    let digest = cli.ok_text(&["digest", &format!("{host}/e2e/c:v1")], b"");
    assert_eq!(digest, format!("{}\n", layout.manifest));
    assert_eq!(
        skopeo_raw_digest(&format!("{host}/e2e/c:v1")),
        layout.manifest
    );
}

#[test]
fn copy_between_two_servers_prints_json_keeps_the_tag_and_shows_progress() {
    let (data1, data2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let cli = Cli::admin(home.path());
    let (one, two) = (Server::start(data1.path()), Server::start(data2.path()));
    let layout = write_layout(&work.path().join("src"), "v1", 300 * 1024, 42);
    skopeo_push(&layout.dir, "v1", &format!("{}/e2e/a:v1", one.addr));
    let source = format!("{}/e2e/a:v1", one.addr);
    // No tag on the destination: it takes the source's.
    let destination = format!("{}/e2e/a", two.addr);

    let out = cli.ok(&["copy", &source, &destination, "--output", "json"], b"");
    let err = String::from_utf8(out.stderr).unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["digest"], layout.manifest.to_string());
    assert_eq!(
        report["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(report["source"], source);
    assert_eq!(report["destination"], format!("{destination}:v1"));
    assert_eq!(
        report["blobs"],
        json!({"copied": 2, "mounted": 0, "existing": 0})
    );
    assert_eq!(
        report["manifests"],
        json!({"copied": 1, "existing": 0, "referrers": 0})
    );
    assert_eq!(report["bytesCopied"], blob_bytes(&layout));

    // Without a terminal: a plan line, one line per blob and per manifest.
    assert!(
        err.lines()
            .any(|l| l.starts_with("copy: 1 manifest, 2 blobs (")),
        "{err}"
    );
    for blob in &layout.blobs {
        let line = format!("copy: blob {blob} (");
        let found: Vec<&str> = err.lines().filter(|l| l.starts_with(&line)).collect();
        assert_eq!(found.len(), 1, "{err}");
        assert!(found[0].ends_with(") copied"), "{err}");
    }
    assert!(
        err.lines()
            .any(|l| l == format!("copy: manifest {} written", layout.manifest)),
        "{err}"
    );

    let tags = cli.ok_text(&["tags", &destination], b"");
    assert_eq!(tags, "v1\n");
    let digest = cli.ok_text(&["digest", &format!("{destination}:v1")], b"");
    assert_eq!(digest, format!("{}\n", layout.manifest));

    // Again, quietly: nothing on stderr, everything already there.
    let out = cli.ok(
        &["copy", &source, &destination, "--output", "json", "-q"],
        b"",
    );
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["blobs"],
        json!({"copied": 0, "mounted": 0, "existing": 2})
    );
    assert_eq!(
        report["manifests"],
        json!({"copied": 0, "existing": 1, "referrers": 0})
    );
    assert_eq!(report["bytesCopied"], 0);

    // Within one server, to another repository: mounted, not sent.
    let report = cli.ok_json(
        &[
            "copy",
            &source,
            &format!("{}/e2e/mounted:v2", one.addr),
            "--output",
            "json",
            "-q",
        ],
        b"",
    );
    assert_eq!(
        report["blobs"],
        json!({"copied": 0, "mounted": 2, "existing": 0})
    );
}

/// Pushes an index of two images (linux/amd64 and linux/arm64/v8, pushed
/// with skopeo from two layouts) as `host/e2e/multi:v1`; returns the
/// digests of the amd64 image, the arm64 image and the index.
fn push_index(server: &Server, work: &Path) -> (Digest, Digest, Digest) {
    let host = server.addr.as_str();
    let amd64 = write_layout(&work.join("amd64"), "v1", 64 * 1024, 51);
    let arm64 = write_layout(&work.join("arm64"), "v1", 64 * 1024, 52);
    skopeo_push(&amd64.dir, "v1", &format!("{host}/e2e/multi:amd64"));
    skopeo_push(&arm64.dir, "v1", &format!("{host}/e2e/multi:arm64"));
    let entry = |layout: &Layout, platform: Value| {
        let size = std::fs::metadata(layout.dir.join("blobs/sha256").join(layout.manifest.hex()))
            .unwrap()
            .len();
        json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": layout.manifest.to_string(),
            "size": size,
            "platform": platform,
        })
    };
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            entry(&amd64, json!({"os": "linux", "architecture": "amd64"})),
            entry(&arm64, json!({"os": "linux", "architecture": "arm64", "variant": "v8"})),
        ],
    })
    .to_string();
    let response = reqwest::blocking::Client::new()
        .put(server.url("/v2/e2e/multi/manifests/v1"))
        .bearer_auth(server.admin_token("repository:e2e/multi:pull,push"))
        .header("content-type", "application/vnd.oci.image.index.v1+json")
        .body(index.clone())
        .send()
        .unwrap();
    assert_eq!(response.status(), 201, "index pushed");
    (
        amd64.manifest,
        arm64.manifest,
        Digest::sha256_of(index.as_bytes()),
    )
}

#[test]
fn platform_selection_on_an_image_and_on_an_index() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let cli = Cli::admin(home.path());
    let server = Server::start(data.path());
    let host = server.addr.as_str();

    // A single-platform image: --platform does not apply, and the image is
    // copied as it is (whatever its own platform; berth prints no note).
    let layout = write_layout(&work.path().join("single"), "v1", 64 * 1024, 50);
    skopeo_push(&layout.dir, "v1", &format!("{host}/e2e/single:v1"));
    let report = cli.ok_json(
        &[
            "copy",
            &format!("{host}/e2e/single:v1"),
            &format!("{host}/e2e/single-copy:v1"),
            "--platform",
            "linux/s390x",
            "--output",
            "json",
        ],
        b"",
    );
    assert_eq!(report["digest"], layout.manifest.to_string());
    let digest = cli.ok_text(&["digest", &format!("{host}/e2e/single-copy:v1")], b"");
    assert_eq!(digest, format!("{}\n", layout.manifest));

    // An index: one platform is copied alone, under the tag.
    let (amd64, arm64, index) = push_index(&server, work.path());
    let report = cli.ok_json(
        &[
            "copy",
            &format!("{host}/e2e/multi:v1"),
            &format!("{host}/e2e/arm:v1"),
            "--platform",
            "linux/arm64",
            "--output",
            "json",
            "-q",
        ],
        b"",
    );
    assert_eq!(report["digest"], arm64.to_string());
    assert_eq!(report["manifests"]["copied"], 1);
    let digest = cli.ok_text(&["digest", &format!("{host}/e2e/arm:v1")], b"");
    assert_eq!(digest, format!("{arm64}\n"));
    let err = cli.fails_with_empty_stdout(&["digest", &format!("{host}/e2e/arm@{amd64}")], b"");
    assert!(err.contains("not found"), "{err}");

    // The whole index otherwise.
    let report = cli.ok_json(
        &[
            "copy",
            &format!("{host}/e2e/multi:v1"),
            &format!("{host}/e2e/all:v1"),
            "--output",
            "json",
            "-q",
        ],
        b"",
    );
    assert_eq!(report["digest"], index.to_string());
    assert_eq!(report["manifests"]["copied"], 3);

    // A platform the index lacks: exit 1, naming those it has; nothing written.
    let err = cli.fails_with_empty_stdout(
        &[
            "copy",
            &format!("{host}/e2e/multi:v1"),
            &format!("{host}/e2e/none:v1"),
            "--platform",
            "linux/s390x",
        ],
        b"",
    );
    assert!(err.starts_with("berth: cannot copy "), "{err}");
    assert!(
        err.contains("has no image for linux/s390x (it has: linux/amd64, linux/arm64/v8)"),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("berth:")).count(),
        1,
        "{err}"
    );
    let err = cli.fails_with_empty_stdout(&["digest", &format!("{host}/e2e/none:v1")], b"");
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn a_missing_source_exits_1_saying_not_found() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let cli = Cli::admin(home.path());
    let server = Server::start(data.path());
    let host = server.addr.as_str();

    let err = cli.fails_with_empty_stdout(
        &[
            "copy",
            &format!("{host}/e2e/nothing:v1"),
            &format!("{host}/e2e/copy:v1"),
        ],
        b"",
    );
    assert!(
        err.starts_with(&format!(
            "berth: cannot copy {host}/e2e/nothing:v1 to {host}/e2e/copy:v1: "
        )),
        "{err}"
    );
    assert!(err.contains("not found"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // A layout directory that does not exist: also exit 1, naming it.
    let missing = work.path().join("no-such-layout");
    let err = cli.fails_with_empty_stdout(
        &[
            "copy",
            &format!("oci:{}:v1", missing.display()),
            &format!("{host}/e2e/copy:v1"),
        ],
        b"",
    );
    assert!(err.contains(&missing.display().to_string()), "{err}");

    // A destination directory that holds other files is not made a layout.
    let busy = work.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), "mine").unwrap();
    let layout = write_layout(&work.path().join("src"), "v1", 4096, 44);
    let err = cli.fails_with_empty_stdout(
        &[
            "copy",
            &format!("oci:{}:v1", layout.dir.display()),
            &format!("oci:{}:v1", busy.display()),
        ],
        b"",
    );
    assert!(err.contains(&busy.display().to_string()), "{err}");
    let left: Vec<_> = std::fs::read_dir(&busy)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["notes.txt"], "nothing written into it");
}

#[test]
fn a_source_by_digest_and_a_layout_without_a_tag() {
    let (data1, data2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let cli = Cli::admin(home.path());
    let (one, two) = (Server::start(data1.path()), Server::start(data2.path()));
    let layout = write_layout(&work.path().join("src"), "v1", 128 * 1024, 43);
    skopeo_push(&layout.dir, "v1", &format!("{}/e2e/a:v1", one.addr));
    let digest = layout.manifest.to_string();

    // By digest only, to a repository without a tag: written by digest only.
    let pinned = format!("{}/e2e/a@{digest}", one.addr);
    let report = cli.ok_json(
        &[
            "copy",
            &pinned,
            &format!("{}/e2e/pinned", two.addr),
            "--output",
            "json",
            "-q",
        ],
        b"",
    );
    assert_eq!(report["digest"], digest);
    assert_eq!(
        report["destination"],
        format!("{}/e2e/pinned@{digest}", two.addr)
    );
    let tags = cli.ok_text(&["tags", &format!("{}/e2e/pinned", two.addr)], b"");
    assert_eq!(tags, "", "no tag written");
    let got = cli.ok_text(
        &["digest", &format!("{}/e2e/pinned@{digest}", two.addr)],
        b"",
    );
    assert_eq!(got, format!("{digest}\n"));

    // docker:// prefixes, as skopeo writes them, are accepted on both sides.
    cli.ok_text(
        &[
            "copy",
            &format!("docker://{}/e2e/a:v1", one.addr),
            &format!("docker://{}/e2e/prefixed:v1", two.addr),
            "-q",
        ],
        b"",
    );
    let got = cli.ok_text(&["digest", &format!("{}/e2e/prefixed:v1", two.addr)], b"");
    assert_eq!(got, format!("{digest}\n"));

    // To a layout named without a tag: the entry takes the source's tag.
    let dir = work.path().join("untagged");
    cli.ok_text(
        &[
            "copy",
            &format!("{}/e2e/a:v1", one.addr),
            &format!("oci:{}", dir.display()),
            "-q",
        ],
        b"",
    );
    let entries = layout_entries(&dir);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["digest"], digest);
    assert_eq!(
        entries[0]["annotations"]["org.opencontainers.image.ref.name"],
        "v1"
    );

    // Chunked on request: the same manifest arrives.
    let report = cli.ok_json(
        &[
            "copy",
            &format!("oci:{}:v1", dir.display()),
            &format!("{}/e2e/chunked:v1", two.addr),
            "--chunk-size",
            "50000",
            "--jobs",
            "1",
            "--output",
            "json",
            "-q",
        ],
        b"",
    );
    assert_eq!(report["digest"], digest);
    assert_eq!(report["blobs"]["copied"], 2);
    assert_eq!(
        skopeo_raw_digest(&format!("{}/e2e/chunked:v1", two.addr)),
        layout.manifest
    );
}

#[test]
fn bad_arguments_are_usage_errors() {
    let home = tempfile::tempdir().unwrap();
    let cli = Cli::admin(home.path());
    for args in [
        [
            "copy",
            "127.0.0.1:9/a:v1",
            "127.0.0.1:9/b:v1",
            "--jobs",
            "0",
        ],
        [
            "copy",
            "127.0.0.1:9/a:v1",
            "127.0.0.1:9/b:v1",
            "--jobs",
            "65",
        ],
        [
            "copy",
            "127.0.0.1:9/a:v1",
            "127.0.0.1:9/b:v1",
            "--platform",
            "linux",
        ],
    ] {
        let out = cli.run(&args, b"");
        assert_eq!(
            out.status.code(),
            Some(2),
            "berth {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `--chunk-size 0` is a usage error (exit 2, as `--jobs 0` is), refused
/// before any I/O: the destination layout must not be created.
#[test]
fn chunk_size_zero_is_a_usage_error_refused_before_any_io() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let cli = Cli::admin(home.path());
    let dir = work.path().join("made-anyway");
    let destination = format!("oci:{}:v1", dir.display());
    let args = [
        "copy",
        "127.0.0.1:9/a:v1",
        &destination,
        "--chunk-size",
        "0",
    ];
    let out = cli.run(&args, b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--chunk-size"), "{stderr}");
    assert!(
        !dir.exists(),
        "the layout was created before the arguments were checked"
    );
    assert_eq!(out.status.code(), Some(2), "{stderr}");
}
