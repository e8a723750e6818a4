//! Files as an artifact and inspection, against berth in-process: push then
//! pull (events, the manifest's shape, a second push writes nothing), a
//! title that would leave the directory, a layer whose bytes are not its
//! digest's; `inspect` of an index, one platform and a config; `--limit` as
//! a cap on a listing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use berth_client::artifact::{self, ArtifactError, ArtifactFile, PushOptions};
use berth_client::client::{BlobUpload, Listing, UploadOptions};
use berth_client::copy::{BlobOutcome, CopyEvent, OnEvent};
use berth_client::inspect::{self, InspectError};
use berth_core::{Digest, Platform, TagOrDigest, media_type};
use bytes::Bytes;
use serde_json::json;

use crate::support::{Berth, admin, descriptor, fixture_client, random_bytes, repo, serve};

fn tag(t: &str) -> TagOrDigest {
    TagOrDigest::parse(t).unwrap()
}

/// Events, recorded.
fn recorder() -> (OnEvent, Arc<Mutex<Vec<CopyEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    (
        Arc::new(move |e: &CopyEvent| sink.lock().unwrap().push(e.clone())),
        events,
    )
}

#[tokio::test]
async fn files_pushed_are_pulled_back_verified() {
    let berth = Berth::start().await;
    let client = Arc::new(berth.client(Some(admin())));
    let name = repo("admin/files");
    let dir = tempfile::tempdir().unwrap();
    let big = random_bytes(2 * 1024 * 1024 + 3, 1);
    std::fs::write(dir.path().join("a.txt"), b"alpha").unwrap();
    std::fs::write(dir.path().join("big.bin"), &big).unwrap();
    let files = [
        ArtifactFile::parse(&format!(
            "{}:text/plain",
            dir.path().join("a.txt").display()
        ))
        .unwrap(),
        ArtifactFile::parse(&dir.path().join("big.bin").display().to_string()).unwrap(),
    ];
    // Chunked, so that the upload path with PATCHes is the one exercised.
    let options = PushOptions {
        annotations: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
        upload: UploadOptions {
            monolithic: false,
            chunk_size: 1024 * 1024,
            ..UploadOptions::default()
        },
        ..PushOptions::default()
    };
    let (on_event, events) = recorder();
    let pushed = artifact::push(
        client.clone(),
        &name,
        &tag("1.0"),
        &files,
        &options,
        Some(on_event),
    )
    .await
    .unwrap();
    assert!(pushed.manifest_written);
    assert_eq!(pushed.files[0].title, "a.txt");
    assert_eq!(pushed.files[1].digest, Digest::sha256_of(&big));
    {
        let events = events.lock().unwrap();
        assert!(
            matches!(events[0], CopyEvent::Planned { manifests: 1, blobs: 3, bytes } if bytes == 5 + big.len() as u64 + 2),
            "{:?}",
            events[0]
        );
        assert!(events.iter().any(|e| matches!(
            e,
            CopyEvent::BlobProgress { moved, .. } if *moved == big.len() as u64
        )));
        assert!(matches!(
            events.last(),
            Some(CopyEvent::ManifestDone { existed: false, .. })
        ));
    }

    // Again: every blob and the manifest are there.
    let again = artifact::push(client.clone(), &name, &tag("1.0"), &files, &options, None)
        .await
        .unwrap();
    assert_eq!(again.digest, pushed.digest);
    assert!(!again.manifest_written);
    assert!(
        again
            .files
            .iter()
            .all(|f| f.outcome == BlobOutcome::Existed)
    );

    let out = tempfile::tempdir().unwrap();
    let into = out.path().join("new/dir");
    let pulled = artifact::pull(client.clone(), &name, &tag("1.0"), &into, 2, None)
        .await
        .unwrap();
    assert_eq!(pulled.digest, pushed.digest);
    assert_eq!(
        pulled.artifact_type.as_deref(),
        Some(artifact::DEFAULT_ARTIFACT_TYPE)
    );
    assert_eq!(pulled.annotations["k"], "v");
    assert_eq!(std::fs::read(into.join("a.txt")).unwrap(), b"alpha");
    assert_eq!(std::fs::read(into.join("big.bin")).unwrap(), big);
    assert_eq!(
        std::fs::read_dir(&into).unwrap().count(),
        2,
        "no temporary file left"
    );

    // An index is not an artifact of files; an image's layers have no titles.
    let image = berth.push_image("admin/image", "1", b"layer").await;
    let err = artifact::pull(
        client.clone(),
        &repo("admin/image"),
        &tag("1"),
        &into,
        1,
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ArtifactError::NoFiles { .. }), "{err}");
    assert!(err.to_string().contains("berth copy"), "{err}");
    let _ = image;
}

