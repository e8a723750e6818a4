//! `berth manifest get|put|delete REF`: a manifest's exact bytes, from and to
//! a registry.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};
use berth_client::client::{Manifest, RegistryClient};
use berth_core::{Digest, Platform, Reference, TagOrDigest};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::delete::{DeleteArgs, has_tag};
use super::digest::resolve;
use super::tags::parse_reference;
use super::{Common, Output, block_on, connect, json_text, print_out, write_out};

/// The largest manifest read (registries must accept 4 MiB; most refuse more).
const MAX_MANIFEST: u64 = 4 * 1024 * 1024;

/// Read, write or delete a manifest.
#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Print a manifest's exact bytes (or, with --output json, a summary).
    Get(GetArgs),
    /// Push a manifest from a file or stdin, under a tag or its digest.
    Put(PutArgs),
    /// Delete a manifest (by digest; a tag is resolved first), with its tags.
    #[command(after_help = "\
Examples:
  berth manifest delete registry.example.com/acme/app@sha256:...
  berth manifest delete registry.example.com/acme/app:1.0   # resolves 1.0, deletes its digest

The same as `berth delete`: deleting a manifest (on berth and distribution)
also removes every tag on it; to remove one tag only, use `berth untag`. A REF
with neither tag nor digest is refused rather than read as `latest`.

Where the registry refuses deletion (405 UNSUPPORTED: GHCR, Docker Hub, an
operator's choice), one line says where deletion is done instead.

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
    Delete(DeleteArgs),
}

/// Print a manifest exactly as the registry stores it.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  berth manifest get registry.example.com/acme/app:1.0 > manifest.json
  berth manifest get acme/app:1.0 --platform linux/arm64   # the child of an index
  berth manifest get acme/app@sha256:... --output json
  berth manifest get acme/app:1.0 --accept application/vnd.oci.image.manifest.v1+json

The bytes are printed unchanged (no newline added), so their sha256 is the
manifest's digest. With --output json: {digest, mediaType, size, manifest}.

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct GetArgs {
    /// The manifest, as [host[:port]/]name[:tag][@digest] (tag `latest` when none).
    #[arg(value_name = "REF")]
    reference: String,

    /// Ask for this media type (repeatable; default: OCI and Docker manifests and indexes).
    ///
    /// Sent as the `Accept` header. A registry may convert between formats or
    /// refuse when it holds none of the types asked for.
    #[arg(long, value_name = "TYPE")]
    accept: Vec<String>,

    /// For an index, get the image of this platform: os/arch[/variant].
    #[arg(long, value_name = "OS/ARCH")]
    platform: Option<Platform>,

    /// Output format: the exact bytes, or a JSON object describing them.
    #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
    output: Output,

    #[command(flatten)]
    common: Common,
}

/// Push a manifest's bytes unchanged.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  berth manifest put registry.example.com/acme/app:1.0 manifest.json
  berth manifest get acme/app:1.0 | berth manifest put acme/app:1.0-copy
  berth manifest put acme/app@sha256:... manifest.json   # by digest, no tag
  berth manifest put acme/app:1.0 manifest.json --media-type application/vnd.oci.image.manifest.v1+json

The media type is --media-type, else the manifest's `mediaType` field. Every
blob and child manifest it names must already be in the repository. At most
4 MiB is read. Prints the digest.

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct PutArgs {
    /// Where, as [host[:port]/]name:tag or [host[:port]/]name[:tag]@digest.
    #[arg(value_name = "REF", value_parser = tag_or_digest_given)]
    reference: String,

    /// The manifest file; `-` or none reads stdin.
    #[arg(value_name = "FILE", default_value = "-")]
    file: String,

    /// The manifest's media type (default: its `mediaType` field).
    ///
    /// Sent as `Content-Type`. Needed for a manifest without a `mediaType`
    /// field, such as an OCI manifest that omits it.
    #[arg(long, value_name = "TYPE")]
    media_type: Option<String>,

    /// Output format: the digest alone, or `{"digest": ..., "reference": ...}`.
    #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
    output: Output,

    #[command(flatten)]
    common: Common,
}

/// Runs `berth manifest ...`.
pub fn run(command: ManifestCommand) -> anyhow::Result<()> {
    match command {
        ManifestCommand::Get(args) => get(args),
        ManifestCommand::Put(args) => put(args),
        ManifestCommand::Delete(args) => super::delete::run(args),
    }
}

