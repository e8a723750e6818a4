//! end-12: `GET /v2/<name>/referrers/<digest>`, with and without `artifactType`.

use berth_core::digest::Digest;
use berth_core::media_type;
use serde_json::{Value, json};

use crate::support::{
    EMPTY_CONFIG, Pushed, Resp, TestApp, artifact_manifest, descriptor, image_index,
    manifest_descriptor, to_bytes,
};

const SBOM: &str = "application/vnd.example.sbom.v1+json";
const SIGNATURE: &str = "application/vnd.example.signature.v1+json";

/// The referrers answer's manifests, sorted by digest (the spec sets no order).
#[track_caller]
fn referrers_of(resp: &Resp) -> Vec<Value> {
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("content-type"),
        Some(media_type::OCI_IMAGE_INDEX)
    );
    let body = resp.json();
    assert_eq!(body["schemaVersion"], 2);
    assert_eq!(body["mediaType"], media_type::OCI_IMAGE_INDEX);
    let mut manifests = body["manifests"].as_array().unwrap().clone();
    manifests.sort_by_key(|m| m["digest"].as_str().unwrap().to_owned());
    manifests
}

/// The descriptor the referrers API must list for a pushed `manifest`.
fn expected_descriptor(manifest: &Value, artifact_type: &str) -> Value {
    let mut d = manifest_descriptor(manifest);
    d["artifactType"] = json!(artifact_type);
    if let Some(annotations) = manifest.get("annotations") {
        d["annotations"] = annotations.clone();
    }
    d
}

fn sorted(mut descriptors: Vec<Value>) -> Vec<Value> {
    descriptors.sort_by_key(|m| m["digest"].as_str().unwrap().to_owned());
    descriptors
}

/// An image in `lib/app` with an SBOM (annotated) and a signature referring to it.
async fn image_with_two_referrers(app: &TestApp) -> (Pushed, Value, Value) {
    let image = app.push_image("lib/app", "v1").await;
    let subject = descriptor(media_type::OCI_IMAGE_MANIFEST, &image.bytes);
    let mut sbom = artifact_manifest(SBOM, &subject);
    sbom["annotations"] = json!({ "org.opencontainers.image.created": "2024-01-01T00:00:00Z" });
    let signature = artifact_manifest(SIGNATURE, &subject);
    for artifact in [&sbom, &signature] {
        let digest = Digest::sha256_of(&to_bytes(artifact));
        app.push_manifest("lib/app", &digest.to_string(), artifact)
            .await;
    }
    (image, sbom, signature)
}

#[tokio::test]
async fn unknown_subject_is_200_with_an_empty_index() {
    let app = TestApp::start().await;
    app.push_image("lib/app", "v1").await;
    let unknown = Digest::sha256_of(b"no such subject");

    for name in ["lib/app", "no/such/repo"] {
        let resp = app.get(&format!("/v2/{name}/referrers/{unknown}")).await;
        assert_eq!(referrers_of(&resp), Vec::<Value>::new());
        assert_eq!(resp.header("oci-filters-applied"), None);
    }
}

#[tokio::test]
async fn referrers_lists_each_referring_manifest_with_type_size_and_annotations() {
    let app = TestApp::start().await;
    let (image, sbom, signature) = image_with_two_referrers(&app).await;

    let resp = app
        .get(&format!("/v2/lib/app/referrers/{}", image.digest))
        .await;
    assert_eq!(resp.header("oci-filters-applied"), None);
    assert_eq!(
        referrers_of(&resp),
        sorted(vec![
            expected_descriptor(&sbom, SBOM),
            expected_descriptor(&signature, SIGNATURE),
        ])
    );
}

#[tokio::test]
async fn artifact_type_filter_keeps_only_that_type_and_says_so_in_oci_filters_applied() {
    let app = TestApp::start().await;
    let (image, sbom, _) = image_with_two_referrers(&app).await;

    // A query is form-encoded (`+` is a space, as Go's url.Query reads it), so
    // the `+` of a media type travels as `%2B`.
    let resp = app
        .get(&format!(
            "/v2/lib/app/referrers/{}?artifactType={}",
            image.digest,
            SBOM.replace('/', "%2F").replace('+', "%2B")
        ))
        .await;
    assert_eq!(resp.header("oci-filters-applied"), Some("artifactType"));
    assert_eq!(referrers_of(&resp), vec![expected_descriptor(&sbom, SBOM)]);

    let resp = app
        .get(&format!(
            "/v2/lib/app/referrers/{}?artifactType=application%2Fvnd.example.none",
            image.digest
        ))
        .await;
    assert_eq!(resp.header("oci-filters-applied"), Some("artifactType"));
    assert_eq!(referrers_of(&resp), Vec::<Value>::new());
}

