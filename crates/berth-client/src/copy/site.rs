//! What a copy does on each kind of endpoint: read manifests and referrers,
//! move a blob, write a manifest. A registry and a layout differ only here.

use std::sync::Arc;

use berth_core::{Digest, TagOrDigest};
use bytes::Bytes;
use futures_util::StreamExt;

use super::plan::{Node, Role};
use super::{BlobOutcome, CopyError, CopyEvent, Endpoint, OnEvent};
use crate::auth::ByteStream;
use crate::client::{BlobUpload, ClientError, OnProgress, OpenBlob, UploadOptions};
use crate::document::{Descriptor, Document};
use crate::layout::{Layout, LayoutEntry};

/// The most bytes of a manifest read from a layout.
const MAX_MANIFEST: usize = 8 * 1024 * 1024;

/// The manifest the source names, and its document.
pub(super) async fn root_manifest(source: &Endpoint) -> Result<(Node, Document), CopyError> {
    match source {
        Endpoint::Registry {
            client,
            repo,
            reference,
        } => {
            let manifest = client.get_manifest(repo, reference, &[]).await?;
            node(
                manifest.digest,
                manifest.media_type,
                manifest.bytes,
                &source.to_string(),
            )
        }
        Endpoint::Layout { layout, tag } => {
            let entry = layout.resolve(tag.as_deref())?;
            let bytes = layout.read_manifest(&entry.digest, MAX_MANIFEST).await?;
            node(entry.digest, entry.media_type, bytes, &source.to_string())
        }
    }
}

/// The manifest `descriptor` names, read from the source by digest.
pub(super) async fn manifest(
    source: &Endpoint,
    descriptor: &Descriptor,
) -> Result<(Node, Document), CopyError> {
    let what = format!("{source}: manifest {}", descriptor.digest);
    match source {
        Endpoint::Registry { client, repo, .. } => {
            let reference = TagOrDigest::Digest(descriptor.digest.clone());
            let accept: Vec<&str> = if descriptor.media_type.is_empty() {
                Vec::new()
            } else {
                vec![descriptor.media_type.as_str()]
            };
            let manifest = client.get_manifest(repo, &reference, &accept).await?;
            node(manifest.digest, manifest.media_type, manifest.bytes, &what)
        }
        Endpoint::Layout { layout, .. } => {
            let bytes = layout
                .read_manifest(&descriptor.digest, MAX_MANIFEST)
                .await?;
            node(
                descriptor.digest.clone(),
                descriptor.media_type.clone(),
                bytes,
                &what,
            )
        }
    }
}

fn node(
    digest: Digest,
    media_type: String,
    bytes: Bytes,
    what: &str,
) -> Result<(Node, Document), CopyError> {
    let doc = Document::parse(&bytes, what)?;
    // A layout entry or a registry may leave the type out; the document's
    // own `mediaType` then says it.
    let media_type = if media_type.is_empty() {
        doc.media_type.clone().unwrap_or_default()
    } else {
        media_type
    };
    Ok((
        Node {
            digest,
            media_type,
            bytes,
            role: Role::Child,
        },
        doc,
    ))
}

/// The manifests whose `subject` is `subject`.
pub(super) async fn referrers(
    source: &Endpoint,
    subject: &Digest,
) -> Result<Vec<Descriptor>, CopyError> {
    match source {
        Endpoint::Registry { client, repo, .. } => Ok(client.referrers(repo, subject).await?),
        Endpoint::Layout { layout, .. } => {
            // A layout has no referrers API: its index entries are read and
            // those whose manifest names the subject are kept.
            let mut found = Vec::new();
            for entry in layout.entries()? {
                if entry.digest == *subject {
                    continue;
                }
                let bytes = layout.read_manifest(&entry.digest, MAX_MANIFEST).await?;
                let what = format!("{source}: manifest {}", entry.digest);
                let doc = Document::parse(&bytes, &what)?;
                if doc.subject.as_ref().is_some_and(|s| s.digest == *subject) {
                    found.push(Descriptor {
                        media_type: entry.media_type.clone(),
                        digest: entry.digest.clone(),
                        size: entry.size,
                        artifact_type: None,
                        platform: None,
                        annotations: Default::default(),
                    });
                }
            }
            Ok(found)
        }
    }
}

/// Moves one blob from `source` to `destination`.
pub(super) async fn transfer_blob(
    source: &Endpoint,
    destination: &Endpoint,
    blob: &Descriptor,
    upload: &UploadOptions,
    on_event: Option<OnEvent>,
) -> Result<BlobOutcome, CopyError> {
    let started = |on_event: &Option<OnEvent>| {
        if let Some(f) = on_event {
            f(&CopyEvent::BlobStarted {
                digest: blob.digest.clone(),
                size: blob.size,
            });
        }
    };
    let progress: Option<OnProgress> = on_event.clone().map(|f| {
        let digest = blob.digest.clone();
        let progress: OnProgress = Arc::new(move |moved| {
            f(&CopyEvent::BlobProgress {
                digest: digest.clone(),
                moved,
            });
        });
        progress
    });
    match destination {
        Endpoint::Registry { client, repo, .. } => {
            let mount_from = match source {
                Endpoint::Registry {
                    client: from,
                    repo: from_repo,
                    ..
                } if from.registry() == client.registry() && from_repo != repo => {
                    Some(from_repo.clone())
                }
                _ => None,
            };
            let upload_blob = BlobUpload {
                digest: blob.digest.clone(),
                size: blob.size,
                open: opener(source, blob),
                mount_from,
            };
            started(&on_event);
            let pushed = client
                .push_blob(repo, &upload_blob, upload, progress)
                .await?;
            Ok(pushed.into())
        }
        Endpoint::Layout { layout, .. } => {
            if layout.has_blob(&blob.digest, blob.size).await {
                return Ok(BlobOutcome::Existed);
            }
            started(&on_event);
            write_to_layout(layout, source, blob, progress).await?;
            Ok(BlobOutcome::Copied)
        }
    }
}