fn get(args: GetArgs) -> anyhow::Result<()> {
    let reference = parse_reference(&args.reference)?;
    let client = connect(reference.registry(), &args.common)?;
    let accept: Vec<&str> = args.accept.iter().map(String::as_str).collect();
    let manifest = block_on(fetch(&client, &reference, args.platform.as_ref(), &accept))??;
    match args.output {
        Output::Text => write_out(&manifest.bytes),
        Output::Json => {
            let parsed: Value = serde_json::from_slice(&manifest.bytes).with_context(|| {
                format!(
                    "the manifest of {reference} ({}) is not JSON; print its bytes with --output text",
                    manifest.media_type
                )
            })?;
            print_out(&json_text(&json!({
                "digest": manifest.digest.to_string(),
                "mediaType": manifest.media_type,
                "size": manifest.bytes.len(),
                "manifest": parsed,
            })))
        }
    }
}

async fn fetch(
    client: &RegistryClient,
    reference: &Reference,
    platform: Option<&Platform>,
    accept: &[&str],
) -> anyhow::Result<Manifest> {
    let target = match platform {
        Some(platform) => {
            let (chosen, _) = resolve(client, reference, Some(platform), false).await?;
            TagOrDigest::Digest(chosen.digest)
        }
        None => reference.tag_or_digest(),
    };
    client
        .get_manifest(reference.repository(), &target, accept)
        .await
        .with_context(|| format!("cannot get the manifest {reference}"))
}

fn put(args: PutArgs) -> anyhow::Result<()> {
    let reference = parse_reference(&args.reference)?;
    let (bytes, source) = read_manifest(&args.file)?;
    let media_type = match args.media_type {
        Some(media_type) => media_type,
        None => media_type_of(&bytes, &source)?,
    };
    let repo = reference.repository();
    // A tag names where it goes (and a digest beside it must be the bytes');
    // a digest alone puts it by digest, which the client checks.
    let target = match (reference.tag(), reference.digest()) {
        (Some(tag), Some(asked)) => {
            let actual = Digest::from_bytes(asked.algorithm(), &bytes);
            if actual != *asked {
                bail!(
                    "{source} has digest {actual}, not the {asked} given in {reference};                      nothing pushed: check the file, or drop the digest from REF"
                );
            }
            TagOrDigest::Tag(tag.clone())
        }
        _ => reference.tag_or_digest(),
    };
    let client = connect(reference.registry(), &args.common)?;
    let digest = block_on(client.put_manifest(repo, &target, &media_type, bytes.into()))?
        .with_context(|| format!("cannot put the manifest {reference}"))?;
    match args.output {
        Output::Text => print_out(&format!("{digest}\n")),
        Output::Json => {
            let full = reference.clone().with_digest(digest.clone());
            print_out(&json_text(&json!({
                "digest": digest.to_string(),
                "reference": full.to_string(),
            })))
        }
    }
}

/// The manifest's bytes (at most [`MAX_MANIFEST`]) and how to name their source.
fn read_manifest(file: &str) -> anyhow::Result<(Vec<u8>, String)> {
    let (reader, source): (Box<dyn Read>, String) = if file == "-" {
        (
            Box::new(std::io::stdin().lock()),
            "the manifest on stdin".to_owned(),
        )
    } else {
        let path = Path::new(file);
        let opened = std::fs::File::open(path)
            .with_context(|| format!("cannot open the manifest file {}", path.display()))?;
        (Box::new(opened), format!("the manifest {}", path.display()))
    };
    let mut bytes = Vec::new();
    reader
        .take(MAX_MANIFEST + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {source}"))?;
    if bytes.len() as u64 > MAX_MANIFEST {
        bail!(
            "{source} is larger than 4 MiB, the most a registry must accept for a manifest; \
             check that it is a manifest (large content belongs in blobs: `berth blob put`)"
        );
    }
    if bytes.is_empty() {
        bail!("{source} is empty; give a manifest file, or pipe one into stdin");
    }
    Ok((bytes, source))
}

/// The `mediaType` field of a JSON manifest.
fn media_type_of(bytes: &[u8], source: &str) -> anyhow::Result<String> {
    let json: Value = serde_json::from_slice(bytes).with_context(|| {
        format!("{source} is not JSON, so its media type is unknown; pass --media-type TYPE")
    })?;
    match json.get("mediaType").and_then(Value::as_str) {
        Some(media_type) if !media_type.is_empty() => Ok(media_type.to_owned()),
        _ => bail!(
            "{source} has no `mediaType` field; pass --media-type TYPE (such as \
             application/vnd.oci.image.manifest.v1+json)"
        ),
    }
}

/// A REF naming a tag or a digest, not a bare repository.
fn tag_or_digest_given(input: &str) -> Result<String, String> {
    if has_tag(input) || input.contains('@') {
        Ok(input.to_owned())
    } else {
        Err(
            "give where to put the manifest as name:tag or name@digest (a bare name is not read \
             as `latest`)"
                .to_owned(),
        )
    }
}
