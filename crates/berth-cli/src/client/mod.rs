//! The client commands: `login`, `logout`, `push`, `pull`, `inspect`,
//! `catalog`, `tags`, `digest`, `delete`, `untag`, `copy`, `manifest
//! get|put|delete`, `blob get|put|delete` and `auth explain`, on
//! berth-client.
//!
//! Credentials come from `CredentialStore::from_env()` (BERTH_USERNAME and
//! BERTH_PASSWORD, podman's auth.json files, docker's config.json and its
//! helpers), looked up by the registry's credential key. Results go to stdout,
//! notes and the `-v` trace to stderr. A failure is returned to `main`, which
//! prints it as one line, `berth: <what failed>: <why>; <what to do>`, and
//! exits 1.

pub mod auth;
pub mod blob;
pub mod catalog;
pub mod copy;
pub mod delete;
pub mod digest;
pub mod inspect;
pub mod login;
pub mod logout;
pub mod manifest;
pub mod progress;
pub mod pull;
pub mod push;
pub mod tags;
pub mod untag;

use berth_client::client::UploadOptions;
use std::io::{IsTerminal, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use berth_client::auth::{AuthorizationKind, Event, GrantKind, Observer, TransportOptions};
use berth_client::client::RegistryClient;
use berth_client::credentials::{Credential, CredentialStore};
use berth_client::settings::ClientConfig;
use berth_core::reference::Registry;
use clap::{Args, ValueEnum};

/// Options every client command takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Reach the registry over plain HTTP.
    ///
    /// Without it, https is used except for a registry on loopback
    /// (localhost, 127.0.0.0/8, ::1), as docker does. With it, the registry
    /// is reached over plain HTTP and its token realm may be plain HTTP too:
    /// credentials then travel in clear text, so use it only on a trusted
    /// network.
    #[arg(long)]
    pub insecure: bool,

    /// Trust the CA certificates in this PEM file too (a private CA).
    ///
    /// Added to those the client configuration names for the registry
    /// (`~/.config/berth/client.toml`: `[registries."host:port"]` with
    /// `ca_file` and `insecure`) and to `/etc/containers/certs.d/<host:port>/*.crt`
    /// and `/etc/docker/certs.d/<host:port>/*.crt`, as podman and docker read
    /// them. A registry with an extra CA is reached over TLS even on loopback.
    #[arg(long, value_name = "PEM", env = "BERTH_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,

    /// Print each HTTP exchange and token step to stderr.
    ///
    /// Authorization values, passwords and tokens are never printed: only
    /// their kind (`Basic <redacted>`, `Bearer <redacted>`).
    #[arg(short, long)]
    pub verbose: bool,
}

/// How a listing or an inspection is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Lines for people (and for `while read`).
    Text,
    /// JSON, for scripts.
    Json,
}

impl Common {
    /// The transport options for `registry`: plain HTTP and extra CAs from
    /// the flags, then the client configuration; the `-v` trace.
    pub fn options(&self, registry: &Registry) -> anyhow::Result<TransportOptions> {
        let config = ClientConfig::load().context("cannot use the client configuration")?;
        let settings = config.for_registry(registry);
        let mut ca_files: Vec<_> = self.ca_file.iter().cloned().collect();
        ca_files.extend(settings.ca_files);
        Ok(TransportOptions {
            insecure: if self.insecure {
                Some(true)
            } else {
                settings.insecure
            },
            ca_files,
            observer: self.verbose.then(|| Observer::new(trace)),
            ..TransportOptions::default()
        })
    }
}

/// Parses a registry given as `host[:port]` (a leading `https://` or
/// `http://` and a trailing `/` are tolerated).
pub fn parse_registry(input: &str) -> anyhow::Result<Registry> {
    let bare = input
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    Registry::parse(bare).with_context(|| {
        format!("`{input}` is not a registry; give host[:port], such as registry.example.com or 127.0.0.1:5000")
    })
}

/// The stored credential for `registry`, if any.
pub fn stored_credential(registry: &Registry) -> anyhow::Result<Option<Credential>> {
    let key = registry.credential_key();
    CredentialStore::from_env()
        .lookup(&key)
        .with_context(|| format!("cannot read the stored credentials for {key}"))
}

