//! A pull-through cache namespace as the operator writes it: which registry
//! it caches, who may pull through it, with which upstream account, and how
//! long a tag's answer stands.
//!
//! In the TOML file (`[[proxy]]`, one table per namespace), or on the command
//! line as `--proxy NAME=URL` (the defaults below):
//!
//! ```toml
//! [[proxy]]
//! name = "hub"                                  # the namespace: hub/library/alpine
//! url = "https://registry-1.docker.io"          # the upstream registry
//! access = "authenticated"                      # or "public" (anonymous pulls too)
//! username = "berthcache"                       # optional upstream account
//! password_file = "/etc/berth/hub.password"     # or password = "..."
//! tag_ttl_secs = 300                            # a tag's answer stands this long
//! ```

use std::path::PathBuf;
use std::time::Duration;

use berth_core::name::RepositoryName;
use berth_core::reference::Registry;
use serde::Deserialize;

/// The most proxy namespaces a registry may have.
pub const MAX_PROXIES: usize = 64;
/// How long a tag's upstream answer stands by default.
pub const DEFAULT_TAG_TTL: Duration = Duration::from_secs(300);

/// A proxy namespace as the TOML file writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyText {
    /// The namespace (the first component of the cached repositories' names).
    pub name: Option<String>,
    /// The upstream registry, `https://host[:port]` (or `http://` for one on loopback or a lab network).
    pub url: Option<String>,
    /// `public` or `authenticated` (the default).
    pub access: Option<String>,
    /// The upstream account's name.
    pub username: Option<String>,
    /// Its password or token, inline.
    pub password: Option<String>,
    /// A file holding the password or token (surrounding whitespace ignored).
    pub password_file: Option<PathBuf>,
    /// Seconds a tag's upstream answer stands before it is checked again.
    pub tag_ttl_secs: Option<u64>,
}

/// Who may pull through a proxy namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, anonymous included.
    Public,
    /// Any signed-in user, robot or CI job.
    Authenticated,
}

impl Access {
    /// The word the settings use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Authenticated => "authenticated",
        }
    }
}

/// The upstream account's password; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The password, to present upstream.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A proxy namespace, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySettings {
    /// The namespace.
    pub name: String,
    /// The upstream registry (Docker Hub's names map to `registry-1.docker.io`).
    pub upstream: Registry,
    /// Plain HTTP to the upstream (an `http://` URL).
    pub insecure: bool,
    /// Who may pull.
    pub access: Access,
    /// The upstream account, when one is given.
    pub credential: Option<(String, Password)>,
    /// How long a tag's upstream answer stands.
    pub tag_ttl: Duration,
}

impl ProxySettings {
    /// The upstream as `scheme://host[:port]`, for start lines and messages.
    pub fn origin(&self) -> String {
        let scheme = if self.insecure { "http" } else { "https" };
        format!("{scheme}://{}", self.upstream.api_host())
    }

    /// The upstream repository a cached repository stands for: the name
    /// without the namespace; on Docker Hub a one-component name is an
    /// official image (`hub/alpine` is `library/alpine`). `None` when the
    /// name is not under this namespace or names nothing below it.
    pub fn upstream_name(&self, name: &RepositoryName) -> Option<RepositoryName> {
        let rest = name.as_str().strip_prefix(&self.name)?.strip_prefix('/')?;
        let upstream = if self.upstream.is_docker_hub() && !rest.contains('/') {
            format!("library/{rest}")
        } else {
            rest.to_owned()
        };
        RepositoryName::parse(&upstream).ok()
    }

