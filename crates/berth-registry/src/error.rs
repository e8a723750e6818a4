//! The registry's one error type. Every failure a handler can meet is a
//! variant here; `http/error.rs` turns each into exactly one HTTP answer.

use berth_core::endpoint::EndpointError;
use berth_core::oci_error::ErrorCode;

use crate::meta::MetaError;
use crate::store::StoreError;

/// A failure while serving a registry request.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A failure the distribution spec names: the client gets this code and message.
    #[error("{code:?}: {message}")]
    Spec {
        /// The OCI error code (and so the HTTP status).
        code: ErrorCode,
        /// What was wrong and what to do, for a person.
        message: String,
        /// Structured detail (`detail` in the error body), if any.
        detail: Option<serde_json::Value>,
    },
    /// The request needs (other) credentials: 401 with this challenge.
    #[error("unauthorized: {message}")]
    Unauthorized {
        /// The `WWW-Authenticate` value.
        challenge: String,
        /// What was wrong and what to do.
        message: String,
        /// The `detail` of the error body (the access that was needed).
        detail: Option<serde_json::Value>,
    },
    /// Too many failed attempts: 429 with `Retry-After`.
    #[error("too many requests: retry after {retry_after_secs} s")]
    TooManyRequests {
        /// Seconds until the client may try again.
        retry_after_secs: u64,
    },
    /// A cap on what one client may hold is reached: 429 `TOOMANYREQUESTS`
    /// with `Retry-After` and this message.
    #[error("limit reached: {message}")]
    LimitReached {
        /// What is at its cap, and how to free some.
        message: String,
        /// Seconds after which trying again may succeed.
        retry_after_secs: u64,
    },
    /// The disk is full, or the space left is kept for deletes: nothing is
    /// stored until space is freed (507).
    #[error("the disk holding the registry's data is full")]
    DiskFull,
    /// No endpoint at this path (404 without an OCI error body code of its own).
    #[error("{0}")]
    NoRoute(String),
    /// The method is not one this endpoint answers.
    #[error("method {method} is not supported on {endpoint}")]
    MethodNotAllowed {
        /// The method that was used.
        method: String,
        /// The endpoint, for the message.
        endpoint: &'static str,
    },
    /// The upstream of a pull-through cache cannot give what the cache
    /// lacks (unreachable, failing, or sending bad content): 503 with
    /// `Retry-After` and this message.
    #[error("{message}")]
    UpstreamUnavailable {
        /// What was asked for, of which upstream, and what happened.
        message: String,
    },
    /// Any other internal failure (the cause goes to the log, not the client).
    #[error("internal error: {0}")]
    Internal(String),
    /// The metadata store failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// The blob store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RegistryError {
    /// A spec error with a message.
    pub fn spec(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Spec {
            code,
            message: message.into(),
            detail: None,
        }
    }
}

impl RegistryError {
    /// Whether the failure is a full disk, whichever store met it.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Self::DiskFull => true,
            Self::Meta(e) => e.is_disk_full(),
            Self::Store(e) => e.is_disk_full(),
            _ => false,
        }
    }
}

impl From<EndpointError> for RegistryError {
    fn from(e: EndpointError) -> Self {
        match e {
            EndpointError::NotFound(path) => {
                Self::NoRoute(format!("no registry API endpoint at {path}"))
            }
            EndpointError::Name(e) => Self::spec(ErrorCode::NameInvalid, e.to_string()),
            EndpointError::Tag(e) => Self::spec(ErrorCode::TagInvalid, e.to_string()),
            EndpointError::Digest(e) => Self::spec(ErrorCode::DigestInvalid, e.to_string()),
            EndpointError::UploadId(e) => Self::spec(
                ErrorCode::BlobUploadUnknown,
                format!("{e}; start a new upload with POST /v2/<name>/blobs/uploads/"),
            ),
        }
    }
}
