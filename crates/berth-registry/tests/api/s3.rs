//! The S3 blob store against a real S3 server (moto, started by `.ci/s3`):
//! multipart uploads from chunks of any size, an upload finished by another
//! node, ranges, presigned redirects, the sweep aborting multipart uploads,
//! and what a digest mismatch or a crash between two steps leaves.
//!
//! Every test here checks the bucket itself (objects and multipart uploads
//! under the test's prefix) as well as the answers. Without
//! `BERTH_TEST_S3_ENDPOINT` they return at once, saying so.

use std::time::{Duration, SystemTime};

use berth_core::digest::{Algorithm, Digest, Digester};
use berth_core::endpoint::UploadId;
use berth_registry::gc::{self, BlobCursor};
use berth_registry::store::{Appended, BlobStore, ByteStream, S3Settings, S3Store, StoreError};
use berth_registry::{BlobStoreConfig, Config, Registry};
use bytes::Bytes;

use crate::support::{TestApp, path_of, random_bytes, with_query};

const MIB: usize = 1024 * 1024;

/// The test's prefix in moto's bucket, looked at directly over HTTP (moto
/// does not check signatures).
struct Bucket {
    endpoint: String,
    bucket: String,
    prefix: String,
    http: reqwest::Client,
}

impl Bucket {
    /// The bucket of `app`, or `None` (the test is skipped) without S3.
    fn of(app: &TestApp) -> Option<Self> {
        Self::at(app.path())
    }

    /// The bucket prefix of data directory `dir`.
    fn at(dir: &std::path::Path) -> Option<Self> {
        let settings = S3Settings::for_test_dir(dir)?;
        Some(Self {
            endpoint: settings.endpoint.clone()?,
            bucket: settings.bucket,
            prefix: format!("{}/", settings.prefix),
            http: reqwest::Client::new(),
        })
    }

    async fn get_xml(&self, query: &str) -> String {
        let url = format!("{}/{}?{query}", self.endpoint, self.bucket);
        let resp = self.http.get(url).send().await.unwrap();
        assert!(
            resp.status().is_success(),
            "moto answered {}",
            resp.status()
        );
        resp.text().await.unwrap()
    }

    /// The keys of the objects under the prefix, without it, sorted.
    async fn objects(&self) -> Vec<String> {
        let xml = self
            .get_xml(&format!("list-type=2&prefix={}", self.prefix))
            .await;
        let mut keys = self.keys_in(&xml);
        keys.sort();
        keys
    }

    /// The keys of the multipart uploads in progress under the prefix.
    async fn multipart_uploads(&self) -> Vec<String> {
        let xml = self
            .get_xml(&format!("uploads&prefix={}", self.prefix))
            .await;
        self.keys_in(&xml)
    }

    fn keys_in(&self, xml: &str) -> Vec<String> {
        xml.split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>"))
            .map(|(key, _)| key.strip_prefix(&self.prefix).unwrap_or(key).to_owned())
            .collect()
    }
}

fn skipped() {
    eprintln!("skipped: set BERTH_TEST_S3_ENDPOINT (run under .ci/s3) to test the S3 store");
}

