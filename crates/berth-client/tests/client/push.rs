//! Writing against berth's own server (token auth on): blob existence,
//! monolithic and chunked uploads, cross-repository mount, manifest `PUT`,
//! blob `DELETE`; and, on a server issuing 60-second tokens, a long chunked
//! upload whose token is refreshed ahead of expiry, never after a refusal.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use berth_client::auth::{
    ByteStream, Clock, Event, ManualClock, Operation, TokenCache, TransportOptions,
};
use berth_client::client::{BlobUpload, OnProgress, OpenBlob, Pushed, UploadOptions};
use berth_core::{Digest, TagOrDigest, media_type};
use bytes::Bytes;
use futures_util::StreamExt;

use crate::support::{
    Berth, admin, descriptor, image_manifest, random_bytes, recording, repo, user_password,
};

const MIB: u64 = 1024 * 1024;

#[tokio::test]
async fn push_mount_manifest_and_delete() {
    let berth = Berth::start().await;
    let client = berth.client(Some(admin()));
    let a = repo("push/a");
    let b = repo("push/b");
    let layer = random_bytes(3 * 1024 * 1024 + 17, 1);
    let blob = BlobUpload::from_bytes(layer.clone());
    let options = UploadOptions::default();
    let pull_a = Operation::Pull(a.clone());

    assert_eq!(
        client.blob_size(&a, &blob.digest, &pull_a).await.unwrap(),
        None
    );
    // Monolithic first, with progress up to the whole size.
    let seen = Arc::new(AtomicU64::new(0));
    let sink = seen.clone();
    let progress: OnProgress = Arc::new(move |n| {
        sink.fetch_max(n, Ordering::SeqCst);
    });
    let pushed = client.push_blob(&a, &blob, &options, Some(progress)).await;
    assert_eq!(pushed.unwrap(), Pushed::Monolithic);
    assert_eq!(seen.load(Ordering::SeqCst), layer.len() as u64);
    // The same again: a HEAD finds it, nothing is sent.
    let pushed = client.push_blob(&a, &blob, &options, None).await;
    assert_eq!(pushed.unwrap(), Pushed::Existed);
    let size = client.blob_size(&a, &blob.digest, &pull_a).await.unwrap();
    assert_eq!(size, Some(layer.len() as u64));
    let back = client.get_blob(&a, &blob.digest).await.unwrap();
    assert_eq!(back.bytes().await.unwrap(), layer);

    // A manifest referencing it and a config blob, under a tag.
    let config = Bytes::from_static(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let config_blob = BlobUpload::from_bytes(config.clone());
    let pushed = client.push_blob(&a, &config_blob, &options, None).await;
    assert_eq!(pushed.unwrap(), Pushed::Monolithic);
    let manifest = image_manifest(
        media_type::OCI_IMAGE_MANIFEST,
        descriptor(
            media_type::OCI_IMAGE_CONFIG,
            &config_blob.digest,
            config.len(),
        ),
        &[descriptor(
            media_type::OCI_LAYER_TAR,
            &blob.digest,
            layer.len(),
        )],
    );
    let bytes = Bytes::from(serde_json::to_vec(&manifest).unwrap());
    let tag = TagOrDigest::parse("v1").unwrap();
    let digest = client
        .put_manifest(&a, &tag, media_type::OCI_IMAGE_MANIFEST, bytes.clone())
        .await
        .unwrap();
    assert_eq!(digest, Digest::sha256_of(&bytes));
    let head = client.head_manifest(&a, &tag).await.unwrap();
    assert_eq!(head.digest, digest);
    assert_eq!(head.media_type, media_type::OCI_IMAGE_MANIFEST);
    assert_eq!(head.size, bytes.len() as u64);
    let got = client.get_manifest(&a, &tag, &[]).await.unwrap();
    assert_eq!(got.bytes, bytes);
    // By digest too: the reference must match the bytes.
    let by_digest = TagOrDigest::Digest(digest.clone());
    let again = client
        .put_manifest(
            &a,
            &by_digest,
            media_type::OCI_IMAGE_MANIFEST,
            bytes.clone(),
        )
        .await
        .unwrap();
    assert_eq!(again, digest);

    // Cross-repository mount: no bytes sent.
    let mounted = BlobUpload {
        mount_from: Some(a.clone()),
        ..blob.clone()
    };
    let pushed = client.push_blob(&b, &mounted, &options, None).await;
    assert_eq!(pushed.unwrap(), Pushed::Mounted);
    let pull_b = Operation::Pull(b.clone());
    let size = client.blob_size(&b, &blob.digest, &pull_b).await.unwrap();
    assert_eq!(size, Some(layer.len() as u64));

    // Delete from b: gone from b, still in a (berth unlinks per repository).
    client.delete_blob(&b, &blob.digest).await.unwrap();
    assert_eq!(
        client.blob_size(&b, &blob.digest, &pull_b).await.unwrap(),
        None
    );
    let size = client.blob_size(&a, &blob.digest, &pull_a).await.unwrap();
    assert_eq!(size, Some(layer.len() as u64));
}

#[tokio::test]
async fn chunked_upload_on_request() {
    let berth = Berth::start().await;
    let client = berth.client(Some(admin()));
    let name = repo("push/chunked");
    let data = random_bytes(3_500_000, 2);
    let blob = BlobUpload::from_bytes(data.clone());
    let options = UploadOptions {
        monolithic: false,
        chunk_size: MIB,
        ..UploadOptions::default()
    };
    let pushed = client.push_blob(&name, &blob, &options, None).await;
    assert_eq!(pushed.unwrap(), Pushed::Chunked { chunks: 4 });
    let back = client.get_blob(&name, &blob.digest).await.unwrap();
    assert_eq!(back.bytes().await.unwrap(), data);
}

/// A blob whose stream moves `clock` 20 s forward before each piece it
/// yields, as a slow link would over a long upload.
fn slow_blob(data: &Bytes, piece: usize, clock: Arc<ManualClock>) -> BlobUpload {
    let pieces: Vec<Bytes> = data.chunks(piece).map(Bytes::copy_from_slice).collect();
    let open: OpenBlob = Arc::new(move |offset| {
        assert_eq!(offset, 0, "this upload is never cut");
        let pieces = pieces.clone();
        let clock = clock.clone();
        Box::pin(async move {
            let stream: ByteStream =
                Box::pin(futures_util::stream::iter(pieces).map(move |piece| {
                    clock.advance(Duration::from_secs(20));
                    Ok(piece)
                }));
            Ok(stream)
        })
    });
    BlobUpload {
        digest: Digest::sha256_of(data),
        size: data.len() as u64,
        open,
        mount_from: None,
    }
}

/// 60-second tokens, 20 s per chunk, each `PATCH` expected to take 30 s:
/// the token is refreshed before the request it would not last through, so
/// no 401 follows the first token.
#[tokio::test]
async fn a_long_chunked_upload_refreshes_its_token_ahead_of_expiry() {
    let berth = Berth::start_with(|c| c.token_lifetime = Duration::from_secs(60)).await;
    let start = SystemTime::now();
    let clock = Arc::new(ManualClock::new(start));
    let (recorded, events) = recording();
    let options = TransportOptions {
        cache: Some(Arc::new(TokenCache::with_clock(clock.clone()))),
        ..recorded
    };
    let client = berth.client_with(Some(admin()), options);
    let name = repo("slow/upload");
    let chunk = 300_000;
    let data = random_bytes(6 * chunk, 3);
    let blob = slow_blob(&data, chunk, clock.clone());
    let upload = UploadOptions {
        monolithic: false,
        chunk_size: chunk as u64,
        // 300 000 bytes at 10 000 B/s: each PATCH is expected to take 30 s.
        assumed_rate: 10_000,
        resume_dir: None,
    };

    let pushed = client.push_blob(&name, &blob, &upload, None).await;
    assert_eq!(pushed.unwrap(), Pushed::Chunked { chunks: 6 });
    let moved = clock.now().duration_since(start).unwrap();
    assert_eq!(moved, Duration::from_secs(120), "six chunks of 20 s each");

    let events = events.lock().unwrap().clone();
    let fetched = events
        .iter()
        .filter(|e| matches!(e, Event::TokenRequest { .. }))
        .count();
    assert!(
        fetched > 1,
        "120 s of 60 s tokens: refreshed ({fetched} fetched)"
    );
    let first_token = events
        .iter()
        .position(|e| matches!(e, Event::TokenReceived { .. }))
        .unwrap();
    let refused: Vec<&Event> = events
        .get(first_token..)
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Event::Response { status: 401, .. }))
        .collect();
    assert!(refused.is_empty(), "refreshed after a refusal: {refused:?}");
    // The first refresh comes at 40 s, before the second PATCH: 20 s were
    // left, enough for the 6 s margin of an ordinary request but not for a
    // 30 s chunk (each PATCH checks its own expected duration).
    let second_fetch = events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, Event::TokenRequest { .. }))
        .nth(1)
        .map(|(i, _)| i)
        .unwrap();
    let patches_before = events
        .get(..second_fetch)
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Event::Request { method, .. } if method == "PATCH"))
        .count();
    assert_eq!(patches_before, 1, "{events:#?}");

    let back = berth.client(Some(admin()));
    let bytes = back.get_blob(&name, &blob.digest).await.unwrap();
    assert_eq!(bytes.bytes().await.unwrap(), data);
}

