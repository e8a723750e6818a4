//! `berth admin ...`: users, organisations, robots, tokens, repository
//! visibility, signing keys, garbage collection, usage and quotas, events,
//! pull-through cache namespaces,
//! through the registry's admin API
//! (`/api/v1/`, see `berth-registry/src/http/admin/`).
//!
//! Every command logs in at `--registry` as `BERTH_USERNAME` with
//! `BERTH_PASSWORD` (a password or personal access token of an
//! administrator), else with the login `berth login` stored (see `api.rs`).
//! What a command produces goes to stdout (a secret, a PEM, a list); notes for
//! the person at the terminal go to stderr.

mod events;
mod keys;
pub(crate) mod org;
mod proxy;
pub(crate) mod repo;
mod robot;
mod storage;
pub(crate) mod token;
mod user;

use clap::{Args, Subcommand};

use crate::api::Connection;

/// Administer a running registry through its admin API.
#[derive(Debug, Args)]
#[command(after_help = "\
Every command logs in with BERTH_USERNAME and BERTH_PASSWORD (an administrator's
password or personal access token; never a flag), else with the login
`berth login HOST` stored:

  export BERTH_USERNAME=admin
  read -rs BERTH_PASSWORD && export BERTH_PASSWORD
  berth admin user create alice --password-stdin <<< 'a long password'
  berth admin org create acme --owner alice

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct AdminArgs {
    /// The registry's URL [default: http://127.0.0.1:5000].
    ///
    /// The base URL `berth serve` answers at (its --public-url), e.g.
    /// `https://registry.example.com`.
    #[arg(
        long,
        env = "BERTH_REGISTRY",
        value_name = "URL",
        global = true,
        default_value = "http://127.0.0.1:5000",
        hide_default_value = true
    )]
    registry: String,

    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create, delete and import users, and change their passwords.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Create organisations and manage their members.
    #[command(subcommand)]
    Org(org::OrgCommand),
    /// Create robot accounts (token-only accounts of an organisation).
    #[command(subcommand)]
    Robot(robot::RobotCommand),
    /// Create, list and revoke personal access tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Set a repository's visibility.
    #[command(subcommand)]
    Repo(repo::RepoCommand),
    /// Rotate the token signing keys and export the root certificate.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Run the garbage collector now, or see what it would remove.
    #[command(subcommand)]
    Gc(storage::GcCommand),
    /// Show the bytes each namespace and repository holds, with quotas.
    #[command(after_help = "\
Examples:
  berth admin usage
  berth admin usage acme --output json

A namespace counts each distinct blob once, however many of its repositories
link it; manifests are not counted.")]
    Usage {
        /// Only this namespace (and its repositories).
        namespace: Option<String>,
        /// `text` or `json`.
        #[arg(long, value_enum, default_value = "text")]
        output: token::Output,
    },
    /// Set, remove and list namespace quotas.
    #[command(subcommand)]
    Quota(storage::QuotaCommand),
    /// List the events sent to webhook endpoints, and send them again.
    #[command(subcommand)]
    Events(events::EventsCommand),
    /// List, add and remove pull-through cache namespaces.
    #[command(subcommand)]
    Proxy(proxy::ProxyCommand),
}

/// Runs `berth admin ...`.
pub fn run(args: AdminArgs) -> anyhow::Result<()> {
    // Settled before any I/O: a missing variable fails before anything is sent.
    let api = Connection::resolve(&args.registry)?.connect()?;
    match args.command {
        AdminCommand::User(command) => user::run(&api, command),
        AdminCommand::Org(command) => org::run(&api, command),
        AdminCommand::Robot(command) => robot::run(&api, command),
        AdminCommand::Token(command) => token::run(&api, command),
        AdminCommand::Repo(command) => repo::run(&api, command),
        AdminCommand::Keys(command) => keys::run(&api, command),
        AdminCommand::Gc(command) => storage::run_gc(&api, command),
        AdminCommand::Usage { namespace, output } => {
            storage::run_usage(&api, namespace.as_deref(), output)
        }
        AdminCommand::Quota(command) => storage::run_quota(&api, command),
        AdminCommand::Events(command) => events::run(&api, command),
        AdminCommand::Proxy(command) => proxy::run(&api, command),
    }
}

/// The actions a token may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TokenAction {
    /// Download images.
    Pull,
    /// Upload images.
    Push,
    /// Delete manifests, tags and blobs.
    Delete,
}

impl TokenAction {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pull => "pull",
            Self::Push => "push",
            Self::Delete => "delete",
        }
    }
}

/// `["pull", ...]` for a request body, or `None` for the server's default.
pub(crate) fn actions_json(actions: &[TokenAction]) -> Option<serde_json::Value> {
    (!actions.is_empty()).then(|| actions.iter().map(|a| a.as_str()).collect())
}
