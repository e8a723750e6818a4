//! Fixture registries with upload quirks, each with a test that fails if the
//! client mishandles it: a proxy's body limit (413 to the single `PUT`) with
//! `OCI-Chunk-Min-Length`, relative `Location`s carrying a `_state` that
//! changes at each step, a `DIGEST_INVALID` that chunks would not cure, and
//! a 405 to a blob `DELETE`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use berth_client::auth::TransportOptions;
use berth_client::client::{BlobUpload, ClientError, Pushed, UploadOptions};
use berth_core::Digest;

use crate::support::{
    Responder, assert_delete_unsupported, fixture_client, oci_error, random_bytes, repo, respond,
    serve_fixture,
};

/// What a fixture does differently from a plain registry.
#[derive(Debug, Clone, Copy)]
enum Quirk {
    /// A single `PUT` with a body gets 413 (a proxy's body limit); `POST`
    /// answers `OCI-Chunk-Min-Length: <n>`.
    BodyLimit { min_chunk: u64 },
    /// `Location`s are relative, carry `_state`, and change at each `PATCH`;
    /// a request with a stale state is refused.
    State,
    /// The single `PUT` gets 400 `DIGEST_INVALID`.
    DigestInvalid,
    /// A blob `DELETE` gets 405 `UNSUPPORTED`.
    NoDelete,
}

/// One request a fixture saw.
#[derive(Debug, Clone)]
struct Hit {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    content_range: Option<String>,
    body: usize,
    status: u16,
}

impl Hit {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An open upload: its bytes and, with [`Quirk::State`], its current state.
#[derive(Default)]
struct Session {
    bytes: Vec<u8>,
    step: u32,
}

struct Fixture {
    quirk: Quirk,
    hits: Mutex<Vec<Hit>>,
    sessions: Mutex<HashMap<String, Session>>,
    blobs: Mutex<HashMap<String, Vec<u8>>>,
    n: AtomicU32,
}

const UPLOADS: &str = "/v2/x/blobs/uploads/";

impl Responder for Fixture {
    fn handle(
        &self,
        addr: SocketAddr,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        let url = reqwest::Url::parse(&format!("http://fixture{uri}")).unwrap();
        let query: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut hit = Hit {
            method: method.to_string(),
            path: url.path().to_owned(),
            query,
            content_range: headers
                .get("content-range")
                .map(|v| v.to_str().unwrap().to_owned()),
            body: body.len(),
            status: 0,
        };
        let response = self.answer(addr, method, &hit, body);
        hit.status = response.status().as_u16();
        self.hits.lock().unwrap().push(hit);
        response
    }
}

impl Fixture {
    fn new(quirk: Quirk) -> Self {
        Self {
            quirk,
            hits: Mutex::default(),
            sessions: Mutex::default(),
            blobs: Mutex::default(),
            n: AtomicU32::new(0),
        }
    }

    /// The `Location` of session `id` at `step`.
    fn location(&self, addr: SocketAddr, id: &str, step: u32) -> String {
        match self.quirk {
            Quirk::State => format!("{UPLOADS}{id}?_state=s{step}"),
            _ => format!("http://{addr}{UPLOADS}{id}"),
        }
    }

