//! The repository page (`/ui/repo/{name}`): its tags newest push first,
//! paginated by push time, with digest, size, platforms, push and pull
//! times; the pull commands to copy; its visibility, and the switch for
//! whom policy lets set it.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use berth_core::name::RepositoryName;
use berth_core::scope::Action;
use serde::Deserialize;
use serde_json::json;

use super::{accept, error_page, missing, refused, render, see_other, sign_in_first};
use crate::Registry;
use crate::http::admin::handlers;
use crate::http::router::AppState;
use crate::meta::browse_sql::{self, RepositoryOverview, TagCursor, TagSummary};
use crate::policy::{self, RepositoryFacts};
use crate::ui::api;
use crate::ui::session::Visitor;
use crate::ui::view::{self, Chrome};

/// Tags on a page.
pub const PAGE: u32 = 50;

#[derive(Deserialize, Default)]
pub struct Params {
    /// The push time of the last tag of the previous page.
    before_time: Option<i64>,
    /// Its name.
    before_name: Option<String>,
}

struct Row {
    name: String,
    digest: String,
    short_digest: String,
    size: String,
    platforms: String,
    pushed: String,
    pulled: String,
    pull: String,
}

#[derive(Template)]
#[template(path = "repository.html")]
struct RepositoryPage {
    chrome: Chrome,
    name: String,
    visibility: &'static str,
    other_visibility: &'static str,
    can_set_visibility: bool,
    tag_count: i64,
    manifest_count: i64,
    pull: Option<Vec<String>>,
    tags: Vec<Row>,
    has_before: bool,
    next: Option<String>,
}

/// The repository `raw` names, when `visitor` may pull it; `None` (the
/// same for a missing and a hidden one) otherwise.
pub(super) async fn visible(
    r: &Registry,
    visitor: &Visitor,
    raw: &str,
) -> Result<Option<(RepositoryName, RepositoryOverview)>, Response> {
    let Ok(name) = RepositoryName::parse(raw) else {
        return Ok(None);
    };
    let overview = browse_sql::repository(&r.db, name.as_str())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "repository page: cannot read the repository");
            error_page(
                visitor,
                StatusCode::SERVICE_UNAVAILABLE,
                "Database unavailable",
                "The registry's database did not answer; try again shortly.",
            )
        })?;
    let facts = overview.as_ref().map(|o| {
        r.proxies.facts(&name).unwrap_or(RepositoryFacts {
            public: o.public,
            proxied: false,
        })
    });
    let may_pull =
        visitor.open || policy::is_allowed(&visitor.subject, &name, facts, &Action::Pull);
    Ok(match overview {
        Some(overview) if may_pull => Some((name, overview)),
        _ => None,
    })
}

/// `GET /ui/repo/{name}[?before_time=&before_name=]`.
pub async fn get(
    State(app): State<AppState>,
    visitor: Visitor,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let params: Params = super::query(query.as_deref());
    show(&app.registry, &visitor, &raw, &params).await
}

async fn show(r: &Registry, visitor: &Visitor, raw: &str, params: &Params) -> Response {
    let (name, overview) = match visible(r, visitor, raw).await {
        Ok(Some(found)) => found,
        Ok(None) => return missing(visitor, "repository"),
        Err(page) => return page,
    };
    let cursor = match (params.before_time, &params.before_name) {
        (Some(pushed_at), Some(name)) => Some(TagCursor {
            pushed_at,
            name: name.clone(),
        }),
        _ => None,
    };
    let mut tags = match browse_sql::tags(&r.db, overview.id, cursor.as_ref(), PAGE + 1).await {
        Ok(tags) => tags,
        Err(e) => {
            tracing::error!(error = %e, "repository page: cannot list tags");
            return error_page(
                visitor,
                StatusCode::SERVICE_UNAVAILABLE,
                "Database unavailable",
                "The registry's database did not answer; try again shortly.",
            );
        }
    };
    let more = tags.len() > PAGE as usize;
    tags.truncate(PAGE as usize);
    let next = match tags.last() {
        Some(last) if more => Some(format!(
            "/ui/repo/{}?before_time={}&before_name={}",
            name,
            last.pushed_at,
            percent_encoding::utf8_percent_encode(&last.name, percent_encoding::NON_ALPHANUMERIC)
        )),
        _ => None,
    };
    let host = view::registry_host(&r.config.public_url);
    let pull = tags
        .first()
        .map(|newest| pull_commands(&host, name.as_str(), &newest.name));
    let can_set_visibility = !visitor.open
        && visitor
            .principal()
            .is_some_and(|p| policy::set_visibility(p, &name).is_ok());
    let page = RepositoryPage {
        chrome: Chrome::new(visitor, name.as_str()),
        visibility: if overview.public { "public" } else { "private" },
        other_visibility: if overview.public { "private" } else { "public" },
        can_set_visibility,
        tag_count: overview.tags,
        manifest_count: overview.manifests,
        pull,
        tags: tags.iter().map(|t| row(&host, name.as_str(), t)).collect(),
        has_before: cursor.is_some(),
        next,
        name: name.as_str().to_owned(),
    };
    render(visitor, StatusCode::OK, &page)
}

