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

/// Pull-through cache namespaces through `/api/v1/proxies`: administrators
/// only; a stored one is listed beside the configured one with its source,
/// in force at once (a push into it is refused as into any cache), and
/// never echoes a password (the API takes a password file, read now, so a
/// missing one is refused); the names of configured proxies, users and
/// organisations are refused, and a user may not take a proxy's name;
/// removal of a configured one is refused, of a stored one takes it out of
/// force.
#[tokio::test]
async fn proxy_namespaces_are_added_listed_and_removed_by_administrators() {
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("quay.password");
    std::fs::write(&password_file, "upstream-token\n").unwrap();
    let app = TestApp::start_with(|config| {
        config.proxies = berth_registry::proxy::settings::parse_all(&[
            berth_registry::proxy::settings::parse_flag("hub=https://registry-1.docker.io")
                .unwrap(),
        ])
        .unwrap();
    })
    .await;
    app.user("alice").await;
    let quay = json!({
        "name": "quay",
        "url": "https://quay.io",
        "access": "public",
        "username": "robot+cache",
        "password_file": password_file.to_str().unwrap(),
        "tag_ttl_secs": 600,
    });

    let refused = app
        .api_as("alice", Method::POST, "/api/v1/proxies", Some(quay.clone()))
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(
        app.api_as("alice", Method::GET, "/api/v1/proxies", None)
            .await
            .status,
        403
    );

    let created = app
        .admin_api(Method::POST, "/api/v1/proxies", Some(quay.clone()))
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let expected_quay = json!({
        "name": "quay", "url": "https://quay.io", "access": "public", "username": "robot+cache",
        "tag_ttl_secs": 600, "source": "api", "fetched_bytes": 0,
    });
    assert_eq!(created.json(), expected_quay);
    let listed = app.admin_api(Method::GET, "/api/v1/proxies", None).await;
    assert_eq!(listed.status, 200);
    assert_eq!(
        listed.json(),
        json!({"proxies": [
            {"name": "hub", "url": "https://registry-1.docker.io", "access": "authenticated",
             "username": null, "tag_ttl_secs": 300, "source": "config", "fetched_bytes": 0},
            expected_quay,
        ]})
    );
    assert!(!listed.text().contains("upstream-token"));

    // In force: nobody pushes into it.
    let token = crate::support::admin_token(&app, &["quay/org/tool"]).await;
    let push = app
        .post("/v2/quay/org/tool/blobs/uploads/", Some(&token), b"")
        .await;
    assert_eq!(push.status, 403, "{}", push.text());
    assert!(
        push.text()
            .contains("pull-through cache `quay` of https://quay.io"),
        "{}",
        push.text()
    );

    for (body, status, code, said) in [
        (quay.clone(), 409, "PROXY_EXISTS", "exists; remove it first"),
        (
            json!({"name": "hub", "url": "https://ghcr.io"}),
            409,
            "PROXY_EXISTS",
            "set in the configuration file",
        ),
        (
            json!({"name": "alice", "url": "https://ghcr.io"}),
            409,
            "NAME_TAKEN",
            "belongs to a user or an organisation",
        ),
        (
            json!({"name": "ghcr", "url": "https://ghcr.io/v2/"}),
            400,
            "PROXY_INVALID",
            "proxy ghcr: url",
        ),
        (
            json!({"name": "ghcr", "url": "https://ghcr.io", "username": "me",
                   "password_file": "/nonexistent/ghcr.password"}),
            400,
            "PROXY_INVALID",
            "proxy ghcr: password_file /nonexistent/ghcr.password",
        ),
    ] {
        let resp = app
            .admin_api(Method::POST, "/api/v1/proxies", Some(body))
            .await;
        let (got, refusal) = error(&resp);
        assert_eq!(got, status, "{refusal}");
        assert_eq!(refusal["errors"][0]["code"], code, "{refusal}");
        let message = refusal["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(said), "{message:?} lacks {said:?}");
    }

    let namesake = app
        .admin_api(
            Method::POST,
            "/api/v1/users",
            Some(json!({"name": "quay", "password": "long enough password"})),
        )
        .await;
    let (status, refusal) = error(&namesake);
    assert_eq!(status, 409);
    assert_eq!(refusal["errors"][0]["code"], "NAME_TAKEN");

    let configured = app
        .admin_api(Method::DELETE, "/api/v1/proxies/hub", None)
        .await;
    assert_eq!(configured.status, 409, "{}", configured.text());
    let removed = app
        .admin_api(Method::DELETE, "/api/v1/proxies/quay", None)
        .await;
    assert_eq!(removed.status, 204, "{}", removed.text());
    assert!(
        app.registry
            .proxies
            .list()
            .iter()
            .all(|p| p.settings.name != "quay")
    );
    let again = app
        .admin_api(Method::DELETE, "/api/v1/proxies/quay", None)
        .await;
    let (status, refusal) = error(&again);
    assert_eq!(status, 404);
    assert_eq!(refusal["errors"][0]["code"], "PROXY_UNKNOWN");
}

/// A proxy namespace added through one node's API is in force on another
/// node of the same database within its refresh (`proxy::REFRESH`, 2 s),
/// mapping `ghcr/org/tool` to the upstream's `org/tool`, and out of force
/// there within the same time once removed.
#[tokio::test]
async fn a_proxy_added_on_one_node_is_in_force_on_another_within_the_refresh() {
    use berth_core::name::RepositoryName;
    use berth_registry::config::Config;
    use berth_registry::proxy::{REFRESH, run_refresh};

    let app = TestApp::start().await;
    let second = app.open_node(Config::new(app.base.clone())).await;
    let refresh = tokio::spawn(run_refresh(second.clone()));
    let name = RepositoryName::parse("ghcr/org/tool").unwrap();
    // Waits until the second node has `name` in a cache or not, as `want`.
    let in_force_on_second = |want: bool| {
        let (second, name) = (&second, &name);
        async move {
            let since = std::time::Instant::now();
            while second.proxies.find(name).is_some() != want {
                assert!(
                    since.elapsed() < REFRESH + std::time::Duration::from_secs(1),
                    "in force on the second node: {} after {:?}, wanted {want}",
                    !want,
                    since.elapsed()
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    assert!(second.proxies.find(&name).is_none());

    let created = app
        .admin_api(
            Method::POST,
            "/api/v1/proxies",
            Some(json!({"name": "ghcr", "url": "https://ghcr.io", "access": "public"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    in_force_on_second(true).await;
    let target = second.proxies.find(&name).unwrap();
    assert_eq!(target.upstream.as_str(), "org/tool");

    let removed = app
        .admin_api(Method::DELETE, "/api/v1/proxies/ghcr", None)
        .await;
    assert_eq!(removed.status, 204, "{}", removed.text());
    in_force_on_second(false).await;
    refresh.abort();
}
