//! A read cache in front of a [`MetaStore`] for the lookups on the hot paths:
//! a manifest by tag or digest and a blob's link in a repository (every
//! pull), and a repository's visibility (every token request).
//!
//! Why: through sqlx, each SQLite read crosses to a worker thread and back;
//! measured here (BENCHMARKS.md) that is ~80 µs of CPU and ~4 context switches
//! per request, 8x the cost of the rest of a request. A hit here is a hash
//! lookup under a read lock.
//!
//! Correctness:
//! - only positive answers are cached (a blob linked, a manifest found, a
//!   repository that exists), so a push is visible at once;
//! - every write this process makes to a repository (manifest put or delete,
//!   tag delete, blob unlink, visibility) drops all cached entries of that
//!   repository before it returns;
//! - when other processes write to the same database (several nodes on
//!   PostgreSQL: [`CachedMeta::with_other_writers`]), a manifest by *tag* is
//!   never cached: a tag moves, and a push through another node must be served
//!   here on the next request (one indexed read). What is cached then is
//!   addressed by digest (a manifest by digest, a blob link) or is a
//!   repository's visibility: content under a digest never changes, it only
//!   goes away (a delete, an unlink, a repository made private), and each of
//!   those writes sends a change notice that every node's listener
//!   (`meta/notify.rs`) turns into [`MetaStore::forget_cached`] within
//!   milliseconds; a lost listener connection clears everything
//!   ([`MetaStore::forget_all_cached`]); visibility made private also comes
//!   with a revocation record, read by every node within 1 s;
//! - entries live at most [`TTL`], which bounds how long a write of another
//!   process can go unseen here should a notice be lost anyway;
//! - the cache holds at most [`MAX_REPOSITORIES`] repositories and
//!   [`MAX_ENTRIES_PER_REPOSITORY`] entries each; past that it is cleared.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use berth_core::digest::Digest;
use berth_core::endpoint::UploadId;
use berth_core::name::RepositoryName;
use berth_core::reference::TagOrDigest;
use berth_core::tag::Tag;

use super::{
    Actor, BytesPresent, CatalogFilter, DeletedRepository, Manifest, MetaError, MetaStore,
    NameRange, NewManifest, Referrer, RepositoryInfo, UploadLimits, UploadSession,
};

/// The longest a cached answer is served.
pub const TTL: Duration = Duration::from_secs(5);
/// Repositories with cached entries, at most.
pub const MAX_REPOSITORIES: usize = 10_000;
/// Cached entries per repository, at most.
pub const MAX_ENTRIES_PER_REPOSITORY: usize = 1_000;
/// Independent locks, so that readers of different repositories never meet.
const SHARDS: usize = 16;

#[derive(Clone)]
enum Entry {
    Manifest(Manifest),
    LinkedBlob(u64),
    Repository(RepositoryInfo),
}

#[derive(Hash, PartialEq, Eq)]
enum Key {
    Manifest(String),
    Blob(String),
    Repository,
}

/// One lock's worth of repositories. `generation` counts invalidations: a
/// reader that missed notes it before asking the database and stores its
/// answer only if no write came in between, so a slow read can never put an
/// answer older than a finished write back into the cache.
#[derive(Default)]
struct Shard {
    generation: u64,
    repositories: HashMap<String, HashMap<Key, (Entry, Instant)>>,
}

/// A [`MetaStore`] with a read cache for manifests and blob links.
pub struct CachedMeta<M> {
    inner: M,
    shards: Vec<RwLock<Shard>>,
    /// Whether other processes write to the same database.
    other_writers: bool,
}

impl<M: MetaStore> CachedMeta<M> {
    /// Wraps a store.
    pub fn new(inner: M) -> Self {
        Self {
            inner,
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            other_writers: false,
        }
    }

    /// Says whether other processes write to the same database (nodes
    /// sharing PostgreSQL): then manifests by tag are always read from it.
    pub fn with_other_writers(mut self, other_writers: bool) -> Self {
        self.other_writers = other_writers;
        self
    }

    fn shard(&self, repository: &str) -> &RwLock<Shard> {
        // FNV-1a: cheap and good enough to spread repository names.
        let hash = repository.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let index = usize::try_from(hash % SHARDS as u64).unwrap_or(0);
        &self.shards[index % self.shards.len()]
    }

    /// A cached entry, or the shard's generation to hand back to [`Self::store`].
    fn lookup(&self, repository: &str, key: &Key) -> Result<Entry, u64> {
        let shard = self
            .shard(repository)
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match shard.repositories.get(repository).and_then(|e| e.get(key)) {
            Some((entry, at)) if at.elapsed() < TTL => Ok(entry.clone()),
            _ => Err(shard.generation),
        }
    }

