//! `berth delete REF`: delete a manifest (by digest), with every tag on it.
//!
//! Before deleting, the repository's tags are listed and resolved (HEAD,
//! [`CHECK_JOBS`] at a time, at most [`MAX_CHECKED`]) to say which tags go
//! with the manifest; on a terminal the deletion is then confirmed, off one
//! it needs `--yes`. `--dry-run` stops after saying what would go.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use berth_client::client::{ClientError, RegistryClient};
use berth_core::{Digest, Reference, Tag, TagOrDigest};
use clap::Args;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::tags::parse_reference;
use super::{Common, connect, print_out};

/// Tags resolved at once.
const CHECK_JOBS: usize = 8;
/// The most tags resolved to find those on the manifest.
const MAX_CHECKED: usize = 1000;
/// The most tag names printed in the summary.
const MAX_NAMED: usize = 20;

/// Delete a manifest: by its digest, or by the digest a tag resolves to.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  berth delete registry.example.com/acme/app@sha256:...
  berth delete registry.example.com/acme/app:1.0   # resolves 1.0, deletes its digest
  berth delete registry.example.com/acme/app:1.0 --dry-run   # which tags would go
  berth delete registry.example.com/acme/app@sha256:... --yes   # in a script

Deleting a manifest (on berth and distribution) also removes every tag on it;
to remove one tag only, use `berth untag`. So berth first lists the
repository's tags and resolves them (at most 1000) to say which tags will go,
then asks on a terminal; --yes skips the question, and off a terminal (a
script, a pipe) --yes is required. --dry-run only says what would go. A REF
with neither tag nor digest is refused rather than read as `latest`.

Where the registry refuses deletion (405 UNSUPPORTED: GHCR, Docker Hub, an
operator's choice), one line says where deletion is done instead.

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct DeleteArgs {
    /// The manifest, as [host[:port]/]name:tag or [host[:port]/]name[:tag]@digest.
    #[arg(value_name = "REF", value_parser = tag_or_digest_given)]
    reference: String,

    /// Delete without asking (required when stdin is not a terminal).
    #[arg(long, short = 'y', conflicts_with = "dry_run")]
    yes: bool,

    /// Only say what would be deleted (the manifest and its tags).
    #[arg(long)]
    dry_run: bool,

    #[command(flatten)]
    common: Common,
}

/// Runs `berth delete`.
pub fn run(args: DeleteArgs) -> anyhow::Result<()> {
    let reference = parse_reference(&args.reference)?;
    let client = Arc::new(connect(reference.registry(), &args.common)?);
    // One runtime for every request: the client's connections belong to it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (digest, going) = runtime.block_on(plan(&client, &reference))?;
    let target = format!(
        "{}/{}@{digest}",
        reference.registry(),
        reference.repository()
    );
    eprintln!("{}", going.describe(&target));
    if args.dry_run {
        return print_out(&format!("would delete {target}{}\n", going.suffix()));
    }
    if !args.yes {
        confirm(&target)?;
    }
    runtime.block_on(delete(&client, &reference, &digest))?;
    print_out(&format!("deleted {target}{}\n", going.suffix()))
}

/// The tags that go with a manifest, as far as they were checked.
struct Going {
    /// The tags resolving to the manifest.
    tags: Vec<String>,
    /// The tags resolved.
    checked: usize,
    /// The tags of the repository.
    total: usize,
    /// Why the tags could not be listed, if they could not.
    unlisted: Option<String>,
}

impl Going {
    /// What goes, for stderr.
    fn describe(&self, target: &str) -> String {
        if let Some(why) = &self.unlisted {
            return format!(
                "{target}: the manifest and every tag on it will go; its tags could not be \
                 listed ({why})"
            );
        }
        let checked = if self.checked == self.total {
            format!(
                "checked all {} tag{} of the repository",
                self.total,
                plural(self.total)
            )
        } else {
            format!(
                "checked {} of the repository's {} tags: others may go too",
                self.checked, self.total
            )
        };
        match self.tags.len() {
            0 => format!("{target}: the manifest will go; no tag points at it ({checked})"),
            n => format!(
                "{target}: the manifest will go with {n} tag{}: {} ({checked})",
                plural(n),
                self.names()
            ),
        }
    }

    /// ` (tags a, b)`, or nothing.
    fn suffix(&self) -> String {
        if self.tags.is_empty() {
            String::new()
        } else {
            format!(" (tag{} {})", plural(self.tags.len()), self.names())
        }
    }

    fn names(&self) -> String {
        let mut names = self
            .tags
            .iter()
            .take(MAX_NAMED)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if self.tags.len() > MAX_NAMED {
            names.push_str(&format!(" and {} more", self.tags.len() - MAX_NAMED));
        }
        names
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Asks on the terminal; anything but y/yes keeps the manifest.
fn confirm(target: &str) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "refusing to delete {target} without confirmation: stdin is not a terminal to ask on; \
             pass --yes to delete it (--dry-run shows what would go)"
        );
    }
    eprint!("Delete it? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => bail!("nothing deleted: {target} was kept (answer y to delete, or pass --yes)"),
    }
}

/// The digest `reference` names, and the tags that point at it.
async fn plan(
    client: &Arc<RegistryClient>,
    reference: &Reference,
) -> anyhow::Result<(Digest, Going)> {
    let repo = reference.repository();
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
    let tags = match client.tags(repo, None).await {
        Ok(tags) => tags,
        Err(e) => {
            return Ok((
                digest,
                Going {
                    tags: Vec::new(),
                    checked: 0,
                    total: 0,
                    unlisted: Some(e.to_string()),
                },
            ));
        }
    };
    let total = tags.len();
    let permits = Arc::new(Semaphore::new(CHECK_JOBS));
    let mut tasks = JoinSet::new();
    for (index, tag) in tags.into_iter().take(MAX_CHECKED).enumerate() {
        let (client, repo, permits) = (client.clone(), repo.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let Ok(parsed) = Tag::parse(&tag) else {
                return (index, tag, None);
            };
            let head = client.head_manifest(&repo, &TagOrDigest::Tag(parsed)).await;
            (index, tag, head.ok().map(|h| h.digest))
        });
    }
    let mut found = Vec::new();
    let mut checked = 0;
    while let Some(joined) = tasks.join_next().await {
        let (index, tag, resolved) = joined.context("a tag check stopped")?;
        checked += 1;
        if resolved.as_ref() == Some(&digest) {
            found.push((index, tag));
        }
    }
    found.sort();
    Ok((
        digest,
        Going {
            tags: found.into_iter().map(|(_, tag)| tag).collect(),
            checked,
            total,
            unlisted: None,
        },
    ))
}

async fn delete(
    client: &RegistryClient,
    reference: &Reference,
    digest: &Digest,
) -> anyhow::Result<()> {
    let repo = reference.repository();
    let resolved = reference.digest().is_none();
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
    Ok(())
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
