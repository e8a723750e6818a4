//! Stock CNCF distribution 2.8.2 (Debian `docker-registry`) trusting berth's
//! token service: berth is the `auth.token` server of a registry it does not
//! run, as PROTOCOL.md section 4 promises.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{ADMIN_PASSWORD, Server, admin_creds, peer, run, write_layout};

/// The `service` berth writes in `aud` and distribution requires.
const SERVICE: &str = "distribution-test";
/// berth's default `iss`, which distribution must be configured with.
const ISSUER: &str = "berth";

/// A `docker-registry serve` process, killed on drop. Its log goes to a file
/// that failed assertions quote.
struct Distribution {
    child: Child,
    /// `127.0.0.1:<port>`.
    addr: String,
    log: PathBuf,
}

impl Distribution {
    /// Writes a config under `dir` trusting `berth`'s tokens and starts
    /// distribution with it.
    fn start(dir: &Path, berth: &Server, root_cert: &Path) -> Self {
        let addr = free_addr();
        let storage = dir.join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let config = format!(
            "version: 0.1\n\
             log:\n  level: warn\n\
             storage:\n  filesystem:\n    rootdirectory: \"{storage}\"\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n\
             auth:\n  token:\n    realm: \"{realm}\"\n    service: \"{SERVICE}\"\n    \
             issuer: \"{ISSUER}\"\n    rootcertbundle: \"{root}\"\n",
            storage = storage.display(),
            realm = berth.url("/token"),
            root = root_cert.display(),
        );
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, &config).unwrap();
        let log = dir.join("distribution.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(peer("docker-registry"))
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("docker-registry starts");
        Self { child, addr, log }
    }

    /// `http://127.0.0.1:<port><path>`.
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What distribution logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address free a moment ago.
fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

fn skopeo() -> Command {
    let mut command = Command::new(peer("skopeo"));
    command.arg("--insecure-policy");
    command
}

/// A token from berth for `admin` with `scope`, for distribution's service.
fn berth_token(berth: &Server, scope: &str) -> String {
    let response = reqwest::blocking::Client::new()
        .get(berth.url("/token"))
        .query(&[("service", SERVICE), ("scope", scope)])
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .expect("token request");
    assert_eq!(response.status(), 200, "admin gets a token");
    let body: serde_json::Value = response.json().expect("token JSON");
    body["token"].as_str().expect("token field").to_owned()
}

/// skopeo pushes to and pulls from distribution 2.8.2 with berth's admin
/// credentials: distribution's challenge sends it to berth's /token, and
/// distribution accepts the ES256 token through its `x5c` chain to berth's
/// root. Anonymous and wrong-scope tokens open nothing.
#[test]
fn distribution_accepts_berth_tokens() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let berth = Server::start_with(data.path(), &["--service", SERVICE]);
    let root_cert = data.path().join("keys/root.crt.pem");
    assert!(root_cert.is_file(), "berth wrote its root certificate");
    let registry = Distribution::start(work.path(), &berth, &root_cert);

    // Ready when /v2/ challenges with berth's realm and our service.
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let challenge = loop {
        match client.get(registry.url("/v2/")).send() {
            Ok(response) => {
                assert_eq!(response.status(), 401, "log:\n{}", registry.log());
                break response.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .to_owned();
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!(
                "distribution does not answer: {e}\nlog:\n{}",
                registry.log()
            ),
        }
    };
    assert_eq!(
        challenge,
        format!(
            r#"Bearer realm="{}",service="{SERVICE}""#,
            berth.url("/token")
        )
    );

    // Push through distribution with berth's credentials, then pull back.
    let layout = write_layout(&work.path().join("src"), "v1", 4 * 1024 * 1024, 23);
    let image = format!("docker://{}/admin/interop:v1", registry.addr);
    let copied = skopeo()
        .args([
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &admin_creds(),
        ])
        .arg(format!("oci:{}:v1", layout.dir.display()))
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        copied.status.success(),
        "skopeo copy to distribution failed:\n{}\ndistribution log:\n{}",
        String::from_utf8_lossy(&copied.stderr),
        registry.log()
    );
    let back = work.path().join("back");
    run(skopeo()
        .args([
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            &admin_creds(),
        ])
        .arg(&image)
        .arg(format!("oci:{}:v1", back.display())));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(back.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"].as_str(),
        Some(layout.manifest.to_string().as_str()),
        "the manifest came back from distribution byte for byte"
    );
    let tags: serde_json::Value = serde_json::from_str(&run(skopeo()
        .args(["list-tags", "--tls-verify=false", "--creds", &admin_creds()])
        .arg(format!("docker://{}/admin/interop", registry.addr))))
    .unwrap();
    assert_eq!(tags["Tags"], serde_json::json!(["v1"]));

    // Anonymous: berth grants nothing on a private repository.
    let anonymous = skopeo()
        .args(["inspect", "--tls-verify=false"])
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        !anonymous.status.success(),
        "anonymous inspect through distribution fails"
    );

    // A valid token for another repository does not open this one...
    let tags_url = registry.url("/v2/admin/interop/tags/list");
    let other = client
        .get(&tags_url)
        .bearer_auth(berth_token(&berth, "repository:admin/other:pull"))
        .send()
        .unwrap();
    assert_eq!(other.status(), 401, "a token for admin/other");
    // ...while one for this repository does: the 401 above is the scope.
    let own = client
        .get(&tags_url)
        .bearer_auth(berth_token(&berth, "repository:admin/interop:pull"))
        .send()
        .unwrap();
    assert_eq!(own.status(), 200, "log:\n{}", registry.log());
    let own: serde_json::Value = own.json().unwrap();
    assert_eq!(own["tags"], serde_json::json!(["v1"]));
}
