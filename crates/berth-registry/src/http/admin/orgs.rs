//! `/api/v1/orgs`: organisations (administrators), their members and their
//! robot accounts (owners; members may list them).

use crate::events::Actor;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::tokens::{robot_principal, store_token, token_actions, token_expiry, token_json};
use super::users::delete_repositories;
use super::{
    Admin, ApiError, Caller, ROBOT_TOKEN_NAME, find_org, find_user, json_response, listing,
    no_content, page, read_json, reload_revocations, secret_response, settle_deletion,
};
use crate::http::router::AppState;
use crate::identity::{OwnedRepositories, Role};
use crate::policy::{self, TokenSpec};

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
    super::refuse_proxy_namespace(r, &body.name)?;
    let owner = find_user(r, &body.owner).await?;
    let org = r.identity.create_org(&body.name, owner.id).await?;
    audit!(admin, "org.create", org = %org.name, owner = %owner.name, "admin: organisation created");
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"name": org.name, "owner": owner.name}),
    ))
}

/// `GET /api/v1/orgs?n=&last=`: every organisation, by name.
pub(crate) async fn list_orgs(
    State(app): State<AppState>,
    _admin: Admin,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    let (n, last) = page(r, query.as_deref())?;
    let orgs = r.identity.list_orgs(last.as_deref(), n).await?;
    let names: Vec<String> = orgs.into_iter().map(|o| o.name).collect();
    let entries: Vec<Value> = names.iter().map(|name| json!({"name": name})).collect();
    Ok(listing(
        &json!({"orgs": entries}),
        "/api/v1/orgs",
        "",
        n,
        &names,
    ))
}

/// `DELETE /api/v1/orgs/{org}[?delete_repositories=true]`: the organisation
/// with its memberships and robots, whose members' and robots' tokens stop
/// working at once. One whose namespace holds repositories is kept (409
/// `OWNS_REPOSITORIES`) unless `delete_repositories=true`: then they go too,
/// in the same transaction.
pub(super) async fn delete_org(
    State(app): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    let repositories = if delete_repositories(query.as_deref())? {
        OwnedRepositories::Delete
    } else {
        OwnedRepositories::Keep
    };
    let actor = crate::events::Actor::request(Some(&admin.name), super::request_id(&headers));
    let Some(deleted) = r.identity.delete_org(&name, repositories, &actor).await? else {
        return Err(ApiError::not_found(
            "ORG_UNKNOWN",
            format!("there is no organisation `{name}`; nothing was deleted"),
        ));
    };
    settle_deletion(r, &deleted.staging, true).await;
    audit!(admin, "org.delete", org = %name, repositories = deleted.repositories.len(), members = deleted.members.len(), robots = ?deleted.robots, "admin: organisation deleted");
    Ok(no_content())
}

