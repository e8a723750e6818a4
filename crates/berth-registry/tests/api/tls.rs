//! The registry over TLS: a private CA and server certificates made here,
//! clients that verify against that CA only, and a renewal picked up from
//! the files while a download runs on an older connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_registry::server::tls::CertStore;
use berth_registry::{Config, Registry};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::sync::oneshot;

use crate::support::random_bytes;

/// A private certificate authority.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes a certificate for 127.0.0.1 issued by this CA, and its key.
    fn issue_into(&self, cert: &Path, key: &Path) {
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let key_pair = KeyPair::generate().unwrap();
        let issued = params.signed_by(&key_pair, &self.issuer).unwrap();
        std::fs::write(cert, issued.pem()).unwrap();
        std::fs::write(key, key_pair.serialize_pem()).unwrap();
    }

    /// A client that trusts this CA and nothing else.
    fn client(&self) -> reqwest::Client {
        let root = reqwest::Certificate::from_pem(self.pem().as_bytes()).unwrap();
        reqwest::Client::builder()
            .tls_certs_only([root])
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }
}

struct TlsApp {
    base: String,
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
}

impl TlsApp {
    async fn start(ca: &Ca) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("server.crt");
        let key = dir.path().join("server.key");
        ca.issue_into(&cert, &key);
        let store = Arc::new(CertStore::open(&cert, &key).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("https://{}", listener.local_addr().unwrap());
        let mut config = Config::new(base.clone());
        config.access_control = false;
        let registry = Registry::open_embedded(&dir.path().join("data"), config)
            .await
            .unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(berth_registry::serve_tls(
            listener,
            registry,
            Some(store),
            async move {
                let _ = rx.await;
            },
        ));
        Self {
            base,
            _dir: dir,
            cert,
            key,
            shutdown: Some(tx),
        }
    }
}

impl Drop for TlsApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[tokio::test]
async fn a_client_trusting_the_private_ca_gets_answers_over_tls() {
    let ca = Ca::new("berth test CA");
    let app = TlsApp::start(&ca).await;
    let resp = ca
        .client()
        .get(format!("{}/v2/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
    assert_eq!(resp.text().await.unwrap(), "{}");
    // A client trusting another CA refuses the server.
    let stranger = Ca::new("another CA");
    let refused = stranger
        .client()
        .get(format!("{}/v2/", app.base))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "a certificate from an unknown CA is refused"
    );
    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::get(format!("{}/v2/", app.base.replace("https://", "http://"))).await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}

#[tokio::test]
async fn a_renewed_certificate_is_served_to_new_connections_while_a_download_continues() {
    let old_ca = Ca::new("old CA");
    let new_ca = Ca::new("new CA");
    let app = TlsApp::start(&old_ca).await;
    let old_client = old_ca.client();
    let blob = random_bytes(24 << 20);
    let digest = berth_core::digest::Digest::sha256_of(&blob);
    let pushed = old_client
        .post(format!(
            "{}/v2/tls/renew/blobs/uploads/?digest={digest}",
            app.base
        ))
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), 201);

    // A download on a connection made with the old certificate...
    let mut download = old_client
        .get(format!("{}/v2/tls/renew/blobs/{digest}", app.base))
        .send()
        .await
        .unwrap();
    let mut received = download.chunk().await.unwrap().unwrap().to_vec();

    // ...while the files are renewed with a certificate of the new CA.
    new_ca.issue_into(&app.cert, &app.key);
    let new_client = new_ca.client();
    let started = Instant::now();
    loop {
        match new_client.get(format!("{}/v2/", app.base)).send().await {
            Ok(resp) => {
                assert_eq!(resp.status(), 200);
                break;
            }
            Err(e) => {
                assert!(
                    started.elapsed() < Duration::from_secs(15),
                    "the renewal was not picked up from the files: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    // The download that started before goes on to the end, intact.
    while let Some(chunk) = download.chunk().await.unwrap() {
        received.extend_from_slice(&chunk);
    }
    assert!(received == blob, "the download across the renewal is whole");
}
