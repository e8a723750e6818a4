//! `berth copy` killed in the middle of a large blob, then run again: the
//! second run continues the upload session the first one left (kept in the
//! state directory) from the bytes the registry kept, instead of sending the
//! blob again from its first byte.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use berth_core::digest::Digest;

use crate::support::{Cli, Server, random_bytes};

const LAYER: usize = 240 << 20;

/// A loopback proxy to `upstream` counting the bytes clients send through it.
fn counting_proxy(listener: TcpListener, upstream: String) -> Arc<AtomicU64> {
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(&upstream) else {
                return;
            };
            let pipe = |mut from: TcpStream, mut to: TcpStream, count: Option<Arc<AtomicU64>>| {
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match from.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        if let Some(count) = &count {
                            count.fetch_add(n as u64, Ordering::SeqCst);
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            };
            let (client_read, server_read) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            pipe(client_read, server, Some(counter.clone()));
            pipe(server_read, client, None);
        }
    });
    sent
}

/// An OCI layout with one image: an uncompressed layer of `size`
/// pseudo-random bytes under tag `v1`; the manifest's digest.
fn big_layout(dir: &Path, size: usize) -> Digest {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let digest = Digest::sha256_of(bytes);
        std::fs::write(blobs.join(digest.hex()), bytes).unwrap();
        digest
    };
    let layer = random_bytes(size, 17);
    let layer_digest = put(&layer);
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = put(config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest.to_string(), "size": size}],
    })
    .to_string();
    let manifest_digest = put(manifest.as_bytes());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest.to_string(), "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": "v1"}}]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    manifest_digest
}

#[test]
fn a_copy_killed_midway_continues_where_it_stopped_when_run_again() {
    let work = tempfile::tempdir().unwrap();
    let manifest = big_layout(&work.path().join("layout"), LAYER);
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let public = proxy.local_addr().unwrap();
    // Upload locations lead through the proxy too.
    let server = Server::start_with(
        &work.path().join("data"),
        &["--public-url", &format!("http://{public}")],
    );
    let sent = counting_proxy(proxy, server.addr.clone());
    let home = tempfile::tempdir().unwrap();
    let cli = Cli::admin(home.path());
    let source = format!("oci:{}:v1", work.path().join("layout").display());
    let target = format!("{public}/admin/resumed:v1");

    let mut first = cli
        .command(&["copy", "-q", &source, &target])
        .spawn()
        .unwrap();
    let started = Instant::now();
    while sent.load(Ordering::SeqCst) < (LAYER / 2) as u64 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the first copy sends half the layer"
        );
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first copy is still running"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let before = sent.load(Ordering::SeqCst);
    // Time for the server to see the cut and record what it kept.
    std::thread::sleep(Duration::from_millis(500));

    cli.ok(&["copy", "-q", &source, &target], b"");
    let again = sent.load(Ordering::SeqCst) - before;
    eprintln!("first run sent {before} bytes before the kill; the second {again}");
    assert!(
        again < (LAYER as u64) - before + (32 << 20),
        "the second run sent {again} bytes: the rest of the layer, not all of it"
    );
    assert!(again < LAYER as u64 * 3 / 4);
    let digest = cli.ok_text(&["digest", &target], b"");
    assert_eq!(digest.trim(), manifest.to_string());
}
