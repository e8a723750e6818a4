//! `/api/v1/users/{user}/tokens`: personal access tokens (the secret is shown once).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use berth_core::scope::{Action, Actions};
use berth_core::token::format_rfc3339;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Admin, ApiError, DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS, find_user, json_response, no_content,
    read_json, reload_revocations, secret_response,
};
use crate::Registry;
use crate::auth::authenticate::default_token_actions;
use crate::clock::now_unix;
use crate::http::router::AppState;
use crate::identity::secret::generate_pat;
use crate::identity::{NewPat, Pat, UserId};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTokenBody {
    name: String,
    actions: Option<Vec<String>>,
    #[serde(default)]
    repositories: Vec<String>,
    expires_in_days: Option<u32>,
}

/// `POST /api/v1/users/{user}/tokens`: a personal access token; the answer
/// holds its secret, which is never shown again.
pub(super) async fn create_token(
    State(app): State<AppState>,
    admin: Admin,
    Path(user): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    let body: NewTokenBody = read_json(body).await?;
    let actions = token_actions(body.actions.as_deref())?;
    let expires_at = token_expiry(body.expires_in_days)?;
    let user = find_user(r, &user).await?;
    let (pat, secret) = store_token(
        r,
        user.id,
        &body.name,
        actions,
        body.repositories,
        expires_at,
    )
    .await?;
    audit!(admin, "token.create", user = %user.name, token = %pat.name, actions = %pat.actions, repositories = ?pat.repositories, expires_at = pat.expires_at, "admin: personal access token created");
    let mut answer = token_json(&pat);
    answer["user"] = Value::String(user.name);
    answer["secret"] = Value::String(secret);
    Ok(secret_response(StatusCode::CREATED, &answer))
}

/// `GET /api/v1/users/{user}/tokens`: the user's tokens, never their secrets.
pub(super) async fn list_tokens(
    State(app): State<AppState>,
    _admin: Admin,
    Path(user): Path<String>,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    let user = find_user(r, &user).await?;
    let now = now_unix();
    let tokens: Vec<Value> = r
        .identity
        .list_pats(user.id)
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
        &json!({"user": user.name, "tokens": tokens}),
    ))
}

/// `DELETE /api/v1/users/{user}/tokens/{name}`: revokes at once.
pub(super) async fn revoke_token(
    State(app): State<AppState>,
    admin: Admin,
    Path((user, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    let user = find_user(r, &user).await?;
    if !r.identity.revoke_pat(user.id, &name).await? {
        return Err(ApiError::not_found(
            "TOKEN_UNKNOWN",
            format!(
                "user `{}` has no token named `{name}`; list them with `berth admin token list --user {}`",
                user.name, user.name
            ),
        ));
    }
    reload_revocations(r).await;
    // Remembered credential checks must not outlive this change.
    r.authn.forget_remembered();
    audit!(admin, "token.revoke", user = %user.name, token = %name, "admin: personal access token revoked");
    Ok(no_content())
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
    actions: Actions,
    repositories: Vec<String>,
    expires_at: i64,
) -> Result<(Pat, String), ApiError> {
    let (secret, secret_hash) = generate_pat()?;
    let pat = r
        .identity
        .create_pat(&NewPat {
            user,
            name: name.to_owned(),
            secret_hash,
            actions,
            repositories,
            expires_at,
        })
        .await?;
    Ok((pat, secret.expose().to_owned()))
}

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

// ---------------------------------------------------------------------------
// Repositories
