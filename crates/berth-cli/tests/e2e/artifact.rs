//! `berth push` and `berth pull` against the ORAS Python SDK: files pushed by
//! one are pulled byte for byte by the other; a layer title that would leave
//! the directory is refused before anything is written.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_core::digest::Digest;
use serde_json::json;

use crate::oras::python;
use crate::support::{Cli, Server, random_bytes, run};

/// Runs `oras_files.py <args>` in `cwd` with a pull,push token for `repo`.
fn oras(server: &Server, repo: &str, cwd: &Path, args: &[&str]) -> serde_json::Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/oras_files.py");
    let out = run(Command::new(python())
        .arg(script)
        .args(args)
        .env(
            "BERTH_TOKEN",
            server.admin_token(&format!("repository:{repo}:pull,push")),
        )
        .current_dir(cwd));
    serde_json::from_str(out.lines().last().unwrap_or("")).unwrap()
}

#[test]
fn berth_push_is_read_by_oras_and_oras_push_by_berth_pull() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let work = work.path();
    let server = Server::start(data.path());
    let host = server.addr.as_str();
    let cli = Cli::admin(home.path());

    let files: Vec<(&str, Vec<u8>)> = vec![
        ("hello.txt", b"hello from berth\n".to_vec()),
        ("data.bin", random_bytes(3 * 1024 * 1024 + 17, 5)),
        ("notes.md", b"# notes\n".to_vec()),
    ];
    let src = work.join("src");
    std::fs::create_dir_all(&src).unwrap();
    for (name, bytes) in &files {
        std::fs::write(src.join(name), bytes).unwrap();
    }
    let arg = |name: &str| src.join(name).display().to_string();
    let notes = format!("{}:text/markdown", arg("notes.md"));
    let reference = format!("{host}/admin/files:1.0");
    let push = [
        "push",
        &reference,
        &arg("hello.txt"),
        &arg("data.bin"),
        &notes,
        "--artifact-type",
        "application/vnd.e2e.files.v1",
        "--annotation",
        "org.opencontainers.image.description=e2e",
        "--output",
        "json",
    ];
    let pushed = cli.ok_json(&push, b"");
    assert_eq!(pushed["manifestWritten"], true, "{pushed}");
    let digest = pushed["digest"].as_str().unwrap().to_owned();

    // The manifest, as the registry holds it: the OCI 1.1 artifact shape.
    let manifest = server.get_json(
        "/v2/admin/files/manifests/1.0",
        "repository:admin/files:pull",
    );
    let layer = |name: &str, media_type: &str, bytes: &[u8]| {
        json!({
            "mediaType": media_type,
            "digest": Digest::sha256_of(bytes).to_string(),
            "size": bytes.len(),
            "annotations": {"org.opencontainers.image.title": name},
        })
    };
    assert_eq!(
        manifest,
        json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.e2e.files.v1",
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                "size": 2,
                "data": "e30=",
            },
            "layers": [
                layer("hello.txt", "application/vnd.oci.image.layer.v1.tar", &files[0].1),
                layer("data.bin", "application/vnd.oci.image.layer.v1.tar", &files[1].1),
                layer("notes.md", "text/markdown", &files[2].1),
            ],
            "annotations": {"org.opencontainers.image.description": "e2e"},
        })
    );

    // The ORAS SDK pulls berth's push: the same files, byte for byte.
    let pulled = oras(
        &server,
        "admin/files",
        work,
        &["pull", host, "admin/files:1.0", "by-oras"],
    );
    assert_eq!(pulled.as_array().unwrap().len(), 3, "{pulled}");
    for (name, bytes) in &files {
        assert_eq!(
            &std::fs::read(work.join("by-oras").join(name)).unwrap(),
            bytes,
            "{name}"
        );
    }

    // The same push again writes nothing new.
    let again = cli.ok_json(&push, b"");
    assert_eq!(again["digest"], digest.as_str());
    assert_eq!(again["manifestWritten"], false, "{again}");
    assert!(
        again["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["outcome"] == "existed"),
        "{again}"
    );

    // The ORAS SDK pushes; berth pulls the files back.
    let oras_src = work.join("oras-src");
    std::fs::create_dir_all(&oras_src).unwrap();
    let theirs: Vec<(&str, Vec<u8>)> = vec![
        ("one.txt", b"from oras\n".to_vec()),
        ("two.json", br#"{"a":1}"#.to_vec()),
        ("big.bin", random_bytes(1024 * 1024, 9)),
    ];
    for (name, bytes) in &theirs {
        std::fs::write(oras_src.join(name), bytes).unwrap();
    }
    oras(
        &server,
        "admin/files",
        &oras_src,
        &[
            "push",
            host,
            "admin/files:oras",
            "one.txt",
            "two.json:application/json",
            "big.bin",
        ],
    );
    let into = work.join("by-berth");
    let out = cli.ok(
        &[
            "pull",
            &format!("{host}/admin/files:oras"),
            &into.display().to_string(),
        ],
        b"",
    );
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(
        said.starts_with(&format!("pulled {host}/admin/files:oras@sha256:")),
        "{said}"
    );
    assert!(said.contains("3 files"), "{said}");
    let progress = String::from_utf8(out.stderr).unwrap();
    assert!(progress.contains("pull: 1 manifest, 3 blobs"), "{progress}");
    for (name, bytes) in &theirs {
        let path = into.join(name);
        assert!(said.contains(&path.display().to_string()), "{said}");
        assert_eq!(&std::fs::read(&path).unwrap(), bytes, "{name}");
    }
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&into).unwrap().count(), 3);

    // JSON names each file and where it went.
    let report = cli.ok_json(
        &[
            "pull",
            &format!("{host}/admin/files:oras"),
            &into.display().to_string(),
            "--output",
            "json",
            "-q",
        ],
        b"",
    );
    let files = report["files"].as_array().unwrap();
    assert_eq!(files[1]["title"], "two.json");
    assert_eq!(files[1]["mediaType"], "application/json");
    assert_eq!(
        files[1]["path"],
        into.join("two.json").display().to_string()
    );
}

