//! `GET /v2/_catalog`: repositories in byte order, paginated with `n`/`last` and `Link`.

use serde_json::{Value, json};

use crate::support::{Resp, TestApp};

/// Byte order: `-` (0x2d) sorts before `/` (0x2f).
const SORTED: [&str; 5] = ["a", "a-b", "a/b", "b/c/d", "z"];

async fn app_with_repositories() -> TestApp {
    let app = TestApp::start().await;
    for name in ["z", "b/c/d", "a-b", "a", "a/b"] {
        app.push_blob(name, b"some bytes").await;
    }
    app
}

fn repositories(resp: &Resp) -> Value {
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    resp.json()["repositories"].clone()
}

#[tokio::test]
async fn empty_registry_lists_no_repositories() {
    let app = TestApp::start().await;
    let resp = app.get("/v2/_catalog").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json(), json!({ "repositories": [] }));
    assert_eq!(resp.header("link"), None);
}

#[tokio::test]
async fn catalog_lists_every_repository_in_byte_order() {
    let app = app_with_repositories().await;
    let resp = app.get("/v2/_catalog").await;
    assert_eq!(repositories(&resp), json!(SORTED));
    assert_eq!(resp.header("link"), None);
}

#[tokio::test]
async fn catalog_pages_follow_link_to_the_end() {
    let app = app_with_repositories().await;
    let resp = app.get("/v2/_catalog?n=2").await;
    assert_eq!(repositories(&resp), json!(["a", "a-b"]));
    let link = resp.header("link").unwrap();
    assert_eq!(link, r#"</v2/_catalog?n=2&last=a-b>; rel="next""#);

    let resp = app.get("/v2/_catalog?n=2&last=a-b").await;
    assert_eq!(repositories(&resp), json!(["a/b", "b/c/d"]));
    assert_eq!(
        resp.header("link"),
        Some(r#"</v2/_catalog?n=2&last=b%2Fc%2Fd>; rel="next""#)
    );
    let resp = app.get("/v2/_catalog?n=2&last=b%2Fc%2Fd").await;
    assert_eq!(repositories(&resp), json!(["z"]));
    assert_eq!(resp.header("link"), None);
}

#[tokio::test]
async fn catalog_last_is_exclusive_and_accepts_an_unencoded_slash() {
    let app = app_with_repositories().await;
    let resp = app.get("/v2/_catalog?last=a/b").await;
    assert_eq!(repositories(&resp), json!(["b/c/d", "z"]));
}

#[tokio::test]
async fn catalog_n_zero_is_empty_and_unreasonable_n_is_400() {
    let app = app_with_repositories().await;
    let resp = app.get("/v2/_catalog?n=0").await;
    assert_eq!(repositories(&resp), json!([]));
    assert_eq!(resp.header("link"), None);
    for n in ["1001", "99999999999", "-5"] {
        app.get(&format!("/v2/_catalog?n={n}"))
            .await
            .assert_error(400, "PAGINATION_NUMBER_INVALID");
    }
}

#[tokio::test]
async fn unfinished_uploads_and_refused_pushes_create_no_repository() {
    let app = TestApp::start().await;
    app.start_upload("pending/upload").await;
    let resp = app
        .put_manifest(
            "refused/manifest",
            "v1",
            berth_core::media_type::OCI_IMAGE_MANIFEST,
            &crate::support::to_bytes(&crate::support::image_manifest(&[])),
        )
        .await;
    resp.assert_error(400, "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(repositories(&app.get("/v2/_catalog").await), json!([]));
}
