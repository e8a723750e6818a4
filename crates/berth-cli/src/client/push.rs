//! `berth push REF FILE[:TYPE]...`: files as an OCI artifact, stored as
//! `oras push` stores them (see `berth_client::artifact`), with progress on
//! stderr as `berth copy` draws it.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, bail};
use berth_client::artifact::{
    self, ArtifactFile, ArtifactReport, DEFAULT_ARTIFACT_TYPE, PushOptions,
};
use berth_client::copy::BlobOutcome;
use berth_core::media_type::MediaType;
use clap::Args;
use serde_json::json;

use super::progress::{ProgressArgs, drive, plural, size};
use super::tags::parse_reference;
use super::{Common, Output, connect, json_text, print_out};

/// Push files as an OCI artifact (as `oras push` does).
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  berth push 127.0.0.1:5000/admin/hello:1.0 hello.txt
  berth push registry.example.com/acme/docs:v2 manual.pdf:application/pdf notes.md:text/markdown
  berth push 127.0.0.1:5000/admin/sbom:1 sbom.json --artifact-type application/spdx+json \\
      --annotation org.opencontainers.image.source=https://example.com/acme

What it writes: one OCI image manifest whose artifactType is --artifact-type
(default application/vnd.unknown.artifact.v1), whose config is the empty
descriptor (application/vnd.oci.empty.v1+json, `{}`), and with one layer per
FILE: its media type (FILE:TYPE, default application/vnd.oci.image.layer.v1.tar)
and its file name in the org.opencontainers.image.title annotation. `oras pull`
and `berth pull` read it back into files of those names.

Each file is hashed, then streamed (never held in memory); a file the
repository holds already is not sent again. The manifest goes last, under
REF's tag (`latest` when REF names none).

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct PushArgs {
    /// Where to: [host[:port]/]name[:tag].
    #[arg(value_name = "REF")]
    reference: String,

    /// The files, each FILE or FILE:TYPE (a media type for its layer).
    #[arg(value_name = "FILE[:TYPE]", required = true, num_args = 1..)]
    files: Vec<String>,

    /// The manifest's artifactType.
    #[arg(long, value_name = "TYPE", default_value = DEFAULT_ARTIFACT_TYPE)]
    artifact_type: String,

    /// An annotation of the manifest, KEY=VALUE (repeatable).
    #[arg(long = "annotation", short = 'a', value_name = "KEY=VALUE", value_parser = key_value)]
    annotations: Vec<(String, String)>,

    /// Files uploaded at once.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,

    /// Upload in chunks of this many bytes instead of one request per file.
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

/// `KEY=VALUE`, with a non-empty key.
fn key_value(input: &str) -> Result<(String, String), String> {
    match input.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err("give KEY=VALUE, such as org.opencontainers.image.description=docs".to_owned()),
    }
}

/// Runs `berth push`.
pub fn run(args: PushArgs) -> anyhow::Result<()> {
    let reference = parse_reference(&args.reference)?;
    if reference.digest().is_some() {
        bail!(
            "`{}` names a digest; a push names a tag (the digest is that of the manifest \
             written, printed at the end)",
            args.reference
        );
    }
    MediaType::parse(&args.artifact_type).with_context(|| {
        format!(
            "--artifact-type `{}` is not a media type; give one such as application/vnd.acme.docs.v1",
            args.artifact_type
        )
    })?;
    let files = args
        .files
        .iter()
        .map(|arg| ArtifactFile::parse(arg))
        .collect::<Result<Vec<_>, _>>()?;
    let options = PushOptions {
        artifact_type: args.artifact_type.clone(),
        annotations: args.annotations.iter().cloned().collect::<BTreeMap<_, _>>(),
        jobs: usize::from(args.jobs),
        upload: super::upload_options(args.chunk_size),
    };
    let client = Arc::new(connect(reference.registry(), &args.common)?);
    let repo = reference.repository().clone();
    let target = reference.tag_or_digest();
    let shown = reference.to_string();
    let display = args.progress.display("push");
    let report = drive(&display, |on_event| async move {
        artifact::push(client, &repo, &target, &files, &options, Some(on_event)).await
    })?
    .with_context(|| format!("cannot push to {shown}"))?;
    match args.output {
        Output::Json => print_out(&json_text(&report_json(&shown, &report))),
        Output::Text => {
            let total: u64 = report.files.iter().map(|f| f.size).sum();
            let sent = report
                .files
                .iter()
                .filter(|f| f.outcome == BlobOutcome::Copied)
                .count();
            let there = report.files.len() - sent;
            let manifest = if report.manifest_written {
                "manifest written"
            } else {
                "manifest already there"
            };
            let there = if there > 0 {
                format!(" ({there} already there)")
            } else {
                String::new()
            };
            print_out(&format!(
                "pushed {shown}@{}: {} file{} ({}), {sent} uploaded{there}, {manifest}\n",
                report.digest,
                report.files.len(),
                plural(report.files.len()),
                size(total),
            ))
        }
    }
}

/// The JSON of a push or a pull.
pub(crate) fn report_json(reference: &str, report: &ArtifactReport) -> serde_json::Value {
    json!({
        "reference": reference,
        "digest": report.digest.to_string(),
        "artifactType": report.artifact_type,
        "annotations": report.annotations,
        "files": report.files.iter().map(|f| {
            let mut file = json!({
                "title": f.title,
                "digest": f.digest.to_string(),
                "size": f.size,
                "mediaType": f.media_type,
            });
            if let Some(path) = &f.path {
                file["path"] = json!(path.display().to_string());
            }
            file["outcome"] = json!(match f.outcome {
                BlobOutcome::Existed => "existed",
                BlobOutcome::Mounted => "mounted",
                BlobOutcome::Copied => "copied",
            });
            file
        }).collect::<Vec<_>>(),
        "skipped": report.skipped.iter().map(|d| d.digest.to_string()).collect::<Vec<_>>(),
        "manifestWritten": report.manifest_written,
    })
}
