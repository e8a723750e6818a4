//! Repository visibility: a repository created by a push is private until
//! made public; a public one is pullable (and listed) anonymously.

use serde_json::json;

use crate::support::{TestApp, access, repo_access};

#[tokio::test]
async fn a_pushed_repository_is_private_until_made_public() {
    let app = TestApp::start().await;
    app.user("alice").await;
    app.user("bob").await;
    let alice = app
        .user_token("alice", &["repository:alice/new:pull,push"])
        .await;
    let pushed = app.push_image("alice/new", "v1", &alice).await;
    let name = berth_core::name::RepositoryName::parse("alice/new").unwrap();
    let info = app.registry.meta.repository_info(&name).await.unwrap();
    assert_eq!(info.map(|i| i.public), Some(false));
    let manifest = "/v2/alice/new/manifests/v1";
    let pull = ["repository:alice/new:pull"];

    // Private: anonymous gets no grant, the login challenge, no listing.
    let anonymous = app.anonymous_token(&pull).await;
    assert_eq!(access(&anonymous), json!([]));
    app.get(manifest, Some(&anonymous))
        .await
        .assert_unauthorized(&app.challenge(
            Some("repository:alice/new:pull"),
            Some("insufficient_scope"),
        ));
    let catalog = app.anonymous_token(&["registry:catalog:*"]).await;
    let resp = app.get("/v2/_catalog", Some(&catalog)).await;
    assert_eq!(resp.json(), json!({"repositories": []}));
    let bob = app.user_token("bob", &pull).await;
    app.get(manifest, Some(&bob))
        .await
        .assert_error(404, "NAME_UNKNOWN");

    app.set_public("alice/new", true).await;

    // Public: anonymous pulls and lists; others may pull, not push.
    let anonymous = app.anonymous_token(&pull).await;
    assert_eq!(
        access(&anonymous),
        json!([repo_access("alice/new", &["pull"])])
    );
    let resp = app.get(manifest, Some(&anonymous)).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = app
        .get(
            &format!("/v2/alice/new/blobs/{}", pushed.layer),
            Some(&anonymous),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = app.get("/v2/alice/new/tags/list", Some(&anonymous)).await;
    assert_eq!(resp.json(), json!({"name": "alice/new", "tags": ["v1"]}));
    let resp = app.get("/v2/_catalog", Some(&catalog)).await;
    assert_eq!(resp.json(), json!({"repositories": ["alice/new"]}));

    let bob = app
        .user_token("bob", &["repository:alice/new:pull,push"])
        .await;
    assert_eq!(access(&bob), json!([repo_access("alice/new", &["pull"])]));
    assert_eq!(app.get(manifest, Some(&bob)).await.status, 200);
    let message = app
        .post("/v2/alice/new/blobs/uploads/", Some(&bob), b"")
        .await
        .assert_error(403, "DENIED");
    assert!(message.contains("push"), "{message}");

    // Private again: new anonymous tokens get nothing.
    app.set_public("alice/new", false).await;
    assert_eq!(access(&app.anonymous_token(&pull).await), json!([]));
    let fresh = app.anonymous_token(&["registry:catalog:*"]).await;
    let resp = app.get("/v2/_catalog", Some(&fresh)).await;
    assert_eq!(resp.json(), json!({"repositories": []}));
}
