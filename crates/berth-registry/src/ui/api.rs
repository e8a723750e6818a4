//! The `/api/v1` handlers, called in-process with a signed-in session's
//! caller: what a page changes (or an organisation's and an
//! administrator's listings) goes through the code `berth` and the API use,
//! policy's question included, and a refusal comes back with the API's
//! status and message for the page to show.

use std::future::Future;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use crate::http::admin::ApiError;

/// The largest answer read back from a handler (a page of users or members).
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// A handler's refusal (or failure), as the API words it.
#[derive(Debug)]
pub struct Refused {
    /// The status the API answers with.
    pub status: StatusCode,
    /// What was wrong and what to do.
    pub message: String,
}

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Self {
        Self {
            status: e.status(),
            message: e.message().to_owned(),
        }
    }
}

/// Runs a handler and reads its JSON answer (`Null` for an empty one).
pub async fn call(
    handler: impl Future<Output = Result<Response, ApiError>>,
) -> Result<Value, Refused> {
    let response = handler.await?;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
        .await
        .map_err(|e| internal(&e))?;
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| internal(&e))?;
    if status.is_success() {
        Ok(value)
    } else {
        Err(Refused {
            status,
            message: value["errors"][0]["message"]
                .as_str()
                .unwrap_or("the request was refused")
                .to_owned(),
        })
    }
}

/// A request body for a handler.
pub fn body(value: &Value) -> Body {
    Body::from(value.to_string())
}

fn internal(cause: &dyn std::fmt::Display) -> Refused {
    tracing::error!(error = %cause, "web interface: unreadable answer from an API handler");
    Refused {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: "internal error; the cause is in the registry's log".to_owned(),
    }
}
