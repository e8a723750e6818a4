//! What one client can hold of the server: idle connections, request heads
//! sent a byte at a time, bodies that stop, responses nobody reads, and more
//! connections than the cap. Each test sets short limits and watches a real
//! socket; the bounds asserted leave seconds of margin on a busy machine.

use std::time::{Duration, Instant};

use berth_registry::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{TestApp, random_bytes};

/// Limits short enough to watch: 1 s head, 2 s idle, 1 s body.
fn short_limits(config: &mut Config) {
    config.limits.header_read_timeout = Duration::from_secs(1);
    config.limits.idle_timeout = Duration::from_secs(2);
    config.limits.body_timeout = Duration::from_secs(1);
}

/// Reads until the server closes the connection (or `limit` passes);
/// returns the bytes read and when the close came.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Duration>) {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (seen, Some(started.elapsed())),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => return (seen, None),
        }
    }
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let app = TestApp::start_with(short_limits).await;
    let mut stream = TcpStream::connect(app.addr()).await.unwrap();
    let (bytes, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let closed = closed.expect("the server closes a silent connection");
    assert!(bytes.is_empty());
    assert!(
        closed >= Duration::from_millis(1900) && closed < Duration::from_secs(8),
        "closed after {closed:?}; idle timeout 2 s"
    );
}

