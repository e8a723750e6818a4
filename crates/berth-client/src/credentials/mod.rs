//! Where credentials come from: the environment, berth's own login file,
//! podman's and skopeo's `auth.json` files, docker's `config.json`, and the
//! credential helpers those files name.
//!
//! [`CredentialStore::lookup`] asks, in order, stopping at the first answer:
//!
//! 1. `BERTH_USERNAME` + `BERTH_PASSWORD`, when both are set (for CI);
//! 2. berth's own login file, `$XDG_CONFIG_HOME/berth/auth.json` (default
//!    `~/.config/berth/auth.json`), where `berth login` keeps a refresh token;
//! 3. every file podman and skopeo read, in their order (containers/image's
//!    `getAuthFilePaths`, containers-auth.json(5)): `REGISTRY_AUTH_FILE`;
//!    `$XDG_RUNTIME_DIR/containers/auth.json`, or `/run/containers/$UID/auth.json`
//!    when `XDG_RUNTIME_DIR` is unset (where `podman login` and `skopeo login`
//!    write then); `$XDG_CONFIG_HOME/containers/auth.json` (default
//!    `~/.config/containers/auth.json`); docker's `$DOCKER_CONFIG/config.json`
//!    (default `~/.docker/config.json`); and docker's legacy `~/.dockercfg`.
//!    Within a file: the registry's `credHelpers` helper, then `auths`, then
//!    the `credsStore` helper. (containers/image reads `REGISTRY_AUTH_FILE`
//!    alone when it is set; berth reads the others after it, since its own
//!    logins are there.)
//!
//! Registry keys are those of [`Registry::credential_key`]
//! (`https://index.docker.io/v1/` for Docker Hub, else `host[:port]`); the files'
//! keys match in any spelling (`https://host`, `http://host/v1/`, ...), an
//! exact key first; a podman key scoped to a repository (`quay.io/org`) never
//! matches a whole registry.
//!
//! Writing ([`CredentialStore::store`], [`CredentialStore::erase`]) keeps
//! other tools' logins working. A refresh token (an OAuth2 identity token)
//! goes to berth's own file only: podman and skopeo refuse to log in to a
//! registry while any file they read holds one ("auth file contains an
//! Identity token"), so it never goes where they read. A password goes where
//! docker keeps it (its credential helper, else its `config.json`), which
//! docker, podman and skopeo all read. A podman file entry for the same
//! registry still wins over what berth writes to docker's config.
//!
//! Reading and writing are synchronous: this runs once per command.
//!
//! [`Registry::credential_key`]: berth_core::reference::Registry::credential_key

mod error;
mod file;
mod helper;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

pub use error::CredentialsError;

use file::AuthFile;
use helper::Helper;

/// A secret for one registry, as a client presents it to a token service.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A username and password (or personal access token): HTTP Basic, or the
    /// OAuth2 password grant.
    Basic {
        /// The account name.
        username: String,
        /// The password or token.
        password: String,
    },
    /// An OAuth2 refresh token (docker `identitytoken`, or a helper answering
    /// username `<token>`): the refresh-token grant.
    IdentityToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Self::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// The environment variables that give a credential for every registry.
const ENV_USERNAME: &str = "BERTH_USERNAME";
/// See [`ENV_USERNAME`].
const ENV_PASSWORD: &str = "BERTH_PASSWORD";

/// Which search-order slot a credentials file fills; only for describing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// berth's own login file (`~/.config/berth/auth.json`).
    Berth,
    /// The file named by `REGISTRY_AUTH_FILE`.
    RegistryAuthFile,
    /// A podman `containers/auth.json`.
    Podman,
    /// Docker's `config.json`.
    Docker,
    /// Docker's legacy `~/.dockercfg` (the `auths` map at the top level).
    DockerLegacy,
}

