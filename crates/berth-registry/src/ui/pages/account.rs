//! The account page (`/ui/account`): the signed-in user's personal access
//! tokens (create, with the secret shown once; revoke), password change,
//! organisations. Every change is the `/api/v1/user/...` handler's.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{accept, refused, render, see_other, sign_in_first};
use crate::http::admin::handlers;
use crate::http::router::AppState;
use crate::policy::{self, AccountDenial};
use crate::ui::api;
use crate::ui::session::{self, Visitor};
use crate::ui::view::{self, Chrome, Notice};

struct TokenRow {
    name: String,
    actions: String,
    repositories: String,
    expires: String,
    expired: bool,
    last_used: String,
}

struct NewSecret {
    name: String,
    secret: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    chrome: Chrome,
    name: String,
    host: String,
    via_token: Option<String>,
    new_secret: Option<NewSecret>,
    tokens: Vec<TokenRow>,
    can_change_password: bool,
    password_note: String,
    orgs: Vec<(String, String)>,
}

/// `GET /ui/account`.
pub async fn get(State(app): State<AppState>, visitor: Visitor) -> Response {
    show(&app, &visitor, StatusCode::OK, None, None).await
}

async fn show(
    app: &AppState,
    visitor: &Visitor,
    status: StatusCode,
    notice: Option<Notice>,
    new_secret: Option<NewSecret>,
) -> Response {
    let Some(caller) = visitor.caller.clone() else {
        return sign_in_first(visitor);
    };
    let principal = caller.principal.clone();
    let listed = api::call(handlers::list_own_tokens(State(app.clone()), caller)).await;
    let tokens = match listed {
        Ok(answer) => answer["tokens"]
            .as_array()
            .into_iter()
            .flatten()
            .map(token_row)
            .collect(),
        Err(e) => return refused(visitor, &e),
    };
    let password = policy::change_own_password(&principal);
    let password_note = match &password {
        Ok(()) => String::new(),
        Err(AccountDenial::Robot) => "A robot account has no password.".to_owned(),
        Err(_) => "Signed in with a personal access token, you cannot change the password: \
                   sign in with the password to change it."
            .to_owned(),
    };
    let page = AccountPage {
        chrome: Chrome::new(visitor, "Account").with_notice(notice),
        host: view::registry_host(&app.registry.config.public_url),
        via_token: principal.token.as_ref().map(|t| t.name.clone()),
        new_secret,
        tokens,
        can_change_password: password.is_ok(),
        password_note,
        orgs: principal
            .memberships
            .iter()
            .map(|(org, role)| (org.clone(), role.as_str().to_owned()))
            .collect(),
        name: principal.name.clone(),
    };
    render(visitor, status, &page)
}

