//! Manifests of proxy namespaces: served locally while fresh, checked with
//! one `HEAD` upstream after the tag's TTL, fetched when missing or moved.

use berth_core::name::RepositoryName;
use berth_core::oci_error::ErrorCode;
use berth_core::reference::TagOrDigest;
use berth_core::tag::Tag;

use super::{Access, Target, UpstreamFailure, actor, bump};
use crate::error::RegistryError;
use crate::events::Actor;
use crate::meta::Manifest;
use crate::{Registry, manifest};

/// The manifest `reference` of the cached repository `name`: from the cache
/// when it holds a fresh answer, else from upstream (and then cached).
pub async fn resolve(
    r: &Registry,
    target: &Target,
    name: &RepositoryName,
    reference: &TagOrDigest,
    cause: &Actor,
) -> Result<Manifest, RegistryError> {
    let proxy = &target.proxy;
    let unknown = |failure: &UpstreamFailure| {
        failure.to_error(
            &proxy.settings,
            name,
            &format!("manifest {reference}"),
            ErrorCode::ManifestUnknown,
        )
    };
    match reference {
        TagOrDigest::Digest(_) => {
            if let Some(cached) = r.meta.get_manifest(name, reference).await? {
                bump(&proxy.counters.manifest_hits);
                return Ok(cached);
            }
            let lock = proxy.lock_for(&format!("{name}@{reference}"));
            let _one_at_a_time = lock.lock().await;
            if let Some(cached) = r.meta.get_manifest(name, reference).await? {
                bump(&proxy.counters.manifest_hits);
                return Ok(cached);
            }
            match fetch(r, target, name, reference, None, cause).await? {
                Ok(fetched) => Ok(fetched),
                Err(failure) => Err(unknown(&failure)),
            }
        }
        TagOrDigest::Tag(tag) => {
            let key = format!("{name}:{tag}");
            if proxy.is_fresh(&key)
                && let Some(cached) = r.meta.get_manifest(name, reference).await?
            {
                bump(&proxy.counters.manifest_hits);
                return Ok(cached);
            }
            // One check upstream per tag at a time: the others wait for
            // its answer instead of asking too (no HEAD storms).
            let lock = proxy.lock_for(&key);
            let _one_at_a_time = lock.lock().await;
            let cached = r.meta.get_manifest(name, reference).await?;
            if proxy.is_fresh(&key)
                && let Some(cached) = cached
            {
                bump(&proxy.counters.manifest_hits);
                return Ok(cached);
            }
            let failure = match proxy
                .client
                .head_manifest(&target.upstream, reference)
                .await
            {
                Ok(head) => {
                    if let Some(cached) = cached.as_ref().filter(|c| c.digest == head.digest) {
                        proxy.confirm(key);
                        bump(&proxy.counters.manifest_revalidated);
                        return Ok(cached.clone());
                    }
                    let by_digest = TagOrDigest::Digest(head.digest);
                    match fetch(r, target, name, &by_digest, Some(tag), cause).await? {
                        Ok(fetched) => {
                            proxy.confirm(key);
                            return Ok(fetched);
                        }
                        Err(failure) => failure,
                    }
                }
                Err(e) => {
                    let failure = UpstreamFailure::of(&e);
                    proxy.count_failure(&failure);
                    failure
                }
            };
            match cached {
                Some(cached) if !failure.is_not_found() => {
                    tracing::warn!(
                        proxy = proxy.settings.name.as_str(),
                        repository = name.as_str(),
                        tag = tag.as_str(),
                        error = ?failure,
                        "upstream check of a cached tag failed; serving the last good answer"
                    );
                    bump(&proxy.counters.manifest_stale);
                    Ok(cached)
                }
                _ => Err(unknown(&failure)),
            }
        }
    }
}

/// Fetches a manifest by digest from upstream and caches it (pointing `tag`
/// at it when given). The outer error is the cache's own failure; the inner
/// one the upstream's.
async fn fetch(
    r: &Registry,
    target: &Target,
    name: &RepositoryName,
    reference: &TagOrDigest,
    tag: Option<&Tag>,
    cause: &Actor,
) -> Result<Result<Manifest, UpstreamFailure>, RegistryError> {
    let proxy = &target.proxy;
    let fetched = match proxy
        .client
        .get_manifest(&target.upstream, reference, &[])
        .await
    {
        Ok(fetched) => fetched,
        Err(e) => {
            let failure = UpstreamFailure::of(&e);
            proxy.count_failure(&failure);
            return Ok(Err(failure));
        }
    };
    proxy.counters.bytes_fetched.fetch_add(
        fetched.bytes.len() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    let limit = r.config.max_manifest_bytes;
    if fetched.bytes.len() > limit {
        let failure = UpstreamFailure::Unavailable(format!(
            "its manifest is {} bytes, over this registry's {limit}-byte limit",
            fetched.bytes.len()
        ));
        proxy.count_failure(&failure);
        return Ok(Err(failure));
    }
    let new = match manifest::parse(
        fetched.bytes.clone(),
        Some(&fetched.media_type),
        fetched.digest.clone(),
    ) {
        Ok(new) => new,
        Err(e) => {
            let failure = UpstreamFailure::Unavailable(format!("its manifest is not valid: {e}"));
            proxy.count_failure(&failure);
            return Ok(Err(failure));
        }
    };
    let public = proxy.settings.access == Access::Public;
    r.meta
        .put_cached_manifest(name, &new, tag, public, &actor(cause))
        .await?;
    bump(&proxy.counters.manifest_fetched);
    Ok(Ok(new.manifest))
}
