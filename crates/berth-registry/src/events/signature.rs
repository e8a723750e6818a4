//! The signature of a delivery: `Berth-Signature: t=<unix seconds>,v1=<hex>`,
//! where the hex is HMAC-SHA256, keyed with the endpoint's secret, of the
//! time, a `.`, and the exact body bytes.
//!
//! A receiver recomputes it over the body as received, compares in constant
//! time, and refuses a time too far from its clock (a replayed delivery).
//! The time is signed so that a captured delivery cannot be replayed later
//! with a fresh header; the event's `id` lets a receiver drop the copies
//! that at-least-once delivery may bring.

use hmac::{KeyInit, Mac};

/// The header's name.
pub const HEADER: &str = "berth-signature";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn mac(secret: &[u8], time: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts every key length"),
    };
    mac.update(time.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value for `body` sent at unix second `time`.
pub fn sign(secret: &[u8], time: i64, body: &[u8]) -> String {
    let tag = mac(secret, time, body).finalize().into_bytes();
    format!("t={time},v1={}", hex::encode(tag))
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not `t=<digits>,v1=<64 hex digits>`.
    #[error("the signature header is not t=<unix seconds>,v1=<hex HMAC-SHA256>")]
    Malformed,
    /// The time is further than the tolerance from now.
    #[error("the signature's time is {0} s from now: a replay, or a clock to fix")]
    Stale(i64),
    /// The HMAC does not match.
    #[error("the signature does not match the body and the secret")]
    Mismatch,
}

/// Checks a header value against `body`, the secret, and `now` within
/// `tolerance_secs`: what a receiver does. Constant-time in the tag.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let mut time = None;
    let mut tags = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => {
                time = t.parse::<i64>().ok();
            }
            Some(("v1", v)) => tags.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?),
            _ => {}
        }
    }
    let time = time.ok_or(SignatureError::Malformed)?;
    if tags.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let skew = now.saturating_sub(time);
    if skew.abs() > tolerance_secs {
        return Err(SignatureError::Stale(skew));
    }
    let matched = tags
        .iter()
        .any(|tag| mac(secret, time, body).verify_slice(tag).is_ok());
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primitive_is_hmac_sha256_of_rfc_4231() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mut m = match HmacSha256::new_from_slice(b"Jefe") {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        };
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(m.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let secret = b"0123456789abcdef";
        let header = sign(secret, 1_700_000_000, b"{\"a\":1}");
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(header.len(), "t=1700000000,v1=".len() + 64);
        assert_eq!(
            verify(secret, &header, b"{\"a\":1}", 1_700_000_100, 300),
            Ok(())
        );
        assert_eq!(
            verify(secret, &header, b"{\"a\":2}", 1_700_000_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                b"another secret!!",
                &header,
                b"{\"a\":1}",
                1_700_000_000,
                300
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(secret, &header, b"{\"a\":1}", 1_700_001_000, 300),
            Err(SignatureError::Stale(1000))
        );
        // The time is signed: moving it breaks the tag.
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert_eq!(
            verify(secret, &moved, b"{\"a\":1}", 1_700_000_000, 300),
            Err(SignatureError::Mismatch)
        );
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", "t=1,v1=zz"] {
            assert_eq!(
                verify(secret, bad, b"", 1, 300),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }
}
