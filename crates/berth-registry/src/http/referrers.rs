//! end-12: `GET /v2/<name>/referrers/<digest>?artifactType=<type>`.

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use berth_core::digest::Digest;
use berth_core::media_type;
use berth_core::name::RepositoryName;
use serde_json::{Map, Value, json};

use super::query_param;
use crate::Registry;
use crate::error::RegistryError;

/// `OCI-Filters-Applied`: which filters the answer honoured.
const FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");

/// distribution-spec "Listing Referrers": an image index of the manifests whose
/// `subject` is `digest`, always 200 (an unknown subject has no referrers),
/// filtered by `artifactType` when asked, with `OCI-Filters-Applied`.
pub async fn list_referrers(
    r: &Registry,
    name: &RepositoryName,
    digest: &Digest,
    query: Option<&str>,
) -> Result<Response, RegistryError> {
    let artifact_type = query_param(query, "artifactType").filter(|t| !t.is_empty());
    let referrers = r
        .meta
        .referrers(name, digest, artifact_type.as_deref())
        .await?;
    let manifests: Vec<Value> = referrers
        .into_iter()
        .map(|m| {
            let mut d = Map::new();
            d.insert("mediaType".into(), json!(m.media_type));
            d.insert("digest".into(), json!(m.digest.to_string()));
            d.insert("size".into(), json!(m.size));
            if let Some(t) = m.artifact_type {
                d.insert("artifactType".into(), json!(t));
            }
            if let Some(a) = m
                .annotations
                .and_then(|a| serde_json::from_str::<Value>(&a).ok())
            {
                d.insert("annotations".into(), a);
            }
            Value::Object(d)
        })
        .collect();
    let body = json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_IMAGE_INDEX,
        "manifests": manifests,
    });
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(media_type::OCI_IMAGE_INDEX),
        )],
        body.to_string(),
    )
        .into_response();
    if artifact_type.is_some() {
        response
            .headers_mut()
            .insert(FILTERS_APPLIED, HeaderValue::from_static("artifactType"));
    }
    Ok(response)
}
