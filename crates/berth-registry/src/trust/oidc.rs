//! Verifying a workload's OpenID Connect ID token.
//!
//! In order, each failure its own [`IdTokenError`] (the client is told which):
//!
//! 1. at most [`MAX_ID_TOKEN_BYTES`]; three base64url parts, a JSON header
//!    and a JSON object payload;
//! 2. `alg` is RS256 or ES256: `none`, the HMAC algorithms (a token "signed"
//!    with the issuer's public key as an HMAC secret) and everything else are
//!    refused before any key is looked at;
//! 3. `iss` is one of the configured issuers, byte for byte (a trailing `/`
//!    aside): no other issuer's keys are ever fetched;
//! 4. the key named by `kid` is in the issuer's cached key set, whose kind
//!    fits `alg` (an RSA key for RS256, a P-256 key for ES256); a `kid` the
//!    cache lacks fetches the set again, at most once per
//!    [`OidcConfig::jwks_refresh`] per issuer (so tokens with made-up `kid`s
//!    cannot make berth hammer the issuer), then is refused;
//! 5. the signature verifies;
//! 6. `exp` has not passed, `nbf` (when present) has, `iat` is not in the
//!    future, each with [`LEEWAY_SECS`]; `iat` is at most
//!    [`OidcConfig::max_token_age`] ago.
//!
//! Keys: the issuer's discovery document
//! (`<issuer>/.well-known/openid-configuration`, whose `issuer` must be the
//! configured URL) names the key set (`jwks_uri`, `https://`, or loopback
//! when allowed). Both are fetched at the first token of the issuer, again
//! for an unknown `kid` (above), and again at use once the set is older than
//! [`KEYS_MAX_AGE`]. A failed fetch keeps the keys held: while the issuer is
//! unreachable, tokens signed by known keys keep verifying; a token whose key
//! was never fetched is refused ("unreachable"). Fail closed.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{OidcIssuer, check_issuer_url};
use crate::config::OidcConfig;

/// The longest ID token looked at (GitHub's are about 1.2 KB).
pub const MAX_ID_TOKEN_BYTES: usize = 16 * 1024;
/// Clock skew allowed on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: i64 = 60;
/// A key set older than this is fetched again at its next use (the old one
/// kept if that fails).
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(60 * 60);
/// The longest a fetch of a discovery document or key set may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest discovery document or key set read.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Why an ID token was refused; the message is the client's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    /// Too long.
    #[error(
        "the ID token is {0} bytes long; at most {MAX_ID_TOKEN_BYTES} are accepted: it is not \
         a JWT from a CI platform"
    )]
    TooLong(usize),
    /// Not three base64url parts with a JSON header and payload.
    #[error(
        "the ID token is not a JWT ({0}): send the ID token itself, as the CI platform issued it"
    )]
    NotJwt(&'static str),
    /// `alg` other than RS256 and ES256.
    #[error(
        "the ID token's algorithm is `{0}`; berth accepts RS256 and ES256 signatures only \
         (what GitHub Actions and GitLab CI use)"
    )]
    Algorithm(String),
    /// `iss` not configured.
    #[error(
        "the ID token's issuer `{0}` is not one this registry trusts (the operator adds \
         issuers with --oidc-issuer)"
    )]
    UnknownIssuer(String),
    /// The issuer's keys could never be fetched.
    #[error(
        "the issuer {issuer} is unreachable ({reason}) and the key the ID token is signed \
         with is not among those cached; try again later"
    )]
    Unreachable {
        /// The issuer URL.
        issuer: String,
        /// What failed.
        reason: String,
    },
    /// `kid` not published (after a fetch when one was allowed).
    #[error("the ID token is signed with key `{kid}`, which issuer {issuer} does not publish")]
    UnknownKey {
        /// The issuer URL.
        issuer: String,
        /// The token's `kid` (`(none)` when absent).
        kid: String,
    },
    /// The key is of another kind than `alg`.
    #[error("the ID token says algorithm {alg} but key `{kid}` of its issuer is for {key_alg}")]
    KeyAlgorithm {
        /// The token's `alg`.
        alg: String,
        /// The key.
        kid: String,
        /// What the key verifies.
        key_alg: String,
    },
    /// The signature does not verify.
    #[error("the ID token's signature does not verify with its issuer's key `{0}`")]
    BadSignature(String),
    /// A required claim is absent or of the wrong type.
    #[error("the ID token has no {0} claim (or not of the right type)")]
    MissingClaim(&'static str),
    /// `exp` passed.
    #[error("the ID token expired {0} s ago: request a fresh one from the CI platform")]
    Expired(i64),
    /// `nbf` ahead.
    #[error("the ID token is not valid before {0} (in {1} s): check the clocks")]
    NotYetValid(i64, i64),
    /// `iat` ahead.
    #[error("the ID token was issued in the future ({0} s from now): check the clocks")]
    IssuedInFuture(i64),
    /// `iat` too long ago.
    #[error(
        "the ID token is too old: issued {age} s ago, and this registry accepts ID tokens up \
         to {max} s old: request a fresh one"
    )]
    TooOld {
        /// Seconds since `iat`.
        age: i64,
        /// The maximum age.
        max: u64,
    },
}

