//! No existence oracle (PROTOCOL.md section 2): for every endpoint of the
//! distribution API, a private repository the caller may not pull answers
//! exactly as a repository that does not exist: same status, same headers
//! (but `date` and `x-request-id`), same body, once the repository's name
//! (of the same length) is replaced by a placeholder.

use reqwest::Method;

use crate::support::{Pushed, Resp, TestApp, image_manifest, layer_descriptor, to_bytes};

/// The private repository with content, and the one that does not exist:
/// names of the same length, so that lengths match too.
const PRIVATE: &str = "alice/secret";
const ABSENT: &str = "alice/nosuch";

/// One request of the API against repository `{repo}`.
struct Call {
    method: Method,
    /// Path after `/v2/<repo>`.
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Call {
    fn new(method: Method, path: String) -> Self {
        Self {
            method,
            path,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }
}

/// Every endpoint but the base and the catalog, with real references of the
/// private repository (tag, digests, its open upload session).
fn calls(pushed: &Pushed, upload_id: &str) -> Vec<Call> {
    let manifest = pushed.digest.to_string();
    let layer = pushed.layer.to_string();
    let blob = b"abc".to_vec();
    let blob_digest = berth_core::digest::Digest::sha256_of(&blob).to_string();
    let new_manifest = image_manifest(&[layer_descriptor(b"layer")]);
    let manifest_type = berth_core::media_type::OCI_IMAGE_MANIFEST;
    vec![
        Call::new(Method::GET, "/manifests/v1".into()),
        Call::new(Method::HEAD, "/manifests/v1".into()),
        Call::new(Method::GET, format!("/manifests/{manifest}")),
        Call::new(Method::HEAD, format!("/manifests/{manifest}")),
        Call::new(Method::PUT, "/manifests/v2".into())
            .header("content-type", manifest_type)
            .body(to_bytes(&new_manifest)),
        Call::new(Method::DELETE, format!("/manifests/{manifest}")),
        Call::new(Method::DELETE, "/manifests/v1".into()),
        // A reference that names no manifest still passes the gate first.
        Call::new(Method::GET, "/manifests/.INVALID_MANIFEST_NAME".into()),
        Call::new(Method::HEAD, "/manifests/.INVALID_MANIFEST_NAME".into()),
        Call::new(Method::DELETE, "/manifests/sha256:1234".into()),
        Call::new(Method::PUT, "/manifests/-v1".into())
            .header("content-type", manifest_type)
            .body(to_bytes(&new_manifest)),
        Call::new(Method::GET, format!("/blobs/{layer}")),
        Call::new(Method::HEAD, format!("/blobs/{layer}")),
        Call::new(Method::GET, format!("/blobs/{layer}")).header("range", "bytes=0-3"),
        Call::new(Method::DELETE, format!("/blobs/{layer}")),
        Call::new(Method::POST, "/blobs/uploads/".into()),
        Call::new(
            Method::POST,
            format!("/blobs/uploads/?digest={blob_digest}"),
        )
        .header("content-type", "application/octet-stream")
        .body(blob.clone()),
        Call::new(
            Method::POST,
            format!("/blobs/uploads/?mount={layer}&from=bob/pub"),
        ),
        Call::new(Method::POST, format!("/blobs/uploads/?mount={layer}")),
        Call::new(Method::PATCH, format!("/blobs/uploads/{upload_id}"))
            .header("content-type", "application/octet-stream")
            .header("content-range", "0-2")
            .body(blob.clone()),
        Call::new(
            Method::PUT,
            format!("/blobs/uploads/{upload_id}?digest={blob_digest}"),
        )
        .header("content-type", "application/octet-stream")
        .body(blob),
        Call::new(Method::GET, format!("/blobs/uploads/{upload_id}")),
        Call::new(Method::DELETE, format!("/blobs/uploads/{upload_id}")),
        Call::new(Method::GET, "/tags/list".into()),
        Call::new(Method::GET, "/tags/list?n=1".into()),
        Call::new(Method::GET, format!("/referrers/{manifest}")),
    ]
}

/// Who asks: a name and how to get their token for a repository.
#[derive(Clone, Copy, Debug)]
enum Caller {
    /// No `Authorization` header.
    AnonymousWithoutToken,
    /// An anonymous token asked for `pull,push,delete` on the repository.
    AnonymousForTheRepository,
    /// An anonymous token with empty `access`.
    AnonymousForNothing,
    /// bob's token asked for `pull,push,delete` on the repository.
    UserForTheRepository,
    /// bob's token for his own repository only.
    UserForAnother,
}

const CALLERS: [Caller; 5] = [
    Caller::AnonymousWithoutToken,
    Caller::AnonymousForTheRepository,
    Caller::AnonymousForNothing,
    Caller::UserForTheRepository,
    Caller::UserForAnother,
];

async fn token_of(app: &TestApp, caller: Caller, repo: &str) -> Option<String> {
    let for_repo = format!("repository:{repo}:pull,push,delete");
    match caller {
        Caller::AnonymousWithoutToken => None,
        Caller::AnonymousForTheRepository => Some(app.anonymous_token(&[&for_repo]).await),
        Caller::AnonymousForNothing => Some(app.anonymous_token(&[]).await),
        Caller::UserForTheRepository => Some(
            app.user_token("bob", &[&for_repo, "repository:bob/pub:pull"])
                .await,
        ),
        Caller::UserForAnother => Some(
            app.user_token("bob", &["repository:bob/pub:pull,push"])
                .await,
        ),
    }
}

/// What is compared: status, headers (but `date`, `x-request-id`) in order,
/// body; the repository's name replaced by `<repo>` everywhere.
fn normalised(resp: &Resp, repo: &str) -> (u16, Vec<(String, String)>, String) {
    let headers = resp
        .headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "date" | "x-request-id"))
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap().replace(repo, "<repo>"),
            )
        })
        .collect();
    let body = String::from_utf8(resp.body.clone())
        .unwrap()
        .replace(repo, "<repo>");
    (resp.status, headers, body)
}

