//! The real binary under a low open-file limit: more silent connections than
//! it has descriptors must not take the registry away from other clients.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::Server;

#[test]
fn eleven_hundred_silent_connections_under_a_1024_fd_limit_leave_v2_answering() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_fd_limit(dir.path(), 1024, &[]);
    let mut silent = Vec::new();
    for _ in 0..1100 {
        // Connections past what the server serves still complete the TCP
        // handshake (the listen backlog) until the server closes them.
        match TcpStream::connect(&server.addr) {
            Ok(stream) => silent.push(stream),
            Err(e) => panic!("connection {} refused: {e}", silent.len() + 1),
        }
    }
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let started = Instant::now();
    let response = client.get(server.url("/v2/")).send().unwrap();
    assert_eq!(response.status(), 401, "/v2/ answers its challenge");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "/v2/ answered in {:?}",
        started.elapsed()
    );
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let evicted = metrics
        .lines()
        .find_map(|l| l.strip_prefix("berth_connections_closed_total{reason=\"evicted\"} "))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap();
    assert!(
        evicted >= 500,
        "silent connections were closed to make room ({evicted})\n{metrics}"
    );
    drop(silent);
}
