//! Copying an image (or any OCI artifact) between registries and OCI layout
//! directories: `berth copy SRC DST`.
//!
//! A copy runs in three steps:
//!
//! 1. plan ([`plan`]): read the source's root manifest; for an index, every
//!    child (or only the `--platform` one, which then becomes the root);
//!    with `referrers`, every manifest whose `subject` is one of those,
//!    recursively. The result is the list of manifests, children before
//!    parents, and the set of blobs, each once.
//! 2. blobs: up to `jobs` at a time, each streamed from source to
//!    destination (never held in memory). A blob the destination holds is
//!    skipped; within one registry it is mounted from the source repository;
//!    else uploaded (monolithic first, chunked as the fallback).
//! 3. manifests, children first, by digest (skipped when present), the root
//!    last, under the destination's tag: a reader never sees a tag whose
//!    content is incomplete.
//!
//! Manifests are copied as their exact bytes, so digests are kept.

mod plan;
mod site;

use std::sync::Arc;

use berth_core::{Digest, Platform, RepositoryName, TagOrDigest};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::{ClientError, Pushed, RegistryClient, UploadOptions};
use crate::document::DocumentError;
use crate::layout::{Layout, LayoutError};

pub use plan::{Node, Plan, Role};

/// One side of a copy.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// A repository of a registry.
    Registry {
        /// The client for the registry.
        client: Arc<RegistryClient>,
        /// The repository.
        repo: RepositoryName,
        /// Source: what to read. Destination: the tag to write the root
        /// under, or its digest (then no tag is written).
        reference: TagOrDigest,
    },
    /// An OCI image layout directory.
    Layout {
        /// The layout.
        layout: Arc<Layout>,
        /// Source: the `org.opencontainers.image.ref.name` to read (`None`:
        /// the layout's only entry). Destination: the name to give the root
        /// (`None`: an entry without a name).
        tag: Option<String>,
    },
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Registry {
                client,
                repo,
                reference,
            } => {
                let sep = if reference.digest().is_some() {
                    "@"
                } else {
                    ":"
                };
                write!(f, "{}/{repo}{sep}{reference}", client.registry())
            }
            Self::Layout { layout, tag } => {
                write!(f, "oci:{}", layout.root().display())?;
                match tag {
                    Some(tag) => write!(f, ":{tag}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// How to copy.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Copy only this platform's image of an index (it becomes the root).
    pub platform: Option<Platform>,
    /// Copy the manifests that refer to the copied ones (signatures, SBOMs),
    /// found through the source's referrers API.
    pub referrers: bool,
    /// Blobs moved at once (at least 1).
    pub jobs: usize,
    /// How blobs are uploaded to a registry.
    pub upload: UploadOptions,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            platform: None,
            referrers: false,
            jobs: 4,
            upload: UploadOptions::default(),
        }
    }
}

/// How a blob reached the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// It was there already.
    Existed,
    /// Mounted from the source repository (same registry).
    Mounted,
    /// Its bytes were copied.
    Copied,
}

/// What a copy reports while it runs.
#[derive(Debug, Clone)]
pub enum CopyEvent {
    /// The plan: what will be looked at.
    Planned {
        /// Manifests (indexes included).
        manifests: usize,
        /// Distinct blobs.
        blobs: usize,
        /// Their total size.
        bytes: u64,
    },
    /// A blob's transfer started.
    BlobStarted {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// Bytes of a blob moved so far (may go back to 0 when a transfer
    /// restarts).
    BlobProgress {
        /// The blob.
        digest: Digest,
        /// Bytes moved.
        moved: u64,
    },
    /// A blob is at the destination.
    BlobDone {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
        /// How.
        outcome: BlobOutcome,
    },
    /// A manifest is at the destination.
    ManifestDone {
        /// The manifest.
        digest: Digest,
        /// Whether it was there already.
        existed: bool,
    },
}

/// Receives [`CopyEvent`]s (from several tasks at once).
pub type OnEvent = Arc<dyn Fn(&CopyEvent) + Send + Sync>;

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// The root manifest's digest (the platform's image with `platform`).
    pub digest: Option<Digest>,
    /// The root's media type.
    pub media_type: String,
    /// Manifests written.
    pub manifests_copied: usize,
    /// Manifests the destination held already.
    pub manifests_existing: usize,
    /// Referrer manifests found (included in the counts above).
    pub referrers: usize,
    /// Blobs whose bytes were copied.
    pub blobs_copied: usize,
    /// Blobs mounted within the registry.
    pub blobs_mounted: usize,
    /// Blobs the destination held already.
    pub blobs_existing: usize,
    /// Bytes of the copied blobs.
    pub bytes_copied: u64,
}

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A registry operation failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Reading or writing the layout failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A manifest could not be read.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// `--platform` names no image of the index.
    #[error(
        "{source_ref} has no image for {platform} (it has: {available}); pick one of those with --platform"
    )]
    NoPlatform {
        /// The source.
        source_ref: String,
        /// The platform asked for.
        platform: Platform,
        /// The platforms present.
        available: String,
    },
    /// The destination names a digest other than the source's root.
    #[error(
        "the destination names digest {wanted}, but the copied manifest is {actual}; give a tag, or the source's digest"
    )]
    DestinationDigest {
        /// The digest in the destination reference.
        wanted: Digest,
        /// The root's digest.
        actual: Digest,
    },
    /// More manifests than a copy will follow (a loop, or a hostile index).
    #[error("{source_ref} leads to more than {max} manifests; refusing to follow them all")]
    TooManyManifests {
        /// The source.
        source_ref: String,
        /// The limit.
        max: usize,
    },
    /// A blob task ended abnormally.
    #[error("a blob transfer stopped: {0}")]
    Task(String),
    /// A blob of a layout does not have the digest it is stored under.
    #[error(
        "blob {digest} of {source_ref} does not match its digest (the destination refused it: {reason}); \
         the layout file {path} is damaged: copy the image into the layout again"
    )]
    DamagedLayoutBlob {
        /// The blob.
        digest: Digest,
        /// The source layout.
        source_ref: String,
        /// Its file.
        path: String,
        /// What the destination said.
        reason: String,
    },
}

