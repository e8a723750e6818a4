//! The garbage collector, retention policies and namespace quotas, seen from
//! outside: what `POST /api/v1/gc` reports and what the registry serves
//! afterwards (`/v2` answers, the blob store's bytes), `/api/v1/usage`,
//! `/api/v1/quotas`, and the counters at `/metrics`.
//!
//! Here: unreferenced blobs, untagged manifests, index children, referrers,
//! blobs shared between repositories, and the metrics; retention policies
//! and dry runs in `retention`, usage and quotas in `quotas`.
//!
//! Every app collects only when a test asks (`gc.interval = None`), with no
//! delay unless the test is about the delay; its blobs are in S3 under
//! `.ci/s3` (bytes gone: the store no longer has them; on the filesystem
//! their file is gone too). Report sections are compared as sets (items
//! sorted): the order of removals within a collection is not part of the
//! contract.

use std::collections::BTreeMap;
use std::time::Duration;

use berth_core::digest::Digest;
use berth_core::media_type;
use berth_registry::config::GcConfig;
use berth_registry::gc::retention::{Policy, PolicyText};
use berth_registry::meta::db::query;
use reqwest::Method;
use serde_json::{Value, json};

mod quotas;
mod retention;

use crate::support::{
    EMPTY_CONFIG, Resp, TestApp, admin_token, image_manifest, layer_descriptor, now, random_bytes,
    to_bytes,
};

const HOUR: Duration = Duration::from_secs(3600);

/// A registry that collects on demand only, blobs and untagged manifests due
/// at once, then `configure`d.
async fn app_with(configure: impl FnOnce(&mut GcConfig)) -> TestApp {
    TestApp::start_with_s3_if_set(|config| {
        config.gc.interval = None;
        config.gc.delay = Duration::ZERO;
        config.gc.untagged_delay = Some(Duration::ZERO);
        configure(&mut config.gc);
    })
    .await
}

/// A registry whose retention `policies` govern, collecting at once.
async fn app_with_policies(policies: &[PolicyText]) -> TestApp {
    let policies: Vec<Policy> = policies.iter().map(|p| Policy::parse(p).unwrap()).collect();
    app_with(|gc| gc.retention = policies).await
}

/// A blob the test pushed: its bytes and digest.
#[derive(Debug, Clone)]
struct Blob {
    bytes: Vec<u8>,
    digest: Digest,
}

impl Blob {
    fn random(len: usize) -> Self {
        Self::of(random_bytes(len))
    }