fn token_row(token: &Value) -> TokenRow {
    let list = |v: &Value| -> String {
        v.as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    let repositories = list(&token["repositories"]);
    TokenRow {
        name: token["name"].as_str().unwrap_or("").to_owned(),
        actions: list(&token["actions"]).replace(' ', ", "),
        repositories: if repositories.is_empty() {
            "all you may reach".to_owned()
        } else {
            repositories
        },
        expires: day(&token["expires_at"]),
        expired: token["expired"].as_bool().unwrap_or(false),
        last_used: match token["last_used_at"].as_str() {
            Some(_) => day(&token["last_used_at"]),
            None => "never".to_owned(),
        },
    }
}

/// An RFC 3339 time of an API answer as the pages write times.
fn day(value: &Value) -> String {
    let text = value.as_str().unwrap_or("");
    match (text.get(..10), text.get(11..16)) {
        (Some(day), Some(minute)) => format!("{day} {minute} UTC"),
        _ => text.to_owned(),
    }
}

#[derive(Deserialize)]
pub struct NewTokenForm {
    name: String,
    pull: Option<String>,
    push: Option<String>,
    delete: Option<String>,
    #[serde(default)]
    repositories: String,
    expires_in_days: String,
}

/// `POST /ui/account/tokens`: creates a token (the API's `POST
/// /api/v1/user/tokens`) and shows its secret once.
pub async fn create_token(State(app): State<AppState>, visitor: Visitor, body: Bytes) -> Response {
    let form: NewTokenForm = match accept(&visitor, &body) {
        Ok(form) => form,
        Err(page) => return *page,
    };
    let Some(caller) = visitor.caller.clone() else {
        return sign_in_first(&visitor);
    };
    let Ok(days) = form.expires_in_days.trim().parse::<u32>() else {
        return show(
            &app,
            &visitor,
            StatusCode::BAD_REQUEST,
            Some(Notice::error(
                "Expires in days: give a whole number from 1 to 3650.",
            )),
            None,
        )
        .await;
    };
    let actions: Vec<&str> = [
        ("pull", &form.pull),
        ("push", &form.push),
        ("delete", &form.delete),
    ]
    .into_iter()
    .filter(|(_, on)| on.is_some())
    .map(|(action, _)| action)
    .collect();
    let repositories: Vec<&str> = form
        .repositories
        .split([' ', ',', '\n', '\t', '\r'])
        .filter(|p| !p.is_empty())
        .collect();
    let answer = api::call(handlers::create_own_token(
        State(app.clone()),
        caller,
        api::body(&json!({
            "name": form.name.trim(),
            "actions": actions,
            "repositories": repositories,
            "expires_in_days": days,
        })),
    ))
    .await;
    match answer {
        Ok(created) => {
            let secret = NewSecret {
                name: created["name"].as_str().unwrap_or("").to_owned(),
                secret: created["secret"].as_str().unwrap_or("").to_owned(),
            };
            show(
                &app,
                &visitor,
                StatusCode::CREATED,
                Some(Notice::ok(format!("Token {} created.", secret.name))),
                Some(secret),
            )
            .await
        }
        Err(e) => {
            show(
                &app,
                &visitor,
                e.status,
                Some(Notice::error(e.message)),
                None,
            )
            .await
        }
    }
}

#[derive(Deserialize)]
pub struct RevokeForm {
    name: String,
}

/// `POST /ui/account/tokens/revoke` (the API's `DELETE
/// /api/v1/user/tokens/{name}`): the token stops working at once.
pub async fn revoke_token(State(app): State<AppState>, visitor: Visitor, body: Bytes) -> Response {
    let form: RevokeForm = match accept(&visitor, &body) {
        Ok(form) => form,
        Err(page) => return *page,
    };
    let Some(caller) = visitor.caller.clone() else {
        return sign_in_first(&visitor);
    };
    let answer = api::call(handlers::revoke_own_token(
        State(app.clone()),
        caller,
        Path(form.name.clone()),
    ))
    .await;
    match answer {
        // The session itself may have been signed in with this token: its
        // next request finds it ended.
        Ok(_) => see_other(&visitor, "/ui/account"),
        Err(e) => refused(&visitor, &e),
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    old_password: String,
    new_password: String,
    confirm_password: String,
}

/// `POST /ui/account/password` (the API's `PUT /api/v1/user/password`):
/// every login with the old password ends, this session included.
pub async fn change_password(
    State(app): State<AppState>,
    visitor: Visitor,
    body: Bytes,
) -> Response {
    let form: PasswordForm = match accept(&visitor, &body) {
        Ok(form) => form,
        Err(page) => return *page,
    };
    let Some(caller) = visitor.caller.clone() else {
        return sign_in_first(&visitor);
    };
    if form.new_password != form.confirm_password {
        return show(
            &app,
            &visitor,
            StatusCode::BAD_REQUEST,
            Some(Notice::error(
                "The two new passwords differ; nothing changed. Type the same one twice.",
            )),
            None,
        )
        .await;
    }
    let answer = api::call(handlers::change_own_password(
        State(app.clone()),
        caller,
        api::body(&json!({"old_password": form.old_password, "new_password": form.new_password})),
    ))
    .await;
    match answer {
        Ok(_) => {
            // The store ended this session with the change; clear its cookie.
            let cookie = session::end(&app.registry, &visitor)
                .await
                .unwrap_or_default();
            let mut response = see_other(&visitor, "/ui/sign-in?changed=1");
            if let Ok(value) = axum::http::HeaderValue::from_str(&cookie) {
                response
                    .headers_mut()
                    .append(axum::http::header::SET_COOKIE, value);
            }
            response
        }
        Err(e) if e.status == StatusCode::FORBIDDEN || e.status == StatusCode::BAD_REQUEST => {
            show(
                &app,
                &visitor,
                e.status,
                Some(Notice::error(e.message)),
                None,
            )
            .await
        }
        Err(e) => refused(&visitor, &e),
    }
}
