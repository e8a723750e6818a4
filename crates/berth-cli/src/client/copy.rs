//! `berth copy SRC DST`: an image, index or artifact between registries and
//! OCI layout directories, with progress on stderr.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use berth_client::copy::{self, CopyOptions, CopyReport, Endpoint};
use berth_client::layout::{Layout, LayoutRef};
use berth_core::{Digest, Platform, Reference, TagOrDigest};
use clap::Args;
use serde_json::json;

use super::progress::{ProgressArgs, drive, plural, size};
use super::tags::parse_reference;
use super::{Common, Output, connect, json_text, print_out};

/// Copy an image (all its platforms), an index or an artifact.
#[derive(Debug, Args)]
#[command(after_help = "\
SRC and DST are each an image reference, [host[:port]/]name[:tag][@digest]
(a leading docker:// is accepted), or an OCI layout directory, oci:DIR[:TAG].

Examples:
  berth copy ghcr.io/acme/app:1.0 registry.example.com/mirror/app:1.0
  berth copy alpine:3.20 127.0.0.1:5000/library/alpine        # keeps the tag 3.20
  berth copy alpine:3.20 127.0.0.1:5000/alpine:3.20 --platform linux/arm64
  berth copy 127.0.0.1:5000/app:1.0 oci:./app-layout:1.0     # to a directory
  berth copy oci:./app-layout:1.0 registry.example.com/app:1.0
  berth copy registry.example.com/app:1.0 registry.example.com/app-copy:1.0 --referrers

What it does: reads the source's manifest (for an index, every platform's, or
only the --platform one, which is then copied alone); with --referrers also
every signature, SBOM or other artifact whose subject is a copied manifest.
Blobs move --jobs at a time, streamed from source to destination. Blobs the
destination holds are skipped; within one registry they are mounted from the
source repository, never sent again. Manifests are written children first and
the tag last, so a pull never sees a half-copied image. Digests are kept.

A destination without a tag gets the source's tag; a source given by digest
only is written by digest only.

Credentials for each registry come from `berth login` (or docker's and
podman's stores, or BERTH_USERNAME/BERTH_PASSWORD for both).

Progress goes to stderr: bars on a terminal, otherwise one line every
--progress-interval seconds and one line per blob.

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct CopyArgs {
    /// What to copy: a reference or oci:DIR[:TAG].
    #[arg(value_name = "SRC")]
    source: String,

    /// Where to: a reference or oci:DIR[:TAG].
    #[arg(value_name = "DST")]
    destination: String,

    /// Of an index, copy only this platform's image: os/arch[/variant].
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<Platform>,

    /// Also copy the artifacts (signatures, SBOMs) that refer to the copied manifests.
    #[arg(long)]
    referrers: bool,

    /// Blobs moved at once.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,

    /// Upload in chunks of this many bytes instead of one request per blob.
    ///
    /// By default each blob goes in one request, and in chunks (8 MiB, or
    /// the registry's OCI-Chunk-Min-Length) only where the registry or a
    /// proxy refuses that.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    chunk_size: Option<u64>,

    #[command(flatten)]
    progress: ProgressArgs,

    /// The summary at the end: one line, or JSON.
    #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
    output: Output,

    #[command(flatten)]
    common: Common,
}

/// Runs `berth copy`.
pub fn run(args: CopyArgs) -> anyhow::Result<()> {
    // A layout directory this copy creates is removed again if the copy
    // fails: a failed copy leaves nothing behind.
    let new_layout_dir = LayoutRef::parse(&args.destination)
        .and_then(Result::ok)
        .map(|r| r.dir)
        .filter(|dir| !dir.exists());
    let source = endpoint(&args.source, None, &args.common, "source")?;
    let destination = endpoint(
        &args.destination,
        Some(&source),
        &args.common,
        "destination",
    )?;
    let options = CopyOptions {
        platform: args.platform.clone(),
        referrers: args.referrers,
        jobs: usize::from(args.jobs),
        upload: super::upload_options(args.chunk_size),
    };
    let display = args.progress.display("copy");
    let started = Instant::now();
    let result = drive(&display, |on_event| async {
        copy::copy(
            &source.endpoint,
            &destination.endpoint,
            &options,
            Some(on_event),
        )
        .await
    })?;
    if let (Err(_), Some(dir)) = (&result, &new_layout_dir)
        && let Err(e) = std::fs::remove_dir_all(dir)
    {
        eprintln!(
            "berth: cannot remove the unfinished layout {}: {e}",
            dir.display()
        );
    }
    let report = result.with_context(|| {
        format!(
            "cannot copy {} to {}",
            source.endpoint, destination.endpoint
        )
    })?;
    let elapsed = started.elapsed();
    let rate = report.bytes_copied as f64 / elapsed.as_secs_f64().max(1e-6) / 1e6;
    match args.output {
        Output::Json => print_out(&json_text(&summary_json(
            &report,
            &source.endpoint,
            &destination.endpoint,
            elapsed,
        ))),
        Output::Text => print_out(&format!(
            "copied {} to {} ({}): {}; {}\n",
            source.endpoint,
            destination.endpoint,
            report
                .digest
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            counts(&report),
            format_args!(
                "{} in {:.1} s, {rate:.1} MB/s",
                size(report.bytes_copied),
                elapsed.as_secs_f64()
            ),
        )),
    }
}

fn summary_json(
    report: &CopyReport,
    source: &Endpoint,
    destination: &Endpoint,
    elapsed: Duration,
) -> serde_json::Value {
    json!({
        "source": source.to_string(),
        "destination": destination.to_string(),
        "digest": report.digest.as_ref().map(ToString::to_string),
        "mediaType": report.media_type,
        "manifests": { "copied": report.manifests_copied, "existing": report.manifests_existing, "referrers": report.referrers },
        "blobs": { "copied": report.blobs_copied, "mounted": report.blobs_mounted, "existing": report.blobs_existing },
        "bytesCopied": report.bytes_copied,
        "seconds": elapsed.as_secs_f64(),
    })
}

/// `1 manifest written, 4 blobs copied (2 mounted, 1 already there)`.
fn counts(report: &CopyReport) -> String {
    let aside = |parts: Vec<String>| {
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(", "))
        }
    };
    let manifests = format!(
        "{} manifest{} written{}",
        report.manifests_copied,
        plural(report.manifests_copied),
        aside(
            (report.manifests_existing > 0)
                .then(|| format!("{} already there", report.manifests_existing))
                .into_iter()
                .collect()
        )
    );
    let mut blob_notes = Vec::new();
    if report.blobs_mounted > 0 {
        blob_notes.push(format!("{} mounted", report.blobs_mounted));
    }
    if report.blobs_existing > 0 {
        blob_notes.push(format!("{} already there", report.blobs_existing));
    }
    let blobs = format!(
        "{} blob{} copied{}",
        report.blobs_copied,
        plural(report.blobs_copied),
        aside(blob_notes)
    );
    let referrers = if report.referrers > 0 {
        format!(
            ", {} referrer{}",
            report.referrers,
            plural(report.referrers)
        )
    } else {
        String::new()
    };
    format!("{manifests}, {blobs}{referrers}")
}

