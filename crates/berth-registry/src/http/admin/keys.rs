//! `/api/v1/keys`: the token signing keys: list, export the root, rotate,
//! retire.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use berth_core::token::format_rfc3339;
use serde_json::json;

use super::{Admin, ApiError, json_response, no_content};
use crate::Registry;
use crate::auth::jwt::LEEWAY_SECS;
use crate::auth::key_sync;
use crate::auth::keys::{KeyStore, RetireError};
use crate::clock::now_unix;
use crate::http::router::AppState;

pub(super) fn key_store(r: &Registry) -> Result<Arc<KeyStore>, ApiError> {
    r.keys.clone().ok_or_else(|| {
        ApiError::conflict(
            "UNSUPPORTED",
            "this registry runs without access control and has no token keys; restart it with \
             --access-control true",
        )
    })
}

/// Seconds a key must not have signed before it is retired: the token
/// lifetime and the verification leeway, after which no token it signed is
/// accepted anywhere.
fn unused_for(r: &Registry) -> i64 {
    i64::try_from(r.config.effective_token_lifetime().as_secs())
        .unwrap_or(i64::MAX / 4)
        .saturating_add(LEEWAY_SECS)
}

/// `GET /api/v1/keys`: the active kid, every kid, each key with when it
/// stopped signing and from when it may be retired, and the root certificate
/// (PEM) that registries trusting berth's tokens need.
pub(crate) async fn get_keys(
    State(app): State<AppState>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    let keys = key_store(&app.registry)?;
    let unused_for = unused_for(&app.registry);
    let info: Vec<serde_json::Value> = keys
        .key_info()
        .iter()
        .map(|k| {
            json!({
                "kid": k.kid,
                "active": k.active,
                "inactive_since": k.inactive_since.map(format_rfc3339),
                "retirable_at": k.inactive_since.map(|t| format_rfc3339(t.saturating_add(unused_for))),
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "active": keys.active_kid(),
            "kids": keys.kids(),
            "keys": info,
            "root_pem": keys.root_pem(),
        }),
    ))
}

/// `DELETE /api/v1/keys/{kid}`: retires a signing key that no longer signs,
/// once every token it signed has expired (token lifetime + leeway after it
/// stopped signing): its files go, and tokens naming it are refused.
pub(super) async fn retire_key(
    State(app): State<AppState>,
    admin: Admin,
    Path(kid): Path<String>,
) -> Result<Response, ApiError> {
    let keys = key_store(&app.registry)?;
    let unused_for = unused_for(&app.registry);
    let now = now_unix();
    let retired = {
        let kid = kid.clone();
        key_sync::change(&app.registry.db, &keys, move |keys| {
            keys.retire(&kid, unused_for, now)
        })
        .await
    };
    match retired {
        Ok(()) => {}
        Err(RetireError::Unknown(_)) => {
            return Err(ApiError::not_found(
                "KEY_UNKNOWN",
                format!(
                    "no signing key has the kid `{kid}`; `GET /api/v1/keys` lists them ({} now)",
                    keys.kids().join(", ")
                ),
            ));
        }
        Err(RetireError::Active(_)) => {
            return Err(ApiError::conflict(
                "KEY_ACTIVE",
                format!(
                    "`{kid}` is the active signing key; rotate first (`berth admin keys rotate`), \
                     then retire it once the tokens it signed have expired"
                ),
            ));
        }
        Err(RetireError::TooSoon { possible_at, .. }) => {
            return Err(ApiError::conflict(
                "KEY_IN_USE",
                format!(
                    "tokens signed by `{kid}` may be valid until {} (the token lifetime and {} s \
                     of leeway after it stopped signing); retire it from then on",
                    format_rfc3339(possible_at),
                    LEEWAY_SECS
                ),
            ));
        }
        Err(RetireError::Key(e)) => return Err(ApiError::internal(&e)),
    }
    audit!(admin, "keys.retire", kid = %kid, "admin: token signing key retired");
    Ok(no_content())
}

/// `POST /api/v1/keys/rotate`: a new signing key becomes active; older keys
/// keep verifying the tokens they signed.
pub(crate) async fn rotate_keys(
    State(app): State<AppState>,
    admin: Admin,
) -> Result<Response, ApiError> {
    let keys = key_store(&app.registry)?;
    let kid = key_sync::change(&app.registry.db, &keys, KeyStore::rotate)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    audit!(admin, "keys.rotate", kid = %kid, "admin: token signing key rotated");
    Ok(json_response(
        StatusCode::OK,
        &json!({"kid": kid, "kids": keys.kids()}),
    ))
}