/// A verified ID token.
#[derive(Debug, Clone)]
pub struct VerifiedIdToken {
    /// Its issuer (one of the configured ones).
    pub issuer: OidcIssuer,
    /// Its claims, `iss` and `aud` included.
    pub claims: Map<String, Value>,
}

impl VerifiedIdToken {
    /// The `sub` claim (empty when absent).
    pub fn subject(&self) -> &str {
        self.claims.get("sub").and_then(Value::as_str).unwrap_or("")
    }
}

/// Who an ID token says it is (`<iss> <sub>`), read without verifying it:
/// only for counting failed exchanges per workload (`auth/authenticate.rs`),
/// so that one job's broken token does not lock out the other jobs behind
/// the same address. `None` when the payload does not parse.
pub fn unverified_identity(token: &str) -> Option<String> {
    if token.len() > MAX_ID_TOKEN_BYTES {
        return None;
    }
    let payload = token.split('.').nth(1)?;
    let claims: Map<String, Value> = decode_json(payload, "").ok()?;
    let text = |name| claims.get(name).and_then(Value::as_str).unwrap_or("");
    let identity = format!("{} {}", text("iss"), text("sub"));
    Some(identity.chars().take(300).collect())
}

/// A usable key of an issuer.
struct Key {
    alg: Algorithm,
    decoding: DecodingKey,
}

/// An issuer's keys as last fetched.
#[derive(Default)]
struct KeySet {
    keys: HashMap<String, Arc<Key>>,
    fetched_at: Option<Instant>,
}

/// One configured issuer's cache.
struct IssuerKeys {
    issuer: OidcIssuer,
    keys: RwLock<Arc<KeySet>>,
    /// One fetch at a time, and how the last one went.
    fetching: tokio::sync::Mutex<LastFetch>,
}

/// The last attempt at an issuer's keys.
#[derive(Default)]
struct LastFetch {
    at: Option<Instant>,
    /// Why it failed; `None` when it succeeded.
    failed: Option<String>,
}

