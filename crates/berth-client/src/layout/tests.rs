//! Tests of [`Layout`] and [`BlobWriter`] on real directories.

use super::*;
use serde_json::{Value, json};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn new_layout() -> (tempfile::TempDir, Layout) {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::create(&dir.path().join("layout")).unwrap();
    (dir, layout)
}

fn index_json(layout: &Layout) -> Value {
    serde_json::from_slice(&std::fs::read(layout.root().join(INDEX_JSON)).unwrap()).unwrap()
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Stores `content` as a manifest blob and returns its entry.
async fn manifest(layout: &Layout, content: &[u8], tag: Option<&str>) -> LayoutEntry {
    let digest = Digest::sha256_of(content);
    layout.write_blob_bytes(&digest, content).await.unwrap();
    LayoutEntry {
        digest,
        media_type: MANIFEST.to_owned(),
        size: content.len() as u64,
        tag: tag.map(str::to_owned),
    }
}

#[test]
fn create_then_open() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("a/b");
    let layout = Layout::create(&root).unwrap();
    assert_eq!(layout.root(), root);
    assert_eq!(names(&root), ["blobs", "index.json", "oci-layout"]);
    assert_eq!(
        std::fs::read_to_string(root.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    assert_eq!(
        std::fs::read_to_string(root.join("index.json")).unwrap(),
        r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#
    );
    assert_eq!(names(&root.join("blobs")), Vec::<String>::new());
    let opened = Layout::open(&root).unwrap();
    assert_eq!(opened.entries().unwrap(), []);
    // An existing layout is opened as it is, index and all.
    std::fs::write(
        root.join("index.json"),
        r#"{"schemaVersion":2,"manifests":[]}"#,
    )
    .unwrap();
    Layout::create(&root).unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join("index.json")).unwrap(),
        r#"{"schemaVersion":2,"manifests":[]}"#
    );
    // One cut short after oci-layout is completed.
    std::fs::remove_file(root.join("index.json")).unwrap();
    std::fs::remove_dir(root.join("blobs")).unwrap();
    Layout::create(&root).unwrap();
    assert_eq!(names(&root), ["blobs", "index.json", "oci-layout"]);
    // An empty directory becomes a layout.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    Layout::create(&empty).unwrap();
    assert_eq!(names(&empty), ["blobs", "index.json", "oci-layout"]);
}

#[test]
fn create_refuses_what_is_not_a_layout() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let e = Layout::create(dir.path()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: neither empty nor an OCI image layout (no oci-layout file); write the \
             image to a new or empty directory",
            dir.path().display()
        )
    );
    assert_eq!(names(dir.path()), ["notes.txt"]);
    let file = dir.path().join("notes.txt");
    assert!(matches!(
        Layout::create(&file).unwrap_err(),
        LayoutError::NotADirectory { path } if path == file
    ));
}

#[test]
fn open_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    assert_eq!(
        Layout::open(&missing).unwrap_err().to_string(),
        format!(
            "{}: no such directory; check the path (copying an image to oci:DIR creates it)",
            missing.display()
        )
    );
    assert_eq!(
        Layout::open(dir.path()).unwrap_err().to_string(),
        format!(
            "{}: not an OCI image layout (no oci-layout file); name the directory that \
             holds oci-layout, index.json and blobs/",
            dir.path().display()
        )
    );
    let marker = dir.path().join("oci-layout");
    std::fs::write(&marker, r#"{"imageLayoutVersion":"2.0.0"}"#).unwrap();
    assert_eq!(
        Layout::open(dir.path()).unwrap_err().to_string(),
        format!(
            "{}: image layout version `2.0.0` is not supported; berth reads and writes \
             version 1.x",
            marker.display()
        )
    );
    std::fs::write(&marker, "{}").unwrap();
    assert_eq!(
        Layout::open(dir.path()).unwrap_err().to_string(),
        format!(
            "{}: not an oci-layout file (missing field `imageLayoutVersion` at line 1 \
             column 2); repair the file, or copy the image into a new layout",
            marker.display()
        )
    );
    std::fs::write(&marker, r#"{"imageLayoutVersion":"1.1.0"}"#).unwrap();
    let layout = Layout::open(dir.path()).unwrap();
    assert_eq!(
        layout.entries().unwrap_err().to_string(),
        format!(
            "{}: no such file, and an OCI layout needs one; repair the file, or copy the \
             image into a new layout",
            dir.path().join("index.json").display()
        )
    );
    assert!(matches!(
        Layout::open(&marker).unwrap_err(),
        LayoutError::NotADirectory { path } if path == marker
    ));
}

/// A layout exactly as `skopeo copy docker://... oci:DIR:latest` leaves it.
#[test]
fn reads_a_layout_skopeo_wrote() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("oci-layout"),
        r#"{"imageLayoutVersion": "1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("index.json"),
        r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:84afb6189c4d69f2d040c5f1dc4e0a16fed9b539ce9cfb4ac2526ae4e0576cc0","size":496,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}"#,
    )
    .unwrap();
    let layout = Layout::open(dir.path()).unwrap();
    let expected = LayoutEntry {
        digest: Digest::parse(
            "sha256:84afb6189c4d69f2d040c5f1dc4e0a16fed9b539ce9cfb4ac2526ae4e0576cc0",
        )
        .unwrap(),
        media_type: MANIFEST.to_owned(),
        size: 496,
        tag: Some("latest".to_owned()),
    };
    assert_eq!(layout.entries().unwrap(), std::slice::from_ref(&expected));
    assert_eq!(layout.resolve(Some("latest")).unwrap(), expected);
    assert_eq!(layout.resolve(None).unwrap(), expected);
    assert_eq!(
        layout.blob_path(&expected.digest),
        dir.path()
            .join("blobs/sha256/84afb6189c4d69f2d040c5f1dc4e0a16fed9b539ce9cfb4ac2526ae4e0576cc0")
    );
}

