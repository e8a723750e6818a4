//! `berth trust add|list|remove`: the trust rules of a namespace, which let
//! CI jobs log in with their OpenID Connect ID token (workload identity)
//! instead of a stored secret. The registry's `/api/v1/trust/{namespace}`
//! keeps them; `berth login --oidc` is the job's side.

use anyhow::{Context, bail};
use clap::{ArgGroup, Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{Output, Target, emit};
use crate::admin::{TokenAction, actions_json};
use crate::api::{columns, field, host_key, print_out};

use berth_registry::trust::{GITHUB_ISSUER, GITLAB_ISSUER};

/// Let CI jobs log in with their OIDC ID token: trust rules per namespace.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  # GitHub Actions: jobs of acme/app on main may push acme/app
  berth trust add acme --name release --github \\
      --claim repository=acme/app --claim ref=refs/heads/main --repo acme/app
  # GitLab CI: jobs of any project of the group acme, on a protected branch,
  # may pull and push under acme/
  berth trust add acme --name gitlab --gitlab \\
      --claim namespace_path=acme --claim ref_protected=true --repo 'acme/**'
  berth trust list acme
  berth trust remove acme release

The job then logs in with its ID token, no secret stored anywhere:

  # GitHub Actions (the job needs `permissions: id-token: write`)
  - run: berth login --oidc registry.example.com
  # GitLab CI
  job:
    id_tokens:
      BERTH_ID_TOKEN:
        aud: registry.example.com
    script:
      - berth login --oidc registry.example.com
  # or any client, with the ID token as the password of the user oidc:
  docker login -u oidc -p \"$ID_TOKEN\" registry.example.com

A rule accepts an ID token whose issuer is the rule's, whose audience is the
rule's (default: the registry's name, the `service` of its challenges, which is
the `aud` the job must ask for), and whose claims match every --claim. The job
then gets the rule's actions on the repositories matching its --repo patterns,
for as long as the ID token is valid; removing the rule stops it at once.

A namespace's rules are managed by an administrator, the user it belongs to,
or the owners of the organisation it is; through a personal access token, one
with pull, push and delete on `NAMESPACE/**`.

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct TrustArgs {
    #[command(flatten)]
    target: Target,

    #[command(subcommand)]
    command: TrustCommand,
}

#[derive(Debug, Subcommand)]
enum TrustCommand {
    /// Trust the ID tokens of an issuer whose claims match, for some repositories.
    #[command(
        group(ArgGroup::new("issuer_choice").required(true).args(["github", "gitlab", "issuer"])),
        after_help = "\
Examples:
  berth trust add acme --name release --github \\
      --claim repository=acme/app --claim ref=refs/heads/main --repo acme/app
  berth trust add acme --name tags --github \\
      --claim repository_owner=acme --claim 'ref=refs/tags/v*' --repo 'acme/*'
  berth trust add acme --name readers --github --actions pull \\
      --claim repository_owner_id=1234567 --repo 'acme/**'
  berth trust add acme --name gitlab --gitlab \\
      --claim project_path=acme/app --claim ref_type=branch --claim ref=main --repo acme/app
  berth trust add acme --name ghe --issuer https://ghe.example.com/_services/token \\
      --claim repository=acme/app --repo acme/app

Claims: a value with `*` is a glob (`*` within one `/`-separated segment, `**`
across segments), any other value matches exactly. For --github and --gitlab
the claim names must be ones the platform documents, and one that says whose
job it is must be pinned without a wildcard in its first segment: GitHub
`repository`, `repository_owner`, `repository_id`, `repository_owner_id`,
`sub` or `job_workflow_ref`; GitLab `project_path`, `namespace_path`,
`project_id`, `namespace_id` or `sub`. Prefer the ids (`repository_id`,
`project_id`): a name can be taken again after a rename.

Patterns: `acme/app` one repository, `acme/*` one level under acme, `acme/**`
any depth; each in the rule's namespace. The issuer must be one the registry
trusts (`berth serve --oidc-issuer`; by default GitHub Actions and gitlab.com).")]
    Add {
        /// The namespace whose repositories the rule opens (a user or an organisation).
        #[arg(value_name = "NAMESPACE")]
        namespace: String,

        /// The rule's name, unique in the namespace [default: rule-N].
        ///
        /// Lower-case letters, digits, `.`, `_`, `-`; at most 64 characters.
        /// It shows in the registry's audit log and in the identity of the
        /// jobs it admits (`trust:acme/release:...`).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,

        /// Trust GitHub Actions' ID tokens (https://token.actions.githubusercontent.com).
        #[arg(long)]
        github: bool,

        /// Trust gitlab.com's CI ID tokens (https://gitlab.com).
        #[arg(long)]
        gitlab: bool,

        /// Trust the ID tokens of this issuer (its exact `iss`).
        ///
        /// For a self-managed GitLab (`https://gitlab.example.com`) or GitHub
        /// Enterprise Server (`https://HOST/_services/token`); the registry
        /// must be configured to trust it (`berth serve --oidc-issuer`).
        #[arg(long, value_name = "URL")]
        issuer: Option<String>,

        /// The `aud` the ID tokens must carry [default: the registry's name].
        ///
        /// By default the registry's service name (the `service` of its
        /// challenges, usually its host[:port]): what `berth login --oidc`
        /// asks GitHub Actions for, and what a GitLab job puts under
        /// `id_tokens: ...: aud:`.
        #[arg(long, value_name = "AUD")]
        audience: Option<String>,

        /// A condition on a claim of the ID token, as KEY=VALUE (at least one).
        ///
        /// Repeat the flag or list several after it: `--claim
        /// repository=acme/app ref=refs/heads/main`. Every one must hold. A
        /// VALUE with `*` is a glob: `*` within one `/`-separated segment,
        /// `**` across segments.
        #[arg(long = "claim", value_name = "KEY=VALUE", num_args = 1.., required = true,
              value_parser = parse_claim)]
        claims: Vec<(String, String)>,

        /// What the jobs may do, comma-separated [default: pull,push].
        #[arg(long, value_enum, value_delimiter = ',', value_name = "ACTIONS")]
        actions: Vec<TokenAction>,

        /// The repositories the jobs reach, as patterns in the namespace (at least one).
        ///
        /// Repeat the flag or list several after it: `--repo acme/app
        /// 'acme/tools/*'`. `acme/app` one repository, `acme/*` one level
        /// under acme, `acme/**` any depth.
        #[arg(long = "repo", value_name = "PATTERN", num_args = 1.., required = true)]
        repos: Vec<String>,

        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
        output: Output,
    },

    /// List a namespace's trust rules.
    #[command(after_help = "\
