//! The seed's exchanges (`shared/seeds/000_2d2d7dbb35ff03a1.txt`, GHCR's token
//! flow), one test per request, named after it. Each doc comment quotes what
//! GHCR answered; each test asserts what berth answers instead
//! (PROTOCOL.md section 1).

use berth_core::media_type;
use berth_core::token::parse_rfc3339;
use serde_json::json;

use crate::support::{
    LIFETIME, TestApp, access, claims, image_manifest, layer_descriptor, now, password_of,
    random_bytes, repo_access, to_bytes,
};

/// The seed's user and its public repository.
const USER: &str = "toddysm";
const REPO: &str = "toddysm/python";
const TAG: &str = "3.10";

/// `toddysm` with the public `toddysm/python:3.10`.
async fn seed_app() -> (TestApp, crate::support::Pushed) {
    let app = TestApp::start().await;
    app.user(USER).await;
    let token = app
        .user_token(USER, &[&format!("repository:{REPO}:pull,push")])
        .await;
    let pushed = app.push_image(REPO, TAG, &token).await;
    app.set_public(REPO, true).await;
    (app, pushed)
}

/// GHCR: `GET /v2/` -> 401 with
/// `www-authenticate: Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:user/image:pull"`,
/// a placeholder scope no token can be had for.
/// berth: 401 UNAUTHORIZED, a challenge with realm and service and no scope.
#[tokio::test]
async fn get_v2_without_a_token() {
    let app = TestApp::start().await;
    for path in ["/v2/", "/v2"] {
        let resp = app.get(path, None).await;
        resp.assert_unauthorized(&app.challenge(None, None));
    }
}

/// GHCR: `GET /token?service=ghcr.io&scope=repository:user/image:pull` and the
/// same without a scope -> 403 DENIED "requested access to the resource is
/// denied": no token for `/v2/` without naming a real repository. Its tokens
/// carry no `expires_in`.
/// berth: 200 with a valid token with empty `access`, `token` ==
/// `access_token`, `expires_in` 300, `issued_at` RFC 3339; anonymous and
/// authenticated alike.
#[tokio::test]
async fn get_token_with_no_scope() {
    let app = TestApp::start().await;
    app.user("alice").await;
    let password = password_of("alice");
    let query = format!("service={}", app.service);
    for (basic, sub) in [(None, ""), (Some(("alice", password.as_str())), "alice")] {
        let before = now();
        let resp = app.token_get(basic, &query).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.header("content-type"), Some("application/json"));
        let body = resp.json();
        let token = body["token"].as_str().unwrap();
        assert_eq!(body["access_token"], token);
        assert_eq!(body["expires_in"], LIFETIME);
        assert_eq!(body.get("refresh_token"), None, "no offline access asked");
        let issued_at = body["issued_at"].as_str().unwrap();
        assert!(issued_at.ends_with('Z'), "UTC: {issued_at}");
        let issued = parse_rfc3339(issued_at).unwrap();
        assert!((before..=now()).contains(&issued), "{issued_at}");

        let c = claims(token);
        assert_eq!(c["access"], json!([]));
        assert_eq!(c["sub"], sub);
        assert_eq!(c["iss"], "berth");
        assert_eq!(c["aud"], app.service.as_str());
        assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 300);
        // And it verifies: the registry admits it on /v2/.
        let resp = app.get("/v2/", Some(token)).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
}

/// GHCR: `GET /v2/` with a token -> 200 `Content-Type: application/json`,
/// `Content-Length: 0` (an empty body, not the `{}` the spec requires); and
/// `/v2` without the slash: 401 without a token, 404 with one.
/// berth: 200 `{}` as `application/json` on both paths.
#[tokio::test]
async fn get_v2_with_a_token() {
    let app = TestApp::start().await;
    let token = app.anonymous_token(&[]).await;
    for path in ["/v2/", "/v2"] {
        let resp = app.get(path, Some(&token)).await;
        assert_eq!(resp.status, 200, "{path}: {}", resp.text());
        assert_eq!(resp.header("content-type"), Some("application/json"));
        assert_eq!(resp.body, b"{}", "{path}");
    }
}

/// GHCR: `GET /token?service=ghcr.io&scope=repository:toddysm/python:pull,push,delete`
/// without credentials -> 403 DENIED.
/// berth: 200; the grant is what anonymous may do on a public repository: pull.
#[tokio::test]
async fn get_token_anonymous_for_pull_push_delete() {
    let (app, _) = seed_app().await;
    let token = app
        .anonymous_token(&[&format!("repository:{REPO}:pull,push,delete")])
        .await;
    assert_eq!(access(&token), json!([repo_access(REPO, &["pull"])]));
    assert_eq!(claims(&token)["sub"], "");
}

