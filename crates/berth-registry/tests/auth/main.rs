//! The access-control suite: a real berth server per test on `127.0.0.1:0`
//! with token auth on (the `Config::new` defaults), principals made through
//! the identity store, tokens asked of `/token` as clients ask, and every
//! answer checked for its exact status, `WWW-Authenticate` and error code.
//!
//! - `seed`: the GHCR field report's exchanges, one test per request, each
//!   quoting GHCR's answer and asserting berth's (PROTOCOL.md section 1).
//! - `token`: the token endpoint (section 3).
//! - `gate`: challenges, `invalid_token`, `insufficient_scope`, hidden
//!   repositories (section 2).
//! - `jwt`: forged and broken tokens over HTTP (section 4).
//! - `oracle`: a private repository answers like an absent one, everywhere.
//! - `mount`: mounts from sources the caller may or may not pull.
//! - `visibility`: private by default, public on request.
//! - `upload_limits`: open upload sessions capped per user and per repository.
//! - `abuse`: scope limits, failure limits that lock no one else out, no
//!   timing oracle for user names.
//! - `proxy`: client addresses through trusted proxies, and headers ignored
//!   from anyone else.
//! - `cluster`: two nodes on one PostgreSQL database: shared signing keys,
//!   a tag moved through one served by the other at once, security changes
//!   in force on both within a second (PostgreSQL only).
//! - `health`: `/healthz` and `/readyz`, unauthenticated; what failed named.
//! - `revocation`: a change of rights reaches the tokens already issued.
//! - `admin_api`: JSON only, no foreign `Origin`, users deleted only with
//!   their repositories.
//! - `gc`: the garbage collector (unreferenced blobs, untagged manifests,
//!   index children, referrers, shared blobs), retention policies, dry runs,
//!   namespace usage and quotas, and their metrics; blobs in S3 under
//!   `.ci/s3`.
//! - `migrate`: `berth migrate` from an embedded registry into the suite's
//!   backend; the target serves every tag, blob, login and token.
//! - `self_service`: users' own tokens and passwords, organisation owners'
//!   members, robots and visibility, decided by policy without an existence
//!   oracle; the administrator's lists and deletions.
//! - `oidc`: workload identity: CI jobs' ID tokens (from `berth-test-issuer`)
//!   exchanged under trust rules; forged, expired, foreign and unmatched
//!   tokens refused; rules bounded by their author's rights.
//! - `ui`: the web interface's pages: a private repository reads as a
//!   missing one on every page, sessions and their ends, CSRF tokens,
//!   sign-in failures counted with `/token`'s, security headers.
//! - `events`: webhook deliveries as a receiver in the test sees them:
//!   signed CloudEvents of pushes, deletes, mounts and sampled pulls, routed
//!   by repository and action, in order per repository through refusals,
//!   failed after the last retry and sent again on demand; `/api/v1/events`.
//! - `pull_through`: the pull-through cache against an upstream fixture like
//!   Docker Hub and GHCR (a token service on another port, tokens without
//!   `expires_in` that run out, scripted outages, rate limits, corrupt
//!   bytes, slow blobs, moved tags) and against another berth: cold and warm
//!   pulls, one upstream fetch however many clients, tag TTLs without HEAD
//!   storms, stale answers, nothing kept that fails its digest, pull-only
//!   access, no blob served that the upstream repository lacks, metrics.

// `allow-unwrap-in-tests` covers `#[test]` functions, not the helpers they call.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports a failure by panicking, helpers included"
)]

mod abuse;
mod admin_api;
mod cluster;
mod events;
mod gate;
mod gc;
mod health;
mod jwt;
mod migrate;
mod mount;
mod oidc;
mod oracle;
mod pat_limits;
mod proxy;
mod pull_through;
mod revocation;
mod seed;
mod self_service;
mod support;
mod token;
mod ui;
mod upload_limits;
mod visibility;