    fn of(bytes: Vec<u8>) -> Self {
        let digest = Digest::sha256_of(&bytes);
        Self { bytes, digest }
    }

    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// The empty config every image of this suite has.
fn config_blob() -> Blob {
    Blob::of(EMPTY_CONFIG.to_vec())
}

/// A manifest the test pushed.
#[derive(Debug, Clone)]
struct Pushed {
    digest: Digest,
    /// The length of its bytes (what the collector reports for it).
    len: u64,
}

/// An image the test pushed: its manifest and its one layer.
#[derive(Debug, Clone)]
struct Image {
    manifest: Pushed,
    layer: Blob,
}

impl Image {
    /// What a retention report counts for it: the manifest and its blobs.
    fn bytes(&self) -> u64 {
        self.manifest.len + config_blob().len() + self.layer.len()
    }
}

/// Pushes `blob` to `name` monolithically; asserts 201.
async fn push(app: &TestApp, token: &str, name: &str, blob: &Blob) {
    assert_eq!(app.push_blob(name, token, &blob.bytes).await, blob.digest);
}

/// Puts `manifest` to `name` under `tag`, or by its digest when `None`;
/// asserts 201 and the digest.
async fn put(
    app: &TestApp,
    token: &str,
    name: &str,
    tag: Option<&str>,
    manifest: &Value,
) -> Pushed {
    let bytes = to_bytes(manifest);
    let digest = Digest::sha256_of(&bytes);
    let reference = tag.map_or_else(|| digest.to_string(), str::to_owned);
    let resp = app
        .put_manifest(name, &reference, Some(token), manifest)
        .await;
    assert_eq!(resp.status, 201, "{name}:{reference}: {}", resp.text());
    assert_eq!(
        resp.header("docker-content-digest"),
        Some(digest.to_string().as_str())
    );
    Pushed {
        digest,
        len: bytes.len() as u64,
    }
}

/// Pushes the empty config, a fresh 100-byte layer and an image manifest
/// over them to `name`, tagged `tag` (by digest only when `None`).
async fn push_image(app: &TestApp, token: &str, name: &str, tag: Option<&str>) -> Image {
    let layer = Blob::random(100);
    push(app, token, name, &config_blob()).await;
    push(app, token, name, &layer).await;
    let manifest = put(
        app,
        token,
        name,
        tag,
        &image_manifest(&[layer_descriptor(&layer.bytes)]),
    )
    .await;
    Image { manifest, layer }
}

/// Pushes an artifact (its own fresh layer) whose subject is `subject`.
async fn push_referrer(
    app: &TestApp,
    token: &str,
    name: &str,
    tag: Option<&str>,
    subject: &Pushed,
) -> Image {
    let layer = Blob::random(60);
    push(app, token, name, &config_blob()).await;
    push(app, token, name, &layer).await;
    let mut manifest = image_manifest(&[layer_descriptor(&layer.bytes)]);
    manifest["artifactType"] = json!("application/vnd.example.signature");
    manifest["subject"] = json!({
        "mediaType": media_type::OCI_IMAGE_MANIFEST,
        "digest": subject.digest.to_string(),
        "size": subject.len,
    });
    let manifest = put(app, token, name, tag, &manifest).await;
    Image { manifest, layer }
}

/// Runs a collection (`dry_run`: changes nothing); asserts 200, no error and
/// a finished run; the report.
async fn collect(app: &TestApp, dry_run: bool) -> Value {
    let path = if dry_run {
        "/api/v1/gc?dry_run=true"
    } else {
        "/api/v1/gc"
    };
    let resp = app.admin_api(Method::POST, path, None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let report = resp.json();
    assert_eq!(report["dry_run"], dry_run, "{report}");
    assert_eq!(report["errors"], json!([]), "{report}");
    assert_eq!(report["incomplete"], false, "{report}");
    report
}

/// The report's entry for a link of `repository` to `blob`.
fn link(repository: &str, blob: &Blob) -> Value {
    json!({"repository": repository, "digest": blob.digest.to_string(), "bytes": blob.len()})
}

/// The report's entry for a blob record or its bytes.
fn blob(blob: &Blob) -> Value {
    json!({"digest": blob.digest.to_string(), "bytes": blob.len()})
}

/// The report's entry for a manifest of `repository`.
fn manifest(repository: &str, pushed: &Pushed) -> Value {
    json!({"repository": repository, "digest": pushed.digest.to_string(), "bytes": pushed.len})
}

/// The report's entry for tag `tag` of `repository` (an image).
fn tag(repository: &str, tag: &str, image: &Image) -> Value {
    json!({
        "repository": repository,
        "tag": tag,
        "digest": image.manifest.digest.to_string(),
        "bytes": image.bytes(),
    })
}

/// A report section with its items in a canonical order.
fn sorted(section: &Value) -> Value {
    let mut section = section.clone();
    if let Some(items) = section["items"].as_array_mut() {
        items.sort_by_key(Value::to_string);
    }
    section
}

/// Asserts that section `name` of `report` lists exactly `items` (in any
/// order), with their count and the sum of their bytes.
#[track_caller]
fn assert_section(report: &Value, name: &str, items: Vec<Value>) {
    let bytes: u64 = items.iter().map(|i| i["bytes"].as_u64().unwrap()).sum();
    let expected = sorted(&json!({"count": items.len(), "bytes": bytes, "items": items}));
    assert_eq!(
        sorted(&report[name]),
        expected,
        "section {name} of {report}"
    );
}

/// Asserts a report that removed nothing.
#[track_caller]
fn assert_nothing_removed(report: &Value) {
    for name in ["tags", "manifests", "links", "blobs", "reclaimed"] {
        assert_section(report, name, Vec::new());
    }
}

/// Asserts that `blob` is gone from `name`: `GET` 404 `BLOB_UNKNOWN`,
/// `HEAD` 404, and its bytes no longer in the blob store.
async fn assert_blob_gone(app: &TestApp, token: &str, name: &str, blob: &Blob) {
    let path = format!("/v2/{name}/blobs/{}", blob.digest);
    app.get(&path, Some(token))
        .await
        .assert_error(404, "BLOB_UNKNOWN");
    assert_eq!(app.head(&path, Some(token)).await.status, 404);
    assert!(
        !app.blob_stored(&blob.digest).await,
        "{} stored",
        blob.digest
    );
}

/// Asserts that `blob` pulls from `name` byte for byte, and is stored.
async fn assert_blob_pulls(app: &TestApp, token: &str, name: &str, blob: &Blob) {
    let resp = app
        .get(&format!("/v2/{name}/blobs/{}", blob.digest), Some(token))
        .await;
    assert_eq!(resp.status, 200, "{name}@{}: {}", blob.digest, resp.text());
    assert!(
        resp.body == blob.bytes,
        "{name}@{}: other bytes",
        blob.digest
    );
    assert!(
        app.blob_stored(&blob.digest).await,
        "{} stored",
        blob.digest
    );
}

/// `GET /v2/<name>/manifests/<reference>`.
async fn get_manifest(app: &TestApp, token: &str, name: &str, reference: &str) -> Resp {
    app.get(&format!("/v2/{name}/manifests/{reference}"), Some(token))
        .await
}

/// Asserts that manifest `digest` of `name` is served (200).
async fn assert_manifest_served(app: &TestApp, token: &str, name: &str, pushed: &Pushed) {
    let resp = get_manifest(app, token, name, &pushed.digest.to_string()).await;
    assert_eq!(
        resp.status,
        200,
        "{name}@{}: {}",
        pushed.digest,
        resp.text()
    );
}

/// Asserts that manifest `digest` of `name` is gone (404 `MANIFEST_UNKNOWN`).
async fn assert_manifest_gone(app: &TestApp, token: &str, name: &str, pushed: &Pushed) {
    get_manifest(app, token, name, &pushed.digest.to_string())
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
}

/// Deletes tag `tag` of `name` (`DELETE /v2/<name>/manifests/<tag>`): 202.
async fn untag(app: &TestApp, token: &str, name: &str, tag: &str) {
    let resp = app
        .delete(&format!("/v2/{name}/manifests/{tag}"), Some(token))
        .await;
    assert_eq!(resp.status, 202, "untag {name}:{tag}: {}", resp.text());
}

/// The tags `name` lists.
async fn tags(app: &TestApp, token: &str, name: &str) -> Vec<String> {
    let resp = app.get(&format!("/v2/{name}/tags/list"), Some(token)).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    serde_json::from_value(resp.json()["tags"].clone()).unwrap()
}

// ----- unreferenced blobs -----

#[tokio::test]
async fn a_blob_no_manifest_references_is_reclaimed_link_record_and_bytes() {
    let app = app_with(|_| {}).await;
    let name = "acme/app";
    let token = admin_token(&app, &[name]).await;
    let image = push_image(&app, &token, name, Some("v1")).await;
    let orphan = Blob::random(300);
    push(&app, &token, name, &orphan).await;
    assert!(app.blob_stored(&orphan.digest).await);

    let report = collect(&app, false).await;
    assert_section(&report, "links", vec![link(name, &orphan)]);
    assert_section(&report, "blobs", vec![blob(&orphan)]);
    assert_section(&report, "reclaimed", vec![blob(&orphan)]);
    assert_section(&report, "manifests", vec![]);
    assert_section(&report, "tags", vec![]);
    assert_eq!(report["queue_length"], 0);
    assert_blob_gone(&app, &token, name, &orphan).await;
    // What the tagged image names stays, byte for byte.
    assert_blob_pulls(&app, &token, name, &image.layer).await;
    assert_blob_pulls(&app, &token, name, &config_blob()).await;
    assert_manifest_served(&app, &token, name, &image.manifest).await;
    // Nothing is left to collect.
    assert_nothing_removed(&collect(&app, false).await);
}

#[tokio::test]
async fn an_unreferenced_blob_younger_than_the_delay_is_kept() {
    let app = app_with(|gc| gc.delay = HOUR).await;
    let name = "acme/app";
    let token = admin_token(&app, &[name]).await;
    push_image(&app, &token, name, Some("v1")).await;
    let orphan = Blob::random(300);
    push(&app, &token, name, &orphan).await;

    let report = collect(&app, false).await;
    assert_nothing_removed(&report);
    // The three links wait for the delay.
    assert_eq!(report["queue_length"], 3, "{report}");
    assert_blob_pulls(&app, &token, name, &orphan).await;
}

// ----- untagged manifests -----

#[tokio::test]
async fn an_untagged_manifest_is_collected_with_its_blobs() {
    let app = app_with(|_| {}).await;
    let name = "acme/app";
    let token = admin_token(&app, &[name]).await;
    let image = push_image(&app, &token, name, Some("v1")).await;
    assert_nothing_removed(&collect(&app, false).await);
    untag(&app, &token, name, "v1").await;

    let report = collect(&app, false).await;
    assert_section(&report, "manifests", vec![manifest(name, &image.manifest)]);
    assert_section(
        &report,
        "links",
        vec![link(name, &image.layer), link(name, &config_blob())],
    );
    let blobs = vec![blob(&image.layer), blob(&config_blob())];
    assert_section(&report, "blobs", blobs.clone());
    assert_section(&report, "reclaimed", blobs);
    assert_manifest_gone(&app, &token, name, &image.manifest).await;
    assert_blob_gone(&app, &token, name, &image.layer).await;
    assert_blob_gone(&app, &token, name, &config_blob()).await;
}

#[tokio::test]
async fn an_untagged_manifest_is_kept_within_the_untagged_delay_and_without_one() {
    for untagged_delay in [Some(HOUR), None] {
        let app = app_with(|gc| gc.untagged_delay = untagged_delay).await;
        let name = "acme/app";
        let token = admin_token(&app, &[name]).await;
        let image = push_image(&app, &token, name, Some("v1")).await;
        untag(&app, &token, name, "v1").await;

        let report = collect(&app, false).await;
        assert_nothing_removed(&report);
        assert_manifest_served(&app, &token, name, &image.manifest).await;
        assert_blob_pulls(&app, &token, name, &image.layer).await;
        assert_blob_pulls(&app, &token, name, &config_blob()).await;
    }
}

#[tokio::test]
async fn a_manifest_pushed_by_digest_only_is_untagged_and_collected() {
    let app = app_with(|_| {}).await;
    let name = "acme/app";
    let token = admin_token(&app, &[name]).await;
    let tagged = push_image(&app, &token, name, Some("v1")).await;
    let by_digest = push_image(&app, &token, name, None).await;

    let report = collect(&app, false).await;
    assert_section(
        &report,
        "manifests",
        vec![manifest(name, &by_digest.manifest)],
    );
    // The config stays: the tagged image names it too.
    assert_section(&report, "links", vec![link(name, &by_digest.layer)]);
    assert_section(&report, "reclaimed", vec![blob(&by_digest.layer)]);
    assert_manifest_gone(&app, &token, name, &by_digest.manifest).await;
    assert_blob_gone(&app, &token, name, &by_digest.layer).await;
    assert_manifest_served(&app, &token, name, &tagged.manifest).await;
    assert_blob_pulls(&app, &token, name, &config_blob()).await;
}

// ----- indexes -----

/// distribution#3178: a registry that collects what no tag names directly
/// deletes the children of a tagged multi-arch index, which are pushed by
/// digest. Here they live as long as the index.
#[tokio::test]
async fn index_children_pushed_by_digest_live_as_long_as_the_tagged_index() {
    let app = app_with(|_| {}).await;
    let name = "acme/multi";
    let token = admin_token(&app, &[name]).await;
    let amd64 = push_image(&app, &token, name, None).await;
    let arm64 = push_image(&app, &token, name, None).await;
    let entry = |image: &Image, architecture: &str| {
        json!({
            "mediaType": media_type::OCI_IMAGE_MANIFEST,
            "digest": image.manifest.digest.to_string(),
            "size": image.manifest.len,
            "platform": {"os": "linux", "architecture": architecture},
        })
    };
    let index = put(
        &app,
        &token,
        name,
        Some("v1"),
        &json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_IMAGE_INDEX,
            "manifests": [entry(&amd64, "amd64"), entry(&arm64, "arm64")],
        }),
    )
    .await;

