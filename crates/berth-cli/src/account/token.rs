//! `berth token create|list|revoke`: your personal access tokens (or, with
//! `--user`, those of a robot of an organisation you own; anyone's for an
//! administrator).

use anyhow::Context;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::json;

use super::{Output, Target, emit};
use crate::admin::token::{list, or_all, table};
use crate::admin::{TokenAction, actions_json};
use crate::api::{Api, field, print_out};

/// Create, list and revoke personal access tokens.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  berth token create --name ci --scope pull --repo 'alice/*' > ci.token
  berth token list
  berth token revoke --name ci
  berth token create --user acme-ci --name deploy --scope pull,push --repo 'acme/app'

A token is used as the password, with any user name. It never carries more than
its user may do: each action on each pattern's namespace must be the user's
(their own namespace; organisations whose role gives it). A command run with a
personal access token makes only tokens no broader than that token (actions,
patterns, expiry).

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct TokenArgs {
    #[command(flatten)]
    target: Target,

    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token and print its secret, once.
    #[command(after_help = "\
Example:
  berth token create --name ci --scope pull,push --repo 'alice/*' --expires-in 30 > ci.token

The secret is alone on stdout (with --output json: the answer's `secret`) and
cannot be shown again. Patterns: `alice/app` one repository, `alice/*` one
level under alice, `alice/**` any depth.")]
    Create {
        /// A label, unique among the user's tokens (letters, digits, `.`, `_`, `-`).
        #[arg(long = "name", value_name = "LABEL")]
        label: String,

        /// What the token may do, comma-separated [default: pull,push].
        #[arg(long, value_enum, value_delimiter = ',', value_name = "ACTIONS")]
        scope: Vec<TokenAction>,

        /// Limit the token to repositories matching these patterns [default: all].
        ///
        /// Repeat the flag or list several after it: `--repo 'alice/*' 'acme/app'`.
        #[arg(long = "repo", value_name = "PATTERN", num_args = 1..)]
        repos: Vec<String>,

        /// Days until the token expires, 1 to 3650 [default: 90].
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_in: Option<u32>,

        /// Whose token: a robot of an organisation you own [default: you].
        #[arg(long, value_name = "USER")]
        user: Option<String>,

        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
        output: Output,
    },

    /// List tokens (never their secrets).
    #[command(after_help = "\
Example:
  berth token list
  berth token list --output json | jq -r '.tokens[].name'")]
    List {
        /// Whose tokens [default: yours].
        #[arg(long, value_name = "USER")]
        user: Option<String>,

        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
        output: Output,
    },

    /// Revoke a token at once.
    #[command(after_help = "\
Example:
  berth token revoke --name ci

Requests with the token are refused from then on, and so are the registry
tokens already issued from it.")]
    Revoke {
        /// The token's label.
        #[arg(long = "name", value_name = "LABEL")]
        label: String,

        /// Whose token [default: yours].
        #[arg(long, value_name = "USER")]
        user: Option<String>,

        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
        output: Output,
    },
}

/// `["user", "tokens"]` or `["users", USER, "tokens"]`.
fn tokens_path(user: Option<&str>) -> Vec<&str> {
    match user {
        Some(user) => vec!["users", user, "tokens"],
        None => vec!["user", "tokens"],
    }
}

/// Runs `berth token ...`.
pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    let api = args.target.connect()?;
    match args.command {
        TokenCommand::Create {
            label,
            scope,
            repos,
            expires_in,
            user,
            output,
        } => create(
            &api,
            &label,
            &scope,
            repos,
            expires_in,
            user.as_deref(),
            output,
        ),
        TokenCommand::List { user, output } => {
            let answer = api
                .call(Method::GET, &tokens_path(user.as_deref()), None)
                .context("cannot list the tokens")?;
            emit(output, &answer, &table(&answer))
        }
        TokenCommand::Revoke {
            label,
            user,
            output,
        } => {
            let mut path = tokens_path(user.as_deref());
            path.push(&label);
            api.call(Method::DELETE, &path, None)
                .with_context(|| format!("cannot revoke token `{label}`"))?;
            emit(
                output,
                &json!({"token": label, "revoked": true}),
                &format!("revoked token {label}\n"),
            )
        }
    }
}

fn create(
    api: &Api,
    label: &str,
    scope: &[TokenAction],
    repos: Vec<String>,
    expires_in: Option<u32>,
    user: Option<&str>,
    output: Output,
) -> anyhow::Result<()> {
    let mut body = json!({"name": label, "repositories": repos});
    if let Some(actions) = actions_json(scope) {
        body["actions"] = actions;
    }
    if let Some(days) = expires_in {
        body["expires_in_days"] = json!(days);
    }
    let answer = api
        .call(Method::POST, &tokens_path(user), Some(&body))
        .with_context(|| format!("cannot create token `{label}`"))?;
    let secret = field(&answer, "secret");
    if secret.is_empty() {
        anyhow::bail!(
            "the registry created token `{label}` but sent no secret; revoke it with \
             `berth token revoke --name {label}` and try again"
        );
    }
    if output == Output::Json {
        return print_out(&format!("{answer:#}\n"));
    }
    eprintln!(
        "created token {label} for {}: {} on {}, expires {}; the secret is shown once",
        field(&answer, "user"),
        list(&answer["actions"], ","),
        or_all(&answer["repositories"]),
        field(&answer, "expires_at")
    );
    print_out(&format!("{secret}\n"))
}
