//! The token service's signing keys: a root CA, the signing keys it certifies,
//! and their publication (root PEM, JWKS).
//!
//! Layout of `<data-dir>/keys` (directories mode 0700, files mode 0600):
//!
//! ```text
//! root.key.pem              ECDSA P-256 private key (PKCS#8) of the root CA
//! root.crt.pem              self-signed root certificate, CN "berth token root", 10 years
//! signing/<kid>.key.pem     ECDSA P-256 private key (PKCS#8) of one signing key
//! signing/<kid>.crt.pem     its certificate, signed by the root, CN "berth token signer",
//!                           1 year (never past the root's notAfter), keyUsage digitalSignature
//! active                    the kid of the key that signs new tokens, one line
//! signing/<kid>.inactive    Unix seconds when the key stopped signing (written at rotation,
//!                           and at start for an older key without it: no earlier than the truth)
//! ```
//!
//! A key that no longer signs is *retired* ([`KeyStore::retire`]: its files
//! removed, its `kid` gone from the JWKS) only once every token it signed
//! has expired: the token lifetime plus the verification leeway after it
//! stopped signing. Another node that still has it active (a rotation reaches
//! other nodes on restart) keeps signing with it: retire after every node
//! has restarted on the rotation.
//!
//! Protocol facts implemented here:
//! - `kid` is the RFC 7638 JWK thumbprint of the signing key's public key:
//!   base64url (no padding) of SHA-256 over
//!   `{"crv":"P-256","kty":"EC","x":"<b64url x>","y":"<b64url y>"}`, with x and y
//!   each exactly 32 bytes (left-padded with zeros). CNCF distribution 3.x
//!   matches `kid` against such thumbprints; 2.x ignores `kid` when the token
//!   carries an `x5c` chain to its `rootcertbundle`, which is what
//!   [`KeyStore::root_pem`] gives it.
//! - The signing keys are published as a JWKS ([`KeyStore::jwks`]).
//! - An ECDSA signature `(r, s)` has a twin `(r, n - s)` (n the order of the
//!   P-256 group) that verifies as well. Tokens are signed in the low-S form
//!   only (s <= n/2; a high `s` is replaced by n - s, which every verifier
//!   accepts, CNCF distribution included), and verification refuses the high
//!   form ([`is_low_s`]), so that a token has exactly one accepted spelling.
//!
//! The active key is the one the `active` file names (written atomically on
//! rotation), not the newest by mtime: copying files between nodes keeps
//! mtimes meaningless. When the file is missing, the key whose certificate
//! starts last becomes active and the file is written. Old keys stay loaded
//! and keep verifying; rotation swaps the set under an `RwLock`, so a running
//! server rotates without a restart.
//!
//! Every file is checked when loaded: a key must be an ECDSA P-256 key that
//! signs, a certificate must hold that key, and a signing certificate must
//! verify under the root. Anything unreadable or inconsistent refuses the
//! start with an error naming the file. Key material never reaches a log or a
//! `Debug` output.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;

/// Common name of the root CA certificate.
const ROOT_CN: &str = "berth token root";
/// Common name of every signing certificate.
const SIGNER_CN: &str = "berth token signer";
/// Lifetime of the root CA certificate: 10 years.
const ROOT_LIFETIME: Duration = Duration::days(3652);
/// Lifetime of a signing certificate: 1 year.
const SIGNER_LIFETIME: Duration = Duration::days(365);
/// Certificates start this long before their creation, so that a verifier
/// whose clock lags (CNCF distribution re-checks `x5c` validity on every
/// request) does not refuse a fresh one.
const BACKDATE: Duration = Duration::hours(1);
/// A warning is logged at start when the active certificate ends sooner.
const EXPIRY_WARNING: Duration = Duration::days(30);

const ROOT_KEY: &str = "root.key.pem";
const ROOT_CRT: &str = "root.crt.pem";
const SIGNING_DIR: &str = "signing";
const ACTIVE: &str = "active";
const KEY_SUFFIX: &str = ".key.pem";
const CRT_SUFFIX: &str = ".crt.pem";
const INACTIVE_SUFFIX: &str = ".inactive";

/// A failure to create, load or use the token keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file or directory could not be read or written.
    #[error(
        "cannot {action} {}: {source}; check that the path exists and that berth may {action} it",
        path.display()
    )]
    Io {
        /// What was being done: `read`, `write`, `create`, ...
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A key or certificate file holds something berth cannot use.
    #[error(
        "token key file {} is unusable: {reason}; restore it from a backup (removing the keys \
         directory makes berth create a new root, which every registry trusting the old one must \
         then be given)",
        path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Generating a key or a certificate failed.
    #[error("cannot generate a token {what}: {reason}; this is a bug or a broken crypto library")]
    Generate {
        /// `key` or `certificate`.
        what: &'static str,
        /// The library's message.
        reason: String,
    },
    /// Signing a token failed.
    #[error("cannot sign a token: {0}; this is a bug or a broken crypto library")]
    Sign(String),
    /// The keys shared through the database could not be read or written.
    #[error(
        "cannot read or write the token keys in the shared database: {0}; check that the \
         database is reachable"
    )]
    Database(#[from] crate::meta::MetaError),
    /// A key file's path from the shared database is not one the keys
    /// directory holds.
    #[error(
        "the shared database holds a token key file named {0:?}, which is not a key file; \
         the key_files table was edited by hand: restore it from a backup"
    )]
    ForeignFile(String),
}

/// Why a signing key cannot be retired.
#[derive(Debug, thiserror::Error)]
pub enum RetireError {
    /// No loaded key has this `kid`.
    #[error("no signing key has the kid `{0}`")]
    Unknown(String),
    /// The key signs new tokens.
    #[error("`{0}` is the active signing key")]
    Active(String),
    /// Tokens it signed may still be valid.
    #[error("tokens signed by `{kid}` may be valid until {possible_at} (Unix seconds)")]
    TooSoon {
        /// The key.
        kid: String,
        /// Unix seconds from which it may be retired.
        possible_at: i64,
    },
    /// Its files could not be removed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// A signing key as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Its `kid`.
    pub kid: String,
    /// Whether it signs new tokens.
    pub active: bool,
    /// Unix seconds when it stopped signing (`None` for the active key).
    pub inactive_since: Option<i64>,
}

