//! Malformed names, tags, digests and upload ids: 400 with the spec's code,
//! never a traversal and never a 500. Paths with `..` or `%2e%2e` go over a
//! raw TCP connection, since HTTP clients normalise them away.

use berth_core::digest::Digest;

use crate::support::{TestApp, random_bytes};

#[tokio::test]
async fn dot_dot_in_a_name_is_400_name_invalid() {
    let app = TestApp::start().await;
    let digest = app.push_blob("b", b"target of a traversal").await;

    for (method, path) in [
        ("GET", "/v2/a/../b/manifests/latest".to_owned()),
        ("HEAD", format!("/v2/a/../b/blobs/{digest}")),
        ("GET", format!("/v2/a/../b/blobs/{digest}")),
        ("GET", "/v2/../b/tags/list".to_owned()),
        ("GET", "/v2/a/./b/tags/list".to_owned()),
    ] {
        let resp = app.raw(method, &path, &[]).await;
        if method == "HEAD" {
            assert_eq!(resp.status, 400, "{method} {path}");
        } else {
            resp.assert_error(400, "NAME_INVALID");
        }
    }
    let resp = app
        .raw(
            "POST",
            "/v2/a/../b/blobs/uploads/",
            &[("Content-Length", "0")],
        )
        .await;
    resp.assert_error(400, "NAME_INVALID");
}

#[tokio::test]
async fn percent_encoded_dot_dot_or_slash_in_a_name_is_400_name_invalid() {
    let app = TestApp::start().await;
    let digest = app.push_blob("b", b"target of a traversal").await;

    for path in [
        "/v2/a/%2e%2e/b/manifests/latest".to_owned(),
        "/v2/a/%2E%2E/b/manifests/latest".to_owned(),
        format!("/v2/a/%2e%2e/b/blobs/{digest}"),
        format!("/v2/%2e%2e/b/blobs/{digest}"),
        "/v2/a%2Fb/tags/list".to_owned(),
    ] {
        app.raw("GET", &path, &[])
            .await
            .assert_error(400, "NAME_INVALID");
    }
}

#[tokio::test]
async fn names_outside_the_grammar_are_400_name_invalid() {
    let app = TestApp::start().await;
    let long = format!("{}/x", "a".repeat(254));
    for name in [
        "Upper/case",
        "a//b",
        "a/",
        "-a",
        "a-",
        "a..b",
        "a___b",
        "_catalog",
        "a b",
        long.as_str(),
    ] {
        let path = format!("/v2/{}/tags/list", name.replace(' ', "%20"));
        app.get(&path).await.assert_error(400, "NAME_INVALID");
    }
    app.post("/v2/Upper/blobs/uploads/", b"")
        .await
        .assert_error(400, "NAME_INVALID");
}

#[tokio::test]
async fn malformed_blob_digests_are_400_digest_invalid() {
    let app = TestApp::start().await;
    let good = Digest::sha256_of(b"x").to_string();
    for digest in [
        "sha256:abc".to_owned(),
        good.to_uppercase().replace("SHA256", "sha256"),
        format!("{good}0"),
        good.replace("sha256", "sha1"),
        "sha256".to_owned(),
    ] {
        app.get(&format!("/v2/lib/app/blobs/{digest}"))
            .await
            .assert_error(400, "DIGEST_INVALID");
        app.delete(&format!("/v2/lib/app/blobs/{digest}"))
            .await
            .assert_error(400, "DIGEST_INVALID");
    }
    app.raw("GET", "/v2/lib/app/blobs/sha256:..%2F..%2Fetc", &[])
        .await
        .assert_error(400, "DIGEST_INVALID");
}

#[tokio::test]
async fn malformed_digest_on_a_monolithic_push_is_400_and_stores_nothing() {
    let app = TestApp::start().await;
    let bytes = random_bytes(10);
    app.post("/v2/lib/app/blobs/uploads/?digest=sha256:nothex", &bytes)
        .await
        .assert_error(400, "DIGEST_INVALID");
    assert_eq!(
        app.head(&format!("/v2/lib/app/blobs/{}", Digest::sha256_of(&bytes)))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn malformed_mount_parameters_are_400() {
    let app = TestApp::start().await;
    let digest = app.push_blob("src", b"mount").await;
    app.post("/v2/dst/blobs/uploads/?mount=sha256:zz&from=src", b"")
        .await
        .assert_error(400, "DIGEST_INVALID");
    app.post(
        &format!("/v2/dst/blobs/uploads/?mount={digest}&from=Not/Valid"),
        b"",
    )
    .await
    .assert_error(400, "NAME_INVALID");
}

#[tokio::test]
async fn malformed_upload_ids_are_404_blob_upload_unknown() {
    let app = TestApp::start().await;
    let long = "a".repeat(129);
    for id in ["abc!def", long.as_str()] {
        app.get(&format!("/v2/lib/app/blobs/uploads/{id}"))
            .await
            .assert_error(404, "BLOB_UPLOAD_UNKNOWN");
    }
    for id in ["..", "%2e%2e"] {
        app.raw(
            "PATCH",
            &format!("/v2/lib/app/blobs/uploads/{id}"),
            &[("Content-Length", "0")],
        )
        .await
        .assert_error(404, "BLOB_UPLOAD_UNKNOWN");
    }
}

#[tokio::test]
async fn dot_dot_as_a_tag_names_no_manifest() {
    let app = TestApp::start().await;
    app.push_image("lib/app", "v1").await;
    app.raw("GET", "/v2/lib/app/manifests/..", &[])
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
    app.raw("GET", "/v2/lib/app/manifests/%2e%2e", &[])
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
    app.raw(
        "PUT",
        "/v2/lib/app/manifests/..",
        &[("Content-Length", "0")],
    )
    .await
    .assert_error(400, "TAG_INVALID");
}

#[tokio::test]
async fn names_made_of_endpoint_words_are_routed_by_their_last_segments() {
    let app = TestApp::start().await;
    for name in [
        "tags/list",
        "x/blobs/uploads",
        "manifests",
        "a/referrers",
        "blobs",
    ] {
        let pushed = app.push_image(name, "list").await;
        let resp = app.get(&format!("/v2/{name}/manifests/list")).await;
        assert_eq!(resp.status, 200, "{name}");
        assert_eq!(resp.body, pushed.bytes, "{name}");
        let tags = app.get(&format!("/v2/{name}/tags/list")).await;
        assert_eq!(
            tags.json(),
            serde_json::json!({ "name": name, "tags": ["list"] })
        );
        let blob = app.get(&format!("/v2/{name}/blobs/{}", pushed.layer)).await;
        assert_eq!(blob.status, 200, "{name}");
        let location = app.start_upload(name).await;
        assert_eq!(app.get(&location).await.status, 204, "{name}");
    }
    let catalog = app.get("/v2/_catalog").await.json();
    assert_eq!(
        catalog["repositories"],
        serde_json::json!([
            "a/referrers",
            "blobs",
            "manifests",
            "tags/list",
            "x/blobs/uploads"
        ])
    );
}