/// Where a credential came from, for `berth auth explain`. Its `Display` is
/// one line, such as `docker config /root/.docker/config.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `BERTH_USERNAME` and `BERTH_PASSWORD`.
    Environment,
    /// The `auths` map of a credentials file.
    File {
        /// Which kind of file.
        kind: FileKind,
        /// The file.
        path: PathBuf,
    },
    /// A credential helper.
    Helper {
        /// The program, `docker-credential-<name>`.
        program: String,
        /// The file whose `credHelpers` or `credsStore` names it.
        configured_in: PathBuf,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Environment => write!(f, "{ENV_USERNAME}/{ENV_PASSWORD}"),
            Self::File { kind, path } => {
                let path = path.display();
                match kind {
                    FileKind::Berth => write!(f, "berth login file {path}"),
                    FileKind::DockerLegacy => write!(f, "docker legacy file {path}"),
                    FileKind::RegistryAuthFile => {
                        write!(f, "auth file {path} (REGISTRY_AUTH_FILE)")
                    }
                    FileKind::Podman => write!(f, "podman auth file {path}"),
                    FileKind::Docker => write!(f, "docker config {path}"),
                }
            }
            Self::Helper {
                program,
                configured_in,
            } => write!(
                f,
                "credential helper {program} (configured in {})",
                configured_in.display()
            ),
        }
    }
}

/// The credentials files and settings of one user, resolved once.
///
/// Build it with [`CredentialStore::from_env`] in the CLI; tests use
/// [`CredentialStore::from_vars`] or [`CredentialStore::new`] and the `with_*`
/// methods, so nothing reads the real home directory or environment.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    /// From `BERTH_USERNAME`/`BERTH_PASSWORD` (redacted in `Debug`).
    env_credential: Option<Credential>,
    /// Every file to read, in lookup order, docker's config last.
    files: Vec<(FileKind, PathBuf)>,
    /// Docker's `config.json`, where [`store`](Self::store) writes passwords.
    docker_config: Option<PathBuf>,
    /// berth's own login file, where [`store`](Self::store) writes refresh
    /// tokens.
    berth_file: Option<PathBuf>,
    /// The `PATH` for credential helpers; the process's own when `None`.
    helper_path: Option<OsString>,
}

impl CredentialStore {
    /// Docker's config at `docker_config` and nothing else: no podman files, no
    /// environment credential, helpers looked up on the process's `PATH`.
    pub fn new(docker_config: impl Into<PathBuf>) -> Self {
        let docker_config = docker_config.into();
        Self {
            env_credential: None,
            files: vec![(FileKind::Docker, docker_config.clone())],
            docker_config: Some(docker_config),
            berth_file: None,
            helper_path: None,
        }
    }

    /// Resolves everything from the process environment (falling back to the
    /// OS's idea of the home directory when `HOME` is unset) and the
    /// process's user id.
    pub fn from_env() -> Self {
        Self::from_vars_and_uid(
            |name| {
                let value = std::env::var_os(name);
                if name == "HOME" && value.as_ref().is_none_or(|v| v.is_empty()) {
                    return std::env::home_dir().map(OsString::from);
                }
                value
            },
            current_uid(),
        )
    }

    /// [`from_vars_and_uid`](Self::from_vars_and_uid) without a user id:
    /// `/run/containers/$UID/auth.json` is then not read.
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Self {
        Self::from_vars_and_uid(var, None)
    }

