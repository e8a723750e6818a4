//! end-3, end-7, end-9: `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_core::digest::Digest;
use berth_core::endpoint::InvalidReference;
use berth_core::media_type::{MediaType, parse_accept};
use berth_core::name::RepositoryName;
use berth_core::oci_error::ErrorCode;
use berth_core::reference::TagOrDigest;

use super::set_header;
use crate::error::RegistryError;
use crate::meta::{Actor, MetaError};
use crate::{Registry, manifest};

/// `Docker-Content-Digest`: the digest of what was served or stored.
pub const DOCKER_CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
/// `OCI-Subject`: the subject of a pushed manifest (distribution-spec v1.1).
const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");

/// distribution-spec "Pulling manifests": the exact bytes pushed, with their
/// media type as `Content-Type` and their digest.
pub async fn get_manifest(
    r: &Registry,
    name: &RepositoryName,
    reference: &TagOrDigest,
    headers: &HeaderMap,
    head: bool,
    actor: &Actor,
) -> Result<Response, RegistryError> {
    let manifest = match r.proxies.find(name) {
        Some(target) => {
            crate::proxy::manifests::resolve(r, &target, name, reference, actor).await?
        }
        None => r
            .meta
            .get_manifest(name, reference)
            .await?
            .ok_or_else(|| manifest_unknown(name, reference))?,
    };
    if !accepts(headers, &manifest.media_type) {
        // As distribution does for an OCI manifest asked for without OCI
        // types in `Accept`: the stored bytes are never converted.
        return Err(RegistryError::spec(
            ErrorCode::ManifestUnknown,
            format!(
                "manifest {reference} in {name} is {}, which the request's Accept header excludes; add that type (or */*) to Accept",
                manifest.media_type
            ),
        ));
    }
    if !head {
        // For retention policies' pull rules: noted in memory, written at
        // most once a minute per manifest.
        let now = crate::clock::now_unix();
        r.gc.pulls.note(name, &manifest.digest, now);
        if !r.events.webhooks.is_empty() {
            let tag = match reference {
                TagOrDigest::Tag(tag) => Some(tag),
                TagOrDigest::Digest(_) => None,
            };
            let events = &r.events;
            events.pulls.note(
                &events.webhooks,
                &events.source,
                name,
                &manifest.digest,
                tag,
                actor,
                now,
            );
        }
    }
    let len = manifest.content.len();
    let mut response = if head {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(manifest.content))
    };
    set_header(&mut response, header::CONTENT_TYPE, &manifest.media_type);
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    let digest = manifest.digest.to_string();
    set_header(&mut response, DOCKER_CONTENT_DIGEST, &digest);
    set_header(&mut response, header::ETAG, &format!("\"{digest}\""));
    Ok(response)
}

