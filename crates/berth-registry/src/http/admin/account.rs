//! `/api/v1/user`: who the credentials are, and the caller's own password.

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use berth_core::token::format_rfc3339;
use serde::Deserialize;
use serde_json::{Value, json};

use super::users::password_hash;
use super::{ApiError, Caller, apply_password, json_response, no_content, read_json, too_many};
use crate::auth::authenticate::{AuthnError, Credential};
use crate::clock::now_unix;
use crate::http::router::AppState;
use crate::identity::secret::looks_like_pat;
use crate::policy::{self, Subject};

/// `GET /api/v1/user`: the caller as the registry knows them: name,
/// administrator or not, the organisation of a robot, memberships with
/// roles, and the personal access token they authenticated with, if any
/// (never a secret). What `berth` asks to learn whose login it holds (a
/// refresh token names no user).
pub(super) async fn whoami(caller: Caller) -> Result<Response, ApiError> {
    let p = &caller.principal;
    let orgs: Vec<Value> = p
        .memberships
        .iter()
        .map(|(org, role)| json!({"name": org, "role": role.as_str()}))
        .collect();
    let token = p.token.as_ref().map(|t| {
        json!({
            "name": t.name,
            "actions": t.actions.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "repositories": t.repositories,
            "expires_at": format_rfc3339(t.expires_at),
        })
    });
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "name": p.name,
            "admin": p.is_admin,
            "robot_of": p.robot_of,
            "orgs": orgs,
            "token": token,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePasswordBody {
    old_password: String,
    new_password: String,
}

/// `PUT /api/v1/user/password`: the caller's new password, given the old
/// one. Not through a personal access token (`policy::change_own_password`).
/// The old password is checked as a login is, under the same failure limits
/// (a wrong one counts as a failed login of the caller). As an
/// administrator's change does, it ends the logins made with the old one:
/// refresh tokens (the one this request came with included) and the registry
/// tokens issued from them or from the password.
pub(crate) async fn change_own_password(
    State(app): State<AppState>,
    caller: Caller,
    body: Body,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    caller.ask(policy::change_own_password(&caller.principal))?;
    let body: ChangePasswordBody = read_json(body).await?;
    if body.new_password == body.old_password {
        return Err(ApiError::bad_request(
            "the new password is the old one; choose another",
        ));
    }
    // A personal access token in place of the old password is no password.
    let verified = if looks_like_pat(&body.old_password) {
        Err(AuthnError::BadCredentials)
    } else {
        let credential = Credential::Password {
            username: &caller.name,
            password: &body.old_password,
        };
        r.authn
            .authenticate(&credential, caller.client, now_unix())
            .await
    };
    match verified {
        Ok(Subject::User(p)) if p.name == caller.name && p.token.is_none() => {}
        Ok(_) | Err(AuthnError::BadCredentials | AuthnError::IdToken(_)) => {
            tracing::info!(target: "berth::audit", subject = %caller.name, client = %caller.client, "password change refused: wrong old password");
            return Err(ApiError::forbidden(
                "the old password is not right; nothing changed. Give the password you log in \
                 with now",
            ));
        }
        Err(AuthnError::TooManyFailures { retry_after_secs }) => {
            return Err(too_many(retry_after_secs));
        }
        Err(AuthnError::Store(e)) => return Err(e.into()),
    }
    let (hash, _) = password_hash(Some(body.new_password), None).await?;
    apply_password(r, &caller.name, &hash).await?;
    audit!(caller, "user.password.own", user = %caller.name, "own password changed");
    Ok(no_content())
}
