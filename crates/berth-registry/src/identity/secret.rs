//! Personal access tokens and refresh tokens as secrets.
//!
//! A secret is a prefix and 43 base62 characters drawn from the operating
//! system's random number generator: `berth_pat_…` for a personal access
//! token, `berth_rt_…` for a refresh token. 43 base62 characters carry
//! 43 × log2(62) ≈ 256.0 bits. The prefix lets secret scanners and
//! [`looks_like_pat`] recognise them.
//!
//! Only the SHA-256 of a secret is stored. A high-entropy secret needs no salt
//! or slow hash: the hash is an index to look it up by, and the row found is
//! compared again in constant time ([`ct_eq`]).

use std::fmt;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use super::IdentityError;

/// The prefix of a personal access token.
pub const PAT_PREFIX: &str = "berth_pat_";
/// The prefix of a refresh token.
pub const REFRESH_TOKEN_PREFIX: &str = "berth_rt_";
/// The number of random base62 characters after the prefix.
pub const SECRET_CHARS: usize = 43;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A secret handed to a user once: never printed by `Debug`, never stored.
/// It has no `PartialEq` on purpose: compare hashes with [`ct_eq`].
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret received from a client.
    pub fn new(secret: String) -> Self {
        Self(secret)
    }

    /// The secret itself, to show the user once or to hash.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the secret: what the store keeps.
    pub fn hash(&self) -> [u8; 32] {
        hash_secret(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A new personal access token (`berth_pat_` + 43 base62) and its SHA-256.
pub fn generate_pat() -> Result<(Secret, [u8; 32]), IdentityError> {
    generate(PAT_PREFIX)
}

/// A new refresh token (`berth_rt_` + 43 base62) and its SHA-256.
pub fn generate_refresh_token() -> Result<(Secret, [u8; 32]), IdentityError> {
    generate(REFRESH_TOKEN_PREFIX)
}

fn generate(prefix: &str) -> Result<(Secret, [u8; 32]), IdentityError> {
    let mut out = String::with_capacity(prefix.len() + SECRET_CHARS);
    out.push_str(prefix);
    let mut chars = 0;
    let mut buf = [0u8; 64];
    while chars < SECRET_CHARS {
        getrandom::fill(&mut buf).map_err(|e| IdentityError::Random(e.to_string()))?;
        // Rejection sampling: 248 = 4 × 62, so `b % 62` is uniform for b < 248.
        for b in buf.iter().filter(|&&b| b < 248) {
            if chars == SECRET_CHARS {
                break;
            }
            out.push(char::from(BASE62[usize::from(b % 62)]));
            chars += 1;
        }
    }
    let secret = Secret(out);
    let hash = secret.hash();
    Ok((secret, hash))
}

/// SHA-256 of a secret as presented by a client.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Whether `s` has the shape of a berth personal access token (prefix and 43
/// base62 characters), so a password field holding one can be tried as a PAT.
pub fn looks_like_pat(s: &str) -> bool {
    s.strip_prefix(PAT_PREFIX).is_some_and(|rest| {
        rest.len() == SECRET_CHARS && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// Whether `a` and `b` are equal, in time that depends on their lengths only.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pats_have_their_shape_and_hash() {
        let (secret, hash) = generate_pat().unwrap();
        let s = secret.expose();
        assert!(s.starts_with("berth_pat_"), "{s}");
        assert_eq!(s.len(), "berth_pat_".len() + 43);
        assert!(looks_like_pat(s));
        assert_eq!(hash, hash_secret(s));
        assert_eq!(hash, secret.hash());
        let (other, other_hash) = generate_pat().unwrap();
        assert_ne!(secret.expose(), other.expose());
        assert_ne!(hash, other_hash);
    }

    #[test]
    fn refresh_tokens_have_their_prefix() {
        let (secret, hash) = generate_refresh_token().unwrap();
        assert!(secret.expose().starts_with("berth_rt_"));
        assert_eq!(secret.expose().len(), "berth_rt_".len() + 43);
        assert!(!looks_like_pat(secret.expose()));
        assert_eq!(hash, hash_secret(secret.expose()));
    }

    #[test]
    fn characters_are_spread_over_the_alphabet() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let (secret, _) = generate_pat().unwrap();
            seen.extend(secret.expose()[PAT_PREFIX.len()..].bytes());
        }
        // 2150 draws from 62 symbols: every symbol appears (p(miss) ~ 1e-14).
        assert_eq!(seen.len(), 62);
    }

    #[test]
    fn debug_is_redacted() {
        let (secret, _) = generate_pat().unwrap();
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Secret::new("hunter2".into())), "<redacted>");
    }

    #[test]
    fn looks_like_pat_is_strict() {
        let body = "a".repeat(43);
        assert!(looks_like_pat(&format!("berth_pat_{body}")));
        assert!(!looks_like_pat(&format!("berth_pat_{}", "a".repeat(42))));
        assert!(!looks_like_pat(&format!("berth_pat_{}-", "a".repeat(42))));
        assert!(!looks_like_pat(&format!("berth_rt_{body}")));
        assert!(!looks_like_pat("password"));
        assert!(!looks_like_pat(""));
    }

    #[test]
    fn constant_time_equality() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(ct_eq(b"", b""));
        // Known SHA-256 of "abc".
        assert_eq!(
            hex::encode(hash_secret("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