/// A CI job's push with its ID token (workload identity): the credential is
/// Basic `oidc:<ID token>`, and each registry token that would not last
/// through the next chunk is exchanged again from the same ID token (still
/// valid: the registry checks it against its own clock), with no 401 on the
/// way. The push lasts twice the registry token's lifetime.
#[tokio::test]
async fn a_long_push_with_an_id_token_exchanges_it_again_as_tokens_expire() {
    use berth_registry::trust::rule::{NewRule, RuleBody};
    use berth_registry::trust::{IssuerKind, OidcIssuer};

    let issuer = berth_test_issuer::Issuer::start().await;
    let trusted = OidcIssuer {
        kind: IssuerKind::Github,
        url: issuer.url().to_owned(),
    };
    let issuers = vec![trusted];
    let configured = issuers.clone();
    let berth = Berth::start_with(move |c| {
        c.token_lifetime = Duration::from_secs(60);
        c.oidc.issuers = configured;
        c.oidc.allow_loopback = true;
    })
    .await;
    let service = berth.registry.config.service.clone();
    let body: RuleBody = serde_json::from_value(serde_json::json!({
        "name": "release",
        "issuer": issuer.url(),
        "claims": {"repository": "admin/app", "ref": "refs/heads/main"},
        "repositories": ["admin/app"],
    }))
    .unwrap();
    let rule = NewRule::parse("admin", body, &issuers, &service).unwrap();
    berth
        .registry
        .identity
        .create_trust_rule(&rule, "admin")
        .await
        .unwrap();
    let id_token = issuer.mint(issuer.github_claims("admin/app", "refs/heads/main", &service));

    let start = SystemTime::now();
    let clock = Arc::new(ManualClock::new(start));
    let (recorded, events) = recording();
    let options = TransportOptions {
        cache: Some(Arc::new(TokenCache::with_clock(clock.clone()))),
        ..recorded
    };
    let client = berth.client_with(Some(user_password("oidc", &id_token)), options);
    let name = repo("admin/app");
    let chunk = 300_000;
    let data = random_bytes(6 * chunk, 5);
    let blob = slow_blob(&data, chunk, clock.clone());
    let upload = UploadOptions {
        monolithic: false,
        chunk_size: chunk as u64,
        assumed_rate: 10_000,
        resume_dir: None,
    };
    let issued = berth.tokens_issued();

    let pushed = client.push_blob(&name, &blob, &upload, None).await;
    assert_eq!(pushed.unwrap(), Pushed::Chunked { chunks: 6 });
    assert_eq!(
        clock.now().duration_since(start).unwrap(),
        Duration::from_secs(120)
    );
    let events = events.lock().unwrap().clone();
    let exchanges = events
        .iter()
        .filter(|e| matches!(e, Event::TokenRequest { .. }))
        .count();
    assert!(
        exchanges > 1,
        "120 s of 60 s tokens: exchanged again ({exchanges})"
    );
    assert_eq!(berth.tokens_issued(), issued + exchanges as u64);
    let refused: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e, Event::Response { status: 401, .. }))
        .skip(1) // the first request's challenge
        .collect();
    assert!(
        refused.is_empty(),
        "a 401 after the first token: {refused:?}"
    );

    // What was pushed is there; outside the rule's repositories the
    // workload may not push.
    let back = berth.client(Some(admin()));
    let bytes = back.get_blob(&name, &blob.digest).await.unwrap();
    assert_eq!(bytes.bytes().await.unwrap(), data);
    let elsewhere = berth.client(Some(user_password("oidc", &id_token)));
    let small = random_bytes(1000, 6);
    let other = BlobUpload {
        digest: Digest::sha256_of(&small),
        size: small.len() as u64,
        open: {
            let small = small.clone();
            Arc::new(move |_| {
                let small = small.clone();
                Box::pin(async move {
                    let stream: ByteStream =
                        Box::pin(futures_util::stream::iter([Ok::<_, std::io::Error>(small)]));
                    Ok(stream)
                })
            })
        },
        mount_from: None,
    };
    let refused = elsewhere
        .push_blob(
            &repo("admin/other"),
            &other,
            &UploadOptions::default(),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("trust rules grant"),
        "the refusal names what the rules grant: {refused}"
    );
}
