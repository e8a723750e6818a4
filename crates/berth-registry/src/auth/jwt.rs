//! Registry tokens: issuing and verifying the JWTs `/token` hands out and the
//! gate checks.
//!
//! A token is a JWS compact serialisation (RFC 7515) signed with ES256 (a raw
//! 64-byte `r || s` signature, RFC 7518 section 3.4):
//!
//! ```text
//! header := {"typ":"JWT","alg":"ES256","kid":<RFC 7638 thumbprint>,"x5c":[<leaf DER, standard base64>]}
//! claims := {"iss","sub","aud":<service, one string>,"exp","nbf","iat","jti":<128 bits hex>,
//!            "access":[{"type","name","actions":[...]}]}
//! ```
//!
//! CNCF distribution 2.8 accepts these through the `x5c` chain to its
//! `rootcertbundle` (it refuses an `aud` array and a `kid`-only token), 3.x and
//! JWKS users through `kid`.
//!
//! Verification trusts nothing in the token but the `kid`: the algorithm must
//! be ES256 (`none`, HMAC, RSA and all else are refused), the key comes from our
//! [`KeyStore`] by `kid` (the token's own `x5c` and `jwk` headers are ignored),
//! then `iss` must equal ours byte for byte, `aud` must name our service, and
//! `exp` (required) and `nbf` hold with 60 s of leeway.
//!
//! ECDSA signatures are accepted in their low-S form only (s <= n/2, see
//! [`super::keys`]): the twin `(r, n - s)` of a valid signature is refused, so
//! that a token has one accepted spelling. A bearer token longer than
//! [`MAX_TOKEN_BYTES`], which no token of ours can be, is refused before it is
//! hashed or parsed.
//!
//! Verified tokens are cached until their `exp`, so a signature is checked
//! once, not on every request. The cache key is the SHA-256 of the token's
//! `payload.signature`, and a hit also requires the header to equal, byte for
//! byte, the one verified: a hit is exactly a token verified before. (Hashing
//! the whole token, two thirds of which is the `x5c` certificate, took ~1 µs;
//! this takes a third of that.) A hit takes one read lock of one of 16
//! shards and allocates nothing.
//!
//! The cache is bounded by bytes, not by count: an estimate of each entry's
//! heap (its claims' strings and vectors as the allocator rounds them, the
//! table slot, a header not shared with the signing key) is charged against a
//! budget of [`DEFAULT_CACHE_BYTES`] (64 MiB), split evenly over the shards.
//! A token of one scope is estimated at ~0.9 KB, so the budget holds ~70,000
//! of them, near the 100,000 the former count bound held (230 new tokens a
//! second over the default 5-minute lifetime); a token at the
//! scope limit of `/token` (100 scopes) at ~20 KB (~56 KB with the longest
//! names), so the budget holds 1,200 to 3,300 of those instead of letting
//! them take gigabytes (1,000-scope tokens, now refused, cost ~325 KB of RSS
//! each and took a server from 57 to 286 MB in 100 s). Measured: 4,800
//! distinct 100-scope tokens took a release server from 59 to 118 MB, where
//! it stayed from the 2,400th on (the unbounded cache grew by 32 KB a token).
//! An insert that would
//! pass a shard's budget first drops the shard's expired entries, then, if
//! that is not enough, arbitrary entries until the shard is at three quarters
//! of its budget (a dropped token costs one signature check when it comes
//! back); the estimate never passes the budget.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_core::scope::Scopes;
use berth_core::token::{AccessEntry, Audience, Claims};
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::keys::{KeyError, KeyStore, Signer, is_low_s};

/// Clock skew allowed on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: i64 = 60;
/// The longest token issued or accepted, in bytes. At the scope limit of
/// `/token` (100 scopes), with repository names of the longest (255
/// characters) and every action, a token is under 50 KB (its `x5c` header
/// ~1 KB, its claims ~36 KB before base64); the rest leaves room for long
/// issuer, service and user names.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;
/// The estimated bytes the verified-token cache may hold by default.
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Shards of the cache: verifications on different tokens rarely share a lock.
const CACHE_SHARDS: usize = 16;
/// Longest attacker-chosen header value quoted in an error.
const QUOTE_LIMIT: usize = 64;

