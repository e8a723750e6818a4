//! Failures of OCI layout operations: each names the file or directory, what
//! is wrong with it, and what to do.

use std::io;
use std::path::PathBuf;

use berth_core::Digest;

/// What went wrong reading or writing an OCI image layout.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// An `oci:` argument that is not `oci:DIR[:TAG]`.
    #[error("`{input}` is not an OCI layout reference: {reason}; write oci:DIR or oci:DIR:TAG")]
    BadReference {
        /// The argument as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The layout directory does not exist.
    #[error(
        "{}: no such directory; check the path (copying an image to oci:DIR creates it)",
        dir.display()
    )]
    NoDirectory {
        /// The directory asked for.
        dir: PathBuf,
    },

    /// The path exists but is not a directory.
    #[error(
        "{}: not a directory; an OCI layout is a directory holding oci-layout, index.json \
         and blobs/",
        path.display()
    )]
    NotADirectory {
        /// The path asked for.
        path: PathBuf,
    },

    /// The directory holds no `oci-layout` file.
    #[error(
        "{}: not an OCI image layout (no oci-layout file); name the directory that holds \
         oci-layout, index.json and blobs/",
        dir.display()
    )]
    NotALayout {
        /// The directory asked for.
        dir: PathBuf,
    },

    /// A layout was to be created in a directory that already holds other files.
    #[error(
        "{}: neither empty nor an OCI image layout (no oci-layout file); write the image to \
         a new or empty directory",
        dir.display()
    )]
    NotEmpty {
        /// The directory asked for.
        dir: PathBuf,
    },

    /// `oci-layout` announces a layout version other than 1.x.
    #[error(
        "{}: image layout version `{version}` is not supported; berth reads and writes \
         version 1.x",
        path.display()
    )]
    UnsupportedVersion {
        /// The `oci-layout` file.
        path: PathBuf,
        /// The `imageLayoutVersion` it holds.
        version: String,
    },

    /// `oci-layout` or `index.json` is missing, too large or not what the
    /// image-spec describes.
    #[error("{}: {reason}; repair the file, or copy the image into a new layout", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// No entry of `index.json` carries the tag asked for.
    #[error("{}: no image tagged `{tag}`; {}", dir.display(), present(tags, *untagged))]
    TagNotFound {
        /// The layout.
        dir: PathBuf,
        /// The tag asked for.
        tag: String,
        /// The tags present.
        tags: Vec<String>,
        /// How many entries carry no tag.
        untagged: usize,
    },

    /// No tag was given and the layout holds no image.
    #[error("{}: the layout holds no image; copy one into it first", dir.display())]
    NoImage {
        /// The layout.
        dir: PathBuf,
    },

    /// No tag was given and the layout holds several images.
    #[error(
        "{}: the layout holds {} images, so name one as oci:{}:TAG; {}",
        dir.display(), tags.len() + untagged, dir.display(), present(tags, *untagged)
    )]
    Ambiguous {
        /// The layout.
        dir: PathBuf,
        /// The tags present.
        tags: Vec<String>,
        /// How many entries carry no tag.
        untagged: usize,
    },

    /// A blob the operation needs is not in `blobs/`.
    #[error(
        "{}: blob {digest} is not in the layout; the layout is incomplete, copy the image \
         into it again",
        path.display()
    )]
    BlobMissing {
        /// The blob.
        digest: Digest,
        /// Where it should be.
        path: PathBuf,
    },

    /// A blob's size is not the one its descriptor announces.
    #[error(
        "{}: blob {digest} is {actual} bytes, its descriptor says {expected}; the layout is \
         corrupt, copy the image into it again",
        path.display()
    )]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// Its file.
        path: PathBuf,
        /// The size announced.
        expected: u64,
        /// The size of the file.
        actual: u64,
    },

    /// A manifest blob larger than the limit asked for.
    #[error(
        "{}: blob {digest} is {size} bytes, more than the {limit} a manifest may have; \
         the layout is corrupt or the descriptor names something else",
        path.display()
    )]
    TooLarge {
        /// The blob.
        digest: Digest,
        /// Its file.
        path: PathBuf,
        /// Its size (at least; the reading stopped past the limit).
        size: u64,
        /// The limit.
        limit: usize,
    },

    /// Content whose digest is not its name. When writing, nothing was stored.
    #[error(
        "{}: content digest is {actual}, expected {expected}; the data is corrupt, copy the \
         image again",
        path.display()
    )]
    DigestMismatch {
        /// The blob's file (when writing: where it would have gone).
        path: PathBuf,
        /// The digest the blob is named by.
        expected: Digest,
        /// The digest of the bytes.
        actual: Digest,
    },

    /// A file system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "create", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

impl LayoutError {
    /// A closure turning an I/O error on `path` into [`LayoutError::Io`].
    pub(super) fn io(
        action: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_owned();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}

/// "tags present: a, b (and 2 untagged images)", for the tag errors.
fn present(tags: &[String], untagged: usize) -> String {
    let images = |n: usize| {
        if n == 1 {
            "1 untagged image".to_owned()
        } else {
            format!("{n} untagged images")
        }
    };
    match (tags.is_empty(), untagged) {
        (true, 0) => "no tags present".to_owned(),
        (true, n) => format!("no tags present, only {}", images(n)),
        (false, 0) => format!("tags present: {}", tags.join(", ")),
        (false, n) => format!("tags present: {} (and {})", tags.join(", "), images(n)),
    }
}