    fn store(&self, repository: &str, key: Key, entry: Entry, generation: u64) {
        let mut shard = self
            .shard(repository)
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if shard.generation != generation {
            return;
        }
        if shard.repositories.len() >= MAX_REPOSITORIES / SHARDS
            && !shard.repositories.contains_key(repository)
        {
            shard.repositories.clear();
        }
        let entries = shard.repositories.entry(repository.to_owned()).or_default();
        if entries.len() >= MAX_ENTRIES_PER_REPOSITORY {
            entries.clear();
        }
        entries.insert(key, (entry, Instant::now()));
    }

    fn forget_all(&self) {
        for shard in &self.shards {
            let mut shard = shard
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            shard.generation += 1;
            shard.repositories.clear();
        }
    }

    fn forget(&self, repository: &RepositoryName) {
        let mut shard = self
            .shard(repository.as_str())
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        shard.generation += 1;
        shard.repositories.remove(repository.as_str());
    }
}

fn manifest_key(reference: &TagOrDigest) -> Key {
    Key::Manifest(reference.to_string())
}

#[async_trait]
impl<M: MetaStore> MetaStore for CachedMeta<M> {
    async fn ready(&self) -> Result<(), MetaError> {
        self.inner.ready().await
    }

    async fn list_repositories(
        &self,
        range: NameRange<'_>,
        limit: u32,
        filter: &CatalogFilter,
    ) -> Result<Vec<String>, MetaError> {
        self.inner.list_repositories(range, limit, filter).await
    }

    fn forget_cached(&self, name: &RepositoryName) {
        self.forget(name);
    }

    fn forget_all_cached(&self) {
        self.forget_all();
    }

    async fn repository_exists(&self, name: &RepositoryName) -> Result<bool, MetaError> {
        self.inner.repository_exists(name).await
    }

    async fn repository_info(
        &self,
        name: &RepositoryName,
    ) -> Result<Option<RepositoryInfo>, MetaError> {
        let generation = match self.lookup(name.as_str(), &Key::Repository) {
            Ok(Entry::Repository(info)) => return Ok(Some(info)),
            Ok(_) => 0,
            Err(generation) => generation,
        };
        let info = self.inner.repository_info(name).await?;
        if let Some(info) = info {
            self.store(
                name.as_str(),
                Key::Repository,
                Entry::Repository(info),
                generation,
            );
        }
        Ok(info)
    }

    async fn list_repository_visibility(
        &self,
        after: Option<&str>,
        limit: u32,
        namespaces: Option<&[String]>,
    ) -> Result<Vec<(String, bool)>, MetaError> {
        self.inner
            .list_repository_visibility(after, limit, namespaces)
            .await
    }

    async fn delete_repository(
        &self,
        name: &RepositoryName,
        by: &Actor,
    ) -> Result<Option<DeletedRepository>, MetaError> {
        let done = self.inner.delete_repository(name, by).await;
        self.forget(name);
        done
    }

    async fn set_repository_public(
        &self,
        name: &RepositoryName,
        public: bool,
    ) -> Result<bool, MetaError> {
        let done = self.inner.set_repository_public(name, public).await;
        self.forget(name);
        done
    }

