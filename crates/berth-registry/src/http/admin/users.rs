//! `/api/v1/users`: create (with a password or an imported hash) and delete users.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{Admin, ApiError, MIN_PASSWORD_CHARS, json_response, no_content, read_json};
use crate::http::router::AppState;
use crate::identity::IdentityError;
use crate::identity::password::{hash_password, parse_htpasswd};

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
pub(super) async fn create_user(
    State(app): State<AppState>,
    admin: Admin,
    body: Body,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    let body: NewUserBody = read_json(body).await?;
    crate::identity::validate_name(&body.name)?;
    let (hash, imported) = match (body.password, body.password_hash) {
        (Some(password), None) => {
            if password.chars().count() < MIN_PASSWORD_CHARS {
                return Err(ApiError::bad_request(format!(
                    "the password is shorter than {MIN_PASSWORD_CHARS} characters; choose a longer one"
                )));
            }
            let hash = tokio::task::spawn_blocking(move || hash_password(&password))
                .await
                .map_err(|e| ApiError::internal(&e))??;
            (hash, false)
        }
        (None, Some(hash)) => {
            check_imported_hash(&hash)?;
            (hash, true)
        }
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of `password` (hashed by the registry) and `password_hash` \
                 (a bcrypt `$2y$` or argon2id `$argon2id$` hash, as from htpasswd -B)",
            ));
        }
    };
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

/// `DELETE /api/v1/users/{user}`: the user with its memberships and tokens.
pub(super) async fn delete_user(
    State(app): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    if name == admin.name {
        return Err(ApiError::conflict(
            "SELF",
            format!(
                "you are logged in as `{name}`: an administrator cannot delete their own account; \
                 log in as another administrator to delete it"
            ),
        ));
    }
    if !app.registry.identity.delete_user(&name).await? {
        return Err(ApiError::not_found(
            "USER_UNKNOWN",
            format!("there is no user `{name}`; nothing was deleted"),
        ));
    }
    // Remembered credential checks must not outlive this change.
    app.registry.authn.forget_remembered();
    audit!(admin, "user.delete", user = %name, "admin: user deleted");
    Ok(no_content())
}

// ---------------------------------------------------------------------------
// Organisations
