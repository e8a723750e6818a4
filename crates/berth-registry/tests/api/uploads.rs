//! end-4a/4b, end-5, end-6, end-11, end-13, end-14: pushing blobs, whole,
//! in chunks, across a restart, by mount; and every way an upload goes wrong.

use berth_core::digest::Digest;
use reqwest::Method;

use crate::support::{TestApp, path_of, random_bytes, with_query};

#[tokio::test]
async fn post_starts_a_session_with_202_an_absolute_location_and_range_0_0() {
    let app = TestApp::start().await;
    let resp = app.post("/v2/lib/up/blobs/uploads/", b"").await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    let location = resp.header("location").unwrap();
    let prefix = format!("{}/v2/lib/up/blobs/uploads/", app.base);
    let id = location.strip_prefix(&prefix).unwrap();
    assert!(!id.is_empty());
    assert_eq!(resp.header("docker-upload-uuid"), Some(id));
    assert_eq!(resp.header("range"), Some("0-0"));
}

#[tokio::test]
async fn post_without_trailing_slash_also_starts_a_session() {
    let app = TestApp::start().await;
    let resp = app.post("/v2/lib/up/blobs/uploads", b"").await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    assert!(
        resp.header("location")
            .unwrap()
            .starts_with(&format!("{}/v2/lib/up/blobs/uploads/", app.base))
    );
}

#[tokio::test]
async fn monolithic_post_with_digest_is_201_with_location_and_digest() {
    let app = TestApp::start().await;
    let bytes = random_bytes(5000);
    let digest = Digest::sha256_of(&bytes);

    let resp = app
        .post(&format!("/v2/mono/blobs/uploads/?digest={digest}"), &bytes)
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(
        resp.header("location"),
        Some(&*format!("{}/v2/mono/blobs/{digest}", app.base))
    );
    assert_eq!(
        resp.header("docker-content-digest"),
        Some(&*digest.to_string())
    );
    let pulled = app.get(path_of(resp.header("location").unwrap())).await;
    assert_eq!(pulled.status, 200);
    assert_eq!(pulled.body, bytes);
}

#[tokio::test]
async fn post_then_put_with_the_whole_blob_as_body_is_201() {
    let app = TestApp::start().await;
    let bytes = random_bytes(2048);
    let digest = Digest::sha256_of(&bytes);

    let location = app.start_upload("two/step").await;
    let resp = app.close_upload(&location, &digest, &bytes).await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(
        resp.header("location"),
        Some(&*format!("{}/v2/two/step/blobs/{digest}", app.base))
    );
    assert_eq!(
        resp.header("docker-content-digest"),
        Some(&*digest.to_string())
    );
    assert_eq!(
        app.get(&format!("/v2/two/step/blobs/{digest}")).await.body,
        bytes
    );
}

#[tokio::test]
async fn chunked_upload_answers_each_patch_with_202_and_range_0_end_then_put_is_201() {
    let app = TestApp::start().await;
    let bytes = random_bytes(30_000);
    let digest = Digest::sha256_of(&bytes);
    let mut location = app.start_upload("chunky").await;

    for (start, end) in [(0, 10_000), (10_000, 25_000), (25_000, 30_000)] {
        let resp = app
            .patch_chunk(&location, start as u64, &bytes[start..end])
            .await;
        assert_eq!(resp.status, 202, "{}", resp.text());
        assert_eq!(resp.header("range"), Some(&*format!("0-{}", end - 1)));
        assert_eq!(resp.header("content-length"), Some("0"));
        location = resp.header("location").unwrap().to_owned();
    }
    let resp = app.close_upload(&location, &digest, b"").await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(
        resp.header("docker-content-digest"),
        Some(&*digest.to_string())
    );
    assert_eq!(
        app.get(&format!("/v2/chunky/blobs/{digest}")).await.body,
        bytes
    );
}

