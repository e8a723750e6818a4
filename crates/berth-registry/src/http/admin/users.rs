//! `/api/v1/users`: list, create (with a password or an imported hash) and
//! delete users, and set their passwords (administrators).

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{
    Admin, ApiError, MIN_PASSWORD_CHARS, apply_password, find_user, json_response, listing,
    no_content, page, read_json, settle_deletion,
};
use crate::http::router::AppState;
use crate::identity::password::{hash_password, parse_htpasswd};
use crate::identity::{IdentityError, OwnedRepositories};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUserBody {
    name: String,
    password: Option<String>,
    password_hash: Option<String>,
    #[serde(default)]
    admin: bool,
}

/// `POST /api/v1/users`: a user with a password (hashed here with argon2id) or
/// an imported bcrypt/argon2id hash.
pub(crate) async fn create_user(
    State(app): State<AppState>,
    admin: Admin,
    body: Body,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    let body: NewUserBody = read_json(body).await?;
    crate::identity::validate_name(&body.name)?;
    super::refuse_proxy_namespace(r, &body.name)?;
    let (hash, imported) = password_hash(body.password, body.password_hash).await?;
    let user = match r
        .identity
        .create_user(&body.name, Some(&hash), body.admin)
        .await
    {
        Ok(user) => user,
        Err(IdentityError::NameTaken(name)) => {
            let is_user = r.identity.user_by_name(&name).await?.is_some();
            return Err(if is_user {
                ApiError::conflict(
                    "USER_EXISTS",
                    format!(
                        "user `{name}` already exists; delete it first with `berth admin user delete {name}` to recreate it"
                    ),
                )
            } else {
                ApiError::conflict(
                    "NAME_TAKEN",
                    format!(
                        "the name `{name}` is an organisation's (users and organisations share one namespace); choose another"
                    ),
                )
            });
        }
        Err(e) => return Err(e.into()),
    };
    audit!(admin, "user.create", user = %user.name, is_admin = user.is_admin, imported_hash = imported, "admin: user created");
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"name": user.name, "admin": user.is_admin}),
    ))
}

/// `GET /api/v1/users?n=&last=`: every user and robot, by name.
pub(crate) async fn list_users(
    State(app): State<AppState>,
    _admin: Admin,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    let (n, last) = page(r, query.as_deref())?;
    let users = r.identity.list_users(last.as_deref(), n).await?;
    let entries: Vec<serde_json::Value> = users
        .iter()
        .map(|u| json!({"name": u.name, "admin": u.is_admin, "robot_of": u.robot_of}))
        .collect();
    let names: Vec<String> = users.into_iter().map(|u| u.name).collect();
    Ok(listing(
        &json!({"users": entries}),
        "/api/v1/users",
        "",
        n,
        &names,
    ))
}

/// Accepts a bcrypt hash as `htpasswd -B` writes it, or an argon2id PHC string.
pub(super) fn check_imported_hash(hash: &str) -> Result<(), ApiError> {
    let refuse = |why: &str| {
        ApiError::bad_request(format!(
            "`password_hash` {why}; give a bcrypt hash (`htpasswd -B`, `$2y$...`, 60 characters) \
             or an argon2id PHC string (`$argon2id$v=19$...`), or send `password` instead"
        ))
    };
    if hash.chars().any(char::is_control) {
        return Err(refuse("holds control characters"));
    }
    if hash.starts_with("$argon2id$") {
        return match argon2::password_hash::phc::PasswordHash::new(hash) {
            Ok(_) => Ok(()),
            Err(_) => Err(refuse("is not a well-formed argon2id PHC string")),
        };
    }
    if ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
        // The htpasswd reader knows which bcrypt hashes could ever verify.
        return match parse_htpasswd(&format!("user:{hash}")) {
            Ok(_) => Ok(()),
            Err(_) => Err(refuse("is a malformed bcrypt hash")),
        };
    }
    Err(refuse("uses a scheme berth does not accept"))
}

