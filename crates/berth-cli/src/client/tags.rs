//! `berth tags REF`: the tags of a repository.

use anyhow::Context;
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

A tag or digest in REF is ignored.

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct TagsArgs {
    /// The repository, as [host[:port]/]name (Docker Hub when no host).
    #[arg(value_name = "REF")]
    reference: String,

    /// Ask for N tags per page (all pages are still followed).
    #[arg(long, value_name = "N")]
    limit: Option<u32>,

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
    let tags = block_on(client.tags(repo, args.limit))?
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
