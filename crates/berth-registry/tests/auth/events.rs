//! Events as a webhook receiver sees them: a receiver in the test process
//! (axum on `127.0.0.1:0`) records every request berth sends it, headers and
//! body, and answers with what the test scripts (refusals, `Retry-After`, or
//! not listening at all). Endpoints retry within tenths of a second, and
//! every wait polls up to a deadline: nothing asserts how long anything took.
//!
//! - Each change is one CloudEvents 1.0 document, signed, with the exact
//!   `type`, `subject` and `data` a receiver acts on.
//! - Endpoints get the repositories and actions they subscribe to; an
//!   event no endpoint wants is not written.
//! - Deliveries of one repository arrive in the order of the changes, each
//!   once, whatever the receiver refused before: under concurrent pushes
//!   for several endpoints, and with two nodes' workers on one PostgreSQL
//!   database (skipped on SQLite).
//! - A refused attempt is retried (after `Retry-After`, up to the longest
//!   delay; a receiver not listening yet gets it once it listens); a
//!   delivery refused past its retries is failed, does not hold up the next
//!   of its repository, and is sent again on an administrator's demand.
//! - Sampled pulls (a `GET`, not a `HEAD`); `/api/v1/events`' refusals,
//!   filters and pages; the metrics.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use berth_core::digest::Digest;
use berth_core::media_type;
use berth_registry::Config;
use berth_registry::events::signature::{self, SignatureError};
use berth_registry::events::{EndpointText, Webhooks, endpoint};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    EMPTY_CONFIG, Resp, TestApp, admin_token, image_manifest, layer_descriptor, now, random_bytes,
    to_bytes,
};

/// Every endpoint's signing secret.
const SECRET: &str = "events-test-secret-0123456789abcdef";
/// How long a test waits for what the worker does (the worker takes well
/// under a second; the margin is for a loaded machine).
const DEADLINE: Duration = Duration::from_secs(20);
/// How often it looks meanwhile.
const POLL: Duration = Duration::from_millis(20);
/// The body of the receiver's refusals.
const REFUSAL: &str = "try later";

// ----- the receiver -----

/// One request the receiver got, and the status it answered.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    method: String,
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
    status: u16,
}

impl Received {
    /// The one value of header `name`.
    #[track_caller]
    fn header(&self, name: &str) -> &str {
        let mut values = self.headers.get_all(name).iter();
        let value = values
            .next()
            .unwrap_or_else(|| panic!("no {name} header: {:?}", self.headers));
        assert!(values.next().is_none(), "header {name} is sent twice");
        value.to_str().unwrap()
    }

    /// The body, a CloudEvents document.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The event's CloudEvents `id`.
    fn id(&self) -> String {
        self.json()["id"].as_str().unwrap().to_owned()
    }

    /// The `berth-delivery-attempt` header, as a number.
    fn attempt(&self) -> u32 {
        self.header("berth-delivery-attempt").parse().unwrap()
    }

    fn delivered(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// What the receiver answers, and what it got.
#[derive(Debug)]
struct Script {
    /// The answers to the next requests, first first: a status and a
    /// `Retry-After` value.
    next: VecDeque<(u16, Option<&'static str>)>,
    /// The answer once `next` is used up.
    then: u16,
    /// Every request, in the order they came.
    received: Vec<Received>,
}

/// A webhook receiver on `127.0.0.1`.
pub(crate) struct Receiver {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
}

impl Receiver {
    /// A receiver answering 200.
    pub(crate) async fn start() -> Self {
        let receiver = Self::down().await;
        receiver.listen().await;
        receiver
    }

    /// A receiver not listening (yet): a free port, bound and let go, so
    /// that connections to it are refused until [`Self::listen`].
    pub(crate) async fn down() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        Self {
            addr,
            script: Arc::new(Mutex::new(Script {
                next: VecDeque::new(),
                then: 200,
                received: Vec::new(),
            })),
        }
    }

    /// Starts answering on its port; the server ends with the test's runtime.
    pub(crate) async fn listen(&self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        let router = axum::Router::new()
            .fallback(receive)
            .with_state(self.script.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
    }

    /// Where endpoints send to.
    fn url(&self) -> String {
        format!("http://{}/hooks/berth", self.addr)
    }

    fn script(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap()
    }

    /// Answers `status` from now on (after what [`Self::refuse_next`] queued).
    fn answer(&self, status: u16) {
        self.script().then = status;
    }

    /// Answers the next `n` requests with `status` and `retry_after`.
    fn refuse_next(&self, n: usize, status: u16, retry_after: Option<&'static str>) {
        let mut script = self.script();
        for _ in 0..n {
            script.next.push_back((status, retry_after));
        }
    }

    /// Every request so far.
    fn received(&self) -> Vec<Received> {
        self.script().received.clone()
    }

    /// The requests answered with a 2xx so far.
    fn delivered(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(Received::delivered)
            .collect()
    }

    /// Waits until `n` requests were answered with a 2xx; returns them.
    pub(crate) async fn wait_delivered(&self, n: usize) -> Vec<Received> {
        eventually(&format!("{n} deliveries answered 2xx"), || async move {
            let delivered = self.delivered();
            if delivered.len() >= n {
                Ok(delivered)
            } else {
                Err(describe(&self.received()))
            }
        })
        .await
    }
}

/// The receiver's handler: records the request, answers what the script says.
async fn receive(
    State(script): State<Arc<Mutex<Script>>>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let mut script = script.lock().unwrap();
    let (status, retry_after) = script.next.pop_front().unwrap_or((script.then, None));
    script.received.push(Received {
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers,
        body: body.to_vec(),
        status,
    });
    let text = if (200..300).contains(&status) {
        ""
    } else {
        REFUSAL
    };
    let mut response = axum::response::Response::new(Body::from(text));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    if let Some(retry_after) = retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static(retry_after));
    }
    response
}

/// Requests as one line each: status, attempt, type, subject.
fn describe(received: &[Received]) -> String {
    let lines: Vec<String> = received
        .iter()
        .map(|r| {
            let doc: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            format!(
                "{} attempt {} {} {}",
                r.status,
                r.headers
                    .get("berth-delivery-attempt")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-"),
                doc["type"],
                doc["subject"]
            )
        })
        .collect();
    format!("{} requests: {lines:#?}", received.len())
}

/// Polls `check` until it answers `Ok`, for at most [`DEADLINE`]; the
/// failure shows what it last saw.
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) => assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not within {DEADLINE:?}; last seen: {seen}"
            ),
        }
        tokio::time::sleep(POLL).await;
    }
}

