//! Files as an OCI artifact, stored as `oras push` stores them and read back
//! as `oras pull` reads them, so that each tool reads the other's artifacts
//! (`berth push` / `berth pull`).
//!
//! The manifest (OCI image-spec v1.1, "Guidelines for artifact usage"):
//!
//! ```text
//! {
//!   "schemaVersion": 2,
//!   "mediaType": "application/vnd.oci.image.manifest.v1+json",
//!   "artifactType": "<--artifact-type, default application/vnd.unknown.artifact.v1>",
//!   "config": <the empty descriptor: application/vnd.oci.empty.v1+json, `{}`, size 2>,
//!   "layers": [ { "mediaType": "<per file, default application/vnd.oci.image.layer.v1.tar>",
//!                 "digest", "size",
//!                 "annotations": { "org.opencontainers.image.title": "<file name>" } }, ... ],
//!   "annotations": { <--annotation k=v> }
//! }
//! ```
//!
//! The artifact type and the default layer type are those of the `oras`
//! CLI; the empty config descriptor carries its data (`e30=`) as the
//! image-spec's example does.
//!
//! Pushing uploads every file with the client's blob upload
//! ([`RegistryClient::push_blob`]: streamed from the file, skipped when
//! present), then the manifest ([`RegistryClient::put_manifest`]). Pulling
//! writes each titled layer to `DIR/<title>`: streamed to a temporary file
//! beside it, checked against the layer's digest and size as it arrives,
//! fsynced, then renamed. A title that could leave `DIR` (absolute, `..`, a
//! path separator) is refused before anything is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_core::media_type::MediaType;
use berth_core::media_type::{
    DOCKER_MANIFEST_LIST, OCI_EMPTY, OCI_IMAGE_INDEX, OCI_IMAGE_MANIFEST, OCI_LAYER_TAR,
};
use berth_core::{Algorithm, Digest, Digester, RepositoryName, TagOrDigest};
use bytes::Bytes;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::{BlobUpload, ClientError, OnProgress, RegistryClient, UploadOptions};
use crate::copy::{BlobOutcome, CopyEvent, OnEvent};
use crate::document::{Descriptor, Document, DocumentError};

/// The artifact type written when none is given (the `oras` CLI's).
pub const DEFAULT_ARTIFACT_TYPE: &str = "application/vnd.unknown.artifact.v1";
/// The media type of a file given without one (the `oras` CLI's).
pub const DEFAULT_FILE_MEDIA_TYPE: &str = OCI_LAYER_TAR;
/// The annotation holding a layer's file name.
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// The empty JSON object `{}`: the config blob of an artifact.
pub const EMPTY_CONFIG: &[u8] = b"{}";

/// The manifest media type asked for first when pulling (an index is
/// accepted too, to say what it is).
const MANIFEST_ACCEPT: [&str; 1] = [OCI_IMAGE_MANIFEST];
/// Distinguishes the temporary files of one process.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// Why pushing or pulling files failed.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// A registry operation failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The manifest could not be read.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// A local file or directory could not be used.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`read`, `create`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A `FILE[:TYPE]` argument that cannot be pushed.
    #[error("cannot push `{arg}`: {reason}")]
    BadFile {
        /// The argument.
        arg: String,
        /// Why, and what to do.
        reason: String,
    },
    /// A layer's title would write outside the directory, or is not a file name.
    #[error(
        "layer {digest} is titled `{title}`, which is not a plain file name ({reason}); refusing \
         to write it, nor anything else of this artifact: a title must stay inside the directory"
    )]
    UnsafeTitle {
        /// The layer.
        digest: Digest,
        /// Its title.
        title: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two layers (or two files) with one title.
    #[error("two layers are titled `{title}`; refusing, since one file would overwrite the other")]
    DuplicateTitle {
        /// The title.
        title: String,
    },
    /// The reference names an index, not a manifest of files.
    #[error(
        "{reference} is an index (a multi-platform image), not an artifact of files; copy it with \
         `berth copy {reference} oci:DIR`"
    )]
    Index {
        /// The reference.
        reference: String,
    },
    /// No layer of the manifest names a file.
    #[error(
        "{reference} has no layer with a file name (org.opencontainers.image.title): it is not an \
         artifact of files (an image?); copy it with `berth copy {reference} oci:DIR`, or get one \
         blob with `berth blob get`"
    )]
    NoFiles {
        /// The reference.
        reference: String,
    },
    /// A layer's bytes are not as long as its descriptor says.
    #[error(
        "layer {digest} ({title}) is {actual} bytes, but the manifest says {expected}; the \
         registry or a proxy altered it: nothing of it was kept"
    )]
    SizeMismatch {
        /// The layer.
        digest: Digest,
        /// Its title.
        title: String,
        /// The manifest's size.
        expected: u64,
        /// The size received (so far).
        actual: u64,
    },
    /// A transfer task ended abnormally.
    #[error("a file transfer stopped: {0}")]
    Task(String),
}

