//! `GET /v2/_catalog`: the repository list, paginated with `n`/`last` and `Link`.

use axum::Json;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use berth_core::pagination::{Link, Pagination};

use super::{pagination, set_header};
use crate::Registry;
use crate::error::RegistryError;
use crate::meta::CatalogFilter;
use crate::policy::{self, Subject};

/// distribution-spec "Listing Repositories" (catalog extension): names in
/// byte order after `last`, at most `n`, with `Link: <...>; rel="next"` when
/// the page is full, listing only what the caller may pull: `filter` (its
/// namespaces, and public repositories) in the query, then the limits of the
/// personal access token it came with, if any. Served by an index range scan,
/// so a page costs the same at 100 repositories and at 100,000. A page
/// narrowed by token limits may hold fewer than `n` names; its `Link` still
/// continues after the last name scanned.
pub async fn list_repositories(
    r: &Registry,
    query: Option<&str>,
    filter: &CatalogFilter,
    subject: Option<&Subject>,
) -> Result<Response, RegistryError> {
    let (n, last) = pagination(query, r.config.max_page)?;
    let names = if n == 0 {
        Vec::new()
    } else {
        r.meta.list_repositories(last.as_deref(), n, filter).await?
    };
    let next = (n > 0 && names.len() == n as usize)
        .then(|| names.last().cloned())
        .flatten();
    let names: Vec<String> = match subject {
        Some(subject) => names
            .into_iter()
            .filter(|name| policy::token_admits_listing(subject, name))
            .collect(),
        None => names,
    };
    let mut response = Json(serde_json::json!({ "repositories": names })).into_response();
    if let Some(next) = next {
        let target = format!(
            "/v2/_catalog?{}",
            Pagination::new(Some(n), Some(next)).to_query()
        );
        set_header(
            &mut response,
            header::LINK,
            &Link::next(&target).to_string(),
        );
    }
    Ok(response)
}
