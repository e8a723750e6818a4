//! `berth password`: change your own password, giving the old one.

use std::io::{IsTerminal, Read};

use anyhow::{Context, bail};
use berth_client::auth::TransportOptions;
use berth_client::client::RegistryClient;
use berth_client::credentials::{Credential, CredentialStore};
use clap::Args;
use reqwest::Method;
use serde_json::json;

use super::{Output, Target, emit};
use crate::api::{Api, Login, field};
use crate::client::block_on;

/// Change your own password.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  berth password                      # asks for the current and the new password, without echo
  printf '%s\\n%s\\n' \"$OLD\" \"$NEW\" | berth password --password-stdin

The registry checks the current password as a login (wrong ones count toward its
failure limits) and takes a new one of at least 8 characters. The logins made
with the old one end at once: refresh tokens (the one `berth login` stored, and
docker's) and the registry tokens issued from them. Personal access tokens keep
working; a personal access token cannot change the password.

When this command logged in with the login `berth login` stored, it logs in
again with the new password and stores the new login in its place.

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct PasswordArgs {
    #[command(flatten)]
    target: Target,

    /// Read the current and the new password from stdin, one per line.
    ///
    /// Without it they are asked for on the terminal, without echo (the new
    /// one twice). Passwords are never taken from arguments.
    #[arg(long)]
    password_stdin: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
    output: Output,
}

/// Runs `berth password`.
pub fn run(args: PasswordArgs) -> anyhow::Result<()> {
    let api = args.target.connect()?;
    let me = api
        .call(Method::GET, &["user"], None)
        .context("cannot find out whose login this is")?;
    let name = field(&me, "name").to_owned();
    let (old, new) = if args.password_stdin {
        two_lines()?
    } else if std::io::stdin().is_terminal() {
        prompt(&name)?
    } else {
        bail!(
            "stdin is not a terminal: give the current and the new password on two lines with \
             --password-stdin (passwords are never taken from arguments)"
        );
    };
    api.call(
        Method::PUT,
        &["user", "password"],
        Some(&json!({"old_password": old, "new_password": new})),
    )
    .with_context(|| format!("cannot change the password of `{name}`"))?;
    let stored = relogin(&api, &name, &new);
    let note = match &stored {
        Ok(Some(key)) => format!("logged in to {key} again with the new password"),
        Ok(None) => "BERTH_PASSWORD still holds the old password: set it anew".to_owned(),
        Err(e) => format!(
            "the stored login ended with the old password, and logging in again failed ({e:#}); \
             run `berth login` again"
        ),
    };
    eprintln!("note: {note}");
    emit(
        args.output,
        &json!({"user": name, "changed": true, "logged_in_again": matches!(stored, Ok(Some(_)))}),
        &format!("changed the password of {name}; the logins made with the old one ended\n"),
    )
}

/// The current and the new password from stdin: two lines.
fn two_lines() -> anyhow::Result<(String, String)> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("cannot read the passwords from stdin")?;
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    match lines.as_slice() {
        [old, new] if !old.is_empty() && !new.is_empty() => {
            Ok(((*old).to_owned(), (*new).to_owned()))
        }
        _ => bail!(
            "stdin must hold two lines, the current password and then the new one, e.g. \
             `printf '%s\\n%s\\n' \"$OLD\" \"$NEW\" | berth password --password-stdin`"
        ),
    }
}

/// The current and the new password (twice) from the terminal, without echo.
fn prompt(name: &str) -> anyhow::Result<(String, String)> {
    let read = |question: String| {
        rpassword::prompt_password(question).context("cannot read a password from the terminal")
    };
    let old = read(format!("Current password for {name}: "))?;
    let new = read("New password: ".to_owned())?;
    let again = read("New password again: ".to_owned())?;
    if new != again {
        bail!("the two new passwords differ; nothing changed: run `berth password` again");
    }
    if old.is_empty() || new.is_empty() {
        bail!("a password is empty; nothing changed");
    }
    Ok((old, new))
}

/// When the command used a stored login, which the change just ended: logs
/// in again as `berth login` would (a refresh token where the stored one was,
/// a password where a password was) and stores it. The key it stored under,
/// or `None` for credentials from the environment.
fn relogin(api: &Api, name: &str, new: &str) -> anyhow::Result<Option<String>> {
    let Login::Stored { key, credential } = api.login() else {
        return Ok(None);
    };
    let basic = Credential::Basic {
        username: name.to_owned(),
        password: new.to_owned(),
    };
    let fresh = match credential {
        Credential::Basic { .. } => basic,
        Credential::IdentityToken(_) => {
            let registry = berth_core::reference::Registry::parse(key)
                .with_context(|| format!("`{key}` is not a registry"))?;
            let options = TransportOptions {
                insecure: Some(api.base().scheme() == "http"),
                ..TransportOptions::default()
            };
            let client = RegistryClient::new(registry, Some(basic), options)
                .context("cannot set up a client")?;
            block_on(async {
                client.ping().await?;
                client.transport().offline_token().await.map_err(Into::into)
            })?
            .map_err(|e: berth_client::client::ClientError| anyhow::anyhow!(e))?
            .context("the registry gave no refresh token")?
        }
    };
    CredentialStore::from_env()
        .store(key, &fresh)
        .with_context(|| format!("cannot store the new login for {key}"))?;
    Ok(Some(key.clone()))
}
