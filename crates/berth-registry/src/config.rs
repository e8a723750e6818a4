//! What an operator can set about the registry (the CLI fills it from flags,
//! `BERTH_*` variables and the TOML file).

use std::time::Duration;

/// The registry's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The base URL clients reach this registry at (`Location` headers, token realm).
    pub public_url: String,
    /// Upload sessions untouched this long are expired and their bytes removed.
    pub upload_ttl: Duration,
    /// The largest manifest accepted, in bytes (413 above it).
    pub max_manifest_bytes: usize,
    /// Whether DELETE of manifests, tags and blobs is allowed (405 otherwise).
    pub delete_enabled: bool,
    /// The largest page `n` allows on `_catalog` and tag lists.
    pub max_page: u32,
}

impl Config {
    /// Defaults for a registry reachable at `public_url`.
    pub fn new(public_url: impl Into<String>) -> Self {
        Self {
            public_url: public_url.into().trim_end_matches('/').to_owned(),
            upload_ttl: Duration::from_secs(24 * 60 * 60),
            max_manifest_bytes: 4 * 1024 * 1024,
            delete_enabled: true,
            max_page: 1000,
        }
    }
}