    assert_nothing_removed(&collect(&app, false).await);
    for child in [&amd64, &arm64] {
        assert_manifest_served(&app, &token, name, &child.manifest).await;
        assert_blob_pulls(&app, &token, name, &child.layer).await;
    }

    untag(&app, &token, name, "v1").await;
    let report = collect(&app, false).await;
    assert_section(
        &report,
        "manifests",
        vec![
            manifest(name, &index),
            manifest(name, &amd64.manifest),
            manifest(name, &arm64.manifest),
        ],
    );
    assert_section(
        &report,
        "links",
        vec![
            link(name, &amd64.layer),
            link(name, &arm64.layer),
            link(name, &config_blob()),
        ],
    );
    let blobs = vec![blob(&amd64.layer), blob(&arm64.layer), blob(&config_blob())];
    assert_section(&report, "blobs", blobs.clone());
    assert_section(&report, "reclaimed", blobs);
    assert_manifest_gone(&app, &token, name, &index).await;
    for child in [&amd64, &arm64] {
        assert_manifest_gone(&app, &token, name, &child.manifest).await;
        assert_blob_gone(&app, &token, name, &child.layer).await;
    }
    assert_nothing_removed(&collect(&app, false).await);
}

// ----- referrers -----

#[tokio::test]
async fn a_referrer_lives_with_its_tagged_subject_and_goes_with_it() {
    let app = app_with(|_| {}).await;
    let name = "acme/app";
    let token = admin_token(&app, &[name]).await;
    let subject = push_image(&app, &token, name, Some("v1")).await;
    let signature = push_referrer(&app, &token, name, None, &subject.manifest).await;

    assert_nothing_removed(&collect(&app, false).await);
    assert_manifest_served(&app, &token, name, &signature.manifest).await;
    assert_blob_pulls(&app, &token, name, &signature.layer).await;

    untag(&app, &token, name, "v1").await;
    let report = collect(&app, false).await;
    assert_section(
        &report,
        "manifests",
        vec![
            manifest(name, &subject.manifest),
            manifest(name, &signature.manifest),
        ],
    );
    let blobs = vec![
        blob(&subject.layer),
        blob(&signature.layer),
        blob(&config_blob()),
    ];
    assert_section(&report, "blobs", blobs.clone());
    assert_section(&report, "reclaimed", blobs);
    assert_manifest_gone(&app, &token, name, &signature.manifest).await;
    assert_blob_gone(&app, &token, name, &signature.layer).await;
}

