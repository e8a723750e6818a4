//! berth's client: registry authentication that works against every registry.
//!
//! - [`credentials`]: where secrets come from (docker `config.json`, credential
//!   helpers, podman `auth.json`, `BERTH_USERNAME`/`BERTH_PASSWORD`).
//! - [`auth`]: the auth engine: challenge -> scope -> token -> cache -> refresh.
//! - [`client`]: registry operations over an authenticated transport.
//! - [`file`]: blobs uploaded from and downloaded to local files.

pub mod auth;
pub mod client;
pub mod copy;
pub mod credentials;
pub mod document;
pub mod file;
pub mod layout;
