//! The manifest page (`/ui/manifest/{name}@{digest}`): media type, size,
//! tags; an image's configuration (created, entrypoint, environment without
//! values that look like secrets, labels) and layers; an index's platforms
//! with links to each; annotations; the referrers grouped by artifact type.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use berth_core::digest::Digest;
use berth_core::reference::TagOrDigest;
use futures_util::StreamExt;
use serde_json::Value;

use super::repository::visible;
use super::{error_page, missing, render};
use crate::Registry;
use crate::http::router::AppState;
use crate::meta::{MetaError, browse_sql};
use crate::ui::session::Visitor;
use crate::ui::view::{self, Chrome};
use berth_core::name::RepositoryName;

/// The platforms of an index whose images are sized (each one manifest read).
pub const MAX_PLATFORMS: usize = 64;

/// The largest image configuration shown (bigger ones are named, not read).
pub const MAX_CONFIG_BYTES: u64 = 256 * 1024;

struct Descriptor {
    digest: String,
    short_digest: String,
    media_type: String,
    size: String,
}

struct PlatformRow {
    platform: String,
    digest: String,
    short_digest: String,
    size: String,
}

struct Config {
    created: String,
    platform: String,
    entrypoint: String,
    cmd: String,
    user: String,
    workdir: String,
    env: Vec<String>,
    labels: Vec<(String, String)>,
}

struct ReferrerGroup {
    label: &'static str,
    artifact_type: String,
    items: Vec<Descriptor>,
}

#[derive(Template)]
#[template(path = "manifest.html")]
struct ManifestPage {
    chrome: Chrome,
    name: String,
    digest: String,
    media_type: String,
    artifact_type: Option<String>,
    manifest_size: String,
    total_size: String,
    tags: Vec<String>,
    subject: Option<String>,
    pull: String,
    platforms: Vec<PlatformRow>,
    config: Option<Config>,
    config_note: Option<String>,
    layers: Vec<Descriptor>,
    annotations: Vec<(String, String)>,
    referrers: Vec<ReferrerGroup>,
}

