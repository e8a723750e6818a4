//! The `berth` command line: `serve`, `admin ...`, and the client commands.

use clap::Parser;

/// berth: an OCI registry with its token service built in, and a client that
/// gets registry authentication right against any registry.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, long_about = None)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