/// One signing key, loaded and ready: what issuing and verifying need.
pub(crate) struct Signer {
    /// The RFC 7638 thumbprint of the public key.
    pub(crate) kid: String,
    /// The affine coordinates of the public key.
    x: [u8; 32],
    y: [u8; 32],
    /// The private key (PKCS#8), for signing.
    pub(crate) encoding: EncodingKey,
    /// The public key (uncompressed point), for verifying.
    pub(crate) decoding: DecodingKey,
    /// The JOSE header of every token this key signs, base64url:
    /// `{"typ":"JWT","alg":"ES256","kid":<kid>,"x5c":[<x5c>]}`.
    pub(crate) header: Arc<str>,
    /// When the certificate starts, Unix seconds (orders keys in the JWKS).
    not_before: i64,
    /// When the certificate ends, Unix seconds.
    not_after: i64,
}

impl Signer {
    /// Signs `message` with ES256: the base64url of the raw `r || s`
    /// (RFC 7518 section 3.4), always in the low-S form.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<String, KeyError> {
        let signature = jsonwebtoken::crypto::sign(message, &self.encoding, Algorithm::ES256)
            .map_err(|e| KeyError::Sign(e.to_string()))?;
        let mut raw = URL_SAFE_NO_PAD
            .decode(&signature)
            .map_err(|e| KeyError::Sign(format!("the signature is not base64url: {e}")))?;
        let s: &mut [u8; 32] = match raw.get_mut(32..) {
            Some(s) if s.len() == 32 => s.try_into().map_err(|_| short_signature())?,
            _ => return Err(short_signature()),
        };
        if is_low_s(s) {
            return Ok(signature);
        }
        *s = order_minus(s);
        Ok(URL_SAFE_NO_PAD.encode(raw))
    }
}

fn short_signature() -> KeyError {
    KeyError::Sign("an ES256 signature is 64 bytes (r || s)".into())
}

/// The order n of the P-256 group, big-endian (SEC 2 version 2, section 2.4.2).
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// floor(n / 2), big-endian: the largest `s` of a low-S signature.
const P256_HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];

/// Whether the `s` half of an ES256 signature (32 bytes, big-endian) is at
/// most n/2. Byte arrays of one length compare as the big-endian numbers
/// they hold.
pub(crate) fn is_low_s(s: &[u8; 32]) -> bool {
    *s <= P256_HALF_ORDER
}

