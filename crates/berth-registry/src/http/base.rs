//! end-1: `GET /v2/` (and `/v2`), the API version check.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// OCI distribution-spec "Determining support": 200 with `{}` as JSON.
pub fn get_base() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        "{}",
    )
        .into_response()
}
