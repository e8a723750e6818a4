//! `berth manifest get|put|delete` and `berth blob get|put|delete` against a
//! real `berth serve`, as `admin` through BERTH_USERNAME/BERTH_PASSWORD.

use std::path::Path;

use berth_core::digest::Digest;
use serde_json::{Value, json};

use crate::support::{Cli, Server, random_bytes};

/// `berth` as `admin`, with no credentials file in reach and its spool files
/// under `home`, where a test can see that none is left behind.
fn berth(home: &Path) -> Cli {
    Cli::admin(home).env("TMPDIR", home)
}

/// Runs `berth <args>`, which must exit 1 with one line on stderr: that line.
fn fails_in_one_line(cli: &Cli, args: &[&str], stdin: &[u8]) -> String {
    let err = cli.fails(args, stdin);
    assert!(err.starts_with("berth: "), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn blob_put_get_and_delete() {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let cli = berth(home);
    let server = Server::start(data.path());
    let repo = format!("{}/e2e/blobs", server.addr);

    // A 5 MB file: one PUT, then downloaded to a file.
    let big = random_bytes(5 * 1024 * 1024 + 3, 31);
    let digest = Digest::sha256_of(&big).to_string();
    let file = home.join("big.bin");
    std::fs::write(&file, &big).unwrap();
    let file = file.to_str().unwrap();
    assert_eq!(
        cli.ok_text(&["blob", "put", &repo, file], b""),
        format!("{digest}\n")
    );
    let pinned = format!("{repo}@{digest}");
    let copy = home.join("copy.bin");
    let copy_arg = copy.to_str().unwrap();
    assert!(
        cli.ok(&["blob", "get", &pinned, "-o", copy_arg], b"")
            .stdout
            .is_empty()
    );
    assert!(std::fs::read(&copy).unwrap() == big, "the bytes round-trip");
    assert!(!home.join("copy.bin.partial").exists());

    // Again: the registry has it.
    let again = cli.ok_json(&["blob", "put", &repo, file, "--output", "json"], b"");
    assert_eq!(
        again,
        json!({"digest": digest, "size": big.len(), "pushed": "existed"})
    );

    // From stdin (spooled, then removed), back to stdout.
    let small = random_bytes(300_000, 32);
    let small_digest = Digest::sha256_of(&small).to_string();
    let said = cli.ok_json(&["blob", "put", &repo, "--output", "json"], &small);
    assert_eq!(
        said,
        json!({"digest": small_digest, "size": small.len(), "pushed": "uploaded"})
    );
    let spooled: Vec<_> = std::fs::read_dir(home)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".spool"))
        .collect();
    assert!(spooled.is_empty(), "the spool file is removed: {spooled:?}");
    let back = cli
        .ok(&["blob", "get", &format!("{repo}@{small_digest}")], b"")
        .stdout;
    assert!(back == small, "stdout carries the exact bytes");

    // Chunks on request.
    let chunked = random_bytes(2_500_000, 33);
    let chunked_digest = Digest::sha256_of(&chunked).to_string();
    let said = cli.ok_json(
        &[
            "blob",
            "put",
            &repo,
            "-",
            "--chunk-size",
            "1048576",
            "--output",
            "json",
        ],
        &chunked,
    );
    assert_eq!(said["pushed"], "chunked");
    assert_eq!(said["digest"], chunked_digest.as_str());
    let back = cli
        .ok(&["blob", "get", &format!("{repo}@{chunked_digest}")], b"")
        .stdout;
    assert!(back == chunked);

    // A digest in REF is checked before anything is sent.
    let err = fails_in_one_line(
        &cli,
        &["blob", "put", &format!("{repo}@{small_digest}"), file],
        b"",
    );
    assert!(err.contains("nothing uploaded"), "{err}");

    // Delete; then it is gone, and no partial file is left behind.
    assert_eq!(
        cli.ok_text(&["blob", "delete", &pinned], b""),
        format!("deleted {pinned}\n")
    );
    let gone = home.join("gone.bin");
    let err = fails_in_one_line(
        &cli,
        &["blob", "get", &pinned, "-o", gone.to_str().unwrap()],
        b"",
    );
    assert!(err.contains("not found"), "{err}");
    assert!(!gone.exists() && !home.join("gone.bin.partial").exists());

    // Usage: a blob needs a digest.
    let out = cli.run(&["blob", "get", &repo], b"");
    assert_eq!(out.status.code(), Some(2));
}

/// Pushes `bytes` as a blob of `repo`; its digest.
fn put_blob(cli: &Cli, repo: &str, bytes: &[u8]) -> String {
    let digest = cli.ok_text(&["blob", "put", repo], bytes);
    digest.trim_end().to_owned()
}

