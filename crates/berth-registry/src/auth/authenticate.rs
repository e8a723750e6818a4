//! Credentials to a [`Subject`]: passwords, personal access tokens, refresh
//! tokens.
//!
//! - A Basic password that looks like a personal access token (`berth_pat_...`)
//!   is looked up by its SHA-256 (then compared in constant time); it works with
//!   any username, as GHCR allows, and carries its token's limits.
//! - Any other password is checked against the user's argon2id (or imported
//!   bcrypt) hash on a blocking thread, at most
//!   [`password::concurrency`] at once (others wait their turn without a
//!   thread), each with memory from a fixed pool (see [`password`]). A
//!   success is remembered for [`PASSWORD_CACHE_TTL`], keyed by a SHA-256 of
//!   the credentials and the stored hash (so a password change takes effect
//!   at once), so a pull of 50 layers costs one password hash, not 50.
//! - A user that does not exist, or has no password (a robot), costs what a
//!   wrong password costs: the password is checked against a dummy argon2id
//!   hash with the same parameters, so the time of a refusal does not tell
//!   which names exist.
//! - A checked personal access token is remembered for [`PAT_CACHE_TTL`]
//!   (CI bursts of token requests cost one lookup); the admin API's changes
//!   to users, memberships and tokens forget everything remembered at once.
//!
//! Failed attempts, counted over a [`FAILURE_WINDOW`]:
//!
//! | counted per | limit | past the limit |
//! |---|---|---|
//! | client address and username (a refresh token's is empty; an ID token's is its issuer and subject) | [`MAX_FAILURES_PER_USER_AND_ADDRESS`] | 429 with `Retry-After` until the window ends |
//! | client address | [`MAX_FAILURES_PER_ADDRESS`] | 429 with `Retry-After` until the window ends |
//! | username (password failures, from any address) | none | each password check of that user waits [`user_delay`] first: up to [`MAX_USER_DELAY`], never a refusal |
//!
//! So a correct credential is refused only from an address that failed too
//! often itself: someone guessing a user's password from elsewhere slows
//! that user's logins down by at most [`MAX_USER_DELAY`] and cannot lock
//! them (or an administrator, and with them the admin API) out. An IPv6
//! client counts by its /64 network, which one host usually holds whole.
//! A verified password remembered from the same credentials skips the delay.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use base64::Engine;
use berth_core::scope::Actions;
use tokio::sync::Semaphore;

use crate::identity::secret::{hash_secret, looks_like_pat};
use crate::identity::{IdentityError, IdentityStore, User, password};
use crate::policy::{Principal, Subject, TokenLimits, Workload};

/// How long a verified password is remembered.
pub const PASSWORD_CACHE_TTL: Duration = Duration::from_secs(60);
/// Failed attempts allowed per client address and username, per window.
pub const MAX_FAILURES_PER_USER_AND_ADDRESS: u32 = 10;
/// Failed attempts allowed per client address, all usernames together, per
/// window (enough for a few people behind one address mistyping at once).
pub const MAX_FAILURES_PER_ADDRESS: u32 = 30;
/// The window failures are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Password failures of a username (from anywhere) before its checks slow down.
pub const FREE_USER_FAILURES: u32 = 3;
/// The longest a password check waits for its username's failures.
pub const MAX_USER_DELAY: Duration = Duration::from_secs(2);
/// How long a checked personal access token is remembered (a revocation made
/// through another node applies within this time; through this one, at once).
pub const PAT_CACHE_TTL: Duration = Duration::from_secs(10);
/// How often a personal access token's last use is written, at most.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);
/// Entries kept in each in-memory table before old ones are dropped.
const MAX_ENTRIES: usize = 100_000;

/// Credentials a client presented.
pub enum Credential<'a> {
    /// HTTP Basic, or the OAuth2 password grant.
    Password {
        /// The username (ignored for personal access tokens).
        username: &'a str,
        /// The password or personal access token.
        password: &'a str,
    },
    /// The OAuth2 refresh-token grant.
    RefreshToken(&'a str),
    /// A workload's OpenID Connect ID token: the RFC 8693 token exchange, or
    /// Basic with username [`crate::trust::OIDC_USERNAME`] (`trust/`); with
    /// the namespaces of the repositories the request names, whose trust
    /// rules decide.
    IdToken {
        /// The ID token.
        token: &'a str,
        /// The namespaces asked about (sorted, each once).
        namespaces: Vec<String>,
    },
}