/// n - s for 0 < s < n, big-endian: the `s` of a signature's twin.
fn order_minus(s: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0u16;
    for i in (0..32).rev() {
        let subtrahend = u16::from(s[i]) + borrow;
        let minuend = u16::from(P256_ORDER[i]);
        borrow = u16::from(minuend < subtrahend);
        // In 0..=255 by construction: 256 is added exactly when it borrows.
        out[i] = (minuend + (borrow << 8) - subtrahend) as u8;
    }
    out
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// The root CA, loaded, and the key directory it lives in: what loading and
/// creating signing keys need.
struct Root {
    dir: PathBuf,
    key: KeyPair,
    der: Vec<u8>,
    pem: String,
    not_after: i64,
}

/// The loaded signing keys.
struct Signers {
    /// Every key, oldest certificate first.
    all: Vec<Arc<Signer>>,
    /// The key that signs new tokens.
    active: Arc<Signer>,
    /// When each other key stopped signing, Unix seconds, by kid.
    inactive_since: std::collections::HashMap<String, i64>,
}

/// The root CA and the signing keys of the token service, on disk under
/// `<data-dir>/keys` and loaded in memory.
pub struct KeyStore {
    root: Root,
    signers: RwLock<Signers>,
    /// Serialises rotations, so that verification never waits on key generation.
    rotating: Mutex<()>,
    /// The generation of the shared database's keys the files are a copy of
    /// (`auth/key_sync.rs`; 0 for keys of this process only).
    synced: AtomicI64,
    /// Serialises this process's copies from and to the shared database.
    sync_lock: tokio::sync::Mutex<()>,
    /// When this process last looked in the shared database for a `kid` it
    /// did not know (milliseconds since the Unix epoch).
    unknown_kid_lookup: AtomicU64,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("dir", &self.root.dir)
            .field("kids", &self.kids())
            .field("active", &self.active().kid)
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// Opens the key directory `dir` (`<data-dir>/keys`): creates the root CA
    /// and a first signing key on first start, loads and checks them later.
    /// Refuses, naming the file, when a file is unreadable or inconsistent.
    pub fn open(dir: &Path) -> Result<KeyStore, KeyError> {
        make_dir(dir)?;
        let signing_dir = dir.join(SIGNING_DIR);
        let root_key_path = dir.join(ROOT_KEY);
        let root_crt_path = dir.join(ROOT_CRT);
        let (root_key, root_pem) = match (exists(&root_key_path)?, exists(&root_crt_path)?) {
            (false, false) => create_root(&root_key_path, &root_crt_path)?,
            (true, true) => (read_key(&root_key_path)?, read_text(&root_crt_path)?),
            (true, false) => return Err(missing(&root_crt_path, &root_key_path)),
            (false, true) => return Err(missing(&root_key_path, &root_crt_path)),
        };
        let root_der = cert_der(&root_crt_path, &root_pem)?;
        let root_not_after = {
            let root = parse_cert(&root_crt_path, &root_der)?;
            check_holds_key(&root_crt_path, &root, &root_key)?;
            root.verify_signature(None).map_err(|e| {
                corrupt(
                    &root_crt_path,
                    format!("its self-signature does not verify ({e})"),
                )
            })?;
            root.validity().not_after.timestamp()
        };
        make_dir(&signing_dir)?;
        let root = Root {
            dir: dir.to_path_buf(),
            key: root_key,
            der: root_der,
            pem: root_pem,
            not_after: root_not_after,
        };
        let mut all = root.load_signers()?;
        if all.is_empty() {
            all.push(root.create_signer()?);
        }
        sort_signers(&mut all, "");
        let active = root.load_active(&all)?;
        sort_signers(&mut all, &active.kid);
        warn_if_expiring(&active, root.not_after);
        let inactive_since = root.load_inactive_since(&all, &active.kid)?;
        let store = KeyStore {
            root,
            signers: RwLock::new(Signers {
                all,
                active,
                inactive_since,
            }),
            rotating: Mutex::new(()),
            synced: AtomicI64::new(0),
            sync_lock: tokio::sync::Mutex::new(()),
            unknown_kid_lookup: AtomicU64::new(0),
        };
        tracing::info!(dir = %dir.display(), kids = ?store.kids(), active = %store.active().kid, "token keys loaded");
        Ok(store)
    }

    /// Adds a new signing key and certificate and makes it the active one.
    /// Older keys stay loaded and keep verifying the tokens they signed.
    /// Returns the new key's `kid`.
    pub fn rotate(&self) -> Result<String, KeyError> {
        let _rotating = self.rotating.lock().unwrap_or_else(PoisonError::into_inner);
        let signer = self.root.create_signer()?;
        let previous = self.active_kid();
        write_atomic(
            &self.root.dir.join(ACTIVE),
            format!("{}\n", signer.kid).as_bytes(),
        )?;
        // After the switch: the time written is never before the last token
        // the old key signed.
        let stopped = crate::clock::now_unix();
        self.root.write_inactive_since(&previous, stopped)?;
        let kid = signer.kid.clone();
        let mut signers = self.signers.write().unwrap_or_else(PoisonError::into_inner);
        signers.all.push(Arc::clone(&signer));
        sort_signers(&mut signers.all, &kid);
        signers.inactive_since.remove(&kid);
        signers.inactive_since.insert(previous, stopped);
        signers.active = signer;
        drop(signers);
        tracing::info!(kid = %kid, "token signing key rotated");
        Ok(kid)
    }

    /// Loads the signing keys from the directory again (another node
    /// rotated or retired one and its files were copied here): keys added
    /// start verifying, keys gone stop, the active one is what `active`
    /// names. The root stays the one loaded at open.
    pub fn reload(&self) -> Result<(), KeyError> {
        let _rotating = self.rotating.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all = self.root.load_signers()?;
        sort_signers(&mut all, "");
        let active = self.root.load_active(&all)?;
        sort_signers(&mut all, &active.kid);
        let inactive_since = self.root.load_inactive_since(&all, &active.kid)?;
        let kids: Vec<String> = all.iter().map(|s| s.kid.clone()).collect();
        let mut signers = self.signers.write().unwrap_or_else(PoisonError::into_inner);
        *signers = Signers {
            all,
            active,
            inactive_since,
        };
        drop(signers);
        tracing::info!(kids = ?kids, active = %self.active_kid(), "token keys reloaded");
        Ok(())
    }

    /// The key directory.
    pub fn dir(&self) -> &Path {
        &self.root.dir
    }

    /// The root certificate and key as they are in the directory: whether
    /// `files` (from [`read_files`]) hold the same root as this store.
    pub fn same_root(&self, files: &[(String, Vec<u8>)]) -> bool {
        root_certificate(files) == Some(self.root.pem.as_bytes())
    }

    /// Held while this process copies keys from or to the shared database.
    pub(crate) fn sync_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.sync_lock
    }

    /// Whether a lookup for an unknown `kid` may go to the shared database
    /// now: none in the last `gap_ms` milliseconds (this call claims it).
    pub(crate) fn may_look_up_unknown_kid(&self, gap_ms: u64) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let last = self.unknown_kid_lookup.load(Ordering::Relaxed);
        now.saturating_sub(last) >= gap_ms
            && self
                .unknown_kid_lookup
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// The shared generation these keys were last copied from (`auth/key_sync.rs`).
    pub fn synced(&self) -> i64 {
        self.synced.load(Ordering::Acquire)
    }

    /// Records the shared generation these keys are now a copy of.
    pub fn set_synced(&self, generation: i64) {
        self.synced.store(generation, Ordering::Release);
    }

    /// The root CA certificate, PEM: what `berth admin keys export-root`
    /// prints and what CNCF distribution's `auth.token.rootcertbundle` needs.
    pub fn root_pem(&self) -> String {
        self.root.pem.clone()
    }

    /// The JWKS of every loaded signing key, oldest first:
    /// `{"keys":[{"kty":"EC","crv":"P-256","x","y","kid","use":"sig","alg":"ES256"}, ...]}`.
    pub fn jwks(&self) -> serde_json::Value {
        let signers = self.signers.read().unwrap_or_else(PoisonError::into_inner);
        let keys = signers
            .all
            .iter()
            .map(|s| {
                serde_json::json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(s.x),
                    "y": URL_SAFE_NO_PAD.encode(s.y),
                    "kid": s.kid,
                    "use": "sig",
                    "alg": "ES256",
                })
            })
            .collect::<Vec<_>>();
        serde_json::json!({ "keys": keys })
    }

    /// The `kid` of every loaded signing key, oldest first.
    pub fn kids(&self) -> Vec<String> {
        let signers = self.signers.read().unwrap_or_else(PoisonError::into_inner);
        signers.all.iter().map(|s| s.kid.clone()).collect()
    }

    /// Every loaded key with whether it signs and since when it does not,
    /// oldest first.
    pub fn key_info(&self) -> Vec<KeyInfo> {
        let signers = self.signers.read().unwrap_or_else(PoisonError::into_inner);
        signers
            .all
            .iter()
            .map(|s| KeyInfo {
                kid: s.kid.clone(),
                active: s.kid == signers.active.kid,
                inactive_since: signers.inactive_since.get(&s.kid).copied(),
            })
            .collect()
    }

    /// Retires the key `kid`: removes its files and stops verifying with it,
    /// once it has not signed for `unused_for` seconds at `now` (the token
    /// lifetime plus the verification leeway: no token it signed is still
    /// valid). Refuses the active key.
    pub fn retire(&self, kid: &str, unused_for: i64, now: i64) -> Result<(), RetireError> {
        let _rotating = self.rotating.lock().unwrap_or_else(PoisonError::into_inner);
        {
            let signers = self.signers.read().unwrap_or_else(PoisonError::into_inner);
            if !signers.all.iter().any(|s| s.kid == kid) {
                return Err(RetireError::Unknown(kid.to_owned()));
            }
            if signers.active.kid == kid {
                return Err(RetireError::Active(kid.to_owned()));
            }
            // Loaded and not active: `open` and `rotate` recorded the time.
            let since = signers.inactive_since.get(kid).copied().unwrap_or(now);
            let possible_at = since.saturating_add(unused_for);
            if now < possible_at {
                return Err(RetireError::TooSoon {
                    kid: kid.to_owned(),
                    possible_at,
                });
            }
        }
        // Out of the verifying set first: from here no token it signed is
        // accepted, whatever happens to the files.
        let mut signers = self.signers.write().unwrap_or_else(PoisonError::into_inner);
        signers.all.retain(|s| s.kid != kid);
        signers.inactive_since.remove(kid);
        drop(signers);
        let signing = self.root.dir.join(SIGNING_DIR);
        // The certificate first: a certificate on disk always has its key beside it.
        for suffix in [CRT_SUFFIX, KEY_SUFFIX, INACTIVE_SUFFIX] {
            let path = signing.join(format!("{kid}{suffix}"));
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io("remove", &path, e).into()),
            }
        }
        File::open(&signing)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("sync", &signing, e))?;
        tracing::info!(kid = %kid, "token signing key retired");
        Ok(())
    }

    /// The `kid` of the key that signs new tokens.
    pub fn active_kid(&self) -> String {
        self.active().kid.clone()
    }

    /// The key that signs new tokens.
    pub(crate) fn active(&self) -> Arc<Signer> {
        let signers = self.signers.read().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&signers.active)
    }

    /// The loaded key named `kid`, if any.
    pub(crate) fn get(&self, kid: &str) -> Option<Arc<Signer>> {
        let signers = self.signers.read().unwrap_or_else(PoisonError::into_inner);
        signers.all.iter().find(|s| s.kid == kid).map(Arc::clone)
    }
}

