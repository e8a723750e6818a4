//! The admin API's own rules: JSON bodies only under `application/json`,
//! no foreign `Origin`, and no user deleted from under its repositories.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN_PASSWORD, Resp, TestApp, basic_header};

/// The one error of an admin API answer, whole: `(status, body)`.
fn error(resp: &Resp) -> (u16, Value) {
    assert_eq!(resp.header("content-type"), Some("application/json"));
    (resp.status, resp.json())
}

fn body(code: &str, message: &str) -> Value {
    json!({"errors": [{"code": code, "message": message}]})
}

/// Regression: the admin API read JSON under any `Content-Type` (the shape of
/// a cross-site `<form enctype=text/plain>`) and ignored `Origin`.
#[tokio::test]
async fn bodies_must_be_json_and_foreign_origins_are_refused() {
    let app = TestApp::start().await;
    let user = |name: &str| json!({"name": name, "password": "long enough password"}).to_string();
    let post = |content_type: Option<&str>, origin: Option<&str>, body: String| {
        let mut request = app
            .request(Method::POST, "/api/v1/users")
            .header("authorization", basic_header("admin", ADMIN_PASSWORD))
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        app.send(request)
    };

    for (content_type, said) in [
        (Some("text/plain"), "Content-Type: text/plain"),
        (
            Some("application/x-www-form-urlencoded"),
            "Content-Type: application/x-www-form-urlencoded",
        ),
        (Some("application/jsonx"), "Content-Type: application/jsonx"),
        (None, "no Content-Type"),
    ] {
        let resp = post(content_type, None, user("eve")).await;
        assert_eq!(
            error(&resp),
            (
                415,
                body(
                    "UNSUPPORTED_MEDIA_TYPE",
                    &format!(
                        "the admin API takes JSON bodies sent as Content-Type: application/json; \
                         this request sent {said}"
                    )
                )
            ),
            "{content_type:?}"
        );
    }
    let resp = app
        .admin_api(Method::DELETE, "/api/v1/users/eve", None)
        .await;
    assert_eq!(resp.status, 404, "nothing was created: {}", resp.text());

    // Parameters are fine; so is the registry's own origin.
    let resp = post(
        Some("Application/JSON; charset=utf-8"),
        Some(&app.base),
        user("carol"),
    )
    .await;
    assert_eq!(resp.status, 201, "{}", resp.text());

    for origin in ["https://evil.example", "null", "http://127.0.0.1:1"] {
        let resp = post(Some("application/json"), Some(origin), user("mallory")).await;
        assert_eq!(
            error(&resp),
            (
                403,
                body(
                    "DENIED",
                    &format!(
                        "this request comes from a web page of another origin (Origin: {origin}), \
                         not from {}: the admin API refuses such requests so that no web page \
                         can use an administrator's credentials; call it from `berth admin` or \
                         a client that sends no Origin header",
                        app.base
                    )
                )
            ),
            "{origin}"
        );
    }
    // Refused before the credentials are looked at, body or not.
    let resp = app
        .send(
            app.request(Method::DELETE, "/api/v1/users/carol")
                .header("origin", "https://evil.example"),
        )
        .await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    let resp = app
        .admin_api(Method::DELETE, "/api/v1/users/mallory", None)
        .await;
    assert_eq!(resp.status, 404, "nothing was created: {}", resp.text());
}

/// Regression: deleting a user left its repositories, and a new user of the
/// same name inherited them with their visibility.
#[tokio::test]
async fn a_user_who_owns_repositories_is_deleted_only_with_them() {
    let app = TestApp::start().await;
    app.user("alice").await;
    let token = app
        .user_token(
            "alice",
            &[
                "repository:alice/app:pull,push",
                "repository:alice/lib:pull,push",
            ],
        )
        .await;
    let pushed = app.push_image("alice/app", "v1", &token).await;
    app.push_image("alice/lib", "v1", &token).await;
    let upload = app
        .post("/v2/alice/app/blobs/uploads/", Some(&token), b"")
        .await;
    assert_eq!(upload.status, 202, "{}", upload.text());
    let upload_id = upload.header("docker-upload-uuid").unwrap().to_owned();
    app.set_public("alice/lib", true).await;

    let resp = app
        .admin_api(Method::DELETE, "/api/v1/users/alice", None)
        .await;
    assert_eq!(
        error(&resp),
        (
            409,
            body(
                "OWNS_REPOSITORIES",
                "user `alice` owns 2 repositories; delete them with the user (`berth admin user \
                 delete alice --delete-repositories`, or \
                 `DELETE /api/v1/users/alice?delete_repositories=true`), or keep the user"
            )
        )
    );
    // Nothing happened: alice and her repositories are there.
    let resp = app.get("/v2/alice/app/tags/list", Some(&token)).await;
    assert_eq!(resp.status, 200, "{}", resp.text());

    let resp = app
        .admin_api(
            Method::DELETE,
            "/api/v1/users/alice?delete_repositories=true",
            None,
        )
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    let resp = app
        .admin_api(Method::DELETE, "/api/v1/users/alice", None)
        .await;
    assert_eq!(resp.status, 404, "{}", resp.text());

    // A new alice finds nothing of the old one: no repositories, tags,
    // manifests, blobs or upload sessions, and nothing public.
    app.user("alice").await;
    let scopes = [
        "repository:alice/app:pull,push",
        "repository:alice/lib:pull,push",
        "registry:catalog:*",
    ];
    let new = app.user_token("alice", &scopes).await;
    for path in [
        "/v2/alice/app/tags/list".to_owned(),
        "/v2/alice/lib/tags/list".to_owned(),
        "/v2/alice/app/manifests/v1".to_owned(),
        format!("/v2/alice/app/manifests/{}", pushed.digest),
        format!("/v2/alice/app/blobs/{}", pushed.layer),
    ] {
        let resp = app.get(&path, Some(&new)).await;
        assert_eq!(resp.status, 404, "{path}: {}", resp.text());
    }
    app.get(
        &format!("/v2/alice/app/blobs/uploads/{upload_id}"),
        Some(&new),
    )
    .await
    .assert_error(404, "BLOB_UPLOAD_UNKNOWN");
    let resp = app.get("/v2/_catalog", Some(&new)).await;
    assert_eq!(resp.json(), json!({"repositories": []}));
    let admin = app
        .user_token(berth_registry::ADMIN_USER, &["registry:catalog:*"])
        .await;
    let resp = app.get("/v2/_catalog", Some(&admin)).await;
    assert_eq!(resp.json(), json!({"repositories": []}));
    // Her first push creates a private repository, as any new one.
    app.push_image("alice/lib", "v2", &new).await;
    let anonymous = app.anonymous_token(&["repository:alice/lib:pull"]).await;
    assert_eq!(crate::support::access(&anonymous), json!([]));
}
