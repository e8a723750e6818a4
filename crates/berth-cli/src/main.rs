//! The `berth` command line: `serve`, `backup`, `migrate`, `admin ...`, the account
//! commands (`token`, `password`, `org`, `robot`, `repo`, `trust`), and the client
//! commands.
//!
//! Exit codes: 0 on success, 1 on any error (the message says what was wrong
//! and what to do), 2 on a usage error (clap's convention).
//!
//! Every command ends a failure here, with one line on stderr:
//! `berth: <what failed>: <cause>; <what to do>`. The error's cause chain is
//! joined with `: `, a cause its parent's message already quotes is not
//! repeated (so a URL is named once), and the advice of every layer (what
//! follows its first `; `) comes last. No `Caused by:` block and no backtrace,
//! even with `RUST_BACKTRACE` set, unless `-v` is given; a panic is one line
//! too.

mod account;
mod admin;
mod api;
mod backup;
mod client;
mod logging;
mod migrate;
mod notify;
mod serve;

use std::backtrace::BacktraceStatus;
use std::process::ExitCode;

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
    // Boxed: its settings outweigh every other command's arguments.
    /// Run the registry (embedded default: filesystem blobs + SQLite metadata).
    Serve(Box<serve::ServeArgs>),
    /// Administer a running registry: users, organisations, robots, tokens, keys.
    Admin(admin::AdminArgs),
    /// Create, list and revoke your personal access tokens.
    Token(account::token::TokenArgs),
    /// Change your own password.
    Password(account::password::PasswordArgs),
    /// Manage the members of the organisations you own.
    Org(account::org::OrgArgs),
    /// Create, list and delete the robot accounts of the organisations you own.
    Robot(account::robot::RobotArgs),
    /// List your repositories and set their visibility.
    Repo(account::repo::RepoArgs),
    /// Let CI jobs log in with their OIDC ID token: trust rules per namespace.
    Trust(account::trust::TrustArgs),
    /// Back up a registry's data directory while it serves (restore: `serve --data-dir`).
    Backup(backup::BackupArgs),
    /// Copy an embedded registry (a data directory) to PostgreSQL and/or S3.
    Migrate(migrate::MigrateArgs),
    /// Log in to a registry: check the credential, then store it.
    Login(client::login::LoginArgs),
    /// Log out of a registry: remove its stored credential.
    Logout(client::logout::LogoutArgs),
    /// Push files as an OCI artifact (as `oras push` does).
    Push(client::push::PushArgs),
    /// Pull the files of an artifact into a directory (as `oras pull` does).
    Pull(client::pull::PullArgs),
    /// Show a manifest, an index's platforms, an image's layers and config.
    Inspect(client::inspect::InspectArgs),
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

fn main() -> ExitCode {
    let verbose = verbose_asked(std::env::args_os().skip(1));
    install_panic_hook(verbose);
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Admin(args) => admin::run(args),
        Command::Token(args) => account::token::run(args),
        Command::Password(args) => account::password::run(args),
        Command::Org(args) => account::org::run(args),
        Command::Robot(args) => account::robot::run(args),
        Command::Repo(args) => account::repo::run(args),
        Command::Trust(args) => account::trust::run(args),
        Command::Backup(args) => backup::run(args),
        Command::Migrate(args) => migrate::run(args),
        Command::Login(args) => client::login::run(args),
        Command::Logout(args) => client::logout::run(args),
        Command::Push(args) => client::push::run(args),
        Command::Pull(args) => client::pull::run(args),
        Command::Inspect(args) => client::inspect::run(args),
        Command::Catalog(args) => client::catalog::run(args),
        Command::Tags(args) => client::tags::run(args),
        Command::Digest(args) => client::digest::run(args),
        Command::Delete(args) => client::delete::run(args),
        Command::Untag(args) => client::untag::run(args),
        Command::Copy(args) => client::copy::run(args),
        Command::Manifest(command) => client::manifest::run(command),
        Command::Blob(command) => client::blob::run(command),
        Command::Auth(command) => client::auth::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("berth: {}", one_line(&error));
            if verbose && error.backtrace().status() == BacktraceStatus::Captured {
                eprintln!("{}", error.backtrace());
            }
            ExitCode::from(1)
        }
    }
}