/// An OCI image manifest naming `config` and `layer`.
fn image_manifest(config: (&str, usize), layer: (&str, usize), media_type: bool) -> Vec<u8> {
    let mut manifest = json!({
        "schemaVersion": 2,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config.0,
            "size": config.1,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer.0,
            "size": layer.1,
        }],
    });
    if media_type {
        manifest["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
    }
    // Pretty-printed: `get` must hand back these exact bytes, not a re-encoding.
    serde_json::to_vec_pretty(&manifest).unwrap()
}

#[test]
fn manifest_put_get_and_delete() {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let cli = berth(home);
    let server = Server::start(data.path());
    let repo = format!("{}/e2e/manifests", server.addr);
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = random_bytes(40_000, 41);
    let config_digest = put_blob(&cli, &repo, config);
    let layer_digest = put_blob(&cli, &repo, &layer);
    let config = (config_digest.as_str(), config.len());
    let layer = (layer_digest.as_str(), layer.len());

    // From a file, under a tag; back byte for byte.
    let manifest = image_manifest(config, layer, true);
    let digest = Digest::sha256_of(&manifest).to_string();
    let file = home.join("manifest.json");
    std::fs::write(&file, &manifest).unwrap();
    let tagged = format!("{repo}:v1");
    assert_eq!(
        cli.ok_text(&["manifest", "put", &tagged, file.to_str().unwrap()], b""),
        format!("{digest}\n")
    );
    assert!(cli.ok(&["manifest", "get", &tagged], b"").stdout == manifest);
    let described = cli.ok_json(&["manifest", "get", &tagged, "--output", "json"], b"");
    assert_eq!(described["digest"], digest.as_str());
    assert_eq!(
        described["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(described["size"], manifest.len());
    assert_eq!(
        described["manifest"],
        serde_json::from_slice::<Value>(&manifest).unwrap()
    );

    // No mediaType field and no --media-type: refused, saying what to pass.
    let bare = image_manifest(config, layer, false);
    let err = fails_in_one_line(&cli, &["manifest", "put", &format!("{repo}:v2")], &bare);
    assert!(err.contains("--media-type"), "{err}");
    // With it, by digest, from stdin.
    let bare_digest = Digest::sha256_of(&bare).to_string();
    let said = cli.ok_json(
        &[
            "manifest",
            "put",
            &format!("{repo}@{bare_digest}"),
            "--media-type",
            "application/vnd.oci.image.manifest.v1+json",
            "--output",
            "json",
        ],
        &bare,
    );
    assert_eq!(said["digest"], bare_digest.as_str());
    assert_eq!(said["reference"], format!("{repo}@{bare_digest}"));

    // An index of two platforms; --platform picks the child.
    let arm = image_manifest(config, layer, true)
        .into_iter()
        .chain(*b"\n")
        .collect::<Vec<u8>>();
    let arm_digest = Digest::sha256_of(&arm).to_string();
    cli.ok(&["manifest", "put", &format!("{repo}@{arm_digest}")], &arm);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": manifest.len(),
                "platform": {"os": "linux", "architecture": "amd64"},
            },
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": arm_digest,
                "size": arm.len(),
                "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
            },
        ],
    }))
    .unwrap();
    let multi = format!("{repo}:multi");
    cli.ok(&["manifest", "put", &multi], &index);
    assert!(cli.ok(&["manifest", "get", &multi], b"").stdout == index);
    let child = cli
        .ok(
            &["manifest", "get", &multi, "--platform", "linux/arm64"],
            b"",
        )
        .stdout;
    assert!(child == arm, "the arm64 child");
    let err = fails_in_one_line(
        &cli,
        &["manifest", "get", &multi, "--platform", "linux/s390x"],
        b"",
    );
    assert!(err.contains("linux/arm64/v8"), "{err}");

    // Too large: refused before anything is sent.
    let huge = vec![b' '; 4 * 1024 * 1024 + 1];
    let err = fails_in_one_line(&cli, &["manifest", "put", &format!("{repo}:huge")], &huge);
    assert!(err.contains("4 MiB"), "{err}");

    // Delete by tag (as `berth delete`: resolved, deleted by digest with its
    // tags), then it is gone.
    let index_digest = Digest::sha256_of(&index).to_string();
    let said = cli.ok_text(&["manifest", "delete", &multi, "--yes"], b"");
    assert_eq!(said, format!("deleted {repo}@{index_digest} (tag multi)\n"));
    let err = fails_in_one_line(&cli, &["manifest", "get", &multi], b"");
    assert!(err.contains("not found"), "{err}");
}
