//! Usage and quotas: the bytes a namespace's repositories hold (each
//! distinct blob once, however many of its repositories link it) against the
//! quota an administrator set for it (`/api/v1/quotas`, `berth admin quota`).
//!
//! A write is refused with 403 `DENIED` before its bytes are stored when its
//! size is known by then (a monolithic upload, a chunk with its
//! `Content-Length`, a mount), and otherwise when the upload closes (a chunk
//! streamed without a length), before the blob is linked. Manifests, kept in
//! the metadata database, are not counted.

use berth_core::digest::Digest;
use berth_core::name::RepositoryName;
use berth_core::oci_error::ErrorCode;

use crate::Registry;
use crate::error::RegistryError;
use crate::meta::gc_sql::GcSql;

/// Refuses `incoming` more bytes in repository `name` when its namespace has a
/// quota they would exceed; a blob (`digest`) the namespace already links adds
/// nothing.
pub async fn check_quota(
    r: &Registry,
    name: &RepositoryName,
    digest: Option<&Digest>,
    incoming: u64,
) -> Result<(), RegistryError> {
    let sql = GcSql::new(r.db.clone());
    let namespace = name.namespace();
    let Some(quota) = sql.quota(namespace).await? else {
        return Ok(());
    };
    if let Some(digest) = digest
        && sql.namespace_links(namespace, digest).await?
    {
        return Ok(());
    }
    let used = sql.namespace_usage(namespace).await?;
    if used.saturating_add(incoming) <= quota {
        return Ok(());
    }
    Err(RegistryError::spec(
        ErrorCode::Denied,
        format!(
            "namespace {namespace} is over its quota: {} used of {}, and this push needs {} more; \
             delete images from it (unreferenced bytes are reclaimed by the garbage collector) \
             or ask an administrator to raise the quota",
            human_bytes(used),
            human_bytes(quota),
            human_bytes(incoming),
        ),
    ))
}

/// A byte count for people: `1.5 GiB (1610612736 bytes)`, `512 B` (the
/// exact count in brackets above 1 KiB).
pub fn human_bytes(n: u64) -> String {
    if n < 1024 {
        return format!("{n} B");
    }
    format!("{} ({n} bytes)", short_bytes(n))
}

/// A byte count in binary units, one decimal: `1.5 GiB`, `512 B` (tables).
pub fn short_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn byte_counts_read_in_binary_units_with_the_exact_count() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB (1536 bytes)");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB (3221225472 bytes)");
    }
}