    /// Resolves everything from `var`, which answers an environment variable's
    /// value: `HOME`, `DOCKER_CONFIG`, `REGISTRY_AUTH_FILE`, `XDG_RUNTIME_DIR`,
    /// `XDG_CONFIG_HOME`, `PATH`, `BERTH_USERNAME` and `BERTH_PASSWORD`. Empty
    /// values count as unset. `uid` names podman's per-user file when
    /// `XDG_RUNTIME_DIR` is unset.
    pub fn from_vars_and_uid(var: impl Fn(&str) -> Option<OsString>, uid: Option<u32>) -> Self {
        let var = |name: &str| var(name).filter(|value| !value.is_empty());
        let home = var("HOME").map(PathBuf::from);
        let docker_config = match var("DOCKER_CONFIG") {
            Some(dir) => Some(PathBuf::from(dir).join("config.json")),
            None => home.as_ref().map(|h| h.join(".docker").join("config.json")),
        };
        let config_home = var("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".config")));
        let berth_file = config_home
            .as_ref()
            .map(|dir| dir.join("berth").join("auth.json"));
        let mut files = Vec::new();
        if let Some(path) = &berth_file {
            files.push((FileKind::Berth, path.clone()));
        }
        if let Some(file) = var("REGISTRY_AUTH_FILE") {
            files.push((FileKind::RegistryAuthFile, PathBuf::from(file)));
        }
        match (var("XDG_RUNTIME_DIR"), uid) {
            (Some(dir), _) => files.push((FileKind::Podman, containers_auth(Path::new(&dir)))),
            // containers/image's `defaultPerUIDPathFormat`.
            (None, Some(uid)) => files.push((
                FileKind::Podman,
                PathBuf::from(format!("/run/containers/{uid}/auth.json")),
            )),
            (None, None) => {}
        }
        if let Some(dir) = &config_home {
            files.push((FileKind::Podman, containers_auth(dir)));
        }
        if let Some(path) = &docker_config {
            files.push((FileKind::Docker, path.clone()));
        }
        if let Some(home) = &home {
            files.push((FileKind::DockerLegacy, home.join(".dockercfg")));
        }
        // One file reached twice (REGISTRY_AUTH_FILE pointing at docker's config)
        // is read once, in its first slot.
        let mut seen = Vec::new();
        files.retain(|(_, path)| {
            let new = !seen.contains(path);
            seen.push(path.clone());
            new
        });
        let env_credential = match (var(ENV_USERNAME), var(ENV_PASSWORD)) {
            (Some(username), Some(password)) => Some(Credential::Basic {
                username: username.to_string_lossy().into_owned(),
                password: password.to_string_lossy().into_owned(),
            }),
            _ => None,
        };
        Self {
            env_credential,
            files,
            docker_config,
            berth_file,
            helper_path: var("PATH"),
        }
    }

    /// Uses `path` as berth's own login file (read first, after the
    /// environment; where refresh tokens are stored).
    pub fn with_berth_file(mut self, path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        self.files.retain(|(kind, _)| *kind != FileKind::Berth);
        self.files.insert(0, (FileKind::Berth, path.clone()));
        self.berth_file = Some(path);
        self
    }

    /// berth's own login file, if known.
    pub fn berth_file(&self) -> Option<&Path> {
        self.berth_file.as_deref()
    }

    /// Only the files [`store`](Self::store) and [`erase`](Self::erase)
    /// write: berth's own login file and docker's config (with its
    /// helpers); no environment credential, no podman file. What
    /// [`erase`](Self::erase) removes is what this store finds.
    pub fn writable(&self) -> Self {
        let mut files = Vec::new();
        if let Some(path) = &self.berth_file {
            files.push((FileKind::Berth, path.clone()));
        }
        if let Some(path) = &self.docker_config {
            files.push((FileKind::Docker, path.clone()));
        }
        Self {
            env_credential: None,
            files,
            docker_config: self.docker_config.clone(),
            berth_file: self.berth_file.clone(),
            helper_path: self.helper_path.clone(),
        }
    }

    /// Adds a credential that wins for every registry, as `BERTH_USERNAME` and
    /// `BERTH_PASSWORD` do.
    pub fn with_env_credential(mut self, username: &str, password: &str) -> Self {
        self.env_credential = Some(Credential::Basic {
            username: username.to_owned(),
            password: password.to_owned(),
        });
        self
    }

    /// Adds a credentials file to read before docker's config (after the
    /// files already added), in podman's `auth.json` format.
    pub fn with_auth_file(mut self, kind: FileKind, path: impl Into<PathBuf>) -> Self {
        let at = self
            .files
            .iter()
            .position(|(kind, _)| *kind == FileKind::Docker)
            .unwrap_or(self.files.len());
        self.files.insert(at, (kind, path.into()));
        self
    }

    /// Sets the `PATH` on which credential helpers are looked up.
    pub fn with_helper_path(mut self, path: impl Into<OsString>) -> Self {
        self.helper_path = Some(path.into());
        self
    }

    /// Docker's `config.json`, where [`store`](Self::store) writes, if known.
    pub fn docker_config(&self) -> Option<&Path> {
        self.docker_config.as_deref()
    }

    /// The files [`lookup`](Self::lookup) reads, in order (missing ones are skipped).
    pub fn files(&self) -> impl Iterator<Item = (FileKind, &Path)> {
        self.files
            .iter()
            .map(|(kind, path)| (*kind, path.as_path()))
    }

    /// The credential for `registry_key` (see [`Registry::credential_key`]),
    /// `None` when no source has one.
    ///
    /// [`Registry::credential_key`]: berth_core::reference::Registry::credential_key
    pub fn lookup(&self, registry_key: &str) -> Result<Option<Credential>, CredentialsError> {
        Ok(self
            .lookup_with_source(registry_key)?
            .map(|(credential, _)| credential))
    }

    /// Like [`lookup`](Self::lookup), also telling where the credential came from.
    pub fn lookup_with_source(
        &self,
        registry_key: &str,
    ) -> Result<Option<(Credential, Source)>, CredentialsError> {
        if let Some(credential) = &self.env_credential {
            return Ok(Some((credential.clone(), Source::Environment)));
        }
        for (kind, path) in &self.files {
            let Some(file) = read(*kind, path)? else {
                continue;
            };
            if let Some(name) = file.cred_helper(registry_key)? {
                let helper = self.helper(&name, path)?;
                if let Some(credential) = helper.get(registry_key)? {
                    return Ok(Some((credential, helper_source(&helper))));
                }
            }
            if let Some(credential) = file.auth_entry(registry_key)? {
                let source = Source::File {
                    kind: *kind,
                    path: path.clone(),
                };
                return Ok(Some((credential, source)));
            }
            if let Some(name) = file.creds_store()? {
                let helper = self.helper(&name, path)?;
                if let Some(credential) = helper.get(registry_key)? {
                    return Ok(Some((credential, helper_source(&helper))));
                }
            }
        }
        Ok(None)
    }

    /// Where the credential for `registry_key` comes from, for `berth auth
    /// explain`; `None` when there is none or looking it up fails (call
    /// [`lookup`](Self::lookup) for the error).
    pub fn source(&self, registry_key: &str) -> Option<String> {
        self.lookup_with_source(registry_key)
            .ok()
            .flatten()
            .map(|(_, source)| source.to_string())
    }

    /// Saves `credential` for `registry_key`, where it keeps other tools'
    /// logins working; returns where it went.
    ///
    /// - A refresh token goes to berth's own login file (mode 0600, written
    ///   atomically, other keys kept), never to a file podman or skopeo
    ///   read: they refuse to log in while one holds an identity token. An
    ///   identity token that berth stored in docker's config before (its
    ///   `auth` is `<token>:`) is removed from there.
    /// - A password goes into the helper docker's config names for the
    ///   registry (`credHelpers`, else `credsStore`), else into its `auths`
    ///   (mode 0600, atomic, every other key kept), where docker, podman and
    ///   skopeo read it. Saving into a helper also removes a plain-text
    ///   `auths` entry for the registry, which would otherwise be found
    ///   before the `credsStore` helper. An entry in berth's own file, which
    ///   would be found first, is removed.
    pub fn store(
        &self,
        registry_key: &str,
        credential: &Credential,
    ) -> Result<Source, CredentialsError> {
        if let Credential::IdentityToken(_) = credential {
            let path = self
                .berth_file
                .as_deref()
                .ok_or(CredentialsError::NoBerthFile)?;
            let mut file = AuthFile::read(path)?.unwrap_or_else(|| AuthFile::empty(path));
            file.set_auth(registry_key, Some(credential))?;
            file.write()?;
            if let Some(docker) = self.docker_config.as_deref()
                && let Some(mut file) = AuthFile::read(docker)?
                && file.holds_marked_identity_token(registry_key)?
            {
                file.set_auth(registry_key, None)?;
                file.write()?;
            }
            return Ok(Source::File {
                kind: FileKind::Berth,
                path: path.to_owned(),
            });
        }
        let path = self
            .docker_config
            .as_deref()
            .ok_or(CredentialsError::NoDockerConfig)?;
        let mut file = AuthFile::read(path)?.unwrap_or_else(|| AuthFile::empty(path));
        let source = if let Some(helper) = self.configured_helper(&file, registry_key)? {
            helper.store(registry_key, credential)?;
            if file.has_auth(registry_key)? {
                file.set_auth(registry_key, None)?;
                file.write()?;
            }
            helper_source(&helper)
        } else {
            file.set_auth(registry_key, Some(credential))?;
            file.write()?;
            Source::File {
                kind: FileKind::Docker,
                path: path.to_owned(),
            }
        };
        self.erase_berth_file(registry_key)?;
        Ok(source)
    }

    /// Forgets the credential for `registry_key` in berth's own login file
    /// and in docker's config: the configured helper erases it, and its
    /// `auths` entries (in every spelling) are removed; other keys are kept.
    /// Nothing stored is not an error.
    ///
    /// Podman's files are not changed: a credential there is still found.
    pub fn erase(&self, registry_key: &str) -> Result<(), CredentialsError> {
        self.erase_berth_file(registry_key)?;
        let Some(path) = self.docker_config.as_deref() else {
            return Ok(());
        };
        let Some(mut file) = AuthFile::read(path)? else {
            return Ok(());
        };
        if let Some(helper) = self.configured_helper(&file, registry_key)? {
            helper.erase(registry_key)?;
        }
        if file.has_auth(registry_key)? {
            file.set_auth(registry_key, None)?;
            file.write()?;
        }
        Ok(())
    }

    /// Removes `registry_key`'s entries from berth's own login file.
    fn erase_berth_file(&self, registry_key: &str) -> Result<(), CredentialsError> {
        if let Some(path) = self.berth_file.as_deref()
            && let Some(mut file) = AuthFile::read(path)?
            && file.has_auth(registry_key)?
        {
            file.set_auth(registry_key, None)?;
            file.write()?;
        }
        Ok(())
    }

    /// Every registry key some file's `auths` or helper knows, with its source,
    /// in lookup order (a key may appear more than once).
    pub fn list(&self) -> Result<Vec<(String, Source)>, CredentialsError> {
        let mut found = Vec::new();
        if self.env_credential.is_some() {
            found.push(("*".to_owned(), Source::Environment));
        }
        for (kind, path) in &self.files {
            let Some(file) = read(*kind, path)? else {
                continue;
            };
            for key in file.auth_keys()? {
                if file.auth_entry(&key)?.is_some() {
                    let source = Source::File {
                        kind: *kind,
                        path: path.clone(),
                    };
                    found.push((key, source));
                }
            }
            if let Some(name) = file.creds_store()? {
                let helper = self.helper(&name, path)?;
                for key in helper.list()? {
                    found.push((key, helper_source(&helper)));
                }
            }
        }
        Ok(found)
    }

    /// The helper docker's config names for `registry_key`, if any.
    fn configured_helper(
        &self,
        file: &AuthFile,
        registry_key: &str,
    ) -> Result<Option<Helper>, CredentialsError> {
        match file.cred_helper(registry_key)? {
            Some(name) => Ok(Some(self.helper(&name, file.path())?)),
            None => match file.creds_store()? {
                Some(name) => Ok(Some(self.helper(&name, file.path())?)),
                None => Ok(None),
            },
        }
    }

    fn helper(&self, name: &str, config: &Path) -> Result<Helper, CredentialsError> {
        Helper::new(name, config, self.helper_path.as_ref())
    }
}

/// Reads a credentials file of `kind` (`~/.dockercfg` has its own shape).
fn read(kind: FileKind, path: &Path) -> Result<Option<AuthFile>, CredentialsError> {
    match kind {
        FileKind::DockerLegacy => AuthFile::read_legacy(path),
        _ => AuthFile::read(path),
    }
}

/// The real user id of this process (the `Uid:` line of
/// `/proc/self/status`), as containers/image's `os.Getuid()`; `None` where
/// there is no procfs.
fn current_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn containers_auth(dir: &Path) -> PathBuf {
    dir.join("containers").join("auth.json")
}

fn helper_source(helper: &Helper) -> Source {
    Source::Helper {
        program: helper.program().to_owned(),
        configured_in: helper.config().to_owned(),
    }
}