    /// Checks a namespace of the TOML file; the error names it and the key.
    pub fn parse(text: &ProxyText) -> Result<ProxySettings, String> {
        let name = text
            .name
            .clone()
            .ok_or("a [[proxy]] needs a name, e.g. name = \"hub\"")?;
        if name.contains('/') || RepositoryName::parse(&name).is_err() {
            return Err(format!(
                "proxy name {name:?} is not a namespace: use lower-case letters and digits, \
                 separated by single `.`, `_` or `-`, without `/`"
            ));
        }
        let at = |key: &str| format!("proxy {name}: {key}");
        let url_text = text
            .url
            .as_deref()
            .ok_or_else(|| format!("{} is missing, e.g. url = \"https://ghcr.io\"", at("url")))?;
        let url = url::Url::parse(url_text).map_err(|e| {
            format!(
                "{} {url_text:?} is not a URL ({e}); write https://host[:port]",
                at("url")
            )
        })?;
        let insecure = match url.scheme() {
            "https" => false,
            "http" => true,
            other => {
                return Err(format!(
                    "{} has scheme {other:?}; use https (or http for a registry without TLS)",
                    at("url")
                ));
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "{} must not carry credentials; use username and password_file",
                at("url")
            ));
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "{} {url_text:?} has a path; name the registry only (https://host[:port]): \
                 repositories come from the pulled names",
                at("url")
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| format!("{} {url_text:?} names no host", at("url")))?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let upstream =
            Registry::parse(&authority).map_err(|e| format!("{} {url_text:?}: {e}", at("url")))?;
        let access = match text.access.as_deref() {
            None | Some("authenticated") => Access::Authenticated,
            Some("public") => Access::Public,
            Some(other) => {
                return Err(format!(
                    "{} {other:?} is not one of public, authenticated",
                    at("access")
                ));
            }
        };
        let password = match (&text.password, &text.password_file) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "proxy {name} has both password and password_file; keep one"
                ));
            }
            (Some(inline), None) => Some(inline.clone()),
            (None, Some(path)) => {
                let read = std::fs::read_to_string(path)
                    .map_err(|e| format!("{} {}: {e}", at("password_file"), path.display()))?;
                Some(read.trim().to_owned())
            }
            (None, None) => None,
        };
        let credential = match (&text.username, password) {
            (Some(user), Some(password)) if !user.is_empty() && !password.is_empty() => {
                Some((user.clone(), Password(password)))
            }
            (None, None) => None,
            (Some(_), _) => {
                return Err(format!(
                    "proxy {name} has a username without a password; add password_file"
                ));
            }
            (None, Some(_)) => {
                return Err(format!(
                    "proxy {name} has a password without a username; add username"
                ));
            }
        };
        let tag_ttl = text
            .tag_ttl_secs
            .map_or(DEFAULT_TAG_TTL, Duration::from_secs);
        Ok(ProxySettings {
            name,
            upstream,
            insecure,
            access,
            credential,
            tag_ttl,
        })
    }
}

/// `--proxy NAME=URL`: a namespace with the defaults (authenticated pulls,
/// no upstream account, the default tag TTL).
pub fn parse_flag(flag: &str) -> Result<ProxyText, String> {
    let (name, url) = flag.split_once('=').ok_or_else(|| {
        format!("--proxy {flag:?} is not NAME=URL, e.g. --proxy hub=https://registry-1.docker.io")
    })?;
    Ok(ProxyText {
        name: Some(name.to_owned()),
        url: Some(url.to_owned()),
        ..ProxyText::default()
    })
}

