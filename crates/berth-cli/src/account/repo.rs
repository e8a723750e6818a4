//! `berth repo set-visibility|list`: the visibility of your repositories and
//! those of the organisations you own.

use anyhow::Context;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::{Output, Target, emit};
use crate::admin::repo::Visibility;
use crate::api::{columns, field};

/// The visibility of the repositories you manage.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  berth repo list
  berth repo set-visibility alice/app public
  berth repo set-visibility acme/api private

You manage the repositories of your own namespace (alice/...) and of the
organisations you own; an administrator, every repository. A repository made
private is refused at once to the tokens that pulled it while it was public.

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct RepoArgs {
    #[command(flatten)]
    target: Target,

    #[command(subcommand)]
    command: RepoCommand,
}

#[derive(Debug, Subcommand)]
enum RepoCommand {
    /// Make a repository public (anyone may pull, anonymously too) or private.
    #[command(after_help = "\
Example:
  berth repo set-visibility alice/app public

The repository must exist (push to it first).")]
    SetVisibility {
        /// The repository, e.g. `alice/app`.
        #[arg(value_name = "NAME")]
        name: String,

        /// The new visibility.
        #[arg(value_enum, value_name = "VISIBILITY")]
        visibility: Visibility,

        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
        output: Output,
    },

    /// List the repositories you manage, with their visibility.
    #[command(after_help = "\
Example:
  berth repo list
  berth repo list --namespace acme --output json")]
    List {
        /// Only this namespace (yours, or an organisation you own).
        #[arg(long, value_name = "NAMESPACE")]
        namespace: Option<String>,

        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
        output: Output,
    },
}

/// Runs `berth repo ...`.
pub fn run(args: RepoArgs) -> anyhow::Result<()> {
    let api = args.target.connect()?;
    match args.command {
        RepoCommand::SetVisibility {
            name,
            visibility,
            output,
        } => {
            let visibility = visibility.as_str();
            let answer = api
                .call(
                    Method::PUT,
                    &["repositories", "visibility"],
                    Some(&json!({"repository": name, "visibility": visibility})),
                )
                .with_context(|| format!("cannot make `{name}` {visibility}"))?;
            emit(output, &answer, &format!("{name} is now {visibility}\n"))
        }
        RepoCommand::List { namespace, output } => {
            let query: Vec<(&str, &str)> = namespace
                .as_deref()
                .map(|ns| ("namespace", ns))
                .into_iter()
                .collect();
            let repositories = api
                .list_all(&["repositories"], &query, "repositories")
                .context("cannot list the repositories")?;
            let mut rows = vec![vec!["NAME".to_owned(), "VISIBILITY".to_owned()]];
            rows.extend(repositories.iter().map(|r| {
                vec![
                    field(r, "name").to_owned(),
                    field(r, "visibility").to_owned(),
                ]
            }));
            emit(
                output,
                &json!({"repositories": Value::Array(repositories)}),
                &columns(&rows),
            )
        }
    }
}