/// The ID token verifier: the configured issuers and their cached keys.
pub struct Verifier {
    issuers: HashMap<String, IssuerKeys>,
    http: reqwest::Client,
    allow_loopback: bool,
    max_age: Duration,
    refresh: Duration,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    /// RFC 7515 section 4.1.11: extensions the verifier must understand;
    /// berth understands none, so a token naming any is refused.
    crit: Option<Value>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl Verifier {
    /// A verifier for the issuers of `config`; nothing is fetched yet.
    pub fn new(config: &OidcConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        let issuers = config
            .issuers
            .iter()
            .map(|issuer| {
                (
                    issuer.url.clone(),
                    IssuerKeys {
                        issuer: issuer.clone(),
                        keys: RwLock::default(),
                        fetching: tokio::sync::Mutex::default(),
                    },
                )
            })
            .collect();
        Self {
            issuers,
            http,
            allow_loopback: config.allow_loopback,
            max_age: config.max_token_age,
            refresh: config.jwks_refresh,
        }
    }

    /// Verifies `token` at `now` (Unix seconds); see the module doc.
    pub async fn verify(&self, token: &str, now: i64) -> Result<VerifiedIdToken, IdTokenError> {
        if token.len() > MAX_ID_TOKEN_BYTES {
            return Err(IdTokenError::TooLong(token.len()));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(IdTokenError::NotJwt(
                "a JWT has three parts separated by `.`",
            ));
        };
        let header: Header = decode_json(header, "its header is not base64url JSON")?;
        if header.crit.is_some() {
            return Err(IdTokenError::NotJwt(
                "its header names critical extensions (`crit`), which berth does not implement",
            ));
        }
        let alg = match header.alg.as_str() {
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            other => return Err(IdTokenError::Algorithm(excerpt(other))),
        };
        let claims: Map<String, Value> =
            decode_json(payload, "its payload is not a base64url JSON object")?;
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(IdTokenError::MissingClaim("`iss` (string)"))?;
        // The configured URL, or it with one trailing `/`.
        let issuer = self
            .issuers
            .get(iss.strip_suffix('/').unwrap_or(iss))
            .ok_or_else(|| IdTokenError::UnknownIssuer(excerpt(iss)))?;
        let kid = header.kid.unwrap_or_default();
        let key = self.key(issuer, &kid, alg).await?;
        let message_len = token.len() - signature.len() - 1;
        let valid = jsonwebtoken::crypto::verify(
            signature,
            &token.as_bytes()[..message_len],
            &key.decoding,
            alg,
        )
        .unwrap_or(false);
        if !valid {
            return Err(IdTokenError::BadSignature(shown_kid(&kid)));
        }
        self.check_times(&claims, now)?;
        Ok(VerifiedIdToken {
            issuer: issuer.issuer.clone(),
            claims,
        })
    }

    fn check_times(&self, claims: &Map<String, Value>, now: i64) -> Result<(), IdTokenError> {
        let time = |name| claims.get(name).and_then(Value::as_i64);
        let exp = time("exp").ok_or(IdTokenError::MissingClaim("`exp` (integer)"))?;
        if now > exp.saturating_add(LEEWAY_SECS) {
            return Err(IdTokenError::Expired(now - exp));
        }
        if let Some(nbf) = time("nbf")
            && now.saturating_add(LEEWAY_SECS) < nbf
        {
            return Err(IdTokenError::NotYetValid(nbf, nbf - now));
        }
        let iat = time("iat").ok_or(IdTokenError::MissingClaim("`iat` (integer)"))?;
        if now.saturating_add(LEEWAY_SECS) < iat {
            return Err(IdTokenError::IssuedInFuture(iat - now));
        }
        let max = self.max_age.as_secs();
        let age = now.saturating_sub(iat);
        if age > i64::try_from(max).unwrap_or(i64::MAX) {
            return Err(IdTokenError::TooOld { age, max });
        }
        Ok(())
    }

    /// The key `kid` of `issuer` for `alg`, fetching the key set when the
    /// cache lacks it (or is old) and a fetch is due.
    async fn key(
        &self,
        issuer: &IssuerKeys,
        kid: &str,
        alg: Algorithm,
    ) -> Result<Arc<Key>, IdTokenError> {
        let fresh = |set: &KeySet| {
            set.fetched_at
                .is_some_and(|at| at.elapsed() <= KEYS_MAX_AGE)
        };
        let cached = issuer.current();
        if fresh(&cached)
            && let Some(key) = find_key(&cached, kid, alg)
        {
            return check_alg(&key, kid, alg);
        }
        let mut last = issuer.fetching.lock().await;
        // Another request may have fetched while this one waited.
        let now_cached = issuer.current();
        if fresh(&now_cached)
            && let Some(key) = find_key(&now_cached, kid, alg)
        {
            return check_alg(&key, kid, alg);
        }
        let unknown = || IdTokenError::UnknownKey {
            issuer: issuer.issuer.url.clone(),
            kid: shown_kid(kid),
        };
        let unreachable = |reason: &str| IdTokenError::Unreachable {
            issuer: issuer.issuer.url.clone(),
            reason: reason.to_owned(),
        };
        if last.at.is_some_and(|at| at.elapsed() < self.refresh) {
            // Not due: the key held, else the last fetch's verdict.
            return match (find_key(&now_cached, kid, alg), &last.failed) {
                (Some(key), _) => check_alg(&key, kid, alg),
                (None, Some(reason)) => Err(unreachable(reason)),
                (None, None) => Err(unknown()),
            };
        }
        last.at = Some(Instant::now());
        match self.fetch(&issuer.issuer).await {
            Ok(set) => {
                last.failed = None;
                let set = Arc::new(set);
                *issuer.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&set);
                match find_key(&set, kid, alg) {
                    Some(key) => check_alg(&key, kid, alg),
                    None => Err(unknown()),
                }
            }
            Err(reason) => {
                tracing::warn!(
                    issuer = %issuer.issuer.url,
                    error = %reason,
                    "cannot fetch an OpenID Connect issuer's keys; the cached ones stay in use"
                );
                let verdict = match find_key(&now_cached, kid, alg) {
                    Some(key) => check_alg(&key, kid, alg),
                    None => Err(unreachable(&reason)),
                };
                last.failed = Some(reason);
                verdict
            }
        }
    }