#[tokio::test]
async fn with_keep_referrers_a_referrer_outlives_its_subject() {
    let app = app_with(|gc| gc.keep_referrers = true).await;
    let name = "acme/app";
    let token = admin_token(&app, &[name]).await;
    let subject = push_image(&app, &token, name, Some("v1")).await;
    let signature = push_referrer(&app, &token, name, None, &subject.manifest).await;

    untag(&app, &token, name, "v1").await;
    let report = collect(&app, false).await;
    assert_section(
        &report,
        "manifests",
        vec![manifest(name, &subject.manifest)],
    );
    assert_section(&report, "reclaimed", vec![blob(&subject.layer)]);
    assert_manifest_gone(&app, &token, name, &subject.manifest).await;
    assert_manifest_served(&app, &token, name, &signature.manifest).await;
    assert_blob_pulls(&app, &token, name, &signature.layer).await;
    assert_blob_pulls(&app, &token, name, &config_blob()).await;
}

#[tokio::test]
async fn an_untagged_subject_of_a_tagged_artifact_is_kept() {
    let app = app_with(|_| {}).await;
    let name = "acme/app";
    let token = admin_token(&app, &[name]).await;
    let subject = push_image(&app, &token, name, None).await;
    let sbom = push_referrer(&app, &token, name, Some("sbom"), &subject.manifest).await;

    assert_nothing_removed(&collect(&app, false).await);
    assert_manifest_served(&app, &token, name, &subject.manifest).await;
    assert_blob_pulls(&app, &token, name, &subject.layer).await;
    assert_manifest_served(&app, &token, name, &sbom.manifest).await;
}