#[test]
fn resolve_by_tag_the_only_entry_or_a_listing() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::create(dir.path()).unwrap();
    let root = dir.path().display().to_string();
    assert_eq!(
        layout.resolve(None).unwrap_err().to_string(),
        format!("{root}: the layout holds no image; copy one into it first")
    );
    let a = Digest::sha256_of(b"a");
    let b = Digest::sha256_of(b"b");
    let c = Digest::sha256_of(b"c");
    let index = json!({
        "schemaVersion": 2,
        "manifests": [
            {"mediaType": MANIFEST, "digest": a.to_string(), "size": 1,
             "annotations": {"org.opencontainers.image.ref.name": "v1"}},
            {"mediaType": MANIFEST, "digest": b.to_string(), "size": 1,
             "annotations": {"org.opencontainers.image.ref.name": "v2"}},
            {"mediaType": MANIFEST, "digest": c.to_string(), "size": 1},
        ]
    });
    std::fs::write(dir.path().join("index.json"), index.to_string()).unwrap();
    assert_eq!(
        layout.resolve(Some("v2")).unwrap(),
        LayoutEntry {
            digest: b,
            media_type: MANIFEST.to_owned(),
            size: 1,
            tag: Some("v2".to_owned()),
        }
    );
    assert_eq!(
        layout.resolve(None).unwrap_err().to_string(),
        format!(
            "{root}: the layout holds 3 images, so name one as oci:{root}:TAG; \
             tags present: v1, v2 (and 1 untagged image)"
        )
    );
    let e = layout.resolve(Some("v3")).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{root}: no image tagged `v3`; tags present: v1, v2 (and 1 untagged image)")
    );
    assert!(matches!(
        e,
        LayoutError::TagNotFound { tag, tags, untagged: 1, .. }
            if tag == "v3" && tags == ["v1", "v2"]
    ));
    let untagged = json!({"schemaVersion": 2, "manifests": [
        {"mediaType": MANIFEST, "digest": a.to_string(), "size": 1},
        {"mediaType": MANIFEST, "digest": c.to_string(), "size": 1},
    ]});
    std::fs::write(dir.path().join("index.json"), untagged.to_string()).unwrap();
    assert_eq!(
        layout.resolve(Some("latest")).unwrap_err().to_string(),
        format!("{root}: no image tagged `latest`; no tags present, only 2 untagged images")
    );
}

#[test]
fn bad_index_json_is_named() {
    let (_dir, layout) = new_layout();
    let path = layout.root().join("index.json");
    let cases = [
        (
            r#"{"schemaVersion":1,"manifests":[]}"#,
            "schemaVersion is 1, expected 2".to_owned(),
        ),
        (
            r#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"md5:00","size":1}]}"#,
            "manifests[0]: invalid digest \"md5:00\": unsupported digest algorithm `md5`: \
             berth supports sha256 and sha512 (at byte 0)"
                .to_owned(),
        ),
        (
            r#"{"schemaVersion":2}"#,
            "not an OCI image index (missing field `manifests` at line 1 column 19)".to_owned(),
        ),
    ];
    for (text, reason) in cases {
        std::fs::write(&path, text).unwrap();
        assert_eq!(
            layout.entries().unwrap_err().to_string(),
            format!(
                "{}: {reason}; repair the file, or copy the image into a new layout",
                path.display()
            ),
            "{text}"
        );
    }
}

