//! Manifest validation: what a pushed manifest is, and what it refers to.
//!
//! The exact bytes are stored and served; they are only read here, never
//! re-serialized. Validation is per media type, with `oci-spec`'s types: OCI
//! image manifest and index, Docker schema 2 manifest and manifest list (same
//! shapes). Any other JSON media type is accepted as an artifact manifest, its
//! `blobs`/`layers`, `config` and `subject` read when present. Docker schema 1
//! is refused: it is deprecated and signed over a re-serialization.

use berth_core::digest::Digest;
use berth_core::media_type::{self, ManifestKind, MediaType};
use berth_core::oci_error::ErrorCode;
use bytes::Bytes;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde_json::Value;

use crate::error::RegistryError;
use crate::meta::{Manifest, NewManifest};

/// Reads a pushed manifest. `content_type` is the request's `Content-Type`.
pub fn parse(
    content: Bytes,
    content_type: Option<&str>,
    digest: Digest,
) -> Result<NewManifest, RegistryError> {
    let json: Value = serde_json::from_slice(&content)
        .map_err(|e| invalid(format!("the manifest is not valid JSON: {e}")))?;
    let Value::Object(object) = &json else {
        return Err(invalid("a manifest is a JSON object"));
    };
    let body_type = object.get("mediaType").and_then(Value::as_str);
    let media_type = match (content_type.filter(|c| !c.trim().is_empty()), body_type) {
        (Some(header), body) => {
            let header =
                MediaType::parse(header).map_err(|e| invalid(format!("Content-Type: {e}")))?;
            if let Some(body) = body
                && !body.eq_ignore_ascii_case(header.essence())
            {
                return Err(invalid(format!(
                    "Content-Type is {} but the manifest's mediaType is {body}; they must match",
                    header.essence()
                )));
            }
            header.essence().to_owned()
        }
        (None, Some(body)) => MediaType::parse(body)
            .map_err(|e| invalid(format!("mediaType: {e}")))?
            .essence()
            .to_owned(),
        (None, None) => {
            return Err(invalid(
                "the manifest's media type is unknown: send it as Content-Type or set mediaType in the manifest",
            ));
        }
    };
    if media_type == media_type::DOCKER_MANIFEST_V1_SIGNED
        || media_type == "application/vnd.docker.distribution.manifest.v1+json"
    {
        return Err(invalid(
            "Docker schema 1 manifests are not supported; push schema 2 or OCI (e.g. skopeo copy --format oci)",
        ));
    }
    let kind = MediaType::parse(&media_type)
        .map(|m| ManifestKind::of(&m))
        .map_err(|e| invalid(e.to_string()))?;

    let mut blobs = Vec::new();
    let mut children = Vec::new();
    let mut subject = None;
    let mut artifact_type = object
        .get("artifactType")
        .and_then(Value::as_str)
        .map(str::to_owned);
    match kind {
        ManifestKind::OciManifest | ManifestKind::DockerManifest => {
            let m: ImageManifest = serde_json::from_slice(&content)
                .map_err(|e| invalid(format!("not a valid image manifest: {e}")))?;
            if m.schema_version() != 2 {
                return Err(invalid("schemaVersion must be 2"));
            }
            blobs.push(descriptor_digest(m.config())?);
            for layer in m.layers() {
                blobs.push(descriptor_digest(layer)?);
            }
            if let Some(s) = m.subject() {
                subject = Some(descriptor_digest(s)?);
            }
            if artifact_type.is_none() {
                // The referrers API reports the config's media type when the
                // manifest has no artifactType (image-spec, "Guidelines for
                // Artifact Usage").
                artifact_type = Some(m.config().media_type().to_string());
            }
        }
        ManifestKind::OciIndex | ManifestKind::DockerManifestList => {
            let index: ImageIndex = serde_json::from_slice(&content)
                .map_err(|e| invalid(format!("not a valid image index: {e}")))?;
            if index.schema_version() != 2 {
                return Err(invalid("schemaVersion must be 2"));
            }
            for child in index.manifests() {
                children.push(descriptor_digest(child)?);
            }
            if let Some(s) = index.subject() {
                subject = Some(descriptor_digest(s)?);
            }
        }
        ManifestKind::Artifact => {
            if let Some(d) = object.get("config") {
                blobs.push(value_digest(d)?);
            }
            for key in ["layers", "blobs"] {
                if let Some(Value::Array(list)) = object.get(key) {
                    for d in list {
                        blobs.push(value_digest(d)?);
                    }
                }
            }
            if let Some(s) = object.get("subject") {
                subject = Some(value_digest(s)?);
            }
        }
    }
    let annotations = object
        .get("annotations")
        .filter(|a| a.is_object())
        .map(Value::to_string);
    blobs.sort();
    blobs.dedup();
    children.sort();
    children.dedup();
    Ok(NewManifest {
        manifest: Manifest {
            digest,
            media_type,
            content,
        },
        subject,
        artifact_type,
        annotations,
        blobs,
        children,
    })
}

fn descriptor_digest(d: &Descriptor) -> Result<Digest, RegistryError> {
    Digest::parse(d.digest().as_ref())
        .map_err(|e| RegistryError::spec(ErrorCode::ManifestInvalid, format!("descriptor: {e}")))
}

fn value_digest(d: &Value) -> Result<Digest, RegistryError> {
    let digest = d
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("a descriptor needs a digest"))?;
    Digest::parse(digest)
        .map_err(|e| RegistryError::spec(ErrorCode::ManifestInvalid, format!("descriptor: {e}")))
}

fn invalid(message: impl Into<String>) -> RegistryError {
    RegistryError::spec(ErrorCode::ManifestInvalid, message)
}
