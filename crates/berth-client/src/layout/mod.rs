//! OCI image layout directories (image-spec `image-layout.md`): the `oci:DIR[:TAG]`
//! source and destination of `berth copy`, in the format skopeo and podman use.
//!
//! ```text
//! DIR/oci-layout           {"imageLayoutVersion":"1.0.0"}
//! DIR/index.json           an image index: one manifest descriptor per image,
//!                          tagged by its `org.opencontainers.image.ref.name` annotation
//! DIR/blobs/<alg>/<hex>    every manifest, config and layer, named by its digest
//! ```
//!
//! The rules kept here:
//!
//! - A tag names the entry of `index.json` whose `org.opencontainers.image.ref.name`
//!   is that tag. Without a tag, a layout holding exactly one entry names it;
//!   otherwise the error lists the tags present.
//! - A blob appears under its name only complete, verified and fsynced
//!   ([`BlobWriter`]); a blob is read only with its digest checked (manifests
//!   here, layers by whoever streams them).
//! - `index.json` and `oci-layout` are replaced whole (temporary file, fsync,
//!   rename), never edited in place; every field berth does not know (platforms,
//!   other annotations, top-level fields) is written back unchanged.
//! - Tagging replaces the entry that carried the tag (skopeo's older behaviour;
//!   current skopeo keeps the old entry without its tag). An entry is added only
//!   once its manifest blob is in place, so `index.json` never names a missing blob.
//! - Two processes editing one `index.json` at once are not serialised (nor are
//!   they by skopeo): the later write wins.
//!
//! Blobs go through `tokio::fs`; the two small JSON files through `std::fs`.

mod error;
mod index;
mod reference;
mod writer;

use std::io;
use std::path::{Path, PathBuf};

use berth_core::Digest;
use bytes::Bytes;
use serde::Deserialize;
use tokio::io::AsyncReadExt;

pub use error::LayoutError;
pub use reference::LayoutRef;
pub use writer::BlobWriter;

use index::{IndexFile, read_capped, read_index, write_atomic, write_index};

/// The file marking a directory as a layout.
const OCI_LAYOUT: &str = "oci-layout";
/// The file listing the layout's images.
const INDEX_JSON: &str = "index.json";
/// The directory of blobs.
const BLOBS: &str = "blobs";
/// What berth writes to `oci-layout`.
const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// The most bytes of `oci-layout` read.
const MAX_OCI_LAYOUT: u64 = 64 * 1024;

/// One entry of `index.json`: a manifest (or index) descriptor and its tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutEntry {
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's media type.
    pub media_type: String,
    /// The manifest's size in bytes.
    pub size: u64,
    /// The `org.opencontainers.image.ref.name` annotation, if present and not
    /// empty.
    pub tag: Option<String>,
}

/// An OCI image layout directory, checked to be one.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

/// `oci-layout`.
#[derive(Deserialize)]
struct Marker {
    #[serde(rename = "imageLayoutVersion")]
    version: String,
}

