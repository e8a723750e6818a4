//! The `berth` command line: `serve`, `admin ...`, and the client commands.
//!
//! Exit codes: 0 on success, 1 on any error (the message says what was wrong
//! and what to do), 2 on a usage error (clap's convention).

mod admin;
mod client;
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
    /// Log in to a registry: check the credential, then store it.
    Login(client::login::LoginArgs),
    /// Log out of a registry: remove its stored credential.
    Logout(client::logout::LogoutArgs),
    /// List a registry's repositories (/v2/_catalog).
    Catalog(client::catalog::CatalogArgs),
    /// List the tags of a repository.
    Tags(client::tags::TagsArgs),
    /// Print the digest of an image's manifest (or of its config).
    Digest(client::digest::DigestArgs),
    /// Delete a manifest (by digest; a tag is resolved first), with its tags.
    Delete(client::delete::DeleteArgs),
    /// Remove a tag; the manifest stays.
    Untag(client::untag::UntagArgs),
    /// Copy an image, index or artifact between registries and OCI layouts.
    Copy(client::copy::CopyArgs),
    /// Get, put or delete a manifest (`manifest get|put|delete REF`).
    #[command(subcommand)]
    Manifest(client::manifest::ManifestCommand),
    /// Get, put or delete a blob (`blob get|put|delete REF@DIGEST`).
    #[command(subcommand)]
    Blob(client::blob::BlobCommand),
    /// Understand how a registry authenticates (`auth explain REF`).
    #[command(subcommand)]
    Auth(client::auth::AuthCommand),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Admin(args) => admin::run(args),
        Command::Login(args) => client::finish(client::login::run(args)),
        Command::Logout(args) => client::finish(client::logout::run(args)),
        Command::Catalog(args) => client::finish(client::catalog::run(args)),
        Command::Tags(args) => client::finish(client::tags::run(args)),
        Command::Digest(args) => client::finish(client::digest::run(args)),
        Command::Delete(args) => client::finish(client::delete::run(args)),
        Command::Untag(args) => client::finish(client::untag::run(args)),
        Command::Copy(args) => client::finish(client::copy::run(args)),
        Command::Manifest(command) => client::finish(client::manifest::run(command)),
        Command::Blob(command) => client::finish(client::blob::run(command)),
        Command::Auth(command) => client::finish(client::auth::run(command)),
    }
}
