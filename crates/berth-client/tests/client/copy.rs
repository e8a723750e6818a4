//! `copy` against berth's own server (token auth on, admin credential):
//! registry to registry across two instances, one platform of an index, a
//! cross-repository mount, referrers, a round trip through an OCI layout,
//! the events a copy reports, and an anonymous copy of a private repository.
//!
//! The fixture is a multi-platform OCI index: two image manifests
//! (linux/amd64, linux/arm64/v8), each with its own config and two layers,
//! one layer shared by both: 3 manifests, 5 distinct blobs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use berth_client::client::{BlobUpload, ClientError, RegistryClient, UploadOptions};
use berth_client::copy::{
    BlobOutcome, CopyError, CopyEvent, CopyOptions, CopyReport, Endpoint, OnEvent, copy,
};
use berth_client::layout::Layout;
use berth_core::{Digest, Platform, RepositoryName, TagOrDigest, media_type};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::support::{Berth, admin, descriptor, image_manifest, random_bytes, repo};

/// A blob of the fixture.
#[derive(Debug, Clone)]
struct Blob {
    digest: Digest,
    bytes: Bytes,
}

impl Blob {
    fn new(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            digest: Digest::sha256_of(&bytes),
            bytes,
        }
    }

    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn descriptor(&self, media_type: &str) -> Value {
        descriptor(media_type, &self.digest, self.bytes.len())
    }
}

/// A manifest (or index) of the fixture: its exact bytes and digest.
#[derive(Debug, Clone)]
struct Doc {
    digest: Digest,
    bytes: Bytes,
}

impl Doc {
    fn new(value: &Value) -> Self {
        let bytes = Bytes::from(serde_json::to_vec(value).unwrap());
        Self {
            digest: Digest::sha256_of(&bytes),
            bytes,
        }
    }
}

/// The multi-platform image pushed by [`push_multi_arch`].
struct MultiArch {
    index: Doc,
    amd64: Doc,
    arm64: Doc,
    /// The five distinct blobs: amd64 config, arm64 config, the shared
    /// layer, the amd64 layer, the arm64 layer.
    blobs: Vec<Blob>,
    /// The blobs of the arm64 image only.
    arm64_blobs: Vec<Blob>,
    /// The blob only the amd64 image has.
    amd64_only: Blob,
}

impl MultiArch {
    fn total_bytes(&self) -> u64 {
        self.blobs.iter().map(Blob::size).sum()
    }
}

fn tag(text: &str) -> TagOrDigest {
    TagOrDigest::parse(text).unwrap()
}

fn by_digest(digest: &Digest) -> TagOrDigest {
    TagOrDigest::Digest(digest.clone())
}

async fn push_blob(client: &RegistryClient, name: &RepositoryName, blob: &Blob) {
    client
        .push_blob(
            name,
            &BlobUpload::from_bytes(blob.bytes.clone()),
            &UploadOptions::default(),
            None,
        )
        .await
        .unwrap();
}

async fn put_doc(
    client: &RegistryClient,
    name: &RepositoryName,
    reference: &TagOrDigest,
    media_type: &str,
    doc: &Doc,
) {
    let digest = client
        .put_manifest(name, reference, media_type, doc.bytes.clone())
        .await
        .unwrap();
    assert_eq!(digest, doc.digest);
}

/// An image manifest of `config` and `layers`.
fn image(config: &Blob, layers: &[&Blob]) -> Doc {
    let layers: Vec<Value> = layers
        .iter()
        .map(|l| l.descriptor(media_type::OCI_LAYER_TAR_GZIP))
        .collect();
    Doc::new(&image_manifest(
        media_type::OCI_IMAGE_MANIFEST,
        config.descriptor(media_type::OCI_IMAGE_CONFIG),
        &layers,
    ))
}

fn config(arch: &str, variant: Option<&str>) -> Blob {
    let mut config = json!({
        "architecture": arch,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
    });
    if let Some(variant) = variant {
        config["variant"] = json!(variant);
    }
    Blob::new(serde_json::to_vec(&config).unwrap())
}

/// Pushes the multi-platform index to `name:tag` with `client`.
async fn push_multi_arch(
    client: &RegistryClient,
    name: &RepositoryName,
    tag_name: &str,
) -> MultiArch {
    let amd64_config = config("amd64", None);
    let arm64_config = config("arm64", Some("v8"));
    // The shared layer spans several network reads; the others are small.
    let shared = Blob::new(random_bytes(1_500_000, 11));
    let amd64_layer = Blob::new(random_bytes(70_000, 12));
    let arm64_layer = Blob::new(random_bytes(90_000, 13));
    let blobs = vec![
        amd64_config.clone(),
        arm64_config.clone(),
        shared.clone(),
        amd64_layer.clone(),
        arm64_layer.clone(),
    ];
    for blob in &blobs {
        push_blob(client, name, blob).await;
    }
    let amd64 = image(&amd64_config, &[&shared, &amd64_layer]);
    let arm64 = image(&arm64_config, &[&shared, &arm64_layer]);
    for doc in [&amd64, &arm64] {
        put_doc(
            client,
            name,
            &by_digest(&doc.digest),
            media_type::OCI_IMAGE_MANIFEST,
            doc,
        )
        .await;
    }
    let index = Doc::new(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_IMAGE_INDEX,
        "manifests": [
            {
                "mediaType": media_type::OCI_IMAGE_MANIFEST,
                "digest": amd64.digest.to_string(),
                "size": amd64.bytes.len(),
                "platform": {"os": "linux", "architecture": "amd64"},
            },
            {
                "mediaType": media_type::OCI_IMAGE_MANIFEST,
                "digest": arm64.digest.to_string(),
                "size": arm64.bytes.len(),
                "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
            },
        ],
    }));
    put_doc(
        client,
        name,
        &tag(tag_name),
        media_type::OCI_IMAGE_INDEX,
        &index,
    )
    .await;
    MultiArch {
        index,
        amd64,
        arm64,
        arm64_blobs: vec![arm64_config, shared, arm64_layer],
        amd64_only: amd64_layer,
        blobs,
    }
}