// ----- the registry -----

/// An endpoint named `name` sending to `receiver`, retrying within tenths
/// of a second, changed by `set`.
pub(crate) fn endpoint(
    name: &str,
    receiver: &Receiver,
    set: impl FnOnce(&mut EndpointText),
) -> EndpointText {
    let mut text = EndpointText {
        name: Some(name.to_owned()),
        url: Some(receiver.url()),
        secret: Some(SECRET.to_owned()),
        timeout_secs: Some(2.0),
        retry_initial_secs: Some(0.05),
        retry_max_secs: Some(0.2),
        ..EndpointText::default()
    };
    set(&mut text);
    text
}

/// A registry with these endpoints.
async fn app_with(endpoints: &[EndpointText]) -> TestApp {
    let webhooks = Webhooks::new(endpoint::parse_all(endpoints).unwrap());
    TestApp::start_with(move |config| config.webhooks = webhooks).await
}

/// An image pushed by [`push`], and what its manifest `PUT` answered.
struct Image {
    digest: Digest,
    layer: Digest,
    /// The manifest's size in bytes.
    size: usize,
    /// The `X-Request-Id` of the manifest `PUT`.
    request_id: String,
}

/// Pushes the empty config, a random layer and a manifest over them to
/// `name:reference` with `token`; asserts each step.
async fn push(app: &TestApp, token: &str, name: &str, reference: &str) -> Image {
    push_via(app, &app.base, token, name, reference).await
}

/// [`push`] through the node at `base` (`app`'s, or another's on its
/// database).
async fn push_via(app: &TestApp, base: &str, token: &str, name: &str, reference: &str) -> Image {
    let layer = random_bytes(64);
    for blob in [EMPTY_CONFIG, &layer[..]] {
        let digest = Digest::sha256_of(blob);
        let resp = app
            .post(
                &format!("{base}/v2/{name}/blobs/uploads/?digest={digest}"),
                Some(token),
                blob,
            )
            .await;
        assert_eq!(resp.status, 201, "a blob to {name}: {}", resp.text());
    }
    let manifest = image_manifest(&[layer_descriptor(&layer)]);
    let bytes = to_bytes(&manifest);
    let resp = app
        .send(
            app.bearer(
                Method::PUT,
                &format!("{base}/v2/{name}/manifests/{reference}"),
                Some(token),
            )
            .header("content-type", media_type::OCI_IMAGE_MANIFEST)
            .body(bytes.clone()),
        )
        .await;
    assert_eq!(
        resp.status,
        201,
        "pushing {name}:{reference}: {}",
        resp.text()
    );
    Image {
        digest: Digest::sha256_of(&bytes),
        layer: Digest::sha256_of(&layer),
        size: bytes.len(),
        request_id: request_id(&resp),
    }
}

/// The `X-Request-Id` a response carried.
#[track_caller]
fn request_id(resp: &Resp) -> String {
    let id = resp
        .header("x-request-id")
        .expect("every answer names its request");
    assert!(!id.is_empty());
    id.to_owned()
}

/// `GET /api/v1/events<query>` as the administrator: the deliveries.
async fn deliveries(app: &TestApp, query: &str) -> Vec<Value> {
    let resp = app
        .admin_api(Method::GET, &format!("/api/v1/events{query}"), None)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    resp.json()["deliveries"].as_array().unwrap().clone()
}

/// Waits until the outbox holds exactly `n` deliveries, none pending.
async fn wait_settled(app: &TestApp, n: usize) -> Vec<Value> {
    eventually(
        &format!("{n} deliveries delivered or failed"),
        || async move {
            let all = deliveries(app, "?n=1000").await;
            let settled = all.iter().filter(|d| d["state"] != "pending").count();
            if all.len() == n && settled == n {
                Ok(all)
            } else {
                Err(Value::Array(all).to_string())
            }
        },
    )
    .await
}

/// `POST /api/v1/events/redeliver` with `body` as the administrator.
async fn redeliver(app: &TestApp, body: Value) -> Resp {
    app.admin_api(Method::POST, "/api/v1/events/redeliver", Some(body))
        .await
}

/// The value of the metric line `series` (name and labels) at `/metrics`.
pub(crate) async fn metric(app: &TestApp, series: &str) -> u64 {
    metric_at(app, &app.base, series).await
}

/// [`metric`] of the node at `base`.
async fn metric_at(app: &TestApp, base: &str, series: &str) -> u64 {
    let resp = app.get(&format!("{base}/metrics"), None).await;
    assert_eq!(resp.status, 200);
    let text = resp.text();
    let value = text
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} at /metrics:\n{text}"));
    value.parse().unwrap()
}

