//! end-8: `GET /v2/<name>/tags/list`, paginated with `n`/`last` and `Link`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use berth_core::name::RepositoryName;
use berth_core::oci_error::ErrorCode;

use super::{next_after, pagination, set_next_link};
use crate::Registry;
use crate::error::RegistryError;

/// distribution-spec "Listing Tags": `{"name","tags"}` in byte order after
/// `last`, at most `n`, `Link` when more may follow; 404 `NAME_UNKNOWN` for a
/// repository that does not exist.
pub async fn list_tags(
    r: &Registry,
    name: &RepositoryName,
    query: Option<&str>,
) -> Result<Response, RegistryError> {
    let (n, last) = pagination(query, r.config.max_page)?;
    let tags = r
        .meta
        .list_tags(name, last.as_deref(), n)
        .await?
        .ok_or_else(|| name_unknown(name))?;
    Ok(tags_page(name, tags, n))
}

/// The answer carrying one page of `name`'s tags, asked `n` at a time:
/// `{"name","tags"}`, and `Link` to the next page when this one is full.
pub fn tags_page(name: &RepositoryName, tags: Vec<String>, n: u32) -> Response {
    let next = next_after(&tags, n);
    let mut response =
        Json(serde_json::json!({ "name": name.as_str(), "tags": tags })).into_response();
    set_next_link(&mut response, &format!("/v2/{name}/tags/list"), n, next);
    response
}

/// The answer for a repository that does not exist.
pub fn name_unknown(name: &RepositoryName) -> RegistryError {
    RegistryError::spec(
        ErrorCode::NameUnknown,
        format!("repository {name} is not known to this registry"),
    )
}
