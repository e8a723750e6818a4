//! The token cache: one token per (registry, realm, service, identity, scopes),
//! one fetch in flight per key, refreshed ahead of expiry.
//!
//! Expiry of a token, in order of trust:
//! 1. the JWT `exp`, when the token is a readable JWT (base64url payload with
//!    an integer `exp`; the client does not verify signatures, the registry
//!    does) and it is still ahead by the local clock;
//! 2. `issued_at` + `expires_in` (default and floor 60 s), when `issued_at`
//!    parses, is not more than 60 s in the local clock's future, and does not
//!    make the token expired on arrival;
//! 3. the local time of receipt + `expires_in`.
//!
//! A token is reused while its remaining lifetime exceeds a margin of
//! max(10 % of its lifetime, 5 s), plus, before a long upload, the upload's
//! expected duration ([`TokenCache::token_for_duration`]).
//!
//! The identity in a key is `anonymous`, or a SHA-256 of the secret together
//! with the user name: never the secret itself.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_core::reference::Registry;
use berth_core::{Scope, Scopes, TokenResponse};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::credentials::Credential;

/// The shortest refresh margin.
const MIN_MARGIN: Duration = Duration::from_secs(5);
/// How far in the future an `issued_at` may be before it is distrusted.
const MAX_ISSUED_AT_SKEW: i64 = 60;

/// Where the cache reads the time; tests inject a [`ManualClock`].
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to (for tests of expiry).
#[derive(Debug)]
pub struct ManualClock {
    start: SystemTime,
    offset_ms: AtomicU64,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: SystemTime) -> Self {
        Self {
            start,
            offset_ms: AtomicU64::new(0),
        }
    }

    /// A clock standing at the system's current time.
    pub fn starting_now() -> Self {
        Self::new(SystemTime::now())
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.start + Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }
}

/// Who asks for a token, as it appears in a cache key: `anonymous`,
/// `basic:<user>:<sha256>` or `refresh:<sha256>`, where the hash covers the
/// secret (so a changed password never reuses the old password's tokens).
pub fn identity_of(credential: Option<&Credential>) -> String {
    fn hash(parts: &[&str]) -> String {
        let mut h = Sha256::new();
        h.update(b"berth-client token cache\0");
        for part in parts {
            h.update(part.as_bytes());
            h.update([0]);
        }
        hex::encode(h.finalize())
    }
    match credential {
        None => "anonymous".to_owned(),
        Some(Credential::Basic { username, password }) => {
            format!("basic:{username}:{}", hash(&[username, password]))
        }
        Some(Credential::IdentityToken(token)) => format!("refresh:{}", hash(&[token])),
    }
}

/// What a cached token is for. Two requests with equal keys may share a token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    registry: String,
    realm: String,
    service: String,
    identity: String,
    scopes: String,
}

impl CacheKey {
    /// The key of a token from `realm` for `service`, asked by `credential`
    /// for `scopes` (canonical: sorted by type and name, actions sorted).
    pub fn new(
        registry: &Registry,
        realm: &str,
        service: Option<&str>,
        credential: Option<&Credential>,
        scopes: &Scopes,
    ) -> Self {
        Self {
            registry: registry.to_string(),
            realm: realm.to_owned(),
            service: service.unwrap_or_default().to_owned(),
            identity: identity_of(credential),
            scopes: scopes.to_string(),
        }
    }

    /// The canonical scope string of the key.
    pub fn scopes(&self) -> &str {
        &self.scopes
    }

    /// The identity part of the key (never a secret).
    pub fn identity(&self) -> &str {
        &self.identity
    }
}

/// Where a token's expiry came from (the module doc's order of trust).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpirySource {
    /// The JWT's `exp` claim.
    JwtExp,
    /// The response's `issued_at` + `expires_in` (default 60 s when not sent).
    IssuedAt,
    /// The local time of receipt + `expires_in` (default 60 s when not sent).
    Received,
}

impl fmt::Display for ExpirySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::JwtExp => "the JWT's exp claim",
            Self::IssuedAt => "issued_at + expires_in",
            Self::Received => "time of receipt + expires_in",
        })
    }
}

/// A token and what is known of its life.
#[derive(Clone, PartialEq, Eq)]
pub struct CachedToken {
    token: String,
    fetched_at: SystemTime,
    expires_at: SystemTime,
    expiry: ExpirySource,
    granted: Option<Scopes>,
}

impl fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedToken")
            .field("token", &"<redacted>")
            .field("fetched_at", &self.fetched_at)
            .field("expires_at", &self.expires_at)
            .field("expiry", &self.expiry)
            .field("granted", &self.granted)
            .finish()
    }
}

