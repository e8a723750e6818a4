//! The metadata store: repositories, blob links, manifests, tags, referrers and
//! upload sessions.
//!
//! Rule of this layer: all SQL lives here, and nothing here knows HTTP. The
//! [`MetaStore`] trait is what the rest of the server sees; [`sql`] implements
//! it once over the adapter [`db`], on the embedded SQLite database (the
//! default) or on PostgreSQL shared by several nodes; the engines differ only
//! inside [`db`] (and in their migrations).

pub mod browse_sql;
pub mod cache;
#[cfg(test)]
mod concurrent;
pub mod db;
pub mod events_sql;
pub mod gc_sql;
pub mod identity_sql;
pub mod keys_sql;
pub mod notify;
pub mod proxies_sql;
pub mod revocation_sql;
pub mod scratch;
pub mod snapshot;
pub mod sql;
pub mod transfer;
mod trust_sql;
pub mod url;

use async_trait::async_trait;
use berth_core::digest::Digest;
use berth_core::endpoint::UploadId;
use berth_core::name::RepositoryName;
use berth_core::reference::TagOrDigest;
use berth_core::tag::Tag;

pub use crate::events::Actor;

pub use sql::SqlMeta;

/// What can go wrong in the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The database could not be reached or answered with an error.
    #[error("metadata database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("metadata schema migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A manifest refers to a blob or manifest that the repository does not hold.
    #[error("manifest refers to {0}, which is not in the repository")]
    MissingReference(Digest),
    /// A manifest's descriptor states another size than the blob or manifest it names.
    #[error("{field} of the manifest ({digest}) states {stated} bytes, but it has {actual}")]
    SizeMismatch {
        /// Where the descriptor is in the manifest (`config`, `layers[2]`, `manifests[0]`).
        field: String,
        /// The digest it names.
        digest: Digest,
        /// The size it states.
        stated: u64,
        /// The size of what it names.
        actual: u64,
    },
    /// Opening another upload session would exceed a cap on open sessions.
    #[error("{owner} has {open} upload sessions open, the most allowed is {limit}")]
    UploadLimit {
        /// Whose sessions reached the cap.
        owner: UploadOwner,
        /// How many are open.
        open: u64,
        /// The cap.
        limit: u32,
    },
    /// The bytes of a blob being recorded are gone: the collector removed
    /// them after the upload stored them and before it finished.
    #[error(
        "the bytes of {0} were reclaimed by the garbage collector while the upload finished; upload the blob again"
    )]
    BytesGone(Digest),
    /// Checking that a blob's bytes are stored failed.
    #[error("checking the stored bytes of a blob failed: {0}")]
    BytesCheck(String),
    /// A stored value no longer parses (the database was edited by hand, or is corrupt).
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
}

impl MetaError {
    /// Whether the failure is a full disk (SQLite's `SQLITE_FULL`, or an I/O
    /// error saying so).
    pub fn is_disk_full(&self) -> bool {
        /// SQLite's primary result code for "database or disk is full".
        const SQLITE_FULL: i64 = 13;
        match self {
            Self::Database(sqlx::Error::Database(e)) => e
                .code()
                .and_then(|code| code.parse::<i64>().ok())
                .is_some_and(|code| code & 0xff == SQLITE_FULL),
            Self::Database(sqlx::Error::Io(e)) => crate::store::space::is_full(e),
            _ => false,
        }
    }
}

/// Whether a blob's bytes are stored: awaited by [`MetaStore::finish_upload`]
/// while it holds the blob's digest, so that the collector cannot remove the
/// bytes between the check and the blob's record (`meta/gc_sql.rs`).
pub type BytesPresent<'a> =
    std::pin::Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>>;

/// A manifest as stored: the exact bytes pushed and what berth read from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The digest of `content`.
    pub digest: Digest,
    /// The media type it was pushed with (served back as `Content-Type`).
    pub media_type: String,
    /// The exact bytes pushed.
    pub content: bytes::Bytes,
}

/// A descriptor of a pushed manifest: what it names and the size it states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorRef {
    /// The digest of the blob or manifest it names.
    pub digest: Digest,
    /// The size it states, in bytes.
    pub size: u64,
    /// Where it is in the manifest, for messages: `config`, `layers[2]`, `manifests[0]`.
    pub field: String,
}

/// A manifest to store, with the references its validation found.
#[derive(Debug, Clone)]
pub struct NewManifest {
    /// Digest, media type and bytes.
    pub manifest: Manifest,
    /// The `subject` it refers to (OCI 1.1 referrers), which need not exist.
    pub subject: Option<Digest>,
    /// The artifact type the referrers API reports for it.
    pub artifact_type: Option<String>,
    /// Its `annotations` object, as JSON, for the referrers API.
    pub annotations: Option<String>,
    /// Blobs it refers to (config, layers), in manifest order: each must be
    /// linked in the repository, with the size the descriptor states.
    pub blobs: Vec<DescriptorRef>,
    /// Manifests it refers to (an index's children), in manifest order: each
    /// must be in the repository, with the size the descriptor states.
    pub children: Vec<DescriptorRef>,
}