#[tokio::test]
async fn a_keep_alive_connection_is_closed_when_idle_after_its_request() {
    let app = TestApp::start_with(short_limits).await;
    let mut stream = TcpStream::connect(app.addr()).await.unwrap();
    // Idle for most of the idle timeout, then a request: the clock restarts
    // when the request ends, not from the accept.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let request = format!("GET /v2/ HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr());
    stream.write_all(request.as_bytes()).await.unwrap();
    let sent = Instant::now();
    let (bytes, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    let closed = closed.expect("the server closes the idle connection");
    assert!(
        sent.elapsed() >= Duration::from_millis(1900) && closed < Duration::from_secs(8),
        "closed {closed:?} after the request; idle timeout 2 s"
    );
}

#[tokio::test]
async fn a_keep_alive_connection_is_closed_when_idle_after_a_response_longer_than_the_idle_timeout()
{
    let app = TestApp::start_with(short_limits).await;
    let blob = random_bytes(16 << 20);
    let digest = app.push_blob("slow/keepalive", &blob).await;
    let mut stream = TcpStream::connect(app.addr()).await.unwrap();
    let request = format!(
        "GET /v2/slow/keepalive/blobs/{digest} HTTP/1.1\r\nHost: {}\r\n\r\n",
        app.addr()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // Taken at 64 KiB every 25 ms (about 6.4 s in all, the server busy for
    // several seconds of it, past every clock armed before the request, and
    // never stalled for the 1 s body timeout): no clock armed before the
    // request may close the connection, and the idle clock that starts when
    // the response ends must.
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let body_start = loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert_ne!(n, 0, "closed during the response");
        seen.extend_from_slice(&buf[..n]);
        if let Some(at) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    assert!(seen.starts_with(b"HTTP/1.1 200 OK\r\n"));
    while seen.len() < body_start + blob.len() {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let n = stream.read(&mut buf).await.unwrap();
        assert_ne!(n, 0, "closed during the response");
        seen.extend_from_slice(&buf[..n]);
    }
    assert_eq!(&seen[body_start..], &blob[..]);
    let (more, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(more.is_empty());
    let closed = closed.expect("the server closes the connection idle after its response");
    // The server's idle clock starts when it has written the last byte,
    // while the socket buffers on both ends (megabytes on loopback) still
    // hold part of the response: counted from the client's last byte, the
    // close comes at most 2 s later, possibly at once.
    assert!(
        closed < Duration::from_secs(8),
        "closed {closed:?} after the response; idle timeout 2 s"
    );
}

#[tokio::test]
async fn a_head_sent_a_byte_at_a_time_is_cut_at_the_header_timeout() {
    let app = TestApp::start_with(short_limits).await;
    let mut stream = TcpStream::connect(app.addr()).await.unwrap();
    let head = format!(
        "GET /v2/ HTTP/1.1\r\nHost: {}\r\nX-Slow: {}",
        app.addr(),
        "a".repeat(200)
    );
    let started = Instant::now();
    // A byte every 100 ms keeps the connection from ever being idle; the
    // head must still be complete within 1 s of its first byte.
    let mut cut = None;
    for byte in head.bytes() {
        if stream.write_all(&[byte]).await.is_err() {
            cut = Some(started.elapsed());
            break;
        }
        let mut probe = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(100), stream.read(&mut probe)).await
        {
            cut = Some(started.elapsed());
            break;
        }
    }
    let cut = cut.expect("the server cut the trickled head");
    assert!(
        cut >= Duration::from_millis(900) && cut < Duration::from_secs(6),
        "cut after {cut:?}; header timeout 1 s"
    );
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_ends_at_the_body_timeout_and_stays_resumable() {
    let app = TestApp::start_with(short_limits).await;
    let location = app.start_upload("slow/body").await;
    let mut stream = TcpStream::connect(app.addr()).await.unwrap();
    let request = format!(
        "PATCH {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: 1000\r\n\r\n",
        crate::support::path_of(&location),
        app.addr()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(&[7u8; 100]).await.unwrap();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let closed = closed.expect("the server ends a stalled body");
    assert!(closed < Duration::from_secs(8), "ended after {closed:?}");
    // The session is still there for the client to resume.
    let status = app.get(&location).await;
    assert_eq!(status.status, 204, "{}", status.text());
}

#[tokio::test]
async fn a_slow_body_that_keeps_moving_is_received_whole() {
    let app = TestApp::start_with(short_limits).await;
    let blob = random_bytes(40);
    let digest = berth_core::digest::Digest::sha256_of(&blob);
    let location = app.start_upload("slow/moving").await;
    let target = crate::support::with_query(
        crate::support::path_of(&location),
        &format!("digest={digest}"),
    );
    let mut stream = TcpStream::connect(app.addr()).await.unwrap();
    let request = format!(
        "PUT {target} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        app.addr(),
        blob.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // 4 s in all, more than the 1 s body timeout, but never 1 s without a byte.
    for chunk in blob.chunks(4) {
        tokio::time::sleep(Duration::from_millis(400)).await;
        stream.write_all(chunk).await.unwrap();
    }
    let (bytes, _) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 201 Created\r\n"), "{text}");
    let pulled = app.get(&format!("/v2/slow/moving/blobs/{digest}")).await;
    assert_eq!((pulled.status, pulled.body), (200, blob));
}

#[tokio::test]
async fn a_client_that_reads_nothing_of_a_large_response_is_cut_at_the_body_timeout() {
    let app = TestApp::start_with(short_limits).await;
    // Far more than the socket buffers on both ends hold.
    let blob = random_bytes(32 << 20);
    let digest = app.push_blob("slow/reader", &blob).await;
    let mut stream = TcpStream::connect(app.addr()).await.unwrap();
    let request = format!(
        "GET /v2/slow/reader/blobs/{digest} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        app.addr()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (bytes, closed) = read_until_closed(&mut stream, Duration::from_secs(20)).await;
    assert!(closed.is_some(), "the server closed the stalled download");
    assert!(
        bytes.len() < blob.len(),
        "a stalled download is cut, not completed ({} of {} bytes)",
        bytes.len(),
        blob.len()
    );
}

#[tokio::test]
async fn past_the_connection_cap_idle_connections_make_room_for_new_ones() {
    let app = TestApp::start_with(|config| config.limits.max_connections = 8).await;
    let mut silent = Vec::new();
    for _ in 0..30 {
        silent.push(TcpStream::connect(app.addr()).await.unwrap());
    }
    let started = Instant::now();
    let resp = app.get("/v2/").await;
    assert_eq!(resp.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered in {:?}",
        started.elapsed()
    );
    // The silent connections over the cap were closed to make room.
    let mut closed = 0;
    for stream in &mut silent {
        let mut probe = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(200), stream.read(&mut probe)).await
        {
            closed += 1;
        }
    }
    assert!(closed >= 22, "{closed} of 30 silent connections closed");
    let metrics = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("berth_connections_closed_total{reason=\"evicted\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn past_the_connection_cap_a_busy_connection_is_never_evicted() {
    let app = TestApp::start_with(|config| config.limits.max_connections = 2).await;
    // A request in flight: an upload whose body is still coming.
    let location = app.start_upload("busy/upload").await;
    let mut busy = TcpStream::connect(app.addr()).await.unwrap();
    let request = format!(
        "PATCH {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: 8\r\nConnection: close\r\n\r\nabcd",
        crate::support::path_of(&location),
        app.addr()
    );
    busy.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..5 {
        let resp = app
            .send(
                app.request(reqwest::Method::GET, "/v2/")
                    .header("connection", "close"),
            )
            .await;
        assert_eq!(resp.status, 200);
    }
    busy.write_all(b"efgh").await.unwrap();
    let (bytes, _) = read_until_closed(&mut busy, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 202 Accepted\r\n"), "{text}");
}