/// Once the artifact's tag goes, neither it nor its subject is reachable
/// from a tag: both are garbage, and both go.
#[tokio::test]
async fn an_untagged_subject_goes_with_its_artifact_once_the_artifact_is_untagged() {
    let app = app_with(|_| {}).await;
    let name = "acme/app";
    let token = admin_token(&app, &[name]).await;
    let subject = push_image(&app, &token, name, None).await;
    let sbom = push_referrer(&app, &token, name, Some("sbom"), &subject.manifest).await;
    assert_nothing_removed(&collect(&app, false).await);

    untag(&app, &token, name, "sbom").await;
    let report = collect(&app, false).await;
    assert_section(
        &report,
        "manifests",
        vec![
            manifest(name, &subject.manifest),
            manifest(name, &sbom.manifest),
        ],
    );
    assert_manifest_gone(&app, &token, name, &subject.manifest).await;
    assert_manifest_gone(&app, &token, name, &sbom.manifest).await;
    assert_blob_gone(&app, &token, name, &subject.layer).await;
    assert_blob_gone(&app, &token, name, &sbom.layer).await;
}

// ----- blobs shared between repositories -----

/// Two repositories with an image each over the same layer.
async fn shared_layer(app: &TestApp, token: &str, names: [&str; 2]) -> (Blob, [Pushed; 2]) {
    let layer = Blob::random(200);
    let mut pushed = Vec::new();
    for name in names {
        push(app, token, name, &config_blob()).await;
        push(app, token, name, &layer).await;
        let manifest = image_manifest(&[layer_descriptor(&layer.bytes)]);
        pushed.push(put(app, token, name, Some("v1"), &manifest).await);
    }
    let [one, two]: [Pushed; 2] = pushed.try_into().unwrap();
    (layer, [one, two])
}