fn registry(client: &Arc<RegistryClient>, name: &str, reference: TagOrDigest) -> Endpoint {
    Endpoint::Registry {
        client: client.clone(),
        repo: repo(name),
        reference,
    }
}

/// Asserts that `client` serves `name@digest` with exactly `bytes`.
async fn assert_manifest(client: &RegistryClient, name: &RepositoryName, doc: &Doc) {
    let got = client
        .get_manifest(name, &by_digest(&doc.digest), &[])
        .await
        .unwrap();
    assert_eq!(got.digest, doc.digest);
    assert_eq!(got.bytes, doc.bytes, "{name}@{}", doc.digest);
}

/// Asserts that `client` serves every blob of `blobs` in `name`, byte for byte.
async fn assert_blobs(client: &RegistryClient, name: &RepositoryName, blobs: &[Blob]) {
    for blob in blobs {
        let stream = client.get_blob(name, &blob.digest).await.unwrap();
        assert_eq!(
            stream.bytes().await.unwrap(),
            blob.bytes,
            "{name}@{}",
            blob.digest
        );
    }
}

#[tokio::test]
async fn an_index_is_copied_between_two_registries_with_every_child_and_blob() {
    let (a, b) = (Berth::start().await, Berth::start().await);
    let source = Arc::new(a.client(Some(admin())));
    let destination = Arc::new(b.client(Some(admin())));
    let image = push_multi_arch(&source, &repo("team/app"), "v1").await;
    let from = registry(&source, "team/app", tag("v1"));
    let to = registry(&destination, "mirror/app", tag("v1"));

    let report = copy(&from, &to, &CopyOptions::default(), None)
        .await
        .unwrap();
    assert_eq!(
        report,
        CopyReport {
            digest: Some(image.index.digest.clone()),
            media_type: media_type::OCI_IMAGE_INDEX.to_owned(),
            manifests_copied: 3,
            manifests_existing: 0,
            referrers: 0,
            blobs_copied: 5,
            blobs_mounted: 0,
            blobs_existing: 0,
            bytes_copied: image.total_bytes(),
        }
    );

    // The tag names the same index, byte for byte; its children and every
    // blob are there under their digests.
    let name = repo("mirror/app");
    let by_tag = destination
        .get_manifest(&name, &tag("v1"), &[])
        .await
        .unwrap();
    assert_eq!(by_tag.digest, image.index.digest);
    assert_eq!(by_tag.bytes, image.index.bytes);
    assert_eq!(by_tag.media_type, media_type::OCI_IMAGE_INDEX);
    for doc in [&image.index, &image.amd64, &image.arm64] {
        assert_manifest(&destination, &name, doc).await;
    }
    assert_blobs(&destination, &name, &image.blobs).await;
    assert_eq!(destination.tags(&name, None).await.unwrap(), ["v1"]);

    // The same copy again moves nothing.
    let again = copy(&from, &to, &CopyOptions::default(), None)
        .await
        .unwrap();
    assert_eq!(
        again,
        CopyReport {
            digest: Some(image.index.digest.clone()),
            media_type: media_type::OCI_IMAGE_INDEX.to_owned(),
            manifests_copied: 0,
            manifests_existing: 3,
            referrers: 0,
            blobs_copied: 0,
            blobs_mounted: 0,
            blobs_existing: 5,
            bytes_copied: 0,
        }
    );
}