impl CachedToken {
    /// A token received at `now` in `response`; its expiry per the module doc.
    pub fn from_response(response: &TokenResponse, now: SystemTime) -> Self {
        let token = response.bearer_token().to_owned();
        let claims = jwt_payload(&token);
        let lifetime = Duration::from_secs(response.lifetime_secs());
        let now_unix = unix(now);
        let from_exp = claims
            .as_ref()
            .and_then(|c| c.get("exp"))
            .and_then(Value::as_i64)
            // An `exp` already past by the local clock means the clocks
            // disagree; trusting it would refetch on every request.
            .filter(|exp| *exp > now_unix)
            .map(at_unix);
        // Likewise an `issued_at` so old that the token would be expired on
        // arrival: the receipt time is then the better clock.
        let from_issued = response
            .issued_at_unix()
            .filter(|issued| *issued <= now_unix + MAX_ISSUED_AT_SKEW)
            .map(|issued| at_unix(issued) + lifetime)
            .filter(|at| *at > now);
        let (expires_at, expiry) = match (from_exp, from_issued) {
            (Some(at), _) => (at, ExpirySource::JwtExp),
            (None, Some(at)) => (at, ExpirySource::IssuedAt),
            (None, None) => (now + lifetime, ExpirySource::Received),
        };
        let granted = response
            .scope
            .as_deref()
            .and_then(|s| Scopes::parse(s).ok())
            .or_else(|| claims.as_ref().and_then(granted_by_claims));
        Self {
            token,
            fetched_at: now,
            expires_at,
            expiry,
            granted,
        }
    }

    /// A token with a known expiry (for tests and for callers with their own source).
    pub fn new(token: String, fetched_at: SystemTime, expires_at: SystemTime) -> Self {
        Self {
            token,
            fetched_at,
            expires_at,
            expiry: ExpirySource::Received,
            granted: None,
        }
    }

    /// The bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// When it expires.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// Where its expiry came from.
    pub fn expiry_source(&self) -> ExpirySource {
        self.expiry
    }

    /// Its lifetime as seen when it was received.
    pub fn lifetime(&self) -> Duration {
        self.expires_at
            .duration_since(self.fetched_at)
            .unwrap_or_default()
    }

    /// How long before expiry it is refreshed: max(10 % of the lifetime, 5 s).
    pub fn margin(&self) -> Duration {
        (self.lifetime() / 10).max(MIN_MARGIN)
    }

    /// Time left at `now` (zero once expired).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.expires_at.duration_since(now).unwrap_or_default()
    }

    /// Whether it stays valid from `now` for `duration` plus the margin.
    pub fn usable_for(&self, now: SystemTime, duration: Duration) -> bool {
        self.remaining(now) > duration + self.margin()
    }

    /// What the token service says it granted (the OAuth2 `scope` echo, or the
    /// JWT's `access` claim), when that can be read.
    pub fn granted(&self) -> Option<&Scopes> {
        self.granted.as_ref()
    }
}

/// What a caller needs of a cached token.
#[derive(Debug, Clone, Copy, Default)]
pub struct Need<'a> {
    /// It must stay valid this long beyond the refresh margin.
    pub duration: Duration,
    /// A token the registry just refused: never hand it back.
    pub reject: Option<&'a str>,
}

type Slot = Arc<tokio::sync::Mutex<Option<CachedToken>>>;

