//! Namespace quotas (403 `DENIED` naming the namespace, its usage and its
//! quota) on every way a blob is pushed, and `/api/v1/usage` against a
//! recount of what the test pushed.

use std::collections::BTreeMap;
use std::convert::Infallible;

use berth_core::digest::Digest;
use berth_registry::meta::db::query_scalar;
use reqwest::Method;
use serde_json::{Value, json};

use super::{Blob, admin_token, app_with, assert_blob_pulls, config_blob, push};
use crate::support::{Resp, TestApp};

/// `POST ?digest=` with the bytes of `blob` and their length: a monolithic push.
async fn post_blob(app: &TestApp, token: &str, name: &str, blob: &Blob) -> Resp {
    app.post(
        &format!("/v2/{name}/blobs/uploads/?digest={}", blob.digest),
        Some(token),
        &blob.bytes,
    )
    .await
}

/// What `check_quota` says when `acme` is refused.
fn over_quota(used: &str, quota: &str, needs: &str) -> String {
    format!(
        "namespace acme is over its quota: {used} used of {quota}, and this push needs {needs} \
         more; delete images from it (unreferenced bytes are reclaimed by the garbage \
         collector) or ask an administrator to raise the quota"
    )
}

/// Open upload sessions, as the database holds them.
async fn open_sessions(app: &TestApp) -> i64 {
    query_scalar("SELECT count(*) FROM uploads")
        .fetch_one(&app.registry.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_push_past_the_namespace_quota_is_refused_with_denied() {
    let app = app_with(|_| {}).await;
    let name = "acme/app";
    let token = admin_token(&app, &[name]).await;
    // 2 + 1000 bytes.
    push(&app, &token, name, &config_blob()).await;
    push(&app, &token, name, &Blob::random(1000)).await;

    let resp = app
        .admin_api(
            Method::PUT,
            "/api/v1/quotas/acme",
            Some(json!({"bytes": 2048})),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.json(),
        json!({"namespace": "acme", "bytes": 2048, "used": 1002})
    );
    let resp = app.admin_api(Method::GET, "/api/v1/quotas", None).await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.json(),
        json!({"quotas": [{"namespace": "acme", "bytes": 2048}]})
    );

    // Monolithic: refused before a byte is stored.
    let big = Blob::random(1100);
    let message = post_blob(&app, &token, name, &big)
        .await
        .assert_error(403, "DENIED");
    assert_eq!(
        message,
        over_quota("1002 B", "2.0 KiB (2048 bytes)", "1.1 KiB (1100 bytes)")
    );
    assert!(!app.blob_stored(&big.digest).await);

    // Exactly up to the quota: accepted.
    push(&app, &token, name, &Blob::random(1046)).await;
    let resp = app
        .admin_api(Method::GET, "/api/v1/usage?namespace=acme", None)
        .await;
    assert_eq!(
        resp.json()["namespaces"],
        json!([{"namespace": "acme", "bytes": 2048, "blobs": 3, "quota": 2048}])
    );

    // The quota removed: the push goes through; removed again: 404.
    let resp = app
        .admin_api(Method::DELETE, "/api/v1/quotas/acme", None)
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    push(&app, &token, name, &big).await;
    let resp = app
        .admin_api(Method::DELETE, "/api/v1/quotas/acme", None)
        .await;
    assert_eq!(resp.status, 404, "{}", resp.text());
    assert_eq!(resp.json()["errors"][0]["code"], "NOT_FOUND");
}

/// A request body without a length: sent with `Transfer-Encoding: chunked`.
fn unsized_body(bytes: &[u8]) -> reqwest::Body {
    let frames = bytes
        .chunks(256)
        .map(|c| Ok::<_, Infallible>(http_body::Frame::data(bytes::Bytes::copy_from_slice(c))))
        .collect::<Vec<_>>();
    reqwest::Body::wrap(http_body_util::StreamBody::new(futures_util::stream::iter(
        frames,
    )))
}

#[tokio::test]
async fn a_chunk_streamed_without_a_length_is_refused_at_the_closing_put() {
    let app = app_with(|_| {}).await;
    let name = "acme/app";
    let token = admin_token(&app, &[name]).await;
    push(&app, &token, name, &Blob::random(1000)).await;
    let resp = app
        .admin_api(
            Method::PUT,
            "/api/v1/quotas/acme",
            Some(json!({"bytes": 1500})),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());

    let location = open_session(&app, &token, name).await;
    let big = Blob::random(1100);
    let resp = app
        .send(
            app.bearer(Method::PATCH, &location, Some(&token))
                .header("content-type", "application/octet-stream")
                .body(unsized_body(&big.bytes)),
        )
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    assert_eq!(resp.header("range"), Some("0-1099"));
    let location = resp.header("location").unwrap().to_owned();
    let resp = app
        .send(app.bearer(Method::PUT, &closing(&location, &big.digest), Some(&token)))
        .await;
    let message = resp.assert_error(403, "DENIED");
    assert_eq!(
        message,
        over_quota("1000 B", "1.5 KiB (1500 bytes)", "1.1 KiB (1100 bytes)")
    );
    // The session is gone with its bytes.
    app.get(&location, Some(&token))
        .await
        .assert_error(404, "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(open_sessions(&app).await, 0);
    let head = app
        .head(&format!("/v2/{name}/blobs/{}", big.digest), Some(&token))
        .await;
    assert_eq!(head.status, 404);
    assert!(!app.blob_stored(&big.digest).await);
}

/// Opens an upload session in `name`; its `Location`.
async fn open_session(app: &TestApp, token: &str, name: &str) -> String {
    let resp = app
        .post(&format!("/v2/{name}/blobs/uploads/"), Some(token), b"")
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    resp.header("location").unwrap().to_owned()
}

/// `location` with `?digest=<digest>` (or `&digest=`) added.
fn closing(location: &str, digest: &Digest) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    format!("{location}{separator}digest={digest}")
}

/// Every way a client pushes a blob the namespace already links is
/// accepted when the namespace is at its quota: the blob adds no byte.
#[tokio::test]
async fn a_blob_the_namespace_already_holds_is_accepted_at_its_quota() {
    let app = app_with(|_| {}).await;
    let names = [
        "acme/one",
        "acme/mounted",
        "acme/monolithic",
        "acme/put",
        "acme/streamed",
    ];
    let token = admin_token(&app, &names).await;
    let layer = Blob::random(1000);
    push(&app, &token, names[0], &layer).await;
    let resp = app
        .admin_api(
            Method::PUT,
            "/api/v1/quotas/acme",
            Some(json!({"bytes": 1000})),
        )
        .await;
    assert_eq!(resp.json()["used"], 1000);
    // Something new is refused: the namespace is at its quota.
    post_blob(&app, &token, names[1], &Blob::random(1))
        .await
        .assert_error(403, "DENIED");

    let mut answers = BTreeMap::new();
    // A mount from the repository that holds it.
    let resp = app
        .post(
            &format!(
                "/v2/{}/blobs/uploads/?mount={}&from={}",
                names[1], layer.digest, names[0]
            ),
            Some(&token),
            b"",
        )
        .await;
    answers.insert(names[1], (resp.status, resp.text()));
    // `POST ?digest=` with the bytes and their length.
    let resp = post_blob(&app, &token, names[2], &layer).await;
    answers.insert(names[2], (resp.status, resp.text()));
    // `POST`, then the bytes and their length in the closing `PUT`
    // (containerd's way).
    let location = open_session(&app, &token, names[3]).await;
    let resp = app
        .send(
            app.bearer(
                Method::PUT,
                &closing(&location, &layer.digest),
                Some(&token),
            )
            .header("content-type", "application/octet-stream")
            .body(layer.bytes.clone()),
        )
        .await;
    answers.insert(names[3], (resp.status, resp.text()));
    // `POST`, a `PATCH` streamed without a length, an empty closing `PUT`.
    let location = open_session(&app, &token, names[4]).await;
    let resp = app
        .send(
            app.bearer(Method::PATCH, &location, Some(&token))
                .header("content-type", "application/octet-stream")
                .body(unsized_body(&layer.bytes)),
        )
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    let location = resp.header("location").unwrap().to_owned();
    let resp = app
        .send(app.bearer(
            Method::PUT,
            &closing(&location, &layer.digest),
            Some(&token),
        ))
        .await;
    answers.insert(names[4], (resp.status, resp.text()));

    let created: BTreeMap<&str, u16> = answers.iter().map(|(n, (s, _))| (*n, *s)).collect();
    let expected: BTreeMap<&str, u16> = names[1..].iter().map(|n| (*n, 201)).collect();
    assert_eq!(created, expected, "answers: {answers:#?}");
    for name in names {
        assert_blob_pulls(&app, &token, name, &layer).await;
    }
    let resp = app
        .admin_api(Method::GET, "/api/v1/usage?namespace=acme", None)
        .await;
    assert_eq!(
        resp.json()["namespaces"],
        json!([{"namespace": "acme", "bytes": 1000, "blobs": 1, "quota": 1000}])
    );
}

/// A monolithic push refused for the quota opens no session the client
/// could not close: refused pushes never use up the caller's session cap.
#[tokio::test]
async fn a_push_refused_for_the_quota_leaves_no_upload_session() {
    let app = TestApp::start_with_s3_if_set(|config| {
        config.gc.interval = None;
        config.max_uploads_per_user = 2;
    })
    .await;
    let name = "acme/app";
    let token = admin_token(&app, &[name]).await;
    let resp = app
        .admin_api(
            Method::PUT,
            "/api/v1/quotas/acme",
            Some(json!({"bytes": 10})),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    for _ in 0..2 {
        post_blob(&app, &token, name, &Blob::random(11))
            .await
            .assert_error(403, "DENIED");
    }
    // The cap of two sessions is not used up.
    let resp = post_blob(&app, &token, name, &Blob::random(10)).await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(
        open_sessions(&app).await,
        0,
        "sessions left by refused pushes"
    );
}

#[tokio::test]
async fn usage_counts_each_distinct_blob_once_per_namespace() {
    let app = app_with(|_| {}).await;
    let repositories = ["acme/app", "acme/tools", "beta/app"];
    let token = admin_token(&app, &repositories).await;
    let shared = Blob::random(500);
    // What the test pushed, by repository.
    let mut pushed: BTreeMap<&str, Vec<Blob>> = BTreeMap::new();
    for name in repositories {
        let own = Blob::random(100 + name.len() * 10);
        for blob in [config_blob(), shared.clone(), own] {
            push(&app, &token, name, &blob).await;
            pushed.entry(name).or_default().push(blob);
        }
    }
    let resp = app
        .admin_api(
            Method::PUT,
            "/api/v1/quotas/gamma",
            Some(json!({"bytes": 5})),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());

    // The recount: distinct digests per namespace, per repository, overall.
    let distinct = |blobs: &mut dyn Iterator<Item = &Blob>| {
        let set: BTreeMap<String, u64> = blobs.map(|b| (b.digest.to_string(), b.len())).collect();
        (set.values().sum::<u64>(), set.len())
    };
    let namespace = |ns: &str| {
        let (bytes, blobs) = distinct(
            &mut pushed
                .iter()
                .filter(|(name, _)| name.starts_with(&format!("{ns}/")))
                .flat_map(|(_, blobs)| blobs),
        );
        json!({"namespace": ns, "bytes": bytes, "blobs": blobs, "quota": null})
    };
    let repository = |name: &str| {
        let (bytes, blobs) = distinct(&mut pushed[name].iter());
        json!({"repository": name, "bytes": bytes, "blobs": blobs})
    };
    let (stored_bytes, stored_blobs) = distinct(&mut pushed.values().flatten());

    let resp = app.admin_api(Method::GET, "/api/v1/usage", None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let usage = resp.json();
    assert_eq!(
        usage["stored"],
        json!({"blobs": stored_blobs, "bytes": stored_bytes})
    );
    assert_eq!(
        usage["namespaces"],
        json!([
            namespace("acme"),
            namespace("beta"),
            {"namespace": "gamma", "bytes": 0, "blobs": 0, "quota": 5},
        ])
    );
    assert_eq!(usage["repositories"], json!(repositories.map(repository)));
    // acme holds the shared blob and the config once for its two repositories.
    assert_eq!(
        usage["namespaces"][0]["bytes"],
        2 + 500 + (100 + 80) + (100 + 100)
    );

    let resp = app
        .admin_api(Method::GET, "/api/v1/usage?namespace=beta", None)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["namespaces"], json!([namespace("beta")]));
    assert_eq!(resp.json()["repositories"], json!([repository("beta/app")]));
}

#[tokio::test]
async fn gc_usage_and_quotas_are_for_administrators_and_take_namespaces_only() {
    let app = app_with(|_| {}).await;
    app.user("alice").await;
    let calls: [(Method, &str, Option<Value>); 6] = [
        (Method::POST, "/api/v1/gc", None),
        (Method::POST, "/api/v1/gc?dry_run=true", None),
        (Method::GET, "/api/v1/usage", None),
        (Method::GET, "/api/v1/quotas", None),
        (
            Method::PUT,
            "/api/v1/quotas/alice",
            Some(json!({"bytes": 1})),
        ),
        (Method::DELETE, "/api/v1/quotas/alice", None),
    ];
    for (method, path, body) in calls {
        let resp = app.api_as("alice", method.clone(), path, body).await;
        assert_eq!(resp.status, 403, "{method} {path}: {}", resp.text());
        let errors = &resp.json()["errors"];
        assert_eq!(errors[0]["code"], "DENIED", "{method} {path}");
        assert_eq!(
            errors[0]["message"],
            "`alice` is not an administrator; the admin API needs an administrator's credentials"
        );
    }
    let resp = app.admin_api(Method::GET, "/api/v1/quotas", None).await;
    assert_eq!(resp.json(), json!({"quotas": []}), "alice set nothing");

    for (method, path, body) in [
        (
            Method::PUT,
            "/api/v1/quotas/Acme",
            Some(json!({"bytes": 1})),
        ),
        (Method::DELETE, "/api/v1/quotas/acme%2Fapp", None),
        (Method::GET, "/api/v1/usage?namespace=acme/app", None),
    ] {
        let resp = app.admin_api(method.clone(), path, body).await;
        assert_eq!(resp.status, 400, "{method} {path}: {}", resp.text());
        assert_eq!(resp.json()["errors"][0]["code"], "INVALID_REQUEST");
    }
}
