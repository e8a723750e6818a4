//! The registry's black-box suite: a real server per test on `127.0.0.1:0`
//! over a fresh data directory, driven over HTTP exactly as clients drive it.
//!
//! Each module covers one group of the distribution API (PROTOCOL.md section
//! 6); `workflows` replays the four workflows of the OCI conformance suite
//! (distribution-spec v1.1.1 `conformance/`: pull, push, content discovery,
//! content management) end to end. Every response is checked for
//! `Docker-Distribution-API-Version: registry/2.0` by the harness.

// `allow-unwrap-in-tests` covers `#[test]` functions, not the helpers they call.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports a failure by panicking, helpers included"
)]

mod bad_input;
mod base;
mod blobs;
mod catalog;
mod connections;
mod disk_full;
mod leftovers;
mod manifests;
mod referrers;
mod resume;
mod s3;
mod support;
mod tags;
mod tls;
mod uploads;
mod workflows;