/// Repositories for the catalog tests: public, own, organisation's, others'.
async fn catalog_app() -> TestApp {
    let app = TestApp::start().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let acme = app.org("acme", &bob).await;
    app.member(&acme, &alice, berth_registry::identity::Role::Member)
        .await;
    for name in [
        "acme/api",
        "alice/app",
        "alice/pub",
        "bob/app",
        "bob/pub",
        "zed/x",
    ] {
        app.seed_image(name, "v1").await;
    }
    app.set_public("alice/pub", true).await;
    app.set_public("bob/pub", true).await;
    app
}

/// GHCR: `GET /v2/_catalog` with an anonymous token -> refused; a catalog
/// token cannot be had at all.
/// berth: 200 with an anonymous token, scoped or not, and with
/// `registry:catalog:*`: exactly the public repositories.
#[tokio::test]
async fn get_catalog_with_an_anonymous_token() {
    let app = catalog_app().await;
    let bare = app.anonymous_token(&[]).await;
    let catalog = app.anonymous_token(&["registry:catalog:*"]).await;
    assert_eq!(
        access(&catalog),
        json!([{"type": "registry", "name": "catalog", "actions": ["*"]}])
    );
    let unrelated = app.anonymous_token(&["repository:bob/pub:pull"]).await;
    for token in [&bare, &catalog, &unrelated] {
        let resp = app.get("/v2/_catalog", Some(token)).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.header("content-type"), Some("application/json"));
        assert_eq!(
            resp.json(),
            json!({"repositories": ["alice/pub", "bob/pub"]})
        );
    }
    // Paginated over what the caller may see, not over everything.
    let resp = app.get("/v2/_catalog?n=1", Some(&catalog)).await;
    assert_eq!(resp.json(), json!({"repositories": ["alice/pub"]}));
    let link = resp.header("link").unwrap();
    assert_eq!(link, r#"</v2/_catalog?n=1&last=alice%2Fpub>; rel="next""#);
    let resp = app
        .get("/v2/_catalog?n=1&last=alice%2Fpub", Some(&catalog))
        .await;
    assert_eq!(resp.json(), json!({"repositories": ["bob/pub"]}));
    let resp = app
        .get("/v2/_catalog?n=1&last=bob%2Fpub", Some(&catalog))
        .await;
    assert_eq!(resp.json(), json!({"repositories": []}));
    assert_eq!(resp.header("link"), None);
}

/// GHCR: `GET /v2/_catalog` with a user's token for
/// `repository:toddysm/python:pull,push,delete` -> 200, every public
/// repository (private ones the user may pull: not found out).
/// berth: 200, public + the user's own + their organisations'.
#[tokio::test]
async fn get_catalog_with_a_users_token() {
    let app = catalog_app().await;
    for scopes in [&[][..], &["registry:catalog:*"][..]] {
        let token = app.user_token("alice", scopes).await;
        let resp = app.get("/v2/_catalog", Some(&token)).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(
            resp.json(),
            json!({"repositories": ["acme/api", "alice/app", "alice/pub", "bob/pub"]})
        );
    }
    // An administrator sees everything.
    let token = app
        .user_token(berth_registry::ADMIN_USER, &["registry:catalog:*"])
        .await;
    let resp = app.get("/v2/_catalog", Some(&token)).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.json(),
        json!({"repositories": ["acme/api", "alice/app", "alice/pub", "bob/app", "bob/pub", "zed/x"]})
    );
}

/// GHCR: `GET /v2/toddysm/python/tags/list` with an anonymous pull token ->
/// 200 `{"name":"toddysm/python","tags":["3.10"]}`.
/// berth: the same.
#[tokio::test]
async fn get_tags_list_with_an_anonymous_token() {
    let (app, _) = seed_app().await;
    let token = app
        .anonymous_token(&[&format!("repository:{REPO}:pull")])
        .await;
    let resp = app
        .get(&format!("/v2/{REPO}/tags/list"), Some(&token))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.json(), json!({"name": REPO, "tags": [TAG]}));
}

/// GHCR: `GET` and `HEAD /v2/toddysm/python/manifests/3.10` with an anonymous
/// pull token -> 200 with `Content-Type` and `docker-content-digest`.
/// berth: the same.
#[tokio::test]
async fn get_and_head_manifest_with_an_anonymous_token() {
    let (app, pushed) = seed_app().await;
    let token = app
        .anonymous_token(&[&format!("repository:{REPO}:pull")])
        .await;
    let path = format!("/v2/{REPO}/manifests/{TAG}");
    let get = app.get(&path, Some(&token)).await;
    assert_eq!(get.status, 200, "{}", get.text());
    let head = app.head(&path, Some(&token)).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let digest = pushed.digest.to_string();
    for resp in [&get, &head] {
        assert_eq!(
            resp.header("content-type"),
            Some(media_type::OCI_IMAGE_MANIFEST)
        );
        assert_eq!(resp.header("docker-content-digest"), Some(digest.as_str()));
        assert_eq!(
            resp.header("content-length").unwrap(),
            get.body.len().to_string()
        );
    }
}

