//! `/healthz` and `/readyz`: unauthenticated (access control is on in this
//! suite), JSON, and `/readyz` names what failed: the blob store, the
//! database.

use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn healthz_answers_200_without_credentials() {
    let app = TestApp::start().await;
    let resp = app.get("/healthz", None).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.json(), json!({"status": "alive"}));
}

#[tokio::test]
async fn readyz_answers_200_when_database_and_blob_store_answer() {
    let app = TestApp::start().await;
    let resp = app.get("/readyz", None).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.json(), json!({"status": "ready"}));
}

/// The blob directory gone (a lost mount): 503 naming the blob store; back
/// in place: ready again.
#[tokio::test]
async fn readyz_answers_503_naming_a_missing_blob_store() {
    let app = TestApp::start().await;
    let blobs = app.data_dir().join("blobs");
    let moved = app.data_dir().join("blobs.away");
    std::fs::rename(&blobs, &moved).unwrap();
    let resp = app.get("/readyz", None).await;
    assert_eq!(resp.status, 503);
    assert_eq!(
        resp.json(),
        json!({"status": "unavailable", "failed": ["blob_store"]})
    );
    std::fs::rename(&moved, &blobs).unwrap();
    assert_eq!(app.get("/readyz", None).await.status, 200);
    // Liveness does not depend on either.
    assert_eq!(app.get("/healthz", None).await.status, 200);
}

/// The database unreachable (its pool closed): 503 naming the database;
/// `/healthz` still 200.
#[tokio::test]
async fn readyz_answers_503_naming_an_unreachable_database() {
    let app = TestApp::start().await;
    match (app.registry.db.sqlite(), app.registry.db.postgres()) {
        (Some(pool), _) => pool.close().await,
        (_, Some(pool)) => pool.close().await,
        (None, None) => unreachable!("one engine or the other"),
    }
    let resp = app.get("/readyz", None).await;
    assert_eq!(resp.status, 503);
    assert_eq!(
        resp.json(),
        json!({"status": "unavailable", "failed": ["database"]})
    );
    assert_eq!(app.get("/healthz", None).await.status, 200);
}
