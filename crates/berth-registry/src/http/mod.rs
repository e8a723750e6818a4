//! The HTTP side of the registry: one route table ([`router`]) and one module per
//! group of spec endpoints. Handlers talk to `meta` and `store` through their
//! traits; they hold no SQL and touch no files.

pub mod admin;
pub mod base;
pub mod blobs;
pub mod catalog;
pub mod error;
pub mod health;
pub mod manifests;
pub mod referrers;
pub mod router;
pub mod tags;
pub mod token;
pub mod uploads;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use berth_core::oci_error::ErrorCode;
use berth_core::pagination::{Link, Pagination};
use futures_util::TryStreamExt;

pub use router::router;

use crate::Registry;
use crate::error::RegistryError;
use crate::store::ByteStream;

/// The value of `Docker-Distribution-API-Version` on every `/v2` response.
pub const API_VERSION: HeaderValue = HeaderValue::from_static("registry/2.0");

/// The first value of query parameter `name`, percent-decoded.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| {
            percent_encoding::percent_decode_str(&value.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// Reads `n`/`last`, refusing an `n` above `max` with 400 `PAGINATION_NUMBER_INVALID`.
pub fn pagination(query: Option<&str>, max: u32) -> Result<(u32, Option<String>), RegistryError> {
    let page = Pagination::from_query(query.unwrap_or(""))
        .map_err(|e| RegistryError::spec(ErrorCode::PaginationNumberInvalid, e.to_string()))?;
    let n = match page.n() {
        Some(n) if n > max => {
            return Err(RegistryError::spec(
                ErrorCode::PaginationNumberInvalid,
                format!(
                    "n={n} is above this registry's page limit of {max}; ask for at most {max} and follow the Link header"
                ),
            ));
        }
        Some(n) => n,
        None => max,
    };
    Ok((n, page.last().map(str::to_owned)))
}

/// The last entry of a full page: where the next page starts (`None` when the
/// page is short, so that the last page carries no `Link`).
pub fn next_after(entries: &[String], n: u32) -> Option<String> {
    (n > 0 && entries.len() == n as usize)
        .then(|| entries.last().cloned())
        .flatten()
}

/// Sets `Link: <path?n=..&last=..>; rel="next"` when there is a next page.
pub fn set_next_link(response: &mut Response, path: &str, n: u32, next: Option<String>) {
    if let Some(next) = next {
        let target = format!("{path}?{}", Pagination::new(Some(n), Some(next)).to_query());
        set_header(response, header::LINK, &Link::next(&target).to_string());
    }
}

/// Runs a delete; when it fails on a full disk, gives the disk reserve back
/// (`store::space`) and runs it once more, so that deleting, the way out of a
/// full disk, keeps working.
pub async fn freeing_reserve<T, F, Fut>(r: &Registry, op: F) -> Result<T, RegistryError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, RegistryError>>,
{
    match op().await {
        Err(e) if e.is_disk_full() => {
            r.disk.note_full(&e.to_string());
            if r.disk.release().await {
                op().await
            } else {
                Err(e)
            }
        }
        done => done,
    }
}

/// A request body as the byte stream the blob store reads.
pub fn body_stream(body: Body) -> ByteStream {
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}

/// Sets a header from a string that is known to be a valid header value.
pub fn set_header(response: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}