impl Root {
    /// Loads every `signing/<kid>.crt.pem` with its key. A key without a
    /// certificate is what a crash during [`KeyStore::rotate`] leaves: it never
    /// signed anything, so it is skipped with a warning.
    fn load_signers(&self) -> Result<Vec<Arc<Signer>>, KeyError> {
        let signing_dir = self.dir.join(SIGNING_DIR);
        let entries = fs::read_dir(&signing_dir).map_err(|e| io("read", &signing_dir, e))?;
        let mut signers = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io("read", &signing_dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(kid) = name.strip_suffix(CRT_SUFFIX) {
                signers.push(Arc::new(self.load_signer(kid)?));
            } else if let Some(kid) = name.strip_suffix(KEY_SUFFIX)
                && !exists(&signing_dir.join(format!("{kid}{CRT_SUFFIX}")))?
            {
                tracing::warn!(
                    file = %entry.path().display(),
                    "token signing key without a certificate (an interrupted rotation?): ignored"
                );
            }
        }
        Ok(signers)
    }

    /// When each key but the active one stopped signing: its
    /// `signing/<kid>.inactive` file, or, for a key without one (rotated by
    /// an older version), now, written to the file (never earlier than the
    /// truth, so a retirement waits at worst one token lifetime too long).
    fn load_inactive_since(
        &self,
        all: &[Arc<Signer>],
        active: &str,
    ) -> Result<std::collections::HashMap<String, i64>, KeyError> {
        let mut since = std::collections::HashMap::new();
        for signer in all.iter().filter(|s| s.kid != active) {
            let path = self
                .dir
                .join(SIGNING_DIR)
                .join(format!("{}{INACTIVE_SUFFIX}", signer.kid));
            let at = match fs::read_to_string(&path) {
                Ok(text) => text.trim().parse::<i64>().map_err(|_| {
                    corrupt(
                        &path,
                        format!("it holds {:?}, not Unix seconds", text.trim()),
                    )
                })?,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    let now = crate::clock::now_unix();
                    self.write_inactive_since(&signer.kid, now)?;
                    now
                }
                Err(e) => return Err(io("read", &path, e)),
            };
            since.insert(signer.kid.clone(), at);
        }
        Ok(since)
    }

    /// Records that key `kid` stopped signing at `at` (Unix seconds).
    fn write_inactive_since(&self, kid: &str, at: i64) -> Result<(), KeyError> {
        let path = self
            .dir
            .join(SIGNING_DIR)
            .join(format!("{kid}{INACTIVE_SUFFIX}"));
        write_atomic(&path, format!("{at}\n").as_bytes())
    }

    /// Loads and checks one signing key and its certificate.
    fn load_signer(&self, kid: &str) -> Result<Signer, KeyError> {
        let key_path = self
            .dir
            .join(SIGNING_DIR)
            .join(format!("{kid}{KEY_SUFFIX}"));
        let crt_path = self
            .dir
            .join(SIGNING_DIR)
            .join(format!("{kid}{CRT_SUFFIX}"));
        if !exists(&key_path)? {
            return Err(missing(&key_path, &crt_path));
        }
        let key_pem = read_text(&key_path)?;
        let key = parse_key(&key_path, &key_pem)?;
        let crt_pem = read_text(&crt_path)?;
        let der = cert_der(&crt_path, &crt_pem)?;
        let signer = self.signer(&key_path, &key, &key_pem, &crt_path, der)?;
        if signer.kid != kid {
            return Err(corrupt(
                &key_path,
                format!(
                    "its key's thumbprint is {}, not the {kid} its name says",
                    signer.kid
                ),
            ));
        }
        Ok(signer)
    }

    /// Checks a key and its certificate against each other and the root, and
    /// prepares them for signing and verifying.
    fn signer(
        &self,
        key_path: &Path,
        key: &KeyPair,
        key_pem: &str,
        crt_path: &Path,
        der: Vec<u8>,
    ) -> Result<Signer, KeyError> {
        let (x, y) = coordinates(key_path, key)?;
        let (not_before, not_after) = {
            let cert = parse_cert(crt_path, &der)?;
            check_holds_key(crt_path, &cert, key)?;
            let root = parse_cert(&self.dir.join(ROOT_CRT), &self.der)?;
            cert.verify_signature(Some(root.public_key()))
                .map_err(|e| corrupt(crt_path, format!("it is not signed by {ROOT_CRT} ({e})")))?;
            (
                cert.validity().not_before.timestamp(),
                cert.validity().not_after.timestamp(),
            )
        };
        let encoding = EncodingKey::from_ec_pem(key_pem.as_bytes())
            .map_err(|e| corrupt(key_path, format!("it is not a PKCS#8 EC key ({e})")))?;
        let decoding = DecodingKey::from_ec_der(key.public_key_raw());
        // A self-test: the key must sign, and its public half must verify that.
        let probe = b"berth token key self-test";
        let works = jsonwebtoken::crypto::sign(probe, &encoding, Algorithm::ES256)
            .and_then(|sig| jsonwebtoken::crypto::verify(&sig, probe, &decoding, Algorithm::ES256))
            .unwrap_or(false);
        if !works {
            return Err(corrupt(key_path, "it cannot sign an ES256 token".into()));
        }
        let kid = thumbprint(&x, &y);
        let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
        header.kid = Some(kid.clone());
        header.x5c = Some(vec![STANDARD.encode(&der)]);
        let header = serde_json::to_vec(&header).map_err(|e| KeyError::Sign(e.to_string()))?;
        Ok(Signer {
            kid,
            x,
            y,
            encoding,
            decoding,
            header: URL_SAFE_NO_PAD.encode(header).into(),
            not_before,
            not_after,
        })
    }

    /// Generates a signing key and its certificate, writes both, and loads them.
    fn create_signer(&self) -> Result<Arc<Signer>, KeyError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| gen_err("key", e))?;
        let signing_dir = self.dir.join(SIGNING_DIR);
        let (x, y) = coordinates(&signing_dir, &key)?;
        let kid = thumbprint(&x, &y);
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, SIGNER_CN);
        params.not_before = now - BACKDATE;
        let root_end =
            OffsetDateTime::from_unix_timestamp(self.not_after).unwrap_or(now + SIGNER_LIFETIME);
        params.not_after = (now + SIGNER_LIFETIME).min(root_end);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let issuer =
            Issuer::from_ca_cert_der(&self.der.as_slice().into(), &self.key).map_err(|e| {
                corrupt(
                    &self.dir.join(ROOT_CRT),
                    format!("rcgen cannot use it ({e})"),
                )
            })?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| gen_err("certificate", e))?;
        let key_pem = key.serialize_pem();
        let key_path = signing_dir.join(format!("{kid}{KEY_SUFFIX}"));
        let crt_path = signing_dir.join(format!("{kid}{CRT_SUFFIX}"));
        let signer = self.signer(&key_path, &key, &key_pem, &crt_path, cert.der().to_vec())?;
        // The key first: a certificate on disk always has its key beside it.
        write_atomic(&key_path, key_pem.as_bytes())?;
        write_atomic(&crt_path, cert.pem().as_bytes())?;
        tracing::info!(kid = %kid, file = %crt_path.display(), "token signing key created");
        Ok(Arc::new(signer))
    }

    /// The key the `active` file names; when the file is missing, the key whose
    /// certificate starts last, recorded in a new `active` file.
    fn load_active(&self, all: &[Arc<Signer>]) -> Result<Arc<Signer>, KeyError> {
        let path = self.dir.join(ACTIVE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                let kid = text.trim();
                all.iter()
                    .find(|s| s.kid == kid)
                    .map(Arc::clone)
                    .ok_or_else(|| {
                        corrupt(
                            &path,
                            format!(
                                "it names {kid:?}, which is not among the keys in {SIGNING_DIR}/"
                            ),
                        )
                    })
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let newest = all.last().map(Arc::clone).ok_or_else(|| {
                    corrupt(
                        &self.dir.join(SIGNING_DIR),
                        "it holds no signing key".into(),
                    )
                })?;
                write_atomic(&path, format!("{}\n", newest.kid).as_bytes())?;
                Ok(newest)
            }
            Err(e) => Err(io("read", &path, e)),
        }
    }
}