    /// The discovery document, then the key set it names.
    async fn fetch(&self, issuer: &OidcIssuer) -> Result<KeySet, String> {
        let discovery_url = format!("{}/.well-known/openid-configuration", issuer.url);
        let discovery: Discovery = self.get_json(&discovery_url).await?;
        if discovery.issuer.trim_end_matches('/') != issuer.url {
            return Err(format!(
                "its discovery document names issuer `{}`, not `{}`",
                excerpt(&discovery.issuer),
                issuer.url
            ));
        }
        check_issuer_url(&discovery.jwks_uri, self.allow_loopback)
            .map_err(|e| format!("its jwks_uri: {e}"))?;
        let set: Value = self.get_json(&discovery.jwks_uri).await?;
        let keys = set
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{} has no `keys` array", discovery.jwks_uri))?;
        // Two keys without a `kid` cannot be told apart: neither is kept
        // under the empty one (a token without `kid` then uses the only key of
        // its algorithm, if there is one: [`find_key`]).
        let mut usable: HashMap<String, Arc<Key>> = HashMap::new();
        let mut unnamed = 0;
        for (kid, key) in keys
            .iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
            .filter_map(|jwk| usable_key(&jwk))
        {
            if kid.is_empty() {
                unnamed += 1;
            }
            usable.insert(kid, key);
        }
        if unnamed > 1 {
            usable.remove("");
        }
        let keys = usable;
        Ok(KeySet {
            keys,
            fetched_at: Some(Instant::now()),
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let mut response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("GET {url}: larger than {MAX_DOCUMENT_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not the JSON expected: {e}"))
    }
}

impl IssuerKeys {
    fn current(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The key for `kid`; a token without `kid` uses the issuer's only key for
/// its algorithm, if there is exactly one.
fn find_key(set: &KeySet, kid: &str, alg: Algorithm) -> Option<Arc<Key>> {
    if !kid.is_empty() {
        return set.keys.get(kid).cloned();
    }
    let mut of_alg = set.keys.values().filter(|k| k.alg == alg);
    match (of_alg.next(), of_alg.next()) {
        (Some(key), None) => Some(Arc::clone(key)),
        _ => None,
    }
}

fn check_alg(key: &Arc<Key>, kid: &str, alg: Algorithm) -> Result<Arc<Key>, IdTokenError> {
    if key.alg == alg {
        Ok(Arc::clone(key))
    } else {
        Err(IdTokenError::KeyAlgorithm {
            alg: format!("{alg:?}"),
            kid: shown_kid(kid),
            key_alg: format!("{:?}", key.alg),
        })
    }
}

/// A signing key of a key set that verifies RS256 or ES256: an RSA key, or
/// an EC key on P-256, not marked for encryption, whose `alg` (when given)
/// agrees; keyed by `kid` (an unnamed key under the empty one).
fn usable_key(jwk: &Jwk) -> Option<(String, Arc<Key>)> {
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    if let Some(ops) = &jwk.common.key_operations
        && !ops.contains(&KeyOperations::Verify)
    {
        return None;
    }
    let alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        _ => return None,
    };
    let stated = jwk.common.key_algorithm;
    let agrees = match stated {
        None => true,
        Some(KeyAlgorithm::RS256) => alg == Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => alg == Algorithm::ES256,
        Some(_) => false,
    };
    if !agrees {
        return None;
    }
    let decoding = DecodingKey::from_jwk(jwk).ok()?;
    let kid = jwk.common.key_id.clone().unwrap_or_default();
    Some((kid, Arc::new(Key { alg, decoding })))
}

fn decode_json<T: serde::de::DeserializeOwned>(
    part: &str,
    what: &'static str,
) -> Result<T, IdTokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| IdTokenError::NotJwt(what))?;
    serde_json::from_slice(&bytes).map_err(|_| IdTokenError::NotJwt(what))
}

