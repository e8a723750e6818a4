//! Failures of registry operations: each names the operation, what the
//! registry said, and what to do.

use berth_core::Digest;
use reqwest::StatusCode;

use crate::auth::{AuthError, Failure};

/// What went wrong in a registry operation.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Reaching or authenticating to the registry failed.
    #[error(transparent)]
    Auth(#[from] AuthError),

    /// The registry does not offer `/v2/_catalog` to this caller (Docker Hub,
    /// GHCR: 404, or 401 even after authenticating).
    #[error(
        "the registry {registry} does not list its repositories (/v2/_catalog: {message}); \
         list tags of a known repository instead"
    )]
    CatalogUnsupported {
        /// The registry.
        registry: String,
        /// What it answered.
        message: String,
    },

    /// The registry refuses deletion through the API (405 UNSUPPORTED).
    #[error("the registry {registry} does not delete through the registry API: {registry_hint}")]
    DeleteUnsupported {
        /// The registry.
        registry: String,
        /// Where deletion is done on this registry instead.
        registry_hint: String,
    },

    /// Not found (or hidden: a private repository answers the same).
    #[error(
        "{what}: not found ({message}); check the name, or log in if the repository is private"
    )]
    NotFound {
        /// The operation and its target.
        what: String,
        /// The registry's message.
        message: String,
    },

    /// Still unauthorized after authenticating.
    #[error("{what}: unauthorized ({message}); log in, or check that the account may do this")]
    Unauthorized {
        /// The operation and its target.
        what: String,
        /// The registry's message.
        message: String,
    },

    /// Authenticated but not allowed.
    #[error(
        "{what}: denied ({message}); the account lacks the permission, or the registry's message names what else refuses it (such as a quota)"
    )]
    Denied {
        /// The operation and its target.
        what: String,
        /// The registry's message.
        message: String,
    },

    /// Rate limited.
    #[error("{what}: too many requests ({message}); retry after {retry_after:?} s")]
    TooManyRequests {
        /// The operation and its target.
        what: String,
        /// The registry's message.
        message: String,
        /// `Retry-After` in seconds, when sent.
        retry_after: Option<u64>,
    },

    /// Any other failure status.
    #[error("{what}: HTTP {status} ({message})")]
    Status {
        /// The operation and its target.
        what: String,
        /// The status.
        status: u16,
        /// The registry's message.
        message: String,
    },

    /// Content whose digest is not the one asked for or announced.
    #[error(
        "{what}: content digest is {actual}, expected {expected}; the registry or a proxy altered it"
    )]
    DigestMismatch {
        /// The operation and its target.
        what: String,
        /// The digest asked for or announced.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },

    /// An answer that does not follow the distribution spec.
    #[error("{what}: unexpected answer: {reason}")]
    BadResponse {
        /// The operation and its target.
        what: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The body could not be read (the transport error carries no URL: the
    /// operation names its target).
    #[error("{what}: reading the answer failed: {source}")]
    Body {
        /// The operation and its target.
        what: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
}

impl ClientError {
    /// The error for a failed answer to `what`.
    pub fn from_failure(what: impl Into<String>, failure: &Failure) -> Self {
        let what = what.into();
        let message = failure.message();
        match failure.status {
            StatusCode::NOT_FOUND => Self::NotFound { what, message },
            StatusCode::UNAUTHORIZED => Self::Unauthorized { what, message },
            StatusCode::FORBIDDEN => Self::Denied { what, message },
            StatusCode::TOO_MANY_REQUESTS => Self::TooManyRequests {
                what,
                message,
                retry_after: failure
                    .headers
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok()),
            },
            status => Self::Status {
                what,
                status: status.as_u16(),
                message,
            },
        }
    }
}
