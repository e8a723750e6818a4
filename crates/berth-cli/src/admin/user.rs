//! `berth admin user create|delete|set-password|import-htpasswd`.

use std::io::{BufRead, IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{Context, bail};
use berth_registry::identity::password::parse_htpasswd;
use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use super::client::{Api, print_out};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from stdin.
    #[command(after_help = "\
Example:
  printf '%s\\n' 'a long password' | berth admin user create alice --password-stdin

The registry hashes the password (argon2id); it must have at least 8 characters.
The user owns the namespace of its name (alice/...).")]
    Create {
        /// The user's name: one lower-case path component such as `alice`.
        #[arg(value_name = "NAME")]
        name: String,

        /// Read the password from stdin (required; never pass it as an argument).
        ///
        /// One line; a trailing newline is dropped. From a terminal, the line
        /// typed is read (and shown): pipe it in to keep it off the screen.
        #[arg(long)]
        password_stdin: bool,

        /// Make the user an administrator of the whole registry.
        ///
        /// Administrators may push, pull and delete everywhere and use `berth admin`.
        #[arg(long)]
        admin: bool,
    },

    /// Delete a user with its memberships and tokens.
    #[command(after_help = "\
Example:
  berth admin user delete alice
  berth admin user delete alice --delete-repositories

A user whose namespace (alice/...) holds repositories is not deleted unless
--delete-repositories is given: then its repositories go too (manifests, tags,
blob links, upload sessions), so that a later user of the same name inherits
nothing. Its tokens, and tokens already issued on its repositories, stop working
at once. You cannot delete the account you are logged in as.")]
    Delete {
        /// The user's name.
        #[arg(value_name = "NAME")]
        name: String,

        /// Delete the repositories of the user's namespace too.
        ///
        /// Without it, a user who owns repositories is kept and the command
        /// fails, saying how many. Blob bytes no repository links any more are
        /// left for a garbage collector.
        #[arg(long)]
        delete_repositories: bool,
    },

    /// Change a user's password; the new one is read from stdin.
    #[command(after_help = "\
Example:
  printf '%s\\n' 'a new long password' | berth admin user set-password alice --password-stdin

The user's logins made with the old password end at once: its refresh tokens
(what `berth login` and docker keep) and the registry tokens issued from them.
Personal access tokens keep working.")]
    SetPassword {
        /// The user's name.
        #[arg(value_name = "NAME")]
        name: String,

        /// Read the new password from stdin (required; never pass it as an argument).
        ///
        /// One line; a trailing newline is dropped. At least 8 characters.
        #[arg(long)]
        password_stdin: bool,
    },

    /// Create the users of an htpasswd file, keeping their bcrypt hashes.
    #[command(after_help = "\
Example:
  htpasswd -B -c users.htpasswd alice
  berth admin user import-htpasswd users.htpasswd

Only bcrypt entries (htpasswd -B) are accepted; a line with another scheme stops
the import before any user is created, naming the line. Users that already exist
are skipped. Prints one line per user (created, skipped or failed); exits 1 if
any failed.")]
    ImportHtpasswd {
        /// The htpasswd file (`user:$2y$...` lines).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

pub fn run(api: &Api, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create {
            name,
            password_stdin,
            admin,
        } => {
            if !password_stdin {
                bail!(
                    "give the password on stdin with --password-stdin, e.g. \
                     `printf '%s\\n' \"$PASSWORD\" | berth admin user create {name} --password-stdin` \
                     (passwords are never taken from arguments)"
                );
            }
            let password = read_password(&name)?;
            api.call(
                Method::POST,
                &["users"],
                Some(&json!({"name": name, "password": password, "admin": admin})),
            )
            .with_context(|| format!("cannot create user `{name}`"))?;
            let role = if admin { "administrator" } else { "user" };
            print_out(&format!("created {role} {name}\n"))
        }
        UserCommand::Delete {
            name,
            delete_repositories,
        } => {
            let query: &[(&str, &str)] = if delete_repositories {
                &[("delete_repositories", "true")]
            } else {
                &[]
            };
            api.call_with_query(Method::DELETE, &["users", &name], query, None)
                .with_context(|| format!("cannot delete user `{name}`"))?;
            print_out(&format!("deleted user {name}\n"))
        }
        UserCommand::SetPassword {
            name,
            password_stdin,
        } => {
            if !password_stdin {
                bail!(
                    "give the new password on stdin with --password-stdin, e.g. \
                     `printf '%s\\n' \"$PASSWORD\" | berth admin user set-password {name} --password-stdin` \
                     (passwords are never taken from arguments)"
                );
            }
            let password = read_password(&name)?;
            api.call(
                Method::PUT,
                &["users", &name, "password"],
                Some(&json!({"password": password})),
            )
            .with_context(|| format!("cannot change the password of `{name}`"))?;
            print_out(&format!("changed the password of {name}\n"))
        }
        UserCommand::ImportHtpasswd { file } => import_htpasswd(api, &file),
    }
}

/// The password on stdin: one line, its line ending dropped.
fn read_password(name: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let mut text = String::new();
    if stdin.is_terminal() {
        eprint!("Password for {name} (shown as typed; pipe it in to hide it): ");
        stdin.lock().read_line(&mut text)
    } else {
        stdin.lock().read_to_string(&mut text)
    }
    .context("cannot read the password from stdin")?;
    let password = text
        .strip_suffix('\n')
        .map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
    if password.is_empty() {
        bail!(
            "stdin held no password; pipe the password in, e.g. `printf '%s\\n' \"$PASSWORD\" | berth admin user create {name} --password-stdin`"
        );
    }
    if password.contains('\n') {
        bail!("stdin held several lines; give the password alone, on one line");
    }
    Ok(password.to_owned())
}

fn import_htpasswd(api: &Api, file: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the htpasswd file {}", file.display()))?;
    let users = parse_htpasswd(&text).with_context(|| {
        format!(
            "cannot import {}: nothing was imported; fix the line and run the import again",
            file.display()
        )
    })?;
    if users.is_empty() {
        bail!(
            "{} holds no `user:hash` lines; nothing to import",
            file.display()
        );
    }
    let (mut created, mut skipped, mut failed) = (0, 0, 0);
    for (name, hash) in &users {
        let body = json!({"name": name, "password_hash": hash});
        match api.call(Method::POST, &["users"], Some(&body)) {
            Ok(_) => {
                created += 1;
                print_out(&format!("created          {name}\n"))?;
            }
            Err(e) if e.code() == Some("USER_EXISTS") => {
                skipped += 1;
                print_out(&format!("skipped-existing {name}\n"))?;
            }
            Err(e) if e.is_fatal() => {
                return Err(e).with_context(|| {
                    format!(
                        "import stopped at user `{name}` after {created} created and {skipped} skipped"
                    )
                });
            }
            Err(e) => {
                failed += 1;
                print_out(&format!("failed           {name}: {e}\n"))?;
            }
        }
    }
    eprintln!("{created} created, {skipped} skipped (already existed), {failed} failed");
    if failed > 0 {
        bail!(
            "{failed} of {} users could not be imported; see the lines marked `failed`",
            users.len()
        );
    }
    Ok(())
}
