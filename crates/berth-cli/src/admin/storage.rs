//! `berth admin gc run`, `berth admin usage`, `berth admin quota ...`: the
//! garbage collector on demand, the bytes each namespace and repository
//! holds, namespace quotas.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::token::Output;
use crate::api::{Api, columns, print_out};

/// How long `gc run` waits for the collection to end.
const GC_TIMEOUT: Duration = Duration::from_secs(60 * 60);

#[derive(Debug, Subcommand)]
pub enum GcCommand {
    /// Collect now: apply retention policies, then reclaim what nothing references.
    #[command(after_help = "\
Examples:
  berth admin gc run --dry-run     # what a collection would remove now, with sizes
  berth admin gc run               # collect now (the server also collects on its own
                                   # every --gc-interval-secs)

Only what has been unreferenced for --gc-delay-secs (untagged manifests:
--gc-untagged-delay-secs) goes; pushes, pulls and deletes go on meanwhile.
A dry run changes nothing: it runs the same reviews in one transaction and
rolls it back.")]
    Run {
        /// Report what would be removed, removing nothing.
        #[arg(long)]
        dry_run: bool,
        /// `text` (a summary and the tags and manifests removed) or `json`
        /// (the whole report).
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// Set the most bytes a namespace's repositories may hold.
    #[command(after_help = "\
Examples:
  berth admin quota set acme 50GiB
  berth admin quota set ci 500000000

A blob shared by several repositories of the namespace counts once. A push that
would go past the quota is refused with 403 DENIED naming the quota and the
usage, before its bytes are stored when their size is known. Lowering a quota
below the usage removes nothing: pushes are refused until deletes and the
garbage collector bring the usage under it.")]
    Set {
        /// The namespace (first component of repository names: `acme` for acme/app).
        namespace: String,
        /// Bytes: a number, or with a unit (KiB, MiB, GiB, TiB; KB, MB, GB, TB).
        size: String,
    },
    /// Remove a namespace's quota.
    Remove {
        /// The namespace.
        namespace: String,
    },
    /// List the quotas with each namespace's usage.
    List {
        /// `text` or `json`.
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
}

pub fn run_gc(api: &Api, command: GcCommand) -> anyhow::Result<()> {
    let GcCommand::Run { dry_run, output } = command;
    let query: &[(&str, &str)] = if dry_run { &[("dry_run", "true")] } else { &[] };
    let report = api
        .call_within(Method::POST, &["gc"], query, None, Some(GC_TIMEOUT))
        .context("the garbage collection failed")?;
    match output {
        Output::Json => print_out(&format!("{report:#}\n")),
        Output::Text => print_out(&gc_summary(&report)),
    }
}

fn size(value: &Value) -> String {
    human(value.as_u64().unwrap_or(0))
}

/// Bytes in binary units: `1.5 GiB`.
fn human(n: u64) -> String {
    berth_registry::usage::short_bytes(n)
}

fn gc_summary(report: &Value) -> String {
    let dry = report["dry_run"].as_bool() == Some(true);
    let verb = if dry { "would remove" } else { "removed" };
    let mut out = String::new();
    for (key, what) in [("tags", "tag"), ("manifests", "manifest")] {
        let section = &report[key];
        let mut rows = Vec::new();
        for item in section["items"].as_array().into_iter().flatten() {
            let name = match item["tag"].as_str() {
                Some(tag) => format!("{}:{tag}", item["repository"].as_str().unwrap_or("")),
                None => format!(
                    "{}@{}",
                    item["repository"].as_str().unwrap_or(""),
                    item["digest"].as_str().unwrap_or("")
                ),
            };
            rows.push(vec![what.to_owned(), name, size(&item["bytes"])]);
        }
        out.push_str(&columns(&rows));
        let count = section["count"].as_u64().unwrap_or(0);
        let listed = rows.len() as u64;
        if count > listed {
            out.push_str(&format!("... and {} more {what}s\n", count - listed));
        }
    }
    let count = |key: &str| report[key]["count"].as_u64().unwrap_or(0);
    out.push_str(&format!(
        "{verb}: {} tags, {} manifests, {} blob links, {} blobs; {} reclaimed from {} blobs' bytes\n",
        count("tags"),
        count("manifests"),
        count("links"),
        count("blobs"),
        size(&report["reclaimed"]["bytes"]),
        count("reclaimed"),
    ));
    if dry {
        // The bytes of blob records a dry run removes are what it would reclaim.
        out.push_str(&format!(
            "space a collection now would reclaim: {}\n",
            size(&report["blobs"]["bytes"])
        ));
    }
    out.push_str(&format!(
        "kept {} still referenced; {} in the review queue, due later; took {} ms\n",
        report["kept"].as_u64().unwrap_or(0),
        report["queue_length"].as_u64().unwrap_or(0),
        report["duration_ms"].as_u64().unwrap_or(0),
    ));
    for error in report["errors"].as_array().into_iter().flatten() {
        out.push_str(&format!("error: {}\n", error.as_str().unwrap_or("")));
    }
    if report["incomplete"].as_bool() == Some(true) {
        out.push_str("stopped before the queue was done; the next collection continues\n");
    }
    out
}

/// `berth admin usage [NAMESPACE]`.
pub fn run_usage(api: &Api, namespace: Option<&str>, output: Output) -> anyhow::Result<()> {
    let query: Vec<(&str, &str)> = namespace.map(|ns| ("namespace", ns)).into_iter().collect();
    let usage = api
        .call_with_query(Method::GET, &["usage"], &query, None)
        .context("cannot read the registry's usage")?;
    if output == Output::Json {
        return print_out(&format!("{usage:#}\n"));
    }
    let mut rows = vec![vec![
        "NAMESPACE".to_owned(),
        "USED".to_owned(),
        "BLOBS".to_owned(),
        "QUOTA".to_owned(),
    ]];
    for ns in usage["namespaces"].as_array().into_iter().flatten() {
        rows.push(vec![
            ns["namespace"].as_str().unwrap_or("").to_owned(),
            size(&ns["bytes"]),
            ns["blobs"].as_u64().unwrap_or(0).to_string(),
            ns["quota"].as_u64().map_or_else(|| "-".to_owned(), human),
        ]);
    }
    let mut out = columns(&rows);
    out.push('\n');
    let mut rows = vec![vec![
        "REPOSITORY".to_owned(),
        "USED".to_owned(),
        "BLOBS".to_owned(),
    ]];
    for repo in usage["repositories"].as_array().into_iter().flatten() {
        rows.push(vec![
            repo["repository"].as_str().unwrap_or("").to_owned(),
            size(&repo["bytes"]),
            repo["blobs"].as_u64().unwrap_or(0).to_string(),
        ]);
    }
    out.push_str(&columns(&rows));
    out.push_str(&format!(
        "\nstored: {} in {} blobs (each once); {} rows in the garbage collector's review queue\n",
        size(&usage["stored"]["bytes"]),
        usage["stored"]["blobs"].as_u64().unwrap_or(0),
        usage["gc_queue_length"].as_u64().unwrap_or(0),
    ));
    print_out(&out)
}

/// A size as people write it: `500000000`, `50GiB`, `1.5 TB`.
pub fn parse_size(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let at = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(at);
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "tib" | "t" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => bail!(
            "unknown size unit {other:?} in {text:?}; write bytes, or a number with KiB, MiB, GiB, TiB (or KB, MB, GB, TB)"
        ),
    };
    let value: f64 = number
        .parse()
        .with_context(|| format!("{text:?} is not a size; write e.g. 50GiB or 500000000"))?;
    let bytes = value * multiplier as f64;
    if !(bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64) {
        bail!("{text:?} is not a size berth can hold");
    }
    Ok(bytes.round() as u64)
}

pub fn run_quota(api: &Api, command: QuotaCommand) -> anyhow::Result<()> {
    match command {
        QuotaCommand::Set {
            namespace,
            size: text,
        } => {
            let bytes = parse_size(&text)?;
            let answer = api
                .call(
                    Method::PUT,
                    &["quotas", &namespace],
                    Some(&json!({"bytes": bytes})),
                )
                .with_context(|| format!("cannot set the quota of {namespace}"))?;
            let used = answer["used"].as_u64().unwrap_or(0);
            let mut out = format!(
                "quota of {namespace}: {} ({bytes} bytes); {} used\n",
                human(bytes),
                human(used)
            );
            if used > bytes {
                out.push_str(
                    "the namespace is over its quota: pushes to it are refused until deletes bring it under\n",
                );
            }
            print_out(&out)
        }
        QuotaCommand::Remove { namespace } => {
            api.call(Method::DELETE, &["quotas", &namespace], None)
                .with_context(|| format!("cannot remove the quota of {namespace}"))?;
            print_out(&format!("removed the quota of {namespace}\n"))
        }
        QuotaCommand::List { output } => {
            let usage = api
                .call(Method::GET, &["usage"], None)
                .context("cannot read the quotas")?;
            let quotas: Vec<&Value> = usage["namespaces"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|ns| ns["quota"].is_u64())
                .collect();
            if output == Output::Json {
                return print_out(&format!("{:#}\n", json!({ "quotas": quotas })));
            }
            let mut rows = vec![vec![
                "NAMESPACE".to_owned(),
                "QUOTA".to_owned(),
                "USED".to_owned(),
            ]];
            for ns in quotas {
                rows.push(vec![
                    ns["namespace"].as_str().unwrap_or("").to_owned(),
                    size(&ns["quota"]),
                    size(&ns["bytes"]),
                ]);
            }
            print_out(&columns(&rows))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_and_decimal_units() {
        assert_eq!(parse_size("500000000").unwrap(), 500_000_000);
        assert_eq!(parse_size("50GiB").unwrap(), 50 << 30);
        assert_eq!(parse_size("1.5 KiB").unwrap(), 1536);
        assert_eq!(parse_size("2GB").unwrap(), 2_000_000_000);
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }
}
