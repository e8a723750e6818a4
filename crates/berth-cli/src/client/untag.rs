//! `berth untag REF`: remove one tag, keeping the manifest.

use anyhow::{Context, bail};
use berth_client::client::RegistryClient;
use berth_core::{Reference, TagOrDigest};
use clap::Args;

use super::delete::{failure, has_tag};
use super::tags::parse_reference;
use super::{Common, block_on, connect, print_out};

/// Remove a tag (DELETE /v2/<name>/manifests/<tag>); the manifest stays.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  berth untag registry.example.com/acme/app:1.0
  berth untag registry.example.com/acme/app:1.0@sha256:...   # only if 1.0 is that digest

The manifest and its other tags stay; to delete the manifest, use
`berth delete`. Where the registry refuses deletion (405 UNSUPPORTED: GHCR,
Docker Hub, an operator's choice), one line says where it is done instead.

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct UntagArgs {
    /// The tag, as [host[:port]/]name:tag[@digest].
    #[arg(value_name = "REF", value_parser = tag_given)]
    reference: String,

    #[command(flatten)]
    common: Common,
}

/// Runs `berth untag`.
pub fn run(args: UntagArgs) -> anyhow::Result<()> {
    let reference = parse_reference(&args.reference)?;
    let client = connect(reference.registry(), &args.common)?;
    let untagged = block_on(untag(&client, &reference))??;
    print_out(&format!("untagged {untagged}\n"))
}

async fn untag(client: &RegistryClient, reference: &Reference) -> anyhow::Result<String> {
    let repo = reference.repository();
    let tag = reference
        .tag()
        .context("the reference names no tag")?
        .clone();
    let target = format!("{}/{repo}:{tag}", reference.registry());
    let by_tag = TagOrDigest::Tag(tag);
    if let Some(expected) = reference.digest() {
        let head = client
            .head_manifest(repo, &by_tag)
            .await
            .with_context(|| format!("cannot find {target}"))?;
        if head.digest != *expected {
            bail!(
                "{target} is {}, not {expected}; nothing removed (drop the digest to untag anyway)",
                head.digest
            );
        }
    }
    client
        .delete_manifest(repo, &by_tag)
        .await
        .map_err(|e| failure(e, reference, &format!("cannot untag {target}")))?;
    Ok(target)
}

/// A REF that spells out its tag.
fn tag_given(input: &str) -> Result<String, String> {
    if has_tag(input) {
        Ok(input.to_owned())
    } else {
        Err(
            "untag needs the tag, as name:tag; to delete a manifest by digest, use `berth delete`"
                .to_owned(),
        )
    }
}
