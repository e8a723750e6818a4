//! `berth delete REF`: delete a manifest (by digest).

use anyhow::{Context, anyhow};
use berth_client::client::{ClientError, RegistryClient};
use berth_core::{Reference, TagOrDigest};
use clap::Args;

use super::tags::parse_reference;
use super::{Common, block_on, connect, print_out};

/// Delete a manifest: by its digest, or by the digest a tag resolves to.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  berth delete registry.example.com/acme/app@sha256:...
  berth delete registry.example.com/acme/app:1.0   # resolves 1.0, deletes its digest

Deleting a manifest (on berth and distribution) also removes every tag on it;
to remove one tag only, use `berth untag`. A REF with neither tag nor digest is
refused rather than read as `latest`.

Where the registry refuses deletion (405 UNSUPPORTED: GHCR, Docker Hub, an
operator's choice), one line says where deletion is done instead.

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct DeleteArgs {
    /// The manifest, as [host[:port]/]name:tag or [host[:port]/]name[:tag]@digest.
    #[arg(value_name = "REF", value_parser = tag_or_digest_given)]
    reference: String,

    #[command(flatten)]
    common: Common,
}

/// Runs `berth delete`.
pub fn run(args: DeleteArgs) -> anyhow::Result<()> {
    let reference = parse_reference(&args.reference)?;
    let client = connect(reference.registry(), &args.common)?;
    let deleted = block_on(delete(&client, &reference))??;
    print_out(&format!("deleted {deleted}\n"))
}

async fn delete(client: &RegistryClient, reference: &Reference) -> anyhow::Result<String> {
    let repo = reference.repository();
    let resolved = reference.digest().is_none();
    let digest = match reference.digest() {
        Some(digest) => digest.clone(),
        None => {
            client
                .head_manifest(repo, &reference.tag_or_digest())
                .await
                .with_context(|| format!("cannot find {reference}"))?
                .digest
        }
    };
    let target = format!("{}/{repo}@{digest}", reference.registry());
    client
        .delete_manifest(repo, &TagOrDigest::Digest(digest.clone()))
        .await
        .map_err(|e| failure(e, reference, &format!("cannot delete {target}")))?;
    if resolved {
        eprintln!(
            "note: {reference} was {digest}, deleted by digest: that removes the manifest and \
             every tag on it (berth, distribution); `berth untag` removes a tag only"
        );
    }
    Ok(target)
}

/// A delete's error: for a 405 UNSUPPORTED, the one line saying what the
/// registry does instead; else the error under `what`.
pub fn failure(error: ClientError, reference: &Reference, what: &str) -> anyhow::Error {
    match error {
        ClientError::DeleteUnsupported { .. } => anyhow!(unsupported(reference)),
        other => anyhow::Error::new(other).context(what.to_owned()),
    }
}

/// Where `reference`'s registry deletes, since not through the registry API.
fn unsupported(reference: &Reference) -> String {
    let registry = reference.registry();
    let repo = reference.repository().as_str();
    let host = registry.host();
    if host == "ghcr.io" || host.ends_with(".ghcr.io") {
        // The package is the path after the owner, `/` encoded; the owner is
        // a user (`/user/...` when it is you) or an organisation (`/orgs/<org>/...`).
        let (owner, name) = repo.split_once('/').unwrap_or(("<owner>", repo));
        let package = name.replace('/', "%2F");
        format!(
            "ghcr.io does not delete through the registry API; delete the package version with \
             the GitHub Packages API (gh api -X DELETE /user/packages/container/{package}/versions/<id>, \
             or /orgs/{owner}/packages/container/{package}/versions/<id> for an organisation)"
        )
    } else if registry.is_docker_hub() {
        let tag = reference
            .tag()
            .map_or_else(|| "<tag>".to_owned(), ToString::to_string);
        format!(
            "Docker Hub does not delete through the registry API; delete the tag in its web UI or \
             with its web API (DELETE https://hub.docker.com/v2/repositories/{repo}/tags/{tag}/)"
        )
    } else {
        format!("{registry} refuses deletion (405 UNSUPPORTED): its operator has disabled it")
    }
}

/// Whether `input` spells out a tag (`name:tag`), rather than taking
/// `latest` by default; the rule `Reference::parse` uses.
pub fn has_tag(input: &str) -> bool {
    let named = input.split_once('@').map_or(input, |(named, _)| named);
    named
        .rsplit_once(':')
        .is_some_and(|(_, tag)| !tag.contains('/'))
}

/// A REF naming a tag or a digest, not a bare repository.
fn tag_or_digest_given(input: &str) -> Result<String, String> {
    if has_tag(input) || input.contains('@') {
        Ok(input.to_owned())
    } else {
        Err(
            "give the manifest as name:tag or name@digest (a bare name is not read as `latest` \
             for a deletion)"
                .to_owned(),
        )
    }
}