/// `docker pull`, `podman pull` and `berth copy` of `name:tag`.
fn pull_commands(host: &str, name: &str, tag: &str) -> Vec<String> {
    let reference = format!("{host}/{name}:{tag}");
    let last = name.rsplit('/').next().unwrap_or(name);
    vec![
        format!("docker pull {reference}"),
        format!("podman pull {reference}"),
        format!("berth copy {reference} oci:./{last}:{tag}"),
    ]
}

fn row(host: &str, name: &str, tag: &TagSummary) -> Row {
    Row {
        pull: format!("docker pull {host}/{name}:{}", tag.name),
        short_digest: view::short_digest(&tag.digest),
        size: view::bytes(tag.size),
        platforms: tag.index.as_deref().map(platforms).unwrap_or_default(),
        pushed: view::time(Some(tag.pushed_at)),
        pulled: view::time(tag.pulled_at),
        digest: tag.digest.clone(),
        name: tag.name.clone(),
    }
}

/// The platforms an index lists (`linux/amd64, linux/arm64/v8`), without
/// the `unknown/unknown` entries build tools add for attestations.
pub(super) fn platforms(index: &[u8]) -> String {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(index) else {
        return String::new();
    };
    let mut found: Vec<String> = Vec::new();
    for entry in value["manifests"].as_array().into_iter().flatten() {
        let Some(platform) = super::manifest::platform(&entry["platform"]) else {
            continue;
        };
        if platform != "unknown/unknown" && !found.contains(&platform) {
            found.push(platform);
        }
    }
    found.join(", ")
}

#[derive(Deserialize)]
pub struct VisibilityForm {
    repository: String,
    visibility: String,
}

/// `POST /ui/visibility`: makes a repository public or private (the API's
/// `PUT /api/v1/repositories/visibility`).
pub async fn set_visibility(
    State(app): State<AppState>,
    visitor: Visitor,
    body: Bytes,
) -> Response {
    let form: VisibilityForm = match accept(&visitor, &body) {
        Ok(form) => form,
        Err(page) => return *page,
    };
    let Some(caller) = visitor.caller.clone() else {
        return sign_in_first(&visitor);
    };
    let answer = api::call(handlers::set_visibility(
        State(app.clone()),
        caller,
        api::body(&json!({"repository": form.repository, "visibility": form.visibility})),
    ))
    .await;
    match answer {
        Ok(_) => see_other(&visitor, &format!("/ui/repo/{}", form.repository)),
        Err(e) => refused(&visitor, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_lists_its_platforms_once_without_attestations() {
        let index = br#"{"manifests":[
            {"platform":{"os":"linux","architecture":"amd64"}},
            {"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
            {"platform":{"os":"unknown","architecture":"unknown"}},
            {"platform":{"os":"linux","architecture":"amd64"}},
            {"digest":"no platform"}]}"#;
        assert_eq!(platforms(index), "linux/amd64, linux/arm64/v8");
        assert_eq!(platforms(b"not json"), "");
    }

    #[test]
    fn pull_commands_name_the_registry_host() {
        assert_eq!(
            pull_commands("r.example.com", "acme/app", "1.0"),
            vec![
                "docker pull r.example.com/acme/app:1.0",
                "podman pull r.example.com/acme/app:1.0",
                "berth copy r.example.com/acme/app:1.0 oci:./app:1.0",
            ]
        );
    }
}