#[tokio::test]
async fn empty_blob_is_pushed_by_post_then_put_with_or_without_a_content_length() {
    let app = TestApp::start().await;
    let empty = Digest::sha256_of(b"");

    let location = app.start_upload("empty/a").await;
    let resp = app.close_upload(&location, &empty, b"").await;
    assert_eq!(resp.status, 201, "{}", resp.text());

    let location = app.start_upload("empty/b").await;
    let path = with_query(path_of(&location), &format!("digest={empty}"));
    // No Content-Length and no body at all.
    let resp = app.raw("PUT", &path, &[]).await;
    assert_eq!(resp.status, 201, "{}", resp.text());

    for name in ["empty/a", "empty/b"] {
        let resp = app.get(&format!("/v2/{name}/blobs/{empty}")).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-length"), Some("0"));
        assert!(resp.body.is_empty());
    }
}

#[tokio::test]
async fn streamed_patch_without_content_range_is_accepted() {
    let app = TestApp::start().await;
    let bytes = random_bytes(7000);
    let digest = Digest::sha256_of(&bytes);
    let location = app.start_upload("stream").await;

    let resp = app
        .send(
            app.request(Method::PATCH, &location)
                .header("content-type", "application/octet-stream")
                .body(bytes.clone()),
        )
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    assert_eq!(resp.header("range"), Some("0-6999"));
    let resp = app
        .close_upload(resp.header("location").unwrap(), &digest, b"")
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(
        app.get(&format!("/v2/stream/blobs/{digest}")).await.body,
        bytes
    );
}

#[tokio::test]
async fn upload_status_after_chunks_is_204_with_range_and_location() {
    let app = TestApp::start().await;
    let bytes = random_bytes(300);
    let location = app.start_upload("status").await;
    app.patch_chunk(&location, 0, &bytes[..100]).await;
    app.patch_chunk(&location, 100, &bytes[100..250]).await;

    let resp = app.get(&location).await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_eq!(resp.header("range"), Some("0-249"));
    assert_eq!(resp.header("location"), Some(&*location));
    assert!(resp.body.is_empty());
    // RFC 9110 section 8.6: no Content-Length on a 204 (read off the wire).
    let raw = app.raw("GET", path_of(&location), &[]).await;
    assert_eq!(raw.status, 204);
    assert_eq!(raw.header("content-length"), None);
    assert_eq!(raw.header("range"), Some("0-249"));
}

#[tokio::test]
async fn out_of_order_chunk_is_416_and_leaves_the_upload_as_it_was() {
    let app = TestApp::start().await;
    let bytes = random_bytes(30);
    let digest = Digest::sha256_of(&bytes);
    let location = app.start_upload("order").await;
    assert_eq!(
        app.patch_chunk(&location, 0, &bytes[..10]).await.status,
        202
    );

    // A gap, then an overlap: both out of order.
    app.patch_chunk(&location, 20, &bytes[20..])
        .await
        .assert_error(416, "RANGE_INVALID");
    app.patch_chunk(&location, 5, &bytes[5..15])
        .await
        .assert_error(416, "RANGE_INVALID");
    assert_eq!(app.get(&location).await.header("range"), Some("0-9"));

    assert_eq!(
        app.patch_chunk(&location, 10, &bytes[10..]).await.status,
        202
    );
    let resp = app.close_upload(&location, &digest, b"").await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(
        app.get(&format!("/v2/order/blobs/{digest}")).await.body,
        bytes
    );
}

#[tokio::test]
async fn closing_put_with_an_out_of_order_content_range_is_416() {
    let app = TestApp::start().await;
    let bytes = random_bytes(20);
    let location = app.start_upload("order").await;
    app.patch_chunk(&location, 0, &bytes[..10]).await;

    let resp = app
        .send(
            app.request(
                Method::PUT,
                &with_query(&location, &format!("digest={}", Digest::sha256_of(&bytes))),
            )
            .header("content-range", "12-19")
            .body(bytes[12..].to_vec()),
        )
        .await;
    resp.assert_error(416, "RANGE_INVALID");
    assert_eq!(app.get(&location).await.header("range"), Some("0-9"));
}

