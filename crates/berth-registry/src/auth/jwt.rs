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
//! Verified tokens are cached until their `exp`, so a signature is checked
//! once, not on every request. The cache key is the SHA-256 of the token's
//! `payload.signature`, and a hit also requires the header to equal, byte for
//! byte, the one verified: a hit is exactly a token verified before. (Hashing
//! the whole token, two thirds of which is the `x5c` certificate, took ~1 µs;
//! this takes a third of that.) The cache holds at most 100,000 tokens in 16
//! `RwLock` shards; a full shard drops its expired entries, then everything.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_core::scope::Scopes;
use berth_core::token::{Audience, Claims};
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::keys::{KeyError, KeyStore, Signer};

/// Clock skew allowed on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: i64 = 60;
/// The most verified tokens the cache holds.
const CACHE_CAPACITY: usize = 100_000;
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
/// key's own header in the common case) and its claims.
struct Verified {
    header: Arc<str>,
    claims: Arc<Claims>,
}

/// One shard of the verified-token cache: SHA-256 of `payload.signature` ->
/// the token's header and claims.
type Shard = RwLock<HashMap<[u8; 32], Verified>>;

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
        TokenIssuer {
            keys,
            issuer,
            service,
            cache: (0..CACHE_SHARDS).map(|_| RwLock::default()).collect(),
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
        self.issue_for_pat(subject, None, None, access, lifetime_secs, now_unix)
    }

    /// Like [`Self::issue`], recording in the `berth_pat` claim the personal
    /// access token the subject authenticated with, so that the gate applies
    /// that token's limits as the token service did, and in `berth_gen` the
    /// revocation generation the grant was made at (`auth/revocation.rs`).
    pub fn issue_for_pat(
        &self,
        subject: &str,
        pat: Option<i64>,
        generation: Option<i64>,
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
            pat,
            generation,
        };
        let payload = serde_json::to_vec(&claims).map_err(|e| KeyError::Sign(e.to_string()))?;
        let message = format!("{}.{}", signer.header, URL_SAFE_NO_PAD.encode(payload));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &signer.encoding, Algorithm::ES256)
                .map_err(|e| KeyError::Sign(e.to_string()))?;
        Ok(IssuedToken {
            token: format!("{message}.{signature}"),
            claims,
        })
    }

    /// Verifies `token` at `now_unix` and returns its claims; a token seen
    /// before is answered from the cache (its times are checked again).
    pub fn verify(&self, token: &str, now_unix: i64) -> Result<Arc<Claims>, TokenError> {
        let parts = Parts::split(token)?;
        let hash: [u8; 32] = Sha256::digest(parts.body.as_bytes()).into();
        let shard = self.shard(&hash);
        let hit = shard
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&hash)
            .filter(|v| *v.header == *parts.header)
            .map(|v| Arc::clone(&v.claims));
        if let Some(claims) = hit {
            check_times(&claims, now_unix)?;
            return Ok(claims);
        }
        let (signer, claims) = self.verify_uncached(&parts, now_unix)?;
        let claims = Arc::new(claims);
        let header = if *signer.header == *parts.header {
            Arc::clone(&signer.header)
        } else {
            Arc::from(parts.header)
        };
        let mut map = shard.write().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= CACHE_CAPACITY / CACHE_SHARDS {
            map.retain(|_, v| v.claims.exp.saturating_add(LEEWAY_SECS) >= now_unix);
            if map.len() >= CACHE_CAPACITY / CACHE_SHARDS {
                map.clear();
            }
        }
        let verified = Verified {
            header,
            claims: Arc::clone(&claims),
        };
        map.insert(hash, verified);
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
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner).len())
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
    use crate::auth::keys::tests::x5c;

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

    /// A token with this header and these claims, signed by `key` with `alg`.
    fn forge(header: &JwtHeader, claims: &Value, key: &EncodingKey) -> String {
        jsonwebtoken::encode(header, claims, key).unwrap()
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
}