#[tokio::test]
async fn a_platform_copies_only_its_image_under_the_tag() {
    let (a, b) = (Berth::start().await, Berth::start().await);
    let source = Arc::new(a.client(Some(admin())));
    let destination = Arc::new(b.client(Some(admin())));
    let image = push_multi_arch(&source, &repo("team/app"), "v1").await;
    let from = registry(&source, "team/app", tag("v1"));
    let name = repo("mirror/arm");
    let options = CopyOptions {
        platform: Some(Platform::parse("linux/arm64").unwrap()),
        ..CopyOptions::default()
    };

    let report = copy(
        &from,
        &registry(&destination, "mirror/arm", tag("v1")),
        &options,
        None,
    )
    .await
    .unwrap();
    let arm64_bytes: u64 = image.arm64_blobs.iter().map(Blob::size).sum();
    assert_eq!(
        report,
        CopyReport {
            digest: Some(image.arm64.digest.clone()),
            media_type: media_type::OCI_IMAGE_MANIFEST.to_owned(),
            manifests_copied: 1,
            manifests_existing: 0,
            referrers: 0,
            blobs_copied: 3,
            blobs_mounted: 0,
            blobs_existing: 0,
            bytes_copied: arm64_bytes,
        }
    );
    // The tag resolves to the arm64 image itself, not to an index.
    let head = destination.head_manifest(&name, &tag("v1")).await.unwrap();
    assert_eq!(head.digest, image.arm64.digest);
    assert_eq!(head.media_type, media_type::OCI_IMAGE_MANIFEST);
    assert_manifest(&destination, &name, &image.arm64).await;
    assert_blobs(&destination, &name, &image.arm64_blobs).await;
    // Neither the amd64 image, nor its own layer, nor the index came along.
    for absent in [&image.amd64.digest, &image.index.digest] {
        let err = destination
            .head_manifest(&name, &by_digest(absent))
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::NotFound { .. }), "{err}");
    }
    let pull = berth_client::auth::Operation::Pull(name.clone());
    let size = destination
        .blob_size(&name, &image.amd64_only.digest, &pull)
        .await
        .unwrap();
    assert_eq!(size, None, "the amd64-only layer is not copied");

    // A platform with its variant named picks the same image.
    let options = CopyOptions {
        platform: Some(Platform::parse("linux/arm64/v8").unwrap()),
        ..CopyOptions::default()
    };
    let report = copy(
        &from,
        &registry(&destination, "mirror/arm", tag("v8")),
        &options,
        None,
    )
    .await
    .unwrap();
    assert_eq!(report.digest.as_ref(), Some(&image.arm64.digest));
    assert_eq!((report.manifests_existing, report.blobs_existing), (1, 3));

    // A platform the index does not have: NoPlatform, listing those it has,
    // and nothing written.
    let options = CopyOptions {
        platform: Some(Platform::parse("linux/s390x").unwrap()),
        ..CopyOptions::default()
    };
    let err = copy(
        &from,
        &registry(&destination, "mirror/s390x", tag("v1")),
        &options,
        None,
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    match err {
        CopyError::NoPlatform {
            source_ref,
            platform,
            available,
        } => {
            assert_eq!(source_ref, format!("{}/team/app:v1", a.host));
            assert_eq!(platform.to_string(), "linux/s390x");
            assert_eq!(available, "linux/amd64, linux/arm64/v8");
        }
        other => panic!("expected NoPlatform, got {other:?}"),
    }
    assert_eq!(
        text,
        format!(
            "{}/team/app:v1 has no image for linux/s390x (it has: linux/amd64, linux/arm64/v8); \
             pick one of those with --platform",
            a.host
        )
    );
    let err = destination
        .head_manifest(&repo("mirror/s390x"), &tag("v1"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn within_one_registry_every_blob_is_mounted() {
    let berth = Berth::start().await;
    // Two clients, as the CLI makes one per side.
    let source = Arc::new(berth.client(Some(admin())));
    let destination = Arc::new(berth.client(Some(admin())));
    let image = push_multi_arch(&source, &repo("team/app"), "v1").await;

    let report = copy(
        &registry(&source, "team/app", tag("v1")),
        &registry(&destination, "team/app-copy", tag("v2")),
        &CopyOptions::default(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        report,
        CopyReport {
            digest: Some(image.index.digest.clone()),
            media_type: media_type::OCI_IMAGE_INDEX.to_owned(),
            manifests_copied: 3,
            manifests_existing: 0,
            referrers: 0,
            blobs_copied: 0,
            blobs_mounted: 5,
            blobs_existing: 0,
            bytes_copied: 0,
        }
    );
    let name = repo("team/app-copy");
    let head = destination.head_manifest(&name, &tag("v2")).await.unwrap();
    assert_eq!(head.digest, image.index.digest);
    assert_blobs(&destination, &name, &image.blobs).await;
}

/// A single-platform image with an SBOM artifact referring to it.
struct WithSbom {
    image: Doc,
    image_blobs: Vec<Blob>,
    sbom: Doc,
    sbom_blobs: Vec<Blob>,
}

const SBOM_TYPE: &str = "application/vnd.example.sbom";

async fn push_image_with_sbom(client: &RegistryClient, name: &RepositoryName) -> WithSbom {
    let config = config("amd64", None);
    let layer = Blob::new(random_bytes(40_000, 21));
    let image_blobs = vec![config.clone(), layer.clone()];
    for blob in &image_blobs {
        push_blob(client, name, blob).await;
    }
    let image_doc = image(&config, &[&layer]);
    put_doc(
        client,
        name,
        &tag("v1"),
        media_type::OCI_IMAGE_MANIFEST,
        &image_doc,
    )
    .await;

    let (sbom, sbom_blobs) = push_referrer(
        client,
        name,
        &image_doc,
        SBOM_TYPE,
        br#"{"spdxVersion":"SPDX-2.3","name":"app"}"#,
        "application/spdx+json",
    )
    .await;
    let listed = client.referrers(name, &image_doc.digest).await.unwrap();
    assert_eq!(listed.len(), 1, "the source lists its referrer");
    WithSbom {
        image: image_doc,
        image_blobs,
        sbom,
        sbom_blobs,
    }
}

#[tokio::test]
async fn referrers_are_copied_only_when_asked() {
    let (a, b) = (Berth::start().await, Berth::start().await);
    let source = Arc::new(a.client(Some(admin())));
    let destination = Arc::new(b.client(Some(admin())));
    let pushed = push_image_with_sbom(&source, &repo("team/app")).await;
    let from = registry(&source, "team/app", tag("v1"));
    let to = registry(&destination, "mirror/app", tag("v1"));
    let name = repo("mirror/app");
    let image_bytes: u64 = pushed.image_blobs.iter().map(Blob::size).sum();
    let sbom_bytes: u64 = pushed.sbom_blobs.iter().map(Blob::size).sum();

    // Without --referrers: the image alone.
    let report = copy(&from, &to, &CopyOptions::default(), None)
        .await
        .unwrap();
    assert_eq!(
        report,
        CopyReport {
            digest: Some(pushed.image.digest.clone()),
            media_type: media_type::OCI_IMAGE_MANIFEST.to_owned(),
            manifests_copied: 1,
            manifests_existing: 0,
            referrers: 0,
            blobs_copied: 2,
            blobs_mounted: 0,
            blobs_existing: 0,
            bytes_copied: image_bytes,
        }
    );
    let listed = destination
        .referrers(&name, &pushed.image.digest)
        .await
        .unwrap();
    assert_eq!(listed, []);
    let err = destination
        .head_manifest(&name, &by_digest(&pushed.sbom.digest))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NotFound { .. }), "{err}");

    // With: the SBOM and its blobs follow; the image is there already.
    let with_referrers = CopyOptions {
        referrers: true,
        ..CopyOptions::default()
    };
    let report = copy(&from, &to, &with_referrers, None).await.unwrap();
    assert_eq!(
        report,
        CopyReport {
            digest: Some(pushed.image.digest.clone()),
            media_type: media_type::OCI_IMAGE_MANIFEST.to_owned(),
            manifests_copied: 1,
            manifests_existing: 1,
            referrers: 1,
            blobs_copied: 2,
            blobs_mounted: 0,
            blobs_existing: 2,
            bytes_copied: sbom_bytes,
        }
    );
    let listed = destination
        .referrers(&name, &pushed.image.digest)
        .await
        .unwrap();
    let digests: Vec<&Digest> = listed.iter().map(|d| &d.digest).collect();
    assert_eq!(digests, [&pushed.sbom.digest]);
    assert_eq!(listed[0].artifact_type.as_deref(), Some(SBOM_TYPE));
    assert_manifest(&destination, &name, &pushed.sbom).await;
    assert_blobs(&destination, &name, &pushed.sbom_blobs).await;

    // Into a fresh repository: the referrer is written before its subject
    // (children first), and both arrive.
    let fresh = repo("fresh/app");
    let report = copy(
        &from,
        &registry(&destination, "fresh/app", tag("v1")),
        &with_referrers,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        (
            report.manifests_copied,
            report.referrers,
            report.blobs_copied
        ),
        (2, 1, 4)
    );
    assert_eq!(report.bytes_copied, image_bytes + sbom_bytes);
    let listed = destination
        .referrers(&fresh, &pushed.image.digest)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].digest, pushed.sbom.digest);
}

