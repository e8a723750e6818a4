//! A registry behind TLS with a private CA: trusted through an extra CA
//! file (`TransportOptions::ca_files`, filled from `--ca-file`, the client
//! configuration or `certs.d`), refused without it. A CA given for a
//! loopback registry means TLS there too.

use std::sync::Arc;

use berth_client::auth::{AuthError, TransportOptions};
use berth_client::client::{ClientError, RegistryClient};
use berth_core::reference::Registry;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A private CA and a server certificate for `localhost` and 127.0.0.1.
struct Pki {
    ca_pem: String,
    server: ServerConfig,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "berth test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let server_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let server = ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![CertificateDer::from(server_cert.der().to_vec())], key)
    .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        server,
    }
}

/// A TLS listener on loopback answering every request with an empty `/v2/`
/// 200, as an open registry does. Its port.
async fn tls_registry(server: ServerConfig) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = TlsAcceptor::from(Arc::new(server));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\n\
                          Docker-Distribution-API-Version: registry/2.0\r\n\
                          Content-Type: application/json\r\n\
                          Content-Length: 2\r\n\
                          Connection: close\r\n\r\n{}",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test]
async fn a_private_ca_is_trusted_through_a_ca_file_and_means_tls_on_loopback() {
    let pki = pki();
    let port = tls_registry(pki.server).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let registry = Registry::parse(&format!("localhost:{port}")).unwrap();

    // With the CA: https, although the registry is on loopback, and trusted.
    let options = TransportOptions {
        ca_files: vec![ca],
        ..TransportOptions::default()
    };
    let client = RegistryClient::new(registry.clone(), None, options).unwrap();
    assert_eq!(
        client.transport().base().as_str(),
        format!("https://localhost:{port}/")
    );
    let ping = client.ping().await.unwrap();
    assert!(ping.checked);

    // Without it, TLS asked for explicitly: the certificate is refused.
    let options = TransportOptions {
        insecure: Some(false),
        ..TransportOptions::default()
    };
    let client = RegistryClient::new(registry, None, options).unwrap();
    let err = client.ping().await.unwrap_err();
    assert!(
        matches!(err, ClientError::Auth(AuthError::Http { .. })),
        "{err:?}"
    );
}

#[test]
fn a_ca_file_without_a_certificate_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let options = TransportOptions {
        ca_files: vec![empty.clone()],
        ..TransportOptions::default()
    };
    let err = RegistryClient::new(
        Registry::parse("registry.example.com").unwrap(),
        None,
        options,
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(message.contains(&empty.display().to_string()), "{message}");
    assert!(message.contains("no certificate found"), "{message}");
    let missing = dir.path().join("missing.pem");
    let options = TransportOptions {
        ca_files: vec![missing.clone()],
        ..TransportOptions::default()
    };
    let err = RegistryClient::new(
        Registry::parse("registry.example.com").unwrap(),
        None,
        options,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
}
