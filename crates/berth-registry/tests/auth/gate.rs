//! The gate (PROTOCOL.md section 2): the exact scope a request needs in its
//! challenge, `invalid_token`, `insufficient_scope`, and the hidden answer for
//! a repository the caller may not pull.

use reqwest::Method;
use serde_json::json;

use crate::support::{Resp, TestApp, access, repo_access};

const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const ID: &str = "0b5f5b3e-5c4e-4a39-9d4b-3f1b2c3d4e5f";

#[tokio::test]
async fn without_a_token_the_challenge_names_exactly_the_scope_the_request_needs() {
    let app = TestApp::start().await;
    let app_pull = "repository:alice/app:pull";
    let app_push = "repository:alice/app:pull,push";
    let app_delete = "repository:alice/app:delete";
    let cases: &[(Method, String, &str)] = &[
        (
            Method::GET,
            "/v2/alice/app/manifests/latest".into(),
            app_pull,
        ),
        (
            Method::HEAD,
            format!("/v2/alice/app/manifests/{D}"),
            app_pull,
        ),
        (Method::GET, format!("/v2/alice/app/blobs/{D}"), app_pull),
        (Method::HEAD, format!("/v2/alice/app/blobs/{D}"), app_pull),
        (Method::GET, "/v2/alice/app/tags/list".into(), app_pull),
        (
            Method::GET,
            format!("/v2/alice/app/referrers/{D}"),
            app_pull,
        ),
        (
            Method::GET,
            format!("/v2/alice/app/blobs/uploads/{ID}"),
            app_pull,
        ),
        (Method::PUT, "/v2/alice/app/manifests/v1".into(), app_push),
        (
            Method::POST,
            "/v2/alice/app/blobs/uploads/".into(),
            app_push,
        ),
        (
            Method::POST,
            format!("/v2/alice/app/blobs/uploads/?digest={D}"),
            app_push,
        ),
        (
            Method::PATCH,
            format!("/v2/alice/app/blobs/uploads/{ID}"),
            app_push,
        ),
        (
            Method::PUT,
            format!("/v2/alice/app/blobs/uploads/{ID}?digest={D}"),
            app_push,
        ),
        (
            Method::DELETE,
            format!("/v2/alice/app/manifests/{D}"),
            app_delete,
        ),
        (
            Method::DELETE,
            format!("/v2/alice/app/blobs/{D}"),
            app_delete,
        ),
        (
            Method::DELETE,
            format!("/v2/alice/app/blobs/uploads/{ID}"),
            app_delete,
        ),
        // A mount also needs pull on its source: both, space-separated.
        (
            Method::POST,
            format!("/v2/alice/app/blobs/uploads/?mount={D}&from=bob/lib"),
            "repository:alice/app:pull,push repository:bob/lib:pull",
        ),
        (Method::GET, "/v2/_catalog".into(), "registry:catalog:*"),
        // A reference that names no manifest needs what any other does.
        (
            Method::GET,
            "/v2/alice/app/manifests/.INVALID_MANIFEST_NAME".into(),
            app_pull,
        ),
        (
            Method::PUT,
            "/v2/alice/app/manifests/.INVALID_MANIFEST_NAME".into(),
            app_push,
        ),
        (
            Method::DELETE,
            "/v2/alice/app/manifests/sha256:1234".into(),
            app_delete,
        ),
        // Nested names and `host:port`-free names print as sent.
        (
            Method::GET,
            "/v2/a/b/c/tags/list".into(),
            "repository:a/b/c:pull",
        ),
    ];
    for (method, path, scope) in cases {
        let resp = app.send(app.bearer(method.clone(), path, None)).await;
        assert_eq!(resp.status, 401, "{method} {path}: {}", resp.text());
        assert_eq!(
            resp.header("www-authenticate"),
            Some(app.challenge(Some(scope), None).as_str()),
            "{method} {path}"
        );
        if *method != Method::HEAD {
            resp.assert_error(401, "UNAUTHORIZED");
        }
    }
    // The body details what is missing, one entry per action.
    let resp = app.get("/v2/alice/app/manifests/latest", None).await;
    assert_eq!(
        resp.json()["errors"][0]["detail"],
        json!([{"Type": "repository", "Name": "alice/app", "Action": "pull"}])
    );
    let resp = app.post("/v2/alice/app/blobs/uploads/", None, b"").await;
    assert_eq!(
        resp.json()["errors"][0]["detail"],
        json!([
            {"Type": "repository", "Name": "alice/app", "Action": "pull"},
            {"Type": "repository", "Name": "alice/app", "Action": "push"},
        ])
    );
}

