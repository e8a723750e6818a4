//! `berth logout REGISTRY`: forget the stored credential.

use anyhow::Context;
use berth_client::credentials::CredentialStore;
use clap::Args;

use super::{parse_registry, print_out};

/// Log out of a registry: remove its stored credential.
#[derive(Debug, Args)]
#[command(after_help = "\
Example:
  berth logout registry.example.com

Removes the registry's entry from berth's own login file
(~/.config/berth/auth.json), from docker's config.json (in every spelling of
its key) and from the credential helper it names. Podman's auth.json files and
BERTH_USERNAME/BERTH_PASSWORD are not changed; berth says so when one of them
still holds a credential for the registry.

Exit codes: 0 success (also when nothing was stored), 1 failure, 2 usage error.")]
pub struct LogoutArgs {
    /// The registry, as host[:port] (`docker.io` for Docker Hub).
    #[arg(value_name = "REGISTRY")]
    registry: String,
}

/// Runs `berth logout`.
pub fn run(args: LogoutArgs) -> anyhow::Result<()> {
    let registry = parse_registry(&args.registry)?;
    let key = registry.credential_key();
    let store = CredentialStore::from_env();
    // What berth's file and docker's config (or its helper) held: what
    // erasing removes.
    let before = store.writable().source(&key);
    store
        .erase(&key)
        .with_context(|| format!("cannot remove the credential for {key}"))?;
    if let Some(still) = store.source(&key) {
        eprintln!("note: {still} still holds a credential for {key}; logout does not change it");
    }
    match before {
        Some(source) => print_out(&format!("removed the credential for {key} from {source}\n")),
        None => print_out(&format!(
            "no credential for {key} was stored in berth's login file or docker's config; \
             nothing removed\n"
        )),
    }
}
