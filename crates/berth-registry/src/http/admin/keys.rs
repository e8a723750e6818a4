//! `/api/v1/keys`: the token signing keys: list, export the root, rotate.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{Admin, ApiError, json_response};
use crate::Registry;
use crate::http::router::AppState;

pub(super) fn key_store(r: &Registry) -> Result<Arc<crate::auth::keys::KeyStore>, ApiError> {
    r.keys.clone().ok_or_else(|| {
        ApiError::conflict(
            "UNSUPPORTED",
            "this registry runs without access control and has no token keys; restart it with \
             --access-control true",
        )
    })
}

/// `GET /api/v1/keys`: the active kid, every kid, and the root certificate
/// (PEM) that registries trusting berth's tokens need.
pub(super) async fn get_keys(
    State(app): State<AppState>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    let keys = key_store(&app.registry)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"active": keys.active_kid(), "kids": keys.kids(), "root_pem": keys.root_pem()}),
    ))
}

/// `POST /api/v1/keys/rotate`: a new signing key becomes active; older keys
/// keep verifying the tokens they signed.
pub(super) async fn rotate_keys(
    State(app): State<AppState>,
    admin: Admin,
) -> Result<Response, ApiError> {
    let keys = key_store(&app.registry)?;
    let rotating = keys.clone();
    let kid = tokio::task::spawn_blocking(move || rotating.rotate())
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| ApiError::internal(&e))?;
    audit!(admin, "keys.rotate", kid = %kid, "admin: token signing key rotated");
    Ok(json_response(
        StatusCode::OK,
        &json!({"kid": kid, "kids": keys.kids()}),
    ))
}
