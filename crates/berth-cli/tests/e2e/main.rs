//! End-to-end tests: the real `berth` binary on 127.0.0.1, driven by real
//! clients (skopeo, podman, the oras SDK) and by a crash loop.
//!
//! The peers come from Debian and PyPI; `bash .ci/install-deps` installs
//! them. A missing peer fails its test with a message saying how to install
//! it: a skipped client test would hide a broken push path.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test that cannot proceed fails, with the message of the failed step"
)]

mod support;

mod account;
mod admin;
mod artifact;
mod backup;
mod client;
mod connections;
mod copy;
mod crash;
mod credentials;
mod delete;
mod deploy;
mod distribution;
mod events;
mod gc;
mod inspect;
mod interop;
mod manifest_blob;
mod messages;
mod migrate;
mod oidc;
mod oras;
mod podman;
mod pull_through;
mod resume;
mod s3;
mod shutdown;
mod skopeo;
mod tls;