/// `GET /ui/manifest/{name}@{digest}`.
pub async fn get(
    State(app): State<AppState>,
    visitor: Visitor,
    Path(reference): Path<String>,
) -> Response {
    let r = &app.registry;
    let Some((raw_name, raw_digest)) = reference.rsplit_once('@') else {
        return missing(&visitor, "manifest");
    };
    let Ok(digest) = Digest::parse(raw_digest) else {
        return missing(&visitor, "manifest");
    };
    let (name, overview) = match visible(r, &visitor, raw_name).await {
        Ok(Some(found)) => found,
        Ok(None) => return missing(&visitor, "manifest"),
        Err(page) => return page,
    };
    let unavailable = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "manifest page: cannot read the manifest");
        error_page(
            &visitor,
            StatusCode::SERVICE_UNAVAILABLE,
            "Database unavailable",
            "The registry's database did not answer; try again shortly.",
        )
    };
    let manifest = match r
        .meta
        .get_manifest(&name, &TagOrDigest::Digest(digest.clone()))
        .await
    {
        Ok(Some(manifest)) => manifest,
        Ok(None) => return missing(&visitor, "manifest"),
        Err(e) => return unavailable(&e),
    };
    let (tags, referrers) = match (
        browse_sql::tags_of(&r.db, overview.id, digest.to_string().as_str()).await,
        r.meta.referrers(&name, &digest, None).await,
    ) {
        (Ok(tags), Ok(referrers)) => (tags, referrers),
        (Err(e), _) => return unavailable(&e),
        (_, Err(e)) => return unavailable(&e),
    };
    let value: Value = serde_json::from_slice(&manifest.content).unwrap_or(Value::Null);
    let layers: Vec<Descriptor> = value["layers"]
        .as_array()
        .or_else(|| value["blobs"].as_array())
        .into_iter()
        .flatten()
        .map(descriptor)
        .collect();
    // An index's platforms, each with the size of its image (its own
    // manifest's config and layers), read for the first MAX_PLATFORMS.
    let mut platforms: Vec<PlatformRow> = Vec::new();
    let mut children_bytes: i64 = 0;
    for child in value["manifests"].as_array().into_iter().flatten() {
        let d = descriptor(child);
        let image_bytes = match Digest::parse(&d.digest) {
            Ok(digest) if platforms.len() < MAX_PLATFORMS => {
                match r
                    .meta
                    .get_manifest(&name, &TagOrDigest::Digest(digest))
                    .await
                {
                    Ok(Some(manifest)) => serde_json::from_slice::<Value>(&manifest.content)
                        .ok()
                        .map(|v| image_bytes(&v)),
                    Ok(None) => None,
                    Err(e) => return unavailable(&e),
                }
            }
            _ => None,
        };
        children_bytes += image_bytes.unwrap_or(0);
        platforms.push(PlatformRow {
            platform: platform(&child["platform"]).unwrap_or_else(|| "(none)".to_owned()),
            digest: d.digest,
            short_digest: d.short_digest,
            size: image_bytes.map(view::bytes).unwrap_or_default(),
        });
    }
    let layer_bytes = image_bytes(&value) + children_bytes;
    let (config, config_note) = if is_image_manifest(&manifest.media_type) {
        match image_config(r, &name, &value["config"]).await {
            Ok(shown) => shown,
            Err(e) => return unavailable(&e),
        }
    } else {
        (None, None)
    };
    let host = view::registry_host(&r.config.public_url);
    let page = ManifestPage {
        chrome: Chrome::new(
            &visitor,
            format!("{name}@{}", view::short_digest(digest.to_string().as_str())),
        ),
        pull: format!("docker pull {host}/{name}@{digest}"),
        media_type: manifest.media_type.clone(),
        artifact_type: value["artifactType"]
            .as_str()
            .or_else(|| {
                value["config"]["mediaType"]
                    .as_str()
                    .filter(|t| !is_image_config(t))
            })
            .map(str::to_owned),
        manifest_size: view::bytes(manifest.content.len() as i64),
        total_size: if layer_bytes > 0 {
            view::bytes(layer_bytes)
        } else {
            String::new()
        },
        tags,
        subject: value["subject"]["digest"].as_str().map(str::to_owned),
        platforms,
        config,
        config_note,
        layers,
        annotations: string_map(&value["annotations"]),
        referrers: group_referrers(referrers),
        name: name.as_str().to_owned(),
        digest: digest.to_string().as_str().to_owned(),
    };
    render(&visitor, StatusCode::OK, &page)
}

/// The bytes of the blobs an image manifest names (config and layers).
fn image_bytes(manifest: &Value) -> i64 {
    manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(std::iter::once(&manifest["config"]))
        .filter_map(|d| d["size"].as_i64())
        .sum()
}

fn descriptor(value: &Value) -> Descriptor {
    let digest = value["digest"].as_str().unwrap_or("").to_owned();
    Descriptor {
        short_digest: view::short_digest(&digest),
        digest,
        media_type: value["mediaType"].as_str().unwrap_or("").to_owned(),
        size: value["size"].as_i64().map(view::bytes).unwrap_or_default(),
    }
}

/// `os/architecture[/variant]` of a platform object.
pub(super) fn platform(value: &Value) -> Option<String> {
    let os = value["os"].as_str()?;
    let architecture = value["architecture"].as_str()?;
    Some(match value["variant"].as_str() {
        Some(variant) => format!("{os}/{architecture}/{variant}"),
        None => format!("{os}/{architecture}"),
    })
}

/// Whether a manifest is an image manifest (whose `config` is its image's
/// configuration; an index or list has none).
fn is_image_manifest(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/vnd.oci.image.manifest.v1+json"
            | "application/vnd.docker.distribution.manifest.v2+json"
    )
}

fn is_image_config(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/vnd.oci.image.config.v1+json"
            | "application/vnd.docker.container.image.v1+json"
    )
}

/// A JSON object of strings as sorted pairs (other values are left out).
fn string_map(value: &Value) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
        .collect();
    pairs.sort();
    pairs
}

