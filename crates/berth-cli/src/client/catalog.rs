//! `berth catalog REGISTRY`: the registry's repositories.

use anyhow::{Context, bail};
use berth_client::client::{ClientError, Listing};
use clap::Args;
use serde_json::json;

use super::{Common, Output, block_on, connect, json_text, parse_registry, print_out};

/// List a registry's repositories (/v2/_catalog), following every page.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  berth catalog registry.example.com
  berth catalog 127.0.0.1:5000 --output json | jq -r '.repositories[]'
  berth catalog 127.0.0.1:5000 --limit 10 --page-size 10   # one request

Only the repositories the credential may see are listed. Registries without a
catalog (Docker Hub, GHCR) are reported as such, with exit code 1.

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct CatalogArgs {
    /// The registry, as host[:port].
    #[arg(value_name = "REGISTRY")]
    registry: String,

    /// Ask for N repositories per page (every page is still followed, up to --limit).
    ///
    /// The registry may send fewer per page (berth sends at most its page
    /// cap); it only changes how many requests a long list takes.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    page_size: Option<u32>,

    /// Print at most N repositories, and stop fetching pages once they are in hand.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,

    /// Output format: one name per line, or `{"repositories": [...]}`.
    #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
    output: Output,

    #[command(flatten)]
    common: Common,
}

/// Runs `berth catalog`.
pub fn run(args: CatalogArgs) -> anyhow::Result<()> {
    let registry = parse_registry(&args.registry)?;
    let client = connect(&registry, &args.common)?;
    let listing = Listing {
        page_size: args.page_size,
        max: args.limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
    };
    let repositories = match block_on(client.catalog_listing(listing))? {
        Ok(list) => list,
        Err(ClientError::CatalogUnsupported { .. }) => bail!(
            "{registry} does not offer a repository catalog (/v2/_catalog) to this account; \
             list the tags of a known repository with `berth tags` instead"
        ),
        Err(e) => return Err(e).context(format!("cannot list the repositories of {registry}")),
    };
    match args.output {
        Output::Json => print_out(&json_text(&json!({ "repositories": repositories }))),
        Output::Text => print_out(&lines(&repositories)),
    }
}

/// One item per line.
pub fn lines(items: &[String]) -> String {
    items.iter().map(|i| format!("{i}\n")).collect()
}