/// A client for `registry` with its stored credential (if any).
pub fn connect(registry: &Registry, common: &Common) -> anyhow::Result<RegistryClient> {
    let credential = stored_credential(registry)?;
    RegistryClient::new(registry.clone(), credential, common.options(registry)?)
        .with_context(|| format!("cannot set up a client for {registry}"))
}

/// How `copy`, `push` and `blob put` upload: monolithic first, or in chunks
/// of `chunk_size` when given; each unfinished session kept under the state
/// directory (`$XDG_STATE_HOME/berth/uploads`, default
/// `~/.local/state/berth/uploads`) so that running the command again
/// continues it.
pub fn upload_options(chunk_size: Option<u64>) -> UploadOptions {
    let resume_dir = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| std::path::PathBuf::from(home).join(".local/state"))
        })
        .map(|state| state.join("berth/uploads"));
    let base = UploadOptions {
        resume_dir,
        ..UploadOptions::default()
    };
    match chunk_size {
        Some(chunk_size) => UploadOptions {
            monolithic: false,
            chunk_size,
            ..base
        },
        None => base,
    }
}

/// Runs `future` to completion on a runtime of this thread.
pub fn block_on<F: Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(future))
}

/// Writes to stdout; a closed pipe (`berth tags ... | head -1`) ends the
/// program with success, as the reader has what it wanted.
pub fn print_out(text: &str) -> anyhow::Result<()> {
    write_out(text.as_bytes())
}

/// Writes bytes to stdout, as [`print_out`] does text (a closed pipe ends
/// the program with success).
pub fn write_out(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => other.context("cannot write to stdout"),
    }
}

/// Pretty JSON and a newline.
pub fn json_text(value: &serde_json::Value) -> String {
    format!("{value:#}\n")
}

/// Whether stdout may carry colour: a terminal, and `NO_COLOR` unset or empty.
pub fn color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `text` in bold when colour is on.
pub fn bold(text: &str, color: bool) -> String {
    if color {
        format!("\x1b[1m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// Seconds since the epoch.
pub fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// How an `Authorization` header is shown: its kind only.
pub fn authorization(kind: AuthorizationKind) -> &'static str {
    match kind {
        AuthorizationKind::None => "no Authorization",
        AuthorizationKind::Basic => "Authorization: Basic <redacted>",
        AuthorizationKind::Bearer => "Authorization: Bearer <redacted>",
    }
}

/// How a token request presents the credential.
pub fn grant(kind: GrantKind) -> &'static str {
    match kind {
        GrantKind::Anonymous => "anonymous, no credential",
        GrantKind::Basic => "HTTP Basic with the credential",
        GrantKind::RefreshToken => "OAuth2 refresh-token grant with the identity token",
        GrantKind::Password => "OAuth2 password grant with the credential",
        GrantKind::TokenExchange => "RFC 8693 token exchange of the workload's ID token",
    }
}

/// The `-v` trace: one line per event on stderr, no secrets.
fn trace(event: &Event) {
    let line = match event {
        Event::Request {
            method,
            url,
            authorization: kind,
        } => format!("> {method} {url} ({})", authorization(*kind)),
        Event::Response { status, url } => format!("< {status} {url}"),
        Event::Challenges(challenges) => format!("  challenge: {challenges}"),
        Event::Scopes { requested, .. } => format!("  scopes: {}", or_none(requested)),
        Event::TokenRequest {
            realm,
            method,
            grant: kind,
            ..
        } => format!("  token: {method} {realm} ({})", grant(*kind)),
        Event::TokenReceived {
            lifetime, expiry, ..
        } => format!(
            "  token received: valid {} s (expiry from {expiry})",
            lifetime.as_secs()
        ),
    };
    eprintln!("{line}");
}

/// A scope list, or `(none)`.
pub fn or_none(scopes: &berth_core::Scopes) -> String {
    if scopes.is_empty() {
        "(none)".to_owned()
    } else {
        scopes.to_string()
    }
}
