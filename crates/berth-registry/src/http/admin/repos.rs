//! `/api/v1/repositories`: repositories with their visibility (those the
//! caller manages), public or private (the namespace's user or owners), and
//! deleted whole (administrators).

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use berth_core::name::RepositoryName;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Admin, ApiError, Caller, json_response, listing, no_content, page, read_json,
    reload_revocations, settle_deletion,
};
use crate::http::query_param;
use crate::http::router::AppState;
use crate::policy;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VisibilityBody {
    repository: String,
    visibility: String,
}

/// A repository name from a body or a query (400 `NAME_INVALID` otherwise).
fn repository_name(name: &str) -> Result<RepositoryName, ApiError> {
    RepositoryName::parse(name)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "NAME_INVALID", e.to_string()))
}

/// `PUT /api/v1/repositories/visibility`: public (anyone may pull) or
/// private. Policy is asked before the repository is looked up: a caller who
/// may not manage it is refused alike whether it exists or not.
pub(crate) async fn set_visibility(
    State(app): State<AppState>,
    caller: Caller,
    body: Body,
) -> Result<Response, ApiError> {
    let body: VisibilityBody = read_json(body).await?;
    let name = repository_name(&body.repository)?;
    caller.ask(policy::set_visibility(&caller.principal, &name))?;
    let public = match body.visibility.as_str() {
        "public" => true,
        "private" => false,
        other => {
            return Err(ApiError::bad_request(format!(
                "visibility `{other}` is unknown; use `public` or `private`"
            )));
        }
    };
    if !app
        .registry
        .meta
        .set_repository_public(&name, public)
        .await?
    {
        return Err(ApiError::not_found(
            "NAME_UNKNOWN",
            format!(
                "repository `{name}` does not exist; push to it first, then set its visibility"
            ),
        ));
    }
    reload_revocations(&app.registry).await;
    audit!(caller, "repository.visibility", repository = %name, visibility = %body.visibility, "repository visibility set");
    Ok(json_response(
        StatusCode::OK,
        &json!({"repository": name.as_str(), "visibility": body.visibility}),
    ))
}

/// `GET /api/v1/repositories[?namespace=NS][&n=&last=]`: the repositories
/// whose visibility the caller manages (all for an administrator), with it.
pub(super) async fn list_repositories(
    State(app): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    let (n, last) = page(r, query.as_deref())?;
    let asked = query_param(query.as_deref(), "namespace").filter(|ns| !ns.is_empty());
    if let Some(namespace) = &asked {
        crate::identity::validate_name(namespace)?;
    }
    let namespaces = caller.decide(policy::repository_listing(
        &caller.principal,
        asked.as_deref(),
    ))?;
    let repositories = r
        .meta
        .list_repository_visibility(last.as_deref(), n, namespaces.as_deref())
        .await?;
    let entries: Vec<Value> = repositories
        .iter()
        .map(|(name, public)| {
            json!({"name": name, "visibility": if *public { "public" } else { "private" }})
        })
        .collect();
    let names: Vec<String> = repositories.into_iter().map(|(name, _)| name).collect();
    let extra = asked
        .map(|ns| format!("namespace={ns}"))
        .unwrap_or_default();
    Ok(listing(
        &json!({"repositories": entries}),
        "/api/v1/repositories",
        &extra,
        n,
        &names,
    ))
}

/// `DELETE /api/v1/repositories?repository=NAME`: the repository whole
/// (manifests, tags, blob links, upload sessions); tokens already issued on
/// it stop working at once. Blob bytes no repository links stay for a
/// garbage collector.
pub(super) async fn delete_repository(
    State(app): State<AppState>,
    admin: Admin,
    RawQuery(query): RawQuery,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    let Some(name) = query_param(query.as_deref(), "repository") else {
        return Err(ApiError::bad_request(
            "name the repository to delete: `DELETE /api/v1/repositories?repository=acme/app`",
        ));
    };
    let name = repository_name(&name)?;
    let actor = crate::events::Actor::request(Some(&admin.name), super::request_id(&headers));
    let Some(deleted) = r.meta.delete_repository(&name, &actor).await? else {
        return Err(ApiError::not_found(
            "NAME_UNKNOWN",
            format!("repository `{name}` does not exist; nothing was deleted"),
        ));
    };
    settle_deletion(r, &deleted.staging, false).await;
    audit!(admin, "repository.delete", repository = %name, "admin: repository deleted");
    Ok(no_content())
}
