//! `berth admin proxy list|add|remove`: the pull-through cache namespaces.

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{Value, json};

use crate::admin::token::Output;
use crate::api::{Api, columns, field, print_out};

#[derive(Debug, Subcommand)]
pub enum ProxyCommand {
    /// List the pull-through cache namespaces: configured and added here.
    #[command(after_help = "\
Examples:
  berth admin proxy list
  berth admin proxy list --output json

SOURCE says where each was set: `config` (the TOML file or a --proxy flag,
changed by a restart) or `api` (added with `berth admin proxy add`).")]
    List {
        /// `text` or `json`.
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },

    /// Add a pull-through cache namespace: NAME/<repository> pulls fetch
    /// <repository> from URL on first use and serve it from here after.
    #[command(after_help = "\
Examples:
  berth admin proxy add hub https://registry-1.docker.io
  berth admin proxy add ghcr https://ghcr.io --access public --tag-ttl-secs 600
  berth admin proxy add quay https://quay.io --username robot+cache \\
      --password-file /etc/berth/quay.password

Every node puts it in force within a few seconds. The upstream password is
never sent here: --password-file names a file on the registry's machines
(each node reads it), so no secret is stored in the database.")]
    Add {
        /// The namespace, e.g. `hub`: not a user's or an organisation's.
        #[arg(value_name = "NAME")]
        name: String,
        /// The upstream registry, `https://host[:port]` (`http://` for one without TLS).
        #[arg(value_name = "URL")]
        url: String,
        /// Who may pull through it.
        #[arg(long, value_enum, default_value = "authenticated")]
        access: Access,
        /// The upstream account (with --password-file).
        #[arg(long, value_name = "USER", requires = "password_file")]
        username: Option<String>,
        /// A file on the registry's machines holding the upstream password or token.
        #[arg(long, value_name = "PATH", requires = "username")]
        password_file: Option<String>,
        /// Seconds a tag's upstream answer stands before one HEAD checks it [default: 300].
        #[arg(long, value_name = "SECS")]
        tag_ttl_secs: Option<u64>,
    },

    /// Remove a namespace added with `add` (what it cached stays).
    #[command(after_help = "\
Example:
  berth admin proxy remove hub

Its cached repositories stay, readable by administrators; delete them with
`berth admin repo delete hub/library/alpine`, or let a retention policy go.
A namespace of the configuration file is removed there, with a restart.")]
    Remove {
        /// The namespace.
        #[arg(value_name = "NAME")]
        name: String,
    },
}

/// Who may pull through a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Access {
    /// Anyone, anonymously too.
    Public,
    /// Any signed-in user, robot or CI job.
    Authenticated,
}

pub fn run(api: &Api, command: ProxyCommand) -> anyhow::Result<()> {
    match command {
        ProxyCommand::List { output } => {
            let answer = api
                .call(Method::GET, &["proxies"], None)
                .context("cannot list the proxy namespaces")?;
            let proxies = answer["proxies"].as_array().cloned().unwrap_or_default();
            match output {
                Output::Json => print_out(&format!("{}\n", Value::Array(proxies))),
                Output::Text => print_out(&table(&proxies)),
            }
        }
        ProxyCommand::Add {
            name,
            url,
            access,
            username,
            password_file,
            tag_ttl_secs,
        } => {
            let access = match access {
                Access::Public => "public",
                Access::Authenticated => "authenticated",
            };
            let mut body = json!({ "name": name, "url": url, "access": access });
            if let (Some(user), Some(file)) = (username, password_file) {
                body["username"] = json!(user);
                body["password_file"] = json!(file);
            }
            if let Some(ttl) = tag_ttl_secs {
                body["tag_ttl_secs"] = json!(ttl);
            }
            let added = api
                .call(Method::POST, &["proxies"], Some(&body))
                .with_context(|| format!("cannot add proxy namespace `{name}`"))?;
            print_out(&format!(
                "added proxy {name}: {name}/<repository> pulls from {} ({} pulls)\n",
                field(&added, "url"),
                field(&added, "access")
            ))
        }
        ProxyCommand::Remove { name } => {
            api.call(Method::DELETE, &["proxies", &name], None)
                .with_context(|| format!("cannot remove proxy namespace `{name}`"))?;
            print_out(&format!("removed proxy {name}\n"))
        }
    }
}

/// The text listing: a header and a row per namespace.
fn table(proxies: &[Value]) -> String {
    if proxies.is_empty() {
        return "no proxy namespaces (berth serve --proxy NAME=URL, or berth admin proxy add)\n"
            .to_owned();
    }
    let mut rows = vec![
        [
            "NAME", "UPSTREAM", "ACCESS", "ACCOUNT", "TAG TTL", "SOURCE", "FETCHED",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for p in proxies {
        rows.push(vec![
            field(p, "name").to_owned(),
            field(p, "url").to_owned(),
            field(p, "access").to_owned(),
            p["username"].as_str().unwrap_or("-").to_owned(),
            format!("{} s", p["tag_ttl_secs"].as_u64().unwrap_or(0)),
            field(p, "source").to_owned(),
            berth_registry::usage::human_bytes(p["fetched_bytes"].as_u64().unwrap_or(0)),
        ]);
    }
    columns(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_each_namespace_and_its_source() {
        let text = table(&[
            json!({"name": "hub", "url": "https://registry-1.docker.io", "access": "authenticated",
                   "username": null, "tag_ttl_secs": 300, "source": "config", "fetched_bytes": 0}),
            json!({"name": "quay", "url": "https://quay.io", "access": "public",
                   "username": "robot+cache", "tag_ttl_secs": 600, "source": "api", "fetched_bytes": 2048}),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("NAME"), "{text}");
        assert!(
            lines[1].contains("hub") && lines[1].contains("config") && lines[1].contains(" - "),
            "{text}"
        );
        assert!(
            lines[2].contains("robot+cache")
                && lines[2].contains("600 s")
                && lines[2].contains("api"),
            "{text}"
        );
        assert_eq!(table(&[]).lines().count(), 1);
    }
}
