//! `berth migrate --from DATA ...`: copies an embedded registry into a
//! target configured as `berth serve` would be (PostgreSQL, S3, or another
//! data directory), with progress on stderr and a summary on stdout
//! (`berth_registry::migrate`).
//!
//! A top-level command beside `backup`, not under `admin`: like `backup` it
//! works on the registry's storage directly, while `admin` commands talk to
//! a running server's API.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use berth_client::copy::CopyEvent;
use berth_registry::meta::transfer::TableCount;
use berth_registry::meta::url::DatabaseUrl;
use berth_registry::migrate::{
    self, KeysOutcome, MigrateEvent, MigrateOptions, MigrateReport, MigrateTarget, OnMigrateEvent,
};
use berth_registry::{BlobStoreConfig, DATABASE_FILE};
use clap::Args;
use serde_json::json;

use crate::client::progress::{
    Display, ProgressArgs, blob_copy_event, drive, plural, size, to_usize,
};
use crate::client::{Output, json_text, print_out};
use crate::serve::{
    BlobStoreArgs, StorageSettings, blob_store, refuse_password_flag, storage_settings,
};

/// Copy an embedded registry (a data directory) to PostgreSQL and/or S3.
#[derive(Debug, Args)]
#[command(after_help = "\
Give the target as the new nodes' `berth serve` will take it: their TOML file
(--config), or --database-url (in BERTH_DATABASE_URL when it carries a
password), --blob-store s3://BUCKET[/PREFIX] with the --s3-* settings (S3
credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), and --data-dir for
what stays on a filesystem (blobs without --blob-store, SQLite without
--database-url). Flags and BERTH_* variables win over the file.

Examples:
  # what would be copied, changing nothing
  berth migrate --from /var/lib/berth --config /etc/berth/cluster.toml --dry-run
  # the copy, into what the nodes' file names
  sudo -u berth berth migrate --from /var/lib/berth --config /etc/berth/cluster.toml
  # the same with flags
  export BERTH_DATABASE_URL=postgres://berth:secret@db.internal/berth
  export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...
  berth migrate --from /var/lib/berth --blob-store s3://registry/berth \\
      --s3-endpoint https://s3.internal --s3-path-style
  # only the metadata to PostgreSQL, the blobs staying where they are
  berth migrate --from /var/lib/berth --data-dir /var/lib/berth \\
      --database-url postgres://berth@db.internal/berth

Then start the nodes on the same settings. Everything carries over: users
(password hashes as stored), organisations, members, robots, personal access
and refresh tokens, revocations, repositories with their visibility, blobs,
manifests, tags, referrers, and the token signing keys (tokens and logins
issued before keep working). Unfinished uploads do not.

The source may be serving: the copy is one instant of it (a snapshot of its
metadata). Run it while the source serves to move the bulk, then stop the
source and run it again: the second run copies only what changed, deletions
included. The target must not be served until the last run has finished
(refused while a node runs on it).

Resumable: run it again after an interruption or a failure. Blobs the
target holds already are not copied again; rows it holds already are kept or
updated. Every blob is hashed as it is copied and committed only when it
matches its digest; a blob that does not (a damaged file in the source) is
listed, the others are copied, and the repositories, manifests and tags are
not copied until a run copies every blob.

Refused: a source that is not a berth data directory; a target holding
another registry's data (e.g. one a `berth serve` started on: it has other
signing keys and an admin of its own).

Exit codes: 0 success, 1 failure (the message says what to do; blobs that
could not be copied are listed, what was copied is kept), 2 usage error.")]
pub struct MigrateArgs {
    /// The embedded registry's data directory (what its `berth serve --data-dir` is).
    #[arg(long, value_name = "DATA")]
    from: PathBuf,

    /// The target nodes' TOML file (`berth serve --config`): its data_dir,
    /// database_url, blob_store and s3_* settings name the target.
    ///
    /// Not read from BERTH_CONFIG: on the source's machine that names the
    /// source's own file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// The target's data directory: its blobs without --blob-store, its
    /// SQLite database and keys without --database-url.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// The target PostgreSQL database: postgres://USER@HOST[:PORT]/DATABASE
    /// [default: SQLite in --data-dir].
    ///
    /// Give a password in BERTH_DATABASE_URL or PGPASSWORD, never in this
    /// flag (a command line is visible to every local user).
    #[arg(long, env = "BERTH_DATABASE_URL", value_name = "URL")]
    database_url: Option<DatabaseUrl>,