/// One file to push: `FILE[:TYPE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactFile {
    /// Where it is read from.
    pub path: PathBuf,
    /// Its file name, stored as the layer's title.
    pub title: String,
    /// The layer's media type.
    pub media_type: String,
}

impl ArtifactFile {
    /// Parses `FILE[:TYPE]` as `oras push` does: the media type after the
    /// last `:`, unless the whole argument names an existing file.
    pub fn parse(arg: &str) -> Result<Self, ArtifactError> {
        let bad = |reason: String| ArtifactError::BadFile {
            arg: arg.to_owned(),
            reason,
        };
        let (path, media_type) = match arg.rsplit_once(':') {
            Some((path, media_type)) if !Path::new(arg).exists() && !path.is_empty() => {
                MediaType::parse(media_type).map_err(|e| {
                    bad(format!(
                        "`{media_type}` is not a media type ({e}); give FILE or FILE:TYPE, such \
                         as notes.txt:text/plain"
                    ))
                })?;
                (PathBuf::from(path), media_type.to_owned())
            }
            _ => (PathBuf::from(arg), DEFAULT_FILE_MEDIA_TYPE.to_owned()),
        };
        let title = path
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| bad("it names no file (or not in UTF-8)".to_owned()))?
            .to_owned();
        if let Err(reason) = check_title(&title) {
            return Err(bad(format!("its name is not a plain file name ({reason})")));
        }
        Ok(Self {
            path,
            title,
            media_type,
        })
    }
}

/// How files are pushed.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// The manifest's `artifactType`.
    pub artifact_type: String,
    /// The manifest's `annotations`.
    pub annotations: BTreeMap<String, String>,
    /// Files uploaded at once (at least 1).
    pub jobs: usize,
    /// How blobs are uploaded.
    pub upload: UploadOptions,
}

impl Default for PushOptions {
    fn default() -> Self {
        Self {
            artifact_type: DEFAULT_ARTIFACT_TYPE.to_owned(),
            annotations: BTreeMap::new(),
            jobs: 4,
            upload: UploadOptions::default(),
        }
    }
}

/// One file of an artifact, pushed or pulled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    /// Its title (file name).
    pub title: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// How it reached the registry (pushing) or the directory (pulling:
    /// always copied).
    pub outcome: BlobOutcome,
    /// Pulling: where it was written.
    pub path: Option<PathBuf>,
}

/// What a push or a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactReport {
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's artifact type (pulling: as found, if any).
    pub artifact_type: Option<String>,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The files, in the manifest's order.
    pub files: Vec<FileReport>,
    /// Pulling: the layers without a title, which were not written.
    pub skipped: Vec<Descriptor>,
    /// Pushing: whether the manifest was written (`false`: the same bytes
    /// were there under the tag already).
    pub manifest_written: bool,
}

