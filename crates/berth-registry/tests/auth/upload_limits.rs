//! Caps on open upload sessions per user (the token's subject), over all of
//! the user's repositories.

use crate::support::TestApp;

/// Regression: one user opened 10,000 sessions in 74 s. By default a user
/// holds at most 100 open sessions over all repositories; the next is 429
/// `TOOMANYREQUESTS` with `Retry-After`, naming the user and the count.
/// Another user is not affected, and a cancelled session frees a place.
#[tokio::test]
async fn open_sessions_per_user_are_capped_at_100_by_default() {
    let app = TestApp::start().await;
    app.user("alice").await;
    app.user("bob").await;
    let token = app
        .user_token(
            "alice",
            &[
                "repository:alice/one:pull,push,delete",
                "repository:alice/two:pull,push",
            ],
        )
        .await;
    let mut first = None;
    for i in 0..100 {
        let repo = if i % 2 == 0 { "alice/one" } else { "alice/two" };
        let resp = app
            .post(&format!("/v2/{repo}/blobs/uploads/"), Some(&token), b"")
            .await;
        assert_eq!(resp.status, 202, "session {i}: {}", resp.text());
        first.get_or_insert_with(|| resp.header("location").unwrap().to_owned());
    }
    let resp = app
        .post("/v2/alice/two/blobs/uploads/", Some(&token), b"")
        .await;
    let message = resp.assert_error(429, "TOOMANYREQUESTS");
    assert_eq!(resp.header("retry-after"), Some("60"));
    assert!(
        message.contains("user alice has 100 blob upload sessions open")
            && message.contains("allows 100")
            && message.contains("DELETE <location>"),
        "{message}"
    );

    let bob = app
        .user_token("bob", &["repository:bob/app:pull,push"])
        .await;
    let resp = app
        .post("/v2/bob/app/blobs/uploads/", Some(&bob), b"")
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());

    let first = first.unwrap();
    assert_eq!(app.delete(&first, Some(&token)).await.status, 204);
    let resp = app
        .post("/v2/alice/two/blobs/uploads/", Some(&token), b"")
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
}

/// The per-user cap is a setting; the per-repository cap applies beside it.
#[tokio::test]
async fn per_user_and_per_repository_caps_are_settings() {
    let app = TestApp::start_with(|config| {
        config.max_uploads_per_user = 2;
        config.max_uploads_per_repository = 3;
    })
    .await;
    for name in ["alice", "bob"] {
        app.user(name).await;
    }
    let org = app.org("team", &app.user("carol").await).await;
    for name in ["alice", "bob"] {
        let user = app
            .registry
            .identity
            .user_by_name(name)
            .await
            .unwrap()
            .unwrap();
        app.member(&org, &user, berth_registry::identity::Role::Maintainer)
            .await;
    }
    let alice = app
        .user_token("alice", &["repository:team/app:pull,push"])
        .await;
    let bob = app
        .user_token("bob", &["repository:team/app:pull,push"])
        .await;
    for token in [&alice, &alice, &bob] {
        let resp = app
            .post("/v2/team/app/blobs/uploads/", Some(token), b"")
            .await;
        assert_eq!(resp.status, 202, "{}", resp.text());
    }
    let message = app
        .post("/v2/team/app/blobs/uploads/", Some(&alice), b"")
        .await
        .assert_error(429, "TOOMANYREQUESTS");
    assert!(message.contains("user alice has 2"), "{message}");
    let message = app
        .post("/v2/team/app/blobs/uploads/", Some(&bob), b"")
        .await
        .assert_error(429, "TOOMANYREQUESTS");
    assert!(message.contains("repository team/app has 3"), "{message}");
}
