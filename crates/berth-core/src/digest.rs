//! Content digests, and hashing that can be paused and resumed.
//!
//! The grammar is the one in the OCI image-spec v1.1, "Digests":
//!
//! ```text
//! digest                ::= algorithm ":" encoded
//! algorithm             ::= algorithm-component (algorithm-separator algorithm-component)*
//! algorithm-component   ::= [a-z0-9]+
//! algorithm-separator   ::= [+._-]
//! encoded               ::= [a-zA-Z0-9=_-]+
//! ```
//!
//! berth accepts the two registered algorithms the spec names: `sha256`
//! (required, 64 hex digits) and `sha512` (128 hex digits). For both, the spec
//! restricts `encoded` to lower-case hex, `[a-f0-9]`, of exactly that length, so
//! one blob has exactly one digest string. Other algorithms that fit the grammar
//! (`blake3`) are reported as unsupported rather than as malformed.
//!
//! [`Digester`] hashes a stream and can save its state as bytes: a blob upload
//! spread over many `PATCH` requests can then continue after a restart, or on
//! another node, without re-reading what was already received.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::digest::typenum::Unsigned;
use sha2::{Digest as _, Sha256, Sha512};

use crate::error::{ParseError, ParseErrorKind};

/// A digest algorithm berth can compute and verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the algorithm every OCI implementation must support.
    Sha256,
    /// SHA-512, which the OCI image-spec registers as optional.
    Sha512,
}

impl Algorithm {
    /// The registered name (`sha256`, `sha512`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    /// How many hex digits an encoded digest of this algorithm has.
    pub fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }

    /// The code this algorithm has in a saved [`Digester`] state.
    fn state_code(self) -> u8 {
        match self {
            Self::Sha256 => 1,
            Self::Sha512 => 2,
        }
    }
}

impl FromStr for Algorithm {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_algorithm(s, s)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Algorithm {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Algorithm {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A content digest, such as `sha256:e3b0c442...b855`: the name of a blob or manifest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parses `algorithm:hex`, requiring lower-case hex of the algorithm's length.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let Some((algorithm, hex)) = input.split_once(':') else {
            return Err(error(
                input,
                input.len(),
                "a digest is `<algorithm>:<hex>`, such as `sha256:` and 64 hex digits; \
                 no `:` found",
            ));
        };
        let algorithm = parse_algorithm(input, algorithm)?;
        Self::validated(input, algorithm, hex, algorithm.as_str().len() + 1)
    }

    /// A digest from its algorithm and its hex encoding, validated as by [`Digest::parse`].
    pub fn from_hex(algorithm: Algorithm, hex: &str) -> Result<Self, ParseError> {
        let input = format!("{algorithm}:{hex}");
        Self::validated(&input, algorithm, hex, algorithm.as_str().len() + 1)
    }

    /// The digest of `bytes` under `algorithm`.
    pub fn from_bytes(algorithm: Algorithm, bytes: &[u8]) -> Self {
        let mut digester = Digester::new(algorithm);
        digester.update(bytes);
        digester.finalize()
    }

    /// The SHA-256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        Self::from_bytes(Algorithm::Sha256, bytes)
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded part: lower-case hex, [`Algorithm::hex_len`] digits.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Checks `hex`, which starts at byte `offset` of `input`, for `algorithm`.
    fn validated(
        input: &str,
        algorithm: Algorithm,
        hex: &str,
        offset: usize,
    ) -> Result<Self, ParseError> {
        let want = algorithm.hex_len();
        if hex.is_empty() {
            return Err(error(
                input,
                offset,
                format!("nothing after `{algorithm}:`; expected {want} lower-case hex digits"),
            ));
        }
        for (i, b) in hex.bytes().enumerate() {
            if i == want {
                return Err(wrong_length(input, algorithm, hex, offset + i));
            }
            match b {
                b'0'..=b'9' | b'a'..=b'f' => {}
                b'A'..=b'F' => {
                    return Err(error(
                        input,
                        offset + i,
                        "digest hex must be lower-case: OCI allows only `[a-f0-9]`",
                    ));
                }
                _ => {
                    let found = hex.get(i..).and_then(|s| s.chars().next()).unwrap_or('?');
                    return Err(error(
                        input,
                        offset + i,
                        format!(
                            "`{}` is not a hex digit; a {algorithm} digest is {want} \
                             lower-case hex digits",
                            found.escape_debug()
                        ),
                    ));
                }
            }
        }
        if hex.len() < want {
            return Err(wrong_length(input, algorithm, hex, offset + hex.len()));
        }
        Ok(Self {
            algorithm,
            hex: hex.to_owned(),
        })
    }
}

