//! Personal access tokens: `/api/v1/user/tokens` (the caller's own) and
//! `/api/v1/users/{user}/tokens` (yourself, a robot of an organisation you
//! own, anyone for an administrator). The secret is shown once.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use berth_core::scope::{Action, Actions};
use berth_core::token::format_rfc3339;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    ApiError, Caller, DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS, json_response, no_content, read_json,
    reload_revocations, secret_response,
};
use crate::Registry;
use crate::auth::authenticate::default_token_actions;
use crate::clock::now_unix;
use crate::http::router::AppState;
use crate::identity::secret::generate_pat;
use crate::identity::{NewPat, Pat, User, UserId, validate_repo_pattern};
use crate::policy::{self, Principal, TokenSpec};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewTokenBody {
    name: String,
    actions: Option<Vec<String>>,
    #[serde(default)]
    repositories: Vec<String>,
    expires_in_days: Option<u32>,
}

/// `POST /api/v1/user/tokens`: a token of the caller.
pub(crate) async fn create_own_token(
    State(app): State<AppState>,
    caller: Caller,
    body: Body,
) -> Result<Response, ApiError> {
    let owner = caller.name.clone();
    create(&app.registry, &caller, &owner, body).await
}

/// `POST /api/v1/users/{user}/tokens`: a token of `{user}`.
pub(super) async fn create_token(
    State(app): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    create(&app.registry, &caller, &user, body).await
}

/// `GET /api/v1/user/tokens`: the caller's tokens, never their secrets.
pub(crate) async fn list_own_tokens(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let owner = caller.name.clone();
    list(&app.registry, &caller, &owner).await
}

/// `GET /api/v1/users/{user}/tokens`: `{user}`'s tokens, never their secrets.
pub(super) async fn list_tokens(
    State(app): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
) -> Result<Response, ApiError> {
    list(&app.registry, &caller, &user).await
}

/// `DELETE /api/v1/user/tokens/{name}`: revokes one of the caller's tokens at once.
pub(crate) async fn revoke_own_token(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let owner = caller.name.clone();
    revoke(&app.registry, &caller, &owner, &name).await
}

/// `DELETE /api/v1/users/{user}/tokens/{name}`: revokes at once.
pub(super) async fn revoke_token(
    State(app): State<AppState>,
    caller: Caller,
    Path((user, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    revoke(&app.registry, &caller, &user, &name).await
}

/// The owner of the tokens asked for, once policy lets the caller manage
/// them: asked before the owner is known to exist, so that a refusal reads
/// the same for a user who exists and one who does not.
async fn owner(r: &Registry, caller: &Caller, name: &str) -> Result<User, ApiError> {
    let user = r.identity.user_by_name(name).await?;
    let robot_of = match user.as_ref().and_then(|u| u.robot_of) {
        Some(org) => r.identity.org_by_id(org).await?.map(|o| o.name),
        None => None,
    };
    caller.ask(policy::manage_tokens(
        &caller.principal,
        name,
        robot_of.as_deref(),
    ))?;
    user.ok_or_else(|| {
        ApiError::not_found(
            "USER_UNKNOWN",
            format!(
                "there is no user `{name}`; create it with `berth admin user create {name} --password-stdin`"
            ),
        )
    })
}

async fn create(
    r: &Registry,
    caller: &Caller,
    owner_name: &str,
    body: Body,
) -> Result<Response, ApiError> {
    let owner = owner(r, caller, owner_name).await?;
    let body: NewTokenBody = read_json(body).await?;
    let spec = TokenSpec {
        actions: token_actions(body.actions.as_deref())?,
        repositories: body.repositories,
        expires_at: token_expiry(body.expires_in_days)?,
    };
    check_patterns(&spec.repositories)?;
    let owner_principal = r
        .authn
        .principal(&owner.name, None)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .ok_or_else(|| ApiError::internal(&format!("user {} vanished", owner.name)))?;
    caller.ask(policy::create_token(
        &caller.principal,
        &owner_principal,
        &spec,
    ))?;
    let (pat, secret) = store_token(r, owner.id, &body.name, spec).await?;
    audit!(caller, "token.create", user = %owner.name, token = %pat.name, actions = %pat.actions, repositories = ?pat.repositories, expires_at = pat.expires_at, "personal access token created");
    let mut answer = token_json(&pat);
    answer["user"] = Value::String(owner.name);
    answer["secret"] = Value::String(secret);
    Ok(secret_response(StatusCode::CREATED, &answer))
}

async fn list(r: &Registry, caller: &Caller, owner_name: &str) -> Result<Response, ApiError> {
    let owner = owner(r, caller, owner_name).await?;
    let now = now_unix();
    let tokens: Vec<Value> = r
        .identity
        .list_pats(owner.id)
        .await?
        .iter()
        .map(|pat| {
            let mut token = token_json(pat);
            token["expired"] = Value::Bool(pat.expires_at <= now);
            token
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"user": owner.name, "tokens": tokens}),
    ))
}

