//! Revocation reaches tokens already issued: a revoked personal access token,
//! a member removed or lowered, a repository made private, a changed password,
//! a deleted user or robot. Each test holds a token issued before the change
//! and one issued after it: the first is refused (401 `invalid_token`) within
//! two seconds, the second works at once, even within the same second.
//!
//! Regression: the gate admitted any verified token whose claims covered the
//! request, so each of these kept working for the token's lifetime (300 s)
//! plus the 60 s verification leeway.

use std::time::{Duration, Instant};

use berth_registry::Config;
use berth_registry::identity::password::hash_password;
use reqwest::Method;
use serde_json::json;
use tokio::sync::oneshot;

use crate::support::{Resp, TestApp, access, claims, password_of};

/// How soon a revocation must reach a token issued before it.
const WITHIN: Duration = Duration::from_secs(2);

/// `GET base+path` with `token` until it is refused as a revoked token: 401
/// `invalid_token` with the challenge for `scope`. Fails after [`WITHIN`].
pub async fn assert_refused_within(
    app: &TestApp,
    base: &str,
    path: &str,
    token: &str,
    scope: &str,
) {
    let started = Instant::now();
    let challenge = app.challenge(Some(scope), Some("invalid_token"));
    loop {
        let resp = app.get(&format!("{base}{path}"), Some(token)).await;
        if resp.status == 401 {
            resp.assert_unauthorized(&challenge);
            let message = resp.assert_error(401, "UNAUTHORIZED");
            assert!(message.contains("get a new one"), "{message}");
            return;
        }
        assert_eq!(resp.status, 200, "still admitted: {}", resp.text());
        assert!(
            started.elapsed() < WITHIN,
            "a token issued before the revocation still works after {WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[track_caller]
fn assert_ok(resp: &Resp) {
    assert!(
        matches!(resp.status, 200 | 202),
        "{}: {}",
        resp.status,
        resp.text()
    );
}

#[tokio::test]
async fn a_revoked_personal_access_token_stops_working() {
    let app = TestApp::start().await;
    let alice = app.user("alice").await;
    let pat = app.pat(&alice, "ci", "pull,push", &[], 3600).await;
    let scope = "repository:alice/app:pull,push";
    let before = app.token(Some(("alice", &pat)), &[scope]).await;
    app.push_image("alice/app", "v1", &before).await;
    let tags = "/v2/alice/app/tags/list";
    assert_ok(&app.get(tags, Some(&before)).await);

    let resp = app
        .admin_api(Method::DELETE, "/api/v1/users/alice/tokens/ci", None)
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_refused_within(&app, "", tags, &before, "repository:alice/app:pull").await;

    // A new token of the same name (whose id may be the old one's) works at once.
    let again = app.pat(&alice, "ci", "pull,push", &[], 3600).await;
    let after = app.token(Some(("alice", &again)), &[scope]).await;
    assert_ok(&app.get(tags, Some(&after)).await);
    assert_ok(
        &app.post("/v2/alice/app/blobs/uploads/", Some(&after), b"")
            .await,
    );
    // A password login of alice was never affected.
    let login = app.user_token("alice", &[scope]).await;
    assert_ok(&app.get(tags, Some(&login)).await);
}

#[tokio::test]
async fn a_removed_member_loses_the_organisation_at_once() {
    let app = TestApp::start().await;
    let olive = app.user("olive").await;
    let bob = app.user("bob").await;
    let acme = app.org("acme", &olive).await;
    app.member(&acme, &bob, berth_registry::identity::Role::Maintainer)
        .await;
    let scope = "repository:acme/api:pull,push";
    let before = app.user_token("bob", &[scope]).await;
    app.push_image("acme/api", "v1", &before).await;
    let tags = "/v2/acme/api/tags/list";

    let resp = app
        .admin_api(Method::DELETE, "/api/v1/orgs/acme/members/bob", None)
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_refused_within(&app, "", tags, &before, "repository:acme/api:pull").await;

    // Tokens issued after the change get what policy gives now, at once.
    let after = app
        .user_token("bob", &[scope, "repository:bob/own:pull,push"])
        .await;
    assert_eq!(
        access(&after),
        json!([{"type": "repository", "name": "bob/own", "actions": ["pull", "push"]}])
    );
    assert_ok(
        &app.post("/v2/bob/own/blobs/uploads/", Some(&after), b"")
            .await,
    );
    app.get(tags, Some(&after))
        .await
        .assert_error(404, "NAME_UNKNOWN");
}

#[tokio::test]
async fn a_lowered_role_loses_push_at_once() {
    let app = TestApp::start().await;
    let olive = app.user("olive").await;
    let bob = app.user("bob").await;
    let acme = app.org("acme", &olive).await;
    app.member(&acme, &bob, berth_registry::identity::Role::Maintainer)
        .await;
    let scope = "repository:acme/api:pull,push";
    let before = app.user_token("bob", &[scope]).await;
    app.push_image("acme/api", "v1", &before).await;

    let resp = app
        .admin_api(
            Method::PUT,
            "/api/v1/orgs/acme/members/bob",
            Some(json!({"role": "member"})),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let tags = "/v2/acme/api/tags/list";
    assert_refused_within(&app, "", tags, &before, "repository:acme/api:pull").await;

    let after = app.user_token("bob", &[scope]).await;
    assert_eq!(
        access(&after),
        json!([{"type": "repository", "name": "acme/api", "actions": ["pull"]}])
    );
    assert_ok(&app.get(tags, Some(&after)).await);
}

#[tokio::test]
async fn a_repository_made_private_is_no_longer_pulled_with_old_tokens() {
    let app = TestApp::start().await;
    app.user("alice").await;
    let owner = app
        .user_token("alice", &["repository:alice/app:pull,push"])
        .await;
    app.push_image("alice/app", "v1", &owner).await;
    let visibility = |v: &str| json!({"repository": "alice/app", "visibility": v});
    let resp = app
        .admin_api(
            Method::PUT,
            "/api/v1/repositories/visibility",
            Some(visibility("public")),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let pull = "repository:alice/app:pull";
    let before = app.anonymous_token(&[pull]).await;
    let manifest = "/v2/alice/app/manifests/v1";
    assert_ok(&app.get(manifest, Some(&before)).await);

    let resp = app
        .admin_api(
            Method::PUT,
            "/api/v1/repositories/visibility",
            Some(visibility("private")),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_refused_within(&app, "", manifest, &before, pull).await;

    // After: the owner pulls at once; anonymous gets the hidden answer.
    let after = app.user_token("alice", &[pull]).await;
    assert_ok(&app.get(manifest, Some(&after)).await);
    let anonymous = app.anonymous_token(&[pull]).await;
    app.get(manifest, Some(&anonymous))
        .await
        .assert_unauthorized(&app.challenge(Some(pull), Some("insufficient_scope")));
}

#[tokio::test]
async fn a_changed_password_ends_the_tokens_of_old_logins() {
    let app = TestApp::start().await;
    let alice = app.user("alice").await;
    let scope = "repository:alice/app:pull,push";
    let before = app.user_token("alice", &[scope]).await;
    app.push_image("alice/app", "v1", &before).await;
    let pat = app.pat(&alice, "ci", "pull", &[], 3600).await;
    let by_pat = app
        .token(Some(("alice", &pat)), &["repository:alice/app:pull"])
        .await;
    let tags = "/v2/alice/app/tags/list";

    // Through the store, as any writer of the database would (the admin
    // API's `PUT /api/v1/users/{user}/password` calls the same; `berth admin
    // user set-password` is tested end to end).
    let hash = tokio::task::spawn_blocking(|| hash_password("a-new-password-for-alice"))
        .await
        .unwrap()
        .unwrap();
    app.registry
        .identity
        .set_password("alice", &hash)
        .await
        .unwrap();
    assert_refused_within(&app, "", tags, &before, "repository:alice/app:pull").await;

    // The new password's token works at once, whatever second it is issued in.
    let resp = app
        .token_get(
            Some(("alice", "a-new-password-for-alice")),
            &app.token_query(&[scope]),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let after = resp.json()["token"].as_str().unwrap().to_owned();
    assert!(
        claims(&after)["berth_gen"].as_i64() > claims(&before)["berth_gen"].as_i64(),
        "issued after the change"
    );
    assert_ok(&app.get(tags, Some(&after)).await);
    assert_ok(
        &app.post("/v2/alice/app/blobs/uploads/", Some(&after), b"")
            .await,
    );
    // The old password gets nothing; a personal access token is no login.
    let old = app
        .token_get(
            Some(("alice", &password_of("alice"))),
            &app.token_query(&[scope]),
        )
        .await;
    assert_eq!(old.status, 401);
    assert_ok(&app.get(tags, Some(&by_pat)).await);
}

#[tokio::test]
async fn a_deleted_user_or_robot_loses_its_tokens_and_a_new_namesake_starts_afresh() {
    let app = TestApp::start().await;
    let olive = app.user("olive").await;
    app.user("alice").await;
    let acme = app.org("acme", &olive).await;
    let robot = app.robot(&acme, "acme-ci").await;
    let robot_pat = app.pat(&robot, "default", "pull,push", &[], 3600).await;
    let scope = "repository:alice/app:pull,push";
    let before = app.user_token("alice", &[scope]).await;
    app.push_image("alice/app", "v1", &before).await;
    let robot_token = app
        .token(
            Some(("acme-ci", &robot_pat)),
            &["repository:acme/api:pull,push"],
        )
        .await;
    app.push_image("acme/api", "v1", &robot_token).await;

    let resp = app
        .admin_api(
            Method::DELETE,
            "/api/v1/users/alice?delete_repositories=true",
            None,
        )
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    let tags = "/v2/alice/app/tags/list";
    assert_refused_within(&app, "", tags, &before, "repository:alice/app:pull").await;
    let resp = app
        .admin_api(Method::DELETE, "/api/v1/users/acme-ci", None)
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_refused_within(
        &app,
        "",
        "/v2/acme/api/tags/list",
        &robot_token,
        "repository:acme/api:pull",
    )
    .await;

    // A new alice, at once: her token works, and she finds nothing of the old one.
    let resp = app
        .admin_api(
            Method::POST,
            "/api/v1/users",
            Some(json!({"name": "alice", "password": password_of("alice")})),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let after = app.user_token("alice", &[scope]).await;
    app.get(tags, Some(&after))
        .await
        .assert_error(404, "NAME_UNKNOWN");
    assert_ok(
        &app.post("/v2/alice/app/blobs/uploads/", Some(&after), b"")
            .await,
    );
    // The old token stays refused, on the new repository of the same name too.
    assert_refused_within(&app, "", tags, &before, "repository:alice/app:pull").await;
}

/// A second registry process on the same data directory (another node sharing
/// the database, or the same node after a restart), serving the same public
/// URL so that the tokens of the first are valid there. Returns its base URL
/// and the sender that stops it.
async fn another_node(app: &TestApp) -> (String, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = Config::new(app.base.clone());
    let registry = app.open_node(config).await;
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(berth_registry::serve(listener, registry, async move {
        let _ = rx.await;
    }));
    (base, tx)
}

/// Another node learns of a revocation from the database within the refresh
/// interval; a node started after it (a restart) knows it from the start.
#[tokio::test]
async fn other_nodes_and_restarts_see_a_revocation() {
    let app = TestApp::start().await;
    let alice = app.user("alice").await;
    let pat = app.pat(&alice, "ci", "pull,push", &[], 3600).await;
    let scope = "repository:alice/app:pull,push";
    let before = app.token(Some(("alice", &pat)), &[scope]).await;
    app.push_image("alice/app", "v1", &before).await;
    let tags = "/v2/alice/app/tags/list";
    let (node, _stop) = another_node(&app).await;
    assert_ok(&app.get(&format!("{node}{tags}"), Some(&before)).await);

    let resp = app
        .admin_api(Method::DELETE, "/api/v1/users/alice/tokens/ci", None)
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_refused_within(&app, &node, tags, &before, "repository:alice/app:pull").await;

    let (restarted, _stop) = another_node(&app).await;
    let resp = app.get(&format!("{restarted}{tags}"), Some(&before)).await;
    resp.assert_unauthorized(
        &app.challenge(Some("repository:alice/app:pull"), Some("invalid_token")),
    );
}