    fn answer(&self, addr: SocketAddr, method: &Method, hit: &Hit, body: &[u8]) -> Response {
        let path = hit.path.as_str();
        if let Some(digest) = path.strip_prefix("/v2/x/blobs/sha256:") {
            let digest = format!("sha256:{digest}");
            return match *method {
                Method::DELETE if matches!(self.quirk, Quirk::NoDelete) => {
                    oci_error(405, "UNSUPPORTED", "The operation is unsupported.", &[])
                }
                Method::DELETE => match self.blobs.lock().unwrap().remove(&digest) {
                    Some(_) => respond(202, &[], ""),
                    None => oci_error(404, "BLOB_UNKNOWN", "blob unknown", &[]),
                },
                Method::HEAD | Method::GET => match self.blobs.lock().unwrap().get(&digest) {
                    Some(bytes) => {
                        let length = bytes.len().to_string();
                        respond(200, &[("content-length", &length)], bytes.clone())
                    }
                    None => respond(404, &[], ""),
                },
                _ => respond(405, &[], ""),
            };
        }
        if path == UPLOADS && *method == Method::POST {
            let n = self.n.fetch_add(1, Ordering::SeqCst);
            let id = if n == 0 {
                "abc".to_owned()
            } else {
                format!("abc{n}")
            };
            self.sessions.lock().unwrap().insert(
                id.clone(),
                Session {
                    bytes: Vec::new(),
                    step: 1,
                },
            );
            let location = self.location(addr, &id, 1);
            let mut headers = vec![("location", location.as_str()), ("range", "0-0")];
            let min;
            if let Quirk::BodyLimit { min_chunk } = self.quirk {
                min = min_chunk.to_string();
                headers.push(("oci-chunk-min-length", min.as_str()));
            }
            return respond(202, &headers, "");
        }
        let Some(id) = path.strip_prefix(UPLOADS) else {
            return oci_error(404, "NAME_UNKNOWN", "repository name not known", &[]);
        };
        let mut sessions = self.sessions.lock().unwrap();
        let Some(session) = sessions.get_mut(id) else {
            return oci_error(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown", &[]);
        };
        if matches!(self.quirk, Quirk::State)
            && hit.param("_state") != Some(format!("s{}", session.step).as_str())
        {
            return oci_error(400, "BLOB_UPLOAD_INVALID", "stale upload state", &[]);
        }
        match *method {
            Method::PATCH => {
                let start = session.bytes.len();
                let expected = format!("{start}-{}", start + body.len() - 1);
                if hit.content_range.as_deref() != Some(expected.as_str()) {
                    return oci_error(416, "BLOB_UPLOAD_INVALID", "out of order", &[]);
                }
                session.bytes.extend_from_slice(body);
                session.step += 1;
                let location = self.location(addr, id, session.step);
                let range = format!("0-{}", session.bytes.len() - 1);
                respond(202, &[("location", &location), ("range", &range)], "")
            }
            Method::PUT => {
                if matches!(self.quirk, Quirk::BodyLimit { .. }) && !body.is_empty() {
                    // As nginx's client_max_body_size answers.
                    return respond(
                        413,
                        &[("content-type", "text/html")],
                        "<html>413 Request Entity Too Large</html>",
                    );
                }
                if matches!(self.quirk, Quirk::DigestInvalid) {
                    return oci_error(
                        400,
                        "DIGEST_INVALID",
                        "provided digest did not match uploaded content",
                        &[],
                    );
                }
                session.bytes.extend_from_slice(body);
                let actual = Digest::sha256_of(&session.bytes).to_string();
                if hit.param("digest") != Some(actual.as_str()) {
                    return oci_error(400, "DIGEST_INVALID", "digest mismatch", &[]);
                }
                let Some(session) = sessions.remove(id) else {
                    return respond(500, &[], "");
                };
                self.blobs
                    .lock()
                    .unwrap()
                    .insert(actual.clone(), session.bytes);
                let location = format!("/v2/x/blobs/{actual}");
                respond(
                    201,
                    &[("location", &location), ("docker-content-digest", &actual)],
                    "",
                )
            }
            Method::DELETE => {
                sessions.remove(id);
                respond(204, &[], "")
            }
            _ => respond(405, &[], ""),
        }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    fn methods(&self) -> Vec<String> {
        self.hits().into_iter().map(|h| h.method).collect()
    }

    /// The bytes of blob `digest`, once an upload has completed it.
    fn stored(&self, digest: &Digest) -> Option<Vec<u8>> {
        self.blobs.lock().unwrap().get(&digest.to_string()).cloned()
    }
}

async fn start(quirk: Quirk) -> (SocketAddr, Arc<Fixture>) {
    let fixture = Arc::new(Fixture::new(quirk));
    let addr = serve_fixture(fixture.clone()).await;
    (addr, fixture)
}

/// 413 to the single `PUT`: chunks of at least `OCI-Chunk-Min-Length`,
/// contiguous ranges, and a closing `PUT` without a body.
#[tokio::test]
async fn a_proxy_body_limit_falls_back_to_chunks_of_the_minimum_length() {
    let min_chunk = 300_000;
    let (addr, fixture) = start(Quirk::BodyLimit { min_chunk }).await;
    let client = fixture_client(addr, None, TransportOptions::default());
    let data = random_bytes(1_000_003, 4);
    let blob = BlobUpload::from_bytes(data.clone());
    // A chunk size below the registry's minimum: the minimum wins.
    let options = UploadOptions {
        chunk_size: 64 * 1024,
        ..UploadOptions::default()
    };
    let pushed = client.push_blob(&repo("x"), &blob, &options, None).await;
    assert_eq!(pushed.unwrap(), Pushed::Chunked { chunks: 4 });

    let hits = fixture.hits();
    let methods = fixture.methods();
    assert_eq!(
        methods,
        [
            "HEAD", "POST", "PUT", "DELETE", "POST", "PATCH", "PATCH", "PATCH", "PATCH", "PUT"
        ],
        "{hits:#?}"
    );
    assert_eq!((hits[2].status, hits[2].body), (413, data.len()));
    assert_eq!(
        hits[3].path,
        format!("{UPLOADS}abc"),
        "the refused session is cancelled"
    );
    let patches: Vec<&Hit> = hits.iter().filter(|h| h.method == "PATCH").collect();
    let (last, full) = patches.split_last().unwrap();
    for patch in full {
        assert!(patch.body as u64 >= min_chunk, "{patch:?}");
    }
    assert!(last.body > 0);
    let mut start = 0;
    for patch in &patches {
        let range = format!("{start}-{}", start + patch.body - 1);
        assert_eq!(patch.content_range.as_deref(), Some(range.as_str()));
        start += patch.body;
    }
    assert_eq!(start, data.len());
    let close = hits.last().unwrap();
    assert_eq!((close.status, close.body), (201, 0));
    assert_eq!(close.path, format!("{UPLOADS}abc1"));
    assert_eq!(
        close.param("digest"),
        Some(blob.digest.to_string().as_str())
    );
    assert_eq!(fixture.stored(&blob.digest).unwrap(), data);
}

/// Relative `Location`s with a changing `_state`: each one is followed, and
/// the closing `PUT` keeps `_state` and adds `digest`.
#[tokio::test]
async fn relative_locations_with_state_are_followed() {
    let (addr, fixture) = start(Quirk::State).await;
    let client = fixture_client(addr, None, TransportOptions::default());
    let data = random_bytes(1_000_000, 5);
    let blob = BlobUpload::from_bytes(data.clone());
    let options = UploadOptions {
        monolithic: false,
        chunk_size: 400_000,
        ..UploadOptions::default()
    };
    let pushed = client.push_blob(&repo("x"), &blob, &options, None).await;
    assert_eq!(pushed.unwrap(), Pushed::Chunked { chunks: 3 });
    let hits = fixture.hits();
    assert!(
        hits.iter().all(|h| h.status < 400 || h.method == "HEAD"),
        "{hits:#?}"
    );
    let steps: Vec<(&str, &str, Option<&str>)> = hits
        .iter()
        .filter(|h| h.path.starts_with(UPLOADS))
        .map(|h| (h.method.as_str(), h.path.as_str(), h.param("_state")))
        .collect();
    let abc = "/v2/x/blobs/uploads/abc";
    assert_eq!(
        steps,
        [
            ("POST", UPLOADS, None),
            ("PATCH", abc, Some("s1")),
            ("PATCH", abc, Some("s2")),
            ("PATCH", abc, Some("s3")),
            ("PUT", abc, Some("s4")),
        ]
    );
    let close = hits.last().unwrap();
    assert_eq!(close.status, 201);
    assert_eq!(
        close.param("digest"),
        Some(blob.digest.to_string().as_str())
    );
    assert_eq!(fixture.stored(&blob.digest).unwrap(), data);

    // The single PUT keeps the state too.
    let small = BlobUpload::from_bytes(random_bytes(1000, 6));
    let pushed = client
        .push_blob(&repo("x"), &small, &UploadOptions::default(), None)
        .await;
    assert_eq!(pushed.unwrap(), Pushed::Monolithic);
    let put = fixture.hits().last().cloned().unwrap();
    assert_eq!(
        (put.method.as_str(), put.path.as_str()),
        ("PUT", "/v2/x/blobs/uploads/abc1")
    );
    assert_eq!(put.param("_state"), Some("s1"));
    assert_eq!(put.param("digest"), Some(small.digest.to_string().as_str()));
}

/// 400 `DIGEST_INVALID` to the single `PUT`: the bytes are wrong, so no
/// chunked retry.
#[tokio::test]
async fn a_refused_digest_is_not_retried_in_chunks() {
    let (addr, fixture) = start(Quirk::DigestInvalid).await;
    let client = fixture_client(addr, None, TransportOptions::default());
    let blob = BlobUpload::from_bytes(random_bytes(100_000, 7));
    let err = client
        .push_blob(&repo("x"), &blob, &UploadOptions::default(), None)
        .await
        .unwrap_err();
    match &err {
        ClientError::Status {
            status, message, ..
        } => {
            assert_eq!(*status, 400);
            assert!(message.contains("DIGEST_INVALID"), "{message}");
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    assert_eq!(fixture.methods(), ["HEAD", "POST", "PUT", "DELETE"]);
}

/// 405 to a blob `DELETE`: typed, with what the registry does instead.
#[tokio::test]
async fn a_405_to_a_blob_delete_is_delete_unsupported() {
    let (addr, fixture) = start(Quirk::NoDelete).await;
    let client = fixture_client(addr, None, TransportOptions::default());
    let blob = BlobUpload::from_bytes(random_bytes(10, 8));
    let pushed = client
        .push_blob(&repo("x"), &blob, &UploadOptions::default(), None)
        .await;
    assert_eq!(pushed.unwrap(), Pushed::Monolithic);
    let err = client
        .delete_blob(&repo("x"), &blob.digest)
        .await
        .unwrap_err();
    assert_delete_unsupported(&err);
    assert!(
        fixture.stored(&blob.digest).is_some(),
        "the blob is still there"
    );
}