/// `(type, subject)` of each request, in order.
fn kinds(received: &[Received]) -> Vec<(String, String)> {
    received
        .iter()
        .map(|r| {
            let doc = r.json();
            (
                doc["type"].as_str().unwrap().to_owned(),
                doc["subject"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn kind(event_type: &str, subject: &str) -> (String, String) {
    (event_type.to_owned(), subject.to_owned())
}

// ----- what a delivery is -----

#[tokio::test]
async fn a_push_by_tag_is_delivered_once_as_a_signed_cloudevent_naming_tag_digest_actor_and_request()
 {
    let receiver = Receiver::start().await;
    let app = app_with(&[endpoint("ci", &receiver, |_| {})]).await;
    app.user("alice").await;
    let token = app
        .user_token("alice", &["repository:alice/app:pull,push"])
        .await;
    let image = push(&app, &token, "alice/app", "v1").await;

    let delivered = receiver.wait_delivered(1).await;
    let [delivery] = &delivered[..] else {
        panic!("one delivery: {}", describe(&delivered))
    };
    assert_eq!(delivery.method, "POST");
    assert_eq!(delivery.path, "/hooks/berth");
    assert_eq!(
        delivery.header("content-type"),
        "application/cloudevents+json"
    );
    assert_eq!(delivery.header("berth-delivery-attempt"), "1");
    assert!(
        delivery.header("user-agent").starts_with("berth/"),
        "{}",
        delivery.header("user-agent")
    );

    // The signature: t=<unix seconds>,v1=<64 hex>, over the body as received.
    let signed = delivery.header("berth-signature");
    let (t, v1) = signed
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .unwrap_or_else(|| panic!("t=<unix>,v1=<hex>: {signed}"));
    assert!(t.parse::<i64>().is_ok(), "{signed}");
    assert_eq!(v1.len(), 64, "{signed}");
    assert!(v1.bytes().all(|b| b.is_ascii_hexdigit()), "{signed}");
    // As a receiver in any language checks it: HMAC-SHA256 of "<t>.<body>".
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    hmac::Mac::update(&mut mac, format!("{t}.").as_bytes());
    hmac::Mac::update(&mut mac, &delivery.body);
    assert_eq!(
        hex::encode(hmac::Mac::finalize(mac).into_bytes()),
        v1,
        "{signed}"
    );
    assert_eq!(
        signature::verify(SECRET.as_bytes(), signed, &delivery.body, now(), 300),
        Ok(())
    );
    assert_eq!(
        signature::verify(
            b"another-secret-0123456789abcdef",
            signed,
            &delivery.body,
            now(),
            300
        ),
        Err(SignatureError::Mismatch)
    );
    let mut tampered = delivery.body.clone();
    tampered.push(b' ');
    assert_eq!(
        signature::verify(SECRET.as_bytes(), signed, &tampered, now(), 300),
        Err(SignatureError::Mismatch)
    );

    // The document, whole.
    let doc = delivery.json();
    let mut members: Vec<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    members.sort_unstable();
    assert_eq!(
        members,
        [
            "data",
            "datacontenttype",
            "id",
            "source",
            "specversion",
            "subject",
            "time",
            "type"
        ]
    );
    assert_eq!(doc["specversion"], "1.0");
    assert_eq!(doc["type"], "berth.manifest.pushed");
    assert_eq!(doc["source"], app.base.as_str());
    assert_eq!(doc["subject"], "alice/app:v1");
    assert_eq!(doc["datacontenttype"], "application/json");
    let id = doc["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "a UUID: {id}");
    assert_eq!(
        doc["data"],
        json!({
            "repository": "alice/app",
            "digest": image.digest.to_string(),
            "tag": "v1",
            "mediaType": media_type::OCI_IMAGE_MANIFEST,
            "size": image.size,
            "actor": "alice",
            "requestId": image.request_id,
        })
    );

    // The outbox's record of it.
    let listed = wait_settled(&app, 1).await;
    let record = &listed[0];
    assert_eq!(record["id"], id);
    assert_eq!(record["type"], "berth.manifest.pushed");
    assert_eq!(record["subject"], "alice/app:v1");
    assert_eq!(record["repository"], "alice/app");
    assert_eq!(record["endpoint"], "ci");
    assert_eq!(record["state"], "delivered");
    assert_eq!(record["attempts"], 1);
    assert_eq!(record["lastStatus"], 200);
    assert_eq!(record["lastError"], Value::Null);
    assert_eq!(record["nextAttemptMs"], Value::Null);
    assert!(record["event"].as_i64().is_some(), "{record}");
    let created = record["createdAt"].as_i64().unwrap();
    assert_eq!(
        doc["time"],
        berth_core::token::format_rfc3339(created),
        "the document's time is the change's"
    );
    // Delivered once: nothing more comes.
    assert_eq!(
        receiver.received().len(),
        1,
        "{}",
        describe(&receiver.received())
    );
}

#[tokio::test]
async fn deletes_and_mounts_are_delivered_with_their_type_subject_and_data() {
    let receiver = Receiver::start().await;
    let app = app_with(&[endpoint("ci", &receiver, |_| {})]).await;
    app.user("alice").await;
    let token = app
        .user_token(
            "alice",
            &[
                "repository:alice/app:pull,push,delete",
                "repository:alice/copy:pull,push,delete",
            ],
        )
        .await;
    assert_eq!(
        crate::support::access(&token),
        json!([
            crate::support::repo_access("alice/app", &["delete", "pull", "push"]),
            crate::support::repo_access("alice/copy", &["delete", "pull", "push"]),
        ])
    );
    let one = push(&app, &token, "alice/app", "v1").await;
    let two = push(&app, &token, "alice/app", "v2").await;

    let resp = app.delete("/v2/alice/app/manifests/v1", Some(&token)).await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    let untagged = request_id(&resp);

    let resp = app
        .delete(
            &format!("/v2/alice/app/manifests/{}", two.digest),
            Some(&token),
        )
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    let manifest_deleted = request_id(&resp);

    let layer = &one.layer;
    let resp = app
        .post(
            &format!("/v2/alice/copy/blobs/uploads/?mount={layer}&from=alice/app"),
            Some(&token),
            b"",
        )
        .await;
    assert_eq!(resp.status, 201, "mounted: {}", resp.text());
    let mounted = request_id(&resp);

    let resp = app
        .delete(&format!("/v2/alice/app/blobs/{layer}"), Some(&token))
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    let blob_deleted = request_id(&resp);

    let resp = app
        .admin_api(
            Method::DELETE,
            "/api/v1/repositories?repository=alice/copy",
            None,
        )
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    let repository_deleted = request_id(&resp);

    let delivered = receiver.wait_delivered(7).await;
    let by_repository = |name: &str| -> Vec<Received> {
        delivered
            .iter()
            .filter(|r| r.json()["data"]["repository"] == name)
            .cloned()
            .collect()
    };
    let app_events = by_repository("alice/app");
    assert_eq!(
        kinds(&app_events),
        [
            kind("berth.manifest.pushed", "alice/app:v1"),
            kind("berth.manifest.pushed", "alice/app:v2"),
            kind("berth.tag.deleted", "alice/app:v1"),
            kind(
                "berth.manifest.deleted",
                &format!("alice/app@{}", two.digest)
            ),
            kind("berth.blob.deleted", &format!("alice/app@{layer}")),
        ],
        "{}",
        describe(&delivered)
    );
    assert_eq!(
        app_events[2].json()["data"],
        json!({
            "repository": "alice/app",
            "digest": one.digest.to_string(),
            "tag": "v1",
            "actor": "alice",
            "requestId": untagged,
        })
    );
    assert_eq!(
        app_events[3].json()["data"],
        json!({
            "repository": "alice/app",
            "digest": two.digest.to_string(),
            "actor": "alice",
            "requestId": manifest_deleted,
        })
    );
    assert_eq!(
        app_events[4].json()["data"],
        json!({
            "repository": "alice/app",
            "digest": layer.to_string(),
            "actor": "alice",
            "requestId": blob_deleted,
        })
    );

    let copy_events = by_repository("alice/copy");
    assert_eq!(
        kinds(&copy_events),
        [
            kind("berth.blob.mounted", &format!("alice/copy@{layer}")),
            kind("berth.repository.deleted", "alice/copy"),
        ],
        "{}",
        describe(&delivered)
    );
    assert_eq!(
        copy_events[0].json()["data"],
        json!({
            "repository": "alice/copy",
            "digest": layer.to_string(),
            "size": 64,
            "from": "alice/app",
            "actor": "alice",
            "requestId": mounted,
        })
    );
    assert_eq!(
        copy_events[1].json()["data"],
        json!({
            "repository": "alice/copy",
            "actor": "admin",
            "requestId": repository_deleted,
        })
    );

    let listed = wait_settled(&app, 7).await;
    assert!(
        listed.iter().all(|d| d["state"] == "delivered"),
        "{listed:#?}"
    );
    assert_eq!(
        receiver.received().len(),
        7,
        "{}",
        describe(&receiver.received())
    );
}

// ----- routing -----

#[tokio::test]
async fn endpoints_get_only_their_repositories_and_actions_and_an_event_no_one_wants_is_not_written()
 {
    let acme = Receiver::start().await;
    let deletes = Receiver::start().await;
    let app = app_with(&[
        endpoint("acme", &acme, |e| {
            e.repositories = vec!["acme/**".to_owned()]
        }),
        endpoint("deletes", &deletes, |e| {
            e.actions = Some(vec!["delete".to_owned()]);
        }),
    ])
    .await;
    let token = admin_token(&app, &["other/app", "acme/app"]).await;

    // Neither endpoint wants a push to other/app: nothing is written.
    push(&app, &token, "other/app", "v1").await;
    assert_eq!(deliveries(&app, "").await, Vec::<Value>::new());
    assert_eq!(metric(&app, "berth_events_written_total").await, 0);

    // A push to acme/app goes to `acme` alone.
    push(&app, &token, "acme/app", "v1").await;
    let listed = deliveries(&app, "").await;
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["endpoint"], "acme");
    assert_eq!(listed[0]["subject"], "acme/app:v1");
    let delivered = acme.wait_delivered(1).await;
    assert_eq!(
        kinds(&delivered),
        [kind("berth.manifest.pushed", "acme/app:v1")]
    );

    // A tag deleted in acme/app goes to both; in other/app, to `deletes` alone.
    for name in ["acme/app", "other/app"] {
        let resp = app
            .delete(&format!("/v2/{name}/manifests/v1"), Some(&token))
            .await;
        assert_eq!(resp.status, 202, "{}", resp.text());
    }
    let to_deletes = deletes.wait_delivered(2).await;
    let mut got = kinds(&to_deletes);
    got.sort();
    assert_eq!(
        got,
        [
            kind("berth.tag.deleted", "acme/app:v1"),
            kind("berth.tag.deleted", "other/app:v1"),
        ]
    );
    let to_acme = acme.wait_delivered(2).await;
    assert_eq!(
        kinds(&to_acme),
        [
            kind("berth.manifest.pushed", "acme/app:v1"),
            kind("berth.tag.deleted", "acme/app:v1"),
        ]
    );
    wait_settled(&app, 4).await;
    assert_eq!(acme.received().len(), 2, "{}", describe(&acme.received()));
    assert_eq!(
        deletes.received().len(),
        2,
        "{}",
        describe(&deletes.received())
    );
    assert_eq!(metric(&app, "berth_events_written_total").await, 3);
}

// ----- order and retries -----

#[tokio::test]
async fn deliveries_of_one_repository_arrive_in_push_order_each_once_after_refusals() {
    let receiver = Receiver::start().await;
    receiver.refuse_next(6, 503, None);
    let app = app_with(&[endpoint("ci", &receiver, |e| e.retries = Some(50))]).await;
    let token = admin_token(&app, &["acme/one", "acme/two"]).await;

    let mut pushed: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for i in 0..10 {
        let tag = format!("t{i}");
        push(&app, &token, "acme/one", &tag).await;
        pushed
            .entry("acme/one")
            .or_default()
            .push(format!("acme/one:{tag}"));
        if i % 3 == 0 {
            push(&app, &token, "acme/two", &tag).await;
            pushed
                .entry("acme/two")
                .or_default()
                .push(format!("acme/two:{tag}"));
        }
    }
    let total = pushed.values().map(Vec::len).sum::<usize>();
    assert_eq!(total, 14);

    receiver.wait_delivered(total).await;
    let listed = wait_settled(&app, total).await;
    assert!(
        listed.iter().all(|d| d["state"] == "delivered"),
        "{listed:#?}"
    );
    let received = receiver.received();
    let delivered: Vec<Received> = received.iter().filter(|r| r.delivered()).cloned().collect();
    assert_eq!(delivered.len(), total, "{}", describe(&received));
    assert_eq!(
        received.iter().filter(|r| r.status == 503).count(),
        6,
        "every refusal was followed by another attempt: {}",
        describe(&received)
    );

    // Per repository, the successful deliveries in push order, each event once.
    for (name, subjects) in &pushed {
        let got: Vec<String> = delivered
            .iter()
            .map(Received::json)
            .filter(|doc| doc["data"]["repository"] == *name)
            .map(|doc| doc["subject"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(&got, subjects, "{name}: {}", describe(&received));
    }
    let mut ids: Vec<String> = delivered.iter().map(Received::id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "each event delivered once");

    // Each event's attempts are numbered 1, 2, ... with the same bytes, the
    // last one delivered; the listing counts them.
    let mut attempts: BTreeMap<String, Vec<&Received>> = BTreeMap::new();
    for r in &received {
        attempts.entry(r.id()).or_default().push(r);
    }
    assert_eq!(attempts.len(), total);
    for (id, tries) in &attempts {
        let numbers: Vec<u32> = tries.iter().map(|r| r.attempt()).collect();
        let expected: Vec<u32> = (1..=tries.len() as u32).collect();
        assert_eq!(numbers, expected, "{id}");
        assert!(tries.iter().all(|r| r.body == tries[0].body), "{id}");
        let (last, refused) = tries.split_last().unwrap();
        assert!(last.delivered(), "{id}");
        assert!(refused.iter().all(|r| r.status == 503), "{id}");
        let record = listed.iter().find(|d| d["id"] == id.as_str()).unwrap();
        assert_eq!(record["attempts"], tries.len(), "{record}");
        assert_eq!(record["lastStatus"], 200, "{record}");
    }
}

#[tokio::test]
async fn a_delivery_refused_past_its_retries_fails_and_is_sent_again_on_demand() {
    let receiver = Receiver::start().await;
    receiver.answer(500);
    let app = app_with(&[endpoint("ci", &receiver, |e| e.retries = Some(2))]).await;
    let token = admin_token(&app, &["acme/app"]).await;
    push(&app, &token, "acme/app", "v1").await;

    let failed = eventually("the delivery failed", || {
        let app = &app;
        async move {
            let failed = deliveries(app, "?state=failed").await;
            if failed.len() == 1 {
                Ok(failed[0].clone())
            } else {
                Err(Value::Array(deliveries(app, "").await).to_string())
            }
        }
    })
    .await;
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["attempts"], 3);
    assert_eq!(failed["lastStatus"], 500);
    assert_eq!(
        failed["lastError"],
        format!("HTTP 500 Internal Server Error: {REFUSAL}")
    );
    assert_eq!(failed["nextAttemptMs"], Value::Null);
    assert_eq!(
        deliveries(&app, "?state=pending").await,
        Vec::<Value>::new()
    );
    let refused = receiver.received();
    assert_eq!(
        refused.iter().map(Received::attempt).collect::<Vec<_>>(),
        [1, 2, 3],
        "{}",
        describe(&refused)
    );
    assert!(refused.iter().all(|r| r.body == refused[0].body));
    assert_eq!(refused[0].id(), failed["id"].as_str().unwrap());
    assert_eq!(
        metric(&app, "berth_event_attempts_total{result=\"failed\"}").await,
        1
    );
    assert_eq!(
        metric(&app, "berth_event_attempts_total{result=\"retried\"}").await,
        2
    );

    // Sent again on demand, attempts counted afresh.
    receiver.answer(200);
    let resp = redeliver(&app, json!({"failed": true})).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json(), json!({"redelivered": 1}));
    let delivered = receiver.wait_delivered(1).await;
    assert_eq!(delivered[0].attempt(), 1);
    assert_eq!(delivered[0].body, refused[0].body, "the same document");
    assert!(
        signature::verify(
            SECRET.as_bytes(),
            delivered[0].header("berth-signature"),
            &delivered[0].body,
            now(),
            300
        )
        .is_ok()
    );
    let listed = wait_settled(&app, 1).await;
    assert_eq!(listed[0]["state"], "delivered");
    assert_eq!(listed[0]["attempts"], 1);
    assert_eq!(listed[0]["lastStatus"], 200);
    assert_eq!(listed[0]["lastError"], Value::Null);
    assert_eq!(deliveries(&app, "?state=failed").await, Vec::<Value>::new());

    // Nothing failed is left; a delivered event named is sent again.
    let resp = redeliver(&app, json!({"failed": true})).await;
    assert_eq!(resp.json(), json!({"redelivered": 0}));
    let event = listed[0]["event"].as_i64().unwrap();
    let resp = redeliver(&app, json!({"events": [event], "endpoint": "ci"})).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json(), json!({"redelivered": 1}));
    let delivered = receiver.wait_delivered(2).await;
    assert_eq!(delivered[1].body, refused[0].body);
    assert_eq!(delivered[1].attempt(), 1);
    wait_settled(&app, 1).await;
    assert_eq!(
        receiver.received().len(),
        5,
        "{}",
        describe(&receiver.received())
    );
}

#[tokio::test]
async fn a_failed_delivery_does_not_hold_up_the_next_of_its_repository() {
    let receiver = Receiver::start().await;
    receiver.refuse_next(1, 500, None);
    let app = app_with(&[endpoint("ci", &receiver, |e| e.retries = Some(0))]).await;
    let token = admin_token(&app, &["acme/app"]).await;
    push(&app, &token, "acme/app", "v1").await;
    push(&app, &token, "acme/app", "v2").await;

    let listed = wait_settled(&app, 2).await;
    let states: Vec<(&str, &str, u64, u64)> = listed
        .iter()
        .map(|d| {
            (
                d["subject"].as_str().unwrap(),
                d["state"].as_str().unwrap(),
                d["attempts"].as_u64().unwrap(),
                d["lastStatus"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("acme/app:v2", "delivered", 1, 200),
            ("acme/app:v1", "failed", 1, 500),
        ]
    );
    let received = receiver.received();
    assert_eq!(
        received
            .iter()
            .map(|r| (r.json()["subject"].as_str().unwrap().to_owned(), r.status))
            .collect::<Vec<_>>(),
        [
            ("acme/app:v1".to_owned(), 500),
            ("acme/app:v2".to_owned(), 200)
        ],
        "{}",
        describe(&received)
    );
}

#[tokio::test]
async fn retry_after_sets_the_next_attempt_up_to_the_longest_delay() {
    let asks_20 = Receiver::start().await;
    asks_20.refuse_next(1, 503, Some("20"));
    let asks_3600 = Receiver::start().await;
    asks_3600.refuse_next(1, 429, Some("3600"));
    let slow = |e: &mut EndpointText| e.retry_max_secs = Some(30.0);
    let app = app_with(&[
        endpoint("asks-20", &asks_20, slow),
        endpoint("asks-3600", &asks_3600, slow),
    ])
    .await;
    let token = admin_token(&app, &["acme/app"]).await;
    let before_ms = berth_registry::clock::now_unix_ms();
    push(&app, &token, "acme/app", "v1").await;

    let refused = eventually("both first attempts refused", || {
        let app = &app;
        async move {
            let all = deliveries(app, "?state=pending").await;
            if all.len() == 2 && all.iter().all(|d| d["attempts"] == 1) {
                Ok(all)
            } else {
                Err(Value::Array(all).to_string())
            }
        }
    })
    .await;
    let after_ms = berth_registry::clock::now_unix_ms();
    let next = |name: &str| -> i64 {
        let record = refused.iter().find(|d| d["endpoint"] == name).unwrap();
        record["nextAttemptMs"]
            .as_i64()
            .unwrap_or_else(|| panic!("the head's next attempt is listed: {record}"))
    };
    // Retry-After: 20 is honoured (the backoff alone would be 50 ms)...
    let asked = next("asks-20");
    assert!(
        (before_ms + 20_000..=after_ms + 20_000).contains(&asked),
        "{asked} is 20 s after the refusal ({before_ms}..{after_ms})"
    );
    // ... and Retry-After: 3600 only up to retry_max_secs.
    let capped = next("asks-3600");
    assert!(
        (before_ms + 30_000..=after_ms + 30_000).contains(&capped),
        "{capped} is 30 s after the refusal ({before_ms}..{after_ms})"
    );
    for (name, receiver, status) in [("asks-20", &asks_20, 503), ("asks-3600", &asks_3600, 429)] {
        let record = refused.iter().find(|d| d["endpoint"] == name).unwrap();
        assert_eq!(record["lastStatus"], status, "{record}");
        let received = receiver.received();
        assert_eq!(received.len(), 1, "{name}: {}", describe(&received));
    }
}

#[tokio::test]
async fn a_receiver_down_at_the_push_gets_the_event_once_it_listens() {
    let receiver = Receiver::down().await;
    let app = app_with(&[endpoint("ci", &receiver, |e| e.retries = Some(100))]).await;
    let token = admin_token(&app, &["acme/app"]).await;
    let image = push(&app, &token, "acme/app", "v1").await;

    let refused = eventually("two attempts refused", || {
        let app = &app;
        async move {
            let all = deliveries(app, "").await;
            match &all[..] {
                [d] if d["attempts"].as_u64().is_some_and(|n| n >= 2) => Ok(d.clone()),
                _ => Err(Value::Array(all).to_string()),
            }
        }
    })
    .await;
    assert_eq!(refused["state"], "pending");
    assert_eq!(refused["lastStatus"], Value::Null, "no answer came");
    assert!(
        refused["lastError"].as_str().is_some_and(|e| !e.is_empty()),
        "{refused}"
    );

    receiver.listen().await;
    let delivered = receiver.wait_delivered(1).await;
    assert!(delivered[0].attempt() >= 3, "{}", describe(&delivered));
    let doc = delivered[0].json();
    assert_eq!(doc["subject"], "acme/app:v1");
    assert_eq!(doc["data"]["digest"], image.digest.to_string());
    let listed = wait_settled(&app, 1).await;
    assert_eq!(listed[0]["state"], "delivered");
    assert_eq!(listed[0]["attempts"], delivered[0].attempt());
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn concurrent_pushes_to_several_repositories_for_several_endpoints_all_succeed_and_arrive_in_order()
 {
    let receivers = [
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    ];
    for receiver in &receivers {
        receiver.refuse_next(3, 503, None);
    }
    let endpoints: Vec<EndpointText> = ["a", "b", "c"]
        .iter()
        .zip(&receivers)
        .map(|(name, receiver)| endpoint(name, receiver, |e| e.retries = Some(50)))
        .collect();
    let app = app_with(&endpoints).await;
    let names = ["acme/r0", "acme/r1", "acme/r2", "acme/r3"];
    let token = admin_token(&app, &names).await;

    // Each repository's pushes one after another, the repositories at once:
    // every change writes three chains while the worker claims and finishes
    // them (on PostgreSQL, writers locking chains in different orders would
    // deadlock and one of them fail).
    let tags = 5;
    futures_util::future::join_all(names.iter().map(|name| {
        let (app, token) = (&app, &token);
        async move {
            for i in 0..tags {
                push(app, token, name, &format!("t{i}")).await;
            }
        }
    }))
    .await;

    let total = names.len() * tags;
    for receiver in &receivers {
        let delivered = receiver.wait_delivered(total).await;
        for name in names {
            let got: Vec<String> = delivered
                .iter()
                .map(Received::json)
                .filter(|doc| doc["data"]["repository"] == name)
                .map(|doc| doc["subject"].as_str().unwrap().to_owned())
                .collect();
            let pushed: Vec<String> = (0..tags).map(|i| format!("{name}:t{i}")).collect();
            assert_eq!(got, pushed, "{}", describe(&delivered));
        }
    }
    let listed = wait_settled(&app, total * receivers.len()).await;
    assert!(
        listed.iter().all(|d| d["state"] == "delivered"),
        "{listed:#?}"
    );
    for receiver in &receivers {
        let received = receiver.received();
        assert_eq!(
            received.iter().filter(|r| r.delivered()).count(),
            total,
            "each event once: {}",
            describe(&received)
        );
    }
}

#[tokio::test]
async fn two_nodes_on_one_database_deliver_each_event_once_in_order() {
    let receiver = Receiver::start().await;
    receiver.refuse_next(8, 503, None);
    let endpoints = [endpoint("ci", &receiver, |e| e.retries = Some(50))];
    let app = app_with(&endpoints).await;
    if app.database_url().is_none() {
        eprintln!(
            "two_nodes_on_one_database_deliver_each_event_once_in_order: skipped, PostgreSQL only (set BERTH_TEST_DATABASE_URL)"
        );
        return;
    }
    // The second node: the same endpoints, its own listener and worker.
    let mut config = Config::new(app.base.clone());
    config.webhooks = Webhooks::new(endpoint::parse_all(&endpoints).unwrap());
    let second = app.open_node(config).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let second_base = format!("http://{}", listener.local_addr().unwrap());
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(berth_registry::serve(listener, second, async move {
        let _ = stopped.await;
    }));

    let token = admin_token(&app, &["acme/one", "acme/two"]).await;
    let mut pushed: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for i in 0..12 {
        let base = if i % 2 == 0 { &app.base } else { &second_base };
        let name = if i % 4 == 3 { "acme/two" } else { "acme/one" };
        let tag = format!("t{i}");
        push_via(&app, base, &token, name, &tag).await;
        pushed
            .entry(name)
            .or_default()
            .push(format!("{name}:{tag}"));
    }

    receiver.wait_delivered(12).await;
    let listed = wait_settled(&app, 12).await;
    assert!(
        listed.iter().all(|d| d["state"] == "delivered"),
        "{listed:#?}"
    );
    let received = receiver.received();
    let delivered: Vec<Received> = received.iter().filter(|r| r.delivered()).cloned().collect();
    assert_eq!(
        delivered.len(),
        12,
        "each event once: {}",
        describe(&received)
    );
    for (name, subjects) in &pushed {
        let got: Vec<String> = delivered
            .iter()
            .map(Received::json)
            .filter(|doc| doc["data"]["repository"] == *name)
            .map(|doc| doc["subject"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(&got, subjects, "{name}: {}", describe(&received));
    }
    let mut attempts: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for r in &received {
        attempts.entry(r.id()).or_default().push(r.attempt());
    }
    for (id, numbers) in &attempts {
        let expected: Vec<u32> = (1..=numbers.len() as u32).collect();
        assert_eq!(
            numbers, &expected,
            "{id}: one attempt at a time, counted once"
        );
    }
    // Both nodes' workers count what they attempted (how the attempts
    // split between them is up to the race for each chain).
    let mut counted = 0;
    for base in [&app.base, &second_base] {
        let mut by_result = Vec::new();
        for result in ["delivered", "retried", "failed"] {
            let series = format!("berth_event_attempts_total{{result=\"{result}\"}}");
            let n = metric_at(&app, base, &series).await;
            by_result.push(n);
            counted += n;
        }
        eprintln!("{base}: attempts delivered, retried, failed: {by_result:?}");
    }
    assert_eq!(counted, received.len() as u64, "{}", describe(&received));
}

// ----- pulls -----

#[tokio::test]
async fn a_manifest_get_is_a_pull_event_for_endpoints_with_pull_and_a_head_is_not() {
    let pulls = Receiver::start().await;
    let pushes = Receiver::start().await;
    let app = app_with(&[
        endpoint("pulls", &pulls, |e| {
            e.actions = Some(vec!["pull".to_owned()]);
            e.pull_sample = Some(1.0);
        }),
        endpoint("pushes", &pushes, |_| {}),
    ])
    .await;
    app.user("alice").await;
    let token = app
        .user_token("alice", &["repository:alice/app:pull,push"])
        .await;
    let image = push(&app, &token, "alice/app", "v1").await;
    pushes.wait_delivered(1).await;

    let path = "/v2/alice/app/manifests/v1";
    let resp = app.head(path, Some(&token)).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = app.get(path, Some(&token)).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let pulled = request_id(&resp);

    let delivered = pulls.wait_delivered(1).await;
    assert_eq!(
        kinds(&delivered),
        [kind("berth.manifest.pulled", "alice/app:v1")]
    );
    assert_eq!(
        delivered[0].json()["data"],
        json!({
            "repository": "alice/app",
            "digest": image.digest.to_string(),
            "tag": "v1",
            "actor": "alice",
            "requestId": pulled,
        })
    );
    assert_eq!(
        signature::verify(
            SECRET.as_bytes(),
            delivered[0].header("berth-signature"),
            &delivered[0].body,
            now(),
            300
        ),
        Ok(())
    );
    // The pull was written in one transaction for every endpoint it goes
    // to: `pushes` has only the push, and nothing else is outstanding.
    let listed = wait_settled(&app, 2).await;
    let mut routes: Vec<(String, String)> = listed
        .iter()
        .map(|d| {
            (
                d["endpoint"].as_str().unwrap().to_owned(),
                d["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            ("pulls".to_owned(), "berth.manifest.pulled".to_owned()),
            ("pushes".to_owned(), "berth.manifest.pushed".to_owned()),
        ]
    );
    assert_eq!(pulls.received().len(), 1, "{}", describe(&pulls.received()));
    assert_eq!(
        kinds(&pushes.received()),
        [kind("berth.manifest.pushed", "alice/app:v1")]
    );

    // An anonymous pull by digest: no tag, and a null actor.
    app.set_public("alice/app", true).await;
    let anonymous = app.anonymous_token(&["repository:alice/app:pull"]).await;
    let resp = app
        .get(
            &format!("/v2/alice/app/manifests/{}", image.digest),
            Some(&anonymous),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let pulled = request_id(&resp);
    let delivered = pulls.wait_delivered(2).await;
    assert_eq!(
        kinds(&delivered[1..]),
        [kind(
            "berth.manifest.pulled",
            &format!("alice/app@{}", image.digest)
        )]
    );
    assert_eq!(
        delivered[1].json()["data"],
        json!({
            "repository": "alice/app",
            "digest": image.digest.to_string(),
            "actor": null,
            "requestId": pulled,
        })
    );
    wait_settled(&app, 3).await;
    assert_eq!(pulls.received().len(), 2, "{}", describe(&pulls.received()));
    assert_eq!(
        pushes.received().len(),
        1,
        "{}",
        describe(&pushes.received())
    );
}

// ----- the admin API -----

#[tokio::test]
async fn the_events_api_is_for_administrators_and_refuses_what_it_cannot_do() {
    let receiver = Receiver::start().await;
    let app = app_with(&[endpoint("ci", &receiver, |_| {})]).await;
    app.user("bob").await;

    for (method, path, body) in [
        (Method::GET, "/api/v1/events", None),
        (
            Method::POST,
            "/api/v1/events/redeliver",
            Some(json!({"failed": true})),
        ),
    ] {
        let resp = app.api_as("bob", method, path, body).await;
        assert_eq!(resp.status, 403, "{path}: {}", resp.text());
        assert_eq!(resp.json()["errors"][0]["code"], "DENIED", "{path}");
    }
    let resp = app.get("/api/v1/events", None).await;
    assert_eq!(resp.status, 401, "{}", resp.text());

    let invalid =
        |message: &str| json!({"errors": [{"code": "INVALID_REQUEST", "message": message}]});
    let resp = app
        .admin_api(Method::GET, "/api/v1/events?state=done", None)
        .await;
    assert_eq!(resp.status, 400);
    assert_eq!(
        resp.json(),
        invalid("state=done is not one of pending, delivered, failed")
    );
    let resp = app.admin_api(Method::GET, "/api/v1/events?n=0", None).await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json(), invalid("n=0: give 1 to 1000"));

    let resp = redeliver(&app, json!({})).await;
    assert_eq!(resp.status, 400);
    assert_eq!(
        resp.json(),
        invalid(
            "name the events to send again (\"events\": [12, 13]) or ask for every failed delivery (\"failed\": true)"
        )
    );
    let resp = redeliver(&app, json!({"events": [1], "failed": true})).await;
    assert_eq!(resp.status, 400);
    assert_eq!(
        resp.json(),
        invalid("give \"events\" or \"failed\": true, not both")
    );
    let resp = redeliver(&app, json!({"failed": true, "endpoint": "nosuch"})).await;
    assert_eq!(resp.status, 400);
    assert_eq!(
        resp.json(),
        invalid("no webhook endpoint is named \"nosuch\" in this node's settings")
    );
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn the_listing_filters_and_pages_newest_first() {
    let a = Receiver::start().await;
    let b = Receiver::start().await;
    let app = app_with(&[endpoint("a", &a, |_| {}), endpoint("b", &b, |_| {})]).await;
    let token = admin_token(&app, &["acme/one", "acme/two"]).await;
    push(&app, &token, "acme/one", "v1").await;
    push(&app, &token, "acme/two", "v1").await;
    push(&app, &token, "acme/one", "v2").await;
    let all = wait_settled(&app, 6).await;
    let order: Vec<(i64, String)> = all
        .iter()
        .map(|d| {
            (
                d["event"].as_i64().unwrap(),
                d["endpoint"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut sorted = order.clone();
    sorted.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
    assert_eq!(order, sorted, "newest event first, then by endpoint");
    assert_eq!(all[0]["subject"], "acme/one:v2");

    let subjects = |list: &[Value]| -> Vec<String> {
        list.iter()
            .map(|d| {
                format!(
                    "{} {}",
                    d["endpoint"].as_str().unwrap(),
                    d["subject"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(
        subjects(&deliveries(&app, "?endpoint=b&repository=acme%2Fone").await),
        ["b acme/one:v2", "b acme/one:v1"]
    );
    assert_eq!(
        subjects(&deliveries(&app, "?state=delivered&repository=acme%2Ftwo").await),
        ["a acme/two:v1", "b acme/two:v1"]
    );
    assert_eq!(deliveries(&app, "?state=failed").await, Vec::<Value>::new());

    // Pages of 4: the Link header leads to the rest.
    let resp = app.admin_api(Method::GET, "/api/v1/events?n=4", None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let first = resp.json()["deliveries"].as_array().unwrap().clone();
    assert_eq!(first, all[..4]);
    let link = resp.header("link").unwrap().to_owned();
    let next = berth_core::pagination::next_link([link.as_str()])
        .unwrap()
        .unwrap_or_else(|| panic!("a next link: {link}"));
    let resp = app.admin_api(Method::GET, &next, None).await;
    assert_eq!(resp.status, 200, "{next}: {}", resp.text());
    assert_eq!(resp.json()["deliveries"].as_array().unwrap()[..], all[4..]);
    assert_eq!(resp.header("link"), None);
}

// ----- metrics -----

#[tokio::test]
async fn metrics_count_events_written_and_attempts_by_result() {
    let receiver = Receiver::start().await;
    receiver.refuse_next(1, 503, None);
    let app = app_with(&[endpoint("ci", &receiver, |_| {})]).await;
    assert_eq!(metric(&app, "berth_events_written_total").await, 0);
    let token = admin_token(&app, &["acme/app"]).await;
    push(&app, &token, "acme/app", "v1").await;
    assert_eq!(metric(&app, "berth_events_written_total").await, 1);

    receiver.wait_delivered(1).await;
    wait_settled(&app, 1).await;
    for (result, count) in [("delivered", 1), ("retried", 1), ("failed", 0)] {
        let series = format!("berth_event_attempts_total{{result=\"{result}\"}}");
        assert_eq!(metric(&app, &series).await, count, "{series}");
    }
    assert_eq!(receiver.received().len(), 2);
}

#[tokio::test]
async fn a_tag_removed_by_a_retention_policy_is_a_tag_deleted_event_of_the_retention_actor() {
    let receiver = Receiver::start().await;
    let webhooks =
        Webhooks::new(endpoint::parse_all(&[endpoint("ci", &receiver, |_| {})]).unwrap());
    let policy = berth_registry::gc::retention::PolicyText {
        repositories: "alice/**".to_owned(),
        keep_last_pushed: Some(1),
        ..berth_registry::gc::retention::PolicyText::default()
    };
    let policy = berth_registry::gc::retention::Policy::parse(&policy).unwrap();
    let app = TestApp::start_with(move |config| {
        config.webhooks = webhooks;
        config.gc.retention = vec![policy];
    })
    .await;
    app.user("alice").await;
    let token = app
        .user_token("alice", &["repository:alice/app:pull,push"])
        .await;
    let old = push(&app, &token, "alice/app", "old").await;
    push(&app, &token, "alice/app", "new").await;
    receiver.wait_delivered(2).await;
    // `old` was pushed first, a minute before `new` as far as the policy knows.
    let moved = berth_registry::meta::db::query(
        "UPDATE tags SET updated_at = updated_at - 60
          WHERE name = 'old'
            AND repository_id = (SELECT id FROM repositories WHERE name = 'alice/app')",
    )
    .execute(&app.registry.db)
    .await
    .unwrap();
    assert_eq!(moved, 1);

    let resp = app.admin_api(Method::POST, "/api/v1/gc", None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());

    let received = receiver.wait_delivered(3).await;
    let event = received[2].json();
    assert_eq!(event["type"], "berth.tag.deleted");
    assert_eq!(event["subject"], "alice/app:old");
    assert_eq!(
        event["data"],
        json!({
            "repository": "alice/app",
            "digest": old.digest.to_string(),
            "tag": "old",
            "actor": "berth:retention",
        })
    );
}

#[tokio::test]
async fn deleting_a_user_with_their_repositories_is_a_repository_deleted_event_for_each() {
    let receiver = Receiver::start().await;
    let app = app_with(&[endpoint("ci", &receiver, |_| {})]).await;
    app.user("alice").await;
    let token = app
        .user_token(
            "alice",
            &[
                "repository:alice/app:pull,push",
                "repository:alice/web:pull,push",
            ],
        )
        .await;
    push(&app, &token, "alice/app", "v1").await;
    push(&app, &token, "alice/web", "v1").await;
    receiver.wait_delivered(2).await;

    let resp = app
        .admin_api(
            Method::DELETE,
            "/api/v1/users/alice?delete_repositories=true",
            None,
        )
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    let deleted_by = request_id(&resp);

    let received = receiver.wait_delivered(4).await;
    let mut deleted: Vec<Value> = received[2..].iter().map(Received::json).collect();
    deleted.sort_by_key(|e| e["subject"].as_str().unwrap_or_default().to_owned());
    for (event, repository) in deleted.iter().zip(["alice/app", "alice/web"]) {
        assert_eq!(event["type"], "berth.repository.deleted");
        assert_eq!(event["subject"], repository);
        assert_eq!(
            event["data"],
            json!({ "repository": repository, "actor": "admin", "requestId": deleted_by })
        );
    }
}
