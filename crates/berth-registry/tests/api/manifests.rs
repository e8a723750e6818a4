//! end-3, end-7, end-9: pushing, pulling and deleting manifests.

use berth_core::digest::Digest;
use berth_core::media_type;
use serde_json::{Value, json};

use crate::support::{
    EMPTY_CONFIG, TestApp, descriptor, image_index, image_manifest, layer_descriptor,
    manifest_descriptor, random_bytes, to_bytes,
};

/// Pushes the empty config and a layer to `name`; returns an image manifest over them.
async fn manifest_with_blobs(app: &TestApp, name: &str) -> Value {
    let layer = random_bytes(128);
    app.push_blob(name, EMPTY_CONFIG).await;
    app.push_blob(name, &layer).await;
    image_manifest(&[layer_descriptor(&layer)])
}

#[tokio::test]
async fn put_manifest_by_tag_is_201_with_location_and_digest() {
    let app = TestApp::start().await;
    let manifest = manifest_with_blobs(&app, "lib/app").await;
    let body = to_bytes(&manifest);
    let digest = Digest::sha256_of(&body);

    let resp = app
        .put_manifest("lib/app", "v1", media_type::OCI_IMAGE_MANIFEST, &body)
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(
        resp.header("location"),
        Some(&*format!("{}/v2/lib/app/manifests/{digest}", app.base))
    );
    assert_eq!(
        resp.header("docker-content-digest"),
        Some(&*digest.to_string())
    );
    assert_eq!(resp.header("oci-subject"), None);
}

#[tokio::test]
async fn get_manifest_by_tag_and_by_digest_serves_the_exact_bytes_with_type_and_digest() {
    let app = TestApp::start().await;
    let manifest = manifest_with_blobs(&app, "lib/app").await;
    // Pretty-printed: the registry must not re-serialize what it stores.
    let body = serde_json::to_vec_pretty(&manifest).unwrap();
    let digest = Digest::sha256_of(&body);
    let put = app
        .put_manifest("lib/app", "v1", media_type::OCI_IMAGE_MANIFEST, &body)
        .await;
    assert_eq!(put.status, 201, "{}", put.text());

    for reference in ["v1".to_owned(), digest.to_string()] {
        let resp = app.get(&format!("/v2/lib/app/manifests/{reference}")).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, body);
        assert_eq!(
            resp.header("content-type"),
            Some(media_type::OCI_IMAGE_MANIFEST)
        );
        assert_eq!(
            resp.header("docker-content-digest"),
            Some(&*digest.to_string())
        );
        assert_eq!(
            resp.header("content-length"),
            Some(&*body.len().to_string())
        );
    }
}

#[tokio::test]
async fn head_manifest_has_content_length_type_and_digest_without_a_body() {
    let app = TestApp::start().await;
    let pushed = app.push_image("lib/app", "v1").await;

    for reference in ["v1".to_owned(), pushed.digest.to_string()] {
        let resp = app
            .head(&format!("/v2/lib/app/manifests/{reference}"))
            .await;
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.header("content-length"),
            Some(&*pushed.bytes.len().to_string())
        );
        assert_eq!(
            resp.header("content-type"),
            Some(media_type::OCI_IMAGE_MANIFEST)
        );
        assert_eq!(
            resp.header("docker-content-digest"),
            Some(&*pushed.digest.to_string())
        );
        assert!(resp.body.is_empty());
    }
}

#[tokio::test]
async fn put_manifest_by_digest_is_201_and_creates_no_tag() {
    let app = TestApp::start().await;
    let manifest = manifest_with_blobs(&app, "lib/app").await;
    let digest = Digest::sha256_of(&to_bytes(&manifest));

    let pushed = app
        .push_manifest("lib/app", &digest.to_string(), &manifest)
        .await;
    assert_eq!(pushed, digest);
    let resp = app.get(&format!("/v2/lib/app/manifests/{digest}")).await;
    assert_eq!(resp.status, 200);
    let tags = app.get("/v2/lib/app/tags/list").await;
    assert_eq!(tags.json(), json!({ "name": "lib/app", "tags": [] }));
}

