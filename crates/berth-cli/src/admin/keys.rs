//! `berth admin keys rotate|retire|export-root`.

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

    /// Retire a signing key that no longer signs, once its tokens have expired.
    #[command(after_help = "\
Example:
  berth admin keys retire Xk3...

Refused for the active key, and until the token lifetime plus 60 s of leeway
have passed since it stopped signing (the message says when). Its files are
removed and /token/jwks.json no longer lists it. With several nodes, retire a
key only after every node has restarted on the rotation.")]
    Retire {
        /// The key's kid (as `berth admin keys rotate` printed it, or /token/jwks.json lists it).
        #[arg(value_name = "KID")]
        kid: String,
    },

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
        KeysCommand::Retire { kid } => {
            api.call(Method::DELETE, &["keys", &kid], None)
                .with_context(|| format!("cannot retire signing key `{kid}`"))?;
            print_out(&format!("retired signing key {kid}\n"))
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
