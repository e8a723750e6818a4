//! Revocation at the gate: a change that takes rights away reaches the tokens
//! already issued within [`REFRESH_INTERVAL`], not at their expiry.
//!
//! The gate admits a verified token on its claims alone, without asking the
//! database (it serves tens of thousands of requests a second). Without more,
//! a token issued before a change (a revoked personal access token, a member
//! removed, a repository made private, a changed password, a deleted user)
//! would keep working for its lifetime plus the verification leeway.
//!
//! # Records and generations
//!
//! Every such change writes a [`Revocation`] into the metadata database in the
//! same transaction as the change itself:
//!
//! | change | record ([`RevocationTarget`]) | refuses |
//! |---|---|---|
//! | user or robot deleted; membership removed or lowered | `Subject(name)` | every token whose `sub` is `name` |
//! | password changed | `Logins(name)` | tokens of `name` from a password or refresh token (no `berth_pat`) |
//! | personal access token revoked | `Pat(id)` | tokens whose `berth_pat` is `id` |
//! | trust rule removed (or its namespace deleted) | `Trust(id)` | tokens whose `berth_trust` names `id` |
//! | repository made private, or deleted | `Repository(name)` | requests on `name` |
//!
//! Records are numbered in commit order, and the number of the last record a
//! process has loaded is its *generation*. The token service reads the
//! generation *before* it reads anything a grant depends on (credentials,
//! memberships, visibility) and writes it into the token as the claim
//! `berth_gen`. A token of generation `g` was therefore granted from a state
//! that includes every record numbered up to `g`; a record numbered above `g`
//! may postdate it. The gate refuses a token when a record that applies to it
//! is numbered above the token's generation: 401 `invalid_token`, so the
//! client asks again and gets what policy grants now. A token issued after
//! the change carries the record's number and works at once. No clocks are
//! compared, so the second granularity of `iat` plays no part. (CNCF
//! distribution ignores the unknown claim; a token without it counts as
//! generation 0.)
//!
//! # The view
//!
//! The gate checks an in-memory [`View`]: no lookup at all while no record is
//! kept, otherwise a hash lookup per kind of record that exists. The view is
//! reloaded from the database
//! - every [`REFRESH_INTERVAL`] by [`run_refresh`] (records written by another
//!   process sharing the database), and
//! - at once after this process wrote a record: the store counts its writes,
//!   and the next request that sees the count move reloads the view before it
//!   is checked or issued a token (the admin API reloads before it answers).
//!
//! Before a reload publishes new records it drops what the process remembers
//! that they may have made stale (checked credentials, cached repository
//! facts), so no token of the new generation is granted from an old answer.
//!
//! Records are kept until every token they could affect has expired
//! ([`keep_secs`]): a restart loads them again and resurrects nothing.
//!
//! The bound: a revocation takes effect at every request of the process that
//! made it at once, and of every other process sharing the database within
//! [`REFRESH_INTERVAL`] (plus one query).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use berth_core::name::RepositoryName;
use berth_core::token::Claims;

use super::jwt::LEEWAY_SECS;
use crate::Registry;
use crate::clock::now_unix;
use crate::meta::MetaError;

/// How often the view is reloaded from the database.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// How often records past their keep time are removed from the database.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Beyond the token lifetime and the verification leeway, how long a record is
/// kept: room for the clocks of several nodes to disagree.
const CLOCK_MARGIN_SECS: i64 = 60;

/// What a record revokes (see the module doc's table).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RevocationTarget {
    /// Every token of this subject (`sub`).
    Subject(String),
    /// The subject's tokens issued from a password or a refresh token.
    Logins(String),
    /// The tokens issued for this personal access token (`berth_pat`).
    Pat(i64),
    /// The tokens a workload's ID token was exchanged for through this trust
    /// rule (`berth_trust`).
    Trust(i64),
    /// Every request on this repository.
    Repository(String),
}

impl RevocationTarget {
    /// The stored `(kind, target)` pair.
    pub fn to_stored(&self) -> (&'static str, String) {
        match self {
            Self::Subject(name) => ("subject", name.clone()),
            Self::Logins(name) => ("login", name.clone()),
            Self::Pat(id) => ("pat", id.to_string()),
            Self::Trust(id) => ("trust", id.to_string()),
            Self::Repository(name) => ("repository", name.clone()),
        }
    }

