//! berth's client: registry authentication that works against every registry.
//!
//! - [`credentials`]: where secrets come from (docker `config.json`, credential
//!   helpers, podman `auth.json`, `BERTH_USERNAME`/`BERTH_PASSWORD`).
//! - [`auth`]: the auth engine: challenge -> scope -> token -> cache -> refresh.
//! - [`client`]: registry operations over an authenticated transport.
//! - [`settings`]: per-registry plain HTTP or TLS and extra CA certificates
//!   (client configuration file, docker's and podman's `certs.d`).
//! - [`copy`]: images between registries and OCI layouts ([`layout`]),
//!   walking [`document`]s.
//! - [`file`]: blobs uploaded from and downloaded to local files.
//! - [`artifact`]: files pushed and pulled as an OCI artifact (as `oras` does).
//! - [`inspect`]: what a manifest, its platforms, layers and config say.

pub mod artifact;
pub mod auth;
pub mod client;
pub mod copy;
pub mod credentials;
pub mod document;
pub mod file;
pub mod inspect;
pub mod layout;
pub mod settings;