/// Why a token was refused. The gate answers every one with 401
/// `invalid_token`; the reason goes to the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is not a well-formed JWT with a parsable header and claims.
    #[error("malformed token: {0}; send the token exactly as /token returned it")]
    Malformed(String),
    /// The header names an algorithm other than ES256.
    #[error("token algorithm {0:?} is not allowed (only ES256 is); get a new token from /token")]
    AlgorithmNotAllowed(String),
    /// The header's `kid` names no loaded signing key (or is absent).
    #[error("token key {0:?} is unknown here; get a new token from /token")]
    UnknownKey(String),
    /// The signature does not verify with the key `kid` names.
    #[error("token signature does not verify; get a new token from /token")]
    BadSignature,
    /// `exp` is past, beyond the leeway.
    #[error(
        "token expired at {exp} (now {now}, {LEEWAY_SECS} s leeway); get a new token from /token"
    )]
    Expired {
        /// The token's `exp`, Unix seconds.
        exp: i64,
        /// The time of the check, Unix seconds.
        now: i64,
    },
    /// `nbf` is ahead, beyond the leeway.
    #[error(
        "token is not valid before {nbf} (now {now}, {LEEWAY_SECS} s leeway); check the clocks of \
         the token service and the registry"
    )]
    NotYetValid {
        /// The token's `nbf`, Unix seconds.
        nbf: i64,
        /// The time of the check, Unix seconds.
        now: i64,
    },
    /// `iss` is not this token service.
    #[error("token issuer {0:?} is not this registry's token service; get a token from its /token")]
    WrongIssuer(String),
    /// `aud` does not name this registry's service.
    #[error("token audience {0:?} does not name this registry; get a token for its service")]
    WrongAudience(String),
    /// The token is longer than any this registry issues.
    #[error(
        "token of {0} bytes is longer than any this registry issues ({MAX_TOKEN_BYTES}); \
         get a new token from /token"
    )]
    TooLong(usize),
    /// The signature's `s` is above n/2: the twin of a low-S signature.
    #[error(
        "token signature is not in its low-S form (s > n/2), which this registry never \
         signs; get a new token from /token"
    )]
    HighS,
}

/// Where a grant came from, written into berth's own claims so that the gate
/// can ask policy about the same subject the token service asked about, and
/// refuse the token after a revocation (`auth/revocation.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    /// `berth_pat`: the personal access token the subject authenticated
    /// with, whose limits the gate applies too.
    pub pat: Option<i64>,
    /// `berth_gen`: the revocation generation the grant was made at.
    pub generation: Option<i64>,
    /// `berth_trust`: the trust rules a workload's ID token was exchanged
    /// through.
    pub trust: Vec<i64>,
}

/// A freshly signed token and its claims.
#[derive(Clone)]
pub struct IssuedToken {
    /// The compact JWT; a bearer secret, redacted from `Debug`.
    pub token: String,
    /// What the token says.
    pub claims: Claims,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"<redacted>")
            .field("claims", &self.claims)
            .finish()
    }
}

/// The JOSE header fields verification reads; all others are ignored.
#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

/// A verified token, remembered: its header as sent (shared with the signing
/// key's own header in the common case), its claims, and what it is
/// estimated to cost.
struct Verified {
    header: Arc<str>,
    claims: Arc<Claims>,
    bytes: usize,
}

/// One shard of the verified-token cache: SHA-256 of `payload.signature` ->
/// the token's header and claims, and the sum of their estimated bytes.
#[derive(Default)]
struct Entries {
    map: HashMap<[u8; 32], Verified>,
    bytes: usize,
}

type Shard = RwLock<Entries>;

impl Entries {
    /// Makes room for `incoming` bytes within `budget`: drops expired
    /// entries, then, if that is not enough, arbitrary ones until the shard
    /// holds at most three quarters of `budget` less `incoming`.
    fn make_room(&mut self, incoming: usize, budget: usize, now: i64) {
        if self.bytes + incoming <= budget {
            return;
        }
        let Entries { map, bytes } = self;
        map.retain(|_, v| {
            let live = v.claims.exp.saturating_add(LEEWAY_SECS) >= now;
            if !live {
                *bytes -= v.bytes;
            }
            live
        });
        if *bytes + incoming <= budget {
            return;
        }
        let goal = (budget - budget / 4).saturating_sub(incoming);
        map.retain(|_, v| {
            if *bytes <= goal {
                return true;
            }
            *bytes -= v.bytes;
            false
        });
    }
}

/// What the allocator gives for a request of `n` bytes: glibc rounds a
/// chunk to 16 bytes with an 8-byte header, 32 bytes at least.
fn heap(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (n + 8).next_multiple_of(16).max(32)
    }
}

/// The estimated bytes a cache entry of `claims` takes: the table slot (at
/// twice its size, for the table's free slots), the claims' own allocation
/// and every string and vector in them, and `header_bytes` of a header kept
/// for this entry alone.
fn entry_bytes(claims: &Claims, header_bytes: usize) -> usize {
    let string = |s: &String| heap(s.capacity());
    let strings = |v: &Vec<String>| {
        heap(v.capacity() * std::mem::size_of::<String>()) + v.iter().map(string).sum::<usize>()
    };
    let slot = 2 * (std::mem::size_of::<([u8; 32], Verified)>() + 1);
    // An `Arc`'s allocation holds two counters beside its value.
    let claims_alloc = heap(std::mem::size_of::<Claims>() + 16);
    let aud = match &claims.aud {
        Audience::One(aud) => string(aud),
        Audience::Many(auds) => strings(auds),
    };
    let access = heap(claims.access.capacity() * std::mem::size_of::<AccessEntry>())
        + claims
            .access
            .iter()
            .map(|e| string(&e.resource_type) + string(&e.name) + strings(&e.actions))
            .sum::<usize>();
    let header = if header_bytes == 0 {
        0
    } else {
        heap(header_bytes + 16)
    };
    slot + claims_alloc
        + string(&claims.iss)
        + string(&claims.sub)
        + aud
        + claims.jti.as_ref().map_or(0, string)
        + access
        + header
}

