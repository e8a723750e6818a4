//! `berth admin repo set-visibility|delete`.

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::json;

use crate::api::{Api, print_out};

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Make a repository public (anyone may pull, anonymously too) or private.
    #[command(after_help = "\
Example:
  berth admin repo set-visibility acme/app public

The repository must exist (push to it first). Private repositories are pulled
only by those policy allows: their namespace's user, organisation members,
robots, administrators.")]
    SetVisibility {
        /// The repository, e.g. `acme/app`.
        #[arg(value_name = "NAME")]
        name: String,

        /// The new visibility.
        #[arg(value_enum, value_name = "VISIBILITY")]
        visibility: Visibility,
    },

    /// Delete a repository whole: manifests, tags, blob links, upload sessions.
    #[command(after_help = "\
Example:
  berth admin repo delete acme/old-app

Tokens already issued on it stop working at once; a later repository of the
same name starts empty and private. Blob bytes no repository links any more are
left for a garbage collector.")]
    Delete {
        /// The repository, e.g. `acme/app`.
        #[arg(value_name = "NAME")]
        name: String,
    },
}

/// Who may pull a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Visibility {
    /// Anyone, without logging in.
    Public,
    /// Only those policy allows.
    Private,
}

impl Visibility {
    /// The word the API takes.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
        }
    }
}

pub fn run(api: &Api, command: RepoCommand) -> anyhow::Result<()> {
    let (name, visibility) = match command {
        RepoCommand::SetVisibility { name, visibility } => (name, visibility),
        RepoCommand::Delete { name } => {
            api.call_with_query(
                Method::DELETE,
                &["repositories"],
                &[("repository", &name)],
                None,
            )
            .with_context(|| format!("cannot delete repository `{name}`"))?;
            return print_out(&format!("deleted repository {name}\n"));
        }
    };
    let visibility = visibility.as_str();
    api.call(
        Method::PUT,
        &["repositories", "visibility"],
        Some(&json!({"repository": name, "visibility": visibility})),
    )
    .with_context(|| format!("cannot make `{name}` {visibility}"))?;
    print_out(&format!("{name} is now {visibility}\n"))
}
