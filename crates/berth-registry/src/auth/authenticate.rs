//! Credentials to a [`Subject`]: passwords, personal access tokens, refresh
//! tokens.
//!
//! - A Basic password that looks like a personal access token (`berth_pat_...`)
//!   is looked up by its SHA-256 (then compared in constant time); it works with
//!   any username, as GHCR allows, and carries its token's limits.
//! - Any other password is checked against the user's argon2id (or imported
//!   bcrypt) hash on a blocking thread. A success is remembered for
//!   [`PASSWORD_CACHE_TTL`], keyed by a SHA-256 of the credentials and the
//!   stored hash (so a password change takes effect at once), so a pull of 50
//!   layers costs one password hash, not 50.
//! - A checked personal access token is remembered for [`PAT_CACHE_TTL`]
//!   (CI bursts of token requests cost one lookup); the admin API's changes
//!   to users, memberships and tokens forget everything remembered at once.
//! - Failures are counted per client address and per username; past
//!   [`MAX_FAILURES`] in a [`FAILURE_WINDOW`] the caller gets 429 with
//!   `Retry-After` until the window ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use base64::Engine;
use berth_core::scope::Actions;

use crate::identity::secret::{hash_secret, looks_like_pat};
use crate::identity::{IdentityError, IdentityStore, User, password};
use crate::policy::{Principal, Subject, TokenLimits};

/// How long a verified password is remembered.
pub const PASSWORD_CACHE_TTL: Duration = Duration::from_secs(60);
/// Failed attempts allowed per client address, and per username, per window.
pub const MAX_FAILURES: u32 = 10;
/// The window failures are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
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
}

/// Why authentication failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    /// Unknown user, wrong password, unknown/expired/revoked token.
    #[error("invalid username, password or token")]
    BadCredentials,
    /// Too many failures from this address or for this username.
    #[error("too many failed attempts; retry in {retry_after_secs} s")]
    TooManyFailures {
        /// Seconds until the window ends.
        retry_after_secs: u64,
    },
    /// The identity store failed.
    #[error(transparent)]
    Store(#[from] IdentityError),
}

/// Turns credentials into subjects.
pub struct Authenticator {
    identity: Arc<dyn IdentityStore>,
    verified: Mutex<HashMap<[u8; 32], (String, Instant)>>,
    failures: Mutex<HashMap<String, (Instant, u32)>>,
    touched: Mutex<HashMap<i64, Instant>>,
    /// Subjects of recently checked personal access tokens, by SHA-256 of
    /// the secret: (subject, token expiry, checked at).
    pat_subjects: Mutex<HashMap<[u8; 32], (Principal, i64, Instant)>>,
    /// Counts [`Self::forget_remembered`] calls: a check that read the
    /// database before one remembers nothing after it.
    forgotten: AtomicU64,
}

impl Authenticator {
    /// An authenticator over an identity store.
    pub fn new(identity: Arc<dyn IdentityStore>) -> Self {
        Self {
            identity,
            verified: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            touched: Mutex::new(HashMap::new()),
            pat_subjects: Mutex::new(HashMap::new()),
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
        let username = match credential {
            Credential::Password { username, .. } => *username,
            Credential::RefreshToken(_) => "",
        };
        // No username (refresh tokens, empty Basic user): the address only,
        // or one client's failures would lock every client out.
        let mut keys = vec![format!("ip:{client}")];
        if !username.is_empty() {
            keys.push(format!("user:{username}"));
        }
        self.check_rate(&keys)?;
        let result = match credential {
            Credential::Password { password, .. } if looks_like_pat(password) => {
                self.by_personal_access_token(password, now_unix).await
            }
            Credential::Password { username, password } => {
                self.by_password(username, password).await
            }
            Credential::RefreshToken(token) => self.by_refresh_token(token, now_unix).await,
        };
        if matches!(result, Err(AuthnError::BadCredentials)) {
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
                },
                _ => TokenLimits {
                    token_id: id,
                    name: String::new(),
                    actions: Actions::default(),
                    repositories: Vec::new(),
                },
            }),
        };
        Ok(Some(self.principal_of(&user, limits).await?))
    }

    async fn by_password(&self, username: &str, password: &str) -> Result<Subject, AuthnError> {
        let user = self
            .identity
            .user_by_name(username)
            .await?
            .ok_or(AuthnError::BadCredentials)?;
        let Some(hash) = user.password_hash.clone() else {
            // Robots have no password: their only credential is a token.
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
            let password = password.to_owned();
            let ok =
                tokio::task::spawn_blocking(move || password::verify_password(&hash, &password))
                    .await
                    .unwrap_or(false);
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

    fn check_rate(&self, keys: &[String]) -> Result<(), AuthnError> {
        let failures = lock(&self.failures);
        for key in keys {
            if let Some((start, count)) = failures.get(key) {
                let elapsed = start.elapsed();
                if elapsed < FAILURE_WINDOW && *count >= MAX_FAILURES {
                    let retry_after_secs = (FAILURE_WINDOW - elapsed).as_secs().max(1);
                    return Err(AuthnError::TooManyFailures { retry_after_secs });
                }
            }
        }
        Ok(())
    }

    fn record_failure(&self, keys: &[String]) {
        let mut failures = lock(&self.failures);
        if failures.len() >= MAX_ENTRIES {
            failures.retain(|_, (start, _)| start.elapsed() < FAILURE_WINDOW);
        }
        for key in keys {
            let entry = failures.entry(key.clone()).or_insert((Instant::now(), 0));
            if entry.0.elapsed() >= FAILURE_WINDOW {
                *entry = (Instant::now(), 0);
            }
            entry.1 += 1;
        }
    }
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