#[tokio::test]
async fn add_manifest_replaces_a_tag_and_keeps_unknown_fields() {
    let (_dir, layout) = new_layout();
    let old = manifest(&layout, b"old", Some("v1")).await;
    let other = manifest(&layout, b"other", Some("amd64")).await;
    let index = json!({
        "schemaVersion": 2,
        "manifests": [
            {"mediaType": MANIFEST, "digest": old.digest.to_string(), "size": 3,
             "annotations": {"org.opencontainers.image.ref.name": "v1",
                             "org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
             "platform": {"architecture": "arm64", "os": "linux"}},
            {"mediaType": MANIFEST, "digest": other.digest.to_string(), "size": 5,
             "annotations": {"org.opencontainers.image.ref.name": "amd64",
                             "com.example.note": "kept"},
             "platform": {"architecture": "amd64", "os": "linux"},
             "urls": ["https://example.com/x"]},
        ],
        "annotations": {"com.example.layout": "kept too"},
        "com.example.extension": [1, 2],
    });
    std::fs::write(layout.root().join("index.json"), index.to_string()).unwrap();

    let new = manifest(&layout, b"new manifest", Some("v1")).await;
    layout.add_manifest(&new).unwrap();
    assert_eq!(
        index_json(&layout),
        json!({
            "schemaVersion": 2,
            "manifests": [
                {"mediaType": MANIFEST, "digest": new.digest.to_string(), "size": 12,
                 "annotations": {"org.opencontainers.image.ref.name": "v1"}},
                {"mediaType": MANIFEST, "digest": other.digest.to_string(), "size": 5,
                 "annotations": {"org.opencontainers.image.ref.name": "amd64",
                                 "com.example.note": "kept"},
                 "platform": {"architecture": "amd64", "os": "linux"},
                 "urls": ["https://example.com/x"]},
            ],
            "annotations": {"com.example.layout": "kept too"},
            "com.example.extension": [1, 2],
        })
    );
    // Tagging the same digest again changes nothing.
    let before = std::fs::read(layout.root().join("index.json")).unwrap();
    layout.add_manifest(&other).unwrap();
    assert_eq!(
        std::fs::read(layout.root().join("index.json")).unwrap(),
        before
    );
    assert_eq!(names(layout.root()), ["blobs", "index.json", "oci-layout"]);
}

#[tokio::test]
async fn add_manifest_untagged_and_tagging_an_untagged_entry() {
    let (_dir, layout) = new_layout();
    let entry = manifest(&layout, b"m", None).await;
    layout.add_manifest(&entry).unwrap();
    layout.add_manifest(&entry).unwrap();
    assert_eq!(layout.entries().unwrap(), std::slice::from_ref(&entry));
    let index = json!({"schemaVersion": 2, "manifests": [
        {"mediaType": MANIFEST, "digest": entry.digest.to_string(), "size": 1,
         "platform": {"architecture": "s390x", "os": "linux"}},
    ]});
    std::fs::write(layout.root().join("index.json"), index.to_string()).unwrap();
    let tagged = LayoutEntry {
        tag: Some("v1".to_owned()),
        ..entry.clone()
    };
    layout.add_manifest(&tagged).unwrap();
    assert_eq!(
        index_json(&layout),
        json!({"schemaVersion": 2, "manifests": [
            {"mediaType": MANIFEST, "digest": entry.digest.to_string(), "size": 1,
             "annotations": {"org.opencontainers.image.ref.name": "v1"},
             "platform": {"architecture": "s390x", "os": "linux"}},
        ]})
    );
    assert_eq!(layout.resolve(None).unwrap(), tagged);
}

#[tokio::test]
async fn add_manifest_needs_the_blob() {
    let (_dir, layout) = new_layout();
    let digest = Digest::sha256_of(b"absent");
    let mut entry = LayoutEntry {
        digest: digest.clone(),
        media_type: MANIFEST.to_owned(),
        size: 6,
        tag: Some("v1".to_owned()),
    };
    let path = layout.blob_path(&digest);
    assert_eq!(
        layout.add_manifest(&entry).unwrap_err().to_string(),
        format!(
            "{}: blob {digest} is not in the layout; the layout is incomplete, copy the \
             image into it again",
            path.display()
        )
    );
    layout.write_blob_bytes(&digest, b"absent").await.unwrap();
    entry.size = 7;
    assert_eq!(
        layout.add_manifest(&entry).unwrap_err().to_string(),
        format!(
            "{}: blob {digest} is 6 bytes, its descriptor says 7; the layout is corrupt, \
             copy the image into it again",
            path.display()
        )
    );
    assert_eq!(layout.entries().unwrap(), []);
}

#[tokio::test]
async fn blob_writer_commits_verified_bytes() {
    let (_dir, layout) = new_layout();
    let content = vec![7u8; 100_000];
    let digest = Digest::sha256_of(&content);
    let mut writer = layout.blob_writer(&digest).await.unwrap();
    for chunk in content.chunks(8192) {
        writer.write(chunk).await.unwrap();
    }
    assert_eq!(writer.written(), 100_000);
    assert_eq!(writer.commit().await.unwrap(), 100_000);
    assert_eq!(std::fs::read(layout.blob_path(&digest)).unwrap(), content);
    assert_eq!(names(&layout.root().join("blobs")), ["sha256"]);
    assert_eq!(names(&layout.root().join("blobs/sha256")), [digest.hex()]);
    assert!(layout.has_blob(&digest, 100_000).await);
}

#[tokio::test]
async fn blob_writer_refuses_other_bytes_and_leaves_nothing() {
    let (_dir, layout) = new_layout();
    let digest = Digest::sha256_of(b"expected");
    let mut writer = layout.blob_writer(&digest).await.unwrap();
    writer.write(b"something else").await.unwrap();
    match writer.commit().await.unwrap_err() {
        LayoutError::DigestMismatch {
            path,
            expected,
            actual,
        } => {
            assert_eq!(path, layout.blob_path(&digest));
            assert_eq!(expected, digest);
            assert_eq!(actual, Digest::sha256_of(b"something else"));
        }
        other => panic!("{other}"),
    }
    assert_eq!(names(&layout.root().join("blobs")), Vec::<String>::new());
    assert!(!layout.has_blob(&digest, 8).await);
}

#[tokio::test]
async fn blob_writer_dropped_removes_its_temporary_file() {
    let (_dir, layout) = new_layout();
    let digest = Digest::sha256_of(b"abc");
    let mut writer = layout.blob_writer(&digest).await.unwrap();
    writer.write(b"ab").await.unwrap();
    assert_eq!(names(&layout.root().join("blobs")).len(), 1);
    drop(writer);
    assert_eq!(names(&layout.root().join("blobs")), Vec::<String>::new());
}

#[tokio::test]
async fn parallel_writers_do_not_collide() {
    let (_dir, layout) = new_layout();
    let (x, y) = (vec![1u8; 50_000], vec![2u8; 70_000]);
    let (dx, dy) = (Digest::sha256_of(&x), Digest::sha256_of(&y));
    let mut wx = layout.blob_writer(&dx).await.unwrap();
    let mut wy = layout.blob_writer(&dy).await.unwrap();
    // Even two writers of one blob get their own temporary files.
    let mut wx2 = layout.blob_writer(&dx).await.unwrap();
    for (a, b) in x.chunks(1000).zip(y.chunks(1000)) {
        wx.write(a).await.unwrap();
        wy.write(b).await.unwrap();
        wx2.write(a).await.unwrap();
    }
    wy.write(&y[50_000..]).await.unwrap();
    let (rx, ry, rx2) = tokio::join!(wx.commit(), wy.commit(), wx2.commit());
    assert_eq!(
        (rx.unwrap(), ry.unwrap(), rx2.unwrap()),
        (50_000, 70_000, 50_000)
    );
    assert_eq!(std::fs::read(layout.blob_path(&dx)).unwrap(), x);
    assert_eq!(std::fs::read(layout.blob_path(&dy)).unwrap(), y);
    assert_eq!(names(&layout.root().join("blobs")), ["sha256"]);
}

#[tokio::test]
async fn has_blob_checks_presence_and_size() {
    let (_dir, layout) = new_layout();
    let digest = Digest::sha256_of(b"four");
    assert!(!layout.has_blob(&digest, 4).await);
    layout.write_blob_bytes(&digest, b"four").await.unwrap();
    assert!(layout.has_blob(&digest, 4).await);
    assert!(!layout.has_blob(&digest, 3).await);
    assert!(!layout.has_blob(&digest, 5).await);
}

#[tokio::test]
async fn open_blob_gives_the_file_and_its_size() {
    let (_dir, layout) = new_layout();
    let digest = Digest::sha256_of(b"layer");
    let e = layout.open_blob(&digest).await.unwrap_err();
    assert!(matches!(
        e,
        LayoutError::BlobMissing { digest: d, path } if d == digest && path == layout.blob_path(&digest)
    ));
    layout.write_blob_bytes(&digest, b"layer").await.unwrap();
    let (mut file, size) = layout.open_blob(&digest).await.unwrap();
    let mut read = Vec::new();
    file.read_to_end(&mut read).await.unwrap();
    assert_eq!((read.as_slice(), size), (&b"layer"[..], 5));
}

#[tokio::test]
async fn write_blob_bytes_verifies_and_skips_present_blobs() {
    let (_dir, layout) = new_layout();
    let digest = Digest::sha256_of(b"right");
    let e = layout
        .write_blob_bytes(&digest, b"wrong")
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: content digest is {}, expected {digest}; the data is corrupt, copy the \
             image again",
            layout.blob_path(&digest).display(),
            Digest::sha256_of(b"wrong")
        )
    );
    assert_eq!(names(&layout.root().join("blobs")), Vec::<String>::new());
    layout.write_blob_bytes(&digest, b"right").await.unwrap();
    let modified = std::fs::metadata(layout.blob_path(&digest))
        .unwrap()
        .modified()
        .unwrap();
    layout.write_blob_bytes(&digest, b"right").await.unwrap();
    assert_eq!(
        std::fs::metadata(layout.blob_path(&digest))
            .unwrap()
            .modified()
            .unwrap(),
        modified
    );
    assert_eq!(names(&layout.root().join("blobs/sha256")), [digest.hex()]);
}

