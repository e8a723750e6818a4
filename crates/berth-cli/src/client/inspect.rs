//! `berth inspect REF`: what a manifest or index says, with an image's
//! layers and config (see `berth_client::inspect`), as `skopeo inspect` and
//! `crane config` give it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Context;
use berth_client::inspect::{self, Config, Image, Inspection};
use berth_core::Platform;
use clap::Args;

use super::progress::size;
use super::tags::parse_reference;
use super::{Common, Output, block_on, connect, json_text, print_out};

/// Show a manifest's summary, an index's platforms, an image's layers and config.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  berth inspect 127.0.0.1:5000/admin/hello:1.0
  berth inspect alpine:3.20                       # an index: its platforms
  berth inspect alpine:3.20 --platform linux/arm64
  berth inspect alpine:3.20 --platform linux/amd64 --output json | jq .image.config.env

For an index (a multi-platform image), its platforms are listed; --platform
picks one, whose layers and config are then shown. The config (created,
platform, entrypoint, cmd, env, working directory, user, labels, ports) is
read only for an image config; an artifact's config is only described.

JSON fields: reference, digest, mediaType, artifactType, size, annotations,
manifests (an index's entries: digest, mediaType, size, platform,
artifactType), and image (digest, mediaType, artifactType, size, platform,
annotations, layers [digest, mediaType, size, title, annotations], layersSize,
config [digest, mediaType, size, created, os, architecture, variant,
entrypoint, cmd, env, workingDir, user, labels, exposedPorts]); image is null
for an index without --platform.

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct InspectArgs {
    /// The image or artifact: [host[:port]/]name[:tag][@digest].
    #[arg(value_name = "REF")]
    reference: String,

    /// Of an index, inspect this platform's image: os/arch[/variant].
    #[arg(long, value_name = "OS/ARCH")]
    platform: Option<Platform>,

    /// Output format: aligned lines, or JSON with stable field names.
    #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
    output: Output,

    #[command(flatten)]
    common: Common,
}

/// Runs `berth inspect`.
pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let reference = parse_reference(&args.reference)?;
    let client = connect(reference.registry(), &args.common)?;
    let inspection = block_on(inspect::inspect(
        &client,
        reference.repository(),
        &reference.tag_or_digest(),
        args.platform.as_ref(),
    ))?
    .with_context(|| format!("cannot inspect {reference}"))?;
    match args.output {
        Output::Json => print_out(&json_text(
            &serde_json::to_value(&inspection).context("cannot write the JSON")?,
        )),
        Output::Text => print_out(&text(&inspection)),
    }
}

/// `label:` padded to one column.
fn line(out: &mut String, indent: &str, label: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{indent}{:<15}{value}", format!("{label}:"));
}

/// The inspection as aligned lines.
fn text(inspection: &Inspection) -> String {
    let mut out = String::new();
    line(&mut out, "", "Reference", &inspection.reference);
    line(&mut out, "", "Digest", &inspection.digest);
    line(&mut out, "", "Media type", &inspection.media_type);
    if let Some(artifact_type) = &inspection.artifact_type {
        line(&mut out, "", "Artifact type", artifact_type);
    }
    line(&mut out, "", "Size", size(inspection.size));
    annotations(&mut out, "", &inspection.annotations);
    if !inspection.manifests.is_empty() {
        let _ = writeln!(out, "Platforms:");
        for entry in &inspection.manifests {
            let name = entry
                .platform
                .clone()
                .or_else(|| entry.artifact_type.clone())
                .unwrap_or_else(|| "(none)".to_owned());
            let _ = writeln!(out, "  {name:<16} {}  {}", entry.digest, size(entry.size));
        }
        if inspection.image.is_none() {
            let _ = writeln!(
                out,
                "(an index: pick a platform with --platform to see its layers and config)"
            );
        }
    }
    if let Some(image) = &inspection.image {
        image_text(&mut out, inspection, image);
    }
    out
}

fn image_text(out: &mut String, inspection: &Inspection, image: &Image) {
    if image.digest != inspection.digest {
        let _ = writeln!(out, "Image:");
        line(
            out,
            "  ",
            "Platform",
            image.platform.as_deref().unwrap_or("-"),
        );
        line(out, "  ", "Digest", &image.digest);
        line(out, "  ", "Media type", &image.media_type);
        if let Some(artifact_type) = &image.artifact_type {
            line(out, "  ", "Artifact type", artifact_type);
        }
        annotations(out, "  ", &image.annotations);
    }
    let _ = writeln!(
        out,
        "Layers:        {} layer{}, {} in all",
        image.layers.len(),
        if image.layers.len() == 1 { "" } else { "s" },
        size(image.layers_size)
    );
    for layer in &image.layers {
        let _ = write!(
            out,
            "  {}  {:>10}  {}",
            layer.digest,
            size(layer.size),
            layer.media_type
        );
        if let Some(title) = &layer.title {
            let _ = write!(out, "  {title}");
        }
        out.push('\n');
    }
    if let Some(config) = &image.config {
        config_text(out, config);
    }
}

fn config_text(out: &mut String, config: &Config) {
    let digest = config
        .digest
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "Config:        {digest} ({}, {})",
        config.media_type,
        size(config.size)
    );
    let indent = "  ";
    if let Some(created) = &config.created {
        line(out, indent, "Created", created);
    }
    if let (Some(os), Some(arch)) = (&config.os, &config.architecture) {
        let platform = match &config.variant {
            Some(variant) => format!("{os}/{arch}/{variant}"),
            None => format!("{os}/{arch}"),
        };
        line(out, indent, "Platform", platform);
    }
    let list = |items: &Option<Vec<String>>| {
        items
            .as_ref()
            .map(|v| serde_json::to_string(v).unwrap_or_default())
    };
    if let Some(entrypoint) = list(&config.entrypoint) {
        line(out, indent, "Entrypoint", entrypoint);
    }
    if let Some(cmd) = list(&config.cmd) {
        line(out, indent, "Cmd", cmd);
    }
    if let Some(dir) = &config.working_dir {
        line(out, indent, "Working dir", dir);
    }
    if let Some(user) = &config.user {
        line(out, indent, "User", user);
    }
    for (i, env) in config.env.iter().enumerate() {
        line(out, indent, if i == 0 { "Env" } else { "" }, env);
    }
    for (i, port) in config.exposed_ports.iter().enumerate() {
        line(out, indent, if i == 0 { "Ports" } else { "" }, port);
    }
    for (i, (key, value)) in config.labels.iter().enumerate() {
        line(
            out,
            indent,
            if i == 0 { "Labels" } else { "" },
            format!("{key}={value}"),
        );
    }
}

fn annotations(out: &mut String, indent: &str, annotations: &BTreeMap<String, String>) {
    for (i, (key, value)) in annotations.iter().enumerate() {
        line(
            out,
            indent,
            if i == 0 { "Annotations" } else { "" },
            format!("{key}={value}"),
        );
    }
}