/// A manifest whose layer titles are `titles`, pushed with `berth blob put`
/// and `berth manifest put` to `host/admin/evil:<tag>`.
fn hostile(cli: &Cli, host: &str, work: &Path, tag: &str, titles: &[&str]) {
    let blob = work.join("blob.txt");
    std::fs::write(&blob, b"payload").unwrap();
    let empty = work.join("empty.json");
    std::fs::write(&empty, b"{}").unwrap();
    let repo = format!("{host}/admin/evil");
    for file in [&blob, &empty] {
        cli.ok(&["blob", "put", &repo, &file.display().to_string()], b"");
    }
    let layers: Vec<_> = titles
        .iter()
        .map(|title| {
            json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": Digest::sha256_of(b"payload").to_string(),
                "size": 7,
                "annotations": {"org.opencontainers.image.title": title},
            })
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.e2e.evil",
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": Digest::sha256_of(b"{}").to_string(),
            "size": 2,
        },
        "layers": layers,
    });
    let path = work.join(format!("manifest-{tag}.json"));
    std::fs::write(&path, manifest.to_string()).unwrap();
    cli.ok(
        &[
            "manifest",
            "put",
            &format!("{repo}:{tag}"),
            &path.display().to_string(),
        ],
        b"",
    );
}

#[test]
fn pull_refuses_a_title_that_leaves_the_directory() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let work = work.path();
    let server = Server::start(data.path());
    let host = server.addr.as_str();
    let cli = Cli::admin(home.path());

    let cases = [
        ("up", "../escape.txt", "not a plain file name"),
        ("abs", "/tmp/berth-e2e-escape.txt", "absolute path"),
        ("sub", "sub/file.txt", "path separator"),
    ];
    for (tag, title, reason) in cases {
        // A harmless layer first: nothing at all may be written.
        hostile(&cli, host, work, tag, &["ok.txt", title]);
        let into = work.join("out").join(tag);
        let err = cli.fails_with_empty_stdout(
            &[
                "pull",
                &format!("{host}/admin/evil:{tag}"),
                &into.display().to_string(),
            ],
            b"",
        );
        assert!(err.starts_with("berth: cannot pull "), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(&format!("`{title}`")), "{err}");
        assert!(err.contains(reason), "{err}");
        assert!(!into.exists(), "nothing written: {}", into.display());
    }
    assert!(!work.join("out/escape.txt").exists());
    assert!(!Path::new("/tmp/berth-e2e-escape.txt").exists());

    // Two layers with one title: refused too (one would replace the other).
    hostile(&cli, host, work, "twice", &["same.txt", "same.txt"]);
    let into = work.join("out/twice").display().to_string();
    let err = cli.fails(&["pull", &format!("{host}/admin/evil:twice"), &into], b"");
    assert!(err.contains("two layers are titled `same.txt`"), "{err}");
}