Example:
  berth trust list acme
  berth trust list acme --output json | jq -r '.rules[].name'")]
    List {
        /// The namespace.
        #[arg(value_name = "NAMESPACE")]
        namespace: String,

        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
        output: Output,
    },

    /// Remove a trust rule; the tokens jobs got through it stop working at once.
    #[command(after_help = "\
Example:
  berth trust remove acme release")]
    Remove {
        /// The namespace.
        #[arg(value_name = "NAMESPACE")]
        namespace: String,

        /// The rule.
        #[arg(value_name = "NAME")]
        name: String,

        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
        output: Output,
    },
}

/// `KEY=VALUE` split at its first `=`; a missing `=` or an empty key is a
/// usage error, before anything is sent.
fn parse_claim(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        Some(_) => Err("the claim name before `=` is empty; give KEY=VALUE".to_owned()),
        None => Err(format!(
            "no `=` in `{text}`; give KEY=VALUE, e.g. --claim repository=acme/app"
        )),
    }
}

/// Runs `berth trust ...`.
pub fn run(args: TrustArgs) -> anyhow::Result<()> {
    let api = args.target.connect()?;
    match args.command {
        TrustCommand::Add {
            namespace,
            name,
            github,
            gitlab,
            issuer,
            audience,
            claims,
            actions,
            repos,
            output,
        } => {
            let issuer = match (github, gitlab, issuer) {
                (true, ..) => GITHUB_ISSUER.to_owned(),
                (_, true, _) => GITLAB_ISSUER.to_owned(),
                (_, _, Some(url)) => url,
                // clap's group requires one of the three.
                _ => bail!("no issuer; give --github, --gitlab or --issuer URL"),
            };
            let mut conditions = Map::new();
            for (key, value) in claims {
                if let Some(earlier) = conditions.get(&key)
                    && earlier != &json!(value)
                {
                    bail!(
                        "--claim {key} is given twice with different values; a rule holds one \
                         condition per claim (use a glob such as `{key}=refs/tags/*` for several \
                         values, or add a second rule)"
                    );
                }
                conditions.insert(key, json!(value));
            }
            let mut body = json!({
                "issuer": issuer,
                "claims": conditions,
                "repositories": repos,
            });
            if let Some(name) = &name {
                body["name"] = json!(name);
            }
            if let Some(audience) = &audience {
                body["audience"] = json!(audience);
            }
            if let Some(actions) = actions_json(&actions) {
                body["actions"] = actions;
            }
            let what = match &name {
                Some(name) => format!("cannot add trust rule `{name}` to `{namespace}`"),
                None => format!("cannot add a trust rule to `{namespace}`"),
            };
            let answer = api
                .call(Method::POST, &["trust", &namespace], Some(&body))
                .context(what)?;
            let rule = &answer["rule"];
            if output == Output::Json {
                return print_out(&format!("{answer:#}\n"));
            }
            let registry = host_key(api.base()).unwrap_or_else(|| "REGISTRY".to_owned());
            print_out(&describe(rule))?;
            eprintln!(
                "a job whose ID token matches logs in with `berth login --oidc {registry}`, or \
                 `docker login -u oidc -p \"$ID_TOKEN\" {registry}`{}",
                audience_note(rule)
            );
            Ok(())
        }
        TrustCommand::List { namespace, output } => {
            let rules = api
                .list_all(&["trust", &namespace], &[], "rules")
                .with_context(|| format!("cannot list the trust rules of `{namespace}`"))?;
            let mut rows = vec![
                ["NAME", "ISSUER", "CLAIMS", "ACTIONS", "REPOSITORIES"]
                    .map(str::to_owned)
                    .to_vec(),
            ];
            rows.extend(rules.iter().map(|rule| {
                vec![
                    field(rule, "name").to_owned(),
                    field(rule, "issuer").to_owned(),
                    claims_text(&rule["claims"], ","),
                    list(&rule["actions"], ","),
                    list(&rule["repositories"], ","),
                ]
            }));
            emit(
                output,
                &json!({"namespace": namespace, "rules": Value::Array(rules)}),
                &columns(&rows),
            )
        }
        TrustCommand::Remove {
            namespace,
            name,
            output,
        } => {
            api.call(Method::DELETE, &["trust", &namespace, &name], None)
                .with_context(|| format!("cannot remove trust rule `{name}` of `{namespace}`"))?;
            emit(
                output,
                &json!({"namespace": namespace, "rule": name, "removed": true}),
                &format!("removed trust rule {name} of {namespace}\n"),
            )
        }
    }
}

