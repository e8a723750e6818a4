//! SIGTERM: berth stops accepting, exits 0, and an upload in progress
//! continues on the next start. Ctrl-C twice: the second stops at once.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

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

#[test]
fn a_second_ctrl_c_stops_at_once_while_a_request_is_in_flight() {
    let data = tempfile::tempdir().unwrap();
    let client = Client::new();
    let mut server = Server::start_with(data.path(), &["--access-control", "false"]);
    let started = client
        .post(server.url("/v2/e2e/interrupt/blobs/uploads/"))
        .send()
        .unwrap();
    assert_eq!(started.status(), 202);
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    let path = location[location.find("/v2/").unwrap()..].to_owned();
    // A PATCH whose body has not all arrived: a request in flight that the
    // drain would wait for.
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    write!(
        stream,
        "PATCH {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: 1000\r\n\r\n",
        server.addr
    )
    .unwrap();
    stream.write_all(&[1u8; 10]).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    server.signal("INT");
    assert_eq!(
        server.wait_for_exit(Duration::from_secs(2)),
        None,
        "the first Ctrl-C drains: the request in flight may finish"
    );
    server.signal("INT");
    let status = server
        .wait_for_exit(Duration::from_secs(5))
        .expect("the second Ctrl-C stops berth at once");
    assert_eq!(status.code(), Some(130), "{status}");

    let server = Server::start_with(data.path(), &["--access-control", "false"]);
    let resumed = client.get(server.url(&path)).send().unwrap();
    assert_eq!(resumed.status(), 204, "the upload session survives");
}