impl FromStr for Digest {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn error(input: &str, position: usize, reason: impl Into<String>) -> ParseError {
    ParseError::new(ParseErrorKind::Digest, input, position, reason)
}

fn wrong_length(input: &str, algorithm: Algorithm, hex: &str, position: usize) -> ParseError {
    error(
        input,
        position,
        format!(
            "{algorithm} digests have {} hex digits; this one has {}",
            algorithm.hex_len(),
            hex.len()
        ),
    )
}

/// Parses the algorithm part `name`, which starts at byte 0 of `input`.
fn parse_algorithm(input: &str, name: &str) -> Result<Algorithm, ParseError> {
    match name {
        "sha256" => return Ok(Algorithm::Sha256),
        "sha512" => return Ok(Algorithm::Sha512),
        "" => {
            return Err(error(
                input,
                0,
                "missing digest algorithm; expected `sha256` or `sha512`",
            ));
        }
        _ => {}
    }
    for known in [Algorithm::Sha256, Algorithm::Sha512] {
        if name.eq_ignore_ascii_case(known.as_str()) {
            return Err(error(
                input,
                0,
                format!("digest algorithms are lower-case: use `{known}`"),
            ));
        }
    }
    // Names that fit the spec's grammar are real but unsupported algorithms;
    // anything else is not an algorithm at all.
    if let Some(bad) = first_invalid_algorithm_byte(name) {
        return Err(error(
            input,
            bad,
            "not a digest algorithm; expected `sha256` or `sha512`",
        ));
    }
    let shown = if name.len() <= 32 { name } else { "this one" };
    Err(error(
        input,
        0,
        format!("unsupported digest algorithm `{shown}`: berth supports sha256 and sha512"),
    ))
}

/// The offset of the first byte that breaks the image-spec's algorithm grammar.
fn first_invalid_algorithm_byte(name: &str) -> Option<usize> {
    let mut after_separator = true;
    for (i, b) in name.bytes().enumerate() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' => after_separator = false,
            b'+' | b'.' | b'_' | b'-' if !after_separator => after_separator = true,
            _ => return Some(i),
        }
    }
    after_separator.then(|| name.len().saturating_sub(1))
}

/// The version byte of the format [`Digester::save_state`] writes.
const STATE_VERSION: u8 = 1;
/// Version byte, algorithm byte, then the byte count as a little-endian `u64`.
const STATE_HEADER_LEN: usize = 10;

/// A streaming digest whose state can be saved and restored.
///
/// Feed data with [`Digester::update`]; [`Digester::save_state`] turns the
/// state into bytes to keep with an upload session, and
/// [`Digester::restore_state`] continues from them, in this process or another.
#[derive(Debug, Clone)]
pub struct Digester {
    hasher: Hasher,
    bytes_hashed: u64,
}