#[tokio::test]
async fn a_token_that_does_not_verify_is_401_invalid_token() {
    let app = TestApp::start().await;
    let expected = app.challenge(Some("repository:alice/app:pull"), Some("invalid_token"));
    for token in ["garbage", "a.b.c", "e30.e30.", "Bearer"] {
        let resp = app.get("/v2/alice/app/tags/list", Some(token)).await;
        resp.assert_unauthorized(&expected);
    }
    // On the base and the catalog too, with their own scopes.
    let resp = app.get("/v2/", Some("garbage")).await;
    resp.assert_unauthorized(&app.challenge(None, Some("invalid_token")));
    let resp = app.get("/v2/_catalog", Some("garbage")).await;
    resp.assert_unauthorized(&app.challenge(Some("registry:catalog:*"), Some("invalid_token")));
}

#[tokio::test]
async fn a_pull_token_used_to_push_is_401_insufficient_scope_with_the_push_scope() {
    let app = TestApp::start().await;
    app.user("alice").await;
    let pull = app
        .user_token("alice", &["repository:alice/app:pull"])
        .await;
    let resp = app
        .post("/v2/alice/app/blobs/uploads/", Some(&pull), b"")
        .await;
    resp.assert_unauthorized(&app.challenge(
        Some("repository:alice/app:pull,push"),
        Some("insufficient_scope"),
    ));
    let resp = app
        .delete(&format!("/v2/alice/app/manifests/{D}"), Some(&pull))
        .await;
    resp.assert_unauthorized(&app.challenge(
        Some("repository:alice/app:delete"),
        Some("insufficient_scope"),
    ));
    // Asking for the scope of the challenge is enough.
    let push = app
        .user_token("alice", &["repository:alice/app:pull,push"])
        .await;
    let resp = app
        .post("/v2/alice/app/blobs/uploads/", Some(&push), b"")
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
}