async fn send(app: &TestApp, call: &Call, repo: &str, token: Option<&str>) -> Resp {
    let mut request = app.bearer(
        call.method.clone(),
        &format!("/v2/{repo}{}", call.path),
        token,
    );
    for (name, value) in &call.headers {
        request = request.header(*name, value);
    }
    app.send(request.body(call.body.clone())).await
}

#[tokio::test]
async fn a_private_repository_answers_exactly_like_one_that_does_not_exist() {
    let app = TestApp::start().await;
    app.user("alice").await;
    app.user("bob").await;
    let alice = app
        .user_token(
            "alice",
            &[&format!("repository:{PRIVATE}:pull,push,delete")],
        )
        .await;
    let pushed = app.push_image(PRIVATE, "v1", &alice).await;
    let upload = app
        .post(&format!("/v2/{PRIVATE}/blobs/uploads/"), Some(&alice), b"")
        .await;
    assert_eq!(upload.status, 202, "{}", upload.text());
    let upload_id = upload.header("docker-upload-uuid").unwrap().to_owned();
    let bob = app
        .user_token("bob", &["repository:bob/pub:pull,push"])
        .await;
    app.push_image("bob/pub", "v1", &bob).await;
    app.set_public("bob/pub", true).await;

    let calls = calls(&pushed, &upload_id);
    let mut compared = 0;
    for caller in CALLERS {
        let private_token = token_of(&app, caller, PRIVATE).await;
        let absent_token = token_of(&app, caller, ABSENT).await;
        for call in &calls {
            let private = send(&app, call, PRIVATE, private_token.as_deref()).await;
            let absent = send(&app, call, ABSENT, absent_token.as_deref()).await;
            let what = format!("{caller:?} {} /v2/<repo>{}", call.method, call.path);
            // 401 or 404 (the hidden answer), or 403 for a user's push or
            // delete, which says where the user may push instead.
            assert!(
                matches!(private.status, 401 | 403 | 404),
                "{what}: refused, not {} {}",
                private.status,
                private.text()
            );
            assert_eq!(
                normalised(&private, PRIVATE),
                normalised(&absent, ABSENT),
                "{what}"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, CALLERS.len() * calls.len());

    // Nothing the refused requests tried happened.
    let path = |p: &str| format!("/v2/{PRIVATE}{p}");
    let resp = app.get(&path("/manifests/v1"), Some(&alice)).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = app
        .get(&path(&format!("/blobs/{}", pushed.layer)), Some(&alice))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = app
        .get(&path(&format!("/blobs/uploads/{upload_id}")), Some(&alice))
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_eq!(resp.header("range"), Some("0-0"));
    let resp = app.get(&path("/tags/list"), Some(&alice)).await;
    assert_eq!(resp.json()["tags"], serde_json::json!(["v1"]));
}
