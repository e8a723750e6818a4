//! `berth admin keys rotate|export-root`.

use anyhow::{Context, bail};
use clap::Subcommand;
use reqwest::Method;

use crate::api::{Api, field, print_out};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new token signing key active; print its kid.
    #[command(after_help = "\
Example:
  berth admin keys rotate

New tokens are signed with the new key at once, without a restart. Older keys
stay in /token/jwks.json and keep verifying the tokens they signed. Registries
that trust berth through its root certificate need no change.")]
    Rotate,

    /// Print the root certificate (PEM) that signs the token keys.
    #[command(after_help = "\
Example:
  berth admin keys export-root > berth-root.pem

Give it to registries that verify berth's tokens, e.g. CNCF distribution's
auth.token.rootcertbundle. It stays the same across key rotations.")]
    ExportRoot,
}

pub fn run(api: &Api, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Rotate => {
            let answer = api
                .call(Method::POST, &["keys", "rotate"], None)
                .context("cannot rotate the token signing keys")?;
            let kid = field(&answer, "kid");
            if kid.is_empty() {
                bail!(
                    "the registry rotated its keys but did not name the new one; check `berth admin keys export-root` and /token/jwks.json"
                );
            }
            let loaded = answer["kids"].as_array().map_or(0, Vec::len);
            eprintln!(
                "signing key {kid} is now active; {loaded} keys verify tokens (older ones keep working)"
            );
            print_out(&format!("{kid}\n"))
        }
        KeysCommand::ExportRoot => {
            let answer = api
                .call(Method::GET, &["keys"], None)
                .context("cannot read the root certificate")?;
            let pem = field(&answer, "root_pem");
            if !pem.starts_with("-----BEGIN CERTIFICATE-----") {
                bail!(
                    "the registry's answer holds no PEM certificate; is --registry a berth registry?"
                );
            }
            if pem.ends_with('\n') {
                print_out(pem)
            } else {
                print_out(&format!("{pem}\n"))
            }
        }
    }
}
