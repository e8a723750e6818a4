//! `berth admin robot create`.

use anyhow::Context;
use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use super::{TokenAction, actions_json};
use crate::api::{Api, field, print_out};

#[derive(Debug, Subcommand)]
pub enum RobotCommand {
    /// Create a robot account of an organisation and print its token.
    #[command(after_help = "\
Example:
  berth admin robot create acme acme-ci > acme-ci.token
  skopeo login --username acme-ci --password-stdin registry.example.com < acme-ci.token

The token (named `default`) is printed once, alone on stdout. A robot has no
password and belongs to no organisation as a member: it reaches its
organisation's repositories, bounded by its token. More tokens:
`berth admin token create --user ROBOT --name LABEL`.")]
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
    },
}

pub fn run(api: &Api, command: RobotCommand) -> anyhow::Result<()> {
    let RobotCommand::Create {
        org,
        name,
        scope,
        expires_in,
    } = command;
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
    let token = &answer["token"];
    let secret = field(token, "secret");
    if secret.is_empty() {
        anyhow::bail!(
            "the registry created robot `{name}` but sent no token; create one with \
             `berth admin token create --user {name} --name ci`"
        );
    }
    let actions: Vec<&str> = token["actions"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    eprintln!(
        "created robot {name} in {org}; its token ({}, expires {}) is shown once: log in as {name} with it as the password",
        actions.join(","),
        field(token, "expires_at")
    );
    print_out(&format!("{secret}\n"))
}
