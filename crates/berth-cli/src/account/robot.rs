//! `berth robot create|list|delete`: the robot accounts of an organisation
//! you own (members may list them).

use anyhow::Context;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::{Output, Target, emit};
use crate::admin::{TokenAction, actions_json};
use crate::api::{columns, field, print_out};

/// Manage the robot accounts of the organisations you own.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  berth robot create acme acme-ci --scope pull,push > acme-ci.token
  berth robot list acme
  berth robot delete acme acme-ci

A robot has no password: it logs in with its token (any of them: more with
`berth token create --user ROBOT`), and reaches its organisation's repositories,
bounded by that token.

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct RobotArgs {
    #[command(flatten)]
    target: Target,

    #[command(subcommand)]
    command: RobotCommand,
}

#[derive(Debug, Subcommand)]
enum RobotCommand {
    /// Create a robot account and print its token, once.
    #[command(after_help = "\
Example:
  berth robot create acme acme-ci --scope pull > acme-ci.token
  skopeo login --username acme-ci --password-stdin registry.example.com < acme-ci.token

The token (named `default`) is alone on stdout (with --output json: the
answer's `token.secret`).")]
    Create {
        /// The organisation the robot works for.
        #[arg(value_name = "ORG")]
        org: String,

        /// The robot's name: a free name such as `acme-ci` (its login name).
        #[arg(value_name = "NAME")]
        name: String,

        /// What its token may do, comma-separated [default: pull,push].
        #[arg(long, value_enum, value_delimiter = ',', value_name = "ACTIONS")]
        scope: Vec<TokenAction>,

        /// Days until its token expires, 1 to 3650 [default: 90].
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_in: Option<u32>,

        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
        output: Output,
    },

    /// List an organisation's robot accounts.
    #[command(after_help = "\
Example:
  berth robot list acme")]
    List {
        /// The organisation.
        #[arg(value_name = "ORG")]
        org: String,

        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
        output: Output,
    },

    /// Delete a robot account with its tokens, which stop working at once.
    #[command(after_help = "\
Example:
  berth robot delete acme acme-ci")]
    Delete {
        /// The organisation.
        #[arg(value_name = "ORG")]
        org: String,

        /// The robot.
        #[arg(value_name = "NAME")]
        name: String,

        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
        output: Output,
    },
}

/// Runs `berth robot ...`.
pub fn run(args: RobotArgs) -> anyhow::Result<()> {
    let api = args.target.connect()?;
    match args.command {
        RobotCommand::Create {
            org,
            name,
            scope,
            expires_in,
            output,
        } => {
            let mut body = json!({"name": name});
            if let Some(actions) = actions_json(&scope) {
                body["actions"] = actions;
            }
            if let Some(days) = expires_in {
                body["expires_in_days"] = json!(days);
            }
            let answer = api
                .call(Method::POST, &["orgs", &org, "robots"], Some(&body))
                .with_context(|| format!("cannot create robot `{name}` in `{org}`"))?;
            let secret = field(&answer["token"], "secret");
            if secret.is_empty() {
                anyhow::bail!(
                    "the registry created robot `{name}` but sent no token; create one with \
                     `berth token create --user {name} --name ci`"
                );
            }
            if output == Output::Json {
                return print_out(&format!("{answer:#}\n"));
            }
            eprintln!(
                "created robot {name} in {org}; its token (expires {}) is shown once: log in as \
                 {name} with it as the password",
                field(&answer["token"], "expires_at")
            );
            print_out(&format!("{secret}\n"))
        }
        RobotCommand::List { org, output } => {
            let robots = api
                .list_all(&["orgs", &org, "robots"], &[], "robots")
                .with_context(|| format!("cannot list the robots of `{org}`"))?;
            let mut rows = vec![vec!["NAME".to_owned()]];
            rows.extend(robots.iter().map(|r| vec![field(r, "name").to_owned()]));
            emit(
                output,
                &json!({"org": org, "robots": Value::Array(robots)}),
                &columns(&rows),
            )
        }
        RobotCommand::Delete { org, name, output } => {
            api.call(Method::DELETE, &["orgs", &org, "robots", &name], None)
                .with_context(|| format!("cannot delete robot `{name}` of `{org}`"))?;
            emit(
                output,
                &json!({"org": org, "robot": name, "deleted": true}),
                &format!("deleted robot {name} of {org}\n"),
            )
        }
    }
}
