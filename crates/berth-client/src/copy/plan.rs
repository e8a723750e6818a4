//! The plan of a copy: which manifests and blobs, in which order.

use std::collections::HashSet;

use berth_core::Digest;
use bytes::Bytes;

use super::site;
use super::{CopyError, CopyOptions, Endpoint};
use crate::document::{Descriptor, Document};

/// The most manifests one copy follows.
const MAX_MANIFESTS: usize = 10_000;

/// What a manifest is to the copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The manifest the source names; written last, under the destination's
    /// name.
    Root,
    /// A manifest of an index (written by digest).
    Child,
    /// A manifest whose `subject` is a copied one (written by digest; in a
    /// layout, listed in `index.json` without a name).
    Referrer,
}

/// A manifest to copy.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its exact bytes.
    pub bytes: Bytes,
    /// What it is to the copy.
    pub role: Role,
}

/// Manifests in writing order (referrers, then children before parents, the
/// root last) and the distinct blobs they need.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Manifests in writing order; the root is the last.
    pub nodes: Vec<Node>,
    /// Every blob, once, in the order first met.
    pub blobs: Vec<Descriptor>,
    /// How many of the nodes are referrers.
    pub referrers: usize,
    /// The root (also the last of `nodes`).
    pub root: Node,
}

impl Plan {
    /// Reads the source and plans the copy.
    pub async fn build(source: &Endpoint, options: &CopyOptions) -> Result<Self, CopyError> {
        let (mut root, root_doc) = site::root_manifest(source).await?;
        let mut root_doc = root_doc;
        if let Some(platform) = &options.platform
            && root_doc.is_index(&root.media_type)
        {
            let Some(child) = root_doc
                .manifests
                .iter()
                .find(|d| d.is_for(platform))
                .cloned()
            else {
                let available: Vec<String> = root_doc
                    .manifests
                    .iter()
                    .filter_map(Descriptor::platform_name)
                    .collect();
                return Err(CopyError::NoPlatform {
                    source_ref: source.to_string(),
                    platform: platform.clone(),
                    available: if available.is_empty() {
                        "no platform named".to_owned()
                    } else {
                        available.join(", ")
                    },
                });
            };
            let (node, doc) = site::manifest(source, &child).await?;
            root = node;
            root_doc = doc;
        }
        root.role = Role::Root;
        let root_copy = root.clone();

        let mut walk = Walk::default();
        let mut main = Vec::new();
        walk.tree(source, root, root_doc, &mut main).await?;
        let mut referrers = Vec::new();
        if options.referrers {
            let mut queue: Vec<Digest> = main.iter().map(|n: &Node| n.digest.clone()).collect();
            while let Some(subject) = queue.pop() {
                for descriptor in site::referrers(source, &subject).await? {
                    if walk.seen.contains(&descriptor.digest) {
                        continue;
                    }
                    let (mut node, doc) = site::manifest(source, &descriptor).await?;
                    node.role = Role::Referrer;
                    let before = referrers.len();
                    walk.tree(source, node, doc, &mut referrers).await?;
                    queue.extend(referrers[before..].iter().map(|n| n.digest.clone()));
                }
            }
        }
        let referrer_count = referrers.len();
        let mut nodes = referrers;
        nodes.extend(main);
        Ok(Self {
            nodes,
            blobs: walk.blobs,
            referrers: referrer_count,
            root: root_copy,
        })
    }
}

#[derive(Default)]
struct Walk {
    seen: HashSet<Digest>,
    blob_seen: HashSet<Digest>,
    blobs: Vec<Descriptor>,
}

impl Walk {
    /// Adds `node`'s tree to `out`, children before parents.
    async fn tree(
        &mut self,
        source: &Endpoint,
        node: Node,
        doc: Document,
        out: &mut Vec<Node>,
    ) -> Result<(), CopyError> {
        // Depth-first without recursion: (node, its document, children done).
        let mut stack = vec![(node, doc, false)];
        while let Some((node, doc, expanded)) = stack.pop() {
            if expanded {
                out.push(node);
                continue;
            }
            if !self.seen.insert(node.digest.clone()) {
                continue;
            }
            if self.seen.len() > MAX_MANIFESTS {
                return Err(CopyError::TooManyManifests {
                    source_ref: source.to_string(),
                    max: MAX_MANIFESTS,
                });
            }
            for blob in doc.blobs() {
                if self.blob_seen.insert(blob.digest.clone()) {
                    self.blobs.push(blob.clone());
                }
            }
            let children = doc.manifests.clone();
            stack.push((node, doc, true));
            for child in children.iter().rev() {
                if self.seen.contains(&child.digest) {
                    continue;
                }
                let (mut child_node, child_doc) = site::manifest(source, child).await?;
                child_node.role = Role::Child;
                stack.push((child_node, child_doc, false));
            }
        }
        Ok(())
    }
}