/// The image configuration an image manifest's `config` names, read from
/// the blob store when it is an image configuration linked in this
/// repository (as a blob `GET` would ask: a manifest cannot show a blob of
/// another repository by naming its digest) of at most
/// [`MAX_CONFIG_BYTES`]; else a note saying why it is not shown (or nothing
/// for an artifact's config).
async fn image_config(
    r: &Registry,
    name: &RepositoryName,
    descriptor: &Value,
) -> Result<(Option<Config>, Option<String>), MetaError> {
    let (Some(media_type), Some(raw_digest)) = (
        descriptor["mediaType"].as_str(),
        descriptor["digest"].as_str(),
    ) else {
        return Ok((None, None));
    };
    if !is_image_config(media_type) {
        return Ok((None, None));
    }
    let Ok(digest) = Digest::parse(raw_digest) else {
        return Ok((None, None));
    };
    if r.meta.linked_blob(name, &digest).await?.is_none() {
        return Ok((
            None,
            Some("The configuration is not in this repository.".to_owned()),
        ));
    }
    let bytes = match read_small_blob(r, &digest).await {
        Ok(bytes) => bytes,
        Err(why) => return Ok((None, Some(why))),
    };
    let Ok(value) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok((None, Some("The configuration is not JSON.".to_owned())));
    };
    let config = &value["config"];
    let words = |v: &Value| -> String {
        v.as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    let env = config["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(shown_env)
        .collect();
    let platform = match (value["os"].as_str(), value["architecture"].as_str()) {
        (Some(os), Some(arch)) => match value["variant"].as_str() {
            Some(variant) => format!("{os}/{arch}/{variant}"),
            None => format!("{os}/{arch}"),
        },
        _ => String::new(),
    };
    Ok((
        Some(Config {
            created: value["created"].as_str().unwrap_or("").to_owned(),
            platform,
            entrypoint: words(&config["Entrypoint"]),
            cmd: words(&config["Cmd"]),
            user: config["User"].as_str().unwrap_or("").to_owned(),
            workdir: config["WorkingDir"].as_str().unwrap_or("").to_owned(),
            env,
            labels: string_map(&config["Labels"]),
        }),
        None,
    ))
}

async fn read_small_blob(r: &Registry, digest: &Digest) -> Result<Vec<u8>, String> {
    let unreadable = |e: &dyn std::fmt::Display| {
        tracing::warn!(error = %e, %digest, "manifest page: cannot read an image configuration");
        "The configuration blob could not be read; the cause is in the registry's log.".to_owned()
    };
    let mut reader = r
        .blobs
        .open(digest, None)
        .await
        .map_err(|e| unreadable(&e))?;
    if reader.len > MAX_CONFIG_BYTES {
        return Err(format!(
            "The configuration is {} , more than this page shows ({}).",
            view::bytes(reader.len as i64),
            view::bytes(MAX_CONFIG_BYTES as i64)
        ));
    }
    let mut bytes = Vec::with_capacity(reader.len as usize);
    while let Some(chunk) = reader.stream.next().await {
        let chunk = chunk.map_err(|e| unreadable(&e))?;
        if (bytes.len() + chunk.len()) as u64 > MAX_CONFIG_BYTES {
            return Err("The configuration is larger than its descriptor says.".to_owned());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// An environment variable as the page shows it: `NAME=value`, or
/// `NAME=(hidden)` when the name or the value looks like a secret.
fn shown_env(var: &str) -> String {
    match var.split_once('=') {
        Some((name, value)) if looks_secret(name, value) => format!("{name}=(hidden)"),
        _ => var.to_owned(),
    }
}

/// Whether an environment variable probably holds a secret: a name that
/// says so, a URL with a password, a known token prefix, or a long random
/// looking value.
fn looks_secret(name: &str, value: &str) -> bool {
    const NAMES: [&str; 10] = [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "KEY",
        "CREDENTIAL",
        "AUTH",
        "PRIVATE",
        "SESSION",
        "COOKIE",
    ];
    const PREFIXES: [&str; 9] = [
        "ghp_",
        "gho_",
        "ghs_",
        "github_pat_",
        "glpat-",
        "AKIA",
        "xox",
        "sk-",
        "berth_pat_",
    ];
    if value.is_empty() {
        return false;
    }
    let upper = name.to_ascii_uppercase();
    if NAMES.iter().any(|n| upper.contains(n)) {
        return true;
    }
    if let Some((_, rest)) = value.split_once("://")
        && rest
            .split(['/', '?', '#'])
            .next()
            .is_some_and(|authority| authority.contains(':') && authority.contains('@'))
    {
        return true;
    }
    if PREFIXES.iter().any(|p| value.starts_with(p)) {
        return true;
    }
    // Long and random looking: letters and digits mixed, no spaces or paths.
    value.len() >= 24
        && !value.contains(['/', ' ', ':', ','])
        && value.bytes().any(|b| b.is_ascii_digit())
        && value.bytes().any(|b| b.is_ascii_alphabetic())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'=' | b'.'))
}

/// Referrers grouped by artifact type, signatures first, then SBOMs,
/// attestations, and the rest.
fn group_referrers(referrers: Vec<crate::meta::Referrer>) -> Vec<ReferrerGroup> {
    let mut groups: Vec<ReferrerGroup> = Vec::new();
    for referrer in referrers {
        let artifact_type = referrer
            .artifact_type
            .clone()
            .unwrap_or_else(|| referrer.media_type.clone());
        let item = Descriptor {
            short_digest: view::short_digest(referrer.digest.to_string().as_str()),
            digest: referrer.digest.to_string().as_str().to_owned(),
            media_type: referrer.media_type.clone(),
            size: view::bytes(referrer.size as i64),
        };
        match groups.iter_mut().find(|g| g.artifact_type == artifact_type) {
            Some(group) => group.items.push(item),
            None => groups.push(ReferrerGroup {
                label: artifact_label(&artifact_type),
                artifact_type,
                items: vec![item],
            }),
        }
    }
    groups.sort_by_key(|g| (label_rank(g.label), g.artifact_type.clone()));
    groups
}

/// What an artifact type is, in words.
fn artifact_label(artifact_type: &str) -> &'static str {
    let t = artifact_type.to_ascii_lowercase();
    if t.contains("signature") || t.contains("cosign") || t.contains(".sig") {
        "Signatures"
    } else if t.contains("spdx")
        || t.contains("cyclonedx")
        || t.contains("sbom")
        || t.contains("syft")
    {
        "SBOMs"
    } else if t.contains("in-toto")
        || t.contains("attestation")
        || t.contains("provenance")
        || t.contains("sigstore.bundle")
        || t.contains("vex")
    {
        "Attestations"
    } else {
        "Other artifacts"
    }
}

fn label_rank(label: &str) -> u8 {
    match label {
        "Signatures" => 0,
        "SBOMs" => 1,
        "Attestations" => 2,
        _ => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_the_environment_are_hidden() {
        for var in [
            "DB_PASSWORD=hunter2",
            "API_TOKEN=abc",
            "AWS_SECRET_ACCESS_KEY=x",
            "DATABASE_URL=postgres://app:s3cret@db/app",
            "X=ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "RANDOM=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA",
        ] {
            assert!(shown_env(var).ends_with("=(hidden)"), "{var}");
        }
        for var in [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin",
            "LANG=C.UTF-8",
            "PYTHON_VERSION=3.12.7",
            "HOME=/root",
            "KEY_FILE_DIR=",
            "URL=https://example.com/path",
            "NGINX_VERSION=1.27.3",
        ] {
            assert_eq!(shown_env(var), var, "{var}");
        }
    }

    #[test]
    fn referrers_are_named_by_kind() {
        assert_eq!(
            artifact_label("application/vnd.dev.cosign.artifact.sig.v1+json"),
            "Signatures"
        );
        assert_eq!(
            artifact_label("application/vnd.cncf.notary.signature"),
            "Signatures"
        );
        assert_eq!(artifact_label("application/spdx+json"), "SBOMs");
        assert_eq!(artifact_label("application/vnd.cyclonedx+json"), "SBOMs");
        assert_eq!(
            artifact_label("application/vnd.in-toto+json"),
            "Attestations"
        );
        assert_eq!(
            artifact_label("application/vnd.example.thing"),
            "Other artifacts"
        );
    }
}
