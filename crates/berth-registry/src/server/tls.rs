//! TLS on the listener: rustls (aws-lc-rs), TLS 1.3 and 1.2 only, HTTP/2 and
//! HTTP/1.1 offered by ALPN.
//!
//! The certificate chain and key come from two PEM files. They are read at
//! start, where any problem is an error naming the file and what is wrong
//! with it (missing, unreadable, no certificate, no key, a key that does not
//! belong to the certificate). [`CertStore::reload`] reads them again (on
//! SIGHUP, and when [`CertStore::watch`] sees either file change): new
//! handshakes get the new certificate, open connections keep theirs, and a
//! renewal that cannot be read is logged and leaves the current one serving.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often the certificate files are checked for a change.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// Why the certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// "certificate file" or "key file".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error(
        "{0} holds no certificate: give a PEM file with the server certificate first, then its intermediates"
    )]
    NoCertificate(PathBuf),
    /// The key file holds no usable PEM private key.
    #[error(
        "{path} holds no private key ({reason}): give the PEM private key (PKCS#8, PKCS#1 or SEC1) of the certificate"
    )]
    NoKey {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        reason: String,
    },
    /// The key is of a kind rustls cannot sign with.
    #[error("the key in {path} cannot be used: {reason}")]
    UnsupportedKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key does not belong to the certificate.
    #[error(
        "the key in {key} does not belong to the certificate in {cert}: give the key the certificate was issued for"
    )]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the configuration.
    #[error("cannot set up TLS: {0}")]
    Config(String),
}

/// The certificate chain and key a server presents, reloadable.
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// What the files looked like when last read.
    seen: Mutex<Option<(FileStamp, FileStamp)>>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

/// Enough of a file's metadata to notice it was replaced or rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some(Self {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode,
        })
    }
}

impl CertStore {
    /// Reads the chain in `cert_path` and the key in `key_path`.
    pub fn open(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let stamps = Self::stamps(cert_path, key_path);
        let key = load(&provider, cert_path, key_path)?;
        Ok(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            provider,
            current: RwLock::new(Arc::new(key)),
            seen: Mutex::new(stamps),
        })
    }

    fn stamps(cert: &Path, key: &Path) -> Option<(FileStamp, FileStamp)> {
        Some((FileStamp::of(cert)?, FileStamp::of(key)?))
    }

    /// The rustls configuration serving this store's certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Reads the files again; on success new handshakes present what they
    /// now hold. On failure the current certificate stays and the error says
    /// why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamps = Self::stamps(&self.cert_path, &self.key_path);
        let key = load(&self.provider, &self.cert_path, &self.key_path)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = stamps;
        tracing::info!(
            cert = %self.cert_path.display(),
            "TLS certificate reloaded: new connections get it"
        );
        Ok(())
    }

    /// Whether either file changed since it was last read.
    fn changed(&self) -> bool {
        let now = Self::stamps(&self.cert_path, &self.key_path);
        now.is_some() && *self.seen.lock().unwrap_or_else(PoisonError::into_inner) != now
    }

    /// Reloads whenever the files change on disk, every [`WATCH_INTERVAL`];
    /// runs until the task is aborted. A half-written renewal fails to load
    /// and is tried again at the next change.
    pub async fn watch(self: Arc<Self>) {
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !self.changed() {
                continue;
            }
            // Wait a moment for a renewal that writes the two files in turn.
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Err(e) = self.reload() {
                // Remember the failed state so the error is logged once per change.
                *self.seen.lock().unwrap_or_else(PoisonError::into_inner) =
                    Self::stamps(&self.cert_path, &self.key_path);
                tracing::warn!(error = %e, "TLS certificate files changed but cannot be used; still serving the previous certificate");
            }
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

/// Reads and checks a chain and its key.
fn load(
    provider: &CryptoProvider,
    cert_path: &Path,
    key_path: &Path,
) -> Result<CertifiedKey, TlsError> {
    let read = |what, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            what,
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read("certificate file", cert_path)?;
    let key_pem = read("key file", key_path)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert_path.to_owned()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::NoKey {
        path: key_path.to_owned(),
        reason: e.to_string(),
    })?;
    let signing_key =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::UnsupportedKey {
                path: key_path.to_owned(),
                reason: e.to_string(),
            })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        // The key's kind cannot tell its public half: nothing to compare.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(_) => Err(TlsError::Mismatch {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_path = dir.join(format!("{name}.crt"));
        let key_path = dir.join(format!("{name}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    #[test]
    fn each_bad_file_is_named_with_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair(dir.path(), "a");
        let (_, other_key) = pair(dir.path(), "b");
        let missing = dir.path().join("missing.pem");
        let text = |e: TlsError| e.to_string();

        let e = text(CertStore::open(&missing, &key).unwrap_err());
        assert!(
            e.starts_with("cannot read certificate file ") && e.contains("missing.pem"),
            "{e}"
        );
        let e = text(CertStore::open(&cert, &missing).unwrap_err());
        assert!(e.starts_with("cannot read key file "), "{e}");
        let e = text(CertStore::open(&key, &key).unwrap_err());
        assert!(e.contains("a.key holds no certificate"), "{e}");
        let e = text(CertStore::open(&cert, &cert).unwrap_err());
        assert!(e.contains("a.crt holds no private key"), "{e}");
        let e = text(CertStore::open(&cert, &other_key).unwrap_err());
        assert!(
            e.starts_with("the key in ") && e.contains("b.key does not belong to the certificate"),
            "{e}"
        );
        CertStore::open(&cert, &key).unwrap();
    }

    #[test]
    fn a_reload_that_fails_keeps_the_current_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair(dir.path(), "a");
        let store = CertStore::open(&cert, &key).unwrap();
        let before = store.current.read().unwrap().cert.clone();
        std::fs::write(&cert, "not a certificate").unwrap();
        assert!(store.changed());
        assert!(store.reload().is_err());
        assert_eq!(store.current.read().unwrap().cert, before);
        // A proper renewal replaces it.
        let (new_cert, new_key) = pair(dir.path(), "c");
        std::fs::copy(&new_cert, &cert).unwrap();
        std::fs::copy(&new_key, &key).unwrap();
        store.reload().unwrap();
        assert_ne!(store.current.read().unwrap().cert, before);
        assert!(!store.changed());
    }
}
