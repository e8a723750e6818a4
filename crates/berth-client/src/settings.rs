//! Per-registry connection settings: plain HTTP or TLS, and which extra CA
//! certificates to trust.
//!
//! Where they come from, most specific first:
//!
//! 1. the caller (`--insecure`, `--ca-file`);
//! 2. the client configuration file, TOML: `$BERTH_CLIENT_CONFIG`, else
//!    `$XDG_CONFIG_HOME/berth/client.toml`, else `~/.config/berth/client.toml`:
//!
//!    ```toml
//!    [registries."registry.internal:5000"]
//!    insecure = true                  # plain HTTP (and a plain-HTTP realm)
//!
//!    [registries."registry.example.com"]
//!    ca_file = "/etc/ssl/private-ca.pem"
//!    ```
//!
//! 3. the certificate directories docker and podman read, per `host[:port]`:
//!    `/etc/containers/certs.d/<host[:port]>/*.crt` and
//!    `/etc/docker/certs.d/<host[:port]>/*.crt` (each file a PEM of CA
//!    certificates, as both tools treat them).
//!
//! A registry with an extra CA is reached over TLS even on loopback (where
//! plain HTTP is otherwise the default, as docker treats `127.0.0.0/8`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_core::reference::Registry;
use serde::Deserialize;

/// The directories of per-registry CA certificates docker and podman read.
pub const CERTS_DIRS: [&str; 2] = ["/etc/containers/certs.d", "/etc/docker/certs.d"];

/// The settings for one registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrySettings {
    /// Plain HTTP: `Some(true)`, TLS: `Some(false)`, `None`: the default
    /// (plain HTTP on loopback only).
    pub insecure: Option<bool>,
    /// PEM files of CA certificates to trust besides the system's.
    pub ca_files: Vec<PathBuf>,
}

/// Why the configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file exists but cannot be read.
    #[error("cannot read the client configuration {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not the TOML expected.
    #[error(
        "the client configuration {path} is not valid: {reason}; expected [registries.\"host[:port]\"] tables with `insecure` (true/false) and `ca_file` (a path)"
    )]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    registries: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    insecure: Option<bool>,
    ca_file: Option<PathBuf>,
}

/// The client configuration: per-registry settings from the file, and the
/// certificate directories.
#[derive(Debug, Clone, Default)]
pub struct ClientConfig {
    registries: BTreeMap<Registry, Entry>,
    certs_dirs: Vec<PathBuf>,
}

impl ClientConfig {
    /// The configuration of this user (see the module doc); an absent file
    /// is an empty configuration.
    pub fn load() -> Result<Self, SettingsError> {
        let path = std::env::var_os("BERTH_CLIENT_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("XDG_CONFIG_HOME")
                    .filter(|v| !v.is_empty())
                    .map(|dir| PathBuf::from(dir).join("berth/client.toml"))
            })
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|home| PathBuf::from(home).join(".config/berth/client.toml"))
            });
        let certs_dirs = CERTS_DIRS.iter().map(PathBuf::from).collect();
        match path {
            Some(path) => Self::from_file(&path, certs_dirs),
            None => Ok(Self {
                registries: BTreeMap::new(),
                certs_dirs,
            }),
        }
    }

    /// The configuration in `path` (absent: empty), with `certs_dirs` as the
    /// certificate directories.
    pub fn from_file(path: &Path, certs_dirs: Vec<PathBuf>) -> Result<Self, SettingsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(SettingsError::Read {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        let invalid = |reason: String| SettingsError::Invalid {
            path: path.display().to_string(),
            reason,
        };
        let file: File = toml::from_str(&text).map_err(|e| invalid(e.message().to_owned()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut registries = BTreeMap::new();
        for (name, mut entry) in file.registries {
            let registry = Registry::parse(&name)
                .map_err(|e| invalid(format!("`{name}` is not a registry host[:port]: {e}")))?;
            // A relative CA path is relative to the file.
            entry.ca_file = entry.ca_file.map(|p| base.join(p));
            registries.insert(registry, entry);
        }
        Ok(Self {
            registries,
            certs_dirs,
        })
    }

    /// The settings for `registry`: the file's entry, and the CA files of
    /// the certificate directories.
    pub fn for_registry(&self, registry: &Registry) -> RegistrySettings {
        let entry = self.registries.get(registry).cloned().unwrap_or_default();
        let mut ca_files: Vec<PathBuf> = entry.ca_file.into_iter().collect();
        for dir in &self.certs_dirs {
            ca_files.extend(crt_files(&dir.join(registry.to_string())));
        }
        RegistrySettings {
            insecure: entry.insecure,
            ca_files,
        }
    }
}

/// The `*.crt` files of `dir`, sorted (none when it does not exist).
fn crt_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "crt") && p.is_file())
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(s: &str) -> Registry {
        Registry::parse(s).unwrap()
    }

    #[test]
    fn reads_entries_and_certificate_directories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.toml");
        std::fs::write(
            &path,
            r#"
            [registries."Registry.Internal:5000"]
            insecure = true

            [registries."registry.example.com"]
            ca_file = "ca/private.pem"
            "#,
        )
        .unwrap();
        let certs = dir.path().join("certs.d");
        let host_dir = certs.join("registry.example.com");
        std::fs::create_dir_all(&host_dir).unwrap();
        std::fs::write(host_dir.join("b.crt"), "").unwrap();
        std::fs::write(host_dir.join("a.crt"), "").unwrap();
        std::fs::write(host_dir.join("client.key"), "").unwrap();

        let config = ClientConfig::from_file(&path, vec![certs]).unwrap();
        let internal = config.for_registry(&registry("registry.internal:5000"));
        assert_eq!(internal.insecure, Some(true));
        assert!(internal.ca_files.is_empty());
        let example = config.for_registry(&registry("registry.example.com"));
        assert_eq!(example.insecure, None);
        assert_eq!(
            example.ca_files,
            vec![
                dir.path().join("ca/private.pem"),
                host_dir.join("a.crt"),
                host_dir.join("b.crt"),
            ]
        );
        assert_eq!(
            config.for_registry(&registry("other.example.com")),
            RegistrySettings::default()
        );
    }

    #[test]
    fn an_absent_file_is_empty_and_a_bad_one_says_what_is_expected() {
        let dir = tempfile::tempdir().unwrap();
        let absent = ClientConfig::from_file(&dir.path().join("none.toml"), Vec::new()).unwrap();
        assert_eq!(
            absent.for_registry(&registry("x.example")),
            RegistrySettings::default()
        );
        for (text, needle) in [
            (
                "[registries.\"a b\"]\ninsecure = true\n",
                "is not a registry",
            ),
            ("[registries.\"x.example\"]\ninsecur = true\n", "insecur"),
            (
                "[registries.\"x.example\"]\ninsecure = \"yes\"\n",
                "expected",
            ),
        ] {
            let path = dir.path().join("bad.toml");
            std::fs::write(&path, text).unwrap();
            let e = ClientConfig::from_file(&path, Vec::new()).unwrap_err();
            let message = e.to_string();
            assert!(message.contains(needle), "{text}: {message}");
            assert!(message.contains("[registries."), "{message}");
        }
    }
}
