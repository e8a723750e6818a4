//! Access control for `/v2` requests.
//!
//! [`gate`] is the single layer every request passes before its handler. Until
//! the token service lands it admits everything; it already receives the parsed
//! endpoint and the scopes the request needs, so the token check slots in
//! without touching handlers.

pub mod gate;