    #[command(flatten)]
    store: BlobStoreArgs,

    /// Say what would be copied, and change nothing.
    ///
    /// Reads the target (rows compared one by one, blobs looked up) to
    /// count what a run would copy, update and remove; refuses what a run
    /// would refuse.
    #[arg(long)]
    dry_run: bool,

    /// Blobs copied at once.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,

    #[command(flatten)]
    progress: ProgressArgs,

    /// The summary at the end: lines, or JSON.
    #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
    output: Output,
}

/// The target, resolved from the flags and the file before any I/O.
struct Resolved {
    target: MigrateTarget,
    /// The target in words: `PostgreSQL postgres://u@h/db, blobs in s3://b/p`.
    described: String,
}

fn resolve(args: &MigrateArgs) -> anyhow::Result<Resolved> {
    refuse_password_flag(args.database_url.as_ref())?;
    let file = match &args.config {
        Some(path) => storage_settings(path)?,
        None => StorageSettings::default(),
    };
    let data_dir = args.data_dir.clone().or(file.data_dir);
    let database_url = args.database_url.clone().or(file.database_url);
    let (store, _) = blob_store(args.store.clone().or(file.store), None)?;
    let metadata = match (&database_url, &data_dir) {
        (Some(url), _) => format!("PostgreSQL {url}"),
        (None, Some(dir)) => format!("SQLite {}", dir.join(DATABASE_FILE).display()),
        (None, None) => "SQLite (no --data-dir)".to_owned(),
    };
    let blobs = match (&store, &data_dir) {
        (BlobStoreConfig::S3(s3), _) if s3.prefix.is_empty() => format!("s3://{}", s3.bucket),
        (BlobStoreConfig::S3(s3), _) => format!("s3://{}/{}", s3.bucket, s3.prefix),
        (BlobStoreConfig::DataDir, Some(dir)) => dir.join("blobs").display().to_string(),
        (BlobStoreConfig::DataDir, None) => "the filesystem (no --data-dir)".to_owned(),
    };
    Ok(Resolved {
        target: MigrateTarget {
            data_dir,
            database_url,
            blob_store: store,
        },
        described: format!("{metadata}, blobs in {blobs}"),
    })
}

/// Runs `berth migrate`.
pub fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let Resolved { target, described } = resolve(&args)?;
    let options = MigrateOptions {
        jobs: usize::from(args.jobs),
        dry_run: args.dry_run,
    };
    let display = args.progress.display("migrate");
    let started = Instant::now();
    let from = args.from.clone();
    let notes = display.clone();
    let report = drive(&display, |on_event| async move {
        let on_migrate: OnMigrateEvent = Arc::new(move |event: &MigrateEvent| {
            if let Some(event) = as_copy_event(event, &notes) {
                on_event(&event);
            }
        });
        migrate::migrate(&from, &target, &options, Some(on_migrate)).await
    })?
    .with_context(|| format!("cannot migrate {}", args.from.display()))?;
    let elapsed = started.elapsed();
    match args.output {
        Output::Json => print_out(&json_text(&as_json(
            &report,
            &args.from,
            &described,
            args.dry_run,
            elapsed,
        )))?,
        Output::Text => print_out(&text(
            &report,
            &args.from,
            &described,
            args.dry_run,
            elapsed,
        ))?,
    }
    if let Some((digest, reason)) = report.failures.first() {
        bail!(
            "{} blob{} could not be copied (the first, {digest}: {reason}); repositories, \
             manifests and tags were not copied; run it again once the cause is fixed: what the \
             target holds is kept",
            report.failures.len(),
            plural(report.failures.len()),
        );
    }
    Ok(())
}