#[tokio::test]
async fn a_blob_shared_by_two_repositories_stays_while_either_references_it() {
    let app = app_with(|_| {}).await;
    let (one, two) = ("acme/one", "beta/two");
    let token = admin_token(&app, &[one, two]).await;
    let (layer, [in_one, in_two]) = shared_layer(&app, &token, [one, two]).await;

    untag(&app, &token, one, "v1").await;
    let report = collect(&app, false).await;
    assert_section(&report, "manifests", vec![manifest(one, &in_one)]);
    assert_section(
        &report,
        "links",
        vec![link(one, &layer), link(one, &config_blob())],
    );
    assert_section(&report, "blobs", vec![]);
    assert_section(&report, "reclaimed", vec![]);
    app.get(&format!("/v2/{one}/blobs/{}", layer.digest), Some(&token))
        .await
        .assert_error(404, "BLOB_UNKNOWN");
    assert_blob_pulls(&app, &token, two, &layer).await;
    assert_manifest_served(&app, &token, two, &in_two).await;

    untag(&app, &token, two, "v1").await;
    let report = collect(&app, false).await;
    assert_section(&report, "manifests", vec![manifest(two, &in_two)]);
    let blobs = vec![blob(&layer), blob(&config_blob())];
    assert_section(&report, "blobs", blobs.clone());
    assert_section(&report, "reclaimed", blobs);
    assert_blob_gone(&app, &token, two, &layer).await;
}