/// Why authentication failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    /// Unknown user, wrong password, unknown/expired/revoked token.
    #[error("invalid username, password or token")]
    BadCredentials,
    /// Too many failures from this address, or from it for this username.
    #[error("too many failed attempts; retry in {retry_after_secs} s")]
    TooManyFailures {
        /// Seconds until the window ends.
        retry_after_secs: u64,
    },
    /// A workload's ID token was refused: the message says why.
    #[error(transparent)]
    IdToken(crate::trust::exchange::ExchangeError),
    /// The identity store failed.
    #[error(transparent)]
    Store(#[from] IdentityError),
}

/// Turns credentials into subjects.
pub struct Authenticator {
    identity: Arc<dyn IdentityStore>,
    /// Workload identity: ID tokens to workloads.
    workloads: crate::trust::exchange::Exchange,
    verified: Mutex<HashMap<[u8; 32], (String, Instant)>>,
    failures: Mutex<HashMap<String, (Instant, u32)>>,
    touched: Mutex<HashMap<i64, Instant>>,
    /// Subjects of recently checked personal access tokens, by SHA-256 of
    /// the secret: (subject, token expiry, checked at).
    pat_subjects: Mutex<HashMap<[u8; 32], (Principal, i64, Instant)>>,
    /// Turns to compute a password hash: [`password::concurrency`] permits.
    hashing: Semaphore,
    /// Counts [`Self::forget_remembered`] calls: a check that read the
    /// database before one remembers nothing after it.
    forgotten: AtomicU64,
}

