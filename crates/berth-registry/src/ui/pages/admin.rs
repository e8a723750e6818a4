//! The administration page (`/ui/admin`, administrators only): users
//! (list, create), organisations (links to their pages), token signing keys (the active one, rotation), storage
//! used per namespace with quotas. Every read and change is the
//! `/api/v1/...` handler's.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{accept, refused, render, sign_in_first};
use crate::http::admin::{Admin, handlers};
use crate::http::router::AppState;
use crate::ui::api;
use crate::ui::session::Visitor;
use crate::ui::view::{self, Chrome, Notice};

struct UsageRow {
    namespace: String,
    bytes: String,
    blobs: i64,
    quota: String,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    chrome: Chrome,
    users: Vec<(String, &'static str)>,
    next_users: Option<String>,
    orgs: Vec<String>,
    keys: Vec<(String, String)>,
    keys_note: String,
    stored: String,
    usage: Vec<UsageRow>,
}

#[derive(Deserialize, Default)]
pub struct Params {
    after: Option<String>,
}

/// `GET /ui/admin[?after=USER]`.
pub async fn get(
    State(app): State<AppState>,
    visitor: Visitor,
    RawQuery(raw): RawQuery,
) -> Response {
    let params: Params = super::query(raw.as_deref());
    show(
        &app,
        &visitor,
        params.after.as_deref(),
        StatusCode::OK,
        None,
    )
    .await
}

/// The visitor as an administrator, or the page that refuses them.
fn admin(visitor: &Visitor) -> Result<Admin, Box<Response>> {
    let Some(caller) = &visitor.caller else {
        return Err(Box::new(sign_in_first(visitor)));
    };
    caller
        .admin()
        .map_err(|e| Box::new(refused(visitor, &e.into())))
}

async fn show(
    app: &AppState,
    visitor: &Visitor,
    after: Option<&str>,
    status: StatusCode,
    notice: Option<Notice>,
) -> Response {
    let a = match admin(visitor) {
        Ok(a) => a,
        Err(page) => return *page,
    };
    let query = after.map(|after| {
        format!(
            "last={}",
            percent_encoding::utf8_percent_encode(after, percent_encoding::NON_ALPHANUMERIC)
        )
    });
    let again = || Admin {
        name: a.name.clone(),
        client: a.client,
    };
    let users = match api::call(handlers::list_users(
        State(app.clone()),
        again(),
        RawQuery(query),
    ))
    .await
    {
        Ok(users) => users,
        Err(e) => return refused(visitor, &e),
    };
    let users: Vec<(String, &'static str)> = users["users"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| {
            let kind = if u["admin"].as_bool() == Some(true) {
                "administrator"
            } else if !u["robot_of"].is_null() {
                "robot"
            } else {
                "user"
            };
            (u["name"].as_str().unwrap_or("").to_owned(), kind)
        })
        .collect();
    let next_users = (users.len() >= app.registry.config.max_page as usize)
        .then(|| users.last())
        .flatten()
        .map(|(last, _)| {
            format!(
                "/ui/admin?after={}",
                percent_encoding::utf8_percent_encode(last, percent_encoding::NON_ALPHANUMERIC)
            )
        });
    let orgs = match api::call(handlers::list_orgs(
        State(app.clone()),
        again(),
        RawQuery(None),
    ))
    .await
    {
        Ok(orgs) => orgs["orgs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["name"].as_str().map(str::to_owned))
            .collect(),
        Err(e) => return refused(visitor, &e),
    };
    let (keys, keys_note) = match api::call(handlers::get_keys(State(app.clone()), again())).await {
        Ok(answer) => (
            answer["keys"]
                .as_array()
                .into_iter()
                .flatten()
                .map(key_row)
                .collect(),
            String::new(),
        ),
        Err(e) => (Vec::new(), e.message),
    };
    let usage = match api::call(handlers::get_usage(
        State(app.clone()),
        again(),
        RawQuery(None),
    ))
    .await
    {
        Ok(usage) => usage,
        Err(e) => return refused(visitor, &e),
    };
    let page = AdminPage {
        chrome: Chrome::new(visitor, "Administration").with_notice(notice),
        users,
        next_users,
        orgs,
        keys,
        keys_note,
        stored: format!(
            "{} in {} blobs stored.",
            view::bytes(usage["stored"]["bytes"].as_i64().unwrap_or(0)),
            usage["stored"]["blobs"].as_i64().unwrap_or(0)
        ),
        usage: usage["namespaces"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| UsageRow {
                namespace: n["namespace"].as_str().unwrap_or("").to_owned(),
                bytes: view::bytes(n["bytes"].as_i64().unwrap_or(0)),
                blobs: n["blobs"].as_i64().unwrap_or(0),
                quota: n["quota"]
                    .as_i64()
                    .map(view::bytes)
                    .unwrap_or_else(|| "none".to_owned()),
            })
            .collect(),
    };
    render(visitor, status, &page)
}

fn key_row(key: &Value) -> (String, String) {
    let kid = key["kid"].as_str().unwrap_or("").to_owned();
    let state = if key["active"].as_bool() == Some(true) {
        "active: signs new tokens".to_owned()
    } else {
        match key["retirable_at"].as_str() {
            Some(at) => format!("verifies tokens it signed; may be retired from {at}"),
            None => "verifies tokens it signed".to_owned(),
        }
    };
    (kid, state)
}

#[derive(Deserialize)]
pub struct NewUserForm {
    name: String,
    password: String,
    admin: Option<String>,
}

/// `POST /ui/admin/users` (the API's `POST /api/v1/users`).
pub async fn create_user(State(app): State<AppState>, visitor: Visitor, body: Bytes) -> Response {
    let form: NewUserForm = match accept(&visitor, &body) {
        Ok(form) => form,
        Err(page) => return *page,
    };
    let a = match admin(&visitor) {
        Ok(a) => a,
        Err(page) => return *page,
    };
    let name = form.name.trim().to_owned();
    let answer = api::call(handlers::create_user(
        State(app.clone()),
        a,
        api::body(&json!({"name": name, "password": form.password, "admin": form.admin.is_some()})),
    ))
    .await;
    let (status, notice) = match answer {
        Ok(_) => (
            StatusCode::CREATED,
            Notice::ok(format!("User {name} created.")),
        ),
        Err(e) => (e.status, Notice::error(e.message)),
    };
    show(&app, &visitor, None, status, Some(notice)).await
}

/// `POST /ui/admin/keys/rotate` (the API's `POST /api/v1/keys/rotate`).
pub async fn rotate_keys(State(app): State<AppState>, visitor: Visitor, body: Bytes) -> Response {
    if let Err(page) = accept::<super::NoFields>(&visitor, &body) {
        return *page;
    }
    let a = match admin(&visitor) {
        Ok(a) => a,
        Err(page) => return *page,
    };
    let answer = api::call(handlers::rotate_keys(State(app.clone()), a)).await;
    let (status, notice) = match answer {
        Ok(rotated) => (
            StatusCode::OK,
            Notice::ok(format!(
                "New tokens are signed with key {}.",
                rotated["kid"].as_str().unwrap_or("?")
            )),
        ),
        Err(e) => (e.status, Notice::error(e.message)),
    };
    show(&app, &visitor, None, status, Some(notice)).await
}
