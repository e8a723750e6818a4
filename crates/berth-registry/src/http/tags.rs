//! end-8: `GET /v2/<name>/tags/list`, paginated with `n`/`last` and `Link`.

use axum::Json;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use berth_core::name::RepositoryName;
use berth_core::oci_error::ErrorCode;
use berth_core::pagination::{Link, Pagination};

use super::{pagination, set_header};
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
    let next = (n > 0 && tags.len() == n as usize)
        .then(|| tags.last().cloned())
        .flatten();
    let mut response =
        Json(serde_json::json!({ "name": name.as_str(), "tags": tags })).into_response();
    if let Some(next) = next {
        let target = format!(
            "/v2/{name}/tags/list?{}",
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

/// The answer for a repository that does not exist.
pub fn name_unknown(name: &RepositoryName) -> RegistryError {
    RegistryError::spec(
        ErrorCode::NameUnknown,
        format!("repository {name} is not known to this registry"),
    )
}