/// Which failures a key counts, in the `failures` table.
fn address_key(client: IpAddr) -> String {
    match client.to_canonical() {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// How long a password check of a username waits, after `failures` failed
/// checks of it in the window: nothing for the first [`FREE_USER_FAILURES`],
/// then 100 ms doubling with each failure, at most [`MAX_USER_DELAY`].
pub fn user_delay(failures: u32) -> Duration {
    let Some(over) = failures.checked_sub(FREE_USER_FAILURES + 1) else {
        return Duration::ZERO;
    };
    let millis = 100u64.saturating_mul(1u64 << over.min(16));
    Duration::from_millis(millis).min(MAX_USER_DELAY)
}

impl Authenticator {
    /// An authenticator over an identity store, verifying workloads' ID
    /// tokens as `oidc` says.
    pub fn new(identity: Arc<dyn IdentityStore>, oidc: &crate::config::OidcConfig) -> Self {
        Self {
            workloads: crate::trust::exchange::Exchange::new(oidc, Arc::clone(&identity)),
            identity,
            verified: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            touched: Mutex::new(HashMap::new()),
            pat_subjects: Mutex::new(HashMap::new()),
            hashing: Semaphore::new(password::concurrency()),
            forgotten: AtomicU64::new(0),
        }
    }

    /// Authenticates `credential` presented from `client`.
    pub async fn authenticate(
        &self,
        credential: &Credential<'_>,
        client: IpAddr,
        now_unix: i64,
    ) -> Result<Subject, AuthnError> {
        // An ID token's failures count per workload (its unverified issuer
        // and subject), not under one `oidc` for every job behind an
        // address: CI runners share addresses.
        let workload_key;
        let username = match credential {
            Credential::Password { username, .. } => *username,
            Credential::RefreshToken(_) => "",
            Credential::IdToken { token, .. } => {
                workload_key = match crate::trust::oidc::unverified_identity(token) {
                    Some(identity) => format!("{}:{identity}", crate::trust::OIDC_USERNAME),
                    None => crate::trust::OIDC_USERNAME.to_owned(),
                };
                &workload_key
            }
        };
        let address = address_key(client);
        // A refresh token has no username: it counts under the empty one, of
        // this address only, so one client's failures lock no other out.
        let address_user = format!("{address}\0{username}");
        self.check_blocked(&address, &address_user)?;
        let (result, guessed_user) = match credential {
            Credential::Password { password, .. } if looks_like_pat(password) => (
                self.by_personal_access_token(password, now_unix).await,
                false,
            ),
            Credential::Password { username, password } => {
                (self.by_password(username, password).await, true)
            }
            Credential::RefreshToken(token) => {
                (self.by_refresh_token(token, now_unix).await, false)
            }
            Credential::IdToken { token, namespaces } => (
                self.workloads
                    .workload(token, namespaces, client, now_unix)
                    .await
                    .map(Subject::Workload)
                    .map_err(|e| match e {
                        crate::trust::exchange::ExchangeError::Store(e) => AuthnError::Store(e),
                        e => AuthnError::IdToken(e),
                    }),
                false,
            ),
        };
        if matches!(
            result,
            Err(AuthnError::BadCredentials | AuthnError::IdToken(_))
        ) {
            let mut keys = vec![address, address_user];
            if guessed_user {
                keys.push(user_key(username));
            }
            self.record_failure(&keys);
        }
        result
    }

    /// The subject a token's `sub` (and `berth_pat`) stand for, when the gate
    /// must ask policy: the user, narrowed by the personal access token the
    /// token was issued for. A token whose personal access token was revoked
    /// since carries no rights beyond what anyone has.
    pub async fn principal(
        &self,
        name: &str,
        pat: Option<i64>,
    ) -> Result<Option<Principal>, AuthnError> {
        let Some(user) = self.identity.user_by_name(name).await? else {
            return Ok(None);
        };
        let limits = match pat {
            None => None,
            Some(id) => Some(match self.identity.pat_by_id(id).await? {
                Some(pat) if pat.user == user.id => TokenLimits {
                    token_id: pat.id,
                    name: pat.name.clone(),
                    actions: pat.actions.clone(),
                    repositories: pat.repositories.clone(),
                    expires_at: pat.expires_at,
                },
                _ => TokenLimits {
                    token_id: id,
                    name: String::new(),
                    actions: Actions::default(),
                    repositories: Vec::new(),
                    expires_at: 0,
                },
            }),
        };
        Ok(Some(self.principal_of(&user, limits).await?))
    }

    /// The workload a token's `sub` and `berth_trust` stand for, when the
    /// gate must ask policy: the rules it was granted through that still
    /// exist (a removed one also refuses the token at the gate, through its
    /// revocation record).
    pub async fn workload(&self, name: &str, rules: &[i64]) -> Result<Workload, AuthnError> {
        let rules = self.identity.trust_rules_by_ids(rules).await?;
        Ok(Workload {
            name: name.to_owned(),
            grants: rules.iter().map(crate::trust::exchange::grant_of).collect(),
        })
    }

    async fn by_password(&self, username: &str, password: &str) -> Result<Subject, AuthnError> {
        let user = self.identity.user_by_name(username).await?;
        // Robots have no password: their only credential is a token.
        let Some((user, hash)) = user.and_then(|u| u.password_hash.clone().map(|hash| (u, hash)))
        else {
            // As slow as a wrong password, so that no one learns which names exist.
            self.slow_down(username).await;
            let password = password.to_owned();
            self.check_off_thread(move || {
                password::verify_dummy(&password);
                false
            })
            .await;
            return Err(AuthnError::BadCredentials);
        };
        // The stored hash is part of the key: a changed password drops what
        // was remembered of the old one at once.
        let cache_key = hash_secret(&format!("{username}\0{password}\0{hash}"));
        let cached = {
            let verified = lock(&self.verified);
            verified
                .get(&cache_key)
                .filter(|(_, at)| at.elapsed() < PASSWORD_CACHE_TTL)
                .map(|(name, _)| name.clone())
        };
        if cached.as_deref() != Some(user.name.as_str()) {
            self.slow_down(username).await;
            let password = password.to_owned();
            let ok = self
                .check_off_thread(move || password::verify_password(&hash, &password))
                .await;
            if !ok {
                return Err(AuthnError::BadCredentials);
            }
            let mut verified = lock(&self.verified);
            if verified.len() >= MAX_ENTRIES {
                verified.retain(|_, (_, at)| at.elapsed() < PASSWORD_CACHE_TTL);
                if verified.len() >= MAX_ENTRIES {
                    verified.clear();
                }
            }
            verified.insert(cache_key, (user.name.clone(), Instant::now()));
        }
        Ok(Subject::User(self.principal_of(&user, None).await?))
    }

    /// Waits [`user_delay`] for the password failures of `username`.
    async fn slow_down(&self, username: &str) {
        let failures = {
            let failures = lock(&self.failures);
            failures
                .get(&user_key(username))
                .filter(|(start, _)| start.elapsed() < FAILURE_WINDOW)
                .map_or(0, |(_, count)| *count)
        };
        let delay = user_delay(failures);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }

    /// Runs a password check on a blocking thread once a hashing turn is
    /// free (waiting as a task, not a thread). A check that panicked is a
    /// failed check.
    async fn check_off_thread(&self, check: impl FnOnce() -> bool + Send + 'static) -> bool {
        let Ok(_turn) = self.hashing.acquire().await else {
            return false;
        };
        tokio::task::spawn_blocking(check).await.unwrap_or(false)
    }

    async fn by_personal_access_token(
        &self,
        secret: &str,
        now_unix: i64,
    ) -> Result<Subject, AuthnError> {
        let hash = hash_secret(secret);
        let cached = lock(&self.pat_subjects)
            .get(&hash)
            .filter(|(_, expires_at, at)| at.elapsed() < PAT_CACHE_TTL && *expires_at > now_unix)
            .map(|(principal, _, _)| principal.clone());
        if let Some(principal) = cached {
            return Ok(Subject::User(principal));
        }
        let epoch = self.forgotten.load(Ordering::Acquire);
        let (pat, user) = self
            .identity
            .pat_by_hash(&hash)
            .await?
            .ok_or(AuthnError::BadCredentials)?;
        if pat.expires_at <= now_unix {
            return Err(AuthnError::BadCredentials);
        }
        if self.should_touch(pat.id) {
            self.identity.touch_pat(pat.id, now_unix).await.ok();
        }
        let limits = TokenLimits {
            token_id: pat.id,
            name: pat.name.clone(),
            actions: pat.actions.clone(),
            repositories: pat.repositories.clone(),
            expires_at: pat.expires_at,
        };
        let principal = self.principal_of(&user, Some(limits)).await?;
        let mut cache = lock(&self.pat_subjects);
        if self.forgotten.load(Ordering::Acquire) != epoch {
            // Read before a change this process made: not worth remembering.
            return Ok(Subject::User(principal));
        }
        if cache.len() >= MAX_ENTRIES {
            cache.clear();
        }
        cache.insert(hash, (principal.clone(), pat.expires_at, Instant::now()));
        Ok(Subject::User(principal))
    }

    /// Forgets every remembered credential check: called when users, their
    /// memberships or their tokens change, so that the change applies to the
    /// next request of this process (others see it within the caches' TTLs).
    pub fn forget_remembered(&self) {
        let mut pat_subjects = lock(&self.pat_subjects);
        self.forgotten.fetch_add(1, Ordering::AcqRel);
        pat_subjects.clear();
        drop(pat_subjects);
        lock(&self.verified).clear();
    }

    async fn by_refresh_token(&self, token: &str, now_unix: i64) -> Result<Subject, AuthnError> {
        let hash = hash_secret(token);
        let (refresh, user) = self
            .identity
            .refresh_token_by_hash(&hash)
            .await?
            .ok_or(AuthnError::BadCredentials)?;
        if refresh.expires_at <= now_unix {
            return Err(AuthnError::BadCredentials);
        }
        Ok(Subject::User(self.principal_of(&user, None).await?))
    }

    async fn principal_of(
        &self,
        user: &User,
        token: Option<TokenLimits>,
    ) -> Result<Principal, AuthnError> {
        let memberships = self
            .identity
            .memberships(user.id)
            .await?
            .into_iter()
            .map(|(org, role)| (org.name, role))
            .collect();
        let robot_of = match user.robot_of {
            Some(org) => self.identity.org_by_id(org).await?.map(|o| o.name),
            None => None,
        };
        Ok(Principal {
            name: user.name.clone(),
            is_admin: user.is_admin,
            robot_of,
            memberships,
            token,
        })
    }

    /// Whether to record a personal access token's use now: at most once per
    /// [`TOUCH_INTERVAL`] per token, so that a burst of token requests does
    /// not become a burst of database writes.
    fn should_touch(&self, pat: i64) -> bool {
        let mut touched = lock(&self.touched);
        if touched
            .get(&pat)
            .is_some_and(|at| at.elapsed() < TOUCH_INTERVAL)
        {
            return false;
        }
        if touched.len() >= MAX_ENTRIES {
            touched.clear();
        }
        touched.insert(pat, Instant::now());
        true
    }

    /// 429 when this address, or this address for this username, failed
    /// too often in the window.
    fn check_blocked(&self, address: &str, address_user: &str) -> Result<(), AuthnError> {
        let failures = lock(&self.failures);
        let limits = [
            (address, MAX_FAILURES_PER_ADDRESS),
            (address_user, MAX_FAILURES_PER_USER_AND_ADDRESS),
        ];
        let retry_after = limits
            .iter()
            .filter_map(|(key, limit)| {
                let (start, count) = failures.get(*key)?;
                let elapsed = start.elapsed();
                (elapsed < FAILURE_WINDOW && count >= limit).then(|| FAILURE_WINDOW - elapsed)
            })
            .max();
        match retry_after {
            Some(left) => Err(AuthnError::TooManyFailures {
                retry_after_secs: left.as_secs().max(1),
            }),
            None => Ok(()),
        }
    }

    fn record_failure(&self, keys: &[String]) {
        let mut failures = lock(&self.failures);
        if failures.len() >= MAX_ENTRIES {
            failures.retain(|_, (start, _)| start.elapsed() < FAILURE_WINDOW);
            if failures.len() >= MAX_ENTRIES {
                failures.clear();
            }
        }
        for key in keys {
            let entry = failures.entry(key.clone()).or_insert((Instant::now(), 0));
            if entry.0.elapsed() >= FAILURE_WINDOW {
                *entry = (Instant::now(), 0);
            }
            entry.1 = entry.1.saturating_add(1);
        }
    }
}

/// The key of a username's password failures, from any address.
fn user_key(username: &str) -> String {
    format!("user:{username}")
}

/// Basic credentials that were sent but cannot be read: wrong credentials,
/// not none (an anonymous token would pass for a successful login).
pub struct MalformedBasic;

/// `Authorization: Basic <base64 user:password>`: `None` when no Basic
/// credentials were sent (another scheme counts as none).
pub fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, MalformedBasic> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.as_bytes();
    let (scheme, encoded) = match value.iter().position(|&b| b == b' ') {
        Some(at) => (&value[..at], &value[at + 1..]),
        None => (value, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Ok(None);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim_ascii())
        .map_err(|_| MalformedBasic)?;
    let decoded = String::from_utf8(decoded).map_err(|_| MalformedBasic)?;
    let (user, password) = decoded.split_once(':').ok_or(MalformedBasic)?;
    Ok(Some((user.to_owned(), password.to_owned())))
}

/// Locks a mutex, recovering from a poisoned one (the tables hold no invariant
/// a panicking holder could break).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The actions a fresh personal access token carries when none are named.
pub fn default_token_actions() -> Actions {
    [
        berth_core::scope::Action::Pull,
        berth_core::scope::Action::Push,
    ]
    .into_iter()
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_per_user_grows_and_is_bounded() {
        let delays: Vec<u64> = (0..12).map(|f| user_delay(f).as_millis() as u64).collect();
        assert_eq!(
            delays,
            [0, 0, 0, 0, 100, 200, 400, 800, 1600, 2000, 2000, 2000]
        );
        assert_eq!(user_delay(u32::MAX), MAX_USER_DELAY);
    }

    #[test]
    fn addresses_count_as_one_host() {
        let key = |s: &str| address_key(s.parse().unwrap());
        assert_eq!(key("192.0.2.7"), "ip:192.0.2.7");
        // A v4 client seen through a dual-stack socket is that v4 client.
        assert_eq!(key("::ffff:192.0.2.7"), "ip:192.0.2.7");
        // An IPv6 host holds its whole /64.
        assert_eq!(key("2001:db8:1:2:3:4:5:6"), "ip:2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:ffff::1"), key("2001:db8:1:2::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }
}