#[tokio::test]
async fn put_manifest_under_a_digest_that_is_not_its_own_is_400_digest_invalid() {
    let app = TestApp::start().await;
    let manifest = manifest_with_blobs(&app, "lib/app").await;
    let wrong = Digest::sha256_of(b"another manifest");

    app.put_manifest(
        "lib/app",
        &wrong.to_string(),
        media_type::OCI_IMAGE_MANIFEST,
        &to_bytes(&manifest),
    )
    .await
    .assert_error(400, "DIGEST_INVALID");
    app.get(&format!("/v2/lib/app/manifests/{wrong}"))
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn manifest_referencing_a_missing_layer_or_config_is_400_manifest_blob_unknown() {
    let app = TestApp::start().await;
    let layer = random_bytes(64);
    app.push_blob("lib/app", EMPTY_CONFIG).await;
    let missing_layer = image_manifest(&[layer_descriptor(&layer)]);
    let body = to_bytes(&missing_layer);

    let resp = app
        .put_manifest("lib/app", "v1", media_type::OCI_IMAGE_MANIFEST, &body)
        .await;
    resp.assert_error(400, "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(
        resp.json()["errors"][0]["detail"]["digest"],
        Digest::sha256_of(&layer).to_string()
    );
    app.get("/v2/lib/app/manifests/v1")
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
    app.get(&format!(
        "/v2/lib/app/manifests/{}",
        Digest::sha256_of(&body)
    ))
    .await
    .assert_error(404, "MANIFEST_UNKNOWN");

    // The config is checked too: here only the layer is present.
    app.push_blob("other", &layer).await;
    let resp = app
        .put_manifest("other", "v1", media_type::OCI_IMAGE_MANIFEST, &body)
        .await;
    resp.assert_error(400, "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(
        resp.json()["errors"][0]["detail"]["digest"],
        Digest::sha256_of(EMPTY_CONFIG).to_string()
    );
}

#[tokio::test]
async fn manifest_whose_layer_is_only_in_another_repository_is_400_manifest_blob_unknown() {
    let app = TestApp::start().await;
    let manifest = manifest_with_blobs(&app, "a/x").await;
    app.push_blob("b/y", EMPTY_CONFIG).await;

    app.put_manifest(
        "b/y",
        "v1",
        media_type::OCI_IMAGE_MANIFEST,
        &to_bytes(&manifest),
    )
    .await
    .assert_error(400, "MANIFEST_BLOB_UNKNOWN");
}

#[tokio::test]
async fn index_referencing_a_missing_manifest_is_400_manifest_blob_unknown() {
    let app = TestApp::start().await;
    let present = manifest_with_blobs(&app, "multi").await;
    app.push_manifest("multi", "amd64", &present).await;
    let absent = image_manifest(&[layer_descriptor(b"never pushed")]);
    let index = image_index(&[manifest_descriptor(&present), manifest_descriptor(&absent)]);

    app.put_manifest(
        "multi",
        "latest",
        media_type::OCI_IMAGE_INDEX,
        &to_bytes(&index),
    )
    .await
    .assert_error(400, "MANIFEST_BLOB_UNKNOWN");
    app.get("/v2/multi/manifests/latest")
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn index_of_pushed_manifests_is_201_and_served_as_an_index() {
    let app = TestApp::start().await;
    let amd64 = manifest_with_blobs(&app, "multi").await;
    let arm64 = manifest_with_blobs(&app, "multi").await;
    app.push_manifest(
        "multi",
        &Digest::sha256_of(&to_bytes(&amd64)).to_string(),
        &amd64,
    )
    .await;
    app.push_manifest(
        "multi",
        &Digest::sha256_of(&to_bytes(&arm64)).to_string(),
        &arm64,
    )
    .await;
    let index = image_index(&[manifest_descriptor(&amd64), manifest_descriptor(&arm64)]);
    let digest = app.push_manifest("multi", "latest", &index).await;

    let resp = app.get("/v2/multi/manifests/latest").await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some(media_type::OCI_IMAGE_INDEX)
    );
    assert_eq!(
        resp.header("docker-content-digest"),
        Some(&*digest.to_string())
    );
    assert_eq!(resp.body, to_bytes(&index));
}

#[tokio::test]
async fn manifest_whose_subject_is_missing_is_201_with_oci_subject() {
    let app = TestApp::start().await;
    let mut manifest = manifest_with_blobs(&app, "sig").await;
    let subject = image_manifest(&[layer_descriptor(b"a manifest never pushed here")]);
    let subject_digest = Digest::sha256_of(&to_bytes(&subject));
    manifest["subject"] = manifest_descriptor(&subject);
    let body = to_bytes(&manifest);

    let resp = app
        .put_manifest(
            "sig",
            &Digest::sha256_of(&body).to_string(),
            media_type::OCI_IMAGE_MANIFEST,
            &body,
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(
        resp.header("oci-subject"),
        Some(&*subject_digest.to_string())
    );
    assert_eq!(
        resp.header("docker-content-digest"),
        Some(&*Digest::sha256_of(&body).to_string())
    );
}

/// A valid manifest padded (with an annotation) to exactly `size` bytes.
fn manifest_of_size(size: usize) -> Vec<u8> {
    let mut manifest = image_manifest(&[]);
    manifest["annotations"] = json!({ "pad": "" });
    let base = to_bytes(&manifest).len();
    manifest["annotations"]["pad"] = Value::String("x".repeat(size - base));
    let body = to_bytes(&manifest);
    assert_eq!(body.len(), size);
    body
}

#[tokio::test]
async fn manifest_of_exactly_4_mib_is_accepted() {
    let app = TestApp::start().await;
    app.push_blob("big", EMPTY_CONFIG).await;
    let body = manifest_of_size(4 * 1024 * 1024);

    let resp = app
        .put_manifest("big", "v1", media_type::OCI_IMAGE_MANIFEST, &body)
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(app.get("/v2/big/manifests/v1").await.body, body);
}

#[tokio::test]
async fn manifest_over_4_mib_is_413() {
    let app = TestApp::start().await;
    app.push_blob("big", EMPTY_CONFIG).await;
    let body = manifest_of_size(4 * 1024 * 1024 + 1);

    let resp = app
        .put_manifest("big", "v1", media_type::OCI_IMAGE_MANIFEST, &body)
        .await;
    resp.assert_error(413, "SIZE_INVALID");
    app.get("/v2/big/manifests/v1")
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn manifest_over_4_mib_sent_chunked_without_content_length_is_413() {
    let app = TestApp::start().await;
    app.push_blob("big", EMPTY_CONFIG).await;
    let body = manifest_of_size(4 * 1024 * 1024 + 1);

    let mut request = format!(
        "PUT /v2/big/manifests/v1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        media_type::OCI_IMAGE_MANIFEST,
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    app.raw_bytes(&request)
        .await
        .assert_error(413, "SIZE_INVALID");
}

#[tokio::test]
async fn unknown_reference_is_404_manifest_unknown() {
    let app = TestApp::start().await;
    app.push_image("lib/app", "v1").await;
    let unknown = Digest::sha256_of(b"no such manifest");

    app.get("/v2/lib/app/manifests/v2")
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
    app.get(&format!("/v2/lib/app/manifests/{unknown}"))
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
    let head = app.head("/v2/lib/app/manifests/v2").await;
    assert_eq!(head.status, 404);
    assert!(head.body.is_empty());
}

/// Regression (conformance v1.1.1 "GET nonexistent manifest should return
/// 404", which asks for `.INVALID_MANIFEST_NAME`): a reference that is
/// neither a valid tag nor a digest names no manifest. GET, HEAD and DELETE
/// answered 400; they answer 404 `MANIFEST_UNKNOWN`, while a push under it
/// is still refused with the parse error.
#[tokio::test]
async fn reference_that_is_neither_tag_nor_digest_is_404_to_read_and_delete_but_400_to_push() {
    let app = TestApp::start().await;
    let manifest = manifest_with_blobs(&app, "lib/app").await;
    let long_tag = "t".repeat(129);
    let md5 = format!("md5:{}", "0".repeat(32));
    for reference in [
        ".INVALID_MANIFEST_NAME",
        "-v1",
        long_tag.as_str(),
        "sha256:1234",
        md5.as_str(),
    ] {
        let path = format!("/v2/lib/app/manifests/{reference}");
        let message = app.get(&path).await.assert_error(404, "MANIFEST_UNKNOWN");
        assert!(
            message.contains("neither a valid tag nor a digest"),
            "{reference}: {message}"
        );
        let head = app.head(&path).await;
        assert_eq!(head.status, 404, "HEAD {reference}");
        assert!(head.body.is_empty());
        app.delete(&path)
            .await
            .assert_error(404, "MANIFEST_UNKNOWN");
    }
    for (reference, code) in [
        (".INVALID_MANIFEST_NAME", "TAG_INVALID"),
        ("-v1", "TAG_INVALID"),
        ("sha256:1234", "DIGEST_INVALID"),
    ] {
        app.put_manifest(
            "lib/app",
            reference,
            media_type::OCI_IMAGE_MANIFEST,
            &to_bytes(&manifest),
        )
        .await
        .assert_error(400, code);
    }
}

#[tokio::test]
async fn put_under_a_malformed_tag_is_400_tag_invalid() {
    let app = TestApp::start().await;
    let manifest = manifest_with_blobs(&app, "lib/app").await;
    app.put_manifest(
        "lib/app",
        ".hidden",
        media_type::OCI_IMAGE_MANIFEST,
        &to_bytes(&manifest),
    )
    .await
    .assert_error(400, "TAG_INVALID");
}

#[tokio::test]
async fn manifest_that_is_not_json_is_400_manifest_invalid() {
    let app = TestApp::start().await;
    app.put_manifest("lib/app", "v1", media_type::OCI_IMAGE_MANIFEST, b"not json")
        .await
        .assert_error(400, "MANIFEST_INVALID");
    app.put_manifest(
        "lib/app",
        "v1",
        media_type::OCI_IMAGE_MANIFEST,
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#,
    )
    .await
    .assert_error(400, "MANIFEST_INVALID");
}

#[tokio::test]
async fn content_type_that_contradicts_the_media_type_field_is_400_manifest_invalid() {
    let app = TestApp::start().await;
    let manifest = manifest_with_blobs(&app, "lib/app").await;
    app.put_manifest(
        "lib/app",
        "v1",
        media_type::OCI_IMAGE_INDEX,
        &to_bytes(&manifest),
    )
    .await
    .assert_error(400, "MANIFEST_INVALID");
}

#[tokio::test]
async fn media_type_comes_from_the_body_when_content_type_is_absent() {
    let app = TestApp::start().await;
    let manifest = manifest_with_blobs(&app, "lib/app").await;
    let resp = app
        .send(
            app.request(reqwest::Method::PUT, "/v2/lib/app/manifests/v1")
                .body(to_bytes(&manifest)),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(
        app.get("/v2/lib/app/manifests/v1")
            .await
            .header("content-type"),
        Some(media_type::OCI_IMAGE_MANIFEST)
    );

    let mut untyped = manifest.clone();
    untyped.as_object_mut().unwrap().remove("mediaType");
    app.send(
        app.request(reqwest::Method::PUT, "/v2/lib/app/manifests/v2")
            .body(to_bytes(&untyped)),
    )
    .await
    .assert_error(400, "MANIFEST_INVALID");
}

#[tokio::test]
async fn docker_schema_2_manifest_is_stored_and_served_with_its_media_type() {
    let app = TestApp::start().await;
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = random_bytes(100);
    app.push_blob("docker/app", config).await;
    app.push_blob("docker/app", &layer).await;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media_type::DOCKER_MANIFEST_V2,
        "config": descriptor(media_type::DOCKER_CONFIG, config),
        "layers": [descriptor(media_type::DOCKER_LAYER_TAR_GZIP, &layer)],
    });
    let digest = app.push_manifest("docker/app", "latest", &manifest).await;

    let resp = app.get("/v2/docker/app/manifests/latest").await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some(media_type::DOCKER_MANIFEST_V2)
    );
    assert_eq!(
        resp.header("docker-content-digest"),
        Some(&*digest.to_string())
    );
}

#[tokio::test]
async fn docker_schema_1_manifest_is_400_manifest_invalid() {
    let app = TestApp::start().await;
    let body = br#"{"schemaVersion":1,"name":"lib/app","tag":"v1","fsLayers":[],"history":[]}"#;
    app.put_manifest(
        "lib/app",
        "v1",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        body,
    )
    .await
    .assert_error(400, "MANIFEST_INVALID");
}

#[tokio::test]
async fn manifest_pushed_to_one_repository_is_unknown_in_another() {
    let app = TestApp::start().await;
    let pushed = app.push_image("a/x", "v1").await;
    app.push_image("b/y", "v2").await;

    app.get("/v2/b/y/manifests/v1")
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
    app.get(&format!("/v2/b/y/manifests/{}", pushed.digest))
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn pushing_a_tag_again_moves_it_to_the_new_manifest() {
    let app = TestApp::start().await;
    let first = app.push_image("lib/app", "latest").await;
    let second = app.push_image("lib/app", "latest").await;
    assert_ne!(first.digest, second.digest);

    let resp = app.get("/v2/lib/app/manifests/latest").await;
    assert_eq!(resp.body, second.bytes);
    // The first manifest stays, by digest.
    let old = app
        .get(&format!("/v2/lib/app/manifests/{}", first.digest))
        .await;
    assert_eq!(old.status, 200);
    assert_eq!(old.body, first.bytes);
}

#[tokio::test]
async fn pushing_the_same_manifest_twice_is_201_both_times() {
    let app = TestApp::start().await;
    let manifest = manifest_with_blobs(&app, "lib/app").await;
    let first = app.push_manifest("lib/app", "v1", &manifest).await;
    let second = app.push_manifest("lib/app", "v2", &manifest).await;
    assert_eq!(first, second);
    let tags = app.get("/v2/lib/app/tags/list").await.json();
    assert_eq!(tags["tags"], json!(["v1", "v2"]));
}

#[tokio::test]
async fn delete_by_tag_is_202_removes_the_tag_and_keeps_the_manifest() {
    let app = TestApp::start().await;
    let pushed = app.push_image("lib/app", "v1").await;
    app.push_manifest(
        "lib/app",
        "v2",
        &serde_json::from_slice(&pushed.bytes).unwrap(),
    )
    .await;

    let resp = app.delete("/v2/lib/app/manifests/v1").await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    app.get("/v2/lib/app/manifests/v1")
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
    let by_digest = app
        .get(&format!("/v2/lib/app/manifests/{}", pushed.digest))
        .await;
    assert_eq!(by_digest.status, 200);
    assert_eq!(by_digest.body, pushed.bytes);
    assert_eq!(app.get("/v2/lib/app/manifests/v2").await.status, 200);
    let tags = app.get("/v2/lib/app/tags/list").await.json();
    assert_eq!(tags["tags"], json!(["v2"]));
}

#[tokio::test]
async fn delete_by_digest_is_202_and_removes_the_manifest_and_every_tag_on_it() {
    let app = TestApp::start().await;
    let pushed = app.push_image("lib/app", "v1").await;
    let manifest: Value = serde_json::from_slice(&pushed.bytes).unwrap();
    app.push_manifest("lib/app", "stable", &manifest).await;
    let other = app.push_image("lib/app", "other").await;

    let resp = app
        .delete(&format!("/v2/lib/app/manifests/{}", pushed.digest))
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    for reference in [
        "v1".to_owned(),
        "stable".to_owned(),
        pushed.digest.to_string(),
    ] {
        app.get(&format!("/v2/lib/app/manifests/{reference}"))
            .await
            .assert_error(404, "MANIFEST_UNKNOWN");
    }
    let tags = app.get("/v2/lib/app/tags/list").await.json();
    assert_eq!(tags["tags"], json!(["other"]));
    assert_eq!(
        app.get(&format!("/v2/lib/app/manifests/{}", other.digest))
            .await
            .status,
        200
    );
    // The layers stay: deleting a manifest does not delete blobs.
    assert_eq!(
        app.head(&format!("/v2/lib/app/blobs/{}", pushed.layer))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn delete_of_an_unknown_manifest_is_404_manifest_unknown() {
    let app = TestApp::start().await;
    app.push_image("lib/app", "v1").await;
    app.delete("/v2/lib/app/manifests/nope")
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
    app.delete(&format!(
        "/v2/lib/app/manifests/{}",
        Digest::sha256_of(b"nope")
    ))
    .await
    .assert_error(404, "MANIFEST_UNKNOWN");
    app.delete("/v2/never/pushed/manifests/v1")
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_to_the_same_tag_all_succeed_and_the_tag_names_one_of_them() {
    let app = std::sync::Arc::new(TestApp::start().await);
    let mut manifests = Vec::new();
    for _ in 0..8 {
        manifests.push(manifest_with_blobs(&app, "race").await);
    }
    let digests: Vec<Digest> = manifests
        .iter()
        .map(|m| Digest::sha256_of(&to_bytes(m)))
        .collect();

    let mut pushes = Vec::new();
    for manifest in manifests {
        let app = app.clone();
        pushes.push(tokio::spawn(async move {
            app.push_manifest("race", "latest", &manifest).await
        }));
    }
    for push in pushes {
        push.await.unwrap();
    }
    let resp = app.get("/v2/race/manifests/latest").await;
    assert_eq!(resp.status, 200);
    let served = Digest::sha256_of(&resp.body);
    assert!(digests.contains(&served));
    assert_eq!(
        resp.header("docker-content-digest"),
        Some(&*served.to_string())
    );
    let tags = app.get("/v2/race/tags/list").await.json();
    assert_eq!(tags["tags"], json!(["latest"]));
    for digest in digests {
        assert_eq!(
            app.head(&format!("/v2/race/manifests/{digest}"))
                .await
                .status,
            200
        );
    }
}

#[tokio::test]
async fn deletion_disabled_by_the_operator_is_405_unsupported_and_deletes_nothing() {
    let app = TestApp::start_with(|config| config.delete_enabled = false).await;
    let pushed = app.push_image("lib/app", "v1").await;

    for path in [
        "/v2/lib/app/manifests/v1".to_owned(),
        format!("/v2/lib/app/manifests/{}", pushed.digest),
        format!("/v2/lib/app/blobs/{}", pushed.layer),
    ] {
        app.delete(&path).await.assert_error(405, "UNSUPPORTED");
        assert_eq!(app.head(&path).await.status, 200, "{path}");
    }
}

/// `Accept` negotiation: a manifest is served when its media type (or a
/// wildcard covering it) is accepted, and is MANIFEST_UNKNOWN when the client
/// accepts only other types; berth never converts the stored bytes.
#[tokio::test]
async fn accept_header_admits_or_excludes_the_stored_media_type() {
    let app = TestApp::start().await;
    let manifest = manifest_with_blobs(&app, "lib/accept").await;
    app.push_manifest("lib/accept", "v1", &manifest).await;
    let get = |accept: &'static str| {
        app.send(
            app.request(reqwest::Method::GET, "/v2/lib/accept/manifests/v1")
                .header("accept", accept),
        )
    };
    let both = get("application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json").await;
    assert_eq!(both.status, 200);
    assert_eq!(
        both.header("content-type"),
        Some(media_type::OCI_IMAGE_MANIFEST)
    );
    assert_eq!(get("*/*").await.status, 200);
    assert_eq!(get("application/*").await.status, 200);
    get("application/vnd.docker.distribution.manifest.v2+json")
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
    get("application/vnd.oci.image.manifest.v1+json;q=0, application/vnd.docker.distribution.manifest.v2+json")
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
}

/// Regression: a manifest pushed as `text/html` (with no `mediaType` to
/// contradict it) was stored and served back as `text/html`. Only manifest
/// media types are accepted; the message names them.
#[tokio::test]
async fn manifest_pushed_under_a_type_that_is_not_a_manifest_type_is_400_manifest_invalid() {
    let app = TestApp::start().await;
    let mut manifest = manifest_with_blobs(&app, "lib/app").await;
    manifest.as_object_mut().unwrap().remove("mediaType");
    for content_type in [
        "text/html",
        "text/html; charset=utf-8",
        "application/json",
        "application/octet-stream",
        "application/vnd.oci.artifact.manifest.v1+json",
        "application/vnd.example.thing.v1+json",
    ] {
        let message = app
            .put_manifest("lib/app", "v1", content_type, &to_bytes(&manifest))
            .await
            .assert_error(400, "MANIFEST_INVALID");
        for accepted in [
            media_type::OCI_IMAGE_MANIFEST,
            media_type::OCI_IMAGE_INDEX,
            media_type::DOCKER_MANIFEST_V2,
            media_type::DOCKER_MANIFEST_LIST,
        ] {
            assert!(message.contains(accepted), "{content_type}: {message}");
        }
    }
    app.get("/v2/lib/app/manifests/v1")
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");

    // The same bytes as a manifest type are accepted (the type may carry parameters).
    let resp = app
        .put_manifest(
            "lib/app",
            "v1",
            "application/vnd.oci.image.manifest.v1+json; charset=utf-8",
            &to_bytes(&manifest),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(
        app.get("/v2/lib/app/manifests/v1")
            .await
            .header("content-type"),
        Some(media_type::OCI_IMAGE_MANIFEST)
    );
}

/// Without a `Content-Type`, the `mediaType` of the body must be a manifest type too.
#[tokio::test]
async fn media_type_field_that_is_not_a_manifest_type_is_400_manifest_invalid() {
    let app = TestApp::start().await;
    let mut manifest = manifest_with_blobs(&app, "lib/app").await;
    manifest["mediaType"] = json!("text/html");
    let resp = app
        .send(
            app.request(reqwest::Method::PUT, "/v2/lib/app/manifests/v1")
                .body(to_bytes(&manifest)),
        )
        .await;
    let message = resp.assert_error(400, "MANIFEST_INVALID");
    assert!(message.contains("text/html"), "{message}");
}

/// Regression: every answer carries `X-Content-Type-Options: nosniff`, so a
/// browser never runs pushed content as a page of the registry's origin.
#[tokio::test]
async fn every_answer_carries_nosniff() {
    let app = TestApp::start().await;
    let pushed = app.push_image("lib/app", "v1").await;
    let answers = [
        app.get("/v2/").await,
        app.get("/v2/lib/app/manifests/v1").await,
        app.head("/v2/lib/app/manifests/v1").await,
        app.get(&format!("/v2/lib/app/blobs/{}", pushed.layer))
            .await,
        app.get("/v2/lib/app/manifests/v9").await,
        app.get("/v2/lib/app/tags/list").await,
        app.get("/v2/_catalog").await,
        app.post("/v2/lib/app/blobs/uploads/", b"").await,
    ];
    for resp in &answers {
        assert_eq!(
            resp.header("x-content-type-options"),
            Some("nosniff"),
            "status {}: {}",
            resp.status,
            resp.text()
        );
    }
    // Outside /v2 (no API version header to check there).
    for path in ["/metrics", "/token", "/api/v1/users", "/no/such/path"] {
        let resp = reqwest::get(app.url(path)).await.unwrap();
        assert_eq!(
            resp.headers()
                .get("x-content-type-options")
                .map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{path}: status {}",
            resp.status()
        );
    }
}

/// Regression: a manifest whose descriptor stated a wrong size was accepted.
/// Every linked blob's size is known: a layer, the config or an index's child
/// stating another size is 400 `MANIFEST_INVALID` naming the descriptor, the
/// stated and the real size.
#[tokio::test]
async fn descriptor_stating_a_wrong_size_is_400_manifest_invalid_naming_it() {
    let app = TestApp::start().await;
    let first = random_bytes(64);
    let second = random_bytes(100);
    app.push_blob("lib/app", EMPTY_CONFIG).await;
    app.push_blob("lib/app", &first).await;
    let second_digest = app.push_blob("lib/app", &second).await;

    let mut wrong_layer = layer_descriptor(&second);
    wrong_layer["size"] = json!(99);
    let manifest = image_manifest(&[layer_descriptor(&first), wrong_layer]);
    let resp = app
        .put_manifest(
            "lib/app",
            "v1",
            media_type::OCI_IMAGE_MANIFEST,
            &to_bytes(&manifest),
        )
        .await;
    let message = resp.assert_error(400, "MANIFEST_INVALID");
    assert!(
        message.contains("layers[1]")
            && message.contains(&second_digest.to_string())
            && message.contains("99")
            && message.contains("100 bytes"),
        "{message}"
    );
    assert_eq!(
        resp.json()["errors"][0]["detail"],
        json!({"descriptor": "layers[1]", "digest": second_digest.to_string(), "size": 99, "actual": 100})
    );

    let mut manifest = image_manifest(&[layer_descriptor(&first)]);
    manifest["config"]["size"] = json!(3);
    let message = app
        .put_manifest(
            "lib/app",
            "v1",
            media_type::OCI_IMAGE_MANIFEST,
            &to_bytes(&manifest),
        )
        .await
        .assert_error(400, "MANIFEST_INVALID");
    assert!(message.contains("config"), "{message}");
    app.get("/v2/lib/app/manifests/v1")
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");

    // An index's child manifest: its size is known too.
    let child = image_manifest(&[layer_descriptor(&first)]);
    app.push_manifest("lib/app", "child", &child).await;
    let mut child_descriptor = manifest_descriptor(&child);
    child_descriptor["size"] = json!(1);
    let message = app
        .put_manifest(
            "lib/app",
            "index",
            media_type::OCI_IMAGE_INDEX,
            &to_bytes(&image_index(&[child_descriptor])),
        )
        .await
        .assert_error(400, "MANIFEST_INVALID");
    assert!(message.contains("manifests[0]"), "{message}");
    app.push_manifest(
        "lib/app",
        "index",
        &image_index(&[manifest_descriptor(&child)]),
    )
    .await;
}
