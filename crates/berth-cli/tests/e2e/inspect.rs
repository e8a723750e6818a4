//! `berth inspect` against a real `berth serve`: an index with two
//! platforms, one platform's image with its layers and config, and an
//! artifact pushed with `berth push`.

use std::path::Path;

use berth_core::digest::Digest;
use serde_json::json;

use crate::support::{Cli, Server};

/// Uploads `bytes` as a blob of `repo` (through a file in `work`).
fn blob(cli: &Cli, repo: &str, work: &Path, name: &str, bytes: &[u8]) -> Digest {
    let path = work.join(name);
    std::fs::write(&path, bytes).unwrap();
    cli.ok(&["blob", "put", repo, &path.display().to_string()], b"");
    Digest::sha256_of(bytes)
}

/// Puts `manifest` under `reference`.
fn manifest(cli: &Cli, reference: &str, work: &Path, name: &str, manifest: &serde_json::Value) {
    let path = work.join(name);
    std::fs::write(&path, manifest.to_string()).unwrap();
    cli.ok(
        &["manifest", "put", reference, &path.display().to_string()],
        b"",
    );
}

#[test]
fn inspect_shows_platforms_layers_config_and_annotations() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let work = work.path();
    let server = Server::start(data.path());
    let host = server.addr.as_str();
    let cli = Cli::admin(home.path());
    let repo = format!("{host}/admin/app");

    let config = json!({
        "created": "2025-01-02T03:04:05Z",
        "architecture": "arm64",
        "variant": "v8",
        "os": "linux",
        "config": {
            "Entrypoint": ["/bin/app"],
            "Cmd": ["--serve"],
            "Env": ["PATH=/usr/bin", "MODE=prod"],
            "WorkingDir": "/srv",
            "User": "1000:1000",
            "Labels": {"org.opencontainers.image.version": "1.2.3"},
            "ExposedPorts": {"8080/tcp": {}},
        },
        "rootfs": {"type": "layers", "diff_ids": []},
    })
    .to_string();
    let config_digest = blob(&cli, &repo, work, "config.json", config.as_bytes());
    let layer_a = blob(&cli, &repo, work, "a.bin", &[1u8; 3000]);
    let layer_b = blob(&cli, &repo, work, "b.bin", &[2u8; 1000]);
    let image = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest.to_string(),
            "size": config.len(),
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_a.to_string(), "size": 3000},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_b.to_string(), "size": 1000},
        ],
        "annotations": {"org.opencontainers.image.source": "https://example.com/app"},
    })
    .to_string();
    let image_digest = Digest::sha256_of(image.as_bytes());
    manifest(
        &cli,
        &format!("{repo}@{image_digest}"),
        work,
        "image.json",
        &serde_json::from_str(&image).unwrap(),
    );
    // An amd64 entry that is the same image: enough for the index.
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": image_digest.to_string(),
             "size": image.len(), "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": image_digest.to_string(),
             "size": image.len(), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        ],
        "annotations": {"org.opencontainers.image.ref.name": "1.0"},
    });
    manifest(&cli, &format!("{repo}:1.0"), work, "index.json", &index);
    let index_digest = Digest::sha256_of(index.to_string().as_bytes());

    // The index: its platforms, no image until one is picked.
    let whole = cli.ok_json(
        &["inspect", &format!("{repo}:1.0"), "--output", "json"],
        b"",
    );
    assert_eq!(whole["digest"], index_digest.to_string());
    assert_eq!(whole["reference"], format!("{repo}:1.0@{index_digest}"));
    assert_eq!(
        whole["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        whole["annotations"]["org.opencontainers.image.ref.name"],
        "1.0"
    );
    let platforms: Vec<&str> = whole["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8"]);
    assert_eq!(whole["image"], serde_json::Value::Null);
    let text = cli.ok_text(&["inspect", &format!("{repo}:1.0")], b"");
    assert!(text.contains("Platforms:"), "{text}");
    assert!(text.contains("linux/arm64/v8"), "{text}");
    assert!(text.contains("--platform"), "{text}");

    // One platform: layers with sizes and their total, the config.
    let arm = cli.ok_json(
        &[
            "inspect",
            &format!("{repo}:1.0"),
            "--platform",
            "linux/arm64",
            "--output",
            "json",
        ],
        b"",
    );
    let picked = &arm["image"];
    assert_eq!(picked["digest"], image_digest.to_string());
    assert_eq!(picked["platform"], "linux/arm64/v8");
    assert_eq!(picked["layersSize"], 4000);
    assert_eq!(picked["layers"][0]["size"], 3000);
    assert_eq!(picked["layers"][1]["digest"], layer_b.to_string());
    assert_eq!(
        picked["annotations"]["org.opencontainers.image.source"],
        "https://example.com/app"
    );
    assert_eq!(
        picked["config"],
        json!({
            "digest": config_digest.to_string(),
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": config.len(),
            "created": "2025-01-02T03:04:05Z",
            "os": "linux",
            "architecture": "arm64",
            "variant": "v8",
            "entrypoint": ["/bin/app"],
            "cmd": ["--serve"],
            "env": ["PATH=/usr/bin", "MODE=prod"],
            "workingDir": "/srv",
            "user": "1000:1000",
            "labels": {"org.opencontainers.image.version": "1.2.3"},
            "exposedPorts": ["8080/tcp"],
        })
    );
    let text = cli.ok_text(
        &[
            "inspect",
            &format!("{repo}:1.0"),
            "--platform",
            "linux/arm64",
        ],
        b"",
    );
    for expected in [
        "Layers:        2 layers, 3.9 KiB in all",
        "Created:       2025-01-02T03:04:05Z",
        "Platform:      linux/arm64/v8",
        r#"Entrypoint:    ["/bin/app"]"#,
        "Env:           PATH=/usr/bin",
        "Working dir:   /srv",
        "User:          1000:1000",
        "Labels:        org.opencontainers.image.version=1.2.3",
    ] {
        assert!(text.contains(expected), "{expected:?} in:\n{text}");
    }
    let err = cli.fails(
        &[
            "inspect",
            &format!("{repo}:1.0"),
            "--platform",
            "linux/s390x",
        ],
        b"",
    );
    assert!(err.contains("linux/amd64, linux/arm64/v8"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // An artifact pushed with berth push: its type and file names.
    let file = work.join("readme.txt");
    std::fs::write(&file, b"read me").unwrap();
    cli.ok(
        &[
            "push",
            &format!("{host}/admin/docs:1"),
            &file.display().to_string(),
            "-q",
        ],
        b"",
    );
    let docs = cli.ok_json(
        &[
            "inspect",
            &format!("{host}/admin/docs:1"),
            "--output",
            "json",
        ],
        b"",
    );
    assert_eq!(docs["artifactType"], "application/vnd.unknown.artifact.v1");
    assert_eq!(docs["image"]["layers"][0]["title"], "readme.txt");
    assert_eq!(
        docs["image"]["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(docs["image"]["config"]["env"], json!([]));
}