    async fn linked_blob(
        &self,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>, MetaError> {
        let key = Key::Blob(digest.to_string());
        let generation = match self.lookup(name.as_str(), &key) {
            Ok(Entry::LinkedBlob(size)) => return Ok(Some(size)),
            Ok(_) => 0,
            Err(generation) => generation,
        };
        let size = self.inner.linked_blob(name, digest).await?;
        if let Some(size) = size {
            self.store(name.as_str(), key, Entry::LinkedBlob(size), generation);
        }
        Ok(size)
    }

    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, MetaError> {
        self.inner.blob_size(digest).await
    }

    async fn link_blob(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        size: u64,
    ) -> Result<(), MetaError> {
        self.inner.link_blob(name, digest, size).await
    }

    async fn mount_blob(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        from: Option<&RepositoryName>,
        by: &Actor,
    ) -> Result<Option<u64>, MetaError> {
        self.inner.mount_blob(name, digest, from, by).await
    }

    async fn unlink_blob(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        by: &Actor,
    ) -> Result<bool, MetaError> {
        let done = self.inner.unlink_blob(name, digest, by).await;
        self.forget(name);
        done
    }

    async fn put_manifest(
        &self,
        name: &RepositoryName,
        manifest: &NewManifest,
        tag: Option<&Tag>,
        by: &Actor,
    ) -> Result<(), MetaError> {
        let done = self.inner.put_manifest(name, manifest, tag, by).await;
        self.forget(name);
        done
    }

    async fn put_cached_manifest(
        &self,
        name: &RepositoryName,
        manifest: &NewManifest,
        tag: Option<&Tag>,
        public: bool,
        by: &Actor,
    ) -> Result<(), MetaError> {
        let done = self
            .inner
            .put_cached_manifest(name, manifest, tag, public, by)
            .await;
        self.forget(name);
        done
    }

    async fn get_manifest(
        &self,
        name: &RepositoryName,
        reference: &TagOrDigest,
    ) -> Result<Option<Manifest>, MetaError> {
        if self.other_writers && matches!(reference, TagOrDigest::Tag(_)) {
            return self.inner.get_manifest(name, reference).await;
        }
        let key = manifest_key(reference);
        let generation = match self.lookup(name.as_str(), &key) {
            Ok(Entry::Manifest(manifest)) => return Ok(Some(manifest)),
            Ok(_) => 0,
            Err(generation) => generation,
        };
        let manifest = self.inner.get_manifest(name, reference).await?;
        if let Some(manifest) = &manifest {
            self.store(
                name.as_str(),
                key,
                Entry::Manifest(manifest.clone()),
                generation,
            );
        }
        Ok(manifest)
    }

    async fn delete_manifest(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        by: &Actor,
    ) -> Result<bool, MetaError> {
        let done = self.inner.delete_manifest(name, digest, by).await;
        self.forget(name);
        done
    }

    async fn delete_tag(
        &self,
        name: &RepositoryName,
        tag: &Tag,
        by: &Actor,
    ) -> Result<bool, MetaError> {
        let done = self.inner.delete_tag(name, tag, by).await;
        self.forget(name);
        done
    }

    async fn list_tags(
        &self,
        name: &RepositoryName,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Option<Vec<String>>, MetaError> {
        self.inner.list_tags(name, last, limit).await
    }

    async fn referrers(
        &self,
        name: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>, MetaError> {
        self.inner.referrers(name, subject, artifact_type).await
    }

    async fn create_upload(
        &self,
        session: &UploadSession,
        limits: UploadLimits,
    ) -> Result<(), MetaError> {
        self.inner.create_upload(session, limits).await
    }

    async fn staging_in_use(&self, staging: &str) -> Result<bool, MetaError> {
        self.inner.staging_in_use(staging).await
    }

    async fn get_upload(
        &self,
        name: &RepositoryName,
        id: &UploadId,
    ) -> Result<Option<UploadSession>, MetaError> {
        self.inner.get_upload(name, id).await
    }

    async fn advance_upload(
        &self,
        id: &UploadId,
        expected_offset: u64,
        offset: u64,
        hash_state: &[u8],
        staging: Option<&str>,
        now: i64,
    ) -> Result<bool, MetaError> {
        self.inner
            .advance_upload(id, expected_offset, offset, hash_state, staging, now)
            .await
    }

    async fn finish_upload(
        &self,
        id: &UploadId,
        name: &RepositoryName,
        digest: &Digest,
        size: u64,
        present: BytesPresent<'_>,
    ) -> Result<(), MetaError> {
        self.inner
            .finish_upload(id, name, digest, size, present)
            .await
    }

    async fn delete_upload(&self, id: &UploadId) -> Result<bool, MetaError> {
        self.inner.delete_upload(id).await
    }

    async fn stale_uploads(
        &self,
        before: i64,
        limit: u32,
    ) -> Result<Vec<UploadSession>, MetaError> {
        self.inner.stale_uploads(before, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::SqlMeta;

    fn name(s: &str) -> RepositoryName {
        RepositoryName::parse(s).unwrap()
    }

    async fn store() -> CachedMeta<SqlMeta> {
        CachedMeta::new(SqlMeta::in_memory().await.unwrap())
    }

    /// A cached link disappears with the unlink made through the cache.
    #[tokio::test]
    async fn unlink_drops_the_cached_link() {
        let meta = store().await;
        let d = Digest::sha256_of(b"x");
        meta.link_blob(&name("a/b"), &d, 1).await.unwrap();
        assert_eq!(meta.linked_blob(&name("a/b"), &d).await.unwrap(), Some(1));
        assert!(
            meta.unlink_blob(&name("a/b"), &d, &crate::events::Actor::system())
                .await
                .unwrap()
        );
        assert_eq!(meta.linked_blob(&name("a/b"), &d).await.unwrap(), None);
    }

    /// Absence is never cached: a blob linked after a miss is seen at once.
    #[tokio::test]
    async fn misses_are_not_cached() {
        let meta = store().await;
        let d = Digest::sha256_of(b"y");
        assert_eq!(meta.linked_blob(&name("a/b"), &d).await.unwrap(), None);
        meta.link_blob(&name("a/b"), &d, 1).await.unwrap();
        assert_eq!(meta.linked_blob(&name("a/b"), &d).await.unwrap(), Some(1));
    }
}
