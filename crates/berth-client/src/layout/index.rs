//! `index.json` and `oci-layout` as files: read (size-capped), edited, and
//! replaced whole by a temporary file and a rename.
//!
//! The serde types name only the fields berth reads; every other field, of
//! the index and of each descriptor (`platform`, `urls`, annotations other
//! than the tag, top-level `annotations`), is carried in an `extra` map and
//! written back as it was.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_core::media_type::OCI_IMAGE_INDEX;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{LayoutEntry, LayoutError};

/// The annotation carrying an entry's tag (image-spec "annotations.md").
pub(super) const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The most bytes of `index.json` read: far above any real layout, low enough
/// that a hostile file cannot exhaust memory.
const MAX_INDEX: u64 = 64 * 1024 * 1024;

/// Distinguishes the temporary files of concurrent writes in one process.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// An OCI image index, as `index.json` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct IndexFile {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.index.v1+json`; skopeo leaves it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// One descriptor per image.
    pub manifests: Vec<Descriptor>,
    /// Every other field, kept as found.
    #[serde(flatten)]
    pub extra: IndexMap<String, Value>,
}

/// One entry of `manifests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Descriptor {
    /// The manifest's media type.
    pub media_type: String,
    /// Kept as text so that entries berth cannot parse survive a rewrite.
    pub digest: String,
    /// The manifest's size in bytes.
    pub size: u64,
    /// Annotations, the tag among them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<IndexMap<String, String>>,
    /// Every other field (`platform`, `urls`, `artifactType`, ...), kept as found.
    #[serde(flatten)]
    pub extra: IndexMap<String, Value>,
}

impl Descriptor {
    /// A descriptor for `entry`, tagged `tag`.
    fn new(entry: &LayoutEntry, tag: Option<&str>) -> Self {
        Self {
            media_type: entry.media_type.clone(),
            digest: entry.digest.to_string(),
            size: entry.size,
            annotations: tag.map(|tag| IndexMap::from([(REF_NAME.to_owned(), tag.to_owned())])),
            extra: IndexMap::new(),
        }
    }

    /// The tag: the `org.opencontainers.image.ref.name` annotation, unless
    /// absent or empty (which skopeo treats as absent too).
    pub fn tag(&self) -> Option<&str> {
        self.annotations
            .as_ref()?
            .get(REF_NAME)
            .map(String::as_str)
            .filter(|tag| !tag.is_empty())
    }
}

impl IndexFile {
    /// An index without entries, as a new layout holds it.
    pub fn empty() -> Self {
        Self {
            schema_version: 2,
            media_type: Some(OCI_IMAGE_INDEX.to_owned()),
            manifests: Vec::new(),
            extra: IndexMap::new(),
        }
    }

    /// Records `entry`. With a tag: the entry carrying that tag is replaced,
    /// in its place (kept as it is when it already names this digest), and an
    /// untagged entry of the same digest takes the tag instead of a new entry
    /// being added. Without a tag: added unless an untagged entry has the digest.
    pub fn add(&mut self, entry: &LayoutEntry) {
        let digest = entry.digest.to_string();
        let update = |d: &mut Descriptor| {
            d.media_type.clone_from(&entry.media_type);
            d.size = entry.size;
        };
        let Some(tag) = entry.tag.as_deref().filter(|tag| !tag.is_empty()) else {
            if !self
                .manifests
                .iter()
                .any(|d| d.digest == digest && d.tag().is_none())
            {
                self.manifests.push(Descriptor::new(entry, None));
            }
            return;
        };
        let position = self.manifests.iter().position(|d| d.tag() == Some(tag));
        if let Some(at) = position
            && self.manifests[at].digest == digest
        {
            update(&mut self.manifests[at]);
            // Later entries with the same tag (a malformed index) go.
            let mut first = true;
            self.manifests
                .retain(|d| d.tag() != Some(tag) || std::mem::replace(&mut first, false));
            return;
        }
        self.manifests.retain(|d| d.tag() != Some(tag));
        if let Some(d) = self
            .manifests
            .iter_mut()
            .find(|d| d.digest == digest && d.tag().is_none())
        {
            update(d);
            d.annotations
                .get_or_insert_with(IndexMap::new)
                .insert(REF_NAME.to_owned(), tag.to_owned());
            return;
        }
        let at = position.unwrap_or(self.manifests.len());
        self.manifests.insert(at, Descriptor::new(entry, Some(tag)));
    }
}

/// Reads and parses `index.json`; `None` when the file does not exist.
pub(super) fn read_index(path: &Path) -> Result<Option<IndexFile>, LayoutError> {
    let Some(bytes) = read_capped(path, MAX_INDEX)? else {
        return Ok(None);
    };
    let index: IndexFile = serde_json::from_slice(&bytes).map_err(|e| LayoutError::Invalid {
        path: path.to_owned(),
        reason: format!("not an OCI image index ({e})"),
    })?;
    if index.schema_version != 2 {
        return Err(LayoutError::Invalid {
            path: path.to_owned(),
            reason: format!("schemaVersion is {}, expected 2", index.schema_version),
        });
    }
    Ok(Some(index))
}