fn shown_kid(kid: &str) -> String {
    if kid.is_empty() {
        "(none)".to_owned()
    } else {
        excerpt(kid)
    }
}

/// At most 100 characters of a value from the token, for messages.
fn excerpt(s: &str) -> String {
    s.chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::{IssuerKind, OidcIssuer};

    fn verifier() -> Verifier {
        Verifier::new(&OidcConfig {
            issuers: vec![OidcIssuer {
                kind: IssuerKind::Github,
                url: "https://issuer.example".into(),
            }],
            ..OidcConfig::default()
        })
    }

    fn token(header: Value, payload: Value) -> String {
        let part = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.c2ln", part(header), part(payload))
    }

    /// Refusals decided before any key is fetched (the issuer here does not
    /// exist): each names its cause.
    #[tokio::test]
    async fn refusals_before_any_key_is_looked_at() {
        let v = verifier();
        let payload = serde_json::json!({"iss": "https://issuer.example", "sub": "x"});
        let cases = [
            (
                token(serde_json::json!({"alg": "none"}), payload.clone()),
                "algorithm is `none`",
            ),
            (
                token(
                    serde_json::json!({"alg": "HS256", "kid": "k"}),
                    payload.clone(),
                ),
                "`HS256`",
            ),
            (
                token(
                    serde_json::json!({"alg": "RS256", "crit": ["exp"]}),
                    payload.clone(),
                ),
                "critical extensions",
            ),
            (
                token(
                    serde_json::json!({"alg": "RS256"}),
                    serde_json::json!({"iss": "https://other.example"}),
                ),
                "issuer `https://other.example` is not one",
            ),
            (
                token(
                    serde_json::json!({"alg": "RS256"}),
                    serde_json::json!({"iss": ["https://issuer.example"]}),
                ),
                "no `iss`",
            ),
            ("a.b".to_owned(), "not a JWT"),
            ("x".repeat(MAX_ID_TOKEN_BYTES + 1), "at most 16384"),
        ];
        for (token, words) in cases {
            let e = v.verify(&token, 0).await.unwrap_err().to_string();
            assert!(e.contains(words), "{words}: {e}");
        }
    }

    #[test]
    fn the_unverified_identity_counts_failures_per_workload() {
        let t = token(
            serde_json::json!({"alg": "RS256"}),
            serde_json::json!({"iss": "https://i", "sub": "repo:a/b:ref:x"}),
        );
        assert_eq!(
            unverified_identity(&t).as_deref(),
            Some("https://i repo:a/b:ref:x")
        );
        assert_eq!(unverified_identity("garbage"), None);
    }
}