#[tokio::test]
async fn a_token_for_one_repository_used_on_another_gets_the_hidden_answer() {
    let app = TestApp::start().await;
    app.user("alice").await;
    app.user("bob").await;
    app.seed_image("bob/private", "v1").await;
    app.seed_image("bob/pub", "v1").await;
    app.set_public("bob/pub", true).await;

    // A user's pull: 404 NAME_UNKNOWN, whether the repository exists or not.
    // (A push is refused as a push: see the test below.)
    let alice = app
        .user_token("alice", &["repository:alice/app:pull,push"])
        .await;
    for name in ["bob/private", "bob/nothing"] {
        let resp = app
            .get(&format!("/v2/{name}/manifests/v1"), Some(&alice))
            .await;
        let message = resp.assert_error(404, "NAME_UNKNOWN");
        assert!(message.contains(name), "{message}");
        assert_eq!(resp.header("www-authenticate"), None);
        let resp = app
            .post(&format!("/v2/{name}/blobs/uploads/"), Some(&alice), b"")
            .await;
        resp.assert_error(403, "DENIED");
    }
    // On a repository alice may pull but her token does not name: ask for it.
    let resp = app.get("/v2/alice/other/manifests/v1", Some(&alice)).await;
    resp.assert_unauthorized(&app.challenge(
        Some("repository:alice/other:pull"),
        Some("insufficient_scope"),
    ));
    let resp = app.get("/v2/bob/pub/manifests/v1", Some(&alice)).await;
    resp.assert_unauthorized(
        &app.challenge(Some("repository:bob/pub:pull"), Some("insufficient_scope")),
    );

    // Anonymous: the 401 that asks to log in, whether it exists or not.
    let anonymous = app.anonymous_token(&["repository:bob/pub:pull"]).await;
    assert_eq!(
        access(&anonymous),
        json!([repo_access("bob/pub", &["pull"])])
    );
    for name in ["bob/private", "bob/nothing"] {
        let resp = app
            .get(&format!("/v2/{name}/manifests/v1"), Some(&anonymous))
            .await;
        resp.assert_unauthorized(&app.challenge(
            Some(&format!("repository:{name}:pull")),
            Some("insufficient_scope"),
        ));
    }
    let resp = app.get("/v2/bob/pub/manifests/v1", Some(&anonymous)).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[tokio::test]
async fn organisation_roles_and_robots_get_what_policy_gives_them() {
    let app = TestApp::start().await;
    let owner = app.user("olive").await;
    let maintainer = app.user("mark").await;
    let member = app.user("mia").await;
    let acme = app.org("acme", &owner).await;
    app.member(
        &acme,
        &maintainer,
        berth_registry::identity::Role::Maintainer,
    )
    .await;
    app.member(&acme, &member, berth_registry::identity::Role::Member)
        .await;
    let robot = app.robot(&acme, "acme-ci").await;
    let robot_pat = app.pat(&robot, "ci", "pull,push", &["acme/*"], 3600).await;
    let scope = "repository:acme/api:pull,push,delete";
    let all = ["delete", "pull", "push"];
    assert_eq!(
        access(&app.user_token("olive", &[scope]).await),
        json!([repo_access("acme/api", &all)])
    );
    assert_eq!(
        access(&app.user_token("mark", &[scope]).await),
        json!([repo_access("acme/api", &["pull", "push"])])
    );
    assert_eq!(
        access(&app.user_token("mia", &[scope]).await),
        json!([repo_access("acme/api", &["pull"])])
    );
    let robot_token = app.token(Some(("acme-ci", &robot_pat)), &[scope]).await;
    assert_eq!(
        access(&robot_token),
        json!([repo_access("acme/api", &["pull", "push"])])
    );
    // The robot pushes; the member pulls and may not push (403, not a 401 loop).
    let pushed = app.push_image("acme/api", "v1", &robot_token).await;
    let mia = app.user_token("mia", &[scope]).await;
    let resp = app
        .get(
            &format!("/v2/acme/api/manifests/{}", pushed.digest),
            Some(&mia),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let message = app
        .post("/v2/acme/api/blobs/uploads/", Some(&mia), b"")
        .await
        .assert_error(403, "DENIED");
    assert!(message.contains("push"), "{message}");
}

/// Status, headers but `date` and `x-request-id`, and body, with `name`
/// replaced by a placeholder: what must not differ between an existing
/// private repository and an absent one.
fn normalised(resp: &Resp, name: &str) -> (u16, Vec<(String, String)>, String) {
    let headers = resp
        .headers
        .iter()
        .filter(|(header, _)| !matches!(header.as_str(), "date" | "x-request-id"))
        .map(|(header, value)| {
            (
                header.as_str().to_owned(),
                value.to_str().unwrap().replace(name, "<repo>"),
            )
        })
        .collect();
    (resp.status, headers, resp.text().replace(name, "<repo>"))
}

/// Regression: a logged-in push to a namespace the user may not push to was
/// answered `NAME_UNKNOWN ... repository is not known` (the hidden answer of
/// a pull), which sent a user creating a repository the wrong way. It is 403
/// `DENIED` saying where they may push, the same bytes whether the
/// repository exists or not; a push refused by a personal access token's
/// limits names the token and what it carries.
#[tokio::test]
async fn a_refused_push_says_where_the_caller_may_push() {
    let app = TestApp::start().await;
    let alice = app.user("alice").await;
    let olive = app.user("olive").await;
    let bob = app.user("bob").await;
    let acme = app.org("acme", &olive).await;
    let ops = app.org("ops", &olive).await;
    app.member(&acme, &bob, berth_registry::identity::Role::Maintainer)
        .await;
    app.member(&ops, &bob, berth_registry::identity::Role::Member)
        .await;
    let robot = app.robot(&acme, "acme-ci").await;
    let robot_pat = app.pat(&robot, "default", "pull,push", &[], 3600).await;
    app.seed_image("olive/private", "v1").await;

    // Existing and private, or absent: the same answer, byte for byte
    // (names of the same length).
    let scopes = [
        "repository:olive/private:pull,push,delete",
        "repository:olive/nothing:pull,push,delete",
    ];
    let token = app.user_token("alice", &scopes).await;
    let mut answers = Vec::new();
    for name in ["olive/private", "olive/nothing"] {
        let resp = app
            .post(&format!("/v2/{name}/blobs/uploads/"), Some(&token), b"")
            .await;
        let message = resp.assert_error(403, "DENIED");
        assert_eq!(
            message,
            format!(
                "user alice may not push to {name}; alice may push to alice/... (their own namespace)"
            )
        );
        assert_eq!(resp.header("www-authenticate"), None);
        answers.push(normalised(&resp, name));
        let resp = app
            .delete(&format!("/v2/{name}/manifests/v1"), Some(&token))
            .await;
        let message = resp.assert_error(403, "DENIED");
        assert_eq!(
            message,
            format!(
                "user alice may not delete in {name}; alice may delete in alice/... (their own namespace)"
            )
        );
        answers.push(normalised(&resp, name));
        // A pull keeps the hidden answer.
        let resp = app
            .get(&format!("/v2/{name}/manifests/v1"), Some(&token))
            .await;
        resp.assert_error(404, "NAME_UNKNOWN");
    }
    assert_eq!(answers[0], answers[2], "push: no existence oracle");
    assert_eq!(answers[1], answers[3], "delete: no existence oracle");

    // Organisations whose role allows the action are named; a robot's is its own.
    let token = app
        .user_token("bob", &["repository:olive/x:pull,push"])
        .await;
    let message = app
        .post("/v2/olive/x/blobs/uploads/", Some(&token), b"")
        .await
        .assert_error(403, "DENIED");
    assert_eq!(
        message,
        "user bob may not push to olive/x; bob may push to bob/... (their own namespace), \
         acme/... (maintainer of acme)"
    );
    let robot = app
        .token(
            Some(("acme-ci", &robot_pat)),
            &["repository:olive/x:pull,push"],
        )
        .await;
    let message = app
        .post("/v2/olive/x/blobs/uploads/", Some(&robot), b"")
        .await
        .assert_error(403, "DENIED");
    assert_eq!(
        message,
        "robot account acme-ci may not push to olive/x; acme-ci may push to acme/... (its organisation)"
    );

    // Refused by the token's limits, not the user's rights: the token says so.
    let pat = app.pat(&alice, "ci", "pull", &["alice/web-*"], 3600).await;
    for name in ["alice/web-app", "alice/api"] {
        let token = app
            .token(
                Some(("alice", &pat)),
                &[&format!("repository:{name}:pull,push")],
            )
            .await;
        let message = app
            .post(&format!("/v2/{name}/blobs/uploads/"), Some(&token), b"")
            .await
            .assert_error(403, "DENIED");
        assert_eq!(
            message,
            format!(
                "user alice's personal access token `ci` carries pull on alice/web-*, so it may \
                 not push to {name}: log in with a token that carries push for {name}, or with \
                 the password"
            )
        );
    }
}