    /// The target of a stored `(kind, target)` pair; `None` when it does not parse.
    pub fn from_stored(kind: &str, target: &str) -> Option<Self> {
        Some(match kind {
            "subject" => Self::Subject(target.to_owned()),
            "login" => Self::Logins(target.to_owned()),
            "pat" => Self::Pat(target.parse().ok()?),
            "trust" => Self::Trust(target.parse().ok()?),
            "repository" => Self::Repository(target.to_owned()),
            _ => return None,
        })
    }
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// Its number: records are numbered in commit order, never reused.
    pub id: i64,
    /// What it revokes.
    pub target: RevocationTarget,
    /// Unix seconds after which no token it could affect is still valid.
    pub keep_until: i64,
}

/// Seconds a record is kept when tokens live `token_lifetime`: the lifetime,
/// the verification leeway, and a margin for clock differences.
pub fn keep_secs(token_lifetime: Duration) -> i64 {
    i64::try_from(token_lifetime.as_secs())
        .unwrap_or(i64::MAX / 4)
        .saturating_add(LEEWAY_SECS)
        .saturating_add(CLOCK_MARGIN_SECS)
}

/// Where the records are kept: the metadata database. Records are written by
/// the store's own transactions (the change and its record commit together);
/// this reads and prunes them.
#[async_trait]
pub trait RevocationStore: Send + Sync + 'static {
    /// The records numbered above `id`, in order (those past their keep time included).
    async fn revocations_after(&self, id: i64) -> Result<Vec<Revocation>, MetaError>;

    /// Removes the records past their keep time at `now`; returns how many.
    async fn prune_revocations(&self, now: i64) -> Result<u64, MetaError>;

    /// A counter the store increments after each commit that wrote a record.
    fn local_writes(&self) -> Arc<AtomicU64>;
}

/// Why the gate refused a token (for the log; the client gets `invalid_token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its subject was deleted or lost a membership.
    Subject,
    /// Its subject's password changed.
    Login,
    /// Its personal access token was revoked.
    Pat,
    /// A trust rule it was exchanged through was removed.
    Trust,
    /// The repository it is used on was made private or deleted.
    Repository,
}

impl Refusal {
    /// What changed, for the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subject => "the subject was deleted or lost a membership",
            Self::Login => "the subject's password changed",
            Self::Pat => "its personal access token was revoked",
            Self::Trust => "a trust rule it was granted through was removed",
            Self::Repository => "the repository was made private or deleted",
        }
    }
}

/// One key's newest record.
#[derive(Debug, Clone, Copy)]
struct Entry {
    id: i64,
    keep_until: i64,
}

/// The records in force, by what they revoke.
#[derive(Debug, Clone, Default)]
pub struct View {
    generation: i64,
    subjects: HashMap<String, Entry>,
    logins: HashMap<String, Entry>,
    pats: HashMap<i64, Entry>,
    trusts: HashMap<i64, Entry>,
    repositories: HashMap<String, Entry>,
    /// The earliest `keep_until` held: when the view next needs pruning.
    next_expiry: Option<i64>,
}

impl View {
    /// The number of the last record loaded: what the token service writes in
    /// `berth_gen`.
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// How many keys have a record in force.
    pub fn len(&self) -> usize {
        self.subjects.len()
            + self.logins.len()
            + self.pats.len()
            + self.trusts.len()
            + self.repositories.len()
    }

