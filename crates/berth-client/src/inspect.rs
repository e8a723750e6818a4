//! What a reference names, in one read: the manifest's digest, media type
//! and artifact type; an index's platforms; an image's layers with their
//! sizes and its config (created, platform, entrypoint, cmd, env, labels,
//! working directory, user); annotations. `berth inspect` prints it, as
//! `skopeo inspect` and `crane config` do.
//!
//! An index is summarised with its entries; with a platform, the entry for
//! it is inspected as the image. A config is read (bounded to
//! [`MAX_CONFIG`] bytes, checked against its digest) only when it is an
//! image config (OCI or Docker): an artifact's config is only described.
//!
//! The structures serialise with stable camelCase field names (the JSON of
//! `berth inspect --output json`).

use std::collections::BTreeMap;

use berth_core::media_type::{DOCKER_CONFIG, OCI_IMAGE_CONFIG};
use berth_core::{Digest, Platform, RepositoryName, TagOrDigest};
use serde::{Deserialize, Serialize};

use crate::artifact::TITLE_ANNOTATION;
use crate::client::{ClientError, RegistryClient};
use crate::document::{Descriptor, Document, DocumentError};

/// The most bytes of an image config read.
pub const MAX_CONFIG: usize = 4 * 1024 * 1024;

/// Why an inspection failed.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// A registry operation failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A manifest could not be read.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// The platform asked for is not in the index.
    #[error(
        "{reference} has no image for {platform} (it has: {available}); pick one with --platform"
    )]
    NoPlatform {
        /// The reference.
        reference: String,
        /// The platform asked for.
        platform: Platform,
        /// The platforms present.
        available: String,
    },
    /// The config is larger than [`MAX_CONFIG`] or not JSON.
    #[error("the config {digest} of {reference} cannot be read: {reason}")]
    Config {
        /// The reference.
        reference: String,
        /// The config's digest.
        digest: Digest,
        /// Why.
        reason: String,
    },
}

/// What a reference names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    /// `registry/repository[:tag]@digest`.
    pub reference: String,
    /// The manifest's (or index's) digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its `artifactType`, if any.
    pub artifact_type: Option<String>,
    /// Its size in bytes.
    pub size: u64,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// An index's entries (empty for a manifest).
    pub manifests: Vec<Entry>,
    /// The image: the manifest itself, or the index's entry for the
    /// platform asked for (`None` for an index without one).
    pub image: Option<Image>,
}

/// An index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Its digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size.
    pub size: u64,
    /// `os/architecture[/variant]`, when it names one.
    pub platform: Option<String>,
    /// Its `artifactType`, if any.
    pub artifact_type: Option<String>,
}

/// An image manifest: layers and config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// The manifest's digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its `artifactType`, if any.
    pub artifact_type: Option<String>,
    /// Its size.
    pub size: u64,
    /// The platform of the index entry it was chosen by, if any.
    pub platform: Option<String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// Its layers, in order.
    pub layers: Vec<Layer>,
    /// The layers' total size.
    pub layers_size: u64,
    /// Its config.
    pub config: Option<Config>,
}

/// A layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Layer {
    /// Its digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size.
    pub size: u64,
    /// Its file name (`org.opencontainers.image.title`), for an artifact.
    pub title: Option<String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
}

/// A config: its descriptor, and for an image config what it says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// Its digest.
    pub digest: Option<Digest>,
    /// Its media type.
    pub media_type: String,
    /// Its size.
    pub size: u64,
    /// `created` (RFC 3339, as written).
    pub created: Option<String>,
    /// `os`.
    pub os: Option<String>,
    /// `architecture`.
    pub architecture: Option<String>,
    /// `variant`.
    pub variant: Option<String>,
    /// `config.Entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `config.Cmd`.
    pub cmd: Option<Vec<String>>,
    /// `config.Env`.
    pub env: Vec<String>,
    /// `config.WorkingDir`.
    pub working_dir: Option<String>,
    /// `config.User`.
    pub user: Option<String>,
    /// `config.Labels`.
    pub labels: BTreeMap<String, String>,
    /// `config.ExposedPorts` (the keys).
    pub exposed_ports: Vec<String>,
}