#[tokio::test]
async fn put_with_a_final_chunk_after_patches_is_201() {
    let app = TestApp::start().await;
    let bytes = random_bytes(1500);
    let digest = Digest::sha256_of(&bytes);
    let location = app.start_upload("final").await;
    app.patch_chunk(&location, 0, &bytes[..500]).await;
    app.patch_chunk(&location, 500, &bytes[500..1000]).await;

    let resp = app
        .send(
            app.request(
                Method::PUT,
                &with_query(&location, &format!("digest={digest}")),
            )
            .header("content-range", "1000-1499")
            .body(bytes[1000..].to_vec()),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(
        resp.header("location"),
        Some(&*format!("{}/v2/final/blobs/{digest}", app.base))
    );
    assert_eq!(
        app.get(&format!("/v2/final/blobs/{digest}")).await.body,
        bytes
    );
}

#[tokio::test]
async fn wrong_digest_on_the_closing_put_is_400_digest_invalid_and_nothing_is_visible() {
    let app = TestApp::start().await;
    let bytes = random_bytes(100);
    let claimed = Digest::sha256_of(b"something else");
    let location = app.start_upload("liar").await;
    app.patch_chunk(&location, 0, &bytes).await;

    app.close_upload(&location, &claimed, b"")
        .await
        .assert_error(400, "DIGEST_INVALID");
    for digest in [claimed, Digest::sha256_of(&bytes)] {
        app.get(&format!("/v2/liar/blobs/{digest}"))
            .await
            .assert_error(404, "BLOB_UNKNOWN");
    }
}

#[tokio::test]
async fn wrong_digest_on_a_monolithic_post_is_400_digest_invalid_and_nothing_is_visible() {
    let app = TestApp::start().await;
    let bytes = random_bytes(100);
    let claimed = Digest::sha256_of(b"something else");

    app.post(&format!("/v2/liar/blobs/uploads/?digest={claimed}"), &bytes)
        .await
        .assert_error(400, "DIGEST_INVALID");
    for digest in [claimed, Digest::sha256_of(&bytes)] {
        assert_eq!(
            app.head(&format!("/v2/liar/blobs/{digest}")).await.status,
            404
        );
    }
    // A refused push creates no repository.
    assert_eq!(
        app.get("/v2/_catalog").await.json()["repositories"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn patch_whose_content_length_disagrees_with_content_range_is_400_size_invalid() {
    let app = TestApp::start().await;
    let location = app.start_upload("size").await;

    // Content-Range announces 10 bytes; reqwest sends the true Content-Length, 5.
    let resp = app
        .send(
            app.request(Method::PATCH, &location)
                .header("content-range", "0-9")
                .body(b"12345".to_vec()),
        )
        .await;
    resp.assert_error(400, "SIZE_INVALID");
    assert_eq!(app.get(&location).await.header("range"), Some("0-0"));
}

#[tokio::test]
async fn closing_put_whose_content_length_disagrees_with_content_range_is_400_size_invalid() {
    let app = TestApp::start().await;
    let bytes = random_bytes(20);
    let location = app.start_upload("size").await;
    app.patch_chunk(&location, 0, &bytes[..10]).await;

    // Content-Range announces bytes 10-29 (20 bytes); the body is 10.
    let resp = app
        .send(
            app.request(
                Method::PUT,
                &with_query(&location, &format!("digest={}", Digest::sha256_of(&bytes))),
            )
            .header("content-range", "10-29")
            .body(bytes[10..].to_vec()),
        )
        .await;
    resp.assert_error(400, "SIZE_INVALID");
    let head = app
        .head(&format!("/v2/size/blobs/{}", Digest::sha256_of(&bytes)))
        .await;
    assert_eq!(head.status, 404);
}

#[tokio::test]
async fn cancel_is_204_and_then_the_session_is_404_blob_upload_unknown() {
    let app = TestApp::start().await;
    let location = app.start_upload("cancel").await;
    app.patch_chunk(&location, 0, b"some bytes").await;

    let resp = app.delete(&location).await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_eq!(resp.header("content-length"), None);
    app.get(&location)
        .await
        .assert_error(404, "BLOB_UPLOAD_UNKNOWN");
    app.patch_chunk(&location, 10, b"more")
        .await
        .assert_error(404, "BLOB_UPLOAD_UNKNOWN");
    app.delete(&location)
        .await
        .assert_error(404, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn unknown_upload_id_is_404_blob_upload_unknown_for_every_method() {
    let app = TestApp::start().await;
    let path = "/v2/ghost/blobs/uploads/0123456789abcdef0123456789abcdef";
    let digest = Digest::sha256_of(b"x");

    app.get(path).await.assert_error(404, "BLOB_UPLOAD_UNKNOWN");
    app.patch_chunk(path, 0, b"x")
        .await
        .assert_error(404, "BLOB_UPLOAD_UNKNOWN");
    app.close_upload(path, &digest, b"x")
        .await
        .assert_error(404, "BLOB_UPLOAD_UNKNOWN");
    app.delete(path)
        .await
        .assert_error(404, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn an_upload_session_is_unknown_under_another_repository() {
    let app = TestApp::start().await;
    let location = app.start_upload("a/x").await;
    let id = location.rsplit('/').next().unwrap();

    app.get(&format!("/v2/b/y/blobs/uploads/{id}"))
        .await
        .assert_error(404, "BLOB_UPLOAD_UNKNOWN");
    app.patch_chunk(&format!("/v2/b/y/blobs/uploads/{id}"), 0, b"x")
        .await
        .assert_error(404, "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(app.get(&location).await.status, 204);
}

#[tokio::test]
async fn closing_put_without_a_digest_or_with_a_malformed_one_is_400_digest_invalid() {
    let app = TestApp::start().await;
    let location = app.start_upload("nodigest").await;
    app.patch_chunk(&location, 0, b"abc").await;

    app.send(app.request(Method::PUT, &location))
        .await
        .assert_error(400, "DIGEST_INVALID");
    app.send(app.request(Method::PUT, &with_query(&location, "digest=sha256:abc")))
        .await
        .assert_error(400, "DIGEST_INVALID");
    // The session survives a refused close.
    assert_eq!(app.get(&location).await.header("range"), Some("0-2"));
}

#[tokio::test]
async fn a_finished_upload_session_is_404_blob_upload_unknown() {
    let app = TestApp::start().await;
    let digest = Digest::sha256_of(b"done");
    let location = app.start_upload("done").await;
    assert_eq!(
        app.close_upload(&location, &digest, b"done").await.status,
        201
    );

    app.get(&location)
        .await
        .assert_error(404, "BLOB_UPLOAD_UNKNOWN");
    app.close_upload(&location, &digest, b"")
        .await
        .assert_error(404, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn mount_of_a_blob_linked_in_from_is_201_and_links_it_here() {
    let app = TestApp::start().await;
    let digest = app.push_blob("src/repo", b"mount me").await;

    let resp = app
        .post(
            &format!("/v2/dst/repo/blobs/uploads/?mount={digest}&from=src/repo"),
            b"",
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(
        resp.header("location"),
        Some(&*format!("{}/v2/dst/repo/blobs/{digest}", app.base))
    );
    assert_eq!(
        resp.header("docker-content-digest"),
        Some(&*digest.to_string())
    );
    let pulled = app.get(&format!("/v2/dst/repo/blobs/{digest}")).await;
    assert_eq!(pulled.status, 200);
    assert_eq!(pulled.body, b"mount me");
}

#[tokio::test]
async fn query_parameters_percent_encoded_as_go_clients_send_them_are_understood() {
    let app = TestApp::start().await;
    let bytes = random_bytes(100);
    let digest = Digest::sha256_of(&bytes);
    let encoded = digest.to_string().replace(':', "%3A");

    let resp = app
        .post(
            &format!("/v2/src/repo/blobs/uploads/?digest={encoded}"),
            &bytes,
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let resp = app
        .post(
            &format!("/v2/dst/blobs/uploads/?from=src%2Frepo&mount={encoded}"),
            b"",
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(
        app.get(&format!("/v2/dst/blobs/{digest}")).await.body,
        bytes
    );

    let location = app.start_upload("third").await;
    let resp = app
        .send(
            app.request(
                Method::PUT,
                &with_query(&location, &format!("digest={encoded}")),
            )
            .body(bytes.clone()),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(
        app.get(&format!("/v2/third/blobs/{digest}")).await.body,
        bytes
    );
}

#[tokio::test]
async fn mount_from_a_repository_that_does_not_link_the_blob_is_202_with_a_new_session() {
    let app = TestApp::start().await;
    // The bytes are in the store (linked in `other`) but not in `src`.
    let digest = app.push_blob("other", b"not in src").await;
    app.push_blob("src", b"unrelated").await;

    let resp = app
        .post(
            &format!("/v2/dst/blobs/uploads/?mount={digest}&from=src"),
            b"",
        )
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    let location = resp.header("location").unwrap().to_owned();
    assert!(location.starts_with(&format!("{}/v2/dst/blobs/uploads/", app.base)));
    app.get(&format!("/v2/dst/blobs/{digest}"))
        .await
        .assert_error(404, "BLOB_UNKNOWN");
    // The new session is a working upload.
    let resp = app.close_upload(&location, &digest, b"not in src").await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(
        app.get(&format!("/v2/dst/blobs/{digest}")).await.body,
        b"not in src"
    );
}

#[tokio::test]
async fn mount_without_from_is_202_with_a_new_session() {
    let app = TestApp::start().await;
    let digest = app.push_blob("src", b"somewhere").await;

    let resp = app
        .post(&format!("/v2/dst/blobs/uploads/?mount={digest}"), b"")
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    assert!(
        resp.header("location")
            .unwrap()
            .starts_with(&format!("{}/v2/dst/blobs/uploads/", app.base))
    );
    assert_eq!(
        app.head(&format!("/v2/dst/blobs/{digest}")).await.status,
        404
    );
}

#[tokio::test]
async fn upload_continues_after_the_server_restarts_on_the_same_data_dir() {
    let bytes = random_bytes(64 * 1024);
    let digest = Digest::sha256_of(&bytes);
    let app = TestApp::start().await;
    let location = app.start_upload("restart/me").await;
    let resp = app.patch_chunk(&location, 0, &bytes[..40_000]).await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    let path = path_of(resp.header("location").unwrap()).to_owned();
    let dir = app.stop().await;

    let app = TestApp::start_in(dir).await;
    let status = app.get(&path).await;
    assert_eq!(status.status, 204);
    assert_eq!(status.header("range"), Some("0-39999"));
    let resp = app.patch_chunk(&path, 40_000, &bytes[40_000..]).await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    assert_eq!(resp.header("range"), Some("0-65535"));
    let resp = app.close_upload(&path, &digest, b"").await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(
        resp.header("docker-content-digest"),
        Some(&*digest.to_string())
    );
    let pulled = app.get(&format!("/v2/restart/me/blobs/{digest}")).await;
    assert_eq!(pulled.status, 200);
    assert_eq!(Digest::sha256_of(&pulled.body), digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_of_the_same_blob_all_succeed_and_serve_the_same_bytes() {
    let app = std::sync::Arc::new(TestApp::start().await);
    let bytes = std::sync::Arc::new(random_bytes(200_000));
    let digest = Digest::sha256_of(&bytes);

    let mut pushes = Vec::new();
    for i in 0..8 {
        let (app, bytes) = (app.clone(), bytes.clone());
        pushes.push(tokio::spawn(async move {
            let repo = if i % 2 == 0 {
                "same/repo"
            } else {
                "other/repo"
            };
            if i < 4 {
                app.push_blob(repo, &bytes).await;
            } else {
                let location = app.start_upload(repo).await;
                let resp = app.patch_chunk(&location, 0, &bytes[..100_000]).await;
                assert_eq!(resp.status, 202, "{}", resp.text());
                let resp = app
                    .close_upload(&location, &Digest::sha256_of(&bytes), &bytes[100_000..])
                    .await;
                assert_eq!(resp.status, 201, "{}", resp.text());
            }
        }));
    }
    for push in pushes {
        push.await.unwrap();
    }
    for repo in ["same/repo", "other/repo"] {
        let pulled = app.get(&format!("/v2/{repo}/blobs/{digest}")).await;
        assert_eq!(pulled.status, 200);
        assert_eq!(pulled.body, *bytes);
    }
}

/// A session idle for longer than `upload_ttl` is removed with its staging
/// bytes by the sweep that runs when the registry starts.
#[tokio::test]
async fn stale_upload_sessions_expire_with_their_staging_files() {
    let app = TestApp::start().await;
    let location = app.start_upload("lib/stale").await;
    let resp = app.patch_chunk(&location, 0, b"some bytes").await;
    assert_eq!(resp.status, 202);
    let dir = app.stop().await;
    // On S3 the staging objects are checked by `s3::sweeps_abort_*`.
    let on_fs = !crate::support::blobs_on_s3();
    if on_fs {
        let staging = dir.path().join("uploads");
        assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 1);
    }

    // Sessions are stamped in whole seconds: let one pass.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let app = TestApp::start_in_with(dir, |c| c.upload_ttl = std::time::Duration::ZERO).await;
    let path = crate::support::path_of(&location).to_owned();
    let mut status = 0;
    for _ in 0..50 {
        status = app.get(&path).await.status;
        if status == 404 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, 404, "the stale session is gone");
    app.get(&path)
        .await
        .assert_error(404, "BLOB_UPLOAD_UNKNOWN");
    let dir = app.stop().await;
    if on_fs {
        assert_eq!(
            std::fs::read_dir(dir.path().join("uploads"))
                .unwrap()
                .count(),
            0,
            "its staging file is removed"
        );
    }
}

/// Regression: one client opened 10,000 sessions in 74 s, each with a
/// staging file kept for a day. Open sessions are capped per repository
/// (without access control there is no user to count): beyond the cap,
/// 429 `TOOMANYREQUESTS` with `Retry-After`, saying how many are open and how
/// to close them; a cancelled or finished session frees its place.
#[tokio::test]
async fn open_sessions_per_repository_are_capped_with_429() {
    let app = TestApp::start_with(|config| config.max_uploads_per_repository = 3).await;
    let mut locations = Vec::new();
    for _ in 0..3 {
        locations.push(app.start_upload("lib/capped").await);
    }
    let resp = app.post("/v2/lib/capped/blobs/uploads/", b"").await;
    let message = resp.assert_error(429, "TOOMANYREQUESTS");
    assert_eq!(resp.header("retry-after"), Some("60"));
    assert!(
        message.contains("repository lib/capped has 3 blob upload sessions open")
            && message.contains("allows 3")
            && message.contains("PUT <location>?digest=<digest>")
            && message.contains("DELETE <location>"),
        "{message}"
    );
    // A monolithic push opens a session too.
    let bytes = random_bytes(10);
    app.post(
        &format!(
            "/v2/lib/capped/blobs/uploads/?digest={}",
            Digest::sha256_of(&bytes)
        ),
        &bytes,
    )
    .await
    .assert_error(429, "TOOMANYREQUESTS");
    // Another repository has its own count.
    app.start_upload("lib/other").await;

    // Cancelling one frees a place; so does finishing one.
    assert_eq!(app.delete(&locations[0]).await.status, 204);
    let again = app.start_upload("lib/capped").await;
    app.post("/v2/lib/capped/blobs/uploads/", b"")
        .await
        .assert_error(429, "TOOMANYREQUESTS");
    let resp = app
        .close_upload(&again, &Digest::sha256_of(&bytes), &bytes)
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    app.start_upload("lib/capped").await;
}

/// A cap of 0 is no cap.
#[tokio::test]
async fn a_session_cap_of_zero_is_no_cap() {
    let app = TestApp::start_with(|config| {
        config.max_uploads_per_repository = 0;
        config.max_uploads_per_user = 0;
    })
    .await;
    for _ in 0..5 {
        app.start_upload("lib/free").await;
    }
}