/// Tokens by [`CacheKey`]; share one between clients through an `Arc`.
pub struct TokenCache {
    clock: Arc<dyn Clock>,
    slots: Mutex<HashMap<CacheKey, Slot>>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("clock", &self.clock)
            .field("keys", &self.len())
            .finish()
    }
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenCache {
    /// An empty cache on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// An empty cache reading time from `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The cache's current time.
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// The number of keys held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The token held for `key`, if any, without fetching (it may be stale).
    pub fn peek(&self, key: &CacheKey) -> Option<CachedToken> {
        let slot = self.lock().get(key).cloned()?;
        slot.try_lock().ok().and_then(|held| held.clone())
    }

    /// The token for `key` if it meets `need`, else a new one from `fetch`.
    /// Concurrent callers with the same key wait for one fetch.
    pub async fn get_or_fetch<F, Fut, E>(
        &self,
        key: &CacheKey,
        need: Need<'_>,
        fetch: F,
    ) -> Result<CachedToken, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<CachedToken, E>>,
    {
        let slot = self.lock().entry(key.clone()).or_default().clone();
        let mut held = slot.lock().await;
        if let Some(token) = held.as_ref() {
            let rejected = need.reject == Some(token.token());
            if !rejected && token.usable_for(self.now(), need.duration) {
                return Ok(token.clone());
            }
        }
        let token = fetch().await?;
        *held = Some(token.clone());
        Ok(token)
    }

    /// The token for `key`, refreshed first when its remaining lifetime is
    /// shorter than `expected_secs` plus the margin: call before each request
    /// of a long upload, so the token cannot expire mid-layer.
    pub async fn token_for_duration<F, Fut, E>(
        &self,
        key: &CacheKey,
        expected_secs: u64,
        fetch: F,
    ) -> Result<CachedToken, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<CachedToken, E>>,
    {
        let need = Need {
            duration: Duration::from_secs(expected_secs),
            reject: None,
        };
        self.get_or_fetch(key, need, fetch).await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Slot>> {
        // The map is never left half-updated, so a poisoned lock is usable.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn at_unix(secs: i64) -> SystemTime {
    let magnitude = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// The JSON payload of a JWT, unverified; `None` for an opaque token.
pub(crate) fn jwt_payload(token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value.is_object().then_some(value)
}

/// The `access` claim (`[{"type","name","actions"}]`) as scopes.
fn granted_by_claims(claims: &Value) -> Option<Scopes> {
    let entries = claims.get("access")?.as_array()?;
    let mut scopes = Scopes::new();
    for entry in entries {
        let kind = entry.get("type")?.as_str()?;
        let name = entry.get("name")?.as_str()?;
        let actions: Vec<&str> = entry
            .get("actions")?
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if actions.is_empty() {
            continue;
        }
        let scope: Scope = format!("{kind}:{name}:{}", actions.join(","))
            .parse()
            .ok()?;
        scopes.insert(scope);
    }
    Some(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(json: &str) -> TokenResponse {
        TokenResponse::parse(json.as_bytes()).unwrap()
    }

    fn jwt(claims: &str) -> String {
        format!(
            "eyJhbGciOiJFUzI1NiJ9.{}.c2ln",
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    #[test]
    fn expiry_sources() {
        let now = at_unix(1_700_000_000);
        // Opaque token, no expires_in (GHCR): 60 s.
        let t = CachedToken::from_response(&response(r#"{"token":"opaque"}"#), now);
        assert_eq!(t.lifetime(), Duration::from_secs(60));
        assert_eq!(t.margin(), Duration::from_secs(6));
        assert_eq!(t.expiry_source(), ExpirySource::Received);
        // JWT exp wins over expires_in.
        let token = jwt(
            r#"{"exp":1700000600,"access":[{"type":"repository","name":"a","actions":["pull"]}]}"#,
        );
        let body = format!(r#"{{"token":"{token}","expires_in":60}}"#);
        let t = CachedToken::from_response(&response(&body), now);
        assert_eq!(t.lifetime(), Duration::from_secs(600));
        assert_eq!(t.granted().unwrap().to_string(), "repository:a:pull");
        assert_eq!(t.expiry_source(), ExpirySource::JwtExp);
        // issued_at + expires_in.
        let body = r#"{"token":"x","expires_in":300,"issued_at":"2023-11-14T22:12:20Z"}"#;
        let t = CachedToken::from_response(&response(body), now);
        assert_eq!(t.expires_at(), at_unix(1_700_000_000 - 60 + 300));
        assert_eq!(t.expiry_source(), ExpirySource::IssuedAt);
        // issued_at far in the future: distrusted.
        let body = r#"{"token":"x","expires_in":300,"issued_at":"2030-01-01T00:00:00Z"}"#;
        let t = CachedToken::from_response(&response(body), now);
        assert_eq!(t.lifetime(), Duration::from_secs(300));
        // A past exp (skewed clocks) falls back to expires_in.
        let body = format!(r#"{{"token":"{}","expires_in":120}}"#, jwt(r#"{"exp":5}"#));
        let t = CachedToken::from_response(&response(&body), now);
        assert_eq!(t.lifetime(), Duration::from_secs(120));
        // An issued_at so old the token would arrive expired (the local clock
        // runs ahead): the receipt time is used.
        let body = r#"{"token":"x","expires_in":300,"issued_at":"2023-11-14T00:00:00Z"}"#;
        let t = CachedToken::from_response(&response(body), now);
        assert_eq!(t.lifetime(), Duration::from_secs(300));
        assert_eq!(t.expiry_source(), ExpirySource::Received);
    }

    #[test]
    fn debug_redacts() {
        let t = CachedToken::new("s3cr3t".into(), UNIX_EPOCH, UNIX_EPOCH);
        assert!(!format!("{t:?}").contains("s3cr3t"));
        let c = Credential::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!identity_of(Some(&c)).contains("hunter2"));
    }
}
