//! The four workflows of the OCI conformance suite (distribution-spec v1.1.1
//! `conformance/`), replayed in its order against one registry each: pull,
//! push, content discovery, content management.

use berth_core::digest::Digest;
use berth_core::media_type;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    EMPTY_CONFIG, TestApp, artifact_manifest, descriptor, image_manifest, layer_descriptor,
    random_bytes, to_bytes,
};

#[tokio::test]
async fn conformance_pull_workflow() {
    let app = TestApp::start().await;
    let name = "conformance/pull";
    // Setup: config, layer, a manifest by tag and by digest.
    let layer = random_bytes(512);
    let config = app.push_blob(name, EMPTY_CONFIG).await;
    let layer_digest = app.push_blob(name, &layer).await;
    let manifest = image_manifest(&[layer_descriptor(&layer)]);
    let digest = app.push_manifest(name, "tagtest0", &manifest).await;
    app.push_manifest(name, &digest.to_string(), &manifest)
        .await;
    let missing = Digest::sha256_of(b"nonexistent");

    // Pull blobs.
    assert_eq!(
        app.head(&format!("/v2/{name}/blobs/{missing}"))
            .await
            .status,
        404
    );
    let head = app.head(&format!("/v2/{name}/blobs/{layer_digest}")).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("512"));
    app.get(&format!("/v2/{name}/blobs/{missing}"))
        .await
        .assert_error(404, "BLOB_UNKNOWN");
    let blob = app.get(&format!("/v2/{name}/blobs/{config}")).await;
    assert_eq!(blob.status, 200);
    assert_eq!(Digest::sha256_of(&blob.body), config);

    // Pull manifests.
    assert_eq!(
        app.head(&format!("/v2/{name}/manifests/{missing}"))
            .await
            .status,
        404
    );
    for reference in [digest.to_string(), "tagtest0".to_owned()] {
        let head = app.head(&format!("/v2/{name}/manifests/{reference}")).await;
        assert_eq!(head.status, 200);
        assert_eq!(
            head.header("docker-content-digest"),
            Some(&*digest.to_string())
        );
        let get = app.get(&format!("/v2/{name}/manifests/{reference}")).await;
        assert_eq!(get.status, 200);
        assert_eq!(Digest::sha256_of(&get.body), digest);
    }
    app.get(&format!("/v2/{name}/manifests/{missing}"))
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
    app.get("/v2/conformance/Pull/manifests/tagtest0")
        .await
        .assert_error(400, "NAME_INVALID");

    // Teardown.
    assert_eq!(
        app.delete(&format!("/v2/{name}/manifests/{digest}"))
            .await
            .status,
        202
    );
    for blob in [config, layer_digest] {
        assert_eq!(
            app.delete(&format!("/v2/{name}/blobs/{blob}")).await.status,
            202
        );
    }
}