/// The image config's fields read (OCI image-spec config.md; Docker's is
/// the same shape).
#[derive(Deserialize, Default)]
struct RawConfig {
    created: Option<String>,
    os: Option<String>,
    architecture: Option<String>,
    variant: Option<String>,
    #[serde(default)]
    config: Option<RawRuntime>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawRuntime {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    env: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
}

/// Inspects `reference` in `repo`; for an index, the entry for `platform`
/// becomes the [`Inspection::image`].
pub async fn inspect(
    client: &RegistryClient,
    repo: &RepositoryName,
    reference: &TagOrDigest,
    platform: Option<&Platform>,
) -> Result<Inspection, InspectError> {
    let named = match reference {
        TagOrDigest::Tag(tag) => format!("{}/{repo}:{tag}", client.registry()),
        TagOrDigest::Digest(_) => format!("{}/{repo}", client.registry()),
    };
    let manifest = client.get_manifest(repo, reference, &[]).await?;
    let shown = format!("{named}@{}", manifest.digest);
    let document = Document::parse(&manifest.bytes, &format!("the manifest of {shown}"))?;
    let media_type = effective_type(&manifest.media_type, &document);
    let mut inspection = Inspection {
        reference: shown.clone(),
        digest: manifest.digest.clone(),
        media_type: media_type.clone(),
        artifact_type: document.artifact_type.clone(),
        size: manifest.bytes.len() as u64,
        annotations: document.annotations.clone(),
        manifests: Vec::new(),
        image: None,
    };
    if !document.is_index(&media_type) {
        inspection.image = Some(
            image(
                client,
                repo,
                &shown,
                &manifest.digest,
                &media_type,
                manifest.bytes.len() as u64,
                None,
                document,
            )
            .await?,
        );
        return Ok(inspection);
    }
    inspection.manifests = document
        .manifests
        .iter()
        .map(|d| Entry {
            digest: d.digest.clone(),
            media_type: d.media_type.clone(),
            size: d.size,
            platform: d.platform_name(),
            artifact_type: d.artifact_type.clone(),
        })
        .collect();
    let Some(platform) = platform else {
        return Ok(inspection);
    };
    let Some(child) = document.manifests.iter().find(|d| d.is_for(platform)) else {
        let available: Vec<String> = document
            .manifests
            .iter()
            .filter_map(Descriptor::platform_name)
            .collect();
        return Err(InspectError::NoPlatform {
            reference: shown,
            platform: platform.clone(),
            available: available.join(", "),
        });
    };
    let accept: Vec<&str> = if child.media_type.is_empty() {
        Vec::new()
    } else {
        vec![child.media_type.as_str()]
    };
    let child_manifest = client
        .get_manifest(repo, &TagOrDigest::Digest(child.digest.clone()), &accept)
        .await?;
    let child_doc = Document::parse(
        &child_manifest.bytes,
        &format!(
            "the {} manifest of {shown}",
            child.platform_name().unwrap_or_default()
        ),
    )?;
    let child_type = effective_type(&child_manifest.media_type, &child_doc);
    inspection.image = Some(
        image(
            client,
            repo,
            &shown,
            &child.digest,
            &child_type,
            child_manifest.bytes.len() as u64,
            child.platform_name(),
            child_doc,
        )
        .await?,
    );
    Ok(inspection)
}

/// The media type the registry sent, else the document's own.
fn effective_type(sent: &str, document: &Document) -> String {
    let essence = sent.split(';').next().unwrap_or_default().trim();
    if essence.is_empty() {
        document.media_type.clone().unwrap_or_default()
    } else {
        essence.to_owned()
    }
}

/// The image of a manifest: layers and, for an image config, what it says.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site each; a struct would only rename them"
)]
async fn image(
    client: &RegistryClient,
    repo: &RepositoryName,
    shown: &str,
    digest: &Digest,
    media_type: &str,
    size: u64,
    platform: Option<String>,
    document: Document,
) -> Result<Image, InspectError> {
    let layers: Vec<Layer> = document
        .layers
        .iter()
        .map(|d| Layer {
            digest: d.digest.clone(),
            media_type: d.media_type.clone(),
            size: d.size,
            title: d.annotations.get(TITLE_ANNOTATION).cloned(),
            annotations: d.annotations.clone(),
        })
        .collect();
    let config = match &document.config {
        None => None,
        Some(d) => Some(config(client, repo, shown, d).await?),
    };
    Ok(Image {
        digest: digest.clone(),
        media_type: media_type.to_owned(),
        artifact_type: document.artifact_type.clone(),
        size,
        platform,
        annotations: document.annotations.clone(),
        layers_size: layers.iter().map(|l| l.size).sum(),
        layers,
        config,
    })
}

/// The config `descriptor` names: read when it is an image config.
async fn config(
    client: &RegistryClient,
    repo: &RepositoryName,
    shown: &str,
    descriptor: &Descriptor,
) -> Result<Config, InspectError> {
    let mut out = Config {
        digest: Some(descriptor.digest.clone()),
        media_type: descriptor.media_type.clone(),
        size: descriptor.size,
        ..Config::default()
    };
    if ![OCI_IMAGE_CONFIG, DOCKER_CONFIG].contains(&descriptor.media_type.as_str()) {
        return Ok(out);
    }
    let bad = |reason: String| InspectError::Config {
        reference: shown.to_owned(),
        digest: descriptor.digest.clone(),
        reason,
    };
    if descriptor.size > MAX_CONFIG as u64 {
        return Err(bad(format!(
            "it is {} bytes, more than the {MAX_CONFIG} read",
            descriptor.size
        )));
    }
    let mut stream = client.get_blob(repo, &descriptor.digest).await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next_chunk().await {
        let chunk = chunk?;
        if bytes.len() + chunk.len() > MAX_CONFIG {
            return Err(bad(format!("it is more than the {MAX_CONFIG} bytes read")));
        }
        bytes.extend_from_slice(&chunk);
    }
    let raw: RawConfig = serde_json::from_slice(&bytes)
        .map_err(|e| bad(format!("not the JSON of an image config: {e}")))?;
    let runtime = raw.config.unwrap_or_default();
    out.created = raw.created;
    out.os = raw.os;
    out.architecture = raw.architecture;
    out.variant = raw.variant;
    out.entrypoint = runtime.entrypoint;
    out.cmd = runtime.cmd;
    out.env = runtime.env.unwrap_or_default();
    out.working_dir = runtime.working_dir.filter(|w| !w.is_empty());
    out.user = runtime.user.filter(|u| !u.is_empty());
    out.labels = runtime.labels.unwrap_or_default();
    out.exposed_ports = runtime
        .exposed_ports
        .unwrap_or_default()
        .into_keys()
        .collect();
    Ok(out)
}
