//! Two nodes on one PostgreSQL database: each a real server on its own
//! `127.0.0.1:0` listener and its own data directory (own key files, own
//! caches), serving the same public URL, as behind a load balancer. What one
//! node writes, the other serves: tokens and key rotations, a tag moved on
//! the next request, and security changes within the refresh interval.
//!
//! PostgreSQL only (`BERTH_TEST_DATABASE_URL`, `.ci/postgres`): the embedded
//! SQLite database has one process; on it each test says it was skipped.

use std::time::{Duration, Instant};

use berth_registry::Config;
use berth_registry::auth::key_sync;
use reqwest::Method;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;

use crate::support::{
    EMPTY_CONFIG, Resp, TestApp, access, basic_header, image_manifest, layer_descriptor,
    password_of, random_bytes, to_bytes,
};

/// How soon a change made through one node must be in force on the other:
/// the one-second refresh and a margin for a loaded machine.
const WITHIN: Duration = Duration::from_secs(2);

/// The second node: its base URL; dropping it stops the server and removes
/// its data directory.
struct Node {
    base: String,
    _stop: oneshot::Sender<()>,
    _dir: TempDir,
}

/// A second node on the database of `app` with a data directory of its own,
/// or `None` (the test is skipped) on SQLite.
async fn second_node(app: &TestApp, test: &str) -> Option<Node> {
    let Some(url) = app.database_url() else {
        eprintln!("{test}: skipped, PostgreSQL only (set BERTH_TEST_DATABASE_URL)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = Config::new(app.base.clone());
    config.database_url = Some(url);
    let registry = berth_registry::Registry::open(dir.path(), config)
        .await
        .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(berth_registry::serve(listener, registry, async move {
        let _ = stopped.await;
    }));
    Some(Node {
        base,
        _stop: stop,
        _dir: dir,
    })
}

/// Polls `check` every 50 ms until it holds; fails after [`WITHIN`].
async fn within<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < WITHIN,
            "{what}: not in force on the other node after {WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn jwks_kids(app: &TestApp, base: &str) -> Vec<String> {
    let resp = app.get(&format!("{base}/token/jwks.json"), None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// A token of one node verifies on the other both ways; a rotation through
/// one node signs tokens the other accepts on their first request, and a
/// retirement ends the old key on both.
#[tokio::test]
async fn signing_keys_rotations_and_retirements_reach_every_node() {
    let app = TestApp::start().await;
    let Some(b) = second_node(&app, "signing_keys").await else {
        return;
    };
    app.user("alice").await;
    let scope = "repository:alice/app:pull,push";
    let from_a = app.user_token("alice", &[scope]).await;
    app.push_image("alice/app", "v1", &from_a).await;
    let tags = "/v2/alice/app/tags/list";
    assert_eq!(
        app.get(&format!("{}{tags}", b.base), Some(&from_a))
            .await
            .status,
        200
    );
    let resp = token_at(
        &app,
        &b.base,
        Some(("alice", &password_of("alice"))),
        &[scope],
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let from_b = resp.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(app.get(tags, Some(&from_b)).await.status, 200);
    let old_kid = kid_of(&from_a);
    assert_eq!(kid_of(&from_b), old_kid);
    assert_eq!(jwks_kids(&app, &b.base).await, vec![old_kid.clone()]);

    let resp = app
        .admin_api(Method::POST, "/api/v1/keys/rotate", None)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let new_kid = resp.json()["kid"].as_str().unwrap().to_owned();
    let rotated = app.user_token("alice", &[scope]).await;
    assert_eq!(kid_of(&rotated), new_kid);
    // B has not refreshed yet: it looks the unknown kid up at once.
    let resp = app.get(&format!("{}{tags}", b.base), Some(&rotated)).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        jwks_kids(&app, &b.base).await,
        vec![old_kid.clone(), new_kid.clone()]
    );

    // Retired on A (as the admin API does once its tokens expired; here at
    // once): B stops publishing, and so verifying with, the old key. (No
    // token of a key retired on time is still valid, so none can be in a
    // node's cache of verified tokens.)
    let keys = app.registry.keys.clone().unwrap();
    let retiring = old_kid.clone();
    key_sync::change(&app.registry.db, &keys, move |k| {
        k.retire(&retiring, 0, berth_registry::clock::now_unix())
    })
    .await
    .unwrap();
    within("the retirement", || async {
        jwks_kids(&app, &b.base).await == vec![new_kid.clone()]
    })
    .await;
}

fn digest_header(resp: &Resp) -> String {
    resp.header("docker-content-digest").unwrap().to_owned()
}

/// A tag moved through node A is served by node B on the very next request,
/// every time, though B had the old manifest in its cache; a manifest
/// deleted through A is gone from B within the bound.
#[tokio::test]
async fn a_tag_pushed_through_one_node_is_served_by_the_other_at_once() {
    let app = TestApp::start().await;
    let Some(b) = second_node(&app, "read_your_writes").await else {
        return;
    };
    app.user("alice").await;
    let token = app
        .user_token("alice", &["repository:alice/app:pull,push,delete"])
        .await;
    let layer = random_bytes(32);
    app.push_blob("alice/app", &token, EMPTY_CONFIG).await;
    app.push_blob("alice/app", &token, &layer).await;
    let on_b = format!("{}/v2/alice/app/manifests/latest", b.base);
    let mut previous = None;
    for round in 0..30 {
        let mut manifest = image_manifest(&[layer_descriptor(&layer)]);
        manifest["annotations"] = json!({ "round": round.to_string() });
        let resp = app
            .put_manifest("alice/app", "latest", Some(&token), &manifest)
            .await;
        assert_eq!(resp.status, 201, "{}", resp.text());
        let pushed = digest_header(&resp);
        // Twice: the first answer may be what B caches.
        for _ in 0..2 {
            let resp = app.get(&on_b, Some(&token)).await;
            assert_eq!(resp.status, 200, "round {round}: {}", resp.text());
            assert_eq!(
                digest_header(&resp),
                pushed,
                "round {round}: B served a stale tag"
            );
            assert_eq!(resp.body, to_bytes(&manifest));
        }
        // B also caches by digest; keep the previous round's digest warm there.
        if let Some(previous) = &previous {
            let by_digest = format!("{}/v2/alice/app/manifests/{previous}", b.base);
            assert_eq!(app.get(&by_digest, Some(&token)).await.status, 200);
        }
        previous = Some(pushed);
    }

    let digest = previous.unwrap();
    let by_digest = format!("{}/v2/alice/app/manifests/{digest}", b.base);
    assert_eq!(app.get(&by_digest, Some(&token)).await.status, 200);
    let resp = app
        .delete(&format!("/v2/alice/app/manifests/{digest}"), Some(&token))
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    within("the manifest deletion", || async {
        let resp = app.get(&by_digest, Some(&token)).await;
        if resp.status == 404 {
            resp.assert_error(404, "MANIFEST_UNKNOWN");
            return true;
        }
        false
    })
    .await;
}

/// Both nodes move one tag at once, each to its own manifests: every push
/// succeeds, and afterwards both nodes serve the same one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_moving_one_tag_at_once_agree() {
    let app = TestApp::start().await;
    let Some(b) = second_node(&app, "concurrent_tag").await else {
        return;
    };
    app.user("alice").await;
    let token = app
        .user_token("alice", &["repository:alice/app:pull,push"])
        .await;
    let layer = random_bytes(32);
    app.push_blob("alice/app", &token, EMPTY_CONFIG).await;
    app.push_blob("alice/app", &token, &layer).await;
    let mut pushes = Vec::new();
    for i in 0..20 {
        let mut manifest = image_manifest(&[layer_descriptor(&layer)]);
        manifest["annotations"] = json!({ "writer": i.to_string() });
        let url = if i % 2 == 0 {
            format!("{}/v2/alice/app/manifests/latest", app.base)
        } else {
            format!("{}/v2/alice/app/manifests/latest", b.base)
        };
        let request = app
            .bearer(Method::PUT, &url, Some(&token))
            .header("content-type", manifest["mediaType"].as_str().unwrap())
            .body(to_bytes(&manifest));
        pushes.push(request.send());
    }
    let mut pushed = Vec::new();
    for resp in futures_util::future::join_all(pushes).await {
        let resp = resp.unwrap();
        assert_eq!(resp.status(), 201);
        pushed.push(
            resp.headers()["docker-content-digest"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    let on_a = digest_header(
        &app.get("/v2/alice/app/manifests/latest", Some(&token))
            .await,
    );
    let on_b = digest_header(
        &app.get(
            &format!("{}/v2/alice/app/manifests/latest", b.base),
            Some(&token),
        )
        .await,
    );
    assert_eq!(on_a, on_b);
    assert!(pushed.contains(&on_a));
    let resp = app
        .get(&format!("{}/v2/alice/app/tags/list", b.base), Some(&token))
        .await;
    assert_eq!(
        resp.json(),
        json!({"name": "alice/app", "tags": ["latest"]})
    );
}

/// `GET <base>/token` for `scopes`, with Basic credentials when given.
async fn token_at(app: &TestApp, base: &str, basic: Option<(&str, &str)>, scopes: &[&str]) -> Resp {
    let query = app.token_query(scopes);
    let mut request = app.request(Method::GET, &format!("{base}/token?{query}"));
    if let Some((user, password)) = basic {
        request = request.header("authorization", basic_header(user, password));
    }
    app.send(request).await
}

/// A token request to `base` with Basic credentials.
async fn token_status(app: &TestApp, base: &str, user: &str, password: &str, scope: &str) -> u16 {
    token_at(app, base, Some((user, password)), &[scope])
        .await
        .status
}

/// A password changed, a member removed and a repository made private
/// through node A: node B refuses what they ended within the bound.
#[tokio::test]
async fn security_changes_through_one_node_reach_the_other_within_a_second() {
    let app = TestApp::start().await;
    let Some(b) = second_node(&app, "security_changes").await else {
        return;
    };
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let acme = app.org("acme", &alice).await;
    app.member(&acme, &bob, berth_registry::identity::Role::Member)
        .await;
    app.seed_image("acme/app", "v1").await;
    app.seed_image("acme/public", "v1").await;
    app.set_public("acme/public", true).await;

    // The password: B has just checked (and remembers) the old one.
    let scope = "repository:acme/app:pull";
    assert_eq!(
        token_status(&app, &b.base, "bob", &password_of("bob"), scope).await,
        200
    );
    let resp = app
        .admin_api(
            Method::PUT,
            "/api/v1/users/bob/password",
            Some(json!({"password": "a-new-password-for-bob"})),
        )
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    within("the password change", || async {
        token_status(&app, &b.base, "bob", &password_of("bob"), scope).await == 401
    })
    .await;
    assert_eq!(
        token_status(&app, &b.base, "bob", "a-new-password-for-bob", scope).await,
        200
    );

    // The membership: a token B issued before the removal stops working on B.
    let resp = token_at(
        &app,
        &b.base,
        Some(("bob", "a-new-password-for-bob")),
        &[scope],
    )
    .await;
    let member_token = resp.json()["token"].as_str().unwrap().to_owned();
    let tags = format!("{}/v2/acme/app/tags/list", b.base);
    assert_eq!(app.get(&tags, Some(&member_token)).await.status, 200);
    let resp = app
        .api_with(
            Method::DELETE,
            "/api/v1/orgs/acme/members/bob",
            &basic_header("alice", &password_of("alice")),
            None,
        )
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    within("the membership removal", || async {
        app.get(&tags, Some(&member_token)).await.status == 401
    })
    .await;

    // The visibility: an anonymous pull token of B stops working on B.
    let public_scope = "repository:acme/public:pull";
    let resp = token_at(&app, &b.base, None, &[public_scope]).await;
    let anonymous = resp.json()["token"].as_str().unwrap().to_owned();
    let public_tags = format!("{}/v2/acme/public/tags/list", b.base);
    assert_eq!(app.get(&public_tags, Some(&anonymous)).await.status, 200);
    let resp = app
        .api_with(
            Method::PUT,
            "/api/v1/repositories/visibility",
            &basic_header("alice", &password_of("alice")),
            Some(json!({"repository": "acme/public", "visibility": "private"})),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    within("the repository made private", || async {
        app.get(&public_tags, Some(&anonymous)).await.status == 401
    })
    .await;
    let resp = token_at(&app, &b.base, None, &[public_scope]).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let refused = resp.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(access(&refused), json!([]));
    let _ = alice;
}