/// Whether `title` is a plain file name that stays inside a directory.
pub fn check_title(title: &str) -> Result<(), &'static str> {
    if title.is_empty() {
        Err("it is empty")
    } else if title == "." || title == ".." {
        Err("it names a directory")
    } else if title.starts_with('/') {
        Err("it is an absolute path")
    } else if title.contains('/') || title.contains('\\') {
        Err("it holds a path separator")
    } else if title.contains('\0') {
        Err("it holds a NUL byte")
    } else {
        Ok(())
    }
}

/// The empty descriptor, for an artifact's config.
fn empty_config() -> (Digest, u64) {
    (Digest::sha256_of(EMPTY_CONFIG), EMPTY_CONFIG.len() as u64)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestOut<'a> {
    schema_version: u32,
    media_type: &'static str,
    artifact_type: &'a str,
    config: DescriptorOut<'a>,
    layers: Vec<DescriptorOut<'a>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DescriptorOut<'a> {
    media_type: &'a str,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'static str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'static str, &'a str>,
}

/// The manifest bytes for `files` (hashed) with `options`.
fn manifest_bytes(files: &[FileReport], options: &PushOptions) -> Result<Bytes, ArtifactError> {
    let (config_digest, config_size) = empty_config();
    let manifest = ManifestOut {
        schema_version: 2,
        media_type: OCI_IMAGE_MANIFEST,
        artifact_type: &options.artifact_type,
        config: DescriptorOut {
            media_type: OCI_EMPTY,
            digest: config_digest.to_string(),
            size: config_size,
            data: Some("e30="),
            annotations: BTreeMap::new(),
        },
        layers: files
            .iter()
            .map(|f| DescriptorOut {
                media_type: &f.media_type,
                digest: f.digest.to_string(),
                size: f.size,
                data: None,
                annotations: BTreeMap::from([(TITLE_ANNOTATION, f.title.as_str())]),
            })
            .collect(),
        annotations: &options.annotations,
    };
    serde_json::to_vec(&manifest)
        .map(Bytes::from)
        .map_err(|e| ArtifactError::BadFile {
            arg: "the manifest".to_owned(),
            reason: e.to_string(),
        })
}

/// Pushes `files` as one artifact to `repo` under `reference` (a tag, or
/// the manifest's digest).
pub async fn push(
    client: Arc<RegistryClient>,
    repo: &RepositoryName,
    reference: &TagOrDigest,
    files: &[ArtifactFile],
    options: &PushOptions,
    on_event: Option<OnEvent>,
) -> Result<ArtifactReport, ArtifactError> {
    let emit = |event: CopyEvent| {
        if let Some(f) = &on_event {
            f(&event);
        }
    };
    // Every file checked before anything is sent.
    let mut sizes = Vec::with_capacity(files.len());
    for (i, file) in files.iter().enumerate() {
        if files[..i].iter().any(|other| other.title == file.title) {
            return Err(ArtifactError::DuplicateTitle {
                title: file.title.clone(),
            });
        }
        let meta = tokio::fs::metadata(&file.path)
            .await
            .map_err(io("read", &file.path))?;
        if !meta.is_file() {
            return Err(ArtifactError::BadFile {
                arg: file.path.display().to_string(),
                reason: "it is not a regular file (to push a directory, archive it first: \
                         tar -czf dir.tar.gz dir)"
                    .to_owned(),
            });
        }
        sizes.push(meta.len());
    }
    let (config_digest, config_size) = empty_config();
    emit(CopyEvent::Planned {
        manifests: 1,
        blobs: files.len() + 1,
        bytes: sizes.iter().sum::<u64>() + config_size,
    });
    let config = BlobUpload::from_bytes(Bytes::from_static(EMPTY_CONFIG));
    let pushed = client
        .push_blob(repo, &config, &options.upload, None)
        .await?;
    emit(CopyEvent::BlobDone {
        digest: config_digest,
        size: config_size,
        outcome: pushed.into(),
    });

    let permits = Arc::new(Semaphore::new(options.jobs.max(1)));
    let mut tasks = JoinSet::new();
    for (index, file) in files.iter().cloned().enumerate() {
        let permits = permits.clone();
        let client = client.clone();
        let repo = repo.clone();
        let upload = options.upload.clone();
        let on_event = on_event.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let (digest, size) = hash_file(&file.path).await?;
            if let Some(f) = &on_event {
                f(&CopyEvent::BlobStarted {
                    digest: digest.clone(),
                    size,
                });
            }
            let progress: Option<OnProgress> = on_event.clone().map(|f| {
                let digest = digest.clone();
                let progress: OnProgress = Arc::new(move |moved| {
                    f(&CopyEvent::BlobProgress {
                        digest: digest.clone(),
                        moved,
                    });
                });
                progress
            });
            let blob = BlobUpload::from_file(file.path.clone(), digest.clone(), size);
            let outcome: BlobOutcome = client
                .push_blob(&repo, &blob, &upload, progress)
                .await?
                .into();
            if let Some(f) = &on_event {
                f(&CopyEvent::BlobDone {
                    digest: digest.clone(),
                    size,
                    outcome,
                });
            }
            Ok::<_, ArtifactError>((
                index,
                FileReport {
                    title: file.title,
                    digest,
                    size,
                    media_type: file.media_type,
                    outcome,
                    path: Some(file.path),
                },
            ))
        });
    }
    let mut done: Vec<Option<FileReport>> = vec![None; files.len()];
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok((index, report))) => {
                if let Some(slot) = done.get_mut(index) {
                    *slot = Some(report);
                }
            }
            Ok(Err(e)) => {
                tasks.abort_all();
                return Err(e);
            }
            Err(e) => {
                tasks.abort_all();
                return Err(ArtifactError::Task(e.to_string()));
            }
        }
    }
    let reports: Vec<FileReport> = done.into_iter().flatten().collect();
    let bytes = manifest_bytes(&reports, options)?;
    let digest = Digest::sha256_of(&bytes);
    // The same bytes under the tag already: nothing to write.
    let existing = match client.head_manifest(repo, reference).await {
        Ok(head) => Some(head.digest),
        Err(ClientError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let manifest_written = existing.as_ref() != Some(&digest);
    if manifest_written {
        client
            .put_manifest(repo, reference, OCI_IMAGE_MANIFEST, bytes)
            .await?;
    }
    emit(CopyEvent::ManifestDone {
        digest: digest.clone(),
        existed: !manifest_written,
    });
    Ok(ArtifactReport {
        digest,
        artifact_type: Some(options.artifact_type.clone()),
        annotations: options.annotations.clone(),
        files: reports,
        skipped: Vec::new(),
        manifest_written,
    })
}

/// The sha256 and size of the file at `path`, read in pieces off the async
/// threads.
async fn hash_file(path: &Path) -> Result<(Digest, u64), ArtifactError> {
    let owned = path.to_owned();
    let hashed = tokio::task::spawn_blocking(move || -> std::io::Result<(Digest, u64)> {
        use std::io::Read;
        let mut file = std::fs::File::open(&owned)?;
        let mut digester = Digester::new(Algorithm::Sha256);
        let mut buffer = vec![0u8; 1024 * 1024];
        loop {
            let n = match file.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            digester.update(buffer.get(..n).unwrap_or_default());
        }
        let size = digester.bytes_hashed();
        Ok((digester.finalize(), size))
    })
    .await
    .map_err(|e| ArtifactError::Task(e.to_string()))?;
    hashed.map_err(io("read", path))
}

/// Pulls the artifact `reference` of `repo` into `dir` (created if
/// missing): each titled layer to `dir/<title>`, `jobs` at a time.
pub async fn pull(
    client: Arc<RegistryClient>,
    repo: &RepositoryName,
    reference: &TagOrDigest,
    dir: &Path,
    jobs: usize,
    on_event: Option<OnEvent>,
) -> Result<ArtifactReport, ArtifactError> {
    let shown = match reference {
        TagOrDigest::Digest(d) => format!("{}/{repo}@{d}", client.registry()),
        TagOrDigest::Tag(t) => format!("{}/{repo}:{t}", client.registry()),
    };
    let mut accept = MANIFEST_ACCEPT.to_vec();
    accept.extend([OCI_IMAGE_INDEX, DOCKER_MANIFEST_LIST]);
    let manifest = client.get_manifest(repo, reference, &accept).await?;
    let document = Document::parse(&manifest.bytes, &format!("the manifest of {shown}"))?;
    if document.is_index(&manifest.media_type) {
        return Err(ArtifactError::Index { reference: shown });
    }
    // Every title checked before anything is written.
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for layer in &document.layers {
        let Some(title) = layer.annotations.get(TITLE_ANNOTATION) else {
            skipped.push(layer.clone());
            continue;
        };
        check_title(title).map_err(|reason| ArtifactError::UnsafeTitle {
            digest: layer.digest.clone(),
            title: title.clone(),
            reason,
        })?;
        if files.iter().any(|(t, _): &(String, Descriptor)| t == title) {
            return Err(ArtifactError::DuplicateTitle {
                title: title.clone(),
            });
        }
        files.push((title.clone(), layer.clone()));
    }
    if files.is_empty() {
        return Err(ArtifactError::NoFiles { reference: shown });
    }
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(io("create", dir))?;
    if let Some(f) = &on_event {
        f(&CopyEvent::Planned {
            manifests: 1,
            blobs: files.len(),
            bytes: files.iter().map(|(_, d)| d.size).sum(),
        });
    }
    let permits = Arc::new(Semaphore::new(jobs.max(1)));
    let mut tasks = JoinSet::new();
    for (index, (title, layer)) in files.iter().cloned().enumerate() {
        let permits = permits.clone();
        let client = client.clone();
        let repo = repo.clone();
        let dir = dir.to_owned();
        let on_event = on_event.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let path = download(&client, &repo, &layer, &title, &dir, on_event.as_ref()).await?;
            if let Some(f) = &on_event {
                f(&CopyEvent::BlobDone {
                    digest: layer.digest.clone(),
                    size: layer.size,
                    outcome: BlobOutcome::Copied,
                });
            }
            Ok::<_, ArtifactError>((
                index,
                FileReport {
                    title,
                    digest: layer.digest,
                    size: layer.size,
                    media_type: layer.media_type,
                    outcome: BlobOutcome::Copied,
                    path: Some(path),
                },
            ))
        });
    }
    let mut done: Vec<Option<FileReport>> = vec![None; files.len()];
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok((index, report))) => {
                if let Some(slot) = done.get_mut(index) {
                    *slot = Some(report);
                }
            }
            Ok(Err(e)) => {
                tasks.abort_all();
                return Err(e);
            }
            Err(e) => {
                tasks.abort_all();
                return Err(ArtifactError::Task(e.to_string()));
            }
        }
    }
    Ok(ArtifactReport {
        digest: manifest.digest,
        artifact_type: document.artifact_type,
        annotations: document.annotations,
        files: done.into_iter().flatten().collect(),
        skipped,
        manifest_written: false,
    })
}

