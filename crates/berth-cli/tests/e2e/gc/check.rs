//! What the collector tests check: every tag pulls completely (manifest,
//! children, referrers, every blob re-hashed), the tags are the ledger's,
//! and the store holds exactly the blobs the manifests still there name.

use std::collections::{BTreeMap, BTreeSet};

use berth_core::digest::Digest;
use reqwest::Method;
use serde_json::Value;

use super::load::{Client, INDEX, MANIFEST, unexpected};
use super::workers::Ledger;

/// What a pull of every tag found.
#[derive(Debug, Default)]
pub struct Present {
    /// (repository, tag) -> the digest it points at.
    pub tags: BTreeMap<(String, String), Digest>,
    /// (repository, manifest) -> its referrers.
    pub referrers: BTreeMap<(String, Digest), BTreeSet<Digest>>,
    /// Every blob a manifest there names, with its size.
    pub blobs: BTreeMap<Digest, u64>,
}

impl Present {
    pub fn bytes(&self) -> u64 {
        self.blobs.values().sum()
    }
}

/// Lists every repository and tag through the API and pulls each tag
/// completely: its manifest, an index's children, every manifest's
/// referrers, and every blob, each re-hashed against its digest.
pub fn pull_everything(c: &mut Client) -> Result<Present, String> {
    let mut present = Present::default();
    let catalog = get_json(c, "/v2/_catalog?n=1000")?;
    for repo in catalog["repositories"]
        .as_array()
        .ok_or("no repositories")?
    {
        let repo = repo.as_str().ok_or("a repository name")?;
        let tags = get_json(c, &format!("/v2/{repo}/tags/list?n=1000"))?;
        for tag in tags["tags"].as_array().into_iter().flatten() {
            let tag = tag.as_str().ok_or("a tag")?;
            let digest = pull_manifest(c, repo, tag, None, &mut present)
                .map_err(|e| format!("{repo}:{tag} does not pull: {e}"))?;
            present
                .tags
                .insert((repo.to_owned(), tag.to_owned()), digest);
        }
    }
    Ok(present)
}

fn get_json(c: &mut Client, path: &str) -> Result<Value, String> {
    let r = c.send(Method::GET, path, |b| b)?;
    if r.status() != 200 {
        return Err(unexpected(&format!("GET {path}"), r));
    }
    r.json().map_err(|e| format!("GET {path}: {e}"))
}

/// Pulls `repo`'s manifest `reference` and all it names (its size checked
/// against `size` when a descriptor gave one); its digest.
fn pull_manifest(
    c: &mut Client,
    repo: &str,
    reference: &str,
    size: Option<u64>,
    present: &mut Present,
) -> Result<Digest, String> {
    let path = format!("/v2/{repo}/manifests/{reference}");
    let r = c.send(Method::GET, &path, |b| {
        b.header("accept", format!("{MANIFEST}, {INDEX}"))
    })?;
    if r.status() != 200 {
        return Err(unexpected(&format!("GET {path}"), r));
    }
    let bytes = r.bytes().map_err(|e| format!("GET {path}: {e}"))?;
    let digest = Digest::sha256_of(&bytes);
    if reference.contains(':') && digest.to_string() != reference {
        return Err(format!("GET {path}: the content's digest is {digest}"));
    }
    if size.is_some_and(|s| s != bytes.len() as u64) {
        return Err(format!("GET {path}: {} bytes, not {size:?}", bytes.len()));
    }
    let doc: Value = serde_json::from_slice(&bytes).map_err(|e| format!("{path}: {e}"))?;
    for child in doc["manifests"].as_array().into_iter().flatten() {
        let (child, size) = descriptor(child)?;
        pull_manifest(c, repo, &child.to_string(), Some(size), present)?;
    }
    let blobs = doc
        .get("config")
        .into_iter()
        .chain(doc["layers"].as_array().into_iter().flatten());
    for blob in blobs {
        let (blob, size) = descriptor(blob)?;
        pull_blob(c, repo, &blob, size)?;
        present.blobs.insert(blob, size);
    }
    let listing = get_json(c, &format!("/v2/{repo}/referrers/{digest}"))?;
    let mut referrers = BTreeSet::new();
    for referrer in listing["manifests"].as_array().into_iter().flatten() {
        let (referrer, size) = descriptor(referrer)?;
        pull_manifest(c, repo, &referrer.to_string(), Some(size), present)?;
        referrers.insert(referrer);
    }
    if !referrers.is_empty() {
        present
            .referrers
            .insert((repo.to_owned(), digest.clone()), referrers);
    }
    Ok(digest)
}

fn descriptor(value: &Value) -> Result<(Digest, u64), String> {
    let digest = value["digest"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| format!("a descriptor without a digest: {value}"))?;
    let size = value["size"]
        .as_u64()
        .ok_or_else(|| format!("a descriptor without a size: {value}"))?;
    Ok((digest, size))
}

fn pull_blob(c: &mut Client, repo: &str, digest: &Digest, size: u64) -> Result<(), String> {
    let path = format!("/v2/{repo}/blobs/{digest}");
    let r = c.send(Method::GET, &path, |b| b)?;
    if r.status() != 200 {
        return Err(unexpected(&format!("GET {path}"), r));
    }
    let bytes = r.bytes().map_err(|e| format!("GET {path}: {e}"))?;
    if &Digest::sha256_of(&bytes) != digest || bytes.len() as u64 != size {
        return Err(format!(
            "GET {path}: {} bytes that hash to {}",
            bytes.len(),
            Digest::sha256_of(&bytes)
        ));
    }
    Ok(())
}

/// The tags there are exactly the ledger's, each at its digest, and each
/// image pushed with a referrer has it (and no other).
pub fn matches_ledger(ledger: &Ledger, present: &Present) -> Result<(), String> {
    let expected: BTreeMap<(String, String), Digest> = ledger
        .live
        .iter()
        .map(|(key, image)| (key.clone(), image.root.digest.clone()))
        .collect();
    if expected != present.tags {
        let lost: Vec<_> = expected
            .iter()
            .filter(|(k, d)| present.tags.get(*k) != Some(*d))
            .collect();
        let unknown: Vec<_> = present
            .tags
            .iter()
            .filter(|(k, d)| expected.get(*k) != Some(*d))
            .collect();
        return Err(format!(
            "the tags are not the ledger's: missing or moved {lost:?}; not in the ledger {unknown:?}"
        ));
    }
    for image in ledger.live.values() {
        let key = (image.repo.clone(), image.root.digest.clone());
        let found = present.referrers.get(&key).cloned().unwrap_or_default();
        let pushed: BTreeSet<Digest> = image.referrer.iter().map(|r| r.digest.clone()).collect();
        if found != pushed {
            return Err(format!(
                "{}:{} has referrers {found:?}, pushed {pushed:?}",
                image.repo, image.tag
            ));
        }
    }
    Ok(())
}

/// How the store and the manifests there differ: blobs named but not
/// stored (lost), and stored but named by nothing (garbage left).
#[derive(Debug, Default)]
pub struct Difference {
    pub lost: Vec<Digest>,
    pub left: Vec<Digest>,
}

impl Difference {
    pub fn of(present: &Present, stored: &BTreeMap<Digest, u64>) -> Self {
        Self {
            lost: present
                .blobs
                .keys()
                .filter(|d| !stored.contains_key(*d))
                .cloned()
                .collect(),
            left: stored
                .keys()
                .filter(|d| !present.blobs.contains_key(*d))
                .cloned()
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lost.is_empty() && self.left.is_empty()
    }
}