#[tokio::test]
async fn a_blob_deleted_from_one_repository_stays_for_the_other() {
    let app = app_with(|_| {}).await;
    let (one, two) = ("acme/one", "acme/two");
    let token = admin_token(&app, &[one, two]).await;
    let (layer, [_, in_two]) = shared_layer(&app, &token, [one, two]).await;

    let path = format!("/v2/{one}/blobs/{}", layer.digest);
    let resp = app.delete(&path, Some(&token)).await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    let report = collect(&app, false).await;
    assert_nothing_removed(&report);
    assert_eq!(app.head(&path, Some(&token)).await.status, 404);
    assert_blob_pulls(&app, &token, two, &layer).await;
    assert_manifest_served(&app, &token, two, &in_two).await;
}

// ----- shared by the retention tests -----

/// Pushes one image per tag to `name`, each tag pushed `age` seconds ago
/// (its push time set in the database: no sleeping for distinct seconds).
async fn tagged(
    app: &TestApp,
    token: &str,
    name: &str,
    tags: &[(&str, i64)],
) -> BTreeMap<String, Image> {
    let mut images = BTreeMap::new();
    for &(tag, age) in tags {
        let image = push_image(app, token, name, Some(tag)).await;
        let done = query(
            "UPDATE tags SET updated_at = $1
              WHERE name = $2 AND repository_id = (SELECT id FROM repositories WHERE name = $3)",
        )
        .bind(now() - age)
        .bind(tag)
        .bind(name)
        .execute(&app.registry.db)
        .await
        .unwrap();
        assert_eq!(done, 1, "{name}:{tag} is in the tags table");
        images.insert(tag.to_owned(), image);
    }
    images
}

/// `PolicyText` for `repositories` with `set` applied.
fn policy(repositories: &str, set: impl FnOnce(&mut PolicyText)) -> PolicyText {
    let mut text = PolicyText {
        repositories: repositories.to_owned(),
        ..PolicyText::default()
    };
    set(&mut text);
    text
}

// ----- metrics -----

/// The value of the metric line `series` (name and labels) at `/metrics`.
async fn metric(app: &TestApp, series: &str) -> u64 {
    let resp = app.get("/metrics", None).await;
    assert_eq!(resp.status, 200);
    let text = resp.text();
    let value = text
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} at /metrics:\n{text}"));
    value.parse().unwrap()
}

#[tokio::test]
async fn metrics_count_the_collections_and_what_they_removed() {
    let app = app_with_policies(&[policy("acme/**", |p| p.keep_last_pushed = Some(1))]).await;
    let name = "acme/app";
    let token = admin_token(&app, &[name]).await;
    let images = tagged(&app, &token, name, &[("old", 200), ("new", 100)]).await;
    let orphan = Blob::random(300);
    push(&app, &token, name, &orphan).await;

    // A dry run is not counted.
    collect(&app, true).await;
    assert_eq!(metric(&app, "berth_gc_runs_total").await, 0);

    let report = collect(&app, false).await;
    let old = &images["old"];
    assert_section(&report, "tags", vec![tag(name, "old", old)]);
    assert_section(&report, "manifests", vec![manifest(name, &old.manifest)]);
    // The config stays: `new` names it.
    assert_section(
        &report,
        "links",
        vec![link(name, &old.layer), link(name, &orphan)],
    );
    let blobs = vec![blob(&old.layer), blob(&orphan)];
    assert_section(&report, "blobs", blobs.clone());
    assert_section(&report, "reclaimed", blobs);
    assert_eq!(metric(&app, "berth_gc_runs_total").await, 1);
    assert_eq!(metric(&app, "berth_gc_failed_runs_total").await, 0);
    for (kind, section) in [
        ("tag", "tags"),
        ("manifest", "manifests"),
        ("link", "links"),
        ("blob", "blobs"),
        ("bytes", "reclaimed"),
    ] {
        let series = format!("berth_gc_removed_total{{kind=\"{kind}\"}}");
        assert_eq!(
            metric(&app, &series).await,
            report[section]["count"].as_u64().unwrap(),
            "{series}"
        );
    }
    assert_eq!(
        metric(&app, "berth_gc_reclaimed_bytes_total").await,
        old.layer.len() + orphan.len()
    );
    assert_eq!(metric(&app, "berth_gc_queue_length").await, 0);
}