#[tokio::test]
async fn conformance_push_workflow() {
    let app = TestApp::start().await;
    let name = "conformance/push";

    // Streamed upload: POST, PATCH without Content-Range, PUT ?digest=.
    let streamed = random_bytes(1000);
    let location = app.start_upload(name).await;
    let resp = app
        .send(app.request(Method::PATCH, &location).body(streamed.clone()))
        .await;
    assert_eq!(resp.status, 202);
    let resp = app
        .close_upload(
            resp.header("location").unwrap(),
            &Digest::sha256_of(&streamed),
            b"",
        )
        .await;
    assert_eq!(resp.status, 201);
    assert!(resp.header("location").is_some());

    // A GET on an upload that does not exist.
    app.get(&format!("/v2/{name}/blobs/uploads/{}", "0".repeat(32)))
        .await
        .assert_error(404, "BLOB_UPLOAD_UNKNOWN");

    // Monolithic: POST then PUT with the body; and a single POST ?digest=.
    let config = app.start_upload(name).await;
    let resp = app
        .close_upload(&config, &Digest::sha256_of(EMPTY_CONFIG), EMPTY_CONFIG)
        .await;
    assert_eq!(resp.status, 201);
    let single = random_bytes(700);
    let single_digest = app.push_blob(name, &single).await;

    // Chunked, with a status check and an out-of-order chunk.
    let layer = random_bytes(2000);
    let layer_digest = Digest::sha256_of(&layer);
    let location = app.start_upload(name).await;
    let resp = app.patch_chunk(&location, 0, &layer[..1200]).await;
    assert_eq!(resp.status, 202);
    assert_eq!(resp.header("range"), Some("0-1199"));
    let location = resp.header("location").unwrap().to_owned();
    let status = app.get(&location).await;
    assert_eq!(status.status, 204);
    assert_eq!(status.header("range"), Some("0-1199"));
    assert_eq!(
        app.patch_chunk(&location, 1500, &layer[1500..])
            .await
            .status,
        416
    );
    let resp = app.patch_chunk(&location, 1200, &layer[1200..]).await;
    assert_eq!(resp.status, 202);
    assert_eq!(resp.header("range"), Some("0-1999"));
    let resp = app
        .close_upload(resp.header("location").unwrap(), &layer_digest, b"")
        .await;
    assert_eq!(resp.status, 201);

    // Cross-repository mount: 201 from a repository holding the blob, 202 otherwise.
    let resp = app
        .post(
            &format!("/v2/conformance/other/blobs/uploads/?mount={layer_digest}&from={name}"),
            b"",
        )
        .await;
    assert_eq!(resp.status, 201);
    assert_eq!(
        resp.header("location"),
        Some(&*format!(
            "{}/v2/conformance/other/blobs/{layer_digest}",
            app.base
        ))
    );
    let resp = app
        .post(
            &format!(
                "/v2/conformance/other/blobs/uploads/?mount={single_digest}&from=conformance/nonexistent"
            ),
            b"",
        )
        .await;
    assert_eq!(resp.status, 202);
    assert!(resp.header("location").is_some());

    // Manifests: by tag, then one with a subject.
    let manifest = image_manifest(&[layer_descriptor(&layer)]);
    let body = to_bytes(&manifest);
    let resp = app
        .put_manifest(name, "tagtest0", media_type::OCI_IMAGE_MANIFEST, &body)
        .await;
    assert_eq!(resp.status, 201);
    let digest = Digest::sha256_of(&body);
    assert_eq!(
        resp.header("location"),
        Some(&*format!("{}/v2/{name}/manifests/{digest}", app.base))
    );
    let mut referrer = image_manifest(&[layer_descriptor(&single)]);
    referrer["subject"] = descriptor(media_type::OCI_IMAGE_MANIFEST, &body);
    let resp = app
        .put_manifest(
            name,
            &Digest::sha256_of(&to_bytes(&referrer)).to_string(),
            media_type::OCI_IMAGE_MANIFEST,
            &to_bytes(&referrer),
        )
        .await;
    assert_eq!(resp.status, 201);
    assert_eq!(resp.header("oci-subject"), Some(&*digest.to_string()));
    app.get(&format!("/v2/{name}/manifests/nonexistent"))
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn conformance_content_discovery_workflow() {
    let app = TestApp::start().await;
    let name = "conformance/discovery";
    let image = app.push_image(name, "test0").await;
    let manifest: Value = serde_json::from_slice(&image.bytes).unwrap();
    for tag in ["test1", "test2", "test3"] {
        app.push_manifest(name, tag, &manifest).await;
    }

    // Tags.
    let all = app.get(&format!("/v2/{name}/tags/list")).await;
    assert_eq!(all.status, 200);
    assert_eq!(
        all.json(),
        json!({ "name": name, "tags": ["test0", "test1", "test2", "test3"] })
    );
    let page = app.get(&format!("/v2/{name}/tags/list?n=2")).await;
    assert_eq!(page.json()["tags"], json!(["test0", "test1"]));
    assert_eq!(
        page.header("link"),
        Some(&*format!(
            r#"</v2/{name}/tags/list?n=2&last=test1>; rel="next""#
        ))
    );
    let page = app
        .get(&format!("/v2/{name}/tags/list?n=1&last=test2"))
        .await;
    assert_eq!(page.json()["tags"], json!(["test3"]));

    // Referrers.
    let subject = descriptor(media_type::OCI_IMAGE_MANIFEST, &image.bytes);
    let one = artifact_manifest("application/vnd.nhl.peanut.butter.bagel", &subject);
    let two = artifact_manifest("application/vnd.food.stand", &subject);
    for artifact in [&one, &two] {
        let resp = app
            .put_manifest(
                name,
                &Digest::sha256_of(&to_bytes(artifact)).to_string(),
                media_type::OCI_IMAGE_MANIFEST,
                &to_bytes(artifact),
            )
            .await;
        assert_eq!(resp.status, 201);
        assert_eq!(resp.header("oci-subject"), Some(&*image.digest.to_string()));
    }
    let resp = app
        .get(&format!("/v2/{name}/referrers/{}", image.digest))
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some(media_type::OCI_IMAGE_INDEX)
    );
    assert_eq!(resp.json()["manifests"].as_array().unwrap().len(), 2);
    let resp = app
        .get(&format!(
            "/v2/{name}/referrers/{}?artifactType=application/vnd.food.stand",
            image.digest
        ))
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("oci-filters-applied"), Some("artifactType"));
    let manifests = resp.json()["manifests"].clone();
    assert_eq!(manifests.as_array().unwrap().len(), 1);
    assert_eq!(
        manifests[0]["digest"],
        Digest::sha256_of(&to_bytes(&two)).to_string()
    );
    let resp = app
        .get(&format!(
            "/v2/{name}/referrers/{}",
            Digest::sha256_of(b"nonexistent")
        ))
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["manifests"], json!([]));
}

