//! `berth admin token create|list|revoke`: personal access tokens.

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{Value, json};

use super::{TokenAction, actions_json};
use crate::api::{Api, field, print_out};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a personal access token and print its secret, once.
    #[command(after_help = "\
Example:
  berth admin token create --user alice --name ci --scope pull --repo 'acme/*' > ci.token

The secret is alone on stdout and cannot be shown again. It is used as the
password, with any user name (docker login -u alice --password-stdin < ci.token).
Patterns: `acme/app` one repository, `acme/*` one level under acme, `acme/**`
any depth.")]
    Create {
        /// The user the token acts for.
        #[arg(long, value_name = "NAME")]
        user: String,

        /// A label, unique among the user's tokens (letters, digits, `.`, `_`, `-`).
        #[arg(long = "name", value_name = "LABEL")]
        label: String,

        /// What the token may do, comma-separated [default: pull,push].
        ///
        /// Never more than the user may do: a token only narrows its user's rights.
        #[arg(long, value_enum, value_delimiter = ',', value_name = "ACTIONS")]
        scope: Vec<TokenAction>,

        /// Limit the token to repositories matching these patterns [default: all].
        ///
        /// Repeat the flag or list several after it: `--repo 'acme/*' 'alice/app'`.
        #[arg(long = "repo", value_name = "PATTERN", num_args = 1..)]
        repos: Vec<String>,

        /// Days until the token expires, 1 to 3650 [default: 90].
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_in: Option<u32>,
    },

    /// List a user's tokens (never their secrets).
    #[command(after_help = "\
Example:
  berth admin token list --user alice
  berth admin token list --user alice --output json | jq -r '.tokens[].name'")]
    List {
        /// The user whose tokens to list.
        #[arg(long, value_name = "NAME")]
        user: String,

        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
        output: Output,
    },

    /// Revoke a token at once.
    #[command(after_help = "\
Example:
  berth admin token revoke --user alice --name ci

Requests with the token are refused from then on; tokens the registry already
issued from it run out within their lifetime (5 minutes by default).")]
    Revoke {
        /// The user the token belongs to.
        #[arg(long, value_name = "NAME")]
        user: String,

        /// The token's label.
        #[arg(long = "name", value_name = "LABEL")]
        label: String,
    },
}

/// How a listing is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A table for people.
    Text,
    /// The registry's JSON answer, for scripts.
    Json,
}

pub fn run(api: &Api, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            user,
            label,
            scope,
            repos,
            expires_in,
        } => {
            let mut body = json!({"name": label, "repositories": repos});
            if let Some(actions) = actions_json(&scope) {
                body["actions"] = actions;
            }
            if let Some(days) = expires_in {
                body["expires_in_days"] = json!(days);
            }
            let answer = api
                .call(Method::POST, &["users", &user, "tokens"], Some(&body))
                .with_context(|| format!("cannot create token `{label}` for `{user}`"))?;
            let secret = field(&answer, "secret");
            if secret.is_empty() {
                anyhow::bail!(
                    "the registry created token `{label}` but sent no secret; revoke it with \
                     `berth admin token revoke --user {user} --name {label}` and try again"
                );
            }
            eprintln!(
                "created token {label} for {user}: {} on {}, expires {}; the secret is shown once",
                list(&answer["actions"], ","),
                or_all(&answer["repositories"]),
                field(&answer, "expires_at")
            );
            print_out(&format!("{secret}\n"))
        }
        TokenCommand::List { user, output } => {
            let answer = api
                .call(Method::GET, &["users", &user, "tokens"], None)
                .with_context(|| format!("cannot list the tokens of `{user}`"))?;
            match output {
                Output::Json => print_out(&format!("{answer:#}\n")),
                Output::Text => print_out(&table(&answer)),
            }
        }
        TokenCommand::Revoke { user, label } => {
            api.call(Method::DELETE, &["users", &user, "tokens", &label], None)
                .with_context(|| format!("cannot revoke token `{label}` of `{user}`"))?;
            print_out(&format!("revoked token {label} of {user}\n"))
        }
    }
}

/// A JSON array of strings joined with `sep`.
pub(crate) fn list(value: &Value, sep: &str) -> String {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>())
        .unwrap_or_default()
        .join(sep)
}

pub(crate) fn or_all(repositories: &Value) -> String {
    let listed = list(repositories, " ");
    if listed.is_empty() {
        "all repositories".to_owned()
    } else {
        listed
    }
}

/// The token listing as aligned columns.
pub(crate) fn table(answer: &Value) -> String {
    let mut rows = vec![[
        "NAME".to_owned(),
        "ACTIONS".to_owned(),
        "REPOSITORIES".to_owned(),
        "EXPIRES".to_owned(),
        "LAST USED".to_owned(),
    ]];
    for token in answer["tokens"].as_array().into_iter().flatten() {
        let mut expires = field(token, "expires_at").to_owned();
        if token["expired"].as_bool() == Some(true) {
            expires.push_str(" (expired)");
        }
        let repositories = list(&token["repositories"], ",");
        rows.push([
            field(token, "name").to_owned(),
            list(&token["actions"], ","),
            if repositories.is_empty() {
                "*all*".to_owned()
            } else {
                repositories
            },
            expires,
            token["last_used_at"].as_str().unwrap_or("never").to_owned(),
        ]);
    }
    if rows.len() == 1 {
        return format!("{} has no tokens\n", field(answer, "user"));
    }
    let mut widths = [0; 5];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let line = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