/// `DELETE /api/v1/users/{user}[?delete_repositories=true]`: the user with its
/// memberships and tokens, whose issued registry tokens stop working at once.
/// A user whose namespace holds repositories is kept (409
/// `OWNS_REPOSITORIES`) unless `delete_repositories=true`: then they go too,
/// in the same transaction, so that a later user of the same name inherits
/// nothing.
pub(super) async fn delete_user(
    State(app): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    let delete_repositories = delete_repositories(query.as_deref())?;
    if name == admin.name {
        return Err(ApiError::conflict(
            "SELF",
            format!(
                "you are logged in as `{name}`: an administrator cannot delete their own account; \
                 log in as another administrator to delete it"
            ),
        ));
    }
    let repositories = if delete_repositories {
        OwnedRepositories::Delete
    } else {
        OwnedRepositories::Keep
    };
    let actor = crate::events::Actor::request(Some(&admin.name), super::request_id(&headers));
    let Some(deleted) = r.identity.delete_user(&name, repositories, &actor).await? else {
        return Err(ApiError::not_found(
            "USER_UNKNOWN",
            format!("there is no user `{name}`; nothing was deleted"),
        ));
    };
    settle_deletion(r, &deleted.staging, true).await;
    audit!(admin, "user.delete", user = %name, repositories = deleted.repositories.len(), "admin: user deleted");
    Ok(no_content())
}

/// `delete_repositories=true|false` (the only parameter) from a query string.
pub(super) fn delete_repositories(query: Option<&str>) -> Result<bool, ApiError> {
    let mut delete = false;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match (key, value) {
            ("delete_repositories", "true") => delete = true,
            ("delete_repositories", "false") => delete = false,
            ("delete_repositories", other) => {
                return Err(ApiError::bad_request(format!(
                    "delete_repositories={other} is neither `true` nor `false`"
                )));
            }
            (other, _) => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter `{other}`; this endpoint takes `delete_repositories=true`"
                )));
            }
        }
    }
    Ok(delete)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: Option<String>,
    password_hash: Option<String>,
}

/// `PUT /api/v1/users/{user}/password`: a new password (hashed here) or an
/// imported hash. The user's logins made with the old one end: its refresh
/// tokens, and the registry tokens issued from the password or from them.
pub(super) async fn set_password(
    State(app): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    let body: PasswordBody = read_json(body).await?;
    let (hash, imported) = password_hash(body.password, body.password_hash).await?;
    let user = find_user(r, &name).await?;
    apply_password(r, &user.name, &hash).await?;
    audit!(admin, "user.password", user = %user.name, imported_hash = imported, "admin: password changed");
    Ok(no_content())
}

/// The hash to store for exactly one of a plain password (at least
/// [`MIN_PASSWORD_CHARS`]; hashed here with argon2id) and an imported hash;
/// whether it was imported.
pub(super) async fn password_hash(
    password: Option<String>,
    password_hash: Option<String>,
) -> Result<(String, bool), ApiError> {
    match (password, password_hash) {
        (Some(password), None) => {
            if password.chars().count() < MIN_PASSWORD_CHARS {
                return Err(ApiError::bad_request(format!(
                    "the password is shorter than {MIN_PASSWORD_CHARS} characters; choose a longer one"
                )));
            }
            let hash = tokio::task::spawn_blocking(move || hash_password(&password))
                .await
                .map_err(|e| ApiError::internal(&e))??;
            Ok((hash, false))
        }
        (None, Some(hash)) => {
            check_imported_hash(&hash)?;
            Ok((hash, true))
        }
        _ => Err(ApiError::bad_request(
            "give exactly one of `password` (hashed by the registry) and `password_hash` \
             (a bcrypt `$2y$` or argon2id `$argon2id$` hash, as from htpasswd -B)",
        )),
    }
}
