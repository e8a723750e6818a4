//! `berth digest REF`: the manifest digest of an image (or its config's).

use anyhow::{Context, bail};
use berth_client::client::RegistryClient;
use berth_client::document::{Descriptor, Document};
use berth_core::media_type::{DOCKER_MANIFEST_LIST, OCI_IMAGE_INDEX};
use berth_core::{Digest, Platform, Reference, TagOrDigest};
use clap::Args;
use serde_json::json;

use super::tags::parse_reference;
use super::{Common, Output, block_on, connect, json_text, print_out};

/// Print the digest of an image's manifest (HEAD, no download).
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  berth digest registry.example.com/acme/app:1.0
  berth digest alpine:3.20 --platform linux/arm64     # the child of the index
  berth digest alpine:3.20 --platform linux/amd64 --config
  berth digest acme/app:1.0 --full-ref                # acme/app:1.0@sha256:...

For a multi-platform image (an index) the index's digest is printed unless
--platform picks one of its images.

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct DigestArgs {
    /// The image, as [host[:port]/]name[:tag][@digest] (tag `latest` when none).
    #[arg(value_name = "REF")]
    reference: String,

    /// For an index, the image of this platform: os/arch[/variant].
    #[arg(long, value_name = "OS/ARCH")]
    platform: Option<Platform>,

    /// Print the digest of the image's config instead (GETs the manifest).
    #[arg(long, conflicts_with = "full_ref")]
    config: bool,

    /// Print the full reference, name:tag@digest.
    #[arg(long)]
    full_ref: bool,

    /// Output format: the digest alone, or a JSON object with media type and size.
    #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
    output: Output,

    #[command(flatten)]
    common: Common,
}

/// The manifest chosen, and what is known of it.
pub(crate) struct Chosen {
    /// Its digest.
    pub(crate) digest: Digest,
    media_type: String,
    size: u64,
    platform: Option<String>,
}

/// Runs `berth digest`.
pub fn run(args: DigestArgs) -> anyhow::Result<()> {
    let reference = parse_reference(&args.reference)?;
    let client = connect(reference.registry(), &args.common)?;
    let (chosen, config) = block_on(resolve(
        &client,
        &reference,
        args.platform.as_ref(),
        args.config,
    ))??;
    let full = reference
        .clone()
        .with_digest(chosen.digest.clone())
        .to_string();
    match args.output {
        Output::Json => {
            let mut value = json!({
                "reference": full,
                "digest": chosen.digest.to_string(),
                "mediaType": chosen.media_type,
                "size": chosen.size,
            });
            if let Some(platform) = chosen.platform {
                value["platform"] = json!(platform);
            }
            if let Some(config) = config {
                value["config"] = json!(config.to_string());
            }
            print_out(&json_text(&value))
        }
        Output::Text => match config {
            Some(config) => print_out(&format!("{config}\n")),
            None if args.full_ref => print_out(&format!("{full}\n")),
            None => print_out(&format!("{}\n", chosen.digest)),
        },
    }
}

/// The manifest `reference` names, or for an index the child of `platform`
/// (also used by `berth manifest get --platform`); with `want_config`, the
/// digest of its config too.
pub(crate) async fn resolve(
    client: &RegistryClient,
    reference: &Reference,
    platform: Option<&Platform>,
    want_config: bool,
) -> anyhow::Result<(Chosen, Option<Digest>)> {
    let repo = reference.repository();
    let target = reference.tag_or_digest();
    let head = client
        .head_manifest(repo, &target)
        .await
        .with_context(|| format!("cannot find {reference}"))?;
    let is_index = [OCI_IMAGE_INDEX, DOCKER_MANIFEST_LIST].contains(&media_type(&head.media_type));
    let mut chosen = Chosen {
        digest: head.digest,
        media_type: head.media_type,
        size: head.size,
        platform: None,
    };
    if is_index && (platform.is_some() || want_config) {
        let index = client
            .get_manifest(repo, &TagOrDigest::Digest(chosen.digest.clone()), &[])
            .await
            .with_context(|| format!("cannot read the index of {reference}"))?;
        let index = Document::parse(&index.bytes, &format!("the index of {reference}"))?;
        let names = || {
            let all: Vec<String> = index
                .manifests
                .iter()
                .filter_map(Descriptor::platform_name)
                .collect();
            all.join(", ")
        };
        let Some(platform) = platform else {
            bail!(
                "{reference} is a multi-platform index ({}); choose one with --platform",
                names()
            );
        };
        let Some(child) = index.manifests.iter().find(|d| d.is_for(platform)) else {
            bail!(
                "{reference} has no image for {platform}; it has {}",
                names()
            );
        };
        chosen = Chosen {
            digest: child.digest.clone(),
            media_type: child.media_type.clone(),
            size: child.size,
            platform: child.platform_name(),
        };
    } else if platform.is_some() && !is_index {
        eprintln!("note: {reference} is a single-platform image; --platform is not checked");
    }
    if !want_config {
        return Ok((chosen, None));
    }
    let manifest = client
        .get_manifest(repo, &TagOrDigest::Digest(chosen.digest.clone()), &[])
        .await
        .with_context(|| format!("cannot read the manifest of {reference}"))?;
    let config = Document::parse(&manifest.bytes, &format!("the manifest of {reference}"))?
        .config
        .with_context(|| format!("the manifest of {reference} names no config"))?
        .digest;
    Ok((chosen, Some(config)))
}

/// The media type without parameters.
fn media_type(value: &str) -> &str {
    value.split(';').next().unwrap_or_default().trim()
}