/// Copies `source` to `destination`.
pub async fn copy(
    source: &Endpoint,
    destination: &Endpoint,
    options: &CopyOptions,
    on_event: Option<OnEvent>,
) -> Result<CopyReport, CopyError> {
    let emit = |event: CopyEvent| {
        if let Some(f) = &on_event {
            f(&event);
        }
    };
    let plan = Plan::build(source, options).await?;
    emit(CopyEvent::Planned {
        manifests: plan.nodes.len(),
        blobs: plan.blobs.len(),
        bytes: plan.blobs.iter().map(|b| b.size).sum(),
    });
    let root = plan.root.clone();
    if let Endpoint::Registry {
        reference: TagOrDigest::Digest(wanted),
        ..
    } = destination
        && *wanted != root.digest
    {
        return Err(CopyError::DestinationDigest {
            wanted: wanted.clone(),
            actual: root.digest.clone(),
        });
    }
    let mut report = CopyReport {
        digest: Some(root.digest.clone()),
        media_type: root.media_type.clone(),
        referrers: plan.referrers,
        ..CopyReport::default()
    };

    // Blobs, `jobs` at a time, each in its own task so hashing spreads over
    // the runtime's threads.
    let permits = Arc::new(Semaphore::new(options.jobs.max(1)));
    let mut tasks = JoinSet::new();
    for blob in plan.blobs.iter().cloned() {
        let permits = permits.clone();
        let (source, destination) = (source.clone(), destination.clone());
        let upload = options.upload.clone();
        let on_event = on_event.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let outcome =
                site::transfer_blob(&source, &destination, &blob, &upload, on_event.clone())
                    .await
                    .map_err(|e| site::blame_source(&source, &blob.digest, e))?;
            if let Some(f) = &on_event {
                f(&CopyEvent::BlobDone {
                    digest: blob.digest.clone(),
                    size: blob.size,
                    outcome,
                });
            }
            Ok::<_, CopyError>((blob.size, outcome))
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (size, outcome) = match joined {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                tasks.abort_all();
                return Err(e);
            }
            Err(e) => {
                tasks.abort_all();
                return Err(CopyError::Task(e.to_string()));
            }
        };
        match outcome {
            BlobOutcome::Existed => report.blobs_existing += 1,
            BlobOutcome::Mounted => report.blobs_mounted += 1,
            BlobOutcome::Copied => {
                report.blobs_copied += 1;
                report.bytes_copied += size;
            }
        }
    }

    // Manifests, children first; the root last, under its name.
    for node in &plan.nodes {
        let existed = site::put_manifest(destination, node).await?;
        if existed {
            report.manifests_existing += 1;
        } else {
            report.manifests_copied += 1;
        }
        emit(CopyEvent::ManifestDone {
            digest: node.digest.clone(),
            existed,
        });
    }
    Ok(report)
}

impl From<Pushed> for BlobOutcome {
    fn from(pushed: Pushed) -> Self {
        match pushed {
            Pushed::Existed => Self::Existed,
            Pushed::Mounted => Self::Mounted,
            Pushed::Monolithic | Pushed::Chunked { .. } => Self::Copied,
        }
    }
}
