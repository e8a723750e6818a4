//! `berth tags REF`: the tags of a repository.

use anyhow::Context;
use berth_client::client::Listing;
use berth_core::Reference;
use clap::Args;
use serde_json::json;

use super::catalog::lines;
use super::{Common, Output, block_on, connect, json_text, print_out};

/// List the tags of a repository, following every page.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  berth tags registry.example.com/acme/app
  berth tags alpine --output json        # docker.io/library/alpine
  berth tags ghcr.io/acme/app --limit 20 # the first 20 (in the registry's order)

A tag or digest in REF is ignored.

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct TagsArgs {
    /// The repository, as [host[:port]/]name (Docker Hub when no host).
    #[arg(value_name = "REF")]
    reference: String,

    /// Ask for N tags per page (every page is still followed, up to --limit).
    ///
    /// The registry may send fewer per page (berth sends at most its page
    /// cap); it only changes how many requests a long list takes.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    page_size: Option<u32>,

    /// Print at most N tags, and stop fetching pages once they are in hand.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,

    /// Output format: one tag per line, or `{"name": ..., "tags": [...]}`.
    #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
    output: Output,

    #[command(flatten)]
    common: Common,
}

/// Runs `berth tags`.
pub fn run(args: TagsArgs) -> anyhow::Result<()> {
    let reference = parse_reference(&args.reference)?;
    let client = connect(reference.registry(), &args.common)?;
    let repo = reference.repository();
    let listing = Listing {
        page_size: args.page_size,
        max: args.limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
    };
    let tags = block_on(client.tags_listing(repo, listing))?
        .with_context(|| format!("cannot list the tags of {}/{repo}", reference.registry()))?;
    match args.output {
        Output::Json => print_out(&json_text(&json!({ "name": repo.as_str(), "tags": tags }))),
        Output::Text => print_out(&lines(&tags)),
    }
}

/// Parses an image reference, with a message saying what is expected.
pub fn parse_reference(input: &str) -> anyhow::Result<Reference> {
    Reference::parse(input).with_context(|| {
        format!("`{input}` is not an image reference; give [host[:port]/]name[:tag][@digest]")
    })
}