/// Streams `layer` to `dir/<title>` through a temporary file beside it,
/// checked against its size and digest, fsynced, then renamed.
async fn download(
    client: &RegistryClient,
    repo: &RepositoryName,
    layer: &Descriptor,
    title: &str,
    dir: &Path,
    on_event: Option<&OnEvent>,
) -> Result<PathBuf, ArtifactError> {
    let target = dir.join(title);
    let temp = dir.join(format!(
        ".{title}.{}.{}.partial",
        std::process::id(),
        NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .await
        .map_err(io("create", &temp))?;
    let guard = RemoveOnDrop(Some(temp.clone()));
    if let Some(f) = on_event {
        f(&CopyEvent::BlobStarted {
            digest: layer.digest.clone(),
            size: layer.size,
        });
    }
    let mut stream = client.get_blob(repo, &layer.digest).await?;
    let mut written: u64 = 0;
    while let Some(chunk) = stream.next_chunk().await {
        let chunk = chunk?;
        written += chunk.len() as u64;
        if written > layer.size {
            return Err(ArtifactError::SizeMismatch {
                digest: layer.digest.clone(),
                title: title.to_owned(),
                expected: layer.size,
                actual: written,
            });
        }
        file.write_all(&chunk).await.map_err(io("write", &temp))?;
        if let Some(f) = on_event {
            f(&CopyEvent::BlobProgress {
                digest: layer.digest.clone(),
                moved: written,
            });
        }
    }
    if written != layer.size {
        return Err(ArtifactError::SizeMismatch {
            digest: layer.digest.clone(),
            title: title.to_owned(),
            expected: layer.size,
            actual: written,
        });
    }
    file.sync_all().await.map_err(io("write", &temp))?;
    drop(file);
    tokio::fs::rename(&temp, &target)
        .await
        .map_err(io("write", &target))?;
    guard.keep();
    if let Ok(dir) = tokio::fs::File::open(dir).await {
        // Makes the rename durable; a failure here loses nothing written.
        let _ = dir.sync_all().await;
    }
    Ok(target)
}

/// Removes a temporary file unless kept.
struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            // Best effort: the error that matters is the one returned.
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Maps an I/O error on `path` while doing `action`.
fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ArtifactError {
    let path = path.to_owned();
    move |source| ArtifactError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_that_leave_the_directory_are_refused() {
        for bad in ["", ".", "..", "/etc/passwd", "../x", "a/b", "a\\b", "x\0y"] {
            assert!(check_title(bad).is_err(), "{bad:?}");
        }
        for good in ["hello.txt", "..hidden", ".env", "a:b", "x..y"] {
            assert!(check_title(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn a_file_argument_takes_a_media_type_after_its_last_colon() {
        let f = ArtifactFile::parse("dir/notes.txt:text/plain").unwrap();
        assert_eq!(f.path, PathBuf::from("dir/notes.txt"));
        assert_eq!(f.title, "notes.txt");
        assert_eq!(f.media_type, "text/plain");
        let f = ArtifactFile::parse("hello.bin").unwrap();
        assert_eq!(f.media_type, DEFAULT_FILE_MEDIA_TYPE);
        let e = ArtifactFile::parse("x.txt:not a type").unwrap_err();
        assert!(e.to_string().contains("not a media type"), "{e}");
        assert!(ArtifactFile::parse("..").is_err());
    }

    #[test]
    fn the_manifest_is_an_oci_artifact_with_the_empty_config() {
        let files = [FileReport {
            title: "a.txt".to_owned(),
            digest: Digest::sha256_of(b"a"),
            size: 1,
            media_type: "text/plain".to_owned(),
            outcome: BlobOutcome::Copied,
            path: None,
        }];
        let options = PushOptions {
            annotations: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
            ..PushOptions::default()
        };
        let bytes = manifest_bytes(&files, &options).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_IMAGE_MANIFEST,
                "artifactType": DEFAULT_ARTIFACT_TYPE,
                "config": {
                    "mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                    "size": 2,
                    "data": "e30=",
                },
                "layers": [{
                    "mediaType": "text/plain",
                    "digest": Digest::sha256_of(b"a").to_string(),
                    "size": 1,
                    "annotations": {TITLE_ANNOTATION: "a.txt"},
                }],
                "annotations": {"k": "v"},
            })
        );
    }
}