/// Writes `index` to `path`, replacing the file whole.
pub(super) fn write_index(path: &Path, index: &IndexFile) -> Result<(), LayoutError> {
    let bytes = serde_json::to_vec(index).map_err(|e| LayoutError::Invalid {
        path: path.to_owned(),
        reason: format!("cannot encode the index ({e})"),
    })?;
    write_atomic(path, &bytes)
}

/// The bytes of `path`, at most `limit` of them; `None` when it does not exist.
pub(super) fn read_capped(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, LayoutError> {
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LayoutError::io("read", path)(source)),
    };
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(LayoutError::io("read", path))?;
    if bytes.len() as u64 > limit {
        return Err(LayoutError::Invalid {
            path: path.to_owned(),
            reason: format!("larger than {limit} bytes"),
        });
    }
    Ok(Some(bytes))
}

/// Replaces `path` with `bytes`: written to a temporary file beside it,
/// fsynced, renamed over it, and the directory fsynced. Readers see the old
/// file or the new one, never a part.
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
    ));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temp, path));
    if let Err(source) = written {
        let _ = fs::remove_file(&temp);
        return Err(LayoutError::io("write", path)(source));
    }
    // Makes the rename durable; the new file is complete either way.
    if let Ok(dir) = fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::Digest;

    fn entry(content: &[u8], tag: Option<&str>) -> LayoutEntry {
        LayoutEntry {
            digest: Digest::sha256_of(content),
            media_type: "application/vnd.oci.image.manifest.v1+json".to_owned(),
            size: content.len() as u64,
            tag: tag.map(str::to_owned),
        }
    }

    /// (digest, tag) of each entry, in order.
    fn listing(index: &IndexFile) -> Vec<(String, Option<String>)> {
        index
            .manifests
            .iter()
            .map(|d| (d.digest.clone(), d.tag().map(str::to_owned)))
            .collect()
    }

    fn d(content: &[u8]) -> String {
        Digest::sha256_of(content).to_string()
    }

    #[test]
    fn tagging_replaces_in_place_and_reuses_untagged_entries() {
        let mut index = IndexFile::empty();
        index.add(&entry(b"a", Some("v1")));
        index.add(&entry(b"b", Some("v2")));
        index.add(&entry(b"c", None));
        index.add(&entry(b"c", None));
        assert_eq!(
            listing(&index),
            [
                (d(b"a"), Some("v1".to_owned())),
                (d(b"b"), Some("v2".to_owned())),
                (d(b"c"), None),
            ]
        );
        // v1 moves to another manifest: same place in the list.
        index.add(&entry(b"x", Some("v1")));
        // v2 moves to the untagged c: c takes the tag, b's entry goes.
        index.add(&entry(b"c", Some("v2")));
        // The same tag and digest again: nothing changes.
        index.add(&entry(b"x", Some("v1")));
        // An untagged add of a digest only tagged entries have: a new entry.
        index.add(&entry(b"x", None));
        assert_eq!(
            listing(&index),
            [
                (d(b"x"), Some("v1".to_owned())),
                (d(b"c"), Some("v2".to_owned())),
                (d(b"x"), None),
            ]
        );
    }

    #[test]
    fn duplicate_tags_are_collapsed() {
        let mut index = IndexFile::empty();
        index.manifests = vec![
            Descriptor::new(&entry(b"a", None), Some("t")),
            Descriptor::new(&entry(b"b", None), Some("u")),
            Descriptor::new(&entry(b"c", None), Some("t")),
        ];
        let mut same = index.clone();
        index.add(&entry(b"z", Some("t")));
        assert_eq!(
            listing(&index),
            [
                (d(b"z"), Some("t".to_owned())),
                (d(b"b"), Some("u".to_owned()))
            ]
        );
        same.add(&entry(b"a", Some("t")));
        assert_eq!(
            listing(&same),
            [
                (d(b"a"), Some("t".to_owned())),
                (d(b"b"), Some("u".to_owned()))
            ]
        );
    }

    #[test]
    fn empty_ref_name_is_no_tag() {
        let mut descriptor = Descriptor::new(&entry(b"a", None), Some(""));
        assert_eq!(descriptor.tag(), None);
        descriptor.annotations = None;
        assert_eq!(descriptor.tag(), None);
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["index.json"]);
    }

    #[test]
    fn reading_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        assert!(read_capped(&path, 4).unwrap().is_none());
        fs::write(&path, b"12345").unwrap();
        assert_eq!(read_capped(&path, 5).unwrap().unwrap(), b"12345");
        let e = read_capped(&path, 4).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: larger than 4 bytes; repair the file, or copy the image into a new layout",
                path.display()
            )
        );
    }
}