/// Whether `name` is a path the keys directory holds: the root's two files,
/// `active`, or `signing/<kid>` with one of the three suffixes (a kid is
/// base64url).
fn is_key_file(name: &str) -> bool {
    if [ROOT_KEY, ROOT_CRT, ACTIVE].contains(&name) {
        return true;
    }
    let Some(file) = name
        .strip_prefix(SIGNING_DIR)
        .and_then(|rest| rest.strip_prefix('/'))
    else {
        return false;
    };
    [KEY_SUFFIX, CRT_SUFFIX, INACTIVE_SUFFIX]
        .iter()
        .any(|suffix| {
            file.strip_suffix(suffix).is_some_and(|kid| {
                !kid.is_empty()
                    && kid
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
        })
}

/// The root certificate (PEM) among the key files `files` (from
/// [`read_files`]). The root never changes after the first start: it names
/// the registry whose tokens the keys sign.
pub fn root_certificate(files: &[(String, Vec<u8>)]) -> Option<&[u8]> {
    files
        .iter()
        .find(|(name, _)| name == ROOT_CRT)
        .map(|(_, content)| content.as_slice())
}

/// Every key file of the directory `dir` (see the module doc), by its path
/// in it: what a node puts in the shared database.
pub fn read_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, KeyError> {
    let mut names = vec![ROOT_KEY.to_owned(), ROOT_CRT.to_owned(), ACTIVE.to_owned()];
    let signing_dir = dir.join(SIGNING_DIR);
    let entries = fs::read_dir(&signing_dir).map_err(|e| io("read", &signing_dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io("read", &signing_dir, e))?;
        if let Some(file) = entry.file_name().to_str() {
            let name = format!("{SIGNING_DIR}/{file}");
            if is_key_file(&name) {
                names.push(name);
            }
        }
    }
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            let content = fs::read(&path).map_err(|e| io("read", &path, e))?;
            Ok((name, content))
        })
        .collect()
}

