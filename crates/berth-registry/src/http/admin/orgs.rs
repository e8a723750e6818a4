//! `/api/v1/orgs`: organisations, their members and their robot accounts.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::tokens::{store_token, token_actions, token_expiry, token_json};
use super::{
    Admin, ApiError, ROBOT_TOKEN_NAME, find_org, find_user, json_response, no_content, read_json,
    reload_revocations, secret_response,
};
use crate::http::router::AppState;
use crate::identity::Role;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrgBody {
    name: String,
    owner: String,
}

/// `POST /api/v1/orgs`: an organisation whose owner becomes its first member.
pub(super) async fn create_org(
    State(app): State<AppState>,
    admin: Admin,
    body: Body,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    let body: NewOrgBody = read_json(body).await?;
    crate::identity::validate_name(&body.name)?;
    let owner = find_user(r, &body.owner).await?;
    let org = r.identity.create_org(&body.name, owner.id).await?;
    audit!(admin, "org.create", org = %org.name, owner = %owner.name, "admin: organisation created");
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"name": org.name, "owner": owner.name}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberBody {
    role: String,
}

/// `PUT /api/v1/orgs/{org}/members/{user}`: adds a member or changes its role.
pub(super) async fn set_member(
    State(app): State<AppState>,
    admin: Admin,
    Path((org, user)): Path<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    let body: MemberBody = read_json(body).await?;
    let role: Role = body
        .role
        .parse()
        .map_err(|e: crate::identity::UnknownRole| ApiError::bad_request(e.to_string()))?;
    let org = find_org(r, &org).await?;
    let user = find_user(r, &user).await?;
    r.identity.set_member(org.id, user.id, role).await?;
    reload_revocations(r).await;
    // Remembered credential checks must not outlive this change.
    r.authn.forget_remembered();
    audit!(admin, "org.member.set", org = %org.name, user = %user.name, role = %role, "admin: member set");
    Ok(json_response(
        StatusCode::OK,
        &json!({"org": org.name, "user": user.name, "role": role.as_str()}),
    ))
}

/// `DELETE /api/v1/orgs/{org}/members/{user}`.
pub(super) async fn remove_member(
    State(app): State<AppState>,
    admin: Admin,
    Path((org, user)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    let org = find_org(r, &org).await?;
    let user = find_user(r, &user).await?;
    if !r.identity.remove_member(org.id, user.id).await? {
        return Err(ApiError::not_found(
            "MEMBER_UNKNOWN",
            format!(
                "`{}` is not a member of `{}`; nothing was removed",
                user.name, org.name
            ),
        ));
    }
    reload_revocations(r).await;
    // Remembered credential checks must not outlive this change.
    r.authn.forget_remembered();
    audit!(admin, "org.member.remove", org = %org.name, user = %user.name, "admin: member removed");
    Ok(no_content())
}

// ---------------------------------------------------------------------------
// Robots and personal access tokens

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRobotBody {
    name: String,
    actions: Option<Vec<String>>,
    expires_in_days: Option<u32>,
}

/// `POST /api/v1/orgs/{org}/robots`: a robot account and its first token
/// (named [`ROBOT_TOKEN_NAME`]), whose secret is in the answer, once.
pub(super) async fn create_robot(
    State(app): State<AppState>,
    admin: Admin,
    Path(org): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    let body: NewRobotBody = read_json(body).await?;
    let actions = token_actions(body.actions.as_deref())?;
    let expires_at = token_expiry(body.expires_in_days)?;
    let org = find_org(r, &org).await?;
    let robot = r.identity.create_robot(org.id, &body.name).await?;
    let created = store_token(r, robot.id, ROBOT_TOKEN_NAME, actions, vec![], expires_at).await;
    let (pat, secret) = match created {
        Ok(created) => created,
        Err(e) => {
            // A robot without a token cannot log in: take it back.
            if let Err(undo) = r
                .identity
                .delete_user(&robot.name, crate::identity::OwnedRepositories::Keep)
                .await
            {
                tracing::error!(error = %undo, robot = %robot.name, "cannot remove a robot whose token failed");
            }
            return Err(e);
        }
    };
    audit!(admin, "robot.create", org = %org.name, robot = %robot.name, token = %pat.name, actions = %pat.actions, "admin: robot account created");
    let mut token = token_json(&pat);
    token["secret"] = Value::String(secret);
    Ok(secret_response(
        StatusCode::CREATED,
        &json!({"name": robot.name, "org": org.name, "token": token}),
    ))
}