/// The blob object's key for `digest`.
fn blob_key(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// A second registry over `app`'s data directory (or database) and bucket
/// prefix, whose store and sweep the test drives directly.
async fn other_node(app: &TestApp) -> Registry {
    let mut config = Config::new("http://127.0.0.1:1".to_owned());
    config.access_control = false;
    config.blob_store = BlobStoreConfig::S3(S3Settings::for_test_dir(app.path()).unwrap());
    config.database_url = app.database_url();
    Registry::open(app.path(), config).await.unwrap()
}

fn body(chunks: Vec<Result<Bytes, std::io::Error>>) -> ByteStream {
    Box::pin(futures_util::stream::iter(chunks))
}

/// Appends `bytes`, as one chunk, to the upload at `staging` holding
/// `offset` bytes hashed into `digester`.
async fn append_bytes(
    store: &dyn BlobStore,
    staging: &str,
    offset: u64,
    digester: Digester,
    bytes: &[u8],
) -> Appended {
    let chunks = vec![Ok(Bytes::copy_from_slice(bytes))];
    store
        .append(staging, offset, digester, body(chunks), u64::MAX, None)
        .await
        .unwrap()
}

/// A stored blob's bytes, read whole.
async fn read_blob(store: &dyn BlobStore, digest: &Digest) -> Vec<u8> {
    let mut reader = store.open(digest, None).await.unwrap();
    let mut bytes = Vec::new();
    while let Some(chunk) = futures_util::StreamExt::next(&mut reader.stream).await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    bytes
}

/// Regression for the 5 MiB rule: S3 refuses every part but the last under
/// 5 MiB, and clients PATCH whatever sizes they like. Chunks of 1, 3, 12 MiB,
/// 100 KiB and 9 MiB make one blob; the bucket then holds it alone, and
/// meanwhile never more than two tail objects (the last and the one it
/// replaced).
#[tokio::test]
async fn chunks_smaller_and_larger_than_a_part_make_one_blob() {
    let app = TestApp::start().await;
    let Some(bucket) = Bucket::of(&app) else {
        return skipped();
    };
    let blob = random_bytes(25 * MIB + 100 * 1024);
    let digest = Digest::sha256_of(&blob);
    let location = app.start_upload("s3/chunks").await;
    let mut at = 0;
    for len in [MIB, 3 * MIB, 12 * MIB, 100 * 1024, 9 * MIB] {
        let resp = app
            .patch_chunk(&location, at as u64, &blob[at..at + len])
            .await;
        assert_eq!(resp.status, 202, "{}", resp.text());
        at += len;
        assert_eq!(resp.header("range"), Some(&*format!("0-{}", at - 1)));
        // The tail this PATCH wrote, and at most the one it replaced.
        let objects = bucket.objects().await;
        assert!(objects.len() <= 2, "tail objects pile up: {objects:?}");
        if at < 8 * MIB {
            assert!(
                bucket.multipart_uploads().await.is_empty(),
                "no part is sent before 8 MiB arrived"
            );
        }
    }
    assert_eq!(at, blob.len());
    assert_eq!(bucket.multipart_uploads().await.len(), 1);
    let resp = app.close_upload(&location, &digest, b"").await;
    assert_eq!(resp.status, 201, "{}", resp.text());

    let pulled = app.get(&format!("/v2/s3/chunks/blobs/{digest}")).await;
    assert_eq!(pulled.status, 200);
    assert!(pulled.body == blob, "the blob pulled is the blob pushed");
    assert_eq!(bucket.objects().await, vec![blob_key(&digest)]);
    assert!(bucket.multipart_uploads().await.is_empty());
}

/// Nodes share nothing but the database and the bucket: an upload begun on
/// one node takes chunks on another, then the first node goes away and the
/// second finishes it.
#[tokio::test]
async fn another_node_continues_and_finishes_an_upload() {
    let second = TestApp::start().await;
    let Some(bucket) = Bucket::of(&second) else {
        return skipped();
    };
    let first = second.start_beside(|_| {}).await;
    let blob = random_bytes(14 * MIB + 5);
    let digest = Digest::sha256_of(&blob);
    let location = first.start_upload("s3/nodes").await;
    let path = path_of(&location).to_owned();
    let cuts = [0, 6 * MIB, 11 * MIB, 13 * MIB, blob.len()];

    let resp = first.patch_chunk(&path, 0, &blob[..cuts[1]]).await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    let resp = second
        .patch_chunk(&path, cuts[1] as u64, &blob[cuts[1]..cuts[2]])
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    let resp = first
        .patch_chunk(&path, cuts[2] as u64, &blob[cuts[2]..cuts[3]])
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    drop(first);

    let status = second.get(&path).await;
    assert_eq!(status.status, 204);
    assert_eq!(status.header("range"), Some(&*format!("0-{}", cuts[3] - 1)));
    let resp = second.close_upload(&path, &digest, &blob[cuts[3]..]).await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let pulled = second.get(&format!("/v2/s3/nodes/blobs/{digest}")).await;
    assert_eq!(pulled.status, 200);
    assert!(pulled.body == blob, "the blob pulled is the blob pushed");
    assert_eq!(bucket.objects().await, vec![blob_key(&digest)]);
    assert!(bucket.multipart_uploads().await.is_empty());
}

/// distribution-spec "Pulling blobs" with `Range`, read from S3 by range:
/// one range across the first part's end, and the last byte.
#[tokio::test]
async fn ranges_are_read_from_s3() {
    let app = TestApp::start().await;
    if Bucket::of(&app).is_none() {
        return skipped();
    }
    let blob = random_bytes(9 * MIB);
    let digest = app.push_blob("s3/range", &blob).await;
    let path = format!("/v2/s3/range/blobs/{digest}");
    let start = 8 * MIB - 10;
    let end = 8 * MIB + 10;
    let resp = app
        .send(
            app.request(reqwest::Method::GET, &path)
                .header("range", format!("bytes={start}-{end}")),
        )
        .await;
    assert_eq!(resp.status, 206);
    assert_eq!(
        resp.header("content-range"),
        Some(&*format!("bytes {start}-{end}/{}", blob.len()))
    );
    assert_eq!(resp.header("content-length"), Some("21"));
    assert_eq!(resp.body, blob[start..=end]);
    let last = blob.len() - 1;
    let resp = app
        .send(
            app.request(reqwest::Method::GET, &path)
                .header("range", format!("bytes={last}-")),
        )
        .await;
    assert_eq!(resp.status, 206);
    assert_eq!(resp.body, blob[last..]);
}

/// With redirects on, a blob GET answers 307 to a presigned URL of the
/// bucket; fetched with no `Authorization` at all, it serves the bytes (and
/// ranges). HEAD still answers from the registry.
#[tokio::test]
async fn redirect_mode_answers_307_to_a_presigned_url() {
    let app = TestApp::start_with(|config| {
        if let BlobStoreConfig::S3(s3) = &mut config.blob_store {
            s3.redirect = true;
        }
    })
    .await;
    let Some(bucket) = Bucket::of(&app) else {
        return skipped();
    };
    let blob = random_bytes(3 * MIB + 7);
    let digest = app.push_blob("s3/redirect", &blob).await;
    let path = format!("/v2/s3/redirect/blobs/{digest}");

    let resp = app.get(&path).await;
    assert_eq!(resp.status, 307, "{}", resp.text());
    assert!(resp.body.is_empty());
    assert_eq!(
        resp.header("docker-content-digest"),
        Some(&*digest.to_string())
    );
    let location = resp.header("location").unwrap().to_owned();
    let object = format!(
        "{}/{}/{}{}?",
        bucket.endpoint,
        bucket.bucket,
        bucket.prefix,
        blob_key(&digest)
    );
    assert!(
        location.starts_with(&object),
        "{location} is not {object}..."
    );
    assert!(location.contains("X-Amz-Signature="), "{location}");
    assert!(location.contains("X-Amz-Expires=300"), "{location}");

    let plain = reqwest::Client::new();
    let fetched = plain.get(&location).send().await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert!(
        fetched.bytes().await.unwrap() == blob,
        "the presigned URL serves the blob"
    );
    let ranged = plain
        .get(&location)
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap(), blob[..10]);

    let head = app.head(&path).await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(&*blob.len().to_string())
    );
}