/// Makes the directory `dir` hold exactly `files` (from the shared
/// database): each written atomically (mode 0600) when it differs, signing
/// files not among them removed. Refuses a name that is not a key file, so
/// that nothing is written outside the directory.
pub fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<(), KeyError> {
    if let Some((name, _)) = files.iter().find(|(name, _)| !is_key_file(name)) {
        return Err(KeyError::ForeignFile(name.clone()));
    }
    make_dir(dir)?;
    let signing_dir = dir.join(SIGNING_DIR);
    make_dir(&signing_dir)?;
    for (name, content) in files {
        let path = dir.join(name);
        match fs::read(&path) {
            Ok(old) if old == *content => continue,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io("read", &path, e)),
        }
        write_atomic(&path, content)?;
    }
    let entries = fs::read_dir(&signing_dir).map_err(|e| io("read", &signing_dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io("read", &signing_dir, e))?;
        let Some(file) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let name = format!("{SIGNING_DIR}/{file}");
        if is_key_file(&name) && !files.iter().any(|(n, _)| *n == name) {
            match fs::remove_file(entry.path()) {
                // Another node on the same data directory was first.
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    return Err(io("remove", &entry.path(), e));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Orders keys oldest first: by the start of their certificate (whole
/// seconds), then the active key last among equals, then by `kid`. The same
/// keys always come out in the same order, in memory and after a restart.
fn sort_signers(all: &mut [Arc<Signer>], active: &str) {
    all.sort_by(|a, b| {
        (a.not_before, a.kid == active, &a.kid).cmp(&(b.not_before, b.kid == active, &b.kid))
    });
}

/// The RFC 7638 JWK thumbprint of a P-256 public key with coordinates `x`, `y`:
/// base64url (no padding) of SHA-256 over the required members in
/// lexicographic order, without whitespace.
pub fn thumbprint(x: &[u8; 32], y: &[u8; 32]) -> String {
    let jwk = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(x),
        URL_SAFE_NO_PAD.encode(y)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(jwk.as_bytes()))
}

/// The affine coordinates of a P-256 key (its public key is `04 || x || y`).
fn coordinates(path: &Path, key: &KeyPair) -> Result<([u8; 32], [u8; 32]), KeyError> {
    let raw = key.public_key_raw();
    let not_p256 = || corrupt(path, "it is not an ECDSA P-256 key".into());
    let point = raw.strip_prefix(&[0x04]).ok_or_else(not_p256)?;
    if point.len() != 64 {
        return Err(not_p256());
    }
    let (x, y) = point.split_at(32);
    Ok((
        x.try_into().map_err(|_| not_p256())?,
        y.try_into().map_err(|_| not_p256())?,
    ))
}

/// Generates the root CA and writes `root.key.pem` and `root.crt.pem`.
fn create_root(key_path: &Path, crt_path: &Path) -> Result<(KeyPair, String), KeyError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| gen_err("key", e))?;
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, ROOT_CN);
    params.not_before = now - BACKDATE;
    params.not_after = now + ROOT_LIFETIME;
    // Signing certificates hang directly under the root: no intermediates.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params
        .self_signed(&key)
        .map_err(|e| gen_err("certificate", e))?;
    write_atomic(key_path, key.serialize_pem().as_bytes())?;
    write_atomic(crt_path, cert.pem().as_bytes())?;
    tracing::info!(file = %crt_path.display(), "token root CA created");
    Ok((key, cert.pem()))
}

/// Reads and parses a private key file.
fn read_key(path: &Path) -> Result<KeyPair, KeyError> {
    parse_key(path, &read_text(path)?)
}

/// Parses a PEM private key and checks that it is ECDSA P-256.
fn parse_key(path: &Path, pem: &str) -> Result<KeyPair, KeyError> {
    // rcgen's message never quotes the key.
    let key = KeyPair::from_pem(pem)
        .map_err(|e| corrupt(path, format!("it is not a PEM private key ({e})")))?;
    if !key.is_compatible(&PKCS_ECDSA_P256_SHA256) {
        return Err(corrupt(path, "it is not an ECDSA P-256 key".into()));
    }
    Ok(key)
}

/// The DER of the one certificate in a PEM file.
fn cert_der(path: &Path, pem: &str) -> Result<Vec<u8>, KeyError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| corrupt(path, format!("it is not a PEM certificate ({e})")))?;
    if pem.label != "CERTIFICATE" {
        return Err(corrupt(
            path,
            format!("it holds a {:?}, not a CERTIFICATE", pem.label),
        ));
    }
    Ok(pem.contents)
}

/// Parses a DER certificate.
fn parse_cert<'a>(path: &Path, der: &'a [u8]) -> Result<X509Certificate<'a>, KeyError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| corrupt(path, format!("it is not an X.509 certificate ({e})")))?;
    Ok(cert)
}

/// Checks that a certificate certifies `key`.
fn check_holds_key(path: &Path, cert: &X509Certificate<'_>, key: &KeyPair) -> Result<(), KeyError> {
    if cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw() {
        Ok(())
    } else {
        Err(corrupt(
            path,
            "it certifies another key than the one beside it".into(),
        ))
    }
}

/// Logs a warning when the active certificate or the root ends within 30 days.
fn warn_if_expiring(active: &Signer, root_not_after: i64) {
    let soon = (OffsetDateTime::now_utc() + EXPIRY_WARNING).unix_timestamp();
    if active.not_after < soon {
        tracing::warn!(
            kid = %active.kid,
            not_after = active.not_after,
            "the active token signing certificate ends within 30 days; rotate the signing key"
        );
    }
    if root_not_after < soon {
        tracing::warn!(
            not_after = root_not_after,
            "the token root CA certificate ends within 30 days; every token will then be refused"
        );
    }
}

