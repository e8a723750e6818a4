//! Manifest validation: what a pushed manifest is, and what it refers to.
//!
//! The exact bytes are stored and served; they are only read here, never
//! re-serialized. Only manifest media types are accepted, as
//! `Content-Type` or, without one, as the manifest's `mediaType`: OCI image
//! manifest and index, Docker schema 2 manifest and manifest list (the shapes
//! `oci-spec` reads). An artifact is an image manifest with `artifactType`
//! (image-spec v1.1, "Guidelines for Artifact Usage"); the draft
//! `application/vnd.oci.artifact.manifest.v1+json` was dropped before v1.1
//! and is refused like any other type, with 400 `MANIFEST_INVALID` naming the
//! accepted ones (CNCF distribution's answer to an unknown manifest type, so
//! clients know it). Serving back whatever type a client sent would let a
//! manifest be served as `text/html`. Docker schema 1 is refused: it is
//! deprecated and signed over a re-serialization.
//!
//! Every descriptor's digest and stated size are kept: the metadata store
//! checks each against the blob or manifest it names.

use berth_core::digest::Digest;
use berth_core::media_type::{self, ManifestKind, MediaType};
use berth_core::oci_error::ErrorCode;
use bytes::Bytes;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde_json::Value;

use crate::error::RegistryError;
use crate::meta::{DescriptorRef, Manifest, NewManifest};

/// The media types a manifest may be pushed as.
pub const ACCEPTED_MEDIA_TYPES: [&str; 4] = [
    media_type::OCI_IMAGE_MANIFEST,
    media_type::OCI_IMAGE_INDEX,
    media_type::DOCKER_MANIFEST_V2,
    media_type::DOCKER_MANIFEST_LIST,
];

/// Reads a pushed manifest. `content_type` is the request's `Content-Type`.
pub fn parse(
    content: Bytes,
    content_type: Option<&str>,
    digest: Digest,
) -> Result<NewManifest, RegistryError> {
    let declared = content_type.filter(|c| !c.trim().is_empty());
    // The type is checked before the body is read: a `text/html` upload is
    // refused for what it claims to be, whatever its bytes.
    let header = declared
        .map(|c| MediaType::parse(c).map_err(|e| invalid(format!("Content-Type: {e}"))))
        .transpose()?;
    if let Some(header) = &header {
        accepted_kind(header.essence(), "Content-Type")?;
    }
    let json: Value = serde_json::from_slice(&content)
        .map_err(|e| invalid(format!("the manifest is not valid JSON: {e}")))?;
    let Value::Object(object) = &json else {
        return Err(invalid("a manifest is a JSON object"));
    };
    let body_type = object.get("mediaType").and_then(Value::as_str);
    let media_type = match (header, body_type) {
        (Some(header), body) => {
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
    let kind = accepted_kind(&media_type, "the manifest's mediaType")?;

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
            blobs.push(descriptor(m.config(), "config".to_owned())?);
            for (i, layer) in m.layers().iter().enumerate() {
                blobs.push(descriptor(layer, format!("layers[{i}]"))?);
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
            for (i, child) in index.manifests().iter().enumerate() {
                children.push(descriptor(child, format!("manifests[{i}]"))?);
            }
            if let Some(s) = index.subject() {
                subject = Some(descriptor_digest(s)?);
            }
        }
        // `accepted_kind` let no other kind through.
        ManifestKind::Artifact => return Err(unsupported(&media_type, "mediaType")),
    }
    let annotations = object
        .get("annotations")
        .filter(|a| a.is_object())
        .map(Value::to_string);
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

/// The kind of an accepted manifest media type; 400 `MANIFEST_INVALID`
/// naming the accepted ones for any other (`source` says where it was read).
fn accepted_kind(essence: &str, source: &str) -> Result<ManifestKind, RegistryError> {
    if essence.eq_ignore_ascii_case(media_type::DOCKER_MANIFEST_V1_SIGNED)
        || essence.eq_ignore_ascii_case("application/vnd.docker.distribution.manifest.v1+json")
    {
        return Err(invalid(
            "Docker schema 1 manifests are not supported; push schema 2 or OCI (e.g. skopeo copy --format oci)",
        ));
    }
    let kind = MediaType::parse(essence)
        .map(|m| ManifestKind::of(&m))
        .map_err(|e| invalid(format!("{source}: {e}")))?;
    match kind {
        ManifestKind::Artifact => Err(unsupported(essence, source)),
        kind => Ok(kind),
    }
}

fn unsupported(essence: &str, source: &str) -> RegistryError {
    invalid(format!(
        "{source} {essence} is not a manifest media type; push the manifest as one of {} (an artifact is an image manifest with artifactType)",
        ACCEPTED_MEDIA_TYPES.join(", ")
    ))
}

/// A descriptor's digest and stated size, `field` naming it in the manifest.
fn descriptor(d: &Descriptor, field: String) -> Result<DescriptorRef, RegistryError> {
    Ok(DescriptorRef {
        digest: descriptor_digest(d)?,
        size: d.size(),
        field,
    })
}

fn descriptor_digest(d: &Descriptor) -> Result<Digest, RegistryError> {
    Digest::parse(d.digest().as_ref())
        .map_err(|e| RegistryError::spec(ErrorCode::ManifestInvalid, format!("descriptor: {e}")))
}

fn invalid(message: impl Into<String>) -> RegistryError {
    RegistryError::spec(ErrorCode::ManifestInvalid, message)
}