#[tokio::test]
async fn referrer_without_artifact_type_is_listed_with_its_config_media_type() {
    let app = TestApp::start().await;
    let image = app.push_image("lib/app", "v1").await;
    let config = br#"{"signed":"yes"}"#;
    let config_type = "application/vnd.example.config.v1+json";
    app.push_blob("lib/app", config).await;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_IMAGE_MANIFEST,
        "config": descriptor(config_type, config),
        "layers": [],
        "subject": descriptor(media_type::OCI_IMAGE_MANIFEST, &image.bytes),
    });
    app.push_manifest("lib/app", "sig", &manifest).await;

    let resp = app
        .get(&format!("/v2/lib/app/referrers/{}", image.digest))
        .await;
    assert_eq!(
        referrers_of(&resp),
        vec![expected_descriptor(&manifest, config_type)]
    );
}

#[tokio::test]
async fn index_with_a_subject_is_a_referrer_with_its_artifact_type() {
    let app = TestApp::start().await;
    let (image, sbom, _) = image_with_two_referrers(&app).await;
    let mut index = image_index(&[manifest_descriptor(&sbom)]);
    index["artifactType"] = json!("application/vnd.example.bundle");
    index["subject"] = descriptor(media_type::OCI_IMAGE_MANIFEST, &image.bytes);
    let index_body = to_bytes(&index);
    let resp = app
        .put_manifest(
            "lib/app",
            "bundle",
            media_type::OCI_IMAGE_INDEX,
            &index_body,
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(resp.header("oci-subject"), Some(&*image.digest.to_string()));

    let resp = app
        .get(&format!(
            "/v2/lib/app/referrers/{}?artifactType=application/vnd.example.bundle",
            image.digest
        ))
        .await;
    assert_eq!(
        referrers_of(&resp),
        vec![expected_descriptor(
            &index,
            "application/vnd.example.bundle"
        )]
    );
}

#[tokio::test]
async fn referrer_pushed_before_its_subject_is_listed() {
    let app = TestApp::start().await;
    app.push_blob("lib/app", EMPTY_CONFIG).await;
    let subject_bytes = b"{\"a manifest\":\"pushed later\"}";
    let subject = descriptor(media_type::OCI_IMAGE_MANIFEST, subject_bytes);
    let signature = artifact_manifest(SIGNATURE, &subject);
    app.push_manifest("lib/app", "sig", &signature).await;

    let resp = app
        .get(&format!(
            "/v2/lib/app/referrers/{}",
            Digest::sha256_of(subject_bytes)
        ))
        .await;
    assert_eq!(
        referrers_of(&resp),
        vec![expected_descriptor(&signature, SIGNATURE)]
    );
}

#[tokio::test]
async fn referrers_are_per_repository() {
    let app = TestApp::start().await;
    let (image, _, _) = image_with_two_referrers(&app).await;
    let resp = app
        .get(&format!("/v2/other/repo/referrers/{}", image.digest))
        .await;
    assert_eq!(referrers_of(&resp), Vec::<Value>::new());
}

#[tokio::test]
async fn deleted_referrer_leaves_the_list() {
    let app = TestApp::start().await;
    let (image, sbom, signature) = image_with_two_referrers(&app).await;
    let sbom_digest = Digest::sha256_of(&to_bytes(&sbom));
    let resp = app
        .delete(&format!("/v2/lib/app/manifests/{sbom_digest}"))
        .await;
    assert_eq!(resp.status, 202);

    let resp = app
        .get(&format!("/v2/lib/app/referrers/{}", image.digest))
        .await;
    assert_eq!(
        referrers_of(&resp),
        vec![expected_descriptor(&signature, SIGNATURE)]
    );
}

#[tokio::test]
async fn referrers_of_a_malformed_digest_is_400_digest_invalid() {
    let app = TestApp::start().await;
    app.get("/v2/lib/app/referrers/sha256:abc")
        .await
        .assert_error(400, "DIGEST_INVALID");
    app.get("/v2/lib/app/referrers/latest")
        .await
        .assert_error(400, "DIGEST_INVALID");
}