    /// Whether no record is in force.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a record in force refuses the token `claims` for a request on
    /// `repositories`.
    pub fn refusal<'a>(
        &self,
        claims: &Claims,
        repositories: impl IntoIterator<Item = &'a str>,
    ) -> Option<Refusal> {
        if self.is_empty() {
            return None;
        }
        let generation = claims.generation.unwrap_or(0);
        let newer = |entry: Option<&Entry>| entry.is_some_and(|e| e.id > generation);
        if !claims.sub.is_empty() {
            if !self.subjects.is_empty() && newer(self.subjects.get(claims.sub.as_str())) {
                return Some(Refusal::Subject);
            }
            if claims.pat.is_none()
                && !self.logins.is_empty()
                && newer(self.logins.get(claims.sub.as_str()))
            {
                return Some(Refusal::Login);
            }
        }
        if let Some(pat) = claims.pat
            && newer(self.pats.get(&pat))
        {
            return Some(Refusal::Pat);
        }
        if !self.trusts.is_empty() && claims.trust.iter().any(|id| newer(self.trusts.get(id))) {
            return Some(Refusal::Trust);
        }
        if !self.repositories.is_empty()
            && repositories
                .into_iter()
                .any(|name| newer(self.repositories.get(name)))
        {
            return Some(Refusal::Repository);
        }
        None
    }

    /// Adds a record (ignored when already past its keep time at `now`).
    fn apply(&mut self, record: Revocation, now: i64) {
        self.generation = self.generation.max(record.id);
        if record.keep_until < now {
            return;
        }
        let entry = Entry {
            id: record.id,
            keep_until: record.keep_until,
        };
        let merge = |old: &mut Entry| {
            old.id = old.id.max(entry.id);
            old.keep_until = old.keep_until.max(entry.keep_until);
        };
        match record.target {
            RevocationTarget::Subject(name) => {
                self.subjects.entry(name).and_modify(merge).or_insert(entry);
            }
            RevocationTarget::Logins(name) => {
                self.logins.entry(name).and_modify(merge).or_insert(entry);
            }
            RevocationTarget::Pat(id) => {
                self.pats.entry(id).and_modify(merge).or_insert(entry);
            }
            RevocationTarget::Trust(id) => {
                self.trusts.entry(id).and_modify(merge).or_insert(entry);
            }
            RevocationTarget::Repository(name) => {
                self.repositories
                    .entry(name)
                    .and_modify(merge)
                    .or_insert(entry);
            }
        }
        self.next_expiry = Some(
            self.next_expiry
                .map_or(record.keep_until, |t| t.min(record.keep_until)),
        );
    }

    /// Whether some record is past its keep time at `now`.
    fn has_expired(&self, now: i64) -> bool {
        self.next_expiry.is_some_and(|t| t < now)
    }

    /// Drops the records past their keep time at `now`.
    fn prune(&mut self, now: i64) {
        let live = |e: &mut Entry| e.keep_until >= now;
        self.subjects.retain(|_, e| live(e));
        self.logins.retain(|_, e| live(e));
        self.pats.retain(|_, e| live(e));
        self.trusts.retain(|_, e| live(e));
        self.repositories.retain(|_, e| live(e));
        self.next_expiry = self
            .subjects
            .values()
            .chain(self.logins.values())
            .chain(self.pats.values())
            .chain(self.trusts.values())
            .chain(self.repositories.values())
            .map(|e| e.keep_until)
            .min();
    }
}

/// The records in force in this process, and how to keep them current.
pub struct Revocations {
    store: Arc<dyn RevocationStore>,
    view: RwLock<Arc<View>>,
    /// Incremented by the store after each commit that wrote a record.
    written: Arc<AtomicU64>,
    /// `written` as it was when the current view was loaded.
    synced: AtomicU64,
    /// One reload at a time, so that views are published in order.
    reloading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let view = self.snapshot();
        f.debug_struct("Revocations")
            .field("generation", &view.generation)
            .field("in_force", &view.len())
            .finish_non_exhaustive()
    }
}

impl Revocations {
    /// Loads the records in force from `store`.
    pub async fn load(store: Arc<dyn RevocationStore>) -> Result<Self, MetaError> {
        let written = store.local_writes();
        let synced = written.load(Ordering::Acquire);
        let mut view = View::default();
        let now = now_unix();
        for record in store.revocations_after(0).await? {
            view.apply(record, now);
        }
        Ok(Self {
            store,
            view: RwLock::new(Arc::new(view)),
            written,
            synced: AtomicU64::new(synced),
            reloading: tokio::sync::Mutex::new(()),
        })
    }

