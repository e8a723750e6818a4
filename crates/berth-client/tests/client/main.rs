//! berth-client's integration suite, one binary:
//!
//! - `berth`: against berth's own server in-process (token auth on).
//! - `quirks`: fixture servers behaving as GHCR, Docker Hub, zot, Quay, ECR,
//!   Basic-only registries and token services without OAuth2 (GCR,
//!   Artifactory, ACR) do; each test fails if the quirk is mishandled.
//! - `tls`: a registry behind TLS with a private CA, trusted through an
//!   extra CA file and refused without it.
//! - `artifact`: files pushed and pulled as an artifact (titles that leave
//!   the directory, sizes), `inspect`, and a listing's cap.
//! - `props`: properties of scope merging and cache keys.
//! - `copy`: `copy` between two berths, within one, to and from an OCI
//!   layout: an index and one platform of it, mounts, referrers, events, and
//!   an anonymous copy of a private repository.
//! - `push`: writing against berth: uploads (monolithic, chunked), mount,
//!   manifest `PUT`, blob `DELETE`, token refresh during a long upload.
//! - `resume`: a 1 GiB copy between two berths behind proxies that cut
//!   connections at random points: downloads continue with `Range`, uploads
//!   from what the registry kept.
//! - `push_quirks`: fixture registries with upload quirks (a proxy's body
//!   limit with `OCI-Chunk-Min-Length`, stateful relative `Location`s, a
//!   refused digest, a 405 to a blob `DELETE`).
//! - `workload`: a CI job's ID token (berth-test-issuer) exchanged at berth
//!   (RFC 8693), then used as the password of `oidc` as registry tokens
//!   expire, until its trust rule is removed.

// `allow-unwrap-in-tests` covers `#[test]` functions, not the helpers they call.
#![expect(
    clippy::unwrap_used,
    reason = "a test reports a failure by panicking, helpers included"
)]

mod artifact;
mod berth;
mod copy;
mod props;
mod push;
mod push_quirks;
mod quirks;
mod resume;
mod support;
mod tls;
mod workload;