#[tokio::test]
async fn registry_to_layout_and_back_keeps_the_digest() {
    let berth = Berth::start().await;
    let client = Arc::new(berth.client(Some(admin())));
    let image = push_multi_arch(&client, &repo("team/app"), "v1").await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("layout");
    let layout = Arc::new(Layout::create(&root).unwrap());
    let to_layout = Endpoint::Layout {
        layout: layout.clone(),
        tag: Some("v1".to_owned()),
    };
    let from = registry(&client, "team/app", tag("v1"));

    let report = copy(&from, &to_layout, &CopyOptions::default(), None)
        .await
        .unwrap();
    assert_eq!(
        report,
        CopyReport {
            digest: Some(image.index.digest.clone()),
            media_type: media_type::OCI_IMAGE_INDEX.to_owned(),
            manifests_copied: 3,
            manifests_existing: 0,
            referrers: 0,
            blobs_copied: 5,
            blobs_mounted: 0,
            blobs_existing: 0,
            bytes_copied: image.total_bytes(),
        }
    );

    // index.json: one entry, the index, named v1.
    let index: Value =
        serde_json::from_slice(&std::fs::read(root.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{index}");
    assert_eq!(
        entries[0],
        json!({
            "mediaType": media_type::OCI_IMAGE_INDEX,
            "digest": image.index.digest.to_string(),
            "size": image.index.bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"},
        })
    );
    let marker: Value =
        serde_json::from_slice(&std::fs::read(root.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(marker, json!({"imageLayoutVersion": "1.0.0"}));
    // Every blob and every manifest is a file named by its digest.
    let docs = [&image.index, &image.amd64, &image.arm64];
    let files = image
        .blobs
        .iter()
        .map(|b| (&b.digest, &b.bytes))
        .chain(docs.iter().map(|d| (&d.digest, &d.bytes)));
    for (digest, bytes) in files {
        let path = root.join("blobs/sha256").join(digest.hex());
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(Digest::sha256_of(&on_disk), *digest, "{}", path.display());
        assert_eq!(on_disk, *bytes);
    }
    // Nothing but the eight blobs: no temporary file left behind.
    let listed = std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(listed, 8);
    let stray: Vec<_> = std::fs::read_dir(root.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "sha256")
        .collect();
    assert!(stray.is_empty(), "{stray:?}");

    // Again into the same layout: everything is there already.
    let again = copy(&from, &to_layout, &CopyOptions::default(), None)
        .await
        .unwrap();
    assert_eq!(
        (
            again.manifests_copied,
            again.manifests_existing,
            again.blobs_copied,
            again.blobs_existing,
            again.bytes_copied
        ),
        (0, 3, 0, 5, 0)
    );
    assert_eq!(layout.entries().unwrap().len(), 1);

    // And back, into a fresh repository: the same digest.
    let back = registry(&client, "from/layout", tag("v9"));
    let from_layout = Endpoint::Layout {
        layout: Arc::new(Layout::open(&root).unwrap()),
        tag: Some("v1".to_owned()),
    };
    let report = copy(&from_layout, &back, &CopyOptions::default(), None)
        .await
        .unwrap();
    assert_eq!(
        report,
        CopyReport {
            digest: Some(image.index.digest.clone()),
            media_type: media_type::OCI_IMAGE_INDEX.to_owned(),
            manifests_copied: 3,
            manifests_existing: 0,
            referrers: 0,
            blobs_copied: 5,
            blobs_mounted: 0,
            blobs_existing: 0,
            bytes_copied: image.total_bytes(),
        }
    );
    let name = repo("from/layout");
    let head = client.head_manifest(&name, &tag("v9")).await.unwrap();
    assert_eq!(head.digest, image.index.digest);
    for doc in docs {
        assert_manifest(&client, &name, doc).await;
    }
    assert_blobs(&client, &name, &image.blobs).await;
}

#[tokio::test]
async fn events_follow_the_plan_with_the_root_last() {
    let (a, b) = (Berth::start().await, Berth::start().await);
    let source = Arc::new(a.client(Some(admin())));
    let destination = Arc::new(b.client(Some(admin())));
    let image = push_multi_arch(&source, &repo("team/app"), "v1").await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let on_event: OnEvent = Arc::new(move |e: &CopyEvent| sink.lock().unwrap().push(e.clone()));

    copy(
        &registry(&source, "team/app", tag("v1")),
        &registry(&destination, "mirror/app", tag("v1")),
        &CopyOptions {
            jobs: 2,
            ..CopyOptions::default()
        },
        Some(on_event),
    )
    .await
    .unwrap();
    let events = events.lock().unwrap().clone();

    // One plan, first, with the fixture's totals.
    let planned: Vec<(usize, usize, u64)> = events
        .iter()
        .filter_map(|e| match e {
            CopyEvent::Planned {
                manifests,
                blobs,
                bytes,
            } => Some((*manifests, *blobs, *bytes)),
            _ => None,
        })
        .collect();
    assert_eq!(planned, [(3, 5, image.total_bytes())]);
    assert!(matches!(events[0], CopyEvent::Planned { .. }));

    // One BlobDone per blob, each copied with its size; started before done,
    // its progress reaching the whole size.
    let sizes: BTreeMap<String, u64> = image
        .blobs
        .iter()
        .map(|b| (b.digest.to_string(), b.size()))
        .collect();
    let mut done = BTreeMap::new();
    for (at, event) in events.iter().enumerate() {
        if let CopyEvent::BlobDone {
            digest,
            size,
            outcome,
        } = event
        {
            assert_eq!(*outcome, BlobOutcome::Copied, "{digest}");
            assert!(
                done.insert(digest.to_string(), *size).is_none(),
                "{digest} twice"
            );
            let started = events[..at].iter().any(
                |e| matches!(e, CopyEvent::BlobStarted { digest: d, size: s } if d == digest && s == size),
            );
            assert!(started, "BlobStarted before BlobDone for {digest}");
            let moved = events[..at]
                .iter()
                .filter_map(|e| match e {
                    CopyEvent::BlobProgress { digest: d, moved } if d == digest => Some(*moved),
                    _ => None,
                })
                .max();
            assert_eq!(moved, Some(*size), "progress of {digest}");
        }
    }
    assert_eq!(done, sizes);

    // ManifestDone: the two children, then the index; all after the blobs.
    let manifests: Vec<(usize, &Digest, bool)> = events
        .iter()
        .enumerate()
        .filter_map(|(at, e)| match e {
            CopyEvent::ManifestDone { digest, existed } => Some((at, digest, *existed)),
            _ => None,
        })
        .collect();
    assert_eq!(manifests.len(), 3, "{events:#?}");
    assert_eq!(manifests[2].1, &image.index.digest, "the root is last");
    let children: BTreeSet<&Digest> = manifests[..2].iter().map(|m| m.1).collect();
    assert_eq!(
        children,
        BTreeSet::from([&image.amd64.digest, &image.arm64.digest])
    );
    assert!(manifests.iter().all(|m| !m.2), "none existed");
    let last_blob = events
        .iter()
        .rposition(|e| matches!(e, CopyEvent::BlobDone { .. }))
        .unwrap();
    assert!(manifests[0].0 > last_blob, "manifests after every blob");
    assert_eq!(manifests[2].0, events.len() - 1, "nothing after the root");
}

#[tokio::test]
async fn an_anonymous_copy_of_a_private_repository_says_to_log_in_and_writes_nothing() {
    let (a, b) = (Berth::start().await, Berth::start().await);
    let owner = a.client(Some(admin()));
    push_multi_arch(&owner, &repo("team/secret"), "v1").await;
    let anonymous = Arc::new(a.client(None));
    let destination = Arc::new(b.client(Some(admin())));

    let err = copy(
        &registry(&anonymous, "team/secret", tag("v1")),
        &registry(&destination, "mirror/secret", tag("v1")),
        &CopyOptions::default(),
        None,
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            CopyError::Client(ClientError::NotFound { .. } | ClientError::Unauthorized { .. })
        ),
        "{err:?}"
    );
    assert!(text.contains("log in"), "{text}");
    assert!(text.contains("team/secret"), "{text}");

    // Nothing at the destination: no repository at all.
    assert_eq!(
        destination.catalog(None).await.unwrap(),
        Vec::<String>::new()
    );
    let err = destination
        .head_manifest(&repo("mirror/secret"), &tag("v1"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn chunked_uploads_copy_the_same_bytes() {
    let (a, b) = (Berth::start().await, Berth::start().await);
    let source = Arc::new(a.client(Some(admin())));
    let destination = Arc::new(b.client(Some(admin())));
    let image = push_multi_arch(&source, &repo("team/app"), "v1").await;
    let options = CopyOptions {
        jobs: 1,
        upload: UploadOptions {
            monolithic: false,
            chunk_size: 256 * 1024,
            ..UploadOptions::default()
        },
        ..CopyOptions::default()
    };

    let report = copy(
        &registry(&source, "team/app", tag("v1")),
        &registry(&destination, "mirror/app", tag("v1")),
        &options,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        (
            report.manifests_copied,
            report.blobs_copied,
            report.bytes_copied
        ),
        (3, 5, image.total_bytes())
    );
    let name = repo("mirror/app");
    let head = destination.head_manifest(&name, &tag("v1")).await.unwrap();
    assert_eq!(head.digest, image.index.digest);
    assert_blobs(&destination, &name, &image.blobs).await;
}

#[tokio::test]
async fn a_destination_digest_must_be_the_roots() {
    let (a, b) = (Berth::start().await, Berth::start().await);
    let source = Arc::new(a.client(Some(admin())));
    let destination = Arc::new(b.client(Some(admin())));
    let image = push_multi_arch(&source, &repo("team/app"), "v1").await;
    let from = registry(&source, "team/app", tag("v1"));
    let name = repo("mirror/app");

    // Another digest: refused before anything moves.
    let wrong = image.amd64.digest.clone();
    let err = copy(
        &from,
        &registry(&destination, "mirror/app", by_digest(&wrong)),
        &CopyOptions::default(),
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the destination names digest {wrong}, but the copied manifest is {}; \
             give a tag, or the source's digest",
            image.index.digest
        )
    );
    assert!(
        matches!(&err, CopyError::DestinationDigest { wanted, actual }
            if *wanted == wrong && *actual == image.index.digest),
        "{err:?}"
    );
    assert_eq!(
        destination.catalog(None).await.unwrap(),
        Vec::<String>::new()
    );

    // The root's own digest: written by digest, no tag.
    let report = copy(
        &from,
        &registry(&destination, "mirror/app", by_digest(&image.index.digest)),
        &CopyOptions::default(),
        None,
    )
    .await
    .unwrap();
    assert_eq!((report.manifests_copied, report.blobs_copied), (3, 5));
    assert_manifest(&destination, &name, &image.index).await;
    assert_eq!(
        destination.tags(&name, None).await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn the_tag_is_moved_even_when_its_manifest_is_already_there() {
    let (a, b) = (Berth::start().await, Berth::start().await);
    let source = Arc::new(a.client(Some(admin())));
    let destination = Arc::new(b.client(Some(admin())));
    let image = push_multi_arch(&source, &repo("team/app"), "v1").await;
    let from = registry(&source, "team/app", tag("v1"));
    let to = registry(&destination, "mirror/app", tag("v1"));
    let name = repo("mirror/app");
    let arm = CopyOptions {
        platform: Some(Platform::parse("linux/arm64").unwrap()),
        ..CopyOptions::default()
    };

    copy(&from, &to, &CopyOptions::default(), None)
        .await
        .unwrap();
    let head = destination.head_manifest(&name, &tag("v1")).await.unwrap();
    assert_eq!(head.digest, image.index.digest);
    // The arm64 image is at the destination already (a child of the index),
    // but v1 names the index: the copy must still move v1 to it.
    let report = copy(&from, &to, &arm, None).await.unwrap();
    assert_eq!(
        (
            report.manifests_copied,
            report.manifests_existing,
            report.blobs_existing
        ),
        (0, 1, 3)
    );
    let head = destination.head_manifest(&name, &tag("v1")).await.unwrap();
    assert_eq!(
        head.digest, image.arm64.digest,
        "v1 moved to the arm64 image"
    );
}

#[tokio::test]
async fn referrers_travel_through_a_layout() {
    let berth = Berth::start().await;
    let client = Arc::new(berth.client(Some(admin())));
    let pushed = push_image_with_sbom(&client, &repo("team/app")).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("layout");
    let to_layout = Endpoint::Layout {
        layout: Arc::new(Layout::create(&root).unwrap()),
        tag: Some("v1".to_owned()),
    };
    let with_referrers = CopyOptions {
        referrers: true,
        ..CopyOptions::default()
    };

    let report = copy(
        &registry(&client, "team/app", tag("v1")),
        &to_layout,
        &with_referrers,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        (
            report.manifests_copied,
            report.referrers,
            report.blobs_copied
        ),
        (2, 1, 4)
    );
    // The image under v1; the SBOM listed without a name.
    let entries: Vec<(String, Option<String>)> = Layout::open(&root)
        .unwrap()
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| (e.digest.to_string(), e.tag))
        .collect();
    let expected = BTreeSet::from([
        (pushed.image.digest.to_string(), Some("v1".to_owned())),
        (pushed.sbom.digest.to_string(), None),
    ]);
    assert_eq!(entries.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert_eq!(entries.len(), 2);

    // From the layout, the SBOM is found by its subject and copied along.
    let from_layout = Endpoint::Layout {
        layout: Arc::new(Layout::open(&root).unwrap()),
        tag: Some("v1".to_owned()),
    };
    let report = copy(
        &from_layout,
        &registry(&client, "from/layout", tag("v1")),
        &with_referrers,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        (
            report.manifests_copied,
            report.referrers,
            report.blobs_copied
        ),
        (2, 1, 4)
    );
    let listed = client
        .referrers(&repo("from/layout"), &pushed.image.digest)
        .await
        .unwrap();
    let digests: Vec<&Digest> = listed.iter().map(|d| &d.digest).collect();
    assert_eq!(digests, [&pushed.sbom.digest]);
    // Without --referrers, a layout source gives the image alone.
    let report = copy(
        &from_layout,
        &registry(&client, "from/plain", tag("v1")),
        &CopyOptions::default(),
        None,
    )
    .await
    .unwrap();
    assert_eq!((report.manifests_copied, report.referrers), (1, 0));
}

#[tokio::test]
async fn an_empty_blob_is_copied() {
    let (a, b) = (Berth::start().await, Berth::start().await);
    let source = Arc::new(a.client(Some(admin())));
    let destination = Arc::new(b.client(Some(admin())));
    let name = repo("team/empty");
    let config = config("amd64", None);
    let empty = Blob::new(Bytes::new());
    for blob in [&config, &empty] {
        push_blob(&source, &name, blob).await;
    }
    let doc = image(&config, &[&empty]);
    put_doc(
        &source,
        &name,
        &tag("v1"),
        media_type::OCI_IMAGE_MANIFEST,
        &doc,
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let layout = Endpoint::Layout {
        layout: Arc::new(Layout::create(dir.path()).unwrap()),
        tag: Some("v1".to_owned()),
    };
    let from = registry(&source, "team/empty", tag("v1"));
    let report = copy(&from, &layout, &CopyOptions::default(), None)
        .await
        .unwrap();
    assert_eq!(
        (report.blobs_copied, report.bytes_copied),
        (2, config.size())
    );
    let file = dir.path().join("blobs/sha256").join(empty.digest.hex());
    assert_eq!(std::fs::read(file).unwrap(), b"");

    let report = copy(
        &layout,
        &registry(&destination, "mirror/empty", tag("v1")),
        &CopyOptions::default(),
        None,
    )
    .await
    .unwrap();
    assert_eq!((report.blobs_copied, report.manifests_copied), (2, 1));
    assert_blobs(&destination, &repo("mirror/empty"), &[config, empty]).await;
}

#[tokio::test]
async fn a_corrupt_layout_blob_is_refused_and_nothing_is_tagged() {
    let (a, b) = (Berth::start().await, Berth::start().await);
    let source = Arc::new(a.client(Some(admin())));
    let destination = Arc::new(b.client(Some(admin())));
    let image = push_multi_arch(&source, &repo("team/app"), "v1").await;
    let dir = tempfile::tempdir().unwrap();
    let layout = Arc::new(Layout::create(dir.path()).unwrap());
    let endpoint = Endpoint::Layout {
        layout: layout.clone(),
        tag: Some("v1".to_owned()),
    };
    copy(
        &registry(&source, "team/app", tag("v1")),
        &endpoint,
        &CopyOptions::default(),
        None,
    )
    .await
    .unwrap();
    // The amd64-only layer rots on disk (same size, other bytes).
    let path = layout.blob_path(&image.amd64_only.digest);
    let mut rotten = std::fs::read(&path).unwrap();
    rotten[0] ^= 0xff;
    std::fs::write(&path, &rotten).unwrap();

    let err = copy(
        &endpoint,
        &registry(&destination, "mirror/app", tag("v1")),
        &CopyOptions::default(),
        None,
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    // The error blames the layout's file, not the upload.
    assert!(
        matches!(&err, CopyError::DamagedLayoutBlob { digest, .. } if *digest == image.amd64_only.digest),
        "{err:?}"
    );
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("damaged"), "{text}");
    let err = destination
        .head_manifest(&repo("mirror/app"), &tag("v1"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NotFound { .. }), "{err}");
    let pull = berth_client::auth::Operation::Pull(repo("mirror/app"));
    let held = destination
        .blob_size(&repo("mirror/app"), &image.amd64_only.digest, &pull)
        .await
        .unwrap();
    assert_eq!(held, None, "the corrupt bytes were not kept");

    // Into another layout: refused by the writer's digest check.
    let other = tempfile::tempdir().unwrap();
    let err = copy(
        &endpoint,
        &Endpoint::Layout {
            layout: Arc::new(Layout::create(other.path()).unwrap()),
            tag: Some("v1".to_owned()),
        },
        &CopyOptions::default(),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            CopyError::Layout(berth_client::layout::LayoutError::DigestMismatch { .. })
        ),
        "{err:?}"
    );
    let entries = Layout::open(other.path()).unwrap().entries().unwrap();
    assert_eq!(entries, []);
    assert!(
        !other
            .path()
            .join("blobs/sha256")
            .join(image.amd64_only.digest.hex())
            .exists()
    );
}

/// Pushes an artifact of `artifact_type` whose subject is `subject`, by
/// digest: an empty config and one layer, `body` of `body_type`. The
/// artifact, and its blobs (the config, then the layer).
async fn push_referrer(
    client: &RegistryClient,
    name: &RepositoryName,
    subject: &Doc,
    artifact_type: &str,
    body: &[u8],
    body_type: &str,
) -> (Doc, Vec<Blob>) {
    let empty = Blob::new(&b"{}"[..]);
    let blob = Blob::new(body.to_vec());
    for b in [&empty, &blob] {
        push_blob(client, name, b).await;
    }
    let doc = Doc::new(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_IMAGE_MANIFEST,
        "artifactType": artifact_type,
        "config": empty.descriptor(media_type::OCI_EMPTY),
        "layers": [blob.descriptor(body_type)],
        "subject": descriptor(
            media_type::OCI_IMAGE_MANIFEST,
            &subject.digest,
            subject.bytes.len(),
        ),
    }));
    put_doc(
        client,
        name,
        &by_digest(&doc.digest),
        media_type::OCI_IMAGE_MANIFEST,
        &doc,
    )
    .await;
    (doc, vec![empty, blob])
}

/// A signature on one child of an index, and a signature on that
/// signature: both follow the child, with or without `platform`.
#[tokio::test]
async fn referrers_of_an_index_child_and_of_a_referrer_follow() {
    let (a, b) = (Berth::start().await, Berth::start().await);
    let source = Arc::new(a.client(Some(admin())));
    let destination = Arc::new(b.client(Some(admin())));
    let name = repo("team/app");
    let image = push_multi_arch(&source, &name, "v1").await;
    let (signature, _) = push_referrer(
        &source,
        &name,
        &image.arm64,
        "application/vnd.example.signature",
        b"signed arm64",
        "application/octet-stream",
    )
    .await;
    let (countersign, _) = push_referrer(
        &source,
        &name,
        &signature,
        "application/vnd.example.signature",
        b"signed the signature",
        "application/octet-stream",
    )
    .await;
    let from = registry(&source, "team/app", tag("v1"));

    let report = copy(
        &from,
        &registry(&destination, "mirror/all", tag("v1")),
        &CopyOptions {
            referrers: true,
            ..CopyOptions::default()
        },
        None,
    )
    .await
    .unwrap();
    // 3 manifests + 2 referrers; 5 blobs + the empty config + 2 bodies.
    assert_eq!(
        (
            report.manifests_copied,
            report.referrers,
            report.blobs_copied
        ),
        (5, 2, 8)
    );
    let all = repo("mirror/all");
    let listed = destination
        .referrers(&all, &image.arm64.digest)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].digest, signature.digest);
    let listed = destination
        .referrers(&all, &signature.digest)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].digest, countersign.digest);
    let head = destination.head_manifest(&all, &tag("v1")).await.unwrap();
    assert_eq!(head.digest, image.index.digest);

    // Only arm64: its signatures come along; the amd64 image does not.
    let report = copy(
        &from,
        &registry(&destination, "mirror/arm", tag("v1")),
        &CopyOptions {
            referrers: true,
            platform: Some(Platform::parse("linux/arm64").unwrap()),
            ..CopyOptions::default()
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(report.digest.as_ref(), Some(&image.arm64.digest));
    assert_eq!((report.manifests_copied, report.referrers), (3, 2));
    let arm = repo("mirror/arm");
    let listed = destination
        .referrers(&arm, &image.arm64.digest)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].digest, signature.digest);
}

#[tokio::test]
async fn a_docker_manifest_list_keeps_its_media_types() {
    let (a, b) = (Berth::start().await, Berth::start().await);
    let source = Arc::new(a.client(Some(admin())));
    let destination = Arc::new(b.client(Some(admin())));
    let name = repo("docker/app");
    let config = config("amd64", None);
    let layer = Blob::new(random_bytes(30_000, 31));
    for blob in [&config, &layer] {
        push_blob(&source, &name, blob).await;
    }
    let manifest = Doc::new(&image_manifest(
        media_type::DOCKER_MANIFEST_V2,
        config.descriptor(media_type::DOCKER_CONFIG),
        &[layer.descriptor(media_type::DOCKER_LAYER_TAR_GZIP)],
    ));
    put_doc(
        &source,
        &name,
        &by_digest(&manifest.digest),
        media_type::DOCKER_MANIFEST_V2,
        &manifest,
    )
    .await;
    let list = Doc::new(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::DOCKER_MANIFEST_LIST,
        "manifests": [{
            "mediaType": media_type::DOCKER_MANIFEST_V2,
            "digest": manifest.digest.to_string(),
            "size": manifest.bytes.len(),
            "platform": {"os": "linux", "architecture": "amd64"},
        }],
    }));
    put_doc(
        &source,
        &name,
        &tag("v1"),
        media_type::DOCKER_MANIFEST_LIST,
        &list,
    )
    .await;

    let report = copy(
        &registry(&source, "docker/app", tag("v1")),
        &registry(&destination, "docker/app", tag("v1")),
        &CopyOptions::default(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(report.media_type, media_type::DOCKER_MANIFEST_LIST);
    assert_eq!((report.manifests_copied, report.blobs_copied), (2, 2));
    let got = destination
        .get_manifest(&name, &tag("v1"), &[])
        .await
        .unwrap();
    assert_eq!(got.bytes, list.bytes);
    assert_eq!(got.media_type, media_type::DOCKER_MANIFEST_LIST);
    let head = destination
        .head_manifest(&name, &by_digest(&manifest.digest))
        .await
        .unwrap();
    assert_eq!(head.media_type, media_type::DOCKER_MANIFEST_V2);
}

#[tokio::test]
async fn layout_to_layout_and_another_tag_of_the_same_repository() {
    let berth = Berth::start().await;
    let client = Arc::new(berth.client(Some(admin())));
    let image = push_multi_arch(&client, &repo("team/app"), "v1").await;

    // Another tag of the same repository: nothing moves but the tag.
    let report = copy(
        &registry(&client, "team/app", tag("v1")),
        &registry(&client, "team/app", tag("v2")),
        &CopyOptions::default(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        (
            report.manifests_copied,
            report.manifests_existing,
            report.blobs_existing,
            report.blobs_mounted,
            report.blobs_copied
        ),
        (0, 3, 5, 0, 0)
    );
    let mut tags = client.tags(&repo("team/app"), None).await.unwrap();
    tags.sort();
    assert_eq!(tags, ["v1", "v2"]);

    // Registry to a layout, then that layout to another under a new name.
    let dir = tempfile::tempdir().unwrap();
    let first = Endpoint::Layout {
        layout: Arc::new(Layout::create(&dir.path().join("first")).unwrap()),
        tag: Some("v1".to_owned()),
    };
    copy(
        &registry(&client, "team/app", tag("v2")),
        &first,
        &CopyOptions::default(),
        None,
    )
    .await
    .unwrap();
    let second_dir = dir.path().join("second");
    let second = Endpoint::Layout {
        layout: Arc::new(Layout::create(&second_dir).unwrap()),
        tag: Some("renamed".to_owned()),
    };
    let report = copy(&first, &second, &CopyOptions::default(), None)
        .await
        .unwrap();
    assert_eq!(
        (
            report.manifests_copied,
            report.blobs_copied,
            report.bytes_copied
        ),
        (3, 5, image.total_bytes())
    );
    let entries = Layout::open(&second_dir).unwrap().entries().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].digest, image.index.digest);
    assert_eq!(entries[0].tag.as_deref(), Some("renamed"));
    for blob in &image.blobs {
        let bytes = std::fs::read(second_dir.join("blobs/sha256").join(blob.digest.hex())).unwrap();
        assert_eq!(bytes, blob.bytes);
    }

    // The same layout under a second name: one more entry, no blob moved.
    let again = Endpoint::Layout {
        layout: Arc::new(Layout::open(&second_dir).unwrap()),
        tag: Some("latest".to_owned()),
    };
    let report = copy(&second, &again, &CopyOptions::default(), None)
        .await
        .unwrap();
    assert_eq!((report.blobs_copied, report.blobs_existing), (0, 5));
    let tags: BTreeSet<Option<String>> = Layout::open(&second_dir)
        .unwrap()
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| e.tag)
        .collect();
    assert_eq!(
        tags,
        BTreeSet::from([Some("renamed".to_owned()), Some("latest".to_owned())])
    );
}