#[tokio::test]
async fn conformance_content_management_workflow() {
    let app = TestApp::start().await;
    let name = "conformance/management";
    let image = app.push_image(name, "tagtest0").await;
    let manifest: Value = serde_json::from_slice(&image.bytes).unwrap();
    app.push_manifest(name, "tagtest1", &manifest).await;
    let config = Digest::sha256_of(EMPTY_CONFIG);

    // Delete a tag: the tag goes, the manifest stays.
    assert_eq!(
        app.delete(&format!("/v2/{name}/manifests/tagtest0"))
            .await
            .status,
        202
    );
    app.get(&format!("/v2/{name}/manifests/tagtest0"))
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
    assert_eq!(
        app.get(&format!("/v2/{name}/manifests/{}", image.digest))
            .await
            .status,
        200
    );
    assert_eq!(
        app.get(&format!("/v2/{name}/tags/list")).await.json()["tags"],
        json!(["tagtest1"])
    );

    // Delete the manifest by digest: it and its remaining tag go.
    assert_eq!(
        app.delete(&format!("/v2/{name}/manifests/{}", image.digest))
            .await
            .status,
        202
    );
    for reference in [image.digest.to_string(), "tagtest1".to_owned()] {
        app.get(&format!("/v2/{name}/manifests/{reference}"))
            .await
            .assert_error(404, "MANIFEST_UNKNOWN");
    }
    assert_eq!(
        app.get(&format!("/v2/{name}/tags/list")).await.json()["tags"],
        json!([])
    );

    // Delete the blobs.
    for blob in [config, image.layer.clone()] {
        assert_eq!(
            app.delete(&format!("/v2/{name}/blobs/{blob}")).await.status,
            202
        );
        app.get(&format!("/v2/{name}/blobs/{blob}"))
            .await
            .assert_error(404, "BLOB_UNKNOWN");
    }
}
