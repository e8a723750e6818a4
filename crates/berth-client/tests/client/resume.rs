//! Transfers that the network cuts: a 1 GiB image copied between two berths,
//! each behind a proxy that cuts every connection after a random number of
//! bytes. The copy must finish (the destination verifies the digest before
//! the blob exists), re-sending at most one chunk per cut upstream, and the
//! source re-sending at most what was in flight at each cut.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use berth_client::auth::ByteStream;
use berth_client::client::{BlobUpload, OpenBlob, UploadOptions};
use berth_client::copy::{CopyOptions, Endpoint, copy};
use berth_core::{Digest, Digester, TagOrDigest, media_type};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{Berth, admin, descriptor, image_manifest, repo};

const GIB: u64 = 1 << 30;
/// The chunk size of the uploads (the client's default).
const CHUNK: u64 = 8 << 20;

/// A TCP proxy that, once armed, cuts each connection after a random
/// number of bytes (both directions counted) between `budget.0` and
/// `budget.1`.
struct CutProxy {
    #[expect(dead_code, reason = "kept for debugging output")]
    addr: SocketAddr,
    armed: Arc<AtomicBool>,
    /// Bytes passed client -> server.
    up: Arc<AtomicU64>,
    /// Bytes passed server -> client.
    down: Arc<AtomicU64>,
    cuts: Arc<AtomicU64>,
}

impl CutProxy {
    fn start(listener: TcpListener, upstream: SocketAddr, budget: (u64, u64), seed: u64) -> Self {
        let proxy = Self {
            addr: listener.local_addr().unwrap(),
            armed: Arc::default(),
            up: Arc::default(),
            down: Arc::default(),
            cuts: Arc::default(),
        };
        let counters = (
            proxy.armed.clone(),
            proxy.up.clone(),
            proxy.down.clone(),
            proxy.cuts.clone(),
        );
        tokio::spawn(async move {
            let mut state = seed | 1;
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let limit = budget.0 + state % (budget.1 - budget.0);
                let (armed, up, down, cuts) = counters.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    let passed = Arc::new(AtomicU64::new(0));
                    let cut = tokio::select! {
                        cut = pump(client_read, server_write, &up, &passed, &armed, limit) => cut,
                        cut = pump(server_read, client_write, &down, &passed, &armed, limit) => cut,
                    };
                    // Leaving drops all four halves: both sockets close.
                    if cut {
                        cuts.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        proxy
    }

    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    fn counts(&self) -> (u64, u64, u64) {
        (
            self.up.load(Ordering::SeqCst),
            self.down.load(Ordering::SeqCst),
            self.cuts.load(Ordering::SeqCst),
        )
    }
}

/// Copies `from` to `to` until one side closes (`false`) or, when armed,
/// the connection's `limit` is reached (`true`, a cut).
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    counter: &AtomicU64,
    passed: &AtomicU64,
    armed: &AtomicBool,
    limit: u64,
) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n as u64,
        };
        let before = passed.fetch_add(n, Ordering::SeqCst);
        let cut = armed.load(Ordering::SeqCst) && before + n >= limit;
        let n = if cut {
            limit.saturating_sub(before).min(n)
        } else {
            n
        };
        let len = usize::try_from(n).unwrap();
        if to.write_all(&buf[..len]).await.is_err() {
            return false;
        }
        counter.fetch_add(n, Ordering::SeqCst);
        if cut {
            return true;
        }
    }
}

/// A berth reached only through a [`CutProxy`] (its public URL is the
/// proxy's, so upload `Location`s lead through it too).
async fn berth_behind_proxy(seed: u64) -> (Berth, CutProxy) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let public = proxy_listener.local_addr().unwrap();
    let proxy = CutProxy::start(proxy_listener, upstream, (100 << 20, 300 << 20), seed);
    let berth = Berth::start_on(listener, public, |_| {}).await;
    (berth, proxy)
}

/// One MiB of pseudo-random bytes, the body of every block of the blob.
fn pattern() -> &'static Bytes {
    static PATTERN: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| crate::support::random_bytes(BLOCK as usize, 5))
}

/// The blob's blocks: each the pattern with its own number in its first 8
/// bytes, so that no two blocks are alike. Cheap from any offset.
const BLOCK: u64 = 1 << 20;