/// The parts of a compact JWS: `header.payload.signature`.
struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
    /// `header.payload`, the signed message.
    message: &'a str,
    /// `payload.signature`, what the cache hashes.
    body: &'a str,
}

impl<'a> Parts<'a> {
    fn split(token: &'a str) -> Result<Self, TokenError> {
        let parts = token.split_once('.').and_then(|(header, body)| {
            let (payload, signature) = body.split_once('.')?;
            let message = token.get(..header.len() + 1 + payload.len())?;
            (!signature.contains('.')).then_some(Parts {
                header,
                payload,
                signature,
                message,
                body,
            })
        });
        parts.ok_or_else(|| malformed("a JWT has three dot-separated parts"))
    }
}

/// Signs tokens with the active key of a [`KeyStore`] and verifies tokens
/// signed by any of its keys.
pub struct TokenIssuer {
    keys: Arc<KeyStore>,
    issuer: String,
    service: String,
    cache: Box<[Shard]>,
    /// The estimated bytes each shard may hold.
    shard_budget: usize,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("issuer", &self.issuer)
            .field("service", &self.service)
            .field("cached", &self.cached())
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// A token service named `issuer` (the `iss` claim) for the registry
    /// `service` (the `aud` claim), signing with `keys`.
    pub fn new(keys: Arc<KeyStore>, issuer: String, service: String) -> Self {
        Self::with_cache_budget(keys, issuer, service, DEFAULT_CACHE_BYTES)
    }

    /// Like [`Self::new`], with a verified-token cache of at most
    /// `cache_bytes` estimated bytes.
    pub fn with_cache_budget(
        keys: Arc<KeyStore>,
        issuer: String,
        service: String,
        cache_bytes: usize,
    ) -> Self {
        TokenIssuer {
            keys,
            issuer,
            service,
            cache: (0..CACHE_SHARDS).map(|_| RwLock::default()).collect(),
            shard_budget: cache_bytes / CACHE_SHARDS,
        }
    }

    /// Signs a token for `subject` (empty for anonymous) granting `access`,
    /// valid from `now_unix` for `lifetime_secs`.
    pub fn issue(
        &self,
        subject: &str,
        access: &Scopes,
        lifetime_secs: u64,
        now_unix: i64,
    ) -> Result<IssuedToken, KeyError> {
        self.issue_for(
            subject,
            &Provenance::default(),
            access,
            lifetime_secs,
            now_unix,
        )
    }

