//! `berth admin org create|list|delete|add-member|remove-member`.

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::json;

use crate::api::{Api, print_out};

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organisation; its owner becomes its first member.
    #[command(after_help = "\
Example:
  berth admin org create acme --owner alice

The organisation owns the namespace of its name (acme/...). Users and
organisations share one namespace: the name must be free.")]
    Create {
        /// The organisation's name: one lower-case path component such as `acme`.
        #[arg(value_name = "NAME")]
        name: String,

        /// The existing user who owns it (role `owner`).
        #[arg(long, value_name = "USER")]
        owner: String,
    },

    /// List every organisation.
    #[command(after_help = "\
Example:
  berth admin org list")]
    List,

    /// Delete an organisation with its members and robots.
    #[command(after_help = "\
Example:
  berth admin org delete acme --delete-repositories

An organisation whose namespace (acme/...) holds repositories is not deleted
unless --delete-repositories is given: then they go too. Its members' and
robots' tokens stop working at once; its name becomes free.")]
    Delete {
        /// The organisation.
        #[arg(value_name = "ORG")]
        name: String,

        /// Delete the repositories of its namespace too.
        #[arg(long)]
        delete_repositories: bool,
    },

    /// Add a member to an organisation, or change a member's role.
    #[command(after_help = "\
Example:
  berth admin org add-member acme bob --role maintainer

Roles on the organisation's repositories: member pulls; maintainer pulls and
pushes; owner pulls, pushes and deletes.")]
    AddMember {
        /// The organisation.
        #[arg(value_name = "ORG")]
        org: String,

        /// The existing user to add (or whose role to change).
        #[arg(value_name = "USER")]
        user: String,

        /// The member's role.
        #[arg(long, value_enum, value_name = "ROLE")]
        role: OrgRole,
    },

    /// Remove a member from an organisation.
    #[command(after_help = "\
Example:
  berth admin org remove-member acme bob")]
    RemoveMember {
        /// The organisation.
        #[arg(value_name = "ORG")]
        org: String,

        /// The member to remove.
        #[arg(value_name = "USER")]
        user: String,
    },
}

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OrgRole {
    /// Pull the organisation's repositories.
    Member,
    /// Pull and push.
    Maintainer,
    /// Pull, push and delete.
    Owner,
}

impl OrgRole {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Maintainer => "maintainer",
            Self::Owner => "owner",
        }
    }
}

pub fn run(api: &Api, command: OrgCommand) -> anyhow::Result<()> {
    match command {
        OrgCommand::Create { name, owner } => {
            api.call(
                Method::POST,
                &["orgs"],
                Some(&json!({"name": name, "owner": owner})),
            )
            .with_context(|| format!("cannot create organisation `{name}`"))?;
            print_out(&format!("created organisation {name}, owned by {owner}\n"))
        }
        OrgCommand::List => {
            let orgs = api
                .list_all(&["orgs"], &[], "orgs")
                .context("cannot list the organisations")?;
            let names: String = orgs
                .iter()
                .map(|o| format!("{}\n", crate::api::field(o, "name")))
                .collect();
            print_out(&names)
        }
        OrgCommand::Delete {
            name,
            delete_repositories,
        } => {
            let query: &[(&str, &str)] = if delete_repositories {
                &[("delete_repositories", "true")]
            } else {
                &[]
            };
            api.call_with_query(Method::DELETE, &["orgs", &name], query, None)
                .with_context(|| format!("cannot delete organisation `{name}`"))?;
            print_out(&format!("deleted organisation {name}\n"))
        }
        OrgCommand::AddMember { org, user, role } => {
            api.call(
                Method::PUT,
                &["orgs", &org, "members", &user],
                Some(&json!({"role": role.as_str()})),
            )
            .with_context(|| {
                format!("cannot give `{user}` the role {} in `{org}`", role.as_str())
            })?;
            print_out(&format!("{user} is now a {} of {org}\n", role.as_str()))
        }
        OrgCommand::RemoveMember { org, user } => {
            api.call(Method::DELETE, &["orgs", &org, "members", &user], None)
                .with_context(|| format!("cannot remove `{user}` from `{org}`"))?;
            print_out(&format!("removed {user} from {org}\n"))
        }
    }
}
