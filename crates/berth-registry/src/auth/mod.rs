//! Authentication and access control.
//!
//! - [`gate`]: the single layer every `/v2` request passes before its handler.
//! - [`authenticate`]: credentials (password, personal access token, refresh
//!   token) to a subject, with a verified-password cache and failure limits.
//! - [`keys`]: the token signing keys and their root certificate.
//! - [`key_sync`]: the same keys on every node sharing PostgreSQL.
//! - [`jwt`]: issuing and verifying the JWTs the token service hands out.
//! - [`revocation`]: what the gate refuses of tokens issued before a change
//!   of rights (in memory, refreshed from the database every second).
//!
//! Who may do what is decided in [`crate::policy`], nowhere here.

pub mod authenticate;
pub mod gate;
pub mod jwt;
pub mod key_sync;
pub mod keys;
pub mod revocation;

/// A background task that reads the database every second logs the first
/// failure of an outage and the recovery, not every failed attempt.
#[derive(Debug, Default)]
pub(crate) struct Outage {
    failing: bool,
}

impl Outage {
    /// Notes the outcome of one attempt at reading `what`.
    pub(crate) fn note<E: std::fmt::Display>(&mut self, outcome: Result<(), E>, what: &str) {
        match outcome {
            Ok(()) if self.failing => {
                self.failing = false;
                tracing::info!("{what} are read again");
            }
            Ok(()) => {}
            Err(e) if !self.failing => {
                self.failing = true;
                tracing::warn!(error = %e, "cannot read {what}; retrying every second");
            }
            Err(_) => {}
        }
    }
}
