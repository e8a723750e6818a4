//! end-2 and end-10: `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_core::digest::Digest;
use berth_core::name::RepositoryName;
use berth_core::oci_error::ErrorCode;

use super::set_header;
use crate::Registry;
use crate::error::RegistryError;
use crate::store::{ByteRange, StoreError};

/// distribution-spec "Pulling blobs": the bytes of a blob linked in this
/// repository; a single `Range` answers 206 (416 when unsatisfiable). HEAD
/// answers the same headers without opening the blob.
pub async fn get_blob(
    r: &Registry,
    name: &RepositoryName,
    digest: &Digest,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response, RegistryError> {
    let target = r.proxies.find(name);
    let size = match (r.meta.linked_blob(name, digest).await?, &target) {
        (Some(size), target) => {
            if let Some(target) = target {
                target.proxy.note_blob_hit();
            }
            size
        }
        (None, None) => return Err(blob_unknown(name, digest)),
        (None, Some(target)) => {
            match crate::proxy::blobs::miss(r, target, name, digest, headers, head).await? {
                crate::proxy::blobs::Miss::Linked(size) => size,
                crate::proxy::blobs::Miss::Served(response) => return Ok(response),
            }
        }
    };
    if !head && let Some(url) = r.blobs.redirect(digest).await? {
        return Ok(redirect_to(&url, digest));
    }
    let range = match requested_range(headers, size) {
        Ok(range) => range,
        Err(refusal) => return Ok(*refusal),
    };
    let body = if head {
        Body::empty()
    } else {
        match r.blobs.open(digest, range).await {
            Ok(reader) => Body::from_stream(reader.stream),
            Err(StoreError::NotFound) => {
                tracing::error!(%digest, "blob linked in metadata is missing from the blob store");
                return Err(blob_unknown(name, digest));
            }
            Err(e) => return Err(e.into()),
        }
    };
    Ok(blob_response(body, digest, Some(size), range))
}

/// The range of a blob of `size` bytes a request's `Range` header asks for
/// (`None`: the whole blob), or the 416 answer to an unsatisfiable one.
pub(crate) fn requested_range(
    headers: &HeaderMap,
    size: u64,
) -> Result<Option<ByteRange>, Box<Response>> {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    match parse_range(value, size) {
        RangeRequest::Satisfiable(range) => Ok(Some(range)),
        RangeRequest::Ignored => Ok(None),
        RangeRequest::Unsatisfiable => {
            let mut response = RegistryError::spec(
                ErrorCode::RangeInvalid,
                format!("range {value} is outside the blob's {size} bytes"),
            )
            .into_response();
            set_header(
                &mut response,
                header::CONTENT_RANGE,
                &format!("bytes */{size}"),
            );
            Err(Box::new(response))
        }
    }
}

/// A blob answer: `body` (empty for `HEAD`) with the blob's headers, its
/// length when `size` is known, and 206 with `Content-Range` for a range.
pub(crate) fn blob_response(
    body: Body,
    digest: &Digest,
    size: Option<u64>,
    range: Option<ByteRange>,
) -> Response {
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(len) = range.map(|r| r.len()).or(size) {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    set_header(&mut response, header::ETAG, &format!("\"{digest}\""));
    set_header(
        &mut response,
        super::manifests::DOCKER_CONTENT_DIGEST,
        &digest.to_string(),
    );
    if let (Some(range), Some(size)) = (range, size) {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        set_header(
            &mut response,
            header::CONTENT_RANGE,
            &format!("bytes {}-{}/{size}", range.start, range.end),
        );
    }
    response
}

/// 307 to where the blob store serves the bytes itself (a presigned S3 URL,
/// which carries its own short-lived signature). The spec lets a registry
/// answer a blob GET with a redirect; clients follow it without the
/// registry's `Authorization` (another origin), and a `Range` they send goes
/// along to the store.
fn redirect_to(url: &str, digest: &Digest) -> Response {
    let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
    set_header(&mut response, header::LOCATION, url);
    set_header(
        &mut response,
        super::manifests::DOCKER_CONTENT_DIGEST,
        &digest.to_string(),
    );
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    response
}

/// distribution-spec "Deleting Blobs": unlinks the blob from this repository
/// (202); its bytes go when no repository links them any more.
pub async fn delete_blob(
    r: &Registry,
    name: &RepositoryName,
    digest: &Digest,
    actor: &crate::events::Actor,
) -> Result<Response, RegistryError> {
    if !r.config.delete_enabled {
        return Err(super::manifests::deletion_disabled());
    }
    let unlinked = super::freeing_reserve(r, || async {
        Ok(r.meta.unlink_blob(name, digest, actor).await?)
    })
    .await?;
    if !unlinked {
        return Err(blob_unknown(name, digest));
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

/// The answer for a blob this repository does not hold.
pub fn blob_unknown(name: &RepositoryName, digest: &Digest) -> RegistryError {
    RegistryError::spec(
        ErrorCode::BlobUnknown,
        format!("blob {digest} is not in repository {name}"),
    )
}

/// What a `Range` header asks of a blob of a known size.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    Satisfiable(ByteRange),
    Unsatisfiable,
    /// Not a single byte range we understand: RFC 9110 lets us serve it all.
    Ignored,
}

/// RFC 9110 section 14.1.2, one range only: `bytes=a-b`, `bytes=a-`, `bytes=-n`.
fn parse_range(value: &str, size: u64) -> RangeRequest {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Ignored;
    };
    if spec.contains(',') {
        return RangeRequest::Ignored;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Ignored;
    };
    let parse = |s: &str| s.trim().parse::<u64>().ok();
    let (start, end) = match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, false) => match parse(last) {
            Some(0) => return RangeRequest::Unsatisfiable,
            Some(n) => (size.saturating_sub(n), size.saturating_sub(1)),
            None => return RangeRequest::Ignored,
        },
        (false, true) => match parse(first) {
            Some(a) => (a, size.saturating_sub(1)),
            None => return RangeRequest::Ignored,
        },
        (false, false) => match (parse(first), parse(last)) {
            (Some(a), Some(b)) if a <= b => (a, b.min(size.saturating_sub(1))),
            _ => return RangeRequest::Ignored,
        },
        (true, true) => return RangeRequest::Ignored,
    };
    if size == 0 || start >= size {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Satisfiable(ByteRange { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sat(start: u64, end: u64) -> RangeRequest {
        RangeRequest::Satisfiable(ByteRange { start, end })
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-9", 100), sat(0, 9));
        assert_eq!(parse_range("bytes=90-200", 100), sat(90, 99));
        assert_eq!(parse_range("bytes=10-", 100), sat(10, 99));
        assert_eq!(parse_range("bytes=-10", 100), sat(90, 99));
        assert_eq!(parse_range("bytes=-500", 100), sat(0, 99));
        assert_eq!(parse_range("bytes=100-", 100), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-0", 0), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 100), RangeRequest::Ignored);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeRequest::Ignored);
        assert_eq!(parse_range("items=0-1", 100), RangeRequest::Ignored);
        assert_eq!(parse_range("bytes=x-1", 100), RangeRequest::Ignored);
    }
}