    /// Like [`Self::issue`], recording where the grant came from
    /// ([`Provenance`]) in berth's own claims.
    pub fn issue_for(
        &self,
        subject: &str,
        provenance: &Provenance,
        access: &Scopes,
        lifetime_secs: u64,
        now_unix: i64,
    ) -> Result<IssuedToken, KeyError> {
        let signer = self.keys.active();
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).map_err(|e| KeyError::Sign(format!("no randomness: {e}")))?;
        let lifetime = i64::try_from(lifetime_secs).unwrap_or(i64::MAX);
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: subject.to_owned(),
            aud: Audience::One(self.service.clone()),
            exp: now_unix.saturating_add(lifetime),
            nbf: Some(now_unix),
            iat: Some(now_unix),
            jti: Some(hex::encode(jti)),
            access: Claims::access_from_scopes(access),
            pat: provenance.pat,
            generation: provenance.generation,
            trust: provenance.trust.clone(),
        };
        let payload = serde_json::to_vec(&claims).map_err(|e| KeyError::Sign(e.to_string()))?;
        let message = format!("{}.{}", signer.header, URL_SAFE_NO_PAD.encode(payload));
        let signature = signer.sign(message.as_bytes())?;
        let token = format!("{message}.{signature}");
        // Never hand out a token the gate would refuse.
        if token.len() > MAX_TOKEN_BYTES {
            return Err(KeyError::Sign(format!(
                "the token would be {} bytes, more than the {MAX_TOKEN_BYTES} the registry \
                 accepts; ask for fewer scopes, or use shorter issuer and service names",
                token.len()
            )));
        }
        Ok(IssuedToken { token, claims })
    }

    /// Verifies `token` at `now_unix` and returns its claims; a token seen
    /// before is answered from the cache (its times are checked again).
    pub fn verify(&self, token: &str, now_unix: i64) -> Result<Arc<Claims>, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLong(token.len()));
        }
        let parts = Parts::split(token)?;
        let hash: [u8; 32] = Sha256::digest(parts.body.as_bytes()).into();
        let shard = self.shard(&hash);
        let hit = shard
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .get(&hash)
            .filter(|v| *v.header == *parts.header)
            .map(|v| Arc::clone(&v.claims));
        if let Some(claims) = hit {
            check_times(&claims, now_unix)?;
            return Ok(claims);
        }
        let (signer, claims) = self.verify_uncached(&parts, now_unix)?;
        let claims = Arc::new(claims);
        let (header, own_header) = if *signer.header == *parts.header {
            (Arc::clone(&signer.header), 0)
        } else {
            (Arc::from(parts.header), parts.header.len())
        };
        let bytes = entry_bytes(&claims, own_header);
        if bytes > self.shard_budget {
            return Ok(claims);
        }
        let verified = Verified {
            header,
            claims: Arc::clone(&claims),
            bytes,
        };
        let mut entries = shard.write().unwrap_or_else(PoisonError::into_inner);
        entries.make_room(bytes, self.shard_budget, now_unix);
        // Another request may have verified the same token meanwhile.
        if let Some(old) = entries.map.insert(hash, verified) {
            entries.bytes -= old.bytes;
        }
        entries.bytes += bytes;
        Ok(claims)
    }

    /// The issuer this service writes and requires in `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The service this registry writes and requires in `aud`.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// How many verified tokens the cache holds.
    pub fn cached(&self) -> usize {
        self.cache
            .iter()
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner).map.len())
            .sum()
    }

    /// The estimated bytes the cached tokens take (never above the budget).
    pub fn cached_bytes(&self) -> usize {
        self.cache
            .iter()
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner).bytes)
            .sum()
    }

    fn shard(&self, hash: &[u8; 32]) -> &Shard {
        &self.cache[usize::from(hash[0]) % self.cache.len()]
    }

    /// The full check: header, key, signature, claims.
    fn verify_uncached(
        &self,
        parts: &Parts<'_>,
        now: i64,
    ) -> Result<(Arc<Signer>, Claims), TokenError> {
        let Parts {
            header,
            payload,
            signature,
            message,
            ..
        } = *parts;
        let header: Header = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or_else(|| malformed("the header is not base64url JSON with an `alg`"))?;
        if header.alg != "ES256" {
            return Err(TokenError::AlgorithmNotAllowed(quote(&header.alg)));
        }
        let kid = header.kid.unwrap_or_default();
        let signer = self
            .keys
            .get(&kid)
            .ok_or_else(|| TokenError::UnknownKey(quote(&kid)))?;
        let raw = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| malformed("the signature is not base64url"))?;
        let s: &[u8; 32] = match raw.get(32..) {
            Some(s) if raw.len() == 64 => s
                .try_into()
                .map_err(|_| malformed("an ES256 signature is 64 bytes (r || s)"))?,
            _ => return Err(malformed("an ES256 signature is 64 bytes (r || s)")),
        };
        if !is_low_s(s) {
            return Err(TokenError::HighS);
        }
        let valid = jsonwebtoken::crypto::verify(
            signature,
            message.as_bytes(),
            &signer.decoding,
            Algorithm::ES256,
        )
        .map_err(|_| malformed("the signature is not base64url"))?;
        if !valid {
            return Err(TokenError::BadSignature);
        }
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| malformed("the claims are not base64url"))?;
        // The reason only: the parse error would quote the claims.
        let claims = Claims::parse(&json).map_err(|e| malformed(e.reason()))?;
        if claims.iss != self.issuer {
            return Err(TokenError::WrongIssuer(quote(&claims.iss)));
        }
        if !claims.aud.contains(&self.service) {
            let aud = match &claims.aud {
                Audience::One(aud) => aud.clone(),
                Audience::Many(auds) => auds.join(","),
            };
            return Err(TokenError::WrongAudience(quote(&aud)));
        }
        check_times(&claims, now)?;
        Ok((signer, claims))
    }
}

/// Checks `exp` and `nbf` against `now` with [`LEEWAY_SECS`].
fn check_times(claims: &Claims, now: i64) -> Result<(), TokenError> {
    if now > claims.exp.saturating_add(LEEWAY_SECS) {
        return Err(TokenError::Expired {
            exp: claims.exp,
            now,
        });
    }
    if let Some(nbf) = claims.nbf
        && now < nbf.saturating_sub(LEEWAY_SECS)
    {
        return Err(TokenError::NotYetValid { nbf, now });
    }
    Ok(())
}

fn malformed(reason: &str) -> TokenError {
    TokenError::Malformed(reason.to_owned())
}

