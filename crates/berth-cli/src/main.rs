//! The `berth` command line: `serve`, `admin ...`, and the client commands.
//!
//! Exit codes: 0 on success, 1 on any error (the message says what was wrong
//! and what to do), 2 on a usage error (clap's convention).

mod admin;
mod logging;
mod serve;

use clap::{Parser, Subcommand};

/// berth: an OCI registry with its token service built in, and a client that
/// gets registry authentication right against any registry.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the registry (embedded default: filesystem blobs + SQLite metadata).
    Serve(serve::ServeArgs),
    /// Administer a running registry: users, organisations, robots, tokens, keys.
    Admin(admin::AdminArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Admin(args) => admin::run(args),
    }
}
