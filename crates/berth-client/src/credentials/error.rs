//! What can go wrong while reading or writing credentials.
//!
//! Every variant names the file or the helper involved and says what to do.
//! None carries a secret: JSON errors keep only a line and column (serde's own
//! messages can quote a value), and a helper's output is redacted of the secret
//! it was handed.

use std::io;
use std::path::PathBuf;

/// An error from [`CredentialStore`](super::CredentialStore).
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// A credentials file exists but could not be read.
    #[error("cannot read {}: {source}; check the file's permissions", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A credentials file is not valid JSON.
    #[error(
        "{} is not valid JSON (line {line}, column {column}); fix the file or move it away",
        path.display()
    )]
    Json {
        /// The file.
        path: PathBuf,
        /// Where the JSON breaks (1-based).
        line: usize,
        /// Where the JSON breaks (1-based).
        column: usize,
    },
    /// A credentials file is JSON but not shaped like docker's `config.json`.
    #[error("{}: {what}; fix the file or move it away", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key (never the value).
        what: String,
    },
    /// Writing the docker config failed.
    #[error("cannot write {}: {source}; check that its directory is writable", path.display())]
    Write {
        /// The file (or its directory, or the temporary file beside it).
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Neither `DOCKER_CONFIG` nor a home directory is known, so there is no
    /// docker config to store credentials in.
    #[error("no docker config to store credentials in: set DOCKER_CONFIG or HOME")]
    NoDockerConfig,
    /// Neither `XDG_CONFIG_HOME` nor a home directory is known, so there is
    /// no berth login file to store a refresh token in.
    #[error(
        "no place for berth's login file (~/.config/berth/auth.json): set XDG_CONFIG_HOME or \
         HOME, or log in with --store-password"
    )]
    NoBerthFile,
    /// A `credsStore` or `credHelpers` value cannot name a helper program.
    #[error(
        "{}: `{name}` is not a credential helper name (it would run `docker-credential-{name}`); \
         fix credsStore/credHelpers",
        config.display()
    )]
    HelperName {
        /// The file that configures the helper.
        config: PathBuf,
        /// The configured name.
        name: String,
    },
    /// A credential helper could not be started.
    #[error(
        "cannot run credential helper {program}: {source}; install it on PATH or remove it from \
         credsStore/credHelpers in {}",
        config.display()
    )]
    HelperSpawn {
        /// The program, `docker-credential-<name>`.
        program: String,
        /// The file that configures the helper.
        config: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A credential helper ran and reported a failure.
    #[error(
        "credential helper {program} failed to {action} ({status}): {message}; check the helper, \
         or remove it from credsStore/credHelpers in {}",
        config.display()
    )]
    HelperFailed {
        /// The program, `docker-credential-<name>`.
        program: String,
        /// The file that configures the helper.
        config: PathBuf,
        /// `get`, `store`, `erase` or `list`.
        action: &'static str,
        /// The exit status.
        status: String,
        /// What the helper printed, shortened, with any secret it was given removed.
        message: String,
    },
    /// A credential helper's answer is not the protocol's JSON.
    #[error(
        "credential helper {program} answered `{action}` with {what}; check the helper, or remove \
         it from credsStore/credHelpers in {}",
        config.display()
    )]
    HelperOutput {
        /// The program, `docker-credential-<name>`.
        program: String,
        /// The file that configures the helper.
        config: PathBuf,
        /// `get` or `list`.
        action: &'static str,
        /// What is wrong with the answer (never its content).
        what: String,
    },
}