/// The sweep of any node aborts the multipart upload of a session that went
/// stale, and of a multipart upload no session names (a node died between
/// starting it and recording it).
#[tokio::test]
async fn sweeps_abort_stale_and_orphaned_multipart_uploads() {
    let app = TestApp::start().await;
    let Some(bucket) = Bucket::of(&app) else {
        return skipped();
    };
    let location = app.start_upload("s3/stale").await;
    let resp = app.patch_chunk(&location, 0, &random_bytes(9 * MIB)).await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    let pending = bucket.multipart_uploads().await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(bucket.objects().await.len(), 1, "the tail object");

    let node = other_node(&app).await;
    let later = berth_registry::clock::now_unix() + 2 * 24 * 60 * 60;
    assert_eq!(gc::expire_uploads(&node, later).await.unwrap(), 1);
    assert!(bucket.multipart_uploads().await.is_empty());
    assert!(bucket.objects().await.is_empty());
    app.get(path_of(&location))
        .await
        .assert_error(404, "BLOB_UPLOAD_UNKNOWN");

    // Bytes stored for an upload no session names.
    let id = UploadId::parse("0123456789abcdef0123456789abcdef").unwrap();
    let staging = node.blobs.begin_upload(&id).await.unwrap();
    let stored = append_bytes(
        &*node.blobs,
        &staging,
        0,
        Digester::new(Algorithm::Sha256),
        &random_bytes(9 * MIB),
    )
    .await;
    assert_eq!(stored.offset, 9 * MIB as u64);
    assert_eq!(bucket.multipart_uploads().await.len(), 1);
    let future = SystemTime::now() + Duration::from_secs(3600);
    let swept = gc::reconcile(&node, future, future, &mut BlobCursor::default(), 100)
        .await
        .unwrap();
    assert_eq!(swept.staging_files, 1);
    assert_eq!(swept.blob_files, 0);
    assert!(bucket.multipart_uploads().await.is_empty());
    assert!(bucket.objects().await.is_empty());
}

