//! The one place a [`RegistryError`] becomes an HTTP response.
//!
//! Spec errors get their status and an OCI error body. Internal failures are
//! logged with their cause and answered with a generic message: a lost
//! database answers 503 (try again), anything else 500. A full disk answers
//! 507 Insufficient Storage (RFC 4918 section 11.5: the server cannot store
//! what the request needs), with an OCI error body that says so: unlike a
//! 503, it is not "retry shortly", and clients do not retry it in a loop. It
//! is logged by the router, once a minute (`store::space`), not here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_core::oci_error::{ErrorBody, ErrorCode, ErrorInfo};

use crate::error::RegistryError;
use crate::meta::MetaError;
use crate::store::StoreError;

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        if self.is_disk_full() {
            return insufficient_storage();
        }
        let (code, message, detail) = match self {
            RegistryError::Spec {
                code,
                message,
                detail,
            } => (code, message, detail),
            RegistryError::Unauthorized {
                challenge,
                message,
                detail,
            } => {
                let mut info = ErrorInfo::new(ErrorCode::Unauthorized, message);
                if let Some(detail) = detail {
                    info = info.with_detail(detail);
                }
                let mut response = oci_response(StatusCode::UNAUTHORIZED, info);
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    response
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, value);
                }
                return response;
            }
            RegistryError::TooManyRequests { retry_after_secs } => {
                let mut response = oci_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorInfo::new(
                        ErrorCode::TooManyRequests,
                        format!("too many failed attempts; retry in {retry_after_secs} seconds"),
                    ),
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                return response;
            }
            RegistryError::LimitReached {
                message,
                retry_after_secs,
            } => {
                let mut response = oci_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorInfo::new(ErrorCode::TooManyRequests, message),
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                return response;
            }
            RegistryError::UpstreamUnavailable { message } => {
                let mut response = oci_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorInfo::new(ErrorCode::Unknown("UNAVAILABLE".to_owned()), message),
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
                return response;
            }
            RegistryError::NoRoute(message) => {
                return oci_response(
                    StatusCode::NOT_FOUND,
                    ErrorInfo::new(ErrorCode::Unsupported, message),
                );
            }
            RegistryError::MethodNotAllowed { .. } => {
                let message = self.to_string();
                return oci_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    ErrorInfo::new(ErrorCode::Unsupported, message),
                );
            }
            RegistryError::Store(StoreError::Body(e)) => {
                tracing::info!(error = %e, "request body failed");
                (
                    ErrorCode::BlobUploadInvalid,
                    format!(
                        "the request body ended early or failed ({e}); resume the upload from the offset in GET <location>"
                    ),
                    None,
                )
            }
            RegistryError::Store(StoreError::TooLarge { limit }) => {
                return oci_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorInfo::new(
                        ErrorCode::SizeInvalid,
                        format!("the body is larger than the {limit} bytes allowed here"),
                    ),
                );
            }
            RegistryError::Meta(e @ MetaError::BytesGone(_)) => {
                (ErrorCode::BlobUploadUnknown, e.to_string(), None)
            }
            RegistryError::Meta(MetaError::Database(e)) => {
                tracing::error!(error = %e, "metadata database failed");
                return unavailable();
            }
            other => {
                tracing::error!(error = %other, "internal error");
                return oci_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorInfo::new(
                        ErrorCode::Unknown("UNKNOWN".to_owned()),
                        "internal server error; the cause is in the registry's log",
                    ),
                );
            }
        };
        let status =
            StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut info = ErrorInfo::new(code, message);
        if let Some(detail) = detail {
            info = info.with_detail(detail);
        }
        oci_response(status, info)
    }
}

fn insufficient_storage() -> Response {
    oci_response(
        StatusCode::INSUFFICIENT_STORAGE,
        ErrorInfo::new(
            ErrorCode::Unknown("UNKNOWN".to_owned()),
            "the registry's disk is full: nothing can be stored until space is freed; pulls and deletes still work (delete unused tags, manifests and blobs, or ask the operator to add space), then push again",
        ),
    )
}

fn unavailable() -> Response {
    let mut response = oci_response(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorInfo::new(
            ErrorCode::Unknown("UNAVAILABLE".to_owned()),
            "the registry's metadata store is unavailable; retry shortly",
        ),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

/// An OCI error body with `status`.
pub fn oci_response(status: StatusCode, info: ErrorInfo) -> Response {
    let body = ErrorBody::single(info).to_json();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}