/// Opens the source's bytes of `blob` from an offset, anew at each call.
fn opener(source: &Endpoint, blob: &Descriptor) -> OpenBlob {
    let source = source.clone();
    let digest = blob.digest.clone();
    Arc::new(move |offset| {
        let source = source.clone();
        let digest = digest.clone();
        Box::pin(async move { open_source(&source, &digest, offset).await })
    })
}

/// A stream of the source's bytes of `digest`. They are not hashed on the
/// way: every receiver checks them against the digest and refuses a
/// mismatch (a registry on the closing `PUT`, a layout's [`BlobWriter`] on
/// commit), so hashing here too would only spend CPU.
///
/// [`BlobWriter`]: crate::layout::BlobWriter
///
/// From a registry, a download cut off midway continues from where it
/// stopped ([`crate::client::BlobStream`]); `offset` starts it further in
/// (an upload continued after a cut).
async fn open_source(
    source: &Endpoint,
    digest: &Digest,
    offset: u64,
) -> Result<ByteStream, std::io::Error> {
    match source {
        Endpoint::Registry { client, repo, .. } => {
            let stream = client
                .get_blob_from(repo, digest, offset)
                .await
                .map_err(std::io::Error::other)?
                .unverified();
            Ok(Box::pin(
                stream.map(|item| item.map_err(std::io::Error::other)),
            ))
        }
        Endpoint::Layout { layout, .. } => {
            let (mut file, size) = layout
                .open_blob(digest)
                .await
                .map_err(std::io::Error::other)?;
            if offset > 0 {
                tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::Start(offset)).await?;
            }
            Ok(crate::file::file_stream(file, size.saturating_sub(offset)))
        }
    }
}

async fn write_to_layout(
    layout: &Layout,
    source: &Endpoint,
    blob: &Descriptor,
    progress: Option<OnProgress>,
) -> Result<(), CopyError> {
    let mut stream = open_source(source, &blob.digest, 0)
        .await
        .map_err(|e| source_error(source, &blob.digest, e))?;
    let mut writer = layout.blob_writer(&blob.digest).await?;
    let mut moved = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| source_error(source, &blob.digest, e))?;
        writer.write(&chunk).await?;
        moved += chunk.len() as u64;
        if let Some(progress) = &progress {
            progress(moved);
        }
    }
    writer.commit().await?;
    Ok(())
}

/// A failure reading a blob from the source, as the error it was (a client
/// or layout error travels inside the `io::Error` of a stream).
fn source_error(source: &Endpoint, digest: &Digest, e: std::io::Error) -> CopyError {
    let e = match e.downcast::<ClientError>() {
        Ok(client) => return CopyError::Client(client),
        Err(e) => e,
    };
    let e = match e.downcast::<crate::layout::LayoutError>() {
        Ok(layout) => return CopyError::Layout(layout),
        Err(e) => e,
    };
    CopyError::Task(format!("reading blob {digest} from {source}: {e}"))
}

/// A destination's refusal of a layout blob's bytes, told as what it is: the
/// layout's file is damaged (the registry only knows the upload was wrong).
pub(super) fn blame_source(source: &Endpoint, digest: &Digest, error: CopyError) -> CopyError {
    let Endpoint::Layout { layout, .. } = source else {
        return error;
    };
    let refused_digest = match &error {
        CopyError::Client(ClientError::Status {
            status: 400,
            message,
            ..
        }) => message.contains("DIGEST_INVALID").then(|| message.clone()),
        CopyError::Client(e @ ClientError::DigestMismatch { .. }) => Some(e.to_string()),
        _ => None,
    };
    match refused_digest {
        Some(reason) => CopyError::DamagedLayoutBlob {
            digest: digest.clone(),
            source_ref: source.to_string(),
            path: layout.blob_path(digest).display().to_string(),
            reason,
        },
        None => error,
    }
}

/// Writes `node` to the destination: the root under the destination's name,
/// others by digest. Returns whether the destination held it already.
pub(super) async fn put_manifest(destination: &Endpoint, node: &Node) -> Result<bool, CopyError> {
    match destination {
        Endpoint::Registry {
            client,
            repo,
            reference,
        } => {
            let by_digest = TagOrDigest::Digest(node.digest.clone());
            let held = match client.head_manifest(repo, &by_digest).await {
                Ok(_) => true,
                Err(ClientError::NotFound { .. }) => false,
                Err(e) => return Err(e.into()),
            };
            let target = match node.role {
                Role::Root => reference.clone(),
                Role::Child | Role::Referrer => by_digest,
            };
            // The root is written even when held: its tag may point elsewhere.
            if held && target.digest().is_some() {
                return Ok(true);
            }
            client
                .put_manifest(repo, &target, &node.media_type, node.bytes.clone())
                .await?;
            Ok(held)
        }
        Endpoint::Layout { layout, tag } => {
            let held = layout.has_blob(&node.digest, node.bytes.len() as u64).await;
            if !held {
                layout.write_blob_bytes(&node.digest, &node.bytes).await?;
            }
            let entry = |tag: Option<String>| LayoutEntry {
                digest: node.digest.clone(),
                media_type: node.media_type.clone(),
                size: node.bytes.len() as u64,
                tag,
            };
            match node.role {
                Role::Root => layout.add_manifest(&entry(tag.clone()))?,
                Role::Referrer => layout.add_manifest(&entry(None))?,
                Role::Child => {}
            }
            Ok(held)
        }
    }
}