/// Checks every namespace: each valid, names unique, at most [`MAX_PROXIES`].
pub fn parse_all(texts: &[ProxyText]) -> Result<Vec<ProxySettings>, String> {
    if texts.len() > MAX_PROXIES {
        return Err(format!(
            "{} proxy namespaces configured; at most {MAX_PROXIES} are allowed",
            texts.len()
        ));
    }
    let mut proxies: Vec<ProxySettings> = Vec::with_capacity(texts.len());
    for text in texts {
        let proxy = ProxySettings::parse(text)?;
        if proxies.iter().any(|p| p.name == proxy.name) {
            return Err(format!(
                "two proxy namespaces are named {}; names must be unique",
                proxy.name
            ));
        }
        proxies.push(proxy);
    }
    Ok(proxies)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(name: &str, url: &str) -> ProxyText {
        ProxyText {
            name: Some(name.to_owned()),
            url: Some(url.to_owned()),
            ..ProxyText::default()
        }
    }

    fn name(text: &str) -> RepositoryName {
        RepositoryName::parse(text).unwrap()
    }

    #[test]
    fn docker_hub_names_official_images_under_library() {
        let hub = ProxySettings::parse(&text("hub", "https://registry-1.docker.io")).unwrap();
        assert!(hub.upstream.is_docker_hub());
        assert_eq!(
            hub.upstream_name(&name("hub/alpine")).unwrap().as_str(),
            "library/alpine"
        );
        assert_eq!(
            hub.upstream_name(&name("hub/library/alpine"))
                .unwrap()
                .as_str(),
            "library/alpine"
        );
        assert_eq!(
            hub.upstream_name(&name("hub/grafana/grafana"))
                .unwrap()
                .as_str(),
            "grafana/grafana"
        );
        assert!(hub.upstream_name(&name("hubby/alpine")).is_none());
        assert!(hub.upstream_name(&name("hub")).is_none());
    }

    #[test]
    fn other_registries_keep_names_as_they_are() {
        let ghcr = ProxySettings::parse(&text("ghcr", "https://ghcr.io")).unwrap();
        assert_eq!(
            ghcr.upstream_name(&name("ghcr/alpine")).unwrap().as_str(),
            "alpine"
        );
        assert_eq!(ghcr.origin(), "https://ghcr.io");
        assert_eq!(ghcr.access, Access::Authenticated);
        assert_eq!(ghcr.tag_ttl, DEFAULT_TAG_TTL);
    }

    #[test]
    fn plain_http_and_ports() {
        let local = ProxySettings::parse(&text("up", "http://127.0.0.1:5000/")).unwrap();
        assert!(local.insecure);
        assert_eq!(local.origin(), "http://127.0.0.1:5000");
    }

    #[test]
    fn refusals_name_the_key() {
        let cases = [
            (text("Hub", "https://ghcr.io"), "not a namespace"),
            (text("a/b", "https://ghcr.io"), "not a namespace"),
            (text("hub", "ftp://ghcr.io"), "url has scheme"),
            (
                text("hub", "https://u:p@ghcr.io"),
                "must not carry credentials",
            ),
            (text("hub", "https://ghcr.io/v2/"), "has a path"),
            (text("hub", "ghcr.io"), "not a URL"),
            (
                ProxyText {
                    access: Some("everyone".into()),
                    ..text("hub", "https://ghcr.io")
                },
                "access \"everyone\"",
            ),
            (
                ProxyText {
                    username: Some("me".into()),
                    ..text("hub", "https://ghcr.io")
                },
                "without a password",
            ),
            (
                ProxyText {
                    password: Some("x".into()),
                    password_file: Some("/nonexistent".into()),
                    ..text("hub", "https://ghcr.io")
                },
                "both password and password_file",
            ),
        ];
        for (text, expected) in cases {
            let error = ProxySettings::parse(&text).unwrap_err();
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        }
        let missing = ProxySettings::parse(&ProxyText {
            name: Some("hub".into()),
            ..ProxyText::default()
        })
        .unwrap_err();
        assert!(missing.contains("proxy hub: url is missing"), "{missing}");
    }

    #[test]
    fn passwords_come_from_files_and_are_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret-token\n").unwrap();
        let proxy = ProxySettings::parse(&ProxyText {
            username: Some("me".into()),
            password_file: Some(path),
            ..text("hub", "https://ghcr.io")
        })
        .unwrap();
        let (user, password) = proxy.credential.clone().unwrap();
        assert_eq!((user.as_str(), password.expose()), ("me", "s3cret-token"));
        assert!(!format!("{proxy:?}").contains("s3cret"));
    }

    #[test]
    fn flags_and_duplicates() {
        let flag = parse_flag("hub=https://registry-1.docker.io").unwrap();
        assert_eq!(flag.name.as_deref(), Some("hub"));
        assert!(parse_flag("hub").unwrap_err().contains("NAME=URL"));
        let twice = [text("a", "https://ghcr.io"), text("a", "https://quay.io")];
        assert!(parse_all(&twice).unwrap_err().contains("unique"));
    }
}