/// Creates a directory (and its parents) with mode 0700 if it is missing.
fn make_dir(dir: &Path) -> Result<(), KeyError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io("create", dir, e))
}

/// Whether a file exists; an error other than "not found" is reported.
fn exists(path: &Path) -> Result<bool, KeyError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io("read", path, e)),
    }
}

/// Reads a text file.
fn read_text(path: &Path) -> Result<String, KeyError> {
    let bytes = fs::read(path).map_err(|e| io("read", path, e))?;
    String::from_utf8(bytes).map_err(|_| corrupt(path, "it is not text".into()))
}

/// Writes a file with mode 0600 so that no reader ever sees it half written:
/// a temporary file beside it, synced, renamed over it, and the directory synced.
fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), KeyError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("key");
    // The process id in the name: nodes sharing a data directory may copy
    // the same key file from the shared database at once.
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io("write", path, e)
    })
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> KeyError {
    KeyError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, reason: String) -> KeyError {
    KeyError::Corrupt {
        path: path.to_path_buf(),
        reason,
    }
}

fn missing(path: &Path, beside: &Path) -> KeyError {
    let beside = beside
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    corrupt(path, format!("it is missing, though {beside} exists"))
}

fn gen_err(what: &'static str, e: rcgen::Error) -> KeyError {
    KeyError::Generate {
        what,
        reason: e.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// n - s, for the tests of other modules that build a signature's twin.
    pub(crate) fn order_minus_for_tests(s: &[u8; 32]) -> [u8; 32] {
        order_minus(s)
    }

    /// The `x5c` entry of a signer's JOSE header.
    pub(crate) fn x5c(signer: &Signer) -> String {
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&*signer.header).unwrap()).unwrap();
        header["x5c"][0].as_str().unwrap().to_owned()
    }

    #[test]
    fn low_s_is_at_most_half_the_order() {
        let mut one = [0u8; 32];
        one[31] = 1;
        let mut n_minus_one = P256_ORDER;
        n_minus_one[31] -= 1;
        let mut above_half = P256_HALF_ORDER;
        above_half[31] += 1;
        assert!(is_low_s(&one));
        assert!(is_low_s(&P256_HALF_ORDER));
        assert!(!is_low_s(&above_half));
        assert!(!is_low_s(&n_minus_one));
        // n - s, with borrows across bytes (checked with Python integers).
        assert_eq!(order_minus(&one), n_minus_one);
        assert_eq!(order_minus(&n_minus_one), one);
        assert_eq!(order_minus(&above_half), P256_HALF_ORDER);
        assert_eq!(order_minus(&P256_HALF_ORDER), above_half);
        let mut low = [0u8; 32];
        low[0] = 0x01;
        low[31] = 0xff;
        let high = order_minus(&low);
        assert_eq!(
            hex::encode(high),
            "feffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632452"
        );
        assert!(!is_low_s(&high));
        assert_eq!(order_minus(&high), low);
    }

    #[test]
    fn signatures_are_low_s_and_verify() {
        let tmp = tempfile::tempdir().unwrap();
        let store = KeyStore::open(&tmp.path().join("keys")).unwrap();
        let signer = store.active();
        for i in 0..200 {
            let message = format!("message {i}");
            let signature = signer.sign(message.as_bytes()).unwrap();
            let raw = URL_SAFE_NO_PAD.decode(&signature).unwrap();
            assert_eq!(raw.len(), 64);
            assert!(is_low_s(raw[32..].try_into().unwrap()), "{signature}");
            assert!(
                jsonwebtoken::crypto::verify(
                    &signature,
                    message.as_bytes(),
                    &signer.decoding,
                    Algorithm::ES256
                )
                .unwrap()
            );
        }
    }

    #[test]
    fn thumbprint_matches_rfc7638_with_zero_padded_coordinates() {
        // Coordinates with leading zero bytes: a thumbprint that drops them
        // (as CNCF distribution 3.1 does) differs.
        let mut x = [0u8; 32];
        let mut y = [0u8; 32];
        for i in 2..32 {
            x[i] = i as u8;
            y[i] = 0xff - i as u8;
        }
        // Computed independently with Python's hashlib and base64 over
        // {"crv":"P-256","kty":"EC","x":"AAACAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        //  "y":"AAD9_Pv6-fj39vX08_Lx8O_u7ezr6uno5-bl5OPi4eA"} (no whitespace).
        let expected = "S04bnvNJUxQOryRHLWa1SOq9sZV4WZIgMgdIMBoKTnY";
        assert_eq!(thumbprint(&x, &y), expected);
        // And jsonwebtoken's own implementation agrees.
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(serde_json::json!({
            "kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        }))
        .unwrap();
        assert_eq!(
            jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256),
            expected
        );
    }

    #[test]
    fn first_start_creates_root_and_signing_key_with_private_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let store = KeyStore::open(&dir).unwrap();
        let kid = store.active_kid();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(SIGNING_DIR)), 0o700);
        for file in [
            dir.join(ROOT_KEY),
            dir.join(ROOT_CRT),
            dir.join(ACTIVE),
            dir.join(SIGNING_DIR).join(format!("{kid}{KEY_SUFFIX}")),
            dir.join(SIGNING_DIR).join(format!("{kid}{CRT_SUFFIX}")),
        ] {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
        assert_eq!(
            fs::read_to_string(dir.join(ROOT_CRT)).unwrap(),
            store.root_pem()
        );
    }

    #[test]
    fn certificates_have_the_names_lifetimes_and_usages() {
        let tmp = tempfile::tempdir().unwrap();
        let store = KeyStore::open(tmp.path()).unwrap();
        let root_der = cert_der(Path::new("root"), &store.root_pem()).unwrap();
        let root = parse_cert(Path::new("root"), &root_der).unwrap();
        let leaf_der = STANDARD.decode(x5c(&store.active())).unwrap();
        let leaf = parse_cert(Path::new("leaf"), &leaf_der).unwrap();
        let cn = |c: &X509Certificate<'_>| {
            c.subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(cn(&root).as_deref(), Some(ROOT_CN));
        assert_eq!(cn(&leaf).as_deref(), Some(SIGNER_CN));
        assert_eq!(leaf.issuer(), root.subject());
        let days = |c: &X509Certificate<'_>| {
            (c.validity().not_after.timestamp() - c.validity().not_before.timestamp()) / 86_400
        };
        assert_eq!(days(&root), 3652);
        assert_eq!(days(&leaf), 365);
        assert!(root.is_ca() && !leaf.is_ca());
        let usage = leaf.key_usage().unwrap().unwrap().value;
        assert!(usage.digital_signature() && !usage.key_cert_sign());
        leaf.verify_signature(Some(root.public_key())).unwrap();
    }

    #[test]
    fn reopening_gives_the_same_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let first = KeyStore::open(tmp.path()).unwrap();
        first.rotate().unwrap();
        let again = KeyStore::open(tmp.path()).unwrap();
        assert_eq!(again.kids(), first.kids());
        assert_eq!(again.active_kid(), first.active_kid());
        assert_eq!(again.root_pem(), first.root_pem());
        assert_eq!(again.jwks(), first.jwks());
    }

    #[test]
    fn rotation_adds_an_active_key_and_keeps_the_old_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let store = KeyStore::open(tmp.path()).unwrap();
        let old = store.active_kid();
        let new = store.rotate().unwrap();
        assert_ne!(old, new);
        assert_eq!(store.active_kid(), new);
        assert_eq!(store.kids(), vec![old.clone(), new.clone()]);
        assert!(store.get(&old).is_some());
        let jwks = store.jwks();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[1]["kid"], new.as_str());
        for key in keys {
            assert_eq!(
                (&key["kty"], &key["crv"], &key["use"], &key["alg"]),
                (
                    &serde_json::json!("EC"),
                    &serde_json::json!("P-256"),
                    &serde_json::json!("sig"),
                    &serde_json::json!("ES256")
                )
            );
            let coord = |c: &str| -> [u8; 32] {
                URL_SAFE_NO_PAD
                    .decode(key[c].as_str().unwrap())
                    .unwrap()
                    .try_into()
                    .unwrap()
            };
            assert_eq!(thumbprint(&coord("x"), &coord("y")), key["kid"]);
        }
        assert_eq!(
            fs::read_to_string(tmp.path().join(ACTIVE)).unwrap().trim(),
            new
        );
    }

    #[test]
    fn a_key_is_retired_only_once_its_tokens_have_expired() {
        let tmp = tempfile::tempdir().unwrap();
        let store = KeyStore::open(tmp.path()).unwrap();
        let old = store.active_kid();
        assert!(matches!(
            store.retire(&old, 360, crate::clock::now_unix()),
            Err(RetireError::Active(_))
        ));
        let new = store.rotate().unwrap();
        let info = store.key_info();
        let stopped = info[0].inactive_since.unwrap();
        assert_eq!((info[0].active, info[1].active), (false, true));
        assert_eq!(info[1].inactive_since, None);
        match store.retire(&old, 360, stopped + 359) {
            Err(RetireError::TooSoon { possible_at, .. }) => assert_eq!(possible_at, stopped + 360),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            store.retire("nope", 0, stopped),
            Err(RetireError::Unknown(_))
        ));
        // The time it stopped survives a restart.
        let reopened = KeyStore::open(tmp.path()).unwrap();
        assert_eq!(reopened.key_info()[0].inactive_since, Some(stopped));
        store.retire(&old, 360, stopped + 360).unwrap();
        assert_eq!(store.kids(), vec![new.clone()]);
        assert!(store.get(&old).is_none());
        assert!(
            !tmp.path()
                .join(SIGNING_DIR)
                .join(format!("{old}{CRT_SUFFIX}"))
                .exists()
        );
        assert!(
            !tmp.path()
                .join(SIGNING_DIR)
                .join(format!("{old}{KEY_SUFFIX}"))
                .exists()
        );
        assert_eq!(KeyStore::open(tmp.path()).unwrap().kids(), vec![new]);
    }

    #[test]
    fn a_corrupt_key_file_refuses_the_start_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let kid = KeyStore::open(tmp.path()).unwrap().active_kid();
        let key = tmp
            .path()
            .join(SIGNING_DIR)
            .join(format!("{kid}{KEY_SUFFIX}"));
        fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = KeyStore::open(tmp.path()).unwrap_err();
        assert!(
            matches!(&err, KeyError::Corrupt { path, .. } if *path == key),
            "{err}"
        );
        assert!(err.to_string().contains(&key.display().to_string()));
    }

    #[test]
    fn a_swapped_certificate_refuses_the_start() {
        let tmp = tempfile::tempdir().unwrap();
        let store = KeyStore::open(tmp.path()).unwrap();
        let old = store.active_kid();
        let new = store.rotate().unwrap();
        let signing = tmp.path().join(SIGNING_DIR);
        let old_crt = signing.join(format!("{old}{CRT_SUFFIX}"));
        fs::copy(signing.join(format!("{new}{CRT_SUFFIX}")), &old_crt).unwrap();
        let err = KeyStore::open(tmp.path()).unwrap_err();
        assert!(
            matches!(&err, KeyError::Corrupt { path, .. } if *path == old_crt),
            "{err}"
        );
    }

    #[test]
    fn an_unreadable_root_refuses_the_start_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        KeyStore::open(tmp.path()).unwrap();
        let root_crt = tmp.path().join(ROOT_CRT);
        fs::remove_file(&root_crt).unwrap();
        fs::create_dir(&root_crt).unwrap();
        let err = KeyStore::open(tmp.path()).unwrap_err();
        assert!(
            matches!(&err, KeyError::Io { path, .. } if *path == root_crt),
            "{err}"
        );
    }
}
