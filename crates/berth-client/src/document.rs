//! OCI documents as a client walks them: the descriptors a manifest or an
//! index points to (OCI image-spec: descriptor, image manifest, image index;
//! Docker schema 2 manifests and lists have the same shape).
//!
//! Reading is lenient on purpose: any JSON object is a document, and the
//! fields a walk needs (`config`, `layers`, `blobs`, `manifests`, `subject`)
//! are read where present. Fields the walk does not need are never rewritten:
//! manifests are always copied as their exact bytes.

use std::collections::BTreeMap;

use berth_core::media_type::{DOCKER_MANIFEST_LIST, OCI_IMAGE_INDEX};
use berth_core::{Digest, Platform};
use serde::Deserialize;

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// `mediaType`.
    pub media_type: String,
    /// `digest`.
    pub digest: Digest,
    /// `size`.
    pub size: u64,
    /// `artifactType`, when given.
    pub artifact_type: Option<String>,
    /// `platform` of an index entry: (os, architecture, variant).
    pub platform: Option<(String, String, Option<String>)>,
    /// `annotations` (string values only; others are dropped).
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// `os/architecture[/variant]` of an index entry, when it names one.
    pub fn platform_name(&self) -> Option<String> {
        self.platform
            .as_ref()
            .map(|(os, arch, variant)| match variant {
                Some(v) => format!("{os}/{arch}/{v}"),
                None => format!("{os}/{arch}"),
            })
    }

    /// Whether this index entry is for `platform`.
    pub fn is_for(&self, platform: &Platform) -> bool {
        self.platform
            .as_ref()
            .is_some_and(|(os, arch, variant)| platform.matches(os, arch, variant.as_deref()))
    }
}

/// What a manifest or an index points to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Document {
    /// `mediaType`, when the document names it.
    pub media_type: Option<String>,
    /// `manifests` (an index).
    pub manifests: Vec<Descriptor>,
    /// `config` (a manifest).
    pub config: Option<Descriptor>,
    /// `layers` (a manifest) and `blobs` (an early artifact manifest).
    pub layers: Vec<Descriptor>,
    /// `subject`: the manifest this one refers to.
    pub subject: Option<Descriptor>,
    /// `artifactType` of a manifest or index, when given.
    pub artifact_type: Option<String>,
    /// The document's own `annotations` (string values only).
    pub annotations: BTreeMap<String, String>,
}

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{what} is not a manifest or index this client can read: {reason}")]
pub struct DocumentError {
    /// Which document.
    pub what: String,
    /// Why.
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    size: i64,
    artifact_type: Option<String>,
    platform: Option<RawPlatform>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct RawPlatform {
    os: Option<String>,
    architecture: Option<String>,
    variant: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDocument {
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<RawDescriptor>,
    config: Option<RawDescriptor>,
    #[serde(default)]
    layers: Vec<RawDescriptor>,
    #[serde(default)]
    blobs: Vec<RawDescriptor>,
    subject: Option<RawDescriptor>,
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, serde_json::Value>>,
}

/// The string-valued annotations (a lenient reader drops the others).
fn strings(raw: Option<BTreeMap<String, serde_json::Value>>) -> BTreeMap<String, String> {
    raw.unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k, s)),
            _ => None,
        })
        .collect()
}

impl Document {
    /// Reads the descriptors of `bytes`; `what` names the document in errors.
    pub fn parse(bytes: &[u8], what: &str) -> Result<Self, DocumentError> {
        let fail = |reason: String| DocumentError {
            what: what.to_owned(),
            reason,
        };
        let raw: RawDocument =
            serde_json::from_slice(bytes).map_err(|e| fail(format!("bad JSON: {e}")))?;
        let one = |d: RawDescriptor| -> Result<Descriptor, DocumentError> {
            let digest = Digest::parse(&d.digest)
                .map_err(|e| fail(format!("bad descriptor digest: {e}")))?;
            let size = u64::try_from(d.size).map_err(|_| {
                fail(format!(
                    "descriptor {digest} has a negative size {}",
                    d.size
                ))
            })?;
            let platform = d.platform.and_then(|p| match (p.os, p.architecture) {
                (Some(os), Some(arch)) => Some((os, arch, p.variant.filter(|v| !v.is_empty()))),
                _ => None,
            });
            Ok(Descriptor {
                media_type: d.media_type.unwrap_or_default(),
                digest,
                size,
                artifact_type: d.artifact_type,
                platform,
                annotations: strings(d.annotations),
            })
        };
        let many =
            |list: Vec<RawDescriptor>| list.into_iter().map(one).collect::<Result<Vec<_>, _>>();
        let mut layers = many(raw.layers)?;
        layers.extend(many(raw.blobs)?);
        Ok(Self {
            media_type: raw.media_type,
            manifests: many(raw.manifests)?,
            config: raw.config.map(one).transpose()?,
            layers,
            subject: raw.subject.map(one).transpose()?,
            artifact_type: raw.artifact_type,
            annotations: strings(raw.annotations),
        })
    }

    /// Whether it is an index (by media type, or by holding `manifests`).
    pub fn is_index(&self, media_type: &str) -> bool {
        let essence = media_type.split(';').next().unwrap_or_default().trim();
        essence == OCI_IMAGE_INDEX || essence == DOCKER_MANIFEST_LIST || !self.manifests.is_empty()
    }

    /// The blobs a manifest needs: its config, then its layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        self.config.iter().chain(&self.layers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn reads_an_index_with_platforms() {
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
            "manifests":[
              {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{D1}","size":10,
                "platform":{{"os":"linux","architecture":"amd64"}}}},
              {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{D2}","size":11,
                "platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#
        );
        let doc = Document::parse(json.as_bytes(), "index").unwrap();
        assert!(doc.is_index(OCI_IMAGE_INDEX));
        assert_eq!(doc.manifests.len(), 2);
        let arm = Platform::parse("linux/arm64").unwrap();
        let picked: Vec<_> = doc.manifests.iter().filter(|d| d.is_for(&arm)).collect();
        assert_eq!(picked.len(), 1);
        assert_eq!(picked[0].digest.to_string(), D2);
        assert_eq!(picked[0].platform_name().as_deref(), Some("linux/arm64/v8"));
    }

    #[test]
    fn reads_config_layers_blobs_and_subject() {
        let json = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{D1}","size":2}},
            "layers":[{{"mediaType":"l","digest":"{D2}","size":3}}],
            "blobs":[{{"mediaType":"b","digest":"{D1}","size":2}}],
            "subject":{{"mediaType":"m","digest":"{D2}","size":4}}}}"#
        );
        let doc = Document::parse(json.as_bytes(), "m").unwrap();
        assert!(!doc.is_index("application/vnd.oci.image.manifest.v1+json"));
        let blobs: Vec<String> = doc.blobs().map(|d| d.media_type.clone()).collect();
        assert_eq!(blobs, ["c", "l", "b"]);
        assert_eq!(doc.subject.unwrap().size, 4);
    }

    #[test]
    fn refuses_bad_digests_and_sizes_with_the_reason() {
        let e =
            Document::parse(br#"{"layers":[{"digest":"sha256:zz","size":1}]}"#, "x").unwrap_err();
        assert!(e.to_string().contains("bad descriptor digest"), "{e}");
        let json = format!(r#"{{"layers":[{{"digest":"{D1}","size":-1}}]}}"#);
        let e = Document::parse(json.as_bytes(), "x").unwrap_err();
        assert!(e.to_string().contains("negative size -1"), "{e}");
        assert!(Document::parse(b"[]", "x").is_err());
    }
}
