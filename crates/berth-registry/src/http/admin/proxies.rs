//! `/api/v1/proxies`: the pull-through cache namespaces (`proxy/`): list
//! every one in force (configured and stored), add and remove stored ones.
//! Administrators only. The API never takes an upstream password: a stored
//! namespace names a password file on the registry's machines, read by each
//! node, so that no secret enters the database.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Admin, ApiError, json_response, no_content, read_json};
use crate::Registry;
use crate::clock::now_unix;
use crate::http::router::AppState;
use crate::meta::proxies_sql;
use crate::proxy::{Proxy, ProxySettings, ProxyText};

/// A namespace to add, as `POST /api/v1/proxies` takes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewProxyBody {
    name: String,
    url: String,
    #[serde(default)]
    access: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password_file: Option<String>,
    #[serde(default)]
    tag_ttl_secs: Option<u64>,
}

/// `GET /api/v1/proxies`: every namespace in force, with its source
/// (`config` or `api`) and counters.
pub(super) async fn list_proxies(
    State(app): State<AppState>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    let list = app.registry.proxies.list();
    let proxies: Vec<Value> = list.iter().map(|p| describe(p)).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "proxies": proxies }),
    ))
}

fn describe(proxy: &Proxy) -> Value {
    let s = &proxy.settings;
    let c = &proxy.counters;
    let n = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    json!({
        "name": s.name,
        "url": s.origin(),
        "access": s.access.as_str(),
        "username": s.credential.as_ref().map(|(user, _)| user),
        "tag_ttl_secs": s.tag_ttl.as_secs(),
        "source": proxy.source.as_str(),
        "fetched_bytes": n(&c.bytes_fetched),
    })
}

/// `POST /api/v1/proxies`: stores a namespace (201 with it); every node
/// puts it in force within a few seconds, this one at once.
pub(super) async fn create_proxy(
    State(app): State<AppState>,
    admin: Admin,
    body: Body,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    let body: NewProxyBody = read_json(body).await?;
    let text = ProxyText {
        name: Some(body.name),
        url: Some(body.url),
        access: body.access,
        username: body.username,
        password: None,
        password_file: body.password_file.clone().map(Into::into),
        tag_ttl_secs: body.tag_ttl_secs,
    };
    // Checked here as every node will: the password file is read now.
    let settings = ProxySettings::parse(&text)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "PROXY_INVALID", e))?;
    let name = settings.name.clone();
    if r.proxies.is_configured(&name) {
        return Err(ApiError::conflict(
            "PROXY_EXISTS",
            format!("proxy `{name}` is set in the configuration file; change it there"),
        ));
    }
    if r.identity.namespace_owner(&name).await?.is_some() {
        return Err(ApiError::conflict(
            "NAME_TAKEN",
            format!(
                "the namespace `{name}` belongs to a user or an organisation (users, organisations and caches share one namespace); choose another name"
            ),
        ));
    }
    if !proxies_sql::insert(&r.db, &settings, body.password_file.as_deref(), now_unix()).await? {
        return Err(ApiError::conflict(
            "PROXY_EXISTS",
            format!(
                "proxy `{name}` exists; remove it first with `berth admin proxy remove {name}`"
            ),
        ));
    }
    refresh(r).await?;
    audit!(admin, "proxy.create", proxy = %name, url = %settings.origin(), access = settings.access.as_str(), "admin: proxy namespace added");
    let created = r
        .proxies
        .list()
        .iter()
        .find(|p| p.settings.name == name)
        .map(|p| describe(p))
        .unwrap_or_else(|| json!({ "name": name }));
    Ok(json_response(StatusCode::CREATED, &created))
}

/// `DELETE /api/v1/proxies/{name}`: removes a stored namespace (204). Its
/// cached repositories stay (administrators delete them, or the collector
/// does under a retention policy); a configured one is refused.
pub(super) async fn delete_proxy(
    State(app): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let r = &app.registry;
    if r.proxies.is_configured(&name) {
        return Err(ApiError::conflict(
            "PROXY_CONFIGURED",
            format!(
                "proxy `{name}` is set in the configuration file (or a --proxy flag); remove it there and restart"
            ),
        ));
    }
    if !proxies_sql::delete(&r.db, &name).await? {
        return Err(ApiError::not_found(
            "PROXY_UNKNOWN",
            format!("no proxy namespace is named `{name}`; `berth admin proxy list` shows them"),
        ));
    }
    refresh(r).await?;
    audit!(admin, "proxy.delete", proxy = %name, "admin: proxy namespace removed");
    Ok(no_content())
}

/// Puts the stored namespaces in force on this node now.
async fn refresh(r: &Registry) -> Result<(), ApiError> {
    r.proxies.set_stored(&proxies_sql::list(&r.db).await?);
    Ok(())
}
