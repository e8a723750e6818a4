//! end-2 and end-10: pulling blobs (whole and by range) and deleting them.

use berth_core::digest::{Algorithm, Digest};
use reqwest::Method;

use crate::support::{TestApp, random_bytes};

#[tokio::test]
async fn get_blob_returns_its_bytes_with_digest_length_and_octet_stream_type() {
    let app = TestApp::start().await;
    let bytes = random_bytes(1000);
    let digest = app.push_blob("lib/data", &bytes).await;

    let resp = app.get(&format!("/v2/lib/data/blobs/{digest}")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, bytes);
    assert_eq!(resp.header("content-length"), Some("1000"));
    assert_eq!(
        resp.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        resp.header("docker-content-digest"),
        Some(&*digest.to_string())
    );
}

#[tokio::test]
async fn head_blob_returns_content_length_and_digest_without_a_body() {
    let app = TestApp::start().await;
    let bytes = random_bytes(4321);
    let digest = app.push_blob("lib/data", &bytes).await;

    let resp = app.head(&format!("/v2/lib/data/blobs/{digest}")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-length"), Some("4321"));
    assert_eq!(
        resp.header("docker-content-digest"),
        Some(&*digest.to_string())
    );
    assert!(resp.body.is_empty());
}

#[tokio::test]
async fn unknown_blob_is_404_blob_unknown_on_get_and_404_on_head() {
    let app = TestApp::start().await;
    app.push_blob("lib/data", b"something").await;
    let missing = Digest::sha256_of(b"never pushed");

    app.get(&format!("/v2/lib/data/blobs/{missing}"))
        .await
        .assert_error(404, "BLOB_UNKNOWN");
    app.get(&format!("/v2/no/such/repo/blobs/{missing}"))
        .await
        .assert_error(404, "BLOB_UNKNOWN");
    let head = app.head(&format!("/v2/lib/data/blobs/{missing}")).await;
    assert_eq!(head.status, 404);
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn blob_pushed_to_one_repository_is_not_readable_from_another() {
    let app = TestApp::start().await;
    let digest = app.push_blob("a/x", b"private to a/x").await;

    app.get(&format!("/v2/b/y/blobs/{digest}"))
        .await
        .assert_error(404, "BLOB_UNKNOWN");
    assert_eq!(
        app.head(&format!("/v2/b/y/blobs/{digest}")).await.status,
        404
    );
    // Pushing the same bytes to b/y links them there.
    app.push_blob("b/y", b"private to a/x").await;
    let resp = app.get(&format!("/v2/b/y/blobs/{digest}")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"private to a/x");
}

#[tokio::test]
async fn range_request_for_the_first_bytes_is_206_with_content_range() {
    let app = TestApp::start().await;
    let bytes = random_bytes(100);
    let digest = app.push_blob("r", &bytes).await;

    let resp = app
        .send(
            app.request(Method::GET, &format!("/v2/r/blobs/{digest}"))
                .header("range", "bytes=10-19"),
        )
        .await;
    assert_eq!(resp.status, 206);
    assert_eq!(resp.body, &bytes[10..20]);
    assert_eq!(resp.header("content-range"), Some("bytes 10-19/100"));
    assert_eq!(resp.header("content-length"), Some("10"));
}

#[tokio::test]
async fn open_ended_and_suffix_ranges_are_206() {
    let app = TestApp::start().await;
    let bytes = random_bytes(100);
    let digest = app.push_blob("r", &bytes).await;
    let path = format!("/v2/r/blobs/{digest}");

    let resp = app
        .send(app.request(Method::GET, &path).header("range", "bytes=95-"))
        .await;
    assert_eq!(resp.status, 206);
    assert_eq!(resp.body, &bytes[95..]);
    assert_eq!(resp.header("content-range"), Some("bytes 95-99/100"));

    let resp = app
        .send(app.request(Method::GET, &path).header("range", "bytes=-7"))
        .await;
    assert_eq!(resp.status, 206);
    assert_eq!(resp.body, &bytes[93..]);
    assert_eq!(resp.header("content-range"), Some("bytes 93-99/100"));
}

#[tokio::test]
async fn range_past_the_end_is_416_with_content_range_star_size() {
    let app = TestApp::start().await;
    let digest = app.push_blob("r", &random_bytes(100)).await;

    let resp = app
        .send(
            app.request(Method::GET, &format!("/v2/r/blobs/{digest}"))
                .header("range", "bytes=100-200"),
        )
        .await;
    resp.assert_error(416, "RANGE_INVALID");
    assert_eq!(resp.header("content-range"), Some("bytes */100"));
}

#[tokio::test]
async fn range_on_an_empty_blob_is_416_with_content_range_star_zero() {
    let app = TestApp::start().await;
    let digest = app.push_blob("r", b"").await;
    assert_eq!(digest, Digest::sha256_of(b""));

    let whole = app.get(&format!("/v2/r/blobs/{digest}")).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("content-length"), Some("0"));
    let resp = app
        .send(
            app.request(Method::GET, &format!("/v2/r/blobs/{digest}"))
                .header("range", "bytes=0-0"),
        )
        .await;
    resp.assert_error(416, "RANGE_INVALID");
    assert_eq!(resp.header("content-range"), Some("bytes */0"));
}

#[tokio::test]
async fn sha512_blob_is_pushed_and_pulled_by_its_sha512_digest() {
    let app = TestApp::start().await;
    let bytes = random_bytes(3000);
    let digest = Digest::from_bytes(Algorithm::Sha512, &bytes);

    let resp = app
        .post(&format!("/v2/s/blobs/uploads/?digest={digest}"), &bytes)
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(
        resp.header("docker-content-digest"),
        Some(&*digest.to_string())
    );
    let pulled = app.get(&format!("/v2/s/blobs/{digest}")).await;
    assert_eq!(pulled.status, 200);
    assert_eq!(pulled.body, bytes);
    // The sha256 name of the same bytes was never pushed.
    let sha256 = Digest::sha256_of(&bytes);
    assert_eq!(app.head(&format!("/v2/s/blobs/{sha256}")).await.status, 404);
}

#[tokio::test]
async fn delete_blob_is_202_and_then_the_blob_is_404() {
    let app = TestApp::start().await;
    let digest = app.push_blob("d", b"to be deleted").await;

    let resp = app.delete(&format!("/v2/d/blobs/{digest}")).await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    app.get(&format!("/v2/d/blobs/{digest}"))
        .await
        .assert_error(404, "BLOB_UNKNOWN");
    assert_eq!(app.head(&format!("/v2/d/blobs/{digest}")).await.status, 404);
}

#[tokio::test]
async fn delete_of_an_unknown_blob_is_404_blob_unknown() {
    let app = TestApp::start().await;
    app.push_blob("d", b"present").await;
    let missing = Digest::sha256_of(b"absent");
    app.delete(&format!("/v2/d/blobs/{missing}"))
        .await
        .assert_error(404, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn deleting_a_blob_in_one_repository_keeps_it_in_another() {
    let app = TestApp::start().await;
    let digest = app.push_blob("one", b"shared bytes").await;
    app.push_blob("two", b"shared bytes").await;

    assert_eq!(
        app.delete(&format!("/v2/one/blobs/{digest}")).await.status,
        202
    );
    assert_eq!(
        app.head(&format!("/v2/one/blobs/{digest}")).await.status,
        404
    );
    let resp = app.get(&format!("/v2/two/blobs/{digest}")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"shared bytes");
}
