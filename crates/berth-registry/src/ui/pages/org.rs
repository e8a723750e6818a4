//! The organisation page (`/ui/orgs/{org}`): its members with their roles
//! and its robot accounts, for its members; adding, re-roling and removing
//! members and creating and deleting robots, for its owners. Every read
//! and change is the `/api/v1/orgs/{org}/...` handler's.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{accept, refused, render, see_other, sign_in_first};
use crate::http::admin::handlers;
use crate::http::router::AppState;
use crate::policy;
use crate::ui::api;
use crate::ui::session::Visitor;
use crate::ui::view::{Chrome, Notice};

struct NewSecret {
    name: String,
    secret: String,
}

#[derive(Template)]
#[template(path = "org.html")]
struct OrgPage {
    chrome: Chrome,
    org: String,
    owner: bool,
    roles: [&'static str; 3],
    members: Vec<(String, String)>,
    robots: Vec<String>,
    new_secret: Option<NewSecret>,
}

/// `GET /ui/orgs/{org}`.
pub async fn get(
    State(app): State<AppState>,
    visitor: Visitor,
    Path(org): Path<String>,
) -> Response {
    show(&app, &visitor, &org, StatusCode::OK, None, None).await
}

async fn show(
    app: &AppState,
    visitor: &Visitor,
    org: &str,
    status: StatusCode,
    notice: Option<Notice>,
    new_secret: Option<NewSecret>,
) -> Response {
    let Some(caller) = visitor.caller.clone() else {
        return sign_in_first(visitor);
    };
    let owner = policy::manage_org(&caller.principal, org).is_ok();
    let members = api::call(handlers::list_members(
        State(app.clone()),
        caller.clone(),
        Path(org.to_owned()),
        RawQuery(None),
    ))
    .await;
    let robots = api::call(handlers::list_robots(
        State(app.clone()),
        caller,
        Path(org.to_owned()),
        RawQuery(None),
    ))
    .await;
    let (members, robots) = match (members, robots) {
        (Ok(members), Ok(robots)) => (members, robots),
        (Err(e), _) | (_, Err(e)) => return refused(visitor, &e),
    };
    let page = OrgPage {
        chrome: Chrome::new(visitor, format!("Organisation {org}")).with_notice(notice),
        org: org.to_owned(),
        owner,
        roles: ["member", "maintainer", "owner"],
        members: members["members"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                (
                    m["name"].as_str().unwrap_or("").to_owned(),
                    m["role"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect(),
        robots: robots["robots"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str().map(str::to_owned))
            .collect(),
        new_secret,
    };
    render(visitor, status, &page)
}

#[derive(Deserialize)]
pub struct MemberForm {
    user: String,
    role: Option<String>,
}

/// `POST /ui/orgs/{org}/members`: adds a member or sets a role.
pub async fn set_member(
    State(app): State<AppState>,
    visitor: Visitor,
    Path(org): Path<String>,
    body: Bytes,
) -> Response {
    let form: MemberForm = match accept(&visitor, &body) {
        Ok(form) => form,
        Err(page) => return *page,
    };
    let Some(caller) = visitor.caller.clone() else {
        return sign_in_first(&visitor);
    };
    let role = form.role.unwrap_or_else(|| "member".to_owned());
    let user = form.user.trim().to_owned();
    let answer = api::call(handlers::set_member(
        State(app.clone()),
        caller,
        Path((org.clone(), user.clone())),
        api::body(&json!({"role": role})),
    ))
    .await;
    match answer {
        Ok(_) => {
            show(
                &app,
                &visitor,
                &org,
                StatusCode::OK,
                Some(Notice::ok(format!("{user} is now a {role} of {org}."))),
                None,
            )
            .await
        }
        Err(e) if e.status != StatusCode::FORBIDDEN => {
            show(
                &app,
                &visitor,
                &org,
                e.status,
                Some(Notice::error(e.message)),
                None,
            )
            .await
        }
        Err(e) => refused(&visitor, &e),
    }
}

#[derive(Deserialize)]
pub struct RemoveForm {
    user: String,
}

/// `POST /ui/orgs/{org}/members/remove`.
pub async fn remove_member(
    State(app): State<AppState>,
    visitor: Visitor,
    Path(org): Path<String>,
    body: Bytes,
) -> Response {
    let form: RemoveForm = match accept(&visitor, &body) {
        Ok(form) => form,
        Err(page) => return *page,
    };
    let Some(caller) = visitor.caller.clone() else {
        return sign_in_first(&visitor);
    };
    let answer = api::call(handlers::remove_member(
        State(app.clone()),
        caller,
        Path((org.clone(), form.user.clone())),
    ))
    .await;
    match answer {
        Ok(_) => see_other(&visitor, &format!("/ui/orgs/{org}")),
        Err(e) if e.status != StatusCode::FORBIDDEN => {
            show(
                &app,
                &visitor,
                &org,
                e.status,
                Some(Notice::error(e.message)),
                None,
            )
            .await
        }
        Err(e) => refused(&visitor, &e),
    }
}

#[derive(Deserialize)]
pub struct RobotForm {
    name: String,
    pull: Option<String>,
    push: Option<String>,
    delete: Option<String>,
    expires_in_days: String,
}

/// `POST /ui/orgs/{org}/robots`: a robot account, its token's secret shown once.
pub async fn create_robot(
    State(app): State<AppState>,
    visitor: Visitor,
    Path(org): Path<String>,
    body: Bytes,
) -> Response {
    let form: RobotForm = match accept(&visitor, &body) {
        Ok(form) => form,
        Err(page) => return *page,
    };
    let Some(caller) = visitor.caller.clone() else {
        return sign_in_first(&visitor);
    };
    let Ok(days) = form.expires_in_days.trim().parse::<u32>() else {
        let notice = Notice::error("Token expires in days: give a whole number from 1 to 3650.");
        return show(
            &app,
            &visitor,
            &org,
            StatusCode::BAD_REQUEST,
            Some(notice),
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
    let answer = api::call(handlers::create_robot(
        State(app.clone()),
        caller,
        Path(org.clone()),
        api::body(&json!({"name": form.name.trim(), "actions": actions, "expires_in_days": days})),
    ))
    .await;
    match answer {
        Ok(created) => {
            let secret = NewSecret {
                name: created["name"].as_str().unwrap_or("").to_owned(),
                secret: created["token"]["secret"].as_str().unwrap_or("").to_owned(),
            };
            let notice = Notice::ok(format!("Robot {} created.", secret.name));
            show(
                &app,
                &visitor,
                &org,
                StatusCode::CREATED,
                Some(notice),
                Some(secret),
            )
            .await
        }
        Err(e) if e.status != StatusCode::FORBIDDEN => {
            show(
                &app,
                &visitor,
                &org,
                e.status,
                Some(Notice::error(e.message)),
                None,
            )
            .await
        }
        Err(e) => refused(&visitor, &e),
    }
}

#[derive(Deserialize)]
pub struct DeleteRobotForm {
    name: String,
}

/// `POST /ui/orgs/{org}/robots/delete`: the robot and its tokens, at once.
pub async fn delete_robot(
    State(app): State<AppState>,
    visitor: Visitor,
    Path(org): Path<String>,
    body: Bytes,
) -> Response {
    let form: DeleteRobotForm = match accept(&visitor, &body) {
        Ok(form) => form,
        Err(page) => return *page,
    };
    let Some(caller) = visitor.caller.clone() else {
        return sign_in_first(&visitor);
    };
    let answer = api::call(handlers::delete_robot(
        State(app.clone()),
        caller,
        Path((org.clone(), form.name.clone())),
    ))
    .await;
    match answer {
        Ok(_) => see_other(&visitor, &format!("/ui/orgs/{org}")),
        Err(e) if e.status != StatusCode::FORBIDDEN => {
            show(
                &app,
                &visitor,
                &org,
                e.status,
                Some(Notice::error(e.message)),
                None,
            )
            .await
        }
        Err(e) => refused(&visitor, &e),
    }
}
