//! `GET /v2/<proxy>/<name>/tags/list`: the upstream's tags, paged by this
//! registry as any tag list is (byte order, `n`, `last`, `Link`).
//!
//! A client listing a cached image's tags wants the image's tags, not the
//! few pulled through this cache so far: the list is asked of the upstream
//! on every request (it is not cached: it changes with every push there and
//! counts against no pull limit). When the upstream cannot answer (down,
//! 5xx, 429), the tags cached here answer instead, with a log line, as a
//! cached tag does; when it says the repository does not exist, 404.

use axum::response::Response;
use berth_client::client::Listing;
use berth_core::name::RepositoryName;
use berth_core::oci_error::ErrorCode;

use super::{Target, UpstreamFailure};
use crate::Registry;
use crate::error::RegistryError;
use crate::http::pagination;
use crate::http::tags::{list_tags, name_unknown, tags_page};

/// The most tags taken from the upstream for one listing (Docker Hub's
/// largest official repositories have a few thousand).
const MAX_TAGS: usize = 100_000;

/// The tag list of `name`, a repository of a proxy namespace.
pub async fn list(
    r: &Registry,
    target: &Target,
    name: &RepositoryName,
    query: Option<&str>,
) -> Result<Response, RegistryError> {
    let (n, last) = pagination(query, r.config.max_page)?;
    let proxy = &target.proxy;
    let listing = Listing {
        page_size: None,
        max: Some(MAX_TAGS),
    };
    let mut tags = match proxy.client.tags_listing(&target.upstream, listing).await {
        Ok(tags) => tags,
        Err(e) => {
            let failure = UpstreamFailure::of(&e);
            proxy.count_failure(&failure);
            if let UpstreamFailure::NotFound(_) = failure {
                return Err(name_unknown(name));
            }
            tracing::warn!(
                proxy = proxy.settings.name.as_str(),
                repository = name.as_str(),
                error = ?failure,
                "the upstream's tag list failed; answering with the tags cached here"
            );
            return match list_tags(r, name, query).await {
                // Nothing cached either: the upstream's trouble is the answer.
                Err(RegistryError::Spec {
                    code: ErrorCode::NameUnknown,
                    ..
                }) => {
                    Err(failure.to_error(&proxy.settings, name, "tag list", ErrorCode::NameUnknown))
                }
                answer => answer,
            };
        }
    };
    tags.sort_unstable();
    tags.dedup();
    let page: Vec<String> = tags
        .into_iter()
        .filter(|tag| last.as_ref().is_none_or(|last| tag > last))
        .take(n as usize)
        .collect();
    Ok(tags_page(name, page, n))
}