/// One entry of a referrers answer: a manifest whose `subject` is the asked digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    /// The referring manifest's digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its artifact type, if any.
    pub artifact_type: Option<String>,
    /// Its annotations, as a JSON object, if any.
    pub annotations: Option<String>,
}

/// What the store knows about a repository beyond its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepositoryInfo {
    /// Whether anyone, anonymous included, may pull it.
    pub public: bool,
}

/// What deleting a repository removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletedRepository {
    /// The staging locations of its upload sessions (the caller discards
    /// their bytes).
    pub staging: Vec<String>,
}

/// Which repositories a catalog listing may show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogFilter {
    /// Every repository (administrators, and registries without access control).
    All,
    /// Public repositories and those under these namespaces.
    Visible {
        /// Namespaces (first path components) the caller may pull from.
        namespaces: Vec<String>,
    },
}

/// Caps on open upload sessions; 0 is no cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UploadLimits {
    /// Open sessions one subject (a user or robot) may hold, over all repositories.
    pub per_subject: u32,
    /// Open sessions one repository may hold, whoever opened them.
    pub per_repository: u32,
}

/// Whose open upload sessions are counted against a cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadOwner {
    /// A token's subject.
    Subject(String),
    /// A repository.
    Repository(RepositoryName),
}

impl std::fmt::Display for UploadOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Subject(name) => write!(f, "user {name}"),
            Self::Repository(name) => write!(f, "repository {name}"),
        }
    }
}

/// Which slice of the repository names, in byte order, a listing reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NameRange<'a> {
    /// Only names after this one (exclusive): the `last` of a catalog page.
    pub after: Option<&'a str>,
    /// Only names that start with this: one index range, not a scan.
    pub prefix: Option<&'a str>,
}

/// An upload session's state, enough for any process to take the next request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSession {
    /// The session id handed to the client.
    pub id: UploadId,
    /// The repository the blob will be linked into.
    pub repository: RepositoryName,
    /// Who opened it (the token's subject); `None` without access control.
    pub subject: Option<String>,
    /// Bytes received and hashed so far.
    pub offset: u64,
    /// The saved hash state after `offset` bytes (`Digester::save_state`).
    pub hash_state: Vec<u8>,
    /// Where the blob store keeps the bytes so far (store-specific).
    pub staging: String,
    /// Unix seconds the session began.
    pub created_at: i64,
    /// Unix seconds of the last accepted chunk.
    pub updated_at: i64,
}

