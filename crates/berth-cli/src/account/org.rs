//! `berth org member add|remove|list`: the members of an organisation you
//! own (members may list them).

use anyhow::Context;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::{Output, Target, emit};
use crate::admin::org::OrgRole;
use crate::api::{columns, field};

/// Manage the organisations you own.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  berth org member add acme bob --role maintainer
  berth org member list acme
  berth org member remove acme bob

Roles on the organisation's repositories: member pulls; maintainer pulls and
pushes; owner pulls, pushes, deletes, and manages members, robots and the
visibility of its repositories. An organisation keeps at least one owner.

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct OrgArgs {
    #[command(flatten)]
    target: Target,

    #[command(subcommand)]
    command: OrgCommand,
}

#[derive(Debug, Subcommand)]
enum OrgCommand {
    /// Add, remove and list members.
    #[command(subcommand)]
    Member(MemberCommand),
}

#[derive(Debug, Subcommand)]
enum MemberCommand {
    /// Add a member, or change a member's role.
    #[command(after_help = "\
Example:
  berth org member add acme bob --role maintainer

A member lowered or removed loses the rights at once, in the registry tokens
already issued too.")]
    Add {
        /// The organisation.
        #[arg(value_name = "ORG")]
        org: String,

        /// The existing user to add (or whose role to change).
        #[arg(value_name = "USER")]
        user: String,

        /// The member's role.
        #[arg(long, value_enum, default_value_t = OrgRole::Member, value_name = "ROLE")]
        role: OrgRole,

        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
        output: Output,
    },

    /// Remove a member.
    #[command(after_help = "\
Example:
  berth org member remove acme bob")]
    Remove {
        /// The organisation.
        #[arg(value_name = "ORG")]
        org: String,

        /// The member to remove.
        #[arg(value_name = "USER")]
        user: String,

        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
        output: Output,
    },

    /// List the members with their roles.
    #[command(after_help = "\
Example:
  berth org member list acme
  berth org member list acme --output json | jq -r '.members[].name'")]
    List {
        /// The organisation.
        #[arg(value_name = "ORG")]
        org: String,

        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
        output: Output,
    },
}

/// Runs `berth org ...`.
pub fn run(args: OrgArgs) -> anyhow::Result<()> {
    let api = args.target.connect()?;
    let OrgCommand::Member(command) = args.command;
    match command {
        MemberCommand::Add {
            org,
            user,
            role,
            output,
        } => {
            let answer = api
                .call(
                    Method::PUT,
                    &["orgs", &org, "members", &user],
                    Some(&json!({"role": role.as_str()})),
                )
                .with_context(|| {
                    format!("cannot give `{user}` the role {} in `{org}`", role.as_str())
                })?;
            emit(
                output,
                &answer,
                &format!("{user} is now a {} of {org}\n", role.as_str()),
            )
        }
        MemberCommand::Remove { org, user, output } => {
            api.call(Method::DELETE, &["orgs", &org, "members", &user], None)
                .with_context(|| format!("cannot remove `{user}` from `{org}`"))?;
            emit(
                output,
                &json!({"org": org, "user": user, "removed": true}),
                &format!("removed {user} from {org}\n"),
            )
        }
        MemberCommand::List { org, output } => {
            let members = api
                .list_all(&["orgs", &org, "members"], &[], "members")
                .with_context(|| format!("cannot list the members of `{org}`"))?;
            let mut rows = vec![vec!["NAME".to_owned(), "ROLE".to_owned()]];
            rows.extend(
                members
                    .iter()
                    .map(|m| vec![field(m, "name").to_owned(), field(m, "role").to_owned()]),
            );
            emit(
                output,
                &json!({"org": org, "members": Value::Array(members)}),
                &columns(&rows),
            )
        }
    }
}