/// A migration event as the transfer display shows it; each table with
/// rows on either side and each failure get a line of their own.
fn as_copy_event(event: &MigrateEvent, display: &Display) -> Option<CopyEvent> {
    Some(match event {
        MigrateEvent::TableDone { table, count } => {
            if count.total + count.removed > 0 {
                display.note(&format!("{table}: {}", rows_line(count)));
            }
            return None;
        }
        MigrateEvent::Planned {
            present,
            to_copy,
            bytes_to_copy,
        } => {
            display.note(&format!(
                "{present} blob{} already in the target",
                plural(to_usize(*present))
            ));
            CopyEvent::Planned {
                manifests: 0,
                blobs: to_usize(*to_copy),
                bytes: *bytes_to_copy,
            }
        }
        MigrateEvent::BlobFailed { digest, reason } => {
            // Said even when quiet: the run ends in a failure that names one.
            eprintln!("migrate: blob {digest} failed: {reason}");
            return None;
        }
        MigrateEvent::Blob(event) => blob_copy_event(event),
    })
}

/// `3 copied, 1 already there, 0 updated, 0 removed`.
fn rows_line(count: &TableCount) -> String {
    format!(
        "{} copied, {} already there, {} updated, {} removed",
        count.copied, count.present, count.updated, count.removed
    )
}

fn keys_word(keys: KeysOutcome, dry_run: bool) -> &'static str {
    match (keys, dry_run) {
        (KeysOutcome::None, _) => "none (access control was never on)",
        (KeysOutcome::Copied, false) => "copied",
        (KeysOutcome::Copied, true) => "to copy",
        (KeysOutcome::Present, _) => "already there",
    }
}

fn as_json(
    report: &MigrateReport,
    from: &Path,
    target: &str,
    dry_run: bool,
    elapsed: Duration,
) -> serde_json::Value {
    let tables: serde_json::Map<String, serde_json::Value> = report
        .tables
        .iter()
        .map(|(name, c)| {
            (
                (*name).to_owned(),
                json!({
                    "total": c.total,
                    "copied": c.copied,
                    "present": c.present,
                    "updated": c.updated,
                    "removed": c.removed,
                }),
            )
        })
        .collect();
    json!({
        "source": from,
        "target": target,
        "dryRun": dry_run,
        "complete": report.complete,
        "repositories": report.counts.repositories,
        "manifests": report.counts.manifests,
        "tags": report.counts.tags,
        "tables": tables,
        "blobs": {
            "total": report.counts.blobs,
            "copied": report.blobs_copied,
            "present": report.blobs_present,
            "failed": report.failures.len(),
        },
        "bytesTotal": report.counts.blob_bytes,
        "bytesCopied": report.bytes_copied,
        "keys": match report.keys {
            KeysOutcome::None => "none",
            KeysOutcome::Copied => "copied",
            KeysOutcome::Present => "present",
        },
        "failures": report.failures.iter().map(|(digest, reason)| json!({
            "digest": digest.to_string(),
            "reason": reason,
        })).collect::<Vec<_>>(),
        "uploadSessionsLeftOut": report.counts.uploads_dropped,
        "seconds": elapsed.as_secs_f64(),
    })
}