impl Layout {
    /// Opens the layout at `dir`: it must exist and hold an `oci-layout` of
    /// version 1.x.
    pub fn open(dir: &Path) -> Result<Self, LayoutError> {
        match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(LayoutError::NotADirectory {
                    path: dir.to_owned(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(LayoutError::NoDirectory {
                    dir: dir.to_owned(),
                });
            }
            Err(source) => return Err(LayoutError::io("read", dir)(source)),
        }
        let path = dir.join(OCI_LAYOUT);
        let Some(bytes) = read_capped(&path, MAX_OCI_LAYOUT)? else {
            return Err(LayoutError::NotALayout {
                dir: dir.to_owned(),
            });
        };
        let marker: Marker = serde_json::from_slice(&bytes).map_err(|e| LayoutError::Invalid {
            path: path.clone(),
            reason: format!("not an oci-layout file ({e})"),
        })?;
        if marker.version.split('.').next() != Some("1") {
            return Err(LayoutError::UnsupportedVersion {
                path,
                version: marker.version,
            });
        }
        Ok(Self {
            root: dir.to_owned(),
        })
    }

    /// Opens the layout at `dir`, or makes one there: the directory (and its
    /// parents), `oci-layout`, `blobs/` and an `index.json` without entries.
    /// A directory that exists, is not empty and is not a layout is refused.
    /// A layout missing its `index.json` or `blobs/` gets them.
    pub fn create(dir: &Path) -> Result<Self, LayoutError> {
        let exists = match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => true,
            Ok(_) => {
                return Err(LayoutError::NotADirectory {
                    path: dir.to_owned(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(source) => return Err(LayoutError::io("read", dir)(source)),
        };
        let marker = dir.join(OCI_LAYOUT);
        let is_layout = exists
            && marker
                .try_exists()
                .map_err(LayoutError::io("read", &marker))?;
        if exists && !is_layout {
            let mut listing = std::fs::read_dir(dir).map_err(LayoutError::io("read", dir))?;
            if listing.next().is_some() {
                return Err(LayoutError::NotEmpty {
                    dir: dir.to_owned(),
                });
            }
        }
        if !exists {
            std::fs::create_dir_all(dir).map_err(LayoutError::io("create", dir))?;
        }
        // oci-layout first: a layout cut short by a crash is then still
        // recognised as one, and completed by the next create.
        if !is_layout {
            write_atomic(&marker, OCI_LAYOUT_CONTENT)?;
        }
        let layout = Self::open(dir)?;
        let blobs = dir.join(BLOBS);
        std::fs::create_dir_all(&blobs).map_err(LayoutError::io("create", &blobs))?;
        let index = dir.join(INDEX_JSON);
        if !index
            .try_exists()
            .map_err(LayoutError::io("read", &index))?
        {
            write_index(&index, &IndexFile::empty())?;
        }
        Ok(layout)
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The entries of `index.json`, in its order.
    pub fn entries(&self) -> Result<Vec<LayoutEntry>, LayoutError> {
        let path = self.root.join(INDEX_JSON);
        let Some(index) = read_index(&path)? else {
            return Err(LayoutError::Invalid {
                path,
                reason: "no such file, and an OCI layout needs one".to_owned(),
            });
        };
        index
            .manifests
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let digest = Digest::parse(&d.digest).map_err(|e| LayoutError::Invalid {
                    path: path.clone(),
                    reason: format!("manifests[{i}]: {e}"),
                })?;
                Ok(LayoutEntry {
                    digest,
                    media_type: d.media_type.clone(),
                    size: d.size,
                    tag: d.tag().map(str::to_owned),
                })
            })
            .collect()
    }

    /// The entry tagged `tag`; without a tag, the only entry. Errors list the
    /// tags present.
    pub fn resolve(&self, tag: Option<&str>) -> Result<LayoutEntry, LayoutError> {
        let mut entries = self.entries()?;
        let found = match tag {
            Some(tag) => entries.iter().position(|e| e.tag.as_deref() == Some(tag)),
            None if entries.len() == 1 => Some(0),
            None => None,
        };
        if let Some(at) = found {
            return Ok(entries.swap_remove(at));
        }
        let dir = self.root.clone();
        let untagged = entries.iter().filter(|e| e.tag.is_none()).count();
        let tags: Vec<String> = entries.into_iter().filter_map(|e| e.tag).collect();
        Err(match tag {
            Some(tag) => LayoutError::TagNotFound {
                dir,
                tag: tag.to_owned(),
                tags,
                untagged,
            },
            None if tags.is_empty() && untagged == 0 => LayoutError::NoImage { dir },
            None => LayoutError::Ambiguous {
                dir,
                tags,
                untagged,
            },
        })
    }

    /// Where the blob `digest` lives: `blobs/<alg>/<hex>`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join(BLOBS)
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// Whether the blob is present with `size` bytes. Its content is not read.
    pub async fn has_blob(&self, digest: &Digest, size: u64) -> bool {
        tokio::fs::metadata(self.blob_path(digest))
            .await
            .is_ok_and(|meta| meta.is_file() && meta.len() == size)
    }

    /// The blob's file, opened for reading, and its size. The content is not
    /// checked: the reader hashes it as it streams.
    pub async fn open_blob(&self, digest: &Digest) -> Result<(tokio::fs::File, u64), LayoutError> {
        let path = self.blob_path(digest);
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(LayoutError::BlobMissing {
                    digest: digest.clone(),
                    path,
                });
            }
            Err(source) => return Err(LayoutError::io("read", &path)(source)),
        };
        let meta = file
            .metadata()
            .await
            .map_err(LayoutError::io("read", &path))?;
        if !meta.is_file() {
            return Err(LayoutError::BlobMissing {
                digest: digest.clone(),
                path,
            });
        }
        Ok((file, meta.len()))
    }

    /// A whole small blob (a manifest, a config) of at most `limit` bytes,
    /// checked against its digest.
    pub async fn read_manifest(&self, digest: &Digest, limit: usize) -> Result<Bytes, LayoutError> {
        let path = self.blob_path(digest);
        let (file, size) = self.open_blob(digest).await?;
        let too_large = |size| LayoutError::TooLarge {
            digest: digest.clone(),
            path: path.clone(),
            size,
            limit,
        };
        let cap = u64::try_from(limit).unwrap_or(u64::MAX);
        if size > cap {
            return Err(too_large(size));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        // The file may have grown since it was measured: read one byte past.
        file.take(cap.saturating_add(1))
            .read_to_end(&mut bytes)
            .await
            .map_err(LayoutError::io("read", &path))?;
        if bytes.len() > limit {
            return Err(too_large(bytes.len() as u64));
        }
        let actual = Digest::from_bytes(digest.algorithm(), &bytes);
        if actual != *digest {
            return Err(LayoutError::DigestMismatch {
                path,
                expected: digest.clone(),
                actual,
            });
        }
        Ok(Bytes::from(bytes))
    }

    /// A writer of the blob `digest`; see [`BlobWriter`].
    pub async fn blob_writer(&self, digest: &Digest) -> Result<BlobWriter, LayoutError> {
        BlobWriter::create(
            &self.root.join(BLOBS),
            self.blob_path(digest),
            digest.clone(),
        )
        .await
    }

    /// Stores `bytes` as the blob `digest`, after checking that they have that
    /// digest; nothing is written when the blob is already present.
    pub async fn write_blob_bytes(&self, digest: &Digest, bytes: &[u8]) -> Result<(), LayoutError> {
        let actual = Digest::from_bytes(digest.algorithm(), bytes);
        if actual != *digest {
            return Err(LayoutError::DigestMismatch {
                path: self.blob_path(digest),
                expected: digest.clone(),
                actual,
            });
        }
        if self.has_blob(digest, bytes.len() as u64).await {
            return Ok(());
        }
        let mut writer = self.blob_writer(digest).await?;
        writer.write(bytes).await?;
        writer.commit().await.map(drop)
    }

    /// Records a manifest in `index.json`, replacing the file whole. With a
    /// tag, the entry carrying that tag is replaced (an untagged entry of the
    /// same digest takes the tag instead of a new entry being added); without,
    /// the digest is added unless an untagged entry has it. The manifest blob
    /// must already be in the layout with `entry.size` bytes.
    pub fn add_manifest(&self, entry: &LayoutEntry) -> Result<(), LayoutError> {
        let blob = self.blob_path(&entry.digest);
        match std::fs::metadata(&blob) {
            Ok(meta) if meta.is_file() && meta.len() == entry.size => {}
            Ok(meta) if meta.is_file() => {
                return Err(LayoutError::SizeMismatch {
                    digest: entry.digest.clone(),
                    path: blob,
                    expected: entry.size,
                    actual: meta.len(),
                });
            }
            Ok(_) => {
                return Err(LayoutError::BlobMissing {
                    digest: entry.digest.clone(),
                    path: blob,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(LayoutError::BlobMissing {
                    digest: entry.digest.clone(),
                    path: blob,
                });
            }
            Err(source) => return Err(LayoutError::io("read", &blob)(source)),
        }
        let path = self.root.join(INDEX_JSON);
        let mut index = read_index(&path)?.unwrap_or_else(IndexFile::empty);
        index.add(entry);
        write_index(&path, &index)
    }
}

#[cfg(test)]
mod tests;