/// The metadata store. Every method is one transaction; a change made `by`
/// someone writes its event (`events/`) in that transaction.
#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    /// Whether the database answers (for `/readyz`): one round trip, no table read.
    async fn ready(&self) -> Result<(), MetaError>;

    /// Repository names in `range`, in byte order, at most `limit`, among
    /// those `filter` admits.
    async fn list_repositories(
        &self,
        range: NameRange<'_>,
        limit: u32,
        filter: &CatalogFilter,
    ) -> Result<Vec<String>, MetaError>;

    /// Whether the repository exists (has ever had content pushed).
    async fn repository_exists(&self, name: &RepositoryName) -> Result<bool, MetaError>;

    /// What is known about an existing repository; `None` when it does not exist.
    async fn repository_info(
        &self,
        name: &RepositoryName,
    ) -> Result<Option<RepositoryInfo>, MetaError>;

    /// Repository names with their visibility (`true`: public), in byte
    /// order, after `after` (exclusive), at most `limit`; only those of
    /// `namespaces` when given.
    async fn list_repository_visibility(
        &self,
        after: Option<&str>,
        limit: u32,
        namespaces: Option<&[String]>,
    ) -> Result<Vec<(String, bool)>, MetaError>;

    /// Deletes a repository whole (manifests, tags, references, blob links,
    /// upload sessions) and records the revocation of the tokens issued on
    /// it, in one transaction; `None` when it does not exist. Blob bytes stay
    /// for a garbage collector.
    async fn delete_repository(
        &self,
        name: &RepositoryName,
        by: &Actor,
    ) -> Result<Option<DeletedRepository>, MetaError>;

    /// Makes a repository public or private; `false` when it does not exist.
    async fn set_repository_public(
        &self,
        name: &RepositoryName,
        public: bool,
    ) -> Result<bool, MetaError>;

    /// The size of a blob linked in the repository, or `None` when it is not linked there.
    async fn linked_blob(
        &self,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>, MetaError>;

    /// The size of a blob in the store, whatever repository holds it.
    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, MetaError>;

    /// Records a blob (if new) and links it into the repository (created if
    /// new): for bytes the caller placed itself (tests, tools); uploads use
    /// [`MetaStore::finish_upload`], mounts [`MetaStore::mount_blob`].
    async fn link_blob(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        size: u64,
    ) -> Result<(), MetaError>;

    /// Links a blob already recorded into the repository (a cross-repository
    /// mount from `from`, when the request named it); its size, or `None`
    /// when no record names it any more (the collector took it: the client
    /// uploads it instead).
    async fn mount_blob(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        from: Option<&RepositoryName>,
        by: &Actor,
    ) -> Result<Option<u64>, MetaError>;

    /// Removes a blob's link from a repository; `false` when it was not linked.
    async fn unlink_blob(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        by: &Actor,
    ) -> Result<bool, MetaError>;

    /// Stores a manifest and, when given, points `tag` at it, checking that every
    /// reference is present ([`MetaError::MissingReference`]) with the size its
    /// descriptor states ([`MetaError::SizeMismatch`]). Idempotent for the same bytes.
    async fn put_manifest(
        &self,
        name: &RepositoryName,
        manifest: &NewManifest,
        tag: Option<&Tag>,
        by: &Actor,
    ) -> Result<(), MetaError>;

    /// Stores a manifest a pull-through cache fetched from its upstream, as
    /// [`MetaStore::put_manifest`] does a pushed one, except that the blobs
    /// and child manifests it names need not be in the repository (they are
    /// fetched when a client asks for them) and a repository it creates is
    /// public when `public` (the proxy's access).
    async fn put_cached_manifest(
        &self,
        name: &RepositoryName,
        manifest: &NewManifest,
        tag: Option<&Tag>,
        public: bool,
        by: &Actor,
    ) -> Result<(), MetaError>;

    /// A manifest by tag or digest.
    async fn get_manifest(
        &self,
        name: &RepositoryName,
        reference: &TagOrDigest,
    ) -> Result<Option<Manifest>, MetaError>;

    /// Deletes a manifest and every tag on it; `false` when it was not there.
    async fn delete_manifest(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        by: &Actor,
    ) -> Result<bool, MetaError>;

    /// Removes a tag (the manifest stays); `false` when there was no such tag.
    async fn delete_tag(
        &self,
        name: &RepositoryName,
        tag: &Tag,
        by: &Actor,
    ) -> Result<bool, MetaError>;

    /// Tags after `last` (exclusive), in byte order, at most `limit`; `None`
    /// when the repository does not exist.
    async fn list_tags(
        &self,
        name: &RepositoryName,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Option<Vec<String>>, MetaError>;

    /// Manifests in the repository whose `subject` is `digest`, optionally only
    /// those of one artifact type.
    async fn referrers(
        &self,
        name: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>, MetaError>;

    /// Records a new upload session, unless its subject or its repository
    /// already holds as many open sessions as `limits` allow
    /// ([`MetaError::UploadLimit`]); the count and the insert are one step.
    async fn create_upload(
        &self,
        session: &UploadSession,
        limits: UploadLimits,
    ) -> Result<(), MetaError>;

    /// An upload session of this repository, or `None`.
    async fn get_upload(
        &self,
        name: &RepositoryName,
        id: &UploadId,
    ) -> Result<Option<UploadSession>, MetaError>;

    /// Advances a session from `expected_offset` to `offset` with its new hash
    /// state, and its new staging location when the blob store moved it;
    /// `false` when another request moved it first (the caller answers 416).
    async fn advance_upload(
        &self,
        id: &UploadId,
        expected_offset: u64,
        offset: u64,
        hash_state: &[u8],
        staging: Option<&str>,
        now: i64,
    ) -> Result<bool, MetaError>;

    /// Closes an upload session and links its blob (recorded if new) into the
    /// repository, in one transaction, once `present` says the bytes are
    /// stored ([`MetaError::BytesGone`] otherwise).
    async fn finish_upload(
        &self,
        id: &UploadId,
        name: &RepositoryName,
        digest: &Digest,
        size: u64,
        present: BytesPresent<'_>,
    ) -> Result<(), MetaError>;

    /// Forgets an upload session; `false` when it was already gone.
    async fn delete_upload(&self, id: &UploadId) -> Result<bool, MetaError>;

    /// Whether the upload session a staging location belongs to is open:
    /// blob stores name staging locations by session id when they list them
    /// (`BlobStore::list_staging`).
    async fn staging_in_use(&self, staging: &str) -> Result<bool, MetaError>;

    /// Sessions not touched since `before` (unix seconds), oldest first, at most `limit`.
    async fn stale_uploads(&self, before: i64, limit: u32)
    -> Result<Vec<UploadSession>, MetaError>;

    /// Drops what a cache in front of the store holds about repository
    /// `name`: a write made elsewhere (another store sharing the database, or
    /// another process) changed it. Stores without a cache do nothing.
    fn forget_cached(&self, name: &RepositoryName) {
        let _ = name;
    }

    /// Drops everything a cache in front of the store holds: the notices of
    /// other processes' writes may have been missed (a lost connection).
    fn forget_all_cached(&self) {}
}