    /// The current view.
    pub fn snapshot(&self) -> Arc<View> {
        Arc::clone(&self.view.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether this process wrote a record the view does not hold yet.
    pub fn is_stale(&self) -> bool {
        self.written.load(Ordering::Acquire) != self.synced.load(Ordering::Acquire)
    }

    /// Checks a token against the current view without copying it (the hot path).
    fn refusal<'a>(
        &self,
        claims: &Claims,
        repositories: impl IntoIterator<Item = &'a str>,
    ) -> Option<Refusal> {
        self.view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .refusal(claims, repositories)
    }
}

/// Reloads the view from the database: the records written since, those past
/// their keep time dropped. What the new records may have made stale in this
/// process's caches is forgotten before they are published.
pub async fn reload(r: &Registry) -> Result<(), MetaError> {
    reload_when(r, false).await
}

/// [`reload`], or, with `only_if_stale`, nothing when another reload brought
/// in this process's writes while this one waited for its turn.
async fn reload_when(r: &Registry, only_if_stale: bool) -> Result<(), MetaError> {
    let revocations = &r.revocations;
    let _one = revocations.reloading.lock().await;
    if only_if_stale && !revocations.is_stale() {
        return Ok(());
    }
    // Read before the query: every write counted so far committed before it.
    let written = revocations.written.load(Ordering::Acquire);
    let current = revocations.snapshot();
    let new = revocations
        .store
        .revocations_after(current.generation)
        .await?;
    let now = now_unix();
    if !new.is_empty() || current.has_expired(now) {
        forget_stale(r, &new);
        let mut next = (*current).clone();
        next.prune(now);
        for record in new {
            next.apply(record, now);
        }
        *revocations
            .view
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
    }
    revocations.synced.store(written, Ordering::Release);
    Ok(())
}

/// Drops what `records` may have made stale: remembered credential checks
/// (memberships, tokens) and cached facts of the repositories they name.
fn forget_stale(r: &Registry, records: &[Revocation]) {
    let mut identities = false;
    for record in records {
        match &record.target {
            RevocationTarget::Repository(name) => {
                if let Ok(name) = RepositoryName::parse(name) {
                    r.meta.forget_cached(&name);
                }
            }
            _ => identities = true,
        }
    }
    if identities {
        r.authn.forget_remembered();
    }
}

/// Reloads the view if this process wrote a record it does not hold yet.
async fn reload_if_stale(r: &Registry) -> Result<(), MetaError> {
    if r.revocations.is_stale() {
        reload_when(r, true).await?;
    }
    Ok(())
}

/// The generation a token issued now carries (read it before anything the
/// grant depends on).
pub async fn generation(r: &Registry) -> Result<i64, MetaError> {
    reload_if_stale(r).await?;
    Ok(r.revocations.snapshot().generation())
}

/// Whether a record refuses the verified token `claims` for a request on
/// `repositories`.
pub async fn check<'a>(
    r: &Registry,
    claims: &Claims,
    repositories: impl IntoIterator<Item = &'a str>,
) -> Result<Option<Refusal>, MetaError> {
    reload_if_stale(r).await?;
    Ok(r.revocations.refusal(claims, repositories))
}

