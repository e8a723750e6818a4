//! The threads of the load: pushers and deleters, and the ledger of what
//! they leave tagged, which the checks compare with what the registry has.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use berth_core::digest::Digest;
use reqwest::Method;

use super::load::{BASE, Client, Counters, Image, OciError, Pool, Rng, push_image, unexpected};

/// What is tagged: committed pushes, and the tags a pusher or deleter is
/// working on (with the blobs their image names, which no blob deletion
/// may take from the repository meanwhile).
#[derive(Debug, Default)]
pub struct Ledger {
    pub live: BTreeMap<(String, String), Image>,
    busy: BTreeMap<(String, String), BTreeSet<Digest>>,
}

impl Ledger {
    /// Claims `image`'s tag for a push; false when another is at it.
    fn reserve(&mut self, image: &Image) -> bool {
        let key = image.key();
        if self.busy.contains_key(&key) {
            return false;
        }
        self.busy.insert(key, image.blobs());
        true
    }

    /// Takes a tagged image off the ledger for deletion (its tag kept busy
    /// until [`Ledger::release`]); none while `keep` or fewer are tagged.
    fn take(&mut self, rng: &mut Rng, keep: usize) -> Option<Image> {
        let free: Vec<&(String, String)> = self
            .live
            .keys()
            .filter(|k| k.1 != BASE && !self.busy.contains_key(*k))
            .collect();
        if self.live.len() <= keep || free.is_empty() {
            return None;
        }
        let key = free[rng.below(free.len())].clone();
        let image = self.live.remove(&key)?;
        self.busy.insert(key, image.blobs());
        Some(image)
    }

    fn release(&mut self, image: &Image) {
        self.busy.remove(&image.key());
    }

    /// Blobs of `repo` that a tagged image, or one being pushed or deleted, names.
    fn named_in(&self, repo: &str) -> BTreeSet<Digest> {
        let live = self
            .live
            .values()
            .filter(|image| image.repo == repo)
            .flat_map(Image::blobs);
        let busy = self
            .busy
            .iter()
            .filter(|((r, _), _)| r == repo)
            .flat_map(|(_, blobs)| blobs.iter().cloned());
        live.chain(busy).collect()
    }
}

/// What the load threads share.
pub struct Shared {
    pub ledger: Mutex<Ledger>,
    pub counters: Counters,
    pub pool: Pool,
    pub stop: AtomicBool,
    /// The first failures: any stops the load.
    pub failures: Mutex<Vec<String>>,
}

impl Shared {
    pub fn new() -> Self {
        Self {
            ledger: Mutex::default(),
            counters: Counters::default(),
            pool: Pool::new(),
            stop: AtomicBool::new(false),
            failures: Mutex::default(),
        }
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub fn fail(&self, who: &str, failure: String) {
        self.failures
            .lock()
            .unwrap()
            .push(format!("{who}: {failure}"));
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap()
    }
}

/// Pushes one image to `repo:tag` and records it tagged; `Ok(false)` when
/// the tag is busy (nothing pushed).
pub fn push_tagged(
    c: &mut Client,
    shared: &Shared,
    repo: &str,
    tag: &str,
    id: &str,
) -> Result<bool, String> {
    let image = shared.pool.image(repo, tag, id, &mut c.rng);
    if !shared.ledger().reserve(&image) {
        return Ok(false);
    }
    let pushed = push_image(c, &image, &shared.counters);
    let mut ledger = shared.ledger();
    ledger.release(&image);
    pushed?;
    ledger.live.insert(image.key(), image);
    Ok(true)
}

/// Pushes the base image of each repository ([`Pool::base`]).
pub fn push_bases(c: &mut Client, shared: &Shared) -> Result<(), String> {
    for repo in c.repos.clone() {
        let image = shared.pool.base(&repo);
        push_image(c, &image, &shared.counters)?;
        shared.ledger().live.insert(image.key(), image);
    }
    Ok(())
}

/// A pusher: images to its own tags (`p<worker>-<k>`, five per repository,
/// so that tags move) of repositories drawn at random, until stopped.
pub fn pusher(mut c: Client, shared: &Shared, worker: usize) {
    let mut pushes = 0u64;
    while !shared.stopped() {
        let repo = c.repos[c.rng.below(c.repos.len())].clone();
        let tag = format!("p{worker}-{}", c.rng.below(5));
        pushes += 1;
        if let Err(e) = push_tagged(&mut c, shared, &repo, &tag, &format!("p{worker}-{pushes}")) {
            shared.fail(&format!("pusher {worker}"), e);
        }
    }
}

/// A deleter: deletes tags, manifests by digest, and blob links no
/// tagged image of the repository names, until stopped. It leaves `keep`
/// images tagged.
pub fn deleter(mut c: Client, shared: &Shared, worker: usize, keep: usize) {
    while !shared.stopped() {
        std::thread::sleep(Duration::from_millis(20 + c.rng.below(40) as u64));
        let outcome = match c.rng.below(10) {
            0..=3 => delete_image(&mut c, shared, keep, false),
            4..=6 => delete_image(&mut c, shared, keep, true),
            _ => delete_blob(&mut c, shared),
        };
        if let Err(e) = outcome {
            shared.fail(&format!("deleter {worker}"), e);
        }
    }
}

/// Deletes a tagged image of the ledger: its tag, or its root manifest by
/// digest (its tag goes with it; its children and referrer are left to the
/// collector).
fn delete_image(
    c: &mut Client,
    shared: &Shared,
    keep: usize,
    by_digest: bool,
) -> Result<(), String> {
    let Some(image) = shared.ledger().take(&mut c.rng, keep) else {
        return Ok(());
    };
    let reference = if by_digest {
        image.root.digest.to_string()
    } else {
        image.tag.clone()
    };
    let path = format!("/v2/{}/manifests/{reference}", image.repo);
    let outcome = c.send(Method::DELETE, &path, |b| b);
    shared.ledger().release(&image);
    let r = outcome?;
    if r.status() != 202 {
        return Err(unexpected(&format!("DELETE {path}"), r));
    }
    Counters::add(if by_digest {
        &shared.counters.manifest_deletes
    } else {
        &shared.counters.tag_deletes
    });
    Ok(())
}

/// Deletes a blob of the pool from a repository where no image tagged, or
/// being pushed or deleted, names it. The ledger stays locked until the
/// answer: a push that names the blob reserves its tag either before (the
/// blob is not deleted) or after (it uploads the blob again).
fn delete_blob(c: &mut Client, shared: &Shared) -> Result<(), String> {
    let repo = c.repos[c.rng.below(c.repos.len())].clone();
    let ledger = shared.ledger();
    let named = ledger.named_in(&repo);
    let free: Vec<Digest> = shared
        .pool
        .digests()
        .into_iter()
        .filter(|d| !named.contains(d))
        .collect();
    if free.is_empty() {
        return Ok(());
    }
    let digest = &free[c.rng.below(free.len())];
    let path = format!("/v2/{repo}/blobs/{digest}");
    let r = c.send(Method::DELETE, &path, |b| b)?;
    drop(ledger);
    match r.status().as_u16() {
        202 => {
            Counters::add(&shared.counters.blob_deletes);
            Ok(())
        }
        404 => {
            let body = r.text().unwrap_or_default();
            match OciError::of(&body).code.as_str() {
                "BLOB_UNKNOWN" => {
                    Counters::add(&shared.counters.blob_deletes_unknown);
                    Ok(())
                }
                _ => Err(format!("DELETE {path}: unexpected 404: {body}")),
            }
        }
        _ => Err(unexpected(&format!("DELETE {path}"), r)),
    }
}
