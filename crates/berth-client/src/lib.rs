//! berth's client: registry authentication that works against every registry.
//!
//! - [`credentials`]: where secrets come from (docker `config.json`, credential
//!   helpers, podman `auth.json`, `BERTH_USERNAME`/`BERTH_PASSWORD`).
//! - [`auth`]: the auth engine: challenge -> scope -> token -> cache -> refresh.
//! - [`client`]: registry operations over an authenticated transport.

pub mod auth;
pub mod client;
pub mod credentials;
