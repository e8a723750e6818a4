//! `/api/v1/repositories/visibility`: public or private repositories.

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use berth_core::name::RepositoryName;
use serde::Deserialize;
use serde_json::json;

use super::{Admin, ApiError, json_response, read_json, reload_revocations};
use crate::http::router::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VisibilityBody {
    repository: String,
    visibility: String,
}

/// `PUT /api/v1/repositories/visibility`: public (anyone may pull) or private.
pub(super) async fn set_visibility(
    State(app): State<AppState>,
    admin: Admin,
    body: Body,
) -> Result<Response, ApiError> {
    let body: VisibilityBody = read_json(body).await?;
    let name = RepositoryName::parse(&body.repository)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "NAME_INVALID", e.to_string()))?;
    let public = match body.visibility.as_str() {
        "public" => true,
        "private" => false,
        other => {
            return Err(ApiError::bad_request(format!(
                "visibility `{other}` is unknown; use `public` or `private`"
            )));
        }
    };
    if !app
        .registry
        .meta
        .set_repository_public(&name, public)
        .await?
    {
        return Err(ApiError::not_found(
            "NAME_UNKNOWN",
            format!(
                "repository `{name}` does not exist; push to it first, then set its visibility"
            ),
        ));
    }
    reload_revocations(&app.registry).await;
    audit!(admin, "repository.visibility", repository = %name, visibility = %body.visibility, "admin: repository visibility set");
    Ok(json_response(
        StatusCode::OK,
        &json!({"repository": name.as_str(), "visibility": body.visibility}),
    ))
}

// ---------------------------------------------------------------------------
// Keys
