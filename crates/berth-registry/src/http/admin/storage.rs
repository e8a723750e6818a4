//! `/api/v1/gc`, `/api/v1/usage`, `/api/v1/quotas`: the garbage collector on
//! demand, the bytes each namespace and repository holds, namespace quotas.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use berth_core::name::RepositoryName;
use serde::Deserialize;
use serde_json::json;

use super::{Admin, ApiError, json_response, no_content, read_json};
use crate::error::RegistryError;
use crate::gc::collector;
use crate::http::router::AppState;
use crate::meta::gc_sql::GcSql;

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Meta(e) => e.into(),
            other => Self::internal(&other),
        }
    }
}

/// One `true`/`false` parameter of a query that takes only that one.
fn flag(query: Option<&str>, name: &str) -> Result<bool, ApiError> {
    let mut on = false;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, "true"));
        if key != name {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter `{key}`; this endpoint takes `{name}=true`"
            )));
        }
        on = match value {
            "true" => true,
            "false" => false,
            other => {
                return Err(ApiError::bad_request(format!(
                    "{name}={other} is neither `true` nor `false`"
                )));
            }
        };
    }
    Ok(on)
}

/// `POST /api/v1/gc[?dry_run=true]`: one collection now (retention
/// policies, then every due review), answered with its report when it ends.
pub(super) async fn run_gc(
    State(app): State<AppState>,
    admin: Admin,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let dry_run = flag(query.as_deref(), "dry_run")?;
    audit!(
        admin,
        "gc.run",
        dry_run,
        "admin: garbage collection started"
    );
    let report = collector::collect(&app.registry, dry_run).await?;
    let body = serde_json::to_value(&report).map_err(|e| ApiError::internal(&e))?;
    Ok(json_response(StatusCode::OK, &body))
}

/// A namespace as the API names it: the first component of repository names.
fn namespace(text: &str) -> Result<String, ApiError> {
    match RepositoryName::parse(text) {
        Ok(name) if !text.contains('/') => Ok(name.to_string()),
        _ => Err(ApiError::bad_request(format!(
            "{text:?} is not a namespace: give the first component of repository names, e.g. `acme` for acme/app"
        ))),
    }
}

/// `GET /api/v1/usage[?namespace=NS]`: bytes held by each namespace (each
/// distinct blob once) with its quota, and by each repository (of `NS`).
pub(crate) async fn get_usage(
    State(app): State<AppState>,
    _admin: Admin,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut only = None;
    for pair in query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("namespace", value)) => only = Some(namespace(value)?),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter `{pair}`; this endpoint takes `namespace=NS`"
                )));
            }
        }
    }
    let sql = GcSql::new(app.registry.db.clone());
    let quotas = sql.quotas().await?;
    let quota_of = |ns: &str| {
        quotas
            .iter()
            .find(|(name, _)| name == ns)
            .map(|(_, bytes)| *bytes)
    };
    let mut namespaces: Vec<serde_json::Value> = Vec::new();
    let mut seen = Vec::new();
    for usage in sql.usage_by_namespace().await? {
        if only.as_deref().is_some_and(|ns| ns != usage.name) {
            continue;
        }
        namespaces.push(json!({
            "namespace": usage.name,
            "bytes": usage.bytes,
            "blobs": usage.blobs,
            "quota": quota_of(&usage.name),
        }));
        seen.push(usage.name);
    }
    // Namespaces with a quota and nothing stored yet.
    for (name, bytes) in &quotas {
        if !seen.contains(name) && only.as_deref().is_none_or(|ns| ns == name) {
            namespaces.push(json!({"namespace": name, "bytes": 0, "blobs": 0, "quota": bytes}));
        }
    }
    namespaces.sort_by(|a, b| a["namespace"].as_str().cmp(&b["namespace"].as_str()));
    let repositories: Vec<serde_json::Value> = sql
        .usage_by_repository(only.as_deref())
        .await?
        .into_iter()
        .map(|u| json!({"repository": u.name, "bytes": u.bytes, "blobs": u.blobs}))
        .collect();
    let (blobs, bytes) = sql.stored().await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "stored": {"blobs": blobs, "bytes": bytes},
            "namespaces": namespaces,
            "repositories": repositories,
            "gc_queue_length": sql.queue_length().await?,
        }),
    ))
}

/// `GET /api/v1/quotas`: every namespace quota.
pub(super) async fn list_quotas(
    State(app): State<AppState>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    let sql = GcSql::new(app.registry.db.clone());
    let quotas: Vec<serde_json::Value> = sql
        .quotas()
        .await?
        .into_iter()
        .map(|(namespace, bytes)| json!({"namespace": namespace, "bytes": bytes}))
        .collect();
    Ok(json_response(StatusCode::OK, &json!({"quotas": quotas})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaBody {
    bytes: u64,
}

/// `PUT /api/v1/quotas/{namespace}` `{"bytes": N}`: sets the quota (pushes
/// that would take the namespace past it are refused with 403 `DENIED`).
pub(super) async fn set_quota(
    State(app): State<AppState>,
    admin: Admin,
    Path(text): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let ns = namespace(&text)?;
    let body: QuotaBody = read_json(body).await?;
    let sql = GcSql::new(app.registry.db.clone());
    sql.set_quota(&ns, body.bytes).await?;
    let used = sql.namespace_usage(&ns).await?;
    audit!(admin, "quota.set", namespace = %ns, bytes = body.bytes, "admin: namespace quota set");
    Ok(json_response(
        StatusCode::OK,
        &json!({"namespace": ns, "bytes": body.bytes, "used": used}),
    ))
}

/// `DELETE /api/v1/quotas/{namespace}`: removes the quota; 404 when it had none.
pub(super) async fn remove_quota(
    State(app): State<AppState>,
    admin: Admin,
    Path(text): Path<String>,
) -> Result<Response, ApiError> {
    let ns = namespace(&text)?;
    let sql = GcSql::new(app.registry.db.clone());
    if !sql.remove_quota(&ns).await? {
        return Err(ApiError::not_found(
            "NOT_FOUND",
            format!("namespace {ns} has no quota"),
        ));
    }
    audit!(admin, "quota.remove", namespace = %ns, "admin: namespace quota removed");
    Ok(no_content())
}