/// Pushes a manifest whose layers are `layers` (bytes, title) to `name:t`.
async fn push_titled(
    berth: &Berth,
    name: &str,
    t: &str,
    layers: &[(&[u8], &str)],
    declared: Option<u64>,
) {
    let client = berth.client(Some(admin()));
    let name = repo(name);
    let options = UploadOptions::default();
    let config = BlobUpload::from_bytes(Bytes::from_static(b"{}"));
    client
        .push_blob(&name, &config, &options, None)
        .await
        .unwrap();
    let mut descriptors = Vec::new();
    for (bytes, title) in layers {
        let blob = BlobUpload::from_bytes(Bytes::copy_from_slice(bytes));
        client
            .push_blob(&name, &blob, &options, None)
            .await
            .unwrap();
        let mut d = descriptor(media_type::OCI_LAYER_TAR, &blob.digest, bytes.len());
        if let Some(size) = declared {
            d["size"] = json!(size);
        }
        d["annotations"] = json!({"org.opencontainers.image.title": title});
        descriptors.push(d);
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_IMAGE_MANIFEST,
        "artifactType": "application/vnd.test",
        "config": descriptor(media_type::OCI_EMPTY, &config.digest, 2),
        "layers": descriptors,
    });
    client
        .put_manifest(
            &name,
            &tag(t),
            media_type::OCI_IMAGE_MANIFEST,
            Bytes::from(serde_json::to_vec(&manifest).unwrap()),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_title_that_leaves_the_directory_writes_nothing() {
    let berth = Berth::start().await;
    let client = Arc::new(berth.client(Some(admin())));
    let out = tempfile::tempdir().unwrap();
    for (t, title) in [
        ("a", "../up.txt"),
        ("b", "/abs.txt"),
        ("c", "x/y.txt"),
        ("d", ".."),
    ] {
        push_titled(
            &berth,
            "admin/evil",
            t,
            &[(b"fine", "ok.txt"), (b"bad", title)],
            None,
        )
        .await;
        let into = out.path().join(t);
        let err = artifact::pull(client.clone(), &repo("admin/evil"), &tag(t), &into, 1, None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ArtifactError::UnsafeTitle { .. }),
            "{title}: {err}"
        );
        assert!(!into.exists(), "{title}: nothing written");
    }
    assert!(!out.path().join("up.txt").exists());
}

/// A registry whose manifest understates a layer's size (berth refuses such
/// a manifest on push; a registry that stores it anyway is served here).
#[tokio::test]
async fn a_layer_longer_than_its_descriptor_is_not_kept() {
    use axum::http::header::CONTENT_TYPE;
    use axum::routing::get;

    let layer: &'static [u8] = b"sevenby";
    let layer_digest = Digest::sha256_of(layer);
    let config_digest = Digest::sha256_of(b"{}");
    // The manifest says 3 bytes; the blob (and its digest) holds 7.
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_IMAGE_MANIFEST,
        "artifactType": "application/vnd.test",
        "config": descriptor(media_type::OCI_EMPTY, &config_digest, 2),
        "layers": [{
            "mediaType": media_type::OCI_LAYER_TAR,
            "digest": layer_digest.to_string(),
            "size": 3,
            "annotations": {"org.opencontainers.image.title": "f.txt"},
        }],
    }))
    .unwrap();
    let blob_path = format!("/v2/admin/long/blobs/{layer_digest}");
    let addr = serve(move |_| {
        axum::Router::new()
            .route("/v2/", get(|| async { "{}" }))
            .route(
                "/v2/admin/long/manifests/1",
                get(move || {
                    let manifest = manifest.clone();
                    async move { ([(CONTENT_TYPE, media_type::OCI_IMAGE_MANIFEST)], manifest) }
                }),
            )
            .route(&blob_path, get(move || async move { layer }))
    })
    .await;
    let client = Arc::new(fixture_client(addr, None, Default::default()));
    let out = tempfile::tempdir().unwrap();
    let err = artifact::pull(client, &repo("admin/long"), &tag("1"), out.path(), 1, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ArtifactError::SizeMismatch { expected: 3, .. }),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "nothing kept"
    );
}