/// An attacker-chosen value, cut short for the log.
fn quote(value: &str) -> String {
    value.chars().take(QUOTE_LIMIT).collect()
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use jsonwebtoken::{EncodingKey, Header as JwtHeader};
    use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
    use serde_json::{Value, json};
    use tempfile::TempDir;

    use super::*;
    use crate::auth::keys::tests::{order_minus_for_tests, x5c};

    const ISS: &str = "berth-test-issuer";
    const SVC: &str = "registry.test";
    const NOW: i64 = 1_800_000_000;

    fn setup() -> (TempDir, Arc<KeyStore>, TokenIssuer) {
        let tmp = tempfile::tempdir().unwrap();
        let keys = Arc::new(KeyStore::open(&tmp.path().join("keys")).unwrap());
        let issuer = TokenIssuer::new(Arc::clone(&keys), ISS.into(), SVC.into());
        (tmp, keys, issuer)
    }

    fn scopes() -> Scopes {
        Scopes::parse_all(["repository:me/hello:pull,push", "registry:catalog:*"]).unwrap()
    }

    fn part(token: &str, i: usize) -> Value {
        let b64 = token.split('.').nth(i).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(b64).unwrap()).unwrap()
    }

    /// A token with this header and these claims, signed by `key` with `alg`
    /// (an ES256 signature in its low-S form, so that only what the test
    /// names is wrong with it).
    fn forge(header: &JwtHeader, claims: &Value, key: &EncodingKey) -> String {
        let token = jsonwebtoken::encode(header, claims, key).unwrap();
        if header.alg != Algorithm::ES256 {
            return token;
        }
        let (signed, s) = split_s(&token);
        if is_low_s(&s) {
            token
        } else {
            twin(signed, &token)
        }
    }

    /// A token's `header.payload` and the `s` of its ES256 signature.
    fn split_s(token: &str) -> (&str, [u8; 32]) {
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let raw = URL_SAFE_NO_PAD.decode(signature).unwrap();
        (signed, raw[32..].try_into().unwrap())
    }

    /// `token` with its signature (r, s) replaced by its twin (r, n - s).
    fn twin(signed: &str, token: &str) -> String {
        let (_, s) = split_s(token);
        let raw = URL_SAFE_NO_PAD
            .decode(token.rsplit_once('.').unwrap().1)
            .unwrap();
        let flipped = [&raw[..32], &order_minus_for_tests(&s)[..]].concat();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(flipped))
    }

    /// Valid claims for `iss`/`aud`, as JSON.
    fn good_claims() -> Value {
        json!({"iss": ISS, "sub": "mallory", "aud": SVC, "exp": NOW + 300, "nbf": NOW,
               "iat": NOW, "access": [{"type":"repository","name":"me/hello","actions":["*"]}]})
    }

    fn es256_header(kid: &str) -> JwtHeader {
        let mut header = JwtHeader::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        header
    }

    #[test]
    fn issue_then_verify_round_trips_exact_claims() {
        let (_tmp, _keys, issuer) = setup();
        let issued = issuer.issue("alice", &scopes(), 300, NOW).unwrap();
        let c = &issued.claims;
        assert_eq!((c.iss.as_str(), c.sub.as_str()), (ISS, "alice"));
        assert_eq!(c.aud, Audience::One(SVC.into()));
        assert_eq!((c.exp, c.nbf, c.iat), (NOW + 300, Some(NOW), Some(NOW)));
        let jti = c.jti.as_deref().unwrap();
        assert!(
            jti.len() == 32 && jti.bytes().all(|b| b.is_ascii_hexdigit()),
            "{jti}"
        );
        assert_eq!(c.access, Claims::access_from_scopes(&scopes()));
        assert_eq!(*issuer.verify(&issued.token, NOW).unwrap(), issued.claims);
        // On the wire: `aud` one string, times integers, actions arrays.
        let payload = part(&issued.token, 1);
        assert_eq!(
            payload,
            json!({"iss": ISS, "sub": "alice", "aud": SVC, "exp": NOW + 300, "nbf": NOW,
                   "iat": NOW, "jti": jti, "access": [
                       {"type":"registry","name":"catalog","actions":["*"]},
                       {"type":"repository","name":"me/hello","actions":["pull","push"]}]})
        );
        let other = issuer.issue("alice", &scopes(), 300, NOW).unwrap();
        assert_ne!(other.claims.jti, issued.claims.jti);
    }

    #[test]
    fn anonymous_token_has_empty_subject_and_access() {
        let (_tmp, _keys, issuer) = setup();
        let issued = issuer.issue("", &Scopes::new(), 60, NOW).unwrap();
        let payload = part(&issued.token, 1);
        assert_eq!(
            (&payload["sub"], &payload["access"]),
            (&json!(""), &json!([]))
        );
        let claims = issuer.verify(&issued.token, NOW).unwrap();
        assert!(claims.sub.is_empty() && claims.access.is_empty());
    }

    #[test]
    fn header_has_kid_and_x5c_chaining_to_the_root() {
        let (tmp, keys, issuer) = setup();
        let token = issuer.issue("alice", &scopes(), 300, NOW).unwrap().token;
        let header = part(&token, 0);
        let kid = keys.active_kid();
        let x5c = header["x5c"].as_array().unwrap();
        assert_eq!(x5c.len(), 1);
        let leaf_b64 = x5c[0].as_str().unwrap();
        assert_eq!(
            header,
            json!({"typ": "JWT", "alg": "ES256", "kid": kid, "x5c": [leaf_b64]})
        );
        // Standard base64 (RFC 7515 section 4.1.6), not base64url.
        let leaf_der = STANDARD.decode(leaf_b64).unwrap();
        let (_, leaf) = x509_parser::parse_x509_certificate(&leaf_der).unwrap();
        let root_pem = std::fs::read(tmp.path().join("keys/root.crt.pem")).unwrap();
        let (_, root_pem) = x509_parser::pem::parse_x509_pem(&root_pem).unwrap();
        let root = root_pem.parse_x509().unwrap();
        leaf.verify_signature(Some(root.public_key())).unwrap();
        assert_eq!(leaf.issuer(), root.subject());
        // The leaf certifies the key `kid` names.
        let point = leaf.public_key().subject_public_key.data.as_ref();
        let (x, y) = point[1..].split_at(32);
        assert_eq!(
            super::super::keys::thumbprint(&x.try_into().unwrap(), &y.try_into().unwrap()),
            kid
        );
    }

    #[test]
    fn alg_none_is_rejected() {
        let (_tmp, keys, issuer) = setup();
        let header = json!({"alg": "none", "typ": "JWT", "kid": keys.active_kid()});
        let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
        let head_body = format!("{}.{}", b64(&header), b64(&good_claims()));
        for token in [format!("{head_body}."), format!("{head_body}.AAAA")] {
            assert_eq!(
                issuer.verify(&token, NOW),
                Err(TokenError::AlgorithmNotAllowed("none".into()))
            );
        }
    }

    #[test]
    fn hs256_keyed_with_our_public_key_is_rejected() {
        let (_tmp, keys, issuer) = setup();
        let jwks = keys.jwks();
        let signer = keys.active();
        let x = URL_SAFE_NO_PAD
            .decode(jwks["keys"][0]["x"].as_str().unwrap())
            .unwrap();
        let y = URL_SAFE_NO_PAD
            .decode(jwks["keys"][0]["y"].as_str().unwrap())
            .unwrap();
        let point = [&[4u8][..], &x, &y].concat();
        let mut header = JwtHeader::new(Algorithm::HS256);
        header.kid = Some(signer.kid.clone());
        // Every form a confused verifier might use as the HMAC secret.
        for secret in [
            point,
            keys.root_pem().into_bytes(),
            x5c(&signer).into_bytes(),
        ] {
            let token = forge(&header, &good_claims(), &EncodingKey::from_secret(&secret));
            assert_eq!(
                issuer.verify(&token, NOW),
                Err(TokenError::AlgorithmNotAllowed("HS256".into()))
            );
        }
    }

    #[test]
    fn unknown_kid_is_rejected() {
        let (_tmp, keys, issuer) = setup();
        let token = forge(
            &es256_header("no-such-key"),
            &good_claims(),
            &keys.active().encoding,
        );
        assert_eq!(
            issuer.verify(&token, NOW),
            Err(TokenError::UnknownKey("no-such-key".into()))
        );
        let mut header = es256_header("");
        header.kid = None;
        let token = forge(&header, &good_claims(), &keys.active().encoding);
        assert_eq!(
            issuer.verify(&token, NOW),
            Err(TokenError::UnknownKey(String::new()))
        );
    }

    #[test]
    fn another_p256_key_claiming_our_kid_is_rejected() {
        let (_tmp, keys, issuer) = setup();
        let rogue = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut header = es256_header(&keys.active_kid());
        // Its own public key offered inline: ignored.
        header.jwk = Some(
            serde_json::from_value(json!({"kty":"EC","crv":"P-256",
                "x": URL_SAFE_NO_PAD.encode(&rogue.public_key_raw()[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&rogue.public_key_raw()[33..])}))
            .unwrap(),
        );
        let key = EncodingKey::from_ec_der(rogue.serialized_der());
        let token = forge(&header, &good_claims(), &key);
        assert_eq!(issuer.verify(&token, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_key_with_an_x5c_chain_to_another_root_is_rejected() {
        let (_tmp, _keys, issuer) = setup();
        let (_other_tmp, other_keys, other) = setup();
        // A complete, valid token of another berth with the same names.
        let token = other.issue("mallory", &scopes(), 300, NOW).unwrap().token;
        assert_eq!(
            issuer.verify(&token, NOW),
            Err(TokenError::UnknownKey(other_keys.active_kid()))
        );
        // The same, claiming our kid.
        let theirs = other_keys.active();
        let mut header = es256_header(&issuer.keys.active_kid());
        header.x5c = Some(vec![x5c(&theirs)]);
        let token = forge(&header, &good_claims(), &theirs.encoding);
        assert_eq!(issuer.verify(&token, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn expired_beyond_leeway_is_rejected() {
        let (_tmp, _keys, issuer) = setup();
        let token = issuer.issue("alice", &scopes(), 60, NOW).unwrap().token;
        let exp = NOW + 60;
        assert_eq!(
            issuer.verify(&token, exp + LEEWAY_SECS + 1),
            Err(TokenError::Expired {
                exp,
                now: exp + LEEWAY_SECS + 1
            })
        );
    }

    #[test]
    fn expiry_allows_leeway() {
        let (_tmp, _keys, issuer) = setup();
        let token = issuer.issue("alice", &scopes(), 60, NOW).unwrap().token;
        assert!(issuer.verify(&token, NOW + 60 + LEEWAY_SECS).is_ok());
    }

    #[test]
    fn not_before_in_the_future_beyond_leeway_is_rejected() {
        let (_tmp, _keys, issuer) = setup();
        let nbf = NOW + 3600;
        let token = issuer.issue("alice", &scopes(), 7200, nbf).unwrap().token;
        assert_eq!(
            issuer.verify(&token, nbf - LEEWAY_SECS - 1),
            Err(TokenError::NotYetValid {
                nbf,
                now: nbf - LEEWAY_SECS - 1
            })
        );
        assert!(issuer.verify(&token, nbf - LEEWAY_SECS).is_ok());
    }

    #[test]
    fn wrong_audience_is_rejected() {
        let (_tmp, keys, issuer) = setup();
        let elsewhere = TokenIssuer::new(keys, ISS.into(), "other.registry".into());
        let token = elsewhere.issue("alice", &scopes(), 300, NOW).unwrap().token;
        assert_eq!(
            issuer.verify(&token, NOW),
            Err(TokenError::WrongAudience("other.registry".into()))
        );
    }

    #[test]
    fn wrong_issuer_is_rejected() {
        let (_tmp, keys, issuer) = setup();
        let impostor = TokenIssuer::new(keys, format!("{ISS} "), SVC.into());
        let token = impostor.issue("alice", &scopes(), 300, NOW).unwrap().token;
        assert_eq!(
            issuer.verify(&token, NOW),
            Err(TokenError::WrongIssuer(format!("{ISS} ")))
        );
    }

    #[test]
    fn tampered_access_claim_is_rejected() {
        let (_tmp, _keys, issuer) = setup();
        let token = issuer.issue("alice", &scopes(), 300, NOW).unwrap().token;
        let (head, rest) = token.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let mut payload = part(&token, 1);
        payload["access"][1]["actions"] = json!(["pull", "push", "delete"]);
        let forged = format!(
            "{head}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap())
        );
        assert_eq!(issuer.verify(&forged, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn token_without_exp_is_rejected() {
        let (_tmp, keys, issuer) = setup();
        let mut claims = good_claims();
        claims.as_object_mut().unwrap().remove("exp");
        let token = forge(
            &es256_header(&keys.active_kid()),
            &claims,
            &keys.active().encoding,
        );
        assert!(matches!(
            issuer.verify(&token, NOW),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn garbage_is_malformed() {
        let (_tmp, _keys, issuer) = setup();
        for token in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "!!.e30.AA",
            "e30.e30.AA",
            "e30..",
            "...",
        ] {
            assert!(
                matches!(issuer.verify(token, NOW), Err(TokenError::Malformed(_))),
                "{token:?}"
            );
        }
    }

    #[test]
    fn tokens_from_before_a_rotation_still_verify() {
        let (_tmp, keys, issuer) = setup();
        let old_kid = keys.active_kid();
        let before = issuer.issue("alice", &scopes(), 300, NOW).unwrap().token;
        let new_kid = keys.rotate().unwrap();
        let after = issuer.issue("alice", &scopes(), 300, NOW).unwrap().token;
        assert_eq!(part(&before, 0)["kid"], old_kid.as_str());
        assert_eq!(part(&after, 0)["kid"], new_kid.as_str());
        assert!(issuer.verify(&before, NOW).is_ok());
        assert!(issuer.verify(&after, NOW).is_ok());
        let kids: Vec<_> = keys.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kids, vec![old_kid, new_kid]);
    }

    #[test]
    fn a_reopened_store_verifies_earlier_tokens() {
        let (tmp, _keys, issuer) = setup();
        let token = issuer.issue("alice", &scopes(), 300, NOW).unwrap().token;
        let reopened = Arc::new(KeyStore::open(&tmp.path().join("keys")).unwrap());
        let again = TokenIssuer::new(reopened, ISS.into(), SVC.into());
        assert!(again.verify(&token, NOW).is_ok());
    }

    #[test]
    fn verified_tokens_are_cached_and_still_expire() {
        let (_tmp, _keys, issuer) = setup();
        let token = issuer.issue("alice", &scopes(), 60, NOW).unwrap().token;
        let first = issuer.verify(&token, NOW).unwrap();
        assert_eq!(issuer.cached(), 1);
        let second = issuer.verify(&token, NOW + 1).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert!(matches!(
            issuer.verify(&token, NOW + 60 + LEEWAY_SECS + 1),
            Err(TokenError::Expired { .. })
        ));
        // A cached body under another header is no hit: the header is checked.
        let (_, body) = token.split_once('.').unwrap();
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"x"}"#);
        assert_eq!(
            issuer.verify(&format!("{none}.{body}"), NOW),
            Err(TokenError::AlgorithmNotAllowed("none".into()))
        );
        // Refused tokens are not cached.
        let _ = issuer.verify("a.b.c", NOW);
        assert_eq!(issuer.cached(), 1);
    }

    #[test]
    fn a_thousand_issued_tokens_are_all_low_s() {
        let (_tmp, _keys, issuer) = setup();
        for _ in 0..1000 {
            let token = issuer.issue("alice", &scopes(), 300, NOW).unwrap().token;
            let (_, s) = split_s(&token);
            assert!(is_low_s(&s), "{token}");
        }
    }

    #[test]
    fn the_high_s_twin_of_a_signature_is_refused() {
        let (_tmp, _keys, issuer) = setup();
        let token = issuer.issue("alice", &scopes(), 300, NOW).unwrap().token;
        let (signed, _) = split_s(&token);
        let twin = twin(signed, &token);
        // The twin is a valid ECDSA signature: only the low-S rule refuses it.
        let signer = issuer.keys.active();
        let signature = twin.rsplit_once('.').unwrap().1;
        assert!(
            jsonwebtoken::crypto::verify(
                signature,
                signed.as_bytes(),
                &signer.decoding,
                Algorithm::ES256
            )
            .unwrap()
        );
        assert_eq!(issuer.verify(&twin, NOW), Err(TokenError::HighS));
        assert!(issuer.verify(&token, NOW).is_ok());
        // Also once the original is cached.
        assert_eq!(issuer.verify(&twin, NOW), Err(TokenError::HighS));
    }

    #[test]
    fn a_token_longer_than_the_limit_is_refused_unread_and_never_issued() {
        let (_tmp, _keys, issuer) = setup();
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(
            issuer.verify(&long, NOW),
            Err(TokenError::TooLong(MAX_TOKEN_BYTES + 1))
        );
        let err = issuer
            .issue(&"s".repeat(MAX_TOKEN_BYTES), &scopes(), 300, NOW)
            .unwrap_err();
        assert!(err.to_string().contains("more than the 65536"), "{err}");
    }

    /// A subject of `len` bytes, to make a token's cache entry large.
    fn large_token(issuer: &TokenIssuer, len: usize, exp_in: u64, now: i64) -> String {
        let subject = "s".repeat(len);
        issuer
            .issue(&subject, &scopes(), exp_in, now)
            .unwrap()
            .token
    }

    /// Regression: the cache was bounded by count (100,000 tokens), not by
    /// bytes: one user asking for large tokens took the server from 57 to
    /// 286 MB in 100 s. The estimate never passes the budget, however many
    /// tokens come, and a recent token is still answered from the cache.
    #[test]
    fn large_tokens_never_take_the_cache_past_its_byte_budget() {
        let (_tmp, keys, _) = setup();
        let budget = 1 << 20;
        let issuer = TokenIssuer::with_cache_budget(keys, ISS.into(), SVC.into(), budget);
        let mut last = None;
        for _ in 0..400 {
            let token = large_token(&issuer, 8_000, 300, NOW);
            let claims = issuer.verify(&token, NOW).unwrap();
            assert!(
                issuer.cached_bytes() <= budget,
                "{} > {budget}",
                issuer.cached_bytes()
            );
            last = Some((token, claims));
        }
        // 400 tokens of ~8 KB each: most were dropped.
        let cached = issuer.cached();
        assert!((30..400).contains(&cached), "{cached} tokens cached");
        let (token, claims) = last.unwrap();
        assert!(Arc::ptr_eq(&claims, &issuer.verify(&token, NOW).unwrap()));
        // A small token costs ~1 KB by the estimate, a large one more than its subject.
        let small = issuer.issue("alice", &scopes(), 300, NOW).unwrap();
        let small_bytes = entry_bytes(&small.claims, 0);
        assert!((500..2_000).contains(&small_bytes), "{small_bytes}");
        let large = issuer
            .issue(&"s".repeat(8_000), &scopes(), 300, NOW)
            .unwrap();
        assert!(entry_bytes(&large.claims, 0) > 8_000);
    }

    #[test]
    fn a_full_cache_drops_expired_tokens_first() {
        let (_tmp, keys, _) = setup();
        let budget = 1 << 20;
        let issuer = TokenIssuer::with_cache_budget(keys, ISS.into(), SVC.into(), budget);
        // Tokens for 60 s, verified at NOW, then fresh ones two minutes later.
        let old: Vec<String> = (0..200)
            .map(|_| large_token(&issuer, 4_000, 60, NOW))
            .collect();
        for token in &old {
            issuer.verify(token, NOW).unwrap();
        }
        let later = NOW + 120 + LEEWAY_SECS;
        let fresh: Vec<String> = (0..60)
            .map(|_| large_token(&issuer, 4_000, 300, later))
            .collect();
        for token in &fresh {
            issuer.verify(token, later).unwrap();
        }
        assert!(issuer.cached_bytes() <= budget);
        // Every fresh token is still cached: the expired ones made room.
        let before = issuer.cached();
        for token in &fresh {
            issuer.verify(token, later).unwrap();
        }
        assert_eq!(issuer.cached(), before);
        let fresh_cached = fresh
            .iter()
            .filter(|t| {
                let (_, body) = t.split_once('.').unwrap();
                let hash: [u8; 32] = Sha256::digest(body.as_bytes()).into();
                issuer.shard(&hash).read().unwrap().map.contains_key(&hash)
            })
            .count();
        assert_eq!(fresh_cached, fresh.len());
    }
}