/// A digest that does not match the bytes: 400 `DIGEST_INVALID`, and
/// nothing of the upload stays in the bucket or becomes readable.
#[tokio::test]
async fn a_digest_mismatch_leaves_nothing_visible() {
    let app = TestApp::start().await;
    let Some(bucket) = Bucket::of(&app) else {
        return skipped();
    };
    let blob = random_bytes(10 * MIB);
    let actual = Digest::sha256_of(&blob);
    let claimed = Digest::sha256_of(b"something else");
    let location = app.start_upload("s3/mismatch").await;
    let resp = app.patch_chunk(&location, 0, &blob).await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    let resp = app.close_upload(&location, &claimed, b"").await;
    let message = resp.assert_error(400, "DIGEST_INVALID");
    assert_eq!(
        message,
        format!(
            "the uploaded {} bytes have digest {actual}, not {claimed}; the upload was discarded, push the blob again",
            blob.len()
        )
    );
    for digest in [&actual, &claimed] {
        app.get(&format!("/v2/s3/mismatch/blobs/{digest}"))
            .await
            .assert_error(404, "BLOB_UNKNOWN");
    }
    assert!(bucket.objects().await.is_empty());
    assert!(bucket.multipart_uploads().await.is_empty());
    // The session went with its bytes.
    app.send(app.request(
        reqwest::Method::PUT,
        &with_query(&location, &format!("digest={actual}")),
    ))
    .await
    .assert_error(404, "BLOB_UPLOAD_UNKNOWN");
}

/// A node can die between any two steps of a commit; the next attempt (a
/// client's PUT again, on any node) finds what the last one did. Here: the
/// multipart upload completed but not yet copied to its digest, then the
/// blob in place but the upload not yet recorded as finished.
#[tokio::test]
async fn a_commit_repeated_after_a_crash_finds_its_bytes() {
    // A prefix of its own: no server's sweep runs over it.
    let dir = tempfile::tempdir().unwrap();
    let Some(bucket) = Bucket::at(dir.path()) else {
        return skipped();
    };
    let settings = S3Settings::for_test_dir(dir.path()).unwrap();
    let store = S3Store::open(&settings).unwrap();
    let blob = random_bytes(17 * MIB + 3);
    let digest = Digest::sha256_of(&blob);
    let id = UploadId::parse("fedcba9876543210fedcba9876543210").unwrap();
    let staging = store.begin_upload(&id).await.unwrap();
    let first = append_bytes(
        &store,
        &staging,
        0,
        Digester::new(Algorithm::Sha256),
        &blob[..12 * MIB],
    )
    .await;
    let staging = first.staging.unwrap();
    let done = append_bytes(
        &store,
        &staging,
        first.offset,
        first.digester,
        &blob[12 * MIB..],
    )
    .await;
    assert_eq!(done.digester.finalize(), digest);
    let staging = done.staging.unwrap();

    // Reading the staging back assembles the upload (completes the
    // multipart upload), as the first step of a commit does.
    let read = store
        .read_staging(&staging, blob.len() as u64)
        .await
        .unwrap();
    assert_eq!(read.len, blob.len() as u64);
    assert!(bucket.multipart_uploads().await.is_empty());

    // Another node's store commits from the same recorded state.
    let other = S3Store::open(&settings).unwrap();
    other.commit(&staging, &digest).await.unwrap();
    assert_eq!(bucket.objects().await, vec![blob_key(&digest)]);
    // And again, as after a crash before the session was closed.
    store.commit(&staging, &digest).await.unwrap();
    assert_eq!(store.stat(&digest).await.unwrap(), Some(blob.len() as u64));
    let pulled = read_blob(&store, &digest).await;
    assert!(pulled == blob, "the committed blob is the bytes appended");
}

