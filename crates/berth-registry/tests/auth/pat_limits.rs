//! A token issued for a personal access token carries that token's limits to
//! the gate (claim `berth_pat`), not only to the token service's grant.

use reqwest::Method;

use crate::support::{TestApp, claims};

/// alice's CI token may pull `alice/web-*` only. Its tokens list only those
/// repositories in the catalog, and a push with one is refused as the token
/// can never be granted push (403), instead of being sent back for a token it
/// could never get (401 insufficient_scope).
#[tokio::test]
async fn pat_limits_reach_the_catalog_and_the_gate() {
    let app = TestApp::start().await;
    let alice = app.user("alice").await;
    app.seed_image("alice/web-app", "v1").await;
    app.seed_image("alice/api", "v1").await;
    let pat = app.pat(&alice, "ci", "pull", &["alice/web-*"], 3600).await;

    let catalog_token = app
        .token(Some(("alice", &pat)), &["registry:catalog:*"])
        .await;
    assert!(
        claims(&catalog_token)["berth_pat"].is_i64(),
        "the token names its PAT"
    );
    let listed = app.get("/v2/_catalog", Some(&catalog_token)).await;
    assert_eq!(listed.status, 200);
    assert_eq!(
        listed.json()["repositories"],
        serde_json::json!(["alice/web-app"]),
        "alice/api is outside the token's patterns"
    );

    // A password login of alice sees both.
    let password_token = app.user_token("alice", &["registry:catalog:*"]).await;
    let listed = app.get("/v2/_catalog", Some(&password_token)).await;
    assert_eq!(
        listed.json()["repositories"],
        serde_json::json!(["alice/api", "alice/web-app"])
    );

    let pull_token = app
        .token(Some(("ci", &pat)), &["repository:alice/web-app:pull,push"])
        .await;
    let push = app
        .send(app.bearer(
            Method::POST,
            "/v2/alice/web-app/blobs/uploads/",
            Some(&pull_token),
        ))
        .await;
    push.assert_error(403, "DENIED");

    // Outside the patterns the repository is hidden, as for any stranger.
    let other = app.get("/v2/alice/api/tags/list", Some(&pull_token)).await;
    other.assert_error(404, "NAME_UNKNOWN");
}

/// Regression: the catalog's page (and its `Link`) was cut before a personal
/// access token's repository limits were applied, so a token limited to
/// `bob/one` paged through the names of bob's other repositories: `n=1`
/// answered `[]` with a `Link` past `bob/a`.
#[tokio::test]
async fn a_limited_token_pages_only_through_its_repositories() {
    let app = TestApp::start().await;
    let bob = app.user("bob").await;
    for name in ["bob/a", "bob/one", "bob/other", "bob/z", "bob/zz"] {
        app.seed_image(name, "v1").await;
    }
    let catalog = ["registry:catalog:*"];

    let one = app.pat(&bob, "one", "pull", &["bob/one"], 3600).await;
    let token = app.token(Some(("bob", &one)), &catalog).await;
    for query in ["?n=1", "", "?n=5"] {
        let resp = app.get(&format!("/v2/_catalog{query}"), Some(&token)).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(
            resp.json(),
            serde_json::json!({"repositories": ["bob/one"]}),
            "{query}"
        );
        assert_eq!(resp.header("link"), None, "{query}: no next matching name");
    }

    // Pages are full while matching names remain; Link only when one does.
    let some = app
        .pat(&bob, "some", "pull", &["bob/o*", "bob/zz"], 3600)
        .await;
    let token = app.token(Some(("bob", &some)), &catalog).await;
    let resp = app.get("/v2/_catalog?n=2", Some(&token)).await;
    assert_eq!(
        resp.json(),
        serde_json::json!({"repositories": ["bob/one", "bob/other"]})
    );
    assert_eq!(
        resp.header("link"),
        Some(r#"</v2/_catalog?n=2&last=bob%2Fother>; rel="next""#)
    );
    let resp = app
        .get("/v2/_catalog?n=2&last=bob%2Fother", Some(&token))
        .await;
    assert_eq!(resp.json(), serde_json::json!({"repositories": ["bob/zz"]}));
    assert_eq!(resp.header("link"), None);

    // A token that cannot pull lists nothing.
    let push = app.pat(&bob, "push", "push", &[], 3600).await;
    let token = app.token(Some(("bob", &push)), &catalog).await;
    let resp = app.get("/v2/_catalog?n=1", Some(&token)).await;
    assert_eq!(resp.json(), serde_json::json!({"repositories": []}));
    assert_eq!(resp.header("link"), None);
}
