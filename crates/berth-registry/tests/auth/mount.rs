//! Cross-repository mounts (PROTOCOL.md section 2, end-11): a source the
//! caller may not pull is treated as a source that does not exist (202 and a
//! plain upload session, nothing mounted); a source it may pull mounts (201).

use serde_json::json;

use crate::support::{Resp, TestApp};

/// alice with a private `alice/secret` (one image), bob with `bob/app`.
async fn app() -> (TestApp, crate::support::Pushed) {
    let app = TestApp::start().await;
    app.user("alice").await;
    app.user("bob").await;
    let alice = app
        .user_token("alice", &["repository:alice/secret:pull,push"])
        .await;
    let pushed = app.push_image("alice/secret", "v1", &alice).await;
    let bob = app
        .user_token("bob", &["repository:bob/app:pull,push"])
        .await;
    app.push_image("bob/app", "v1", &bob).await;
    (app, pushed)
}

/// Asserts a fresh upload session: 202, `Location` under `bob/app`, `Range: 0-0`.
#[track_caller]
fn assert_new_session(resp: &Resp, name: &str) {
    assert_eq!(resp.status, 202, "{}", resp.text());
    let location = resp.header("location").unwrap();
    assert!(
        location.contains(&format!("/v2/{name}/blobs/uploads/")),
        "{location}"
    );
    assert!(resp.header("docker-upload-uuid").is_some());
    assert_eq!(resp.header("range"), Some("0-0"));
    assert_eq!(resp.header("docker-content-digest"), None);
}

#[tokio::test]
async fn mount_from_a_private_repository_the_caller_may_not_pull_starts_a_plain_upload() {
    let (app, pushed) = app().await;
    let layer = pushed.layer;
    // bob asks for pull on the source too: it is not granted, not refused.
    let bob = app
        .user_token(
            "bob",
            &[
                "repository:bob/app:pull,push",
                "repository:alice/secret:pull",
                "repository:alice/nosuch:pull",
            ],
        )
        .await;
    assert_eq!(
        crate::support::access(&bob),
        json!([crate::support::repo_access("bob/app", &["pull", "push"])])
    );
    let mut answers = Vec::new();
    for from in ["alice/secret", "alice/nosuch"] {
        let resp = app
            .post(
                &format!("/v2/bob/app/blobs/uploads/?mount={layer}&from={from}"),
                Some(&bob),
                b"",
            )
            .await;
        assert_new_session(&resp, "bob/app");
        let mut names: Vec<String> = resp.headers.keys().map(|k| k.as_str().to_owned()).collect();
        names.sort();
        answers.push((resp.status, names, resp.body.clone()));
    }
    assert_eq!(answers[0], answers[1], "the same answer for both sources");
    // Nothing was mounted.
    app.get(&format!("/v2/bob/app/blobs/{layer}"), Some(&bob))
        .await
        .assert_error(404, "BLOB_UNKNOWN");
    // A token without the source's scope at all: the same.
    let bob = app
        .user_token("bob", &["repository:bob/app:pull,push"])
        .await;
    let resp = app
        .post(
            &format!("/v2/bob/app/blobs/uploads/?mount={layer}&from=alice/secret"),
            Some(&bob),
            b"",
        )
        .await;
    assert_new_session(&resp, "bob/app");
    app.get(&format!("/v2/bob/app/blobs/{layer}"), Some(&bob))
        .await
        .assert_error(404, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn mount_from_a_repository_the_caller_may_pull_is_201() {
    let (app, pushed) = app().await;
    let layer = pushed.layer;
    // alice, from her own private repository.
    let alice = app
        .user_token(
            "alice",
            &[
                "repository:alice/copy:pull,push",
                "repository:alice/secret:pull",
            ],
        )
        .await;
    let resp = app
        .post(
            &format!("/v2/alice/copy/blobs/uploads/?mount={layer}&from=alice/secret"),
            Some(&alice),
            b"",
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let digest = layer.to_string();
    assert_eq!(resp.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(
        resp.header("location"),
        Some(format!("{}/v2/alice/copy/blobs/{layer}", app.base).as_str())
    );
    let resp = app
        .get(&format!("/v2/alice/copy/blobs/{layer}"), Some(&alice))
        .await;
    assert_eq!(resp.status, 200);

    // bob, once alice/secret is public.
    app.set_public("alice/secret", true).await;
    let bob = app
        .user_token(
            "bob",
            &[
                "repository:bob/app:pull,push",
                "repository:alice/secret:pull",
            ],
        )
        .await;
    let resp = app
        .post(
            &format!("/v2/bob/app/blobs/uploads/?mount={layer}&from=alice/secret"),
            Some(&bob),
            b"",
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let resp = app
        .get(&format!("/v2/bob/app/blobs/{layer}"), Some(&bob))
        .await;
    assert_eq!(resp.status, 200);
}