/// `GET /api/v1/orgs/{org}/members?n=&last=`: members with their roles, by name.
pub(crate) async fn list_members(
    State(app): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    caller.ask(policy::view_org(&caller.principal, &org))?;
    let org = find_org(r, &org).await?;
    let (n, last) = page(r, query.as_deref())?;
    let members = r.identity.list_members(org.id, last.as_deref(), n).await?;
    let entries: Vec<Value> = members
        .iter()
        .map(|(name, role)| json!({"name": name, "role": role.as_str()}))
        .collect();
    let names: Vec<String> = members.into_iter().map(|(name, _)| name).collect();
    Ok(listing(
        &json!({"org": org.name, "members": entries}),
        &format!("/api/v1/orgs/{}/members", org.name),
        "",
        n,
        &names,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberBody {
    role: String,
}

/// `PUT /api/v1/orgs/{org}/members/{user}`: adds a member or changes its role.
pub(crate) async fn set_member(
    State(app): State<AppState>,
    caller: Caller,
    Path((org, user)): Path<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    caller.ask(policy::manage_org(&caller.principal, &org))?;
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
    audit!(caller, "org.member.set", org = %org.name, user = %user.name, role = %role, "member set");
    Ok(json_response(
        StatusCode::OK,
        &json!({"org": org.name, "user": user.name, "role": role.as_str()}),
    ))
}

/// `DELETE /api/v1/orgs/{org}/members/{user}`.
pub(crate) async fn remove_member(
    State(app): State<AppState>,
    caller: Caller,
    Path((org, user)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    caller.ask(policy::manage_org(&caller.principal, &org))?;
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
    audit!(caller, "org.member.remove", org = %org.name, user = %user.name, "member removed");
    Ok(no_content())
}

// ---------------------------------------------------------------------------
// Robots

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRobotBody {
    name: String,
    actions: Option<Vec<String>>,
    expires_in_days: Option<u32>,
}

/// `POST /api/v1/orgs/{org}/robots`: a robot account and its first token
/// (named [`ROBOT_TOKEN_NAME`]), whose secret is in the answer, once.
pub(crate) async fn create_robot(
    State(app): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    caller.ask(policy::manage_org(&caller.principal, &org))?;
    let org = find_org(r, &org).await?;
    let body: NewRobotBody = read_json(body).await?;
    let spec = TokenSpec {
        actions: token_actions(body.actions.as_deref())?,
        repositories: Vec::new(),
        expires_at: token_expiry(body.expires_in_days)?,
    };
    caller.ask(policy::create_token(
        &caller.principal,
        &robot_principal(&body.name, &org.name),
        &spec,
    ))?;
    let robot = r.identity.create_robot(org.id, &body.name).await?;
    let created = store_token(r, robot.id, ROBOT_TOKEN_NAME, spec).await;
    let (pat, secret) = match created {
        Ok(created) => created,
        Err(e) => {
            // A robot without a token cannot log in: take it back.
            if let Err(undo) = r
                .identity
                .delete_user(&robot.name, OwnedRepositories::Keep, &Actor::system())
                .await
            {
                tracing::error!(error = %undo, robot = %robot.name, "cannot remove a robot whose token failed");
            }
            return Err(e);
        }
    };
    audit!(caller, "robot.create", org = %org.name, robot = %robot.name, token = %pat.name, actions = %pat.actions, "robot account created");
    let mut token = token_json(&pat);
    token["secret"] = Value::String(secret);
    Ok(secret_response(
        StatusCode::CREATED,
        &json!({"name": robot.name, "org": org.name, "token": token}),
    ))
}

/// `GET /api/v1/orgs/{org}/robots?n=&last=`: the organisation's robots, by name.
pub(crate) async fn list_robots(
    State(app): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    caller.ask(policy::view_org(&caller.principal, &org))?;
    let org = find_org(r, &org).await?;
    let (n, last) = page(r, query.as_deref())?;
    let robots = r.identity.list_robots(org.id, last.as_deref(), n).await?;
    let entries: Vec<Value> = robots.iter().map(|name| json!({"name": name})).collect();
    Ok(listing(
        &json!({"org": org.name, "robots": entries}),
        &format!("/api/v1/orgs/{}/robots", org.name),
        "",
        n,
        &robots,
    ))
}

/// `DELETE /api/v1/orgs/{org}/robots/{robot}`: the robot with its tokens,
/// which stop working at once.
pub(crate) async fn delete_robot(
    State(app): State<AppState>,
    caller: Caller,
    Path((org, robot)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    caller.ask(policy::manage_org(&caller.principal, &org))?;
    let org = find_org(r, &org).await?;
    let unknown = || {
        ApiError::not_found(
            "ROBOT_UNKNOWN",
            format!(
                "`{}` has no robot account `{robot}`; list them with `berth robot list {}`",
                org.name, org.name
            ),
        )
    };
    let user = r.identity.user_by_name(&robot).await?.ok_or_else(unknown)?;
    if user.robot_of != Some(org.id) {
        return Err(unknown());
    }
    if r.identity
        .delete_user(&user.name, OwnedRepositories::Keep, &Actor::system())
        .await?
        .is_none()
    {
        return Err(unknown());
    }
    reload_revocations(r).await;
    r.authn.forget_remembered();
    audit!(caller, "robot.delete", org = %org.name, robot = %user.name, "robot account deleted");
    Ok(no_content())
}
