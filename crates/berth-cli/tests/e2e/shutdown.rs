//! SIGTERM: berth stops accepting, exits 0, and an upload in progress
//! continues on the next start.

use reqwest::blocking::Client;

use crate::support::{Server, random_bytes};
use berth_core::digest::Digest;

#[test]
fn sigterm_exits_cleanly_and_the_upload_resumes_after_restart() {
    let data = tempfile::tempdir().unwrap();
    let blob = random_bytes(300_000, 5);
    let digest = Digest::sha256_of(&blob);
    let client = Client::new();

    let mut server = Server::start_with(data.path(), &["--access-control", "false"]);
    let started = client
        .post(server.url("/v2/e2e/term/blobs/uploads/"))
        .send()
        .unwrap();
    assert_eq!(started.status(), 202);
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    let path = location[location.find("/v2/").unwrap()..].to_owned();
    let patched = client
        .patch(&location)
        .header("content-range", "0-99999")
        .body(blob[..100_000].to_vec())
        .send()
        .unwrap();
    assert_eq!(patched.status(), 202);
    let status = server.terminate();
    assert!(status.success(), "berth exits 0 on SIGTERM, got {status}");

    let server = Server::start_with(data.path(), &["--access-control", "false"]);
    let resumed = client.get(server.url(&path)).send().unwrap();
    assert_eq!(resumed.status(), 204);
    assert_eq!(resumed.headers()["range"], "0-99999");
    let closed = client
        .put(format!("{}?digest={digest}", server.url(&path)))
        .header("content-range", format!("100000-{}", blob.len() - 1))
        .body(blob[100_000..].to_vec())
        .send()
        .unwrap();
    assert_eq!(closed.status(), 201);
    let pulled = client
        .get(server.url(&format!("/v2/e2e/term/blobs/{digest}")))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(Digest::sha256_of(&pulled), digest);
}
