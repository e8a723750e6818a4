//! `berth serve --tls-cert --tls-key` with a private CA made here: skopeo,
//! podman, curl and berth's own client verify the server against that CA
//! (no --tls-verify=false, no --insecure), HTTP/2 is offered by ALPN, a
//! SIGHUP picks up a renewed certificate, and a bad key stops the start with
//! one line naming the files.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

use crate::support::{Cli, Server, admin_creds, peer, run, skopeo, write_layout};

/// A private CA whose certificate sits in `dir/ca.crt`.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// A directory holding only `ca.crt`, as skopeo's and podman's
    /// `--cert-dir` take it.
    certs_dir: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let certs_dir = dir.join(format!("{name}-certs"));
        std::fs::create_dir_all(&certs_dir).unwrap();
        std::fs::write(certs_dir.join("ca.crt"), issuer.pem()).unwrap();
        Self { issuer, certs_dir }
    }

    fn ca_file(&self) -> PathBuf {
        self.certs_dir.join("ca.crt")
    }

    /// Writes a server certificate for 127.0.0.1 and its key.
    fn issue_into(&self, cert: &Path, key: &Path) {
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let key_pair = KeyPair::generate().unwrap();
        let issued = params.signed_by(&key_pair, &self.issuer).unwrap();
        std::fs::write(cert, issued.pem()).unwrap();
        std::fs::write(key, key_pair.serialize_pem()).unwrap();
    }
}

/// `curl` against `url` trusting `ca`: the HTTP version used, or `None`
/// when the TLS handshake failed.
fn curl_version(url: &str, ca: &Path) -> Option<String> {
    let output = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version}",
            "--http2",
            "--cacert",
        ])
        .arg(ca)
        .arg(url)
        .output()
        .expect("curl runs");
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

fn tls_server(work: &Path, ca: &Ca) -> (Server, PathBuf, PathBuf) {
    let cert = work.join("server.crt");
    let key = work.join("server.key");
    ca.issue_into(&cert, &key);
    let server = Server::start_with(
        &work.join("data"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(server.scheme, "https");
    (server, cert, key)
}

#[test]
fn skopeo_podman_curl_and_berth_verify_the_server_against_the_private_ca() {
    let work = tempfile::tempdir().unwrap();
    let ca = Ca::new(work.path(), "berth-e2e-ca");
    let (server, _, _) = tls_server(work.path(), &ca);
    assert_eq!(
        curl_version(&server.url("/v2/"), &ca.ca_file()).as_deref(),
        Some("2"),
        "HTTP/2 by ALPN"
    );

    let layout = write_layout(&work.path().join("layout"), "v1", 1024 * 1024, 3);
    let image = format!("{}/admin/tls:v1", server.addr);
    run(skopeo()
        .args(["copy", "--dest-creds", &admin_creds(), "--dest-cert-dir"])
        .arg(&ca.certs_dir)
        .arg(format!("oci:{}:v1", layout.dir.display()))
        .arg(format!("docker://{image}")));

    let root = work.path().join("podman-root");
    let runroot = work.path().join("podman-run");
    run(Command::new(peer("podman"))
        .arg("--storage-driver=vfs")
        .arg("--root")
        .arg(&root)
        .arg("--runroot")
        .arg(&runroot)
        .args(["pull", "--creds", &admin_creds(), "--cert-dir"])
        .arg(&ca.certs_dir)
        .arg(&image));

    let home = tempfile::tempdir().unwrap();
    let cli = Cli::admin(home.path()).env("BERTH_CA_FILE", ca.ca_file());
    let tags = cli.ok_text(&["tags", &format!("{}/admin/tls", server.addr)], b"");
    assert_eq!(tags.trim(), "v1");
    let digest = cli.ok_text(&["digest", &image], b"");
    assert_eq!(digest.trim(), layout.manifest.to_string());

    // A client that does not know the CA is refused by its own TLS check.
    let stranger = Ca::new(work.path(), "stranger-ca");
    assert_eq!(curl_version(&server.url("/v2/"), &stranger.ca_file()), None);
}

#[test]
fn sighup_serves_a_renewed_certificate_to_new_connections() {
    let work = tempfile::tempdir().unwrap();
    let old_ca = Ca::new(work.path(), "old-ca");
    let new_ca = Ca::new(work.path(), "new-ca");
    let (server, cert, key) = tls_server(work.path(), &old_ca);
    assert_eq!(curl_version(&server.url("/v2/"), &new_ca.ca_file()), None);

    new_ca.issue_into(&cert, &key);
    server.signal("HUP");
    let started = Instant::now();
    while curl_version(&server.url("/v2/"), &new_ca.ca_file()).is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the renewed certificate is served after SIGHUP"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(curl_version(&server.url("/v2/"), &old_ca.ca_file()), None);
}

#[test]
fn a_key_that_is_not_the_certificates_stops_the_start_with_one_line() {
    let work = tempfile::tempdir().unwrap();
    let ca = Ca::new(work.path(), "ca");
    let (cert, key) = (work.path().join("a.crt"), work.path().join("a.key"));
    let (other_cert, other_key) = (work.path().join("b.crt"), work.path().join("b.key"));
    ca.issue_into(&cert, &key);
    ca.issue_into(&other_cert, &other_key);
    let output = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(work.path().join("data"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&other_key)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("b.key does not belong to the certificate in") && stderr.contains("a.crt"),
        "{stderr}"
    );
    let missing = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(work.path().join("data"))
        .arg("--tls-cert")
        .arg(work.path().join("nowhere.crt"))
        .arg("--tls-key")
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("cannot read certificate file") && stderr.contains("nowhere.crt"),
        "{stderr}"
    );
}
