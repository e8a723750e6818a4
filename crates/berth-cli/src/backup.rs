//! `berth backup --data-dir DATA DIR`: a consistent copy of the registry in
//! DATA, taken while it serves (`berth_registry::backup`), with progress on
//! stderr and a summary on stdout. Restore is `berth serve --data-dir DIR`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use berth_client::copy::CopyEvent;
use berth_registry::backup::{self, BackupEvent, BackupOptions, BackupReport, OnBackupEvent};
use berth_registry::meta::snapshot::SnapshotCounts;
use clap::Args;
use serde_json::json;

use crate::client::progress::{
    Display, ProgressArgs, blob_copy_event, drive, plural, size, to_usize,
};
use crate::client::{Output, json_text, print_out};

/// Back up a registry's data directory while it serves.
#[derive(Debug, Args)]
#[command(after_help = "\
Run it on the registry's machine, as the user the server runs as (it reads the
data directory and must not leave files there that the server cannot open):

  sudo -u berth berth backup --data-dir /var/lib/berth /srv/backup/berth

What it copies, in this order: a snapshot of the metadata (SQLite's VACUUM
INTO: one instant of the registry, taken while pushes go on); every blob that
snapshot references, each verified against its digest as it is copied; the
token signing keys (keys/, modes kept). The snapshot replaces DIR/berth.db last,
so DIR is a complete backup at every moment, even if a run is cut off.

Incremental: blobs DIR holds already are not copied again, and blobs no longer
in the registry are removed from DIR. Unfinished uploads are left out (a client
resuming one against a restored registry starts it again).

DIR must be missing, empty, or a previous backup. Not in it: the TOML settings
and TLS files, which live outside the data directory.

Restore: stop the server, then serve the backup (or a copy of it), e.g.
  berth serve --data-dir /srv/backup/berth

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct BackupArgs {
    /// The registry's data directory (what `berth serve --data-dir` uses).
    #[arg(long, env = "BERTH_DATA_DIR", value_name = "DATA")]
    data_dir: PathBuf,

    /// Where the backup goes: a new or empty directory, or a previous backup.
    #[arg(value_name = "DIR")]
    dir: PathBuf,

    /// Blobs copied at once.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,

    #[command(flatten)]
    progress: ProgressArgs,

    /// The summary at the end: one line, or JSON.
    #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
    output: Output,
}

/// Runs `berth backup`.
pub fn run(args: BackupArgs) -> anyhow::Result<()> {
    let display = args.progress.display("backup");
    let options = BackupOptions {
        jobs: usize::from(args.jobs),
    };
    let started = Instant::now();
    let (data, dir, notes) = (args.data_dir.clone(), args.dir.clone(), display.clone());
    let report = drive(&display, |on_event| async move {
        let on_backup: OnBackupEvent = {
            let (data, dir) = (data.clone(), dir.clone());
            Arc::new(move |event: &BackupEvent| {
                on_event(&as_copy_event(event, &notes, &data, &dir));
            })
        };
        backup::backup(&data, &dir, &options, Some(on_backup)).await
    })?
    .with_context(|| {
        format!(
            "cannot back up {} to {}",
            args.data_dir.display(),
            args.dir.display()
        )
    })?;
    let elapsed = started.elapsed();
    match args.output {
        Output::Json => print_out(&json_text(&json!({
            "dataDir": args.data_dir,
            "backupDir": args.dir,
            "repositories": report.counts.repositories,
            "manifests": report.counts.manifests,
            "tags": report.counts.tags,
            "blobs": {
                "total": report.counts.blobs,
                "copied": report.blobs_copied,
                "existing": report.blobs_present,
                "removed": report.blobs_removed,
            },
            "bytesTotal": report.counts.blob_bytes,
            "bytesCopied": report.bytes_copied,
            "keysCopied": report.keys_copied,
            "uploadSessionsLeftOut": report.counts.uploads_dropped,
            "seconds": elapsed.as_secs_f64(),
        }))),
        Output::Text => print_out(&format!(
            "backed up {} to {}: {}\n",
            args.data_dir.display(),
            args.dir.display(),
            summary(&report, elapsed)
        )),
    }
}

/// A backup event as the transfer display shows it; the plan is also
/// described in a line of its own.
fn as_copy_event(
    event: &BackupEvent,
    display: &Display,
    data: &std::path::Path,
    dir: &std::path::Path,
) -> CopyEvent {
    match event {
        BackupEvent::Planned {
            counts,
            present,
            to_copy,
            bytes_to_copy,
        } => {
            display.note(&format!(
                "snapshot of {}: {} ({}); {present} already in {}",
                data.display(),
                content(counts),
                size(counts.blob_bytes),
                dir.display(),
            ));
            CopyEvent::Planned {
                manifests: 0,
                blobs: to_usize(*to_copy),
                bytes: *bytes_to_copy,
            }
        }
        BackupEvent::Blob(event) => blob_copy_event(event),
    }
}

/// `20 repositories, 40 manifests, 60 blobs`: what a snapshot holds.
fn content(counts: &SnapshotCounts) -> String {
    format!(
        "{} repositor{}, {} manifest{}, {} blob{}",
        counts.repositories,
        if counts.repositories == 1 { "y" } else { "ies" },
        counts.manifests,
        plural(to_usize(counts.manifests)),
        counts.blobs,
        plural(to_usize(counts.blobs)),
    )
}

/// `20 repositories, 40 manifests, 60 blobs: 20 copied (1.0 GiB), 40 already
/// there, 2 removed; keys copied; 12.3 s, 85.0 MB/s`.
fn summary(report: &BackupReport, elapsed: Duration) -> String {
    let counts = &report.counts;
    let mut blobs = format!(
        "{} copied ({}), {} already there",
        report.blobs_copied,
        size(report.bytes_copied),
        report.blobs_present
    );
    if report.blobs_removed > 0 {
        blobs.push_str(&format!(", {} removed", report.blobs_removed));
    }
    let mut notes = vec![if report.keys_copied {
        "keys copied".to_owned()
    } else {
        "no signing keys (access control was never on)".to_owned()
    }];
    if counts.uploads_dropped > 0 {
        notes.push(format!(
            "{} unfinished upload{} left out",
            counts.uploads_dropped,
            plural(to_usize(counts.uploads_dropped))
        ));
    }
    let rate = report.bytes_copied as f64 / elapsed.as_secs_f64().max(1e-6) / 1e6;
    format!(
        "{}: {blobs}; {}; {:.1} s, {rate:.1} MB/s",
        content(counts),
        notes.join("; "),
        elapsed.as_secs_f64(),
    )
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn the_summary_says_what_was_copied_and_what_was_there() {
        let report = BackupReport {
            counts: SnapshotCounts {
                repositories: 1,
                manifests: 2,
                tags: 2,
                blobs: 3,
                blob_bytes: 3 << 20,
                uploads_dropped: 1,
            },
            blobs_copied: 1,
            blobs_present: 2,
            bytes_copied: 1 << 20,
            blobs_removed: 4,
            keys_copied: true,
        };
        assert_eq!(
            summary(&report, Duration::from_secs(2)),
            "1 repository, 2 manifests, 3 blobs: 1 copied (1.0 MiB), 2 already there, 4 removed; \
             keys copied; 1 unfinished upload left out; 2.0 s, 0.5 MB/s"
        );
    }
}