/// GHCR: `DELETE /v2/toddysm/python/manifests/3.10` with an anonymous token
/// -> 405 UNSUPPORTED "The operation is unsupported." (the author expected 403).
/// berth: policy allows anonymous pull on this public repository and refuses
/// delete, so asking for a token with delete would not help: 403 DENIED,
/// naming the action. With a pull-only token and with the pull,push,delete
/// request (granted pull) alike.
#[tokio::test]
async fn delete_manifest_with_an_anonymous_token() {
    let (app, pushed) = seed_app().await;
    let pull = app
        .anonymous_token(&[&format!("repository:{REPO}:pull")])
        .await;
    let all = app
        .anonymous_token(&[&format!("repository:{REPO}:pull,push,delete")])
        .await;
    for token in [&pull, &all] {
        let resp = app
            .delete(&format!("/v2/{REPO}/manifests/{TAG}"), Some(token))
            .await;
        let message = resp.assert_error(403, "DENIED");
        assert!(message.contains("delete"), "{message}");
        assert_eq!(resp.header("www-authenticate"), None);
        let resp = app
            .delete(&format!("/v2/{REPO}/blobs/{}", pushed.layer), Some(token))
            .await;
        let message = resp.assert_error(403, "DENIED");
        assert!(message.contains("delete"), "{message}");
    }
    // Nothing was deleted.
    let resp = app
        .get(&format!("/v2/{REPO}/manifests/{TAG}"), Some(&pull))
        .await;
    assert_eq!(resp.status, 200);
}

/// GHCR: `DELETE /v2/toddysm/python/manifests/3.10` and `DELETE
/// /v2/toddysm/python/blobs/<digest>` with the owner's pull,push,delete token
/// -> 405 UNSUPPORTED.
/// berth: 202, and the manifest (then the blob) is gone.
#[tokio::test]
async fn delete_manifest_with_the_owners_token() {
    let (app, pushed) = seed_app().await;
    let token = app
        .user_token(USER, &[&format!("repository:{REPO}:pull,push,delete")])
        .await;
    assert_eq!(
        access(&token),
        json!([repo_access(REPO, &["delete", "pull", "push"])])
    );
    let resp = app
        .delete(
            &format!("/v2/{REPO}/manifests/{}", pushed.digest),
            Some(&token),
        )
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    let resp = app
        .get(&format!("/v2/{REPO}/manifests/{TAG}"), Some(&token))
        .await;
    resp.assert_error(404, "MANIFEST_UNKNOWN");

    let blob = format!("/v2/{REPO}/blobs/{}", pushed.layer);
    let resp = app.delete(&blob, Some(&token)).await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    app.get(&blob, Some(&token))
        .await
        .assert_error(404, "BLOB_UNKNOWN");
}

/// GHCR: the same DELETEs -> 405 UNSUPPORTED "The operation is unsupported."
/// for everyone.
/// berth: 405 UNSUPPORTED only where the operator disabled deletion, with a
/// message that says so; and still only for a caller who may delete.
#[tokio::test]
async fn delete_manifest_where_the_operator_disabled_deletion() {
    let app = TestApp::start_with(|config| config.delete_enabled = false).await;
    app.user(USER).await;
    let token = app
        .user_token(USER, &[&format!("repository:{REPO}:pull,push,delete")])
        .await;
    let pushed = app.push_image(REPO, TAG, &token).await;
    for path in [
        format!("/v2/{REPO}/manifests/{TAG}"),
        format!("/v2/{REPO}/manifests/{}", pushed.digest),
        format!("/v2/{REPO}/blobs/{}", pushed.layer),
    ] {
        let message = app
            .delete(&path, Some(&token))
            .await
            .assert_error(405, "UNSUPPORTED");
        assert!(message.contains("disabled"), "{path}: {message}");
    }
    // Anonymous callers still get the answer for a repository they may not see.
    let anonymous = app.anonymous_token(&[]).await;
    let resp = app
        .delete(&format!("/v2/{REPO}/manifests/{TAG}"), Some(&anonymous))
        .await;
    resp.assert_unauthorized(&app.challenge(
        Some(&format!("repository:{REPO}:delete")),
        Some("insufficient_scope"),
    ));
}

/// GHCR: `PUT /v2/toddysm/python/manifests/3.11` with the owner's token ->
/// 201 with `docker-content-digest` and `Location`.
/// berth: the same.
#[tokio::test]
async fn put_manifest_with_the_owners_token() {
    let (app, _) = seed_app().await;
    let token = app
        .user_token(USER, &[&format!("repository:{REPO}:pull,push,delete")])
        .await;
    let layer = random_bytes(32);
    let layer_digest = app.push_blob(REPO, &token, &layer).await;
    assert_eq!(layer_digest, berth_core::digest::Digest::sha256_of(&layer));
    let manifest = image_manifest(&[layer_descriptor(&layer)]);
    let resp = app
        .put_manifest(REPO, "3.11", Some(&token), &manifest)
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let digest = berth_core::digest::Digest::sha256_of(&to_bytes(&manifest)).to_string();
    assert_eq!(resp.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(
        resp.header("location"),
        Some(format!("{}/v2/{REPO}/manifests/{digest}", app.base).as_str())
    );
}
