//! `berth pull REF [DIR]`: the files of an OCI artifact (as `oras pull`
//! writes them, see `berth_client::artifact`), with progress on stderr as
//! `berth copy` draws it.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use berth_client::artifact;
use clap::Args;

use super::progress::{ProgressArgs, drive, plural, size};
use super::push::report_json;
use super::tags::parse_reference;
use super::{Common, Output, connect, json_text, print_out};

/// Pull the files of an artifact (as `oras pull` does).
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  berth pull 127.0.0.1:5000/admin/hello:1.0 ./hello
  berth pull registry.example.com/acme/docs@sha256:... .

Each layer named by an org.opencontainers.image.title annotation is written
to DIR/<title> (DIR is created if missing; a file there is replaced): streamed
to a temporary file beside it, checked against the layer's digest and size,
then renamed, so a file is never seen half-written. A title that would leave
DIR (an absolute path, `..`, a path separator) is refused before anything is
written. Layers without a title are skipped, with a note.

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct PullArgs {
    /// The artifact: [host[:port]/]name[:tag][@digest].
    #[arg(value_name = "REF")]
    reference: String,

    /// The directory to write the files into.
    #[arg(value_name = "DIR", default_value = ".")]
    dir: PathBuf,

    /// Files downloaded at once.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,

    #[command(flatten)]
    progress: ProgressArgs,

    /// The summary at the end: one line per file, or JSON.
    #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
    output: Output,

    #[command(flatten)]
    common: Common,
}

/// Runs `berth pull`.
pub fn run(args: PullArgs) -> anyhow::Result<()> {
    let reference = parse_reference(&args.reference)?;
    let client = Arc::new(connect(reference.registry(), &args.common)?);
    let repo = reference.repository().clone();
    let target = reference.tag_or_digest();
    let shown = reference.to_string();
    let dir = args.dir.clone();
    let jobs = usize::from(args.jobs);
    let display = args.progress.display("pull");
    let report = drive(&display, |on_event| async move {
        artifact::pull(client, &repo, &target, &dir, jobs, Some(on_event)).await
    })?
    .with_context(|| format!("cannot pull {shown} into {}", args.dir.display()))?;
    for layer in &report.skipped {
        eprintln!(
            "note: layer {} ({}) has no file name (org.opencontainers.image.title); not written",
            layer.digest, layer.media_type
        );
    }
    match args.output {
        Output::Json => print_out(&json_text(&report_json(&shown, &report))),
        Output::Text => {
            let total: u64 = report.files.iter().map(|f| f.size).sum();
            let mut text = format!(
                "pulled {shown}@{} into {}: {} file{} ({})\n",
                report.digest,
                args.dir.display(),
                report.files.len(),
                plural(report.files.len()),
                size(total)
            );
            for file in &report.files {
                if let Some(path) = &file.path {
                    text.push_str(&format!("{}\n", path.display()));
                }
            }
            print_out(&text)
        }
    }
}
