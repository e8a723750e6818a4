//! end-1: `GET /v2/`, and what every `/v2` path answers.

use crate::support::TestApp;

#[tokio::test]
async fn v2_slash_answers_200_with_an_empty_json_object() {
    let app = TestApp::start().await;
    let resp = app.get("/v2/").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.body, b"{}");
}

#[tokio::test]
async fn v2_without_slash_answers_exactly_like_v2_slash() {
    let app = TestApp::start().await;
    let resp = app.get("/v2").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.body, b"{}");
}

#[tokio::test]
async fn head_v2_answers_200_without_a_body() {
    let app = TestApp::start().await;
    let resp = app.head("/v2/").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert!(resp.body.is_empty());
}

#[tokio::test]
async fn a_path_that_is_no_endpoint_is_404_and_still_carries_the_api_version() {
    let app = TestApp::start().await;
    let resp = app.get("/v2/library/alpine/nothing-here").await;
    assert_eq!(resp.status, 404, "{}", resp.text());
}

#[tokio::test]
async fn a_method_an_endpoint_does_not_answer_is_405_unsupported() {
    let app = TestApp::start().await;
    app.post("/v2/_catalog", b"")
        .await
        .assert_error(405, "UNSUPPORTED");
    app.post("/v2/a/tags/list", b"")
        .await
        .assert_error(405, "UNSUPPORTED");
    let digest = berth_core::digest::Digest::sha256_of(b"x");
    app.post(&format!("/v2/a/manifests/{digest}"), b"")
        .await
        .assert_error(405, "UNSUPPORTED");
}
