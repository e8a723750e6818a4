//! `GET /v2/_catalog`: the repository list, paginated with `n`/`last` and `Link`.

use axum::Json;
use axum::response::{IntoResponse, Response};

use super::{next_after, pagination, set_next_link};
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
    let next = next_after(&names, n);
    let names: Vec<String> = match subject {
        Some(subject) => names
            .into_iter()
            .filter(|name| policy::token_admits_listing(subject, name))
            .collect(),
        None => names,
    };
    let mut response = Json(serde_json::json!({ "repositories": names })).into_response();
    set_next_link(&mut response, "/v2/_catalog", n, next);
    Ok(response)
}