/// distribution-spec "Pushing Manifests": validates the manifest, checks that
/// every blob and child manifest it names is in the repository, stores the
/// exact bytes and points the tag (if any) at them. 201.
pub async fn put_manifest(
    r: &Registry,
    name: &RepositoryName,
    reference: &TagOrDigest,
    headers: &HeaderMap,
    body: Body,
    actor: &Actor,
) -> Result<Response, RegistryError> {
    let limit = r.config.max_manifest_bytes;
    let too_large = || RegistryError::Spec {
        code: ErrorCode::SizeInvalid,
        message: format!("manifests are limited to {limit} bytes on this registry"),
        detail: None,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Ok(payload_too_large(too_large()));
    }
    let content = match axum::body::to_bytes(body, limit).await {
        Ok(content) => content,
        Err(_) => return Ok(payload_too_large(too_large())),
    };
    let digest = match reference {
        TagOrDigest::Digest(expected) => {
            let actual = Digest::from_bytes(expected.algorithm(), &content);
            if &actual != expected {
                return Err(RegistryError::spec(
                    ErrorCode::DigestInvalid,
                    format!("the manifest's digest is {actual}, not {expected} as the URL says"),
                ));
            }
            actual
        }
        TagOrDigest::Tag(_) => Digest::sha256_of(&content),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let new = manifest::parse(content, content_type, digest.clone())?;
    let tag = match reference {
        TagOrDigest::Tag(tag) => Some(tag),
        TagOrDigest::Digest(_) => None,
    };
    match r.meta.put_manifest(name, &new, tag, actor).await {
        Ok(()) => {}
        Err(MetaError::MissingReference(missing)) => {
            return Err(RegistryError::Spec {
                code: ErrorCode::ManifestBlobUnknown,
                message: format!(
                    "the manifest refers to {missing}, which is not in repository {name}; push it first"
                ),
                detail: Some(serde_json::json!({ "digest": missing.to_string() })),
            });
        }
        Err(MetaError::SizeMismatch {
            field,
            digest,
            stated,
            actual,
        }) => {
            return Err(RegistryError::Spec {
                code: ErrorCode::ManifestInvalid,
                message: format!(
                    "the manifest's {field} descriptor ({digest}) states size {stated}, but that content is {actual} bytes; fix the size and push the manifest again"
                ),
                detail: Some(serde_json::json!({
                    "descriptor": field,
                    "digest": digest.to_string(),
                    "size": stated,
                    "actual": actual,
                })),
            });
        }
        Err(e) => return Err(e.into()),
    }
    let mut response = StatusCode::CREATED.into_response();
    set_header(
        &mut response,
        header::LOCATION,
        &format!("{}/v2/{name}/manifests/{digest}", r.config.public_url),
    );
    set_header(&mut response, DOCKER_CONTENT_DIGEST, &digest.to_string());
    if let Some(subject) = &new.subject {
        set_header(&mut response, OCI_SUBJECT, &subject.to_string());
    }
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    Ok(response)
}

/// distribution-spec "Deleting tags" and "Deleting Manifests": by tag removes
/// the tag; by digest removes the manifest and every tag on it. 202.
pub async fn delete_manifest(
    r: &Registry,
    name: &RepositoryName,
    reference: &TagOrDigest,
    actor: &Actor,
) -> Result<Response, RegistryError> {
    if !r.config.delete_enabled {
        return Err(deletion_disabled());
    }
    let deleted = super::freeing_reserve(r, || async {
        Ok(match reference {
            TagOrDigest::Tag(tag) => r.meta.delete_tag(name, tag, actor).await?,
            TagOrDigest::Digest(digest) => r.meta.delete_manifest(name, digest, actor).await?,
        })
    })
    .await?;
    if !deleted {
        return Err(manifest_unknown(name, reference));
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `GET`/`HEAD`/`DELETE` of a reference that is neither a valid tag nor a
/// valid digest: no manifest can be stored under it, so it names none (404
/// `MANIFEST_UNKNOWN`, what clients probing for a tag expect; distribution-spec
/// conformance "GET nonexistent manifest should return 404"). A push under it
/// is refused with the parse error instead (`TAG_INVALID`, `DIGEST_INVALID`).
pub fn no_such_reference(
    r: &Registry,
    name: &RepositoryName,
    error: &InvalidReference,
    method: &Method,
) -> RegistryError {
    if method == Method::DELETE && !r.config.delete_enabled {
        return deletion_disabled();
    }
    RegistryError::spec(
        ErrorCode::ManifestUnknown,
        format!(
            "manifest {} is not in repository {name}: it is neither a valid tag nor a digest ({error})",
            error.input()
        ),
    )
}

/// Whether the `Accept` headers admit `media_type`. No `Accept` (or none that
/// parses) admits everything; `q=0` excludes (RFC 9110 section 12.5.1).
fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    let Ok(stored) = MediaType::parse(media_type) else {
        return true;
    };
    let mut ranges = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_accept)
        .peekable();
    if ranges.peek().is_none() {
        return true;
    }
    ranges.any(|range| range.quality() > 0 && range.matches(&stored))
}

/// 405 `UNSUPPORTED` for a registry whose operator turned deletion off.
pub fn deletion_disabled() -> RegistryError {
    RegistryError::spec(
        ErrorCode::Unsupported,
        "deletion is disabled by this registry's operator (delete_enabled = false)",
    )
}

fn manifest_unknown(name: &RepositoryName, reference: &TagOrDigest) -> RegistryError {
    RegistryError::spec(
        ErrorCode::ManifestUnknown,
        format!("manifest {reference} is not in repository {name}"),
    )
}

fn payload_too_large(e: RegistryError) -> Response {
    let mut response = e.into_response();
    *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    response
}