#[tokio::test]
async fn read_manifest_is_limited_and_verified() {
    let (_dir, layout) = new_layout();
    let content = br#"{"schemaVersion":2}"#;
    let digest = Digest::sha256_of(content);
    layout.write_blob_bytes(&digest, content).await.unwrap();
    assert_eq!(
        layout.read_manifest(&digest, 19).await.unwrap(),
        Bytes::from_static(content)
    );
    let path = layout.blob_path(&digest);
    assert_eq!(
        layout
            .read_manifest(&digest, 18)
            .await
            .unwrap_err()
            .to_string(),
        format!(
            "{}: blob {digest} is 19 bytes, more than the 18 a manifest may have; the \
             layout is corrupt or the descriptor names something else",
            path.display()
        )
    );
    // Corrupted on disk, same size.
    std::fs::write(&path, br#"{"schemaVersion":3}"#).unwrap();
    match layout.read_manifest(&digest, 1024).await.unwrap_err() {
        LayoutError::DigestMismatch {
            path: p,
            expected,
            actual,
        } => {
            assert_eq!(p, path);
            assert_eq!(expected, digest);
            assert_eq!(actual, Digest::sha256_of(br#"{"schemaVersion":3}"#));
        }
        other => panic!("{other}"),
    }
    let absent = Digest::sha256_of(b"absent");
    assert!(matches!(
        layout.read_manifest(&absent, 1024).await.unwrap_err(),
        LayoutError::BlobMissing { digest, .. } if digest == absent
    ));
}

#[tokio::test]
async fn a_layout_berth_writes_reads_back() {
    let (_dir, layout) = new_layout();
    let v1 = manifest(&layout, b"one", Some("v1")).await;
    let v2 = manifest(&layout, b"two", Some("v2")).await;
    layout.add_manifest(&v1).unwrap();
    layout.add_manifest(&v2).unwrap();
    let reopened = Layout::open(layout.root()).unwrap();
    assert_eq!(reopened.entries().unwrap(), [v1.clone(), v2.clone()]);
    assert_eq!(reopened.resolve(Some("v1")).unwrap(), v1);
    assert_eq!(
        std::fs::read_to_string(layout.root().join("index.json")).unwrap(),
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"{MANIFEST}","digest":"{}","size":3,"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}},{{"mediaType":"{MANIFEST}","digest":"{}","size":3,"annotations":{{"org.opencontainers.image.ref.name":"v2"}}}}]}}"#,
            v1.digest, v2.digest
        )
    );
}