/// The blob's bytes from `offset` to `size`.
fn generated(offset: u64, size: u64) -> ByteStream {
    let first = offset / BLOCK;
    let pieces = (first..size.div_ceil(BLOCK)).map(move |block| {
        let mut bytes = pattern().to_vec();
        bytes[..8].copy_from_slice(&block.to_le_bytes());
        let start = block * BLOCK;
        let end = (start + BLOCK).min(size);
        let from = usize::try_from(offset.saturating_sub(start)).unwrap();
        let to = usize::try_from(end - start).unwrap();
        Ok(Bytes::from(bytes).slice(from..to))
    });
    Box::pin(futures_util::stream::iter(pieces))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_copy_through_connections_cut_at_random_completes() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("berth_client=debug,berth_registry=info")
        .with_test_writer()
        .try_init();
    let (source, source_proxy) = berth_behind_proxy(7).await;
    let (destination, destination_proxy) = berth_behind_proxy(11).await;
    let source_client = Arc::new(source.client(Some(admin())));
    let destination_client = Arc::new(destination.client(Some(admin())));

    // The image, pushed to the source before the proxies cut anything.
    let digest = {
        let mut digester = Digester::new(berth_core::digest::Algorithm::Sha256);
        let mut stream = generated(0, GIB);
        while let Some(piece) = futures_util::StreamExt::next(&mut stream).await {
            digester.update(&piece.unwrap());
        }
        digester.finalize()
    };
    let open: OpenBlob = Arc::new(|offset| Box::pin(async move { Ok(generated(offset, GIB)) }));
    let layer = BlobUpload {
        digest: digest.clone(),
        size: GIB,
        open,
        mount_from: None,
    };
    let name = repo("cut/big");
    source_client
        .push_blob(&name, &layer, &UploadOptions::default(), None)
        .await
        .unwrap();
    let config = BlobUpload::from_bytes(Bytes::from_static(b"{}"));
    source_client
        .push_blob(&name, &config, &UploadOptions::default(), None)
        .await
        .unwrap();
    let manifest = image_manifest(
        media_type::OCI_IMAGE_MANIFEST,
        descriptor(media_type::OCI_EMPTY, &config.digest, 2),
        &[descriptor(media_type::OCI_LAYER_TAR, &digest, GIB as usize)],
    );
    let manifest = Bytes::from(serde_json::to_vec(&manifest).unwrap());
    let tag = TagOrDigest::parse("v1").unwrap();
    source_client
        .put_manifest(
            &name,
            &tag,
            media_type::OCI_IMAGE_MANIFEST,
            manifest.clone(),
        )
        .await
        .unwrap();
    let (_, source_down_before, _) = source_proxy.counts();

    source_proxy.arm();
    destination_proxy.arm();
    let from = Endpoint::Registry {
        client: source_client,
        repo: name.clone(),
        reference: tag.clone(),
    };
    let to = Endpoint::Registry {
        client: destination_client.clone(),
        repo: name.clone(),
        reference: tag.clone(),
    };
    copy(&from, &to, &CopyOptions::default(), None)
        .await
        .unwrap();

    // The destination verified the blob's digest before linking it; its
    // manifest is the source's, byte for byte.
    let size = destination_client
        .blob_size(
            &name,
            &digest,
            &berth_client::auth::Operation::Pull(name.clone()),
        )
        .await
        .unwrap();
    assert_eq!(size, Some(GIB));
    let copied = destination_client
        .get_manifest(&name, &tag, &[media_type::OCI_IMAGE_MANIFEST])
        .await
        .unwrap();
    assert_eq!(copied.bytes, manifest);

    let (up, _, upload_cuts) = destination_proxy.counts();
    let (_, down, download_cuts) = source_proxy.counts();
    let downloaded = down - source_down_before;
    eprintln!(
        "upload: {up} bytes through {upload_cuts} cuts; download: {downloaded} bytes through {download_cuts} cuts"
    );
    assert!(
        upload_cuts >= 2 && download_cuts >= 2,
        "the proxies cut the transfer"
    );
    // Headers and manifests are a few KiB per request; a cut re-sends at
    // most the chunk it interrupted.
    let overhead = 1 << 20;
    assert!(
        up <= GIB + upload_cuts * CHUNK + overhead,
        "{up} bytes sent for a {GIB}-byte blob with {upload_cuts} cuts"
    );
    // The source is read again from the byte the destination kept after an
    // upload cut, and from the byte received after a download cut: what
    // was in flight in socket buffers at each cut is fetched twice.
    let in_flight = 16 << 20;
    assert!(
        downloaded <= GIB + (download_cuts + upload_cuts) * in_flight + overhead,
        "{downloaded} bytes fetched for a {GIB}-byte blob with {download_cuts} + {upload_cuts} cuts"
    );
    let _: Digest = digest;
}