async fn revoke(
    r: &Registry,
    caller: &Caller,
    owner_name: &str,
    name: &str,
) -> Result<Response, ApiError> {
    let owner = owner(r, caller, owner_name).await?;
    let unknown = || {
        ApiError::not_found(
            "TOKEN_UNKNOWN",
            format!(
                "user `{}` has no token named `{name}`; list them with `berth token list --user {}`",
                owner.name, owner.name
            ),
        )
    };
    let pats = r.identity.list_pats(owner.id).await?;
    let pat = pats.iter().find(|p| p.name == name).ok_or_else(unknown)?;
    let robot_of = match owner.robot_of {
        Some(org) => r.identity.org_by_id(org).await?.map(|o| o.name),
        None => None,
    };
    caller.ask(policy::revoke_token(
        &caller.principal,
        &owner.name,
        robot_of.as_deref(),
        pat.id,
        &TokenSpec {
            actions: pat.actions.clone(),
            repositories: pat.repositories.clone(),
            expires_at: pat.expires_at,
        },
    ))?;
    if !r.identity.revoke_pat(owner.id, name).await? {
        return Err(unknown());
    }
    reload_revocations(r).await;
    // Remembered credential checks must not outlive this change.
    r.authn.forget_remembered();
    audit!(caller, "token.revoke", user = %owner.name, token = %name, "personal access token revoked");
    Ok(no_content())
}

/// Refuses (400) a repository pattern outside the grammar, before policy
/// judges where it points.
pub(super) fn check_patterns(patterns: &[String]) -> Result<(), ApiError> {
    for pattern in patterns {
        validate_repo_pattern(pattern).map_err(|reason| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "TOKEN_INVALID",
                format!("invalid personal access token: repository pattern `{pattern}`: {reason}"),
            )
        })?;
    }
    Ok(())
}

/// The actions asked for, `pull,push` when none are named.
pub(super) fn token_actions(asked: Option<&[String]>) -> Result<Actions, ApiError> {
    let Some(asked) = asked else {
        return Ok(default_token_actions());
    };
    let mut actions = Vec::with_capacity(asked.len());
    for word in asked {
        match word.as_str() {
            "pull" => actions.push(Action::Pull),
            "push" => actions.push(Action::Push),
            "delete" => actions.push(Action::Delete),
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "TOKEN_INVALID",
                    format!(
                        "`{other}` is not an action a token can carry; use `pull`, `push` and/or `delete`"
                    ),
                ));
            }
        }
    }
    if actions.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "TOKEN_INVALID",
            "`actions` is empty; name at least one of `pull`, `push`, `delete` (or leave it out for pull,push)",
        ));
    }
    Ok(actions.into_iter().collect())
}

/// Unix seconds `days` (default [`DEFAULT_TOKEN_DAYS`]) from now.
pub(super) fn token_expiry(days: Option<u32>) -> Result<i64, ApiError> {
    let days = days.unwrap_or(DEFAULT_TOKEN_DAYS);
    if !(1..=MAX_TOKEN_DAYS).contains(&days) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "TOKEN_INVALID",
            format!("`expires_in_days` is {days}; give 1 to {MAX_TOKEN_DAYS} days"),
        ));
    }
    Ok(now_unix().saturating_add(i64::from(days) * 86_400))
}

/// Generates a token's secret and stores its hash; returns the token and the secret.
pub(super) async fn store_token(
    r: &Registry,
    user: UserId,
    name: &str,
    spec: TokenSpec,
) -> Result<(Pat, String), ApiError> {
    let (secret, secret_hash) = generate_pat()?;
    let pat = r
        .identity
        .create_pat(&NewPat {
            user,
            name: name.to_owned(),
            secret_hash,
            actions: spec.actions,
            repositories: spec.repositories,
            expires_at: spec.expires_at,
        })
        .await?;
    Ok((pat, secret.expose().to_owned()))
}

/// A robot account about to be made, as policy sees it: no memberships, its
/// rights from its organisation.
pub(super) fn robot_principal(name: &str, org: &str) -> Principal {
    Principal {
        name: name.to_owned(),
        is_admin: false,
        robot_of: Some(org.to_owned()),
        memberships: Vec::new(),
        token: None,
    }
}

/// A token as answers show it (never its secret).
pub(super) fn token_json(pat: &Pat) -> Value {
    json!({
        "name": pat.name,
        "actions": pat.actions.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "repositories": pat.repositories,
        "created_at": format_rfc3339(pat.created_at),
        "expires_at": format_rfc3339(pat.expires_at),
        "last_used_at": pat.last_used_at.map(format_rfc3339),
    })
}
