//! Interrupted uploads keep what arrived: the session's offset and hash
//! state follow the body as it streams, so a client cut off mid-chunk asks
//! `GET <location>` where it stands and continues from there.

use std::time::Duration;

use berth_core::digest::Digest;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::{TestApp, path_of, random_bytes, with_query};

/// Sends `PATCH location` announcing `announced` bytes, sends `sent` of
/// them, then drops the connection.
async fn cut_patch(app: &TestApp, location: &str, announced: usize, sent: &[u8]) {
    let mut stream = TcpStream::connect(app.addr()).await.unwrap();
    let head = format!(
        "PATCH {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {announced}\r\n\r\n",
        path_of(location),
        app.addr()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(sent).await.unwrap();
    stream.flush().await.unwrap();
    // Let the server take the bytes in before the connection goes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stream);
}

/// Polls the session until its `Range` shows `expected` (the server records
/// the cut once it notices it).
async fn wait_for_range(app: &TestApp, location: &str, expected: &str) -> String {
    let mut range = String::new();
    for _ in 0..50 {
        let status = app.get(location).await;
        assert_eq!(status.status, 204, "{}", status.text());
        range = status.header("range").unwrap_or_default().to_owned();
        if range == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    range
}

#[tokio::test]
async fn a_patch_cut_off_midway_keeps_the_bytes_that_arrived() {
    let app = TestApp::start().await;
    let blob = random_bytes(1_000_000);
    let digest = Digest::sha256_of(&blob);
    let location = app.start_upload("resume/cut").await;

    cut_patch(&app, &location, blob.len(), &blob[..600_000]).await;
    let range = wait_for_range(&app, &location, "0-599999").await;
    assert_eq!(range, "0-599999", "the 600,000 bytes that arrived count");

    // The client continues from the reported offset.
    let resp = app.patch_chunk(&location, 600_000, &blob[600_000..]).await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    assert_eq!(resp.header("range"), Some("0-999999"));
    let closed = app.close_upload(&location, &digest, b"").await;
    assert_eq!(closed.status, 201, "{}", closed.text());
    let pulled = app.get(&format!("/v2/resume/cut/blobs/{digest}")).await;
    assert_eq!(pulled.body, blob);
}

#[tokio::test]
async fn a_closing_put_cut_off_midway_is_finished_by_a_put_with_the_rest() {
    let app = TestApp::start().await;
    let blob = random_bytes(300_000);
    let digest = Digest::sha256_of(&blob);
    let location = app.start_upload("resume/put").await;
    let target = with_query(path_of(&location), &format!("digest={digest}"));

    let mut stream = TcpStream::connect(app.addr()).await.unwrap();
    let head = format!(
        "PUT {target} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n\r\n",
        app.addr(),
        blob.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&blob[..100_000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stream);

    let range = wait_for_range(&app, &location, "0-99999").await;
    assert_eq!(range, "0-99999", "the 100,000 bytes that arrived count");
    // The client closes the upload with the rest as the last chunk.
    let closed = app
        .send(
            app.request(reqwest::Method::PUT, &target)
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("100000-{}", blob.len() - 1))
                .body(blob[100_000..].to_vec()),
        )
        .await;
    assert_eq!(closed.status, 201, "{}", closed.text());
    let pulled = app.get(&format!("/v2/resume/put/blobs/{digest}")).await;
    assert_eq!(pulled.body, blob);
}