/// Whether the command line asks for `-v` (`--verbose`, or `v` in a group of
/// short flags such as `-qv`). Read from the raw arguments so that it is
/// known before parsing and for every command alike; secrets never come from
/// arguments, so no value can be mistaken for it.
fn verbose_asked(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    for arg in args {
        let Some(arg) = arg.to_str() else { continue };
        if arg == "--" {
            return false;
        }
        if arg == "--verbose"
            || (arg.len() > 1
                && arg.starts_with('-')
                && !arg.starts_with("--")
                && arg[1..].chars().all(|c| c.is_ascii_alphabetic())
                && arg.contains('v'))
        {
            return true;
        }
    }
    false
}

/// The error as one line: `<what failed>: <cause>; <what to do>`.
///
/// Each layer of the chain adds its message, unless an earlier layer's
/// message already holds it (a cause quoted by its parent, such as the
/// transport error under "request to URL failed: ..."). A message's advice,
/// the part after its first `; `, is moved to the end, so that the causes
/// read in a row and what to do comes last.
fn one_line(error: &anyhow::Error) -> String {
    let mut seen = String::new();
    let mut claims: Vec<String> = Vec::new();
    let mut advice: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string().replace(['\n', '\r'], " ");
        let text = text.trim();
        if text.is_empty() || seen.contains(text) {
            continue;
        }
        seen.push_str(text);
        seen.push('\n');
        match split_advice(text) {
            Some((claim, rest)) => {
                claims.push(claim.trim_end().to_owned());
                advice.push(rest.trim().to_owned());
            }
            None => claims.push(text.to_owned()),
        }
    }
    let mut line = claims.join(": ");
    for rest in advice.iter().filter(|a| !a.is_empty()) {
        line.push_str("; ");
        line.push_str(rest);
    }
    line
}

/// `text` split at its first `; ` outside backquotes (an example command
/// such as `` `export A=1; export B=2` `` is not advice).
fn split_advice(text: &str) -> Option<(&str, &str)> {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '`' => quoted = !quoted,
            ';' if !quoted && text[i + 1..].starts_with(' ') => {
                return Some((&text[..i], &text[i + 2..]));
            }
            _ => {}
        }
    }
    None
}

/// A panic (a bug) is reported as one line too, with the backtrace only
/// under `-v`.
fn install_panic_hook(verbose: bool) {
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".to_owned());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "berth: internal error: {}{place}; this is a bug: report it with the command that \
             caused it (run it with -v for a backtrace)",
            message.replace('\n', " ")
        );
        if verbose {
            eprintln!("{}", std::backtrace::Backtrace::force_capture());
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("request to http://h/v2/ failed: connection refused; check the network")]
    struct Network(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("connection refused")]
    struct Inner;

    #[test]
    fn a_chain_is_one_line_with_each_cause_once_and_the_advice_last() {
        let error = anyhow::Error::new(Network(Inner)).context("cannot list the tags of h/x");
        assert_eq!(
            one_line(&error),
            "cannot list the tags of h/x: request to http://h/v2/ failed: connection refused; \
             check the network"
        );
        let error = anyhow::anyhow!("no user name; give it with -u USER\nplease")
            .context("cannot log in; try again");
        assert_eq!(
            one_line(&error),
            "cannot log in: no user name; try again; give it with -u USER please"
        );
        let error = anyhow::anyhow!("not set; e.g. `export A=1; export B=2`").context("cannot x");
        assert_eq!(
            one_line(&error),
            "cannot x: not set; e.g. `export A=1; export B=2`"
        );
    }

    #[test]
    fn verbose_is_found_in_any_spelling() {
        let args = |list: &[&str]| {
            list.iter()
                .map(std::ffi::OsString::from)
                .collect::<Vec<_>>()
        };
        assert!(verbose_asked(args(&["tags", "x", "-v"]).into_iter()));
        assert!(verbose_asked(args(&["copy", "a", "b", "-qv"]).into_iter()));
        assert!(verbose_asked(args(&["tags", "--verbose", "x"]).into_iter()));
        assert!(!verbose_asked(args(&["tags", "x"]).into_iter()));
        assert!(!verbose_asked(args(&["serve", "--", "-v"]).into_iter()));
        assert!(!verbose_asked(args(&["tags", "-1v"]).into_iter()));
    }
}