/// A rule, one field a line.
fn describe(rule: &Value) -> String {
    format!(
        "trust rule {}/{}\n  issuer:       {}\n  audience:     {}\n  claims:       {}\n  \
         actions:      {}\n  repositories: {}\n",
        field(rule, "namespace"),
        field(rule, "name"),
        field(rule, "issuer"),
        field(rule, "audience"),
        claims_text(&rule["claims"], " "),
        list(&rule["actions"], ","),
        list(&rule["repositories"], " "),
    )
}

/// `; its ID token must carry aud=AUD`, so that the job asks for the right
/// audience.
fn audience_note(rule: &Value) -> String {
    match field(rule, "audience") {
        "" => String::new(),
        audience => format!(" (its ID token must carry aud `{audience}`)"),
    }
}

/// `key=value` pairs of a rule's claims, joined by `sep`.
fn claims_text(claims: &Value, sep: &str) -> String {
    claims
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(key, value)| match value.as_str() {
                    Some(text) => format!("{key}={text}"),
                    None => format!("{key}={value}"),
                })
                .collect::<Vec<_>>()
                .join(sep)
        })
        .unwrap_or_default()
}

/// The strings of an array, joined by `sep`.
fn list(value: &Value, sep: &str) -> String {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(sep)
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_needs_its_equals_sign_and_a_name() {
        assert_eq!(
            parse_claim("ref=refs/heads/main"),
            Ok(("ref".into(), "refs/heads/main".into()))
        );
        // The value may hold `=`; only the first one splits.
        assert_eq!(
            parse_claim("job_workflow_ref=a/b/.github/workflows/x.yml@refs/heads/main=1"),
            Ok((
                "job_workflow_ref".into(),
                "a/b/.github/workflows/x.yml@refs/heads/main=1".into()
            ))
        );
        let e = parse_claim("repository").unwrap_err();
        assert!(e.contains("no `=`") && e.contains("KEY=VALUE"), "{e}");
        assert!(parse_claim("=acme").unwrap_err().contains("empty"));
    }

    #[test]
    fn a_rule_reads_as_its_fields() {
        let rule = json!({
            "namespace": "acme", "name": "release",
            "issuer": GITHUB_ISSUER, "audience": "registry.example.com",
            "claims": {"repository": "acme/app", "ref": "refs/heads/main"},
            "actions": ["pull", "push"], "repositories": ["acme/app", "acme/tools/*"],
            "created_by": "alice", "created_at": "2026-12-03T12:00:00Z",
        });
        let text = describe(&rule);
        assert!(text.starts_with("trust rule acme/release\n"), "{text}");
        let claims = text
            .lines()
            .find_map(|line| line.strip_prefix("  claims:       "))
            .unwrap_or_default();
        let mut pairs: Vec<&str> = claims.split(' ').collect();
        pairs.sort_unstable();
        assert_eq!(
            pairs,
            ["ref=refs/heads/main", "repository=acme/app"],
            "{text}"
        );
        assert!(
            text.contains("  repositories: acme/app acme/tools/*\n"),
            "{text}"
        );
        assert_eq!(
            audience_note(&rule),
            " (its ID token must carry aud `registry.example.com`)"
        );
        assert_eq!(list(&rule["actions"], ","), "pull,push");
    }
}