#[derive(Debug, Clone)]
enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Digester {
    /// A digester that has hashed nothing yet.
    pub fn new(algorithm: Algorithm) -> Self {
        let hasher = match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        };
        Self {
            hasher,
            bytes_hashed: 0,
        }
    }

    /// Hashes `data`, appending it to everything hashed so far.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.hasher {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        self.bytes_hashed = self.bytes_hashed.saturating_add(len);
    }

    /// How many bytes have been hashed: the offset an upload has reached.
    pub fn bytes_hashed(&self) -> u64 {
        self.bytes_hashed
    }

    /// The algorithm being computed.
    pub fn algorithm(&self) -> Algorithm {
        match self.hasher {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// The digest of everything hashed.
    pub fn finalize(self) -> Digest {
        let (algorithm, hex) = match self.hasher {
            Hasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }

    /// The digest of everything hashed so far; hashing can go on afterwards.
    pub fn digest_so_far(&self) -> Digest {
        self.clone().finalize()
    }

    /// The state as bytes, for [`Digester::restore_state`].
    ///
    /// Format: a version byte, an algorithm byte, the byte count (`u64`,
    /// little-endian), then the `sha2` crate's serialized state. The state holds
    /// up to one block of the hashed data, so treat it as confidentially as the
    /// blob itself.
    pub fn save_state(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(STATE_HEADER_LEN + 209);
        out.push(STATE_VERSION);
        out.push(self.algorithm().state_code());
        out.extend_from_slice(&self.bytes_hashed.to_le_bytes());
        match &self.hasher {
            Hasher::Sha256(h) => out.extend_from_slice(&SerializableState::serialize(h)),
            Hasher::Sha512(h) => out.extend_from_slice(&SerializableState::serialize(h)),
        }
        out
    }

    /// Continues from bytes written by [`Digester::save_state`].
    ///
    /// Every part is checked: length, version, algorithm, the hash state itself,
    /// and that the byte count agrees with the amount of data the state has seen.
    pub fn restore_state(saved: &[u8]) -> Result<Self, ParseError> {
        let Some((&version, rest)) = saved.split_first() else {
            return Err(state_error(saved, 0, "it is empty"));
        };
        if version != STATE_VERSION {
            return Err(state_error(
                saved,
                0,
                &format!("format version {version}, expected {STATE_VERSION}"),
            ));
        }
        let algorithm = match rest.first() {
            Some(1) => Algorithm::Sha256,
            Some(2) => Algorithm::Sha512,
            Some(code) => {
                return Err(state_error(
                    saved,
                    1,
                    &format!("unknown algorithm code {code}"),
                ));
            }
            None => return Err(state_error(saved, 1, "it ends after the version byte")),
        };
        let Some((count, state)) = rest.get(1..).and_then(|r| r.split_first_chunk::<8>()) else {
            return Err(state_error(
                saved,
                saved.len(),
                "it ends inside the byte count",
            ));
        };
        let bytes_hashed = u64::from_le_bytes(*count);
        let hasher = match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(restore_hasher(saved, state)?),
            Algorithm::Sha512 => Hasher::Sha512(restore_hasher(saved, state)?),
        };
        if bytes_seen(algorithm, state) != Some(u128::from(bytes_hashed)) {
            return Err(state_error(
                saved,
                2,
                "the byte count does not match the hash state",
            ));
        }
        Ok(Self {
            hasher,
            bytes_hashed,
        })
    }
}

/// Restores one `sha2` hasher from its serialized state (after the header).
fn restore_hasher<H: SerializableState>(saved: &[u8], state: &[u8]) -> Result<H, ParseError> {
    let want = H::SerializedStateSize::USIZE;
    let Ok(array) = <&SerializedState<H>>::try_from(state) else {
        return Err(state_error(
            saved,
            STATE_HEADER_LEN + state.len().min(want),
            &format!("expected {want} bytes of hash state, found {}", state.len()),
        ));
    };
    H::deserialize(array)
        .map_err(|_| state_error(saved, STATE_HEADER_LEN, "the hash library refused it"))
}

/// How many bytes a serialized `sha2` state has absorbed, read from its layout:
/// the core's block count (after the chaining words), then the block buffer's
/// fill level. A different layout (another `sha2` version) yields a mismatch,
/// which rejects the state rather than resuming an upload at a wrong offset.
fn bytes_seen(algorithm: Algorithm, state: &[u8]) -> Option<u128> {
    let (blocks, block_size, fill) = match algorithm {
        Algorithm::Sha256 => {
            let blocks = u64::from_le_bytes(state.get(32..40)?.try_into().ok()?);
            (u128::from(blocks), 64, *state.get(40)?)
        }
        Algorithm::Sha512 => {
            let blocks = u128::from_le_bytes(state.get(64..80)?.try_into().ok()?);
            (blocks, 128, *state.get(80)?)
        }
    };
    blocks
        .checked_mul(block_size)?
        .checked_add(u128::from(fill))
}

fn state_error(saved: &[u8], position: usize, detail: &str) -> ParseError {
    // The state carries up to a block of blob content: describe it, never quote it.
    let described = format!("<{} bytes of saved hash state>", saved.len());
    ParseError::new(
        ParseErrorKind::Digest,
        &described,
        position,
        format!("saved hash state is corrupt or from another version: {detail}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EMPTY_SHA256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const ABC_SHA512: &str = "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                              2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";

    fn parse_err(input: &str) -> ParseError {
        let e = Digest::parse(input).unwrap_err();
        assert_eq!(e.kind(), ParseErrorKind::Digest, "{input}");
        e
    }

    #[test]
    fn algorithms() {
        assert_eq!("sha256".parse::<Algorithm>().unwrap(), Algorithm::Sha256);
        assert_eq!("sha512".parse::<Algorithm>().unwrap(), Algorithm::Sha512);
        assert_eq!(Algorithm::Sha512.to_string(), "sha512");
        assert_eq!(
            (Algorithm::Sha256.hex_len(), Algorithm::Sha512.hex_len()),
            (64, 128)
        );
        let e = "blake3".parse::<Algorithm>().unwrap_err();
        assert_eq!(
            e.reason(),
            "unsupported digest algorithm `blake3`: berth supports sha256 and sha512"
        );
        assert!(
            "SHA256"
                .parse::<Algorithm>()
                .unwrap_err()
                .reason()
                .contains("use `sha256`")
        );
        assert!(
            "sha256+b64u"
                .parse::<Algorithm>()
                .unwrap_err()
                .reason()
                .contains("unsupported")
        );
        assert_eq!("sha-".parse::<Algorithm>().unwrap_err().position(), 3);
        assert_eq!("a b".parse::<Algorithm>().unwrap_err().position(), 1);
        assert_eq!(
            serde_json::to_string(&Algorithm::Sha256).unwrap(),
            r#""sha256""#
        );
    }

    #[test]
    fn valid_digests() {
        let d = Digest::parse(EMPTY_SHA256).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.hex(), &EMPTY_SHA256[7..]);
        assert_eq!(d.to_string(), EMPTY_SHA256);
        assert_eq!(d, Digest::sha256_of(b""));
        let s512 = format!("sha512:{ABC_SHA512}");
        let d = s512.parse::<Digest>().unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha512);
        assert_eq!(d.to_string(), s512);
        assert_eq!(Digest::from_hex(Algorithm::Sha512, ABC_SHA512).unwrap(), d);
    }

    #[test]
    fn known_hashes() {
        assert_eq!(Digest::sha256_of(b"abc").hex(), ABC_SHA256);
        assert_eq!(
            Digest::from_bytes(Algorithm::Sha512, b"abc").hex(),
            ABC_SHA512
        );
        assert_eq!(Digest::sha256_of(b"").to_string(), EMPTY_SHA256);
    }

    #[test]
    fn invalid_digests() {
        let e = parse_err("sha256:");
        assert_eq!(e.position(), 7);
        assert_eq!(
            e.reason(),
            "nothing after `sha256:`; expected 64 lower-case hex digits"
        );
        let e = parse_err(&EMPTY_SHA256[..70]);
        assert_eq!(e.position(), 70);
        assert_eq!(
            e.reason(),
            "sha256 digests have 64 hex digits; this one has 63"
        );
        let e = parse_err(&format!("{EMPTY_SHA256}0"));
        assert_eq!(e.position(), 71);
        assert!(e.reason().contains("this one has 65"));
        let e = parse_err(&EMPTY_SHA256.replace('e', "E"));
        assert_eq!(e.position(), 7);
        assert!(e.reason().contains("must be lower-case"));
        let e = parse_err(&format!("md5:{}", "0".repeat(32)));
        assert_eq!(e.position(), 0);
        assert!(e.reason().contains("unsupported digest algorithm `md5`"));
        let e = parse_err(&EMPTY_SHA256.replace(':', ""));
        assert_eq!(e.position(), 70);
        assert!(e.reason().contains("no `:` found"));
        let e = parse_err(&format!("sha256:{}", "z".repeat(64)));
        assert_eq!(e.position(), 7);
        assert!(e.reason().starts_with("`z` is not a hex digit"));
        assert!(
            parse_err(&format!("sha512:{ABC_SHA256}"))
                .reason()
                .contains("128")
        );
        assert!(
            parse_err(&format!(":{ABC_SHA256}"))
                .reason()
                .contains("missing")
        );
        let e = Digest::from_hex(Algorithm::Sha256, "abc").unwrap_err();
        assert_eq!((e.input(), e.position()), ("sha256:abc", 10));
    }

    #[test]
    fn serde_uses_the_string_and_validates() {
        let d = Digest::sha256_of(b"");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{EMPTY_SHA256}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>(r#""sha256:abc""#).is_err());
    }

    #[test]
    fn digester_streams_and_reports_progress() {
        let mut d = Digester::new(Algorithm::Sha256);
        d.update(b"a");
        d.update(b"");
        d.update(b"bc");
        assert_eq!(d.bytes_hashed(), 3);
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.digest_so_far().hex(), ABC_SHA256);
        d.update(b"d");
        assert_eq!(d.finalize(), Digest::sha256_of(b"abcd"));
    }

    #[test]
    fn state_survives_save_and_restore() {
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            let mut d = Digester::new(algorithm);
            d.update(&[7; 300]);
            let saved = d.save_state();
            assert_eq!(saved[..2], [1, algorithm.state_code()]);
            assert_eq!(saved[2..10], 300u64.to_le_bytes());
            let mut restored = Digester::restore_state(&saved).unwrap();
            assert_eq!(restored.bytes_hashed(), 300);
            restored.update(b"x");
            d.update(b"x");
            assert_eq!(restored.finalize(), d.finalize());
        }
    }

    #[test]
    fn corrupt_state_is_rejected() {
        let mut d = Digester::new(Algorithm::Sha256);
        d.update(b"abc");
        let saved = d.save_state();
        for len in 0..saved.len() {
            let e = Digester::restore_state(&saved[..len]).unwrap_err();
            assert_eq!(e.kind(), ParseErrorKind::Digest);
            assert!(
                e.reason()
                    .starts_with("saved hash state is corrupt or from another version")
            );
        }
        let mut longer = saved.clone();
        longer.push(0);
        assert!(Digester::restore_state(&longer).is_err());
        let mut bad = saved.clone();
        bad[0] = 2;
        assert_eq!(Digester::restore_state(&bad).unwrap_err().position(), 0);
        let mut bad = saved.clone();
        bad[1] = 9;
        let e = Digester::restore_state(&bad).unwrap_err();
        assert_eq!(e.position(), 1);
        assert!(e.reason().ends_with("unknown algorithm code 9"));
        let mut bad = saved.clone();
        bad[1] = 2; // claims SHA-512 but carries a SHA-256 state
        assert!(Digester::restore_state(&bad).is_err());
        let mut bad = saved.clone();
        bad[2] = 4; // byte count 4, state has seen 3
        assert!(
            Digester::restore_state(&bad)
                .unwrap_err()
                .reason()
                .contains("byte count")
        );
        let mut bad = saved.clone();
        bad[10 + 40] = 200; // block buffer fill level beyond a block: sha2 refuses
        assert!(
            Digester::restore_state(&bad)
                .unwrap_err()
                .reason()
                .contains("refused")
        );
        let e = Digester::restore_state(&saved[..20]).unwrap_err();
        assert_eq!(e.input(), "<20 bytes of saved hash state>");
    }

    fn algorithm_strategy() -> impl Strategy<Value = Algorithm> {
        prop_oneof![Just(Algorithm::Sha256), Just(Algorithm::Sha512)]
    }

    proptest! {
        #[test]
        fn valid_digests_round_trip(
            algorithm in algorithm_strategy(),
            bytes in proptest::collection::vec(any::<u8>(), 64),
        ) {
            let hex = hex::encode(&bytes[..algorithm.hex_len() / 2]);
            let d = Digest::from_hex(algorithm, &hex).unwrap();
            prop_assert_eq!(d.to_string(), format!("{algorithm}:{hex}"));
            prop_assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
        }

        #[test]
        fn printing_a_parsed_digest_is_canonical(s in "sha(256|512):[0-9a-fA-F]{62,66}") {
            if let Ok(d) = Digest::parse(&s) {
                prop_assert_eq!(d.to_string(), s);
            }
        }

        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = Digest::parse(&s);
            let _ = Digest::parse(&format!("sha256:{s}"));
            let _ = s.parse::<Algorithm>();
        }

        #[test]
        fn saving_and_restoring_at_any_split_gives_the_one_shot_digest(
            algorithm in algorithm_strategy(),
            data in proptest::collection::vec(any::<u8>(), 0..1200),
            mut cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut points: Vec<usize> = cuts.drain(..).map(|i| i.index(data.len() + 1)).collect();
            points.sort_unstable();
            let mut digester = Digester::new(algorithm);
            let mut start = 0;
            for end in points.into_iter().chain([data.len()]) {
                digester.update(&data[start..end]);
                start = end;
                digester = Digester::restore_state(&digester.save_state()).unwrap();
                prop_assert_eq!(digester.bytes_hashed(), end as u64);
            }
            prop_assert_eq!(digester.finalize(), Digest::from_bytes(algorithm, &data));
        }

        #[test]
        fn restore_never_panics(saved in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Digester::restore_state(&saved);
        }

        #[test]
        fn restore_rejects_a_corrupted_header(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            byte in 0usize..10,
            flip in 1u8..=255,
        ) {
            let mut d = Digester::new(Algorithm::Sha256);
            d.update(&data);
            let mut saved = d.save_state();
            saved[byte] ^= flip;
            prop_assert!(Digester::restore_state(&saved).is_err());
        }
    }
}