#[tokio::test]
async fn inspect_reads_an_index_a_platform_and_its_config() {
    let berth = Berth::start().await;
    let client = berth.client(Some(admin()));
    let name = repo("admin/app");
    let options = UploadOptions::default();
    let config = json!({
        "created": "2025-05-06T07:08:09Z",
        "os": "linux",
        "architecture": "arm64",
        "config": {"Entrypoint": ["/app"], "Env": ["A=1"], "Labels": {"l": "v"}, "User": "app"},
    })
    .to_string();
    let config_blob = BlobUpload::from_bytes(Bytes::from(config.clone()));
    let layer = BlobUpload::from_bytes(Bytes::from_static(b"0123456789"));
    for blob in [&config_blob, &layer] {
        client.push_blob(&name, blob, &options, None).await.unwrap();
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_IMAGE_MANIFEST,
        "config": descriptor(media_type::OCI_IMAGE_CONFIG, &config_blob.digest, config.len()),
        "layers": [descriptor(media_type::OCI_LAYER_TAR_GZIP, &layer.digest, 10)],
    }))
    .unwrap();
    let image = client
        .put_manifest(
            &name,
            &TagOrDigest::Digest(Digest::sha256_of(&manifest)),
            media_type::OCI_IMAGE_MANIFEST,
            Bytes::from(manifest.clone()),
        )
        .await
        .unwrap();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_IMAGE_INDEX,
        "manifests": [{
            "mediaType": media_type::OCI_IMAGE_MANIFEST,
            "digest": image.to_string(),
            "size": manifest.len(),
            "platform": {"os": "linux", "architecture": "arm64"},
        }],
    }))
    .unwrap();
    client
        .put_manifest(
            &name,
            &tag("1"),
            media_type::OCI_IMAGE_INDEX,
            Bytes::from(index),
        )
        .await
        .unwrap();

    let whole = inspect::inspect(&client, &name, &tag("1"), None)
        .await
        .unwrap();
    assert_eq!(whole.media_type, media_type::OCI_IMAGE_INDEX);
    assert_eq!(whole.manifests.len(), 1);
    assert_eq!(whole.manifests[0].platform.as_deref(), Some("linux/arm64"));
    assert!(whole.image.is_none());

    let arm = Platform::parse("linux/arm64").unwrap();
    let picked = inspect::inspect(&client, &name, &tag("1"), Some(&arm))
        .await
        .unwrap();
    let image_info = picked.image.unwrap();
    assert_eq!(image_info.digest, image);
    assert_eq!(image_info.layers_size, 10);
    let config = image_info.config.unwrap();
    assert_eq!(config.created.as_deref(), Some("2025-05-06T07:08:09Z"));
    assert_eq!(config.entrypoint, Some(vec!["/app".to_owned()]));
    assert_eq!(config.env, ["A=1"]);
    assert_eq!(config.labels["l"], "v");
    assert_eq!(config.user.as_deref(), Some("app"));

    let other = Platform::parse("linux/amd64").unwrap();
    let err = inspect::inspect(&client, &name, &tag("1"), Some(&other))
        .await
        .unwrap_err();
    assert!(matches!(err, InspectError::NoPlatform { .. }), "{err}");
    assert!(err.to_string().contains("linux/arm64"), "{err}");
}

#[tokio::test]
async fn a_listing_limit_stops_paginating() {
    let berth = Berth::start().await;
    let name = "admin/many";
    for t in ["a", "b", "c", "d", "e"] {
        berth.push_image(name, t, b"layer").await;
    }
    let (options, events) = crate::support::recording();
    let client = berth.client_with(Some(admin()), options);
    let listing = |page_size, max| Listing { page_size, max };
    // Pages of 2, at most 3 entries: two pages, never the third.
    let tags = client
        .tags_listing(&repo(name), listing(Some(2), Some(3)))
        .await
        .unwrap();
    assert_eq!(tags, ["a", "b", "c"]);
    let lists = |events: &[berth_client::auth::Event]| {
        events
            .iter()
            .filter(|e| {
                matches!(e, berth_client::auth::Event::Response { status: 200, url }
                    if url.contains("/tags/list"))
            })
            .count()
    };
    assert_eq!(lists(&events.lock().unwrap()), 2, "two pages answered");
    // Every page without a cap.
    let all = client
        .tags_listing(&repo(name), listing(Some(2), None))
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
}