/// Reloads the view every [`REFRESH_INTERVAL`] and prunes the database every
/// [`PRUNE_INTERVAL`], forever (stopped with the server).
pub async fn run_refresh(r: Registry) {
    let mut tick = tokio::time::interval(REFRESH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune = tokio::time::Instant::now();
    let mut outage = super::Outage::default();
    loop {
        tick.tick().await;
        outage.note(reload(&r).await, "revocation records");
        if last_prune.elapsed() >= PRUNE_INTERVAL {
            last_prune = tokio::time::Instant::now();
            match r.revocations.store.prune_revocations(now_unix()).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(removed = n, "pruned expired revocation records"),
                Err(e) => tracing::warn!(error = %e, "cannot prune revocation records"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use berth_core::token::Audience;

    use super::*;

    fn claims(sub: &str, pat: Option<i64>, generation: Option<i64>) -> Claims {
        Claims {
            iss: "berth".to_owned(),
            sub: sub.to_owned(),
            aud: Audience::One("registry".to_owned()),
            exp: 0,
            nbf: None,
            iat: None,
            jti: None,
            access: Vec::new(),
            pat,
            generation,
            trust: Vec::new(),
        }
    }

    fn record(id: i64, target: RevocationTarget) -> Revocation {
        Revocation {
            id,
            target,
            keep_until: 1_000,
        }
    }

    #[test]
    fn a_record_refuses_the_tokens_issued_before_it_only() {
        let mut view = View::default();
        assert_eq!(view.refusal(&claims("alice", None, None), ["a/b"]), None);
        view.apply(record(3, RevocationTarget::Subject("alice".into())), 0);
        view.apply(record(5, RevocationTarget::Logins("bob".into())), 0);
        view.apply(record(7, RevocationTarget::Pat(42)), 0);
        view.apply(
            record(9, RevocationTarget::Repository("acme/app".into())),
            0,
        );
        assert_eq!(view.generation(), 9);

        let cases: &[(Claims, &[&str], Option<Refusal>)] = &[
            (claims("alice", None, Some(2)), &[], Some(Refusal::Subject)),
            (
                claims("alice", Some(1), Some(2)),
                &[],
                Some(Refusal::Subject),
            ),
            (claims("alice", None, Some(3)), &[], None),
            (claims("alice", None, None), &[], Some(Refusal::Subject)),
            (claims("bob", None, Some(4)), &[], Some(Refusal::Login)),
            // A token of a personal access token is no login.
            (claims("bob", Some(1), Some(4)), &[], None),
            (claims("bob", None, Some(5)), &[], None),
            (claims("carol", Some(42), Some(6)), &[], Some(Refusal::Pat)),
            (claims("carol", Some(42), Some(7)), &[], None),
            (claims("carol", Some(43), Some(0)), &[], None),
            (
                claims("", None, Some(8)),
                &["acme/app"],
                Some(Refusal::Repository),
            ),
            (claims("", None, Some(8)), &["acme/other"], None),
            (claims("", None, Some(9)), &["acme/app"], None),
            (
                claims("dave", None, Some(0)),
                &["x/y", "acme/app"],
                Some(Refusal::Repository),
            ),
        ];
        for (claims, repositories, expected) in cases {
            assert_eq!(
                view.refusal(claims, repositories.iter().copied()),
                *expected,
                "{claims:?} on {repositories:?}"
            );
        }
    }

    #[test]
    fn records_past_their_keep_time_are_dropped() {
        let mut view = View::default();
        view.apply(
            Revocation {
                id: 1,
                target: RevocationTarget::Subject("alice".into()),
                keep_until: 100,
            },
            0,
        );
        view.apply(
            Revocation {
                id: 2,
                target: RevocationTarget::Pat(1),
                keep_until: 200,
            },
            0,
        );
        // Already expired when loaded: counted in the generation, not kept.
        view.apply(
            Revocation {
                id: 3,
                target: RevocationTarget::Pat(2),
                keep_until: 50,
            },
            60,
        );
        assert_eq!((view.generation(), view.len()), (3, 2));
        assert!(!view.has_expired(100) && view.has_expired(101));
        view.prune(101);
        assert_eq!(view.len(), 1);
        assert_eq!(
            view.refusal(&claims("alice", None, Some(0)), []),
            None,
            "pruned"
        );
        assert_eq!(
            view.refusal(&claims("x", Some(1), Some(0)), []),
            Some(Refusal::Pat)
        );
        view.prune(201);
        assert!(view.is_empty() && view.next_expiry.is_none());
    }

    #[test]
    fn a_removed_trust_rule_refuses_the_tokens_granted_through_it() {
        let mut view = View::default();
        view.apply(record(9, RevocationTarget::Trust(3)), 0);
        let through = |rules: Vec<i64>, generation| Claims {
            trust: rules,
            ..claims("trust:acme/release:repo:acme/app", None, Some(generation))
        };
        assert_eq!(view.refusal(&through(vec![3], 8), []), Some(Refusal::Trust));
        assert_eq!(
            view.refusal(&through(vec![1, 3], 8), []),
            Some(Refusal::Trust)
        );
        assert_eq!(view.refusal(&through(vec![1], 8), []), None);
        assert_eq!(
            view.refusal(&through(vec![3], 9), []),
            None,
            "granted after"
        );
    }

    #[test]
    fn stored_targets_round_trip() {
        for target in [
            RevocationTarget::Subject("alice".into()),
            RevocationTarget::Logins("alice".into()),
            RevocationTarget::Pat(17),
            RevocationTarget::Trust(4),
            RevocationTarget::Repository("acme/app".into()),
        ] {
            let (kind, stored) = target.to_stored();
            assert_eq!(
                RevocationTarget::from_stored(kind, &stored),
                Some(target.clone())
            );
        }
        assert_eq!(RevocationTarget::from_stored("pat", "x"), None);
        assert_eq!(RevocationTarget::from_stored("other", "x"), None);
    }
}