/// A body cut after 10 MiB: the part sent and the bytes after it are kept
/// (the tail object), and the upload continues from there.
#[tokio::test]
async fn an_interrupted_append_keeps_every_byte_received() {
    let dir = tempfile::tempdir().unwrap();
    let Some(settings) = S3Settings::for_test_dir(dir.path()) else {
        return skipped();
    };
    let store = S3Store::open(&settings).unwrap();
    let blob = random_bytes(12 * MIB);
    let id = UploadId::parse("00112233445566778899aabbccddeeff").unwrap();
    let staging = store.begin_upload(&id).await.unwrap();
    let cut = store
        .append(
            &staging,
            0,
            Digester::new(Algorithm::Sha256),
            body(vec![
                Ok(Bytes::copy_from_slice(&blob[..10 * MIB])),
                Err(std::io::Error::other("connection reset")),
            ]),
            u64::MAX,
            None,
        )
        .await;
    let Err(StoreError::Interrupted { progress, .. }) = cut else {
        panic!("expected an interrupted append, got {cut:?}");
    };
    assert_eq!(progress.offset, 10 * MIB as u64);
    let staging = progress.staging.clone().unwrap();
    let done = append_bytes(
        &store,
        &staging,
        progress.offset,
        progress.digester.clone(),
        &blob[10 * MIB..],
    )
    .await;
    let digest = Digest::sha256_of(&blob);
    assert_eq!(done.digester.finalize(), digest);
    store.commit(&done.staging.unwrap(), &digest).await.unwrap();
    assert_eq!(store.stat(&digest).await.unwrap(), Some(blob.len() as u64));
    store.delete(&digest).await.unwrap();
}

/// Past S3's 5 GiB `CopyObject` limit the commit copies in
/// `UploadPartCopy` ranges; with the limit lowered to 5 MiB, a 12 MiB blob
/// goes in three ranges (5, 5 and 2 MiB) and arrives whole.
#[tokio::test]
async fn a_commit_past_the_copy_limit_copies_by_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut settings) = S3Settings::for_test_dir(dir.path()) else {
        return skipped();
    };
    let bucket = Bucket::at(dir.path()).unwrap();
    settings.max_copy_object = 5 * MIB as u64;
    let store = S3Store::open(&settings).unwrap();
    let blob = random_bytes(12 * MIB);
    let digest = Digest::sha256_of(&blob);
    let id = UploadId::parse("0f1e2d3c4b5a69780f1e2d3c4b5a6978").unwrap();
    let staging = store.begin_upload(&id).await.unwrap();
    let done = append_bytes(&store, &staging, 0, Digester::new(Algorithm::Sha256), &blob).await;
    store.commit(&done.staging.unwrap(), &digest).await.unwrap();
    assert_eq!(bucket.objects().await, vec![blob_key(&digest)]);
    assert!(bucket.multipart_uploads().await.is_empty());
    let pulled = read_blob(&store, &digest).await;
    assert!(
        pulled == blob,
        "the blob copied by ranges is the blob appended"
    );
}