/// An endpoint and how it was named.
struct Side {
    endpoint: Endpoint,
    /// The source's tag (for a destination that names none).
    tag: Option<String>,
}

/// Parses SRC or DST. A destination that names no tag takes `source`'s.
fn endpoint(
    input: &str,
    source: Option<&Side>,
    common: &Common,
    role: &str,
) -> anyhow::Result<Side> {
    if let Some(parsed) = LayoutRef::parse(input) {
        let layout_ref = parsed.with_context(|| format!("bad {role} `{input}`"))?;
        let layout = match source {
            None => Layout::open(&layout_ref.dir),
            Some(_) => Layout::create(&layout_ref.dir),
        }
        .with_context(|| format!("cannot use {role} {layout_ref}"))?;
        let tag = layout_ref
            .tag
            .clone()
            .or_else(|| source.and_then(|s| s.tag.clone()));
        return Ok(Side {
            endpoint: Endpoint::Layout {
                layout: Arc::new(layout),
                tag: tag.clone(),
            },
            tag,
        });
    }
    let text = input.strip_prefix("docker://").unwrap_or(input);
    let reference = parse_reference(text)?;
    let explicit_tag = names_tag(text);
    let tag_or_digest = match (source, explicit_tag) {
        (Some(source), false) if reference.digest().is_none() => match &source.tag {
            Some(tag) => TagOrDigest::parse(tag).with_context(|| {
                format!("the source's tag `{tag}` cannot be a tag of {role} `{input}`; name one")
            })?,
            None => TagOrDigest::Digest(placeholder_digest(&reference, source)?),
        },
        _ => reference.tag_or_digest(),
    };
    let client = connect(reference.registry(), common)?;
    let tag = reference.tag().map(|t| t.as_str().to_owned());
    let tag = match (source, explicit_tag) {
        (None, false) if reference.digest().is_some() => None,
        _ => tag,
    };
    Ok(Side {
        endpoint: Endpoint::Registry {
            client: Arc::new(client),
            repo: reference.repository().clone(),
            reference: tag_or_digest,
        },
        tag,
    })
}

/// The digest a destination without a tag is written by, when the source is
/// named by digest only: the source's own.
fn placeholder_digest(destination: &Reference, source: &Side) -> anyhow::Result<Digest> {
    match &source.endpoint {
        Endpoint::Registry {
            reference: TagOrDigest::Digest(digest),
            ..
        } => Ok(digest.clone()),
        _ => bail!(
            "the destination {} names no tag and the source none either; add :TAG to the destination",
            destination.repository()
        ),
    }
}

/// Whether a reference's text names a tag (after its last `/`).
fn names_tag(text: &str) -> bool {
    let named = text.split('@').next().unwrap_or(text);
    named
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_is_named_only_after_the_last_slash() {
        assert!(names_tag("127.0.0.1:5000/app:1"));
        assert!(!names_tag("127.0.0.1:5000/app"));
        assert!(!names_tag("localhost:5000/a/b"));
        assert!(names_tag("alpine:3.20"));
        assert!(!names_tag("alpine@sha256:abc"));
        assert!(names_tag("alpine:3.20@sha256:abc"));
    }

    #[test]
    fn the_summary_names_what_was_written_and_what_was_there() {
        let fresh = CopyReport {
            manifests_copied: 1,
            blobs_copied: 4,
            ..CopyReport::default()
        };
        assert_eq!(counts(&fresh), "1 manifest written, 4 blobs copied");
        let again = CopyReport {
            manifests_existing: 3,
            blobs_mounted: 2,
            blobs_existing: 1,
            referrers: 1,
            ..CopyReport::default()
        };
        assert_eq!(
            counts(&again),
            "0 manifests written (3 already there), 0 blobs copied (2 mounted, 1 already there), 1 referrer"
        );
    }
}