/// The summary: what the source holds, what was copied, what was there.
fn text(
    report: &MigrateReport,
    from: &Path,
    target: &str,
    dry_run: bool,
    elapsed: Duration,
) -> String {
    let counts = &report.counts;
    let head = if dry_run {
        format!("dry run: would migrate {} to {target}", from.display())
    } else if report.complete {
        format!("migrated {} to {target}", from.display())
    } else {
        format!(
            "migrated part of {} to {target} (blobs failed: run it again)",
            from.display()
        )
    };
    let n = |table: &str| to_usize(report.table(table).total);
    let count =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut lines = vec![
        head,
        format!(
            "  identities:   {}, {}, {}, {}, {}, {}",
            count(
                n("users"),
                "user (robots included)",
                "users (robots included)"
            ),
            count(n("organizations"), "organisation", "organisations"),
            count(n("memberships"), "membership", "memberships"),
            count(n("personal_access_tokens"), "access token", "access tokens"),
            count(n("refresh_tokens"), "refresh token", "refresh tokens"),
            count(n("revocations"), "revocation", "revocations"),
        ),
        format!(
            "  content:      {}, {}, {}",
            count(to_usize(counts.repositories), "repository", "repositories"),
            count(to_usize(counts.manifests), "manifest", "manifests"),
            count(to_usize(counts.tags), "tag", "tags"),
        ),
        format!(
            "  blobs:        {} ({}): {} {} ({}), {} already there, {} failed",
            counts.blobs,
            size(counts.blob_bytes),
            report.blobs_copied,
            if dry_run { "to copy" } else { "copied" },
            size(report.bytes_copied),
            report.blobs_present,
            report.failures.len()
        ),
    ];
    let sum = |field: fn(&TableCount) -> u64| -> u64 {
        report.tables.iter().map(|(_, c)| field(c)).sum()
    };
    let rows = TableCount {
        total: sum(|c| c.total),
        copied: sum(|c| c.copied),
        present: sum(|c| c.present),
        updated: sum(|c| c.updated),
        removed: sum(|c| c.removed),
    };
    lines.push(if dry_run {
        format!(
            "  rows:         {} to copy, {} already there, {} to update, {} to remove",
            rows.copied, rows.present, rows.updated, rows.removed
        )
    } else {
        format!("  rows:         {}", rows_line(&rows))
    });
    lines.push(format!(
        "  signing keys: {}",
        keys_word(report.keys, dry_run)
    ));
    if counts.uploads_dropped > 0 {
        lines.push(format!(
            "  left out:     {} unfinished upload{}",
            counts.uploads_dropped,
            plural(to_usize(counts.uploads_dropped))
        ));
    }
    let rate = report.bytes_copied as f64 / elapsed.as_secs_f64().max(1e-6) / 1e6;
    lines.push(if dry_run {
        format!("  time:         {:.1} s", elapsed.as_secs_f64())
    } else {
        format!(
            "  time:         {:.1} s, {rate:.1} MB/s",
            elapsed.as_secs_f64()
        )
    });
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use berth_core::Digest;
    use berth_registry::meta::snapshot::SnapshotCounts;

    use super::*;

    #[test]
    fn the_summary_says_what_was_copied_and_what_was_there() {
        let report = MigrateReport {
            counts: SnapshotCounts {
                repositories: 1,
                manifests: 2,
                tags: 2,
                blobs: 3,
                blob_bytes: 3 << 20,
                uploads_dropped: 1,
            },
            tables: vec![
                (
                    "users",
                    TableCount {
                        total: 2,
                        copied: 1,
                        present: 1,
                        updated: 0,
                        removed: 0,
                    },
                ),
                (
                    "tags",
                    TableCount {
                        total: 2,
                        copied: 1,
                        present: 0,
                        updated: 1,
                        removed: 1,
                    },
                ),
            ],
            blobs_copied: 1,
            blobs_present: 2,
            bytes_copied: 1 << 20,
            failures: vec![(Digest::sha256_of(b"x"), "damaged".to_owned())],
            keys: KeysOutcome::Copied,
            complete: false,
        };
        let summary = text(
            &report,
            Path::new("/var/lib/berth"),
            "PostgreSQL postgres://u@h/db, blobs in s3://b",
            false,
            Duration::from_secs(2),
        );
        assert_eq!(
            summary,
            "migrated part of /var/lib/berth to PostgreSQL postgres://u@h/db, blobs in s3://b \
             (blobs failed: run it again)\n  \
             identities:   2 users (robots included), 0 organisations, 0 memberships, \
             0 access tokens, 0 refresh tokens, 0 revocations\n  \
             content:      1 repository, 2 manifests, 2 tags\n  \
             blobs:        3 (3.0 MiB): 1 copied (1.0 MiB), 2 already there, 1 failed\n  \
             rows:         2 copied, 1 already there, 1 updated, 1 removed\n  \
             signing keys: copied\n  \
             left out:     1 unfinished upload\n  \
             time:         2.0 s, 0.5 MB/s\n"
        );
        let json = as_json(
            &report,
            Path::new("/var/lib/berth"),
            "t",
            false,
            Duration::from_secs(2),
        );
        assert_eq!(json["tables"]["tags"]["removed"], 1);
        assert_eq!(json["blobs"]["failed"], 1);
        assert_eq!(json["keys"], "copied");
    }
}
